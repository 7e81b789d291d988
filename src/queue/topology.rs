//! The exchanges and queues every role declares at connect (idempotently:
//! declaring what exists with the same arguments is a no-op).
//!
//! ```text
//! <exchange> (direct) --"check"-----> <queue>     (quorum, delivery limit, max length,
//!                     --"check.1"---> <queue>.1    reject-publish, dead-letter → <exchange>.dlx)
//!                     …   (amqp.queues of them)
//! <exchange>.dlx (fanout) --> <queue>.dead (quorum, bounded)
//! ```
//!
//! With `amqp.queues` > 1 the scheduler routes partition p to queue
//! p mod n ([`Topology::routing_key`]) and workers consume every queue: each
//! quorum queue has its own Raft leader, so n queues can spread over n
//! broker nodes. Each queue has the `max_queue_length` bound on its own.
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
    /// The first job queue (`amqp.queue`).
    pub queue: String,
    /// Every job queue, `queue` first, with its routing key.
    pub job_queues: Vec<JobQueue>,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    pub delivery_limit: u32,
    pub max_queue_length: u64,
}

/// One job queue and the routing key bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQueue {
    pub name: String,
    pub routing_key: String,
}

impl Topology {
    pub fn from_config(config: &AmqpConfig) -> Topology {
        let job_queues = (0..config.queues.max(1))
            .map(|i| match i {
                0 => JobQueue { name: config.queue.clone(), routing_key: JOB_ROUTING_KEY.to_string() },
                i => JobQueue {
                    name: format!("{}.{i}", config.queue),
                    routing_key: format!("{JOB_ROUTING_KEY}.{i}"),
                },
            })
            .collect();
        Topology {
            exchange: config.exchange.clone(),
            queue: config.queue.clone(),
            job_queues,
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

impl Topology {
    /// The routing key of `partition`'s jobs: queue `partition mod n`.
    pub fn routing_key(&self, partition: u32) -> &str {
        match self.job_queues.len() {
            0 => JOB_ROUTING_KEY,
            n => &self.job_queues[partition as usize % n].routing_key,
        }
    }
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

    for job_queue in &topology.job_queues {
        declare_job_queue(channel, topology, job_queue).await?;
    }
    Ok(())
}

async fn declare_job_queue(
    channel: &Channel,
    topology: &Topology,
    job_queue: &JobQueue,
) -> Result<(), QueueError> {
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
        .queue_declare(QueueDeclareArguments::durable_client_named(&job_queue.name).arguments(args).finish())
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
                    job_queue.name
                ))
            } else {
                QueueError::Amqp(e)
            }
        })?;
    channel
        .queue_bind(QueueBindArguments::new(&job_queue.name, &topology.exchange, &job_queue.routing_key))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(queues: u32) -> Topology {
        let mut config = crate::config::Config::defaults().expect("the built-in defaults load").amqp;
        config.queue = "q".into();
        config.queues = queues;
        Topology::from_config(&config)
    }

    #[test]
    fn one_queue_keeps_the_names_of_before() {
        let t = topology(1);
        assert_eq!(t.job_queues, vec![JobQueue { name: "q".into(), routing_key: "check".into() }]);
        assert!((0..300).all(|p| t.routing_key(p) == "check"));
    }

    #[test]
    fn partitions_spread_evenly_over_the_queues() {
        let t = topology(4);
        let names: Vec<&str> = t.job_queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["q", "q.1", "q.2", "q.3"]);
        let mut per_key = std::collections::BTreeMap::new();
        for p in 0..256 {
            *per_key.entry(t.routing_key(p).to_string()).or_insert(0) += 1;
        }
        assert_eq!(
            per_key.into_iter().collect::<Vec<_>>(),
            [
                ("check".to_string(), 64),
                ("check.1".to_string(), 64),
                ("check.2".to_string(), 64),
                ("check.3".to_string(), 64)
            ]
        );
    }
}
