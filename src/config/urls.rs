//! Parsing the two connection URLs of the configuration (`database_url`,
//! `amqp_url`) without connecting. They live here, below `db` and `queue`,
//! so that validating a configuration needs neither of them.

use std::str::FromStr;

use tokio_postgres::config::Host;

/// A connection URL that does not parse; the text never echoes the input,
/// which may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("invalid PostgreSQL URL: {0}")]
    Database(String),
    #[error("invalid AMQP URL: {0}")]
    Amqp(String),
}

/// Parses and sanity-checks a database URL without connecting.
pub fn parse_database_url(url: &str) -> Result<tokio_postgres::Config, UrlError> {
    // tokio-postgres errors do not echo the input, so no password leaks here.
    let config = tokio_postgres::Config::from_str(&verify_modes_as_require(url))
        .map_err(|e| UrlError::Database(e.to_string()))?;
    if config.get_hosts().is_empty() {
        return Err(UrlError::Database("no host given".into()));
    }
    if config.get_dbname().is_none() {
        return Err(UrlError::Database("no database name given".into()));
    }
    Ok(config)
}

/// libpq's `sslmode=verify-full` and `verify-ca`, which cloud providers'
/// guides recommend, are what `require` already does here (the certificate
/// and the name are always verified), but tokio-postgres rejects the words.
fn verify_modes_as_require(url: &str) -> String {
    url.replace("sslmode=verify-full", "sslmode=require").replace("sslmode=verify-ca", "sslmode=require")
}

/// "host:port/dbname" of a connection config: what error messages name.
pub fn describe_database(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "?".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}

/// A parsed `amqp://user:password@host:port/vhost` URL.
///
/// Parsed with `url` instead of amqprs' `urispec` feature, which panics on
/// a query parameter without `=`; configuration must never crash us.
#[derive(Clone)]
pub struct AmqpTarget {
    pub host: String,
    pub port: u16,
    pub vhost: String,
    pub username: String,
    password: String,
}

impl std::fmt::Debug for AmqpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}

impl AmqpTarget {
    pub fn parse(input: &str) -> Result<AmqpTarget, UrlError> {
        let url = url::Url::parse(input).map_err(|e| UrlError::Amqp(e.to_string()))?;
        if url.scheme() != "amqp" {
            return Err(UrlError::Amqp(format!("scheme \"{}\" is not supported, use amqp://", url.scheme())));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| UrlError::Amqp("no host given".into()))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|d| d.into_owned())
                .map_err(|_| UrlError::Amqp("invalid percent-encoding".into()))
        };
        let username = if url.username().is_empty() { "guest".to_string() } else { decode(url.username())? };
        let password = match url.password() {
            Some(p) => decode(p)?,
            None => "guest".to_string(),
        };
        let path = url.path().trim_start_matches('/');
        let vhost = if path.is_empty() { "/".to_string() } else { decode(path)? };
        Ok(AmqpTarget { host, port: url.port().unwrap_or(5672), vhost, username, password })
    }

    /// "host:port vhost /" — safe to log, no credentials.
    pub fn describe(&self) -> String {
        format!("{}:{} (vhost {})", self.host, self.port, self.vhost)
    }

    /// The password, for opening a connection; never printed.
    pub fn password(&self) -> &str {
        &self.password
    }
}
