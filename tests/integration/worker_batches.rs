//! Job messages of several slots (format v3) through the real worker
//! binary, broker and database: every slot accounted on its own (a result,
//! or a missed record `stale`/`invalid`) and the message acknowledged once;
//! an unreadable envelope dead-lettered; old one-slot formats still run (a
//! rolling upgrade); a redelivered batch runs only its unaccounted slots;
//! and with `amqp.queues = 4` every queue is consumed and says so in
//! `sentryk8s_worker_consuming{queue}`.

use std::time::Duration;

use amqprs::channel::{BasicConsumeArguments, QueueDeleteArguments};
use chrono::{DateTime, Utc};
use sentryk8s::model::job::{batch_message_id, encode_batch, encode_prepared, message_id_at, quote_name};
use serde_json::json;
use tokio::net::TcpListener;

use crate::support::worker_bed::now_ms;
use crate::support::{eventually, http, Behavior, TestTarget, WorkerBed};

const INTERVAL_MS: u32 = 60_000;

/// A slot of a batch (or, with `v` 1 or 2, a one-slot message).
fn slot(v: u32, check_id: i64, name: &str, spec: &serde_json::Value, at: DateTime<Utc>) -> Vec<u8> {
    let spec = serde_json::to_vec(spec).expect("spec json");
    encode_prepared(v, check_id, INTERVAL_MS, 1, quote_name(name).as_bytes(), &spec, at.timestamp_millis())
}

/// Publishes `slots` as one v3 message to the queue bound to `routing_key`.
async fn publish_batch(bed: &WorkerBed, slots: &[Vec<u8>], first: (i64, DateTime<Utc>), routing_key: &str) {
    let id = batch_message_id(first.0, first.1.timestamp_millis(), slots.len());
    bed.publish_routed(encode_batch(slots), &id, routing_key).await;
}

