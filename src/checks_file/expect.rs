//! A check's `expect:` block, the assertions on a response: status codes,
//! response time, body contents and regular expressions, JSON values by
//! pointer, and days left on the certificate. Read into a `PartialExpect`
//! so that each assertion can be inherited from `defaults` on its own.

use std::collections::BTreeMap;

use crate::model::bounds::MAX_INTERVAL_MS;
use crate::model::{StatusMatch, TlsVersion};

use super::diagnostic::{join_index, join_key};
use super::reader::{item_path, parse_int, quoted, Bad, Ctx, Slot, F};
use super::schema;
use super::yaml::{Kind, Node, PlainType};

/// Compiled-size bound of one `body_regex`, so a hostile pattern cannot
/// make apply (or a worker) allocate without bound.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// `expect:` as written: each assertion a [`Slot`], inherited on its own.
#[derive(Debug, Clone)]
pub(super) struct PartialExpect {
    pub(super) status: Slot<Vec<StatusMatch>>,
    pub(super) max_response_time: Slot<u64>,
    pub(super) body_contains: Slot<Vec<String>>,
    pub(super) body_not_contains: Slot<Vec<String>>,
    pub(super) body_regex: Slot<Vec<String>>,
    pub(super) json: Slot<BTreeMap<String, serde_json::Value>>,
    pub(super) cert_days_left: Slot<u32>,
    pub(super) connected: Slot<bool>,
    pub(super) banner_contains: Slot<Vec<String>>,
    pub(super) banner_regex: Slot<Vec<String>>,
    pub(super) cert_issuer_contains: Slot<Vec<String>>,
    pub(super) cert_fingerprint_sha256: Slot<Vec<String>>,
    pub(super) tls_min_version: Slot<TlsVersion>,
    pub(super) rcode: Slot<String>,
    pub(super) answers_include: Slot<Vec<String>>,
    pub(super) answers_exactly: Slot<Vec<String>>,
    pub(super) answers_in: Slot<Vec<String>>,
    /// Seconds.
    pub(super) min_ttl: Slot<u32>,
    /// Percent.
    pub(super) max_loss: Slot<u32>,
    pub(super) serving: Slot<bool>,
    /// The keys written (`expect.rcode`) and where: see `Partial::written`.
    pub(super) written: Vec<(String, super::diagnostic::Pos)>,
}

impl Default for PartialExpect {
    fn default() -> Self {
        PartialExpect {
            status: Slot::Absent,
            max_response_time: Slot::Absent,
            body_contains: Slot::Absent,
            body_not_contains: Slot::Absent,
            body_regex: Slot::Absent,
            json: Slot::Absent,
            cert_days_left: Slot::Absent,
            connected: Slot::Absent,
            banner_contains: Slot::Absent,
            banner_regex: Slot::Absent,
            cert_issuer_contains: Slot::Absent,
            cert_fingerprint_sha256: Slot::Absent,
            tls_min_version: Slot::Absent,
            rcode: Slot::Absent,
            answers_include: Slot::Absent,
            answers_exactly: Slot::Absent,
            answers_in: Slot::Absent,
            min_ttl: Slot::Absent,
            max_loss: Slot::Absent,
            serving: Slot::Absent,
            written: Vec::new(),
        }
    }
}

