//! Acceptance 3 of the web role: the OpenAPI document that `sentryk8s web`
//! serves validates (openapi-spec-validator, installed by
//! tests/api/install.sh), and every operation it lists answers as
//! documented, on a database with checks, results, rollups and incidents:
//! - with a token of the scope it needs (and an example of its input), a
//!   status the operation lists, with the listed content type and a body
//!   matching the listed schema (a checker of the subset utoipa emits);
//! - without a token, 401 (when it needs one); with a read token, 403
//!   (when it writes); for an unknown check, 404 (when it names one and
//!   does not create it): each listed, each matching its schema.
//!
//! Data-driven: the operations come from the document, so routes added
//! later are covered as they are. An operation needing input the defaults
//! cannot give (a body, a required query parameter, a path parameter other
//! than `name`) needs an entry in [`examples`]; without one the test fails
//! naming it.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::support::unique_name;
use crate::web_bed::{history, Answer, Tokens, Web};

/// A check the examples create, change and finally delete (the seeded
/// checks stay as they are for the reads).
const MADE: &str = "made-by-api";
/// A name no check has.
const UNKNOWN: &str = "no-such-check";

/// What an operation is called with, beyond the defaults.
struct Example {
    /// The operationId, or `METHOD /path` as the document writes it.
    key: &'static str,
    /// Path parameters (`name` defaults to `api` for reads and to
    /// [`MADE`] for writes).
    path: &'static [(&'static str, &'static str)],
    /// The query string, without `?`.
    query: &'static str,
    /// The request body.
    body: Option<fn() -> Value>,
    /// The statuses it must answer with that input (any documented one when empty).
    expect: &'static [u16],
}

fn examples() -> Vec<Example> {
    vec![
        Example { key: "listResults", path: &[], query: "limit=5", body: None, expect: &[200] },
        Example { key: "getUptime", path: &[], query: "window=7d&by=day", body: None, expect: &[200] },
        Example { key: "listIncidents", path: &[], query: "check=api", body: None, expect: &[200] },
        Example {
            key: "PUT /api/v1/checks/{name}",
            path: &[("name", MADE)],
            query: "",
            body: Some(|| json!({"name": MADE, "url": "http://127.0.0.1:9/health", "interval": "30s"})),
            expect: &[200, 201],
        },
        // Status pages: read before the PUT creates it (reads run first), so
        // either answer; then created, then deleted.
        Example {
            key: "getStatusPage",
            path: &[("slug", "made-page")],
            query: "",
            body: None,
            expect: &[200, 404],
        },
        Example {
            key: "putStatusPage",
            path: &[("slug", "made-page")],
            query: "",
            body: Some(|| json!({"title": "Made", "groups": [{"name": "All", "checks": ["api"]}]})),
            expect: &[200, 201],
        },
        Example {
            key: "deleteStatusPage",
            path: &[("slug", "made-page")],
            query: "",
            body: None,
            expect: &[204],
        },
    ]
}

