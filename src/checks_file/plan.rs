//! The difference between what the files declare and what the database
//! holds: create, update (and which fields), unchanged, delete.
//!
//! Pure, so it is tested without a database, and so `--dry-run` and a real
//! apply print the same plan. Unchanged means "the stored row is exactly
//! what would be written": then nothing is written at all, which keeps the
//! version, `updated_at` and the schedulers' wake-ups where they were.

use std::collections::HashMap;

use serde_json::Value;

use super::check::DeclaredCheck;
use super::declared::Declared;

/// A row of `checks` as the plan needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Existing {
    pub id: i64,
    pub name: String,
    pub interval_ms: i32,
    pub enabled: bool,
    /// The stored spec as JSON text: parsed for its comparison only, since
    /// a parsed `Value` takes several times the text's memory and an apply
    /// may compare 100,000 of them.
    pub spec: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// Index into the declared checks.
    pub index: usize,
    pub id: i64,
    /// Changed fields, named as in the checks file (`interval`, `expect.status`).
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Indexes into the declared checks, in declaration order.
    pub create: Vec<usize>,
    pub update: Vec<Update>,
    pub unchanged: usize,
    /// (id, name) of checks to delete (`--prune`), by name.
    pub delete: Vec<(i64, String)>,
    /// Checks in the database that no file declares, kept (no `--prune`).
    pub undeclared: usize,
    /// Names of the API-owned checks no file declares: apply never changes
    /// nor prunes them (apply.rs keeps them out of the plan).
    pub kept_api: Vec<String>,
    /// Notification channels (`alerts:`).
    pub channels: NamedPlan,
    /// Maintenance windows (`maintenance:`).
    pub windows: NamedPlan,
    /// Status pages (`status_pages:`), file-owned ones only.
    pub pages: NamedPlan,
}

/// The plan of a table keyed by name whose rows are a JSON spec (channels,
/// maintenance windows).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamedPlan {
    /// Indexes into the declared items.
    pub create: Vec<usize>,
    /// (index, changed field names).
    pub update: Vec<(usize, Vec<String>)>,
    pub unchanged: usize,
    /// Names to delete (`--prune`).
    pub delete: Vec<String>,
    /// Stored but not declared, kept.
    pub undeclared: usize,
    /// Every declared item's spec, by index.
    pub specs: Vec<Value>,
}

/// API-owned checks named in apply's output at most (the rest are counted).
const KEPT_SHOWN: usize = 20;

/// The verbs of change lines and summaries: a dry run says what it would do.
fn verbs(dry_run: bool) -> (&'static str, &'static str, &'static str) {
    if dry_run {
        ("create", "update", "delete")
    } else {
        ("created", "updated", "deleted")
    }
}

/// `2 created, 1 updated, 5 unchanged, 0 deleted`.
fn counts(create: usize, update: usize, unchanged: usize, delete: usize, dry_run: bool) -> String {
    let (created, updated, deleted) = verbs(dry_run);
    format!("{create} {created}, {update} {updated}, {unchanged} unchanged, {delete} {deleted}")
}

impl NamedPlan {
    pub fn is_noop(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }

    fn declared(&self) -> usize {
        self.specs.len()
    }

    /// Change lines (`+ channel ops created`) for items named `names`.
    fn render_changes(&self, out: &mut String, what: &str, names: &[&str], dry_run: bool) {
        use std::fmt::Write;
        let (create, update, delete) = verbs(dry_run);
        for &i in &self.create {
            let _ = writeln!(out, "+ {what} {} {create}", names[i]);
        }
        for (i, fields) in &self.update {
            let _ = writeln!(out, "~ {what} {} {update}: {}", names[*i], fields.join(", "));
        }
        for name in &self.delete {
            let _ = writeln!(out, "- {what} {name} {delete}");
        }
    }

    /// The summary lines, only when there is anything of this kind at all.
    fn render_summary(&self, out: &mut String, one: &str, many: &str, dry_run: bool) {
        use std::fmt::Write;
        let n = self.declared();
        if n == 0 && self.delete.is_empty() && self.undeclared == 0 {
            return;
        }
        let noun = |n: usize| if n == 1 { one } else { many };
        let summary =
            counts(self.create.len(), self.update.len(), self.unchanged, self.delete.len(), dry_run);
        if dry_run {
            let _ = writeln!(out, "{n} {} declared; would be {summary}.", noun(n));
        } else {
            let _ = writeln!(out, "{n} {} declared: {summary}.", noun(n));
        }
        if self.undeclared > 0 {
            let _ = writeln!(
                out,
                "{} {} in the database {} not declared in these files and {} kept (--prune deletes {}).",
                self.undeclared,
                noun(self.undeclared),
                if self.undeclared == 1 { "is" } else { "are" },
                if self.undeclared == 1 { "was" } else { "were" },
                if self.undeclared == 1 { "it" } else { "them" },
            );
        }
    }
}

