//! Wall-clock steps under the real `sentryk8s scheduler`: libfaketime
//! (LD_PRELOAD) moves the process's wall clock by rewriting a file, while
//! its monotonic clock stays real. Dispatch must follow PostgreSQL's clock:
//! a step of minutes publishes every slot once and on time, records none
//! missed and never stores a watermark in the future; a skew beyond
//! `scheduler.max_clock_skew` halts dispatch (and `/readyz`) until it is
//! back, and the slots due meanwhile are still accounted for.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::binary::free_port;
use crate::support::fleet::{expected_slots, Fleet};
use crate::support::http;
use crate::support::jobs::JobCollector;
use crate::support::Binary;

const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// PostgreSQL's now() in unix ms.
async fn db_now(fleet: &Fleet) -> i64 {
    let client = fleet.db.client().await;
    let row = client.query_one("SELECT (extract(epoch FROM now()) * 1000)::bigint", &[]).await.unwrap();
    row.get(0)
}

/// How far the stored watermarks are ahead of PostgreSQL's now(), at most (ms).
async fn watermark_lead(fleet: &Fleet) -> i64 {
    let client = fleet.db.client().await;
    let row = client
        .query_one(
            "SELECT coalesce(max((extract(epoch FROM watermark - now()) * 1000)::bigint), -1000000)
               FROM partition_leases WHERE watermark IS NOT NULL",
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

/// Watches the watermarks for `how_long`, returning the largest lead seen.
async fn watch_watermarks(fleet: &Fleet, how_long: Duration) -> i64 {
    let until = Instant::now() + how_long;
    let mut worst = i64::MIN;
    while Instant::now() < until {
        worst = worst.max(watermark_lead(fleet).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    worst
}

fn step(file: &Path, offset: &str) {
    std::fs::write(file, offset).unwrap();
}

async fn wait_ready(addr: SocketAddr, want: u16, limit: Duration) -> Option<String> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Ok((status, body)) = http::get(addr, "/readyz").await {
            if status == want {
                return Some(body);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_clock_steps_follow_the_database_clock() {
    assert!(
        Path::new(FAKETIME).exists(),
        "{FAKETIME} is missing: install the Debian package libfaketime (scripts/test.sh does)"
    );
    let fleet = Fleet::new(4, 1, 3000, 1000).await;
    let collector = JobCollector::start(&fleet.broker).await;
    let checks = fleet
        .insert_checks(
            "SELECT 'clock-' || i, 1000, '{\"url\":\"http://127.0.0.1:9/\",\"timeout_ms\":500}'
               FROM generate_series(1, 4) i",
        )
        .await;
    let offset =
        std::env::temp_dir().join(format!("sentryk8s-faketime-{}-{}", std::process::id(), free_port()));
    step(&offset, "+0");

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let addr: SocketAddr = listen.parse().unwrap();
    let mut env = fleet.broker.env();
    env.extend([
        ("SENTRYK8S_DATABASE_URL".to_string(), fleet.db.url.clone()),
        ("SENTRYK8S_AMQP__RECONNECT_MAX_BACKOFF".into(), "1s".into()),
        ("SENTRYK8S_SCHEDULER__MAX_CLOCK_SKEW".into(), "3m".into()),
        ("LD_PRELOAD".into(), FAKETIME.into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ("FAKETIME_NO_CACHE".into(), "1".into()),
        ("FAKETIME_TIMESTAMP_FILE".into(), offset.display().to_string()),
    ]);
    let mut scheduler = Binary::spawn(
        &["scheduler", "--lease-ttl", "3s", "--renew-interval", "1s", "--listen", &listen],
        &env,
    );
    assert!(
        wait_ready(addr, 200, Duration::from_secs(20)).await.is_some(),
        "scheduler never ready:\n{}",
        scheduler.output()
    );
    // Let it claim every partition and publish a few slots.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start = db_now(&fleet).await;

    // Steps within the limit: +2 min, then −2 min (a step of −4 min).
    let mut lead = watch_watermarks(&fleet, Duration::from_secs(2)).await;
    step(&offset, "+120s");
    lead = lead.max(watch_watermarks(&fleet, Duration::from_secs(4)).await);
    step(&offset, "-120s");
    lead = lead.max(watch_watermarks(&fleet, Duration::from_secs(4)).await);
    step(&offset, "+0");
    lead = lead.max(watch_watermarks(&fleet, Duration::from_secs(2)).await);
    let steps_end = db_now(&fleet).await - 1500;
    assert!(lead <= 1000, "a watermark was stored {lead} ms ahead of PostgreSQL's now()");

    // Beyond the limit: dispatch halts and /readyz names the clock.
    step(&offset, "+5m");
    let body = wait_ready(addr, 503, Duration::from_secs(10)).await;
    let body = body.unwrap_or_else(|| panic!("/readyz stayed ready while skewed:\n{}", scheduler.output()));
    assert!(body.contains("clock") && body.contains("max_clock_skew"), "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let halted_at = db_now(&fleet).await;
    let before = collector.snapshot().len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = collector.snapshot().len() - before;
    assert_eq!(during, 0, "{during} jobs published while the clock was skewed");
    assert!(
        scheduler.output().contains("scheduler.max_clock_skew"),
        "no error log naming the setting:\n{}",
        scheduler.output()
    );

    // Back: dispatch resumes and the time in between is accounted for.
    step(&offset, "+0");
    assert!(wait_ready(addr, 200, Duration::from_secs(10)).await.is_some(), "never ready again");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = db_now(&fleet).await - 1500;

    scheduler.terminate();
    scheduler.wait_exit(Duration::from_secs(30)).await;
    let _ = std::fs::remove_file(&offset);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut published: HashMap<(i64, i64), usize> = HashMap::new();
    for r in collector.snapshot() {
        *published.entry((r.check_id, r.slot)).or_default() += 1;
    }
    let missed = fleet.missed(&checks).await;
    let duplicates: Vec<_> = published.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "published more than once: {duplicates:?}");
    let early: Vec<_> = published.keys().filter(|(_, slot)| *slot > end + 3000).collect();
    assert!(early.is_empty(), "slots published before they were due: {early:?}");

    // Across the steps within the limit: every slot published, none missed.
    let gaps: Vec<_> = expected_slots(&checks, start, steps_end)
        .into_iter()
        .filter(|key| !published.contains_key(key))
        .collect();
    assert!(gaps.is_empty(), "slots never published across the steps: {gaps:?}");
    let missed_early: Vec<_> = missed
        .iter()
        .flat_map(|(id, slots)| slots.keys().map(move |s| (*id, *s)))
        .filter(|(_, s)| *s < halted_at - 6000)
        .collect();
    assert!(missed_early.is_empty(), "slots recorded missed across the steps: {missed_early:?}");

    // Across the halt: every slot published or recorded missed, no silent gap.
    let silent: Vec<_> = expected_slots(&checks, steps_end, end)
        .into_iter()
        .filter(|(id, s)| {
            !published.contains_key(&(*id, *s)) && !missed.get(id).is_some_and(|m| m.contains_key(s))
        })
        .collect();
    assert!(silent.is_empty(), "slots neither published nor recorded missed: {silent:?}");
}
