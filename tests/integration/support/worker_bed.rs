//! A worker under test: its own database and broker names, a publisher that
//! puts CheckJob messages straight on the exchange (no scheduler needed),
//! and readers for what the worker stored. `with_queues` declares several
//! job queues (`amqp.queues`) and gives the worker the same setting.

use std::net::SocketAddr;
use std::time::Duration;

use amqprs::channel::{BasicPublishArguments, Channel, QueueDeclareArguments};
use amqprs::connection::Connection;
use amqprs::BasicProperties;
use chrono::{DateTime, Utc};
use sentryk8s::model::{job::slot_from_millis, CheckJob, CheckSpec, JOB_SCHEMA_VERSION};
use sentryk8s::queue::{declare_topology, Topology};

use super::{eventually, free_port, Binary, TestBroker, TestDb};

pub struct WorkerBed {
    pub db: TestDb,
    pub broker: TestBroker,
    connection: Connection,
    channel: Channel,
    pub listen: SocketAddr,
    /// Every job queue, the first one (`broker.queue`) first.
    pub topology: Topology,
}

/// One row of `check_results`.
#[derive(Debug, Clone)]
pub struct Stored {
    pub slot: DateTime<Utc>,
    pub success: bool,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub status_code: Option<i16>,
    pub dns_ms: Option<f32>,
    pub connect_ms: Option<f32>,
    pub tls_ms: Option<f32>,
    pub first_byte_ms: Option<f32>,
    pub total_ms: f32,
    pub bytes_read: Option<i64>,
    pub cert_expires_at: Option<DateTime<Utc>>,
    pub failed_assertions: Option<Vec<String>>,
}

/// Now, in whole milliseconds (slots are stored with millisecond precision).
pub fn now_ms() -> DateTime<Utc> {
    slot_from_millis(Utc::now().timestamp_millis())
}

impl WorkerBed {
    pub async fn new() -> WorkerBed {
        WorkerBed::with_queues(1).await
    }

    /// A bed whose topology (and worker) has `queues` job queues.
    pub async fn with_queues(queues: u32) -> WorkerBed {
        let db = TestDb::migrated(4).await;
        let broker = TestBroker::new();
        let mut amqp = sentryk8s::config::Config::defaults().expect("defaults").amqp;
        amqp.exchange = broker.exchange.clone();
        amqp.queue = broker.queue.clone();
        amqp.queues = queues;
        let topology = Topology::from_config(&amqp);
        let connection = broker.connect().await;
        let channel = connection.open_channel(None).await.expect("open channel");
        declare_topology(&channel, &topology).await.expect("declare topology");
        WorkerBed {
            db,
            broker,
            connection,
            channel,
            listen: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
            topology,
        }
    }

    /// Opens a new publishing connection (after a broker restart).
    pub async fn reconnect_publisher(&mut self) {
        self.connection = self.broker.connect().await;
        self.channel = self.connection.open_channel(None).await.expect("open channel");
    }

