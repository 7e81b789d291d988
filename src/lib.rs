//! SentryK8s: a distributed, self-healing uptime monitor.
//!
//! The binary (`main.rs`) only wires; everything lives here so that tests
//! drive the same code the roles run. See docs/architecture.md for the big
//! picture, docs/development.md for the layering rules that
//! tests/layering.rs enforces, and README.md for how to run it.

pub mod alerting;
pub mod checks_file;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod health;
pub mod heartbeat;
pub mod history;
pub mod migrate;
pub mod model;
pub mod net;
pub mod ops_server;
pub mod probe;
pub mod queue;
pub mod scheduler;
pub mod shutdown;
pub mod status;
pub mod status_pages;
pub mod telemetry;
pub mod tokens;
pub mod web;
pub mod worker;
