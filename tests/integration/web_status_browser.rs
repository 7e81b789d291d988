//! The status page in a real browser (Debian's chromium, support/browser.rs)
//! against the real binary with 90 days of seeded history: each check's
//! name, its uptime text and 90 bars; hovering a bar shows that day's
//! figures; no console error and no CSP violation; no sideways scrolling
//! on a 360 px phone; screenshots desktop and phone, light and dark, saved
//! as `target/screenshots/status-*.png` (the README shows one).

use chrono::{DateTime, Duration, DurationRound, Utc};

use crate::support::browser::{Browser, Scheme};
use crate::support::TestDb;
use crate::web_bed::{history, Web};
use crate::web_status_pages::{apply, PAGES};

/// Two more checks of the public page's group.
const MORE_CHECKS: &str = "
checks:
  - name: shop
    url: http://127.0.0.1:18080/shop
    labels: { team: web }
  - name: search
    url: http://127.0.0.1:18080/search
    labels: { team: web }
";

const DAY_MS: i64 = 86_400_000;

/// Writes the daily rollup rows of `check` for the 90 days up to today:
/// `day(i)` (i = 0 for 89 days ago) gives (up, down, maintenance) ms, or
/// `None` for no row (no data); and 24 hourly rows with response times.
async fn seed(db: &TestDb, check: &str, day: impl Fn(i64) -> Option<(i64, i64, i64)>, median_ms: f64) {
    let client = db.client().await;
    let id: i64 =
        client.query_one("SELECT id FROM checks WHERE name = $1", &[&check]).await.expect("check").get(0);
    state(db, check, "up").await;
    let today = Utc::now().duration_trunc(Duration::days(1)).expect("day");
    let histogram = |runs: i32, ms: f64| -> Vec<i32> {
        let mut h = vec![0; sentryk8s::history::histogram::BUCKETS];
        h[sentryk8s::history::histogram::index(ms)] = runs * 9 / 10;
        h[sentryk8s::history::histogram::index(ms * 2.5)] = runs - runs * 9 / 10;
        h
    };
    for i in 0..90 {
        let Some((up, down, maintenance)) = day(i) else { continue };
        let bucket: DateTime<Utc> = today - Duration::days(89 - i);
        let runs = ((up + down) / 60_000) as i32;
        let failures = (down / 60_000) as i32;
        client
            .execute(
                "INSERT INTO rollup_days (check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms, runs, failures,
                                          total_us_sum, latency_histogram)
                 VALUES ($1, $2, $3, $4, 0, $5, $6, $7, 0, $8)
                 ON CONFLICT (check_id, bucket) DO UPDATE SET up_ms = excluded.up_ms, down_ms = excluded.down_ms,
                        maintenance_ms = excluded.maintenance_ms",
                &[&id, &bucket, &up, &down, &maintenance, &runs, &failures, &histogram(runs - failures, median_ms)],
            )
            .await
            .expect("daily rollup");
    }
    let hour = Utc::now().duration_trunc(Duration::hours(1)).expect("hour");
    for h in 0..24 {
        let bucket = hour - Duration::hours(h);
        let ms = median_ms * (1.0 + (h % 5) as f64 / 10.0);
        client
            .execute(
                "INSERT INTO rollup_hours (check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms, runs, failures,
                                           total_us_sum, latency_histogram)
                 VALUES ($1, $2, 3600000, 0, 0, 0, 60, 0, 0, $3) ON CONFLICT DO NOTHING",
                &[&id, &bucket, &histogram(60, ms)],
            )
            .await
            .expect("hourly rollup");
    }
}

/// Sets the state of `check` now, as the worker writes it.
async fn state(db: &TestDb, check: &str, status: &str) {
    let client = db.client().await;
    client
        .execute(
            "INSERT INTO check_state (check_id, status, since)
             SELECT id, $2, now() - interval '3 days' FROM checks WHERE name = $1
             ON CONFLICT (check_id) DO UPDATE SET status = excluded.status, since = excluded.since",
            &[&check, &status],
        )
        .await
        .expect("check state");
}

/// The day `i` of the 90 (0 = 89 days ago) as `data-day` writes it.
fn day_attr(i: i64) -> String {
    (Utc::now() - Duration::days(89 - i)).format("%Y-%m-%d").to_string()
}

