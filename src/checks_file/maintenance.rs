//! The checks file's `maintenance:` section: windows during which checks
//! keep running and recording but alerts are suppressed. Validated into
//! [`WindowSpec`]s: one-off windows are resolved to UTC instants here (in
//! the window's time zone), recurring ones keep their local start time.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, NaiveTime, Utc};

use super::alerts::Fields;
use super::diagnostic::{join_index, join_key, Pos};
use super::names::Ref;
use super::reader::{format_ms, item_path, quoted, Ctx, Slot};
use super::schema;
use super::yaml::{Kind, Node};
use crate::model::maintenance::{parse_tz, resolve_local, Schedule, WindowSpec, DAYS};

/// Longest recurring window (a week: longer would overlap itself).
pub const MAX_RECURRING_MS: u64 = 7 * 86_400_000;
/// Longest one-off window.
pub const MAX_ONE_OFF_MS: u64 = 366 * 86_400_000;

/// One valid window, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredWindow {
    pub name: String,
    pub spec: WindowSpec,
    pub file: String,
    pub pos: Pos,
    pub path: String,
    /// Checks it names (they must be declared).
    pub check_refs: Vec<Ref>,
}

/// Day names people write, to the stored three-letter form.
fn day(text: &str) -> Option<&'static str> {
    let lower = text.trim().to_ascii_lowercase();
    DAYS.iter().copied().find(|d| lower == *d || (lower.len() > 3 && full_name(d).starts_with(&lower)))
}

fn full_name(day: &str) -> &'static str {
    match day {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    }
}

/// "2024-06-01 22:00" (local) or RFC 3339 with an offset.
fn parse_instant(text: &str, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(absolute) = DateTime::parse_from_rfc3339(t) {
        return Some(absolute.with_timezone(&Utc));
    }
    ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
        .map(|naive| resolve_local(tz, naive))
}