/// A TCP server that accepts and holds connections (a TCP check's target).
async fn tcp_target() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
    let addr = listener.local_addr().expect("tcp addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// Stops the worker (a drain) and checks it exited cleanly and never had
/// to reconnect (acknowledging a tag twice would close its channel).
async fn stop(worker: &mut crate::support::Binary) {
    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(20)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{}", worker.output());
    assert!(!worker.output().contains("reconnecting"), "the worker reconnected:\n{}", worker.output());
}

/// Asserts `queue` holds no ready message, and still none a little later:
/// a quorum queue's count trails a requeue (what an unacknowledged message
/// becomes when the worker's connection closes) by a moment.
async fn assert_stays_empty(bed: &WorkerBed, queue: &str, what: &str) {
    let filled = eventually(Duration::from_secs(2), || async { bed.depth(queue).await > 0 }).await;
    assert!(!filled, "{queue} holds {} message(s): {what}", bed.depth(queue).await);
}

/// The (reason, interval_ms) of each missed record of `check_id`, by slot.
async fn missed(bed: &WorkerBed, check_id: i64) -> Vec<(DateTime<Utc>, String, Option<i32>)> {
    bed.db
        .client()
        .await
        .query(
            "SELECT first_slot, reason, interval_ms FROM missed_slots WHERE check_id = $1 ORDER BY first_slot",
            &[&check_id],
        )
        .await
        .expect("read missed_slots")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn metrics(bed: &WorkerBed) -> String {
    let (status, text) = http::get(bed.listen, "/metrics").await.expect("scrape /metrics");
    assert_eq!(status, 200);
    text
}

#[tokio::test]
async fn a_batch_of_http_and_tcp_slots_is_stored_slot_by_slot_and_acked_once() {
    let bed = WorkerBed::new().await;
    let target = TestTarget::start(Behavior::default()).await;
    let tcp = tcp_target().await;
    let web_spec = json!({"url": target.url("/"), "timeout_ms": 2000});
    let tcp_spec = json!({"kind": "tcp", "url": format!("tcp://{tcp}"), "timeout_ms": 2000});
    let web = bed.add_check("web", &web_spec).await;
    let other = bed.add_check("web2", &web_spec).await;
    let tcp_id = bed.add_check("tcp", &tcp_spec).await;
    let t = now_ms();
    let ms = chrono::Duration::milliseconds;
    let slots = vec![
        slot(3, web, "web", &web_spec, t),
        slot(3, tcp_id, "tcp", &tcp_spec, t),
        slot(3, other, "web2", &web_spec, t),
        slot(3, web, "web", &web_spec, t + ms(1)),
        slot(3, tcp_id, "tcp", &tcp_spec, t + ms(1)),
    ];
    publish_batch(&bed, &slots, (web, t), "check").await;
    let mut worker = bed.spawn_worker(&[]);

    let rows = "SELECT count(*) FROM check_results";
    assert!(bed.wait_for_count(rows, 5, Duration::from_secs(20)).await, "{}", worker.output());
    assert_eq!(target.requests(), 3);
    let tcp_rows = bed.results(tcp_id).await;
    assert_eq!(tcp_rows.len(), 2, "{tcp_rows:?}");
    assert!(tcp_rows.iter().all(|r| r.success && r.connect_ms.is_some()), "{tcp_rows:?}");
    assert!(bed.results(web).await.iter().all(|r| r.success && r.status_code == Some(200)));
    // Let the last commit's ack go out, then drain: an unacknowledged
    // message would return to the queue when the worker closes.
    let metrics_text = metrics(&bed).await;
    assert!(metrics_text.contains("sentryk8s_worker_job_messages_total 1"), "{metrics_text}");
    stop(&mut worker).await;
    assert_stays_empty(&bed, &bed.broker.queue, "the message was not acknowledged").await;
    assert_stays_empty(&bed, &bed.broker.dead_letter_queue(), "something was dead-lettered").await;
    assert_eq!(bed.count(rows).await, 5);
    assert_eq!(bed.count("SELECT count(*) FROM missed_slots").await, 0);
}

#[tokio::test]
async fn stale_and_undecodable_slots_are_recorded_per_slot_and_the_message_acked_once() {
    let bed = WorkerBed::new().await;
    let target = TestTarget::start(Behavior::default()).await;
    let spec = json!({"url": target.url("/"), "timeout_ms": 2000});
    let check = bed.add_check("web", &spec).await;
    let t = now_ms();
    // Slot + interval passed long ago: stale, not run.
    let stale_at = t - chrono::Duration::minutes(3);
    // A slot whose spec cannot be read: it names its check and slot.
    let bad_at = t - chrono::Duration::seconds(1);
    let bad = format!(
        r#"{{"v":3,"check_id":{check},"interval_ms":60000,"version":1,"name":"web","spec":{{"url":5}},"slot":"{}"}}"#,
        bad_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    // A slot naming nothing: only counted.
    let nameless = br#"{"nothing":"here"}"#.to_vec();
    let slots = vec![
        slot(3, check, "web", &spec, t),
        slot(3, check, "web", &spec, stale_at),
        bad.into_bytes(),
        nameless,
    ];
    publish_batch(&bed, &slots, (check, t), "check").await;
    let mut worker = bed.spawn_worker(&[]);

    let missed_sql = "SELECT count(*) FROM missed_slots";
    assert!(bed.wait_for_count(missed_sql, 2, Duration::from_secs(20)).await, "{}", worker.output());
    assert!(bed.wait_for_count("SELECT count(*) FROM check_results", 1, Duration::from_secs(20)).await);
    let results = bed.results(check).await;
    assert_eq!(results.iter().map(|r| r.slot).collect::<Vec<_>>(), vec![t]);
    assert_eq!(target.requests(), 1, "only the fresh, readable slot ran");
    assert_eq!(
        missed(&bed, check).await,
        vec![
            (stale_at, "stale".to_string(), Some(INTERVAL_MS as i32)),
            (bad_at, "invalid".to_string(), Some(INTERVAL_MS as i32)),
        ]
    );
    let metrics_text = metrics(&bed).await;
    for line in [
        "sentryk8s_worker_invalid_slots_total{recorded=\"true\"} 1",
        "sentryk8s_worker_invalid_slots_total{recorded=\"false\"} 1",
        "sentryk8s_jobs_stale_total 1",
        "sentryk8s_worker_job_messages_total 1",
    ] {
        assert!(metrics_text.contains(line), "{line} missing\n{metrics_text}");
    }
    // The slot's content (its spec) is never logged.
    assert!(!worker.output().contains("\"url\":5"), "{}", worker.output());
    stop(&mut worker).await;
    assert_stays_empty(&bed, &bed.broker.queue, "the message was not acknowledged").await;
    assert_stays_empty(&bed, &bed.broker.dead_letter_queue(), "something was dead-lettered").await;
    // History counted the missed slots (stale and invalid) like any miss:
    // an interval of no data each.
    let no_data = bed
        .count(&format!(
            "SELECT coalesce(sum(no_data_ms), 0)::int8 FROM rollup_hours WHERE check_id = {check}"
        ))
        .await;
    assert_eq!(no_data, 2 * INTERVAL_MS as i64);
}

#[tokio::test]
async fn an_unreadable_envelope_is_dead_lettered() {
    let bed = WorkerBed::new().await;
    let mut worker = bed.spawn_worker(&[]);
    for (i, body) in
        [&b"{\"v\":3,\"jobs\":[]}"[..], b"{\"v\":3,\"jobs\":{}}", b"{\"v\":3,\"jobs\":[1,"].iter().enumerate()
    {
        bed.publish_raw(body.to_vec(), &format!("bad-{i}")).await;
    }
    let dead = bed.broker.dead_letter_queue();
    let all_dead = eventually(Duration::from_secs(20), || async { bed.depth(&dead).await == 3 }).await;
    assert!(all_dead, "dead-letter queue holds {}\n{}", bed.depth(&dead).await, worker.output());
    let metrics_text = metrics(&bed).await;
    assert!(
        metrics_text.contains("sentryk8s_jobs_dead_lettered_total{reason=\"undecodable\"} 3"),
        "{metrics_text}"
    );
    stop(&mut worker).await;
    assert_stays_empty(&bed, &bed.broker.queue, "a dead-lettered message came back").await;
}

#[tokio::test]
async fn a_rolling_upgrade_runs_the_old_formats_still_queued() {
    let bed = WorkerBed::new().await;
    let target = TestTarget::start(Behavior::default()).await;
    let tcp = tcp_target().await;
    let web_spec = json!({"url": target.url("/"), "timeout_ms": 2000});
    let tcp_spec = json!({"kind": "tcp", "url": format!("tcp://{tcp}"), "timeout_ms": 2000});
    let web = bed.add_check("web", &web_spec).await;
    let tcp_id = bed.add_check("tcp", &tcp_spec).await;
    let t = now_ms();
    // What schedulers of before batches published: v1 for HTTP, v2 for
    // the other kinds (and v2 HTTP, from releases after kinds).
    let ms = chrono::Duration::milliseconds;
    bed.publish_raw(slot(1, web, "web", &web_spec, t), &message_id_at(web, t.timestamp_millis())).await;
    bed.publish_raw(slot(2, web, "web", &web_spec, t + ms(1)), &message_id_at(web, t.timestamp_millis() + 1))
        .await;
    bed.publish_raw(slot(2, tcp_id, "tcp", &tcp_spec, t), &message_id_at(tcp_id, t.timestamp_millis())).await;
    // A new scheduler's batch beside them.
    publish_batch(&bed, &[slot(3, web, "web", &web_spec, t + ms(2))], (web, t + ms(2)), "check").await;
    let queued =
        eventually(Duration::from_secs(10), || async { bed.depth(&bed.broker.queue).await == 4 }).await;
    assert!(queued, "queued before the new worker starts: {}", bed.depth(&bed.broker.queue).await);

    let mut worker = bed.spawn_worker(&[]);
    let rows = "SELECT count(*) FROM check_results";
    assert!(bed.wait_for_count(rows, 4, Duration::from_secs(20)).await, "{}", worker.output());
    assert_eq!(
        bed.results(web).await.iter().map(|r| r.slot).collect::<Vec<_>>(),
        vec![t, t + ms(1), t + ms(2)]
    );
    assert!(bed.results(tcp_id).await[0].success);
    assert_eq!(target.requests(), 3);
    stop(&mut worker).await;
    assert_stays_empty(&bed, &bed.broker.queue, "a message was not acknowledged").await;
    assert_stays_empty(&bed, &bed.broker.dead_letter_queue(), "something was dead-lettered").await;
}

#[tokio::test]
async fn a_redelivered_batch_runs_only_its_unaccounted_slots() {
    let bed = WorkerBed::new().await;
    let target = TestTarget::start(Behavior::default()).await;
    let spec = json!({"url": target.url("/"), "timeout_ms": 2000});
    let check = bed.add_check("web", &spec).await;
    let t = now_ms();
    let at: Vec<DateTime<Utc>> = (0..5).map(|i| t + chrono::Duration::milliseconds(i)).collect();
    let slots: Vec<Vec<u8>> = at.iter().map(|a| slot(3, check, "web", &spec, *a)).collect();
    publish_batch(&bed, &slots, (check, at[0]), "check").await;

    // A consumer takes the message and dies without acknowledging it: the
    // broker requeues it, flagged redelivered.
    let connection = bed.broker.connect().await;
    let channel = connection.open_channel(None).await.expect("open channel");
    let args = BasicConsumeArguments::new(&bed.broker.queue, "test-dies").manual_ack(true).finish();
    let (_, mut rx) = channel.basic_consume_rx(args).await.expect("consume");
    let taken = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a delivery");
    assert!(taken.is_some_and(|m| m.deliver.is_some_and(|d| !d.redelivered())));
    // Meanwhile (as that consumer's worker would have) slots 0 and 1 got
    // results, and slot 2 was recorded stale.
    let client = bed.db.client().await;
    client
        .execute("SELECT sentryk8s_ensure_result_partitions(($1::timestamptz)::date, 1)", &[&t])
        .await
        .unwrap();
    for a in &at[..2] {
        client
            .execute(
                "INSERT INTO check_results (check_id, slot, started_at, success, total_ms, worker)
                 VALUES ($1, $2, now(), true, 1, 'before')",
                &[&check, a],
            )
            .await
            .unwrap();
    }
    client
        .execute(
            "INSERT INTO missed_slots (check_id, first_slot, last_slot, slots, reason, interval_ms)
             VALUES ($1, $2, $2, 1, 'stale', 60000)",
            &[&check, &at[2]],
        )
        .await
        .unwrap();
    let _ = connection.close().await;
    assert!(eventually(Duration::from_secs(10), || async { bed.depth(&bed.broker.queue).await == 1 }).await);

    let mut worker = bed.spawn_worker(&[]);
    let rows = "SELECT count(*) FROM check_results";
    assert!(bed.wait_for_count(rows, 4, Duration::from_secs(20)).await, "{}", worker.output());
    let metrics_text = metrics(&bed).await;
    assert!(metrics_text.contains("sentryk8s_worker_redelivered_slots_skipped_total 3"), "{metrics_text}");
    stop(&mut worker).await;
    assert_eq!(target.requests(), 2, "only slots 3 and 4 ran again");
    let stored = bed.results(check).await;
    assert_eq!(stored.iter().map(|r| r.slot).collect::<Vec<_>>(), vec![at[0], at[1], at[3], at[4]]);
    let workers: Vec<String> = client
        .query("SELECT worker FROM check_results WHERE check_id = $1 ORDER BY slot", &[&check])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(&workers[..2], ["before", "before"]);
    assert_eq!(missed(&bed, check).await.len(), 1, "slot 2 stays recorded stale, nothing else missed");
    assert_stays_empty(&bed, &bed.broker.queue, "the redelivered message was not acknowledged").await;
    assert_stays_empty(&bed, &bed.broker.dead_letter_queue(), "something was dead-lettered").await;
}

#[tokio::test]
async fn with_four_queues_every_queue_is_consumed_and_says_so() {
    let bed = WorkerBed::with_queues(4).await;
    let target = TestTarget::start(Behavior::default()).await;
    let spec = json!({"url": target.url("/"), "timeout_ms": 2000});
    let check = bed.add_check("web", &spec).await;
    let mut worker = bed.spawn_worker(&[]);
    let t = now_ms();
    // Two slots a queue, as schedulers route a partition's batch.
    for (i, queue) in bed.topology.job_queues.iter().enumerate() {
        let a = t + chrono::Duration::milliseconds(2 * i as i64);
        let b = a + chrono::Duration::milliseconds(1);
        let slots = [slot(3, check, "web", &spec, a), slot(3, check, "web", &spec, b)];
        publish_batch(&bed, &slots, (check, a), &queue.routing_key).await;
    }
    let rows = "SELECT count(*) FROM check_results";
    assert!(bed.wait_for_count(rows, 8, Duration::from_secs(20)).await, "{}", worker.output());
    assert_eq!(target.requests(), 8);
    let consuming = |text: &str, queue: &str, value: u8| {
        text.contains(&format!("sentryk8s_worker_consuming{{queue=\"{queue}\"}} {value}"))
    };
    let text = metrics(&bed).await;
    for queue in &bed.topology.job_queues {
        assert!(consuming(&text, &queue.name, 1), "{} not consumed\n{text}", queue.name);
        assert_eq!(bed.depth(&queue.name).await, 0);
    }

    // A queue deleted under the worker: its consumer is cancelled, the
    // worker notices, declares the queue again and consumes it again.
    let lost = bed.topology.job_queues[2].name.clone();
    let connection = bed.broker.connect().await;
    let channel = connection.open_channel(None).await.expect("open channel");
    channel.queue_delete(QueueDeleteArguments::new(&lost)).await.expect("delete queue");
    let _ = connection.close().await;
    let noticed = worker.wait_for_output("stopped delivering from a queue", Duration::from_secs(10)).await;
    assert!(noticed, "{}", worker.output());
    let back = eventually(Duration::from_secs(20), || async {
        let text = metrics(&bed).await;
        bed.topology.job_queues.iter().all(|q| consuming(&text, &q.name, 1))
    })
    .await;
    assert!(back, "{}\n{}", metrics(&bed).await, worker.output());
    let a = t + chrono::Duration::seconds(1);
    publish_batch(
        &bed,
        &[slot(3, check, "web", &spec, a)],
        (check, a),
        &bed.topology.job_queues[2].routing_key,
    )
    .await;
    assert!(bed.wait_for_count(rows, 9, Duration::from_secs(20)).await, "{}", worker.output());
    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(20)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{}", worker.output());
}
