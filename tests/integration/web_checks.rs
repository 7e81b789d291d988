//! `/api/v1/checks` against a real database, served in-process (the
//! router the `web` role serves, called request by request), and
//! `checks apply` through the real binary for ownership: list filters and
//! uptime, masked secrets, PUT (created, updated, unchanged without a
//! write, dry run, JSON and YAML, 415, 422 with pointers), DELETE, pause
//! and resume, 409 for file-owned checks and an admin's force, and apply
//! keeping away from API-owned checks.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use tower::ServiceExt;

use sentryk8s::tokens::{self, Scope};
use sentryk8s::web::{app, AppState};

use crate::checks_cli::{sentryk8s, temp_dir};
use crate::support::TestDb;

/// The API of one test database, with a token of each scope.
struct Api {
    db: TestDb,
    app: Router,
    read: String,
    write: String,
    admin: String,
}

/// What a request answered.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    json: Value,
}

async fn token(db: &TestDb, name: &str, scope: Scope) -> String {
    let token = tokens::generate().expect("token");
    let client = db.client().await;
    tokens::store::create(&client, name, scope, &tokens::digest(&token), None).await.expect("store token");
    token
}

impl Api {
    async fn new() -> Api {
        Api::with_allow_env(&[]).await
    }

    async fn with_allow_env(allow_env: &[&str]) -> Api {
        let db = TestDb::migrated(8).await;
        let app = Api::app(&db, allow_env);
        let read = token(&db, "reader", Scope::Read).await;
        let write = token(&db, "writer", Scope::Write).await;
        let admin = token(&db, "admin", Scope::Admin).await;
        Api { db, app, read, write, admin }
    }

    fn app(db: &TestDb, allow_env: &[&str]) -> Router {
        let mut config = sentryk8s::config::Config::defaults().expect("defaults");
        config.database_url = db.url.clone();
        // Tests send bursts; the rate limit has its own tests.
        config.web.rate_limit_per_second = 10_000;
        config.web.rate_limit_burst = 10_000;
        config.checks.allow_env = allow_env.iter().map(|s| s.to_string()).collect();
        let pool = sentryk8s::db::pool(&config, "web-test").expect("pool");
        app(AppState::new(&config, pool))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &str)>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(format!("/api/v1{path}"));
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some((content_type, text)) => {
                request.header(header::CONTENT_TYPE, content_type).body(Body::from(text.to_string()))
            }
            None => request.body(Body::empty()),
        }
        .expect("request");
        let response = self.app.clone().oneshot(request).await.expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20).await.expect("body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, headers, text, json }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, Some(&self.read), None).await
    }

    async fn put_json(&self, path: &str, body: &Value) -> Answer {
        self.call(Method::PUT, path, Some(&self.write), Some(("application/json", &body.to_string()))).await
    }

    async fn put_yaml(&self, path: &str, body: &str) -> Answer {
        self.call(Method::PUT, path, Some(&self.write), Some(("application/yaml", body))).await
    }

    async fn post(&self, path: &str, token: &str) -> Answer {
        self.call(Method::POST, path, Some(token), None).await
    }

    async fn delete(&self, path: &str, token: &str) -> Answer {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// (version, updated_at, enabled, owner) as stored, if the check exists.
    async fn stored(&self, name: &str) -> Option<(i64, DateTime<Utc>, bool, String)> {
        let client = self.db.client().await;
        client
            .query_opt("SELECT version, updated_at, enabled, owner FROM checks WHERE name = $1", &[&name])
            .await
            .expect("query")
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    }

    async fn id(&self, name: &str) -> i64 {
        let client = self.db.client().await;
        client.query_one("SELECT id FROM checks WHERE name = $1", &[&name]).await.expect("check id").get(0)
    }

    /// Makes `name` down with an open incident, as a worker would have.
    async fn open_incident(&self, name: &str) -> i64 {
        let id = self.id(name).await;
        let client = self.db.client().await;
        let incident: i64 = client.query_one("SELECT nextval('incident_id_seq')", &[]).await.unwrap().get(0);
        client
            .execute(
                "INSERT INTO check_state (check_id, status, since, incident_id) VALUES ($1, 'down', now(), $2)
                 ON CONFLICT (check_id) DO UPDATE SET status = 'down', incident_id = $2",
                &[&id, &incident],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO incidents (id, check_id, check_name, opened_at, confirmed_at)
                 VALUES ($1, $2, $3, now(), now())",
                &[&incident, &id, &name],
            )
            .await
            .unwrap();
        incident
    }

    async fn resolution(&self, incident: i64) -> Option<String> {
        let client = self.db.client().await;
        client.query_one("SELECT resolution FROM incidents WHERE id = $1", &[&incident]).await.unwrap().get(0)
    }
}

