//! One check at a time, for the API: create or update (`PUT`), delete,
//! pause and resume. The same planner as `checks apply` (an unchanged
//! check is not written, so its `version` and `updated_at` stay), the same
//! advisory lock (an API write and an apply never interleave), and the
//! ownership rules of `owner.rs`. The body was validated before
//! (`Validator::validate_entry`); here the database is read and written,
//! through `store.rs`.

use std::collections::HashSet;

use tokio_postgres::{Client, GenericClient};

use super::apply::APPLY_LOCK_KEY;
use super::check::DeclaredCheck;
use super::declared::Declared;
use super::diagnostic::Diagnostics;
use super::load::unresolved;
use super::owner::Owner;
use super::plan::{plan, Existing};
use super::store;

/// Longest an API write waits for a running `checks apply` (or another
/// write) before answering "busy".
pub const LOCK_WAIT_MS: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum OneError {
    #[error("no check is named \"{0}\"")]
    NotFound(String),
    /// The check belongs to the other side and the caller did not force.
    #[error("check \"{name}\" is owned by {owner}")]
    Owned { name: String, owner: Owner },
    /// `alerts` names channels that are not stored.
    #[error("{0}")]
    Unresolved(Diagnostics),
    /// Another apply or API write held the lock for [`LOCK_WAIT_MS`].
    #[error("another `checks apply` or API write is running; retry")]
    Busy,
    #[error("cannot encode check `{0}`: {1}")]
    Encode(String, String),
    #[error("database error: {0}")]
    Db(String),
}

impl From<tokio_postgres::Error> for OneError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
            return OneError::Busy;
        }
        OneError::Db(crate::db::error_chain(&e))
    }
}

/// What a `PUT` did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// The plan of one `PUT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    pub outcome: Outcome,
    /// Changed fields, named as in the checks file (`interval`,
    /// `expect.status`; `owner` when a forced PUT takes a file's check).
    pub fields: Vec<String>,
}

/// Plans `check` against its stored row: ownership first, then the planner
/// of `checks apply`.
fn decide(check: &DeclaredCheck, row: Option<&(Existing, Owner)>, force: bool) -> Result<Put, OneError> {
    let Some((existing, owner)) = row else {
        return Ok(Put { outcome: Outcome::Created, fields: Vec::new() });
    };
    if *owner == Owner::File && !force {
        return Err(OneError::Owned { name: check.name.clone(), owner: *owner });
    }
    let planned = plan(std::slice::from_ref(check), vec![existing.clone()], false)
        .map_err(|e| OneError::Encode(check.name.clone(), e.to_string()))?;
    let mut fields = planned.update.into_iter().next().map(|u| u.fields).unwrap_or_default();
    if *owner != Owner::Api {
        fields.push("owner".to_string());
    }
    let outcome = if fields.is_empty() { Outcome::Unchanged } else { Outcome::Updated };
    Ok(Put { outcome, fields })
}

/// The channels `check.alerts` names must be stored (what `checks apply`
/// checks for a file's references to channels it does not declare).
async fn resolve_alerts(db: &impl GenericClient, declared: &Declared) -> Result<(), OneError> {
    let wanted: Vec<String> = declared.checks.iter().flat_map(|c| c.spec.alerts.iter().cloned()).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let stored: HashSet<String> = store::channels_among(db, &wanted).await?.into_iter().collect();
    let problems = unresolved(declared, &stored, &HashSet::new());
    if problems.is_empty() {
        Ok(())
    } else {
        Err(OneError::Unresolved(problems))
    }
}

/// Creates or updates the one check `declared` holds (as validated by
/// `validate_entry`), owned by the API. `force` (an admin's choice) lets
/// it take a file-owned check; `dry_run` plans and writes nothing.
///
/// An unchanged check is decided without the lock or a transaction: one
/// read, nothing written. A change is planned again under the lock, on the
/// row locked for update, and written in that transaction.
pub async fn put(
    client: &mut Client,
    declared: &Declared,
    force: bool,
    dry_run: bool,
) -> Result<Put, OneError> {
    let Some(check) = declared.checks.first() else {
        return Err(OneError::Encode(String::new(), "no check to store".into()));
    };
    let first = store::check_row(&*client, &check.name, false).await?;
    let planned = decide(check, first.as_ref(), force)?;
    if dry_run || planned.outcome == Outcome::Unchanged {
        resolve_alerts(&*client, declared).await?;
        return Ok(planned);
    }
    let tx = client.transaction().await?;
    store::lock_within(&tx, APPLY_LOCK_KEY, LOCK_WAIT_MS).await?;
    let row = store::check_row(&tx, &check.name, true).await?;
    let planned = decide(check, row.as_ref(), force)?;
    resolve_alerts(&tx, declared).await?;
    if planned.outcome == Outcome::Unchanged {
        tx.rollback().await?;
        return Ok(planned);
    }
    let spec =
        serde_json::to_value(&check.spec).map_err(|e| OneError::Encode(check.name.clone(), e.to_string()))?;
    // At most MAX_INTERVAL_MS (validated), which fits.
    let interval_ms = check.interval_ms as i32;
    match row {
        None => {
            store::insert_checks(
                &tx,
                &[check.name.as_str()],
                &[interval_ms],
                &[check.enabled],
                &[&spec],
                Owner::Api,
            )
            .await?
        }
        Some((existing, _)) => {
            if !check.enabled {
                // Pausing a down check resolves its incident, as apply does.
                crate::alerting::store::resolve_withdrawn(&tx, &[existing.id], "paused").await?;
            }
            store::update_check(&tx, existing.id, interval_ms, check.enabled, &spec, Owner::Api).await?;
        }
    }
    tx.commit().await?;
    Ok(planned)
}

