//! The `vigil` command: run the base unit, check its configuration, read its journal,
//! drive the simulators.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Vigil social-alarm base unit.
#[derive(Parser)]
#[command(name = "vigil", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a configuration file and report every error in it.
    CheckConfig {
        /// The file to check.
        #[arg(default_value = "config.toml")]
        path: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { path } => check_config(&path),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    match vigil::config::load(path) {
        Ok(config) => {
            println!(
                "{}: OK: unit {}, {} pendant(s), {} route(s): {}",
                path.display(),
                config.unit.controller_id,
                config.pendants.len(),
                config.routes.len(),
                config
                    .routes
                    .iter()
                    .map(|r| format!("{} ({})", r.name, r.kind().as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(vigil::config::ConfigError::Invalid { problems }) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{}: {} problem(s) found", path.display(), problems.len());
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}
