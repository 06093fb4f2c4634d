//! `vigil pendant`: a simulated pendant sending real, encrypted frames to the simulated radio.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use super::driver::sim::SimPeer;
use super::frame::{Event, Frame, FrameCipher, FrameType, PendantKey};
use super::pairing::PendantPairing;
use super::RadioError;
use crate::config::{Config, RadioDriver};
use crate::core::{DeviceId, FallEvidence};

/// What the simulated pendant does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PendantAction {
    /// Short press: help.
    Press,
    /// Long press: cancel.
    Hold,
    /// The fall detector fires.
    Fall,
    /// Periodic sign of life with the battery voltage.
    Heartbeat,
    /// Low battery report.
    Battery,
    /// Case opened.
    Tamper,
    /// Pairing mode: agree a key with a base whose pairing window is open.
    Pair,
    /// Replay a recorded SisFall trial (FILE) through the fall detector; send a fall frame
    /// when it fires.
    Replay,
}

/// `vigil pendant`: a simulated pendant sending real, encrypted frames.
#[derive(Args, Debug)]
pub struct PendantArgs {
    /// What the pendant does.
    #[arg(value_enum)]
    pub action: PendantAction,
    /// For `replay`: the SisFall trial file (3 or 9 columns, 200 Hz).
    #[arg(required_if_eq("action", "replay"))]
    pub file: Option<PathBuf>,
    /// For `replay`: pace the trial in real time, sending when the detector fires (otherwise
    /// the trial is judged at once and the frame sent immediately).
    #[arg(long)]
    pub realtime: bool,
    /// For `replay`: the pendant's accelerometer sample rate, 50–200 Hz (default: the
    /// configuration's `[fall] rate_hz`, else 50).
    #[arg(long = "rate", alias = "rate-hz")]
    pub rate_hz: Option<u16>,
    /// For `replay`: the pendant's accelerometer range per axis in g (2, 4, 8 or 16); the
    /// trial is saturated at it and judged with the parameters for that range (default: the
    /// configuration's `[fall] range_g`, else 16).
    #[arg(long, value_parser = crate::fall::condition::parse_range_g)]
    pub range_g: Option<u8>,
    /// The pendant's radio id, 1–8 hex digits.
    #[arg(long)]
    pub id: DeviceId,
    /// The pendant's AES-256 key, 64 hex digits.
    #[arg(long, conflicts_with = "config")]
    pub key: Option<String>,
    /// Take the key (and the simulated radio's address) from this config.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The simulated radio's address.
    #[arg(long)]
    pub to: Option<SocketAddr>,
    /// File keeping the pendant's frame counter (and a key agreed by pairing).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Signal level at which the base hears this pendant, dBm.
    #[arg(long, default_value_t = -70, allow_hyphen_values = true)]
    pub rssi: i16,
    /// Battery voltage for heartbeat and battery reports, millivolts.
    #[arg(long)]
    pub battery_mv: Option<u16>,
    /// Peak acceleration of a fall, milli-g.
    #[arg(long, default_value_t = 3500)]
    pub peak_mg: u16,
    /// Free fall before the impact sent with `fall`, milliseconds.
    #[arg(long, default_value_t = 300)]
    pub free_fall_ms: u16,
    /// Posture change sent with `fall`, degrees.
    #[arg(long, default_value_t = 90)]
    pub posture_deg: u8,
    /// Movement after the impact sent with `fall`, milli-g (below 100: lying still).
    #[arg(long, default_value_t = 40)]
    pub stillness_mg: u16,
    /// Retransmissions when no acknowledgement comes.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// How long to wait for the acknowledgement of each transmission, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub ack_wait_ms: u64,
    /// After an alarm is acknowledged by radio, how long to keep listening for the base's word
    /// that a receiving centre has it ("help is coming"), milliseconds; 0 does not wait.
    #[arg(long, default_value_t = 0)]
    pub help_wait_ms: u64,
    /// Send this many frames (for range tests), each a new event.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Pause between frames when `--count` is above 1, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
}

// ---------------------------------------------------------------------------------------------
// The simulated pendant.

/// The simulated pendant's memory between invocations.
#[derive(Debug, Default)]
struct PendantState {
    counter: u32,
    key: Option<PendantKey>,
    /// Alarm (help and fall) events sent since pairing, wrapping; told in every heartbeat.
    alarms: u16,
}

