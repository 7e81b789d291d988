//! Name resolution for every outbound connection, with a deadline.
//!
//! Today this is the system resolver (`getaddrinfo` on tokio's blocking
//! pool), as the checks have always used it; an asynchronous resolver is a
//! later change and would slot in here. Every caller resolves under the
//! one deadline that covers its whole exchange (a check's timeout, an alert
//! attempt's `alerts.send_timeout`), so [`lookup`] adds no timer of its
//! own: a separate timer for resolution would let resolution and the rest
//! each take the full time, and the sum outlast what the caller promised.
//!
//! The addresses returned are not yet judged by the deny list: the caller
//! filters them (`net::deny`) right before connecting, so what is judged is
//! exactly what is connected to.

use std::net::SocketAddr;

/// Why a name gave no address to connect to. The texts are stored as
/// results' and deliveries' error messages.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The resolver failed (no such name, no DNS server, …).
    #[error("cannot resolve {name}: {source}")]
    Failed {
        name: String,
        #[source]
        source: std::io::Error,
    },
    /// The name exists but has no address.
    #[error("{name} has no address")]
    NoAddress { name: String },
}

/// Resolves `name` to the addresses of `port`, under the caller's deadline.
/// Never empty when `Ok`.
pub async fn lookup(name: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
        .await
        .map_err(|source| ResolveError::Failed { name: name.to_string(), source })?
        .collect();
    if addresses.is_empty() {
        return Err(ResolveError::NoAddress { name: name.to_string() });
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_a_literal_and_words_its_errors() {
        let found = lookup("127.0.0.1", 80).await.unwrap();
        assert_eq!(found, vec!["127.0.0.1:80".parse::<SocketAddr>().unwrap()]);
        let no_address = ResolveError::NoAddress { name: "a.test".into() };
        assert_eq!(no_address.to_string(), "a.test has no address");
    }
}
