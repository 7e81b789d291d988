//! The history resources of the API against the real binary and database:
//! `GET /checks/{name}/results` (cursor pages, limits, every field,
//! secrets scrubbed), `GET /checks/{name}/uptime` (named windows,
//! `from`/`to`, `by`, against the rollups of the worked example) and
//! `GET /incidents`; 400, 401 and 404 answers; `web.public_read`.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::Value;

use crate::web_bed::{history, Tokens, Web, SECRET};

/// The seconds of a total or bucket: up, down, no data, maintenance.
fn seconds(v: &Value) -> [f64; 4] {
    ["up_seconds", "down_seconds", "no_data_seconds", "maintenance_seconds"]
        .map(|k| v[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {v}")))
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .with_timezone(&Utc)
}

/// Percent-encodes a time for a query string (`+` would read as a space).
fn q(t: &str) -> String {
    t.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn results_page_newest_first_without_duplicates_or_gaps_even_while_results_arrive() {
    let h = history().await;
    let tokens = Tokens::new(&h.db).await;
    let web = Web::start(&h.db, &[]).await;
    let read = Some(tokens.read.as_str());

    let mut seen: Vec<DateTime<Utc>> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/api/v1/checks/api/results?limit=10".to_string(),
            Some(c) => format!("/api/v1/checks/api/results?limit=10&cursor={c}"),
        };
        let answer = web.get(&path, read).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.content_type(), "application/json");
        let page = answer.json();
        assert_eq!(page["check"], "api");
        let results = page["results"].as_array().unwrap();
        assert!(results.len() <= 10, "{page}");
        seen.extend(results.iter().map(|r| time(&r["slot"])));
        pages += 1;
        if pages == 1 {
            // A result stored while the caller pages: newer than any cursor,
            // so it shows on a fresh first page, never inside a later one.
            let client = h.db.client().await;
            let newer = h.base + Duration::minutes(61);
            client
                .execute(
                    "INSERT INTO check_results (check_id, slot, started_at, success, total_ms, state, interval_ms)
                     VALUES ($1, $2, $2, true, 10, 'up', 60000)",
                    &[&h.api, &newer],
                )
                .await
                .unwrap();
        }
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(results.len(), 10, "a page with a next cursor is full: {page}");
                cursor = Some(c.to_string());
            }
            None => {
                assert!(page.get("next_cursor").is_some(), "next_cursor is always present: {page}");
                break;
            }
        }
        assert!(pages < 20, "paging does not end");
    }
    assert_eq!(pages, 6, "57 results by 10");
    let expected: Vec<DateTime<Utc>> =
        (0..60).rev().filter(|k| !(25..28).contains(k)).map(|k| h.base + Duration::minutes(k)).collect();
    assert_eq!(seen, expected, "newest first, every stored slot once");

    // A fresh first page starts with the result stored meanwhile.
    let page = web.get("/api/v1/checks/api/results?limit=2", read).await.json();
    assert_eq!(time(&page["results"][0]["slot"]), h.base + Duration::minutes(61));
    assert_eq!(time(&page["results"][1]["slot"]), h.base + Duration::minutes(59));

    // The default page is 100, the largest 1000.
    let all = web.get("/api/v1/checks/api/results", read).await.json();
    assert_eq!((all["results"].as_array().unwrap().len(), all["next_cursor"].clone()), (58, Value::Null));
    let all = web.get("/api/v1/checks/api/results?limit=1000", read).await.json();
    assert_eq!(all["results"].as_array().unwrap().len(), 58);
    let one = web.get("/api/v1/checks/api/results?limit=1", read).await.json();
    assert_eq!(one["results"].as_array().unwrap().len(), 1);
    assert!(one["next_cursor"].is_string());

    // from (inclusive) and to (exclusive).
    let path = format!("/api/v1/checks/api/results?from={}&to={}", q(&h.at(10)), q(&h.at(20)));
    let window = web.get(&path, read).await.json();
    let slots: Vec<DateTime<Utc>> =
        window["results"].as_array().unwrap().iter().map(|r| time(&r["slot"])).collect();
    assert_eq!(slots, (10..20).rev().map(|k| h.base + Duration::minutes(k)).collect::<Vec<_>>());
    // …and a cursor inside it.
    let path = format!("/api/v1/checks/api/results?from={}&to={}&limit=4", q(&h.at(10)), q(&h.at(20)));
    let first = web.get(&path, read).await.json();
    let next = format!("{path}&cursor={}", first["next_cursor"].as_str().unwrap());
    let second = web.get(&next, read).await.json();
    assert_eq!(time(&second["results"][0]["slot"]), h.base + Duration::minutes(15));
}

