//! Alerting end to end: channels declared in a checks file and applied by
//! `checks apply`, flips produced by the real scheduler and worker
//! processes, deliveries received by local HTTP receivers and a local SMTP
//! server. Also: several workers delivering at once, retries and failures
//! (visible in `status` and /metrics), maintenance windows, and a worker
//! killed with SIGKILL in the middle of a send.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use crate::checks_cli::{sentryk8s, temp_dir};
use crate::support::receiver::{Mode, Receiver};
use crate::support::smtp::SmtpServer;
use crate::support::{eventually, free_port, http, Binary, TestBroker, TestDb, TestTarget};

const SECRET: &str = "hmac-test-secret";

/// A database, a broker, a receiver and an SMTP server, plus the processes started on them.
struct Bed {
    db: TestDb,
    broker: TestBroker,
    receiver: Receiver,
    smtp: SmtpServer,
    dir: std::path::PathBuf,
}

impl Bed {
    async fn new() -> Bed {
        Bed {
            db: TestDb::migrated(4).await,
            broker: TestBroker::new(),
            receiver: Receiver::start().await,
            smtp: SmtpServer::start().await,
            dir: temp_dir(),
        }
    }

    /// Every channel kind, pointed at the local receivers.
    fn channels(&self) -> String {
        let r = |p: &str| self.receiver.url(p);
        format!(
            "alerts:
  hook: {{ type: webhook, url: '{}', secret: '${{HOOK_SECRET}}', headers: {{ X-Team: ops }} }}
  slack: {{ type: slack, url: '{}' }}
  discord: {{ type: discord, url: '{}' }}
  teams: {{ type: teams, url: '{}' }}
  pager: {{ type: pagerduty, url: '{}', routing_key: rk-123 }}
  mail: {{ type: email, smtp_host: 127.0.0.1, smtp_port: {}, tls: none, from: 'SentryK8s <sk@example.com>', to: [oncall@example.com] }}
",
            r("/hook"),
            r("/slack"),
            r("/discord"),
            r("/teams"),
            r("/pagerduty"),
            self.smtp.addr.port()
        )
    }

    fn apply(&self, text: &str) {
        std::fs::write(self.dir.join("checks.yaml"), text).unwrap();
        let run = sentryk8s(
            Some(&self.db),
            &self.dir,
            &["checks", "apply", "-f", "checks.yaml"],
            &[("HOOK_SECRET", SECRET)],
            "",
        );
        assert_eq!(run.code, Some(0), "{}", run.all());
        assert!(!run.all().contains(SECRET), "a secret was printed: {}", run.all());
    }

    /// Environment of a role process named `host`, with fast delivery settings.
    fn env(&self, host: &str, listen: u16, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = self.broker.env();
        for (k, v) in [
            ("SENTRYK8S_DATABASE_URL", self.db.url.as_str()),
            ("HOSTNAME", host),
            ("SENTRYK8S_WORKER__BATCH_MAX_DELAY", "20ms"),
            ("SENTRYK8S_DRAIN_TIMEOUT", "5s"),
            ("SENTRYK8S_DATABASE__CONNECT_TIMEOUT", "1s"),
            ("SENTRYK8S_ALERTS__POLL_INTERVAL", "100ms"),
            ("SENTRYK8S_ALERTS__RETRY_INITIAL", "200ms"),
            ("SENTRYK8S_ALERTS__RETRY_MAX", "1s"),
            ("SENTRYK8S_ALERTS__REMINDER_SCAN_INTERVAL", "500ms"),
        ] {
            env.push((k.to_string(), v.to_string()));
        }
        env.push(("SENTRYK8S_LISTEN".into(), format!("127.0.0.1:{listen}")));
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        env
    }

    fn worker(&self, host: &str, listen: u16, extra: &[(&str, &str)]) -> Binary {
        Binary::spawn(&["worker"], &self.env(host, listen, extra))
    }

    fn scheduler(&self) -> Binary {
        Binary::spawn(&["scheduler"], &self.env("sentryk8s-scheduler-0", free_port(), &[]))
    }

    async fn one<T: for<'a> tokio_postgres::types::FromSql<'a>>(&self, sql: &str) -> T {
        self.db.client().await.query_one(sql, &[]).await.unwrap().get(0)
    }

