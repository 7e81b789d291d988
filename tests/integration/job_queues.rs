//! Several job queues (`amqp.queues = 4`) with several slots per message:
//! the real scheduler routes each partition's jobs to queue partition mod
//! 4 in version-3 messages, and its queue watch exports each queue's
//! consumers, so a queue that loses its consumer shows in /metrics.
//!
//! The queues are consumed by plain test consumers (no worker), on this
//! test's own exchange and queue names (the isolation every test here
//! uses; the broker has no management API to make a vhost).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amqprs::channel::{BasicCancelArguments, BasicConsumeArguments, Channel};
use amqprs::connection::Connection;
use sentryk8s::model::job::{parse_message_id, JobMessage};
use sentryk8s::queue::Topology;

use crate::support::fleet::{expected_slots, now_ms, Check, Fleet};
use crate::support::{eventually, free_port, http, Binary, TestBroker};

const PARTITIONS: u32 = 8;
const QUEUES: u32 = 4;
const SLOTS_PER_MESSAGE: usize = 8;

/// A message as a test consumer got it.
struct Got {
    queue: usize,
    message_id: String,
    body: Vec<u8>,
}

/// One plain consumer per job queue (auto-ack), collecting what arrives.
struct Consumers {
    connection: Connection,
    channels: Vec<(Channel, String)>,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Consumers {
    async fn start(broker: &TestBroker, topology: &Topology) -> Consumers {
        let connection = broker.connect().await;
        let setup = connection.open_channel(None).await.expect("channel");
        sentryk8s::queue::declare_topology(&setup, topology).await.expect("declare topology");
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut channels = Vec::new();
        for (queue, job_queue) in topology.job_queues.iter().enumerate() {
            let channel = connection.open_channel(None).await.expect("channel");
            let tag = format!("test-consumer-{queue}");
            let mut args = BasicConsumeArguments::new(&job_queue.name, &tag);
            args.no_ack = true;
            let (_, mut rx) = channel.basic_consume_rx(args).await.expect("consume");
            let sink = got.clone();
            tokio::spawn(async move {
                while let Some(message) = rx.recv().await {
                    let (Some(props), Some(body)) = (message.basic_properties, message.content) else {
                        continue;
                    };
                    let message_id = props.message_id().cloned().unwrap_or_default();
                    if let Ok(mut got) = sink.lock() {
                        got.push(Got { queue, message_id, body });
                    }
                }
            });
            channels.push((channel, tag));
        }
        Consumers { connection, channels, got }
    }

    fn take(&self) -> Vec<Got> {
        self.got.lock().map(|mut g| std::mem::take(&mut *g)).unwrap_or_default()
    }

    async fn cancel(&self, queue: usize) {
        let (channel, tag) = &self.channels[queue];
        channel.basic_cancel(BasicCancelArguments::new(tag)).await.expect("cancel");
    }
}

/// Deletes the job queues beyond the first, which `TestBroker` does not know.
struct ExtraQueues {
    broker_url: String,
    names: Vec<String>,
}

impl Drop for ExtraQueues {
    fn drop(&mut self) {
        crate::support::broker::delete_queues_blocking(&self.broker_url, std::mem::take(&mut self.names));
    }
}

/// The value of `name{queue="<queue>"}` in a Prometheus text page.
fn gauge(page: &str, name: &str, queue: &str) -> Option<f64> {
    let prefix = format!("{name}{{queue=\"{queue}\"}} ");
    page.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

/// The value of an unlabelled counter.
fn counter(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.trim().parse().ok())
}

async fn scrape(ops: std::net::SocketAddr) -> String {
    http::get(ops, "/metrics").await.map(|(_, body)| body).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_queues_carry_each_partitions_batches_and_show_their_consumers() {
    let fleet = Fleet::new(PARTITIONS, 1, 15_000, 5_000).await;
    let mut amqp = sentryk8s::config::Config::defaults().expect("defaults").amqp;
    amqp.exchange = fleet.broker.exchange.clone();
    amqp.queue = fleet.broker.queue.clone();
    amqp.queues = QUEUES;
    let topology = Topology::from_config(&amqp);
    let _cleanup = ExtraQueues {
        broker_url: fleet.broker.url.clone(),
        names: topology.job_queues.iter().skip(1).map(|q| q.name.clone()).collect(),
    };
    let consumers = Consumers::start(&fleet.broker, &topology).await;
    // 2000 checks every second: about 12 due per partition per 50 ms
    // round (the scheduler's tick), so messages carry several slots and
    // many are full.
    let checks: Vec<Check> = fleet
        .insert_checks(
            "SELECT 'check-' || i, 1000, '{\"url\":\"http://127.0.0.1:9/\",\"timeout_ms\":500}'
               FROM generate_series(1, 2000) i",
        )
        .await;
    let partition_of: HashMap<i64, u32> = checks.iter().map(|c| (c.id, c.partition)).collect();
    let partitions: HashSet<u32> = partition_of.values().copied().collect();
    assert_eq!(partitions.len(), PARTITIONS as usize, "every partition has checks");

    let mut env = fleet.broker.env();
    env.push(("SENTRYK8S_DATABASE_URL".into(), fleet.db.url.clone()));
    env.push(("SENTRYK8S_AMQP__QUEUES".into(), QUEUES.to_string()));
    env.push(("SENTRYK8S_SCHEDULER__SLOTS_PER_MESSAGE".into(), SLOTS_PER_MESSAGE.to_string()));
    env.push(("SENTRYK8S_AMQP__RECONNECT_MAX_BACKOFF".into(), "1s".into()));
    env.push(("HOSTNAME".into(), Fleet::scheduler_name(0)));
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let scheduler =
        Binary::spawn(&["scheduler", "--shard-from-hostname", "--shards", "1", "--listen", &listen], &env);
    let ops: std::net::SocketAddr = listen.parse().expect("address");
    assert!(fleet.wait_owned_by(&[0], Duration::from_secs(30)).await.is_some(), "{}", scheduler.output());

    // Slots due in a window well after the claim, well before the end.
    let from = now_ms() + 2000;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let to = now_ms() - 2000;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = consumers.take();

    let mut slots_seen: HashMap<(i64, i64), usize> = HashMap::new();
    let mut per_message = Vec::new();
    for message in &got {
        let JobMessage::Batch(slots) = JobMessage::decode(&message.body).expect("decodes") else {
            panic!("a one-slot message with slots_per_message = {SLOTS_PER_MESSAGE}: {}", message.message_id);
        };
        assert!(!slots.is_empty() && slots.len() <= SLOTS_PER_MESSAGE, "{} slots", slots.len());
        per_message.push(slots.len());
        let mut message_partitions = HashSet::new();
        for (i, slot) in slots.iter().enumerate() {
            let job = slot.as_ref().expect("every slot decodes");
            assert_eq!(job.v, 3);
            let slot_ms = job.slot.timestamp_millis();
            if i == 0 {
                assert_eq!(parse_message_id(&message.message_id), Some((job.check_id, slot_ms)));
                assert!(message.message_id.ends_with(&format!("+{}", slots.len())), "{}", message.message_id);
            }
            let partition = partition_of[&job.check_id];
            message_partitions.insert(partition);
            assert_eq!(
                message.queue,
                (partition % QUEUES) as usize,
                "check {} of partition {partition} arrived on queue {}",
                job.check_id,
                message.queue
            );
            *slots_seen.entry((job.check_id, slot_ms)).or_default() += 1;
        }
        assert_eq!(message_partitions.len(), 1, "a message carries one partition's slots");
    }
    let expected = expected_slots(&checks, from, to);
    assert!(expected.len() > 2000, "{} slots expected", expected.len());
    let missing: Vec<_> = expected.iter().filter(|key| !slots_seen.contains_key(key)).take(5).collect();
    assert!(missing.is_empty(), "slots never published, e.g. {missing:?}");
    let queues_used: HashSet<usize> = got.iter().map(|m| m.queue).collect();
    assert_eq!(queues_used.len(), QUEUES as usize);
    assert!(per_message.iter().any(|n| *n > 1), "no message carried several slots: {per_message:?}");
    assert!(per_message.contains(&SLOTS_PER_MESSAGE), "no message was full");

    // The published counters: per slot and per message.
    let page = scrape(ops).await;
    let slots = counter(&page, "sentryk8s_slots_published_total").expect("slots counter");
    let messages = counter(&page, "sentryk8s_job_messages_published_total").expect("messages counter");
    assert!(slots > 1.5 * messages && messages > 0.0, "slots {slots}, messages {messages}");

    // Every queue has its one consumer; then queue 2 loses it.
    let names: Vec<String> = topology.job_queues.iter().map(|q| q.name.clone()).collect();
    let all_consumed = eventually(Duration::from_secs(20), || async {
        let page = scrape(ops).await;
        names.iter().all(|q| gauge(&page, "sentryk8s_job_queue_consumers", q) == Some(1.0))
    })
    .await;
    assert!(all_consumed, "{}", scrape(ops).await);
    consumers.cancel(2).await;
    let noticed = eventually(Duration::from_secs(20), || async {
        let page = scrape(ops).await;
        gauge(&page, "sentryk8s_job_queue_consumers", &names[2]) == Some(0.0)
            && gauge(&page, "sentryk8s_job_queue_messages_ready", &names[2]).is_some_and(|n| n > 0.0)
    })
    .await;
    let page = scrape(ops).await;
    assert!(noticed, "{page}");
    for (i, name) in names.iter().enumerate().filter(|(i, _)| *i != 2) {
        assert_eq!(gauge(&page, "sentryk8s_job_queue_consumers", name), Some(1.0), "queue {i}");
    }

    let _ = consumers.connection.close().await;
    scheduler.terminate();
    let mut scheduler = scheduler;
    let status = scheduler.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", scheduler.output());
}
