//! SIGTERM and SIGINT → one `CancellationToken` passed down to every loop.
//!
//! Kubernetes stops pods with SIGTERM, so SIGTERM is the main path and does
//! exactly what Ctrl-C does: cancel the token and let each loop drain. A
//! second signal while draining exits at once, for the impatient human.

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Spawns the signal listener and returns the token it cancels.
pub fn on_signals() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, draining"),
            _ = int.recv() => tracing::info!("SIGINT received, draining"),
        }
        cancel.cancel();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal received, exiting without draining");
        std::process::exit(130);
    });
    Ok(token)
}

/// Outcome of running a role under a drain deadline.
#[derive(Debug, PartialEq, Eq)]
pub enum Drain {
    /// The role returned on its own (normally after the token was cancelled).
    Finished,
    /// The deadline passed after cancellation with work still running.
    TimedOut,
}

/// Runs `role` until it returns; once `token` is cancelled, gives it at most
/// `deadline` more.
pub async fn run_with_deadline<F>(
    role: F,
    token: &CancellationToken,
    deadline: Duration,
) -> (Drain, Option<F::Output>)
where
    F: std::future::Future,
{
    tokio::pin!(role);
    tokio::select! {
        out = &mut role => return (Drain::Finished, Some(out)),
        _ = token.cancelled() => {}
    }
    match tokio::time::timeout(deadline, role).await {
        Ok(out) => (Drain::Finished, Some(out)),
        Err(_) => (Drain::TimedOut, None),
    }
}
