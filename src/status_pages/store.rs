//! Every SQL statement of status pages: the `status_pages` rows (read by
//! the pages and the API, written by the API and by `checks apply`), and
//! the reads a page is drawn from that no other concern offers in this
//! shape (its checks with their state, daily and hourly time by state
//! without histograms, its incidents, the maintenance windows). Every
//! function runs on the client or transaction it is given.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::{Error, GenericClient};

use super::model::PageOwner;
use crate::history::uptime::Durations;
use crate::model::maintenance::WindowSpec;

/// A stored page.
#[derive(Debug, Clone)]
pub struct StoredPage {
    pub slug: String,
    /// As stored: decoded by the caller (a row that no longer decodes is
    /// the caller's to report, not a reason to fail a whole list).
    pub spec: Value,
    pub owner: PageOwner,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const PAGE_COLUMNS: &str = "slug, spec, owner, created_at, updated_at";

fn page(r: &tokio_postgres::Row) -> StoredPage {
    StoredPage {
        slug: r.get(0),
        spec: r.get(1),
        owner: PageOwner::from_stored(r.get(2)),
        created_at: r.get(3),
        updated_at: r.get(4),
    }
}

/// Every page, by slug.
pub async fn pages(db: &impl GenericClient) -> Result<Vec<StoredPage>, Error> {
    let rows = db.query(&format!("SELECT {PAGE_COLUMNS} FROM status_pages ORDER BY slug"), &[]).await?;
    Ok(rows.iter().map(page).collect())
}

/// The page `slug`, if stored.
pub async fn page_by_slug(db: &impl GenericClient, slug: &str) -> Result<Option<StoredPage>, Error> {
    let row =
        db.query_opt(&format!("SELECT {PAGE_COLUMNS} FROM status_pages WHERE slug = $1"), &[&slug]).await?;
    Ok(row.as_ref().map(page))
}

/// The specs of the public pages (which checks' badges anyone may see).
pub async fn public_specs(db: &impl GenericClient) -> Result<Vec<Value>, Error> {
    let rows = db.query("SELECT spec FROM status_pages WHERE (spec->>'public')::boolean", &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Creates or rewrites the page `slug` owned by `owner`; whether it was
/// created.
pub async fn put_page(
    db: &impl GenericClient,
    slug: &str,
    spec: &Value,
    owner: PageOwner,
) -> Result<bool, Error> {
    let row = db
        .query_one(
            "INSERT INTO status_pages (slug, spec, owner) VALUES ($1, $2, $3)
             ON CONFLICT (slug) DO UPDATE SET spec = excluded.spec, owner = excluded.owner, updated_at = now()
             RETURNING (xmax = 0)",
            &[&slug, spec, &owner.as_str()],
        )
        .await?;
    Ok(row.get(0))
}

/// Deletes the page `slug`; whether there was one.
pub async fn delete_page(db: &impl GenericClient, slug: &str) -> Result<bool, Error> {
    Ok(db.execute("DELETE FROM status_pages WHERE slug = $1", &[&slug]).await? > 0)
}

/// Deletes the file-owned pages among `slugs` (`checks apply --prune`; an
/// API-owned page is never pruned).
pub async fn delete_file_pages(db: &impl GenericClient, slugs: &[String]) -> Result<(), Error> {
    db.execute("DELETE FROM status_pages WHERE slug = ANY($1) AND owner = 'file'", &[&slugs]).await?;
    Ok(())
}

/// Creates or rewrites file-owned pages (one statement; an API-owned page
/// of the same slug is left alone: apply refuses those before writing).
pub async fn upsert_file_pages(
    db: &impl GenericClient,
    slugs: &[&str],
    specs: &[&Value],
) -> Result<(), Error> {
    db.execute(
        "INSERT INTO status_pages (slug, spec, owner) SELECT s, p, 'file' FROM unnest($1::text[], $2::jsonb[]) AS u(s, p)
         ON CONFLICT (slug) DO UPDATE SET spec = excluded.spec, updated_at = now() WHERE status_pages.owner = 'file'",
        &[&slugs, &specs],
    )
    .await?;
    Ok(())
}

/// The names among `names` that no stored check has, sorted.
pub async fn unknown_checks(db: &impl GenericClient, names: &[String]) -> Result<Vec<String>, Error> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows = db
        .query(
            "SELECT DISTINCT n FROM unnest($1::text[]) AS n
              WHERE NOT EXISTS (SELECT 1 FROM checks c WHERE c.name = n) ORDER BY n",
            &[&names],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Whether some stored check carries every label of `labels`.
pub async fn selector_matches(
    db: &impl GenericClient,
    labels: &BTreeMap<String, String>,
) -> Result<bool, Error> {
    let selector = serde_json::to_value(labels).unwrap_or(Value::Null);
    let row = db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM checks WHERE coalesce(spec->'labels', '{}'::jsonb) @> $1::jsonb)",
            &[&selector],
        )
        .await?;
    Ok(row.get(0))
}

/// A check a page may show, with its state now. Only what a page may
/// reveal is read: never the URL, headers or errors.
#[derive(Debug, Clone)]
pub struct PageCheck {
    pub id: i64,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// up, down, unknown or paused.
    pub state: String,
    pub since: DateTime<Utc>,
    pub consecutive_failures: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The checks named in `names` or carrying every label of one of
/// `selectors` (JSON objects), by name.
pub async fn page_checks(
    db: &impl GenericClient,
    names: &[String],
    selectors: &[Value],
) -> Result<Vec<PageCheck>, Error> {
    let rows = db
        .query(
            "SELECT c.id, c.name, coalesce(c.spec->'labels', '{}'::jsonb),
                    CASE WHEN NOT c.enabled THEN 'paused' ELSE coalesce(s.status, 'unknown') END,
                    CASE WHEN NOT c.enabled THEN c.updated_at ELSE coalesce(s.since, c.created_at) END,
                    coalesce(s.consecutive_failures, 0), c.created_at, greatest(c.updated_at, s.updated_at)
               FROM checks c LEFT JOIN check_state s ON s.check_id = c.id
              WHERE c.name = ANY($1)
                 OR EXISTS (SELECT 1 FROM unnest($2::jsonb[]) AS sel(l)
                             WHERE coalesce(c.spec->'labels', '{}'::jsonb) @> sel.l)
              ORDER BY c.name",
            &[&names, &selectors],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| PageCheck {
            id: r.get(0),
            name: r.get(1),
            // Labels are validated as strings on every write.
            labels: serde_json::from_value(r.get(2)).unwrap_or_default(),
            state: r.get(3),
            since: r.get(4),
            consecutive_failures: r.get(5),
            created_at: r.get(6),
            updated_at: r.get(7),
        })
        .collect())
}

/// Time by state per check and bucket of `table` (`rollup_days` or
/// `rollup_hours`) in `[from, to)`, without the latency histograms a
/// status page's bars do not need: per check, its (bucket, durations).
///
/// One row per check, its buckets as arrays (aggregated in one pass, so
/// the arrays share their order), not one row per bucket: a page of 200
/// checks reads 18,000 daily buckets, and decoding 200 rows of arrays
/// costs the web role a fraction of decoding 18,000 rows.
pub async fn durations(
    db: &impl GenericClient,
    granularity: crate::history::buckets::Granularity,
    ids: &[i64],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(i64, Vec<(DateTime<Utc>, Durations)>)>, Error> {
    let sql = format!(
        "SELECT check_id, array_agg(bucket), array_agg(up_ms), array_agg(down_ms),
                array_agg(no_data_ms), array_agg(maintenance_ms)
           FROM {}
          WHERE check_id = ANY($1) AND bucket >= $2 AND bucket < $3
          GROUP BY check_id",
        granularity.table()
    );
    let rows = db.query(&sql, &[&ids, &from, &to]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let buckets: Vec<DateTime<Utc>> = r.try_get(1)?;
        let (up, down, no_data, maintenance): (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>) =
            (r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?);
        let durations = buckets
            .into_iter()
            .zip(up.into_iter().zip(down).zip(no_data.into_iter().zip(maintenance)))
            .map(|(bucket, ((up_ms, down_ms), (no_data_ms, maintenance_ms)))| {
                (bucket, Durations { up_ms, down_ms, no_data_ms, maintenance_ms })
            })
            .collect();
        out.push((r.try_get(0)?, durations));
    }
    Ok(out)
}

/// An incident as a page may show it: times only (errors may name hosts
/// and addresses a public page must not reveal).
#[derive(Debug, Clone, PartialEq)]
pub struct PageIncident {
    pub id: i64,
    pub check_id: i64,
    pub opened_at: DateTime<Utc>,
    pub confirmed_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// recovered, paused or deleted; `None` while open.
    pub resolution: Option<String>,
    pub in_maintenance: bool,
}

/// The incidents of `ids` open at some time since `since`, newest first.
pub async fn incidents(
    db: &impl GenericClient,
    ids: &[i64],
    since: DateTime<Utc>,
) -> Result<Vec<PageIncident>, Error> {
    let rows = db
        .query(
            "SELECT id, check_id, opened_at, confirmed_at, resolved_at, resolution, in_maintenance
               FROM incidents
              WHERE check_id = ANY($1) AND (resolved_at IS NULL OR resolved_at > $2)
              ORDER BY opened_at DESC, id DESC",
            &[&ids, &since],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| PageIncident {
            id: r.get(0),
            check_id: r.get(1),
            opened_at: r.get(2),
            confirmed_at: r.get(3),
            resolved_at: r.get(4),
            resolution: r.get(5),
            in_maintenance: r.get(6),
        })
        .collect())
}

/// Every maintenance window that can be read, by name (one that cannot is
/// logged and left out, as history does).
pub async fn windows(db: &impl GenericClient) -> Result<Vec<(String, WindowSpec)>, Error> {
    let mut out = Vec::new();
    for row in db.query("SELECT name, spec FROM maintenance_windows ORDER BY name", &[]).await? {
        let name: String = row.get(0);
        match serde_json::from_value::<WindowSpec>(row.get(1)) {
            Ok(spec) => out.push((name, spec)),
            Err(e) => tracing::error!(window = %name, error = %e, "stored maintenance window cannot be read"),
        }
    }
    Ok(out)
}

/// The check `name` with its labels and state, for a badge.
pub async fn badge_check(db: &impl GenericClient, name: &str) -> Result<Option<PageCheck>, Error> {
    Ok(page_checks(db, &[name.to_string()], &[]).await?.into_iter().next())
}
