//! The heartbeat ping API through the real binaries: `checks apply` of
//! heartbeat checks (a generated key kept across applies, a declared
//! `${VAR}` key), `checks list --show-ping-urls`, `sentryk8s web` recording
//! success, start, fail and exit-code pings with run ids and bodies, a
//! wrong key answered 404 with nothing recorded, the key out of the logs
//! and out of read-scope answers.

use std::net::SocketAddr;

use serde_json::Value;

use crate::checks_cli::{sentryk8s, temp_dir, Run};
use crate::support::TestDb;
use crate::web_auth::{request, Answer};
use crate::web_bed::{Tokens, Web};

const FILE: &str = "checks:
  - name: backup
    heartbeat: { period: 1h, grace: 10m, max_run: 30m }
  - name: declared
    heartbeat: { cron: \"0 3 * * *\", time_zone: Europe/Paris, key: \"${PING_KEY}\" }
  - name: site
    url: http://127.0.0.1:9/
";

const DECLARED_KEY: &str = "declared-Key_0123";

fn apply(db: &TestDb, dir: &std::path::Path) -> Run {
    let run =
        sentryk8s(Some(db), dir, &["checks", "apply", "-f", "c.yaml"], &[("PING_KEY", DECLARED_KEY)], "");
    assert_eq!(run.code, Some(0), "{}", run.all());
    run
}

/// `checks list --show-ping-urls -o json`, by name.
fn ping_urls(db: &TestDb, dir: &std::path::Path, base: &str) -> Vec<(String, Option<String>)> {
    let run = sentryk8s(
        Some(db),
        dir,
        &["checks", "list", "-o", "json", "--show-ping-urls"],
        &[("SENTRYK8S_WEB__PUBLIC_URL", base)],
        "",
    );
    assert_eq!(run.code, Some(0), "{}", run.all());
    let listed: Vec<Value> = serde_json::from_str(&run.stdout).expect("json");
    listed
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["ping_url"].as_str().map(str::to_string)))
        .collect()
}

