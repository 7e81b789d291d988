//! A fresh PostgreSQL database per test (or per benchmark run), dropped when
//! it ends, and the unique names such per-run resources take.
//!
//! Shared with the benchmarks: `bench/common/mod.rs` includes this file with
//! `#[path]`, so it refers to nothing outside itself.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::{Client, NoTls};

/// A name no other test or bench run (in this process or an earlier one)
/// uses: databases, exchanges and queues are named with it.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_000
    )
}

pub fn admin_url() -> String {
    std::env::var("SENTRYK8S_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Replaces the database name (the URL's path) of `url`.
pub fn with_dbname(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("SENTRYK8S_TEST_DATABASE_URL must be a URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

pub struct TestDb {
    pub name: String,
    /// URL of the test's own database.
    pub url: String,
}

impl TestDb {
    /// An empty database (no schema).
    pub async fn empty() -> TestDb {
        TestDb::empty_named("sk_test").await
    }

    /// An empty database whose name starts with `prefix`.
    pub async fn empty_named(prefix: &str) -> TestDb {
        let name = unique_name(prefix);
        let admin = connect(&admin_url()).await;
        admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.expect("create test database");
        TestDb { url: with_dbname(&admin_url(), &name), name }
    }

    /// A database with the schema applied and the cluster initialised.
    pub async fn migrated(partitions: u32) -> TestDb {
        TestDb::migrated_named("sk_test", partitions).await
    }

    /// A migrated database whose name starts with `prefix`.
    pub async fn migrated_named(prefix: &str, partitions: u32) -> TestDb {
        let db = TestDb::empty_named(prefix).await;
        let mut client = db.client().await;
        sentryk8s::migrate::run(&mut client, partitions).await.expect("migrate test database");
        db
    }

    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }
}

pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to test PostgreSQL ({e}); is it running?"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context; a short-lived runtime on its own
        // thread works whether or not the test's runtime is still alive.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let (client, connection) = tokio_postgres::connect(&admin_url(), NoTls).await.ok()?;
                tokio::spawn(connection);
                client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await.ok()
            })
        })
        .join();
    }
}
