//! Heartbeat slots: judged from the pings received before them instead of
//! probed, so every slot is a result row like any other check's (uptime,
//! incidents and alerts need nothing new). The judgement itself is pure
//! (`heartbeat::judge`); this file reads the pings and hands the other
//! kinds to the prober.
//!
//! Why here and not in `probe/`: a probe reaches targets through `net/`
//! and never the database, and a heartbeat's "target" is a table. The
//! worker already holds the pool; the concern holds the SQL and the rules.

use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Pool;

use crate::heartbeat::{self, judge, store};
use crate::model::{CheckJob, CheckKind, CheckOutcome, ErrorClass, Timings};
use crate::probe::Prober;

/// Reads pings for heartbeat jobs.
pub struct Heartbeats {
    pool: Pool,
}

/// Runs one job: a heartbeat is judged from its pings, any other kind is
/// probed.
pub async fn run(prober: &Prober, heartbeats: &Heartbeats, job: &CheckJob) -> CheckOutcome {
    match job.spec.kind {
        CheckKind::Heartbeat => heartbeats.judge(job).await,
        _ => prober.run(&job.spec).await,
    }
}

impl Heartbeats {
    pub fn new(pool: Pool) -> Heartbeats {
        Heartbeats { pool }
    }

    /// The slot's verdict as a result row. PostgreSQL being away is
    /// retried until the job would be stale: a false "down" would page
    /// someone for our own outage (and the batch could not be stored
    /// meanwhile anyway).
    pub async fn judge(&self, job: &CheckJob) -> CheckOutcome {
        let started_at = Utc::now();
        let rules = match job.spec.heartbeat.as_ref().map(heartbeat::rules) {
            Some(Ok(rules)) => rules,
            Some(Err(e)) => return not_judged(ErrorClass::Unsupported, format!("heartbeat: {e}")),
            None => {
                return not_judged(ErrorClass::Unsupported, "heartbeat: the spec has no `heartbeat`".into())
            }
        };
        let since = rules.reads_since(job.slot);
        let mut delay = Duration::from_millis(200);
        loop {
            let read = match self.pool.get().await {
                Ok(client) => store::pings_before(&**client, job.check_id, since, job.slot)
                    .await
                    .map_err(|e| crate::db::error_chain(&e)),
                Err(e) => Err(e.to_string()),
            };
            match read {
                Ok(read) => {
                    // No key: the check is no longer a heartbeat (changed
                    // or deleted since the job was published): nothing to
                    // hold against this slot.
                    let watched = read.watched_since.unwrap_or(job.slot);
                    let verdict = judge::judge(&rules, watched, &read.pings, job.slot);
                    return judge::outcome(&verdict, &rules, started_at);
                }
                Err(e) if Utc::now() + delay < job.stale_after() => {
                    tracing::warn!(check = %job.name, error = %e, "cannot read heartbeat pings; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return not_judged(
                        ErrorClass::Timeout,
                        format!("the pings could not be read in time: {e}"),
                    )
                }
            }
        }
    }
}

fn not_judged(class: ErrorClass, message: String) -> CheckOutcome {
    CheckOutcome {
        started_at: Utc::now(),
        success: false,
        error_class: Some(class),
        error_message: Some(message),
        status_code: None,
        timings: Timings::default(),
        bytes_read: 0,
        cert_expires_at: None,
        failed_assertions: Vec::new(),
    }
}
