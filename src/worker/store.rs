//! Every SQL statement of the worker role: the one transaction that stores
//! a batch.
//!
//! The transaction:
//!
//! 1. locks the `check_state` rows of the batch's checks (creating missing
//!    ones for checks that still exist — a check deleted meanwhile keeps
//!    its result and is skipped here, instead of failing the batch on the
//!    foreign key) and then leaves out checks that are paused or deleted:
//!    checked after the locks, because `checks apply` resolves their
//!    incident holding the same locks, so a job still in flight never
//!    reopens an incident nor pages (its result is stored all the same: it
//!    happened, and history counts it). It applies the results in slot
//!    order through the pure planning of `outbox.rs` (the state machine of
//!    `state.rs`). Streaks follow slot order: a late result never advances
//!    a streak nor flips a state, it can only cut a streak it proves
//!    broken, and the UPDATE never moves `last_slot` backwards. A result
//!    already stored (a redelivery) is late by then, so planning it again
//!    changes nothing;
//! 2. inserts the results with the state each left the check in (`INSERT …
//!    SELECT FROM unnest(…) ON CONFLICT (check_id, slot) DO NOTHING
//!    RETURNING …`): a redelivered job writes nothing, and only the rows
//!    actually inserted count in history (step 5);
//! 3. writes the new states, a `notifications` outbox row per down/up flip
//!    (an incident id from `incident_id_seq` when going down, the same id
//!    on recovery) and the `incidents` rows;
//! 4. records stale jobs in `missed_slots` (reason `stale`) unless the slot
//!    has a result after all, and so the invalid slots of batches (reason
//!    `invalid`, `store/slots.rs`, which also answers which slots of a
//!    redelivered message are already accounted);
//! 5. adds what the inserted results and recorded stale slots account for
//!    to the hourly and daily rollups (`history/`), one upsert.
//!
//! A missing daily partition is created on the spot and the batch retried;
//! errors are classed ([`WriteError`]) so the batcher knows an outage from
//! data PostgreSQL refuses.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::error::SqlState;

use super::item::{Item, ResultRow};
use super::outbox::{clean, payload, plan, Planned};
use super::state::{CheckState, Status, Transition};
use crate::history::buckets::to_ms;
use crate::history::incidents::IncidentOp;
use crate::history::rollup::{self, MissedFact, ResultFact, Rollups};
use crate::history::store as history;
use crate::history::uptime;
use crate::history::windows::{Cache, Windows};

mod slots;
pub use slots::done_slots;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("PostgreSQL unavailable: {0}")]
    Unavailable(String),
    #[error("no daily result partition for a slot: {0}")]
    MissingPartition(String),
    #[error("PostgreSQL refused the data: {0}")]
    Rejected(String),
    /// A deadlock or serialisation failure with another worker's batch:
    /// retried at once, it is no sign of an outage.
    #[error("transaction conflict: {0}")]
    Conflict(String),
}

fn classify(error: &tokio_postgres::Error) -> WriteError {
    let text = crate::db::error_chain(error);
    match error.code() {
        Some(code) if *code == SqlState::CHECK_VIOLATION && text.contains("no partition") => {
            WriteError::MissingPartition(text)
        }
        Some(code) if code.code().starts_with("22") || code.code().starts_with("23") => {
            WriteError::Rejected(text)
        }
        Some(code)
            if *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE =>
        {
            WriteError::Conflict(text)
        }
        _ => WriteError::Unavailable(text),
    }
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(e: tokio_postgres::Error) -> Self {
        classify(&e)
    }
}

impl From<deadpool_postgres::PoolError> for WriteError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => classify(&e),
            other => WriteError::Unavailable(crate::db::error_chain(&other)),
        }
    }
}

