//! The test bed: real PostgreSQL, real RabbitMQ, real HTTP servers and the
//! real binary, each isolated per test so tests run in parallel and twice
//! in a row. `db.rs`, `broker.rs`, `http.rs` and `binary.rs` are also
//! included by the benchmarks (bench/common), so they stand alone.
//!
//! Where the services are: `SENTRYK8S_TEST_DATABASE_URL` (an admin URL,
//! default postgres://postgres@127.0.0.1:5432/postgres) and
//! `SENTRYK8S_TEST_AMQP_URL` (default amqp://guest:guest@127.0.0.1:5672/%2f).

#![allow(dead_code, unused_imports)]

pub mod binary;
pub mod broker;
pub mod browser;
pub mod db;
pub mod fleet;
pub mod grpc;
pub mod http;
pub mod jobs;
pub mod proxy;
pub mod receiver;
pub mod servers;
pub mod services;
pub mod smtp;
pub mod target;
pub mod worker_bed;

pub use binary::{free_port, Binary};
pub use broker::TestBroker;
pub use db::{unique_name, TestDb};
pub use proxy::TcpProxy;
pub use target::{Behavior, TestTarget};
pub use worker_bed::WorkerBed;

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: std::time::Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
