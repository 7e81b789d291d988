//! `sentryk8s rollups rebuild`: recounts the hourly and daily rollup rows
//! of a time range from the raw results and missed slots, and writes only
//! what differs; also the first migrate's backfill.
//!
//! Live upkeep (the worker's batch, the scheduler's missed-slot flush) and
//! a rebuild count through the same pure code (`rollup.rs`), so on a quiet
//! database a rebuild after a `DELETE` restores exactly the rows live
//! upkeep wrote, and a rebuild of right rows writes nothing.
//!
//! Concurrency without locking the writers: for each chunk of checks, the
//! raw rows and the stored rollups are read in one read-only REPEATABLE
//! READ snapshot, and the difference (expected − stored, per row) is then
//! added as an increment in another transaction. A writer commits its raw
//! rows and its rollup increments together, so whatever it commits after
//! the snapshot is in neither side of the difference, and the increments
//! compose: the row ends as expected + the writer's addition. Rows the
//! corrections leave all zero are deleted (live upkeep never writes an
//! all-zero row), unless a writer added to them meanwhile.
//!
//! A bucket is recounted when it starts in `[from, to)`. Its time can come
//! from a slot that started before it (up to the longest interval, one
//! day), so raw rows are read from `from − 1 day`. By default `from` is the
//! oldest UTC day whose raw results are all still stored; an earlier
//! `--from` is refused: its raw data is gone, and recounting would erase
//! the rollups that are the only record left.
//!
//! What a rebuild cannot know: the name and labels a check had when its
//! slots ran (maintenance windows match them; the current ones are used,
//! and a deleted check's slots count as outside any window), and the
//! interval of rows stored before migration 0005 (the check's current one;
//! such rows of a deleted check are skipped, as live upkeep skips missed
//! ranges of a check it cannot find).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::error::SqlState;

use super::buckets::{from_ms, to_ms, Granularity, DAY_MS};
use super::rollup::{self, MissedFact, ResultFact, Rollups, Tally};
use super::store::{self, CheckInfo, Snapshot, StoredMissed, StoredResult};
use super::uptime;
use super::windows::Windows;

/// Checks recounted per snapshot: bounds the memory (their rollup rows
/// over the range) and the length of each read-only transaction.
const CHUNK: usize = 50;

/// Longest interval a slot can have (checks.interval_ms ≤ 1 day): how far
/// before `from` a slot can start and still add time to a bucket in range.
const MAX_INTERVAL_MS: i64 = DAY_MS;

/// Write attempts of one chunk's corrections when they conflict with a
/// writer (a deadlock): the corrections stay valid, so they are retried.
const WRITE_ATTEMPTS: u32 = 5;

/// The recount's range: buckets starting in `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Range {
    fn ms(&self) -> (i64, i64) {
        (to_ms(self.from), to_ms(self.to))
    }

    /// The slots whose time may fall in a bucket of the range: from one
    /// longest interval before `from` to the end of the last bucket.
    fn raw_window(&self) -> (i64, i64) {
        let (from, to) = self.ms();
        (from - MAX_INTERVAL_MS, Granularity::Day.ceil(to))
    }
}

/// What a rebuild compared and changed (rows of both granularities).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    /// Checks looked at.
    pub checks: usize,
    /// Rollup rows compared (stored or expected).
    pub compared: u64,
    /// Rows written that were missing.
    pub created: u64,
    /// Rows whose sums were corrected.
    pub updated: u64,
    /// Rows removed (nothing should be counted there).
    pub deleted: u64,
}

impl RebuildReport {
    /// Whether nothing was written: every row was already right.
    pub fn nothing_written(&self) -> bool {
        self.created == 0 && self.updated == 0 && self.deleted == 0
    }

    fn add(&mut self, c: &Corrections) {
        self.compared += c.compared;
        self.created += c.created;
        self.updated += c.updated;
        self.deleted += c.deleted;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(
        "--from {from} is before {oldest}, the oldest UTC day whose raw results are all still stored \
         (results.retention_days = {days}): the raw data of earlier days is gone, so recounting them \
         would erase rollups that are the only record left"
    )]
    BeforeRawData { from: DateTime<Utc>, oldest: DateTime<Utc>, days: u32 },
    #[error("empty range: --from {from} is not before --to {to}")]
    EmptyRange { from: DateTime<Utc>, to: DateTime<Utc> },
    #[error("`{0}` is neither an RFC 3339 time (2026-01-31T12:00:00Z) nor a date (2026-01-31)")]
    BadTime(String),
    #[error("no check is named `{0}`")]
    UnknownCheck(String),
    #[error("PostgreSQL: {0}")]
    Db(String),
}

impl RebuildError {
    /// Whether the error is the caller's input (exit status 2), not a failure.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, RebuildError::Db(_))
    }
}

impl From<tokio_postgres::Error> for RebuildError {
    fn from(e: tokio_postgres::Error) -> Self {
        RebuildError::Db(crate::db::error_chain(&e))
    }
}

impl From<deadpool_postgres::PoolError> for RebuildError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        RebuildError::Db(crate::db::error_chain(&e))
    }
}

