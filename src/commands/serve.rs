//! `serve_role`: how every long-running role (scheduler, worker, standalone,
//! and the web role to come) starts, drains and exits. One policy, so an
//! operator reads one rule and a chart sets one `terminationGracePeriod`:
//!
//! 1. The ops server (`/metrics`, `/healthz`, `/readyz` with the role's
//!    readiness probes) is bound before the role starts, so a busy port is a
//!    startup error and not a half-started pod.
//! 2. The role runs until it returns. SIGTERM or SIGINT cancels the shared
//!    token; from then the role has `drain_timeout` to finish.
//! 3. The ops server stays up while the role drains and stops only once the
//!    role has finished (or the deadline passed), so the last scrape sees
//!    the drain and liveness does not fail mid-drain.
//! 4. The exit status says how it ended:
//!    - 0: the role returned cleanly (a finished drain);
//!    - [`EXIT_DRAIN_TIMEOUT`] (3): the deadline passed with work still
//!      running; what it held comes back by itself (unacknowledged jobs
//!      return to the queue, leases expire), but the operator should know;
//!    - 1: the role failed; `main` prints the error with its causes.
//!
//!    A second signal exits at once with 130 (`shutdown.rs`).

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::EXIT_DRAIN_TIMEOUT;
use crate::config::Config;
use crate::health::ReadinessProbe;
use crate::ops_server;
use crate::shutdown::{self, Drain};

/// How long the ops server may take to stop once the role is done: it only
/// has to leave its accept loop, so this bounds a stuck connection.
const OPS_STOP_WAIT: Duration = Duration::from_secs(1);

/// How a role ended, before it is mapped to an exit status.
#[derive(Debug)]
pub enum Outcome {
    /// The role returned `Ok`: drained after a signal, or done on its own.
    Drained,
    /// The drain deadline passed with the role still running.
    DeadlinePassed,
    /// The role returned an error.
    Failed(anyhow::Error),
}

impl Outcome {
    /// The one exit policy of every role (see the module documentation).
    pub fn exit_code(self) -> anyhow::Result<ExitCode> {
        match self {
            Outcome::Drained => Ok(ExitCode::SUCCESS),
            Outcome::DeadlinePassed => Ok(ExitCode::from(EXIT_DRAIN_TIMEOUT)),
            Outcome::Failed(e) => Err(e),
        }
    }
}

/// Serves the ops server with `probes`, runs `role` under `shutdown` and
/// `config.drain_timeout`, and returns the exit status of the process.
///
/// `role` is a future, so nothing of it runs before the ops server is bound.
/// `name` ("worker", "scheduler", …) prefixes the log lines and the error.
pub async fn serve_role<F>(
    name: &'static str,
    config: &Config,
    probes: Vec<Arc<dyn ReadinessProbe>>,
    shutdown: &CancellationToken,
    role: F,
) -> anyhow::Result<ExitCode>
where
    F: Future<Output = anyhow::Result<()>>,
{
    serve_role_with_metrics(name, config, probes, None, shutdown, role).await
}

/// [`serve_role`] for a role that renders metrics of its own (the web
/// role's per-check metrics): `extra` is appended to the ops server's
/// `/metrics`.
pub async fn serve_role_with_metrics<F>(
    name: &'static str,
    config: &Config,
    probes: Vec<Arc<dyn ReadinessProbe>>,
    extra: Option<ops_server::ExtraMetrics>,
    shutdown: &CancellationToken,
    role: F,
) -> anyhow::Result<ExitCode>
where
    F: Future<Output = anyhow::Result<()>>,
{
    // Its own token: the ops server outlives the signal until the drain ends.
    let ops_token = CancellationToken::new();
    let (addr, ops) = ops_server::start_with(config.listen, probes, extra, ops_token.clone())
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", config.listen))?;
    tracing::info!(%addr, "{name} starting");

    let deadline = config.drain_timeout;
    let (drain, result) = shutdown::run_with_deadline(role, shutdown, deadline).await;
    let outcome = match (drain, result) {
        (Drain::Finished, Some(Ok(()))) => {
            tracing::info!("{name} stopped");
            Outcome::Drained
        }
        (Drain::Finished, Some(Err(e))) => Outcome::Failed(e.context(format!("{name} failed"))),
        (Drain::TimedOut, _) | (Drain::Finished, None) => {
            tracing::error!(
                deadline = %humantime::format_duration(deadline),
                "{name}: drain deadline passed; exiting with work unfinished"
            );
            Outcome::DeadlinePassed
        }
    };

    ops_token.cancel();
    if tokio::time::timeout(OPS_STOP_WAIT, ops).await.is_err() {
        tracing::warn!("the ops server did not stop in time; exiting anyway");
    }
    outcome.exit_code()
}

