//! The phase timings of one check run as a stacked horizontal bar (inline
//! SVG): DNS, connect, TLS, first byte and the rest, each a segment whose
//! width is its share of the run's total time. Each segment carries a
//! class (`phase-dns`, …; colours in `dashboard.css`), a
//! `data-phase`/`data-ms` pair for tests and scripts, and a `<title>`
//! with its name and time; the page prints the same figures as text
//! beside the bar, so nothing is told by colour alone.
//!
//! The phases are disjoint (`model::result::Timings`): first byte is
//! from sending the request to the first response byte, so "rest" is the
//! total minus the four, never below zero (a redirect's second exchange
//! and the body read land there).

use std::fmt::Write;

/// One phase of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// `dns`, `connect`, `tls`, `first_byte` or `rest`.
    pub key: &'static str,
    /// What a person reads: "DNS", "Connect", "TLS", "First byte", "Rest".
    pub label: &'static str,
    pub ms: f64,
}

/// The phases of a run from its stored timings, in order; a phase that
/// did not happen (no DNS for an IP literal, no TLS for http://) is left
/// out, and "rest" only appears when it is more than nothing.
pub fn segments(
    dns_ms: Option<f64>,
    connect_ms: Option<f64>,
    tls_ms: Option<f64>,
    first_byte_ms: Option<f64>,
    total_ms: f64,
) -> Vec<Segment> {
    let timed = [
        ("dns", "DNS", dns_ms),
        ("connect", "Connect", connect_ms),
        ("tls", "TLS", tls_ms),
        ("first_byte", "First byte", first_byte_ms),
    ];
    let mut out: Vec<Segment> = timed
        .into_iter()
        .filter_map(|(key, label, ms)| {
            ms.filter(|m| m.is_finite() && *m >= 0.0).map(|ms| Segment { key, label, ms })
        })
        .collect();
    let phased: f64 = out.iter().map(|s| s.ms).sum();
    let rest = if total_ms.is_finite() { total_ms - phased } else { 0.0 };
    if rest > 0.0005 {
        out.push(Segment { key: "rest", label: "Rest", ms: rest });
    }
    out
}

/// Milliseconds as a person reads them: "0.4 ms", "12.5 ms", "1,250 ms".
pub fn format_ms(ms: f64) -> String {
    if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        let whole = ms.round() as i64;
        let (thousands, units) = (whole / 1000, whole % 1000);
        if thousands > 0 {
            format!("{thousands},{units:03} ms")
        } else {
            format!("{units} ms")
        }
    }
}

/// The bar, `width` × `height` user units (it scales with its box: the
/// SVG has a `viewBox` and `preserveAspectRatio="none"`). Without any
/// timed segment it is an empty bar saying "no phase timings".
pub fn svg(segments: &[Segment], width: u32, height: u32) -> String {
    let total: f64 = segments.iter().map(|s| s.ms).sum();
    let summary = if segments.is_empty() || total <= 0.0 {
        "no phase timings".to_string()
    } else {
        segments.iter().map(|s| format!("{} {}", s.label, format_ms(s.ms))).collect::<Vec<_>>().join(", ")
    };
    let mut out = format!(
        "<svg class=\"phases\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" \
         width=\"{width}\" height=\"{height}\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{summary}\">\
         <title>{summary}</title>"
    );
    if total > 0.0 {
        let mut x = 0.0_f64;
        for s in segments {
            let w = s.ms / total * f64::from(width);
            // Writing to a String cannot fail.
            let _ = write!(
                out,
                "<rect class=\"phase-{key}\" data-phase=\"{key}\" data-ms=\"{ms:.3}\" x=\"{x:.2}\" y=\"0\" \
                 width=\"{w:.2}\" height=\"{height}\"><title>{label} {shown}</title></rect>",
                key = s.key,
                ms = s.ms,
                label = s.label,
                shown = format_ms(s.ms),
            );
            x += w;
        }
    } else {
        let _ =
            write!(out, "<rect class=\"phase-none\" x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\"/>");
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_then_the_rest() {
        let s = segments(Some(1.5), Some(2.5), Some(3.5), Some(50.0), 100.0);
        let keys: Vec<_> = s.iter().map(|s| s.key).collect();
        assert_eq!(keys, ["dns", "connect", "tls", "first_byte", "rest"]);
        assert!((s[4].ms - 42.5).abs() < 1e-9);
        assert!(
            (s.iter().map(|s| s.ms).sum::<f64>() - 100.0).abs() < 1e-9,
            "the segments add up to the total"
        );
    }

    #[test]
    fn missing_phases_are_left_out_and_rest_never_negative() {
        // An IP literal over plain HTTP: no DNS, no TLS.
        let s = segments(None, Some(1.0), None, Some(4.0), 5.0);
        assert_eq!(s.iter().map(|s| s.key).collect::<Vec<_>>(), ["connect", "first_byte"]);
        // Timings a little over the total (rounding): no negative rest.
        let s = segments(Some(2.0), Some(2.0), None, Some(2.0), 5.9);
        assert!(s.iter().all(|s| s.ms >= 0.0) && s.iter().all(|s| s.key != "rest"));
        // A failed connection: only what happened, and the total as rest.
        let s = segments(None, None, None, None, 3000.0);
        assert_eq!(s, vec![Segment { key: "rest", label: "Rest", ms: 3000.0 }]);
        // Garbage is not drawn.
        let s = segments(Some(f64::NAN), Some(-1.0), None, None, f64::INFINITY);
        assert!(s.is_empty());
    }

    #[test]
    fn widths_are_shares_of_the_bar() {
        let s = segments(Some(25.0), None, None, Some(75.0), 100.0);
        let svg = svg(&s, 200, 10);
        assert!(
            svg.contains("data-phase=\"dns\" data-ms=\"25.000\" x=\"0.00\" y=\"0\" width=\"50.00\""),
            "{svg}"
        );
        assert!(
            svg.contains("data-phase=\"first_byte\" data-ms=\"75.000\" x=\"50.00\" y=\"0\" width=\"150.00\""),
            "{svg}"
        );
        assert!(svg.contains("<title>DNS 25.0 ms, First byte 75.0 ms</title>"), "{svg}");
        assert!(!svg.contains("style="), "the CSP forbids inline styles");
    }

    #[test]
    fn an_untimed_run_is_an_empty_bar_that_says_so() {
        let svg = svg(&[], 100, 8);
        assert!(
            svg.contains("no phase timings") && svg.contains("phase-none") && !svg.contains("data-phase")
        );
    }

    #[test]
    fn milliseconds_read_well() {
        assert_eq!(format_ms(0.42), "0.4 ms");
        assert_eq!(format_ms(12.46), "12.5 ms");
        assert_eq!(format_ms(250.4), "250 ms");
        assert_eq!(format_ms(1250.0), "1,250 ms");
        assert_eq!(format_ms(12_005.0), "12,005 ms");
    }
}
