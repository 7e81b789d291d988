//! `sentryk8s tokens create|list|revoke`: being built (issue 15).

use std::process::ExitCode;

use crate::cli::TokensArgs;
use crate::config::Config;

pub async fn run(_args: TokensArgs, _config: Config) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`sentryk8s tokens` is not built yet")
}
