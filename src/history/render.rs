//! Reports and incident lists as people read them (aligned tables with
//! human durations) and as programs read them (JSON, CSV). Pure: the clock
//! is a parameter.
//!
//! The JSON shapes are stable (keys are only ever added): durations in
//! seconds and response times in milliseconds as numbers, times in
//! RFC 3339 (UTC), null where there is nothing to say.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::report::{timestamp, Incident, Report, ReportRow};

/// One line of `report -o json` (and the columns of `-o csv`, in order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportLine {
    pub name: String,
    /// up / (up + down) × 100; null without up or down time.
    pub uptime_percent: Option<f64>,
    pub up_seconds: f64,
    pub down_seconds: f64,
    pub no_data_seconds: f64,
    pub maintenance_seconds: f64,
    /// Incidents open at some time in the window.
    pub incidents: i64,
    pub mttr_seconds: Option<f64>,
    pub longest_outage_seconds: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    pub runs: i64,
    pub failures: i64,
    /// "raw", "hour" or "day": the data that answered.
    pub granularity: &'static str,
    /// The window answered (rollups answer whole buckets).
    pub from: String,
    pub to: String,
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

impl ReportLine {
    pub fn new(report: &Report, row: &ReportRow) -> ReportLine {
        let d = &row.durations;
        ReportLine {
            name: row.name.clone(),
            uptime_percent: row.uptime_percent,
            up_seconds: seconds(d.up_ms),
            down_seconds: seconds(d.down_ms),
            no_data_seconds: seconds(d.no_data_ms),
            maintenance_seconds: seconds(d.maintenance_ms),
            incidents: row.incidents,
            mttr_seconds: row.mttr_seconds,
            longest_outage_seconds: row.longest_outage_seconds,
            p50_ms: row.p50_ms,
            p95_ms: row.p95_ms,
            p99_ms: row.p99_ms,
            mean_ms: row.mean_ms,
            runs: row.runs,
            failures: row.failures,
            granularity: report.source.as_str(),
            from: timestamp(&report.from),
            to: timestamp(&report.to),
        }
    }
}

/// `report -o json`: an array of [`ReportLine`].
pub fn report_json(report: &Report) -> Result<String, serde_json::Error> {
    let lines: Vec<ReportLine> = report.rows.iter().map(|r| ReportLine::new(report, r)).collect();
    serde_json::to_string_pretty(&lines)
}

/// The CSV header: the JSON keys, in order.
pub const CSV_HEADER: [&str; 18] = [
    "name",
    "uptime_percent",
    "up_seconds",
    "down_seconds",
    "no_data_seconds",
    "maintenance_seconds",
    "incidents",
    "mttr_seconds",
    "longest_outage_seconds",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "mean_ms",
    "runs",
    "failures",
    "granularity",
    "from",
    "to",
];

/// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line
/// break, quotes doubled.
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn number(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// `report -o csv`: the header and one record per check; empty fields for
/// null; CRLF line ends are not used (one `\n` per record).
pub fn report_csv(report: &Report) -> String {
    let mut out = CSV_HEADER.join(",");
    out.push('\n');
    for row in &report.rows {
        let l = ReportLine::new(report, row);
        let fields = [
            csv_field(&l.name),
            number(l.uptime_percent),
            l.up_seconds.to_string(),
            l.down_seconds.to_string(),
            l.no_data_seconds.to_string(),
            l.maintenance_seconds.to_string(),
            l.incidents.to_string(),
            number(l.mttr_seconds),
            number(l.longest_outage_seconds),
            number(l.p50_ms),
            number(l.p95_ms),
            number(l.p99_ms),
            number(l.mean_ms),
            l.runs.to_string(),
            l.failures.to_string(),
            l.granularity.to_string(),
            l.from,
            l.to,
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// "0s", "45s", "3m 20s", "2h 3m", "4d 2h"; "450ms" under a second.
pub fn human_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms > 0 && ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn human_seconds(v: Option<f64>) -> String {
    v.map(|s| human_duration((s * 1000.0).round() as i64)).unwrap_or_else(|| "-".into())
}

fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v < 10.0 => format!("{v:.1}ms"),
        Some(v) => format!("{v:.0}ms"),
    }
}

/// "from daily rollups: 2026-10-30T00:00:00Z – now".
pub fn report_note(report: &Report) -> String {
    let to = if report.live { "now".to_string() } else { timestamp(&report.to) };
    format!("from {}: {} – {}", report.source.describe(), timestamp(&report.from), to)
}

/// Rows of cells under a header, columns two spaces apart, `right`
/// columns aligned right, trailing blanks trimmed.
fn align<const N: usize>(header: [&str; N], rows: &[[String; N]], right: &[usize]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.map(str::to_string);
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = " ".repeat(widths[i].saturating_sub(cell.chars().count()));
            if i > 0 {
                line.push_str("  ");
            }
            if right.contains(&i) {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `report` as a table, with the note saying which data answered which
/// window under it.
pub fn report_table(report: &Report) -> String {
    let header = [
        "NAME",
        "UPTIME",
        "UP",
        "DOWN",
        "NO DATA",
        "MAINT",
        "INCIDENTS",
        "MTTR",
        "LONGEST",
        "P50",
        "P95",
        "P99",
    ];
    let rows: Vec<[String; 12]> = report
        .rows
        .iter()
        .map(|r| {
            let d = &r.durations;
            [
                r.name.clone(),
                r.uptime_percent.map(|u| format!("{u:.3}%")).unwrap_or_else(|| "-".into()),
                human_duration(d.up_ms),
                human_duration(d.down_ms),
                human_duration(d.no_data_ms),
                human_duration(d.maintenance_ms),
                r.incidents.to_string(),
                human_seconds(r.mttr_seconds),
                human_seconds(r.longest_outage_seconds),
                ms(r.p50_ms),
                ms(r.p95_ms),
                ms(r.p99_ms),
            ]
        })
        .collect();
    let mut out = if rows.is_empty() {
        "no checks match: `sentryk8s checks list` shows the declared ones\n".to_string()
    } else {
        align(header, &rows, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    };
    out.push_str(&report_note(report));
    out.push('\n');
    out
}

/// One entry of `incidents -o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentLine {
    pub id: i64,
    pub check: String,
    pub opened_at: String,
    pub confirmed_at: String,
    /// Null while open.
    pub resolved_at: Option<String>,
    /// "recovered", "paused" or "deleted"; null while open.
    pub resolution: Option<String>,
    /// From opened to resolved, or to now while open.
    pub duration_seconds: f64,
    pub first_error: Option<String>,
    pub last_error: Option<String>,
    pub in_maintenance: bool,
    pub alerts_sent: i32,
}

impl IncidentLine {
    pub fn new(i: &Incident, now: DateTime<Utc>) -> IncidentLine {
        IncidentLine {
            id: i.id,
            check: i.check.clone(),
            opened_at: timestamp(&i.opened_at),
            confirmed_at: timestamp(&i.confirmed_at),
            resolved_at: i.resolved_at.as_ref().map(timestamp),
            resolution: i.resolution.clone(),
            duration_seconds: i.duration_seconds(now),
            first_error: i.first_error.clone(),
            last_error: i.last_error.clone(),
            in_maintenance: i.in_maintenance,
            alerts_sent: i.alerts_sent,
        }
    }
}

/// `incidents -o json`: an array of [`IncidentLine`], newest first.
pub fn incidents_json(list: &[Incident], now: DateTime<Utc>) -> Result<String, serde_json::Error> {
    let lines: Vec<IncidentLine> = list.iter().map(|i| IncidentLine::new(i, now)).collect();
    serde_json::to_string_pretty(&lines)
}

/// One line of free text, cut to `max` characters.
fn cut(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > max {
        format!("{}…", one_line.chars().take(max - 1).collect::<String>())
    } else {
        one_line
    }
}

/// `incidents` as a table, newest first.
pub fn incidents_table(list: &[Incident], now: DateTime<Utc>) -> String {
    if list.is_empty() {
        return "no incidents\n".to_string();
    }
    let header = ["ID", "CHECK", "OPENED", "RESOLVED", "DURATION", "MAINT", "ALERTS", "LAST ERROR"];
    let rows: Vec<[String; 8]> = list
        .iter()
        .map(|i| {
            let resolved = match (&i.resolved_at, &i.resolution) {
                (None, _) => "open".to_string(),
                (Some(t), Some(r)) if r != "recovered" => format!("{} ({r})", timestamp(t)),
                (Some(t), _) => timestamp(t),
            };
            [
                i.id.to_string(),
                i.check.clone(),
                timestamp(&i.opened_at),
                resolved,
                human_duration((i.duration_seconds(now) * 1000.0).round() as i64),
                if i.in_maintenance { "yes".into() } else { "no".into() },
                i.alerts_sent.to_string(),
                i.last_error.as_deref().map(|e| cut(e, 80)).unwrap_or_default(),
            ]
        })
        .collect();
    let open = list.iter().filter(|i| i.resolved_at.is_none()).count();
    let mut out = align(header, &rows, &[0, 4, 6]);
    out.push_str(&format!(
        "{} incident{}, {open} open\n",
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::report::{ReportRow, Source};
    use crate::history::uptime::Durations;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn row(name: &str, up_ms: i64, down_ms: i64) -> ReportRow {
        let durations = Durations { up_ms, down_ms, no_data_ms: 180_000, maintenance_ms: 120_000 };
        ReportRow {
            name: name.into(),
            check_id: 1,
            durations,
            uptime_percent: durations.uptime_percent(),
            incidents: 1,
            mttr_seconds: Some(300.0),
            longest_outage_seconds: Some(300.0),
            p50_ms: Some(101.5),
            p95_ms: Some(4.25),
            p99_ms: None,
            mean_ms: Some(100.0),
            runs: 55,
            failures: 5,
        }
    }

    fn report(rows: Vec<ReportRow>) -> Report {
        Report {
            source: Source::Day,
            from: t("2026-10-30T00:00:00Z"),
            to: t("2026-11-29T14:30:00Z"),
            live: true,
            rows,
        }
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(450), "450ms");
        assert_eq!(human_duration(45_000), "45s");
        assert_eq!(human_duration(200_000), "3m 20s");
        assert_eq!(human_duration(7_380_000), "2h 3m");
        assert_eq!(human_duration(4 * 86_400_000 + 2 * 3_600_000 + 59_000), "4d 2h");
        assert_eq!(human_duration(-5), "0s");
    }

    #[test]
    fn the_table_aligns_columns_and_names_the_data_it_came_from() {
        let r = report(vec![row("api", 3_000_000, 300_000), row("a-much-longer-name", 0, 0)]);
        let table = report_table(&r);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("NAME                 UPTIME      UP"), "{table}");
        assert!(lines[1].starts_with("api                 90.909%"), "{table}");
        assert!(lines[2].starts_with("a-much-longer-name        -  "), "{table}");
        assert!(
            lines[1].contains("50m 0s") && lines[1].contains("5m 0s") && lines[1].contains("2m 0s"),
            "{table}"
        );
        assert!(lines[1].ends_with("102ms  4.2ms    -"), "{table}");
        // Every row is as wide as the header's columns: the UPTIME column
        // ends at the same place.
        let end = lines[0].find("UPTIME").unwrap() + "UPTIME".len();
        assert!(lines[1][..end].ends_with('%') && lines[2][..end].ends_with('-'), "{table}");
        assert_eq!(lines[3], "from daily rollups: 2026-10-30T00:00:00Z – now");
        let past = Report { live: false, source: Source::Raw, ..report(vec![]) };
        assert!(
            report_table(&past).ends_with("from raw results: 2026-10-30T00:00:00Z – 2026-11-29T14:30:00Z\n")
        );
    }

    #[test]
    fn json_has_the_documented_keys_and_units() {
        let r = report(vec![row("api", 3_000_000, 300_000), row("idle", 0, 0)]);
        let v: serde_json::Value = serde_json::from_str(&report_json(&r).unwrap()).unwrap();
        let api = &v[0];
        assert_eq!(api["name"], "api");
        assert_eq!(api["up_seconds"], 3000.0);
        assert_eq!(api["down_seconds"], 300.0);
        assert_eq!(api["no_data_seconds"], 180.0);
        assert_eq!(api["maintenance_seconds"], 120.0);
        assert_eq!(api["granularity"], "day");
        assert_eq!(api["from"], "2026-10-30T00:00:00Z");
        assert_eq!(api["p99_ms"], serde_json::Value::Null);
        assert!((api["uptime_percent"].as_f64().unwrap() - 90.909_090_9).abs() < 1e-6);
        assert_eq!(v[1]["uptime_percent"], serde_json::Value::Null);
        let keys: Vec<&String> = api.as_object().unwrap().keys().collect();
        for key in CSV_HEADER {
            assert!(keys.iter().any(|k| *k == key), "{key} missing");
        }
        assert_eq!(keys.len(), CSV_HEADER.len());
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        let csv = report_csv(&report(vec![row("shop, \"eu\"", 3_000_000, 300_000), row("idle", 0, 0)]));
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_HEADER.join(","));
        assert!(lines[1].starts_with("\"shop, \"\"eu\"\"\",90.9090909090909"), "{csv}");
        assert!(lines[1].ends_with(",,100,55,5,day,2026-10-30T00:00:00Z,2026-11-29T14:30:00Z"), "{csv}");
        assert!(lines[2].starts_with("idle,,0,0,180,120,1,"), "{csv}");
    }

    fn incident(resolved: Option<&str>) -> Incident {
        Incident {
            id: 42,
            check: "api".into(),
            check_id: 1,
            opened_at: t("2026-11-29T14:00:00Z"),
            confirmed_at: t("2026-11-29T14:02:00Z"),
            resolved_at: resolved.map(t),
            resolution: resolved.map(|_| "recovered".to_string()),
            first_error: Some("connect: refused".into()),
            last_error: Some("HTTP 503\nService Unavailable".into()),
            in_maintenance: false,
            alerts_sent: 2,
        }
    }

    #[test]
    fn incidents_json_keeps_open_ones_unresolved() {
        let now = t("2026-11-29T14:30:00Z");
        let v: serde_json::Value = serde_json::from_str(
            &incidents_json(&[incident(None), incident(Some("2026-11-29T14:10:00Z"))], now).unwrap(),
        )
        .unwrap();
        assert_eq!(v[0]["resolved_at"], serde_json::Value::Null);
        assert_eq!(v[0]["resolution"], serde_json::Value::Null);
        assert_eq!(v[0]["duration_seconds"], 1800.0);
        assert_eq!(v[1]["resolved_at"], "2026-11-29T14:10:00Z");
        assert_eq!(v[1]["duration_seconds"], 600.0);
        assert_eq!(v[1]["opened_at"], "2026-11-29T14:00:00Z");
        assert_eq!(v[1]["confirmed_at"], "2026-11-29T14:02:00Z");
        assert_eq!(v[1]["first_error"], "connect: refused");
        assert_eq!(v[1]["in_maintenance"], false);
        assert_eq!(v[1]["alerts_sent"], 2);
    }

    #[test]
    fn the_incident_table_has_one_line_each_and_a_summary() {
        let now = t("2026-11-29T14:30:00Z");
        let table = incidents_table(&[incident(None), incident(Some("2026-11-29T14:10:00Z"))], now);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("ID  CHECK  OPENED"), "{table}");
        assert!(lines[1].contains(" open ") && lines[1].contains("30m 0s"), "{table}");
        assert!(lines[2].ends_with("HTTP 503 Service Unavailable"), "{table}");
        assert_eq!(lines[3], "2 incidents, 1 open");
        assert_eq!(incidents_table(&[], now), "no incidents\n");
    }
}
