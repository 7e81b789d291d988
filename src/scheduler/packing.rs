//! How due slots become job messages, pure: which slots share a message
//! ([`pack`]) and what the message says ([`build`]).
//!
//! The broker's cost is per message, so with `scheduler.slots_per_message`
//! = n > 1 the slots one partition has due in one dispatch round (or waiting
//! for a republish) go out in messages of at most n slots, job format 3
//! (`model::job::batch`). One partition per message: a partition's jobs go
//! to one queue (`Topology::routing_key`), and its watermark and lease are
//! judged per partition. With n = 1 the message is exactly the one-slot
//! message of before (format 1 or 2), which workers from before format 3
//! read: the setting for a rolling upgrade.

use super::schedule::PartitionSchedule;
use crate::model::job::{batch_message_id, encode_batch, message_id_at};

/// A (slot, check) key, as the ledger keys slots.
pub type Key = (i64, i64);

/// Groups `slots` (partition, key) into messages: per partition, oldest
/// slot first (then by check), at most `per_message` keys each. Partitions
/// come in the order they first appear.
pub fn pack(slots: impl IntoIterator<Item = (u32, Key)>, per_message: usize) -> Vec<(u32, Vec<Key>)> {
    let per_message = per_message.max(1);
    let mut order: Vec<u32> = Vec::new();
    let mut by_partition: std::collections::HashMap<u32, Vec<Key>> = std::collections::HashMap::new();
    for (partition, key) in slots {
        by_partition
            .entry(partition)
            .or_insert_with(|| {
                order.push(partition);
                Vec::new()
            })
            .push(key);
    }
    let mut messages = Vec::new();
    for partition in order {
        let Some(mut keys) = by_partition.remove(&partition) else { continue };
        keys.sort_unstable();
        keys.dedup();
        for chunk in keys.chunks(per_message) {
            messages.push((partition, chunk.to_vec()));
        }
    }
    messages
}

/// A job message ready to publish, and the slots it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The AMQP `message_id`: the first slot's `<check>:<slot ms>`, plus
    /// `+<count>` for a version-3 message.
    pub id: String,
    pub body: Vec<u8>,
    pub keys: Vec<Key>,
}

