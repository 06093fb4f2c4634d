//! The `vigil` command: run the base unit, check its configuration, read its journal; with
//! the `sim` feature (not in the Debian package), also drive the simulators.

// As in the library: bad input is reported, never panicked on. Tests may still unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Vigil social-alarm base unit.
#[derive(Parser)]
#[command(name = "vigil", version, about, after_help = vigil::config::CONFIG_RULE)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the base unit (as the systemd service does).
    Run {
        /// The configuration. [default: see the rule below]
        #[arg(long)]
        config: Option<PathBuf>,
        /// Play prompts into WAV files in this folder instead of the audio devices.
        #[arg(long)]
        simulated_audio: Option<PathBuf>,
        /// No audio at all.
        #[arg(long, conflicts_with = "simulated_audio")]
        no_audio: bool,
        /// Short modem timeouts, for the modem simulator.
        #[arg(long, hide = true)]
        fast_modem: bool,
    },
    /// Show the running unit's state: modem, radio, pendants, open alarms, last test.
    Status {
        /// The configuration of the running unit. [default: see the rule below]
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Send a test report through the real routes of the running unit and follow it until a
    /// receiver acknowledges it.
    TestCall {
        /// The configuration of the running unit. [default: see the rule below]
        #[arg(long)]
        config: Option<PathBuf>,
        /// How long to follow the report, in seconds.
        #[arg(long, default_value_t = 120)]
        wait: u64,
        /// Raise the report and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Call a test line from the running unit: it says its test prompt into the call and
    /// reports what came back (round trip and level). TARGET is a sip: address in the
    /// centre's domain that sends back what it hears (an echo test line).
    CallTest {
        /// Whom to call: the centre's echo test line, for example sip:echo@centre.example, or
        /// a number (through the module; needs modem.voice_port or audio.call_device).
        target: String,
        /// The configuration of the running unit. [default: see the rule below]
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The installer's check of the running unit: configuration, power, radio and pendants,
    /// modem, audio, then a test report through the real routes; one green/amber/red table.
    InstallCheck {
        /// The configuration of the running unit [default: see the rule below].
        #[arg(long)]
        config: Option<PathBuf>,
        /// Skip the test report (nothing is sent to the centre).
        #[arg(long)]
        no_test_call: bool,
        /// How long to wait for the test report's acknowledgement, in seconds.
        #[arg(long, default_value_t = 90)]
        wait: u64,
        /// Whether the base's test prompt was heard (yes/no), for scripts; on a terminal the
        /// check asks.
        #[arg(long, value_parser = parse_yes_no)]
        heard: Option<bool>,
    },
    /// Run the base unit on simulated hardware through a scripted alarm scenario.
    #[cfg(feature = "sim")]
    Demo {
        /// Keep the site (configuration, journal, recordings) here instead of a temporary folder.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run the unit and let a person press the simulated pendant instead of the script.
        #[arg(long)]
        interactive: bool,
    },
    /// Print the journal as a readable timeline.
    Log {
        /// The configuration (its data_dir holds the journal) [default: see the rule below].
        #[arg(long)]
        config: Option<PathBuf>,
        /// Read this journal file instead.
        #[arg(long)]
        journal: Option<PathBuf>,
        /// How many events, newest last.
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    /// Check a configuration file and report every error in it.
    CheckConfig {
        /// The file to check [default: see the rule below].
        path: Option<PathBuf>,
        /// The file to check, as the other commands name it.
        #[arg(long, conflicts_with = "path")]
        config: Option<PathBuf>,
    },
    /// Deliver alarms over SCAIP and SIA DC-09 to the simulated receiving centre on loopback.
    #[cfg(feature = "sim")]
    CentreDemo(vigil::centre::receiver::demo::CentreDemoArgs),
    /// Run a simulated cellular module and network on a pseudo-terminal.
    #[cfg(feature = "sim")]
    ModemSim(vigil::modem::sim::SimArgs),
    /// Check the voice prompts, play them into WAV files or on the speaker, list devices.
    Prompts(vigil::voice::cli::PromptsArgs),
    /// Simulated pendant: send real, encrypted frames to the simulated radio.
    #[cfg(feature = "sim")]
    Pendant(vigil::radio::PendantArgs),
    /// Open a pairing window and pair one pendant.
    Pair(vigil::runtime::radio_cli::PairArgs),
    /// Show live RSSI and packet success per pendant, for placing the base.
    RangeTest(vigil::runtime::radio_cli::RangeTestArgs),
    /// Score the shipped fall detector and the SisFall baselines on recorded trials.
    FallEval(vigil::fall::eval::EvalArgs),
    /// Tune the fall detector on some subjects and report on the others.
    FallTune(vigil::fall::tune::TuneArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { path, config } => {
            located(path.or(config)).and_then(|p| check_config(&p))
        }
        Command::Run {
            config,
            simulated_audio,
            no_audio,
            fast_modem,
        } => located(config).and_then(|c| run(&c, simulated_audio, no_audio, fast_modem)),
        Command::InstallCheck {
            config,
            no_test_call,
            wait,
            heard,
        } => located(config).map(|c| install_check(&c, no_test_call, wait, heard)),
        Command::Status { config } => located(config).and_then(|c| ask(&c, "status")),
        Command::CallTest { target, config } => {
            located(config).and_then(|c| call_test(&c, &target))
        }
        Command::TestCall {
            config,
            no_wait: true,
            ..
        } => located(config).and_then(|c| ask(&c, "test-call")),
        Command::TestCall { config, wait, .. } => located(config).and_then(|c| test_call(&c, wait)),
        #[cfg(feature = "sim")]
        Command::Demo { out, interactive } => {
            vigil::demo::run(vigil::demo::DemoOptions { out, interactive })
        }
        Command::Log {
            config,
            journal,
            limit,
        } => log(config, journal, limit),
        #[cfg(feature = "sim")]
        Command::CentreDemo(args) => vigil::centre::receiver::demo::run(&args)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        #[cfg(feature = "sim")]
        Command::ModemSim(args) => vigil::modem::sim::run_cli(args).map_err(Into::into),
        Command::Prompts(args) => vigil::voice::cli::run(&args).map_err(Into::into),
        #[cfg(feature = "sim")]
        Command::Pendant(args) => vigil::radio::pendant(&args).map_err(Into::into),
        Command::Pair(args) => vigil::runtime::radio_cli::pair(&args).map_err(Into::into),
        Command::RangeTest(args) => {
            vigil::runtime::radio_cli::range_test(&args).map_err(Into::into)
        }
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
            eprintln!("vigil: {}", sentence(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes in one line, each cause once: many errors already carry their
/// cause's text in their own message, so a cause the line already says is not repeated.
fn sentence(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// `vigil test-call`: raises a test report and follows it attempt by attempt, with a line of
/// what it is waiting for on a terminal.
fn test_call(config: &std::path::Path, wait: u64) -> anyhow::Result<ExitCode> {
    let cfg = vigil::config::load(config)?;
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    spinner.set_message("test report raised; waiting for the first route");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(vigil::runtime::install_check::raise_and_follow(
        &cfg,
        std::time::Duration::from_secs(wait),
        &mut |vigil::journal::AttemptEvent {
                  route,
                  attempt,
                  kind,
                  detail,
              }| {
            let line = match kind.as_str() {
                "attempt" => {
                    spinner.set_message(format!(
                        "waiting for {route} to acknowledge (attempt {attempt})"
                    ));
                    format!("attempt {attempt} via {route}")
                }
                "failed" => format!("attempt {attempt} via {route} failed: {detail}"),
                _ => format!("ACKNOWLEDGED via {route} (attempt {attempt}) by {detail}"),
            };
            // A spinner hidden off a terminal prints nothing: then the lines go to stdout.
            if spinner.is_hidden() {
                println!("{line}");
            } else {
                spinner.println(line);
            }
        },
    ))?;
    spinner.finish_and_clear();
    let reference = outcome.reference.as_deref().unwrap_or("the test report");
    match outcome.acked_by {
        Some(route) => {
            println!(
                "{reference}: acknowledged via {route} in {:.1} s",
                outcome.elapsed.as_secs_f32()
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            println!(
                "{reference}: not acknowledged within {wait} s; the unit goes on trying (see `vigil log`)"
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "y" => Ok(true),
        "no" | "n" => Ok(false),
        other => Err(format!("`{other}`: say yes or no")),
    }
}

fn install_check(
    config: &std::path::Path,
    no_test_call: bool,
    wait: u64,
    heard: Option<bool>,
) -> ExitCode {
    use std::io::IsTerminal;
    use vigil::runtime::install_check::{render, run, Heard, Level, Options};
    let heard = match heard {
        Some(h) => Heard::Answered(h),
        None if std::io::stdin().is_terminal() => Heard::Ask,
        None => Heard::Unknown,
    };
    let checks = run(
        config,
        &Options {
            test_call: !no_test_call,
            wait: std::time::Duration::from_secs(wait),
            heard,
        },
    );
    print!("{}", render(&checks));
    if checks.iter().any(|c| c.level == Level::Red) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The configuration file by the one rule every command follows (see `vigil --help`).
fn located(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(vigil::config::locate(explicit.as_deref())?)
}

fn check_config(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    match vigil::config::load(path) {
        Ok(config) => {
            for w in &config.warnings {
                println!("warning: {w}");
            }
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
            let secrets = vigil::config::secrets_path(path);
            if secrets.exists() {
                println!("{}: secrets read from it", secrets.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(vigil::config::ConfigError::Invalid { problems }) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{}: {} problem(s) found", path.display(), problems.len());
            Ok(ExitCode::from(2))
        }
        // A file that cannot be read as a configuration is a problem with the file too.
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
    }
}

fn log(
    config: Option<PathBuf>,
    journal: Option<PathBuf>,
    limit: usize,
) -> anyhow::Result<ExitCode> {
    let path = match journal {
        Some(p) => p,
        None => vigil::config::load(&located(config)?)?
            .data_dir
            .join("journal.sqlite"),
    };
    if !path.exists() {
        anyhow::bail!("{}: no journal here yet", path.display());
    }
    let j = vigil::journal::Journal::open(&path)?;
    let timeline = j.timeline(limit)?;
    if timeline.is_empty() {
        println!("{}: no alarms yet", path.display());
    }
    for e in timeline {
        println!("{}  {:>5}  {:<16}  {}", e.at, e.alarm, e.reference, e.text);
    }
    Ok(ExitCode::SUCCESS)
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("VIGIL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Plain text for journald; colours only on a terminal.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

fn run(
    config: &std::path::Path,
    simulated_audio: Option<PathBuf>,
    no_audio: bool,
    fast_modem: bool,
) -> anyhow::Result<ExitCode> {
    use vigil::runtime::appliance::AudioChoice;
    init_logging();
    let audio = match (simulated_audio, no_audio) {
        (Some(dir), _) => AudioChoice::Simulated(dir),
        (None, true) => AudioChoice::Mute,
        (None, false) => AudioChoice::Devices,
    };
    vigil::runtime::service::run(
        config,
        vigil::runtime::service::RunOptions { audio, fast_modem },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `vigil call-test`: the unit's lines as they come; exit 0 only when the round trip was
/// measured.
fn call_test(config: &std::path::Path, target: &str) -> anyhow::Result<ExitCode> {
    if target.chars().any(char::is_whitespace) || target.is_empty() {
        anyhow::bail!("the address to call is one word, for example sip:echo@centre.example");
    }
    let cfg = vigil::config::load(config)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut ok = false;
    rt.block_on(vigil::runtime::control::request_lines(
        &cfg.data_dir,
        &format!("call-test {target}"),
        std::time::Duration::from_secs(120),
        |line| {
            println!("{line}");
            ok |= line.starts_with("OK:");
        },
    ))?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn ask(config: &std::path::Path, command: &str) -> anyhow::Result<ExitCode> {
    print!("{}", vigil::runtime::service::ask(config, command)?);
    Ok(ExitCode::SUCCESS)
}
