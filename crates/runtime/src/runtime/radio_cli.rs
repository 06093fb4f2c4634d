//! The radio's installer commands: `vigil pair` (through the running unit's control socket)
//! and `vigil range-test`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::config::{Band, Config, Pendant, Radio, RadioDriver};
#[cfg(feature = "sim")]
use crate::radio::driver::sim::{SimChannel, SimRadio};
use crate::radio::driver::{self, Transceiver};
use crate::radio::link::{LinkConfig, LinkStatus, RadioLink};
use crate::radio::pairing::PairingCode;
use crate::radio::store::FileStore;
use crate::radio::RadioError;

/// Where the base's radio is, for `vigil pair` and `vigil range-test`.
#[derive(Args, Debug)]
pub struct BaseRadioArgs {
    /// config.toml to take `[radio]` and `[[pendant]]` from.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Use the simulated radio, listening here (instead of the configured radio).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Share of frames the simulated radio loses, 0–1.
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// File keeping paired keys and last counters.
    #[arg(long, default_value = "radio.state")]
    pub store: PathBuf,
}

/// `vigil pair`: pair one pendant through the running unit.
#[derive(Args, Debug)]
pub struct PairArgs {
    /// config.toml of the running unit (default: $VIGIL_CONFIG, /etc/vigil/config.toml,
    /// ./config.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Give a pendant id that already has a key a new one (a replaced pendant).
    #[arg(long)]
    pub replace: bool,
    /// Window length in seconds, at most 60 (default: the configured pairing window).
    #[arg(long, conflicts_with = "confirm")]
    pub window: Option<u64>,
    /// Confirm the six-digit code the pendant blinks (and `vigil pair` printed).
    #[arg(long, value_name = "CODE")]
    pub confirm: Option<String>,
}

/// `vigil range-test`: live RSSI and packet success per pendant.
#[derive(Args, Debug)]
pub struct RangeTestArgs {
    /// The radio.
    #[command(flatten)]
    pub radio: BaseRadioArgs,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    pub seconds: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// The base's side.

/// Reads and validates the whole configuration with the unit's own loader, so the tools see
/// exactly what `vigil run` would; every problem is reported with its file, line and key.
fn read_config(path: &Path) -> Result<Config, RadioError> {
    crate::config::load(path).map_err(|e| RadioError::Usage(e.to_string()))
}

/// The radio settings, the provisioned pendants and the opened transceiver.
type Base = (Radio, Vec<Pendant>, Box<dyn Transceiver>);

fn base(args: &BaseRadioArgs) -> Result<Base, RadioError> {
    // The configured radio, found by the rule every command follows; the simulated radio only
    // when asked for with --listen, never as a silent fallback.
    let path = match (&args.config, args.listen) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(_)) => None,
        (None, None) => Some(crate::config::locate(None).map_err(|e| {
            RadioError::Usage(format!(
                "{e}; or pass --listen ADDR to use the simulated radio"
            ))
        })?),
    };
    let (mut radio, pendants) = match &path {
        Some(p) => {
            let config = read_config(p)?;
            (config.radio, config.pendants)
        }
        None => (
            Radio {
                band: Band::Eu869,
                driver: RadioDriver::Sim {
                    listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                },
                jamming_rssi_dbm: -90,
                jamming_after: Duration::from_secs(30),
                pairing_window: Duration::from_secs(60),
                pairing_min_rssi: -60,
            },
            Vec::new(),
        ),
    };
    if let Some(listen) = args.listen {
        radio.driver = RadioDriver::Sim { listen };
    }
    if !(0.0..=1.0).contains(&args.loss) {
        return Err(RadioError::Usage("--loss must be between 0 and 1".into()));
    }
    let transceiver: Box<dyn Transceiver> = match &radio.driver {
        #[cfg(not(feature = "sim"))]
        RadioDriver::Sim { .. } => driver::open(&radio)?,
        #[cfg(feature = "sim")]
        RadioDriver::Sim { listen } => {
            let sim = SimRadio::bind(
                *listen,
                SimChannel {
                    loss: args.loss,
                    ..SimChannel::default()
                },
            )?;
            println!("simulated radio listening on {}", sim.local_addr()?);
            Box::new(sim)
        }
        RadioDriver::Rfm69 { .. } => driver::open(&radio)?,
    };
    Ok((radio, pendants, transceiver))
}