/// Plans a name-keyed table: `declared` (name, spec) against `existing`.
pub fn plan_named(declared: &[(&str, Value)], existing: Vec<(String, Value)>, prune: bool) -> NamedPlan {
    let mut by_name: HashMap<String, Value> = existing.into_iter().collect();
    let mut plan = NamedPlan::default();
    for (index, (name, spec)) in declared.iter().enumerate() {
        match by_name.remove(*name) {
            None => plan.create.push(index),
            Some(old) => {
                let mut fields = Vec::new();
                diff_spec(&old, spec, &mut fields);
                if fields.is_empty() {
                    plan.unchanged += 1;
                } else {
                    plan.update.push((index, fields));
                }
            }
        }
    }
    if prune {
        let mut gone: Vec<String> = by_name.into_keys().collect();
        gone.sort();
        plan.delete = gone;
    } else {
        plan.undeclared = by_name.len();
    }
    plan.specs = declared.iter().map(|(_, spec)| spec.clone()).collect();
    plan
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.create.is_empty()
            && self.update.is_empty()
            && self.delete.is_empty()
            && self.channels.is_noop()
            && self.windows.is_noop()
            && self.pages.is_noop()
    }

    /// What `checks apply` prints: one line per change (names and field
    /// names only, never values: they may be secrets), then a summary.
    pub fn render(&self, all: &Declared, dry_run: bool) -> String {
        use std::fmt::Write;
        let declared = &all.checks;
        let mut out = String::new();
        let (create, update, delete) = verbs(dry_run);
        for &i in &self.create {
            let _ = writeln!(out, "+ {} {create}", declared[i].name);
        }
        for u in &self.update {
            let _ = writeln!(out, "~ {} {update}: {}", declared[u.index].name, u.fields.join(", "));
        }
        for (_, name) in &self.delete {
            let _ = writeln!(out, "- {name} {delete}");
        }
        let channel_names: Vec<&str> = all.channels.iter().map(|c| c.name.as_str()).collect();
        self.channels.render_changes(&mut out, "channel", &channel_names, dry_run);
        let window_names: Vec<&str> = all.windows.iter().map(|w| w.name.as_str()).collect();
        self.windows.render_changes(&mut out, "maintenance", &window_names, dry_run);
        let page_slugs: Vec<&str> = all.pages.iter().map(|p| p.slug.as_str()).collect();
        self.pages.render_changes(&mut out, "status page", &page_slugs, dry_run);
        let checks = |n: usize| if n == 1 { "check" } else { "checks" };
        let summary =
            counts(self.create.len(), self.update.len(), self.unchanged, self.delete.len(), dry_run);
        if dry_run {
            let _ = writeln!(
                out,
                "Dry run: {} {} declared; would be {summary}. Nothing was written.",
                declared.len(),
                checks(declared.len())
            );
        } else if self.is_noop() {
            let _ = writeln!(
                out,
                "{} {} declared: {summary}. Nothing to do.",
                declared.len(),
                checks(declared.len())
            );
        } else {
            let _ = writeln!(out, "{} {} declared: {summary}.", declared.len(), checks(declared.len()));
        }
        self.channels.render_summary(&mut out, "channel", "channels", dry_run);
        self.windows.render_summary(&mut out, "maintenance window", "maintenance windows", dry_run);
        self.pages.render_summary(&mut out, "status page", "status pages", dry_run);
        if self.undeclared > 0 {
            let _ = writeln!(
                out,
                "{} {} in the database {} not declared in these files and {} kept (--prune deletes them).",
                self.undeclared,
                checks(self.undeclared),
                if self.undeclared == 1 { "is" } else { "are" },
                if self.undeclared == 1 { "was" } else { "were" },
            );
        }
        if !self.kept_api.is_empty() {
            let n = self.kept_api.len();
            let mut names = self.kept_api.iter().take(KEPT_SHOWN).cloned().collect::<Vec<_>>().join(", ");
            if n > KEPT_SHOWN {
                let _ = write!(names, " and {} more", n - KEPT_SHOWN);
            }
            let _ = writeln!(
                out,
                "{n} {} owned by the API {} kept: {names} (apply never changes or prunes a check created through the API).",
                checks(n),
                if n == 1 { "was" } else { "were" },
            );
        }
        out
    }
}