#[tokio::test]
async fn the_status_page_in_a_browser_desktop_and_phone_light_and_dark() {
    let h = history().await;
    let (code, out) = apply(&h.db, MORE_CHECKS);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = apply(&h.db, PAGES);
    assert_eq!(code, Some(0), "{out}");
    // shop: 10 minutes down every 17th day, 2 hours on day 40, maintenance on day 60.
    seed(
        &h.db,
        "shop",
        |i| match i {
            40 => Some((DAY_MS - 7_200_000, 7_200_000, 0)),
            60 => Some((DAY_MS - 3_600_000, 0, 3_600_000)),
            i if i % 17 == 3 => Some((DAY_MS - 600_000, 600_000, 0)),
            _ => Some((DAY_MS, 0, 0)),
        },
        120.0,
    )
    .await;
    // search: declared 30 days ago, up since.
    seed(&h.db, "search", |i| (i >= 60).then_some((DAY_MS, 0, 0)), 45.0).await;
    // api is down (web_bed left an incident of it open).
    state(&h.db, "api", "down").await;
    let web = Web::start(&h.db, &[]).await;
    let url = format!("http://{}/status/public", web.addr);

    let mut page = Browser::launch().await.expect("chromium");
    for (name, width, height, scheme) in [
        ("status-desktop-light", 1280, 900, Scheme::Light),
        ("status-desktop-dark", 1280, 900, Scheme::Dark),
        ("status-phone-light", 360, 740, Scheme::Light),
        ("status-phone-dark", 360, 740, Scheme::Dark),
    ] {
        page.viewport(width, height).await.expect("viewport");
        page.color_scheme(scheme).await.expect("scheme");
        page.open(&url).await.expect("open");

        let names: Vec<String> = page
            .eval_as(
                "[...document.querySelectorAll('[data-check]')].map(e => e.querySelector('h3').innerText)",
            )
            .await
            .expect("names");
        assert_eq!(names, ["api", "search", "shop"], "{name}: the group's checks by name");
        let states: Vec<String> = page
            .eval_as("[...document.querySelectorAll('[data-check] .state')].map(e => e.innerText)")
            .await
            .expect("states");
        assert_eq!(states, ["Down", "Operational", "Operational"], "{name}");
        let banner: String =
            page.eval_as("document.querySelector('.banner-text').innerText").await.expect("banner");
        assert_eq!(banner, "Partial System Outage", "{name}: one check of three is down");
        for check in &names {
            let bars: u64 = page
                .eval_as(&format!("document.querySelectorAll(\"[data-check='{check}'] [data-day]\").length"))
                .await
                .expect("bars");
            assert_eq!(bars, 90, "{name}: {check} has 90 bars");
            let visible: bool = page
                .eval_as(&format!("document.querySelector(\"[data-check='{check}'] svg.bars\").getBoundingClientRect().width > 200"))
                .await
                .expect("bars width");
            assert!(visible, "{name}: {check}'s bars are drawn");
        }
        let uptime: String = page
            .eval_as("document.querySelector(\"[data-check='shop'] dd[data-window='90d']\").innerText")
            .await
            .expect("uptime");
        assert!(uptime.ends_with(" %"), "{name}: {uptime}");
        let search: String = page
            .eval_as("document.querySelector(\"[data-check='search'] dd[data-window='7d']\").innerText")
            .await
            .expect("uptime");
        assert_eq!(search, "100.00 %", "{name}");

        // Hovering day 40 of shop shows its figures under the bars.
        let day = day_attr(40);
        page.hover(&format!("[data-check='shop'] [data-day='{day}']")).await.expect("hover");
        let detail: String = page
            .eval_as("document.querySelector(\"[data-check='shop'] .day-detail\").innerText")
            .await
            .expect("detail");
        assert_eq!(detail, format!("{day}: 91.66 % up, 2 h down"), "{name}");
        let hidden: bool = page
            .eval_as("document.querySelector(\"[data-check='shop'] .day-detail\").hidden")
            .await
            .expect("hidden");
        assert!(!hidden, "{name}: the detail is shown");

        if width == 360 {
            let scroll: u64 = page.eval_as("document.documentElement.scrollWidth").await.expect("width");
            assert!(scroll <= 360, "{name}: the page scrolls sideways ({scroll} px wide)");
        }
        let shot = page.screenshot(name).await.expect("screenshot");
        assert!(std::fs::metadata(&shot).map(|m| m.len() > 10_000).unwrap_or(false), "{name}: {shot:?}");
        assert_eq!(page.problems().await, Vec::<String>::new(), "{name}: console errors or CSP violations");
    }
}
