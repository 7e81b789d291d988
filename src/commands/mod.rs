//! One file per subcommand: thin wiring of the shared modules into a role.

mod checks;
mod config;
mod migrate;
mod scheduler;
mod standalone;
mod status;
mod worker;

use std::process::ExitCode;

use crate::cli::Command;
use crate::config::Config;

/// Exit status of a command that failed on bad input (usage, config,
/// checks file): distinct from 1, a runtime failure.
pub const EXIT_INVALID: u8 = 2;

/// Runs a subcommand to completion.
pub async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Migrate(args) => migrate::run(args, config).await,
        Command::Config => config::run(config),
        Command::Scheduler(_) => scheduler::run(config).await,
        Command::Worker(_) => worker::run(config).await,
        Command::Checks(args) => checks::run(args, config).await,
        Command::Status(args) => status::run(args, config).await,
        Command::Standalone(args) => standalone::run(args, config).await,
    }
}