fn pointers(answer: &Answer) -> Vec<String> {
    answer.json["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {}", answer.text))
        .iter()
        .map(|e| e["pointer"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn put_creates_then_updates_and_an_unchanged_put_writes_nothing() {
    let api = Api::new().await;
    let body = json!({"url": "http://127.0.0.1:9/health", "interval": "30s", "labels": {"team": "web"}});

    let created = api.put_json("/checks/shop", &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.json["result"], "created");
    assert_eq!(created.json["check"]["owner"], "api");
    assert_eq!(created.json["check"]["spec"]["interval"], "30s");
    assert_eq!(created.json["check"]["spec"]["name"], "shop");
    let (version, updated_at, enabled, owner) = api.stored("shop").await.expect("stored");
    assert_eq!((version, enabled, owner.as_str()), (1, true, "api"));

    // The same check again, as YAML this time, naming itself: unchanged,
    // and not written (version and updated_at stay).
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let yaml = "name: shop\nurl: http://127.0.0.1:9/health\ninterval: 30s\nlabels:\n  team: web\n";
    let unchanged = api.put_yaml("/checks/shop", yaml).await;
    assert_eq!(unchanged.status, StatusCode::OK, "{}", unchanged.text);
    assert_eq!(unchanged.json["result"], "unchanged");
    assert_eq!(unchanged.json["changed"], json!([]));
    assert_eq!(api.stored("shop").await.expect("stored"), (version, updated_at, true, "api".to_string()));
    // Idempotent: again.
    assert_eq!(api.put_json("/checks/shop", &body).await.json["result"], "unchanged");
    assert_eq!(api.stored("shop").await.expect("stored").0, 1);

    // A dry run plans the change and writes nothing.
    let changed = json!({"url": "http://127.0.0.1:9/health", "interval": "1m", "labels": {"team": "web"}});
    let dry = api.put_json("/checks/shop?dry_run=true", &changed).await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.text);
    assert_eq!((dry.json["result"].as_str(), dry.json["dry_run"].as_bool()), (Some("updated"), Some(true)));
    assert_eq!(dry.json["changed"], json!(["interval"]));
    assert_eq!(api.stored("shop").await.expect("stored").0, 1);
    let dry_new = api.put_json("/checks/other?dry_run=true", &body).await;
    assert_eq!(dry_new.status, StatusCode::CREATED, "{}", dry_new.text);
    assert_eq!(dry_new.json["result"], "created");
    assert!(api.stored("other").await.is_none(), "a dry run created the check");

    // The change itself.
    let updated = api.put_json("/checks/shop", &changed).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    assert_eq!(updated.json["result"], "updated");
    assert_eq!(updated.json["changed"], json!(["interval"]));
    assert_eq!(updated.json["check"]["version"], 2);
    let (version2, updated_at2, _, _) = api.stored("shop").await.expect("stored");
    assert_eq!(version2, 2);
    assert!(updated_at2 > updated_at);

    // What GET shows is a body PUT takes back unchanged.
    let got = api.get("/checks/shop").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    assert_eq!((got.json["state"].as_str(), got.json["owner"].as_str()), (Some("unknown"), Some("api")));
    assert_eq!(got.json["version"], 2);
    let again = api.put_json("/checks/shop", &got.json["spec"]).await;
    assert_eq!(again.json["result"], "unchanged", "{}", again.text);
}

#[tokio::test]
async fn put_refuses_what_apply_would_refuse_with_a_pointer_per_problem() {
    let api = Api::new().await;

    // Three problems, three pointers.
    let bad = json!({"url": "ftp://x", "interval": "0s", "expect": {"status": [200, "6xx"]}});
    let answer = api.put_json("/checks/shop", &bad).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.text);
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/problem+json");
    // (A JSON body's problems come in the order of its keys, sorted.)
    assert_eq!(pointers(&answer), ["/expect/status/1", "/interval", "/url"], "{}", answer.text);
    assert!(api.stored("shop").await.is_none());

    // The same from YAML, positions included.
    let answer =
        api.put_yaml("/checks/shop", "url: ftp://x\ninterval: 0s\nexpect:\n  status: [200, 6xx]\n").await;
    assert_eq!(pointers(&answer), ["/url", "/interval", "/expect/status/1"], "{}", answer.text);
    assert!(answer.json["errors"][0]["detail"].as_str().unwrap().contains("line 1"), "{}", answer.text);

    // The body names another check.
    let answer = api.put_json("/checks/shop", &json!({"name": "cart", "url": "http://x"})).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointers(&answer), ["/name"]);

    // ${VAR}: nothing may be read unless the operator allows it (HOME is
    // set in this process, and still refused).
    let answer =
        api.put_json("/checks/shop", &json!({"url": "http://x", "headers": {"X-Home": "${HOME}"}})).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.text);
    assert_eq!(pointers(&answer), ["/headers/X-Home"]);
    assert!(answer.text.contains("allow list"), "{}", answer.text);

    // An unknown channel is refused as apply refuses it.
    let answer = api.put_json("/checks/shop", &json!({"url": "http://x", "alerts": ["nowhere"]})).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.text);
    assert_eq!(pointers(&answer), ["/alerts/0"]);

    // Not JSON, not YAML, no type at all.
    let answer = api.put_json("/checks/shop", &json!({"url": "http://x"})).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let text =
        api.call(Method::PUT, "/checks/shop", Some(&api.write), Some(("text/plain", "url: http://x"))).await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", text.text);
    let none = api.call(Method::PUT, "/checks/shop", Some(&api.write), None).await;
    assert_eq!(none.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let broken = api
        .call(Method::PUT, "/checks/shop", Some(&api.write), Some(("application/json", "{\"url\":")))
        .await;
    assert_eq!(broken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointers(&broken), [""]);

    // Tokens: none, read, write.
    let body = json!({"url": "http://x"}).to_string();
    let anonymous = api.call(Method::PUT, "/checks/shop", None, Some(("application/json", &body))).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let read =
        api.call(Method::PUT, "/checks/shop", Some(&api.read), Some(("application/json", &body))).await;
    assert_eq!(read.status, StatusCode::FORBIDDEN, "{}", read.text);
    for (method, path) in [(Method::DELETE, "/checks/shop"), (Method::POST, "/checks/shop/pause")] {
        let answer = api.call(method, path, Some(&api.read), None).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
    }
}

