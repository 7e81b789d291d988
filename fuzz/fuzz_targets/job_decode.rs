//! Any bytes as a job message: decoding must never panic, and a decoded job
//! must encode and decode to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentryk8s::model::CheckJob;

fuzz_target!(|data: &[u8]| {
    if let Ok(job) = CheckJob::decode(data) {
        let again = CheckJob::decode(&job.encode()).expect("a decoded job re-encodes");
        assert_eq!(again, job);
    }
});
