//! Name resolution for every outbound connection, with a deadline.
//!
//! Resolution is asynchronous (hickory-resolver's stub resolver on the
//! tokio runtime): a lookup is a future and some UDP/TCP sockets, never a
//! thread. Every caller resolves under the one deadline that covers its
//! whole exchange (a check's timeout, an alert attempt's
//! `alerts.send_timeout`) and drops the lookup when it passes, which ends
//! it. `getaddrinfo` on tokio's blocking pool, used before, could not be
//! cancelled: a name whose DNS servers never answer held a pool thread for
//! the system resolver's own timeouts, well after its check had ended, and
//! enough of them left every other tenant's lookups queuing for a thread.
//! [`lookup`] adds no timer of its own either: a separate timer for
//! resolution would let resolution and the rest each take the full time.
//!
//! It reads what the system resolver reads: the servers, search list,
//! `ndots`, `timeout` and `attempts` of `/etc/resolv.conf`, and
//! `/etc/hosts` first. Like glibc (`hosts: files dns`), a name listed in
//! `/etc/hosts` is answered from it alone, so `localhost` never waits for
//! a DNS server; IP literals need no resolution at all.
//!
//! Both files are read once, on first use. Tests point a [`Resolver`] at
//! servers of their own with [`Resolver::with_servers`] and run their
//! checks inside [`scoped`].
//!
//! The addresses returned are not yet judged by the deny list: the caller
//! filters them (`net::deny`) right before connecting, so what is judged is
//! exactly what is connected to.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::op::Query;
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::{Hosts, TokioResolver};

/// Why a name gave no address to connect to. The texts are stored as
/// results' and deliveries' error messages.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The resolver failed (no such name, no DNS server, …).
    #[error("cannot resolve {name}: {reason}")]
    Failed { name: String, reason: String },
    /// The name exists but has no address.
    #[error("{name} has no address")]
    NoAddress { name: String },
}

/// A resolver: DNS servers and options, and the hosts file read before
/// them. Cheap to clone (the cache and connections are shared).
#[derive(Clone)]
pub struct Resolver {
    /// The DNS, or why there is none (the system configuration could not
    /// be read): every lookup the hosts file does not answer fails with it.
    dns: Result<TokioResolver, Arc<str>>,
    hosts: Arc<Hosts>,
}

impl Resolver {
    /// The system's resolver: `/etc/resolv.conf` for servers and options,
    /// `/etc/hosts` first. A missing or unreadable `/etc/resolv.conf`
    /// leaves the hosts file and IP literals working, and every other
    /// lookup fails with the reason.
    pub fn system() -> Resolver {
        let config = hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| format!("cannot read /etc/resolv.conf: {e}"));
        let resolver = Resolver::build(config);
        if let Err(why) = &resolver.dns {
            tracing::warn!(error = %why, "name resolution uses /etc/hosts only");
        }
        resolver
    }

    /// A resolver asking only `servers` (UDP, then TCP for truncated
    /// answers), with the system's hosts file and the default options
    /// (5 s per query, 2 attempts). For tests, and for a caller that must
    /// not use `/etc/resolv.conf`.
    pub fn with_servers(servers: &[SocketAddr]) -> Resolver {
        let name_servers = servers
            .iter()
            .map(|server| {
                let connection = |protocol| {
                    let mut c = ConnectionConfig::new(protocol);
                    c.port = server.port();
                    c
                };
                NameServerConfig::new(
                    server.ip(),
                    true,
                    vec![connection(ProtocolConfig::Udp), connection(ProtocolConfig::Tcp)],
                )
            })
            .collect();
        Resolver::build(Ok((ResolverConfig::from_name_servers(name_servers), ResolverOpts::default())))
    }

    fn build(config: Result<(ResolverConfig, ResolverOpts), String>) -> Resolver {
        let hosts = Arc::new(Hosts::from_system().unwrap_or_default());
        let dns = config.and_then(|(config, options)| {
            let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
            *builder.options_mut() = options;
            // The hosts file is consulted before the DNS, as a whole (see
            // `in_hosts_file`); hickory's own use of it would still ask the
            // DNS for the family the file does not list.
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            builder.build().map_err(|e| format!("cannot set up the resolver: {e}"))
        });
        Resolver { dns: dns.map_err(Arc::from), hosts }
    }

    /// Resolves `name` to the addresses of `port`. Never empty when `Ok`.
    /// Unbounded in time by itself: the caller's deadline drops it.
    pub async fn lookup(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
        let failed = |reason: String| ResolveError::Failed { name: name.to_string(), reason };
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let fqdn = Name::from_utf8(name).map_err(|e| failed(format!("not a valid host name ({e})")))?;
        if let Some(ips) = self.in_hosts_file(&fqdn) {
            return Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect());
        }
        let dns = self.dns.as_ref().map_err(|why| failed(why.to_string()))?;
        let found = dns.lookup_ip(name).await.map_err(|e| match describe(&e) {
            Some(reason) => failed(reason),
            None => ResolveError::NoAddress { name: name.to_string() },
        })?;
        let addresses: Vec<SocketAddr> = found.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        if addresses.is_empty() {
            return Err(ResolveError::NoAddress { name: name.to_string() });
        }
        Ok(addresses)
    }

    /// The addresses `/etc/hosts` lists for `name`, IPv6 first as the DNS
    /// answers are ordered; `None` when it lists none.
    fn in_hosts_file(&self, name: &Name) -> Option<Vec<IpAddr>> {
        let mut ips = Vec::new();
        for kind in [RecordType::AAAA, RecordType::A] {
            if let Some(found) = self.hosts.lookup_static_host(&Query::query(name.clone(), kind)) {
                ips.extend(found.answers().iter().filter_map(|r| r.data.ip_addr()));
            }
        }
        (!ips.is_empty()).then_some(ips)
    }
}

