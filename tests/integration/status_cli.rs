//! `sentryk8s status` through the real binary: the JSON reflects
//! `check_state` rows the test writes, the table's summary line, --watch
//! until SIGTERM, and secrets kept out of every output of every command.

use std::time::Duration;

use crate::checks_cli::{sentryk8s, temp_dir};
use crate::support::{Binary, TestDb};

const CHECKS: &str = "checks:
  - name: api
    url: http://127.0.0.1:18080/health
  - name: shop
    url: http://127.0.0.1:18080/
    labels: { team: web }
  - name: fresh
    url: http://127.0.0.1:18080/new
  - name: paused
    url: http://127.0.0.1:18080/
    enabled: false
";

async fn id(db: &TestDb, name: &str) -> i64 {
    db.client().await.query_one("SELECT id FROM checks WHERE name = $1", &[&name]).await.unwrap().get(0)
}

#[tokio::test]
async fn status_json_reflects_check_state() {
    let db = TestDb::migrated(8).await;
    let dir = temp_dir();
    std::fs::write(dir.join("c.yaml"), CHECKS).unwrap();
    let run = sentryk8s(Some(&db), &dir, &["checks", "apply", "-f", "c.yaml"], &[], "");
    assert_eq!(run.code, Some(0), "{}", run.all());

    let client = db.client().await;
    client
        .execute(
            "INSERT INTO check_state (check_id, status, since, last_slot, last_checked_at, last_success,
                                      last_duration_ms, last_status_code, last_error, consecutive_failures)
             VALUES ($1, 'up', '2024-05-01T12:00:00Z', '2024-05-01T12:04:00Z', '2024-05-01T12:04:00.250Z',
                     true, 12.5, 200, NULL, 0),
                    ($2, 'down', '2024-05-01T11:00:00.5Z', '2024-05-01T12:04:00Z', '2024-05-01T12:04:01Z',
                     false, 1003.25, NULL, 'connect: connection refused', 3)",
            &[&id(&db, "api").await, &id(&db, "shop").await],
        )
        .await
        .unwrap();
    let fresh_created: String = client
        .query_one(
            "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM checks WHERE name = 'fresh'",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    let run = sentryk8s(Some(&db), &dir, &["status", "-o", "json"], &[], "");
    assert_eq!(run.code, Some(0), "{}", run.all());
    let got: serde_json::Value = serde_json::from_str(&run.stdout).expect("status -o json is JSON");
    let expected = serde_json::json!([
        {
            "name": "api", "state": "up", "enabled": true, "since": "2024-05-01T12:00:00.000Z",
            "last_checked_at": "2024-05-01T12:04:00.250Z", "last_duration_ms": 12.5,
            "last_status_code": 200, "last_error": null, "consecutive_failures": 0, "labels": {}, "failed_notifications": []
        },
        {
            "name": "fresh", "state": "unknown", "enabled": true, "since": fresh_created,
            "last_checked_at": null, "last_duration_ms": null, "last_status_code": null,
            "last_error": null, "consecutive_failures": 0, "labels": {}, "failed_notifications": []
        },
        {
            "name": "paused", "state": "unknown", "enabled": false, "since": got[2]["since"],
            "last_checked_at": null, "last_duration_ms": null, "last_status_code": null,
            "last_error": null, "consecutive_failures": 0, "labels": {}, "failed_notifications": []
        },
        {
            "name": "shop", "state": "down", "enabled": true, "since": "2024-05-01T11:00:00.500Z",
            "last_checked_at": "2024-05-01T12:04:01.000Z", "last_duration_ms": 1003.25,
            "last_status_code": null, "last_error": "connect: connection refused",
            "consecutive_failures": 3, "labels": {"team": "web"}, "failed_notifications": []
        }
    ]);
    assert_eq!(got, expected);

    let run = sentryk8s(Some(&db), &dir, &["status"], &[], "");
    assert_eq!(run.code, Some(0), "{}", run.all());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("LAST ERROR"), "{}", run.stdout);
    assert!(lines[1].starts_with("api ") && lines[1].contains(" up "), "{}", run.stdout);
    assert!(
        lines[4].starts_with("shop ") && lines[4].ends_with("connect: connection refused"),
        "{}",
        run.stdout
    );
    assert_eq!(lines.last(), Some(&"1 up, 1 down, 1 unknown, 1 paused"));

    // A state change written later shows on the next call.
    client.execute("UPDATE check_state SET status = 'up', last_error = NULL", &[]).await.unwrap();
    let run = sentryk8s(Some(&db), &dir, &["status"], &[], "");
    assert!(run.stdout.ends_with("2 up, 0 down, 1 unknown, 1 paused\n"), "{}", run.stdout);
}

