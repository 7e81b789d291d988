//! Watching the job queues from the scheduler: every [`WATCH_EVERY`], a
//! passive `queue.declare` of each job queue, whose answer carries the
//! queue's ready messages and consumers, exported as
//! `sentryk8s_job_queue_messages_ready{queue}` and
//! `sentryk8s_job_queue_consumers{queue}`.
//!
//! With `amqp.queues` > 1 a queue that lost its consumers stops being
//! worked while the others go on, so the backlog alone would hide it; the
//! consumer gauge shows it (alert on it reading 0). Ready counts messages,
//! not slots: a message carries up to `slots_per_message` slots (the
//! backlog in jobs scales them by `sentryk8s_slots_published_total` over
//! `sentryk8s_job_messages_published_total`).
//!
//! Its own connection, so a slow answer never delays a publish, and
//! passive, so it never creates or changes a queue. Every scheduler
//! exports the same values; dashboards take the max per queue.
//!
//! When a poll fails (broker unreachable, no answer), the gauges keep the
//! values of the last successful poll (the `metrics` facade cannot remove
//! a series, and a made-up 0 or NaN would feed the autoscaler a wrong
//! backlog), and `sentryk8s_job_queue_watch_success_timestamp_seconds`
//! says how old they are: values older than a few polls are stale. A queue
//! the broker says does not exist (404 on the passive declare) has no
//! consumers and no messages: it reads 0 on both.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{Channel, QueueDeclareArguments};
use amqprs::connection::Connection;
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, Nack, Return};
use tokio_util::sync::CancellationToken;

use crate::queue::{self, AmqpTarget, QueueError};

/// How often the queues are polled.
pub const WATCH_EVERY: Duration = Duration::from_secs(5);
/// A declare not answered within this counts as a failed poll.
const ANSWER_LIMIT: Duration = Duration::from_secs(5);
/// AMQP reply code of a passive declare of a missing queue.
const NOT_FOUND: u16 = 404;

/// What to watch, and how to connect.
#[derive(Clone)]
pub struct Watch {
    pub target: AmqpTarget,
    /// The job queues' names (`Topology::job_queues`).
    pub queues: Vec<String>,
    /// The AMQP connection name (shown in the broker's management UI).
    pub connection_name: String,
    pub heartbeat: Duration,
    pub max_backoff: Duration,
    pub every: Duration,
}

/// Polls until `shutdown`, reconnecting with backoff whenever the
/// connection fails.
pub async fn run(watch: Watch, shutdown: CancellationToken) {
    loop {
        let connection = match queue::connect_with_backoff(
            &watch.target,
            &watch.connection_name,
            watch.heartbeat,
            watch.max_backoff,
            &shutdown,
        )
        .await
        {
            Ok(connection) => connection,
            // Only shutdown ends the backoff.
            Err(_) => return,
        };
        let ended = session(&watch, &connection, &shutdown).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), connection.close()).await;
        match ended {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "cannot read the job queues; reconnecting"),
        }
        tokio::select! {
            _ = tokio::time::sleep(watch.every) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Polls on one connection; `Ok` at shutdown, `Err` when the connection
/// fails (the caller reconnects).
async fn session(
    watch: &Watch,
    connection: &Connection,
    shutdown: &CancellationToken,
) -> Result<(), QueueError> {
    let mut channel = None;
    let mut ticker = tokio::time::interval(watch.every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
        let mut answered = 0;
        for name in &watch.queues {
            let (open, closed) = match channel.take() {
                Some(open) => open,
                None => open_channel(connection).await?,
            };
            let declare = open.queue_declare(QueueDeclareArguments::new(name).passive(true).finish());
            match tokio::time::timeout(ANSWER_LIMIT, declare).await {
                Ok(Ok(Some((_, ready, consumers)))) => {
                    set(name, ready as f64, consumers as f64);
                    answered += 1;
                    channel = Some((open, closed));
                }
                // The broker closes the channel on a missing queue: a fresh
                // one for the next queue.
                Ok(_) if closed.code() == Some(NOT_FOUND) => {
                    tracing::warn!(queue = %name, "job queue does not exist");
                    set(name, 0.0, 0.0);
                    answered += 1;
                }
                Ok(Ok(None)) => {
                    return Err(QueueError::Topology(format!("no answer to the declare of {name}")))
                }
                Ok(Err(e)) => return Err(QueueError::Amqp(e)),
                Err(_) => {
                    return Err(QueueError::Connect {
                        target: watch.target.describe(),
                        cause: format!("no answer to a queue declare within {ANSWER_LIMIT:?}"),
                    })
                }
            }
        }
        if answered == watch.queues.len() {
            let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            metrics::gauge!("sentryk8s_job_queue_watch_success_timestamp_seconds").set(now);
        }
    }
}

fn set(queue: &str, ready: f64, consumers: f64) {
    let queue = queue.to_string();
    metrics::gauge!("sentryk8s_job_queue_messages_ready", "queue" => queue.clone()).set(ready);
    metrics::gauge!("sentryk8s_job_queue_consumers", "queue" => queue).set(consumers);
}

async fn open_channel(connection: &Connection) -> Result<(Channel, ClosedBy), QueueError> {
    let channel = connection.open_channel(None).await?;
    let closed = ClosedBy::default();
    channel.register_callback(WatchChannel(closed.clone())).await?;
    Ok((channel, closed))
}

/// The reply code the broker closed a channel with, if it did.
#[derive(Clone, Default)]
struct ClosedBy(Arc<Mutex<Option<u16>>>);

impl ClosedBy {
    fn code(&self) -> Option<u16> {
        self.0.lock().ok().and_then(|code| *code)
    }
}

/// Records why the broker closed the channel (a 404 is expected and
/// handled: no warning from here).
struct WatchChannel(ClosedBy);

#[async_trait::async_trait]
impl ChannelCallback for WatchChannel {
    async fn close(&mut self, _channel: &Channel, close: CloseChannel) -> Result<(), amqprs::error::Error> {
        if let Ok(mut code) = (self.0).0.lock() {
            *code = Some(close.reply_code());
        }
        if close.reply_code() != NOT_FOUND {
            tracing::warn!(reason = %close, "RabbitMQ closed the queue-watch channel");
        }
        Ok(())
    }
    async fn cancel(&mut self, _channel: &Channel, _cancel: Cancel) -> Result<(), amqprs::error::Error> {
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
        _properties: BasicProperties,
        _content: Vec<u8>,
    ) {
    }
}
