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
    /// Score the shipped fall detector and the SisFall baselines on recorded trials.
    FallEval(vigil::fall::eval::EvalArgs),
    /// Tune the fall detector on some subjects and report on the others.
    FallTune(vigil::fall::tune::TuneArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { path } => check_config(&path),
        Command::FallEval(args) => vigil::fall::eval::run(&args)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::FallTune(args) => vigil::fall::tune::run(&args)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(_path: &std::path::Path) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet")
}
