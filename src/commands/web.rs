//! `sentryk8s web [--listen ADDR]`: the REST API, served and drained by
//! [`serve_role_with_metrics`] like every role. `--listen` is the API's
//! address (`web.listen`); the ops server (/metrics, /healthz, /readyz)
//! stays on `listen` and serves the per-check metrics, so a public API
//! port exposes none.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use super::serve::serve_role_with_metrics;
use crate::config::Config;
use crate::health::ReadinessProbe;
use crate::{db, shutdown, web};

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let token = shutdown::on_signals().context("installing signal handlers")?;
    let pool = db::pool(&config, "web")?;
    let probes: Vec<Arc<dyn ReadinessProbe>> = vec![Arc::new(db::PostgresProbe::dedicated(&config, "web")?)];
    let listener = web::bind(config.web.listen)
        .await
        .with_context(|| format!("binding the web listener {} (web.listen, --listen)", config.web.listen))?;
    let check_metrics = web::metrics::CheckMetrics::new();
    let extra = {
        let check_metrics = check_metrics.clone();
        Arc::new(move || check_metrics.text()) as crate::ops_server::ExtraMetrics
    };
    let role = async {
        web::run(&config, pool, listener, check_metrics, token.clone()).await;
        Ok(())
    };
    serve_role_with_metrics("web", &config, probes, Some(extra), &token, role).await
}
