//! Configuration layering and errors, through the real binary.

use crate::support::Binary;

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(crate::support::unique_name("sk-config"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_bad_file_names_every_key_and_the_file() {
    let path = write("bad.toml", "unknwon_key = 1\n[scheduler]\nreload_interval = \"ten\"\n");
    let (status, out) = Binary::run(&["--config", path.to_str().unwrap(), "config"], &[]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("unknwon_key: unknown key"), "{out}");
    assert!(out.contains("scheduler.reload_interval: invalid duration \"ten\""), "{out}");
    assert_eq!(out.matches(&format!("config file {}", path.display())).count(), 2, "{out}");
}

#[test]
fn the_config_file_can_come_from_the_environment() {
    let path = write("bad.toml", "[worker]\nconcurrency = \"many\"\n");
    let (status, out) =
        Binary::run(&["config"], &[("SENTRYK8S_CONFIG".into(), path.to_string_lossy().into_owned())]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("worker.concurrency: wrong type"), "{out}");
}

#[test]
fn a_bad_database_url_names_the_variable() {
    let (status, out) = Binary::run(&["config"], &[("SENTRYK8S_DATABASE_URL".into(), "mysql//nope".into())]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains("database_url") && out.contains("environment variable SENTRYK8S_DATABASE_URL"),
        "{out}"
    );
}

#[test]
fn a_bad_flag_names_the_flag() {
    let (status, out) = Binary::run(&["--amqp-url", "http://rabbit/", "config"], &[]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("amqp_url") && out.contains("command-line flag --amqp-url"), "{out}");
}

#[test]
fn layers_apply_in_order_and_secrets_are_redacted() {
    let path = write(
        "ok.toml",
        "database_url = \"postgres://app:filepw@file-host/db\"\n[worker]\nconcurrency = 10\nbatch_size = 7\n",
    );
    let (status, out) = Binary::run(
        &["--config", path.to_str().unwrap(), "--amqp-url", "amqp://u:flagpw@flag-host/%2f", "config"],
        &[
            ("SENTRYK8S_WORKER__CONCURRENCY".into(), "20".into()),
            // Kubernetes service links must not be mistaken for configuration.
            ("SENTRYK8S_SCHEDULER_SERVICE_HOST".into(), "10.0.0.1".into()),
            ("SENTRYK8S_PORT".into(), "tcp://10.0.0.1:9090".into()),
        ],
    );
    assert!(status.success(), "{out}");
    assert!(out.contains("postgres://app:***@file-host/db"), "{out}");
    assert!(out.contains("amqp://u:***@flag-host/%2f"), "{out}");
    assert!(out.contains("concurrency = 20"), "env beats file: {out}");
    assert!(out.contains("batch_size = 7"), "file beats defaults: {out}");
    assert!(!out.contains("filepw") && !out.contains("flagpw"), "{out}");
}

#[test]
fn out_of_range_values_are_refused() {
    let (status, out) = Binary::run(&["scheduler", "--lease-ttl", "3s", "--renew-interval", "2s"], &[]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("scheduler.renew_interval"), "{out}");
    let (status, out) = Binary::run(&["config"], &[("SENTRYK8S_PARTITIONS".into(), "0".into())]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("partitions: 0 is out of range"), "{out}");
}

#[test]
fn every_subcommand_has_help_and_version() {
    let (status, out) = Binary::run(&["--version"], &[]);
    assert!(status.success() && out.contains("sentryk8s"), "{out}");
    for sub in [
        vec!["migrate"],
        vec!["scheduler"],
        vec!["worker"],
        vec!["checks", "apply"],
        vec!["checks", "list"],
        vec!["status"],
        vec!["config"],
        vec!["standalone"],
        vec!["web"],
        vec!["tokens", "create"],
        vec!["report"],
        vec!["incidents"],
        vec!["rollups", "rebuild"],
    ] {
        let mut args = sub.clone();
        args.push("--help");
        let (status, out) = Binary::run(&args, &[]);
        assert!(status.success(), "{sub:?}: {out}");
        assert!(out.contains("Usage"), "{sub:?}: {out}");
    }
}