/// Takes the lock and the check's row; refuses another side's check
/// unless forced.
async fn locked_row(
    tx: &tokio_postgres::Transaction<'_>,
    name: &str,
    force: bool,
) -> Result<Existing, OneError> {
    store::lock_within(tx, APPLY_LOCK_KEY, LOCK_WAIT_MS).await?;
    let Some((existing, owner)) = store::check_row(tx, name, true).await? else {
        return Err(OneError::NotFound(name.to_string()));
    };
    if owner == Owner::File && !force {
        return Err(OneError::Owned { name: name.to_string(), owner });
    }
    Ok(existing)
}

/// Deletes the check `name`, resolving its open incident ("deleted"), as
/// `checks apply --prune` does.
pub async fn delete(client: &mut Client, name: &str, force: bool) -> Result<(), OneError> {
    let tx = client.transaction().await?;
    let existing = locked_row(&tx, name, force).await?;
    crate::alerting::store::resolve_withdrawn(&tx, &[existing.id], "deleted").await?;
    store::delete_check(&tx, existing.id).await?;
    tx.commit().await?;
    Ok(())
}

/// Pauses (`enabled` false) or resumes the check `name`; whether anything
/// changed (pausing a paused check writes nothing). Pausing a down check
/// resolves its incident ("paused"), as apply does.
pub async fn set_enabled(
    client: &mut Client,
    name: &str,
    enabled: bool,
    force: bool,
) -> Result<bool, OneError> {
    let tx = client.transaction().await?;
    let existing = locked_row(&tx, name, force).await?;
    if existing.enabled == enabled {
        tx.rollback().await?;
        return Ok(false);
    }
    if !enabled {
        crate::alerting::store::resolve_withdrawn(&tx, &[existing.id], "paused").await?;
    }
    store::set_enabled(&tx, existing.id, enabled).await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks_file::diagnostic::Pos;

    fn check(enabled: bool) -> DeclaredCheck {
        DeclaredCheck {
            name: "a".into(),
            interval_ms: 60_000,
            enabled,
            spec: serde_json::from_value(serde_json::json!({"url": "http://x/", "timeout_ms": 1000}))
                .unwrap(),
            file: "body".into(),
            pos: Pos::default(),
            path: "checks[0]".into(),
            alert_refs: Vec::new(),
        }
    }

    fn row(c: &DeclaredCheck, owner: Owner) -> (Existing, Owner) {
        let existing = Existing {
            id: 7,
            name: c.name.clone(),
            interval_ms: c.interval_ms as i32,
            enabled: c.enabled,
            spec: serde_json::to_string(&c.spec).unwrap(),
        };
        (existing, owner)
    }

    #[test]
    fn ownership_then_the_planner_decide() {
        let c = check(true);
        assert_eq!(decide(&c, None, false).unwrap().outcome, Outcome::Created);
        assert_eq!(decide(&c, Some(&row(&c, Owner::Api)), false).unwrap().outcome, Outcome::Unchanged);
        let err = decide(&c, Some(&row(&c, Owner::File)), false).unwrap_err();
        assert!(matches!(err, OneError::Owned { owner: Owner::File, .. }), "{err:?}");
        // Forced: the same spec, but the owner changes hands.
        let forced = decide(&c, Some(&row(&c, Owner::File)), true).unwrap();
        assert_eq!(forced, Put { outcome: Outcome::Updated, fields: vec!["owner".into()] });
        let paused = decide(&check(false), Some(&row(&c, Owner::Api)), false).unwrap();
        assert_eq!(paused, Put { outcome: Outcome::Updated, fields: vec!["enabled".into()] });
    }
}