/// Plans making the database match `declared`.
pub fn plan(
    declared: &[DeclaredCheck],
    existing: Vec<Existing>,
    prune: bool,
) -> Result<Plan, serde_json::Error> {
    // Each spec's JSON is made for its comparison and dropped: holding
    // every one (and every stored one) at once doubled what a large apply
    // took. The writes serialise what they write (apply.rs).
    let mut by_name: HashMap<String, Existing> = existing.into_iter().map(|e| (e.name.clone(), e)).collect();
    let mut plan = Plan::default();
    for (index, check) in declared.iter().enumerate() {
        match by_name.remove(&check.name) {
            None => plan.create.push(index),
            Some(old) => {
                let mut fields = Vec::new();
                if i64::from(old.interval_ms) != i64::from(check.interval_ms) {
                    fields.push("interval".to_string());
                }
                if old.enabled != check.enabled {
                    fields.push("enabled".to_string());
                }
                let stored: Value = serde_json::from_str(&old.spec)?;
                diff_spec(&stored, &serde_json::to_value(&check.spec)?, &mut fields);
                if fields.is_empty() {
                    plan.unchanged += 1;
                } else {
                    plan.update.push(Update { index, id: old.id, fields });
                }
            }
        }
    }
    if prune {
        let mut gone: Vec<(i64, String)> = by_name.into_values().map(|e| (e.id, e.name)).collect();
        gone.sort_by(|a, b| a.1.cmp(&b.1));
        plan.delete = gone;
    } else {
        plan.undeclared = by_name.len();
    }
    Ok(plan)
}

/// The checks-file name of a `CheckSpec` JSON key.
fn file_name(key: &str) -> &str {
    match key {
        "timeout_ms" => "timeout",
        "max_redirects" => "follow_redirects",
        "max_response_time_ms" => "max_response_time",
        "remind_every_ms" => "remind_every",
        "duration_ms" => "duration",
        other => other,
    }
}

/// Appends the names of the fields that differ between two stored specs.
/// Mappings the user keys (headers, labels, expect) are named one level
/// deeper: `headers.Authorization`, `expect.status`.
pub fn diff_spec(old: &Value, new: &Value, out: &mut Vec<String>) {
    let empty = serde_json::Map::new();
    let old_map = old.as_object().unwrap_or(&empty);
    let new_map = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = old_map.keys().chain(new_map.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (a, b) = (old_map.get(key), new_map.get(key));
        if a == b {
            continue;
        }
        let name = file_name(key);
        match key.as_str() {
            "headers" | "labels" | "expect" => {
                let (a, b) = (a.cloned().unwrap_or(Value::Null), b.cloned().unwrap_or(Value::Null));
                let mut inner = Vec::new();
                diff_spec(&a, &b, &mut inner);
                out.extend(inner.into_iter().map(|f| format!("{name}.{f}")));
            }
            _ => out.push(name.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks_file::diagnostic::Pos;
    use crate::model::CheckSpec;

    fn declared(name: &str, interval_ms: u32, spec: serde_json::Value) -> DeclaredCheck {
        DeclaredCheck {
            name: name.into(),
            interval_ms,
            enabled: true,
            spec: serde_json::from_value::<CheckSpec>(spec).unwrap(),
            file: "f".into(),
            pos: Pos::default(),
            path: "checks[0]".into(),
            alert_refs: Vec::new(),
        }
    }

    fn existing(id: i64, d: &DeclaredCheck) -> Existing {
        Existing {
            id,
            name: d.name.clone(),
            interval_ms: d.interval_ms as i32,
            enabled: d.enabled,
            spec: serde_json::to_string(&d.spec).unwrap(),
        }
    }

    #[test]
    fn creates_updates_keeps_and_prunes() {
        let spec = serde_json::json!({"url": "http://x/", "timeout_ms": 1000, "headers": {"A": "1"}});
        let a = declared("a", 60_000, spec.clone());
        let b = declared("b", 60_000, spec.clone());
        let mut db_b = existing(2, &b);
        db_b.interval_ms = 30_000;
        let old: CheckSpec = serde_json::from_value(
            serde_json::json!({"url": "http://x/", "timeout_ms": 2000, "headers": {"A": "2"}, "expect": {"status": [200]}}),
        )
        .unwrap();
        db_b.spec = serde_json::to_string(&old).unwrap();
        let c = declared("c", 60_000, spec.clone());
        let gone =
            Existing { id: 9, name: "zz".into(), interval_ms: 1000, enabled: true, spec: spec.to_string() };
        let declared_all = vec![a.clone(), b.clone(), c.clone()];
        let rows = vec![db_b.clone(), existing(3, &c), gone.clone()];

        let p = plan(&declared_all, rows.clone(), false).unwrap();
        assert_eq!(p.create, vec![0]);
        assert_eq!(
            p.update,
            vec![Update {
                index: 1,
                id: 2,
                fields: vec!["interval".into(), "expect.status".into(), "headers.A".into(), "timeout".into()]
            }]
        );
        assert_eq!((p.unchanged, p.undeclared), (1, 1));
        assert!(p.delete.is_empty());

        let p = plan(&declared_all, rows, true).unwrap();
        assert_eq!(p.delete, vec![(9, "zz".to_string())]);
        assert_eq!(p.undeclared, 0);
    }

    #[test]
    fn identical_is_a_noop() {
        let a = declared(
            "a",
            60_000,
            serde_json::json!({"url": "http://x/", "timeout_ms": 1000, "expect": {"json": {"/v": 1.5}}}),
        );
        let p = plan(std::slice::from_ref(&a), vec![existing(1, &a)], true).unwrap();
        assert!(p.is_noop());
        assert_eq!(p.unchanged, 1);
    }
}
