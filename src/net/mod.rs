//! Outbound connections, whoever makes them (checks, alert channels,
//! PostgreSQL): the target deny list, TLS as a client, name resolution with
//! a deadline and the one-shot HTTP exchange.
//!
//! It knows nothing of checks, roles or configuration: callers pass what it
//! needs, so a probe and an alert channel reach a host the same way.
//!
//! - `deny.rs` — the addresses never connected to;
//! - `tls.rs` — trust store and the shared rustls client configurations;
//! - `resolve.rs` — name resolution with a deadline;
//! - `budget.rs` — the byte budget that kept response bodies share;
//! - `connect.rs` — TCP to the first address that accepts, in time;
//! - `dial.rs` — resolve, deny list and connect, timed, for the check
//!   kinds that speak their own protocol (TCP, TLS, gRPC, DNS, ICMP);
//! - `dns_query.rs` — one DNS question to one server (the DNS check);
//! - `starttls.rs` — the plain-text dialogue before a TLS handshake;
//! - `auth.rs` — basic auth from the credentials in a URL;
//! - `http.rs` — the one-shot HTTP exchange (connect, TLS, send, read with a
//!   cap), phase by phase.

pub mod auth;
pub mod budget;
pub mod connect;
pub mod deny;
pub mod dial;
pub mod dns_query;
pub mod http;
pub mod resolve;
pub mod starttls;
pub mod tls;
