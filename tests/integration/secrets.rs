//! A secret header value and a database password never appear in logs or
//! command output: every command and both roles run with debug logging,
//! against a hostile target that echoes the request (headers included)
//! into its response and fails its assertions, so every error path that
//! could quote a response or a request gets exercised.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{free_port, Binary, TestBroker, TestDb};

const HEADER_SECRET: &str = "hdr-Zq81-SECRET";
const DB_PASSWORD: &str = "dbpw-Xy77-SECRET";

/// Answers 500 with the raw request it received as the body.
async fn echoing_target() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let body = String::from_utf8_lossy(&buf[..n]).into_owned();
                let reply = format!(
                    "HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\nX-Echo: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.lines().find(|l| l.starts_with("authorization")).unwrap_or(""),
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_secret_and_a_database_password_never_appear_in_output() {
    let db = TestDb::empty().await;
    let broker = TestBroker::new();
    let target = echoing_target().await;
    // Trust authentication ignores the password, so it can be anything.
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_password(Some(DB_PASSWORD)).unwrap();
    let db_url = url.to_string();

    let dir = std::env::temp_dir().join(crate::support::unique_name("sk-secrets"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("checks.yaml");
    std::fs::write(
        &file,
        format!(
            "checks:
  - name: echo
    url: http://{target}/private
    interval: 1s
    timeout: 900ms
    headers:
      Authorization: \"Bearer ${{TOKEN}}\"
    expect:
      body_contains: never-there
      body_regex: \"^nothing$\"
      json: {{ /status: UP }}
"
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap().to_string();

    let mut env = broker.env();
    env.push(("SENTRYK8S_DATABASE_URL".into(), db_url.clone()));
    env.push(("TOKEN".into(), HEADER_SECRET.into()));
    env.push(("RUST_LOG".into(), "debug".into()));
    let outputs = std::cell::RefCell::new(Vec::new());
    let run = |args: &[&str], extra: &[(&str, &str)]| {
        let mut e = env.clone();
        e.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let (status, out) = Binary::run(args, &e);
        // The label names the subcommand only: the arguments may carry the secrets.
        let command = args.iter().find(|a| !a.starts_with('-') && !a.contains("://")).unwrap_or(&"");
        outputs.borrow_mut().push(format!("$ sentryk8s {command} …\n{out}"));
        status
    };
    assert!(run(&["config"], &[]).success());
    assert!(run(&["migrate"], &[]).success());
    assert!(run(&["checks", "apply", "--allow-env", "TOKEN", "-f", &file], &[]).success());

    // Both roles, at debug level, running the failing check for a while.
    let listen = format!("127.0.0.1:{}", free_port());
    let mut standalone = Binary::spawn(
        &[
            "--listen",
            &listen,
            "standalone",
            "--web-listen",
            "127.0.0.1:0",
            "--allow-env",
            "TOKEN",
            "-f",
            &file,
        ],
        &env,
    );
    let client = db.client().await;
    let ran = crate::support::eventually(Duration::from_secs(20), || async {
        client
            .query_one("SELECT count(*) FROM check_results", &[])
            .await
            .map(|r| r.get::<_, i64>(0) >= 3)
            .unwrap_or(false)
    })
    .await;
    assert!(ran, "{}", standalone.output());
    let metrics = crate::support::http::get(listen.parse().unwrap(), "/metrics").await.unwrap().1;
    standalone.terminate();
    assert!(standalone.wait_exit(Duration::from_secs(25)).await.is_some_and(|s| s.success()));
    outputs.borrow_mut().push(standalone.output());
    outputs.borrow_mut().push(metrics);

    for args in [&["status"][..], &["status", "-o", "json"], &["checks", "list", "-o", "yaml"]] {
        assert!(run(args, &[]).success());
    }
    // Error paths that print a connection target: unreachable, malformed.
    let unreachable = format!("postgres://postgres:{DB_PASSWORD}@127.0.0.1:{}/x", free_port());
    assert!(!run(&["migrate", "--wait", "1s"], &[("SENTRYK8S_DATABASE_URL", &unreachable)]).success());
    let malformed = format!("postgres://postgres:{DB_PASSWORD}@[::1/x");
    assert_eq!(run(&["config"], &[("SENTRYK8S_DATABASE_URL", &malformed)]).code(), Some(2));
    let amqp = format!("amqp://guest:{DB_PASSWORD}@127.0.0.1:{}/%2f", free_port());
    assert_eq!(run(&["--amqp-url", &amqp, "config"], &[]).code(), Some(0));

    let everything = outputs.borrow().join("\n");
    assert!(everything.contains("DEBUG"), "debug logging was on");
    assert!(everything.contains("500"), "the failures were seen and reported");
    for secret in [HEADER_SECRET, DB_PASSWORD] {
        assert!(!everything.contains(secret), "{secret} leaked:\n{everything}");
    }
}
