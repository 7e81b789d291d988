//! Per-check Prometheus metrics, served on the ops server's `/metrics`
//! (the `listen` port, never the public API port):
//! `sentryk8s_check_up`, `sentryk8s_check_last_duration_seconds`,
//! `sentryk8s_check_cert_expiry_timestamp_seconds` and
//! `sentryk8s_check_uptime_ratio{window="24h|30d"}`.
//!
//! They are computed once per `web.metrics_refresh` by one background task
//! per process ([`run`]) and kept as text ([`CheckMetrics`]); a scrape only
//! copies that text. So N replicas scraped M times cost N reads per period,
//! not N × M, and a scrape never waits on the database.
//!
//! A refresh reads `check_state` (with the newest result's certificate
//! expiry, `store.rs`) and the 24-hour and 30-day uptime from the history
//! layer's reports (hourly and daily rollups), the same numbers as
//! `sentryk8s report`. When a refresh fails the previous text stays served;
//! `sentryk8s_web_metrics_refreshed_timestamp_seconds` says how old it is.
//!
//! - `render.rs` — the text format, labels and escaping (pure);
//! - `store.rs` — the SQL.

pub mod render;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use self::render::{LabelNames, Sample};
use crate::history::report::{self, Retention, Selection};

/// The text of the per-check metrics, shared by the refresh task (writer)
/// and the ops server (reader).
#[derive(Clone, Default)]
pub struct CheckMetrics(Arc<RwLock<Arc<str>>>);

impl CheckMetrics {
    pub fn new() -> CheckMetrics {
        CheckMetrics::default()
    }

    /// The latest text (empty before the first refresh).
    pub fn text(&self) -> Arc<str> {
        // A poisoned lock still holds a whole Arc: a writer only swaps it.
        self.0.read().map_or_else(|p| p.into_inner().clone(), |t| t.clone())
    }

    fn set(&self, text: String) {
        let text: Arc<str> = text.into();
        match self.0.write() {
            Ok(mut slot) => *slot = text,
            Err(poisoned) => *poisoned.into_inner() = text,
        }
    }
}

/// What a refresh needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `web.metrics_refresh`.
    pub every: Duration,
    /// `web.metrics_labels`.
    pub labels: Vec<String>,
    /// Which rollups answer the uptime windows.
    pub retention: Retention,
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("no database connection: {0}")]
    Pool(String),
    #[error("reading the checks: {0}")]
    Db(String),
    #[error("reading the uptime: {0}")]
    History(#[from] report::HistoryError),
}

/// Refreshes `metrics` every `settings.every` until `shutdown`.
pub async fn run(pool: Pool, settings: Settings, metrics: CheckMetrics, shutdown: CancellationToken) {
    let (names, refused) = LabelNames::new(&settings.labels);
    for label in refused {
        tracing::warn!(
            label = %label,
            "web.metrics_labels: this label cannot be copied onto the per-check metrics \
             (its Prometheus name is reserved or taken by another entry); left out"
        );
    }
    let mut tick = tokio::time::interval(settings.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let started = Instant::now();
        let refreshed = refresh(&pool, &names, settings.retention).await;
        // Counted once done, so a scrape that sees the count sees its text.
        ::metrics::counter!("sentryk8s_web_metrics_refreshes_total").increment(1);
        match refreshed {
            Ok(text) => {
                metrics.set(text);
                ::metrics::gauge!("sentryk8s_web_metrics_refreshed_timestamp_seconds")
                    .set(Utc::now().timestamp() as f64);
                ::metrics::gauge!("sentryk8s_web_metrics_refresh_duration_seconds")
                    .set(started.elapsed().as_secs_f64());
            }
            Err(e) => {
                ::metrics::counter!("sentryk8s_web_metrics_refresh_errors_total").increment(1);
                tracing::warn!(error = %e, "web: cannot refresh the per-check metrics; serving the previous ones");
            }
        }
    }
}

/// One refresh: the text of every per-check family, now.
pub async fn refresh(pool: &Pool, names: &LabelNames, retention: Retention) -> Result<String, RefreshError> {
    let client = pool.get().await.map_err(|e| RefreshError::Pool(crate::db::error_chain(&e)))?;
    let now = Utc::now();
    let checks = store::checks(&**client).await.map_err(|e| RefreshError::Db(crate::db::error_chain(&e)))?;
    let day = uptime(&**client, now - chrono::Duration::hours(24), now, retention).await?;
    let month = uptime(&**client, now - chrono::Duration::days(30), now, retention).await?;
    let samples: Vec<Sample> = checks
        .into_iter()
        .map(|c| Sample {
            up: match (c.enabled, c.status.as_deref()) {
                (true, Some("up")) => Some(true),
                (true, Some("down")) => Some(false),
                _ => None,
            },
            last_duration_seconds: c.last_duration_ms.map(|ms| ms / 1000.0),
            cert_expiry: c.cert_expires_at.map(|t| t.timestamp()),
            uptime_24h: day.get(&c.id).copied(),
            uptime_30d: month.get(&c.id).copied(),
            check: c.name,
            labels: c.labels,
        })
        .collect();
    Ok(render::render(&samples, names))
}

/// Uptime (0..=1) per check id over `[from, now)`, for checks that had up
/// or down time in it.
async fn uptime(
    client: &impl tokio_postgres::GenericClient,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    retention: Retention,
) -> Result<HashMap<i64, f64>, RefreshError> {
    let found = report::report(client, from, now, now, retention, &Selection::default()).await?;
    Ok(found.rows.into_iter().filter_map(|r| Some((r.check_id, r.uptime_percent? / 100.0))).collect())
}
