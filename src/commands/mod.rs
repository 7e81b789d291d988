//! One file per subcommand: thin wiring of the shared modules into a role.
//! Every long-running role starts, drains and exits through one
//! [`serve_role`] (`serve.rs`), which holds the exit status policy.

mod checks;
mod config;
mod delivery;
mod incidents;
mod migrate;
mod report;
mod rollups;
mod scheduler;
mod serve;
mod standalone;
mod status;
mod tokens;
mod web;
mod worker;

pub use serve::{serve_role, Outcome};

use std::process::ExitCode;

use crate::cli::Command;
use crate::config::Config;

/// Exit status of a command that failed on bad input (usage, config,
/// checks file): distinct from 1, a runtime failure.
pub const EXIT_INVALID: u8 = 2;

/// Exit status of a role whose drain deadline (`drain_timeout`) passed with
/// work still running: distinct from 0, a finished drain, and from 1, a
/// failure. See [`serve_role`].
pub const EXIT_DRAIN_TIMEOUT: u8 = 3;

/// Runs a subcommand to completion.
pub async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Migrate(args) => migrate::run(args, config).await,
        Command::Config => config::run(config),
        Command::Scheduler(_) => scheduler::run(config).await,
        Command::Worker(_) => worker::run(config).await,
        Command::Checks(args) => checks::run(args, config).await,
        Command::Status(args) => status::run(args, config).await,
        Command::Report(args) => report::run(args, config).await,
        Command::Incidents(args) => incidents::run(args, config).await,
        Command::Rollups(args) => rollups::run(args, config).await,
        Command::Web => web::run(config).await,
        Command::Tokens(args) => tokens::run(args, config).await,
        Command::Standalone(args) => standalone::run(args, config).await,
    }
}
