//! Unique RabbitMQ exchange and queue names per test (or per benchmark
//! run), the topology declared as the binary declares it, deleted at the end.
//!
//! Shared with the benchmarks: `bench/common/mod.rs` includes this file with
//! `#[path]`; besides itself it needs only its sibling `db` (for
//! `unique_name`), which both parents provide.

use amqprs::channel::{ExchangeDeleteArguments, QueueDeleteArguments, QueuePurgeArguments};
use amqprs::connection::Connection;

pub fn amqp_url() -> String {
    std::env::var("SENTRYK8S_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

pub struct TestBroker {
    pub url: String,
    pub exchange: String,
    pub queue: String,
}

impl TestBroker {
    pub fn new() -> TestBroker {
        TestBroker::named("sk-test")
    }

    /// Names that start with `prefix`.
    pub fn named(prefix: &str) -> TestBroker {
        let id = super::db::unique_name(prefix);
        TestBroker { url: amqp_url(), exchange: id.clone(), queue: format!("{id}.checks") }
    }

    /// The topology as the binary declares it, with this test's names.
    pub fn topology(&self) -> sentryk8s::queue::Topology {
        let mut amqp = sentryk8s::config::Config::defaults().expect("defaults").amqp;
        amqp.exchange = self.exchange.clone();
        amqp.queue = self.queue.clone();
        sentryk8s::queue::Topology::from_config(&amqp)
    }

    /// Declares the topology (exchanges, queues, bindings) on the broker.
    pub async fn declare(&self) {
        let connection = self.connect().await;
        let channel = connection.open_channel(None).await.expect("open channel");
        sentryk8s::queue::declare_topology(&channel, &self.topology()).await.expect("declare topology");
        let _ = connection.close().await;
    }

    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.queue)
    }

    /// Environment for the binary so it uses this test's names.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("SENTRYK8S_AMQP_URL".into(), self.url.clone()),
            ("SENTRYK8S_AMQP__EXCHANGE".into(), self.exchange.clone()),
            ("SENTRYK8S_AMQP__QUEUE".into(), self.queue.clone()),
        ]
    }

    pub async fn connect(&self) -> Connection {
        let target = sentryk8s::queue::AmqpTarget::parse(&self.url).expect("test AMQP URL");
        sentryk8s::queue::connect(&target, "sentryk8s-test", std::time::Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to test RabbitMQ ({e}); is it running?"))
    }

    pub async fn purge(&self) {
        let connection = self.connect().await;
        if let Ok(channel) = connection.open_channel(None).await {
            let _ = channel.queue_purge(QueuePurgeArguments::new(&self.queue)).await;
        }
        let _ = connection.close().await;
    }
}

impl Default for TestBroker {
    fn default() -> Self {
        TestBroker::new()
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let url = self.url.clone();
        let queues = [self.queue.clone(), self.dead_letter_queue()];
        let exchanges = [self.exchange.clone(), format!("{}.dlx", self.exchange)];
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let target = sentryk8s::queue::AmqpTarget::parse(&url).ok()?;
                let connection = sentryk8s::queue::connect(
                    &target,
                    "sentryk8s-test-cleanup",
                    std::time::Duration::from_secs(30),
                )
                .await
                .ok()?;
                let channel = connection.open_channel(None).await.ok()?;
                for q in &queues {
                    let _ = channel.queue_delete(QueueDeleteArguments::new(q)).await;
                }
                for e in &exchanges {
                    let _ = channel.exchange_delete(ExchangeDeleteArguments::new(e)).await;
                }
                let _ = connection.close().await;
                Some(())
            })
        })
        .join();
    }
}

/// Deletes `names` from the broker at `url`, from any context (a `Drop`
/// included: it runs on its own thread and runtime). Best effort: cleanup
/// must not fail a test.
pub fn delete_queues_blocking(url: &str, names: Vec<String>) {
    if names.is_empty() {
        return;
    }
    let url = url.to_string();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        rt.block_on(async {
            let target = sentryk8s::queue::AmqpTarget::parse(&url).ok()?;
            let connection = sentryk8s::queue::connect(
                &target,
                "sentryk8s-test-cleanup",
                std::time::Duration::from_secs(30),
            )
            .await
            .ok()?;
            let channel = connection.open_channel(None).await.ok()?;
            for name in &names {
                let _ = channel.queue_delete(QueueDeleteArguments::new(name)).await;
            }
            let _ = connection.close().await;
            Some(())
        })
    })
    .join();
}
