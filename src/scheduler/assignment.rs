//! Which live member should own each partition.
//!
//! With shard ordinals (StatefulSet), partition `p` prefers the member with
//! ordinal `p mod N`, like Argo CD's controller sharding: an even, stable
//! split that an operator can predict. When that member is not live, or
//! without ordinals, rendezvous hashing over the live members picks one:
//! deterministic on every member, and when membership changes only the
//! partitions of the member that left (or now prefer the one that joined)
//! move.

/// A live scheduler, as read from `scheduler_members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub ordinal: Option<u32>,
    /// The replica count this member was started with (`--shards`).
    pub shards: Option<u32>,
}

/// The replica count every member uses for the ordinal preference: the
/// largest any live member was started with. During a rolling change of
/// `--shards` members briefly disagree; judging each partition by its own
/// flag, a member could want a partition only another member would claim,
/// and the partition would be owned by nobody. One shared N keeps every
/// member's answer the same.
pub fn cluster_shards(members: &[Member]) -> Option<u32> {
    members.iter().filter_map(|m| m.shards).max()
}

/// FNV-1a over the member id and the partition, then mixed: stable across
/// processes, versions and machines.
fn score(member: &str, partition: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in member.bytes().chain(partition.to_le_bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    super::slots::mix64(h)
}

/// The member that should own `partition`, or `None` with no live member.
/// `shards` is this member's view of the replica count (`--shards`).
pub fn desired_owner(partition: u32, members: &[Member], shards: Option<u32>) -> Option<&str> {
    if let Some(n) = shards.filter(|n| *n > 0) {
        let preferred = partition % n;
        if let Some(m) = members.iter().find(|m| m.ordinal == Some(preferred)) {
            return Some(&m.id);
        }
    }
    members
        .iter()
        .max_by(|a, b| score(&a.id, partition).cmp(&score(&b.id, partition)).then_with(|| a.id.cmp(&b.id)))
        .map(|m| m.id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sharded(n: u32) -> Vec<Member> {
        (0..n)
            .map(|i| Member { id: format!("sentryk8s-scheduler-{i}"), ordinal: Some(i), shards: Some(n) })
            .collect()
    }

    fn owners(partitions: u32, members: &[Member], shards: Option<u32>) -> Vec<Option<String>> {
        (0..partitions).map(|p| desired_owner(p, members, shards).map(str::to_string)).collect()
    }

    #[test]
    fn preferred_shard_owns_p_mod_n() {
        let m = sharded(3);
        for p in 0..256 {
            assert_eq!(
                desired_owner(p, &m, Some(3)),
                Some(format!("sentryk8s-scheduler-{}", p % 3).as_str())
            );
        }
        assert_eq!(desired_owner(0, &[], Some(3)), None);
    }

    #[test]
    fn a_dead_shards_partitions_spread_over_survivors() {
        let all = sharded(3);
        let survivors: Vec<Member> = all.iter().filter(|m| m.ordinal != Some(1)).cloned().collect();
        let mut counts = std::collections::HashMap::new();
        for p in 0..256u32 {
            let owner = desired_owner(p, &survivors, Some(3)).unwrap();
            if p % 3 != 1 {
                assert_eq!(owner, format!("sentryk8s-scheduler-{}", p % 3), "untouched partitions stay");
            } else {
                *counts.entry(owner.to_string()).or_insert(0) += 1;
            }
        }
        assert_eq!(counts.len(), 2, "both survivors take some: {counts:?}");
        assert!(counts.values().all(|c| *c > 20), "{counts:?}");
    }

    #[test]
    fn members_agree_while_shards_roll_from_two_to_three() {
        // 0 and 1 still run with --shards 2; 2 already with --shards 3.
        let mut members = sharded(3);
        members[0].shards = Some(2);
        members[1].shards = Some(2);
        assert_eq!(cluster_shards(&members), Some(3));
        for p in 0..64 {
            assert_eq!(
                desired_owner(p, &members, cluster_shards(&members)),
                Some(format!("sentryk8s-scheduler-{}", p % 3).as_str())
            );
        }
    }

    proptest! {
        #[test]
        fn stable_and_minimal_under_membership_change(
            ids in proptest::collection::btree_set("[a-z]{1,8}-[0-9a-f]{4}", 2..8),
            leaver in 0usize..8,
        ) {
            let members: Vec<Member> = ids.iter().map(|id| Member { id: id.clone(), ordinal: None, shards: None }).collect();
            let before = owners(128, &members, None);
            // Deterministic: the same membership, in any order, gives the same answer.
            let mut reversed = members.clone();
            reversed.reverse();
            prop_assert_eq!(&before, &owners(128, &reversed, None));
            // A member leaves: only its partitions move.
            let gone = members[leaver % members.len()].id.clone();
            let rest: Vec<Member> = members.iter().filter(|m| m.id != gone).cloned().collect();
            let after = owners(128, &rest, None);
            for (b, a) in before.iter().zip(after.iter()) {
                if b.as_deref() != Some(gone.as_str()) {
                    prop_assert_eq!(b, a);
                }
            }
            // It comes back: exactly the old assignment again.
            prop_assert_eq!(&before, &owners(128, &members, None));
        }
    }
}