#[tokio::test]
async fn results_carry_every_stored_field_with_secrets_masked() {
    let h = history().await;
    let tokens = Tokens::new(&h.db).await;
    let web = Web::start(&h.db, &[]).await;
    let answer = web.get("/api/v1/checks/api/results?limit=1000", Some(&tokens.read)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(!answer.text().contains(SECRET), "a secret leaked: {}", answer.text());
    let page = answer.json();
    let results = page["results"].as_array().unwrap();
    let fields = [
        "slot",
        "started_at",
        "success",
        "error_class",
        "error_message",
        "status_code",
        "dns_ms",
        "connect_ms",
        "tls_ms",
        "first_byte_ms",
        "query_ms",
        "rtt_min_ms",
        "rtt_avg_ms",
        "rtt_max_ms",
        "run_ms",
        "total_ms",
        "bytes_read",
        "cert_expires_at",
        "failed_assertions",
        "worker",
        "state",
        "interval_ms",
    ];
    for r in results {
        let keys: BTreeSet<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, fields.into_iter().collect(), "every field, null when unset: {r}");
    }
    let slot0 = results.last().unwrap();
    assert_eq!(time(&slot0["slot"]), h.base);
    assert_eq!(time(&slot0["started_at"]), h.base + Duration::milliseconds(5));
    assert_eq!(slot0["success"], true);
    assert_eq!(slot0["status_code"], 200);
    assert_eq!(
        [
            &slot0["dns_ms"],
            &slot0["connect_ms"],
            &slot0["tls_ms"],
            &slot0["first_byte_ms"],
            &slot0["total_ms"]
        ]
        .map(|v| v.as_f64().unwrap()),
        [1.5, 2.5, 3.5, 50.0, 100.0]
    );
    assert_eq!(
        ["query_ms", "rtt_min_ms", "rtt_avg_ms", "rtt_max_ms", "run_ms"].map(|k| slot0[k].as_f64().unwrap()),
        [4.5, 0.25, 0.5, 0.75, 60.0]
    );
    assert_eq!(slot0["bytes_read"], 1234);
    assert_eq!(time(&slot0["cert_expires_at"]), time(&Value::from("2027-01-01T00:00:00Z")));
    assert_eq!((slot0["worker"].as_str(), slot0["state"].as_str()), (Some("worker-0"), Some("up")));
    assert_eq!(slot0["interval_ms"], 60_000);
    assert_eq!(
        (slot0["error_message"].clone(), slot0["failed_assertions"].clone()),
        (Value::Null, Value::Null)
    );

    let down = results.iter().find(|r| time(&r["slot"]) == h.base + Duration::minutes(20)).unwrap();
    assert_eq!(down["success"], false);
    assert_eq!(down["error_class"], "assertion");
    assert_eq!(down["error_message"], "HTTP 401 for key ***");
    assert_eq!(down["failed_assertions"], serde_json::json!(["header X-Echo == ***"]));
    assert_eq!((down["status_code"].as_i64(), down["state"].as_str()), (Some(401), Some("down")));
    assert_eq!(down["dns_ms"], Value::Null);
}