async fn ping(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Answer {
    request(addr, method, path, &[], body).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// (kind, exit_code, rid, body length, has a source address) of every ping, oldest first.
async fn pings(db: &TestDb, check: &str) -> Vec<(String, Option<i32>, Option<String>, Option<i32>, bool)> {
    db.client()
        .await
        .query(
            "SELECT p.kind, p.exit_code, p.rid, length(p.body), p.source_ip IS NOT NULL
               FROM heartbeat_pings p JOIN checks c ON c.id = p.check_id
              WHERE c.name = $1 ORDER BY p.id",
            &[&check],
        )
        .await
        .expect("pings")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

async fn all_pings(db: &TestDb) -> i64 {
    db.client().await.query_one("SELECT count(*) FROM heartbeat_pings", &[]).await.expect("count").get(0)
}

#[tokio::test]
async fn pings_are_recorded_and_a_wrong_key_records_nothing() {
    let db = TestDb::migrated(4).await;
    let dir = temp_dir();
    std::fs::write(dir.join("c.yaml"), FILE).expect("write file");
    apply(&db, &dir);

    let urls = ping_urls(&db, &dir, "https://uptime.example/");
    let url_of = |name: &str| urls.iter().find(|(n, _)| n == name).and_then(|(_, u)| u.clone());
    assert_eq!(url_of("site"), None, "an HTTP check has no ping URL");
    assert_eq!(url_of("declared").as_deref(), Some(&*format!("https://uptime.example/ping/{DECLARED_KEY}")));
    let backup_url = url_of("backup").expect("a generated key");
    let key =
        backup_url.strip_prefix("https://uptime.example/ping/").expect("under the public URL").to_string();
    assert_eq!(key.len(), 64, "256 bits, hex: {key}");

    // Kept across applies, also when the file changes the check.
    apply(&db, &dir);
    std::fs::write(dir.join("c.yaml"), FILE.replace("grace: 10m", "grace: 20m")).expect("write file");
    apply(&db, &dir);
    assert_eq!(url_of_again(&db, &dir, "backup"), Some(backup_url.clone()));
    // Without the flag, no key anywhere in the listing.
    let plain = sentryk8s(Some(&db), &dir, &["checks", "list", "-o", "json"], &[], "");
    assert!(!plain.stdout.contains(&key) && !plain.stdout.contains(DECLARED_KEY), "{}", plain.stdout);
    assert!(!plain.stdout.contains("ping_url"), "{}", plain.stdout);

    let ops: SocketAddr = format!("127.0.0.1:{}", crate::support::free_port()).parse().expect("address");
    let ops_text = ops.to_string();
    let web = Web::start(&db, &[("RUST_LOG", "sentryk8s=debug,info"), ("SENTRYK8S_LISTEN", &ops_text)]).await;
    let ok = ping(web.addr, "GET", &format!("/ping/{key}"), b"").await;
    assert_eq!((ok.status, ok.text()), (200, "OK\n".to_string()));
    assert_eq!(ping(web.addr, "POST", &format!("/ping/{key}/start?rid=run-1"), b"").await.status, 200);
    let log = "line 1\nline 2\n".repeat(10);
    assert_eq!(ping(web.addr, "POST", &format!("/ping/{key}/0?rid=run-1"), log.as_bytes()).await.status, 200);
    assert_eq!(ping(web.addr, "POST", &format!("/ping/{key}/fail"), b"boom").await.status, 200);
    assert_eq!(ping(web.addr, "GET", &format!("/ping/{key}/3"), b"").await.status, 200);
    // A body over 100 KB is kept cut to 100 KB.
    let big = vec![b'x'; 150 * 1024];
    assert_eq!(ping(web.addr, "POST", &format!("/ping/{key}"), &big).await.status, 200);
    assert_eq!(ping(web.addr, "GET", &format!("/ping/{DECLARED_KEY}"), b"").await.status, 200);

    assert_eq!(
        pings(&db, "backup").await,
        vec![
            ("success".into(), None, None, None, true),
            ("start".into(), None, Some("run-1".into()), None, true),
            ("exit".into(), Some(0), Some("run-1".into()), Some(log.len() as i32), true),
            ("fail".into(), None, None, Some(4), true),
            ("exit".into(), Some(3), None, None, true),
            ("success".into(), None, None, Some(100 * 1024), true),
        ]
    );
    assert_eq!(pings(&db, "declared").await.len(), 1);

    // Wrong keys, bad actions and bad run ids record nothing.
    let before = all_pings(&db).await;
    let wrong = ping(web.addr, "GET", "/ping/not-a-key-of-any-check", b"").await;
    assert_eq!(wrong.status, 404, "{}", wrong.text());
    assert_eq!(ping(web.addr, "POST", &format!("/ping/{}/start", &key[..63]), b"").await.status, 404);
    assert_eq!(ping(web.addr, "GET", &format!("/ping/{}", "k".repeat(300)), b"").await.status, 404);
    let bad = ping(web.addr, "GET", &format!("/ping/{key}/256"), b"").await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("unknown ping"), "{}", bad.text());
    assert_eq!(ping(web.addr, "GET", &format!("/ping/{key}/log"), b"").await.status, 400);
    assert_eq!(ping(web.addr, "GET", &format!("/ping/{key}?rid=a%20b"), b"").await.status, 400);
    assert_eq!(all_pings(&db).await, before, "nothing recorded");
    let (status, metrics) = crate::support::http::get(ops, "/metrics").await.expect("metrics");
    assert_eq!(status, 200);
    for (outcome, n) in [("recorded", 7), ("unknown_key", 3), ("invalid", 3)] {
        let line = format!("sentryk8s_heartbeat_pings_total{{outcome=\"{outcome}\"}} {n}");
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }

    // The key is a secret: only write scopes see it through the API.
    let tokens = Tokens::new(&db).await;
    let read = web.get("/api/v1/checks/backup", Some(&tokens.read)).await;
    assert_eq!(read.status, 200, "{}", read.text());
    assert!(read.json().get("ping_url").is_none() && !read.text().contains(&key), "{}", read.text());
    let write = web.get("/api/v1/checks/backup", Some(&tokens.write)).await;
    assert_eq!(write.json()["ping_url"].as_str().unwrap_or(""), format!("http://{}/ping/{key}", web.addr));
    let declared = web.get("/api/v1/checks/declared", Some(&tokens.read)).await;
    assert!(!declared.text().contains(DECLARED_KEY), "masked in the spec: {}", declared.text());

    // And never in the log, though every request is logged at debug.
    let out = web.bin.output();
    assert!(out.contains("/ping/***"), "requests are logged, masked:\n{out}");
    assert!(!out.contains(&key) && !out.contains(DECLARED_KEY), "a key in the log:\n{out}");
}

fn url_of_again(db: &TestDb, dir: &std::path::Path, name: &str) -> Option<String> {
    ping_urls(db, dir, "https://uptime.example/").into_iter().find(|(n, _)| n == name).and_then(|(_, u)| u)
}

#[tokio::test]
async fn a_check_that_stops_being_a_heartbeat_loses_its_key() {
    let db = TestDb::migrated(4).await;
    let dir = temp_dir();
    std::fs::write(dir.join("c.yaml"), "checks:\n  - name: job\n    heartbeat: { period: 1h }\n")
        .expect("write");
    apply(&db, &dir);
    let key = url_of_again(&db, &dir, "job").expect("key");
    let web = Web::start(&db, &[]).await;
    let path = format!("/ping/{}", key.rsplit('/').next().unwrap_or_default());
    assert_eq!(ping(web.addr, "GET", &path, b"").await.status, 200);
    std::fs::write(dir.join("c.yaml"), "checks:\n  - name: job\n    url: http://127.0.0.1:9/\n")
        .expect("write");
    apply(&db, &dir);
    assert_eq!(ping(web.addr, "GET", &path, b"").await.status, 404);
    assert_eq!(pings(&db, "job").await.len(), 1);
}

#[tokio::test]
async fn keys_are_made_by_the_trigger_on_checks() {
    let db = TestDb::migrated(4).await;
    let client = db.client().await;
    let key = |id: i64| {
        let client = &client;
        async move {
            client
                .query_opt("SELECT key, declared FROM heartbeat_keys WHERE check_id = $1", &[&id])
                .await
                .expect("key")
                .map(|r| (r.get::<_, String>(0), r.get::<_, bool>(1)))
        }
    };
    let set = |id: i64, spec: Value| {
        let client = &client;
        async move {
            client.execute("UPDATE checks SET spec = $2 WHERE id = $1", &[&id, &spec]).await.expect("update");
        }
    };
    let hb = |extra: Value| {
        let mut h = serde_json::json!({"period_ms": 3_600_000});
        if let (Some(h), Some(e)) = (h.as_object_mut(), extra.as_object()) {
            h.extend(e.clone());
        }
        serde_json::json!({"kind": "heartbeat", "timeout_ms": 1000, "heartbeat": h})
    };
    let id: i64 = client
        .query_one(
            "INSERT INTO checks (name, interval_ms, spec) VALUES ('job', 60000, $1) RETURNING id",
            &[&hb(serde_json::json!({}))],
        )
        .await
        .expect("insert")
        .get(0);
    let (generated, declared) = key(id).await.expect("a generated key");
    assert!(!declared && generated.len() == 64 && generated.chars().all(|c| c.is_ascii_hexdigit()));
    // Kept when the spec changes.
    set(id, hb(serde_json::json!({"grace_ms": 60_000}))).await;
    assert_eq!(key(id).await, Some((generated.clone(), false)));
    // A declared key replaces it; a changed one replaces that.
    set(id, hb(serde_json::json!({"key": "declared-1"}))).await;
    assert_eq!(key(id).await, Some(("declared-1".to_string(), true)));
    set(id, hb(serde_json::json!({"key": "declared-2"}))).await;
    assert_eq!(key(id).await, Some(("declared-2".to_string(), true)));
    // Removed from the file: a new generated key (the old one may have leaked).
    set(id, hb(serde_json::json!({}))).await;
    let (again, declared) = key(id).await.expect("generated again");
    assert!(!declared && again != generated && again.len() == 64);
    // Not a heartbeat any more: no key.
    set(id, serde_json::json!({"url": "http://127.0.0.1:9/", "timeout_ms": 1000})).await;
    assert_eq!(key(id).await, None);
    // Two checks cannot share a declared key.
    let clash = client
        .execute(
            "INSERT INTO checks (name, interval_ms, spec) VALUES ('a', 60000, $1), ('b', 60000, $1)",
            &[&hb(serde_json::json!({"key": "same-key-1"}))],
        )
        .await;
    assert!(clash.is_err(), "the same key twice must be refused");
}

#[test]
fn bad_heartbeats_are_refused_with_their_place() {
    let dir = temp_dir();
    let file = "checks:
  - name: a
    heartbeat: { cron: \"61 * * * *\" }
  - name: b
    heartbeat: { cron: \"0 0 30 2 *\" }
  - name: c
    heartbeat: { period: 1h, key: shared-key-1 }
  - name: d
    heartbeat: { period: 1h, key: shared-key-1 }
";
    std::fs::write(dir.join("c.yaml"), file).expect("write");
    let run = sentryk8s(None, &dir, &["checks", "apply", "-f", "c.yaml"], &[], "");
    assert_eq!(run.code, Some(2), "{}", run.all());
    for expected in [
        "c.yaml:3:24: checks[0].heartbeat.cron: invalid cron pattern \"61 * * * *\"",
        "c.yaml:5:24: checks[1].heartbeat.cron: the cron pattern \"0 0 30 2 *\" never fires",
        "c.yaml:8:11: checks[3].heartbeat.key: the same ping key as check \"c\" (c.yaml:6:11)",
    ] {
        assert!(run.stderr.contains(expected), "{expected}\n{}", run.stderr);
    }
    assert!(!run.stderr.contains("shared-key-1"), "the key is a secret: {}", run.stderr);
}

#[tokio::test]
async fn pings_are_kept_as_long_as_results() {
    use sentryk8s::scheduler::housekeeping::{self, Retention};
    let db = TestDb::migrated(4).await;
    let client = db.client().await;
    client
        .batch_execute(
            "UPDATE partition_leases SET owner = 'keeper', epoch = 1, expires_at = now() + interval '1 hour'
              WHERE partition = 0;
             INSERT INTO checks (id, name, interval_ms, spec)
             VALUES (1, 'job', 60000, '{\"kind\": \"heartbeat\", \"timeout_ms\": 1000, \"heartbeat\": {\"period_ms\": 3600000}}');
             INSERT INTO heartbeat_pings (check_id, received_at, kind)
             SELECT 1, now() - d * interval '1 day' + interval '1 hour', 'success' FROM generate_series(0, 40) d;",
        )
        .await
        .expect("seed pings");
    let retention = Retention {
        results_days: 30,
        notifications_days: 90,
        hourly_days: 90,
        daily_days: 0,
        incidents_days: 0,
    };
    let done = housekeeping::run(&client, "keeper", 1, retention).await.expect("housekeeping");
    assert_eq!(done.pings, 10, "days 31..=40 are older than 30 days");
    let oldest: f64 = client
        .query_one(
            "SELECT (extract(epoch FROM now() - min(received_at)) / 86400)::float8 FROM heartbeat_pings",
            &[],
        )
        .await
        .expect("oldest")
        .get(0);
    assert!(oldest <= 30.0, "{oldest}");
}