    async fn check_id(&self, name: &str) -> i64 {
        self.db
            .client()
            .await
            .query_one("SELECT id FROM checks WHERE name = $1", &[&name])
            .await
            .unwrap()
            .get(0)
    }

    /// An outbox row as the worker's batcher writes it.
    async fn flip(&self, check: &str, incident: i64, event: &str, alerts: &[&str]) {
        let check_id = self.check_id(check).await;
        let now = Utc::now();
        let payload = json!({
            "check": check, "check_id": check_id, "state": event, "since": now, "incident_id": incident,
            "slot": now, "host": "127.0.0.1", "status_code": 500, "duration_ms": 3.5, "error_class": "assertion",
            "last_error": "HTTP 500: expected status 200-399", "labels": {}, "alerts": alerts,
        });
        self.db
            .client()
            .await
            .execute(
                "INSERT INTO notifications (check_id, check_name, incident_id, event, slot, payload)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&check_id, &check, &incident, &event, &now, &payload],
            )
            .await
            .unwrap();
    }

    async fn statuses(&self) -> Vec<(String, String, String, i32)> {
        self.db
            .client()
            .await
            .query("SELECT channel, event, status, attempts FROM notification_deliveries ORDER BY channel, event", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    }
}

const PATHS: [&str; 5] = ["/hook", "/slack", "/discord", "/teams", "/pagerduty"];

fn events(r: &Receiver, path: &str) -> Vec<String> {
    r.at(path)
        .iter()
        .map(|q| match path {
            "/hook" => q.body["event"].as_str().unwrap_or("?").to_string(),
            "/pagerduty" => q.body["event_action"].as_str().unwrap_or("?").to_string(),
            _ => q.header("X-SentryK8s-Event").unwrap_or("?").to_string(),
        })
        .collect()
}

/// Acceptance 1: down then up through scheduler + worker; every channel
/// gets one "down" and one "resolved" with the documented content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_hears_down_and_resolved_once() {
    let bed = Bed::new().await;
    let target = TestTarget::start(Default::default()).await;
    bed.apply(&format!(
        "{}checks:
  - name: api
    url: {}
    interval: 1s
    timeout: 500ms
    failure_threshold: 2
    labels: {{ team: web }}
    alerts: [hook, slack, discord, teams, pager, mail]
",
        bed.channels(),
        target.url("/")
    ));
    let _scheduler = bed.scheduler();
    let worker = bed.worker("worker-a", free_port(), &[]);
    let up = || async {
        bed.one::<Option<String>>("SELECT max(status) FROM check_state").await.as_deref() == Some("up")
    };
    assert!(eventually(Duration::from_secs(30), up).await, "the check never came up\n{}", worker.output());

    target.set_status(500);
    let downs =
        || async { PATHS.iter().all(|p| !bed.receiver.at(p).is_empty()) && !bed.smtp.mails().is_empty() };
    assert!(
        eventually(Duration::from_secs(30), downs).await,
        "not every channel got the alert\n{}",
        worker.output()
    );
    target.set_status(200);
    let ups = || async { PATHS.iter().all(|p| bed.receiver.at(p).len() >= 2) && bed.smtp.mails().len() >= 2 };
    assert!(
        eventually(Duration::from_secs(30), ups).await,
        "not every channel got the recovery\n{}",
        worker.output()
    );
    // Nothing more arrives: exactly one of each.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(events(&bed.receiver, "/hook"), vec!["down", "up"]);
    assert_eq!(events(&bed.receiver, "/pagerduty"), vec!["trigger", "resolve"]);
    for p in ["/slack", "/discord", "/teams"] {
        assert_eq!(events(&bed.receiver, p), vec!["down", "up"], "{p}");
    }
    assert_eq!(bed.smtp.mails().len(), 2);

    let check_id = bed.check_id("api").await;
    let incident: i64 = bed.one("SELECT incident_id FROM check_state").await;
    let incident_key = format!("sentryk8s-{check_id}-{incident}");

