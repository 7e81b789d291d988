//! `sentryk8s config`: the effective configuration, secrets redacted.

use std::process::ExitCode;

use crate::config::Config;

pub fn run(config: Config) -> anyhow::Result<ExitCode> {
    print!("{}", config.to_redacted_toml());
    Ok(ExitCode::SUCCESS)
}