/// Longest a batch's transaction may take before it counts as an outage.
const WRITE_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// One transaction; creates missing daily partitions and tries again.
/// `windows` caches the maintenance windows history counts with.
pub async fn write(pool: &Pool, items: &[Item], worker: &str, windows: &Cache) -> Result<(), WriteError> {
    let mut partitions_created = false;
    let mut conflicts = 0;
    loop {
        // A statement that never returns (a server gone silent mid-query)
        // must become an outage like any other: stop taking work, retry.
        let attempt = tokio::time::timeout(WRITE_LIMIT, write_once(pool, items, worker, windows)).await;
        let attempt = attempt.unwrap_or_else(|_| {
            Err(WriteError::Unavailable(format!(
                "no answer within {}",
                humantime::format_duration(WRITE_LIMIT)
            )))
        });
        match attempt {
            Err(WriteError::MissingPartition(_)) if !partitions_created => {
                ensure_partitions(pool, items).await?;
                partitions_created = true;
            }
            Err(WriteError::Conflict(why)) if conflicts < 5 => {
                tracing::debug!(error = %why, "batch conflicted with another worker's; retrying");
                conflicts += 1;
            }
            other => return other,
        }
    }
}

/// Creates the daily partitions of every slot in `items` (distinct days
/// only: a far-off slot creates one partition, not a range).
async fn ensure_partitions(pool: &Pool, items: &[Item]) -> Result<(), WriteError> {
    let mut days: Vec<NaiveDate> = items
        .iter()
        .filter_map(|i| match i {
            Item::Finished { row, .. } => Some(row.job.slot.date_naive()),
            Item::Stale { .. } | Item::Invalid { .. } => None,
        })
        .collect();
    days.sort_unstable();
    days.dedup();
    let client = pool.get().await?;
    for day in &days {
        client.execute("SELECT sentryk8s_ensure_result_partitions($1, 1)", &[day]).await?;
    }
    tracing::info!(?days, "created missing result partitions");
    Ok(())
}

const INSERT_RESULTS: &str = "
INSERT INTO check_results (check_id, slot, started_at, success, error_class, error_message, status_code,
                           dns_ms, connect_ms, tls_ms, first_byte_ms, total_ms, bytes_read, cert_expires_at,
                           failed_assertions, worker, state, interval_ms,
                           query_ms, rtt_min_ms, rtt_avg_ms, rtt_max_ms, run_ms)
SELECT u.check_id, u.slot, u.started_at, u.success, u.error_class, u.error_message, u.status_code,
       u.dns_ms, u.connect_ms, u.tls_ms, u.first_byte_ms, u.total_ms, u.bytes_read, u.cert_expires_at,
       CASE WHEN u.failed IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(u.failed)) END,
       $16, u.state, u.interval_ms, u.query_ms, u.rtt_min_ms, u.rtt_avg_ms, u.rtt_max_ms, u.run_ms
  FROM unnest($1::int8[], $2::timestamptz[], $3::timestamptz[], $4::bool[], $5::text[], $6::text[],
              $7::int2[], $8::float4[], $9::float4[], $10::float4[], $11::float4[], $12::float4[],
              $13::int8[], $14::timestamptz[], $15::jsonb[], $17::text[], $18::int4[],
              $19::float4[], $20::float4[], $21::float4[], $22::float4[], $23::float4[])
       AS u(check_id, slot, started_at, success, error_class, error_message, status_code, dns_ms, connect_ms,
            tls_ms, first_byte_ms, total_ms, bytes_read, cert_expires_at, failed, state, interval_ms,
            query_ms, rtt_min_ms, rtt_avg_ms, rtt_max_ms, run_ms)
ON CONFLICT (check_id, slot) DO NOTHING
RETURNING check_id, slot";

const ENSURE_STATE: &str = "
INSERT INTO check_state (check_id)
SELECT id FROM checks WHERE id = ANY($1::int8[]) AND enabled ORDER BY id
ON CONFLICT (check_id) DO NOTHING";

// Run after LOCK_STATE, as its own statement: in READ COMMITTED it takes a
// new snapshot, so it sees a pause or delete that committed while this
// batch waited for the state locks (`resolve_withdrawn` holds them until
// the apply commits). A join inside LOCK_STATE would re-check only the
// locked `check_state` rows, not `checks`.
const ENABLED: &str = "SELECT id FROM checks WHERE id = ANY($1::int8[]) AND enabled";

const LOCK_STATE: &str = "
SELECT check_id, status, since, last_slot, consecutive_failures, consecutive_successes, incident_id,
       streak_start
  FROM check_state WHERE check_id = ANY($1::int8[]) ORDER BY check_id FOR UPDATE";