/// The validator: `OPENAPI_SPEC_VALIDATOR` (not `SENTRYK8S_*`: the bed's
/// `Config::defaults()` would read it as configuration), else the one
/// tests/api/install.sh installs. Missing is a failure, never a skip.
fn validator() -> PathBuf {
    const INSTALL: &str = "tests/api/install.sh";
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tools = std::env::var_os("SENTRYK8S_TOOLS").map(PathBuf::from).unwrap_or_else(|| root.join(".tools"));
    let path = std::env::var_os("OPENAPI_SPEC_VALIDATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools.join("api-venv/bin/openapi-spec-validator"));
    assert!(
        path.is_file(),
        "openapi-spec-validator is not installed at {}: run `{INSTALL}` (scripts/test.sh does), \
         or set OPENAPI_SPEC_VALIDATOR to one",
        path.display()
    );
    path
}

/// Runs the validator on `document`: (passed, its output).
fn validate(document: &Value) -> (bool, String) {
    let file = std::env::temp_dir().join(format!("{}.json", unique_name("sk-openapi")));
    std::fs::write(&file, serde_json::to_vec_pretty(document).expect("JSON")).expect("write the document");
    let out = Command::new(validator()).arg(&file).output().expect("run openapi-spec-validator");
    let _ = std::fs::remove_file(&file);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test]
async fn the_document_validates_and_every_operation_answers_as_documented() {
    let h = history().await;
    let tokens = Tokens::new(&h.db).await;
    let web = Web::start(
        &h.db,
        &[("SENTRYK8S_WEB__RATE_LIMIT_PER_SECOND", "10000"), ("SENTRYK8S_WEB__RATE_LIMIT_BURST", "10000")],
    )
    .await;

    let answer = web.get("/api/v1/openapi.json", None).await;
    assert_eq!(
        (answer.status, answer.content_type().as_str()),
        (200, "application/json"),
        "{}",
        answer.text()
    );
    let doc = answer.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "OpenAPI 3.1: {}", doc["openapi"]);
    let (ok, output) = validate(&doc);
    assert!(ok, "openapi-spec-validator rejects the document:\n{output}");
    // …and the validator does reject what is not a document.
    let mut broken = doc.clone();
    broken.as_object_mut().unwrap().remove("info");
    broken["paths"]["/api/v1/incidents"]["get"]["responses"] = json!("none");
    assert!(!validate(&broken).0, "the validator accepted a broken document");

    let operations = operations(&doc);
    let ids: Vec<&str> = operations.iter().map(|o| o.id.as_str()).collect();
    for mine in ["listResults", "getUptime", "listIncidents", "getOpenApi"] {
        assert!(ids.contains(&mine), "{mine} is not in the document: {ids:?}");
    }
    let table = examples();
    let mut missing = Vec::new();
    let mut failures = Vec::new();
    let mut called = 0;
    for op in &operations {
        let example = table.iter().find(|e| e.key == op.id || e.key == op.key());
        let Some(call) = op.call(example) else {
            missing.push(op.key());
            continue;
        };
        let token = match op.method.as_str() {
            "get" => tokens.read.as_str(),
            _ => tokens.write.as_str(),
        };
        let answer = web.call(&op.method.to_uppercase(), &call.uri, Some(token), call.body.clone()).await;
        called += 1;
        let expect = example.map(|e| e.expect).unwrap_or_default();
        let expect: &[u16] = match (expect.is_empty(), op.method.as_str()) {
            (false, _) => expect,
            (true, "get") => &[200],
            (true, _) => &[],
        };
        if !expect.is_empty() && !expect.contains(&answer.status) {
            failures.push(format!(
                "{} {}: {} (expected {expect:?}): {}",
                op.key(),
                call.uri,
                answer.status,
                answer.text()
            ));
        }
        failures.extend(op.conforms(&doc, &answer, &call.uri));

        if op.needs_token(&doc) {
            let answer = web.call(&op.method.to_uppercase(), &call.uri, None, call.body.clone()).await;
            if answer.status != 401 {
                failures.push(format!("{} without a token: {} (expected 401)", op.key(), answer.status));
            }
            failures.extend(op.conforms(&doc, &answer, &call.uri));
        }
        if op.method != "get" {
            let answer =
                web.call(&op.method.to_uppercase(), &call.uri, Some(&tokens.read), call.body.clone()).await;
            if answer.status != 403 {
                failures.push(format!("{} with a read token: {} (expected 403)", op.key(), answer.status));
            }
            failures.extend(op.conforms(&doc, &answer, &call.uri));
        }
        if op.names_a_check() && op.method != "put" {
            let uri = op.uri(&[("name", UNKNOWN)], &call.query);
            let answer =
                web.call(&op.method.to_uppercase(), &uri, Some(&tokens.admin), call.body.clone()).await;
            if answer.status != 404 {
                failures.push(format!(
                    "{} {uri}: {} (expected 404): {}",
                    op.key(),
                    answer.status,
                    answer.text()
                ));
            }
            failures.extend(op.conforms(&doc, &answer, &uri));
        }
    }
    assert!(
        missing.is_empty(),
        "operations without an example of their input (add them to examples() in {}): {missing:?}",
        file!()
    );
    assert!(failures.is_empty(), "answers that differ from the document:\n{}", failures.join("\n"));
    assert_eq!(called, operations.len());
}

/// One operation of the document.
struct Operation {
    method: String,
    path: String,
    id: String,
    spec: Value,
}

/// What an operation is called with.
struct Call {
    uri: String,
    query: String,
    body: Option<Value>,
}

/// Every operation of the document: reads first, deletions last, so the
/// writes' examples can create what they change and delete.
fn operations(doc: &Value) -> Vec<Operation> {
    let rank = |m: &str| ["get", "put", "post", "patch", "delete"].iter().position(|x| *x == m).unwrap_or(9);
    let mut out: Vec<Operation> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().into_iter().flatten().filter(|(m, _)| rank(m) < 9).map(|(method, spec)| {
                Operation {
                    method: method.clone(),
                    path: path.clone(),
                    id: spec["operationId"].as_str().unwrap_or_default().to_string(),
                    spec: spec.clone(),
                }
            })
        })
        .collect();
    out.sort_by(|a, b| (rank(&a.method), &a.path).cmp(&(rank(&b.method), &b.path)));
    out
}

