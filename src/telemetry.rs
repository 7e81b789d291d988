//! Logs (tracing) and metrics (the Prometheus recorder behind `/metrics`).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::{Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// Installs the global tracing subscriber. `RUST_LOG` wins over `level`.
///
/// Logs go to stderr so that commands (`config`, `status -o json`) keep a
/// clean stdout for their output.
///
/// Two filters, both of which an event must pass: the operator's (from
/// `RUST_LOG` or `level`, with noisy libraries quiet unless named) and
/// [`secret_cap`], which no filter string can lift.
pub fn init_logging(format: LogFormat, level: &str) {
    let wanted =
        std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| level.to_string());
    let (filter, invalid) = log_filter(&wanted);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true);
    // try_init: a second call (tests, `standalone`) keeps the first subscriber.
    let installed = match format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(fmt.json().flatten_event(true).with_current_span(false).with_filter(filter))
            .try_init(),
        LogFormat::Text => tracing_subscriber::registry().with(fmt.with_filter(filter)).try_init(),
    };
    if let (Ok(()), Some(e)) = (installed, invalid) {
        tracing::warn!(filter = %wanted, error = %e, "invalid log filter (RUST_LOG or log_level); logging at info");
    }
}

/// Libraries that are noisy below info. They stay at info unless the filter
/// names them: these defaults come first, so a directive of the operator's
/// for the same target replaces them (`hyper=debug` works), while a bare
/// `debug` or `trace` does not reach them.
const QUIET_TARGETS: &[&str] = &["postgres_protocol", "hyper", "hyper_util", "h2", "rustls"];

/// Libraries whose logs below info carry secrets, capped at info whatever
/// the filter says:
/// - `tokio_postgres`: `tokio_postgres::query` logs every statement's
///   parameters at debug (a check's spec with its header values when
///   `checks apply` writes it; alert channel settings; tokens);
/// - `amqprs`: at trace it logs every frame, the connection's
///   `Start-Ok` (the broker password) and job bodies (check specs) among
///   them;
/// - `lettre`: at debug it logs the SMTP dialogue, `AUTH` included.
///
/// Their info lines (notices, connection opened or closed) carry none.
const SECRET_TARGETS: &[&str] = &["tokio_postgres", "amqprs", "lettre"];

/// The filter of every log line: the operator's `wanted` (quiet defaults
/// first) and the secret cap, both of which an event must pass. An invalid
/// `wanted` falls back to info and comes back as the error to report.
fn log_filter<S>(wanted: &str) -> (impl Filter<S>, Option<tracing_subscriber::filter::ParseError>)
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let (filter, invalid) = match operator_filter(wanted) {
        Ok(filter) => (filter, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    (filter.and(secret_cap()), invalid)
}

/// The operator's filter: the quiet defaults, then `wanted`.
fn operator_filter(wanted: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let defaults: Vec<String> = QUIET_TARGETS.iter().map(|t| format!("{t}=info")).collect();
    EnvFilter::builder().parse(format!("{},{wanted}", defaults.join(",")))
}

/// The filter no `RUST_LOG` can override: it is a second filter an event
/// must also pass, not a directive among the operator's (where a more
/// specific one such as `tokio_postgres::query=trace` would win). Targets
/// match by prefix, so `tokio_postgres::query` is covered by
/// `tokio_postgres`. Because the cap also answers `log`'s `log_enabled!`,
/// tokio-postgres never even formats the parameters.
fn secret_cap() -> Targets {
    SECRET_TARGETS.iter().fold(Targets::new().with_default(LevelFilter::TRACE), |cap, target| {
        cap.with_target(*target, LevelFilter::INFO)
    })
}

/// Buckets for every `*_seconds` histogram: from sub-millisecond phases of a
/// local check to the 60 s timeout of a slow one.
const SECONDS_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Buckets for counts per operation (batch sizes).
const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0];

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Histogram samples queue up in the recorder until upkeep folds them in;
/// without it a scheduler recording 17k lateness samples a second grows by
/// hundreds of MB an hour when nobody scrapes `/metrics`. A plain thread, so
/// it works whichever runtime (or none) is current.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
        std::thread::sleep(std::time::Duration::from_secs(5));
        handle.run_upkeep();
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
    }
}

/// The process-wide metrics recorder, installed on first use.
///
/// Installing twice is impossible (the `metrics` facade has one global
/// recorder), and tests run several roles in one process, hence the cell.
pub fn metrics() -> PrometheusHandle {
    METRICS
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZE_BUCKETS))
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("sentryk8s_job_message_slots".into()),
                        SIZE_BUCKETS,
                    )
                });
            match builder {
                Ok(builder) => {
                    let recorder = builder.build_recorder();
                    let handle = recorder.handle();
                    spawn_upkeep(handle.clone());
                    if metrics::set_global_recorder(recorder).is_err() {
                        tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
                    }
                    handle
                }
                Err(e) => {
                    // Only reachable with an empty bucket list, which the constants are not.
                    tracing::error!(error = %e, "invalid metrics buckets; /metrics will be empty");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tracing::Level;

    use super::*;

    /// Counts the events that reach it.
    struct Count(Arc<AtomicUsize>);
    impl<S: tracing::Subscriber> Layer<S> for Count {
        fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// How many of the events `emit` sends pass the filter built from `wanted`.
    fn passed(wanted: &str, emit: impl FnOnce()) -> usize {
        let seen = Arc::new(AtomicUsize::new(0));
        let (filter, invalid) = log_filter(wanted);
        assert!(invalid.is_none(), "{wanted}: {invalid:?}");
        let subscriber = tracing_subscriber::registry().with(Count(seen.clone()).with_filter(filter));
        tracing::subscriber::with_default(subscriber, emit);
        seen.load(Ordering::SeqCst)
    }

    #[test]
    fn secret_logging_targets_stay_capped_whatever_the_filter() {
        for wanted in [
            "trace",
            "debug",
            "tokio_postgres=trace",
            "debug,tokio_postgres::query=trace",
            "amqprs=trace,lettre=trace",
        ] {
            let n = passed(wanted, || {
                tracing::event!(target: "tokio_postgres::query", Level::DEBUG, "parameters");
                tracing::event!(target: "tokio_postgres::query", Level::TRACE, "parameters");
                tracing::event!(target: "tokio_postgres", Level::DEBUG, "parameters");
                tracing::event!(target: "amqprs::net::split_connection", Level::TRACE, "frame");
                tracing::event!(target: "lettre::transport::smtp", Level::DEBUG, "AUTH");
            });
            assert_eq!(n, 0, "{wanted}: a secret-logging event passed");
        }
        let n =
            passed("info", || tracing::event!(target: "tokio_postgres::connection", Level::INFO, "notice"));
        assert_eq!(n, 1, "their info lines still show");
    }

    #[test]
    fn noisy_dependencies_stay_quiet_unless_named() {
        let n = passed("debug", || {
            tracing::event!(target: "hyper::proto", Level::DEBUG, "noise");
            tracing::event!(target: "sentryk8s::worker", Level::DEBUG, "ours");
        });
        assert_eq!(n, 1, "only our own debug line");
        assert_eq!(
            passed("debug,hyper=debug", || tracing::event!(target: "hyper::proto", Level::DEBUG, "x")),
            1
        );
        assert_eq!(
            passed("hyper::proto=trace", || tracing::event!(target: "hyper::proto", Level::TRACE, "x")),
            1
        );
    }
}
