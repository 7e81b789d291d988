//! Status pages over HTTP against the real binary and database: pages
//! declared in a checks file and through `/api/v1/status-pages` (CRUD,
//! 409 across owners, 422 with JSON pointers), `/status/{slug}` (what it
//! shows, what it never reveals, 404 for private pages without a token,
//! `ETag` and `Cache-Control`), `summary.json` against Statuspage's field
//! names and enums, and badges (SVG and shields.io JSON, visibility).
//! History is web_bed's worked example: `api` (label team=web, a secret in
//! its headers, an open incident) and `idle` (no data).

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::checks_cli::{sentryk8s, temp_dir};
use crate::support::TestDb;
use crate::web_bed::{history, Answer, History, Tokens, Web, SECRET};

/// A public page selecting `api` by label, and a private one with `idle`.
pub const PAGES: &str = "
status_pages:
  - slug: public
    title: Example status
    description: What our customers see
    public: true
    show_response_times: true
    groups:
      - name: Web
        labels: { team: web }
  - slug: internal
    title: Internal
    groups:
      - name: Everything
        checks: [idle, api]
";

/// Applies `text` as a checks file; the run's exit code and output.
pub fn apply(db: &TestDb, text: &str) -> (Option<i32>, String) {
    let dir = temp_dir();
    std::fs::write(dir.join("pages.yaml"), text).expect("write pages file");
    let run = sentryk8s(Some(db), &dir, &["checks", "apply", "-f", "pages.yaml"], &[], "");
    (run.code, run.all())
}

/// The worked example with [`PAGES`] applied, and a web role.
pub async fn bed() -> (History, Tokens, Web) {
    let h = history().await;
    let (code, out) = apply(&h.db, PAGES);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("+ status page public created") && out.contains("+ status page internal created"),
        "{out}"
    );
    let tokens = Tokens::new(&h.db).await;
    let web = Web::start(&h.db, &[]).await;
    (h, tokens, web)
}