// `fresh` is false when only late results cut a streak: the `last_*`
// details keep describing the newest result. The last condition is the
// slot-order rule in SQL: `last_slot` never moves backwards, so a state
// planned from an older view of the row can never overwrite a newer one.
const UPDATE_STATE: &str = "
UPDATE check_state s
   SET status = u.status, since = u.since, last_slot = u.last_slot,
       last_checked_at = CASE WHEN u.fresh THEN u.checked_at ELSE s.last_checked_at END,
       last_success = CASE WHEN u.fresh THEN u.success ELSE s.last_success END,
       last_duration_ms = CASE WHEN u.fresh THEN u.duration_ms ELSE s.last_duration_ms END,
       last_status_code = CASE WHEN u.fresh THEN u.status_code ELSE s.last_status_code END,
       last_error = CASE WHEN u.fresh THEN u.error ELSE s.last_error END,
       consecutive_failures = u.failures, consecutive_successes = u.successes,
       streak_start = u.streak_start, incident_id = u.incident_id, updated_at = now()
  FROM unnest($1::int8[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[], $6::bool[],
              $7::float8[], $8::int4[], $9::text[], $10::int4[], $11::int4[], $12::int8[], $13::timestamptz[],
              $14::bool[])
       AS u(check_id, status, since, last_slot, checked_at, success, duration_ms, status_code, error,
            failures, successes, incident_id, streak_start, fresh)
 WHERE s.check_id = u.check_id
   AND (s.last_slot IS NULL OR u.last_slot >= s.last_slot)";

const INSERT_NOTIFICATIONS: &str = "
INSERT INTO notifications (check_id, check_name, incident_id, event, slot, payload)
SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::text[], $5::timestamptz[], $6::jsonb[])
ON CONFLICT (check_id, slot, event) DO NOTHING";

const INSERT_STALE: &str = "
INSERT INTO missed_slots (check_id, first_slot, last_slot, slots, reason, interval_ms)
SELECT u.check_id, u.slot, u.slot, 1, 'stale', u.interval_ms
  FROM unnest($1::int8[], $2::timestamptz[], $3::int4[]) AS u(check_id, slot, interval_ms)
 WHERE NOT EXISTS (SELECT 1 FROM check_results r WHERE r.check_id = u.check_id AND r.slot = u.slot)
ON CONFLICT (check_id, first_slot, reason) DO NOTHING
RETURNING check_id, first_slot";

/// A job's interval as stored (`integer`): bounds keep it far below.
fn interval_i32(ms: u64) -> i32 {
    ms.min(i32::MAX as u64) as i32
}

