//! Where the target deny-list is enforced: a multi-tenant install must not
//! let a check probe the cloud metadata service or the cluster's private
//! network on someone's behalf.
//!
//! Checked after DNS resolution, on the exact addresses the worker is about
//! to connect to (every redirect hop included), so a name that resolves to
//! a denied address is blocked as surely as the address itself, and no
//! rebinding can slip between the check and the connect.
//!
//! An IPv6 address that carries an IPv4 address is judged as both: the
//! IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64
//! (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::/48`) forms reach the
//! IPv4 host they carry through the kernel, a NAT64 gateway or a 6to4 relay,
//! so writing `169.254.169.254` in one of them must not get past a rule
//! written for the IPv4 address. See docs/security.md.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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

    /// Whether `ip`, or the IPv4 address it carries (see [`embedded_ipv4`]),
    /// is in the range: `127.0.0.0/8` holds `64:ff9b::7f00:1`, and
    /// `2002::/16` still holds `2002:7f00:1::1` for an operator who denies
    /// the 6to4 range itself.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let carried = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.contains_exactly(ip) || carried.is_some_and(|v4| self.contains_exactly(v4))
    }

    /// Whether `ip` itself, in its own family, is in the range.
    fn contains_exactly(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
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

/// The IPv4 address an IPv6 address leads to, when it is one of the forms
/// that embed one:
/// - IPv4-mapped `::ffff:a.b.c.d` (`::ffff:0:0/96`): the socket is IPv4;
/// - IPv4-compatible `::a.b.c.d` (`::/96`, deprecated by RFC 4291 but still
///   routed by some stacks), except `::` and `::1`, which are the IPv6
///   unspecified and loopback addresses and are judged as themselves;
/// - NAT64 `64:ff9b::a.b.c.d` (`64:ff9b::/96`, RFC 6052): a NAT64 gateway
///   forwards it to the IPv4 host;
/// - 6to4 `2002:aabb:ccdd::/48` (`2002::/16`, RFC 3056): bits 16..48 are the
///   IPv4 address of the relay's far end.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from(bits as u32);
    match bits >> 32 {
        0xffff => Some(low32),
        0 if bits > 1 => Some(low32),
        0x0064_ff9b_0000_0000_0000_0000 => Some(low32),
        _ if bits >> 112 == 0x2002 => Some(Ipv4Addr::from((bits >> 80) as u32)),
        _ => None,
    }
}

