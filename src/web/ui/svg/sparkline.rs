//! The 24-hour sparkline of the dashboard's checks table (inline SVG): the
//! median response time of each hour as a line, and a mark under every
//! hour with down time. Hours without data leave a gap in the line. The
//! `<title>` (and `aria-label`) says the same in words, so the figure is
//! never told by the drawing alone. No `style=`: classes only (colours in
//! `dashboard.css`), as the Content-Security-Policy requires.

use std::fmt::Write;

use super::phases::format_ms;

/// One hour of a check.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Hour {
    /// Median response time of the hour's successful runs.
    pub p50_ms: Option<f64>,
    /// Whether the check was down for some of the hour.
    pub down: bool,
}

/// Width and height of the drawing, in user units (the `viewBox`).
pub const WIDTH: f64 = 120.0;
pub const HEIGHT: f64 = 28.0;
/// Room kept under the line for the down marks.
const MARK: f64 = 4.0;

/// What the title says: the range of the medians and the hours down.
pub fn summary(hours: &[Hour]) -> String {
    let values: Vec<f64> = hours.iter().filter_map(|h| h.p50_ms).collect();
    let down = hours.iter().filter(|h| h.down).count();
    let mut text = match (values.iter().copied().reduce(f64::min), values.iter().copied().reduce(f64::max)) {
        (Some(lo), Some(hi)) => {
            format!("last {} h: hourly median response {} to {}", hours.len(), format_ms(lo), format_ms(hi))
        }
        _ => format!("last {} h: no response times", hours.len()),
    };
    match down {
        0 => {}
        1 => text.push_str("; down during 1 hour"),
        n => {
            let _ = write!(text, "; down during {n} hours");
        }
    }
    text
}

/// The sparkline of `hours`, oldest first.
pub fn svg(hours: &[Hour]) -> String {
    let label = summary(hours);
    let mut out = format!(
        "<svg class=\"sparkline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"{label}\"><title>{label}</title>"
    );
    if hours.is_empty() {
        out.push_str("</svg>");
        return out;
    }
    let step = WIDTH / hours.len() as f64;
    let max = hours.iter().filter_map(|h| h.p50_ms).fold(0.0_f64, f64::max).max(1.0);
    let y = |ms: f64| (HEIGHT - MARK - 1.0) - (ms / max) * (HEIGHT - MARK - 2.0);
    // Runs of consecutive hours with a value: one polyline each (a lone
    // hour is a short flat line, so it shows).
    let mut run: Vec<(f64, f64)> = Vec::new();
    let mut lines: Vec<Vec<(f64, f64)>> = Vec::new();
    for (i, h) in hours.iter().enumerate() {
        match h.p50_ms {
            Some(ms) if ms.is_finite() && ms >= 0.0 => run.push((i as f64 * step + step / 2.0, y(ms))),
            _ => lines.extend((!run.is_empty()).then(|| std::mem::take(&mut run))),
        }
    }
    lines.extend((!run.is_empty()).then_some(run));
    for line in lines {
        let points: Vec<(f64, f64)> = match line.as_slice() {
            [(x, y)] => vec![(x - step / 2.0, *y), (x + step / 2.0, *y)],
            _ => line,
        };
        let text: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(out, "<polyline class=\"spark-line\" fill=\"none\" points=\"{}\"/>", text.join(" "));
    }
    for (i, _) in hours.iter().enumerate().filter(|(_, h)| h.down) {
        let _ = write!(
            out,
            "<rect class=\"spark-down\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{MARK}\"/>",
            i as f64 * step,
            HEIGHT - MARK,
            step.max(1.0)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(ms: Option<f64>, down: bool) -> Hour {
        Hour { p50_ms: ms, down }
    }

    #[test]
    fn gaps_split_the_line() {
        let hours =
            [hour(Some(10.0), false), hour(Some(20.0), false), hour(None, false), hour(Some(5.0), false)];
        let svg = svg(&hours);
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        // The slowest hour is at the top, the others lower.
        assert!(svg.contains("45.0,1.0"), "{svg}");
        assert!(!svg.contains("style="));
    }

    #[test]
    fn down_hours_are_marked_and_said() {
        let hours = [hour(None, true), hour(Some(100.0), true), hour(Some(100.0), false)];
        let svg = svg(&hours);
        assert_eq!(svg.matches("class=\"spark-down\"").count(), 2, "{svg}");
        assert!(svg.contains("down during 2 hours"), "{svg}");
        assert_eq!(
            summary(&hours[..2]),
            "last 2 h: hourly median response 100 ms to 100 ms; down during 2 hours"
        );
    }

    #[test]
    fn no_data_is_said_and_drawn_as_nothing() {
        let hours = vec![Hour::default(); 24];
        let svg = svg(&hours);
        assert!(svg.contains("last 24 h: no response times") && !svg.contains("<polyline"), "{svg}");
        assert!(super::svg(&[]).ends_with("</svg>"));
    }

    #[test]
    fn the_summary_gives_the_range() {
        let hours = [hour(Some(80.0), false), hour(Some(1250.0), false), hour(Some(0.5), true)];
        assert_eq!(
            summary(&hours),
            "last 3 h: hourly median response 0.5 ms to 1,250 ms; down during 1 hour"
        );
    }
}
