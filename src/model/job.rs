//! The job message: the contract between scheduler and worker.
//!
//! JSON, one message per (check, slot); the AMQP `message_id` is
//! `<check_id>:<slot as unix milliseconds>`, the same key as the primary key
//! of `check_results`, so a redelivered or republished job is harmless.
//! Documented in docs/architecture.md ("The job message"); change `v` on any change a
//! worker of the previous version would misread.
//!
//! Version 2 came with the kinds beyond HTTP: a version-1 worker ignores
//! `spec.kind` and would run a TCP check as an HTTP request to `tcp://…`,
//! so jobs of those kinds are version 2, which it refuses (dead-letters).
//! HTTP jobs stay version 1, so during a rolling upgrade old workers keep
//! running them; workers of this version read both.
//!
//! Both ends live here: [`CheckJob::decode`] for the worker, and two
//! encoders that write the same fields: [`CheckJob::encode`] (serde, for
//! tests and tools) and [`encode_prepared`], the scheduler's, which splices
//! the JSON it already holds per check instead of encoding a spec a million
//! times a minute.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::{CheckKind, CheckSpec};

pub mod batch;
pub use batch::{batch_message_id, encode_batch, JobMessage, SlotError, JOB_SCHEMA_BATCH};

/// The newest schema version of a one-slot job; workers read it,
/// [`JOB_SCHEMA_V1`] and [`JOB_SCHEMA_BATCH`] (several slots, `batch.rs`),
/// and refuse (dead-letter) others.
pub const JOB_SCHEMA_VERSION: u32 = 2;
/// The version of HTTP jobs, which workers from before kinds also read.
pub const JOB_SCHEMA_V1: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckJob {
    /// Schema version.
    pub v: u32,
    /// `checks.id`.
    pub check_id: i64,
    /// `checks.name`.
    pub name: String,
    /// The slot this job runs, RFC 3339 UTC with milliseconds.
    #[serde(with = "slot_format")]
    pub slot: DateTime<Utc>,
    /// The check's interval; a job older than slot + interval is stale.
    pub interval_ms: u64,
    /// `checks.version` the spec was read at.
    pub version: i64,
    /// Everything the worker needs to run the check.
    pub spec: CheckSpec,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a job: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "unsupported job schema version {0} (this worker reads {JOB_SCHEMA_V1} and {JOB_SCHEMA_VERSION})"
    )]
    Version(u32),
    #[error("a version {JOB_SCHEMA_V1} job cannot carry a {0} check (only http)")]
    KindInV1(CheckKind),
    #[error("a version 3 message without slots")]
    EmptyBatch,
}

/// The schema version of a job carrying a spec of `kind`: 1 for HTTP (old
/// workers run it), 2 for the kinds they would misread.
pub fn version_for(kind: CheckKind) -> u32 {
    if kind == CheckKind::Http {
        JOB_SCHEMA_V1
    } else {
        JOB_SCHEMA_VERSION
    }
}

/// The schema version of a job carrying `spec_json` (a spec as
/// `checks.spec` stores it). Reads the whole spec, so the scheduler calls
/// it once per check it loads, not per message; a spec that does not
/// parse gets version 1 and is refused by the worker as before.
pub fn version_of_spec_json(spec_json: &[u8]) -> u32 {
    #[derive(Deserialize)]
    struct Kind {
        #[serde(default)]
        kind: CheckKind,
    }
    serde_json::from_slice::<Kind>(spec_json).map_or(JOB_SCHEMA_V1, |k| version_for(k.kind))
}

impl CheckJob {
    /// The AMQP message id and idempotency key.
    pub fn message_id(&self) -> String {
        message_id(self.check_id, self.slot)
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<CheckJob, DecodeError> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let version: Version = serde_json::from_slice(bytes)?;
        if version.v != JOB_SCHEMA_VERSION && version.v != JOB_SCHEMA_V1 {
            return Err(DecodeError::Version(version.v));
        }
        let job: CheckJob = serde_json::from_slice(bytes)?;
        if job.v == JOB_SCHEMA_V1 && job.spec.kind != CheckKind::Http {
            return Err(DecodeError::KindInV1(job.spec.kind));
        }
        Ok(job)
    }

    /// When the job stops being worth running: its slot plus one interval.
    pub fn stale_after(&self) -> DateTime<Utc> {
        self.slot + chrono::Duration::milliseconds(self.interval_ms.min(i64::MAX as u64) as i64)
    }
}

