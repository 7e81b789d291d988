//! LISTEN on a dedicated connection that reconnects by itself.
//!
//! Notifications are only a wake-up hint: any can be lost while the
//! connection is down, so every reconnect is announced with
//! [`ListenEvent::Reconnected`] and the receiver resynchronises by polling.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenEvent {
    Notify {
        channel: String,
        payload: String,
    },
    /// (Re)connected and listening; notifications before this may be lost.
    Reconnected,
}

/// Listens on `channels` until `shutdown`, forwarding to `events`.
pub async fn listen(
    config: Config,
    channels: Vec<String>,
    events: mpsc::Sender<ListenEvent>,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        match session(&config, &channels, &events, &shutdown).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "LISTEN connection lost");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One connection's life; `Ok` only on shutdown.
async fn session(
    config: &Config,
    channels: &[String],
    events: &mpsc::Sender<ListenEvent>,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let pg = super::pg_config(config, "listen").map_err(|e| e.to_string())?;
    let tls = super::tls(config).map_err(|e| e.to_string())?;
    let (client, mut connection) = tokio::time::timeout(config.database.connect_timeout, pg.connect(tls))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| super::error_chain(&e))?;

    // The connection must be polled for the LISTEN statements to complete,
    // so its messages are pumped into a channel by a task of their own.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(Ok((n.channel().to_string(), n.payload().to_string()))).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(super::error_chain(&e)));
                    return;
                }
            }
        }
        let _ = tx.send(Err("connection closed".to_string()));
    });
    let result = async {
        for channel in channels {
            client
                .batch_execute(&format!("LISTEN \"{}\"", channel.replace('"', "")))
                .await
                .map_err(|e| super::error_chain(&e))?;
        }
        if events.send(ListenEvent::Reconnected).await.is_err() {
            return Ok(());
        }
        // A silently dead server sends nothing: ask regularly.
        let mut probe = tokio::time::interval(Duration::from_secs(10));
        probe.tick().await;
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    Some(Ok((channel, payload))) => {
                        if events.send(ListenEvent::Notify { channel, payload }).await.is_err() {
                            return Ok(());
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Err("connection closed".to_string()),
                },
                _ = probe.tick() => {
                    tokio::time::timeout(Duration::from_secs(5), client.simple_query("SELECT 1"))
                        .await
                        .map_err(|_| "no answer to a probe within 5s".to_string())?
                        .map_err(|e| super::error_chain(&e))?;
                }
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }
    .await;
    pump.abort();
    result
}
