//! Reaching a host and port for the check kinds that speak their own
//! protocol (TCP, TLS, gRPC, DNS, ICMP): resolve the name, judge every
//! address by the deny list, and connect to the first that accepts, each
//! phase timed into the caller's [`Progress`] under its deadline.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;
use tokio::time::Instant;
use url::{Host, Url};

use super::connect::connect_any;
use super::deny::{self, DenyList};
use super::http::{Failure, Phase, Progress};
use super::resolve;
use crate::model::ErrorClass;

/// The host of a check's URL and its port (`default_port` when the URL
/// has none).
pub fn host_port(url: &str, default_port: u16) -> Result<(Host<String>, u16), Failure> {
    let url = Url::parse(url).map_err(|e| Failure::new(ErrorClass::Protocol, format!("invalid URL: {e}")))?;
    let host = url.host().ok_or_else(|| Failure::new(ErrorClass::Protocol, "URL has no host"))?.to_owned();
    // Hosts of schemes the URL standard does not know (tcp://, dns://)
    // stay opaque text: an IPv4 literal there is still an address.
    let host = match host {
        Host::Domain(d) => match d.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => Host::Ipv4(ip),
            Ok(IpAddr::V6(ip)) => Host::Ipv6(ip),
            Err(_) => Host::Domain(d),
        },
        other => other,
    };
    Ok((host, url.port().unwrap_or(default_port)))
}

/// The host as TLS names it (SNI, certificate name), unless the check
/// sets `server_name`.
pub fn server_name(host: &Host<String>) -> String {
    match host {
        Host::Domain(d) => d.clone(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    }
}

/// The addresses of `host`, resolved (timed as `dns_ms`) and judged by
/// `deny`; never empty.
pub async fn resolve_allowed(
    host: &Host<String>,
    port: u16,
    deny: &DenyList,
    p: &mut Progress,
) -> Result<Vec<SocketAddr>, Failure> {
    p.phase = Phase::Dns;
    let addresses = match host {
        Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), port)],
        Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), port)],
        Host::Domain(name) => {
            let started = Instant::now();
            let resolved = resolve::lookup(name, port).await;
            p.timings.dns_ms = Some(ms_since(started));
            resolved.map_err(|e| Failure::new(ErrorClass::Dns, e.to_string()))?
        }
    };
    deny.filter(addresses)
        .map_err(|(ip, range)| Failure::new(ErrorClass::Blocked, deny::blocked_message(ip, &range)))
}

/// Resolves `host`, judges its addresses and connects to the first that
/// accepts (timed as `connect_ms`).
pub async fn dial(
    host: &Host<String>,
    port: u16,
    deny: &DenyList,
    p: &mut Progress,
) -> Result<TcpStream, Failure> {
    let addresses = resolve_allowed(host, port, deny, p).await?;
    p.phase = Phase::Connect;
    let started = Instant::now();
    let stream = connect_any(&addresses, p.deadline).await;
    p.timings.connect_ms = Some(ms_since(started));
    Ok(stream?)
}

/// Milliseconds since `since`, as results store them.
pub fn ms_since(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn dials_and_times_the_phases_and_honours_the_deny_list() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (host, port) = host_port(&format!("tcp://127.0.0.1:{port}"), 1).unwrap();
        let mut p = Progress::new(Instant::now() + Duration::from_secs(2));
        dial(&host, port, &DenyList::default(), &mut p).await.unwrap();
        assert!(p.timings.connect_ms.is_some() && p.timings.dns_ms.is_none(), "{:?}", p.timings);
        let deny = DenyList::parse(&["127.0.0.0/8".to_string()]).unwrap();
        let blocked = dial(&host, port, &deny, &mut p).await.unwrap_err();
        assert_eq!(blocked.class, ErrorClass::Blocked);
        let (localhost, _) = host_port("icmp://localhost", 0).unwrap();
        assert_eq!(server_name(&localhost), "localhost");
        assert_eq!(host_port("tcp://10.1.2.3:9", 0).unwrap().0, Host::<String>::Ipv4([10, 1, 2, 3].into()));
        let (v6, port) = host_port("tcp://[::1]:7", 0).unwrap();
        assert_eq!((server_name(&v6).as_str(), port), ("::1", 7));
    }
}