/// `GET path` with extra request headers.
async fn get_with(web: &Web, path: &str, headers: &[(&str, &str)]) -> Answer {
    let stream = tokio::net::TcpStream::connect(web.addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder().method("GET").uri(path).header("host", web.addr.to_string());
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(Full::new(Bytes::new())).expect("request");
    let response = tokio::time::timeout(Duration::from_secs(20), sender.send_request(request))
        .await
        .expect("answered in time")
        .expect("response");
    let (parts, incoming) = response.into_parts();
    let body = incoming.collect().await.expect("body").to_bytes().to_vec();
    Answer { status: parts.status.as_u16(), headers: parts.headers, body }
}

fn header(a: &Answer, name: &str) -> String {
    a.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

/// What no page, summary or badge may ever contain: the secret, the
/// check's URL and headers.
fn assert_reveals_nothing(text: &str) {
    for secret in [SECRET, "127.0.0.1:18080", "/health", "X-Api-Key", "HTTP 401"] {
        assert!(!text.contains(secret), "{secret:?} leaked:\n{text}");
    }
}

#[tokio::test]
async fn a_public_page_shows_its_checks_and_reveals_nothing_else() {
    let (_h, _tokens, web) = bed().await;
    let page = web.get("/status/public", None).await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(page.content_type(), "text/html");
    let html = page.text();
    assert!(html.contains("<h1>Example status</h1>") && html.contains("What our customers see"), "{html}");
    assert!(html.contains("data-check=\"api\""), "{html}");
    assert!(!html.contains("data-check=\"idle\"") && !html.contains(">idle<"), "a private check leaked");
    assert_eq!(html.matches("data-day=\"").count(), 90, "90 daily bars for the one check");
    // 30 days: 3,000 s up and 300 s down two days ago (web_bed's timeline).
    assert!(html.contains("<dd data-window=\"30d\">90.90 %</dd>"), "{html}");
    assert!(html.contains("<dd data-window=\"90d\">90.90 %</dd>"), "{html}");
    assert!(html.contains("Active incidents") && html.contains("api is down"), "the open incident");
    assert!(html.contains("Outage confirmed") || html.contains("First failed check"));
    assert!(html.contains("class=\"response\""), "show_response_times draws the chart");
    assert!(!html.contains("style=") && !html.contains("<script>"), "the CSP allows neither");
    assert_reveals_nothing(&html);

    assert_eq!(header(&page, "cache-control"), "public, max-age=30");
    let csp = header(&page, "content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{csp}");
    let tag = header(&page, "etag");
    assert!(tag.starts_with('"'), "{tag}");
    let again = get_with(&web, "/status/public", &[("if-none-match", &tag)]).await;
    assert_eq!(again.status, 304, "an unchanged page is not sent again");
    assert!(again.body.is_empty());

    // Gzipped once (the pages' own level; the web role's layer leaves it),
    // and varying by Accept-Encoding once.
    let gzip = get_with(&web, "/status/public", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gzip.status, 200);
    assert_eq!(gzip.headers.get_all("content-encoding").iter().collect::<Vec<_>>(), ["gzip"]);
    assert!(
        gzip.body.starts_with(&[0x1f, 0x8b]) && gzip.body.len() * 4 < page.body.len(),
        "{}",
        gzip.body.len()
    );
    let vary: Vec<_> = gzip.headers.get_all("vary").iter().filter_map(|v| v.to_str().ok()).collect();
    assert_eq!(vary.join(",").to_ascii_lowercase().matches("accept-encoding").count(), 1, "{vary:?}");
    assert_ne!(header(&gzip, "etag"), tag, "another representation, another tag");

    // The assets it names are served.
    for asset in ["/assets/status.css", "/assets/status.js", "/assets/base.css"] {
        assert_eq!(web.get(asset, None).await.status, 200, "{asset}");
    }
}

#[tokio::test]
async fn a_private_page_is_not_found_without_a_token_and_unknown_pages_neither() {
    let (_h, tokens, web) = bed().await;
    let anonymous = web.get("/status/internal", None).await;
    assert_eq!(anonymous.status, 404, "{}", anonymous.text());
    assert!(!anonymous.text().contains("Internal"));
    assert_eq!(web.get("/status/internal/summary.json", None).await.status, 404);
    let bad = web.get("/status/internal", Some("sk8_not-a-real-token")).await;
    assert_eq!(bad.status, 404, "a bad token is no token");

    let page = web.get("/status/internal", Some(&tokens.read)).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(html.contains("data-check=\"idle\"") && html.contains("data-check=\"api\""));
    assert_eq!(html.matches("data-day=\"").count(), 180);
    assert!(html.contains("<dd data-window=\"24h\">no data</dd>"), "idle has no data");
    assert_ne!(
        header(&page, "cache-control"),
        "public, max-age=30",
        "a private page is not shared-cacheable"
    );
    assert_reveals_nothing(&html);

    assert_eq!(web.get("/status/nope", Some(&tokens.admin)).await.status, 404);
    // web.public_read opens private pages to anonymous readers.
    let open = Web::start(&_h.db, &[("SENTRYK8S_WEB__PUBLIC_READ", "true")]).await;
    assert_eq!(open.get("/status/internal", None).await.status, 200);
}

#[tokio::test]
async fn summary_json_has_statuspage_field_names_and_enums() {
    let (_h, _tokens, web) = bed().await;
    let answer = web.get("/status/public/summary.json", None).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.content_type(), "application/json");
    assert_eq!(header(&answer, "cache-control"), "public, max-age=30");
    let s = answer.json();
    assert_reveals_nothing(&s.to_string());
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> =
            v.as_object().unwrap_or_else(|| panic!("object: {v}")).keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&s), ["components", "incidents", "page", "scheduled_maintenances", "status"]);
    assert_eq!(keys(&s["page"]), ["id", "name", "time_zone", "updated_at", "url"]);
    assert_eq!(s["page"]["name"], "Example status");
    assert!(s["page"]["url"].as_str().unwrap().ends_with("/status/public"));
    assert_eq!(keys(&s["status"]), ["description", "indicator"]);
    let indicator = s["status"]["indicator"].as_str().unwrap();
    assert!(["none", "minor", "major", "critical", "maintenance"].contains(&indicator), "{indicator}");

    let component_statuses =
        ["operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"];
    let components = s["components"].as_array().unwrap();
    assert_eq!(components.len(), 2, "the group and api: {s}");
    for c in components {
        for k in [
            "id",
            "name",
            "status",
            "created_at",
            "updated_at",
            "position",
            "description",
            "showcase",
            "group_id",
            "page_id",
            "group",
            "only_show_if_degraded",
        ] {
            assert!(c.get(k).is_some(), "component without {k}: {c}");
        }
        assert!(component_statuses.contains(&c["status"].as_str().unwrap()), "{c}");
        assert_eq!(c["page_id"], "public");
    }
    let group = &components[0];
    assert_eq!((group["group"].clone(), group["name"].clone()), (json!(true), json!("Web")));
    assert_eq!(group["components"], json!(["api"]));
    let api = &components[1];
    assert_eq!(
        (api["id"].clone(), api["group"].clone(), api["group_id"].clone()),
        (json!("api"), json!(false), group["id"].clone())
    );
    assert!(components.iter().all(|c| c["name"] != "idle"), "a private check leaked");

    let incidents = s["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "the open incident only: {s}");
    let i = &incidents[0];
    for k in [
        "id",
        "name",
        "status",
        "created_at",
        "updated_at",
        "monitoring_at",
        "resolved_at",
        "impact",
        "shortlink",
        "started_at",
        "page_id",
        "incident_updates",
        "components",
    ] {
        assert!(i.get(k).is_some(), "incident without {k}: {i}");
    }
    assert!(["investigating", "identified", "monitoring", "resolved", "postmortem"]
        .contains(&i["status"].as_str().unwrap()));
    assert!(["none", "minor", "major", "critical"].contains(&i["impact"].as_str().unwrap()));
    assert_eq!(i["components"][0]["id"], "api");
    assert!(s["scheduled_maintenances"].is_array());
}

