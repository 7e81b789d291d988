//! Stopping and starting the shared PostgreSQL and RabbitMQ, for the serial
//! test binaries that prove recovery from real restarts (tests/restarts,
//! tests/chaos). Never used by the parallel integration tests.

use std::process::{Command, Stdio};
use std::time::Duration;

/// A command for a service tool: through `sudo -n` unless we are root (a
/// CI runner's user), since controlling the services needs root.
fn service_command(program: &str) -> Command {
    if nix::unistd::geteuid().is_root() {
        Command::new(program)
    } else {
        let mut cmd = Command::new("sudo");
        cmd.args(["-n", program]);
        cmd
    }
}

/// Runs a service command, its output discarded: a daemon started with our
/// stdout would hold the test harness's pipe open after the tests end.
pub fn run(program: &str, args: &[&str]) {
    let status = service_command(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(status.as_ref().is_ok_and(|s| s.success()), "{program} {args:?}: {status:?}");
}

pub fn pg_version() -> String {
    std::fs::read_dir("/etc/postgresql")
        .expect("PostgreSQL installed under /etc/postgresql")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
        .expect("a PostgreSQL cluster")
}

pub fn rabbit_up() -> bool {
    std::net::TcpStream::connect("127.0.0.1:5672").is_ok()
}

pub fn postgres_up() -> bool {
    std::net::TcpStream::connect("127.0.0.1:5432").is_ok()
}

fn start_rabbitmq() {
    run("rabbitmq-server", &["-detached"]);
}

/// `shutdown` (unlike `stop`) returns only once the node's process has
/// exited, so the new node does not collide with the old one.
pub async fn restart_rabbitmq() {
    run("rabbitmqctl", &["-q", "shutdown"]);
    assert!(!rabbit_up(), "RabbitMQ still answers after shutdown");
    start_rabbitmq();
    let up = super::eventually(Duration::from_secs(60), || async { rabbit_up() }).await;
    assert!(up, "RabbitMQ did not come back");
    run("rabbitmqctl", &["-q", "await_startup"]);
}

pub fn restart_postgres() {
    run("pg_ctlcluster", &["--skip-systemctl-redirect", &pg_version(), "main", "restart", "-m", "fast"]);
}

/// Brings the services back whatever happened to a scenario (drop guard).
pub struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        if !rabbit_up() {
            let _ = std::panic::catch_unwind(start_rabbitmq);
            for _ in 0..120 {
                if rabbit_up() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            let _ =
                service_command("rabbitmqctl").args(["-q", "await_startup"]).stdout(Stdio::null()).status();
        }
        if !postgres_up() {
            let _ = service_command("pg_ctlcluster")
                .args(["--skip-systemctl-redirect", &pg_version(), "main", "start"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
