//! Making the `checks`, `alert_channels` and `maintenance_windows` tables
//! match the declared files: one transaction, one statement per kind of
//! change (the statements are in `store.rs`), under an advisory lock so two
//! applies never interleave. References (a check's `alerts`, a window's
//! `checks`) are resolved inside that transaction, against the files and,
//! without `--prune`, what is already stored.
//!
//! Ownership (`owner.rs`): checks created through the API are not the
//! files' to change. A file declaring one is refused before anything is
//! written, and `--prune` keeps them; the plan only ever sees file-owned
//! checks.

use std::collections::HashSet;

use tokio_postgres::Client;

use super::declared::Declared;
use super::diagnostic::{Diagnostic, Diagnostics};
use super::load::unresolved;
use super::owner::Owner;
use super::plan::{plan, plan_named, Existing, NamedPlan, Plan};
use super::store::{self, Named};

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
    /// References to channels or checks that exist nowhere.
    #[error("{0}")]
    Unresolved(Diagnostics),
    /// Checks the files declare that the API owns.
    #[error("{0}")]
    Owned(Diagnostics),
}

/// The problem of a declared check whose name an API-owned check has.
fn owned_by_api(check: &crate::checks_file::DeclaredCheck) -> Diagnostic {
    Diagnostic {
        file: check.file.clone(),
        pos: Some(check.pos),
        path: format!("{}.name", check.path),
        message: format!(
            "check \"{name}\" is owned by the API (owner: api), so `checks apply` never changes it: rename the check in the file, or delete it through the API first (DELETE /api/v1/checks/{name})",
            name = check.name
        ),
    }
}

/// Checks written per statement.
const WRITE_CHUNK: usize = 2_000;

/// A check's spec as stored, made when it is written (only created and
/// updated checks are, so an apply that changes little holds little).
fn spec_json(check: &crate::checks_file::DeclaredCheck) -> Result<serde_json::Value, ApplyError> {
    serde_json::to_value(&check.spec).map_err(|e| ApplyError::Encode(check.name.clone(), e.to_string()))
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
    if !store::schema_present(client).await.map_err(db)? {
        return Err(ApplyError::NotMigrated);
    }
    if store::cluster_initialised(client).await.map_err(db)? {
        Ok(())
    } else {
        Err(ApplyError::NotMigrated)
    }
}

