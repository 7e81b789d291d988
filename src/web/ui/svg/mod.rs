//! Inline SVG pieces of the pages, as pure functions from figures to
//! markup (no I/O, no state), so the status page, the dashboard's check
//! page and the badges draw the same thing and tests check it without a
//! server.
//!
//! Every piece honours the pages' Content-Security-Policy: no `style=`
//! attribute, no script; colours are presentation attributes (`fill=`)
//! that the stylesheets may override per class (dark mode). A state is
//! never shown by colour alone: each shape carries its figures as text
//! (`<title>`) and as `data-*` attributes.
//!
//! - `bars.rs` — the 90 daily uptime bars;
//! - `response.rs` — the response-time chart (p50 and p95);
//! - `badge.rs` — a shields-style badge;
//! - `sparkline.rs` — the dashboard's 24 h response-time line;
//! - `phases.rs` — one run's phase timings as a stacked bar.

pub mod badge;
pub mod bars;
pub mod phases;
pub mod response;
pub mod sparkline;

use std::fmt::Write as _;

/// `text` safe inside SVG/HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A duration for people: "0 s", "45 s", "12 min", "3 h 5 min", "2 d 4 h".
pub fn duration_text(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => match (s % 3600) / 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        },
        _ => match (s % 86_400) / 3600 {
            0 => format!("{} d", s / 86_400),
            h => format!("{} d {h} h", s / 86_400),
        },
    }
}

/// Appends `n` in decimal, without the `fmt` machinery (the bars and
/// charts of a page of 200 checks write 100,000 numbers).
pub fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or("0"));
}

/// Appends `v` with `decimals` (0 or 1) digits after the point, exactly as
/// `format!("{v:.0}")` / `format!("{v:.1}")` writes it, but without the
/// exact float formatting `fmt` does, which costs about as much as the rest
/// of a chart. A value near a tie (or negative, huge or not finite) is
/// left to `fmt`, so the digits are always the same.
pub fn push_fixed(out: &mut String, v: f64, decimals: u32) {
    let scale = if decimals == 0 { 1.0 } else { 10.0 };
    let scaled = v * scale;
    let fraction = scaled - scaled.floor();
    if !(0.0..1e15).contains(&scaled) || (fraction - 0.5).abs() < 1e-6 || decimals > 1 {
        let _ = write!(out, "{v:.*}", decimals as usize);
        return;
    }
    let n = scaled.round() as u64;
    if decimals == 0 {
        push_u64(out, n);
    } else {
        push_u64(out, n / 10);
        out.push('.');
        out.push(char::from(b'0' + (n % 10) as u8));
    }
}

/// An uptime percent as shown: two decimals, never rounded up to 100 (a
/// day with a minute down is 99.93 %, and 99.999 % reads "99.99", not
/// "100.00").
pub fn percent_text(percent: f64) -> String {
    let floored = (percent * 100.0).floor() / 100.0;
    format!("{:.2}", floored.clamp(0.0, 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn durations_read_like_people_write_them() {
        let cases = [
            (0, "0 s"),
            (-5, "0 s"),
            (45_000, "45 s"),
            (60_000, "1 min"),
            (12 * 60_000 + 59_000, "12 min"),
            (3_600_000, "1 h"),
            (3 * 3_600_000 + 5 * 60_000, "3 h 5 min"),
            (86_400_000, "1 d"),
            (2 * 86_400_000 + 4 * 3_600_000, "2 d 4 h"),
        ];
        for (ms, text) in cases {
            assert_eq!(duration_text(ms), text, "{ms}");
        }
    }

    #[test]
    fn the_cheap_number_writers_agree_with_fmt() {
        let mut values: Vec<f64> = (0..200_000).map(|i| i as f64 * 0.0137).collect();
        values.extend([
            0.0,
            0.05,
            0.25,
            0.35,
            2.5,
            3.5,
            12.5,
            99.95,
            1e14,
            1e16,
            -0.04,
            -3.0,
            f64::NAN,
            f64::INFINITY,
        ]);
        for v in values {
            for decimals in [0, 1] {
                let mut fast = String::new();
                push_fixed(&mut fast, v, decimals);
                assert_eq!(fast, format!("{v:.*}", decimals as usize), "{v} with {decimals}");
            }
        }
        for n in [0, 7, 10, 445, 864_000, u64::MAX] {
            let mut fast = String::new();
            push_u64(&mut fast, n);
            assert_eq!(fast, n.to_string());
        }
    }

    #[test]
    fn percents_are_floored_to_two_decimals() {
        assert_eq!(percent_text(100.0), "100.00");
        assert_eq!(percent_text(99.999), "99.99");
        assert_eq!(percent_text(99.93055), "99.93");
        assert_eq!(percent_text(0.0), "0.00");
        assert_eq!(percent_text(50.0), "50.00");
    }
}