async fn write_once(pool: &Pool, items: &[Item], worker: &str, cache: &Cache) -> Result<(), WriteError> {
    let mut rows: Vec<&ResultRow> = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    let mut stale = Vec::new();
    let mut seen_stale = HashSet::new();
    let mut invalid = Vec::new();
    for item in items {
        match item {
            Item::Finished { row, .. } => {
                if seen.insert((row.job.check_id, row.job.slot)) {
                    rows.push(row);
                }
            }
            // A slot delivered twice in one batch is recorded (and counted) once.
            Item::Stale { job, .. } => {
                if seen_stale.insert((job.check_id, job.slot)) {
                    stale.push(&**job);
                }
            }
            Item::Invalid { check_id, slot, .. } => {
                if !invalid.contains(&(*check_id, *slot)) {
                    invalid.push((*check_id, *slot));
                }
            }
        }
    }

    let mut client = pool.get().await?;
    let windows = history::cached_windows(&client, cache).await?;
    let tx = client.transaction().await?;
    let mut rollups = Rollups::new();
    if !rows.is_empty() {
        let mut by_check: BTreeMap<i64, Vec<&ResultRow>> = BTreeMap::new();
        for row in &rows {
            by_check.entry(row.job.check_id).or_default().push(row);
        }
        let (states, mut planned) = plan_states(&tx, &by_check).await?;
        // The state each result left its check in; none for a check that
        // is paused, deleted or has no state row.
        let mut after: HashMap<(i64, DateTime<Utc>), Status> = HashMap::with_capacity(rows.len());
        for p in &planned {
            after.extend(p.after.iter().map(|(slot, status)| ((p.check_id, *slot), *status)));
        }
        let state_of = |row: &ResultRow| -> Option<Status> {
            let key = (row.job.check_id, row.job.slot);
            after.get(&key).copied().or_else(|| states.get(&row.job.check_id).map(|s| s.status))
        };
        let inserted = insert_results(&tx, &rows, worker, &state_of).await?;
        for row in rows.iter().filter(|r| inserted.contains(&(r.job.check_id, r.job.slot))) {
            let in_maintenance =
                !windows.is_empty() && windows.covers(&row.job.name, &row.job.spec.labels, row.job.slot);
            let state = state_of(row);
            rollup::add_result(
                &mut rollups,
                &ResultFact {
                    check_id: row.job.check_id,
                    slot_ms: to_ms(row.job.slot),
                    interval_ms: i64::from(interval_i32(row.job.interval_ms)),
                    category: uptime::of_result(
                        state.map(Status::as_str),
                        row.outcome.success,
                        in_maintenance,
                    ),
                    success: row.outcome.success,
                    total_ms: row.outcome.timings.total_ms as f32,
                },
            );
        }
        mark_maintenance(&mut planned, &by_check, &windows);
        write_states(&tx, &planned).await?;
    }
    if !stale.is_empty() {
        let ids: Vec<i64> = stale.iter().map(|j| j.check_id).collect();
        let slots: Vec<DateTime<Utc>> = stale.iter().map(|j| j.slot).collect();
        let intervals: Vec<i32> = stale.iter().map(|j| interval_i32(j.interval_ms)).collect();
        let statement = tx.prepare_cached(INSERT_STALE).await?;
        let recorded: HashSet<(i64, DateTime<Utc>)> = tx
            .query(&statement, &[&ids, &slots, &intervals])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for job in stale.iter().filter(|j| recorded.contains(&(j.check_id, j.slot))) {
            let fact = MissedFact {
                check_id: job.check_id,
                first_ms: to_ms(job.slot),
                last_ms: to_ms(job.slot),
                slots: 1,
                interval_ms: i64::from(interval_i32(job.interval_ms)),
            };
            let covered = |slot: i64| {
                windows.covers(&job.name, &job.spec.labels, crate::history::buckets::from_ms(slot))
            };
            let covers_check = !windows.for_check(&job.name, &job.spec.labels).is_empty();
            rollup::add_missed(&mut rollups, &fact, covers_check.then_some(&covered as &dyn Fn(i64) -> bool));
        }
    }
    if !invalid.is_empty() {
        slots::record_invalid(&tx, &invalid, &windows, &mut rollups).await?;
    }
    history::upsert_rollups(&tx, &rollups).await?;
    tx.commit().await?;
    Ok(())
}

