//! The SQL of the dashboard that no concern owns: the maintenance windows
//! as declared (the checks table, one check and its results are read
//! through `web::store` and `web::results_store`, history through
//! `history::report`).

use tokio_postgres::GenericClient;

use crate::model::maintenance::WindowSpec;

/// The declared maintenance windows by name; a stored window this version
/// cannot read is listed with `None` (and logged), not dropped silently.
pub async fn maintenance_windows(
    client: &impl GenericClient,
) -> Result<Vec<(String, Option<WindowSpec>)>, tokio_postgres::Error> {
    let rows = client.query("SELECT name, spec FROM maintenance_windows ORDER BY name", &[]).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let name: String = row.get(0);
            let spec = match serde_json::from_value::<WindowSpec>(row.get(1)) {
                Ok(spec) => Some(spec),
                Err(e) => {
                    tracing::error!(window = %name, error = %e, "stored maintenance window cannot be read");
                    None
                }
            };
            (name, spec)
        })
        .collect())
}

/// Every status page: slug, title and whether it is public, by slug.
/// Empty while the status pages' table does not exist (a database
/// migrated by a version without status pages).
pub async fn status_pages(
    client: &impl GenericClient,
) -> Result<Vec<(String, String, bool)>, tokio_postgres::Error> {
    let exists: bool = client.query_one("SELECT to_regclass('status_pages') IS NOT NULL", &[]).await?.get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT slug, coalesce(spec->>'title', slug), coalesce((spec->>'public')::boolean, false)
               FROM status_pages ORDER BY slug",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}
