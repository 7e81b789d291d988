//! `sentryk8s incidents`: being built (issue 14); a helper fills this file.

use std::process::ExitCode;

use crate::cli::IncidentsArgs;
use crate::config::Config;

pub async fn run(_args: IncidentsArgs, _config: Config) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`sentryk8s incidents` is not built yet")
}
