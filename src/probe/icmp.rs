//! Where an ICMP check is timed: resolve the host (the deny list judges
//! the address), send `packets` echo requests on a socket of its own, and
//! judge the loss and the average round trip.
//!
//! The socket is an unprivileged ICMP socket (`SOCK_DGRAM`) where the
//! kernel allows it (`net.ipv4.ping_group_range` holds the process's
//! group: the chart sets it), a raw socket otherwise (root or `NET_RAW`).
//! An unprivileged socket per check: the kernel then hands each check only
//! its own replies, as a fresh connection does for the other kinds. Raw
//! sockets see every reply: the checks share one, and their identifiers
//! tell their replies apart.
//!
//! Phases: dns, then rtt min/avg/max over the answered requests. The
//! requests go out [`PACKET_GAP`] apart (closer when the timeout is short)
//! and each waits for its reply until the check's deadline, so a lost
//! packet costs the rest of the timeout, as with `ping -w`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use surge_ping::{Client, Config, PingIdentifier, PingSequence, SurgeError, ICMP};
use tokio::time::Instant;

use super::run::{Run, Verdict};
use crate::model::check::{DEFAULT_PACKETS, MAX_PACKETS};
use crate::model::{CheckOutcome, CheckSpec, ErrorClass, Timings};
use crate::net::connect::describe_io;
use crate::net::deny::DenyList;
use crate::net::dial::{host_port, resolve_allowed};
use crate::net::http::{Failure, Progress};

/// Time between two echo requests of one check.
pub const PACKET_GAP: Duration = Duration::from_millis(100);

/// Payload of each echo request: 56 bytes, as ping(8) sends.
const PAYLOAD: [u8; 56] = [0x5a; 56];

/// Runs ICMP checks. Cheap to share; lives in one tokio runtime (a shared
/// raw socket's receiving task runs in the runtime that opened it).
pub struct IcmpProbe {
    deny: DenyList,
    /// The raw sockets (IPv4, IPv6) every check shares once the kernel has
    /// refused an unprivileged one: every raw ICMP socket receives every
    /// reply that reaches the host, so one per check would make each reply
    /// be read once per check in flight (the probe bench measured 32 times
    /// the CPU, and replies dropped from full buffers at 256 in flight).
    /// Checks tell their replies apart by their identifier.
    raw: [Mutex<Option<Client>>; 2],
}

impl IcmpProbe {
    pub fn new(deny: DenyList) -> IcmpProbe {
        IcmpProbe { deny, raw: [Mutex::new(None), Mutex::new(None)] }
    }

    pub async fn run(&self, spec: &CheckSpec) -> CheckOutcome {
        let mut run = Run::start(spec);
        let deadline = run.deadline();
        let target = tokio::time::timeout_at(deadline, self.target(spec, &mut run.progress)).await;
        let target = match target {
            Ok(Ok(ip)) => ip,
            Ok(Err(failure)) => return run.finish(Some(Err(failure)), None),
            Err(_) => return run.finish(None, None),
        };
        // The echo requests end by the deadline themselves (a lost one
        // counts as lost, not as a timeout of the whole check).
        let verdict = match self.socket(target) {
            Ok((client, socket)) => ping(spec, target, &client, socket, &mut run.progress).await,
            Err(failure) => Err(failure),
        };
        // max_response_time is judged on the average round trip, not here.
        run.finish(Some(verdict), None)
    }

    /// The address pinged: the URL's host, resolved and allowed.
    async fn target(&self, spec: &CheckSpec, p: &mut Progress) -> Result<IpAddr, Failure> {
        let (host, _) = host_port(&spec.url, 0)?;
        let addresses = resolve_allowed(&host, 0, &self.deny, p).await?;
        // resolve_allowed never returns an empty list; this is its guard.
        addresses
            .first()
            .map(|a| a.ip())
            .ok_or_else(|| Failure::new(ErrorClass::Dns, "the name has no address"))
    }
}

impl IcmpProbe {
    /// The socket a check pings from, and its name for messages: a fresh
    /// unprivileged one (the kernel gives each only its own replies), or
    /// the shared raw one once the kernel has refused unprivileged ones
    /// (which it then does for the life of the process).
    fn socket(&self, target: IpAddr) -> Result<(Client, &'static str), Failure> {
        let shared = &self.raw[usize::from(target.is_ipv6())];
        let lock = || shared.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = lock().as_ref() {
            return Ok((client.clone(), RAW));
        }
        let client = open_socket(target)?;
        if client.get_socket().get_type() != socket2::Type::RAW {
            return Ok((client, DGRAM));
        }
        Ok((lock().get_or_insert(client).clone(), RAW))
    }
}

