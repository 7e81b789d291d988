//! The SQL of the checks file: whether the schema is there, the apply lock,
//! reading what is stored, and writing the plan's changes to `checks`,
//! `alert_channels` and `maintenance_windows` (rows travel as arrays
//! through `unnest`, so 100,000 checks are three round trips, not
//! 100,000); the one-check reads and writes of the API (`one.rs`); and
//! the listing of `checks list`. Every function runs on the connection or
//! transaction it is given: `apply.rs` and `one.rs` decide what to run and
//! in which transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::{Error, GenericClient};

use super::owner::Owner;
use super::plan::Existing;

/// Whether `migrate` has created the tables every command relies on.
pub async fn schema_present(db: &impl GenericClient) -> Result<bool, Error> {
    let row = db
        .query_one(
            "SELECT to_regclass('checks') IS NOT NULL AND to_regclass('check_state') IS NOT NULL
                    AND to_regclass('alert_channels') IS NOT NULL
                    AND to_regclass('cluster') IS NOT NULL",
            &[],
        )
        .await?;
    Ok(row.get::<_, bool>(0))
}

/// Whether `migrate` has finished (it fills `cluster` last).
pub async fn cluster_initialised(db: &impl GenericClient) -> Result<bool, Error> {
    Ok(db.query_one("SELECT EXISTS (SELECT 1 FROM cluster)", &[]).await?.get(0))
}

/// Takes the transaction-scoped advisory lock `key` if it is free.
pub async fn try_lock(tx: &impl GenericClient, key: i64) -> Result<bool, Error> {
    Ok(tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&key]).await?.get(0))
}

/// Waits for the transaction-scoped advisory lock `key`.
pub async fn lock(tx: &impl GenericClient, key: i64) -> Result<(), Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key]).await?;
    Ok(())
}

/// Every stored check, as the plan compares it, with its owner.
pub async fn checks(tx: &impl GenericClient) -> Result<Vec<(Existing, Owner)>, Error> {
    use futures_util::TryStreamExt;
    // Streamed: each row is decoded and its wire bytes dropped, instead of
    // holding every row and every decoded spec at once (100,000 checks).
    let rows = tx
        .query_raw(
            "SELECT id, name, interval_ms, enabled, spec::text, owner FROM checks",
            std::iter::empty::<i32>(),
        )
        .await?;
    futures_util::pin_mut!(rows);
    let mut out = Vec::new();
    while let Some(r) = rows.try_next().await? {
        out.push((
            Existing {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                interval_ms: r.try_get(2)?,
                enabled: r.try_get(3)?,
                spec: r.try_get(4)?,
            },
            Owner::from_stored(r.try_get(5)?),
        ));
    }
    Ok(out)
}

/// A table keyed by name whose rows are a JSON spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// `alert_channels` (it also has a `kind` column).
    Channels,
    /// `maintenance_windows`.
    Windows,
}

impl Named {
    fn table(self) -> &'static str {
        match self {
            Named::Channels => "alert_channels",
            Named::Windows => "maintenance_windows",
        }
    }
}

/// Every stored (name, spec) of `table`.
pub async fn named_specs(tx: &impl GenericClient, table: Named) -> Result<Vec<(String, Value)>, Error> {
    let rows = tx.query(&format!("SELECT name, spec FROM {}", table.table()), &[]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Deletes the file-owned checks among `ids` (apply's `--prune`; an
/// API-owned check is never pruned, whatever the plan says).
pub async fn delete_checks(tx: &impl GenericClient, ids: &[i64]) -> Result<(), Error> {
    tx.execute("DELETE FROM checks WHERE id = ANY($1::int8[]) AND owner = 'file'", &[&ids]).await?;
    Ok(())
}

/// Rewrites interval, enabled and spec of the file-owned checks among
/// `ids` (one statement; the slices run in parallel). An API-owned check is
/// left alone: apply never changes one.
pub async fn update_checks(
    tx: &impl GenericClient,
    ids: &[i64],
    intervals: &[i32],
    enabled: &[bool],
    specs: &[&Value],
) -> Result<(), Error> {
    tx.execute(
        "UPDATE checks AS c
            SET interval_ms = u.interval_ms, enabled = u.enabled, spec = u.spec
           FROM unnest($1::int8[], $2::int4[], $3::bool[], $4::jsonb[]) AS u(id, interval_ms, enabled, spec)
          WHERE c.id = u.id AND c.owner = 'file'",
        &[&ids, &intervals, &enabled, &specs],
    )
    .await?;
    Ok(())
}

/// Inserts new checks owned by `owner` (one statement; the slices run in
/// parallel).
pub async fn insert_checks(
    tx: &impl GenericClient,
    names: &[&str],
    intervals: &[i32],
    enabled: &[bool],
    specs: &[&Value],
    owner: Owner,
) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO checks (name, interval_ms, enabled, spec, owner)
         SELECT u.*, $5::text FROM unnest($1::text[], $2::int4[], $3::bool[], $4::jsonb[]) AS u",
        &[&names, &intervals, &enabled, &specs, &owner.as_str()],
    )
    .await?;
    Ok(())
}

pub async fn delete_named(tx: &impl GenericClient, table: Named, names: &[String]) -> Result<(), Error> {
    tx.execute(&format!("DELETE FROM {} WHERE name = ANY($1::text[])", table.table()), &[&names]).await?;
    Ok(())
}

/// Creates or rewrites rows of `table` by name. `kinds` fills the `kind`
/// column of channels; empty, the column is left alone.
pub async fn upsert_named(
    tx: &impl GenericClient,
    table: Named,
    names: &[&str],
    kinds: &[&str],
    specs: &[&Value],
) -> Result<(), Error> {
    let table = table.table();
    if kinds.is_empty() {
        tx.execute(
            &format!(
                "INSERT INTO {table} (name, spec) SELECT * FROM unnest($1::text[], $2::jsonb[])
                 ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = now()"
            ),
            &[&names, &specs],
        )
        .await?;
    } else {
        tx.execute(
            &format!(
                "INSERT INTO {table} (name, kind, spec) SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])
                 ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, spec = excluded.spec, updated_at = now()"
            ),
            &[&names, &kinds, &specs],
        )
        .await?;
    }
    Ok(())
}

/// One stored check as `checks list` shows it (the spec still as stored).
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub name: String,
    pub enabled: bool,
    pub interval_ms: i32,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub spec: Value,
    pub owner: Owner,
}

