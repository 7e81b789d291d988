//! Readiness as a type: what a dependency (PostgreSQL, RabbitMQ) offers the
//! ops server's `/readyz`, and the cache `/readyz` answers from. A leaf
//! module, so that `db` and `queue` can implement it without importing the
//! ops server.
//!
//! Probes run in one background loop, every [`REFRESH_EVERY`], each bounded
//! by [`PROBE_TIMEOUT`], never per request: a flood of `/readyz` then costs
//! a read of the last result, and cannot take connections or time from the
//! role (kubelets poll every few seconds, so a result at most a couple of
//! seconds old is as fresh as they can use).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A dependency `/readyz` asks about.
pub trait ReadinessProbe: Send + Sync {
    /// Short name shown in the `/readyz` body ("postgres", "amqp").
    fn name(&self) -> &'static str;
    /// `Ok` when the dependency answers now; `Err` says why not.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// How often the probes run.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// The bound on one probe: past it the dependency counts as not answering.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A result older than this means the probe loop itself is stuck (a
/// starved runtime): not ready, rather than a stale "ok".
pub const STALE_AFTER: Duration = Duration::from_secs(5);

/// One round of probes.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Each probe's name and outcome, in the order the probes were given.
    pub results: Vec<(&'static str, Result<(), String>)>,
    /// When the round finished.
    pub at: Instant,
}

/// The latest round, shared by every `/readyz` request.
#[derive(Clone)]
pub struct Readiness(watch::Receiver<Option<Snapshot>>);

impl Readiness {
    /// Starts the probe loop; it stops when `shutdown` is cancelled.
    pub fn spawn(probes: Vec<Arc<dyn ReadinessProbe>>, shutdown: CancellationToken) -> Readiness {
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            loop {
                let round = tokio::select! {
                    round = probe_all(&probes) => round,
                    _ = shutdown.cancelled() => return,
                };
                if tx.send(Some(round)).is_err() {
                    return; // nobody reads readiness any more
                }
                tokio::select! {
                    _ = tokio::time::sleep(REFRESH_EVERY) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        });
        Readiness(rx)
    }

    /// The latest round; before the first one has finished, waits for it
    /// (at most one probe bound), so a pod is not reported unready merely
    /// because it was asked in its first milliseconds.
    pub async fn latest(&self) -> Option<Snapshot> {
        let mut rx = self.0.clone();
        let limit = PROBE_TIMEOUT + Duration::from_millis(500);
        let latest = match tokio::time::timeout(limit, rx.wait_for(Option::is_some)).await {
            Ok(Ok(snapshot)) => snapshot.clone(),
            _ => None,
        };
        latest
    }
}

/// Runs every probe concurrently, so one slow dependency does not hide the
/// state of another, each under [`PROBE_TIMEOUT`].
async fn probe_all(probes: &[Arc<dyn ReadinessProbe>]) -> Snapshot {
    let results = join_all(probes.iter().map(|p| async move {
        let outcome = match tokio::time::timeout(PROBE_TIMEOUT, p.check()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {}", humantime::format_duration(PROBE_TIMEOUT))),
        };
        (p.name(), outcome)
    }))
    .await;
    Snapshot { results, at: Instant::now() }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts its checks; fails while `down` is set.
    struct Counting(Arc<AtomicUsize>, Arc<std::sync::atomic::AtomicBool>);
    impl ReadinessProbe for Counting {
        fn name(&self) -> &'static str {
            "dep"
        }
        fn check(&self) -> BoxFuture<'_, Result<(), String>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let down = self.1.load(Ordering::SeqCst);
            Box::pin(async move {
                if down {
                    Err("down".into())
                } else {
                    Ok(())
                }
            })
        }
    }

    #[tokio::test]
    async fn requests_read_the_cache_and_the_loop_refreshes_it() {
        let checks = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let token = CancellationToken::new();
        let readiness =
            Readiness::spawn(vec![Arc::new(Counting(checks.clone(), down.clone()))], token.clone());
        for _ in 0..1000 {
            let latest = readiness.latest().await.expect("a first round");
            assert!(latest.results[0].1.is_ok());
        }
        assert_eq!(checks.load(Ordering::SeqCst), 1, "a thousand requests, one probe");
        down.store(true, Ordering::SeqCst);
        tokio::time::sleep(REFRESH_EVERY + Duration::from_millis(300)).await;
        let latest = readiness.latest().await.expect("a round");
        assert_eq!(latest.results[0].1, Err("down".to_string()), "refreshed within a period");
        token.cancel();
    }
}
