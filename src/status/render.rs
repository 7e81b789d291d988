//! Status as people read it (a table and a summary line) and as programs
//! read it (JSON). Pure: the clock is a parameter.

use chrono::{DateTime, Utc};

use super::query::CheckStatus;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub up: usize,
    pub down: usize,
    pub unknown: usize,
    /// Disabled checks (counted apart from their last state).
    pub paused: usize,
}

impl Counts {
    pub fn of(rows: &[CheckStatus]) -> Counts {
        let mut c = Counts::default();
        for r in rows {
            match (r.enabled, r.state.as_str()) {
                (false, _) => c.paused += 1,
                (true, "up") => c.up += 1,
                (true, "down") => c.down += 1,
                _ => c.unknown += 1,
            }
        }
        c
    }
}

/// "3 up, 1 down, 2 unknown" (and ", 1 paused" when there are any).
pub fn summary_line(rows: &[CheckStatus]) -> String {
    let c = Counts::of(rows);
    let mut line = format!("{} up, {} down, {} unknown", c.up, c.down, c.unknown);
    if c.paused > 0 {
        line.push_str(&format!(", {} paused", c.paused));
    }
    line
}

/// "12s ago", "5m ago", "3h12m ago", "4d ago".
pub fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds();
    match secs {
        s if s < 1 => "just now".into(),
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m{}s ago", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{}m ago", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h ago", s / 86_400, (s % 86_400) / 3600),
    }
}

fn cut(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > max {
        format!("{}…", one_line.chars().take(max - 1).collect::<String>())
    } else {
        one_line
    }
}

/// The status table and summary line; `color` paints states for a terminal.
pub fn table(rows: &[CheckStatus], now: DateTime<Utc>, color: bool) -> String {
    let header = ["NAME", "STATE", "SINCE", "LAST CHECKED", "DURATION", "LAST ERROR"];
    let mut lines: Vec<[String; 6]> = Vec::with_capacity(rows.len());
    for r in rows {
        let state = if r.enabled { r.state.clone() } else { format!("paused ({})", r.state) };
        let error = r.last_error.as_deref().map(|e| cut(e, 80)).unwrap_or_default();
        lines.push([
            r.name.clone(),
            state,
            ago(r.since_at, now),
            r.last_checked.map(|t| ago(t, now)).unwrap_or_else(|| "never".into()),
            r.last_duration_ms.map(|d| format!("{d:.0}ms")).unwrap_or_else(|| "-".into()),
            error,
        ]);
    }
    let mut widths = header.map(str::len);
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: [&str; 6], state_color: Option<&str>| {
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            let last = i == cells.len() - 1;
            match (i, state_color) {
                (1, Some(code)) => out.push_str(&format!("\x1b[{code}m{cell}\x1b[0m")),
                _ => out.push_str(cell),
            }
            if !last {
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    };
    push(header, None);
    for (line, r) in lines.iter().zip(rows) {
        let paint = color.then_some(match (r.enabled, r.state.as_str()) {
            (false, _) => "2",
            (true, "up") => "32",
            (true, "down") => "31;1",
            _ => "33",
        });
        push([&line[0], &line[1], &line[2], &line[3], &line[4], &line[5]], paint);
    }
    out.push_str(&summary_line(rows));
    out.push('\n');
    let failed: Vec<(&str, &super::query::FailedNotification)> =
        rows.iter().flat_map(|r| r.failed_notifications.iter().map(move |f| (r.name.as_str(), f))).collect();
    if !failed.is_empty() {
        let n = failed.len();
        out.push_str(&format!("\n{n} failed notification{}:\n", if n == 1 { "" } else { "s" }));
        for (name, f) in failed {
            let error = f.last_error.as_deref().map(|e| format!(": {}", cut(e, 100))).unwrap_or_default();
            out.push_str(&format!(
                "  {name} → {} ({}, incident {}): failed after {} attempt{}{error}\n",
                f.channel,
                f.event,
                f.incident_id,
                f.attempts,
                if f.attempts == 1 { "" } else { "s" }
            ));
        }
    }
    out
}

/// The JSON array of `status -o json`; `pretty` for people, one line per
/// refresh for `--watch` (JSON Lines).
pub fn json(rows: &[CheckStatus], pretty: bool) -> Result<String, serde_json::Error> {
    if pretty {
        serde_json::to_string_pretty(rows)
    } else {
        serde_json::to_string(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn row(name: &str, state: &str, enabled: bool) -> CheckStatus {
        let since = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        CheckStatus {
            name: name.into(),
            state: state.into(),
            enabled,
            since: super::super::query::timestamp(&since),
            last_checked_at: None,
            last_duration_ms: Some(12.4),
            last_status_code: Some(if state == "down" { 500 } else { 200 }),
            last_error: (state == "down").then(|| "HTTP 500: expected status 200-399\nsecond line".into()),
            consecutive_failures: 0,
            labels: Default::default(),
            failed_notifications: Vec::new(),
            since_at: since,
            last_checked: Some(since),
        }
    }

    #[test]
    fn table_and_summary() {
        let now = Utc.with_ymd_and_hms(2024, 5, 1, 12, 5, 3).unwrap();
        let rows = vec![
            row("api", "down", true),
            row("web", "up", true),
            row("old", "up", false),
            row("new", "unknown", true),
        ];
        let text = table(&rows, now, false);
        assert_eq!(
            text,
            "NAME  STATE        SINCE     LAST CHECKED  DURATION  LAST ERROR\n\
             api   down         5m3s ago  5m3s ago      12ms      HTTP 500: expected status 200-399 second line\n\
             web   up           5m3s ago  5m3s ago      12ms\n\
             old   paused (up)  5m3s ago  5m3s ago      12ms\n\
             new   unknown      5m3s ago  5m3s ago      12ms\n\
             1 up, 1 down, 1 unknown, 1 paused\n"
        );
        assert!(table(&rows, now, true).contains("\x1b[31;1mdown\x1b[0m"));
    }

    #[test]
    fn relative_times() {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
        assert_eq!(ago(t, t), "just now");
        assert_eq!(ago(t, t + chrono::Duration::seconds(59)), "59s ago");
        assert_eq!(ago(t, t + chrono::Duration::seconds(3 * 3600 + 120)), "3h2m ago");
        assert_eq!(ago(t, t + chrono::Duration::days(2)), "2d0h ago");
    }
}
