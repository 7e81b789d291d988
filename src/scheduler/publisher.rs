//! Publishing jobs with publisher confirms.
//!
//! One connection and one confirm-mode channel per [`Publisher`]. The
//! broker's acks, nacks, returns and the connection's death arrive as
//! [`ConfirmEvent`]s on a channel the dispatcher owns, tagged with the
//! publisher's generation: after a reconnect, delivery tags restart at 1 and
//! late events of the old channel must not be taken for the new one's.

use std::time::Duration;

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{BasicPublishArguments, Channel, ConfirmSelectArguments};
use amqprs::connection::Connection;
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, Nack, Return};
use tokio::sync::mpsc::UnboundedSender;

use crate::queue::{self, AmqpTarget, QueueError, Topology};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmEvent {
    Ack {
        generation: u64,
        tag: u64,
        multiple: bool,
    },
    Nack {
        generation: u64,
        tag: u64,
        multiple: bool,
    },
    /// The broker could not route a mandatory message (its queue is gone).
    Returned {
        generation: u64,
        message_id: Option<String>,
    },
    /// The channel or connection died: nothing unconfirmed will be confirmed.
    Lost {
        generation: u64,
    },
}

struct ConfirmCallback {
    generation: u64,
    events: UnboundedSender<ConfirmEvent>,
}

#[async_trait::async_trait]
impl ChannelCallback for ConfirmCallback {
    async fn close(&mut self, _channel: &Channel, close: CloseChannel) -> Result<(), amqprs::error::Error> {
        tracing::warn!(reason = %close, "RabbitMQ closed the publishing channel");
        let _ = self.events.send(ConfirmEvent::Lost { generation: self.generation });
        Ok(())
    }
    async fn cancel(&mut self, _channel: &Channel, _cancel: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(&mut self, _channel: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _channel: &Channel, ack: Ack) {
        let _ = self.events.send(ConfirmEvent::Ack {
            generation: self.generation,
            tag: ack.delivery_tag(),
            multiple: ack.mutiple(),
        });
    }
    async fn publish_nack(&mut self, _channel: &Channel, nack: Nack) {
        let _ = self.events.send(ConfirmEvent::Nack {
            generation: self.generation,
            tag: nack.delivery_tag(),
            multiple: nack.multiple(),
        });
    }
    async fn publish_return(
        &mut self,
        _channel: &Channel,
        ret: Return,
        properties: BasicProperties,
        _content: Vec<u8>,
    ) {
        tracing::error!(reply = %ret.reply_text(), "RabbitMQ returned a job: no queue is bound to the exchange");
        let _ = self.events.send(ConfirmEvent::Returned {
            generation: self.generation,
            message_id: properties.message_id().cloned(),
        });
    }
}

/// Where and as whom to publish.
#[derive(Clone)]
pub struct Endpoint {
    pub target: AmqpTarget,
    pub topology: Topology,
    /// The member id, sent as AMQP `app_id` so a job names its publisher.
    pub app_id: String,
    pub heartbeat: Duration,
    pub max_backoff: Duration,
}

pub struct Publisher {
    pub generation: u64,
    connection: Connection,
    channel: Channel,
    exchange: String,
    app_id: String,
    next_tag: u64,
}

impl Publisher {
    /// Connects (retrying until `shutdown`), declares the topology and
    /// enters confirm mode.
    pub async fn open(
        endpoint: &Endpoint,
        generation: u64,
        events: UnboundedSender<ConfirmEvent>,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Result<Publisher, QueueError> {
        let name = format!("{} publisher", endpoint.app_id);
        let (heartbeat, backoff) = (endpoint.heartbeat, endpoint.max_backoff);
        loop {
            let connection =
                queue::connect_with_backoff(&endpoint.target, &name, heartbeat, backoff, shutdown).await?;
            let setup = Publisher::setup(
                connection.clone(),
                &endpoint.topology,
                &endpoint.app_id,
                generation,
                events.clone(),
            );
            // A broker that accepted the connection and then went quiet must
            // not hold the reconnect forever.
            let setup = async {
                tokio::time::timeout(Duration::from_secs(15), setup).await.unwrap_or_else(|_| {
                    Err(QueueError::Connect {
                        target: "RabbitMQ".into(),
                        cause: "channel setup took over 15s".into(),
                    })
                })
            };
            match setup.await {
                Ok(publisher) => return Ok(publisher),
                Err(e) => {
                    if matches!(e, QueueError::Topology(_)) {
                        tracing::error!(error = %e, "cannot declare the job queue");
                    } else {
                        tracing::warn!(error = %e, "cannot set up the publishing channel, reconnecting");
                    }
                    let _ = connection.close().await;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.cancelled() => return Err(QueueError::Interrupted),
                    }
                }
            }
        }
    }

    async fn setup(
        connection: Connection,
        topology: &Topology,
        app_id: &str,
        generation: u64,
        events: UnboundedSender<ConfirmEvent>,
    ) -> Result<Publisher, QueueError> {
        let channel = connection.open_channel(None).await?;
        channel.register_callback(ConfirmCallback { generation, events: events.clone() }).await?;
        queue::declare_topology(&channel, topology).await?;
        channel.confirm_select(ConfirmSelectArguments::new(false)).await?;
        // The connection can die without the channel being told (TCP reset,
        // missed heartbeats): watch it and report as a lost channel.
        // The connection can end without the channel being told: a TCP reset
        // or missed heartbeats (an I/O failure), or the broker closing it as
        // it shuts down (not one). Either way nothing unconfirmed will be
        // confirmed now; after our own close, the generation is stale anyway.
        let watched = connection.clone();
        tokio::spawn(async move {
            watched.listen_network_io_failure().await;
            let _ = events.send(ConfirmEvent::Lost { generation });
        });
        Ok(Publisher {
            generation,
            connection,
            channel,
            exchange: topology.exchange.clone(),
            app_id: app_id.to_string(),
            next_tag: 1,
        })
    }

    pub fn connection(&self) -> Connection {
        self.connection.clone()
    }

    /// Publishes one persistent, mandatory job message with `routing_key`
    /// (its partition's job queue, `Topology::routing_key`) and returns its
    /// delivery tag. A publish that cannot be handed to the connection
    /// within `limit` (a blocked broker, a dead socket) fails instead of
    /// stalling dispatch.
    pub async fn publish(
        &mut self,
        routing_key: &str,
        message_id: &str,
        body: Vec<u8>,
        limit: Duration,
    ) -> Result<u64, QueueError> {
        let properties = BasicProperties::default()
            .with_message_id(message_id)
            .with_content_type("application/json")
            .with_persistence(true)
            .with_app_id(&self.app_id)
            .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64)
            .finish();
        let args = BasicPublishArguments {
            exchange: self.exchange.clone(),
            routing_key: routing_key.to_string(),
            mandatory: true,
            immediate: false,
        };
        match tokio::time::timeout(limit, self.channel.basic_publish(properties, body, args)).await {
            Ok(Ok(())) => {
                let tag = self.next_tag;
                self.next_tag += 1;
                Ok(tag)
            }
            Ok(Err(e)) => Err(QueueError::Amqp(e)),
            Err(_) => Err(QueueError::Connect {
                target: "RabbitMQ".into(),
                cause: format!("publish blocked for {}", humantime::format_duration(limit)),
            }),
        }
    }

    /// Closes channel and connection; a dead peer gets two seconds, not a
    /// heartbeat timeout.
    pub async fn close(self) {
        let close = async {
            let _ = self.channel.close().await;
            let _ = self.connection.close().await;
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), close).await;
    }
}
