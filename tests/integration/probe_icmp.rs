//! The ICMP check in process (`probe::Prober`, the code the worker runs):
//! 127.0.0.1 answers; a peer in a network namespace the test creates
//! (a veth pair, never an address outside the machine) answers, then is
//! made to ignore echo requests and is down; an unprivileged socket where
//! net.ipv4.ping_group_range allows, a raw one otherwise (each in a
//! namespace of its own, so the machine's sysctl is untouched); the deny
//! list; a name that resolves.

use std::net::Ipv4Addr;
use std::process::Command;

use sentryk8s::model::{CheckOutcome, CheckSpec, ErrorClass};
use sentryk8s::net::deny::DenyList;
use serde_json::json;

use crate::probe_tcp::{prober, run};

#[tokio::test]
async fn loopback_answers_and_the_round_trips_are_stored() {
    let out = run(json!({"kind": "icmp", "url": "icmp://127.0.0.1", "timeout_ms": 2000})).await;
    assert!(out.success, "{out:?}");
    let t = &out.timings;
    let (min, avg, max) = (t.rtt_min_ms.unwrap(), t.rtt_avg_ms.unwrap(), t.rtt_max_ms.unwrap());
    assert!(0.0 < min && min <= avg && avg <= max && max < 1000.0, "{t:?}");
    assert_eq!(t.dns_ms, None, "an IP literal needs no DNS");

    // A name is resolved (from /etc/hosts): the DNS phase is timed.
    let named =
        run(json!({"kind": "icmp", "url": "icmp://localhost", "timeout_ms": 2000, "packets": 5})).await;
    assert!(named.success, "{named:?}");
    assert!(named.timings.dns_ms.is_some(), "{named:?}");

    // max_response_time judges the average round trip: loopback is not 0 ms.
    let strict = run(json!({
        "kind": "icmp", "url": "icmp://127.0.0.1", "timeout_ms": 2000,
        "expect": {"max_response_time_ms": 0}
    }))
    .await;
    assert_eq!(strict.error_class, Some(ErrorClass::Assertion), "{strict:?}");
    assert!(strict.failed_assertions[0].starts_with("average round trip "), "{strict:?}");
}

#[tokio::test]
async fn a_peer_that_drops_echo_requests_is_down() {
    let peer = NamespacePeer::create();
    let url = format!("icmp://{}", peer.addr);

    // First it answers: the path works, so what follows is the drop.
    let up = run(json!({"kind": "icmp", "url": url, "timeout_ms": 2000})).await;
    assert!(up.success, "{up:?}");

    peer.ignore_echo_requests();
    let started = std::time::Instant::now();
    let down = run(json!({"kind": "icmp", "url": url, "timeout_ms": 800, "packets": 2})).await;
    assert!(!down.success);
    assert_eq!(down.error_class, Some(ErrorClass::Timeout), "{down:?}");
    assert_eq!(
        down.error_message.as_deref(),
        Some(format!("no reply to 2 echo requests to {} (100% loss)", peer.addr).as_str())
    );
    assert_eq!(down.timings.rtt_avg_ms, None, "{down:?}");
    let elapsed = started.elapsed();
    assert!(elapsed.as_millis() >= 700 && elapsed.as_secs() < 2, "waited for the deadline: {elapsed:?}");

    // Anything may be lost: then silence is up.
    let lenient =
        run(json!({"kind": "icmp", "url": url, "timeout_ms": 300, "expect": {"max_loss_percent": 100}}))
            .await;
    assert!(lenient.success, "{lenient:?}");
}

#[test]
fn unprivileged_sockets_where_the_sysctl_allows_and_raw_sockets_otherwise() {
    // As the chart sets it: every group may open unprivileged ICMP sockets.
    let allowed = Namespace::create("dgram");
    allowed.sysctl("net/ipv4/ping_group_range", "0 2147483647");
    // The kernel's default: no group may; root falls back to a raw socket.
    let refused = Namespace::create("raw");
    refused.sysctl("net/ipv4/ping_group_range", "1 0");
    let spec = json!({"kind": "icmp", "url": "icmp://127.0.0.1", "timeout_ms": 2000, "packets": 4});

    let (out, dgram, raw) = run_in(&allowed, spec.clone());
    assert!(out.success, "{out:?}");
    assert_eq!((dgram, raw), (1, 0), "one unprivileged socket, no raw one");
    let (out, dgram, raw) = run_in(&refused, spec);
    assert!(out.success, "{out:?}");
    assert_eq!((dgram, raw), (0, 1), "one raw socket, no unprivileged one");
}