#[tokio::test]
async fn badges_follow_the_pages_visibility() {
    let (_h, tokens, web) = bed().await;
    let svg = web.get("/badge/api/status.svg", None).await;
    assert_eq!(svg.status, 200, "{}", svg.text());
    assert_eq!(svg.content_type(), "image/svg+xml");
    assert!(svg.text().starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.text().contains("<title>api: "), "{}", svg.text());
    assert_eq!(header(&svg, "cache-control"), "public, max-age=30");
    assert_reveals_nothing(&svg.text());

    let uptime = web.get("/badge/api/uptime/30d.json", None).await.json();
    assert_eq!(
        uptime,
        json!({"schemaVersion": 1, "label": "uptime 30d", "message": "90.90%", "color": "orange"})
    );
    let day = web.get("/badge/api/uptime/24h.svg", None).await;
    assert_eq!(day.status, 200);
    let latency = web.get("/badge/api/response-time/30d.json", None).await.json();
    assert_eq!(
        (latency["schemaVersion"].clone(), latency["label"].clone()),
        (json!(1), json!("response time 30d"))
    );
    assert!(latency["message"].as_str().unwrap().ends_with(" ms"), "{latency}");
    let status = web.get("/badge/api/status.json", None).await.json();
    assert_eq!(status["label"], "api");

    // idle is on the private page only: its badges do not exist for strangers.
    for path in ["/badge/idle/status.svg", "/badge/idle/uptime/7d.json", "/badge/idle/response-time/24h.svg"]
    {
        assert_eq!(web.get(path, None).await.status, 404, "{path}");
        assert_eq!(web.get(path, Some(&tokens.read)).await.status, 200, "{path}");
    }
    let private = web.get("/badge/idle/status.json", Some(&tokens.read)).await.json();
    assert_eq!(private["message"], "no data");
    for path in [
        "/badge/nope/status.svg",
        "/badge/api/uptime/1y.svg",
        "/badge/api/uptime/30d.png",
        "/badge/api/other.svg",
    ] {
        assert_eq!(web.get(path, Some(&tokens.admin)).await.status, 404, "{path}");
    }
}

