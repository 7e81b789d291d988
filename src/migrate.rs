//! Embedded schema migrations.
//!
//! Applied in file-name order inside a PostgreSQL advisory lock (so three
//! `migrate` Jobs racing each other apply every file once), each in its own
//! transaction, recorded with a SHA-256 checksum. An applied file whose
//! checksum changed is refused: the database no longer matches the code.

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

/// Every migration, in order. `tests::embedded_list_matches_directory`
/// fails when a file is added to `migrations/` but not here.
pub const MIGRATIONS: &[Migration] = &[
    Migration { name: "0001_init.sql", sql: include_str!("../migrations/0001_init.sql") },
    Migration { name: "0002_alerting.sql", sql: include_str!("../migrations/0002_alerting.sql") },
    Migration {
        name: "0003_check_state_streak.sql",
        sql: include_str!("../migrations/0003_check_state_streak.sql"),
    },
    Migration { name: "0004_retention.sql", sql: include_str!("../migrations/0004_retention.sql") },
    Migration { name: "0005_history.sql", sql: include_str!("../migrations/0005_history.sql") },
    Migration { name: "0006_web.sql", sql: include_str!("../migrations/0006_web.sql") },
    Migration { name: "0007_rollup_totals.sql", sql: include_str!("../migrations/0007_rollup_totals.sql") },
    Migration { name: "0008_status_pages.sql", sql: include_str!("../migrations/0008_status_pages.sql") },
    Migration { name: "0009_web_sessions.sql", sql: include_str!("../migrations/0009_web_sessions.sql") },
    Migration { name: "0010_heartbeats.sql", sql: include_str!("../migrations/0010_heartbeats.sql") },
    Migration { name: "0011_kind_timings.sql", sql: include_str!("../migrations/0011_kind_timings.sql") },
];

/// Advisory lock key: "sentryk8s" in ASCII, so it is recognisable in pg_locks.
const LOCK_KEY: i64 = 0x73656e7472796b38;

#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    pub fn checksum(&self) -> String {
        hex(&Sha256::digest(self.sql.as_bytes()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migration {name} was edited after it was applied (checksum in database {applied}, file {file}); restore the original file and add a new migration instead")]
    Edited { name: String, applied: String, file: String },
    #[error("the database has migration {0} which this binary does not know: it was migrated by a newer version of sentryk8s")]
    Unknown(String),
    #[error("migration {name} failed: {cause}")]
    Failed { name: String, cause: String },
    #[error("database error: {0}")]
    Db(String),
}

fn db(e: tokio_postgres::Error) -> MigrateError {
    MigrateError::Db(crate::db::error_chain(&e))
}

/// What a run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Files applied by this run, in order.
    pub applied: Vec<String>,
    /// Files found already applied.
    pub already_applied: usize,
    /// Whether this run initialised the cluster row (first install).
    pub initialised_partitions: Option<u32>,
    /// Partition count stored in the database.
    pub partitions: u32,
}

/// Applies pending migrations and initialises the cluster constants.
pub async fn run(client: &mut Client, partitions: u32) -> Result<Report, MigrateError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY]).await.map_err(db)?;
    let result = run_locked(client, partitions).await;
    // Also released when the session ends, should this fail.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await;
    result
}

async fn run_locked(client: &mut Client, partitions: u32) -> Result<Report, MigrateError> {
    client
        .batch_execute(
            "SET client_min_messages TO warning;
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 name        text PRIMARY KEY,
                 checksum    text NOT NULL,
                 applied_at  timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(db)?;
    let rows =
        client.query("SELECT name, checksum FROM schema_migrations ORDER BY name", &[]).await.map_err(db)?;
    let applied: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();

    for (name, checksum) in &applied {
        match MIGRATIONS.iter().find(|m| m.name == name) {
            None => return Err(MigrateError::Unknown(name.clone())),
            Some(m) if &m.checksum() != checksum => {
                return Err(MigrateError::Edited {
                    name: name.clone(),
                    applied: checksum.clone(),
                    file: m.checksum(),
                })
            }
            Some(_) => {}
        }
    }

    let mut report = Report { already_applied: applied.len(), ..Report::default() };
    for migration in MIGRATIONS {
        if applied.iter().any(|(n, _)| n == migration.name) {
            continue;
        }
        let tx = client.transaction().await.map_err(db)?;
        tx.batch_execute(migration.sql).await.map_err(|e| MigrateError::Failed {
            name: migration.name.to_string(),
            cause: crate::db::error_chain(&e),
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
            &[&migration.name, &migration.checksum()],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        tracing::info!(migration = migration.name, "applied");
        report.applied.push(migration.name.to_string());
    }

    let tx = client.transaction().await.map_err(db)?;
    let inserted = tx
        .execute(
            "INSERT INTO cluster (partitions) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&(partitions as i32)],
        )
        .await
        .map_err(db)?;
    let stored: i32 = tx.query_one("SELECT partitions FROM cluster", &[]).await.map_err(db)?.get(0);
    tx.execute(
        "INSERT INTO partition_leases (partition) SELECT generate_series(0, $1 - 1) ON CONFLICT DO NOTHING",
        &[&stored],
    )
    .await
    .map_err(db)?;
    // Yesterday (late results near midnight) through a week ahead.
    tx.execute("SELECT sentryk8s_ensure_result_partitions((now() AT TIME ZONE 'UTC')::date - 1, 9)", &[])
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    if inserted == 1 {
        report.initialised_partitions = Some(stored as u32);
    } else if stored as u32 != partitions {
        tracing::warn!(
            configured = partitions,
            stored,
            "partitions is fixed at first install; the database's value is used"
        );
    }
    report.partitions = stored as u32;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_list_matches_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(files, embedded, "every file in migrations/ must be listed in MIGRATIONS, in order");
    }
}
