//! Who this scheduler is: a member id, and with `--shard-from-hostname` the
//! shard ordinal taken from the pod name.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Unique among live members; a restarted StatefulSet pod keeps it.
    pub member_id: String,
    /// Shard ordinal (from the pod name), when sharding by hostname.
    pub ordinal: Option<u32>,
    /// Replica count the ordinal refers to.
    pub shards: Option<u32>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("--shard-from-hostname: host name \"{0}\" does not end in -<ordinal> (expected a StatefulSet pod name like sentryk8s-scheduler-2)")]
    NoOrdinal(String),
    #[error(
        "--shard-from-hostname: ordinal {ordinal} of host name \"{host}\" is not below --shards {shards}"
    )]
    OrdinalTooLarge { host: String, ordinal: u32, shards: u32 },
    #[error("--shard-from-hostname needs --shards (the replica count)")]
    NoShards,
    #[error("cannot tell the host name: set HOSTNAME")]
    NoHostname,
}

/// The host name: `HOSTNAME` (set by Kubernetes to the pod name), else the
/// kernel's.
pub fn hostname() -> Result<String, IdentityError> {
    if let Ok(h) = std::env::var("HOSTNAME") {
        if !h.trim().is_empty() {
            return Ok(h.trim().to_string());
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .ok_or(IdentityError::NoHostname)
}

/// `sentryk8s-scheduler-2` with `shards = 3` → member `sentryk8s-scheduler-2`, ordinal 2.
pub fn from_hostname(host: &str, shards: Option<u32>) -> Result<Identity, IdentityError> {
    let shards = shards.ok_or(IdentityError::NoShards)?;
    let ordinal = host
        .rsplit_once('-')
        .map(|(_, tail)| tail)
        .filter(|tail| !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|tail| tail.parse::<u32>().ok())
        .ok_or_else(|| IdentityError::NoOrdinal(host.to_string()))?;
    if ordinal >= shards {
        return Err(IdentityError::OrdinalTooLarge { host: host.to_string(), ordinal, shards });
    }
    Ok(Identity { member_id: host.to_string(), ordinal: Some(ordinal), shards: Some(shards) })
}

/// A member id unique to this process: host name plus a random suffix, so
/// two plain replicas on one host never collide.
pub fn generated(host: &str) -> Identity {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let suffix = super::slots::mix64(nanos ^ ((std::process::id() as u64) << 32));
    Identity { member_id: format!("{host}-{:08x}", suffix as u32), ordinal: None, shards: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_come_from_pod_names() {
        let id = from_hostname("sentryk8s-scheduler-2", Some(3)).unwrap();
        assert_eq!((id.ordinal, id.member_id.as_str()), (Some(2), "sentryk8s-scheduler-2"));
        assert_eq!(from_hostname("a-b-0", Some(1)).unwrap().ordinal, Some(0));
        for bad in ["sentryk8s-scheduler", "scheduler2", "x-", "x-1a", "x-+1", ""] {
            assert_eq!(from_hostname(bad, Some(3)), Err(IdentityError::NoOrdinal(bad.to_string())), "{bad}");
        }
        assert!(matches!(from_hostname("s-3", Some(3)), Err(IdentityError::OrdinalTooLarge { .. })));
        assert_eq!(from_hostname("s-1", None), Err(IdentityError::NoShards));
    }

    #[test]
    fn generated_ids_differ() {
        let a = generated("h");
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert_ne!(a.member_id, generated("h").member_id);
        assert!(a.ordinal.is_none());
    }
}
