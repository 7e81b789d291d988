//! Integration tests: one binary, one module per capability, all against
//! real PostgreSQL, RabbitMQ, HTTP servers and the real `sentryk8s` binary.

mod support;

mod alerting;
mod checks_cli;
mod checks_limits;
mod clock_jumps;
mod config_cli;
mod deny_list;
mod dns_tarpit;
mod email_deadline;
mod fuzz_regressions;
mod history_cli;
mod history_live;
mod history_rebuild;
mod history_totals;
mod http_check;
mod lease_release;
mod logs;
mod migrate;
mod ops;
mod postgres_tls;
mod retention;
mod scheduler;
mod secrets;
mod standalone;
mod status_cli;
mod tokens_cli;
mod web_auth;
mod web_bed;
mod web_checks;
mod web_end_to_end;
mod web_history;
mod web_metrics;
mod web_openapi;
mod worker_checks;
mod worker_delivery;
mod worker_memory;
mod worker_outages;
mod worker_withdrawn;