#[tokio::test]
async fn the_deny_list_applies_to_icmp_checks() {
    let spec: CheckSpec =
        serde_json::from_value(json!({"kind": "icmp", "url": "icmp://127.0.0.1", "timeout_ms": 1000}))
            .unwrap();
    let out = prober(DenyList::parse(&["127.0.0.0/8".to_string()]).unwrap()).run(&spec).await;
    assert_eq!(out.error_class, Some(ErrorClass::Blocked), "{out:?}");
    assert_eq!(out.timings.rtt_avg_ms, None, "nothing was sent");
}

/// A network namespace of the test's own, deleted on drop (even when the
/// test fails), with its loopback up. Its sysctls are its own: setting
/// them leaves the machine's untouched.
struct Namespace {
    name: String,
}

impl Namespace {
    fn create(what: &str) -> Namespace {
        let name = format!("sk8s-{what}-{}", std::process::id());
        // A namespace left by a killed run of this same process id.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Namespace { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// Writes `value` to /proc/sys/<key> inside the namespace.
    fn sysctl(&self, key: &str, value: &str) {
        let script = format!("echo '{value}' > /proc/sys/{key}");
        ip(&["netns", "exec", &self.name, "sh", "-c", &script]);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// A host of the test's own: a namespace joined to this one by a veth
/// pair, on a /30 of 198.18.0.0/15 (the range set aside for tests, RFC
/// 2544) chosen from the process id, so runs side by side do not meet.
/// Deleting the namespace removes both ends of the pair.
struct NamespacePeer {
    ns: Namespace,
    addr: Ipv4Addr,
}

impl NamespacePeer {
    fn create() -> NamespacePeer {
        let pid = std::process::id();
        let (outer, inner) = (format!("sk8i{}a", pid % 100_000_000), format!("sk8i{}b", pid % 100_000_000));
        let subnet = pid % (1 << 14);
        let octets = |host: u32| Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + subnet * 4 + host);
        let (ours, theirs) = (octets(1), octets(2));
        let peer = NamespacePeer { ns: Namespace::create("icmp"), addr: theirs };
        let ns = peer.ns.name.as_str();
        ip(&["link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", ns]);
        ip(&["addr", "add", &format!("{ours}/30"), "dev", &outer]);
        ip(&["link", "set", &outer, "up"]);
        ip(&["-n", ns, "addr", "add", &format!("{theirs}/30"), "dev", &inner]);
        ip(&["-n", ns, "link", "set", &inner, "up"]);
        peer
    }

    /// The peer's kernel stops answering echo requests.
    fn ignore_echo_requests(&self) {
        self.ns.sysctl("net/ipv4/icmp_echo_ignore_all", "1");
    }
}

/// Runs `spec` from a thread that joined `ns` (its own runtime: a socket
/// is made in the namespace of the thread that makes it), and counts the
/// ICMP sockets the namespace lists while it runs: unprivileged ones in
/// /proc/net/icmp, raw ones in /proc/net/raw (of this thread's namespace).
fn run_in(ns: &Namespace, spec: serde_json::Value) -> (CheckOutcome, usize, usize) {
    let path = format!("/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        let namespace = std::fs::File::open(&path).expect("open the namespace");
        nix::sched::setns(namespace, nix::sched::CloneFlags::CLONE_NEWNET).expect("join the namespace");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let sockets = |table: &str| {
                let text = std::fs::read_to_string(format!("/proc/thread-self/net/{table}")).unwrap();
                text.lines().count().saturating_sub(1)
            };
            let check = run(spec);
            tokio::pin!(check);
            let (mut dgram, mut raw) = (0, 0);
            loop {
                tokio::select! {
                    out = &mut check => return (out, dgram, raw),
                    _ = tokio::time::sleep(std::time::Duration::from_millis(10)) => {
                        dgram = dgram.max(sockets("icmp"));
                        raw = raw.max(sockets("raw"));
                    }
                }
            }
        })
    })
    .join()
    .unwrap()
}

/// Runs `ip` (iproute2; the tests run as root), failing the test on error.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}