/// The sockets, named for messages.
const RAW: &str = "raw (SOCK_RAW)";
const DGRAM: &str = "unprivileged (SOCK_DGRAM)";

/// Sends the echo requests to `target` and judges the answers.
async fn ping(
    spec: &CheckSpec,
    target: IpAddr,
    client: &Client,
    socket: &'static str,
    p: &mut Progress,
) -> Verdict {
    let packets = spec.packets.unwrap_or(DEFAULT_PACKETS).clamp(1, MAX_PACKETS);
    let deadline = p.deadline;
    let gap = PACKET_GAP.min(deadline.saturating_duration_since(Instant::now()) / (2 * packets));
    let ident = next_ident();
    let sends = (0..packets).map(|i| async move {
        tokio::time::sleep(gap * i).await;
        let mut pinger = client.pinger(target, ident).await;
        pinger.timeout(deadline.saturating_duration_since(Instant::now()));
        pinger.ping(PingSequence(i as u16), &PAYLOAD).await
    });
    let answers = futures_util::future::join_all(sends).await;
    let mut rtts = Vec::with_capacity(answers.len());
    let mut send_error = None;
    for answer in answers {
        match answer {
            Ok((_, rtt)) => rtts.push(rtt.as_secs_f64() * 1000.0),
            Err(SurgeError::Timeout { .. }) => {}
            Err(SurgeError::IOError(e)) => send_error = Some(describe_io(&e)),
            Err(other) => send_error = Some(other.to_string()),
        }
    }
    record_rtts(&mut p.timings, &rtts);
    let e = &spec.expect;
    judge(
        &Answers { target, packets, rtts: &rtts, send_error: send_error.as_deref(), socket },
        e.max_loss_percent.unwrap_or(0),
        e.max_response_time_ms,
    )
}

/// The identifier of one check's echo requests. Raw sockets see every
/// reply that reaches the host: a distinct identifier per check (in this
/// process; the process id tells processes apart) keeps each check to its
/// own replies. Unprivileged sockets ignore it: the kernel sets its own.
fn next_ident() -> PingIdentifier {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    PingIdentifier(
        (std::process::id() as u16).wrapping_mul(31).wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)),
    )
}

/// An ICMP socket for `target`'s family: unprivileged first, raw when
/// the kernel refuses that (surge-ping tries both in this order).
fn open_socket(target: IpAddr) -> Result<Client, Failure> {
    let kind = if target.is_ipv6() { ICMP::V6 } else { ICMP::V4 };
    // net.ipv4.ping_group_range governs unprivileged ICMPv6 sockets too.
    Client::new(&Config::builder().kind(kind).build()).map_err(|e| {
        Failure::new(
            ErrorClass::Unsupported,
            format!(
                "cannot open an ICMP socket: unprivileged (SOCK_DGRAM) and raw (SOCK_RAW) both failed ({}); \
                 allow the worker's group in net.ipv4.ping_group_range, or grant it NET_RAW",
                e.kind()
            ),
        )
    })
}

/// What came back from the echo requests of one check.
struct Answers<'a> {
    target: IpAddr,
    /// Echo requests sent.
    packets: u32,
    /// Round trips of the answered ones, in milliseconds.
    rtts: &'a [f64],
    /// Why sending failed, when it did (unreachable network, ...).
    send_error: Option<&'a str>,
    /// The socket used, named for messages.
    socket: &'static str,
}

fn record_rtts(timings: &mut Timings, rtts: &[f64]) {
    if rtts.is_empty() {
        return;
    }
    timings.rtt_min_ms = rtts.iter().copied().reduce(f64::min);
    timings.rtt_max_ms = rtts.iter().copied().reduce(f64::max);
    timings.rtt_avg_ms = Some(rtts.iter().sum::<f64>() / rtts.len() as f64);
}

