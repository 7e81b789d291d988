//! The operator dashboard over plain HTTP, through the real binary
//! (`sentryk8s web`) on a database with history (`web_bed::history`):
//! sign-in with a token (cookie flags, only the session id's digest
//! stored), a bad token refused with 401 and a message, sign-out, a revoked
//! or expired token ending its sessions within a second, the CSRF secret
//! and scopes guarding pause and resume (read: no button and 403; write:
//! API-owned checks; admin: also file-owned ones), the masked spec and the
//! phase breakdown on the check page, the filters and the refresh
//! fragment, and the lists. The browser test is `web_dashboard_browser.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{Duration as Span, Utc};
use serde_json::json;

use crate::support::{eventually, TestDb};
use crate::web_auth::{request, Answer};
use crate::web_bed::{self, history, Tokens, Web, SECRET};
use sentryk8s::tokens::{self, Scope};

/// A form POST (or a GET when `form` is `None`) with `cookie`.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Answer {
    let cookie_header = cookie.map(|c| format!("sentryk8s_session={c}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(c) = &cookie_header {
        headers.push(("Cookie", c));
    }
    if form.is_some() {
        headers.push(("Content-Type", "application/x-www-form-urlencoded"));
    }
    request(addr, method, path, &headers, form.unwrap_or("").as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

async fn get(addr: SocketAddr, path: &str, cookie: &str) -> Answer {
    call(addr, "GET", path, Some(cookie), None).await
}

fn form_token(token: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new()).append_pair("token", token).finish()
}

/// Signs in with `token`; the session cookie's value.
async fn sign_in(addr: SocketAddr, token: &str) -> String {
    let answer = call(addr, "POST", "/login", None, Some(&form_token(token))).await;
    assert_eq!(answer.status, 303, "{}", answer.text());
    assert_eq!(answer.header("location"), Some("/"));
    cookie_of(&answer).expect("a session cookie")
}

/// The session id a `Set-Cookie` answer stores.
fn cookie_of(answer: &Answer) -> Option<String> {
    let set = answer.header("set-cookie")?;
    let value = set.strip_prefix("sentryk8s_session=")?.split(';').next()?;
    (!value.is_empty()).then(|| value.to_string())
}

/// The CSRF secret a page's forms carry.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF field") + 19;
    page[at..].split('"').next().expect("a value").to_string()
}

fn csrf_form(csrf: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new()).append_pair("csrf", csrf).finish()
}

async fn enabled(db: &TestDb, name: &str) -> bool {
    let client = db.client().await;
    client.query_one("SELECT enabled FROM checks WHERE name = $1", &[&name]).await.expect("the check").get(0)
}

