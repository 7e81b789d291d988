//! The web role's per-check metrics on its ops server: the values come
//! from `check_state`, the newest result's certificate and the rollups;
//! unknown values are absent; only allow-listed labels are copied; a
//! deleted check's series go at the next refresh; and scrapes never cause
//! a database read (the refresh counter grows with time, not scrapes).

use std::time::{Duration, Instant};

use crate::checks_cli::{sentryk8s, temp_dir};
use crate::support::{eventually, TestDb};
use crate::web_auth::{get, Web};

const CHECKS: &str = "checks:
  - name: api
    url: http://127.0.0.1:18080/health
    labels: { team: web, tier: gold }
  - name: shop
    url: https://127.0.0.1:18443/
    labels: { tier: bronze }
  - name: fresh
    url: http://127.0.0.1:18080/new
    labels: { team: web }
  - name: paused
    url: http://127.0.0.1:18080/
    enabled: false
";

async fn setup(db: &TestDb) {
    let dir = temp_dir();
    std::fs::write(dir.join("c.yaml"), CHECKS).unwrap();
    let run = sentryk8s(Some(db), &dir, &["checks", "apply", "-f", "c.yaml"], &[], "");
    assert_eq!(run.code, Some(0), "{}", run.all());
    db.client()
        .await
        .batch_execute(
            "CREATE TEMP TABLE ids AS SELECT name, id FROM checks;
             CREATE TEMP TABLE t AS SELECT date_trunc('second', now()) - interval '10 seconds' AS slot,
                    date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '1 hour' AS hour,
                    date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '1 day' AS day;
             INSERT INTO check_state (check_id, status, since, last_slot, last_checked_at, last_success,
                                      last_duration_ms, consecutive_failures)
             SELECT (SELECT id FROM ids WHERE name = 'api'), 'up', t.slot, t.slot, t.slot, true, 12.5, 0 FROM t
             UNION ALL
             SELECT (SELECT id FROM ids WHERE name = 'shop'), 'down', t.slot, t.slot, t.slot, false, 1003.25, 3 FROM t
             UNION ALL
             SELECT (SELECT id FROM ids WHERE name = 'paused'), 'down', t.slot, t.slot, t.slot, false, 7, 1 FROM t;
             -- The newest result of shop carries a certificate; an older one
             -- of api does, its newest does not.
             INSERT INTO check_results (check_id, slot, started_at, success, total_ms, cert_expires_at)
             SELECT (SELECT id FROM ids WHERE name = 'shop'), t.slot, t.slot, false, 1003.25,
                    '2030-01-02T03:04:05Z'::timestamptz FROM t
             UNION ALL
             SELECT (SELECT id FROM ids WHERE name = 'api'), t.slot, t.slot, true, 12.5, NULL::timestamptz FROM t
             UNION ALL
             SELECT (SELECT id FROM ids WHERE name = 'api'), t.slot - interval '5 seconds', t.slot, true, 12.5,
                    '2031-01-01T00:00:00Z'::timestamptz FROM t;
             INSERT INTO rollup_hours (check_id, bucket, up_ms, down_ms, latency_histogram)
             SELECT (SELECT id FROM ids WHERE name = 'api'), t.hour, 3000, 1000, array_fill(0, ARRAY[40]) FROM t
             UNION ALL
             SELECT (SELECT id FROM ids WHERE name = 'shop'), t.hour, 0, 0, array_fill(0, ARRAY[40]) FROM t;
             INSERT INTO rollup_days (check_id, bucket, up_ms, down_ms, latency_histogram)
             SELECT (SELECT id FROM ids WHERE name = 'api'), t.day, 9000, 1000, array_fill(0, ARRAY[40]) FROM t
             UNION ALL
             SELECT (SELECT id FROM ids WHERE name = 'shop'), t.day, 0, 500, array_fill(0, ARRAY[40]) FROM t;",
        )
        .await
        .expect("state, results and rollups");
}

/// The ops server's `/metrics`.
async fn scrape(web: &Web) -> String {
    let answer = get(web.ops, "/metrics", "").await;
    assert_eq!(answer.status, 200);
    answer.text()
}

