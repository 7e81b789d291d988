//! How figures read on the dashboard: times as "3 min ago" (the exact time
//! goes in a `<time datetime>` beside it), uptime as a percent with the
//! precision that matters near 100 %, durations in words. Pure.

use chrono::{DateTime, Utc};

/// `t` relative to `now`: "just now", "42 s ago", "5 min ago", "3 h ago",
/// "2 d ago"; a time in the future (clock skew) reads "just now".
pub fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - t).num_seconds();
    match s {
        i64::MIN..=4 => "just now".to_string(),
        5..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// RFC 3339 to the second, for `<time datetime>` and titles.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An uptime percent: "100 %", "99.95 %", "97.3 %"; "—" without data.
/// Two decimals at 99 % and above (where the difference between 99.9 and
/// 99.99 is the whole story), one below; never rounded up to 100 % when
/// there was down time.
pub fn percent(p: Option<f64>) -> String {
    match p {
        None => "—".to_string(),
        Some(p) if p >= 100.0 => "100 %".to_string(),
        Some(p) if p >= 99.0 => format!("{:.2} %", (p * 100.0).floor() / 100.0),
        Some(p) => format!("{:.1} %", (p * 10.0).floor() / 10.0),
    }
}

/// A duration in seconds as "45 s", "12 min", "3 h 5 min", "2 d 4 h".
pub fn span(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as i64;
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

/// What a state reads as. The page writes this word, and `base.css` adds
/// a shape (`.state-up::before`, …) and a colour: never colour alone.
pub fn state_label(state: &str) -> &'static str {
    match state {
        "up" => "Up",
        "down" => "Down",
        "paused" => "Paused",
        _ => "Unknown",
    }
}

/// The CSS class of a state (`state-up`, …; `state-unknown` for anything
/// else, so no stored text reaches a class attribute).
pub fn state_class(state: &str) -> &'static str {
    match state {
        "up" => "state-up",
        "down" => "state-down",
        "paused" => "state-paused",
        _ => "state-unknown",
    }
}

/// A path segment with everything but unreserved characters escaped (a
/// check's name in `/checks/{name}`).
pub fn segment(text: &str) -> String {
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(text, SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn times_read_relative_to_now() {
        let now = t("2026-11-29T12:00:00Z");
        assert_eq!(ago(t("2026-11-29T12:00:03Z"), now), "just now");
        assert_eq!(ago(t("2026-11-29T11:59:58Z"), now), "just now");
        assert_eq!(ago(t("2026-11-29T11:59:18Z"), now), "42 s ago");
        assert_eq!(ago(t("2026-11-29T11:55:00Z"), now), "5 min ago");
        assert_eq!(ago(t("2026-11-29T09:00:01Z"), now), "2 h ago");
        assert_eq!(ago(t("2026-11-27T11:00:00Z"), now), "2 d ago");
        assert_eq!(iso(now), "2026-11-29T12:00:00Z");
    }

    #[test]
    fn percents_keep_what_matters_and_never_round_up_to_100() {
        assert_eq!(percent(None), "—");
        assert_eq!(percent(Some(100.0)), "100 %");
        assert_eq!(percent(Some(99.999)), "99.99 %");
        assert_eq!(percent(Some(99.95)), "99.95 %");
        assert_eq!(percent(Some(97.38)), "97.3 %");
        assert_eq!(percent(Some(0.0)), "0.0 %");
    }

    #[test]
    fn spans_read_in_words() {
        assert_eq!(span(44.6), "45 s");
        assert_eq!(span(720.0), "12 min");
        assert_eq!(span(3600.0), "1 h");
        assert_eq!(span(3.0 * 3600.0 + 300.0), "3 h 5 min");
        assert_eq!(span(2.0 * 86_400.0 + 4.0 * 3600.0), "2 d 4 h");
        assert_eq!(span(-5.0), "0 s");
    }

    #[test]
    fn states_are_words_and_known_classes() {
        for (s, word) in
            [("up", "Up"), ("down", "Down"), ("paused", "Paused"), ("unknown", "Unknown"), ("x", "Unknown")]
        {
            assert_eq!(state_label(s), word, "{s}");
            assert_eq!(state_class(s), format!("state-{}", word.to_lowercase()), "{s}");
        }
    }

    #[test]
    fn names_are_escaped_in_paths() {
        assert_eq!(segment("api-1.prod_x"), "api-1.prod_x");
        assert_eq!(segment("a b/c?d"), "a%20b%2Fc%3Fd");
    }
}
