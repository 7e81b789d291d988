//! `sentryk8s migrate`: schema creation, idempotence, concurrency, edits, --wait.

use std::time::{Duration, Instant};

use crate::support::{Binary, TestDb};

fn env(db: &TestDb) -> Vec<(String, String)> {
    vec![("SENTRYK8S_DATABASE_URL".into(), db.url.clone())]
}

const TABLES: &[&str] = &[
    "checks",
    "check_state",
    "check_results",
    "notifications",
    "partition_leases",
    "scheduler_members",
    "cluster",
    "missed_slots",
];

#[tokio::test]
async fn creates_the_schema_then_is_a_no_op() {
    let db = TestDb::empty().await;
    let (status, out) = Binary::run(&["migrate", "--partitions", "16"], &env(&db));
    assert!(status.success(), "{out}");
    assert!(out.contains("applied 0001_init.sql"), "{out}");
    assert!(out.contains("cluster initialised with 16 partitions"), "{out}");

    let client = db.client().await;
    for table in TABLES {
        let exists: bool =
            client.query_one("SELECT to_regclass($1) IS NOT NULL", &[table]).await.unwrap().get(0);
        assert!(exists, "table {table} missing");
    }
    let leases: i64 = client.query_one("SELECT count(*) FROM partition_leases", &[]).await.unwrap().get(0);
    assert_eq!(leases, 16);
    // Today's result partition exists, so a worker can insert at once.
    let today: bool = client
        .query_one(
            "SELECT to_regclass('check_results_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')) IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(today);

    let before: Vec<(String, String)> = client
        .query("SELECT name, applied_at::text FROM schema_migrations", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let (status, out) = Binary::run(&["migrate", "--partitions", "64"], &env(&db));
    assert!(status.success(), "{out}");
    assert!(out.contains("up to date"), "{out}");
    assert!(!out.contains("applied 0001"), "{out}");
    let after: Vec<(String, String)> = client
        .query("SELECT name, applied_at::text FROM schema_migrations", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(before, after);
    // Partitions are fixed at first install.
    let p: i32 = client.query_one("SELECT partitions FROM cluster", &[]).await.unwrap().get(0);
    assert_eq!(p, 16);
}

#[tokio::test]
async fn concurrent_migrations_apply_once() {
    let db = TestDb::empty().await;
    let mut children: Vec<Binary> = (0..3).map(|_| Binary::spawn(&["migrate"], &env(&db))).collect();
    for child in &mut children {
        let status = child.wait_timeout(Duration::from_secs(60)).expect("migrate finished");
        assert!(status.success(), "{}", child.output());
    }
    let applied_by: usize = children.iter().filter(|c| c.output().contains("applied 0001_init.sql")).count();
    assert_eq!(applied_by, 1, "exactly one process applies the migration");
    let client = db.client().await;
    let rows: i64 = client.query_one("SELECT count(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(rows as usize, sentryk8s::migrate::MIGRATIONS.len());
    let clusters: i64 = client.query_one("SELECT count(*) FROM cluster", &[]).await.unwrap().get(0);
    assert_eq!(clusters, 1);
}

#[tokio::test]
async fn an_edited_migration_is_refused_by_name() {
    let db = TestDb::migrated(8).await;
    // The file is embedded in the binary, so "edited" is simulated from the
    // other side: the recorded checksum no longer matches the file.
    db.client()
        .await
        .execute("UPDATE schema_migrations SET checksum = 'deadbeef' WHERE name = '0001_init.sql'", &[])
        .await
        .unwrap();
    let (status, out) = Binary::run(&["migrate"], &env(&db));
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("0001_init.sql") && out.contains("edited"), "{out}");
}

#[tokio::test]
async fn a_migration_from_a_newer_binary_is_refused() {
    let db = TestDb::migrated(8).await;
    db.client()
        .await
        .execute("INSERT INTO schema_migrations (name, checksum) VALUES ('9999_future.sql', 'x')", &[])
        .await
        .unwrap();
    let (status, out) = Binary::run(&["migrate"], &env(&db));
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("9999_future.sql"), "{out}");
}

#[tokio::test]
async fn wait_gives_up_after_the_deadline_naming_the_host() {
    let port = crate::support::free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/nothing");
    let started = Instant::now();
    let (status, out) = Binary::run(&["migrate", "--wait", "3s"], &[("SENTRYK8S_DATABASE_URL".into(), url)]);
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains(&format!("127.0.0.1:{port}")), "{out}");
    assert!(
        elapsed >= Duration::from_millis(2900) && elapsed < Duration::from_secs(8),
        "gave up after {elapsed:?}"
    );
}

#[tokio::test]
async fn wait_succeeds_once_postgres_answers() {
    // PostgreSQL comes up (here: a proxy starts forwarding) while migrate waits.
    let db = TestDb::empty().await;
    let upstream: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let proxy = crate::support::TcpProxy::start(upstream).await;
    proxy.block();
    let url = {
        let mut u = url::Url::parse(&db.url).unwrap();
        u.set_port(Some(proxy.addr.port())).unwrap();
        u.to_string()
    };
    let mut child = Binary::spawn(&["migrate", "--wait", "30s"], &[("SENTRYK8S_DATABASE_URL".into(), url)]);
    assert!(child.wait_for_output("not reachable yet", Duration::from_secs(10)).await, "{}", child.output());
    proxy.unblock();
    let status = child.wait_exit(Duration::from_secs(30)).await;
    assert!(status.map(|s| s.success()).unwrap_or(false), "{}", child.output());
    assert!(child.output().contains("applied 0001_init.sql"), "{}", child.output());
}
