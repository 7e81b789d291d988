use super::*;
use crate::history::buckets::HOUR_MS;

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

const NOW: &str = "2026-11-29T14:30:00Z";
const RETENTION: Retention = Retention { raw_days: 30, hourly_days: 90 };

fn choice(from: &str, to: &str) -> Source {
    choose(t(from), t(to), t(NOW), RETENTION)
}

#[test]
fn short_recent_windows_are_answered_from_raw_results() {
    assert_eq!(choice("2026-11-29T13:30:00Z", NOW), Source::Raw);
    assert_eq!(choice("2026-11-29T11:30:00Z", NOW), Source::Raw, "exactly 3 h");
    assert_eq!(choice("2026-10-31T00:00:00Z", "2026-10-31T01:00:00Z"), Source::Raw, "29 days ago");
}

#[test]
fn a_short_window_past_the_raw_retention_is_hourly() {
    assert_eq!(choice("2026-10-29T00:00:00Z", "2026-10-29T01:00:00Z"), Source::Hour);
    let one_day = Retention { raw_days: 1, hourly_days: 90 };
    assert_eq!(choose(t("2026-11-28T10:00:00Z"), t("2026-11-28T12:00:00Z"), t(NOW), one_day), Source::Hour);
    assert_eq!(choose(t("2026-11-28T15:00:00Z"), t("2026-11-28T17:00:00Z"), t(NOW), one_day), Source::Raw);
}

#[test]
fn windows_up_to_a_week_are_hourly_then_daily() {
    assert_eq!(choice("2026-11-29T11:29:59Z", NOW), Source::Hour, "a second over 3 h");
    assert_eq!(choice("2026-11-22T14:30:00Z", NOW), Source::Hour, "exactly 7 days");
    assert_eq!(choice("2026-11-22T14:29:59Z", NOW), Source::Day);
    assert_eq!(choice("2026-10-30T14:30:00Z", NOW), Source::Day, "30 days");
}

#[test]
fn past_the_hourly_retention_even_a_short_window_is_daily() {
    assert_eq!(choice("2026-08-01T00:00:00Z", "2026-08-01T01:00:00Z"), Source::Day);
    assert_eq!(choice("2026-08-31T14:00:00Z", "2026-08-31T15:00:00Z"), Source::Day, "90 days + 30 min");
    assert_eq!(choice("2026-08-31T15:00:00Z", "2026-08-31T16:00:00Z"), Source::Hour, "89.98 days");
}

#[test]
fn a_short_window_in_the_future_is_raw_and_empty() {
    assert_eq!(choice("2026-12-01T00:00:00Z", "2026-12-01T01:00:00Z"), Source::Raw);
}

#[test]
fn rollup_windows_are_whole_buckets_ending_at_now_at_most() {
    let w = answered(Source::Day, t("2026-10-30T14:30:00Z"), t(NOW), t(NOW));
    assert_eq!((w.from, w.to, w.live), (t("2026-10-30T00:00:00Z"), t(NOW), true));
    let w = answered(Source::Hour, t("2026-11-20T10:15:00Z"), t("2026-11-21T10:15:00Z"), t(NOW));
    assert_eq!((w.from, w.to, w.live), (t("2026-11-20T10:00:00Z"), t("2026-11-21T11:00:00Z"), false));
    let w = answered(Source::Hour, t("2026-11-20T10:00:00Z"), t("2026-11-21T10:00:00Z"), t(NOW));
    assert_eq!((w.from, w.to), (t("2026-11-20T10:00:00Z"), t("2026-11-21T10:00:00Z")), "aligned stays");
    let w = answered(Source::Raw, t("2026-11-29T13:17:00Z"), t("2026-11-29T15:00:00Z"), t(NOW));
    assert_eq!((w.from, w.to, w.live), (t("2026-11-29T13:17:00Z"), t(NOW), true));
    let w = answered(Source::Raw, t("2026-11-29T13:17:00Z"), t("2026-11-29T14:00:00Z"), t(NOW));
    assert_eq!((w.to, w.live), (t("2026-11-29T14:00:00Z"), false));
}

#[test]
fn since_parses_days_hours_and_minutes() {
    let now = t(NOW);
    assert_eq!(since("--since", "30d", now).unwrap(), t("2026-10-30T14:30:00Z"));
    assert_eq!(since("--since", "24h", now).unwrap(), t("2026-11-28T14:30:00Z"));
    assert_eq!(since("--since", "90m", now).unwrap(), t("2026-11-29T13:00:00Z"));
    for bad in ["", "30", "soon", "0s", "-1d"] {
        let e = since("--since", bad, now).unwrap_err();
        assert!(e.to_string().starts_with("--since: "), "{e}");
        assert!(e.is_invalid_input());
    }
    assert!(since("--since", "100000000000y", now).is_err());
}