impl PendantState {
    fn load(path: &Path) -> Result<PendantState, RadioError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(PendantState::default())
            }
            Err(e) => return Err(RadioError::io(format!("reading {}", path.display()), e)),
        };
        let mut s = PendantState::default();
        for line in text.lines() {
            let bad = || RadioError::Usage(format!("{}: unreadable line `{line}`", path.display()));
            match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                [] => {}
                ["counter", n] => s.counter = n.parse().map_err(|_| bad())?,
                ["alarms", n] => s.alarms = n.parse().map_err(|_| bad())?,
                ["key", k] => s.key = Some(PendantKey::from_hex(k).map_err(|_| bad())?),
                _ => return Err(bad()),
            }
        }
        Ok(s)
    }

    fn save(&self, path: &Path) -> Result<(), RadioError> {
        let mut text = format!("counter {}\nalarms {}\n", self.counter, self.alarms);
        if let Some(k) = &self.key {
            text.push_str(&format!("key {}\n", k.to_hex()));
        }
        let tmp = path.with_extension("tmp");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let write = |()| -> std::io::Result<()> {
            use std::io::Write;
            let mut f = opts.open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write(()).map_err(|e| RadioError::io(format!("writing {}", path.display()), e))
    }
}

/// Runs `vigil pendant`.
pub fn pendant(args: &PendantArgs) -> Result<ExitCode, RadioError> {
    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("pendant-{}.state", args.id)));
    if args.file.is_some() && args.action != PendantAction::Replay {
        return Err(RadioError::Usage(
            "a trial FILE goes only with `replay`".into(),
        ));
    }
    let mut state = PendantState::load(&state_path)?;
    let config = match &args.config {
        Some(p) => Some(read_config(p)?),
        None => None,
    };
    let to = args
        .to
        .or_else(|| match config.as_ref().map(|c| &c.radio.driver) {
            Some(RadioDriver::Sim { listen }) if listen.port() != 0 => Some(*listen),
            _ => None,
        })
        .ok_or_else(|| RadioError::Usage("give --to ADDR, the simulated radio's address".into()))?;
    let peer = SimPeer::new(to, args.rssi)?;

    let event = match args.action {
        PendantAction::Press => Event::Help,
        PendantAction::Hold => Event::Cancel,
        PendantAction::Fall => Event::Fall(FallEvidence {
            peak_mg: args.peak_mg,
            free_fall_ms: args.free_fall_ms,
            posture_change_deg: args.posture_deg,
            stillness_mg: args.stillness_mg,
        }),
        PendantAction::Heartbeat => Event::Heartbeat {
            battery_mv: args.battery_mv.unwrap_or(3000),
            alarms_sent: Some(state.alarms),
        },
        PendantAction::Battery => Event::LowBattery {
            battery_mv: args.battery_mv.unwrap_or(2300),
        },
        PendantAction::Tamper => Event::Tamper,
        PendantAction::Pair => return pair_pendant(args, &peer, &mut state, &state_path),
        PendantAction::Replay => {
            let key = pendant_key(args, config.as_ref(), &state)?;
            let sensor = crate::fall::SensorConfig {
                range_g: args
                    .range_g
                    .or(config.as_ref().map(|c| c.fall.range_g))
                    .unwrap_or(16),
                rate_hz: args
                    .rate_hz
                    .or(config.as_ref().map(|c| c.fall.rate_hz))
                    .unwrap_or(50),
            };
            return replay(
                args,
                sensor,
                &peer,
                &FrameCipher::new(&key),
                &mut state,
                &state_path,
            );
        }
    };
    let key = pendant_key(args, config.as_ref(), &state)?;
    let cipher = FrameCipher::new(&key);
    let mut unanswered = 0;
    for n in 0..args.count.max(1) {
        if n > 0 {
            std::thread::sleep(Duration::from_millis(args.interval_ms));
        }
        // The counter is saved before the frame goes out, so no counter is ever sent twice.
        state.counter = state.counter.checked_add(1).ok_or_else(|| {
            RadioError::Usage("the counter is exhausted: pair the pendant again".into())
        })?;
        if event.is_alarm() {
            state.alarms = state.alarms.wrapping_add(1);
        }
        state.save(&state_path)?;
        let frame = cipher.seal_event(args.id, state.counter, event);
        let acked = send_until_acked(&peer, frame.as_bytes(), &cipher, args, state.counter)?;
        match acked {
            Some(tries) => {
                let what = format!("pendant {} {} #{}", args.id, event.as_str(), state.counter);
                told_after_ack(
                    &peer,
                    &cipher,
                    args,
                    state.counter,
                    event.is_alarm(),
                    &what,
                    tries,
                )?;
            }
            None => {
                unanswered += 1;
                println!(
                    "pendant {} {} #{}: no acknowledgement after {} transmission(s)",
                    args.id,
                    event.as_str(),
                    state.counter,
                    args.retries + 1
                );
            }
        }
    }
    // Help and fall must be acknowledged; other reports need not be.
    Ok(if unanswered > 0 && event.is_alarm() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// `vigil pendant replay FILE`: the trial streams through the pendant's fall detector; each
/// fall it reports goes out as a fall frame with the detector's peak impact.
fn replay(
    args: &PendantArgs,
    sensor: crate::fall::SensorConfig,
    peer: &SimPeer,
    cipher: &FrameCipher,
    state: &mut PendantState,
    state_path: &Path,
) -> Result<ExitCode, RadioError> {
    let path = args.file.as_deref().ok_or_else(|| {
        RadioError::Usage("give the trial to replay: vigil pendant replay FILE".into())
    })?;
    let trial =
        crate::fall::sisfall::load_trial(path).map_err(|e| RadioError::Usage(e.to_string()))?;
    let falls = super::pendant::detect_falls(&trial, sensor)?;
    println!(
        "pendant {}: replaying {} ({}, {:.1} s) at {} Hz, ±{} g{}",
        args.id,
        trial.id(),
        trial.kind.description(),
        trial.duration_s(),
        sensor.rate_hz,
        sensor.range_g,
        if args.realtime { " in real time" } else { "" }
    );
    if falls.is_empty() {
        println!(
            "pendant {}: the fall detector did not fire: nothing sent",
            args.id
        );
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    let mut unanswered = 0;
    for fall in &falls {
        if args.realtime {
            std::thread::sleep((started + fall.at).saturating_duration_since(Instant::now()));
        }
        // The counter is saved before the frame goes out, so no counter is ever sent twice.
        state.counter = state.counter.checked_add(1).ok_or_else(|| {
            RadioError::Usage("the counter is exhausted: pair the pendant again".into())
        })?;
        state.alarms = state.alarms.wrapping_add(1);
        state.save(state_path)?;
        let frame = cipher.seal_event(args.id, state.counter, Event::Fall(fall.evidence));
        let what = format!(
            "pendant {} fall #{} at {:.2} s (peak {} mg, score {:.2})",
            args.id,
            state.counter,
            fall.at.as_secs_f64(),
            fall.peak_mg,
            fall.event.score
        );
        match send_until_acked(peer, frame.as_bytes(), cipher, args, state.counter)? {
            Some(tries) => told_after_ack(peer, cipher, args, state.counter, true, &what, tries)?,
            None => {
                unanswered += 1;
                println!(
                    "{what}: no acknowledgement after {} transmission(s)",
                    args.retries + 1
                );
            }
        }
    }
    Ok(if unanswered > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The pendant's key: from the command line, the configuration, or pairing (the state file).
fn pendant_key(
    args: &PendantArgs,
    config: Option<&Config>,
    state: &PendantState,
) -> Result<PendantKey, RadioError> {
    Ok(match (&args.key, config) {
        (Some(k), _) => PendantKey::from_hex(k)?,
        (None, Some(c)) => c
            .pendants
            .iter()
            .find(|p| p.id == args.id)
            .and_then(|p| p.key.as_deref())
            .map(|k| PendantKey::new(*k))
            .ok_or_else(|| {
                RadioError::Usage(format!(
                    "no key for pendant {} in the configuration",
                    args.id
                ))
            })?,
        (None, None) => state.key.clone().ok_or_else(|| {
            RadioError::Usage(
                "no key: give --key HEX or --config PATH, or pair the pendant first".into(),
            )
        })?,
    })
}

/// Sends `frame`, retransmitting the same bytes until the ack comes; the number of
/// transmissions it took, or `None`.
/// What the pendant shows once the base acknowledged frame `counter`: "alarm received" (the
/// base has it), then, for an alarm, "help is coming" only if the base says a receiving centre
/// has it within `--help-wait-ms`.
fn told_after_ack(
    peer: &SimPeer,
    cipher: &FrameCipher,
    args: &PendantArgs,
    counter: u32,
    alarm: bool,
    what: &str,
    tries: u32,
) -> Result<(), RadioError> {
    if !alarm {
        println!("{what}: acknowledged after {tries} transmission(s)");
        return Ok(());
    }
    println!("{what}: acknowledged after {tries} transmission(s): alarm received");
    if args.help_wait_ms > 0 {
        let wait = Duration::from_millis(args.help_wait_ms);
        if super::pendant::wait_help_coming(peer, cipher, args.id, counter, wait)? {
            println!("{what}: the base says a centre has the alarm: help is coming");
        } else {
            println!(
                "{what}: no word from the base within {} ms that a centre has the alarm \
                 (the base keeps trying)",
                args.help_wait_ms
            );
        }
    }
    Ok(())
}

fn send_until_acked(
    peer: &SimPeer,
    frame: &[u8],
    cipher: &FrameCipher,
    args: &PendantArgs,
    counter: u32,
) -> Result<Option<u32>, RadioError> {
    super::pendant::send_until_acked(
        peer,
        frame,
        cipher,
        args.id,
        counter,
        args.retries,
        Duration::from_millis(args.ack_wait_ms),
    )
}

fn pair_pendant(
    args: &PendantArgs,
    peer: &SimPeer,
    state: &mut PendantState,
    state_path: &Path,
) -> Result<ExitCode, RadioError> {
    let pairing = PendantPairing::start(args.id, 1)?;
    let request = pairing.request();
    let wait = Duration::from_millis(args.ack_wait_ms.max(1000));
    let mut accept = None;
    for _ in 0..=args.retries {
        peer.send(request.as_bytes())?;
        accept = wait_for(peer, args.id, FrameType::PairAccept, wait)?;
        if accept.is_some() {
            break;
        }
    }
    let Some(accept) = accept else {
        println!(
            "pendant {}: no answer to the pairing request (is a pairing window open? run \
             `vigil pair` on the unit, and hold the pendant next to it)",
            args.id
        );
        return Ok(ExitCode::from(2));
    };
    let revealed = pairing.accepted(&accept)?;
    println!(
        "pendant {}: the light blinks the code {}",
        args.id, revealed.code
    );
    // Say the key again every couple of seconds until the base confirms, for as long as a
    // window can stay open.
    let deadline = Instant::now() + super::pairing::MAX_WINDOW + Duration::from_secs(5);
    while Instant::now() < deadline {
        peer.send(revealed.reveal.as_bytes())?;
        if let Some(done) = wait_for(peer, args.id, FrameType::PairDone, Duration::from_secs(2))? {
            let key = revealed.finish(&done)?;
            *state = PendantState {
                counter: 0,
                key: Some(key),
                alarms: 0,
            };
            state.save(state_path)?;
            println!(
                "pendant {}: paired; key kept in {}",
                args.id,
                state_path.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
    println!(
        "pendant {}: the base did not confirm the code; nothing changed on the pendant",
        args.id
    );
    Ok(ExitCode::from(2))
}

/// The next frame of `kind` for `id` within `wait`, ignoring everything else on the air.
fn wait_for(
    peer: &SimPeer,
    id: DeviceId,
    kind: FrameType,
    wait: Duration,
) -> Result<Option<Vec<u8>>, RadioError> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(bytes) = peer.receive(left)? else {
            return Ok(None);
        };
        if Frame::new_checked(&bytes[..]).is_ok_and(|f| f.frame_type() == kind && f.device() == id)
        {
            return Ok(Some(bytes.to_vec()));
        }
    }
}

/// Reads and validates the whole configuration with the unit's own loader.
fn read_config(path: &Path) -> Result<Config, RadioError> {
    crate::config::load(path).map_err(|e| RadioError::Usage(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pendant_state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.state");
        assert_eq!(PendantState::load(&p).unwrap().counter, 0);
        let s = PendantState {
            counter: 17,
            key: Some(PendantKey::new([3; 32])),
            alarms: 65535,
        };
        s.save(&p).unwrap();
        let back = PendantState::load(&p).unwrap();
        assert_eq!((back.counter, back.alarms), (17, 65535));
        assert_eq!(back.key, s.key);
    }
}