/// `<check_id>:<slot as unix milliseconds>`.
pub fn message_id(check_id: i64, slot: DateTime<Utc>) -> String {
    format!("{check_id}:{}", slot.timestamp_millis())
}

/// The message id of `check_id` at `slot_ms` (unix milliseconds), as the
/// scheduler publishes it.
pub fn message_id_at(check_id: i64, slot_ms: i64) -> String {
    message_id(check_id, slot_from_millis(slot_ms))
}

/// `<check_id>:<slot ms>` → (check_id, slot ms), also for the id of a
/// batch (`<check_id>:<slot ms>+<count>`, its first slot); `None` for
/// anything else.
pub fn parse_message_id(id: &str) -> Option<(i64, i64)> {
    let id = match id.split_once('+') {
        Some((first, count)) if !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit()) => first,
        Some(_) => return None,
        None => id,
    };
    let (check, slot) = id.split_once(':')?;
    Some((check.parse().ok()?, slot.parse().ok()?))
}

/// A check's name as the JSON string the job message carries: what the
/// scheduler keeps per check for [`encode_prepared`].
pub fn quote_name(name: &str) -> String {
    // A string always serialises.
    serde_json::to_string(name).unwrap_or_else(|_| "\"\"".into())
}

/// The job message of one slot, assembled from JSON already at hand:
/// `name_json` from [`quote_name`] and `spec_json` as `checks.spec` stores
/// it (JSON text, spliced as is), `v` from [`version_of_spec_json`]
/// (read once per check). Decodes as the [`CheckJob`]
/// `{"v":1,"check_id":…,"interval_ms":…,"version":…,"name":…,"spec":…,"slot":"…"}`;
/// the fields are in this order since version 1 and workers do not depend
/// on it. A couple of copies per message, no JSON encoding: the scheduler
/// publishes every slot of up to a million checks through here.
pub fn encode_prepared(
    v: u32,
    check_id: i64,
    interval_ms: u32,
    version: i64,
    name_json: &[u8],
    spec_json: &[u8],
    slot_ms: i64,
) -> Vec<u8> {
    let stamp = slot_from_millis(slot_ms).to_rfc3339_opts(SecondsFormat::Millis, true);
    let head = format!(
        "{{\"v\":{v},\"check_id\":{check_id},\"interval_ms\":{interval_ms},\"version\":{version},\"name\":"
    );
    let mut body = Vec::with_capacity(head.len() + name_json.len() + spec_json.len() + stamp.len() + 20);
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(name_json);
    body.extend_from_slice(b",\"spec\":");
    body.extend_from_slice(spec_json);
    body.extend_from_slice(b",\"slot\":\"");
    body.extend_from_slice(stamp.as_bytes());
    body.extend_from_slice(b"\"}");
    body
}

/// Converts unix milliseconds to a slot time (out-of-range clamps to the epoch).
pub fn slot_from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

