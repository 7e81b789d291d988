//! Any text as a checks file: validation must never panic, and whatever it
//! accepts must survive the trip through the database's JSON and back, as
//! the worker will read it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentryk8s::checks_file::{validate_all, Source};
use sentryk8s::model::CheckSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let source = Source { name: "fuzz.yaml".into(), text: text.into() };
    let lookup = |name: &str| (name == "SET").then(|| "value".to_string());
    if let Ok(checks) = validate_all(&[source], &lookup) {
        for check in checks.checks {
            let json = serde_json::to_value(&check.spec).expect("a spec serialises");
            let back: CheckSpec = serde_json::from_value(json).expect("a stored spec deserialises");
            assert_eq!(back, check.spec, "spec changed through JSON");
        }
    }
});