impl Ctx<'_> {
    /// `maintenance:`: a list of windows.
    pub(super) fn windows(&mut self, node: &Node, path: &str, out: &mut Vec<DeclaredWindow>) {
        let Kind::Seq(items) = &node.kind else {
            self.type_error::<()>(node, path, "a list of maintenance windows");
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let window_path = join_index(path, i);
            let before = self.diags.len();
            if let (Some(w), true) = (self.window(item, &window_path), true) {
                if self.diags.len() == before {
                    out.push(w);
                }
            }
        }
    }

    fn window(&mut self, node: &Node, path: &str) -> Option<DeclaredWindow> {
        let entries = self.entries(
            node,
            path,
            Some((schema::WINDOW, "a maintenance window")),
            "a maintenance window (a mapping with `name` and a schedule)",
        )?;
        let mut fields = Fields { entries, path: path.to_string() };
        let name = match fields.take("name") {
            Some((n, p)) => self.name(n, &p).set().map(|f| (f.v.clone(), f.pos)),
            None => {
                self.error(
                    node.pos,
                    &join_key(path, "name"),
                    "missing: every maintenance window needs a `name`",
                );
                None
            }
        };
        let description = self.optional_text(&mut fields, "description");
        let tz = match fields.take("time_zone") {
            Some((n, p)) => match self.text(n, &p, "time_zone") {
                Slot::Set(f) => match parse_tz(f.v.trim()) {
                    Some(tz) => Some(tz),
                    None => {
                        self.error(
                            n.pos,
                            &p,
                            format!("unknown time zone {}: use an IANA name such as \"Europe/Paris\", \"America/New_York\" or \"UTC\"", quoted(&f.v)),
                        );
                        None
                    }
                },
                _ => None,
            },
            None => Some(chrono_tz::Tz::UTC),
        };
        let checks = match fields.take("checks") {
            Some((n, p)) => match self.string_list(n, &p, "a check name") {
                Slot::Set(f) => Some(
                    f.v.iter()
                        .enumerate()
                        .map(|(i, item)| Ref {
                            name: item.v.trim().to_string(),
                            file: self.file.to_string(),
                            pos: item.pos,
                            path: item_path(n, &p, i),
                            inherited: false,
                        })
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            },
            None => Some(Vec::new()),
        };
        let labels = match fields.take("labels") {
            Some((n, p)) => match self.labels(n, &p) {
                Slot::Set(f) => {
                    Some(f.v.iter().map(|(k, v)| (k.v.clone(), v.v.clone())).collect::<BTreeMap<_, _>>())
                }
                _ => None,
            },
            None => Some(BTreeMap::new()),
        };
        let schedule = self.schedule(&mut fields, node, path, tz);
        let (name, pos) = name?;
        let checks = checks?;
        Some(DeclaredWindow {
            spec: WindowSpec {
                time_zone: tz?.name().to_string(),
                schedule: schedule?,
                checks: checks.iter().map(|r| r.name.clone()).collect(),
                labels: labels?,
                description: description?,
            },
            name,
            file: self.file.to_string(),
            pos,
            path: path.to_string(),
            check_refs: checks,
        })
    }

    fn schedule(
        &mut self,
        fields: &mut Fields<'_>,
        node: &Node,
        path: &str,
        tz: Option<chrono_tz::Tz>,
    ) -> Option<Schedule> {
        let every = fields.take("every");
        let at = fields.take("at");
        let start = fields.take("start");
        let end = fields.take("end");
        let duration = fields.take("duration");
        if let Some((every_node, every_path)) = every {
            for (field, misplaced) in [("start", &start), ("end", &end)] {
                if let Some((n, p)) = misplaced {
                    self.error(
                        n.pos,
                        p,
                        format!("`{field}` is for one-off windows: a recurring window (with `every`) starts `at` a time of day and lasts `duration`"),
                    );
                }
            }
            let days = self.days(every_node, &every_path);
            let at = match at {
                Some((n, p)) => match self.text(n, &p, "at") {
                    Slot::Set(f) => match NaiveTime::parse_from_str(f.v.trim(), "%H:%M")
                        .or_else(|_| NaiveTime::parse_from_str(f.v.trim(), "%H:%M:%S"))
                    {
                        Ok(t) => Some(t),
                        Err(_) => {
                            self.error(
                                n.pos,
                                &p,
                                format!(
                                    "invalid time of day {}: write it like \"02:30\" (24-hour clock)",
                                    quoted(&f.v)
                                ),
                            );
                            None
                        }
                    },
                    _ => None,
                },
                None => {
                    self.error(
                        node.pos,
                        &join_key(path, "at"),
                        "missing: a recurring window needs `at` (its local start time, e.g. \"02:00\")",
                    );
                    None
                }
            };
            let duration_ms = match duration {
                Some((n, p)) => self.duration(n, &p, 60_000, MAX_RECURRING_MS).set().map(|f| f.v),
                None => {
                    self.error(
                        node.pos,
                        &join_key(path, "duration"),
                        "missing: a recurring window needs a `duration` (e.g. 2h)",
                    );
                    None
                }
            };
            if start.is_some() || end.is_some() {
                return None;
            }
            return Some(Schedule::Recurring { days: days?, at: at?, duration_ms: duration_ms? });
        }
        if let Some((n, p)) = &at {
            self.error(
                n.pos,
                p,
                "`at` is for recurring windows: add `every: day` (or days of the week), or give a one-off window `start` and `end`",
            );
        }
        let Some((start_node, start_path)) = start else {
            self.error(
                node.pos,
                &join_key(path, "start"),
                "missing: a window needs a schedule: `start` and `end` (or `duration`) for a one-off window, or `every`, `at` and `duration` for a recurring one",
            );
            return None;
        };
        // A bad time zone is already reported; go on to find other problems.
        let tz_ok = tz.is_some();
        let tz = tz.unwrap_or(chrono_tz::Tz::UTC);
        let instant = |ctx: &mut Self, n: &Node, p: &str| -> Option<DateTime<Utc>> {
            let f = ctx.text(n, p, "the date and time").set()?.v.clone();
            match parse_instant(&f, tz) {
                Some(t) => Some(t),
                None => {
                    ctx.error(
                        n.pos,
                        p,
                        format!("invalid date and time {}: write \"2024-06-01 22:00\" (in the window's time_zone) or RFC 3339 with an offset", quoted(&f)),
                    );
                    None
                }
            }
        };
        let begin = instant(self, start_node, &start_path);
        let finish = match (end, duration) {
            (Some((en, ep)), Some((dn, dp))) => {
                let _ = (en, ep);
                self.error(dn.pos, &dp, "give either `end` or `duration`, not both");
                None
            }
            (Some((en, ep)), None) => instant(self, en, &ep).map(|t| (t, en.pos, ep)),
            (None, Some((dn, dp))) => {
                match (self.duration(dn, &dp, 60_000, MAX_ONE_OFF_MS).set().map(|f| f.v), begin) {
                    (Some(ms), Some(b)) => Some((b + chrono::Duration::milliseconds(ms as i64), dn.pos, dp)),
                    _ => None,
                }
            }
            (None, None) => {
                self.error(
                    node.pos,
                    &join_key(path, "end"),
                    "missing: a one-off window needs `end` (or `duration`)",
                );
                None
            }
        };
        let (begin, (finish, finish_pos, finish_path)) = (begin?, finish?);
        if !tz_ok {
            return None;
        }
        if finish <= begin {
            self.error(finish_pos, &finish_path, "the window ends before it starts");
            return None;
        }
        if (finish - begin).num_milliseconds() as u64 > MAX_ONE_OFF_MS {
            self.error(
                finish_pos,
                &finish_path,
                format!("a one-off window lasts at most {}", format_ms(MAX_ONE_OFF_MS)),
            );
            return None;
        }
        Some(Schedule::Once { start: begin, end: finish })
    }

    /// `every`: day, weekday(s), weekend(s), a day name, or a list of day names.
    fn days(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        let expected = "`day`, `weekday`, `weekend`, a day (mon … sun) or a list of days";
        if let Kind::Scalar { .. } = node.kind {
            let text = self.text(node, path, "every").set()?.v.trim().to_ascii_lowercase();
            match text.as_str() {
                "day" | "daily" | "every day" => return Some(Vec::new()),
                "weekday" | "weekdays" => return Some(DAYS[..5].iter().map(|d| d.to_string()).collect()),
                "weekend" | "weekends" => return Some(DAYS[5..].iter().map(|d| d.to_string()).collect()),
                _ => {}
            }
        }
        let Slot::Set(list) = self.string_list(node, path, "a day") else { return None };
        let mut out: Vec<String> = Vec::new();
        let mut ok = true;
        for (i, item) in list.v.iter().enumerate() {
            match day(&item.v) {
                Some(d) if !out.iter().any(|o| o == d) => out.push(d.to_string()),
                Some(d) => {
                    self.error(item.pos, &item_path(node, path, i), format!("`{d}` is listed twice"));
                    ok = false;
                }
                None => {
                    self.error(
                        item.pos,
                        &item_path(node, path, i),
                        format!("unknown day {}: use {expected}", quoted(&item.v)),
                    );
                    ok = false;
                }
            }
        }
        // Stored Monday first, whatever the order written.
        out.sort_by_key(|d| DAYS.iter().position(|x| x == d));
        ok.then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks_file::load::{validate_all, Source};

    fn run(text: &str) -> Result<Vec<DeclaredWindow>, Vec<String>> {
        validate_all(&[Source { name: "m.yaml".into(), text: text.into() }], &|_| None)
            .map(|d| d.windows)
            .map_err(|d| d.iter().map(|x| x.to_string()).collect())
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn one_off_and_recurring_windows() {
        let w = run("
maintenance:
  - name: migration
    time_zone: Europe/Paris
    start: 2024-06-01 22:00
    end: 2024-06-02 02:00
    checks: [api]
  - name: nightly
    time_zone: America/New_York
    every: [Sunday, sat]
    at: '23:30'
    duration: 90m
    labels: { team: web }
  - name: freeze
    start: 2024-12-24T00:00:00Z
    duration: 48h
checks: []
")
        .unwrap();
        assert_eq!(
            w[0].spec.schedule,
            Schedule::Once { start: utc("2024-06-01T20:00:00Z"), end: utc("2024-06-02T00:00:00Z") }
        );
        assert_eq!(w[0].check_refs[0].name, "api");
        assert_eq!(
            w[1].spec.schedule,
            Schedule::Recurring {
                days: vec!["sat".into(), "sun".into()],
                at: NaiveTime::from_hms_opt(23, 30, 0).unwrap(),
                duration_ms: 5_400_000
            }
        );
        assert_eq!(w[1].spec.time_zone, "America/New_York");
        assert_eq!(
            w[2].spec.schedule,
            Schedule::Once { start: utc("2024-12-24T00:00:00Z"), end: utc("2024-12-26T00:00:00Z") }
        );
        assert_eq!(w[2].spec.time_zone, "UTC");
    }

    #[test]
    fn problems_are_positioned() {
        let errors = run("
maintenance:
  - name: a
    time_zone: Mars/Olympus
    start: 2024-06-01 22:00
  - name: b
    every: fortnight
    at: 25:00
  - name: c
    start: 2024-06-02 02:00
    end: 2024-06-01 22:00
    at: '02:00'
  - start: tomorrow
    end: 2024-06-01 22:00
checks: []
")
        .unwrap_err();
        assert_eq!(
            errors,
            vec![
                "m.yaml:3:5: maintenance[0].end: missing: a one-off window needs `end` (or `duration`)",
                "m.yaml:4:16: maintenance[0].time_zone: unknown time zone \"Mars/Olympus\": use an IANA name such as \"Europe/Paris\", \"America/New_York\" or \"UTC\"",
                "m.yaml:6:5: maintenance[1].duration: missing: a recurring window needs a `duration` (e.g. 2h)",
                "m.yaml:7:12: maintenance[1].every: unknown day \"fortnight\": use `day`, `weekday`, `weekend`, a day (mon … sun) or a list of days",
                "m.yaml:8:9: maintenance[1].at: invalid time of day \"25:00\": write it like \"02:30\" (24-hour clock)",
                "m.yaml:11:10: maintenance[2].end: the window ends before it starts",
                "m.yaml:12:9: maintenance[2].at: `at` is for recurring windows: add `every: day` (or days of the week), or give a one-off window `start` and `end`",
                "m.yaml:13:5: maintenance[3].name: missing: every maintenance window needs a `name`",
                "m.yaml:13:12: maintenance[3].start: invalid date and time \"tomorrow\": write \"2024-06-01 22:00\" (in the window's time_zone) or RFC 3339 with an offset",
            ]
        );
    }
}