impl Ctx<'_> {
    pub(super) fn expect(&mut self, node: &Node, path: &str) -> PartialExpect {
        let mut e = PartialExpect::default();
        let Some(entries) =
            self.entries(node, path, Some((schema::EXPECT, "expect")), "a mapping of assertions")
        else {
            e.status = Slot::Invalid;
            return e;
        };
        for (key, value, key_pos) in entries {
            let fp = join_key(path, &key);
            e.written.push((format!("expect.{key}"), key_pos));
            match key.as_str() {
                "status" => e.status = self.status(value, &fp),
                "max_response_time" => e.max_response_time = self.duration(value, &fp, 1, MAX_INTERVAL_MS),
                "body_contains" => e.body_contains = plain_list(self.string_list(value, &fp, "a string")),
                "body_not_contains" => {
                    e.body_not_contains = plain_list(self.string_list(value, &fp, "a string"))
                }
                "body_regex" => e.body_regex = self.regexes(value, &fp),
                "json" => e.json = self.json(value, &fp),
                "cert_days_left" => e.cert_days_left = self.small_int(value, &fp, 0, 3650),
                "connected" => e.connected = self.boolean(value, &fp),
                "banner_contains" => e.banner_contains = plain_list(self.string_list(value, &fp, "a string")),
                "banner_regex" => e.banner_regex = self.regexes(value, &fp),
                "cert_issuer_contains" => {
                    e.cert_issuer_contains = plain_list(self.string_list(value, &fp, "a string"))
                }
                "cert_fingerprint_sha256" => e.cert_fingerprint_sha256 = self.fingerprints(value, &fp),
                "tls_min_version" => e.tls_min_version = self.tls_version(value, &fp),
                "rcode" => e.rcode = self.rcode(value, &fp),
                "answers_include" => {
                    e.answers_include = plain_list(self.string_list(value, &fp, "an answer"))
                }
                "answers_exactly" => {
                    e.answers_exactly = plain_list(self.string_list(value, &fp, "an answer"))
                }
                "answers_in" => e.answers_in = self.cidrs(value, &fp),
                "min_ttl" => e.min_ttl = self.seconds(value, &fp),
                "max_loss" => e.max_loss = self.small_int(value, &fp, 0, 100),
                "serving" => e.serving = self.boolean(value, &fp),
                _ => {}
            }
        }
        e
    }

    fn status(&mut self, node: &Node, path: &str) -> Slot<Vec<StatusMatch>> {
        let items: Vec<(&Node, String)> = match &node.kind {
            Kind::Seq(items) => items.iter().enumerate().map(|(i, n)| (n, join_index(path, i))).collect(),
            Kind::Scalar { .. } if !node.is_null() => vec![(node, path.to_string())],
            _ => {
                return self.type_error(node, path, "a status (200, \"2xx\", \"200-299\") or a list of them")
            }
        };
        if items.is_empty() {
            self.error(node.pos, path, "the list is empty: remove the field or add an entry");
            return Slot::Invalid;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (item, item_path) in items {
            match self.scalar(item, &item_path) {
                Ok(s) if matches!(s.ty, PlainType::Int | PlainType::Str) => match StatusMatch::parse(&s.text)
                {
                    Ok(m) => out.push(m),
                    Err(message) => {
                        self.error(item.pos, &item_path, message);
                        ok = false;
                    }
                },
                Err(Bad::Reported) => ok = false,
                Ok(_) | Err(Bad::NotScalar) => {
                    self.type_error::<()>(item, &item_path, "a status (200, \"2xx\", \"200-299\")");
                    ok = false;
                }
            }
        }
        if ok {
            Slot::Set(F { v: out, pos: node.pos, written: String::new(), inherited: false })
        } else {
            Slot::Invalid
        }
    }

    /// Whole seconds, written as a duration ("5m") or a number of seconds.
    fn seconds(&mut self, node: &Node, path: &str) -> Slot<u32> {
        match self.scalar(node, path) {
            Ok(s) if s.ty == PlainType::Int => self.small_int(node, path, 0, i32::MAX as i64),
            Err(Bad::Reported) => Slot::Invalid,
            _ => match self.duration(node, path, 0, u32::MAX as u64 * 1000) {
                Slot::Set(f) if f.v % 1000 != 0 => {
                    self.error(f.pos, path, format!("{} is not a whole number of seconds", f.written));
                    Slot::Invalid
                }
                Slot::Set(f) => {
                    Slot::Set(F { v: (f.v / 1000) as u32, pos: f.pos, written: f.written, inherited: false })
                }
                Slot::Invalid => Slot::Invalid,
                Slot::Absent => Slot::Absent,
            },
        }
    }

    fn regexes(&mut self, node: &Node, path: &str) -> Slot<Vec<String>> {
        let Slot::Set(f) = self.string_list(node, path, "a regular expression") else { return Slot::Invalid };
        let mut ok = true;
        for (i, item) in f.v.iter().enumerate() {
            if self.regexes_ok.contains(&item.v) {
                continue;
            }
            let item_path = item_path(node, path, i);
            match regex::RegexBuilder::new(&item.v).size_limit(REGEX_SIZE_LIMIT).build() {
                Ok(_) => {
                    self.regexes_ok.insert(item.v.clone());
                }
                Err(e) => {
                    self.error(
                        item.pos,
                        &item_path,
                        format!("invalid regular expression {}: {}", quoted(&item.written), regex_error(&e)),
                    );
                    ok = false;
                }
            }
        }
        if ok {
            Slot::Set(F {
                v: f.v.into_iter().map(|i| i.v).collect(),
                pos: f.pos,
                written: String::new(),
                inherited: false,
            })
        } else {
            Slot::Invalid
        }
    }

    fn json(&mut self, node: &Node, path: &str) -> Slot<BTreeMap<String, serde_json::Value>> {
        let Some(entries) =
            self.entries(node, path, None, "a mapping of JSON pointers (\"/status\") to expected values")
        else {
            return Slot::Invalid;
        };
        if entries.is_empty() {
            self.error(node.pos, path, "the mapping is empty: remove the field or add a pointer");
            return Slot::Invalid;
        }
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (pointer, value, key_pos) in entries {
            let vp = join_key(path, &pointer);
            if let Err(message) = check_pointer(&pointer) {
                self.error(key_pos, &vp, message);
                ok = false;
                continue;
            }
            match self.json_value(value, &vp) {
                Some(v) => {
                    out.insert(pointer, v);
                }
                None => ok = false,
            }
        }
        if ok {
            Slot::Set(F { v: out, pos: node.pos, written: String::new(), inherited: false })
        } else {
            Slot::Invalid
        }
    }

    fn json_value(&mut self, node: &Node, path: &str) -> Option<serde_json::Value> {
        use serde_json::Value;
        match &node.kind {
            Kind::Seq(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match self.json_value(item, &join_index(path, i)) {
                        Some(v) => out.push(v),
                        None => ok = false,
                    }
                }
                ok.then_some(Value::Array(out))
            }
            Kind::Map(_) => {
                let entries = self.entries(node, path, None, "a mapping")?;
                let mut out = serde_json::Map::new();
                let mut ok = true;
                for (key, value, _) in entries {
                    match self.json_value(value, &join_key(path, &key)) {
                        Some(v) => {
                            out.insert(key, v);
                        }
                        None => ok = false,
                    }
                }
                ok.then_some(Value::Object(out))
            }
            Kind::Scalar { .. } => {
                let s = self.scalar(node, path).ok()?;
                Some(match s.ty {
                    PlainType::Null => Value::Null,
                    PlainType::Bool => Value::Bool(s.text.eq_ignore_ascii_case("true")),
                    PlainType::Int => match parse_int(&s.text) {
                        Some(i) => Value::from(i),
                        None => Value::String(s.text),
                    },
                    PlainType::Float => match s
                        .text
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                    {
                        Some(n) => Value::Number(n),
                        None => {
                            self.error(node.pos, path, format!("{} cannot be represented in JSON", s.text));
                            return None;
                        }
                    },
                    PlainType::Str => Value::String(s.text),
                })
            }
        }
    }
}

fn plain_list(slot: Slot<Vec<F<String>>>) -> Slot<Vec<String>> {
    match slot {
        Slot::Set(f) => Slot::Set(F {
            v: f.v.into_iter().map(|i| i.v).collect(),
            pos: f.pos,
            written: f.written,
            inherited: false,
        }),
        Slot::Invalid => Slot::Invalid,
        Slot::Absent => Slot::Absent,
    }
}

/// RFC 6901: "/a/b", "~0" is "~" and "~1" is "/".
fn check_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.starts_with('/') {
        let hint = if pointer.is_empty() {
            String::new()
        } else {
            format!(" (did you mean \"/{}\"?)", pointer.replace('.', "/"))
        };
        return Err(format!("{} is not a JSON pointer: it must start with \"/\"{hint}", quoted(pointer)));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!("{}: `~` must be followed by 0 (for ~) or 1 (for /)", quoted(pointer)));
        }
    }
    Ok(())
}

/// The regex crate's multi-line message, on one line.
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| text.lines().last().unwrap_or("").trim().to_string())
}