fn runtime() -> Result<tokio::runtime::Runtime, RadioError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RadioError::io("starting the runtime", e))
}

/// Runs `vigil pair`: asks the running unit to open its pairing window and follows it, or
/// (`--confirm CODE`) confirms the code the pendant shows.
pub fn pair(args: &PairArgs) -> Result<ExitCode, RadioError> {
    let path = crate::config::locate(args.config.as_deref())
        .map_err(|e| RadioError::Usage(e.to_string()))?;
    let config = read_config(&path)?;
    let not_running = |e: crate::runtime::control::ControlError| {
        RadioError::Usage(format!("pairing goes through the running unit: {e}"))
    };
    runtime()?.block_on(async move {
        if let Some(typed) = &args.confirm {
            let code = PairingCode::parse(typed).ok_or_else(|| {
                RadioError::Usage(format!(
                    "`{typed}` is not a pairing code: it is six digits, as the pendant shows it"
                ))
            })?;
            let answer = crate::runtime::control::request(
                &config.data_dir,
                &format!("pair-confirm {}", code.digits()),
            )
            .await
            .map_err(not_running)?;
            print!("{answer}");
            return Ok(if answer.starts_with("paired pendant") {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            });
        }
        let mut command = "pair".to_string();
        if args.replace {
            command.push_str(" replace");
        }
        if let Some(w) = args.window {
            command.push_str(&format!(" window={w}"));
        }
        let mut paired = false;
        crate::runtime::control::request_lines(
            &config.data_dir,
            &command,
            crate::radio::pairing::MAX_WINDOW + Duration::from_secs(30),
            |line| {
                println!("{line}");
                paired |= line.starts_with("paired pendant");
            },
        )
        .await
        .map_err(not_running)?;
        Ok(if paired {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        })
    })
}

/// The range-test table, one line per pendant.
pub fn range_table(status: &LinkStatus) -> String {
    let mut out = String::from(
        "pendant   frames  success  rssi-last  rssi-mean  rssi-min  rssi-max  rejected  missed\n",
    );
    let dbm = |v: Option<i16>| v.map_or("-".to_string(), |v| format!("{v} dBm"));
    let rows: BTreeMap<_, _> = status.range.iter().collect();
    for (id, s) in rows {
        out.push_str(&format!(
            "{id}  {:>6}  {:>7}  {:>9}  {:>9}  {:>8}  {:>8}  {:>8}  {:>6}\n",
            s.frames,
            s.packet_success()
                .map_or("-".into(), |p| format!("{:.1}%", p * 100.0)),
            dbm(s.rssi_last),
            s.rssi_mean().map_or("-".into(), |m| format!("{m:.1} dBm")),
            dbm(s.rssi_min),
            dbm(s.rssi_max),
            s.rejected,
            s.missed,
        ));
    }
    out.push_str(&format!(
        "channel {}{}; rejected frames: {}\n",
        dbm(status.channel_rssi_dbm),
        if status.jamming { " JAMMED" } else { "" },
        status.rejections
    ));
    out
}

/// One line per pendant for a sample taken `at` into the test, and one for the channel: what
/// `vigil range-test` prints when its output is not a terminal, so a log or a script gets a
/// line per sample instead of repeated tables.
pub fn range_lines(at: Duration, status: &LinkStatus) -> String {
    let dbm = |v: Option<i16>| v.map_or("-".to_string(), |v| format!("{v} dBm"));
    let t = at.as_secs();
    let mut out = String::new();
    let rows: BTreeMap<_, _> = status.range.iter().collect();
    for (id, s) in rows {
        out.push_str(&format!(
            "{t}s pendant {id}: {} frames, success {}, rssi {} (mean {}), {} rejected, {} missed\n",
            s.frames,
            s.packet_success()
                .map_or("-".into(), |p| format!("{:.1}%", p * 100.0)),
            dbm(s.rssi_last),
            s.rssi_mean().map_or("-".into(), |m| format!("{m:.1} dBm")),
            s.rejected,
            s.missed,
        ));
    }
    out.push_str(&format!(
        "{t}s channel {}{}\n",
        dbm(status.channel_rssi_dbm),
        if status.jamming { " JAMMED" } else { "" }
    ));
    out
}