#[tokio::test]
async fn variables_the_operator_allows_are_read_and_never_shown() {
    let api = Api::with_allow_env(&["HOME"]).await;
    let home = std::env::var("HOME").expect("HOME is set");
    let answer = api
        .put_json(
            "/checks/home",
            &json!({"url": "http://127.0.0.1:9/", "headers": {"X-Home": "${HOME}"}, "labels": {"a": "b"}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let client = api.db.client().await;
    let spec: Value =
        client.query_one("SELECT spec FROM checks WHERE name = 'home'", &[]).await.unwrap().get(0);
    assert_eq!(spec["headers"]["X-Home"], home.as_str());
    assert_eq!(answer.json["check"]["spec"]["headers"]["X-Home"], "***");
}

#[tokio::test]
async fn get_masks_secrets_and_the_list_scrubs_errors() {
    let api = Api::new().await;
    let body = json!({
        "url": "http://bob:pw-secret-1@127.0.0.1:9/x",
        "headers": {"Authorization": "Bearer hunter2-token"},
        "description": "the shop",
    });
    assert_eq!(api.put_json("/checks/shop", &body).await.status, StatusCode::CREATED);
    let got = api.get("/checks/shop").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    for secret in ["pw-secret-1", "hunter2-token"] {
        assert!(!got.text.contains(secret), "{secret} in {}", got.text);
    }
    assert_eq!(got.json["spec"]["headers"]["Authorization"], "***");
    assert_eq!(got.json["spec"]["url"], "http://bob:***@127.0.0.1:9/x");
    assert_eq!(got.json["spec"]["description"], "the shop");

    // A target that echoed the token back: the list shows it masked.
    let id = api.id("shop").await;
    let client = api.db.client().await;
    client
        .execute(
            "INSERT INTO check_state (check_id, status, since, last_checked_at, last_duration_ms, last_status_code, last_error)
             VALUES ($1, 'down', now(), now(), 12.5, 401, 'HTTP 401: bad token Bearer hunter2-token for bob:pw-secret-1')",
            &[&id],
        )
        .await
        .unwrap();
    let list = api.get("/checks").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    for secret in ["pw-secret-1", "hunter2-token"] {
        assert!(!list.text.contains(secret), "{secret} in {}", list.text);
    }
    let last = &list.json[0]["last_result"];
    assert_eq!((last["status_code"].as_i64(), last["duration_ms"].as_f64()), (Some(401), Some(12.5)));
    assert!(last["error"].as_str().unwrap().contains("***"), "{}", list.text);

    let missing = api.get("/checks/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(api.call(Method::GET, "/checks/shop", None, None).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_list_filters_pages_and_reports_uptime() {
    let api = Api::new().await;
    let checks = [
        ("alpha", json!({"team": "web", "env": "prod"})),
        ("beta", json!({"team": "web"})),
        ("gamma", json!({"team": "db"})),
        ("delta", json!({"team": "db"})),
    ];
    for (name, labels) in &checks {
        let answer =
            api.put_json(&format!("/checks/{name}"), &json!({"url": "http://x", "labels": labels})).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    }
    assert_eq!(api.post("/checks/delta/pause", &api.write).await.status, StatusCode::OK);
    let client = api.db.client().await;
    let (alpha, beta) = (api.id("alpha").await, api.id("beta").await);
    client
        .execute(
            "INSERT INTO check_state (check_id, status, since, last_checked_at) VALUES ($1, 'up', now(), now()), ($2, 'down', now(), now())",
            &[&alpha, &beta],
        )
        .await
        .unwrap();
    // alpha: 3 h up and 1 h down in the last day; 9 days up, 1 day down in 30.
    let now = Utc::now();
    for (table, bucket, up, down) in [
        ("rollup_hours", now - Duration::hours(2), 3 * 3_600_000i64, 3_600_000i64),
        ("rollup_hours", now - Duration::days(3), 0, 50 * 3_600_000),
        ("rollup_days", now - Duration::days(5), 9 * 86_400_000, 86_400_000),
        ("rollup_days", now - Duration::days(60), 0, 86_400_000),
    ] {
        client
            .execute(
                &format!(
                    "INSERT INTO {table} (check_id, bucket, up_ms, down_ms, latency_histogram)
                     VALUES ($1, date_trunc('hour', $2::timestamptz), $3, $4, '{{}}')"
                ),
                &[&alpha, &bucket, &up, &down],
            )
            .await
            .unwrap();
    }

    let names = |a: &Answer| -> Vec<String> {
        a.json
            .as_array()
            .unwrap_or_else(|| panic!("{}", a.text))
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let all = api.get("/checks").await;
    assert_eq!(names(&all), ["alpha", "beta", "delta", "gamma"]);
    let a = &all.json[0];
    assert_eq!((a["state"].as_str(), a["owner"].as_str()), (Some("up"), Some("api")));
    assert_eq!(a["labels"], json!({"team": "web", "env": "prod"}));
    assert!((a["uptime_24h"].as_f64().unwrap() - 75.0).abs() < 1e-9, "{}", all.text);
    assert!((a["uptime_30d"].as_f64().unwrap() - 90.0).abs() < 1e-9, "{}", all.text);
    assert!(all.json[1]["uptime_24h"].is_null() && all.json[1]["last_result"]["time"].is_string());
    assert!(all.json[3]["last_result"].is_null());
    assert!(all.headers.get(header::LINK).is_none());

    assert_eq!(names(&api.get("/checks?label=team=web").await), ["alpha", "beta"]);
    assert_eq!(names(&api.get("/checks?label=team=web&label=env%3Dprod").await), ["alpha"]);
    assert_eq!(names(&api.get("/checks?state=up").await), ["alpha"]);
    assert_eq!(names(&api.get("/checks?state=down").await), ["beta"]);
    assert_eq!(names(&api.get("/checks?state=paused").await), ["delta"]);
    assert_eq!(names(&api.get("/checks?state=unknown").await), ["gamma"]);
    assert_eq!(names(&api.get("/checks?q=ET").await), ["beta"]);
    assert_eq!(names(&api.get("/checks?q=a&label=team=db").await), ["delta", "gamma"]);
    assert_eq!(api.get("/checks?state=asleep").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(api.get("/checks?label=team").await.status, StatusCode::BAD_REQUEST);

    // Pages: the next link carries the filters and the cursor.
    let first = api.get("/checks?limit=2&label=team=web").await;
    assert_eq!(names(&first), ["alpha", "beta"]);
    assert!(first.headers.get(header::LINK).is_none(), "an exact last page has no next link");
    let first = api.get("/checks?limit=3").await;
    assert_eq!(names(&first), ["alpha", "beta", "delta"]);
    let link = first.headers[header::LINK].to_str().unwrap().to_string();
    assert_eq!(link, "<?limit=3&after=delta>; rel=\"next\"");
    let next = api.get(&format!("/checks{}", &link[1..link.find('>').unwrap()])).await;
    assert_eq!(names(&next), ["gamma"]);
    assert!(next.headers.get(header::LINK).is_none());
}

#[tokio::test]
async fn delete_pause_and_resume_resolve_incidents_like_apply() {
    let api = Api::new().await;
    for name in ["one", "two"] {
        let answer = api.put_json(&format!("/checks/{name}"), &json!({"url": "http://x"})).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    }

    // Pausing a down check resolves its incident as "paused".
    let incident = api.open_incident("one").await;
    let paused = api.post("/checks/one/pause", &api.write).await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.text);
    assert_eq!(paused.json["state"], "paused");
    assert_eq!(paused.json["spec"]["enabled"], false);
    assert_eq!(api.resolution(incident).await.as_deref(), Some("paused"));
    let version = api.stored("one").await.unwrap().0;
    // Idempotent: pausing again writes nothing.
    assert_eq!(api.post("/checks/one/pause", &api.write).await.json["state"], "paused");
    assert_eq!(api.stored("one").await.unwrap().0, version);
    let resumed = api.post("/checks/one/resume", &api.write).await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.text);
    assert_eq!(resumed.json["state"], "unknown");
    assert!(api.stored("one").await.unwrap().2);

    // Deleting one resolves its incident as "deleted".
    let incident = api.open_incident("two").await;
    let deleted = api.delete("/checks/two", &api.write).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert!(api.stored("two").await.is_none());
    assert_eq!(api.resolution(incident).await.as_deref(), Some("deleted"));
    assert_eq!(api.delete("/checks/two", &api.write).await.status, StatusCode::NOT_FOUND);
    assert_eq!(api.get("/checks/two").await.status, StatusCode::NOT_FOUND);
    for action in ["pause", "resume"] {
        assert_eq!(
            api.post(&format!("/checks/two/{action}"), &api.write).await.status,
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn file_owned_checks_answer_409_unless_an_admin_forces() {
    let api = Api::new().await;
    let dir = temp_dir();
    std::fs::write(
        dir.join("checks.yaml"),
        "checks:\n  - name: filed\n    url: http://127.0.0.1:9/\n  - name: kept\n    url: http://127.0.0.1:9/\n",
    )
    .unwrap();
    let run = sentryk8s(Some(&api.db), &dir, &["checks", "apply", "-f", "checks.yaml"], &[], "");
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert_eq!(api.stored("filed").await.unwrap().3, "file");
    assert_eq!(api.get("/checks/filed").await.json["owner"], "file");

    let body = json!({"url": "http://127.0.0.1:9/", "interval": "30s"});
    let refused = api.put_json("/checks/filed", &body).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.json["owner"], "file");
    assert!(refused.text.contains("filed"), "{}", refused.text);
    let dry = api.put_json("/checks/filed?dry_run=true", &body).await;
    assert_eq!(dry.status, StatusCode::CONFLICT);
    for answer in [
        api.delete("/checks/filed", &api.write).await,
        api.post("/checks/filed/pause", &api.write).await,
        api.post("/checks/filed/resume", &api.write).await,
    ] {
        assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text);
        assert_eq!(answer.json["owner"], "file");
    }
    let json_body = body.to_string();
    let by_writer = api
        .call(
            Method::PUT,
            "/checks/filed?force=true",
            Some(&api.write),
            Some(("application/json", &json_body)),
        )
        .await;
    assert_eq!(by_writer.status, StatusCode::FORBIDDEN, "{}", by_writer.text);
    assert_eq!(api.delete("/checks/filed?force=true", &api.write).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.stored("filed").await.unwrap().0, 1, "nothing was written");

    // An admin's forced pause leaves the check the files'; a forced PUT
    // makes it the API's.
    let paused = api.post("/checks/kept/pause?force=true", &api.admin).await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.text);
    assert_eq!(
        (paused.json["state"].as_str(), paused.json["owner"].as_str()),
        (Some("paused"), Some("file"))
    );
    let forced = api
        .call(
            Method::PUT,
            "/checks/filed?force=true",
            Some(&api.admin),
            Some(("application/json", &json_body)),
        )
        .await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.text);
    assert_eq!(forced.json["result"], "updated");
    assert_eq!(forced.json["changed"], json!(["interval", "owner"]));
    assert_eq!(forced.json["check"]["owner"], "api");
    assert_eq!(api.stored("filed").await.unwrap().3, "api");
    // Now the API's: a plain PUT of the same body is unchanged.
    assert_eq!(api.put_json("/checks/filed", &body).await.json["result"], "unchanged");
}

#[tokio::test]
async fn apply_never_changes_nor_prunes_an_api_owned_check() {
    let api = Api::new().await;
    let answer = api.put_json("/checks/from-api", &json!({"url": "http://127.0.0.1:9/"})).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let before = api.stored("from-api").await.unwrap();
    let dir = temp_dir();
    std::fs::write(dir.join("files.yaml"), "checks:\n  - name: filed\n    url: http://127.0.0.1:9/\n")
        .unwrap();

    // --prune keeps the API's check and says so.
    let run = sentryk8s(Some(&api.db), &dir, &["checks", "apply", "--prune", "-f", "files.yaml"], &[], "");
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(run.stdout.contains("1 check owned by the API was kept: from-api"), "{}", run.stdout);
    assert!(!run.stdout.contains("from-api deleted"), "{}", run.stdout);
    assert_eq!(api.stored("from-api").await.unwrap(), before);
    assert_eq!(api.stored("filed").await.unwrap().3, "file");

    // A file declaring it is refused, naming it and its owner; nothing is written.
    std::fs::write(
        dir.join("clash.yaml"),
        "checks:\n  - name: new-one\n    url: http://127.0.0.1:9/\n  - name: from-api\n    url: http://127.0.0.1:9/other\n",
    )
    .unwrap();
    let run = sentryk8s(Some(&api.db), &dir, &["checks", "apply", "-f", "clash.yaml"], &[], "");
    assert_eq!(run.code, Some(2), "{}", run.all());
    assert!(
        run.stderr
            .contains("clash.yaml:4:11: checks[1].name: check \"from-api\" is owned by the API (owner: api)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was applied"), "{}", run.stderr);
    assert!(api.stored("new-one").await.is_none());
    assert_eq!(api.stored("from-api").await.unwrap(), before);

    // checks list shows who owns what.
    let json_list = sentryk8s(Some(&api.db), &dir, &["checks", "list", "-o", "json"], &[], "");
    assert_eq!(json_list.code, Some(0), "{}", json_list.all());
    let listed: Value = serde_json::from_str(&json_list.stdout).expect("json");
    let owners: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["owner"].as_str().unwrap()))
        .collect();
    assert_eq!(owners, [("filed", "file"), ("from-api", "api")]);
    let table = sentryk8s(Some(&api.db), &dir, &["checks", "list"], &[], "");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].contains("OWNER"), "{}", table.stdout);
    assert!(lines.iter().any(|l| l.starts_with("from-api") && l.contains(" api ")), "{}", table.stdout);
    let yaml = sentryk8s(Some(&api.db), &dir, &["checks", "list", "-o", "yaml"], &[], "");
    assert!(yaml.stdout.contains("# owner: api") && yaml.stdout.contains("from-api"), "{}", yaml.stdout);
}
