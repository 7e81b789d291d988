//! Version 3 of the job message: one message, several due slots.
//!
//! The broker's cost is per message (publish, confirm, deliver, ack, and a
//! Raft entry in the quorum queue), not per byte, so the scheduler packs
//! the slots one partition has due in one dispatch round into one message
//! of at most `scheduler.slots_per_message` slots:
//!
//! ```text
//! {"v":3,"jobs":[{"v":3,"check_id":…,"interval_ms":…,"version":…,"name":…,"spec":…,"slot":"…"}, …]}
//! ```
//!
//! Each element is a [`CheckJob`] of version 3 (any kind). Everything is
//! still accounted per slot: one result row or missed record per
//! (check, slot), staleness judged per slot. An element that cannot be
//! read is refused on its own ([`SlotError`], recorded per slot when its
//! check and slot can be read); only an unreadable envelope dead-letters
//! the whole message.
//!
//! The AMQP `message_id` of a batch is its first slot's id plus `+<count>`
//! (`42:1764115200123+17`); [`super::parse_message_id`] reads the first
//! slot back, which is how the scheduler matches a returned message.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{message_id_at, CheckJob, DecodeError, JOB_SCHEMA_V1, JOB_SCHEMA_VERSION};

/// The schema version of a message carrying several slots.
pub const JOB_SCHEMA_BATCH: u32 = 3;

/// A message as a worker reads it.
#[derive(Debug)]
pub enum JobMessage {
    /// Version 1 or 2: one slot (boxed: a job is large, a batch is a `Vec`).
    One(Box<CheckJob>),
    /// Version 3: each slot, decoded on its own.
    Batch(Vec<Result<CheckJob, SlotError>>),
}

impl JobMessage {
    /// Reads any version this worker understands. An `Err` means the
    /// message as a whole cannot be read (dead-letter it); a bad slot
    /// inside a readable batch is an `Err` element of [`JobMessage::Batch`].
    pub fn decode(bytes: &[u8]) -> Result<JobMessage, DecodeError> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let version: Version = serde_json::from_slice(bytes)?;
        match version.v {
            JOB_SCHEMA_V1 | JOB_SCHEMA_VERSION => {
                CheckJob::decode(bytes).map(|job| JobMessage::One(Box::new(job)))
            }
            JOB_SCHEMA_BATCH => {
                #[derive(Deserialize)]
                struct Envelope<'a> {
                    #[serde(borrow)]
                    jobs: Vec<&'a RawValue>,
                }
                let envelope: Envelope = serde_json::from_slice(bytes)?;
                if envelope.jobs.is_empty() {
                    return Err(DecodeError::EmptyBatch);
                }
                Ok(JobMessage::Batch(envelope.jobs.into_iter().map(|raw| decode_slot(raw.get())).collect()))
            }
            other => Err(DecodeError::Version(other)),
        }
    }

    /// How many slots the message carries (readable or not).
    pub fn len(&self) -> usize {
        match self {
            JobMessage::One(_) => 1,
            JobMessage::Batch(slots) => slots.len(),
        }
    }

    /// Never true for a decoded message (an empty batch does not decode).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A slot of a batch that cannot be run. `check_id` and `slot` are set when
/// they could be read, so the slot can be recorded; `error` says what is
/// wrong without quoting values (a spec may hold secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotError {
    pub check_id: Option<i64>,
    pub slot: Option<DateTime<Utc>>,
    pub error: String,
}

/// One element of a batch: a version-3 [`CheckJob`].
fn decode_slot(text: &str) -> Result<CheckJob, SlotError> {
    let failed = |error: String| {
        #[derive(Deserialize)]
        struct Key {
            check_id: Option<i64>,
            #[serde(default, deserialize_with = "lenient_slot")]
            slot: Option<DateTime<Utc>>,
        }
        let key = serde_json::from_str::<Key>(text).ok();
        SlotError { check_id: key.as_ref().and_then(|k| k.check_id), slot: key.and_then(|k| k.slot), error }
    };
    let job: CheckJob = serde_json::from_str(text).map_err(|e| {
        failed(format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column()))
    })?;
    if job.v != JOB_SCHEMA_BATCH {
        return Err(failed(format!("a slot of a version {JOB_SCHEMA_BATCH} message has version {}", job.v)));
    }
    Ok(job)
}

/// A slot as `slot_format` writes it, or nothing (never an error: this is
/// only used to name a slot that failed to decode).
fn lenient_slot<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let text = Option::<String>::deserialize(d).unwrap_or(None);
    Ok(text
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| t.timestamp_subsec_nanos() % 1_000_000 == 0))
}

/// The version-3 message of `slots`, each the bytes of
/// [`super::encode_prepared`] with `v` = [`JOB_SCHEMA_BATCH`].
pub fn encode_batch<S: AsRef<[u8]>>(slots: &[S]) -> Vec<u8> {
    let size: usize = slots.iter().map(|s| s.as_ref().len() + 1).sum();
    let mut body = Vec::with_capacity(size + 20);
    body.extend_from_slice(b"{\"v\":3,\"jobs\":[");
    for (i, slot) in slots.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(slot.as_ref());
    }
    body.extend_from_slice(b"]}");
    body
}

