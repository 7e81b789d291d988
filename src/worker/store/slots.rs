//! The SQL of batches' per-slot accounting: invalid slots recorded as
//! missed, and which slots of a redelivered message are already accounted.
//!
//! An invalid slot names only its check and slot (the rest of it could not
//! be read, or cannot be trusted), so what history needs — the interval,
//! and the name and labels maintenance windows match — comes from the
//! `checks` row. A slot of a check that no longer exists is not recorded:
//! there is nothing to account it to.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use super::WriteError;
use crate::history::buckets::to_ms;
use crate::history::rollup::{self, MissedFact, Rollups};
use crate::history::windows::Windows;

const INSERT_INVALID: &str = "
WITH recorded AS (
    INSERT INTO missed_slots (check_id, first_slot, last_slot, slots, reason, interval_ms)
    SELECT c.id, u.slot, u.slot, 1, 'invalid', c.interval_ms
      FROM unnest($1::int8[], $2::timestamptz[]) AS u(check_id, slot)
      JOIN checks c ON c.id = u.check_id
     WHERE NOT EXISTS (SELECT 1 FROM check_results r WHERE r.check_id = u.check_id AND r.slot = u.slot)
    ON CONFLICT (check_id, first_slot, reason) DO NOTHING
    RETURNING check_id, first_slot, interval_ms
)
SELECT r.check_id, r.first_slot, r.interval_ms, c.name, c.spec -> 'labels'
  FROM recorded r JOIN checks c ON c.id = r.check_id";

// A slot is accounted when it has a result, or a missed record this
// worker role writes (a scheduler's `catch_up`/`rejected` records are for
// slots never published, so they cannot name a delivered slot).
const DONE_SLOTS: &str = "
SELECT u.check_id, u.slot
  FROM unnest($1::int8[], $2::timestamptz[]) AS u(check_id, slot)
 WHERE EXISTS (SELECT 1 FROM check_results r WHERE r.check_id = u.check_id AND r.slot = u.slot)
    OR EXISTS (SELECT 1 FROM missed_slots m
                WHERE m.check_id = u.check_id AND m.first_slot = u.slot AND m.reason IN ('stale', 'invalid'))";

/// Records `invalid` slots (distinct) in `missed_slots` and adds what the
/// recorded ones account for to `rollups`.
pub(super) async fn record_invalid(
    tx: &deadpool_postgres::Transaction<'_>,
    invalid: &[(i64, DateTime<Utc>)],
    windows: &Windows,
    rollups: &mut Rollups,
) -> Result<(), WriteError> {
    let ids: Vec<i64> = invalid.iter().map(|(c, _)| *c).collect();
    let slots: Vec<DateTime<Utc>> = invalid.iter().map(|(_, s)| *s).collect();
    let statement = tx.prepare_cached(INSERT_INVALID).await?;
    for row in tx.query(&statement, &[&ids, &slots]).await? {
        let slot: DateTime<Utc> = row.get(1);
        let fact = MissedFact {
            check_id: row.get(0),
            first_ms: to_ms(slot),
            last_ms: to_ms(slot),
            slots: 1,
            interval_ms: row.get::<_, Option<i32>>(2).map_or(0, i64::from),
        };
        let name: String = row.get(3);
        // Labels the check's spec no longer parses as simply match no
        // label-scoped window.
        let labels: std::collections::BTreeMap<String, String> = row
            .get::<_, Option<serde_json::Value>>(4)
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let covered = |slot: i64| windows.covers(&name, &labels, crate::history::buckets::from_ms(slot));
        let covers_check = !windows.is_empty() && !windows.for_check(&name, &labels).is_empty();
        rollup::add_missed(rollups, &fact, covers_check.then_some(&covered as &dyn Fn(i64) -> bool));
    }
    Ok(())
}

/// Which of `keys` (the slots of a redelivered message) are already
/// accounted: a result row, or a `stale`/`invalid` missed record. One query.
pub async fn done_slots(
    pool: &Pool,
    keys: &[(i64, DateTime<Utc>)],
) -> Result<HashSet<(i64, DateTime<Utc>)>, WriteError> {
    let ids: Vec<i64> = keys.iter().map(|(c, _)| *c).collect();
    let slots: Vec<DateTime<Utc>> = keys.iter().map(|(_, s)| *s).collect();
    let client = pool.get().await?;
    let statement = client.prepare_cached(DONE_SLOTS).await?;
    Ok(client.query(&statement, &[&ids, &slots]).await?.iter().map(|r| (r.get(0), r.get(1))).collect())
}
