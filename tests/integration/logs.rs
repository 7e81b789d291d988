//! No log filter turns on the database driver's statement-parameter
//! logging: `checks apply` through the real binary, against a real
//! PostgreSQL, binds a check spec holding a secret header value, under
//! `RUST_LOG` values that ask tokio-postgres for everything. The secret
//! must appear nowhere in the output, while our own debug lines do (so the
//! filter really was that verbose).

use crate::checks_cli::{sentryk8s, temp_dir};
use crate::support::TestDb;

const SECRET: &str = "hdr-Lg42-SECRET";

#[tokio::test]
async fn no_rust_log_value_logs_statement_parameters() {
    let db = TestDb::migrated(4).await;
    let dir = temp_dir();

    for (i, filter) in
        ["trace", "tokio_postgres=trace", "debug,tokio_postgres::query=trace", "trace,tokio_postgres=trace"]
            .into_iter()
            .enumerate()
    {
        // A literal value, not `${VAR}`: what is tested is the driver's
        // logging of the bound spec, not environment expansion. A new name
        // each run, so every run inserts (binds the spec) again.
        let file = format!(
            "checks:\n  - name: private{i}\n    url: http://127.0.0.1:18080/\n    interval: 30s\n    headers:\n      X-Api-Key: \"{SECRET}\"\n"
        );
        std::fs::write(dir.join("checks.yaml"), file).unwrap();
        let run = sentryk8s(
            Some(&db),
            &dir,
            &["checks", "apply", "-f", "checks.yaml"],
            &[("RUST_LOG", filter)],
            "",
        );
        assert_eq!(run.code, Some(0), "RUST_LOG={filter}\n{}", run.all());
        assert!(!run.all().contains(SECRET), "RUST_LOG={filter} logged the secret:\n{}", run.all());
        if filter.starts_with("trace") || filter.starts_with("debug") {
            assert!(
                run.stderr.contains("DEBUG") || run.stderr.contains("TRACE"),
                "RUST_LOG={filter} logged nothing below info\n{}",
                run.all()
            );
        }
    }
    let client = db.client().await;
    let stored = client
        .query_one("SELECT count(*) FROM checks WHERE spec::text LIKE $1", &[&format!("%{SECRET}%")])
        .await
        .unwrap();
    assert_eq!(stored.get::<_, i64>(0), 4, "the spec holding the secret was written (bound) each time");
}
