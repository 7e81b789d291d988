//! `sentryk8s report`: being built (issue 14); a helper fills this file.

use std::process::ExitCode;

use crate::cli::ReportArgs;
use crate::config::Config;

pub async fn run(_args: ReportArgs, _config: Config) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`sentryk8s report` is not built yet")
}
