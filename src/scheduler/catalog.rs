//! Loading the checks of owned partitions from the `checks` table.

use std::collections::HashMap;

use tokio_postgres::GenericClient;

use super::schedule::CheckRow;

/// NOTIFY channel of check changes; the payload is the partition number.
pub const CHECKS_CHANNEL: &str = "sentryk8s_checks";

/// The enabled checks of `partitions`, grouped by partition (every
/// requested partition has an entry, possibly empty).
pub async fn load(
    client: &impl GenericClient,
    partitions: &[u32],
) -> Result<HashMap<u32, Vec<CheckRow>>, tokio_postgres::Error> {
    let ps: Vec<i32> = partitions.iter().map(|p| *p as i32).collect();
    let rows = client
        .query(
            "SELECT partition, id, name, interval_ms, version, spec::text
               FROM checks WHERE partition = ANY($1) AND enabled",
            &[&ps],
        )
        .await?;
    let mut out: HashMap<u32, Vec<CheckRow>> = partitions.iter().map(|p| (*p, Vec::new())).collect();
    for row in rows {
        let partition = row.get::<_, i32>(0) as u32;
        out.entry(partition).or_default().push(CheckRow {
            id: row.get(1),
            name: row.get(2),
            interval_ms: row.get::<_, i32>(3) as i64,
            version: row.get(4),
            spec_json: row.get(5),
        });
    }
    Ok(out)
}

/// The partition count fixed at install.
pub async fn partition_count(client: &impl GenericClient) -> Result<Option<u32>, tokio_postgres::Error> {
    let row = client.query_opt("SELECT partitions FROM cluster", &[]).await?;
    Ok(row.map(|r| r.get::<_, i32>(0) as u32))
}

/// A fingerprint of each partition's enabled checks (their ids and
/// versions), so the periodic fallback reload only reads partitions that
/// changed behind our back. Empty partitions read "0:0".
pub async fn fingerprints(
    client: &impl GenericClient,
    partitions: &[u32],
) -> Result<HashMap<u32, String>, tokio_postgres::Error> {
    let ps: Vec<i32> = partitions.iter().map(|p| *p as i32).collect();
    let rows = client
        .query(
            "SELECT partition,
                    count(*)::text || ':' || sum(hashtextextended(id::text || ':' || version::text, 0)::numeric)::text
               FROM checks WHERE partition = ANY($1) AND enabled GROUP BY partition",
            &[&ps],
        )
        .await?;
    let mut out: HashMap<u32, String> = partitions.iter().map(|p| (*p, "0:0".to_string())).collect();
    for row in rows {
        out.insert(row.get::<_, i32>(0) as u32, row.get(1));
    }
    Ok(out)
}
