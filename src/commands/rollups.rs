//! `sentryk8s rollups`: being built (issue 14); a helper fills this file.

use std::process::ExitCode;

use crate::cli::RollupsArgs;
use crate::config::Config;

pub async fn run(_args: RollupsArgs, _config: Config) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`sentryk8s rollups` is not built yet")
}
