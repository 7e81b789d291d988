//! The worker role: consume check jobs, run them (through `crate::probe`),
//! store results, derive up/down state and write notification outbox rows.
//! Delivering the outbox is `crate::alerting`, started beside this role by
//! the role's wiring in `commands/`.
//!
//! - `consumer.rs` — AMQP sessions (every job queue), prefetch, the
//!   concurrency bound and the drain; `consumer/admit.rs` — one message:
//!   decoding (every job format), dead-lettering, per-slot judgement
//!   (invalid, stale, run), redeliveries;
//! - `heartbeat.rs` — heartbeat jobs judged from their pings, not probed;
//! - `item.rs` — what a finished or stale job hands to the batcher;
//! - `batcher.rs` — fills and flushes batches, acks after commit;
//! - `store.rs` — the batch transaction: every SQL statement of the role;
//! - `outbox.rs` — state writes and outbox rows planned from results (pure);
//! - `state.rs` — the up/down state machine (pure); `acks.rs` — which
//!   deliveries to acknowledge and how; `metrics.rs` — the worker's metrics.

pub mod acks;
pub mod batcher;
pub mod consumer;
pub mod heartbeat;
pub mod item;
pub mod metrics;
pub mod outbox;
pub mod state;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::probe::{default_body_budget, MemoryLimits, Prober, ProberOptions};
use crate::queue::{AmqpLink, AmqpTarget, QueueError, Topology};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Tls(#[from] crate::net::tls::TlsSetupError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("worker.deny_targets: {0}")]
    Deny(String),
}

/// The name stored with every result: the pod name in Kubernetes.
pub fn worker_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("worker-{}", std::process::id()))
}

/// How much of the drain deadline running checks may use; the rest is for
/// the last batch commit and the acknowledgements.
pub fn checks_budget(drain_timeout: Duration) -> Duration {
    drain_timeout.saturating_sub((drain_timeout / 4).min(Duration::from_secs(5)))
}

/// Runs the worker until `shutdown` is cancelled and the drain is done.
/// `link` is kept pointing at the live AMQP connection for `/readyz`.
pub async fn run(
    config: &Config,
    pool: Pool,
    link: AmqpLink,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let w = &config.worker;
    let deny = crate::net::deny::DenyList::parse(&w.deny_targets).map_err(WorkerError::Deny)?;
    let memory = MemoryLimits {
        body_budget: if w.body_budget == 0 { default_body_budget() } else { w.body_budget },
        body_limit_max: w.body_limit_max,
        json_max_bytes: w.json_max_bytes,
        checks_in_flight: w.concurrency.max(1) as usize,
    };
    tracing::info!(
        body_budget = memory.body_budget,
        body_limit_max = memory.body_limit_max,
        json_max_bytes = memory.json_max_bytes,
        "memory bounds of checks"
    );
    let prober = Arc::new(Prober::with_memory(
        ProberOptions { body_limit: w.body_limit, user_agent: w.user_agent.clone(), deny },
        &memory,
    )?);
    let metrics = Arc::new(metrics::WorkerMetrics::new());
    let concurrency = w.concurrency.max(1) as usize;
    let batch_size = w.batch_size.max(1) as usize;
    let topology = Topology::from_config(&config.amqp);
    let prefetch = consumer::prefetch_per_consumer(concurrency, batch_size, topology.job_queues.len());
    // Room for every slot the worker runs or holds for a commit: a
    // finished check never waits to hand over its result.
    let (results_tx, results_rx) = mpsc::channel(concurrency + batch_size);
    let (healthy_tx, healthy_rx) = watch::channel(true);
    let heartbeats = Arc::new(heartbeat::Heartbeats::new(pool.clone()));
    let batcher_done = CancellationToken::new();
    let lookup_pool = pool.clone();

    let batcher = {
        let done = batcher_done.clone();
        let config = batcher::BatchConfig {
            size: batch_size,
            max_delay: w.batch_max_delay,
            worker_name: worker_name(),
        };
        let metrics = metrics.clone();
        async move {
            batcher::run(results_rx, pool, config, healthy_tx, metrics).await;
            done.cancel();
        }
    };
    let consumer = consumer::Consumer {
        target: AmqpTarget::parse(&config.amqp_url).map_err(QueueError::from)?,
        topology,
        connection_name: format!("sentryk8s-worker {}", worker_name()),
        heartbeat: config.amqp.heartbeat,
        max_backoff: config.amqp.reconnect_max_backoff,
        concurrency,
        prefetch,
        checks_budget: checks_budget(config.drain_timeout),
        prober,
        heartbeats,
        metrics,
        link,
        results: results_tx,
        healthy: healthy_rx,
        pool: lookup_pool,
    };
    tokio::join!(batcher, consumer.run(shutdown, batcher_done));
    Ok(())
}