/// `--from`/`--to`: an RFC 3339 time, or a date meaning its UTC midnight.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, RebuildError> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| RebuildError::BadTime(text.to_string()))
}

/// The oldest UTC day whose raw data is complete: results are kept in
/// whole daily partitions back to `today − retention_days`, missed slots
/// by age (`now − retention_days`), so the first midnight after
/// `now − retention_days` starts a day of which nothing has been pruned.
pub fn oldest_complete_day(now: DateTime<Utc>, retention_days: u32) -> DateTime<Utc> {
    let t = to_ms(now) - i64::from(retention_days) * DAY_MS;
    from_ms(Granularity::Day.ceil(t))
}

/// The range of a `rollups rebuild`: `from` defaults to
/// [`oldest_complete_day`] and may not be earlier; `to` defaults to now.
pub fn range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    retention_days: u32,
) -> Result<Range, RebuildError> {
    let oldest = oldest_complete_day(now, retention_days);
    let from = from.unwrap_or(oldest);
    let to = to.unwrap_or(now);
    if from < oldest {
        return Err(RebuildError::BeforeRawData { from, oldest, days: retention_days });
    }
    if from >= to {
        return Err(RebuildError::EmptyRange { from, to });
    }
    Ok(Range { from, to })
}

/// The ids of the checks named `names` (deduplicated, in id order).
pub async fn resolve_checks(pool: &Pool, names: &[String]) -> Result<Vec<i64>, RebuildError> {
    let client = pool.get().await?;
    let found = store::check_ids_by_name(&client, names).await?;
    let mut ids = Vec::with_capacity(names.len());
    for (name, id) in names.iter().zip(found) {
        ids.push(id.ok_or_else(|| RebuildError::UnknownCheck(name.clone()))?);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Recounts the rollups of `range` for `checks` (all when `None`): see the
/// module documentation. Writes nothing when every row is right.
pub async fn rebuild(
    pool: &Pool,
    range: Range,
    checks: Option<Vec<i64>>,
) -> Result<RebuildReport, RebuildError> {
    let (raw_from, raw_to) = range.raw_window();
    let mut client = pool.get().await?;
    let ids = match checks {
        Some(ids) => ids,
        None => store::rebuild_check_ids(&client, from_ms(raw_from), from_ms(raw_to)).await?,
    };
    let mut report = RebuildReport { checks: ids.len(), ..RebuildReport::default() };
    let chunks = ids.len().div_ceil(CHUNK);
    for (n, chunk) in ids.chunks(CHUNK).enumerate() {
        let (expected, stored) = {
            let snapshot = Snapshot::begin(&mut client).await?;
            let infos = snapshot.checks(chunk).await?;
            let windows = snapshot.windows().await?;
            let mut counter = Counter::new(infos, &windows);
            snapshot.each_result(chunk, from_ms(raw_from), from_ms(raw_to), |r| counter.result(&r)).await?;
            for m in snapshot.missed(chunk, from_ms(raw_from), from_ms(raw_to)).await? {
                counter.missed(&m);
            }
            let stored = snapshot.rollups(chunk, range.from, range.to).await?;
            snapshot.finish().await?;
            (counter.finish(range), stored)
        };
        let fix = corrections(&expected, &stored);
        report.add(&fix);
        if !fix.is_empty() {
            apply_corrections(&mut client, &fix).await?;
        }
        if chunks > 1 {
            tracing::info!(
                chunk = n + 1,
                of = chunks,
                checks = chunk.len(),
                created = fix.created,
                updated = fix.updated,
                deleted = fix.deleted,
                "rollups recounted"
            );
        }
    }
    Ok(report)
}

/// Applies one chunk's corrections in one transaction, retrying a
/// deadlock with a concurrent writer (the increments stay valid whenever
/// they are applied, exactly once).
pub async fn apply_corrections(
    client: &mut deadpool_postgres::Client,
    fix: &Corrections,
) -> Result<(), RebuildError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let tx = client.transaction().await?;
        let applied = async {
            store::upsert_rollups(&tx, &fix.deltas).await?;
            store::delete_empty_rollups(&tx, &fix.emptied).await?;
            store::recount_day_totals(&*tx, &fix.day_checks()).await?;
            Ok::<_, tokio_postgres::Error>(())
        }
        .await;
        let applied = match applied {
            Ok(()) => tx.commit().await,
            Err(e) => Err(e),
        };
        match applied {
            Ok(()) => return Ok(()),
            Err(e)
                if attempt < WRITE_ATTEMPTS
                    && matches!(
                        e.code(),
                        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
                    ) =>
            {
                tracing::debug!(error = %e, "rollup corrections conflicted with a writer; retrying");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The first migrate's backfill: the rollups of every stored raw row (from
/// the oldest one's UTC day to now). Before migration 0005 there were no
/// rollups, so nothing older can be lost.
pub async fn backfill(pool: &Pool) -> Result<RebuildReport, RebuildError> {
    let oldest = {
        let client = pool.get().await?;
        store::oldest_raw(&client).await?
    };
    let Some(oldest) = oldest else { return Ok(RebuildReport::default()) };
    let from = from_ms(Granularity::Day.floor(to_ms(oldest)));
    let to = Utc::now();
    if from >= to {
        return Ok(RebuildReport::default());
    }
    rebuild(pool, Range { from, to }, None).await
}

/// Counts one chunk's raw rows into rollup rows, as live upkeep does.
struct Counter<'a> {
    checks: HashMap<i64, CheckInfo>,
    /// Checks that some maintenance window covers (at some time).
    covered: HashSet<i64>,
    windows: &'a Windows,
    expected: Rollups,
}

impl<'a> Counter<'a> {
    fn new(infos: Vec<CheckInfo>, windows: &'a Windows) -> Counter<'a> {
        let covered = infos
            .iter()
            .filter(|c| !windows.for_check(&c.name, &c.labels).is_empty())
            .map(|c| c.id)
            .collect();
        let checks = infos.into_iter().map(|c| (c.id, c)).collect();
        Counter { checks, covered, windows, expected: Rollups::new() }
    }

    /// The check's info when a window covers it (slot by slot then).
    fn windowed(&self, check_id: i64) -> Option<&CheckInfo> {
        self.covered.contains(&check_id).then(|| self.checks.get(&check_id)).flatten()
    }

    /// A result: its stored state and interval (the check's interval for
    /// rows stored before there was one; skipped when the check is gone
    /// too).
    fn result(&mut self, r: &StoredResult) {
        let Some(interval_ms) = r.interval_ms.or_else(|| self.checks.get(&r.check_id).map(|c| c.interval_ms))
        else {
            return;
        };
        let in_maintenance = self
            .windowed(r.check_id)
            .is_some_and(|c| self.windows.covers(&c.name, &c.labels, from_ms(r.slot_ms)));
        let fact = ResultFact {
            check_id: r.check_id,
            slot_ms: r.slot_ms,
            interval_ms,
            category: uptime::of_result(r.state.as_deref(), r.success, in_maintenance),
            success: r.success,
            total_ms: r.total_ms,
        };
        rollup::add_result(&mut self.expected, &fact);
    }

    /// A missed range: no data, or maintenance slot by slot when a window
    /// covers the check (as the writers count it).
    fn missed(&mut self, m: &StoredMissed) {
        let Some(interval_ms) = m.interval_ms.or_else(|| self.checks.get(&m.check_id).map(|c| c.interval_ms))
        else {
            return;
        };
        let fact = MissedFact {
            check_id: m.check_id,
            first_ms: m.first_ms,
            last_ms: m.last_ms,
            slots: m.slots,
            interval_ms,
        };
        let windows = self.windows;
        match self.windowed(m.check_id).cloned() {
            Some(c) => {
                let covered = |slot: i64| windows.covers(&c.name, &c.labels, from_ms(slot));
                rollup::add_missed(&mut self.expected, &fact, Some(&covered));
            }
            None => rollup::add_missed(&mut self.expected, &fact, None),
        }
    }

    /// The expected rows of buckets starting inside the range.
    fn finish(mut self, range: Range) -> Rollups {
        let (from, to) = range.ms();
        self.expected.retain(|(_, _, bucket), t| *bucket >= from && *bucket < to && !t.is_zero());
        self.expected
    }
}

/// What makes the stored rows equal the expected ones.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Corrections {
    /// Increments (expected − stored) of the rows that differ.
    pub deltas: Rollups,
    /// Rows that must end empty, to delete once the deltas are applied.
    pub emptied: Vec<(i64, Granularity, i64)>,
    pub compared: u64,
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
}

impl Corrections {
    /// Whether the stored rows are already right.
    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty() && self.emptied.is_empty()
    }

    /// The checks whose daily rows change: their cumulative totals are
    /// recounted from the daily rows after the corrections (so totals
    /// that had drifted from them are repaired too).
    pub fn day_checks(&self) -> Vec<i64> {
        let keys = self.deltas.keys().chain(self.emptied.iter());
        let mut ids: Vec<i64> = keys.filter(|k| k.1 == Granularity::Day).map(|k| k.0).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Compares expected and stored rows (both of the same checks and
/// buckets): a missing row is created, a different one corrected, and a
/// stored row with nothing expected (or stored all zero) emptied.
pub fn corrections(expected: &Rollups, stored: &Rollups) -> Corrections {
    let zero = Tally::default();
    let mut out = Corrections::default();
    let keys: std::collections::BTreeSet<_> = expected.keys().chain(stored.keys()).copied().collect();
    for key in keys {
        out.compared += 1;
        let want = expected.get(&key).unwrap_or(&zero);
        match stored.get(&key) {
            None if want.is_zero() => {}
            None => {
                out.created += 1;
                out.deltas.insert(key, want.clone());
            }
            Some(have) if want.is_zero() => {
                out.deleted += 1;
                out.emptied.push(key);
                if !have.is_zero() {
                    out.deltas.insert(key, zero.minus(have));
                }
            }
            Some(have) if have == want => {}
            Some(have) => {
                out.updated += 1;
                out.deltas.insert(key, want.minus(have));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