    // The generic webhook: the documented body, its headers and signature.
    let hook = bed.receiver.at("/hook");
    let (down, up) = (&hook[0], &hook[1]);
    assert_eq!(down.body["version"], 1);
    assert_eq!((down.body["check"].as_str(), down.body["state"].as_str()), (Some("api"), Some("down")));
    assert!(down.body["last_error"].as_str().is_some_and(|e| e.contains("500")), "{}", down.body);
    assert!(down.body["duration_ms"].as_f64().is_some(), "{}", down.body);
    assert!(down.body["since"].as_str().is_some(), "{}", down.body);
    assert_eq!(down.body["incident_key"], incident_key.as_str());
    assert_eq!(down.body["labels"], json!({"team": "web"}));
    assert_eq!(down.header("Idempotency-Key"), down.body["idempotency_key"].as_str());
    assert_eq!(down.header("Idempotency-Key"), Some(format!("{incident_key}-down-hook").as_str()));
    assert_eq!(down.header("X-Team"), Some("ops"));
    assert_eq!(down.header("Content-Type"), Some("application/json"));
    let now = Utc::now().timestamp();
    for q in [down, up] {
        let signature = q.header("X-SentryK8s-Signature").expect("signed");
        assert!(sentryk8s::alerting::signature::verify(SECRET, signature, &q.raw, now, 300), "{signature}");
    }
    assert_eq!((up.body["state"].as_str(), up.body["event"].as_str()), (Some("up"), Some("up")));
    assert_eq!(up.body["incident_key"], incident_key.as_str());
    assert!(up.body["down_for_seconds"].as_f64().is_some_and(|d| d > 0.0), "{}", up.body);
    assert_eq!(up.body["last_error"], Value::Null);

    // PagerDuty: trigger and resolve share the dedup key.
    let pd = bed.receiver.at("/pagerduty");
    assert_eq!(pd[0].body["dedup_key"], incident_key.as_str());
    assert_eq!(
        pd[1].body,
        json!({"routing_key": "rk-123", "event_action": "resolve", "dedup_key": incident_key})
    );
    assert_eq!(pd[0].body["routing_key"], "rk-123");
    assert_eq!(pd[0].body["payload"]["severity"], "critical");
    assert!(pd[0].body["payload"]["summary"].as_str().is_some_and(|s| s.starts_with("api is DOWN")));

    // Chats.
    let slack = bed.receiver.at("/slack");
    assert!(
        slack[0].body["text"].as_str().is_some_and(|t| t.starts_with("🔴 api is DOWN: ")),
        "{}",
        slack[0].body
    );
    assert!(
        slack[1].body["text"].as_str().is_some_and(|t| t.starts_with("✅ api is UP again")),
        "{}",
        slack[1].body
    );
    let discord = bed.receiver.at("/discord");
    assert!(discord[0].body["content"].as_str().is_some_and(|t| t.starts_with("🔴 api is DOWN")));
    assert_eq!(discord[1].body["embeds"][0]["title"], "RESOLVED: api");
    let teams = bed.receiver.at("/teams");
    let card = |i: usize| teams[i].body["attachments"][0]["content"]["body"][0]["text"].clone();
    assert_eq!((card(0), card(1)), (json!("DOWN: api"), json!("RESOLVED: api")));

    // Mail: subjects, facts, threading.
    let mails = bed.smtp.mails();
    assert_eq!(mails[0].header("Subject").as_deref(), Some("[SentryK8s] DOWN: api"));
    assert_eq!(mails[1].header("Subject").as_deref(), Some("[SentryK8s] RESOLVED: api"));
    assert_eq!(mails[0].to, vec!["<oncall@example.com>".to_string()]);
    assert!(mails[0].body().contains("Check:"), "{}", mails[0].data);
    assert!(mails[0].body().contains(&incident_key), "{}", mails[0].data);
    assert_eq!(mails[0].header("Message-ID"), Some(format!("<{incident_key}-down-mail@sentryk8s>")));
    assert_eq!(mails[1].header("In-Reply-To"), mails[0].header("Message-ID"));

    let statuses = bed.statuses().await;
    assert_eq!(statuses.len(), 12, "{statuses:?}");
    assert!(statuses.iter().all(|(_, _, s, a)| s == "sent" && *a == 1), "{statuses:?}");
}

