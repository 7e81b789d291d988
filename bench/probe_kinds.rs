//! The probe bench's rows for the check kinds beyond HTTP: checks per
//! second and CPU per check of the prober the worker runs
//! (`sentryk8s::probe::Prober`), one kind at a time, against a local
//! server, in the same run as the HTTP rows.
//!
//! The checks run on a thread of their own (a current-thread runtime, so
//! every task of a check, hyper's HTTP/2 tasks and surge-ping's receiver
//! included, runs there) and that thread's CPU (getrusage RUSAGE_THREAD:
//! user + system, the kernel's work on its sockets included) is the cost.
//! The targets run on other threads and are not counted. These rows
//! measure the probe alone: the queue and PostgreSQL, the same for every
//! kind, are the HTTP row's.
//!
//! One function per kind (`stream_rows` for TCP, TLS and DNS, `icmp_rows`,
//! `grpc_row`); a kind added later adds one beside them and one line in
//! [`rows`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sentryk8s::model::CheckSpec;
use sentryk8s::net::deny::DenyList;
use sentryk8s::probe::{Prober, ProberOptions};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../tests/integration/support/grpc.rs"]
mod grpc;

/// One kind's figures.
pub struct KindRow {
    pub name: String,
    pub target: String,
    pub per_second: f64,
    pub cpu_ms: f64,
    pub ok: u64,
    pub total: u64,
}

/// Every kind's rows. Knobs: BENCH_KIND_CHECKS (checks per kind, default
/// 20000; ICMP runs a tenth of it: each check waits 200 ms between its
/// three requests), BENCH_KIND_CONCURRENCY (default 64).
pub fn rows() -> Vec<KindRow> {
    let checks = crate::common::env_or("BENCH_KIND_CHECKS", 20_000);
    let concurrency = crate::common::env_or("BENCH_KIND_CONCURRENCY", 64);
    let mut rows = stream_rows(checks, concurrency);
    rows.extend(icmp_rows((checks / 10).max(100), concurrency * 4));
    rows.push(grpc_row(checks, concurrency));
    rows
}

/// TCP (connect, banner), TLS (handshake, certificate) and DNS (a UDP
/// question) against the local servers of [`targets`].
fn stream_rows(total: u64, concurrency: u64) -> Vec<KindRow> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("target runtime");
    let (tcp, tls, dns) = runtime.block_on(targets());
    let kinds = [
        (
            "TCP, connect and banner",
            "a greeting listener, 1 thread",
            json!({"kind": "tcp", "url": format!("tcp://{tcp}"), "timeout_ms": 5000,
                   "expect": {"banner_contains": ["+OK"]}}),
        ),
        (
            "TLS, handshake and certificate",
            "rustls, self-signed, 1 thread",
            json!({"kind": "tls", "url": format!("tls://{tls}"), "timeout_ms": 5000,
                   "tls_verify": false, "expect": {"cert_days_left": 1}}),
        ),
        (
            "DNS, a UDP question",
            "one A record, 1 thread",
            json!({"kind": "dns", "url": format!("dns://{dns}"), "timeout_ms": 5000,
                   "dns": {"name": "bench.test", "type": "A"}, "expect": {"answers_include": ["127.0.0.1"]}}),
        ),
    ];
    let rows =
        kinds.into_iter().map(|(name, target, json)| measure(name, target, &spec(json), total, concurrency));
    let rows = rows.collect();
    drop(runtime);
    rows
}

/// The local servers: TCP (greets), TLS (self-signed), DNS (one A record).
async fn targets() -> (SocketAddr, SocketAddr, SocketAddr) {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
    let tcp_at = tcp.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"+OK ready\r\n").await;
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf).await;
            });
        }
    });
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let tls = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind tls");
    let tls_at = tls.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = tls.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut t) = acceptor.accept(s).await {
                    let _ = t.shutdown().await;
                }
            });
        }
    });
    let dns = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
    let dns_at = dns.local_addr().expect("addr");
    tokio::spawn(async move {
        use hickory_resolver::proto::op::Message;
        use hickory_resolver::proto::rr::{rdata::A, RData, Record};
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = dns.recv_from(&mut buf).await {
            let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
            let Some(query) = request.queries.first().cloned() else { continue };
            let mut response = Message::response(request.metadata.id, request.metadata.op_code);
            response.add_query(query.clone());
            response.add_answer(Record::from_rdata(
                query.name().clone(),
                300,
                RData::A(A([127, 0, 0, 1].into())),
            ));
            if let Ok(bytes) = response.to_vec() {
                let _ = dns.send_to(&bytes, peer).await;
            }
        }
    });
    (tcp_at, tls_at, dns_at)
}

