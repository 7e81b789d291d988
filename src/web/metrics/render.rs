//! The per-check metrics as Prometheus text (format 0.0.4): pure, so every
//! rule of names, labels and escaping is tested without a database.
//!
//! - Every family is written whole (HELP, TYPE, then its samples), as the
//!   format requires.
//! - A series is absent when its value is unknown: `sentryk8s_check_up` of
//!   a check without a verdict or paused, the duration before the first
//!   result, the certificate expiry of a result without one, the uptime of
//!   a window without up or down time.
//! - Label values are escaped (`\\`, `\"`, `\n`); label names come from the
//!   allow-list ([`LabelNames`]), made valid Prometheus names.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Labels that every per-check series has already; a check label of that
/// name cannot be copied.
const RESERVED: &[&str] = &["check", "window", "instance", "job"];

/// One check's values, as the refresh computed them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub check: String,
    pub labels: BTreeMap<String, String>,
    /// `Some(true)` up, `Some(false)` down, `None` unknown or paused.
    pub up: Option<bool>,
    pub last_duration_seconds: Option<f64>,
    /// Seconds since the epoch.
    pub cert_expiry: Option<i64>,
    /// up / (up + down) over 24 h and 30 d, 0..=1.
    pub uptime_24h: Option<f64>,
    pub uptime_30d: Option<f64>,
}

/// The allow-list (`web.metrics_labels`): which check labels are copied,
/// under which Prometheus label name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelNames {
    /// (check label, Prometheus label name), in the list's order.
    pub copied: Vec<(String, String)>,
}

impl LabelNames {
    /// From `web.metrics_labels`. A name is made valid for Prometheus
    /// (characters outside `[a-zA-Z0-9_]` become `_`, a leading digit gets
    /// a `_`: `app.kubernetes.io/team` is `app_kubernetes_io_team`). Entries
    /// that would clash (a reserved name, a `__` prefix, two entries made
    /// the same) are left out and returned, to be logged.
    pub fn new(allowed: &[String]) -> (LabelNames, Vec<String>) {
        let mut copied: Vec<(String, String)> = Vec::new();
        let mut refused = Vec::new();
        for label in allowed {
            let mut name: String =
                label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
            if name.starts_with(|c: char| c.is_ascii_digit()) {
                name.insert(0, '_');
            }
            if name.is_empty()
                || name.starts_with("__")
                || RESERVED.contains(&name.as_str())
                || copied.iter().any(|(_, n)| *n == name)
            {
                refused.push(label.clone());
            } else {
                copied.push((label.clone(), name));
            }
        }
        (LabelNames { copied }, refused)
    }
}

/// A label value in the text format.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `{check="…",team="…"` (left open, so a family can add `window`).
fn labels_of(sample: &Sample, names: &LabelNames) -> String {
    let mut out = format!("{{check=\"{}\"", escape(&sample.check));
    for (label, name) in &names.copied {
        // A label the check does not carry is left out (Prometheus reads an
        // empty value as absent anyway).
        if let Some(value) = sample.labels.get(label).filter(|v| !v.is_empty()) {
            let _ = write!(out, ",{name}=\"{}\"", escape(value));
        }
    }
    out
}

/// A finite number in the text format (non-finite values are never written).
fn number(value: f64) -> Option<String> {
    value.is_finite().then(|| format!("{value}"))
}

/// A family's series of one check: (the `window` label if any, the value
/// if known).
type Series<'a> = Vec<(Option<&'a str>, Option<String>)>;

