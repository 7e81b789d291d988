//! The scheduler role: own a share of the partitions through leases and
//! publish every due check slot to RabbitMQ, on time, exactly once.
//!
//! Four tasks, each owning its state:
//! - `coordinator`: membership, leases, rebalancing, check reloads (all
//!   PostgreSQL work of leases);
//! - `dispatch`: the schedules, publishing with confirms, watermarks (never
//!   waits on PostgreSQL); its bookkeeping is the pure `ledger`; it checks
//!   the `trust` gate, through which the coordinator revokes a lease at
//!   once, before every publish;
//! - `clock`: PostgreSQL's time on the monotonic clock, which dispatch
//!   reads (anchored by the coordinator's heartbeats);
//! - `writer`: persists watermarks (fenced) and missed slots;
//! - `queue_watch`: the job queues' consumers and ready messages, as
//!   gauges (its own AMQP connection);
//! - the LISTEN connection (`db::listen`): wake-ups on check and lease changes.
//!
//! Every SQL statement of the role is in `store`. Pure cores, tested on
//! their own: `slots` (slot arithmetic), `schedule` (the in-memory
//! schedule), `packing` (due slots into job messages), `ledger` (confirms
//! and the writable watermark), `assignment` (who should own a partition).

pub mod assignment;
pub mod clock;
pub mod coordinator;
pub mod dispatch;
pub mod housekeeping;
pub mod identity;
pub mod leases;
pub mod ledger;
pub mod packing;
pub mod publisher;
pub mod queue_watch;
pub mod schedule;
pub mod slots;
pub mod store;
pub mod trust;
pub mod writer;

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::error_chain;
use crate::queue::{AmqpLink, AmqpTarget, Topology};

pub use coordinator::SchedulerSettings;
pub use identity::Identity;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("the database is not initialised: run `sentryk8s migrate` first")]
    NotMigrated,
    #[error("invalid AMQP URL: {0}")]
    Amqp(String),
    #[error("interrupted before start")]
    Interrupted,
    #[error("the dispatcher stopped unexpectedly ({0}); leaving so that other members take over")]
    DispatcherStopped(String),
}

/// Runs the scheduler until `shutdown`, then hands every partition back.
pub async fn run(
    config: Config,
    me: Identity,
    pool: Pool,
    link: AmqpLink,
    clock: clock::DbClock,
    shutdown: CancellationToken,
) -> Result<(), SchedulerError> {
    let partitions = wait_for_cluster(&pool, &config, &shutdown).await?;
    let target = AmqpTarget::parse(&config.amqp_url).map_err(|e| SchedulerError::Amqp(e.to_string()))?;
    tracing::info!(member = %me.member_id, ordinal = ?me.ordinal, shards = ?me.shards, partitions, "scheduler starting");

    // Stops the helpers once the coordinator has handed everything back.
    let internal = CancellationToken::new();
    let (listen_tx, listen_rx) = mpsc::channel(1024);
    let listener = tokio::spawn(crate::db::listen::listen(
        config.clone(),
        vec![store::CHECKS_CHANNEL.to_string(), store::LEASES_CHANNEL.to_string()],
        listen_tx,
        internal.clone(),
    ));

    let pending = writer::Pending::default();
    let (fenced_tx, fenced_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(writer::run(
        pool.clone(),
        me.member_id.clone(),
        pending.clone(),
        fenced_tx,
        internal.clone(),
    ));

    let topology = Topology::from_config(&config.amqp);
    let watcher = tokio::spawn(queue_watch::run(
        queue_watch::Watch {
            target: target.clone(),
            queues: topology.job_queues.iter().map(|q| q.name.clone()).collect(),
            connection_name: format!("{} queue watch", me.member_id),
            heartbeat: config.amqp.heartbeat,
            max_backoff: config.amqp.reconnect_max_backoff,
            every: queue_watch::WATCH_EVERY,
        },
        internal.clone(),
    ));

    let (command_tx, command_rx) = mpsc::channel(4096);
    let gate = trust::Gate::with_clock(clock);
    let dispatcher = dispatch::Dispatcher::new(
        dispatch::Settings {
            endpoint: publisher::Endpoint {
                target,
                topology,
                app_id: me.member_id.clone(),
                heartbeat: config.amqp.heartbeat,
                max_backoff: config.amqp.reconnect_max_backoff,
            },
            tick: config.scheduler.tick,
            catch_up: config.scheduler.catch_up,
        },
        command_rx,
        pending.clone(),
        gate.clone(),
        link,
    )
    .slots_per_message(config.scheduler.slots_per_message as usize)
    .batch_linger(config.scheduler.batch_linger);
    let mut dispatch = tokio::spawn(dispatcher.run());

    let settings = SchedulerSettings {
        lease_ttl: config.scheduler.lease_ttl,
        renew_interval: config.scheduler.renew_interval,
        reload_interval: config.scheduler.reload_interval,
        retention: housekeeping::Retention::of(&config),
    };
    let wiring =
        coordinator::Wiring { dispatcher: command_tx, gate, fenced: fenced_rx, listen: listen_rx, pending };
    let coordinator = coordinator::Coordinator::new(pool, me, settings, partitions, wiring);
    let coordinating = coordinator.run(shutdown);
    tokio::pin!(coordinating);
    tokio::select! {
        _ = &mut coordinating => {}
        // The dispatcher only ends when the coordinator lets go of it. If it
        // ends first (a panic), this member would keep renewing leases it no
        // longer dispatches: stop, so that the leases expire and others
        // take over.
        ended = &mut dispatch => {
            internal.cancel();
            let _ = writer.await;
            let _ = watcher.await;
            return Err(SchedulerError::DispatcherStopped(match ended {
                Err(e) if e.is_panic() => "it panicked".to_string(),
                Err(e) => e.to_string(),
                Ok(()) => "it returned".to_string(),
            }));
        }
    }
    // The coordinator dropped its command sender: the dispatcher hands its
    // last watermarks to the writer and stops.
    let _ = dispatch.await;
    internal.cancel();
    let _ = writer.await;
    let _ = listener.await;
    let _ = watcher.await;
    Ok(())
}

/// Reads the partition count, waiting while PostgreSQL is unreachable.
async fn wait_for_cluster(
    pool: &Pool,
    config: &Config,
    shutdown: &CancellationToken,
) -> Result<u32, SchedulerError> {
    let mut delay = Duration::from_millis(200);
    loop {
        // Err(None): not migrated; Err(Some(why)): not reachable (yet).
        let attempt = async {
            let client = pool.get().await.map_err(|e| Some(error_chain(&e)))?;
            store::partition_count(&**client).await.map_err(|e| {
                (e.code() != Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE)).then(|| error_chain(&e))
            })
        };
        match attempt.await {
            Ok(Some(p)) => {
                if p != config.partitions {
                    tracing::warn!(
                        configured = config.partitions,
                        stored = p,
                        "partitions is fixed at first install; using the database's value"
                    );
                }
                return Ok(p);
            }
            Ok(None) | Err(None) => return Err(SchedulerError::NotMigrated),
            Err(Some(e)) => tracing::warn!(error = %e, "PostgreSQL not reachable yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return Err(SchedulerError::Interrupted),
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
