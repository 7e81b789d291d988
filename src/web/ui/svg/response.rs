//! The response-time chart: p50 and p95 per bucket (per hour over 24 h,
//! or per day over 30 d) as two lines over a time axis.
//!
//! p50 is a solid line and p95 a dashed one (told apart by shape, not
//! only colour), both named in a legend on its own row above the plot.
//! Text and grid lines are drawn in `currentColor`, the text colour of the
//! page around the chart, so they keep their contrast in light and dark
//! mode on any page (a stylesheet may still colour them per class). A bucket without successful runs
//! breaks the lines instead of drawing them down to zero. Each bucket has
//! an invisible hover target carrying `data-at`, `data-p50` and `data-p95`
//! (milliseconds, empty without data) and a `<title>` with the figures, so
//! they are readable without JavaScript.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::{escape, push_fixed};

/// One bucket's percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The bucket's start.
    pub at: DateTime<Utc>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

/// Buckets of an hour or of a day (how times are labelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Hour,
    Day,
}

impl Step {
    /// The axis label: `HH:MM` or `MM-DD`.
    fn push_label(self, out: &mut String, at: DateTime<Utc>) {
        match self {
            Step::Hour => {
                push_two(out, at.hour());
                out.push(':');
                push_two(out, at.minute());
            }
            Step::Day => {
                push_two(out, at.month());
                out.push('-');
                push_two(out, at.day());
            }
        }
    }

    /// The title's time: `YYYY-MM-DD HH:MM UTC` or `YYYY-MM-DD`.
    fn push_title(self, out: &mut String, at: DateTime<Utc>) {
        push_date(out, at);
        if self == Step::Hour {
            out.push(' ');
            push_two(out, at.hour());
            out.push(':');
            push_two(out, at.minute());
            out.push_str(" UTC");
        }
    }
}