/// ICMP to 127.0.0.1 (3 echo requests, the default), once on raw sockets
/// and once on unprivileged ones, as the chart's workers use: the bench
/// sets net.ipv4.ping_group_range for each and restores it after.
fn icmp_rows(total: u64, concurrency: u64) -> Vec<KindRow> {
    const RANGE: &str = "/proc/sys/net/ipv4/ping_group_range";
    let Ok(before) = std::fs::read_to_string(RANGE) else {
        println!("!! {RANGE} cannot be read: ICMP rows skipped");
        return Vec::new();
    };
    let spec = spec(serde_json::json!({"kind": "icmp", "url": "icmp://127.0.0.1", "timeout_ms": 2000}));
    let mut rows = Vec::new();
    for (socket, range) in [("raw sockets", "1 0"), ("unprivileged sockets", "0 2147483647")] {
        if std::fs::write(RANGE, range).is_err() {
            println!("!! cannot set {RANGE} (not root?): ICMP on {socket} skipped");
            continue;
        }
        rows.push(measure(&format!("ICMP, {socket}"), "the kernel, 127.0.0.1", &spec, total, concurrency));
    }
    let _ = std::fs::write(RANGE, before.trim());
    rows
}

/// gRPC health (grpc://, h2c) against tonic-health's server on hyper.
fn grpc_row(total: u64, concurrency: u64) -> KindRow {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("target runtime");
    let server = runtime.block_on(grpc::HealthServer::start()).expect("gRPC health server");
    let spec = spec(serde_json::json!({
        "kind": "grpc", "url": format!("grpc://{}", server.addr), "timeout_ms": 5000
    }));
    let row =
        measure("gRPC health, grpc:// (h2c)", "tonic-health on hyper, 1 thread", &spec, total, concurrency);
    drop(server);
    row
}

fn spec(json: serde_json::Value) -> CheckSpec {
    serde_json::from_value(json).expect("bench spec")
}

/// Runs `total` checks of `spec`, `concurrency` at once, after a warm-up,
/// on a thread of its own, and measures that thread.
fn measure(name: &str, target: &str, spec: &CheckSpec, total: u64, concurrency: u64) -> KindRow {
    let spec = spec.clone();
    let (secs, cpu, ok) = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let options = ProberOptions {
                body_limit: 1 << 20,
                user_agent: "sentryk8s-bench".into(),
                deny: DenyList::default(),
            };
            let prober = Arc::new(Prober::new(options).expect("prober"));
            run_many(&prober, &spec, (total / 20).max(10), concurrency).await;
            let (t0, cpu0) = (Instant::now(), thread_cpu_seconds());
            let ok = run_many(&prober, &spec, total, concurrency).await;
            (t0.elapsed().as_secs_f64(), thread_cpu_seconds() - cpu0, ok)
        })
    })
    .join()
    .expect("bench thread");
    let row = KindRow {
        name: name.to_string(),
        target: target.to_string(),
        per_second: total as f64 / secs,
        cpu_ms: cpu * 1000.0 / total as f64,
        ok,
        total,
    };
    println!(
        "{}: {:.0} checks/s, {:.3} ms CPU per check, {ok} of {total} up",
        row.name, row.per_second, row.cpu_ms
    );
    row
}

/// `total` checks, `concurrency` at a time, on this thread; how many were up.
async fn run_many(prober: &Prober, spec: &CheckSpec, total: u64, concurrency: u64) -> u64 {
    let next = AtomicU64::new(0);
    let ok = AtomicU64::new(0);
    let lane = || async {
        while next.fetch_add(1, Ordering::Relaxed) < total {
            if prober.run(spec).await.success {
                ok.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    futures_util::future::join_all((0..concurrency).map(|_| lane())).await;
    ok.load(Ordering::Relaxed)
}

/// CPU seconds (user + system) of the calling thread.
fn thread_cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_THREAD)
        .map(|u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or(0.0)
}

/// The rows as a section of the report, and as CSV rows.
pub fn markdown(rows: &[KindRow]) -> String {
    let mut md = String::from(
        "\n## Other check kinds (the prober alone)\n\n\
         | kind | target | checks/s | CPU ms per check | up |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.3} | {} of {} |\n",
            r.name, r.target, r.per_second, r.cpu_ms, r.ok, r.total
        ));
    }
    md.push_str(
        "\nEach kind's checks run in process on one thread of their own (a current-thread runtime) and \
         its CPU, user + system from getrusage(RUSAGE_THREAD), is the cost: the probe with its sockets, \
         not the queue or PostgreSQL (the HTTP rows above carry those). A fresh socket or connection per \
         check, as the worker does. ICMP checks send 3 echo requests 100 ms apart, so their throughput is \
         bounded by the concurrency, not the CPU; on raw sockets every socket sees every reply.\n",
    );
    md
}

pub fn csv_rows(rows: &[KindRow]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            vec![
                format!("\"{}\"", r.name),
                format!("{:.1}", r.per_second),
                format!("{:.4}", r.cpu_ms),
                r.ok.to_string(),
                r.total.to_string(),
            ]
        })
        .collect()
}
