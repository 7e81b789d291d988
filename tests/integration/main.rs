//! Integration tests: one binary, one module per capability, all against
//! real PostgreSQL, RabbitMQ, HTTP servers and the real `sentryk8s` binary.

mod support;

mod config_cli;
mod http_check;
mod migrate;
mod ops;
mod worker_checks;
mod worker_delivery;
mod worker_outages;