#[tokio::test]
async fn pages_are_written_through_the_api_with_ownership_and_pointed_errors() {
    let (h, tokens, web) = bed().await;
    let (read, write, admin) =
        (Some(tokens.read.as_str()), Some(tokens.write.as_str()), Some(tokens.admin.as_str()));
    let list = web.get("/api/v1/status-pages", read).await;
    assert_eq!(list.status, 200, "{}", list.text());
    let list = list.json();
    let slugs: Vec<&str> = list.as_array().unwrap().iter().map(|p| p["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["internal", "public"]);
    assert_eq!(list[1]["owner"], "file");
    assert_eq!(list[1]["groups"][0]["labels"]["team"], "web");
    assert_eq!(web.get("/api/v1/status-pages", None).await.status, 401);

    let body =
        json!({"title": "Ops", "public": true, "groups": [{"name": "All", "checks": ["api", "idle"]}]});
    web.call("PUT", "/api/v1/status-pages/ops", read, Some(body.clone())).await.assert_problem(403, "");
    let created = web.call("PUT", "/api/v1/status-pages/ops", write, Some(body.clone())).await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(
        (created.json()["owner"].clone(), created.json()["url"].clone()),
        (json!("api"), json!("/status/ops"))
    );
    let updated = web
        .call(
            "PUT",
            "/api/v1/status-pages/ops",
            write,
            Some(json!({"title": "Ops 2", "groups": [{"name": "A", "checks": ["api"]}]})),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    assert_eq!(web.get("/api/v1/status-pages/ops", read).await.json()["title"], "Ops 2");
    assert_eq!(web.get("/status/ops", None).await.status, 404, "now private");

    let bad = web
        .call(
            "PUT",
            "/api/v1/status-pages/ops",
            write,
            Some(json!({"title": "", "logo_url": "https://cdn.example.com/x.png", "groups": [{"name": "A", "checks": ["api", "nope"]}, {"name": "B", "labels": {"team": "nobody"}}]})),
        )
        .await;
    bad.assert_problem(422, "2 problems");
    let pointers: Vec<String> = bad.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pointers, ["/logo_url", "/title"], "in the order of the body as the validator read it");
    let unresolved = web
        .call("PUT", "/api/v1/status-pages/ops", write, Some(json!({"title": "T", "groups": [{"name": "A", "checks": ["api", "nope"]}, {"name": "B", "labels": {"team": "nobody"}}]})))
        .await;
    unresolved.assert_problem(422, "2 problems");
    let errors = unresolved.json()["errors"].clone();
    assert_eq!(errors[0]["pointer"], "/groups/0/checks/1");
    assert!(errors[0]["detail"].as_str().unwrap().contains("unknown check `nope`"));
    assert_eq!(errors[1]["pointer"], "/groups/1/labels");
    assert_eq!(
        web.get("/api/v1/status-pages/ops", read).await.json()["title"],
        "Ops 2",
        "nothing stored is lost"
    );

    // A file's page is not the API's to change, unless an admin forces it.
    web.call("PUT", "/api/v1/status-pages/public", write, Some(body.clone()))
        .await
        .assert_problem(409, "status page \"public\" is owned by file");
    web.call("DELETE", "/api/v1/status-pages/public", write, None).await.assert_problem(409, "");
    web.call("PUT", "/api/v1/status-pages/public?force=true", write, Some(body.clone()))
        .await
        .assert_problem(403, "");
    // …and an API page is not the file's: apply refuses, naming the place.
    let (code, out) = apply(&h.db, &PAGES.replace("slug: internal", "slug: ops"));
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("pages.yaml:11:11: status_pages[1].slug: status page \"ops\" is owned by the API"),
        "{out}"
    );
    let forced = web.call("PUT", "/api/v1/status-pages/internal?force=true", admin, Some(body)).await;
    assert_eq!(forced.status, 200, "{}", forced.text());
    assert_eq!(forced.json()["owner"], "api");

    assert_eq!(web.call("DELETE", "/api/v1/status-pages/ops", write, None).await.status, 204);
    web.get("/api/v1/status-pages/ops", read).await.assert_problem(404, "no status page \"ops\"");
    web.call("DELETE", "/api/v1/status-pages/ops", write, None).await.assert_problem(404, "");
}

#[tokio::test]
async fn a_checks_file_page_is_validated_resolved_and_pruned() {
    let (h, _tokens, web) = bed().await;
    let (code, out) = apply(
        &h.db,
        "status_pages:
  - slug: broken
    title: Broken
    groups:
      - name: A
        checks: [api, apii]
      - name: B
        labels: { team: nobody }
",
    );
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("pages.yaml:6:23: status_pages[0].groups[0].checks[1]: unknown check `apii`"),
        "{out}"
    );
    let (code, out) = apply(
        &h.db,
        "status_pages:
  - slug: broken
    title: Broken
    groups:
      - name: B
        labels: { team: nobody }
",
    );
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "pages.yaml:6:19: status_pages[0].groups[0].labels: the selector team=nobody selects no check"
        ),
        "{out}"
    );
    assert_eq!(web.get("/status/broken", None).await.status, 404, "nothing was written");

    // Applying the same file again changes nothing; an edit updates.
    let (code, out) = apply(&h.db, PAGES);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("status page public"), "unchanged: {out}");
    let (code, out) = apply(&h.db, &PAGES.replace("title: Internal", "title: Internal 2"));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("~ status page internal updated: title"), "{out}");
    // --prune deletes a file page no file declares.
    let dir = temp_dir();
    std::fs::write(dir.join("p.yaml"), PAGES.split("  - slug: internal").next().unwrap()).expect("write");
    let run = sentryk8s(Some(&h.db), &dir, &["checks", "apply", "--prune", "-f", "p.yaml"], &[], "");
    assert!(run.all().contains("- status page internal deleted"), "{}", run.all());
    assert_eq!(web.get("/api/v1/status-pages/internal", Some(&_tokens.read)).await.status, 404);
}
