//! `checks apply` and `checks list` through the real binary against a real
//! database: the invalid-file fixtures (exact messages, exit 2, nothing
//! written), idempotence, field-level updates, --prune, --dry-run, stdin and
//! directory inputs, concurrent applies, and secrets kept out of output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sentryk8s::checks_file::env::reserved;

use crate::support::{unique_name, Binary, TestDb};

/// What one run of the binary did.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `sentryk8s <args>` against `db` in `dir`, with `env` and `stdin`.
/// Variables the fixtures rely on being unset are removed. Like an
/// operator who hands variables to `checks apply`, the test allows `${VAR}`
/// to read the ones it passes in `env` (and the fixtures' `FIXTURE_*`),
/// unless it sets the allow list itself.
pub fn sentryk8s(db: Option<&TestDb>, dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
    let mut allow: Vec<String> = vec!["FIXTURE_*".into()];
    allow.extend(env.iter().filter(|(k, _)| reserved(k).is_none()).map(|(k, _)| k.to_string()));
    let mut env: Vec<(&str, &str)> = env.to_vec();
    let list = format!("[{}]", allow.join(", "));
    if !env.iter().any(|(k, _)| *k == "SENTRYK8S_CHECKS__ALLOW_ENV") {
        env.push(("SENTRYK8S_CHECKS__ALLOW_ENV", &list));
    }
    sentryk8s_as_given(db, dir, args, &env, stdin)
}

