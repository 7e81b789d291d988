//! RabbitMQ: where to connect, the topology every role declares, and the
//! connection lifecycle (connect with backoff, notice failure, reconnect).
//!
//! amqprs has no automatic recovery, so each role runs its AMQP work as a
//! *session* on one connection; when the connection fails the session ends
//! and the role's loop opens a new connection, redeclares the topology and
//! starts a fresh session.

mod connection;
mod topology;

pub use connection::{
    connect, connect_with_backoff, AmqpLink, AmqpProbe, AmqpTarget, LogChannel, QueueError,
};
pub use topology::{declare_topology, JobQueue, Topology, JOB_ROUTING_KEY};
