//! Opening AMQP connections, and knowing whether one is alive.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use amqprs::callbacks::{ChannelCallback, ConnectionCallback};
use amqprs::channel::Channel;
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, Close, CloseChannel, Nack, Return};
use tokio_util::sync::CancellationToken;

pub use crate::config::urls::AmqpTarget;
use crate::config::urls::UrlError;
use crate::health::{BoxFuture, ReadinessProbe};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    InvalidUrl(#[from] UrlError),
    #[error("could not connect to RabbitMQ at {target}: {cause}")]
    Connect { target: String, cause: String },
    #[error("AMQP error: {0}")]
    Amqp(#[from] amqprs::error::Error),
    #[error("interrupted by shutdown")]
    Interrupted,
    #[error("{0}")]
    Topology(String),
}

/// What amqprs needs to open a connection to `target`.
fn arguments(target: &AmqpTarget, connection_name: &str, heartbeat: Duration) -> OpenConnectionArguments {
    let mut args =
        OpenConnectionArguments::new(&target.host, target.port, &target.username, target.password());
    args.virtual_host(&target.vhost)
        .connection_name(connection_name)
        .heartbeat(heartbeat.as_secs().min(u16::MAX as u64) as u16);
    args
}

/// Opens one connection, with a deadline: amqprs waits forever on a peer
/// that accepts TCP and then says nothing.
pub async fn connect(
    target: &AmqpTarget,
    connection_name: &str,
    heartbeat: Duration,
) -> Result<Connection, QueueError> {
    let args = arguments(target, connection_name, heartbeat);
    let open = tokio::time::timeout(Duration::from_secs(10), Connection::open(&args));
    let connection = match open.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(QueueError::Connect { target: target.describe(), cause: e.to_string() }),
        Err(_) => {
            return Err(QueueError::Connect {
                target: target.describe(),
                cause: "no AMQP handshake within 10s".into(),
            })
        }
    };
    connection.register_callback(LogConnection).await?;
    Ok(connection)
}

/// Connects, retrying with exponential backoff (100 ms doubling up to
/// `max_backoff`, with jitter so a fleet does not reconnect in lockstep)
/// until it works or `shutdown` is cancelled.
pub async fn connect_with_backoff(
    target: &AmqpTarget,
    connection_name: &str,
    heartbeat: Duration,
    max_backoff: Duration,
    shutdown: &CancellationToken,
) -> Result<Connection, QueueError> {
    let mut delay = Duration::from_millis(100);
    loop {
        let attempt = tokio::select! {
            r = connect(target, connection_name, heartbeat) => r,
            _ = shutdown.cancelled() => return Err(QueueError::Interrupted),
        };
        match attempt {
            Ok(connection) => return Ok(connection),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "RabbitMQ unavailable");
                let jittered = delay.mul_f64(0.5 + jitter());
                tokio::select! {
                    _ = tokio::time::sleep(jittered) => {}
                    _ = shutdown.cancelled() => return Err(QueueError::Interrupted),
                }
                delay = (delay * 2).min(max_backoff);
            }
        }
    }
}

/// A cheap jitter in [0, 1) without a random-number crate: the sub-second
/// clock is as good as it needs to be for spreading reconnects.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos % 1000) as f64 / 1000.0
}

/// Logs what the broker says when it closes or blocks our connection.
struct LogConnection;

#[async_trait::async_trait]
impl ConnectionCallback for LogConnection {
    async fn close(&mut self, _connection: &Connection, close: Close) -> Result<(), amqprs::error::Error> {
        tracing::warn!(reason = %close, "RabbitMQ closed the connection");
        Ok(())
    }
    async fn blocked(&mut self, _connection: &Connection, reason: String) {
        tracing::warn!(%reason, "RabbitMQ blocked the connection (resource alarm)");
    }
    async fn unblocked(&mut self, _connection: &Connection) {
        tracing::info!("RabbitMQ unblocked the connection");
    }
    async fn secret_updated(&mut self, _connection: &Connection) {}
}

/// Logs channel closures; roles that need confirms install their own.
pub struct LogChannel;

#[async_trait::async_trait]
impl ChannelCallback for LogChannel {
    async fn close(&mut self, _channel: &Channel, close: CloseChannel) -> Result<(), amqprs::error::Error> {
        tracing::warn!(reason = %close, "RabbitMQ closed a channel");
        Ok(())
    }
    async fn cancel(&mut self, _channel: &Channel, _cancel: Cancel) -> Result<(), amqprs::error::Error> {
        tracing::warn!("RabbitMQ cancelled a consumer");
        Ok(())
    }
    async fn flow(&mut self, _channel: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _channel: &Channel, _ack: Ack) {}
    async fn publish_nack(&mut self, _channel: &Channel, _nack: Nack) {}
    async fn publish_return(
        &mut self,
        _channel: &Channel,
        _ret: Return,
        _basic_properties: BasicProperties,
        _content: Vec<u8>,
    ) {
    }
}

/// The role's current connection, shared with the readiness probe.
#[derive(Clone, Default)]
pub struct AmqpLink(Arc<Mutex<Option<Connection>>>);

impl AmqpLink {
    pub fn set(&self, connection: Option<Connection>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = connection;
        }
    }

    fn current(&self) -> Option<Connection> {
        self.0.lock().ok().and_then(|slot| slot.clone())
    }
}

/// Ready when the role's connection is open and the broker opens a channel
/// on it within two seconds (a half-dead TCP connection fails the latter).
pub struct AmqpProbe(pub AmqpLink);

impl ReadinessProbe for AmqpProbe {
    fn name(&self) -> &'static str {
        "amqp"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let connection = self.0.current().ok_or_else(|| "not connected".to_string())?;
            if !connection.is_open() {
                return Err("connection closed".into());
            }
            match tokio::time::timeout(Duration::from_secs(2), connection.open_channel(None)).await {
                Ok(Ok(channel)) => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), channel.close()).await;
                    Ok(())
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("broker did not answer within 2s".into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = AmqpTarget::parse("amqp://u:p%40ss@rabbit:5673/prod").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.vhost.as_str()), ("rabbit", 5673, "prod"));
        assert_eq!((t.username.as_str(), t.password()), ("u", "p@ss"));
        let t = AmqpTarget::parse("amqp://127.0.0.1/%2f").unwrap();
        assert_eq!((t.port, t.vhost.as_str(), t.username.as_str()), (5672, "/", "guest"));
        let t = AmqpTarget::parse("amqp://h?heartbeat").unwrap();
        assert_eq!(t.vhost, "/");
        assert!(AmqpTarget::parse("http://h/").is_err());
        assert!(AmqpTarget::parse("amqp://").is_err());
        assert!(AmqpTarget::parse("not a url").is_err());
        assert!(!format!("{t:?}").contains("guest"));
    }
}
