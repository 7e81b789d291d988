//! Making the `checks` table match the declared checks: one transaction,
//! one statement per kind of change (rows travel as arrays through
//! `unnest`, so 100,000 checks are three round trips, not 100,000), under
//! an advisory lock so two applies never interleave.

use tokio_postgres::Client;

use super::plan::{plan, Existing, Plan};
use super::validate::DeclaredCheck;

/// Advisory lock of `checks apply` ("sk8apply" in ASCII; the migration
/// lock is another key).
pub const APPLY_LOCK_KEY: i64 = 0x736b_3861_7070_6c79;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the database is not migrated: run `sentryk8s migrate` first")]
    NotMigrated,
    #[error("database error: {0}")]
    Db(String),
    #[error("cannot encode check `{0}`: {1}")]
    Encode(String, String),
}

fn db(e: tokio_postgres::Error) -> ApplyError {
    ApplyError::Db(crate::db::error_chain(&e))
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Delete checks that are not declared.
    pub prune: bool,
    /// Plan only; write nothing.
    pub dry_run: bool,
}

/// Fails with [`ApplyError::NotMigrated`] unless `migrate` has run.
pub async fn ensure_migrated(client: &Client) -> Result<(), ApplyError> {
    let row = client
        .query_one(
            "SELECT to_regclass('checks') IS NOT NULL AND to_regclass('check_state') IS NOT NULL
                    AND to_regclass('cluster') IS NOT NULL",
            &[],
        )
        .await
        .map_err(db)?;
    if !row.get::<_, bool>(0) {
        return Err(ApplyError::NotMigrated);
    }
    let initialised: bool =
        client.query_one("SELECT EXISTS (SELECT 1 FROM cluster)", &[]).await.map_err(db)?.get(0);
    if initialised {
        Ok(())
    } else {
        Err(ApplyError::NotMigrated)
    }
}

/// Plans and (unless `dry_run`) applies. `on_wait` is called once when
/// another apply holds the lock and this one has to wait.
pub async fn apply(
    client: &mut Client,
    declared: &[DeclaredCheck],
    options: Options,
    on_wait: impl FnOnce(),
) -> Result<Plan, ApplyError> {
    ensure_migrated(client).await?;
    let tx = client.transaction().await.map_err(db)?;
    if !options.dry_run {
        let got: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&APPLY_LOCK_KEY])
            .await
            .map_err(db)?
            .get(0);
        if !got {
            on_wait();
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPLY_LOCK_KEY]).await.map_err(db)?;
        }
    }
    let rows = tx.query("SELECT id, name, interval_ms, enabled, spec FROM checks", &[]).await.map_err(db)?;
    let existing: Vec<Existing> = rows
        .iter()
        .map(|r| Existing {
            id: r.get(0),
            name: r.get(1),
            interval_ms: r.get(2),
            enabled: r.get(3),
            spec: r.get(4),
        })
        .collect();
    drop(rows);
    let plan = plan(declared, existing, options.prune)
        .map_err(|e| ApplyError::Encode(String::new(), e.to_string()))?;
    if options.dry_run || plan.is_noop() {
        // Nothing was written; ending the transaction releases the lock.
        tx.rollback().await.map_err(db)?;
        return Ok(plan);
    }

    if !plan.delete.is_empty() {
        let ids: Vec<i64> = plan.delete.iter().map(|(id, _)| *id).collect();
        tx.execute("DELETE FROM checks WHERE id = ANY($1::int8[])", &[&ids]).await.map_err(db)?;
    }
    if !plan.update.is_empty() {
        let mut ids = Vec::with_capacity(plan.update.len());
        let mut intervals = Vec::with_capacity(plan.update.len());
        let mut enabled = Vec::with_capacity(plan.update.len());
        let mut specs = Vec::with_capacity(plan.update.len());
        for u in &plan.update {
            let check = &declared[u.index];
            ids.push(u.id);
            intervals.push(check.interval_ms as i32);
            enabled.push(check.enabled);
            specs.push(&plan.specs[u.index]);
        }
        tx.execute(
            "UPDATE checks AS c
                SET interval_ms = u.interval_ms, enabled = u.enabled, spec = u.spec
               FROM unnest($1::int8[], $2::int4[], $3::bool[], $4::jsonb[]) AS u(id, interval_ms, enabled, spec)
              WHERE c.id = u.id",
            &[&ids, &intervals, &enabled, &specs],
        )
        .await
        .map_err(db)?;
    }
    if !plan.create.is_empty() {
        let mut names = Vec::with_capacity(plan.create.len());
        let mut intervals = Vec::with_capacity(plan.create.len());
        let mut enabled = Vec::with_capacity(plan.create.len());
        let mut specs = Vec::with_capacity(plan.create.len());
        for &i in &plan.create {
            let check = &declared[i];
            names.push(check.name.as_str());
            intervals.push(check.interval_ms as i32);
            enabled.push(check.enabled);
            specs.push(&plan.specs[i]);
        }
        tx.execute(
            "INSERT INTO checks (name, interval_ms, enabled, spec)
             SELECT * FROM unnest($1::text[], $2::int4[], $3::bool[], $4::jsonb[])",
            &[&names, &intervals, &enabled, &specs],
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(plan)
}
