//! The kinds beyond HTTP through the real worker binary, broker and
//! database: a version-2 job of a TCP check is run and its phases stored;
//! an HTTP job of version 1 (what schedulers from before kinds publish)
//! still runs; and a version-1 job that claims another kind is
//! dead-lettered, never run as HTTP.

use std::time::Duration;

use sentryk8s::model::job::{encode_prepared, message_id_at, quote_name, version_of_spec_json};
use serde_json::json;
use tokio::net::TcpListener;

use crate::support::worker_bed::now_ms;
use crate::support::{eventually, Behavior, TestTarget, WorkerBed};

#[tokio::test]
async fn version_2_kinds_run_and_version_1_http_still_runs() {
    let bed = WorkerBed::new().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let target = TestTarget::start(Behavior::default()).await;
    let mut worker = bed.spawn_worker(&[]);

    // A TCP check, as the scheduler publishes it: version 2.
    let tcp_spec = json!({"kind": "tcp", "url": format!("tcp://{tcp_addr}"), "timeout_ms": 2000});
    let tcp_id = bed.add_check("tcp", &tcp_spec).await;
    let spec_json = serde_json::to_vec(&tcp_spec).unwrap();
    assert_eq!(version_of_spec_json(&spec_json), 2);
    let slot = now_ms().timestamp_millis();
    let body = encode_prepared(2, tcp_id, 60_000, 1, quote_name("tcp").as_bytes(), &spec_json, slot);
    bed.publish_raw(body, &message_id_at(tcp_id, slot)).await;

    // An HTTP check from a scheduler of before kinds: version 1.
    let http_spec = json!({"url": target.url("/"), "timeout_ms": 2000});
    let http_id = bed.add_check("web", &http_spec).await;
    let http_json = serde_json::to_vec(&http_spec).unwrap();
    let body = encode_prepared(1, http_id, 60_000, 1, quote_name("web").as_bytes(), &http_json, slot);
    bed.publish_raw(body, &message_id_at(http_id, slot)).await;

    // A version-1 job claiming TCP: an old worker would run it as HTTP.
    let bad = encode_prepared(1, tcp_id, 60_000, 1, quote_name("tcp").as_bytes(), &spec_json, slot + 1);
    bed.publish_raw(bad, &message_id_at(tcp_id, slot + 1)).await;

    let rows = "SELECT count(*) FROM check_results";
    assert!(bed.wait_for_count(rows, 2, Duration::from_secs(20)).await, "{}", worker.output());
    let tcp = bed.results(tcp_id).await;
    assert_eq!(tcp.len(), 1, "{tcp:?}");
    assert!(tcp[0].success && tcp[0].connect_ms.is_some() && tcp[0].status_code.is_none(), "{tcp:?}");
    let web = bed.results(http_id).await;
    assert!(web[0].success && web[0].status_code == Some(200), "{web:?}");

    let dead = bed.broker.dead_letter_queue();
    let dead_lettered = eventually(Duration::from_secs(20), || async { bed.depth(&dead).await == 1 }).await;
    assert!(dead_lettered, "dead-letter queue holds {}\n{}", bed.depth(&dead).await, worker.output());
    assert_eq!(bed.count(rows).await, 2, "the v1 TCP job stored nothing");
    worker.terminate();
    assert!(worker.wait_exit(Duration::from_secs(15)).await.is_some());
}

#[tokio::test]
async fn migration_0011_adds_the_new_phase_columns() {
    // The DNS query, ICMP round trips and a heartbeat's run have columns
    // of their own (migration 0011); a TCP result leaves them null.
    let bed = WorkerBed::new().await;
    let client = bed.db.client().await;
    let columns: Vec<String> = client
        .query(
            "SELECT column_name FROM information_schema.columns
              WHERE table_name = 'check_results' AND column_name LIKE ANY (ARRAY['query_ms', 'rtt_%', 'run_ms'])
              ORDER BY column_name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(columns, ["query_ms", "rtt_avg_ms", "rtt_max_ms", "rtt_min_ms", "run_ms"]);
}
