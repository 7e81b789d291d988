//! `sentryk8s`: parse the command line, load the configuration, start
//! telemetry, run the subcommand. Nothing else belongs here.

use std::process::ExitCode;

use clap::Parser;
use sentryk8s::cli::{Cli, Command};
use sentryk8s::commands::{self, EXIT_INVALID};
use sentryk8s::{config, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config::load(cli.global.config.as_ref(), &cli.flag_values()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    // On a terminal, standalone's status table would drown in info lines:
    // warnings only, unless asked otherwise (--log-level or RUST_LOG).
    let quiet = matches!(cli.command, Command::Standalone(_))
        && std::io::IsTerminal::is_terminal(&std::io::stdout())
        && cli.global.log_level.is_none();
    telemetry::init_logging(config.log_format, if quiet { "warn" } else { &config.log_level });
    let json_logs = config.log_format == config::LogFormat::Json;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            // {:#} prints the whole context chain on one line.
            if json_logs {
                tracing::error!("{e:#}");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
