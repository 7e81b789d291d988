//! `sentryk8s standalone` on the example checks file, as a child process,
//! against the demo target the newcomer script runs (in process here).

use std::collections::HashMap;
use std::time::Duration;

use crate::support::{free_port, Binary, TestBroker, TestDb};

#[path = "../../examples/demo_target.rs"]
mod demo_target;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_runs_the_example_file_to_the_right_states() {
    let db = TestDb::empty().await;
    let broker = TestBroker::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    tokio::spawn(demo_target::serve(listener));
    let health = crate::support::grpc::HealthServer::start().await.unwrap();
    health.set("demo.Greeter", crate::support::grpc::ServingStatus::Serving).await;
    let closed = free_port();
    // The servers of the other kinds, on ports of this test.
    let line = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dns = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (line_at, tls_at, dns_at) =
        (line.local_addr().unwrap(), tls.local_addr().unwrap(), dns.local_addr().unwrap());
    tokio::spawn(demo_target::serve_line(line));
    tokio::spawn(demo_target::serve_tls(tls));
    tokio::spawn(demo_target::serve_dns(dns));

    // The example as shipped, pointed at this test's target and closed port.
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/checks.yaml")).unwrap();
    let example = example
        .replace("127.0.0.1:18080", &target.to_string())
        .replace("127.0.0.1:18081", &format!("127.0.0.1:{closed}"))
        .replace("127.0.0.1:18083", &line_at.to_string())
        .replace("127.0.0.1:18443", &tls_at.to_string())
        .replace("127.0.0.1:18053", &dns_at.to_string())
        .replace("127.0.0.1:18051", &health.addr.to_string());
    let dir = std::env::temp_dir().join(crate::support::unique_name("sk-standalone"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("checks.yaml");
    std::fs::write(&file, example).unwrap();

    let mut env = broker.env();
    env.push(("SENTRYK8S_DATABASE_URL".into(), db.url.clone()));
    env.push(("EXAMPLE_TOKEN".into(), "demo-token".into()));
    env.push(("EXAMPLE_PING_KEY".into(), "demo-heartbeat-key".into()));
    let listen = format!("127.0.0.1:{}", free_port());
    // The example reads ${EXAMPLE_*}: allowed by name, as scripts/demo.sh does.
    let mut child = Binary::spawn(
        &[
            "--listen",
            &listen,
            "standalone",
            "--web-listen",
            "127.0.0.1:0",
            "--allow-env",
            "EXAMPLE_*",
            "-f",
            file.to_str().unwrap(),
        ],
        &env,
    );

    let expected: HashMap<&str, &str> = [
        ("home", "up"),
        ("health", "up"),
        ("expected-error", "up"),
        ("redirect-followed", "up"),
        ("redirect-itself", "up"),
        ("post-echo", "up"),
        ("slow", "down"),
        ("server-error", "down"),
        ("nothing-listens", "down"),
        ("line-server", "up"),
        ("port-closed", "up"),
        ("tls-handshake", "up"),
        ("dns-answers", "up"),
        // Not pinged, but new: not late before its first deadline.
        ("demo-heartbeat", "up"),
        ("loopback-ping", "up"),
        ("greeter-grpc", "up"),
    ]
    .into_iter()
    .collect();
    let client = db.client().await;
    let started = std::time::Instant::now();
    let states = || async {
        client
            .query("SELECT c.name, s.status FROM checks c JOIN check_state s ON s.check_id = c.id", &[])
            .await
            .map(|rows| {
                rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))).collect::<HashMap<_, _>>()
            })
            .unwrap_or_default()
    };
    let reached = crate::support::eventually(Duration::from_secs(30), || async {
        let rows = states().await;
        expected.iter().all(|(name, state)| rows.get(*name).map(String::as_str) == Some(*state))
    })
    .await;
    let last = states().await;
    assert!(reached, "states after {:?}: {last:?}\n{}", started.elapsed(), child.output());

    // `status -o json` agrees, and the paused checks never ran.
    let (status, out) =
        Binary::run(&["status", "-o", "json"], &[("SENTRYK8S_DATABASE_URL".into(), db.url.clone())]);
    assert!(status.success(), "{out}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    for row in &rows {
        let name = row["name"].as_str().unwrap();
        match expected.get(name) {
            Some(state) => assert_eq!(row["state"], *state, "{name}"),
            None => assert_eq!(row["enabled"], false, "{name} is one of the paused checks"),
        }
    }
    assert!(!out.contains("demo-token"), "the token never appears");

    child.terminate();
    let status = child.wait_exit(Duration::from_secs(25)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", child.output());
    assert!(!child.output().contains("demo-token"));
}