impl Operation {
    fn key(&self) -> String {
        format!("{} {}", self.method.to_uppercase(), self.path)
    }

    fn parameters(&self) -> impl Iterator<Item = &Value> {
        self.spec["parameters"].as_array().into_iter().flatten()
    }

    fn names_a_check(&self) -> bool {
        self.parameters().any(|p| p["in"] == "path" && p["name"] == "name")
    }

    /// Whether the operation requires a token: its own `security`, else the
    /// document's; an empty requirement (`{}`) means none.
    fn needs_token(&self, doc: &Value) -> bool {
        let security = self.spec.get("security").unwrap_or(&doc["security"]);
        match security.as_array() {
            Some(list) => {
                !list.is_empty() && !list.iter().any(|r| r.as_object().is_some_and(|o| o.is_empty()))
            }
            None => false,
        }
    }

    /// The URI with `params` in the path and `query`.
    fn uri(&self, params: &[(&str, &str)], query: &str) -> String {
        let mut uri = self.path.clone();
        for (name, value) in params {
            uri = uri.replace(&format!("{{{name}}}"), value);
        }
        match query.is_empty() {
            true => uri,
            false => format!("{uri}?{query}"),
        }
    }

    /// How to call it, or `None` when it needs input no default gives.
    fn call(&self, example: Option<&Example>) -> Option<Call> {
        let default_name = if self.method == "get" { "api" } else { MADE };
        let mut params: Vec<(&str, &str)> = example.map(|e| e.path.to_vec()).unwrap_or_default();
        for p in self.parameters().filter(|p| p["in"] == "path") {
            let name = p["name"].as_str().unwrap_or_default();
            if !params.iter().any(|(n, _)| *n == name) {
                match name {
                    "name" => params.push(("name", default_name)),
                    _ => return None,
                }
            }
        }
        let query = example.map_or("", |e| e.query).to_string();
        let required_query = self.parameters().filter(|p| p["in"] == "query" && p["required"] == true);
        for p in required_query {
            let name = p["name"].as_str().unwrap_or_default();
            if !query.split('&').any(|kv| kv.split('=').next() == Some(name)) {
                return None;
            }
        }
        let body = example.and_then(|e| e.body).map(|f| f());
        if self.spec["requestBody"]["required"] == true && body.is_none() {
            return None;
        }
        Some(Call { uri: self.uri(&params, &query), query, body })
    }

    /// Whether `answer` is one the document lists for this operation: its
    /// status, content type and body schema. Problems, each a line.
    fn conforms(&self, doc: &Value, answer: &Answer, uri: &str) -> Vec<String> {
        let at = format!("{} {uri} → {}", self.key(), answer.status);
        let responses = &self.spec["responses"];
        let Some(response) = responses.get(answer.status.to_string()).or_else(|| responses.get("default"))
        else {
            let listed: Vec<&String> = responses.as_object().map(|o| o.keys().collect()).unwrap_or_default();
            return vec![format!("{at}: status not documented (documented: {listed:?}): {}", answer.text())];
        };
        let response = resolve(doc, response);
        let content = response["content"].as_object();
        let Some(content) = content.filter(|c| !c.is_empty()) else {
            return match answer.body.is_empty() {
                true => Vec::new(),
                false => vec![format!("{at}: documented without a body, answered {}", answer.text())],
            };
        };
        let media = answer.content_type();
        let Some(listed) = content.get(&media) else {
            let types: Vec<&String> = content.keys().collect();
            return vec![format!("{at}: content type {media:?} is not documented ({types:?})")];
        };
        let body: Value = match serde_json::from_slice(&answer.body) {
            Ok(v) => v,
            Err(e) => return vec![format!("{at}: the body is not JSON ({e}): {}", answer.text())],
        };
        let mut problems = Vec::new();
        if let Some(schema) = listed.get("schema") {
            conforms(doc, schema, &body, "", &mut problems);
        }
        problems.into_iter().map(|p| format!("{at}: {p}")).collect()
    }
}

static NULL: Value = Value::Null;

/// Follows a local `$ref` (`#/components/...`); null when it does not resolve.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => match r.strip_prefix('#').and_then(|p| doc.pointer(p)) {
            Some(target) => resolve(doc, target),
            None => &NULL,
        },
        None => value,
    }
}

/// Whether `value` has JSON type `name` (OpenAPI 3.1 / JSON Schema names).
fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

