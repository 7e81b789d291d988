//! The 90 daily bars of a check: one `<rect>` per UTC day, shaded green
//! to red by that day's uptime, grey without data, blue for maintenance.
//!
//! Hooks for embedders, tests and `status.js`: every bar carries
//! `data-day="YYYY-MM-DD"` and `data-uptime` (a percent with two decimals,
//! empty without data), and when not zero `data-down` (milliseconds down)
//! and `data-incidents`; its class names the shade and its `<title>` says
//! the same in words, so the figures are there without JavaScript and
//! never by colour alone. No-data days are also drawn shorter, so they
//! differ by shape too.
//!
//! A page of 200 checks has 18,000 bars, so a bar is written short and
//! cheap: its width, height and colour come from the stylesheets
//! (`svg.bars rect` and the shade classes in status.css and
//! dashboard.css, as SVG 2 geometry properties), only its `x` is an
//! attribute, and it is appended to one buffer without `format!`, chrono
//! or float formatting.

use std::fmt::Write as _;

use chrono::{Datelike, NaiveDate};

use super::{duration_text, escape, push_u64};
use crate::history::uptime::Durations;

/// One day of one check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DayBar {
    pub day: NaiveDate,
    pub durations: Durations,
    /// Incidents open at some time that day.
    pub incidents: u32,
}

/// How a day is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shade {
    /// At least 99.9 % up.
    Up,
    /// At least 99 %.
    Minor,
    /// At least 95 %.
    Partial,
    /// Under 95 %.
    Major,
    /// Maintenance and no down time.
    Maintenance,
    /// Neither up nor down time, nor maintenance.
    NoData,
}

impl Shade {
    /// The CSS class (status.css and dashboard.css colour it, also in dark
    /// mode, and give the no-data bar its shorter shape). Two letters: one
    /// per bar, 18,000 on a page of 200 checks; an up bar carries none (its
    /// fill is the default of `svg.bars rect`).
    pub fn class(self) -> &'static str {
        match self {
            Shade::Up => "up",
            Shade::Minor => "mi",
            Shade::Partial => "pa",
            Shade::Major => "ma",
            Shade::Maintenance => "mt",
            Shade::NoData => "nd",
        }
    }

    /// The fill without a stylesheet (light background; ≥ 3:1 against
    /// white, WCAG's contrast for graphics).
    pub fn fill(self) -> &'static str {
        match self {
            Shade::Up => "#2b8a3e",
            Shade::Minor => "#5c940d",
            Shade::Partial => "#d9480f",
            Shade::Major => "#c92a2a",
            Shade::Maintenance => "#1971c2",
            Shade::NoData => "#868e96",
        }
    }

    /// In words.
    pub fn describe(self) -> &'static str {
        match self {
            Shade::Up => "operational",
            Shade::Minor => "minor downtime",
            Shade::Partial => "partial outage",
            Shade::Major => "major outage",
            Shade::Maintenance => "maintenance",
            Shade::NoData => "no data",
        }
    }
}

/// The shade of a day: maintenance when it had maintenance and no down
/// time; else by uptime (up / (up + down)); no data when there was
/// nothing to judge.
pub fn shade(durations: &Durations) -> Shade {
    if durations.maintenance_ms > 0 && durations.down_ms <= 0 {
        return Shade::Maintenance;
    }
    match durations.uptime_percent() {
        None => Shade::NoData,
        Some(p) if p >= 99.9 => Shade::Up,
        Some(p) if p >= 99.0 => Shade::Minor,
        Some(p) if p >= 95.0 => Shade::Partial,
        Some(_) => Shade::Major,
    }
}

/// Width of a bar and of the gap after it, in SVG units. The stylesheets
/// draw a bar 3 wide and 32 high (`svg.bars rect`), a no-data one 12 high
/// at the bottom (`.nd`); a test checks them against these.
pub const BAR: usize = 3;
const GAP: usize = 2;
/// Height of the drawing.
pub const HEIGHT: usize = 32;
/// Height of a no-data bar.
pub const NO_DATA_HEIGHT: usize = 12;

/// The `data-uptime` value of a day: two decimals, empty without data.
pub fn uptime_attr(durations: &Durations) -> String {
    let mut out = String::new();
    if let Some(p) = durations.uptime_percent() {
        push_percent(&mut out, p);
    }
    out
}

/// The words of a day's `<title>`: "2026-11-29: 99.93 % up, 1 min down,
/// 1 incident".
pub fn day_text(bar: &DayBar) -> String {
    let mut out = String::new();
    push_day_text(&mut out, bar, &date_text(bar.day));
    out
}