mod slot_format {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(slot: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&slot.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        let slot = DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("invalid slot \"{text}\": {e}")))?;
        // A slot is a whole millisecond (it is one in the message id): a
        // finer one would be stored as a different slot than its key says.
        if slot.timestamp_subsec_nanos() % 1_000_000 != 0 {
            return Err(serde::de::Error::custom(format!(
                "invalid slot \"{text}\": not a whole millisecond"
            )));
        }
        Ok(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> CheckJob {
        CheckJob {
            v: JOB_SCHEMA_VERSION,
            check_id: 42,
            name: "shop".into(),
            slot: slot_from_millis(1_764_115_200_123),
            interval_ms: 30_000,
            version: 3,
            spec: serde_json::from_str(r#"{"url":"http://127.0.0.1/","timeout_ms":1000}"#).unwrap(),
        }
    }

    #[test]
    fn encodes_the_documented_shape() {
        let j = job();
        let value: serde_json::Value = serde_json::from_slice(&j.encode()).unwrap();
        assert_eq!(value["slot"], "2025-11-26T00:00:00.123Z");
        assert_eq!(value["v"], 2);
        assert_eq!(j.message_id(), "42:1764115200123");
        assert_eq!(CheckJob::decode(&j.encode()).unwrap(), j);
    }

    #[test]
    fn rejects_garbage_and_other_versions() {
        assert!(CheckJob::decode(b"\xff\x00garbage").is_err());
        assert!(CheckJob::decode(b"{}").is_err());
        let mut v = serde_json::to_value(job()).unwrap();
        for other in [0, 3, 99] {
            v["v"] = other.into();
            let err = CheckJob::decode(&serde_json::to_vec(&v).unwrap()).unwrap_err();
            assert!(matches!(err, DecodeError::Version(n) if n == other), "{err}");
        }
    }

    #[test]
    fn a_slot_finer_than_a_millisecond_is_rejected() {
        // Found by the job_decode fuzz target: it decoded, and its
        // millisecond key named another slot than the one to be stored.
        let mut v = serde_json::to_value(job()).unwrap();
        v["slot"] = "2026-11-25T23:20:30.1233Z".into();
        let err = CheckJob::decode(&serde_json::to_vec(&v).unwrap()).unwrap_err().to_string();
        assert!(err.contains("not a whole millisecond"), "{err}");
        v["slot"] = "2026-11-25T23:20:30.123000+01:00".into();
        assert!(CheckJob::decode(&serde_json::to_vec(&v).unwrap()).is_ok());
    }

    /// The scheduler's message for a fixed check, as the encoder wrote it
    /// before it moved here from `scheduler/schedule.rs`: byte for byte.
    const GOLDEN: &str = r#"{"v":1,"check_id":7,"interval_ms":1000,"version":3,"name":"check-\"7\" ü","spec":{"url": "http://127.0.0.1:1/", "timeout_ms": 500},"slot":"2025-11-26T00:00:00.123Z"}"#;
    const GOLDEN_SPEC: &str = r#"{"url": "http://127.0.0.1:1/", "timeout_ms": 500}"#;

    #[test]
    fn the_prepared_encoder_writes_todays_bytes() {
        let name = quote_name("check-\"7\" ü");
        let body = encode_prepared(1, 7, 1000, 3, name.as_bytes(), GOLDEN_SPEC.as_bytes(), 1_764_115_200_123);
        assert_eq!(String::from_utf8(body).unwrap(), GOLDEN);
        // Before the epoch, to the millisecond.
        let early = encode_prepared(1, 7, 1000, 3, name.as_bytes(), GOLDEN_SPEC.as_bytes(), -5);
        assert!(String::from_utf8(early).unwrap().ends_with(r#""slot":"1969-12-31T23:59:59.995Z"}"#));
        // Out of chrono's range: the epoch, as in the message id.
        let never = encode_prepared(1, 7, 1000, 3, name.as_bytes(), GOLDEN_SPEC.as_bytes(), i64::MAX);
        assert!(String::from_utf8(never).unwrap().ends_with(r#""slot":"1970-01-01T00:00:00.000Z"}"#));
    }

    #[test]
    fn the_golden_message_still_decodes() {
        let job = CheckJob::decode(GOLDEN.as_bytes()).unwrap();
        assert_eq!((job.v, job.check_id, job.interval_ms, job.version), (1, 7, 1000, 3));
        assert_eq!(job.name, "check-\"7\" ü");
        assert_eq!(job.slot.timestamp_millis(), 1_764_115_200_123);
        assert_eq!(job.spec, serde_json::from_str::<CheckSpec>(GOLDEN_SPEC).unwrap());
        // Queued before specs had a kind: an HTTP check.
        assert_eq!(job.spec.kind, crate::model::CheckKind::Http);
        let with_kind = GOLDEN.replace(r#""spec":{"#, r#""spec":{"kind":"http","#);
        assert_eq!(CheckJob::decode(with_kind.as_bytes()).unwrap(), job);
        assert_eq!(job.message_id(), "7:1764115200123");
        assert_eq!(message_id_at(7, 1_764_115_200_123), job.message_id());
    }

    #[test]
    fn both_encoders_round_trip_through_decode() {
        let j = job();
        let spec = serde_json::to_vec(&j.spec).unwrap();
        let name = quote_name(&j.name);
        let prepared = encode_prepared(
            j.v,
            j.check_id,
            j.interval_ms as u32,
            j.version,
            name.as_bytes(),
            &spec,
            1_764_115_200_123,
        );
        assert_eq!(CheckJob::decode(&prepared).unwrap(), j);
        assert_eq!(CheckJob::decode(&j.encode()).unwrap(), j);
    }

    #[test]
    fn http_jobs_stay_version_1_and_other_kinds_are_version_2() {
        // A worker from before kinds reads only v1 and ignores `kind`: it
        // must never be handed a TCP check, and must keep getting HTTP ones.
        let http = br#"{"url":"http://x/","timeout_ms":1}"#;
        assert_eq!(version_of_spec_json(http), 1);
        assert_eq!(version_of_spec_json(br#"{"kind":"http","url":"http://x/","timeout_ms":1}"#), 1);
        for kind in crate::model::kinds::ALL_KINDS.iter().filter(|k| **k != CheckKind::Http) {
            let spec = format!(r#"{{"timeout_ms":1,"url":"x://y","kind":"{kind}"}}"#);
            assert_eq!(version_of_spec_json(spec.as_bytes()), 2, "{kind}");
            assert_eq!(version_for(*kind), JOB_SCHEMA_VERSION);
        }
        assert_eq!(version_of_spec_json(b"not json"), 1);
        // A v2 TCP job decodes; the same job claiming v1 is refused, not
        // run as HTTP.
        let tcp = r#"{"kind":"tcp","url":"tcp://127.0.0.1:1","timeout_ms":500}"#;
        let name = quote_name("t");
        let v2 = encode_prepared(2, 7, 1000, 3, name.as_bytes(), tcp.as_bytes(), 1_764_115_200_123);
        let job = CheckJob::decode(&v2).unwrap();
        assert_eq!((job.v, job.spec.kind), (2, CheckKind::Tcp));
        let v1 = encode_prepared(1, 7, 1000, 3, name.as_bytes(), tcp.as_bytes(), 1_764_115_200_123);
        let err = CheckJob::decode(&v1).unwrap_err();
        assert_eq!(err.to_string(), "a version 1 job cannot carry a tcp check (only http)");
        // HTTP jobs decode in both versions (v1 from old schedulers).
        for v in [1, 2] {
            let body = encode_prepared(v, 7, 1000, 3, name.as_bytes(), GOLDEN_SPEC.as_bytes(), 0);
            assert_eq!(CheckJob::decode(&body).unwrap().v, v);
        }
    }

    #[test]
    fn message_ids_parse_back() {
        assert_eq!(parse_message_id("42:1764115200123"), Some((42, 1_764_115_200_123)));
        assert_eq!(parse_message_id(&message_id_at(-3, -5)), Some((-3, -5)));
        assert_eq!(parse_message_id(&message_id_at(1, i64::MAX)), Some((1, 0)), "clamped to the epoch");
        assert_eq!(parse_message_id("42:17+3"), Some((42, 17)));
        for bad in ["", "42", "42:", ":1", "a:1", "1:b", "1:2:3", "1:2+", "1:2+x", "1:2+3+4"] {
            assert_eq!(parse_message_id(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        /// Whatever the name, ids, interval and (in-range) slot, the
        /// scheduler's message decodes to exactly that job, and its id
        /// parses back to (check, slot).
        #[test]
        fn prepared_messages_decode_to_their_job(
            check_id in proptest::prelude::any::<i64>(),
            interval_ms in 1u32..=86_400_000,
            version in proptest::prelude::any::<i64>(),
            name in ".{0,40}",
            slot in 0i64..=4_102_444_800_000,
            timeout_ms in 1u64..=60_000,
        ) {
            let spec: CheckSpec = serde_json::from_value(
                serde_json::json!({"url": "http://127.0.0.1/", "timeout_ms": timeout_ms}),
            ).unwrap();
            let spec_json = serde_json::to_vec(&spec).unwrap();
            let body = encode_prepared(
                JOB_SCHEMA_V1, check_id, interval_ms, version, quote_name(&name).as_bytes(), &spec_json, slot,
            );
            let job = CheckJob::decode(&body).unwrap();
            let expected = CheckJob {
                v: JOB_SCHEMA_V1,
                check_id,
                name,
                slot: slot_from_millis(slot),
                interval_ms: interval_ms as u64,
                version,
                spec,
            };
            proptest::prop_assert_eq!(&job, &expected);
            proptest::prop_assert_eq!(parse_message_id(&job.message_id()), Some((check_id, slot)));
            proptest::prop_assert_eq!(CheckJob::decode(&expected.encode()).unwrap(), expected);
        }
    }
}
