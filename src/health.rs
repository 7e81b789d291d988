//! Readiness as a type: what a dependency (PostgreSQL, RabbitMQ) offers the
//! ops server's `/readyz`. A leaf module, so that `db` and `queue` can
//! implement it without importing the ops server.

use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A dependency `/readyz` asks about.
pub trait ReadinessProbe: Send + Sync {
    /// Short name shown in the `/readyz` body ("postgres", "amqp").
    fn name(&self) -> &'static str;
    /// `Ok` when the dependency answers now; `Err` says why not.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}