/// `day` as `YYYY-MM-DD`, without chrono's `format` (which parses its
/// pattern on every call: 36,000 times for a page of 200 checks).
fn date_text(day: NaiveDate) -> [u8; 10] {
    let year = day.year().clamp(0, 9999) as u32;
    let digit = |n: u32| b'0' + (n % 10) as u8;
    let (month, dom) = (day.month(), day.day());
    [
        digit(year / 1000),
        digit(year / 100),
        digit(year / 10),
        digit(year),
        b'-',
        digit(month / 10),
        digit(month),
        b'-',
        digit(dom / 10),
        digit(dom),
    ]
}

/// Appends `percent` as [`super::percent_text`] writes it ("99.93"), from whole
/// hundredths, so no float formatting per bar.
fn push_percent(out: &mut String, percent: f64) {
    // The same flooring and clamping as percent_text (the test compares them).
    let hundredths = ((percent * 100.0).floor() as i64).clamp(0, 10_000);
    if hundredths == 10_000 {
        out.push_str("100.00");
    } else {
        push_u64(out, (hundredths / 100) as u64);
        let cents = (hundredths % 100) as u8;
        out.push('.');
        out.push(char::from(b'0' + cents / 10));
        out.push(char::from(b'0' + cents % 10));
    }
}

/// Appends the words of [`day_text`]; `date` is the day's `YYYY-MM-DD`.
/// Nothing in them needs escaping (digits, words, `%` and commas).
fn push_day_text(out: &mut String, bar: &DayBar, date: &[u8; 10]) {
    push_date(out, date);
    out.push_str(": ");
    match bar.durations.uptime_percent() {
        Some(p) => {
            push_percent(out, p);
            out.push_str(" % up");
        }
        None => out.push_str(shade(&bar.durations).describe()),
    }
    if bar.durations.down_ms > 0 {
        out.push_str(", ");
        out.push_str(&duration_text(bar.durations.down_ms));
        out.push_str(" down");
    }
    if bar.durations.maintenance_ms > 0 {
        out.push_str(", ");
        out.push_str(&duration_text(bar.durations.maintenance_ms));
        out.push_str(" maintenance");
    }
    match bar.incidents {
        0 => {}
        1 => out.push_str(", 1 incident"),
        n => {
            out.push_str(", ");
            push_u64(out, u64::from(n));
            out.push_str(" incidents");
        }
    }
}

fn push_date(out: &mut String, date: &[u8; 10]) {
    // Only ASCII digits and '-' are ever written into a date.
    out.push_str(std::str::from_utf8(date).unwrap_or("0000-00-00"));
}

/// Bytes a bar takes at most but for the rare long title (an estimate to
/// size the buffer: a day at 100 % takes about 110, one with down time
/// and an incident about 150).
pub const BAR_BYTES: usize = 150;

/// The bars of `days` (oldest first) as one inline `<svg>`; `label` names
/// the check for screen readers. Every bar is tagged `class="bar {shade}"`
/// (the dashboard's check page, with one check, and its tests select
/// `.bar.up`); a status page writes [`compact_bars`].
pub fn daily_bars(days: &[DayBar], label: &str) -> String {
    let mut out = String::with_capacity(days.len() * (BAR_BYTES + 8) + 200);
    push_bars(&mut out, days, label, true);
    out
}

/// [`daily_bars`] as a status page draws them, 200 checks at a time: an
/// up bar carries no class (the default fill), the others only their shade.
pub fn compact_bars(days: &[DayBar], label: &str) -> String {
    let mut out = String::with_capacity(days.len() * BAR_BYTES + 200);
    push_bars(&mut out, days, label, false);
    out
}

fn push_bars(out: &mut String, days: &[DayBar], label: &str, tagged: bool) {
    let width = (days.len() * (BAR + GAP)).saturating_sub(GAP).max(1);
    let _ = write!(
        out,
        "<svg class=\"bars\" viewBox=\"0 0 {width} {HEIGHT}\" width=\"100%\" height=\"{HEIGHT}\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{} daily uptime, {} days\">",
        escape(label),
        days.len()
    );
    for (i, bar) in days.iter().enumerate() {
        push_bar(out, i, bar, tagged);
    }
    out.push_str("</svg>");
}