/// Plans and (unless `dry_run`) applies. `on_wait` is called once when
/// another apply holds the lock and this one has to wait.
pub async fn apply(
    client: &mut Client,
    all: &Declared,
    options: Options,
    on_wait: impl FnOnce(),
) -> Result<Plan, ApplyError> {
    ensure_migrated(client).await?;
    let tx = client.transaction().await.map_err(db)?;
    if !options.dry_run && !store::try_lock(&tx, APPLY_LOCK_KEY).await.map_err(db)? {
        on_wait();
        store::lock(&tx, APPLY_LOCK_KEY).await.map_err(db)?;
    }
    let stored = store::checks(&tx).await.map_err(db)?;
    let declared = &all.checks;
    let stored_checks: HashSet<String> = stored.iter().map(|(e, _)| e.name.clone()).collect();
    let mut api_owned: HashSet<String> = HashSet::new();
    let mut existing: Vec<Existing> = Vec::with_capacity(stored.len());
    for (e, owner) in stored {
        match owner {
            Owner::Api => {
                api_owned.insert(e.name);
            }
            Owner::File => existing.push(e),
        }
    }
    let conflicts: Vec<Diagnostic> =
        declared.iter().filter(|c| api_owned.contains(&c.name)).map(owned_by_api).collect();
    if !conflicts.is_empty() {
        tx.rollback().await.map_err(db)?;
        return Err(ApplyError::Owned(Diagnostics(conflicts)));
    }
    let mut plan = plan(declared, existing, options.prune)
        .map_err(|e| ApplyError::Encode(String::new(), e.to_string()))?;
    let mut kept_api: Vec<String> = api_owned.iter().cloned().collect();
    kept_api.sort();
    plan.kept_api = kept_api;

    let stored_channels = store::named_specs(&tx, Named::Channels).await.map_err(db)?;
    let stored_windows = store::named_specs(&tx, Named::Windows).await.map_err(db)?;
    // With --prune, whatever the files do not declare is about to go,
    // except the API's checks.
    let (known_channels, known_checks) = if options.prune {
        (HashSet::new(), api_owned)
    } else {
        (stored_channels.iter().map(|(n, _)| n.clone()).collect(), stored_checks)
    };
    let problems = unresolved(all, &known_channels, &known_checks);
    if !problems.is_empty() {
        tx.rollback().await.map_err(db)?;
        return Err(ApplyError::Unresolved(problems));
    }
    let channel_specs = all
        .channels
        .iter()
        .map(|c| Ok((c.name.as_str(), serde_json::to_value(&c.spec)?)))
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .map_err(|e| ApplyError::Encode(String::new(), e.to_string()))?;
    plan.channels = plan_named(&channel_specs, stored_channels, options.prune);
    let window_specs = all
        .windows
        .iter()
        .map(|w| Ok((w.name.as_str(), serde_json::to_value(&w.spec)?)))
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .map_err(|e| ApplyError::Encode(String::new(), e.to_string()))?;
    plan.windows = plan_named(&window_specs, stored_windows, options.prune);
    let page_specs = plan_pages(&tx, all, &mut plan, options.prune).await?;
    if options.dry_run || plan.is_noop() {
        // Nothing was written; ending the transaction releases the lock.
        tx.rollback().await.map_err(db)?;
        return Ok(plan);
    }

    if !plan.delete.is_empty() {
        let ids: Vec<i64> = plan.delete.iter().map(|(id, _)| *id).collect();
        crate::alerting::store::resolve_withdrawn(&tx, &ids, "deleted").await.map_err(db)?;
        store::delete_checks(&tx, &ids).await.map_err(db)?;
    }
    let paused: Vec<i64> = plan.update.iter().filter(|u| !declared[u.index].enabled).map(|u| u.id).collect();
    if !paused.is_empty() {
        crate::alerting::store::resolve_withdrawn(&tx, &paused, "paused").await.map_err(db)?;
    }
    // In chunks, in the same transaction: the specs' JSON of one chunk at
    // a time, not of 100,000 checks at once.
    for chunk in plan.update.chunks(WRITE_CHUNK) {
        let mut ids = Vec::with_capacity(chunk.len());
        let mut intervals = Vec::with_capacity(chunk.len());
        let mut enabled = Vec::with_capacity(chunk.len());
        let mut specs = Vec::with_capacity(chunk.len());
        for u in chunk {
            let check = &declared[u.index];
            ids.push(u.id);
            intervals.push(check.interval_ms as i32);
            enabled.push(check.enabled);
            specs.push(spec_json(check)?);
        }
        let specs: Vec<&serde_json::Value> = specs.iter().collect();
        store::update_checks(&tx, &ids, &intervals, &enabled, &specs).await.map_err(db)?;
    }
    for chunk in plan.create.chunks(WRITE_CHUNK) {
        let mut names = Vec::with_capacity(chunk.len());
        let mut intervals = Vec::with_capacity(chunk.len());
        let mut enabled = Vec::with_capacity(chunk.len());
        let mut specs = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let check = &declared[i];
            names.push(check.name.as_str());
            intervals.push(check.interval_ms as i32);
            enabled.push(check.enabled);
            specs.push(spec_json(check)?);
        }
        let specs: Vec<&serde_json::Value> = specs.iter().collect();
        store::insert_checks(&tx, &names, &intervals, &enabled, &specs, Owner::File).await.map_err(db)?;
    }
    write_named(
        &tx,
        Named::Channels,
        &plan.channels,
        &all.channels.iter().map(|c| c.spec.kind.name()).collect::<Vec<_>>(),
        &channel_specs,
    )
    .await?;
    write_named(&tx, Named::Windows, &plan.windows, &[], &window_specs).await?;
    write_pages(&tx, &plan.pages, &page_specs).await?;
    tx.commit().await.map_err(db)?;
    Ok(plan)
}