/// The per-check lines, sorted.
fn check_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> =
        text.lines().filter(|l| l.starts_with("sentryk8s_check_")).map(str::to_string).collect();
    lines.sort();
    lines
}

/// The value of an unlabelled series of the recorder.
fn value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn per_check_metrics_come_from_state_results_and_rollups() {
    let db = TestDb::migrated(4).await;
    setup(&db).await;
    let web = Web::start(
        &db,
        &[("SENTRYK8S_WEB__METRICS_REFRESH", "1s"), ("SENTRYK8S_WEB__METRICS_LABELS", "[team]")],
    )
    .await;
    assert!(
        eventually(Duration::from_secs(5), || async { scrape(&web).await.contains("sentryk8s_check_up") })
            .await,
        "no per-check metrics: {}",
        scrape(&web).await
    );
    let text = scrape(&web).await;
    let mut expected = vec![
        "sentryk8s_check_cert_expiry_timestamp_seconds{check=\"shop\"} 1893553445",
        "sentryk8s_check_last_duration_seconds{check=\"api\",team=\"web\"} 0.0125",
        "sentryk8s_check_last_duration_seconds{check=\"paused\"} 0.007",
        "sentryk8s_check_last_duration_seconds{check=\"shop\"} 1.00325",
        "sentryk8s_check_up{check=\"api\",team=\"web\"} 1",
        "sentryk8s_check_up{check=\"shop\"} 0",
        "sentryk8s_check_uptime_ratio{check=\"api\",team=\"web\",window=\"24h\"} 0.75",
        "sentryk8s_check_uptime_ratio{check=\"api\",team=\"web\",window=\"30d\"} 0.9",
        "sentryk8s_check_uptime_ratio{check=\"shop\",window=\"30d\"} 0",
    ];
    expected.sort();
    assert_eq!(check_lines(&text), expected, "{text}");
    assert!(!text.contains("tier="), "a label outside the allow-list is copied");
    assert!(text.contains("# TYPE sentryk8s_check_up gauge"));
    // The recorder's own metrics are still there.
    assert!(text.contains("sentryk8s_web_metrics_refreshes_total"), "{text}");

    // A deleted check's series are gone after the next refresh.
    db.client().await.execute("DELETE FROM checks WHERE name = 'api'", &[]).await.unwrap();
    assert!(
        eventually(Duration::from_secs(4), || async { !scrape(&web).await.contains("check=\"api\"") }).await,
        "the deleted check's series stay"
    );
    let after = scrape(&web).await;
    assert!(after.contains("sentryk8s_check_up{check=\"shop\"} 0"), "{after}");
}

#[tokio::test]
async fn scrapes_do_not_read_the_database() {
    let db = TestDb::migrated(4).await;
    setup(&db).await;
    let web = Web::start(&db, &[("SENTRYK8S_WEB__METRICS_REFRESH", "2s")]).await;
    assert!(
        eventually(Duration::from_secs(5), || async { scrape(&web).await.contains("sentryk8s_check_up") })
            .await
    );
    let started = Instant::now();
    let before = value(&scrape(&web).await, "sentryk8s_web_metrics_refreshes_total").unwrap();
    for _ in 0..50 {
        let text = scrape(&web).await;
        assert!(text.contains("sentryk8s_check_up{check=\"api\"} 1"), "{text}");
    }
    let after = value(&scrape(&web).await, "sentryk8s_web_metrics_refreshes_total").unwrap();
    let periods = (started.elapsed().as_secs_f64() / 2.0).ceil();
    assert!(
        after - before <= periods,
        "{} refreshes in {:?} for 50 scrapes",
        after - before,
        started.elapsed()
    );
    // Still refreshing with time.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = value(&scrape(&web).await, "sentryk8s_web_metrics_refreshes_total").unwrap();
    assert!(later > after, "{later} after {after}");
    assert!(value(&scrape(&web).await, "sentryk8s_web_metrics_refreshed_timestamp_seconds").is_some());
}