/// The message id of a batch whose first slot is (`check_id`, `slot_ms`).
pub fn batch_message_id(check_id: i64, slot_ms: i64, count: usize) -> String {
    format!("{}+{count}", message_id_at(check_id, slot_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::job::{encode_prepared, parse_message_id, quote_name};
    use crate::model::CheckKind;

    const HTTP: &str = r#"{"url":"http://127.0.0.1:1/","timeout_ms":500}"#;
    const TCP: &str = r#"{"kind":"tcp","url":"tcp://127.0.0.1:1","timeout_ms":500}"#;

    fn slot(v: u32, check: i64, spec: &str, ms: i64) -> Vec<u8> {
        encode_prepared(v, check, 1000, 1, quote_name("n").as_bytes(), spec.as_bytes(), ms)
    }

    #[test]
    fn a_batch_decodes_to_its_slots_in_order() {
        let body = encode_batch(&[slot(3, 1, HTTP, 1000), slot(3, 2, TCP, 2000), slot(3, 1, HTTP, 3000)]);
        let JobMessage::Batch(slots) = JobMessage::decode(&body).unwrap() else { panic!("not a batch") };
        let keys: Vec<(i64, i64, CheckKind)> = slots
            .iter()
            .map(|s| {
                let j = s.as_ref().unwrap();
                (j.check_id, j.slot.timestamp_millis(), j.spec.kind)
            })
            .collect();
        assert_eq!(
            keys,
            vec![(1, 1000, CheckKind::Http), (2, 2000, CheckKind::Tcp), (1, 3000, CheckKind::Http)]
        );
    }

    #[test]
    fn versions_1_and_2_still_decode_as_one_slot() {
        for v in [1, 2] {
            let message = JobMessage::decode(&slot(v, 7, HTTP, 5)).unwrap();
            assert!(matches!(&message, JobMessage::One(j) if j.v == v && j.check_id == 7));
            assert_eq!(message.len(), 1);
        }
        // A v1 job of another kind is still refused as a whole.
        assert!(matches!(JobMessage::decode(&slot(1, 7, TCP, 5)), Err(DecodeError::KindInV1(_))));
    }

    #[test]
    fn a_bad_slot_is_refused_alone_and_named_when_possible() {
        let good = slot(3, 1, HTTP, 1000);
        let bad_spec = br#"{"v":3,"check_id":9,"interval_ms":1000,"version":1,"name":"n","spec":{"url":5},"slot":"1970-01-01T00:00:02.000Z"}"#.to_vec();
        let old_version = slot(2, 4, HTTP, 3000);
        let nameless = br#"{"nothing":"here"}"#.to_vec();
        let body = encode_batch(&[good, bad_spec, old_version, nameless]);
        let JobMessage::Batch(slots) = JobMessage::decode(&body).unwrap() else { panic!("not a batch") };
        assert_eq!(slots.len(), 4);
        assert_eq!(slots[0].as_ref().unwrap().check_id, 1);
        let e = slots[1].as_ref().unwrap_err();
        assert_eq!((e.check_id, e.slot.map(|s| s.timestamp_millis())), (Some(9), Some(2000)));
        assert!(!e.error.contains("5"), "values are not quoted: {}", e.error);
        let e = slots[2].as_ref().unwrap_err();
        assert_eq!((e.check_id, e.slot.map(|s| s.timestamp_millis())), (Some(4), Some(3000)));
        assert!(e.error.contains("version 2"), "{}", e.error);
        let e = slots[3].as_ref().unwrap_err();
        assert_eq!((e.check_id, e.slot), (None, None));
    }

    #[test]
    fn an_unreadable_envelope_is_refused_as_a_whole() {
        for body in [
            &b"{\"v\":3}"[..],
            b"{\"v\":3,\"jobs\":{}}",
            b"{\"v\":3,\"jobs\":[1,",
            b"{\"v\":3,\"jobs\":[]}",
            b"\xff",
        ] {
            assert!(JobMessage::decode(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        assert!(matches!(JobMessage::decode(b"{\"v\":4,\"jobs\":[]}"), Err(DecodeError::Version(4))));
    }

    #[test]
    fn a_batch_id_names_its_first_slot() {
        let id = batch_message_id(42, 1_764_115_200_123, 17);
        assert_eq!(id, "42:1764115200123+17");
        assert_eq!(parse_message_id(&id), Some((42, 1_764_115_200_123)));
    }

    proptest::proptest! {
        /// Any mix of slots round-trips, in order, whatever the names.
        #[test]
        fn batches_round_trip(
            items in proptest::collection::vec((proptest::prelude::any::<i64>(), 0i64..=4_102_444_800_000, ".{0,12}", proptest::prelude::any::<bool>()), 1..40),
        ) {
            let bodies: Vec<Vec<u8>> = items.iter().map(|(check, ms, name, tcp)| {
                let spec = if *tcp { TCP } else { HTTP };
                encode_prepared(3, *check, 1000, 1, quote_name(name).as_bytes(), spec.as_bytes(), *ms)
            }).collect();
            let JobMessage::Batch(slots) = JobMessage::decode(&encode_batch(&bodies)).unwrap() else {
                panic!("not a batch")
            };
            proptest::prop_assert_eq!(slots.len(), items.len());
            for (got, (check, ms, name, _)) in slots.iter().zip(&items) {
                let job = got.as_ref().unwrap();
                proptest::prop_assert_eq!((job.check_id, job.slot.timestamp_millis(), &job.name), (*check, *ms, name));
            }
        }
    }
}
