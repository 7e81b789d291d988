//! Outbound connections, whoever makes them (checks, alert channels,
//! PostgreSQL): the target deny list, TLS as a client, name resolution with
//! a deadline and the one-shot HTTP exchange.
//!
//! It knows nothing of checks, roles or configuration: callers pass what it
//! needs, so a probe and an alert channel reach a host the same way.

pub mod deny;
pub mod tls;
