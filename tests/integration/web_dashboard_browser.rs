//! The operator dashboard in a real browser (Debian's chromium through
//! support/browser.rs) against the real `sentryk8s web` with seeded
//! history: signing in through the form, a bad token refused, the checks
//! table with its sparklines refreshing in place, a filter, the check page
//! with its phase breakdown and 90 daily bars, pausing from the page —
//! with zero console errors and zero CSP violations. Screenshots (desktop
//! and 360 px wide, light and dark) land in
//! `target/screenshots/dashboard-*.png`.

use chrono::{Duration as Span, DurationRound, Utc};
use serde_json::json;

use crate::support::browser::{Browser, Scheme};
use crate::web_bed::{history, History, Tokens, Web};
use sentryk8s::history::buckets::to_ms;
use sentryk8s::history::rollup::{self, ResultFact, Rollups};
use sentryk8s::history::{store, uptime};

/// Three API checks beside the bed's `api` and `idle`, and for all but
/// `idle`: 90 days of hourly history (response times that wave through
/// the day, some hours down), a state, and a run a minute ago with every
/// phase timed. `payments` is down now.
async fn seed(h: &History, web: &Web, admin: &str) {
    for (name, team) in [("payments", "billing"), ("search", "web"), ("shop", "web")] {
        let body = json!({"url": format!("https://{name}.example.com/health"), "interval": "60s",
                          "labels": {"team": team}});
        let answer = web.call("PUT", &format!("/api/v1/checks/{name}"), Some(admin), Some(body)).await;
        assert_eq!(answer.status, 201, "{}", answer.text());
    }
    let client = h.db.client().await;
    client
        .execute("SELECT sentryk8s_ensure_result_partitions(current_date, 2)", &[])
        .await
        .expect("partitions");
    let checks: Vec<(i64, String)> = client
        .query("SELECT id, name FROM checks WHERE name <> 'idle' ORDER BY name", &[])
        .await
        .expect("checks")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let now = Utc::now();
    let first = now.duration_trunc(Span::hours(1)).expect("an hour") - Span::days(90);
    let mut rollups = Rollups::new();
    for (i, (id, name)) in checks.iter().enumerate() {
        let hours = (now - first).num_hours();
        for k in 0..hours {
            let down = match name.as_str() {
                "payments" => k >= hours - 2,
                "search" => k % 400 == 17 || k == hours - 6,
                _ => k % 900 == 33,
            };
            let wave = ((k % 24) as f32 / 24.0 * std::f32::consts::TAU).sin();
            let total_ms = 70.0 + 25.0 * i as f32 + 30.0 * wave;
            let state = if down { "down" } else { "up" };
            let fact = ResultFact {
                check_id: *id,
                slot_ms: to_ms(first + Span::hours(k)),
                interval_ms: 3_600_000,
                category: uptime::of_result(Some(state), !down, false),
                success: !down,
                total_ms,
            };
            rollup::add_result(&mut rollups, &fact);
        }
        let down = name == "payments";
        let slot = now - Span::minutes(1);
        client
            .execute(
                "INSERT INTO check_results (check_id, slot, started_at, success, status_code, total_ms, dns_ms,
                                            connect_ms, tls_ms, first_byte_ms, state, interval_ms, worker,
                                            error_message, error_class)
                 VALUES ($1, $2, $2, $3, $4, $5, 4.2, 7.5, 18.3, $6, $7, 60000, 'worker-0', $8, $9)",
                &[
                    id,
                    &slot,
                    &!down,
                    &(if down { 503_i16 } else { 200 }),
                    &(95.0_f32 + 10.0 * i as f32),
                    &(41.0_f32 + 8.0 * i as f32),
                    &(if down { "down" } else { "up" }),
                    &down.then_some("expected status 200, got 503"),
                    &down.then_some("assertion"),
                ],
            )
            .await
            .expect("a recent run");
        client
            .execute(
                "INSERT INTO check_state (check_id, status, since, last_slot, last_checked_at, last_success,
                                          last_duration_ms, last_status_code)
                 VALUES ($1, $2, now() - interval '3 hours', $3, $3, $4, $5, $6)
                 ON CONFLICT (check_id) DO UPDATE SET status = $2, last_checked_at = $3",
                &[
                    id,
                    &(if down { "down" } else { "up" }),
                    &slot,
                    &!down,
                    &(95.0_f64 + 10.0 * i as f64),
                    &(if down { 503_i32 } else { 200 }),
                ],
            )
            .await
            .expect("state");
    }
    let mut config = sentryk8s::config::Config::defaults().expect("defaults");
    config.database_url = h.db.url.clone();
    let pool = sentryk8s::db::pool(&config, "test").expect("pool");
    let pooled = pool.get().await.expect("pooled client");
    store::upsert_rollups(&pooled, &rollups).await.expect("rollups");
}

