//! What every handler shares: the pool, the web configuration, the token
//! cache and rate limiter. Nothing else is kept between requests: any
//! replica answers any request.

use std::sync::Arc;

use deadpool_postgres::Pool;

use super::auth::{Auth, SessionCache};
use crate::config::{Config, WebConfig};
use crate::history::report::Retention;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub pool: Pool,
    pub web: WebConfig,
    pub auth: Auth,
    /// The one-second cache of sign-in session lookups (`session.rs`).
    pub sessions: SessionCache,
    /// How long raw results and hourly rollups are kept (which data answers
    /// an uptime window).
    pub retention: Retention,
    /// `checks.allow_env`: what `${VAR}` in a PUT body may read (nothing by default).
    pub allow_env: Vec<String>,
}

impl AppState {
    pub fn new(config: &Config, pool: Pool) -> AppState {
        AppState(Arc::new(Inner {
            pool,
            web: config.web.clone(),
            auth: Auth::new(config.web.rate_limit_per_second, config.web.rate_limit_burst),
            sessions: SessionCache::default(),
            retention: retention(config),
            allow_env: config.checks.allow_env.clone(),
        }))
    }
}

/// How long raw results and hourly rollups are kept, as reports read it
/// (`history.hourly_retention_days = 0` keeps hourly rows for ever).
pub fn retention(config: &Config) -> Retention {
    let hourly_days = match config.history.hourly_retention_days {
        0 => u32::MAX,
        days => days,
    };
    Retention { raw_days: config.results.retention_days, hourly_days }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
