//! Logs (tracing) and metrics (the Prometheus recorder behind `/metrics`).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global tracing subscriber. `RUST_LOG` wins over `level`.
///
/// Logs go to stderr so that commands (`config`, `status -o json`) keep a
/// clean stdout for their output.
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true);
    // try_init: a second call (tests, `standalone`) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.try_init(),
    };
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
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZE_BUCKETS));
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

/// Folds recorded histogram samples into their buckets every few seconds.
///
/// The Prometheus recorder keeps raw samples until upkeep runs, which
/// otherwise happens only when `/metrics` is scraped: a busy role that is
/// not scraped (no Prometheus yet, a broken scrape config) would grow
/// without bound. Runs until `shutdown`.
pub async fn metrics_upkeep(shutdown: tokio_util::sync::CancellationToken) {
    let handle = metrics();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => handle.run_upkeep(),
            _ = shutdown.cancelled() => return,
        }
    }
}
