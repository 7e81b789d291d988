//! Any bytes as a job message: decoding must never panic, a decoded job
//! must encode and decode to itself, and so must the readable slots of a
//! version-3 message (several slots) packed again into one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentryk8s::model::job::{encode_batch, JobMessage};
use sentryk8s::model::CheckJob;

fuzz_target!(|data: &[u8]| {
    if let Ok(job) = CheckJob::decode(data) {
        let again = CheckJob::decode(&job.encode()).expect("a decoded job re-encodes");
        assert_eq!(again, job);
    }
    if let Ok(JobMessage::Batch(slots)) = JobMessage::decode(data) {
        let good: Vec<CheckJob> = slots.into_iter().filter_map(Result::ok).collect();
        if !good.is_empty() {
            let bodies: Vec<Vec<u8>> = good.iter().map(CheckJob::encode).collect();
            let Ok(JobMessage::Batch(again)) = JobMessage::decode(&encode_batch(&bodies)) else {
                panic!("the readable slots of a batch re-encode as a batch");
            };
            let again: Vec<CheckJob> = again.into_iter().map(|s| s.expect("a decoded slot re-encodes")).collect();
            assert_eq!(again, good);
        }
    }
});