/// A check the API owns, created through the API.
async fn api_check(web: &Web, admin: &str, name: &str) {
    let body = json!({"url": "http://127.0.0.1:9/", "interval": "60s"});
    let answer = web.call("PUT", &format!("/api/v1/checks/{name}"), Some(admin), Some(body)).await;
    assert_eq!(answer.status, 201, "{}", answer.text());
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_a_bad_token_is_refused() {
    let h = history().await;
    let tokens = Tokens::new(&h.db).await;
    let web = Web::start(&h.db, &[]).await;

    // Signed out: the dashboard sends people to the form.
    let answer = call(web.addr, "GET", "/", None, None).await;
    assert_eq!((answer.status, answer.header("location")), (303, Some("/login")), "{}", answer.text());
    let form = call(web.addr, "GET", "/login", None, None).await;
    assert_eq!(form.status, 200);
    assert!(form.text().contains("<form") && form.text().contains("name=\"token\""), "{}", form.text());

    // Bad tokens: 401, the form again, a message saying what was wrong, no cookie.
    for (token, says) in [
        ("", "paste an API token"),
        ("hunter2", "that is not an API token"),
        (tokens::generate().expect("random").as_str(), "this token is unknown, expired or revoked"),
    ] {
        let answer = call(web.addr, "POST", "/login", None, Some(&form_token(token))).await;
        assert_eq!(answer.status, 401, "{token}: {}", answer.text());
        assert!(answer.text().contains(says), "{token}: {}", answer.text());
        assert!(answer.text().contains("name=\"token\""), "the form is shown again");
        assert!(answer.header("set-cookie").is_none(), "{token}");
    }

    // A good token: 303 to the dashboard with the cookie.
    let answer = call(web.addr, "POST", "/login", None, Some(&form_token(&tokens.read))).await;
    assert_eq!(answer.status, 303, "{}", answer.text());
    let set = answer.header("set-cookie").expect("Set-Cookie").to_string();
    assert!(
        set.contains("; HttpOnly") && set.contains("; SameSite=Strict") && set.contains("; Path=/"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP: no Secure ({set})");
    let cookie = cookie_of(&answer).expect("a session id");
    assert!(!set.contains(&tokens.read), "the token never goes into the cookie");

    // Behind a TLS-terminating proxy, the cookie is Secure.
    let body = form_token(&tokens.read);
    let over_tls = request(
        web.addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded"), ("X-Forwarded-Proto", "https")],
        body.as_bytes(),
    )
    .await
    .expect("answer");
    assert!(over_tls.header("set-cookie").expect("Set-Cookie").ends_with("; Secure"));

    // A sign-in posted from another site is refused (login CSRF).
    let cross = request(
        web.addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded"), ("Sec-Fetch-Site", "cross-site")],
        body.as_bytes(),
    )
    .await
    .expect("answer");
    assert_eq!(cross.status, 403, "{}", cross.text());
    assert!(cross.header("set-cookie").is_none());

    // Only the id's digest is stored.
    let client = h.db.client().await;
    let stored = |id: String| {
        let client = &client;
        async move {
            let n: i64 = client
                .query_one("SELECT count(*) FROM web_sessions WHERE id_sha256 = $1", &[&id])
                .await
                .expect("count")
                .get(0);
            n
        }
    };
    assert_eq!(stored(cookie.clone()).await, 0);
    assert_eq!(stored(tokens::digest(&cookie)).await, 1);

    // Signed in: the table, with every check.
    let page = get(web.addr, "/", &cookie).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let text = page.text();
    assert!(text.contains("data-check=\"api\"") && text.contains("data-check=\"idle\""), "{text}");
    assert!(text.contains("Signed in as <strong>reader</strong> (read)"), "{text}");
    assert!(text.contains("<svg class=\"sparkline\""), "a sparkline per row");
    assert!(!text.contains(SECRET), "no secret on the page");
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    let script = call(web.addr, "GET", "/assets/dashboard.js", None, None).await;
    assert_eq!((script.status, script.header("content-type")), (200, Some("text/javascript; charset=utf-8")));
    // The sign-in form is skipped when already signed in.
    let again = get(web.addr, "/login", &cookie).await;
    assert_eq!((again.status, again.header("location")), (303, Some("/")));
    // A made-up cookie is no session.
    let forged = get(web.addr, "/", "not-a-session").await;
    assert_eq!((forged.status, forged.header("location")), (303, Some("/login")));
    assert!(
        !web.bin.output().contains(&tokens.read) && !web.bin.output().contains(&cookie),
        "nothing secret logged"
    );
}

#[tokio::test]
async fn sign_out_ends_the_session_and_needs_its_csrf_secret() {
    let h = history().await;
    let tokens = Tokens::new(&h.db).await;
    let web = Web::start(&h.db, &[]).await;
    let cookie = sign_in(web.addr, &tokens.read).await;
    let csrf = csrf_of(&get(web.addr, "/", &cookie).await.text());

    let refused = call(web.addr, "POST", "/logout", Some(&cookie), Some("csrf=wrong")).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(get(web.addr, "/", &cookie).await.status, 200, "still signed in");

    let out = call(web.addr, "POST", "/logout", Some(&cookie), Some(&csrf_form(&csrf))).await;
    assert_eq!((out.status, out.header("location")), (303, Some("/login")), "{}", out.text());
    assert!(out.header("set-cookie").expect("the cookie is cleared").contains("Max-Age=0"));
    let after = get(web.addr, "/", &cookie).await;
    assert_eq!((after.status, after.header("location")), (303, Some("/login")));
    let n: i64 =
        h.db.client().await.query_one("SELECT count(*) FROM web_sessions", &[]).await.expect("count").get(0);
    assert_eq!(n, 0, "the session row is gone");
}

#[tokio::test]
async fn a_revoked_or_expired_token_ends_its_sessions_within_a_second() {
    let h = history().await;
    let tokens = Tokens::new(&h.db).await;
    let web = Web::start(&h.db, &[]).await;
    let ended = |cookie: String| async move {
        let answer = get(web.addr, "/", &cookie).await;
        answer.status == 303 && answer.header("location") == Some("/login")
    };

    let cookie = sign_in(web.addr, &tokens.read).await;
    assert_eq!(get(web.addr, "/", &cookie).await.status, 200);
    tokens::store::revoke(&h.db.client().await, "reader").await.expect("revoke");
    let started = std::time::Instant::now();
    assert!(
        eventually(Duration::from_secs(5), || ended(cookie.clone())).await,
        "a revoked token's session lives on"
    );
    assert!(started.elapsed() < Duration::from_millis(2500), "took {:?}", started.elapsed());

    let cookie = sign_in(web.addr, &tokens.write).await;
    assert_eq!(get(web.addr, "/", &cookie).await.status, 200);
    h.db.client()
        .await
        .execute("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE name = 'writer'", &[])
        .await
        .expect("expire");
    assert!(
        eventually(Duration::from_secs(5), || ended(cookie.clone())).await,
        "an expired token's session lives on"
    );
    // And the expired token cannot sign in again.
    let answer = call(web.addr, "POST", "/login", None, Some(&form_token(&tokens.write))).await;
    assert_eq!(answer.status, 401);
}

#[tokio::test]
async fn pause_and_resume_need_write_and_the_sessions_csrf_secret() {
    let h = history().await;
    let tokens = Tokens::new(&h.db).await;
    let web = Web::start(&h.db, &[]).await;
    api_check(&web, &tokens.admin, "shop").await;
    let (reader, writer, admin) = (
        sign_in(web.addr, &tokens.read).await,
        sign_in(web.addr, &tokens.write).await,
        sign_in(web.addr, &tokens.admin).await,
    );

    // A read session sees no button and its POST is refused.
    let page = get(web.addr, "/checks/shop", &reader).await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(!page.text().contains("/checks/shop/pause"), "{}", page.text());
    assert!(page.text().contains("scope is read"));
    let csrf_read = csrf_of(&page.text());
    let refused =
        call(web.addr, "POST", "/checks/shop/pause", Some(&reader), Some(&csrf_form(&csrf_read))).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(enabled(&h.db, "shop").await);

    // A write session: the button; forged posts are 403.
    let page = get(web.addr, "/checks/shop", &writer).await;
    assert!(page.text().contains("action=\"/checks/shop/pause\""), "{}", page.text());
    let csrf = csrf_of(&page.text());
    for (cookie, form, why) in [
        (None, csrf_form(&csrf), "no session (a cross-site post carries no SameSite=Strict cookie)"),
        (Some(writer.as_str()), String::new(), "no CSRF field"),
        (Some(writer.as_str()), csrf_form("guess"), "a wrong secret"),
        (Some(writer.as_str()), csrf_form(&csrf_read), "another session's secret"),
    ] {
        let answer = call(web.addr, "POST", "/checks/shop/pause", cookie, Some(&form)).await;
        assert_eq!(answer.status, 403, "{why}: {}", answer.text());
        assert!(enabled(&h.db, "shop").await, "{why}");
    }
    let paused = call(web.addr, "POST", "/checks/shop/pause", Some(&writer), Some(&csrf_form(&csrf))).await;
    assert_eq!((paused.status, paused.header("location")), (303, Some("/checks/shop")), "{}", paused.text());
    assert!(!enabled(&h.db, "shop").await);
    let page = get(web.addr, "/checks/shop", &writer).await.text();
    assert!(
        page.contains("id=\"check-state\">Paused<") && page.contains("action=\"/checks/shop/resume\""),
        "{page}"
    );
    // The table's filter finds it paused.
    let listed = get(web.addr, "/?state=paused", &writer).await.text();
    assert!(listed.contains("data-check=\"shop\"") && !listed.contains("data-check=\"api\""), "{listed}");
    let resumed = call(web.addr, "POST", "/checks/shop/resume", Some(&writer), Some(&csrf_form(&csrf))).await;
    assert_eq!(resumed.status, 303, "{}", resumed.text());
    assert!(enabled(&h.db, "shop").await);

    // A file's check: write gets no button and a 409; admin overrides it.
    let page = get(web.addr, "/checks/api", &writer).await.text();
    assert!(
        !page.contains("action=\"/checks/api/pause\"") && page.contains("declared in a checks file"),
        "{page}"
    );
    let conflict = call(web.addr, "POST", "/checks/api/pause", Some(&writer), Some(&csrf_form(&csrf))).await;
    assert_eq!(conflict.status, 409, "{}", conflict.text());
    assert!(enabled(&h.db, "api").await);
    let page = get(web.addr, "/checks/api", &admin).await.text();
    assert!(page.contains("until the next `checks apply`"), "{page}");
    let csrf_admin = csrf_of(&page);
    let paused =
        call(web.addr, "POST", "/checks/api/pause", Some(&admin), Some(&csrf_form(&csrf_admin))).await;
    assert_eq!(paused.status, 303, "{}", paused.text());
    assert!(!enabled(&h.db, "api").await);

    let missing =
        call(web.addr, "POST", "/checks/nope/pause", Some(&admin), Some(&csrf_form(&csrf_admin))).await;
    assert_eq!(missing.status, 404);
    assert_eq!(get(web.addr, "/checks/nope", &admin).await.status, 404);
}

#[tokio::test]
async fn the_check_page_masks_the_spec_and_breaks_a_run_into_phases() {
    let h = history().await;
    let tokens = Tokens::new(&h.db).await;
    web_bed_recent_run(&h).await;
    let web = Web::start(&h.db, &[]).await;
    let cookie = sign_in(web.addr, &tokens.read).await;

    let page = get(web.addr, "/checks/api", &cookie).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let text = page.text();
    assert!(!text.contains(SECRET), "a secret reached the page:\n{text}");
    let spec = &text[text.find("id=\"spec\"").expect("the spec")..];
    assert!(spec.contains("X-Api-Key") && spec.contains("***"), "the header is shown, masked: {spec}");
    // The newest run's phases: bar segments and the same figures as text.
    for (phase, ms) in [
        ("dns", "4.0 ms"),
        ("connect", "6.0 ms"),
        ("tls", "10.0 ms"),
        ("first_byte", "30.0 ms"),
        ("rest", "30.0 ms"),
    ] {
        assert!(text.contains(&format!("data-phase=\"{phase}\"")), "{phase}: {text}");
        assert!(text.contains(&format!("<li data-phase=\"{phase}\">")), "{phase}");
        assert!(text.contains(ms), "{phase} {ms}");
    }
    // Incidents of the check, errors scrubbed.
    assert!(text.contains("recovered") && text.contains(">open<"), "{text}");
    // The 90 daily bars (the day of the timeline at 90.91 % up) and both charts.
    assert_eq!(text.matches("data-day=\"").count(), 90, "90 daily bars");
    let day = h.base.format("%Y-%m-%d").to_string();
    assert!(text.contains(&format!("data-day=\"{day}\"")), "{text}");
    assert!(
        text.contains("api response time, last 24 hours") && text.contains("api response time, last 30 days")
    );

    // The table: filters by state, label and name; a bad filter says why.
    let down = get(web.addr, "/?q=ap", &cookie).await.text();
    assert!(down.contains("data-check=\"api\"") && !down.contains("data-check=\"idle\""));
    let labelled = get(web.addr, "/?label=team%3Dweb", &cookie).await.text();
    assert!(labelled.contains("data-check=\"api\"") && !labelled.contains("data-check=\"idle\""));
    let unknown = get(web.addr, "/?state=unknown", &cookie).await.text();
    assert!(unknown.contains("data-check=\"idle\""), "{unknown}");
    let bad = get(web.addr, "/?state=sleeping", &cookie).await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.text().contains("state: &#34;sleeping&#34; is not one of up, down, unknown, paused"),
        "{}",
        bad.text()
    );
    // The refresh fragment: rows only, same filters.
    let rows = get(web.addr, "/partials/checks?q=ap", &cookie).await;
    assert_eq!(rows.status, 200);
    assert!(rows.text().contains("data-check=\"api\"") && !rows.text().contains("<html"), "{}", rows.text());
    // Without a session the fragment redirects (dashboard.js then reloads).
    let signed_out = call(web.addr, "GET", "/partials/checks", None, None).await;
    assert_eq!(signed_out.status, 303);

    // The lists.
    let incidents = get(web.addr, "/incidents?open=1", &cookie).await.text();
    assert!(incidents.contains("data-check=\"api\"") && incidents.contains(">open<"), "{incidents}");
    let windows = get(web.addr, "/maintenance", &cookie).await.text();
    assert!(windows.contains("data-window=\"deploy\"") && windows.contains("checks: api"), "{windows}");
    h.db.client()
        .await
        .execute(
            "INSERT INTO status_pages (slug, spec, owner)
             VALUES ('shop', '{\"title\": \"Shop status\", \"public\": true, \"groups\": []}', 'api'),
                    ('ops', '{\"title\": \"Operations\", \"groups\": []}', 'api')",
            &[],
        )
        .await
        .expect("status pages");
    let pages = get(web.addr, "/status-pages", &cookie).await;
    assert_eq!(pages.status, 200, "{}", pages.text());
    let text = pages.text();
    assert!(text.contains("<a href=\"/status/shop\">") && text.contains("Shop status"), "{text}");
    assert!(text.contains("<a href=\"/status/ops\">") && text.contains("private (signed-in only)"), "{text}");
    // The session opens the private page it links to (session::Viewer); nobody else sees it.
    assert_eq!(call(web.addr, "GET", "/status/ops", None, None).await.status, 404);
    assert_eq!(get(web.addr, "/status/ops", "not-a-session").await.status, 404);
    let private = get(web.addr, "/status/ops", &cookie).await;
    assert_eq!(private.status, 200, "{}", private.text());
}

/// A run of `api` a minute ago with every phase timed: DNS 4, connect 6,
/// TLS 10, first byte 30 of 80 ms (so the rest is 30 ms).
async fn web_bed_recent_run(h: &web_bed::History) {
    let client = h.db.client().await;
    client
        .execute("SELECT sentryk8s_ensure_result_partitions(current_date, 2)", &[])
        .await
        .expect("partitions");
    let slot = Utc::now() - Span::minutes(1);
    client
        .execute(
            "INSERT INTO check_results (check_id, slot, started_at, success, status_code, total_ms, dns_ms,
                                        connect_ms, tls_ms, first_byte_ms, state, interval_ms, worker)
             VALUES ($1, $2, $2, true, 200, 80, 4, 6, 10, 30, 'up', 60000, 'worker-0')",
            &[&h.api, &slot],
        )
        .await
        .expect("a recent run");
}

/// Every scope signs in, and the header names the token and its scope.
#[tokio::test]
async fn every_scope_can_sign_in() {
    let db = TestDb::migrated(4).await;
    let web = Web::start(&db, &[]).await;
    for scope in [Scope::Read, Scope::Write, Scope::Admin] {
        let token = web_bed::token(&db, &format!("t-{scope}"), scope).await;
        let cookie = sign_in(web.addr, &token).await;
        let page = get(web.addr, "/", &cookie).await.text();
        assert!(page.contains(&format!("({scope})")), "{page}");
    }
}