/// Up when at most `max_loss` percent of the requests went unanswered and
/// the average round trip is at most `max_rtt_ms`. No answer at all is a
/// failure of its own (the host, or the path, is down), unless anything
/// may be lost.
fn judge(a: &Answers<'_>, max_loss: u8, max_rtt_ms: Option<u64>) -> Verdict {
    let lost = a.packets.saturating_sub(a.rtts.len() as u32);
    let loss = f64::from(lost) * 100.0 / f64::from(a.packets.max(1));
    if a.rtts.is_empty() && max_loss < 100 {
        return Err(match a.send_error {
            Some(why) => Failure::new(
                ErrorClass::Refused,
                format!(
                    "sending echo requests to {} on the {} ICMP socket failed: {why}",
                    a.target, a.socket
                ),
            ),
            None => Failure::new(
                ErrorClass::Timeout,
                format!("no reply to {} echo requests to {} (100% loss)", a.packets, a.target),
            ),
        });
    }
    let mut failed = Vec::new();
    if loss > f64::from(max_loss) {
        failed.push(format!(
            "loss {loss:.0}% > {max_loss}% ({lost} of {} echo requests unanswered)",
            a.packets
        ));
    }
    if let (Some(max), false) = (max_rtt_ms, a.rtts.is_empty()) {
        let avg = a.rtts.iter().sum::<f64>() / a.rtts.len() as f64;
        if avg > max as f64 {
            failed.push(format!("average round trip {avg:.1} ms > {max} ms"));
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers<'a>(packets: u32, rtts: &'a [f64], send_error: Option<&'a str>) -> Answers<'a> {
        Answers { target: [192, 0, 2, 1].into(), packets, rtts, send_error, socket: RAW }
    }

    #[test]
    fn every_answer_in_time_is_up() {
        assert_eq!(judge(&answers(3, &[1.0, 2.0, 3.0], None), 0, None).unwrap(), Vec::<String>::new());
        assert!(judge(&answers(3, &[1.0, 2.0, 3.0], None), 0, Some(2)).unwrap().is_empty(), "avg 2 <= 2");
        assert!(judge(&answers(1, &[0.1], None), 0, Some(0)).unwrap().len() == 1, "avg 0.1 > 0");
    }

    #[test]
    fn loss_is_judged_against_max_loss() {
        let one_lost = answers(4, &[1.0, 1.0, 1.0], None);
        assert_eq!(judge(&one_lost, 0, None).unwrap(), ["loss 25% > 0% (1 of 4 echo requests unanswered)"]);
        assert!(judge(&one_lost, 25, None).unwrap().is_empty(), "25% is allowed at max_loss 25");
        assert_eq!(judge(&one_lost, 24, None).unwrap().len(), 1);
        let two_of_three = answers(3, &[1.0], None);
        assert_eq!(
            judge(&two_of_three, 50, None).unwrap(),
            ["loss 67% > 50% (2 of 3 echo requests unanswered)"]
        );
    }

    #[test]
    fn the_average_round_trip_is_max_response_time() {
        let slow = answers(3, &[10.0, 20.0, 60.0], None);
        assert_eq!(judge(&slow, 0, Some(29)).unwrap(), ["average round trip 30.0 ms > 29 ms"]);
        assert!(judge(&slow, 0, Some(30)).unwrap().is_empty());
        // Both fail: both are named.
        assert_eq!(judge(&answers(2, &[50.0], None), 0, Some(10)).unwrap().len(), 2);
    }

    #[test]
    fn no_answer_is_a_timeout_or_the_send_error() {
        let silent = judge(&answers(3, &[], None), 0, None).unwrap_err();
        assert_eq!(silent.class, ErrorClass::Timeout);
        assert_eq!(silent.message, "no reply to 3 echo requests to 192.0.2.1 (100% loss)");
        let unreachable = judge(&answers(3, &[], Some("network is unreachable")), 50, None).unwrap_err();
        assert_eq!(unreachable.class, ErrorClass::Refused);
        assert_eq!(
            unreachable.message,
            "sending echo requests to 192.0.2.1 on the raw (SOCK_RAW) ICMP socket failed: network is unreachable"
        );
        // max_loss 100: anything goes, even silence (no round trip to judge).
        assert!(judge(&answers(3, &[], None), 100, Some(1)).unwrap().is_empty());
    }

    #[test]
    fn round_trips_are_recorded_as_min_avg_max() {
        let mut t = Timings::default();
        record_rtts(&mut t, &[]);
        assert_eq!((t.rtt_min_ms, t.rtt_avg_ms, t.rtt_max_ms), (None, None, None));
        record_rtts(&mut t, &[3.0, 1.0, 2.0]);
        assert_eq!((t.rtt_min_ms, t.rtt_avg_ms, t.rtt_max_ms), (Some(1.0), Some(2.0), Some(3.0)));
    }
}