/// What to say when hickory fails: the system resolver's words where they
/// exist, so stored results read as before. `None`: the name exists but
/// has no address.
fn describe(e: &NetError) -> Option<String> {
    if e.is_nx_domain() {
        return Some("Name or service not known".into());
    }
    if e.is_no_records_found() {
        return None;
    }
    Some(match e {
        NetError::Timeout => "no answer from the DNS servers (timed out)".into(),
        NetError::NoConnections => "no DNS server to ask".into(),
        other => other.to_string(),
    })
}

/// The process's resolver, from the system's files, built on first use.
fn shared() -> &'static Resolver {
    static SHARED: OnceLock<Resolver> = OnceLock::new();
    SHARED.get_or_init(Resolver::system)
}

tokio::task_local! {
    /// A resolver that replaces the process's for the futures run inside
    /// [`scoped`].
    static SCOPED: Resolver;
}

/// Runs `work` with every [`lookup`] made inside it (in the same task)
/// going to `resolver`: how a test points checks at DNS servers of its own
/// while other tests in the process keep the system's.
pub async fn scoped<F: Future>(resolver: Resolver, work: F) -> F::Output {
    SCOPED.scope(resolver, work).await
}

/// Resolves `name` to the addresses of `port`, under the caller's deadline.
/// Never empty when `Ok`.
pub async fn lookup(name: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
    match SCOPED.try_with(Resolver::clone) {
        Ok(resolver) => resolver.lookup(name, port).await,
        Err(_) => shared().lookup(name, port).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_literals_and_the_hosts_file_and_words_its_errors() {
        let found = lookup("127.0.0.1", 80).await.unwrap();
        assert_eq!(found, vec!["127.0.0.1:80".parse::<SocketAddr>().unwrap()]);
        let found = lookup("::1", 80).await.unwrap();
        assert_eq!(found, vec!["[::1]:80".parse::<SocketAddr>().unwrap()]);
        // No server at all: only /etc/hosts can answer `localhost`.
        let offline = Resolver::with_servers(&[]);
        let found = offline.lookup("localhost", 8080).await.unwrap();
        assert!(found.iter().all(|a| a.ip().is_loopback() && a.port() == 8080), "{found:?}");
        let error = offline.lookup("not-in-hosts.invalid", 80).await.unwrap_err().to_string();
        assert!(error.starts_with("cannot resolve not-in-hosts.invalid: "), "{error}");
        let no_address = ResolveError::NoAddress { name: "a.test".into() };
        assert_eq!(no_address.to_string(), "a.test has no address");
    }
}