/// Awaits one part of a role (the worker loop, alert delivery, …); when it
/// fails, cancels `shutdown` so the other parts drain too. Half a process
/// that looks alive is worse than a clear exit.
pub async fn stop_all_on_error<E>(
    shutdown: &CancellationToken,
    part: impl Future<Output = Result<(), E>>,
) -> anyhow::Result<()>
where
    E: Into<anyhow::Error>,
{
    let result = part.await.map_err(Into::into);
    if result.is_err() {
        shutdown.cancel();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(drain: Duration) -> Config {
        let mut config = Config::defaults().expect("the defaults load");
        config.listen = "127.0.0.1:0".parse().expect("an address");
        config.drain_timeout = drain;
        config
    }

    async fn serve(
        drain: Duration,
        role: impl Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<ExitCode> {
        let token = CancellationToken::new();
        token.cancel();
        serve_role("test", &config(drain), Vec::new(), &token, role).await
    }

    #[tokio::test]
    async fn a_clean_drain_exits_zero() {
        let code = serve(Duration::from_secs(5), async { Ok(()) }).await.expect("no error");
        assert_eq!(code, ExitCode::SUCCESS);
    }

    #[tokio::test]
    async fn a_passed_deadline_has_its_own_exit_status() {
        let role = async {
            std::future::pending::<()>().await;
            Ok(())
        };
        let code = serve(Duration::from_millis(20), role).await.expect("no error");
        assert_eq!(code, ExitCode::from(EXIT_DRAIN_TIMEOUT));
        assert_ne!(code, ExitCode::FAILURE);
    }

    #[tokio::test]
    async fn a_failed_role_is_an_error_naming_the_role() {
        let role = async { Err(anyhow::anyhow!("broken")) };
        let err = serve(Duration::from_secs(5), role).await.expect_err("the role failed");
        assert_eq!(format!("{err:#}"), "test failed: broken");
    }

    #[tokio::test]
    async fn the_ops_server_answers_until_the_drain_is_over() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A free port, so the role knows where to ask.
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port");
        let mut config = config(Duration::from_secs(5));
        config.listen = port;
        let token = CancellationToken::new();
        token.cancel();
        let role = async move {
            let mut stream = tokio::net::TcpStream::connect(port).await?;
            stream.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").await?;
            let mut response = String::new();
            stream.read_to_string(&mut response).await?;
            anyhow::ensure!(response.starts_with("HTTP/1.0 200"), "{response}");
            Ok(())
        };
        let code =
            serve_role("test", &config, Vec::new(), &token, role).await.expect("served while draining");
        assert_eq!(code, ExitCode::SUCCESS);
    }

    #[tokio::test]
    async fn one_failing_part_stops_the_others() {
        let token = CancellationToken::new();
        let failing = stop_all_on_error(&token, async { Err::<(), _>(std::io::Error::other("gone")) });
        let waiting = async {
            token.cancelled().await;
            Ok::<(), std::io::Error>(())
        };
        let (failed, waited) = tokio::join!(failing, stop_all_on_error(&token, waiting));
        assert!(failed.is_err());
        assert!(waited.is_ok());
        assert!(token.is_cancelled());
    }
}