/// Acceptance 2: three workers deliver concurrently; each delivery is sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_send_each_notification_exactly_once() {
    let bed = Bed::new().await;
    bed.receiver.set("/hook", Mode::Slow(30));
    bed.receiver.set("/slack", Mode::Slow(30));
    let mut file = bed.channels();
    file.push_str("checks:\n");
    for i in 0..10 {
        file.push_str(&format!(
            "  - {{ name: svc-{i}, url: 'http://127.0.0.1:9/', alerts: [hook, slack] }}\n"
        ));
    }
    bed.apply(&file);
    let extra = [("SENTRYK8S_ALERTS__CONCURRENCY", "2"), ("SENTRYK8S_ALERTS__BATCH_SIZE", "2")];
    let workers: Vec<Binary> =
        (0..3).map(|i| bed.worker(&format!("worker-{i}"), free_port(), &extra)).collect();
    for w in &workers {
        assert!(
            w.wait_for_output("delivering notifications", Duration::from_secs(20)).await,
            "{}",
            w.output()
        );
    }
    // Two flips per check (down, then up): 40 deliveries to race for.
    for i in 0..10 {
        bed.flip(&format!("svc-{i}"), 100 + i, "down", &["hook", "slack"]).await;
        bed.flip(&format!("svc-{i}"), 100 + i, "up", &["hook", "slack"]).await;
    }
    let all_sent = || async {
        bed.one::<i64>("SELECT count(*) FROM notification_deliveries WHERE status = 'sent'").await == 40
    };
    assert!(eventually(Duration::from_secs(60), all_sent).await, "{:?}", bed.statuses().await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = bed.receiver.all();
    assert_eq!(received.len(), 40, "a notification was sent twice or not at all");
    let keys: HashSet<String> =
        received.iter().filter_map(|q| q.header("Idempotency-Key").map(str::to_string)).collect();
    assert_eq!(keys.len(), 40, "duplicate idempotency keys");
    let senders: HashSet<String> = bed
        .db
        .client()
        .await
        .query("SELECT DISTINCT leased_by FROM notification_deliveries", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(senders.len() >= 2, "only {senders:?} delivered: the workers did not share the work");
    assert_eq!(bed.one::<i64>("SELECT count(*) FROM notifications WHERE dispatched_at IS NULL").await, 0);
}

/// Acceptance 3: 3 failures then success → sent on the 4th try; always
/// failing → failed after max_attempts, in status and /metrics; others unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_then_success_and_failure_after_n_attempts() {
    let bed = Bed::new().await;
    bed.receiver.set("/flaky", Mode::FailFirst(3));
    bed.receiver.set("/broken", Mode::AlwaysFail);
    bed.apply(&format!(
        "alerts:
  flaky: {{ type: webhook, url: '{}', max_attempts: 5 }}
  broken: {{ type: webhook, url: '{}', max_attempts: 3 }}
  good: {{ type: slack, url: '{}' }}
checks:
  - {{ name: api, url: 'http://127.0.0.1:9/', alerts: [flaky, broken, good] }}
",
        bed.receiver.url("/flaky"),
        bed.receiver.url("/broken"),
        bed.receiver.url("/good")
    ));
    let check_id = bed.check_id("api").await;
    bed.db
        .client()
        .await
        .execute(
            "INSERT INTO check_state (check_id, status, incident_id) VALUES ($1, 'down', 77)",
            &[&check_id],
        )
        .await
        .unwrap();
    let listen = free_port();
    let worker = bed.worker("worker-a", listen, &[]);
    bed.flip("api", 77, "down", &["flaky", "broken", "good"]).await;
    let settled = || async {
        bed.one::<i64>("SELECT count(*) FROM notification_deliveries WHERE status IN ('sent', 'failed')")
            .await
            == 3
    };
    assert!(
        eventually(Duration::from_secs(30), settled).await,
        "{:?}\n{}",
        bed.statuses().await,
        worker.output()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let flaky = bed.receiver.at("/flaky");
    assert_eq!(flaky.len(), 4, "sent on the 4th try");
    let keys: HashSet<&str> = flaky.iter().filter_map(|q| q.header("Idempotency-Key")).collect();
    assert_eq!(keys.len(), 1, "every attempt carries the same key");
    assert_eq!(bed.receiver.at("/broken").len(), 3);
    assert_eq!(bed.receiver.at("/good").len(), 1);
    let mut statuses = bed.statuses().await;
    statuses.sort();
    assert_eq!(
        statuses,
        vec![
            ("broken".into(), "down".into(), "failed".into(), 3),
            ("flaky".into(), "down".into(), "sent".into(), 4),
            ("good".into(), "down".into(), "sent".into(), 1),
        ]
    );

    let run = sentryk8s(Some(&bed.db), &bed.dir, &["status", "-o", "json"], &[], "");
    assert_eq!(run.code, Some(0), "{}", run.all());
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let failed = &json[0]["failed_notifications"];
    assert_eq!(failed.as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!((failed[0]["channel"].as_str(), failed[0]["event"].as_str()), (Some("broken"), Some("down")));
    assert_eq!((failed[0]["attempts"].as_i64(), failed[0]["incident_id"].as_i64()), (Some(3), Some(77)));
    assert!(failed[0]["last_error"].as_str().is_some_and(|e| e.contains("500")), "{failed}");
    let run = sentryk8s(Some(&bed.db), &bed.dir, &["status"], &[], "");
    assert!(
        run.stdout.contains(
            "1 failed notification:\n  api → broken (down, incident 77): failed after 3 attempts: "
        ),
        "{}",
        run.stdout
    );

    let (_, metrics) = http::get(format!("127.0.0.1:{listen}").parse().unwrap(), "/metrics").await.unwrap();
    for line in [
        "sentryk8s_notifications_total{channel=\"broken\",outcome=\"failed\"} 1",
        "sentryk8s_notifications_total{channel=\"broken\",outcome=\"retry\"} 2",
        "sentryk8s_notifications_total{channel=\"flaky\",outcome=\"retry\"} 3",
        "sentryk8s_notifications_total{channel=\"flaky\",outcome=\"sent\"} 1",
        "sentryk8s_notifications_total{channel=\"good\",outcome=\"sent\"} 1",
        "sentryk8s_notifications_pending 0",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    assert!(
        metrics.contains("sentryk8s_notification_delivery_seconds_count{channel=\"flaky\"} 4"),
        "{metrics}"
    );
}

/// Acceptance 4: inside a maintenance window no alert is sent, results are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_window_suppresses_alerts_but_keeps_results() {
    let bed = Bed::new().await;
    let target = TestTarget::start(Default::default()).await;
    let start = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let end = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    bed.apply(&format!(
        "{}maintenance:
  - name: upgrade
    start: '{start}'
    end: '{end}'
    checks: [api]
checks:
  - name: api
    url: {}
    interval: 1s
    timeout: 500ms
    failure_threshold: 2
    alerts: [hook, slack, pager, mail]
",
        bed.channels(),
        target.url("/")
    ));
    let _scheduler = bed.scheduler();
    let worker = bed.worker("worker-a", free_port(), &[]);
    let state = || async { bed.one::<Option<String>>("SELECT max(status) FROM check_state").await };
    assert!(eventually(Duration::from_secs(30), || async { state().await.as_deref() == Some("up") }).await);
    target.set_status(500);
    assert!(eventually(Duration::from_secs(30), || async { state().await.as_deref() == Some("down") }).await);
    target.set_status(200);
    assert!(eventually(Duration::from_secs(30), || async { state().await.as_deref() == Some("up") }).await);
    let dispatched = || async {
        bed.one::<i64>("SELECT count(*) FROM notifications WHERE dispatched_at IS NOT NULL").await == 2
    };
    assert!(eventually(Duration::from_secs(10), dispatched).await, "{}", worker.output());
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert!(bed.receiver.all().is_empty(), "an alert was sent during maintenance");
    assert!(bed.smtp.mails().is_empty(), "a mail was sent during maintenance");
    let rows = bed
        .db
        .client()
        .await
        .query("SELECT channel, event, status, suppressed_by FROM notification_deliveries ORDER BY channel, event", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 8, "every flip and channel is recorded");
    for r in &rows {
        assert_eq!(r.get::<_, String>(2), "suppressed");
        assert_eq!(r.get::<_, Option<String>>(3).as_deref(), Some("upgrade"));
    }
    // Checks kept running and recording through the window.
    let (failures, successes): (i64, i64) = {
        let row = bed
            .db
            .client()
            .await
            .query_one("SELECT count(*) FILTER (WHERE NOT success), count(*) FILTER (WHERE success) FROM check_results", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(failures >= 2 && successes >= 2, "results: {failures} failures, {successes} successes");
}

/// Acceptance 5: a worker killed with SIGKILL while a receiver holds its
/// request open: another worker sends the notification again, same key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_survives_kill_9_between_claim_and_send() {
    let bed = Bed::new().await;
    bed.receiver.set("/hold", Mode::HoldFirst);
    bed.apply(&format!(
        "alerts:\n  hold: {{ type: webhook, url: '{}' }}\nchecks:\n  - {{ name: api, url: 'http://127.0.0.1:9/', alerts: [hold] }}\n",
        bed.receiver.url("/hold")
    ));
    let fast = [("SENTRYK8S_ALERTS__SEND_TIMEOUT", "2s"), ("SENTRYK8S_ALERTS__LEASE", "4s")];
    let mut first = bed.worker("worker-a", free_port(), &fast);
    bed.flip("api", 5, "down", &["hold"]).await;
    let held = || async { bed.receiver.at("/hold").len() == 1 };
    assert!(eventually(Duration::from_secs(20), held).await, "{}", first.output());
    // Claimed, and the request is on the wire: kill the worker before any answer.
    first.kill9();
    assert_eq!(bed.statuses().await, vec![("hold".into(), "down".into(), "sending".into(), 1)]);
    let second = bed.worker("worker-b", free_port(), &fast);
    let resent = || async { bed.receiver.at("/hold").len() >= 2 };
    assert!(eventually(Duration::from_secs(20), resent).await, "{}", second.output());
    let sent = || async { bed.statuses().await == vec![("hold".into(), "down".into(), "sent".into(), 2)] };
    assert!(eventually(Duration::from_secs(10), sent).await, "{:?}", bed.statuses().await);
    let requests = bed.receiver.at("/hold");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].header("Idempotency-Key"), requests[1].header("Idempotency-Key"));
    assert_eq!(requests[0].raw, requests[1].raw, "the same body both times");
    let by: String = bed.one("SELECT leased_by FROM notification_deliveries").await;
    assert_eq!(by, "worker-b");
}

/// `checks apply` plans channels and windows like checks: idempotent,
/// secrets never printed, `--prune` deletes what no file declares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_plans_channels_and_windows_idempotently() {
    let bed = Bed::new().await;
    let file = format!(
        "{}maintenance:\n  - {{ name: nightly, time_zone: Europe/Paris, every: day, at: '02:00', duration: 1h }}\nchecks:\n  - {{ name: api, url: 'http://127.0.0.1:9/', alerts: [hook, pager] }}\n",
        bed.channels()
    );
    std::fs::write(bed.dir.join("checks.yaml"), &file).unwrap();
    let env = [("HOOK_SECRET", SECRET)];
    let apply = |args: &[&str], env: &[(&str, &str)]| sentryk8s(Some(&bed.db), &bed.dir, args, env, "");
    let first = apply(&["checks", "apply", "-f", "checks.yaml"], &env);
    assert_eq!(first.code, Some(0), "{}", first.all());
    assert!(first.stdout.contains("+ channel hook created\n"), "{}", first.stdout);
    assert!(first.stdout.contains("+ maintenance nightly created\n"), "{}", first.stdout);
    assert!(
        first.stdout.contains("6 channels declared: 6 created, 0 updated, 0 unchanged, 0 deleted."),
        "{}",
        first.stdout
    );
    let again = apply(&["checks", "apply", "-f", "checks.yaml"], &env);
    assert!(
        again.stdout.contains("6 channels declared: 0 created, 0 updated, 6 unchanged, 0 deleted."),
        "{}",
        again.stdout
    );
    assert!(
        again.stdout.contains("1 maintenance window declared: 0 created, 0 updated, 1 unchanged, 0 deleted."),
        "{}",
        again.stdout
    );
    assert!(again.stdout.contains("Nothing to do."), "{}", again.stdout);
    // A new secret is an update that names the field, never the value.
    let changed =
        apply(&["checks", "apply", "-f", "checks.yaml"], &[("HOOK_SECRET", "another-secret-value")]);
    assert!(changed.stdout.contains("~ channel hook updated: secret\n"), "{}", changed.stdout);
    assert!(
        !changed.all().contains("another-secret-value") && !changed.all().contains(SECRET),
        "{}",
        changed.all()
    );
    let stored: String = bed.one("SELECT spec->>'secret' FROM alert_channels WHERE name = 'hook'").await;
    assert_eq!(stored, "another-secret-value");
    // Without --prune, a reference may name a stored channel; with it, it must be in the files.
    std::fs::write(
        bed.dir.join("small.yaml"),
        "checks:\n  - { name: api, url: 'http://127.0.0.1:9/', alerts: [pager] }\n",
    )
    .unwrap();
    let kept = apply(&["checks", "apply", "-f", "small.yaml"], &[]);
    assert_eq!(kept.code, Some(0), "{}", kept.all());
    assert!(
        kept.stdout.contains("6 channels in the database are not declared in these files and were kept"),
        "{}",
        kept.stdout
    );
    let refused = apply(&["checks", "apply", "--prune", "-f", "small.yaml"], &[]);
    assert_eq!(refused.code, Some(2), "{}", refused.all());
    assert!(
        refused.stderr.starts_with("small.yaml:2:")
            && refused.stderr.contains(": checks[0].alerts[0]: unknown channel `pager`"),
        "{}",
        refused.stderr
    );
    std::fs::write(bed.dir.join("small.yaml"), "alerts:\n  pager: { type: pagerduty, routing_key: k }\nchecks:\n  - { name: api, url: 'http://127.0.0.1:9/', alerts: [pager] }\n").unwrap();
    let pruned = apply(&["checks", "apply", "--prune", "-f", "small.yaml"], &[]);
    assert_eq!(pruned.code, Some(0), "{}", pruned.all());
    assert!(
        pruned.stdout.contains("- channel hook deleted\n")
            && pruned.stdout.contains("~ channel pager updated: routing_key, url\n"),
        "{}",
        pruned.stdout
    );
    assert!(pruned.stdout.contains("- maintenance nightly deleted\n"), "{}", pruned.stdout);
    assert_eq!(bed.one::<i64>("SELECT count(*) FROM alert_channels").await, 1);
    assert_eq!(bed.one::<i64>("SELECT count(*) FROM maintenance_windows").await, 0);
}