/// Whether each incident opened by this batch began inside a maintenance
/// window covering its check.
fn mark_maintenance(
    planned: &mut [Planned<'_>],
    by_check: &BTreeMap<i64, Vec<&ResultRow>>,
    windows: &Windows,
) {
    if windows.is_empty() {
        return;
    }
    for p in planned.iter_mut() {
        let Some(row) = by_check.get(&p.check_id).and_then(|rows| rows.first()) else { continue };
        for op in &mut p.incidents {
            if let IncidentOp::Open { opened_at, in_maintenance, .. } = op {
                *in_maintenance = windows.covers(&row.job.name, &row.job.spec.labels, *opened_at);
            }
        }
    }
}

async fn insert_results(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &[&ResultRow],
    worker: &str,
    state_of: &(dyn Fn(&ResultRow) -> Option<Status> + Sync),
) -> Result<HashSet<(i64, DateTime<Utc>)>, WriteError> {
    let n = rows.len();
    let mut states: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut intervals: Vec<i32> = Vec::with_capacity(n);
    let mut check_ids = Vec::with_capacity(n);
    let mut slots = Vec::with_capacity(n);
    let mut started = Vec::with_capacity(n);
    let mut success = Vec::with_capacity(n);
    let mut classes: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut messages: Vec<Option<String>> = Vec::with_capacity(n);
    let mut codes: Vec<Option<i16>> = Vec::with_capacity(n);
    let mut dns: Vec<Option<f32>> = Vec::with_capacity(n);
    let mut connect: Vec<Option<f32>> = Vec::with_capacity(n);
    let mut tls: Vec<Option<f32>> = Vec::with_capacity(n);
    let mut first_byte: Vec<Option<f32>> = Vec::with_capacity(n);
    // The phases of the other kinds (DNS query, ICMP round trips,
    // heartbeat run), in the order of INSERT_RESULTS' $19..$23.
    let mut kind_phases: [Vec<Option<f32>>; 5] = std::array::from_fn(|_| Vec::with_capacity(n));
    let mut total = Vec::with_capacity(n);
    let mut bytes = Vec::with_capacity(n);
    let mut certs = Vec::with_capacity(n);
    let mut failed: Vec<Option<serde_json::Value>> = Vec::with_capacity(n);
    for row in rows {
        let o = &row.outcome;
        states.push(state_of(row).map(Status::as_str));
        intervals.push(interval_i32(row.job.interval_ms));
        check_ids.push(row.job.check_id);
        slots.push(row.job.slot);
        started.push(o.started_at);
        success.push(o.success);
        classes.push(o.error_class.map(|c| c.as_str()));
        messages.push(o.error_message.as_deref().map(clean));
        codes.push(o.status_code.map(|c| c.min(i16::MAX as u16) as i16));
        dns.push(o.timings.dns_ms.map(|v| v as f32));
        connect.push(o.timings.connect_ms.map(|v| v as f32));
        tls.push(o.timings.tls_ms.map(|v| v as f32));
        first_byte.push(o.timings.first_byte_ms.map(|v| v as f32));
        let t = &o.timings;
        for (column, value) in
            kind_phases.iter_mut().zip([t.query_ms, t.rtt_min_ms, t.rtt_avg_ms, t.rtt_max_ms, t.run_ms])
        {
            column.push(value.map(|v| v as f32));
        }
        total.push(o.timings.total_ms as f32);
        bytes.push(o.bytes_read.min(i64::MAX as u64) as i64);
        certs.push(o.cert_expires_at);
        failed.push(if o.failed_assertions.is_empty() {
            None
        } else {
            Some(serde_json::Value::from(o.failed_assertions.iter().map(|a| clean(a)).collect::<Vec<_>>()))
        });
    }
    let statement = tx.prepare_cached(INSERT_RESULTS).await?;
    let inserted = tx
        .query(
            &statement,
            &[
                &check_ids,
                &slots,
                &started,
                &success,
                &classes,
                &messages,
                &codes,
                &dns,
                &connect,
                &tls,
                &first_byte,
                &total,
                &bytes,
                &certs,
                &failed,
                &worker,
                &states,
                &intervals,
                &kind_phases[0],
                &kind_phases[1],
                &kind_phases[2],
                &kind_phases[3],
                &kind_phases[4],
            ],
        )
        .await?;
    Ok(inserted.iter().map(|r| (r.get::<_, i64>(0), r.get::<_, DateTime<Utc>>(1))).collect())
}

/// Locks the states of the batch's live checks and plans what the results
/// do to them: (the states as locked, the plan).
async fn plan_states<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    by_check: &BTreeMap<i64, Vec<&'a ResultRow>>,
) -> Result<(BTreeMap<i64, CheckState>, Vec<Planned<'a>>), WriteError> {
    let ids: Vec<i64> = by_check.keys().copied().collect();
    let ensure = tx.prepare_cached(ENSURE_STATE).await?;
    tx.execute(&ensure, &[&ids]).await?;
    let lock = tx.prepare_cached(LOCK_STATE).await?;
    let mut states = BTreeMap::new();
    for r in tx.query(&lock, &[&ids]).await? {
        let state = CheckState {
            status: Status::parse(r.get::<_, &str>(1)),
            since: r.get(2),
            last_slot: r.get(3),
            consecutive_failures: r.get::<_, i32>(4).max(0) as u32,
            consecutive_successes: r.get::<_, i32>(5).max(0) as u32,
            incident_id: r.get(6),
            streak_start: r.get(7),
        };
        states.insert(r.get::<_, i64>(0), state);
    }
    if !states.is_empty() {
        // A paused or deleted check has had its incident resolved by the
        // apply; a job of it still in flight must not reopen one nor page.
        let enabled = tx.prepare_cached(ENABLED).await?;
        let ids: Vec<i64> = states.keys().copied().collect();
        let live: HashSet<i64> = tx.query(&enabled, &[&ids]).await?.iter().map(|r| r.get(0)).collect();
        states.retain(|id, _| live.contains(id));
    }
    if states.is_empty() {
        return Ok((states, Vec::new()));
    }
    // Dry run to learn how many incidents open, then draw exactly that
    // many ids (no gaps in the sequence from failures that did not flip).
    let downs: usize = plan(&states, by_check, &mut std::iter::repeat(0))
        .iter()
        .flat_map(|p| &p.notices)
        .filter(|n| n.event == Transition::WentDown)
        .count();
    let mut incident_ids: Vec<i64> = Vec::new();
    if downs > 0 {
        let rows = tx
            .query("SELECT nextval('incident_id_seq') FROM generate_series(1, $1::int4)", &[&(downs as i32)])
            .await?;
        incident_ids = rows.iter().map(|r| r.get(0)).collect();
    }
    let planned = plan(&states, by_check, &mut incident_ids.into_iter());
    Ok((states, planned))
}

