//! PostgreSQL access: the connection pool, single connections that wait
//! for the server, and the readiness probe. URLs are parsed in
//! `config::urls`.
//!
//! Queries live in the store file of the module that owns their table
//! (`scheduler::store`, `worker::store`, …); this module only knows how to
//! reach the database.

pub mod listen;

use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::SslMode;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;

pub use crate::config::urls::{describe_database as describe_target, parse_database_url};
use crate::config::Config;
use crate::health::{BoxFuture, ReadinessProbe};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    InvalidUrl(#[from] crate::config::urls::UrlError),
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
    #[error("could not connect to PostgreSQL at {target} within {waited}: {cause}")]
    Unreachable { target: String, waited: String, cause: String },
    #[error("interrupted while waiting for PostgreSQL at {0}")]
    Interrupted(String),
    #[error("database.ca_file: {0}")]
    Tls(String),
}

/// The TLS connector of every PostgreSQL connection.
///
/// TLS is used when the URL says `sslmode=require`, and then the server's
/// certificate is verified (Mozilla's and the system's roots, plus
/// `database.ca_file`): stricter than libpq's `require`, which encrypts
/// without checking whom to. Without it the connection is plain, even
/// where libpq's default (`prefer`) would try TLS first: an opportunistic
/// handshake against a self-signed server certificate (Debian's default)
/// would fail instead of falling back.
pub fn tls(config: &Config) -> Result<MakeRustlsConnect, DbError> {
    let mut roots = crate::net::tls::trust_store();
    if let Some(path) = &config.database.ca_file {
        crate::net::tls::add_pem_file(&mut roots, path).map_err(DbError::Tls)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(client))
}

fn pg_config(config: &Config, application: &str) -> Result<tokio_postgres::Config, DbError> {
    let mut pg = parse_database_url(&config.database_url)?;
    pg.connect_timeout(config.database.connect_timeout);
    if pg.get_application_name().is_none() {
        pg.application_name(format!("sentryk8s-{application}"));
    }
    // A silently dead server (a node gone, a proxy that dropped us) must
    // fail the connection in seconds, not after the kernel's 15 minutes of
    // retransmissions: keepalives while idle, a user timeout while a
    // statement's bytes are unacknowledged.
    pg.keepalives(true);
    pg.keepalives_idle(Duration::from_secs(10));
    pg.keepalives_interval(Duration::from_secs(5));
    pg.keepalives_retries(3);
    pg.tcp_user_timeout(Duration::from_secs(30));
    if pg.get_ssl_mode() != SslMode::Require {
        pg.ssl_mode(SslMode::Disable);
    }
    Ok(pg)
}

/// Server-side limits for the long-running roles' connections, so a stuck
/// statement or a dead peer's open transaction cannot wedge the cluster: a
/// scheduler that died between a lease UPDATE and its COMMIT would otherwise
/// hold row locks (and block every other scheduler's claim) until the
/// server's own keepalive noticed, hours later.
///
/// `plan_cache_mode=force_custom_plan`: our statements are prepared once per
/// connection (`prepare_cached`) and most take an array of ids. After five
/// runs PostgreSQL may switch to a generic plan, costed with the table
/// statistics of that moment and an array of unknown length, and keep it
/// for the connection's life. A worker that started while `checks` was
/// nearly empty kept `Seq Scan … Filter: id = ANY($1)`: 88 ms per batch of
/// 500 ids at 50,000 checks, 0.2 of the 2 cores in the capacity bench
/// (docs/performance.md, "Where the CPU goes"). A custom plan costs about
/// 0.1 ms of planning per statement, a few statements per batch.
const ROLE_SESSION_LIMITS: &str = "-c lock_timeout=5s -c statement_timeout=60s \
     -c idle_in_transaction_session_timeout=30s -c plan_cache_mode=force_custom_plan";

/// Builds the pool; connections are opened lazily on first use.
///
/// `Verified` recycling costs one round trip per checkout, but a connection
/// hard-closed by a PostgreSQL restart is then replaced instead of failing
/// the first query after the restart.
pub fn pool(config: &Config, application: &str) -> Result<Pool, DbError> {
    let mut pg = pg_config(config, application)?;
    let options = match pg.get_options() {
        Some(own) => format!("{own} {ROLE_SESSION_LIMITS}"),
        None => ROLE_SESSION_LIMITS.to_string(),
    };
    pg.options(options);
    let manager =
        Manager::from_config(pg, tls(config)?, ManagerConfig { recycling_method: RecyclingMethod::Verified });
    let timeout = Some(config.database.connect_timeout);
    Pool::builder(manager)
        .max_size(config.database.pool_size as usize)
        .runtime(Runtime::Tokio1)
        .wait_timeout(timeout)
        .create_timeout(timeout)
        .recycle_timeout(timeout)
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// Opens one dedicated connection (migrations, LISTEN), retrying until
/// `wait` has passed. `wait = 0` tries once.
pub async fn connect_with_wait(
    config: &Config,
    application: &str,
    wait: Duration,
    shutdown: &CancellationToken,
) -> Result<Client, DbError> {
    let pg = pg_config(config, application)?;
    let tls = tls(config)?;
    let target = describe_target(&pg);
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        // connect_timeout bounds the TCP connect; this bounds the startup
        // handshake too, against a peer that accepts and then says nothing.
        let limit = config.database.connect_timeout;
        let attempt = tokio::select! {
            r = tokio::time::timeout(limit, pg.connect(tls.clone())) => r.map_err(|_| format!("no answer within {}", humantime::format_duration(limit))).and_then(|r| r.map_err(|e| error_chain(&e))),
            _ = shutdown.cancelled() => return Err(DbError::Interrupted(target)),
        };
        match attempt {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "PostgreSQL connection closed");
                    }
                });
                return Ok(client);
            }
            Err(e) => {
                let elapsed = started.elapsed();
                if elapsed >= wait {
                    return Err(DbError::Unreachable {
                        target,
                        waited: humantime::format_duration(round_ms(elapsed)).to_string(),
                        cause: e,
                    });
                }
                tracing::info!(%target, error = %e, "PostgreSQL not reachable yet, retrying");
                // The last attempt lands on the deadline, not after it.
                tokio::select! {
                    _ = tokio::time::sleep(delay.min(wait - elapsed)) => {}
                    _ = shutdown.cancelled() => return Err(DbError::Interrupted(target)),
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// The error and its causes on one line ("db error: …: connection refused").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Ready when the probe's own connection answers `SELECT 1` within two
/// seconds.
///
/// The pool must be the probe's own ([`PostgresProbe::dedicated`]), never
/// the role's: a probe that queues for the role's connections competes with
/// lease renewals and result writes, and reports the pool's congestion as
/// the database being down.
pub struct PostgresProbe(pub Pool);

impl PostgresProbe {
    /// A probe with a one-connection pool of its own, named
    /// `sentryk8s-<application>-readiness` in `pg_stat_activity`.
    pub fn dedicated(config: &Config, application: &str) -> Result<PostgresProbe, DbError> {
        let mut own = config.clone();
        own.database.pool_size = 1;
        Ok(PostgresProbe(pool(&own, &format!("{application}-readiness"))?))
    }
}
impl ReadinessProbe for PostgresProbe {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let attempt = async {
                let client = self.0.get().await.map_err(|e| error_chain(&e))?;
                client.simple_query("SELECT 1").await.map_err(|e| error_chain(&e))?;
                Ok::<(), String>(())
            };
            match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                Ok(result) => result,
                Err(_) => Err("no answer within 2s".into()),
            }
        })
    }
}