/// The text of every per-check family.
pub fn render(samples: &[Sample], names: &LabelNames) -> String {
    let labels: Vec<String> = samples.iter().map(|s| labels_of(s, names)).collect();
    let mut out = String::new();
    let mut family = |name: &str, help: &str, value: &dyn Fn(&Sample) -> Series<'static>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (sample, labels) in samples.iter().zip(&labels) {
            for (window, v) in value(sample) {
                let Some(v) = v else { continue };
                match window {
                    Some(w) => {
                        let _ = writeln!(out, "{name}{labels},window=\"{w}\"}} {v}");
                    }
                    None => {
                        let _ = writeln!(out, "{name}{labels}}} {v}");
                    }
                }
            }
        }
    };
    family(
        "sentryk8s_check_up",
        "Whether the check is up (1) or down (0); absent when unknown or paused.",
        &|s| vec![(None, s.up.map(|up| if up { "1".to_string() } else { "0".to_string() }))],
    );
    family("sentryk8s_check_last_duration_seconds", "Duration of the check's newest run.", &|s| {
        vec![(None, s.last_duration_seconds.and_then(number))]
    });
    family(
        "sentryk8s_check_cert_expiry_timestamp_seconds",
        "When the certificate seen by the check's newest run expires (seconds since the epoch).",
        &|s| vec![(None, s.cert_expiry.map(|t| t.to_string()))],
    );
    family(
        "sentryk8s_check_uptime_ratio",
        "Up time over up and down time in the window (0 to 1), from the rollups.",
        &|s| vec![(Some("24h"), s.uptime_24h.and_then(number)), (Some("30d"), s.uptime_30d.and_then(number))],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(check: &str) -> Sample {
        Sample { check: check.into(), ..Sample::default() }
    }

    #[test]
    fn families_are_whole_and_unknown_values_are_absent() {
        let (names, refused) = LabelNames::new(&["team".into()]);
        assert!(refused.is_empty());
        let samples = vec![
            Sample {
                labels: [("team".to_string(), "web".to_string()), ("tier".into(), "1".into())].into(),
                up: Some(true),
                last_duration_seconds: Some(0.0125),
                cert_expiry: Some(1_800_000_000),
                uptime_24h: Some(1.0),
                uptime_30d: Some(0.5),
                ..sample("api")
            },
            Sample { up: Some(false), last_duration_seconds: Some(2.0), ..sample("shop") },
            sample("fresh"),
        ];
        let text = render(&samples, &names);
        let expected = "\
# HELP sentryk8s_check_up Whether the check is up (1) or down (0); absent when unknown or paused.
# TYPE sentryk8s_check_up gauge
sentryk8s_check_up{check=\"api\",team=\"web\"} 1
sentryk8s_check_up{check=\"shop\"} 0
# HELP sentryk8s_check_last_duration_seconds Duration of the check's newest run.
# TYPE sentryk8s_check_last_duration_seconds gauge
sentryk8s_check_last_duration_seconds{check=\"api\",team=\"web\"} 0.0125
sentryk8s_check_last_duration_seconds{check=\"shop\"} 2
# HELP sentryk8s_check_cert_expiry_timestamp_seconds When the certificate seen by the check's newest run expires (seconds since the epoch).
# TYPE sentryk8s_check_cert_expiry_timestamp_seconds gauge
sentryk8s_check_cert_expiry_timestamp_seconds{check=\"api\",team=\"web\"} 1800000000
# HELP sentryk8s_check_uptime_ratio Up time over up and down time in the window (0 to 1), from the rollups.
# TYPE sentryk8s_check_uptime_ratio gauge
sentryk8s_check_uptime_ratio{check=\"api\",team=\"web\",window=\"24h\"} 1
sentryk8s_check_uptime_ratio{check=\"api\",team=\"web\",window=\"30d\"} 0.5
";
        assert_eq!(text, expected);
        assert!(!text.contains("tier"), "a label outside the allow-list is not copied");
        assert!(!text.contains("fresh"), "a check without any value has no series");
    }

    #[test]
    fn label_values_are_escaped() {
        let (names, _) = LabelNames::new(&["team".into()]);
        let s = Sample {
            labels: [("team".to_string(), "a\"b\\c\nd".to_string())].into(),
            up: Some(true),
            ..sample("we\"ird\\name\n")
        };
        let text = render(&[s], &names);
        assert!(
            text.contains("sentryk8s_check_up{check=\"we\\\"ird\\\\name\\n\",team=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn allowed_names_are_made_valid_and_clashes_refused() {
        let allowed: Vec<String> =
            ["app.kubernetes.io/team", "9lives", "check", "__x", "team", "a-b", "a.b", "window", ""]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let (names, refused) = LabelNames::new(&allowed);
        assert_eq!(
            names.copied,
            vec![
                ("app.kubernetes.io/team".to_string(), "app_kubernetes_io_team".to_string()),
                ("9lives".into(), "_9lives".into()),
                ("team".into(), "team".into()),
                ("a-b".into(), "a_b".into()),
            ]
        );
        assert_eq!(refused, vec!["check", "__x", "a.b", "window", ""]);
    }

    #[test]
    fn non_finite_numbers_are_never_written() {
        let s =
            Sample { last_duration_seconds: Some(f64::NAN), uptime_24h: Some(f64::INFINITY), ..sample("x") };
        let text = render(&[s], &LabelNames::default());
        assert!(!text.lines().any(|l| l.starts_with("sentryk8s_check")), "{text}");
    }
}