#[tokio::test]
async fn pausing_or_deleting_a_down_check_resolves_its_incident() {
    let db = TestDb::migrated(8).await;
    let dir = temp_dir();
    let file = |paused: bool| {
        format!(
            "alerts:\n  hook: {{ type: webhook, url: 'http://127.0.0.1:9/hook' }}\nchecks:\n  - {{ name: api, url: 'http://127.0.0.1:9/a', alerts: [hook], enabled: {} }}\n  - {{ name: web, url: 'http://127.0.0.1:9/w', alerts: [hook] }}\n",
            !paused
        )
    };
    std::fs::write(dir.join("c.yaml"), file(false)).unwrap();
    assert_eq!(sentryk8s(Some(&db), &dir, &["checks", "apply", "-f", "c.yaml"], &[], "").code, Some(0));
    let client = db.client().await;
    // Both checks are down, each in an open incident.
    client
        .execute(
            "INSERT INTO check_state (check_id, status, since, incident_id, last_error)
             SELECT id, 'down', now() - interval '5 minutes', nextval('incident_id_seq'), 'refused' FROM checks",
            &[],
        )
        .await
        .unwrap();
    let resolutions = || async {
        client
            .query("SELECT check_name, payload->>'reason', incident_id FROM notifications WHERE event = 'up' ORDER BY 1", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(1)))
            .collect::<Vec<_>>()
    };

    // Paused: its incident is resolved, and it starts afresh.
    std::fs::write(dir.join("c.yaml"), file(true)).unwrap();
    assert_eq!(sentryk8s(Some(&db), &dir, &["checks", "apply", "-f", "c.yaml"], &[], "").code, Some(0));
    assert_eq!(resolutions().await, vec![("api".to_string(), Some("paused".to_string()))]);
    let state: String = client
        .query_one(
            "SELECT s.status FROM check_state s JOIN checks c ON c.id = s.check_id WHERE c.name = 'api'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "unknown");

    // Deleted (pruned): resolved too, before the row goes.
    std::fs::write(
        dir.join("c.yaml"),
        "alerts:\n  hook: { type: webhook, url: 'http://127.0.0.1:9/hook' }\nchecks: []\n",
    )
    .unwrap();
    assert_eq!(
        sentryk8s(Some(&db), &dir, &["checks", "apply", "--prune", "-f", "c.yaml"], &[], "").code,
        Some(0)
    );
    assert_eq!(
        resolutions().await,
        vec![
            ("api".to_string(), Some("paused".to_string())),
            ("web".to_string(), Some("deleted".to_string()))
        ]
    );
}

