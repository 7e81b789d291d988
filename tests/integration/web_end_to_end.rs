//! Issue 15, acceptance 2: a check created through the API is dispatched
//! by a running scheduler and executed by a worker within 2 s plus its
//! interval; its results and uptime are then readable through the API.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::fleet::Fleet;
use crate::support::target::{Behavior, TestTarget};
use crate::web_bed::{Tokens, Web};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_put_through_the_api_runs_and_its_history_is_readable() {
    let target = TestTarget::start(Behavior::default()).await;
    let mut fleet = Fleet::new(4, 1, 3_000, 1_000).await;
    fleet.start_scheduler(0);
    fleet.start_worker(0, 8);
    assert!(fleet.wait_owned_by(&[0], Duration::from_secs(20)).await.is_some(), "{}", fleet.all_output());
    let tokens = Tokens::new(&fleet.db).await;
    let web = Web::start(&fleet.db, &[]).await;

    let interval = Duration::from_secs(2);
    let put = web
        .call(
            "PUT",
            "/api/v1/checks/from-api",
            Some(&tokens.write),
            Some(json!({"url": target.url("/health"), "interval": "2s", "timeout": "1s"})),
        )
        .await;
    let created = Instant::now();
    let created_at = chrono::Utc::now();
    assert_eq!(put.status, 201, "{}", put.text());

    // Dispatched and executed within 2 s plus the interval: judged by when
    // the check started (`started_at`), not by when this loop, sharing the
    // machine with the whole suite, happens to read it.
    let deadline = Duration::from_secs(2) + interval;
    let mut first = None;
    while created.elapsed() < Duration::from_secs(30) {
        let page = web.get("/api/v1/checks/from-api/results?limit=10", Some(&tokens.read)).await;
        assert_eq!(page.status, 200, "{}", page.text());
        let body = page.json();
        if let Some(row) = body["results"].as_array().and_then(|r| r.first()).cloned() {
            first = Some((created.elapsed(), row));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (read_after, row) =
        first.unwrap_or_else(|| panic!("no result through the API\n{}", fleet.all_output()));
    let started = chrono::DateTime::parse_from_rfc3339(row["started_at"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {row}"));
    let took = (started.with_timezone(&chrono::Utc) - created_at).to_std().unwrap_or_default();
    assert!(
        took <= deadline,
        "the check started {took:?} after the PUT, more than {deadline:?}; read after {read_after:?}"
    );
    assert_eq!(row["success"], true, "{row}");
    assert_eq!(row["status_code"], 200, "{row}");
    assert!(target.requests() >= 1);

    // A few more runs, then the uptime of the last hour through the API.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let uptime = web.get("/api/v1/checks/from-api/uptime?window=24h&by=hour", Some(&tokens.read)).await;
    assert_eq!(uptime.status, 200, "{}", uptime.text());
    let body = uptime.json();
    let up = body["total"]["up_seconds"].as_f64().unwrap_or_else(|| panic!("{body}"));
    assert!(up >= 4.0, "at least two 2 s slots up: {body}");
    assert_eq!(body["total"]["down_seconds"], 0.0, "{body}");
    assert_eq!(body["total"]["uptime_percent"], 100.0, "{body}");
    let listed = web.get("/api/v1/checks?q=from-api", Some(&tokens.read)).await.json();
    let check = listed.as_array().and_then(|c| c.first()).cloned().unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(check["state"], "up", "{check}");
    assert_eq!(check["owner"], "api", "{check}");
    fleet.stop_all().await;
}
