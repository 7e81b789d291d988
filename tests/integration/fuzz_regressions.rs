//! Replays every fuzz seed and every input a fuzzer once crashed on
//! (fuzz/seeds, fuzz/regressions) with the fuzz targets' own properties, so
//! a fixed crash stays fixed in the ordinary test suite.

use std::path::Path;

use sentryk8s::checks_file::{validate_all, Source};
use sentryk8s::model::{CheckJob, CheckSpec};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                out.push((format!("{dir}/{target}/{name}"), std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    out
}

#[test]
fn checks_file_inputs_validate_without_panic_and_round_trip() {
    let inputs = inputs("checks_file");
    assert!(inputs.len() >= 10, "seeds are missing");
    let mut accepted = 0;
    for (name, bytes) in inputs {
        let Ok(text) = String::from_utf8(bytes) else { continue };
        let lookup = |var: &str| (var == "EXAMPLE_TOKEN" || var == "SET").then(|| "value".to_string());
        if let Ok(checks) = validate_all(&[Source { name: name.clone(), text }], &lookup) {
            accepted += 1;
            for check in checks.checks {
                let back: CheckSpec =
                    serde_json::from_value(serde_json::to_value(&check.spec).unwrap()).unwrap();
                assert_eq!(back, check.spec, "{name}: spec changed through JSON");
            }
        }
    }
    assert!(accepted >= 1, "the example file is accepted");
}

#[test]
fn job_inputs_decode_without_panic_and_round_trip() {
    let inputs = inputs("job_decode");
    assert!(!inputs.is_empty(), "seeds are missing");
    let mut decoded = Vec::new();
    for (name, bytes) in inputs {
        if let Ok(job) = CheckJob::decode(&bytes) {
            assert_eq!(CheckJob::decode(&job.encode()).unwrap(), job, "{name}");
            decoded.push(name);
        }
    }
    decoded.sort();
    // The valid seed, and a job whose huge expected number once did not
    // round-trip; another version and a sub-millisecond slot are refused.
    assert_eq!(decoded, ["regressions/job_decode/float-roundtrip.json", "seeds/job_decode/job.json"]);
}