/// Waits for `expression` (a boolean) to hold in the page, up to `seconds`.
async fn until(page: &mut Browser, expression: &str, seconds: u32) -> bool {
    let script = format!(
        "new Promise(function (done) {{
           var start = Date.now();
           (function poll() {{
             if ({expression}) {{ done(true); }}
             else if (Date.now() - start > {ms}) {{ done(false); }}
             else {{ setTimeout(poll, 100); }}
           }})();
         }})",
        ms = seconds * 1000
    );
    page.eval_as(&script).await.unwrap_or(false)
}

async fn rows(page: &mut Browser) -> u64 {
    page.eval_as("document.querySelectorAll('#check-rows tr[data-check]').length").await.expect("rows")
}

async fn path(page: &mut Browser) -> String {
    page.eval_as("location.pathname").await.expect("path")
}

/// Screenshots of the current page: desktop and phone, light and dark.
async fn screenshots(page: &mut Browser, url: &str, name: &str) {
    for (size, width, height) in [("desktop", 1280, 900), ("phone", 360, 740)] {
        for (scheme, mode) in [(Scheme::Light, "light"), (Scheme::Dark, "dark")] {
            page.viewport(width, height).await.expect("viewport");
            page.color_scheme(scheme).await.expect("scheme");
            page.open(url).await.expect("open");
            let inner: u32 = page.eval_as("window.innerWidth").await.expect("width");
            assert_eq!(inner, width);
            // Nothing wider than the phone: the tables scroll in their own box.
            let overflow: bool = page
                .eval_as("document.documentElement.scrollWidth > window.innerWidth")
                .await
                .expect("overflow");
            assert!(!overflow, "{name} {size}: the page is wider than the window");
            let shot = page.screenshot(&format!("{name}-{size}-{mode}")).await.expect("screenshot");
            assert!(std::fs::metadata(&shot).expect("a PNG").len() > 1000);
        }
    }
}