/// Checks `value` against `schema`, the subset utoipa emits: `$ref`,
/// `allOf`/`oneOf`/`anyOf`, `type` (a name or a list, `null` included;
/// `nullable` of 3.0 too), `enum`, `const`, `format: date-time`,
/// `properties`/`required`/`additionalProperties`, `items`. Adds a line
/// per problem, with the JSON pointer of the value.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let here = if at.is_empty() { "/" } else { at };
    if schema == &Value::Bool(true) {
        return;
    }
    if schema == &Value::Bool(false) {
        problems.push(format!("{here}: nothing is allowed here"));
        return;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = resolve(doc, schema);
        if target.is_null() {
            problems.push(format!("{here}: $ref {r} does not resolve"));
        } else {
            conforms(doc, target, value, at, problems);
        }
        return;
    }
    if schema.get("nullable") == Some(&Value::Bool(true)) && value.is_null() {
        return;
    }
    let passes = |s: &Value| {
        let mut p = Vec::new();
        conforms(doc, s, value, at, &mut p);
        p.is_empty()
    };
    for s in schema["allOf"].as_array().into_iter().flatten() {
        conforms(doc, s, value, at, problems);
    }
    if let Some(list) = schema["oneOf"].as_array() {
        let n = list.iter().filter(|s| passes(s)).count();
        if n != 1 {
            problems.push(format!("{here}: {value} matches {n} of the oneOf schemas, not exactly one"));
        }
    }
    if let Some(list) = schema["anyOf"].as_array() {
        if !list.iter().any(passes) {
            problems.push(format!("{here}: {value} matches none of the anyOf schemas"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|t| has_type(value, t)) {
        problems.push(format!("{here}: {value} is not of type {types:?}"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            problems.push(format!("{here}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(c) = schema.get("const") {
        if c != value {
            problems.push(format!("{here}: {value} is not {c}"));
        }
    }
    if let (Some("date-time"), Some(text)) = (schema["format"].as_str(), value.as_str()) {
        if chrono::DateTime::parse_from_rfc3339(text).is_err() {
            problems.push(format!("{here}: {text:?} is not an RFC 3339 date-time"));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema["properties"].as_object();
        for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                problems.push(format!("{here}: the required property {name:?} is missing"));
            }
        }
        for (name, v) in object {
            let pointer = format!("{at}/{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(s) => conforms(doc, s, v, &pointer, problems),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        problems.push(format!("{pointer}: not a documented property"))
                    }
                    Some(s @ Value::Object(_)) => conforms(doc, s, v, &pointer, problems),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, v) in list.iter().enumerate() {
            conforms(doc, items, v, &format!("{at}/{i}"), problems);
        }
    }
}

#[test]
fn the_schema_checker_catches_what_it_checks() {
    let doc = json!({"components": {"schemas": {
        "Thing": {"type": "object", "required": ["id", "at"], "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "tags": {"type": ["array", "null"], "items": {"type": "string"}},
            "kind": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Kind"}]}
        }, "additionalProperties": false},
        "Kind": {"type": "string", "enum": ["a", "b"]},
        "Both": {"allOf": [{"$ref": "#/components/schemas/Thing"}, {"type": "object", "required": ["extra"]}]}
    }}});
    let check = |schema: &Value, value: Value| {
        let mut p = Vec::new();
        conforms(&doc, schema, &value, "", &mut p);
        p
    };
    let thing = json!({"$ref": "#/components/schemas/Thing"});
    assert!(
        check(&thing, json!({"id": 1, "at": "2026-11-29T00:00:00Z", "tags": null, "kind": "a"})).is_empty()
    );
    assert!(
        check(&thing, json!({"id": 1, "at": "2026-11-29T00:00:00Z", "tags": ["x"], "kind": null})).is_empty()
    );
    for (bad, why) in [
        (json!({"at": "2026-11-29T00:00:00Z"}), "required"),
        (json!({"id": 1.5, "at": "2026-11-29T00:00:00Z"}), "type"),
        (json!({"id": 1, "at": "yesterday"}), "RFC 3339"),
        (json!({"id": 1, "at": "2026-11-29T00:00:00Z", "tags": [1]}), "type"),
        (json!({"id": 1, "at": "2026-11-29T00:00:00Z", "kind": "c"}), "oneOf"),
        (json!({"id": 1, "at": "2026-11-29T00:00:00Z", "other": 1}), "not a documented property"),
        (json!([]), "type"),
    ] {
        let p = check(&thing, bad.clone());
        assert!(p.iter().any(|l| l.contains(why)), "{bad}: {p:?}");
    }
    let both = json!({"$ref": "#/components/schemas/Both"});
    assert!(check(&both, json!({"id": 1, "at": "2026-11-29T00:00:00Z"})).iter().any(|l| l.contains("extra")));
    assert!(check(&json!({"$ref": "#/components/schemas/Nope"}), json!(1))[0].contains("does not resolve"));
}
