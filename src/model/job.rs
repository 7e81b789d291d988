//! The job message: the contract between scheduler and worker.
//!
//! JSON, one message per (check, slot); the AMQP `message_id` is
//! `<check_id>:<slot as unix milliseconds>`, the same key as the primary key
//! of `check_results`, so a redelivered or republished job is harmless.
//! Documented in README.md ("The job message"); change `v` on any change a
//! worker of the previous version would misread.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::CheckSpec;

/// Schema version of [`CheckJob`]; workers refuse (dead-letter) others.
pub const JOB_SCHEMA_VERSION: u32 = 1;

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
    #[error("unsupported job schema version {0} (this worker reads {JOB_SCHEMA_VERSION})")]
    Version(u32),
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
        if version.v != JOB_SCHEMA_VERSION {
            return Err(DecodeError::Version(version.v));
        }
        Ok(serde_json::from_slice(bytes)?)
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
        assert_eq!(value["v"], 1);
        assert_eq!(j.message_id(), "42:1764115200123");
        assert_eq!(CheckJob::decode(&j.encode()).unwrap(), j);
    }

    #[test]
    fn rejects_garbage_and_other_versions() {
        assert!(CheckJob::decode(b"\xff\x00garbage").is_err());
        assert!(CheckJob::decode(b"{}").is_err());
        let mut v = serde_json::to_value(job()).unwrap();
        v["v"] = 2.into();
        assert!(matches!(CheckJob::decode(&serde_json::to_vec(&v).unwrap()), Err(DecodeError::Version(2))));
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
}
