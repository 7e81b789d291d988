//! A fresh PostgreSQL database per test, dropped when the test ends.

use tokio_postgres::{Client, NoTls};

pub fn admin_url() -> String {
    std::env::var("SENTRYK8S_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Replaces the database name (the URL's path) of `url`.
fn with_dbname(url: &str, name: &str) -> String {
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
        let name = super::unique_name("sk_test");
        let admin = connect(&admin_url()).await;
        admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.expect("create test database");
        TestDb { url: with_dbname(&admin_url(), &name), name }
    }

    /// A database with the schema applied and the cluster initialised.
    pub async fn migrated(partitions: u32) -> TestDb {
        let db = TestDb::empty().await;
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