/// One bar: `<rect x="…" class="…" data-day="…" data-uptime="…">` with its
/// `<title>`. Attributes at their default (nothing down, no incident) are
/// left out; geometry and fill come from the stylesheet.
fn push_bar(out: &mut String, i: usize, bar: &DayBar, tagged: bool) {
    let s = shade(&bar.durations);
    let date = date_text(bar.day);
    out.push_str("<rect x=\"");
    push_u64(out, (i * (BAR + GAP)) as u64);
    if tagged {
        out.push_str("\" class=\"bar ");
        out.push_str(s.class());
    } else if s != Shade::Up {
        // Most days are up: theirs is the stylesheets' default fill, so on
        // a status page they carry no class (a tenth of its bytes).
        out.push_str("\" class=\"");
        out.push_str(s.class());
    }
    out.push_str("\" data-day=\"");
    push_date(out, &date);
    out.push_str("\" data-uptime=\"");
    if let Some(p) = bar.durations.uptime_percent() {
        push_percent(out, p);
    }
    out.push('"');
    if bar.durations.down_ms > 0 {
        out.push_str(" data-down=\"");
        push_u64(out, bar.durations.down_ms as u64);
        out.push('"');
    }
    if bar.incidents > 0 {
        out.push_str(" data-incidents=\"");
        push_u64(out, u64::from(bar.incidents));
        out.push('"');
    }
    out.push_str("><title>");
    push_day_text(out, bar, &date);
    out.push_str("</title></rect>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(up: i64, down: i64, no_data: i64, maintenance: i64) -> Durations {
        Durations { up_ms: up, down_ms: down, no_data_ms: no_data, maintenance_ms: maintenance }
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn shades_follow_uptime_then_maintenance_then_no_data() {
        assert_eq!(shade(&d(DAY, 0, 0, 0)), Shade::Up);
        // 99.9 % exactly is still up; a hair under is minor.
        assert_eq!(shade(&d(999, 1, 0, 0)), Shade::Up);
        assert_eq!(shade(&d(9989, 11, 0, 0)), Shade::Minor);
        assert_eq!(shade(&d(99, 1, 0, 0)), Shade::Minor);
        assert_eq!(shade(&d(98, 2, 0, 0)), Shade::Partial);
        assert_eq!(shade(&d(95, 5, 0, 0)), Shade::Partial);
        assert_eq!(shade(&d(94, 6, 0, 0)), Shade::Major);
        assert_eq!(shade(&d(0, DAY, 0, 0)), Shade::Major);
        assert_eq!(shade(&d(0, 0, DAY, 0)), Shade::NoData);
        assert_eq!(shade(&d(0, 0, 0, 0)), Shade::NoData);
        assert_eq!(shade(&d(DAY - 1000, 0, 0, 1000)), Shade::Maintenance);
        assert_eq!(shade(&d(0, 0, 0, DAY)), Shade::Maintenance);
        // Down time outweighs maintenance: the outage shows.
        assert_eq!(shade(&d(DAY / 2, DAY / 4, 0, DAY / 4)), Shade::Major);
    }

    #[test]
    fn every_shade_has_its_own_class_fill_and_words() {
        let all = [Shade::Up, Shade::Minor, Shade::Partial, Shade::Major, Shade::Maintenance, Shade::NoData];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.class(), b.class());
                assert_ne!(a.fill(), b.fill());
                assert_ne!(a.describe(), b.describe());
            }
        }
    }

    #[test]
    fn a_day_is_described_in_words() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let bar = DayBar { day, durations: d(DAY - 60_000, 60_000, 0, 0), incidents: 1 };
        assert_eq!(day_text(&bar), "2026-11-29: 99.93 % up, 1 min down, 1 incident");
        let bar = DayBar { day, durations: d(0, 0, DAY, 0), incidents: 0 };
        assert_eq!(day_text(&bar), "2026-11-29: no data");
        let bar = DayBar { day, durations: d(0, 0, 0, 7_200_000), incidents: 0 };
        assert_eq!(day_text(&bar), "2026-11-29: maintenance, 2 h maintenance");
        let bar = DayBar { day, durations: d(1, 1, 0, 0), incidents: 3 };
        assert!(day_text(&bar).ends_with("3 incidents"));
    }

    #[test]
    fn the_cheap_writers_agree_with_the_plain_ones() {
        // Percents: every hundredth, and values between them and at the ends.
        for k in 0..=100_000 {
            let p = k as f64 / 1000.0;
            let mut fast = String::new();
            push_percent(&mut fast, p);
            assert_eq!(fast, super::super::percent_text(p), "{p}");
        }
        for p in [0.0, 1e-9, 99.999_999, 99.9, 99.93, 100.0, 100.000_1, -1.0] {
            let mut fast = String::new();
            push_percent(&mut fast, p);
            assert_eq!(fast, super::super::percent_text(p), "{p}");
        }
        // Dates: every day of a leap year and a few far ones.
        let first = NaiveDate::from_ymd_opt(2028, 1, 1).unwrap();
        let far = [NaiveDate::from_ymd_opt(1, 1, 1).unwrap(), NaiveDate::from_ymd_opt(9999, 12, 31).unwrap()];
        for day in (0..366).map(|i| first + chrono::Days::new(i)).chain(far) {
            assert_eq!(std::str::from_utf8(&date_text(day)).unwrap(), day.format("%Y-%m-%d").to_string());
        }
    }

    #[test]
    fn ninety_days_make_ninety_hooked_bars() {
        let first = NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
        let days: Vec<DayBar> = (0..90)
            .map(|i| DayBar {
                day: first + chrono::Days::new(i),
                durations: if i == 0 { d(0, 0, 0, 0) } else { d(DAY - 864_000, 864_000, 0, 0) },
                incidents: u32::from(i == 5),
            })
            .collect();
        let svg = daily_bars(&days, "api <prod>");
        assert!(svg.starts_with("<svg class=\"bars\" viewBox=\"0 0 448 32\""), "{svg}");
        assert!(svg.contains("aria-label=\"api &lt;prod&gt; daily uptime, 90 days\""));
        assert_eq!(svg.matches("<rect ").count(), 90);
        assert_eq!(svg.matches("data-day=\"").count(), 90);
        assert!(svg.contains("data-day=\"2026-09-01\" data-uptime=\"\""), "no data: empty uptime");
        assert!(svg.contains("data-day=\"2026-09-02\" data-uptime=\"99.00\" data-down=\"864000\">"));
        assert!(svg.contains("data-down=\"864000\" data-incidents=\"1\">"), "day 5 had an incident");
        assert!(svg.contains("<rect x=\"0\" class=\"bar nd\" data-day=\"2026-09-01\""), "no data: its class");
        assert!(
            svg.contains("<rect x=\"445\" class=\"bar mi\" data-day=\"2026-11-29\""),
            "the 90th bar's place"
        );
        let compact = compact_bars(&days, "api <prod>");
        assert_eq!(
            compact,
            svg.replace("class=\"bar ", "class=\""),
            "the same bars, only the classes differ"
        );
        let up = [DayBar { day: first, durations: d(DAY, 0, 0, 0), incidents: 0 }];
        assert!(daily_bars(&up, "api").contains("<rect x=\"0\" class=\"bar up\" data-day=\"2026-09-01\""));
        assert!(compact_bars(&up, "api").contains("<rect x=\"0\" data-day=\"2026-09-01\" data-uptime=\"100.00\"><title>2026-09-01: 100.00 % up</title></rect>"), "an up day on a status page: the default fill");
        assert!(svg.contains("data-day=\"2026-11-29\""), "the 90th day");
        assert!(svg.contains("<title>2026-09-06: 99.00 % up, 14 min down, 1 incident</title>"));
        assert!(!svg.contains("style="), "the CSP allows no inline style");
        assert!(svg.ends_with("</svg>"));
        assert!(
            compact.len() <= days.len() * BAR_BYTES + 200,
            "the buffer's estimate holds: {}",
            compact.len()
        );
    }

    /// The stylesheets draw what the constants say (the bars carry no
    /// geometry but `x`), on both pages that show bars, and colour every
    /// shade (an up bar has the default fill).
    #[test]
    fn the_stylesheets_give_every_bar_its_size_and_shade() {
        for (name, css) in [
            ("status.css", include_str!("../assets/status.css")),
            ("dashboard.css", include_str!("../assets/dashboard.css")),
        ] {
            let full = format!("rect {{ width: {BAR}px; height: {HEIGHT}px; fill: var(--up); }}");
            let short = format!(".nd {{ y: {}px; height: {NO_DATA_HEIGHT}px; }}", HEIGHT - NO_DATA_HEIGHT);
            assert!(css.contains(&full), "{name}: {full}");
            assert!(css.contains(&short), "{name}: {short}");
            for shade in [Shade::Minor, Shade::Partial, Shade::Major, Shade::Maintenance, Shade::NoData] {
                let rule = format!(" .{} {{ fill:", shade.class());
                assert!(css.contains(&rule), "{name}: no fill for {rule}");
            }
        }
    }
}