#[tokio::test]
async fn results_refuse_bad_limits_cursors_and_times_and_unknown_checks() {
    let h = history().await;
    let tokens = Tokens::new(&h.db).await;
    let web = Web::start(&h.db, &[]).await;
    let read = Some(tokens.read.as_str());
    for (query, detail) in [
        ("limit=1001", "limit: 1001 is out of range"),
        ("limit=0", "limit: 0 is out of range"),
        ("limit=many", "Failed to deserialize query string"),
        ("cursor=bogus", "cursor: "),
        ("from=yesterday", "from: \"yesterday\" is not an RFC 3339 time"),
        ("to=2026-13-40T00:00:00Z", "to: "),
        ("from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "the window is empty"),
    ] {
        web.get(&format!("/api/v1/checks/api/results?{query}"), read).await.assert_problem(400, detail);
    }
    web.get("/api/v1/checks/nope/results", read).await.assert_problem(404, "no check named \"nope\"");
    // A declared check without results: an empty last page.
    let idle = web.get("/api/v1/checks/idle/results", read).await.json();
    assert_eq!((idle["results"].clone(), idle["next_cursor"].clone()), (serde_json::json!([]), Value::Null));
}

#[tokio::test]
async fn uptime_counts_the_rollups_by_window_and_bucket() {
    let h = history().await;
    let tokens = Tokens::new(&h.db).await;
    let web = Web::start(&h.db, &[]).await;
    let read = Some(tokens.read.as_str());
    let worked = [3000.0, 300.0, 180.0, 120.0];
    let uptime = 3000.0 * 100.0 / 3300.0;

    // Four hours: hourly rollups, whole hours, per hour.
    let path = format!("/api/v1/checks/api/uptime?from={}&to={}&by=hour", q(&h.at(0)), q(&h.at(240)));
    let u = web.get(&path, read).await;
    assert_eq!(u.status, 200, "{}", u.text());
    let u = u.json();
    assert_eq!(
        (u["check"].as_str(), u["granularity"].as_str(), u["by"].as_str()),
        (Some("api"), Some("hour"), Some("hour"))
    );
    assert_eq!(u["window"], Value::Null);
    assert_eq!(
        (time(&u["from"]), time(&u["to"]), u["live"].as_bool()),
        (h.base, h.base + Duration::hours(4), Some(false))
    );
    assert_eq!(seconds(&u["total"]), worked, "{u}");
    assert!((u["total"]["uptime_percent"].as_f64().unwrap() - uptime).abs() < 1e-9, "{u}");
    assert_eq!((u["total"]["runs"].as_i64(), u["total"]["failures"].as_i64()), (Some(57), Some(7)));
    let buckets = u["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 4, "{u}");
    for (i, b) in buckets.iter().enumerate() {
        assert_eq!(time(&b["start"]), h.base + Duration::hours(i as i64));
        assert_eq!(time(&b["end"]), h.base + Duration::hours(i as i64 + 1));
    }
    assert_eq!(seconds(&buckets[0]), worked);
    assert!((buckets[0]["uptime_percent"].as_f64().unwrap() - uptime).abs() < 1e-9);
    assert_eq!(
        (seconds(&buckets[1]), buckets[1]["uptime_percent"].clone()),
        ([0.0; 4], Value::Null),
        "no data"
    );

    // Up to three hours in the raw retention: raw results, exactly the
    // window: slots 10..40 (10 up, 5 down, 3 missed, 2 in maintenance, 10 up).
    let path = format!("/api/v1/checks/api/uptime?from={}&to={}", q(&h.at(10)), q(&h.at(40)));
    let u = web.get(&path, read).await.json();
    assert_eq!(u["granularity"], "raw", "{u}");
    assert_eq!(
        (time(&u["from"]), time(&u["to"])),
        (h.base + Duration::minutes(10), h.base + Duration::minutes(40))
    );
    assert_eq!(seconds(&u["total"]), [1200.0, 300.0, 180.0, 120.0], "{u}");
    assert_eq!((u["by"].clone(), u["buckets"].clone()), (Value::Null, serde_json::json!([])));

    // Named windows end now: 24h misses the timeline (two days ago); 7d
    // is hourly, 30d and more daily, widened to whole buckets.
    let u = web.get("/api/v1/checks/api/uptime", read).await.json();
    assert_eq!(
        (u["window"].as_str(), u["granularity"].as_str(), u["live"].as_bool()),
        (Some("24h"), Some("hour"), Some(true))
    );
    assert_eq!(seconds(&u["total"]), [0.0; 4], "{u}");
    assert_eq!(u["total"]["uptime_percent"], Value::Null);
    // The server's now lies between the test's two readings of the clock:
    // the window starts at the bucket holding one of them less the window.
    let starts = |before: DateTime<Utc>, length: Duration, bucket: Duration| {
        let after = Utc::now();
        [before, after].map(|t| (t - length).duration_trunc(bucket).unwrap())
    };
    let before = Utc::now();
    let u = web.get("/api/v1/checks/api/uptime?window=7d&by=day", read).await.json();
    assert_eq!((u["window"].as_str(), u["granularity"].as_str()), (Some("7d"), Some("hour")));
    assert_eq!(seconds(&u["total"]), worked, "{u}");
    assert!(starts(before, Duration::days(7), Duration::hours(1)).contains(&time(&u["from"])), "{u}");
    let days = u["buckets"].as_array().unwrap();
    assert_eq!(days.len(), 8, "the day holding the start up to today: {u}");
    let day_of_base = h.base.duration_trunc(Duration::days(1)).unwrap();
    for b in days {
        let expected = if time(&b["start"]) == day_of_base { worked } else { [0.0; 4] };
        assert_eq!(seconds(b), expected, "{b}");
    }
    for (window, days) in [("30d", 30), ("90d", 90), ("365d", 365)] {
        let before = Utc::now();
        let u = web.get(&format!("/api/v1/checks/api/uptime?window={window}&by=day"), read).await.json();
        assert_eq!((u["window"].as_str(), u["granularity"].as_str()), (Some(window), Some("day")), "{u}");
        let from = time(&u["from"]);
        assert!(starts(before, Duration::days(days), Duration::days(1)).contains(&from), "{window}: {u}");
        assert_eq!(seconds(&u["total"]), worked, "{window}: {u}");
        assert_eq!(u["buckets"].as_array().unwrap().len() as i64, days + 1, "{window}");
    }
}

#[tokio::test]
async fn uptime_refuses_bad_windows_naming_the_parameter() {
    let h = history().await;
    let tokens = Tokens::new(&h.db).await;
    let web = Web::start(&h.db, &[]).await;
    let read = Some(tokens.read.as_str());
    for (query, detail) in [
        ("window=1w", "window: \"1w\" is not one of 24h, 7d, 30d, 90d, 365d"),
        ("window=24h&from=2026-11-01T00:00:00Z", "window: give either"),
        ("to=2026-11-01T00:00:00Z", "from: `to` needs `from`"),
        ("from=monday", "from: "),
        ("from=2026-11-01T00:00:00Z&to=later", "to: "),
        ("from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "the window is empty"),
        ("by=week", "by: \"week\" is not hour or day"),
        ("window=365d&by=hour", "by: hourly rollups are kept for 90 days"),
    ] {
        web.get(&format!("/api/v1/checks/api/uptime?{query}"), read).await.assert_problem(400, detail);
    }
    web.get("/api/v1/checks/nope/uptime", read).await.assert_problem(404, "no check named \"nope\"");
    web.get("/api/v1/checks/nope/uptime?window=bad", read).await.assert_problem(400, "window: ");
}

#[tokio::test]
async fn incidents_name_unknown_checks_404_and_mask_secrets() {
    let h = history().await;
    let tokens = Tokens::new(&h.db).await;
    let web = Web::start(&h.db, &[]).await;
    let read = Some(tokens.read.as_str());
    let answer = web.get("/api/v1/incidents?check=api", read).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(!answer.text().contains(SECRET), "{}", answer.text());
    let list = answer.json();
    let ids: Vec<i64> = list.as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [2, 1], "newest first");
    assert_eq!(list[1]["first_error"], "HTTP 401 for key ***");
    assert_eq!(list[1]["duration_seconds"], 300.0);
    let open = web.get("/api/v1/incidents?open=true", read).await.json();
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    web.get("/api/v1/incidents?check=nope", read).await.assert_problem(404, "no check named \"nope\"");
    web.get("/api/v1/incidents?since=soon", read).await.assert_problem(400, "since: ");
    web.get("/api/v1/incidents?open=maybe", read)
        .await
        .assert_problem(400, "Failed to deserialize query string");
}

#[tokio::test]
async fn history_needs_a_token_unless_public_read_opens_the_gets() {
    let h = history().await;
    let tokens = Tokens::new(&h.db).await;
    let private = Web::start(&h.db, &[]).await;
    let paths = ["/api/v1/checks/api/results", "/api/v1/checks/api/uptime", "/api/v1/incidents"];
    for path in paths {
        let answer = private.get(path, None).await;
        answer.assert_problem(401, "this route needs a token");
        assert!(answer.headers.contains_key("www-authenticate"), "{path}");
        private.get(path, Some("sk8s_not-a-real-token")).await.assert_problem(401, "the token is not valid");
        for token in [&tokens.read, &tokens.write, &tokens.admin] {
            assert_eq!(private.get(path, Some(token)).await.status, 200, "{path}: every scope reads");
        }
    }
    drop(private);
    let public = Web::start(&h.db, &[("SENTRYK8S_WEB__PUBLIC_READ", "true")]).await;
    for path in paths {
        let answer = public.get(path, None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        assert!(!answer.text().contains(SECRET), "{path}");
    }
    public.get("/api/v1/checks/nope/results", None).await.assert_problem(404, "no check named");
}