/// The message of `keys` (one partition's, at most `per_message` of them)
/// from `schedule`, and the keys whose check is gone (deleted since they
/// were handed out: nothing to run, nothing to record). `None` when every
/// check is gone.
pub fn build(schedule: &PartitionSchedule, keys: &[Key], per_message: usize) -> (Option<Message>, Vec<Key>) {
    let mut gone = Vec::new();
    if per_message <= 1 {
        // The format of before: one slot, version 1 or 2 by kind. `pack`
        // hands one key per message here.
        let Some(&(slot, check_id)) = keys.first() else { return (None, gone) };
        return match schedule.message(check_id, slot) {
            Some(body) => (
                Some(Message { id: message_id_at(check_id, slot), body, keys: vec![(slot, check_id)] }),
                gone,
            ),
            None => (None, vec![(slot, check_id)]),
        };
    }
    let mut bodies = Vec::with_capacity(keys.len());
    let mut kept = Vec::with_capacity(keys.len());
    for &(slot, check_id) in keys {
        match schedule.batch_slot(check_id, slot) {
            Some(body) => {
                bodies.push(body);
                kept.push((slot, check_id));
            }
            None => gone.push((slot, check_id)),
        }
    }
    let message = kept.first().copied().map(|(slot, check_id)| Message {
        id: batch_message_id(check_id, slot, kept.len()),
        body: encode_batch(&bodies),
        keys: kept,
    });
    (message, gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::job::{parse_message_id, CheckJob, JobMessage};
    use crate::scheduler::schedule::CheckRow;

    const T0: i64 = 1_700_000_000_000;

    fn row(id: i64, spec_json: &str) -> CheckRow {
        CheckRow { id, name: format!("c{id}"), interval_ms: 1000, version: 2, spec_json: spec_json.into() }
    }

    const HTTP: &str = r#"{"url":"http://127.0.0.1:1/","timeout_ms":500}"#;
    const TCP: &str = r#"{"kind":"tcp","url":"tcp://127.0.0.1:1","timeout_ms":500}"#;

    fn schedule() -> PartitionSchedule {
        PartitionSchedule::load(vec![row(1, HTTP), row(2, TCP), row(3, HTTP)], T0)
    }

    #[test]
    fn slots_are_grouped_per_partition_oldest_first_and_bounded() {
        let slots = [
            (5, (T0 + 300, 1)),
            (2, (T0 + 100, 9)),
            (5, (T0 + 100, 2)),
            (5, (T0 + 100, 1)),
            (2, (T0 + 50, 4)),
            (5, (T0 + 200, 7)),
            (5, (T0 + 400, 8)),
        ];
        let messages = pack(slots, 3);
        assert_eq!(
            messages,
            vec![
                (5, vec![(T0 + 100, 1), (T0 + 100, 2), (T0 + 200, 7)]),
                (5, vec![(T0 + 300, 1), (T0 + 400, 8)]),
                (2, vec![(T0 + 50, 4), (T0 + 100, 9)]),
            ]
        );
        // One per message: every slot alone, still oldest first.
        let ones = pack(slots, 1);
        assert_eq!(ones.len(), slots.len());
        assert!(ones.iter().all(|(_, keys)| keys.len() == 1));
        assert_eq!(ones[0], (5, vec![(T0 + 100, 1)]));
        // Nothing due, no message; a bound of 0 is taken as 1.
        assert!(pack(std::iter::empty(), 32).is_empty());
        assert_eq!(pack([(1, (T0, 1)), (1, (T0, 2))], 0).len(), 2);
    }

    proptest::proptest! {
        /// Whatever the slots and the bound: every slot in exactly one
        /// message, of its partition, at most `per` per message, each
        /// message oldest first and older than the next of its partition.
        #[test]
        fn packing_keeps_every_slot_once_within_the_bound(
            slots in proptest::collection::vec((0u32..4, 0i64..50, 1i64..6), 0..200),
            per in 1usize..40,
        ) {
            let input: Vec<(u32, Key)> = slots.iter().map(|(p, s, c)| (*p, (T0 + s * 100, *c))).collect();
            let messages = pack(input.clone(), per);
            let mut seen = std::collections::HashSet::new();
            let mut last: std::collections::HashMap<u32, Key> = std::collections::HashMap::new();
            for (partition, keys) in &messages {
                proptest::prop_assert!(!keys.is_empty() && keys.len() <= per);
                for key in keys {
                    proptest::prop_assert!(input.contains(&(*partition, *key)));
                    proptest::prop_assert!(seen.insert((*partition, *key)), "{:?} twice", key);
                    if let Some(before) = last.insert(*partition, *key) {
                        proptest::prop_assert!(before < *key, "out of order");
                    }
                }
            }
            let distinct: std::collections::HashSet<(u32, Key)> = input.into_iter().collect();
            proptest::prop_assert_eq!(seen.len(), distinct.len());
        }
    }

    #[test]
    fn several_per_message_build_a_version_3_message_whose_slots_decode() {
        let s = schedule();
        let keys = [(T0 + 100, 1), (T0 + 100, 2), (T0 + 200, 3)];
        let (message, gone) = build(&s, &keys, 32);
        let message = message.unwrap();
        assert!(gone.is_empty());
        assert_eq!(message.id, format!("1:{}+3", T0 + 100));
        assert_eq!(parse_message_id(&message.id), Some((1, T0 + 100)));
        assert_eq!(message.keys, keys.to_vec());
        let JobMessage::Batch(slots) = JobMessage::decode(&message.body).unwrap() else { panic!("not v3") };
        let decoded: Vec<(i64, i64, u32)> = slots
            .iter()
            .map(|j| {
                let j = j.as_ref().unwrap();
                (j.slot.timestamp_millis(), j.check_id, j.v)
            })
            .collect();
        assert_eq!(decoded, vec![(T0 + 100, 1, 3), (T0 + 100, 2, 3), (T0 + 200, 3, 3)]);
        // A message of one slot is still version 3 when batching is on.
        let (one, _) = build(&s, &[(T0, 2)], 32);
        assert!(
            matches!(JobMessage::decode(&one.unwrap().body).unwrap(), JobMessage::Batch(b) if b.len() == 1)
        );
    }

    #[test]
    fn deleted_checks_leave_the_message_and_are_reported_gone() {
        let s = schedule();
        let (message, gone) = build(&s, &[(T0 + 100, 9), (T0 + 100, 2), (T0 + 200, 8)], 32);
        let message = message.unwrap();
        assert_eq!(gone, vec![(T0 + 100, 9), (T0 + 200, 8)]);
        assert_eq!(message.keys, vec![(T0 + 100, 2)]);
        assert_eq!(message.id, format!("2:{}+1", T0 + 100), "named by its first kept slot");
        let (none, gone) = build(&s, &[(T0, 9)], 32);
        assert_eq!((none, gone), (None, vec![(T0, 9)]));
        let (none, gone) = build(&s, &[(T0, 9)], 1);
        assert_eq!((none, gone), (None, vec![(T0, 9)]));
    }

    #[test]
    fn one_per_message_publishes_the_old_one_slot_messages_byte_for_byte() {
        let s = schedule();
        for (check_id, v) in [(1, 1), (2, 2), (3, 1)] {
            let slot = T0 + 1000 * check_id;
            let (message, gone) = build(&s, &[(slot, check_id)], 1);
            let message = message.unwrap();
            assert!(gone.is_empty());
            // The very bytes and id of before batching.
            let name = crate::model::job::quote_name(&format!("c{check_id}"));
            let spec = if check_id == 2 { TCP } else { HTTP };
            let before = crate::model::job::encode_prepared(
                crate::model::job::version_of_spec_json(spec.as_bytes()),
                check_id,
                1000,
                2,
                name.as_bytes(),
                spec.as_bytes(),
                slot,
            );
            assert_eq!(message.body, before);
            assert_eq!(message.body, s.message(check_id, slot).unwrap());
            assert_eq!(message.id, format!("{check_id}:{slot}"));
            let job = CheckJob::decode(&message.body).unwrap();
            assert_eq!((job.v, job.check_id, job.slot.timestamp_millis()), (v, check_id, slot));
        }
    }
}
