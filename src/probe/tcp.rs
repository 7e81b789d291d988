//! Where a TCP check is timed: resolve, connect, optionally write `send`,
//! and read the first bytes the server sends (the banner) when an
//! assertion looks at them. Or, with `connected: false`, assert that
//! nothing accepts: a refusal, or no answer by the deadline, is up.
//!
//! Phases: dns, connect, first byte (from connected, or from the end of
//! `send`, to the first banner byte). The banner is read until every
//! banner assertion holds, the server closes, [`MAX_BANNER_BYTES`] have
//! arrived, or the deadline passes; a banner that never satisfies them
//! fails on what did arrive, not as a timeout.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::assertions::RegexCache;
use super::run::{quote_peer, Run, Verdict};
use crate::model::{CheckOutcome, CheckSpec, ErrorClass, Expect};
use crate::net::connect::describe_io;
use crate::net::deny::DenyList;
use crate::net::dial::{dial, host_port, ms_since};
use crate::net::http::{Failure, Phase, Progress};

/// Banner bytes read at most.
pub const MAX_BANNER_BYTES: usize = 4096;

/// Runs TCP checks. Cheap to share.
pub struct TcpProbe {
    deny: DenyList,
    regexes: RegexCache,
}

impl TcpProbe {
    pub fn new(deny: DenyList) -> TcpProbe {
        TcpProbe { deny, regexes: RegexCache::default() }
    }

    pub async fn run(&self, spec: &CheckSpec) -> CheckOutcome {
        let mut run = Run::start(spec);
        let verdict =
            tokio::time::timeout_at(run.deadline(), self.execute(spec, &mut run.progress)).await.ok();
        if expects_closed(&spec.expect) {
            // No answer by the deadline: nothing accepted, which is up.
            let verdict = match verdict {
                None if run.progress.phase == Phase::Connect => Some(Ok(Vec::new())),
                other => other,
            };
            return run.finish(verdict, None);
        }
        run.finish(verdict, spec.expect.max_response_time_ms)
    }

    async fn execute(&self, spec: &CheckSpec, p: &mut Progress) -> Verdict {
        let (host, port) = host_port(&spec.url, 0)?;
        let connected = dial(&host, port, &self.deny, p).await;
        if expects_closed(&spec.expect) {
            return match connected {
                Ok(_) => Ok(vec![format!("port {port} accepted a connection (expected closed)")]),
                Err(f) if f.class == ErrorClass::Refused => Ok(Vec::new()),
                Err(f) => Err(f),
            };
        }
        let mut stream = connected?;
        let io = |e: std::io::Error| Failure::new(ErrorClass::Protocol, describe_io(&e));
        if let Some(send) = &spec.send {
            p.phase = Phase::FirstByte;
            stream.write_all(send.as_bytes()).await.map_err(io)?;
        }
        let e = &spec.expect;
        if e.banner_contains.is_empty() && e.banner_regex.is_empty() {
            return Ok(Vec::new());
        }
        p.phase = Phase::FirstByte;
        let started = Instant::now();
        let mut banner: Vec<u8> = Vec::with_capacity(512);
        let mut chunk = [0u8; 1024];
        let read = async {
            loop {
                let room = (MAX_BANNER_BYTES - banner.len()).min(chunk.len());
                let n = stream.read(&mut chunk[..room]).await.map_err(io)?;
                if n == 0 {
                    return Ok::<(), Failure>(());
                }
                if banner.is_empty() {
                    p.timings.first_byte_ms = Some(ms_since(started));
                }
                banner.extend_from_slice(&chunk[..n]);
                if banner.len() >= MAX_BANNER_BYTES || self.judge(e, &banner).is_empty() {
                    return Ok(());
                }
            }
        };
        // The same deadline as the run's, polled first: a banner that
        // arrived but never matched is judged, not timed out.
        let finished = tokio::time::timeout_at(p.deadline, read).await;
        p.bytes_read = banner.len() as u64;
        match finished {
            Ok(Err(failure)) if banner.is_empty() => Err(failure),
            Err(_) if banner.is_empty() => {
                Err(Failure::new(ErrorClass::Timeout, "timed out waiting for the banner (nothing received)"))
            }
            _ if banner.is_empty() => {
                Ok(vec!["the server closed the connection without sending anything".into()])
            }
            _ => Ok(self.judge(e, &banner)),
        }
    }

    /// The banner assertions that fail on `banner`.
    fn judge(&self, e: &Expect, banner: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(banner);
        let mut failed = Vec::new();
        for needle in &e.banner_contains {
            if !text.contains(needle.as_str()) {
                failed.push(format!("banner {} does not contain \"{needle}\"", quote_peer(banner, 60)));
            }
        }
        for pattern in &e.banner_regex {
            match self.regexes.get(pattern) {
                Ok(re) if re.is_match(&text) => {}
                Ok(_) => failed.push(format!("banner {} does not match /{pattern}/", quote_peer(banner, 60))),
                Err(why) => failed.push(format!("banner regex /{pattern}/ is invalid: {why}")),
            }
        }
        failed
    }
}

fn expects_closed(e: &Expect) -> bool {
    e.connected == Some(false)
}