/// Appends `n` (0..=99) as two digits. Times are written by hand, as the
/// bars' dates are: chrono's `format` parses its pattern on every call,
/// and a page of 200 charts writes 10,000 times.
fn push_two(out: &mut String, n: u32) {
    out.push(char::from(b'0' + (n / 10 % 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// Appends `YYYY-MM-DD` (years 0 to 9999).
fn push_date(out: &mut String, at: DateTime<Utc>) {
    let year = at.year().clamp(0, 9999) as u32;
    push_two(out, year / 100);
    push_two(out, year % 100);
    out.push('-');
    push_two(out, at.month());
    out.push('-');
    push_two(out, at.day());
}

/// Appends `at` as RFC 3339 in UTC to the second (`2026-11-29T14:00:00Z`).
fn push_rfc3339(out: &mut String, at: DateTime<Utc>) {
    push_date(out, at);
    out.push('T');
    push_two(out, at.hour());
    out.push(':');
    push_two(out, at.minute());
    out.push(':');
    push_two(out, at.second());
    out.push('Z');
}

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 130.0;
/// Room for the y labels on the left, the x labels below and the legend above.
const LEFT: f64 = 52.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 26.0;

/// The smallest "round" number (1, 2 or 5 × 10^k) at least `ms`: the top
/// of the y axis.
pub fn nice_max(ms: f64) -> f64 {
    if !(ms.is_finite() && ms > 0.0) {
        return 1.0;
    }
    let power = 10f64.powf(ms.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|v| *v >= ms).unwrap_or(10.0 * power)
}

/// Milliseconds for an axis or a title: "850 ms", "1.2 s".
pub fn ms_text(ms: f64) -> String {
    let mut out = String::new();
    push_ms_text(&mut out, ms);
    out
}

/// Appends [`ms_text`].
fn push_ms_text(out: &mut String, ms: f64) {
    if ms >= 1000.0 {
        push_fixed(out, ms / 1000.0, 1);
        out.push_str(" s");
    } else {
        push_fixed(out, ms, if ms >= 10.0 { 0 } else { 1 });
        out.push_str(" ms");
    }
}

/// SVG path data through the points that have a value, broken at gaps.
fn line(xs: &[f64], values: &[Option<f64>], y: impl Fn(f64) -> f64) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for (x, v) in xs.iter().zip(values) {
        match v {
            Some(v) => {
                d.push(if pen_down { 'L' } else { 'M' });
                push_fixed(&mut d, *x, 1);
                d.push(' ');
                push_fixed(&mut d, y(*v), 1);
                d.push(' ');
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d.trim_end().to_string()
}

/// The chart of `points` (oldest first); `label` names what it is for
/// screen readers ("api response time, last 24 hours").
pub fn response_chart(points: &[Point], step: Step, label: &str) -> String {
    let top = nice_max(points.iter().filter_map(|p| p.p95_ms.or(p.p50_ms)).fold(0.0, f64::max));
    let plot_w = WIDTH - LEFT - 4.0;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let slot = plot_w / points.len().max(1) as f64;
    let xs: Vec<f64> = (0..points.len()).map(|i| LEFT + slot * (i as f64 + 0.5)).collect();
    let y = |v: f64| TOP + plot_h * (1.0 - (v / top).clamp(0.0, 1.0));
    // One buffer for the whole chart (about 3 KB for 24 hours).
    let mut out = String::with_capacity(1200 + points.len() * 200);
    let _ = write!(
        out,
        "<svg class=\"response\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\" role=\"img\" aria-label=\"{}\">",
        escape(label)
    );
    // Grid and y labels: 0, half, top.
    for fraction in [0.0, 0.5, 1.0] {
        let gy = y(top * fraction);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{WIDTH}\" y1=\"{gy:.1}\" y2=\"{gy:.1}\" stroke=\"currentColor\" stroke-opacity=\"0.3\" stroke-width=\"0.5\"/><text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"12\" fill=\"currentColor\">{}</text>",
            LEFT - 4.0,
            gy + 3.0,
            ms_text(top * fraction)
        );
    }
    // x labels: first, middle, last.
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let middle = &points[points.len() / 2];
        for (p, anchor, x) in
            [(first, "start", LEFT), (middle, "middle", xs[points.len() / 2]), (last, "end", WIDTH - 4.0)]
        {
            let _ = write!(
                out,
                "<text class=\"axis\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" font-size=\"12\" fill=\"currentColor\">",
                HEIGHT - 6.0,
            );
            step.push_label(&mut out, p.at);
            out.push_str("</text>");
        }
    }
    let p95: Vec<Option<f64>> = points.iter().map(|p| p.p95_ms).collect();
    let p50: Vec<Option<f64>> = points.iter().map(|p| p.p50_ms).collect();
    let _ = write!(
        out,
        "<path class=\"p95\" d=\"{}\" fill=\"none\" stroke=\"#e8590c\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>",
        line(&xs, &p95, y)
    );
    let _ = write!(
        out,
        "<path class=\"p50\" d=\"{}\" fill=\"none\" stroke=\"#1971c2\" stroke-width=\"2\"/>",
        line(&xs, &p50, y)
    );
    // The same for every bucket: written once.
    let mut size = String::new();
    let _ = write!(
        size,
        "\" y=\"{TOP}\" width=\"{slot:.1}\" height=\"{plot_h:.1}\" fill=\"transparent\" data-at=\""
    );
    for (p, x) in points.iter().zip(&xs) {
        out.push_str("<rect class=\"hit\" x=\"");
        push_fixed(&mut out, x - slot / 2.0, 1);
        out.push_str(&size);
        push_rfc3339(&mut out, p.at);
        out.push_str("\" data-p50=\"");
        if let Some(v) = p.p50_ms {
            push_fixed(&mut out, v, 1);
        }
        out.push_str("\" data-p95=\"");
        if let Some(v) = p.p95_ms {
            push_fixed(&mut out, v, 1);
        }
        out.push_str("\"><title>");
        step.push_title(&mut out, p.at);
        out.push_str(": ");
        match (p.p50_ms, p.p95_ms) {
            (Some(a), Some(b)) => {
                out.push_str("p50 ");
                push_ms_text(&mut out, a);
                out.push_str(", p95 ");
                push_ms_text(&mut out, b);
            }
            (Some(a), None) => {
                out.push_str("p50 ");
                push_ms_text(&mut out, a);
            }
            _ => out.push_str("no successful runs"),
        }
        out.push_str("</title></rect>");
    }
    let _ = write!(
        out,
        "<g class=\"legend\" font-size=\"12\" fill=\"currentColor\"><line x1=\"{a}\" x2=\"{b}\" y1=\"8\" y2=\"8\" stroke=\"#1971c2\" stroke-width=\"2\"/><text x=\"{c}\" y=\"12\">p50</text><line x1=\"{d}\" x2=\"{e}\" y1=\"8\" y2=\"8\" stroke=\"#e8590c\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/><text x=\"{f}\" y=\"12\">p95</text></g>",
        a = LEFT + 8.0,
        b = LEFT + 24.0,
        c = LEFT + 28.0,
        d = LEFT + 56.0,
        e = LEFT + 72.0,
        f = LEFT + 76.0,
    );
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_374_400 + hour * 3600, 0).unwrap()
    }

    #[test]
    fn the_axis_top_is_a_round_number_at_least_the_largest_value() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
        assert_eq!(nice_max(0.7), 1.0);
        assert_eq!(nice_max(1.0), 1.0);
        assert_eq!(nice_max(1.5), 2.0);
        assert_eq!(nice_max(120.0), 200.0);
        assert_eq!(nice_max(499.0), 500.0);
        assert_eq!(nice_max(501.0), 1000.0);
        assert_eq!(nice_max(7000.0), 10_000.0);
    }

    #[test]
    fn hand_written_times_agree_with_chrono() {
        let times = [at(0), at(13), at(-5000), DateTime::from_timestamp(1_234_567_891, 0).unwrap()];
        for t in times {
            let mut out = String::new();
            push_rfc3339(&mut out, t);
            assert_eq!(out, t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            for (step, label, title) in
                [(Step::Hour, "%H:%M", "%Y-%m-%d %H:%M UTC"), (Step::Day, "%m-%d", "%Y-%m-%d")]
            {
                let mut out = String::new();
                step.push_label(&mut out, t);
                assert_eq!(out, t.format(label).to_string());
                let mut out = String::new();
                step.push_title(&mut out, t);
                assert_eq!(out, t.format(title).to_string());
            }
        }
    }

    #[test]
    fn milliseconds_read_well() {
        assert_eq!(ms_text(0.0), "0.0 ms");
        assert_eq!(ms_text(4.25), "4.2 ms");
        assert_eq!(ms_text(850.0), "850 ms");
        assert_eq!(ms_text(1234.0), "1.2 s");
    }

    #[test]
    fn lines_break_at_buckets_without_data() {
        let xs = [0.0, 1.0, 2.0, 3.0];
        let d = line(&xs, &[Some(1.0), None, Some(2.0), Some(3.0)], |v| v * 10.0);
        assert_eq!(d, "M0.0 10.0 M2.0 20.0 L3.0 30.0");
        assert_eq!(line(&xs, &[None, None, None, None], |v| v), "");
    }

    #[test]
    fn a_day_of_hours_has_a_hook_per_hour_and_both_lines() {
        let points: Vec<Point> = (0..24)
            .map(|h| Point {
                at: at(h),
                p50_ms: (h != 3).then_some(100.0),
                p95_ms: (h != 3).then_some(180.0),
            })
            .collect();
        let svg = response_chart(&points, Step::Hour, "api <response> time");
        assert_eq!(svg.matches("class=\"hit\"").count(), 24);
        assert!(svg.contains("aria-label=\"api &lt;response&gt; time\""));
        assert!(svg.contains("data-at=\"2025-11-29T00:00:00Z\" data-p50=\"100.0\" data-p95=\"180.0\""));
        assert!(svg.contains("data-p50=\"\" data-p95=\"\"><title>2025-11-29 03:00 UTC: no successful runs"));
        assert!(svg.contains("class=\"p50\" d=\"M") && svg.contains("class=\"p95\" d=\"M"));
        assert!(svg.contains(">200 ms</text>"), "the axis top: {svg}");
        assert!(!svg.contains("style="));
        let empty = response_chart(&[], Step::Day, "none");
        assert!(empty.ends_with("</svg>"));
    }
}