/// Every stored check, by name.
pub async fn list(db: &impl GenericClient) -> Result<Vec<StoredRow>, Error> {
    let rows = db
        .query(
            "SELECT name, enabled, interval_ms, version, created_at, updated_at, spec, owner
               FROM checks ORDER BY name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| StoredRow {
            name: r.get(0),
            enabled: r.get(1),
            interval_ms: r.get(2),
            version: r.get(3),
            created_at: r.get(4),
            updated_at: r.get(5),
            spec: r.get(6),
            owner: Owner::from_stored(r.get(7)),
        })
        .collect())
}

/// One stored check as the API's writes need it: what the plan compares,
/// its owner, and (with `for_update`) the row locked until the
/// transaction ends.
pub async fn check_row(
    db: &impl GenericClient,
    name: &str,
    for_update: bool,
) -> Result<Option<(Existing, Owner)>, Error> {
    let sql = if for_update {
        "SELECT id, name, interval_ms, enabled, spec::text, owner FROM checks WHERE name = $1 FOR UPDATE"
    } else {
        "SELECT id, name, interval_ms, enabled, spec::text, owner FROM checks WHERE name = $1"
    };
    let row = db.query_opt(sql, &[&name]).await?;
    Ok(row.map(|r| {
        (
            Existing {
                id: r.get(0),
                name: r.get(1),
                interval_ms: r.get(2),
                enabled: r.get(3),
                spec: r.get(4),
            },
            Owner::from_stored(r.get(5)),
        )
    }))
}

/// Rewrites one check and sets its owner (the database's trigger bumps
/// `version` and `updated_at` only when name, interval, spec or enabled
/// change: a change of owner alone leaves them).
pub async fn update_check(
    tx: &impl GenericClient,
    id: i64,
    interval_ms: i32,
    enabled: bool,
    spec: &Value,
    owner: Owner,
) -> Result<(), Error> {
    tx.execute(
        "UPDATE checks SET interval_ms = $2, enabled = $3, spec = $4, owner = $5 WHERE id = $1",
        &[&id, &interval_ms, &enabled, &spec, &owner.as_str()],
    )
    .await?;
    Ok(())
}

/// Pauses or resumes one check.
pub async fn set_enabled(tx: &impl GenericClient, id: i64, enabled: bool) -> Result<(), Error> {
    tx.execute("UPDATE checks SET enabled = $2 WHERE id = $1", &[&id, &enabled]).await?;
    Ok(())
}

/// Deletes one check, whoever owns it (the API decided it may).
pub async fn delete_check(tx: &impl GenericClient, id: i64) -> Result<(), Error> {
    tx.execute("DELETE FROM checks WHERE id = $1", &[&id]).await?;
    Ok(())
}

/// The names among `names` that are stored notification channels.
pub async fn channels_among(db: &impl GenericClient, names: &[String]) -> Result<Vec<String>, Error> {
    let rows = db.query("SELECT name FROM alert_channels WHERE name = ANY($1::text[])", &[&names]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Waits for the transaction-scoped advisory lock `key` at most
/// `timeout_ms`; PostgreSQL then fails the statement with
/// `lock_not_available` (55P03). For the API, whose callers should hear
/// "busy, retry" rather than wait out a long apply.
pub async fn lock_within(tx: &impl GenericClient, key: i64, timeout_ms: u32) -> Result<(), Error> {
    // SET does not take parameters; the number is ours, not input.
    tx.batch_execute(&format!("SET LOCAL lock_timeout = {timeout_ms}")).await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key]).await?;
    tx.batch_execute("SET LOCAL lock_timeout = 0").await?;
    Ok(())
}
