//! One email delivery attempt is bounded, in total, by `alerts.send_timeout`:
//! resolving the SMTP host, connecting, the session and QUIT share one
//! deadline. `alerts.lease` is at least twice that timeout, so a delivery
//! is never claimed again by another worker while its attempt still runs.
//!
//! The server is a real tarpit (it greets, answers up to a command, then
//! says nothing and keeps the socket open). The slow resolution is real
//! too: a DNS server of the test's own that answers after 1.8 s, or never,
//! makes the lookup of the SMTP host wait before the session even starts.

use std::time::{Duration, Instant};

use sentryk8s::alerting::channel::{ChannelKind, ChannelSpec, EmailSpec, SmtpTls};
use sentryk8s::alerting::send::Sender;
use sentryk8s::net::deny::DenyList;
use sentryk8s::net::resolve::{self, Resolver};
use serde_json::json;

use crate::support::servers::DnsTarpit;
use crate::support::smtp::SmtpServer;

/// The timeout under test, and what an attempt may take beyond it
/// (scheduling, the error's formatting) before it counts as overrunning.
const TIMEOUT: Duration = Duration::from_secs(2);
const MARGIN: Duration = Duration::from_millis(700);

fn channel(host: &str, port: u16) -> ChannelSpec {
    ChannelSpec {
        kind: ChannelKind::Email(EmailSpec {
            // A name, so it is resolved (a literal is not).
            smtp_host: host.into(),
            smtp_port: port,
            tls: SmtpTls::None,
            tls_verify: true,
            username: None,
            password: None,
            from: "sk@example.com".into(),
            to: vec!["oncall@example.com".into()],
        }),
        send_on_resolved: true,
        remind_every_ms: None,
        max_attempts: None,
    }
}

/// Sends one notification; returns its error and how long the attempt took.
async fn attempt(sender: &Sender, channel: &ChannelSpec) -> (String, Duration) {
    let doc = json!({"event": "down", "check": "api", "channel": "mail", "idempotency_key": "k1"});
    let started = Instant::now();
    let result = sender.send(channel, &doc, "k1").await;
    (result.err().unwrap_or_else(|| "sent".into()), started.elapsed())
}

#[tokio::test]
async fn an_email_attempt_ends_within_one_send_timeout_whatever_stalls() {
    let sender = Sender::new(TIMEOUT, "sentryk8s-test", DenyList::default()).expect("sender");
    // A DNS server that answers after 1.8 s, and one that never answers.
    let slow_dns = DnsTarpit::answering(Duration::from_millis(1800), std::net::Ipv4Addr::LOCALHOST).await;
    let slow = Resolver::with_servers(&[slow_dns.addr]);
    let silent_dns = DnsTarpit::start().await;
    for stall in ["EHLO", "DATA"] {
        let tarpit = SmtpServer::stalling_at(stall).await;
        let port = tarpit.addr.port();

        // The tarpit alone: the session is cut at the timeout.
        let (error, took) = attempt(&sender, &channel("localhost", port)).await;
        assert!(took >= TIMEOUT - MARGIN, "stalled at {stall}: ended after {took:?}: {error}");
        assert!(took <= TIMEOUT + MARGIN, "stalled at {stall}: took {took:?}, over {TIMEOUT:?}: {error}");
        assert!(
            error.starts_with(&format!("localhost:{port}: ")) && error.contains("alerts.send_timeout (2s)"),
            "stalled at {stall}: unclear error {error:?}"
        );

        // Resolution slowed by 1.8 s, then the tarpit: the session gets
        // only what is left of the same timeout.
        let (error, took) =
            resolve::scoped(slow.clone(), attempt(&sender, &channel("mail.slow.test", port))).await;
        assert!(
            took <= TIMEOUT + MARGIN,
            "slow DNS, stalled at {stall}: took {took:?}, over {TIMEOUT:?}: {error}"
        );
        assert!(error.contains("alerts.send_timeout (2s)"), "slow DNS, stalled at {stall}: {error:?}");
        assert_eq!(
            tarpit.connections(),
            2,
            "stalled at {stall}: one connection per attempt: {error} {took:?}"
        );
        assert!(tarpit.mails().is_empty());
    }

    // A resolution slower than the whole timeout ends the attempt at the
    // timeout, before any connection.
    let tarpit = SmtpServer::stalling_at("EHLO").await;
    let silent = Resolver::with_servers(&[silent_dns.addr]);
    let (error, took) =
        resolve::scoped(silent, attempt(&sender, &channel("mail.silent.test", tarpit.addr.port()))).await;
    assert!(took <= TIMEOUT + MARGIN, "slow DNS alone: took {took:?}: {error}");
    assert!(error.contains("alerts.send_timeout (2s)"), "slow DNS alone: {error:?}");
    assert_eq!(tarpit.connections(), 0, "nothing is connected to after the deadline");
}
