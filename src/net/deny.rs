//! Where the target deny-list is enforced: a multi-tenant install must not
//! let a check probe the cloud metadata service or the cluster's private
//! network on someone's behalf.
//!
//! Checked after DNS resolution, on the exact addresses the worker is about
//! to connect to (every redirect hop included), so a name that resolves to
//! a denied address is blocked as surely as the address itself, and no
//! rebinding can slip between the check and the connect. IPv4-mapped IPv6
//! addresses (`::ffff:169.254.169.254`) are judged as the IPv4 address they
//! are.

use std::net::{IpAddr, SocketAddr};

/// An address range: `169.254.0.0/16`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Parses `a.b.c.d/n`, `x::y/n` or a bare address.
    pub fn parse(text: &str) -> Result<IpRange, String> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let network: IpAddr =
            addr.parse().map_err(|_| format!("\"{text}\" is not an IP address or CIDR range"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("\"{text}\": the prefix length must be 0..={max}"))?,
            None => max,
        };
        Ok(IpRange { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `::ffff:a.b.c.d` is `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Named sets an operator can list instead of writing ranges out.
const PRESETS: &[(&str, &[&str])] = &[
    // AWS, GCP, Azure, OpenStack (169.254.169.254), AWS IPv6, Alibaba.
    ("metadata", &["169.254.169.254/32", "fd00:ec2::254/128", "100.100.100.200/32"]),
    ("link-local", &["169.254.0.0/16", "fe80::/10"]),
    ("private", &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"]),
    ("loopback", &["127.0.0.0/8", "::1/128"]),
];

/// "This host" in both families: `0.0.0.0/8` and `::/128`.
const UNSPECIFIED: &[IpRange] = &[
    IpRange { network: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), prefix: 8 },
    IpRange { network: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), prefix: 128 },
];

/// The configured deny-list (`worker.deny_targets`); empty means off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DenyList {
    ranges: Vec<IpRange>,
}

impl DenyList {
    /// Parses entries that are preset names or ranges; the error names the
    /// entry that is neither.
    pub fn parse(entries: &[String]) -> Result<DenyList, String> {
        let mut ranges = Vec::new();
        for entry in entries {
            match PRESETS.iter().find(|(name, _)| name == entry) {
                Some((_, members)) => {
                    for m in *members {
                        ranges.push(IpRange::parse(m)?);
                    }
                }
                None => ranges.push(IpRange::parse(entry).map_err(|e| {
                    let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
                    format!("{e}; or use one of the named sets: {}", names.join(", "))
                })?),
            }
        }
        Ok(DenyList { ranges })
    }

    /// The range that denies `ip`, if any. With any deny-list at all, the
    /// unspecified addresses (`0.0.0.0/8`, `::`) are denied too: Linux
    /// connects them to the local host, a back door into loopback.
    pub fn denies(&self, ip: IpAddr) -> Option<&IpRange> {
        if self.ranges.is_empty() {
            return None;
        }
        self.ranges.iter().chain(UNSPECIFIED.iter()).find(|r| r.contains(ip))
    }

    /// Keeps the allowed addresses. `Err` names the first denied address when
    /// none is left: the check must fail without connecting anywhere.
    pub fn filter(&self, addresses: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, (IpAddr, IpRange)> {
        if self.ranges.is_empty() {
            return Ok(addresses);
        }
        let mut first_denied = None;
        let allowed: Vec<SocketAddr> = addresses
            .into_iter()
            .filter(|a| match self.denies(a.ip()) {
                Some(range) => {
                    first_denied.get_or_insert((a.ip(), *range));
                    false
                }
                None => true,
            })
            .collect();
        match (allowed.is_empty(), first_denied) {
            (true, Some(denied)) => Err(denied),
            _ => Ok(allowed),
        }
    }
}

/// Why a connection was refused, as results and deliveries store it.
pub fn blocked_message(ip: IpAddr, range: &IpRange) -> String {
    format!("blocked: {ip} is in {range}, on the deny-list (worker.deny_targets); not connecting")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges() {
        let r = IpRange::parse("169.254.0.0/16").unwrap();
        assert!(r.contains(ip("169.254.169.254")));
        assert!(!r.contains(ip("169.255.0.1")));
        assert!(r.contains(ip("::ffff:169.254.169.254")), "IPv4-mapped IPv6 is the IPv4 address");
        assert!(IpRange::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(IpRange::parse("fd00::/8").unwrap().contains(ip("fd00:ec2::254")));
        assert!(IpRange::parse("10.0.0.1").unwrap().contains(ip("10.0.0.1")));
        assert!(!IpRange::parse("10.0.0.1").unwrap().contains(ip("10.0.0.2")));
        for bad in ["10.0.0.0/33", "fe80::/129", "nope", "10.0.0/8", "10.0.0.0/x"] {
            assert!(IpRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn presets_and_filtering() {
        let list = DenyList::parse(&["metadata".into(), "192.0.2.0/24".into()]).unwrap();
        assert!(list.denies(ip("169.254.169.254")).is_some());
        assert!(list.denies(ip("192.0.2.7")).is_some());
        assert!(list.denies(ip("169.254.1.1")).is_none(), "metadata is narrower than link-local");
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        assert_eq!(
            list.filter(vec![a("192.0.2.1:80"), a("198.51.100.1:80")]),
            Ok(vec![a("198.51.100.1:80")])
        );
        assert!(list.filter(vec![a("169.254.169.254:80")]).is_err());
        assert!(DenyList::parse(&["privat".into()]).unwrap_err().contains("named sets"));
        assert!(DenyList::default().filter(vec![a("169.254.169.254:80")]).is_ok(), "off by default");
        // Any list also closes the "this host" back door to loopback.
        assert!(list.denies(ip("0.0.0.0")).is_some() && list.denies(ip("0.1.2.3")).is_some());
        assert!(list.denies(ip("::")).is_some());
        assert!(DenyList::default().denies(ip("0.0.0.0")).is_none());
        let (ip, range) = list.filter(vec![a("169.254.169.254:80")]).unwrap_err();
        assert_eq!(
            blocked_message(ip, &range),
            "blocked: 169.254.169.254 is in 169.254.169.254/32, on the deny-list (worker.deny_targets); not connecting"
        );
    }
}