/// Issue 13, item 4: a channel is a target a tenant chooses, so the
/// workers' deny list judges it too, after resolution and in every IPv6
/// disguise. Webhooks and mail to a name resolving to a denied address, to
/// the NAT64 and 6to4 forms of it, and to an ECS metadata address all fail
/// as "blocked", and the local servers they name are never connected to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_to_denied_addresses_are_never_connected_to() {
    let bed = Bed::new().await;
    let (web, mail) = (bed.receiver.addr.port(), bed.smtp.addr.port());
    let email = |host: &str| {
        format!("{{ type: email, smtp_host: '{host}', smtp_port: {mail}, tls: none, from: sk@example.com, to: [oncall@example.com], max_attempts: 1 }}")
    };
    bed.apply(&format!(
        "alerts:
  byname: {{ type: webhook, url: 'http://localhost:{web}/byname', max_attempts: 1 }}
  nat64: {{ type: slack, url: 'http://[64:ff9b::7f00:1]:{web}/nat64', max_attempts: 1 }}
  ecs: {{ type: webhook, url: 'http://169.254.170.2/v2/credentials', max_attempts: 1 }}
  mail: {}
  mail6to4: {}
checks:
  - {{ name: api, url: 'http://127.0.0.1:9/', alerts: [byname, nat64, ecs, mail, mail6to4] }}
",
        email("localhost"),
        email("2002:7f00:1::1"),
    ));
    let check_id = bed.check_id("api").await;
    bed.db
        .client()
        .await
        .execute(
            "INSERT INTO check_state (check_id, status, incident_id) VALUES ($1, 'down', 9)",
            &[&check_id],
        )
        .await
        .unwrap();
    let worker = bed.worker(
        "worker-a",
        free_port(),
        &[
            ("SENTRYK8S_WORKER__DENY_TARGETS", r#"["metadata", "127.0.0.1/32"]"#),
            ("SENTRYK8S_ALERTS__SEND_TIMEOUT", "1s"),
            ("SENTRYK8S_ALERTS__LEASE", "2s"),
        ],
    );
    bed.flip("api", 9, "down", &["byname", "nat64", "ecs", "mail", "mail6to4"]).await;
    let failed = || async {
        bed.one::<i64>("SELECT count(*) FROM notification_deliveries WHERE status = 'failed'").await == 5
    };
    assert!(
        eventually(Duration::from_secs(30), failed).await,
        "{:?}\n{}",
        bed.statuses().await,
        worker.output()
    );

    let errors: Vec<(String, String)> = bed
        .db
        .client()
        .await
        .query("SELECT channel, coalesce(last_error, '') FROM notification_deliveries ORDER BY channel", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected = [
        ("byname", "localhost: blocked: 127.0.0.1 is in 127.0.0.1/32"),
        ("ecs", "169.254.170.2: blocked: 169.254.170.2 is in 169.254.170.2/32"),
        ("mail", "blocked: 127.0.0.1 is in 127.0.0.1/32"),
        ("mail6to4", "blocked: 2002:7f00:1::1 is in 127.0.0.1/32"),
        ("nat64", "blocked: 64:ff9b::7f00:1 is in 127.0.0.1/32"),
    ];
    assert_eq!(errors.len(), expected.len(), "{errors:?}");
    for ((channel, error), (want_channel, want)) in errors.iter().zip(expected) {
        assert_eq!(channel, want_channel);
        assert!(error.contains(want), "{channel}: {error:?} does not say {want:?}");
        assert!(error.contains("worker.deny_targets"), "{channel}: {error:?} names no setting");
    }
    assert_eq!(bed.receiver.connections(), 0, "a webhook receiver on a denied address was connected to");
    assert_eq!(bed.smtp.connections(), 0, "an SMTP server on a denied address was connected to");
}