#[tokio::test]
async fn the_dashboard_signs_in_lists_checks_and_breaks_a_run_into_phases() {
    let h = history().await;
    let tokens = Tokens::new(&h.db).await;
    let web = Web::start(&h.db, &[]).await;
    seed(&h, &web, &tokens.admin).await;
    let base = format!("http://{}", web.addr);
    let mut page = Browser::launch().await.expect("browser");
    page.viewport(1280, 900).await.expect("viewport");

    // Signed out, the dashboard is the sign-in form.
    page.open(&format!("{base}/")).await.expect("open");
    assert_eq!(path(&mut page).await, "/login");
    page.type_into("#token", &tokens.admin).await.expect("type");
    page.click("form button[type=submit]").await.expect("submit");
    page.wait_for_load().await.expect("signed in");
    assert_eq!(path(&mut page).await, "/");

    // The table: every check, its state as a word, a sparkline with a line.
    assert_eq!(rows(&mut page).await, 5);
    let state: String = page
        .eval_as("document.querySelector('tr[data-check=payments] .state').textContent")
        .await
        .expect("state");
    assert_eq!(state, "Down");
    let lines: u64 =
        page.eval_as("document.querySelectorAll('svg.sparkline polyline').length").await.expect("lines");
    assert!(lines >= 4, "{lines} sparkline lines");

    // It refreshes in place: new rows arrive, the page is not reloaded.
    page.eval("window.__stillHere = true").await.expect("mark");
    assert!(until(&mut page, "document.getElementById('checks').hasAttribute('data-refreshed')", 20).await);
    assert!(
        page.eval_as::<bool>("window.__stillHere === true").await.expect("mark"),
        "the page was reloaded"
    );
    assert_eq!(rows(&mut page).await, 5);

    // A filter (a plain GET form).
    page.type_into("input[name=q]", "sho").await.expect("type");
    page.click(".filters button[type=submit]").await.expect("filter");
    page.wait_for_load().await.expect("filtered");
    assert_eq!(rows(&mut page).await, 1);
    assert_eq!(page.eval_as::<String>("location.search").await.expect("query"), "?state=&label=&q=sho");

    // The check page: the phase breakdown, as a bar and as text.
    page.open(&format!("{base}/checks/shop")).await.expect("check page");
    let phases: Vec<String> = page
        .eval_as("Array.from(document.querySelectorAll('#phase-breakdown rect[data-phase]')).map(r => r.dataset.phase)")
        .await
        .expect("phases");
    assert_eq!(phases, ["dns", "connect", "tls", "first_byte", "rest"]);
    let legend: String =
        page.eval_as("document.querySelector('.phase-legend').textContent").await.expect("legend");
    for phase in ["DNS", "Connect", "TLS", "First byte", "Rest"] {
        assert!(legend.contains(phase), "{legend}");
    }
    let bars: u64 =
        page.eval_as("document.querySelectorAll('.history-bars [data-day]').length").await.expect("bars");
    assert_eq!(bars, 90);
    // Shaded by the stylesheet (the bars carry classes, not fills): an up day is base.css's green.
    let fill: String = page
        .eval_as("getComputedStyle(document.querySelector('.history-bars .bar.up')).fill")
        .await
        .expect("fill");
    assert_eq!(fill, "rgb(26, 127, 55)", "light mode's --up");
    assert_eq!(page.problems().await, Vec::<String>::new(), "console errors or CSP violations");

    screenshots(&mut page, &format!("{base}/"), "dashboard").await;
    screenshots(&mut page, &format!("{base}/checks/search"), "dashboard-check").await;
    for list in ["incidents", "maintenance", "status-pages"] {
        page.open(&format!("{base}/{list}")).await.expect("list");
        assert_eq!(path(&mut page).await, format!("/{list}"));
    }

    // Pause from the page (an admin session): the state says so.
    page.viewport(1280, 900).await.expect("viewport");
    page.open(&format!("{base}/checks/shop")).await.expect("check page");
    page.click("#pause-button").await.expect("pause");
    page.wait_for_load().await.expect("paused");
    let state: String =
        page.eval_as("document.getElementById('check-state').textContent").await.expect("state");
    assert_eq!(state, "Paused");
    assert!(page.eval_as::<bool>("!!document.getElementById('resume-button')").await.expect("resume"));
    assert_eq!(page.problems().await, Vec::<String>::new(), "console errors or CSP violations");
}

#[tokio::test]
async fn a_bad_token_is_refused_in_the_browser() {
    let db = crate::support::TestDb::migrated(4).await;
    let web = Web::start(&db, &[]).await;
    let mut page = Browser::launch().await.expect("browser");
    page.viewport(360, 740).await.expect("viewport");
    page.open(&format!("http://{}/login", web.addr)).await.expect("open");
    page.type_into("#token", "sk8s_not-a-real-token").await.expect("type");
    page.click("form button[type=submit]").await.expect("submit");
    page.wait_for_load().await.expect("answer");
    assert_eq!(path(&mut page).await, "/login");
    let error: String =
        page.eval_as("document.getElementById('login-error').textContent").await.expect("error");
    assert!(error.contains("not an API token"), "{error}");
    let status: u64 =
        page.eval_as("performance.getEntriesByType('navigation')[0].responseStatus").await.expect("status");
    assert_eq!(status, 401);
    let cookies: String = page.eval_as("document.cookie").await.expect("cookies");
    assert_eq!(cookies, "", "no session (and an HttpOnly one would not show here anyway)");
    page.screenshot("dashboard-login-refused-phone-light").await.expect("screenshot");
    // The 401 itself is the only thing the browser may log.
    let problems: Vec<String> = page.problems().await.into_iter().filter(|p| !p.contains("401")).collect();
    assert_eq!(problems, Vec::<String>::new());
}