#[test]
fn times_must_be_rfc3339_and_errors_name_the_flag() {
    assert_eq!(parse_time("--from", "2026-11-01T00:00:00+01:00").unwrap(), t("2026-10-31T23:00:00Z"));
    let e = parse_time("--to", "yesterday").unwrap_err();
    assert!(e.to_string().starts_with("--to: \"yesterday\" is not an RFC 3339 time"), "{e}");
    assert!(check_window(t(NOW), t(NOW)).is_err());
    assert!(check_window(t("2026-11-29T15:00:00Z"), t(NOW)).is_err());
    assert!(check_window(t("2026-11-29T14:00:00Z"), t(NOW)).is_ok());
}

#[test]
fn labels_are_key_equals_value() {
    assert_eq!(parse_label("team=web").unwrap(), ("team".into(), "web".into()));
    assert_eq!(parse_label("tier=").unwrap(), ("tier".into(), String::new()));
    assert_eq!(parse_label("a=b=c").unwrap(), ("a".into(), "b=c".into()));
    for bad in ["team", "=web", ""] {
        assert!(matches!(parse_label(bad), Err(HistoryError::BadLabel(_))), "{bad}");
    }
}

#[test]
fn unknown_checks_are_named_and_database_errors_are_not_bad_input() {
    let e = HistoryError::UnknownChecks(vec!["a".into(), "b c".into()]);
    assert_eq!(e.to_string(), "no check named \"a\", \"b c\"");
    assert!(e.is_invalid_input());
    assert!(!HistoryError::Db("x".into()).is_invalid_input());
}

#[test]
fn rows_take_uptime_percentiles_and_mean_from_the_tally() {
    let mut tally = Tally {
        durations: Durations { up_ms: 3_000_000, down_ms: 300_000, no_data_ms: 180_000, maintenance_ms: 0 },
        runs: 10,
        failures: 2,
        total_us_sum: 800_000,
        ..Tally::default()
    };
    tally.histogram[crate::history::histogram::index(100.0)] = 8;
    let sums = store::IncidentSums { count: 2, mttr_seconds: Some(90.0), longest_seconds: Some(120.0) };
    let row = ReportRow::new(7, "api".into(), &tally, Some(sums));
    assert!((row.uptime_percent.unwrap() - 90.909_090_909).abs() < 1e-6);
    assert_eq!((row.incidents, row.mttr_seconds, row.longest_outage_seconds), (2, Some(90.0), Some(120.0)));
    assert_eq!(row.mean_ms, Some(100.0));
    assert!((90.5..128.0).contains(&row.p50_ms.unwrap()));
    let empty = ReportRow::new(8, "new".into(), &Tally::default(), None);
    assert_eq!((empty.uptime_percent, empty.p50_ms, empty.mean_ms, empty.incidents), (None, None, None, 0));
}

#[test]
fn errors_are_scrubbed_or_hidden() {
    let s = vec!["t0ken-123".to_string()];
    assert_eq!(shown_error(Some("401 for t0ken-123".into()), Some(&s)), Some("401 for ***".into()));
    assert_eq!(shown_error(None, Some(&s)), None);
    assert_eq!(shown_error(None, None), None);
    let hidden = shown_error(Some("401 for t0ken-123".into()), None).unwrap();
    assert!(!hidden.contains("t0ken"), "{hidden}");
}

#[test]
fn an_open_incident_lasts_until_now() {
    let i = Incident {
        id: 1,
        check: "api".into(),
        check_id: 1,
        opened_at: t("2026-11-29T14:00:00Z"),
        confirmed_at: t("2026-11-29T14:01:00Z"),
        resolved_at: None,
        resolution: None,
        first_error: None,
        last_error: None,
        in_maintenance: false,
        alerts_sent: 0,
    };
    assert_eq!(i.duration_seconds(t(NOW)), 1800.0);
    let resolved = Incident { resolved_at: Some(t("2026-11-29T14:00:30.5Z")), ..i };
    assert_eq!(resolved.duration_seconds(t(NOW)), 30.5);
}

#[test]
fn the_histogram_sums_cover_every_bucket_in_order() {
    let sql = store::histogram_sums();
    assert!(sql.starts_with("sum(latency_histogram[1]), sum(latency_histogram[2])"));
    assert!(sql.ends_with("sum(latency_histogram[40])"));
    assert_eq!(sql.matches("sum(").count(), crate::history::histogram::BUCKETS);
}

#[test]
fn bars_cover_every_bucket_from_the_one_holding_the_start() {
    assert_eq!(bucket_starts(DAY_MS + 5, 3 * DAY_MS, Granularity::Day), vec![DAY_MS, 2 * DAY_MS]);
    assert_eq!(bucket_starts(DAY_MS + 5, 3 * DAY_MS + 1, Granularity::Day).len(), 3);
    assert_eq!(bucket_starts(0, DAY_MS, Granularity::Hour).len(), 24);
    assert_eq!(bucket_starts(0, 90 * DAY_MS, Granularity::Day).len(), 90);
    assert!(bucket_starts(HOUR_MS, HOUR_MS, Granularity::Hour).is_empty());
}