/// [`sentryk8s`] with exactly `env`: no allow list unless it sets one.
pub fn sentryk8s_as_given(
    db: Option<&TestDb>,
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> Run {
    let mut cmd: Command = Binary::command();
    cmd.current_dir(dir).args(args);
    for var in ["FIXTURE_UNSET_HOST", "FIXTURE_UNSET_TOKEN", "FIXTURE_UNSET_OTHER"] {
        cmd.env_remove(var);
    }
    if let Some(db) = db {
        cmd.env("SENTRYK8S_DATABASE_URL", &db.url);
    }
    cmd.envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn sentryk8s");
    let mut input = child.stdin.take().expect("stdin");
    let text = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let out = child.wait_with_output().expect("sentryk8s output");
    let _ = writer.join();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name("sk-checks"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checks/invalid")
}

/// Every row of `checks` with what an UPDATE would move (xmin changes on
/// any write, even one that sets the same values).
async fn snapshot(db: &TestDb) -> Vec<(String, i64, i64, String, String, String)> {
    let client = db.client().await;
    client
        .query(
            "SELECT name, id, version, updated_at::text, xmin::text, spec::text FROM checks ORDER BY name",
            &[],
        )
        .await
        .expect("snapshot")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

const BASELINE: &str = "checks:
  - name: home
    url: http://127.0.0.1:18080/
  - name: keep-me
    url: http://127.0.0.1:18080/health
";

#[tokio::test]
async fn invalid_fixtures_print_exact_messages_exit_2_and_write_nothing() {
    let db = TestDb::migrated(8).await;
    let dir = temp_dir();
    std::fs::write(dir.join("baseline.yaml"), BASELINE).unwrap();
    let run = sentryk8s(Some(&db), &dir, &["checks", "apply", "-f", "baseline.yaml"], &[], "");
    assert_eq!(run.code, Some(0), "{}", run.all());
    let before = snapshot(&db).await;
    assert_eq!(before.len(), 2);

    let mut cases: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".expected").map(str::to_string))
        .collect();
    cases.sort();
    assert!(cases.len() >= 12, "fixtures missing: {cases:?}");
    let mut inputs = Vec::new();
    let mut every_line = Vec::new();
    for case in &cases {
        let input = if fixtures().join(case).is_dir() { case.clone() } else { format!("{case}.yaml") };
        let expected = std::fs::read_to_string(fixtures().join(format!("{case}.expected"))).unwrap();
        // --prune too: an invalid file must never delete anything.
        let run = sentryk8s(Some(&db), &fixtures(), &["checks", "apply", "--prune", "-f", &input], &[], "");
        assert_eq!(run.code, Some(2), "{case}: {}", run.all());
        assert_eq!(run.stdout, "", "{case}");
        assert_eq!(run.stderr, expected, "{case}: messages differ from {case}.expected");
        every_line.extend(expected.lines().filter(|l| !l.starts_with("error: ")).map(str::to_string));
        inputs.push(input);
    }
    assert_eq!(snapshot(&db).await, before, "an invalid apply wrote something");

    // All files at once: every problem of every file in one run.
    let mut args = vec!["checks", "apply", "--prune"];
    for input in &inputs {
        args.extend(["-f", input.as_str()]);
    }
    let run = sentryk8s(Some(&db), &fixtures(), &args, &[], "");
    assert_eq!(run.code, Some(2), "{}", run.all());
    let mut got: Vec<String> =
        run.stderr.lines().filter(|l| !l.starts_with("error: ")).map(str::to_string).collect();
    got.sort();
    every_line.sort();
    assert_eq!(got, every_line);
    assert!(run.stderr.ends_with(&format!(
        "error: {} problems in the checks files; nothing was applied\n",
        every_line.len()
    )));
    assert_eq!(snapshot(&db).await, before);

    // Validation happens before any connection: no database needed.
    let run = sentryk8s(
        None,
        &fixtures(),
        &["checks", "apply", "-f", "empty.yaml"],
        &[("SENTRYK8S_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")],
        "",
    );
    assert_eq!(run.code, Some(2), "{}", run.all());
}

/// Acceptance (issue 13): a checks file cannot read the deployment's own
/// secrets. `${SENTRYK8S_DATABASE_URL}` is refused at its `file:line:col`,
/// naming the variable and why, even when the operator allows everything;
/// a name outside the allow list is refused with how to allow it; and
/// nothing is stored.
#[tokio::test]
async fn env_expansion_never_reads_reserved_names_and_only_allowed_ones() {
    let db = TestDb::migrated(8).await;
    let dir = temp_dir();
    file(
        &dir,
        "steal.yaml",
        "checks:
  - name: exfiltrate
    url: http://127.0.0.1:18080/
    headers:
      X: \"${SENTRYK8S_DATABASE_URL}\"
",
    );
    let count = || async {
        db.client().await.query_one("SELECT count(*) FROM checks", &[]).await.unwrap().get::<_, i64>(0)
    };
    for allow in [None, Some("*"), Some("SENTRYK8S_*")] {
        let mut args = vec!["checks", "apply", "-f", "steal.yaml"];
        if let Some(a) = allow {
            args.extend(["--allow-env", a]);
        }
        let run = sentryk8s_as_given(Some(&db), &dir, &args, &[], "");
        assert_eq!(run.code, Some(2), "{allow:?}: {}", run.all());
        assert_eq!(
            run.stderr,
            "steal.yaml:5:11: checks[0].headers.X: environment variable `SENTRYK8S_DATABASE_URL` cannot be read: it is reserved for SentryK8s's own configuration (SENTRYK8S_*: the database and broker URLs, passwords included)\nerror: 1 problem in the checks files; nothing was applied\n",
            "{allow:?}"
        );
        assert!(!run.all().contains(&db.url), "the URL itself is never printed");
        assert_eq!(count().await, 0, "{allow:?}: nothing is stored");
    }
    // Allowing the reserved name by its exact name is an error of its own.
    let run = sentryk8s_as_given(
        Some(&db),
        &dir,
        &["checks", "apply", "--allow-env", "SENTRYK8S_DATABASE_URL", "-f", "steal.yaml"],
        &[],
        "",
    );
    assert_eq!(run.code, Some(2), "{}", run.all());
    assert!(run.stderr.contains("`SENTRYK8S_DATABASE_URL`: it can never be allowed"), "{}", run.stderr);

    // Other names: none by default, the allowed ones with --allow-env or
    // checks.allow_env.
    file(
        &dir,
        "token.yaml",
        "checks:
  - name: api
    url: http://127.0.0.1:18080/
    headers:
      Authorization: \"Bearer ${CHECK_TOKEN}\"
",
    );
    let env = [("CHECK_TOKEN", "tok-123")];
    let run = sentryk8s_as_given(Some(&db), &dir, &["checks", "apply", "-f", "token.yaml"], &env, "");
    assert_eq!(run.code, Some(2), "{}", run.all());
    assert!(
        run.stderr.starts_with("token.yaml:5:30: checks[0].headers.Authorization: environment variable `CHECK_TOKEN` is not in the allow list (the allow list is empty, so no variable may be read); the operator allows it with `--allow-env CHECK_TOKEN`"),
        "{}",
        run.stderr
    );
    assert_eq!(count().await, 0);
    let run = sentryk8s_as_given(
        Some(&db),
        &dir,
        &["checks", "apply", "--allow-env", "CHECK_*", "-f", "token.yaml"],
        &env,
        "",
    );
    assert_eq!(run.code, Some(0), "{}", run.all());
    let config = dir.join("config.toml");
    std::fs::write(&config, "[checks]\nallow_env = [\"CHECK_TOKEN\"]\n").unwrap();
    let run = sentryk8s_as_given(
        Some(&db),
        &dir,
        &["--config", config.to_str().unwrap(), "checks", "apply", "--dry-run", "-f", "token.yaml"],
        &env,
        "",
    );
    assert_eq!(run.code, Some(0), "{}", run.all());
    let spec: String =
        db.client().await.query_one("SELECT spec::text FROM checks", &[]).await.unwrap().get(0);
    assert!(spec.contains("Bearer tok-123"), "{spec}");
}

fn file(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const THREE: &str = "defaults:
  interval: 30s
checks:
  - name: alpha
    url: http://127.0.0.1:18080/
    headers:
      Authorization: \"Bearer ${APPLY_TEST_TOKEN}\"
  - name: beta
    url: http://127.0.0.1:18080/health
    interval: 10s
    timeout: 5s
    expect:
      status: [200]
  - name: gamma
    url: http://127.0.0.1:18080/slow
";

#[tokio::test]
async fn apply_is_idempotent_updates_only_what_changed_prunes_and_dry_runs() {
    let db = TestDb::migrated(8).await;
    let dir = temp_dir();
    let token = [("APPLY_TEST_TOKEN", "first-token")];
    file(&dir, "checks.yaml", THREE);
    let apply = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["checks", "apply"];
        all.extend_from_slice(args);
        sentryk8s(Some(&db), &dir, &all, env, "")
    };

    let run = apply(&["-f", "checks.yaml"], &token);
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert_eq!(
        run.stdout,
        "+ alpha created\n+ beta created\n+ gamma created\n3 checks declared: 3 created, 0 updated, 0 unchanged, 0 deleted.\n"
    );
    let first = snapshot(&db).await;
    assert_eq!(first.iter().map(|r| r.2).collect::<Vec<_>>(), vec![1, 1, 1]);
    let client = db.client().await;
    let (interval, spec): (i32, serde_json::Value) = client
        .query_one("SELECT interval_ms, spec FROM checks WHERE name = 'alpha'", &[])
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(interval, 30_000);
    assert_eq!(spec["headers"]["Authorization"], "Bearer first-token");
    assert_eq!(spec["timeout_ms"], 10_000);

    // Again: nothing changes, nothing is written (not even a no-op UPDATE).
    let run = apply(&["-f", "checks.yaml"], &token);
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert_eq!(
        run.stdout,
        "3 checks declared: 0 created, 0 updated, 3 unchanged, 0 deleted. Nothing to do.\n"
    );
    assert_eq!(snapshot(&db).await, first);

    // One field of one check: only that check moves, and the plan names it.
    file(&dir, "checks.yaml", &THREE.replace("interval: 10s", "interval: 20s"));
    let run = apply(&["-f", "checks.yaml"], &token);
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert_eq!(
        run.stdout,
        "~ beta updated: interval\n3 checks declared: 0 created, 1 updated, 2 unchanged, 0 deleted.\n"
    );
    let second = snapshot(&db).await;
    assert_eq!(second[0], first[0], "alpha moved");
    assert_eq!(second[2], first[2], "gamma moved");
    assert_eq!(second[1].2, 2, "beta's version");
    assert_ne!(second[1].4, first[1].4);

    // A secret changes: the plan names the header, never its value.
    let run = apply(&["-f", "checks.yaml"], &[("APPLY_TEST_TOKEN", "second-token")]);
    assert_eq!(run.stdout, "~ alpha updated: headers.Authorization\n3 checks declared: 0 created, 1 updated, 2 unchanged, 0 deleted.\n");
    assert!(!run.all().contains("token"), "{}", run.all());

    // Dry run of a change and a prune: the plan, and nothing written.
    file(
        &dir,
        "checks.yaml",
        &THREE
            .replace("interval: 10s", "interval: 20s")
            .replace("  - name: gamma\n    url: http://127.0.0.1:18080/slow\n", "")
            .replace("/health", "/healthz"),
    );
    let before = snapshot(&db).await;
    let run = apply(&["--dry-run", "--prune", "-f", "checks.yaml"], &[("APPLY_TEST_TOKEN", "second-token")]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert_eq!(
        run.stdout,
        "~ beta update: url\n- gamma delete\nDry run: 2 checks declared; would be 0 create, 1 update, 1 unchanged, 1 delete. Nothing was written.\n"
    );
    assert_eq!(snapshot(&db).await, before);

    // Without --prune an undeclared check is kept, and the output says so.
    let run = apply(&["-f", "checks.yaml"], &[("APPLY_TEST_TOKEN", "second-token")]);
    assert_eq!(
        run.stdout,
        "~ beta updated: url\n2 checks declared: 0 created, 1 updated, 1 unchanged, 0 deleted.\n\
         1 check in the database is not declared in these files and was kept (--prune deletes them).\n"
    );
    assert_eq!(snapshot(&db).await.len(), 3);

    // With --prune it goes (its state with it).
    let gamma_id = before[2].1;
    client
        .execute("INSERT INTO check_state (check_id, status) VALUES ($1, 'up')", &[&gamma_id])
        .await
        .unwrap();
    let run = apply(&["--prune", "-f", "checks.yaml"], &[("APPLY_TEST_TOKEN", "second-token")]);
    assert_eq!(
        run.stdout,
        "- gamma deleted\n2 checks declared: 0 created, 0 updated, 2 unchanged, 1 deleted.\n"
    );
    let names: Vec<String> = snapshot(&db).await.into_iter().map(|r| r.0).collect();
    assert_eq!(names, vec!["alpha", "beta"]);
    let states: i64 = client.query_one("SELECT count(*) FROM check_state", &[]).await.unwrap().get(0);
    assert_eq!(states, 0);
}

#[tokio::test]
async fn stdin_and_directory_inputs() {
    let db = TestDb::migrated(8).await;
    let dir = temp_dir();
    let run = sentryk8s(Some(&db), &dir, &["checks", "apply", "-f", "-"], &[], BASELINE);
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(run.stdout.contains("2 created"), "{}", run.stdout);

    // Problems in stdin are named <stdin>.
    let run = sentryk8s(
        Some(&db),
        &dir,
        &["checks", "apply", "-f", "-"],
        &[],
        "checks:\n  - name: x\n    url: nope\n",
    );
    assert_eq!(run.code, Some(2));
    assert_eq!(
        run.stderr,
        "<stdin>:3:10: checks[0].url: invalid URL \"nope\": relative URL without a base\n\
         error: 1 problem in the checks files; nothing was applied\n"
    );

    // A directory: its *.yaml and *.yml, sorted; other files are ignored.
    let conf = dir.join("conf.d");
    std::fs::create_dir_all(&conf).unwrap();
    file(&conf, "20-web.yml", "checks:\n  - name: web\n    url: http://127.0.0.1:18080/\n");
    file(&conf, "10-api.yaml", "checks:\n  - name: api\n    url: http://127.0.0.1:18080/api\n");
    file(&conf, "README.md", "not yaml: [\n");
    file(&conf, ".editor-backup.yaml", "not yaml: [\n");
    let run = sentryk8s(
        Some(&db),
        &dir,
        &["checks", "apply", "--prune", "-f", "conf.d", "-f", "-"],
        &[],
        "checks: []\n",
    );
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert_eq!(
        run.stdout,
        "+ api created\n+ web created\n- home deleted\n- keep-me deleted\n2 checks declared: 2 created, 0 updated, 0 unchanged, 2 deleted.\n"
    );

    // An empty directory is an error, not "declare nothing".
    std::fs::create_dir_all(dir.join("empty.d")).unwrap();
    let run = sentryk8s(Some(&db), &dir, &["checks", "apply", "--prune", "-f", "empty.d"], &[], "");
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.starts_with("empty.d: the directory has no *.yaml or *.yml file\n"), "{}", run.stderr);
    assert_eq!(snapshot(&db).await.len(), 2);
}

#[tokio::test]
async fn an_unmigrated_database_says_run_migrate_first() {
    let db = TestDb::empty().await;
    let dir = temp_dir();
    file(&dir, "c.yaml", BASELINE);
    for args in [
        vec!["checks", "apply", "-f", "c.yaml"],
        vec!["checks", "list"],
        vec!["status"],
        vec!["status", "-o", "json"],
    ] {
        let run = sentryk8s(Some(&db), &dir, &args, &[], "");
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.all());
        assert!(
            run.stderr.contains("the database is not migrated: run `sentryk8s migrate` first"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

#[tokio::test]
async fn concurrent_applies_take_turns() {
    let db = TestDb::migrated(8).await;
    let dir = temp_dir();
    let mut text = String::from("checks:\n");
    for i in 0..2000 {
        text.push_str(&format!("  - name: c-{i}\n    url: http://127.0.0.1:18080/{i}\n"));
    }
    file(&dir, "many.yaml", &text);
    let runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| s.spawn(|| sentryk8s(Some(&db), &dir, &["checks", "apply", "-f", "many.yaml"], &[], "")))
            .collect();
        handles.into_iter().map(|h| h.join().expect("apply thread")).collect()
    });
    for run in &runs {
        assert_eq!(run.code, Some(0), "{}", run.all());
    }
    // Exactly one created them; the others found them all unchanged.
    let created = runs.iter().filter(|r| r.stdout.contains("2000 created")).count();
    let unchanged = runs.iter().filter(|r| r.stdout.contains("2000 unchanged")).count();
    assert_eq!((created, unchanged), (1, 2), "{:?}", runs.iter().map(Run::all).collect::<Vec<_>>());
    assert_eq!(snapshot(&db).await.len(), 2000);
}

#[tokio::test]
async fn list_shows_what_is_declared_in_three_formats() {
    let db = TestDb::migrated(8).await;
    let dir = temp_dir();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/checks.yaml");
    let run = sentryk8s(
        Some(&db),
        &dir,
        &["checks", "apply", "--allow-env", "EXAMPLE_*", "-f", example.to_str().unwrap()],
        &[("EXAMPLE_TOKEN", "example-secret-value"), ("EXAMPLE_PING_KEY", "example-ping-key")],
        "",
    );
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(run.stdout.contains("18 created"), "{}", run.stdout);

    let table = sentryk8s(Some(&db), &dir, &["checks", "list"], &[], "");
    assert_eq!(table.code, Some(0), "{}", table.all());
    assert!(table.stdout.starts_with("NAME "), "{}", table.stdout);
    assert!(table.stdout.contains("health "), "{}", table.stdout);
    assert!(table.stdout.ends_with("18 checks declared\n"));

    let json = sentryk8s(Some(&db), &dir, &["checks", "list", "-o", "json"], &[], "");
    let listed: serde_json::Value = serde_json::from_str(&json.stdout).expect("list -o json is JSON");
    let listed = listed.as_array().expect("an array");
    assert_eq!(listed.len(), 18);
    let health = listed.iter().find(|c| c["name"] == "health").expect("health listed");
    assert_eq!(health["enabled"], true);
    assert_eq!(health["interval_ms"], 5000);
    assert_eq!(health["version"], 1);
    assert_eq!(health["spec"]["headers"]["Authorization"], "***");
    assert_eq!(health["spec"]["expect"]["json"]["/status"], "UP");
    assert_eq!(health["spec"]["description"], "Health endpoint reports UP in version 1");
    for key in ["created_at", "updated_at"] {
        assert!(health[key].as_str().is_some_and(|t| t.ends_with('Z')), "{key}: {health}");
    }

    // The YAML is a checks file: applying it changes nothing but the
    // masked secrets.
    let yaml = sentryk8s(Some(&db), &dir, &["checks", "list", "-o", "yaml"], &[], "");
    assert_eq!(yaml.code, Some(0), "{}", yaml.all());
    assert!(!yaml.stdout.contains("example-secret-value"));
    // A heartbeat key is refused as `***`: put it back, as the header says.
    assert!(yaml.stdout.contains("key: \"***\""), "{}", yaml.stdout);
    let restored = yaml.stdout.replace("key: \"***\"", "key: \"${EXAMPLE_PING_KEY}\"");
    file(&dir, "export.yaml", &restored);
    let again = sentryk8s(
        Some(&db),
        &dir,
        &["checks", "apply", "--dry-run", "-f", "export.yaml"],
        &[("EXAMPLE_PING_KEY", "example-ping-key")],
        "",
    );
    assert_eq!(again.code, Some(0), "{}", again.all());
    assert!(again.stdout.contains("0 create, "), "{}", again.stdout);
    for line in again.stdout.lines().filter(|l| l.starts_with('~')) {
        let fields = line.split_once(": ").map(|(_, f)| f).unwrap_or("");
        assert!(
            fields.split(", ").all(|f| f.starts_with("headers.") || f == "body"),
            "only masked fields may differ: {line}\n{}",
            yaml.stdout
        );
    }
}
