//! The DNS check against an authoritative server the test runs (built on
//! hickory-proto, over UDP and TCP on 127.0.0.1): the right answer (every
//! record checked), a wrong answer, NXDOMAIN, a server that never
//! answers, TCP transport, and the deny list applied to the server.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, MX, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use sentryk8s::model::{CheckSpec, ErrorClass};
use sentryk8s::net::deny::DenyList;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use crate::probe_tcp::{prober, run};

/// The zone: `shop.test` has two A records and an MX, `txt.test` a TXT;
/// every other name is NXDOMAIN.
fn answer(request: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(request).ok()?;
    let query = request.queries.first()?.clone();
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.authoritative = true;
    response.add_query(query.clone());
    let name = query.name().to_ascii().to_ascii_lowercase();
    let record = |data: RData, ttl: u32| Record::from_rdata(query.name().clone(), ttl, data);
    match (name.as_str(), query.query_type()) {
        ("shop.test.", RecordType::A) => {
            response.add_answer(record(RData::A(A(Ipv4Addr::new(10, 1, 0, 7))), 300));
            response.add_answer(record(RData::A(A(Ipv4Addr::new(10, 1, 0, 8))), 30));
        }
        ("shop.test.", RecordType::MX) => {
            let exchange = Name::from_ascii("mail.shop.test.").ok()?;
            response.add_answer(record(RData::MX(MX::new(10, exchange)), 3600));
        }
        ("txt.test.", RecordType::TXT) => {
            response.add_answer(record(RData::TXT(TXT::new(vec!["v=spf1 -all".into()])), 60));
        }
        ("shop.test." | "txt.test.", _) => {}
        _ => response.metadata.response_code = ResponseCode::NXDomain,
    }
    response.to_vec().ok()
}

/// Serves the zone on one UDP and one TCP socket of the same port.
async fn authoritative() -> SocketAddr {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
            if let Some(reply) = answer(&buf[..n]) {
                let _ = udp.send_to(&reply, peer).await;
            }
        }
    });
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            tokio::spawn(async move {
                let mut length = [0u8; 2];
                stream.read_exact(&mut length).await.ok()?;
                let mut request = vec![0u8; u16::from_be_bytes(length) as usize];
                stream.read_exact(&mut request).await.ok()?;
                let reply = answer(&request)?;
                let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&reply);
                stream.write_all(&framed).await.ok()
            });
        }
    });
    addr
}

fn dns(server: SocketAddr, name: &str, record_type: &str, expect: serde_json::Value) -> serde_json::Value {
    json!({
        "kind": "dns", "url": format!("dns://{server}"), "timeout_ms": 2000,
        "dns": {"name": name, "type": record_type}, "expect": expect
    })
}

#[tokio::test]
async fn the_right_answer_is_up_with_every_record_checked() {
    let server = authoritative().await;
    let up = run(dns(server, "shop.test", "A", json!({
        "answers_exactly": ["10.1.0.8", "10.1.0.7"], "answers_in": ["10.1.0.0/24"], "answers_include": ["10.1.0.7"]
    })))
    .await;
    assert!(up.success, "{up:?}");
    assert!(up.timings.query_ms.is_some_and(|ms| ms > 0.0), "{up:?}");
    assert_eq!(up.timings.dns_ms, None, "a server given as an address needs no DNS: {up:?}");

    // The second record's TTL fails min_ttl: the first alone would pass.
    let ttl = run(dns(server, "shop.test", "A", json!({"min_ttl_s": 60}))).await;
    assert_eq!(ttl.failed_assertions, ["answer 10.1.0.8 has TTL 30 s (< 60 s)"], "{ttl:?}");

    let mx = run(dns(server, "shop.test", "MX", json!({"answers_include": ["10 MAIL.shop.test."]}))).await;
    assert!(mx.success, "{mx:?}");
    let txt = run(dns(server, "txt.test", "TXT", json!({"answers_exactly": ["v=spf1 -all"]}))).await;
    assert!(txt.success, "{txt:?}");
}

#[tokio::test]
async fn a_wrong_answer_and_nxdomain_are_down() {
    let server = authoritative().await;
    let wrong = run(dns(
        server,
        "shop.test",
        "A",
        json!({"answers_include": ["10.9.9.9"], "answers_in": ["10.1.0.7/32"]}),
    ))
    .await;
    assert_eq!(wrong.error_class, Some(ErrorClass::Assertion), "{wrong:?}");
    assert_eq!(
        wrong.failed_assertions,
        ["A answer 10.9.9.9 missing (got [10.1.0.7, 10.1.0.8])", "answer 10.1.0.8 is not in [10.1.0.7/32]",]
    );
    let nx = run(dns(server, "nope.test", "A", json!({}))).await;
    assert_eq!(nx.error_class, Some(ErrorClass::Assertion), "{nx:?}");
    assert_eq!(nx.failed_assertions, ["rcode NXDOMAIN, expected NOERROR"]);
    let expected_nx = run(dns(server, "nope.test", "A", json!({"rcode": "NXDOMAIN"}))).await;
    assert!(expected_nx.success, "{expected_nx:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let started = std::time::Instant::now();
    let mut spec = dns(addr, "shop.test", "A", json!({}));
    spec["timeout_ms"] = 500.into();
    let out = run(spec).await;
    assert_eq!(out.error_class, Some(ErrorClass::Timeout), "{out:?}");
    assert_eq!(out.error_message.as_deref(), Some("timed out after 500 ms waiting for the DNS answer"));
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(silent);
}

#[tokio::test]
async fn tcp_transport_and_the_deny_list() {
    let server = authoritative().await;
    let mut spec = dns(server, "shop.test", "A", json!({"answers_include": ["10.1.0.7"]}));
    spec["dns"]["transport"] = "tcp".into();
    let up = run(spec.clone()).await;
    assert!(up.success, "{up:?}");
    let spec: CheckSpec = serde_json::from_value(spec).unwrap();
    let blocked = prober(DenyList::parse(&["127.0.0.0/8".to_string()]).unwrap()).run(&spec).await;
    assert_eq!(blocked.error_class, Some(ErrorClass::Blocked), "{blocked:?}");
}

#[tokio::test]
async fn the_worker_stores_the_query_time() {
    let server = authoritative().await;
    let bed = crate::support::WorkerBed::new().await;
    let mut worker = bed.spawn_worker(&[]);
    let spec = dns(server, "shop.test", "A", json!({"answers_include": ["10.1.0.7"]}));
    let id = bed.add_check("dns", &spec).await;
    bed.publish(&crate::support::WorkerBed::job(id, "dns", &spec, crate::support::worker_bed::now_ms()))
        .await;
    let rows = "SELECT count(*) FROM check_results";
    assert!(bed.wait_for_count(rows, 1, Duration::from_secs(20)).await, "{}", worker.output());
    let row = bed
        .db
        .client()
        .await
        .query_one(
            "SELECT success, query_ms, connect_ms, rtt_avg_ms FROM check_results WHERE check_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let (success, query, connect, rtt): (bool, Option<f32>, Option<f32>, Option<f32>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert!(success && query.is_some_and(|ms| ms > 0.0), "{query:?}");
    assert_eq!((connect, rtt), (None, None), "phases a DNS check does not go through stay null");
    worker.terminate();
    let _ = worker.wait_exit(Duration::from_secs(15)).await;
}
