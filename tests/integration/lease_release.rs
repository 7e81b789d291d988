//! A lease handed back on SIGTERM is revoked in its old owner before the
//! release reaches PostgreSQL: once `partition_leases` shows it free,
//! another member may claim it, so the old owner must publish nothing more
//! of it, even when its dispatcher is still busy and has not read the
//! coordinator's `Release` order when the coordinator's wait runs out.
//!
//! The scheduler runs in this process, wired as `scheduler::run` wires it
//! against the test's PostgreSQL and RabbitMQ, with one difference: the
//! orders to the dispatcher pass a relay that holds the first `Release`
//! for longer than the coordinator waits for it. That is the dispatcher of
//! a long round (a slow broker), made deterministic.

use std::time::Duration;

use sentryk8s::config::Config;
use sentryk8s::queue::{AmqpLink, AmqpTarget, Topology};
use sentryk8s::scheduler::{coordinator, dispatch, identity, publisher, trust, writer, SchedulerSettings};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::fleet::now_ms;
use crate::support::jobs::JobCollector;
use crate::support::{eventually, TestBroker, TestDb};

const PARTITIONS: u32 = 4;
/// Longer than the coordinator's release wait (5 s): without a revocation
/// that bypasses the orders, the dispatcher keeps publishing for ~3 s after
/// the release.
const RELEASE_HELD: Duration = Duration::from_secs(8);
/// A message published just before the revocation may reach the collector
/// a moment later; this is far above that and far below the 3 s at stake.
const IN_TRANSIT: i64 = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_released_on_sigterm_is_never_dispatched_by_its_old_owner_afterwards() {
    let db = TestDb::migrated(PARTITIONS).await;
    let broker = TestBroker::new();
    let collector = JobCollector::start(&broker).await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO checks (name, interval_ms, spec)
             SELECT 'check-' || i, 1000, '{\"url\":\"http://127.0.0.1:9/\",\"timeout_ms\":500}'
               FROM generate_series(1, 40) i",
        )
        .await
        .expect("insert checks");

    let mut config = Config::defaults().expect("default config");
    config.database_url = db.url.clone();
    config.amqp_url = broker.url.clone();
    config.amqp.exchange = broker.exchange.clone();
    config.amqp.queue = broker.queue.clone();
    config.partitions = PARTITIONS;
    let me = identity::from_hostname("sentryk8s-scheduler-0", Some(1)).expect("identity");
    let pool = sentryk8s::db::pool(&config, "scheduler").expect("pool");

    let internal = CancellationToken::new();
    let pending = writer::Pending::default();
    let (fenced_tx, fenced_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(writer::run(
        pool.clone(),
        me.member_id.clone(),
        pending.clone(),
        fenced_tx,
        internal.clone(),
    ));

    // Coordinator → relay → dispatcher.
    let (command_tx, mut relay_rx) = mpsc::channel::<dispatch::Command>(4096);
    let (relay_tx, command_rx) = mpsc::channel(4096);
    let relay = tokio::spawn(async move {
        let mut held_once = false;
        while let Some(command) = relay_rx.recv().await {
            if matches!(command, dispatch::Command::Release { .. }) && !held_once {
                held_once = true;
                tokio::time::sleep(RELEASE_HELD).await;
            }
            if relay_tx.send(command).await.is_err() {
                break;
            }
        }
    });
    let gate = trust::Gate::default();
    let dispatcher = dispatch::Dispatcher::new(
        dispatch::Settings {
            endpoint: publisher::Endpoint {
                target: AmqpTarget::parse(&config.amqp_url).expect("AMQP URL"),
                topology: Topology::from_config(&config.amqp),
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
        AmqpLink::default(),
    );
    let dispatching = tokio::spawn(dispatcher.run());
    // No LISTEN connection: the coordinator's 1 s rebalance finds the leases.
    let (_listen_tx, listen_rx) = mpsc::channel(16);
    let settings = SchedulerSettings {
        lease_ttl: Duration::from_secs(15),
        renew_interval: Duration::from_secs(5),
        reload_interval: config.scheduler.reload_interval,
        retention: sentryk8s::scheduler::housekeeping::Retention::of(&config),
    };
    let wiring =
        coordinator::Wiring { dispatcher: command_tx, gate, fenced: fenced_rx, listen: listen_rx, pending };
    let shutdown = CancellationToken::new();
    let coordinating = tokio::spawn(
        coordinator::Coordinator::new(pool, me.clone(), settings, PARTITIONS, wiring).run(shutdown.clone()),
    );

    // Dispatching every partition.
    let owned = "SELECT count(*) FROM partition_leases WHERE owner = $1";
    let all_owned = eventually(Duration::from_secs(20), || async {
        client.query_one(owned, &[&me.member_id]).await.map(|r| r.get::<_, i64>(0)).unwrap_or(0)
            == PARTITIONS as i64
    })
    .await;
    assert!(all_owned, "the scheduler never owned every partition");
    assert!(eventually(Duration::from_secs(10), || async { collector.count() >= 80 }).await, "no dispatch");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // SIGTERM.
    let terminated_at = now_ms();
    shutdown.cancel();
    let released = "SELECT count(*), (extract(epoch FROM max(updated_at)) * 1000)::bigint
                      FROM partition_leases WHERE owner IS NULL";
    let mut released_at = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while released_at.is_none() && tokio::time::Instant::now() < deadline {
        if let Ok(row) = client.query_one(released, &[]).await {
            if row.get::<_, i64>(0) == PARTITIONS as i64 {
                released_at = row.get::<_, Option<i64>>(1);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let released_at = released_at.expect("the leases were never handed back");
    tokio::time::timeout(Duration::from_secs(15), coordinating)
        .await
        .expect("the coordinator stops")
        .expect("coordinator task");
    // The dispatcher reads the held order at RELEASE_HELD and then stops.
    tokio::time::timeout(Duration::from_secs(30), dispatching)
        .await
        .expect("the dispatcher stops")
        .expect("dispatcher task");
    let _ = relay.await;
    internal.cancel();
    let _ = writer.await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The race happened: the coordinator gave up waiting for the
    // dispatcher's watermarks, and released while the order was held.
    let waited = released_at - terminated_at;
    assert!(
        (4_000..(RELEASE_HELD.as_millis() as i64)).contains(&waited),
        "the release came {waited} ms after SIGTERM, not after the coordinator's 5 s wait"
    );
    let received = collector.snapshot();
    let before: usize = received
        .iter()
        .filter(|r| r.publisher == me.member_id && r.at_ms > terminated_at - 1000 && r.at_ms < terminated_at)
        .count();
    assert!(before > 0, "nothing was being dispatched before SIGTERM");
    let after: Vec<String> = received
        .iter()
        .filter(|r| r.publisher == me.member_id && r.at_ms > released_at + IN_TRANSIT)
        .map(|r| {
            format!(
                "check {} slot {} received {} ms after the release",
                r.check_id,
                r.slot,
                r.at_ms - released_at
            )
        })
        .collect();
    assert!(
        after.is_empty(),
        "the old owner published {} jobs of released partitions after the release, e.g. {:?}",
        after.len(),
        &after[..after.len().min(3)]
    );
}