/// Shows a table that changes every second: redrawn in place on a terminal.
#[derive(Default)]
struct LiveTable {
    lines: usize,
}

impl LiveTable {
    fn show(&mut self, table: &str) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if self.lines > 0 {
            // Up to the table's first line, and clear from there down.
            let _ = write!(out, "\x1b[{}A\x1b[J", self.lines);
        }
        let _ = write!(out, "{table}");
        let _ = out.flush();
        self.lines = table.lines().count();
    }
}

/// Runs `vigil range-test`.
pub fn range_test(args: &RangeTestArgs) -> Result<ExitCode, RadioError> {
    let (radio, pendants, transceiver) = base(&args.radio)?;
    let store = FileStore::open(&args.radio.store)?;
    let stop_after = args.seconds.map(Duration::from_secs);
    runtime()?.block_on(async move {
        let mut link = RadioLink::start(transceiver, store, &pendants, LinkConfig::from(&radio))?;
        let started = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        let mut live = LiveTable::default();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if terminal {
                        live.show(&range_table(&link.status()));
                    } else {
                        print!("{}", range_lines(started.elapsed(), &link.status()));
                    }
                    if stop_after.is_some_and(|s| started.elapsed() >= s) {
                        break;
                    }
                }
                input = link.recv() => if input.is_none() { break },
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        let status = link.status();
        link.stop()?;
        println!("final:\n{}", range_table(&status));
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tools_read_the_configuration_with_the_units_loader() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, VALID).unwrap();
        let c = read_config(&p).unwrap();
        assert_eq!(c.pendants.len(), 2);
        assert_eq!(c.pendants[0].id, crate::core::DeviceId(0x00A1B2C3));
        assert_eq!(c.pendants[0].kind, crate::core::DeviceKind::Fall);
        assert!(c.pendants[0].key.is_some() && c.pendants[1].key.is_none());
        assert_eq!(c.radio.pairing_window, Duration::from_secs(60));
        assert_eq!(
            c.radio.driver,
            RadioDriver::Sim {
                listen: "127.0.0.1:8690".parse().unwrap()
            }
        );
        // A mistake is reported with its file, line and key, as `vigil check-config` does.
        std::fs::write(&p, VALID.replace("id = \"00A1B2C4\"", "id = \"xyz\"")).unwrap();
        let e = read_config(&p).unwrap_err().to_string();
        let line = VALID
            .lines()
            .position(|l| l == "id = \"00A1B2C4\"")
            .unwrap()
            + 1;
        assert!(
            e.contains(&format!("config.toml:{line}:")) && e.contains("pendant[2].id"),
            "{e}"
        );
    }

    const VALID: &str = "[unit]\ncontroller_id = \"4600123456\"\ncontact_id_account = \"1234\"\n\
        sia_account = \"1234\"\nsubscriber = \"Anna\"\naddress = \"Storgatan 1\"\nlanguage = \"en\"\n\
        [[pendant]]\nid = \"00A1B2C3\"\nkind = \"fall\"\n\
        key = \"6b1f0c2e9a4d7f3b8c5e1a2d4f6b8c0e1a3c5e7f9b1d3f5a7c9e1b3d5f7a9c1e\"\n\
        [[pendant]]\nid = \"00A1B2C4\"\n\
        [[route]]\nname = \"daughter\"\nkind = \"voice\"\nnumber = \"+46703333333\"\n\
        [radio]\ndriver = \"sim\"\nlisten = \"127.0.0.1:8690\"\njamming_after = \"30s\"\n\
        pairing_window = \"1m\"\n\
        [modem]\nport = \"/dev/null\"\n";
}