/// Plans the files' status pages into `plan.pages` (the stored file-owned
/// pages against the declared ones) and returns the declared (slug, spec)
/// pairs. A declared page whose slug an API-owned page has is refused, as
/// a check is; so is a group's label selector that selects no check,
/// declared in the files or stored (the page would show an empty group).
async fn plan_pages(
    tx: &tokio_postgres::Transaction<'_>,
    all: &Declared,
    plan: &mut Plan,
    prune: bool,
) -> Result<Vec<(String, serde_json::Value)>, ApplyError> {
    use crate::status_pages::{store as pages, PageOwner};
    let stored = pages::pages(tx).await.map_err(db)?;
    let api: HashSet<&str> =
        stored.iter().filter(|p| p.owner == PageOwner::Api).map(|p| p.slug.as_str()).collect();
    let owned: Vec<Diagnostic> = all
        .pages
        .iter()
        .filter(|p| api.contains(p.slug.as_str()))
        .map(|p| Diagnostic {
            file: p.file.clone(),
            pos: Some(p.pos),
            path: format!("{}.slug", p.path),
            message: format!(
                "status page \"{slug}\" is owned by the API (owner: api), so `checks apply` never changes it: rename the page in the file, or delete it through the API first (DELETE /api/v1/status-pages/{slug})",
                slug = p.slug
            ),
        })
        .collect();
    if !owned.is_empty() {
        return Err(ApplyError::Owned(Diagnostics(owned)));
    }
    let mut empty = Vec::new();
    for s in all.pages.iter().flat_map(|p| &p.selectors) {
        let declared =
            all.checks.iter().any(|c| s.labels.iter().all(|(k, v)| c.spec.labels.get(k) == Some(v)));
        if !declared && !pages::selector_matches(tx, &s.labels).await.map_err(db)? {
            let written: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            empty.push(Diagnostic {
                file: s.file.clone(),
                pos: Some(s.pos),
                path: s.path.clone(),
                message: format!(
                    "the selector {} selects no check (none declared in these files or stored carries these labels)",
                    written.join(", ")
                ),
            });
        }
    }
    if !empty.is_empty() {
        return Err(ApplyError::Unresolved(Diagnostics(empty)));
    }
    let specs = all
        .pages
        .iter()
        .map(|p| Ok((p.slug.clone(), serde_json::to_value(&p.spec)?)))
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .map_err(|e| ApplyError::Encode(String::new(), e.to_string()))?;
    let borrowed: Vec<(&str, serde_json::Value)> =
        specs.iter().map(|(s, v)| (s.as_str(), v.clone())).collect();
    let existing: Vec<(String, serde_json::Value)> =
        stored.into_iter().filter(|p| p.owner == PageOwner::File).map(|p| (p.slug, p.spec)).collect();
    plan.pages = plan_named(&borrowed, existing, prune);
    Ok(specs)
}

/// Deletes, updates and creates the file-owned status pages of `plan`.
async fn write_pages(
    tx: &tokio_postgres::Transaction<'_>,
    plan: &NamedPlan,
    specs: &[(String, serde_json::Value)],
) -> Result<(), ApplyError> {
    use crate::status_pages::store as pages;
    if !plan.delete.is_empty() {
        pages::delete_file_pages(tx, &plan.delete).await.map_err(db)?;
    }
    let changed: Vec<usize> =
        plan.create.iter().copied().chain(plan.update.iter().map(|(i, _)| *i)).collect();
    if changed.is_empty() {
        return Ok(());
    }
    let slugs: Vec<&str> = changed.iter().map(|&i| specs[i].0.as_str()).collect();
    let values: Vec<&serde_json::Value> = changed.iter().map(|&i| &specs[i].1).collect();
    pages::upsert_file_pages(tx, &slugs, &values).await.map_err(db)
}

/// Deletes, updates and creates the rows of a name-keyed table. `kinds`
/// (channels only) fills the `kind` column.
async fn write_named(
    tx: &tokio_postgres::Transaction<'_>,
    table: Named,
    plan: &NamedPlan,
    kinds: &[&str],
    specs: &[(&str, serde_json::Value)],
) -> Result<(), ApplyError> {
    if !plan.delete.is_empty() {
        store::delete_named(tx, table, &plan.delete).await.map_err(db)?;
    }
    let changed: Vec<usize> =
        plan.create.iter().copied().chain(plan.update.iter().map(|(i, _)| *i)).collect();
    if changed.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = changed.iter().map(|&i| specs[i].0).collect();
    let values: Vec<&serde_json::Value> = changed.iter().map(|&i| &specs[i].1).collect();
    let kinds: Vec<&str> =
        if kinds.is_empty() { Vec::new() } else { changed.iter().map(|&i| kinds[i]).collect() };
    store::upsert_named(tx, table, &names, &kinds, &values).await.map_err(db)
}