#[tokio::test]
async fn status_watch_refreshes_until_sigterm() {
    let db = TestDb::migrated(8).await;
    let dir = temp_dir();
    std::fs::write(dir.join("c.yaml"), CHECKS).unwrap();
    assert_eq!(sentryk8s(Some(&db), &dir, &["checks", "apply", "-f", "c.yaml"], &[], "").code, Some(0));
    let env = vec![("SENTRYK8S_DATABASE_URL".to_string(), db.url.clone())];
    let mut watch = Binary::spawn(&["status", "--watch", "-o", "json"], &env);
    assert!(watch.wait_for_output("\"name\":\"api\"", Duration::from_secs(10)).await, "{}", watch.output());
    // A state written now appears in a later frame (JSON Lines, one per refresh).
    let client = db.client().await;
    client
        .execute("INSERT INTO check_state (check_id, status) VALUES ($1, 'down')", &[&id(&db, "api").await])
        .await
        .unwrap();
    assert!(watch.wait_for_output("\"state\":\"down\"", Duration::from_secs(10)).await, "{}", watch.output());
    watch.terminate();
    let status = watch.wait_exit(Duration::from_secs(10)).await.expect("status --watch exits on SIGTERM");
    assert!(status.success(), "{}", watch.output());
    let frames = watch.output().lines().filter(|l| l.starts_with('[')).count();
    assert!(frames >= 2, "{}", watch.output());
}

#[tokio::test]
async fn secrets_never_appear_in_any_output() {
    let db = TestDb::migrated(8).await;
    let dir = temp_dir();
    let secrets = ["hdr-S3CRET-1", "url-pw-S3CRET-2", "qs-S3CRET-3", "body-S3CRET-4", "rotated-S3CRET-5"];
    let file = "checks:
  - name: private-api
    url: \"http://robot:${URL_PASSWORD}@127.0.0.1:18080/v1?page=1&token=qs-S3CRET-3\"
    method: POST
    headers:
      Authorization: \"Bearer ${API_TOKEN}\"
      X-Api-Key: \"${API_TOKEN}\"
    body: '{\"password\": \"body-S3CRET-4\"}'
";
    std::fs::write(dir.join("c.yaml"), file).unwrap();
    let env = [("API_TOKEN", secrets[0]), ("URL_PASSWORD", secrets[1])];
    let mut outputs = Vec::new();
    let mut run = |args: &[&str], env: &[(&str, &str)]| {
        let r = sentryk8s(Some(&db), &dir, args, env, "");
        outputs.push(format!("$ {args:?}\n{}", r.all()));
        r
    };
    assert_eq!(run(&["checks", "apply", "-f", "c.yaml"], &env).code, Some(0));
    assert_eq!(
        run(
            &["checks", "apply", "--dry-run", "-f", "c.yaml"],
            &[("API_TOKEN", secrets[4]), ("URL_PASSWORD", secrets[1])]
        )
        .code,
        Some(0)
    );
    let rotated =
        run(&["checks", "apply", "-f", "c.yaml"], &[("API_TOKEN", secrets[4]), ("URL_PASSWORD", secrets[1])]);
    assert!(
        rotated.stdout.contains("~ private-api updated: headers.Authorization, headers.X-Api-Key"),
        "{}",
        rotated.stdout
    );
    // The secrets really are stored (the worker needs them)...
    let client = db.client().await;
    let spec: String = client.query_one("SELECT spec::text FROM checks", &[]).await.unwrap().get(0);
    assert!(spec.contains(secrets[4]) && spec.contains(secrets[1]), "{spec}");
    // ...and a target that echoed one into an error message cannot leak it.
    client
        .execute(
            "INSERT INTO check_state (check_id, status, last_error) SELECT id, 'down',
                    'HTTP 401 for http://robot:url-pw-S3CRET-2@127.0.0.1:18080/v1: bad key rotated-S3CRET-5' FROM checks",
            &[],
        )
        .await
        .unwrap();
    for args in [
        &["checks", "list"][..],
        &["checks", "list", "-o", "json"],
        &["checks", "list", "-o", "yaml"],
        &["status"],
        &["status", "-o", "json"],
    ] {
        assert_eq!(run(args, &[]).code, Some(0));
    }
    // A broken file that carries a password in its URL.
    std::fs::write(
        dir.join("bad.yaml"),
        "checks:\n  - name: x\n    url: \"http://robot:url-pw-S3CRET-2@bad host/\"\n",
    )
    .unwrap();
    assert_eq!(run(&["checks", "apply", "-f", "bad.yaml"], &[]).code, Some(2));
    let everything = outputs.join("\n");
    for secret in secrets {
        assert!(!everything.contains(secret), "{secret} leaked:\n{everything}");
    }
    assert!(everything.contains("***"), "{everything}");
}