    /// Environment of a worker for this bed: short batch delay, quick drain.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.broker.env();
        env.push(("SENTRYK8S_DATABASE_URL".into(), self.db.url.clone()));
        env.push(("SENTRYK8S_LISTEN".into(), self.listen.to_string()));
        env.push(("SENTRYK8S_WORKER__BATCH_MAX_DELAY".into(), "20ms".into()));
        env.push(("SENTRYK8S_DRAIN_TIMEOUT".into(), "10s".into()));
        env.push(("SENTRYK8S_DATABASE__CONNECT_TIMEOUT".into(), "1s".into()));
        env.push(("SENTRYK8S_AMQP__QUEUES".into(), self.topology.job_queues.len().to_string()));
        env
    }

    pub fn spawn_worker(&self, extra: &[(&str, &str)]) -> Binary {
        let mut env = self.env();
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        Binary::spawn(&["worker"], &env)
    }

    /// Declares a check (so check_state can reference it); returns its id.
    pub async fn add_check(&self, name: &str, spec: &serde_json::Value) -> i64 {
        let client = self.db.client().await;
        client
            .query_one(
                "INSERT INTO checks (name, interval_ms, spec) VALUES ($1, 60000, $2) RETURNING id",
                &[&name, spec],
            )
            .await
            .expect("insert check")
            .get(0)
    }

    pub fn job(check_id: i64, name: &str, spec: &serde_json::Value, slot: DateTime<Utc>) -> CheckJob {
        let spec: CheckSpec = serde_json::from_value(spec.clone()).expect("valid spec");
        CheckJob {
            v: JOB_SCHEMA_VERSION,
            check_id,
            name: name.into(),
            slot,
            interval_ms: 60_000,
            version: 1,
            spec,
        }
    }

    pub async fn publish(&self, job: &CheckJob) {
        self.publish_raw(job.encode(), &job.message_id()).await;
    }

    pub async fn publish_raw(&self, body: Vec<u8>, message_id: &str) {
        self.publish_routed(body, message_id, "check").await;
    }

    /// Publishes to the job queue bound to `routing_key`.
    pub async fn publish_routed(&self, body: Vec<u8>, message_id: &str, routing_key: &str) {
        let properties =
            BasicProperties::default().with_message_id(message_id).with_persistence(true).finish();
        self.channel
            .basic_publish(properties, body, BasicPublishArguments::new(&self.broker.exchange, routing_key))
            .await
            .expect("publish");
    }

    /// Messages ready in `queue` (a round trip on the publishing channel,
    /// so every earlier publish has been routed).
    pub async fn depth(&self, queue: &str) -> u32 {
        let declared = self
            .channel
            .queue_declare(QueueDeclareArguments::new(queue).passive(true).finish())
            .await
            .expect("passive declare");
        declared.map(|(_, count, _)| count).unwrap_or(0)
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db.client().await.query_one(sql, &[]).await.expect(sql).get(0)
    }

    pub async fn wait_for_count(&self, sql: &str, n: i64, timeout: Duration) -> bool {
        eventually(timeout, || async { self.count(sql).await >= n }).await
    }

    pub async fn results(&self, check_id: i64) -> Vec<Stored> {
        let client = self.db.client().await;
        client
            .query(
                "SELECT slot, success, error_class, error_message, status_code, dns_ms, connect_ms, tls_ms,
                        first_byte_ms, total_ms, bytes_read, cert_expires_at, failed_assertions
                   FROM check_results WHERE check_id = $1 ORDER BY slot",
                &[&check_id],
            )
            .await
            .expect("read results")
            .iter()
            .map(|r| Stored {
                slot: r.get(0),
                success: r.get(1),
                error_class: r.get(2),
                error_message: r.get(3),
                status_code: r.get(4),
                dns_ms: r.get(5),
                connect_ms: r.get(6),
                tls_ms: r.get(7),
                first_byte_ms: r.get(8),
                total_ms: r.get(9),
                bytes_read: r.get(10),
                cert_expires_at: r.get(11),
                failed_assertions: r.get(12),
            })
            .collect()
    }

    /// (status, consecutive_failures, last_slot, incident_id) of a check.
    pub async fn state(&self, check_id: i64) -> Option<(String, i32, Option<DateTime<Utc>>, Option<i64>)> {
        let client = self.db.client().await;
        client
            .query_opt(
                "SELECT status, consecutive_failures, last_slot, incident_id FROM check_state WHERE check_id = $1",
                &[&check_id],
            )
            .await
            .expect("read state")
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    }

    /// (event, incident_id, payload) of a check's outbox rows, in order.
    pub async fn notifications(&self, check_id: i64) -> Vec<(String, i64, serde_json::Value)> {
        let client = self.db.client().await;
        client
            .query(
                "SELECT event, incident_id, payload FROM notifications WHERE check_id = $1 ORDER BY id",
                &[&check_id],
            )
            .await
            .expect("read notifications")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    /// The worker's RSS in KiB, from /proc.
    pub fn rss_kib(pid: u32) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            })
            .unwrap_or(0)
    }
}

impl Drop for WorkerBed {
    fn drop(&mut self) {
        // The broker deletes its first queue; the others are the bed's.
        let extra: Vec<String> = self.topology.job_queues.iter().skip(1).map(|q| q.name.clone()).collect();
        super::broker::delete_queues_blocking(&self.broker.url, extra);
        let connection = self.connection.clone();
        // Closing is best effort; the broker drops it with the process anyway.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            drop(runtime.spawn(async move {
                let _ = connection.close().await;
            }));
        }
    }
}
