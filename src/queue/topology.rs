//! The exchanges and queues every role declares at connect (idempotently:
//! declaring what exists with the same arguments is a no-op).
//!
//! ```text
//! <exchange> (direct) --"check"--> <queue> (quorum, delivery limit, max length,
//!                                          reject-publish, dead-letter → <exchange>.dlx)
//! <exchange>.dlx (fanout) --> <queue>.dead (quorum, bounded)
//! ```
//!
//! Jobs carry no broker TTL, unlike the first design: RabbitMQ drops an
//! expired message silently, and an uptime monitor must account for every
//! slot. A worker acks a stale job itself and records it as missed; the
//! queue's length bound makes the broker refuse publishes instead, which the
//! scheduler sees as a nack and records as missed too.

use amqprs::channel::{
    Channel, ExchangeDeclareArguments, ExchangeType, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::{FieldTable, FieldValue};

use crate::config::AmqpConfig;

use super::QueueError;

/// Routing key of check jobs.
pub const JOB_ROUTING_KEY: &str = "check";

/// Names derived from the configuration.
#[derive(Debug, Clone)]
pub struct Topology {
    pub exchange: String,
    pub queue: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    pub delivery_limit: u32,
    pub max_queue_length: u64,
}

impl Topology {
    pub fn from_config(config: &AmqpConfig) -> Topology {
        Topology {
            exchange: config.exchange.clone(),
            queue: config.queue.clone(),
            dead_letter_exchange: format!("{}.dlx", config.exchange),
            dead_letter_queue: format!("{}.dead", config.queue),
            delivery_limit: config.delivery_limit,
            max_queue_length: config.max_queue_length,
        }
    }
}

fn field_name(name: &str) -> amqprs::FieldName {
    // Our own short ASCII constants: always valid short strings.
    name.try_into().unwrap_or_default()
}

fn string_value(value: &str) -> FieldValue {
    FieldValue::S(value.try_into().unwrap_or_default())
}

/// Declares the whole topology on `channel`.
pub async fn declare_topology(channel: &Channel, topology: &Topology) -> Result<(), QueueError> {
    channel
        .exchange_declare(
            ExchangeDeclareArguments::of_type(&topology.exchange, ExchangeType::Direct)
                .durable(true)
                .finish(),
        )
        .await?;
    channel
        .exchange_declare(
            ExchangeDeclareArguments::of_type(&topology.dead_letter_exchange, ExchangeType::Fanout)
                .durable(true)
                .finish(),
        )
        .await?;

    let mut dead_args = FieldTable::new();
    dead_args.insert(field_name("x-queue-type"), string_value("quorum"));
    // Dead letters are for people to inspect; keep the newest 100k.
    dead_args.insert(field_name("x-max-length"), FieldValue::l(100_000));
    channel
        .queue_declare(
            QueueDeclareArguments::durable_client_named(&topology.dead_letter_queue)
                .arguments(dead_args)
                .finish(),
        )
        .await?;
    channel
        .queue_bind(QueueBindArguments::new(&topology.dead_letter_queue, &topology.dead_letter_exchange, ""))
        .await?;

    let mut args = FieldTable::new();
    args.insert(field_name("x-queue-type"), string_value("quorum"));
    args.insert(field_name("x-dead-letter-exchange"), string_value(&topology.dead_letter_exchange));
    args.insert(field_name("x-delivery-limit"), FieldValue::l(topology.delivery_limit as i64));
    args.insert(
        field_name("x-max-length"),
        FieldValue::l(topology.max_queue_length.min(i64::MAX as u64) as i64),
    );
    args.insert(field_name("x-overflow"), string_value("reject-publish"));
    channel
        .queue_declare(QueueDeclareArguments::durable_client_named(&topology.queue).arguments(args).finish())
        .await
        .map_err(|e| {
            let text = e.to_string();
            if text.contains("PRECONDITION_FAILED") {
                // Declared once with other arguments: declaring again can
                // never succeed, so say what to do instead of retrying quietly.
                QueueError::Topology(format!(
                    "queue {} exists with other arguments ({text}): amqp.max_queue_length or \
                     amqp.delivery_limit changed since it was created; restore them, or delete the \
                     queue (its waiting jobs are lost) so that it is declared anew",
                    topology.queue
                ))
            } else {
                QueueError::Amqp(e)
            }
        })?;
    channel.queue_bind(QueueBindArguments::new(&topology.queue, &topology.exchange, JOB_ROUTING_KEY)).await?;
    Ok(())
}