/// Named sets an operator can list instead of writing ranges out.
const PRESETS: &[(&str, &[&str])] = &[
    // Instance metadata of AWS, GCP, Azure, OpenStack, Oracle (169.254.169.254) and AWS over IPv6;
    // Alibaba's (100.100.100.200); ECS task credentials (169.254.170.2); EKS Pod Identity
    // (169.254.170.23, fd00:ec2::23); Azure's WireServer (168.63.129.16), which hands out
    // VM extension settings and takes health reports.
    (
        "metadata",
        &[
            "169.254.169.254/32",
            "fd00:ec2::254/128",
            "100.100.100.200/32",
            "169.254.170.2/32",
            "169.254.170.23/32",
            "fd00:ec2::23/128",
            "168.63.129.16/32",
        ],
    ),
    ("link-local", &["169.254.0.0/16", "fe80::/10"]),
    ("private", &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"]),
    ("loopback", &["127.0.0.0/8", "::1/128"]),
];

/// "This host" in both families: `0.0.0.0/8` and `::/128`.
const UNSPECIFIED: &[IpRange] = &[
    IpRange { network: IpAddr::V4(Ipv4Addr::UNSPECIFIED), prefix: 8 },
    IpRange { network: IpAddr::V6(Ipv6Addr::UNSPECIFIED), prefix: 128 },
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

    /// The forms of one IPv4 address inside IPv6, by the rules of
    /// `embedded_ipv4`, written independently of it: (form, the IPv6 address).
    fn forms(v4: Ipv4Addr, suffix: u128) -> Vec<(&'static str, Ipv6Addr)> {
        let a = u32::from(v4) as u128;
        let mut forms = vec![
            ("mapped", Ipv6Addr::from(0xffff_0000_0000 | a)),
            ("nat64", Ipv6Addr::from((0x0064_ff9b_u128 << 96) | a)),
            ("6to4", Ipv6Addr::from((0x2002_u128 << 112) | (a << 80) | (suffix & ((1 << 80) - 1)))),
        ];
        if a > 1 {
            forms.push(("compatible", Ipv6Addr::from(a)));
        }
        forms
    }

    #[test]
    fn embedded_ipv4_addresses_are_found_in_each_form() {
        let v6 = |s: &str| -> Ipv6Addr { s.parse().unwrap() };
        let v4 = |s: &str| -> Option<Ipv4Addr> { Some(s.parse().unwrap()) };
        for (address, carried) in [
            ("::ffff:169.254.169.254", v4("169.254.169.254")),
            ("::169.254.169.254", v4("169.254.169.254")),
            ("::a9fe:a9fe", v4("169.254.169.254")),
            ("64:ff9b::a9fe:aa02", v4("169.254.170.2")),
            ("64:ff9b::127.0.0.1", v4("127.0.0.1")),
            ("2002:a9fe:a9fe::", v4("169.254.169.254")),
            ("2002:a83f:8110:1234:5678:9abc:def0:1", v4("168.63.129.16")),
            ("2002::", v4("0.0.0.0")),
            ("::2", v4("0.0.0.2")),
            // The IPv6 unspecified and loopback addresses are themselves.
            ("::", None),
            ("::1", None),
            // Near misses: other prefixes carry nothing.
            ("64:ff9b::1:a9fe:a9fe", None),
            ("64:ff9b:1::a9fe:a9fe", None),
            ("::fffe:a9fe:a9fe", None),
            ("::1:0:a9fe:a9fe", None),
            ("2003:a9fe:a9fe::", None),
            ("2001:db8::a9fe:a9fe", None),
            ("fd00:ec2::254", None),
            ("fe80::1", None),
        ] {
            assert_eq!(embedded_ipv4(v6(address)), carried, "{address}");
        }
    }

    #[test]
    fn every_form_of_a_metadata_endpoint_is_denied() {
        let list = DenyList::parse(&["metadata".into()]).unwrap();
        for endpoint in
            ["169.254.169.254", "169.254.170.2", "169.254.170.23", "168.63.129.16", "100.100.100.200"]
        {
            let v4: Ipv4Addr = endpoint.parse().unwrap();
            assert!(list.denies(IpAddr::V4(v4)).is_some(), "{endpoint}");
            for (form, v6) in forms(v4, 0x1234_5678) {
                let range = list.denies(IpAddr::V6(v6));
                assert_eq!(range.map(|r| r.to_string()), Some(format!("{endpoint}/32")), "{form} {v6}");
            }
        }
        for endpoint in ["fd00:ec2::254", "fd00:ec2::23"] {
            assert!(list.denies(ip(endpoint)).is_some(), "{endpoint}");
        }
        // Neighbours stay reachable: the presets are single addresses.
        for open in
            ["169.254.170.3", "168.63.129.17", "fd00:ec2::24", "64:ff9b::a9fe:aa03", "2002:a83f:8111::"]
        {
            assert!(list.denies(ip(open)).is_none(), "{open}");
        }
    }

    #[test]
    fn loopback_in_disguise_is_still_loopback() {
        let list = DenyList::parse(&["127.0.0.0/8".into()]).unwrap();
        for disguised in ["::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1"] {
            assert_eq!(list.denies(ip(disguised)).map(|r| r.to_string()).as_deref(), Some("127.0.0.0/8"));
        }
        // `::1` is IPv6 loopback, not 0.0.0.1: only an IPv6 rule (the loopback set) denies it.
        assert!(list.denies(ip("::1")).is_none());
        assert!(DenyList::parse(&["loopback".into()]).unwrap().denies(ip("::1")).is_some());
        // `::2` carries 0.0.0.2, "this host": closed with any list, like 0.0.0.2.
        assert!(list.denies(ip("::2")).is_some());
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let (denied, range) = list.filter(vec![a("[64:ff9b::7f00:1]:80")]).unwrap_err();
        assert_eq!(
            blocked_message(denied, &range),
            "blocked: 64:ff9b::7f00:1 is in 127.0.0.0/8, on the deny-list (worker.deny_targets); not connecting"
        );
    }

    #[test]
    fn the_translation_prefixes_can_be_denied_as_ranges() {
        let list = DenyList::parse(&["2002::/16".into(), "64:ff9b::/96".into()]).unwrap();
        assert!(list.denies(ip("2002:808:808::1")).is_some());
        assert!(list.denies(ip("64:ff9b::808:808")).is_some());
        assert!(list.denies(ip("8.8.8.8")).is_none(), "the IPv4 address itself is not in an IPv6 range");
        assert!(list.denies(ip("2001:4860:4860::8888")).is_none());
    }

    proptest::proptest! {
        /// Any IPv4 range judges every IPv6 form of an address exactly as
        /// it judges the address.
        #[test]
        fn forms_are_judged_as_their_ipv4_address(
            address: u32, network: u32, prefix in 0u8..=32, suffix: u128,
        ) {
            let v4 = Ipv4Addr::from(address);
            let range = IpRange { network: IpAddr::V4(Ipv4Addr::from(network)), prefix };
            for (form, v6) in forms(v4, suffix) {
                proptest::prop_assert_eq!(embedded_ipv4(v6), Some(v4), "{}", form);
                proptest::prop_assert_eq!(range.contains(IpAddr::V6(v6)), range.contains(IpAddr::V4(v4)), "{} {}", form, v6);
            }
        }

        /// An IPv6 address that carries no IPv4 address is never in an
        /// IPv4 range, and an IPv6 range judges any address by its own
        /// bits (a range always holds the addresses it was cut from).
        #[test]
        fn other_ipv6_addresses_are_judged_as_themselves(bits: u128, prefix in 0u8..=128, v4prefix in 0u8..=32) {
            let v6 = Ipv6Addr::from(bits);
            let everything = IpRange { network: IpAddr::V4(Ipv4Addr::UNSPECIFIED), prefix: 0 };
            proptest::prop_assert_eq!(everything.contains(IpAddr::V6(v6)), embedded_ipv4(v6).is_some());
            let own = IpRange { network: IpAddr::V6(v6), prefix };
            proptest::prop_assert!(own.contains(IpAddr::V6(v6)));
            if let Some(v4) = embedded_ipv4(v6) {
                let around = IpRange { network: IpAddr::V4(v4), prefix: v4prefix };
                proptest::prop_assert!(around.contains(IpAddr::V6(v6)));
            }
        }
    }
}