/// Writes the planned states, outbox rows and incident rows.
async fn write_states(
    tx: &deadpool_postgres::Transaction<'_>,
    planned: &[Planned<'_>],
) -> Result<(), WriteError> {
    if planned.is_empty() {
        return Ok(());
    }
    let n = planned.len();
    let mut ids = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut since = Vec::with_capacity(n);
    let mut last_slot = Vec::with_capacity(n);
    let mut checked_at = Vec::with_capacity(n);
    let mut success = Vec::with_capacity(n);
    let mut duration = Vec::with_capacity(n);
    let mut code: Vec<Option<i32>> = Vec::with_capacity(n);
    let mut error: Vec<Option<String>> = Vec::with_capacity(n);
    let mut failures = Vec::with_capacity(n);
    let mut successes = Vec::with_capacity(n);
    let mut incidents = Vec::with_capacity(n);
    let mut streak_start = Vec::with_capacity(n);
    let mut fresh = Vec::with_capacity(n);
    let mut notice_rows = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut incident_ops = Vec::new();
    for p in planned {
        incident_ops.extend(p.incidents.iter().cloned());
        ids.push(p.check_id);
        statuses.push(p.state.status.as_str());
        since.push(p.state.since);
        last_slot.push(p.state.last_slot);
        let latest = p.latest.map(|r| &r.outcome);
        fresh.push(latest.is_some());
        checked_at.push(latest.map(|o| o.started_at));
        success.push(latest.map(|o| o.success));
        duration.push(latest.map(|o| o.timings.total_ms));
        code.push(latest.and_then(|o| o.status_code.map(i32::from)));
        error.push(latest.and_then(|o| o.error_message.as_deref().map(clean)));
        streak_start.push(p.state.streak_start);
        failures.push(p.state.consecutive_failures.min(i32::MAX as u32) as i32);
        successes.push(p.state.consecutive_successes.min(i32::MAX as u32) as i32);
        // A recovered check keeps its incident id until the next incident
        // replaces it: the resolve carries the same id as the trigger.
        incidents.push(p.state.incident_id);
        for notice in &p.notices {
            notice_rows.0.push(p.check_id);
            notice_rows.1.push(clean(&notice.row.job.name));
            notice_rows.2.push(notice.incident_id);
            notice_rows.3.push(if notice.event == Transition::WentDown { "down" } else { "up" });
            notice_rows.4.push(notice.row.job.slot);
            notice_rows.5.push(payload(notice));
        }
    }
    let update = tx.prepare_cached(UPDATE_STATE).await?;
    tx.execute(
        &update,
        &[
            &ids,
            &statuses,
            &since,
            &last_slot,
            &checked_at,
            &success,
            &duration,
            &code,
            &error,
            &failures,
            &successes,
            &incidents,
            &streak_start,
            &fresh,
        ],
    )
    .await?;
    if !notice_rows.0.is_empty() {
        let insert = tx.prepare_cached(INSERT_NOTIFICATIONS).await?;
        tx.execute(
            &insert,
            &[&notice_rows.0, &notice_rows.1, &notice_rows.2, &notice_rows.3, &notice_rows.4, &notice_rows.5],
        )
        .await?;
    }
    history::apply_incidents(tx, incident_ops).await?;
    Ok(())
}
