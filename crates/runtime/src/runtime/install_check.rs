//! `vigil install-check`: the installer's guided check of a unit on site, in the order an
//! installer works through it: the configuration, the service, power, radio and pendants,
//! modem, audio, and last a test report through the real routes, whose every attempt shows
//! which route carries alarms and which does not. It ends with one table of green, amber and
//! red, with the fix for each amber and red.
//!
//! It asks the running unit (over its control socket) rather than opening the radio or the
//! modem itself, since the service owns them; it reads the journal to follow the test report.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::{Config, ConfigError};
use crate::core::{AlarmCause, RouteKind, Timestamp};
use crate::journal::{AttemptEvent, Journal};

/// How one check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Works.
    Green,
    /// Works, but needs a look before leaving the home.
    Amber,
    /// Does not work: fix before leaving.
    Red,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Green => "GREEN",
            Level::Amber => "AMBER",
            Level::Red => "RED",
        }
    }
}

/// One line of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked ("radio", "route arc-scaip", …).
    pub what: String,
    /// How it came out.
    pub level: Level,
    /// What was found.
    pub found: String,
    /// What to do, for amber and red.
    pub fix: Option<String>,
}

impl Check {
    fn new(what: impl Into<String>, level: Level, found: impl Into<String>) -> Check {
        Check {
            what: what.into(),
            level,
            found: found.into(),
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// Settings of a check.
#[derive(Clone, Debug)]
pub struct Options {
    /// Send a test report through the real routes and follow it (on by default).
    pub test_call: bool,
    /// How long to wait for the test report's acknowledgement.
    pub wait: Duration,
    /// Whether the installer heard the base's test prompt: asked on a terminal, given with
    /// `--heard` in a script, or unknown.
    pub heard: Heard,
}

/// How the installer's answer to "did you hear the base?" is had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard {
    /// Ask on the terminal once the prompt plays.
    Ask,
    /// Already answered (`--heard yes|no`).
    Answered(bool),
    /// Nobody to ask (not a terminal): the prompt plays, unconfirmed.
    Unknown,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            test_call: true,
            wait: Duration::from_secs(90),
            heard: Heard::Unknown,
        }
    }
}

/// Runs every check against the unit configured in `path`, in order; stops early only when
/// a step makes the rest meaningless (no valid configuration, no running unit).
pub fn run(path: &Path, options: &Options) -> Vec<Check> {
    let mut checks = Vec::new();
    let config = match crate::config::load(path) {
        Ok(c) => {
            checks.push(Check::new(
                "configuration",
                Level::Green,
                format!("{} is valid", path.display()),
            ));
            c
        }
        Err(ConfigError::Invalid { problems }) => {
            let first = problems.first().map(|p| p.to_string()).unwrap_or_default();
            checks.push(
                Check::new(
                    "configuration",
                    Level::Red,
                    format!("{} problem(s), the first: {first}", problems.len()),
                )
                .fix(format!(
                    "run `vigil check-config {}` and correct each line it names",
                    path.display()
                )),
            );
            return checks;
        }
        Err(e) => {
            checks.push(
                Check::new("configuration", Level::Red, e.to_string())
                    .fix("point --config (or VIGIL_CONFIG) at the unit's config.toml"),
            );
            return checks;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            checks.push(Check::new(
                "service",
                Level::Red,
                format!("cannot start: {e}"),
            ));
            return checks;
        }
    };
    let status = match rt.block_on(super::control::request(&config.data_dir, "status")) {
        Ok(s) => {
            checks.push(Check::new("service", Level::Green, "the unit is running"));
            s
        }
        Err(e) => {
            checks.push(
                Check::new("service", Level::Red, e.to_string())
                    .fix("start it with `systemctl start vigil`, then run this check again"),
            );
            return checks;
        }
    };
    checks.extend(from_status(&status));
    let audio = checks
        .iter()
        .find(|c| c.what == "audio")
        .map(|c| (c.level, c.found.clone()));
    checks.push(match audio {
        // Without a working output there is nothing to listen for.
        Some((level, found)) if level != Level::Green => {
            Check::new("prompt heard", level, format!("not played: {found}"))
                .fix("make the audio check green first")
        }
        _ => listen(
            rt.block_on(super::control::request(&config.data_dir, "play-check")),
            options.heard,
        ),
    });
    if options.test_call {
        checks.extend(rt.block_on(test_call(&config, options.wait)));
    }
    checks
}

/// The audio step: the unit plays its test prompt at the configured volume, and the installer
/// says whether it was heard at the base.
fn listen(played: Result<String, super::control::ControlError>, heard: Heard) -> Check {
    const FIX: &str =
        "turn [unit] volume up, check the loudspeaker's cable and audio.output_device, \
                       then run this check again";
    if let Err(e) = played {
        return Check::new(
            "prompt heard",
            Level::Red,
            format!("the unit did not play it: {e}"),
        )
        .fix(FIX);
    }
    let answer = match heard {
        Heard::Answered(a) => Some(a),
        Heard::Unknown => None,
        Heard::Ask => {
            use std::io::Write;
            print!(
                "Listen at the base: it says \"Test call in progress.\" Did you hear it? [y/n] "
            );
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            match std::io::stdin().read_line(&mut line) {
                Ok(n) if n > 0 => Some(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")),
                _ => None,
            }
        }
    };
    match answer {
        Some(true) => Check::new(
            "prompt heard",
            Level::Green,
            "the installer heard the base's test prompt",
        ),
        Some(false) => Check::new(
            "prompt heard",
            Level::Red,
            "the base played its test prompt and nobody heard it: the person would not hear an alarm prompt",
        )
        .fix(FIX),
        None => Check::new(
            "prompt heard",
            Level::Amber,
            "the test prompt played; nobody confirmed hearing it (not run on a terminal)",
        )
        .fix("run `vigil install-check` on a terminal beside the base and answer, or pass --heard yes|no"),
    }
}

/// The checks that the unit's own status shows.
pub fn from_status(status: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut pendants = 0;
    for line in status.lines() {
        let (label, rest) = match line.split_once(':') {
            Some((l, r)) if !l.starts_with(' ') => (l.trim(), r.trim()),
            _ => ("", line.trim()),
        };
        match label {
            "mains" if rest.contains("LOST") => checks.push(
                Check::new("power", Level::Red, "mains power is lost")
                    .fix("plug the base unit's power supply in; it runs on battery now"),
            ),
            "mains" => checks.push(Check::new("power", Level::Green, "mains present")),
            "faults" if rest.contains("FAULT") => {
                let name = rest.split(':').next().unwrap_or(rest).trim();
                checks.push(
                    Check::new(format!("fault {name}"), Level::Red, rest).fix(fault_fix(name)),
                );
            }
            "routes" if rest.contains("CANNOT WORK") => {
                let name = rest.split(':').next().unwrap_or(rest).trim();
                checks.push(Check::new(format!("route {name}"), Level::Red, rest).fix(
                    "the module cannot do what this route needs: on a SIMCom module set \
                         modem.voice_port to its USB audio port (usually /dev/ttyUSB4) so the \
                         unit hears the Contact ID tones itself, fit a module that can (a Quectel \
                         EC25 hears them), or take the route out of the plan",
                ));
            }
            "routes" if rest.contains("DOWN") => {
                let name = rest.split(':').next().unwrap_or(rest).trim();
                checks.push(
                    Check::new(format!("route {name}"), Level::Red, rest)
                        .fix("its last attempt failed: `vigil log` shows why; the test report below tries it again"),
                );
            }
            "call port" if rest.contains("DEGRADED") => {
                checks.push(Check::new("call port", Level::Amber, rest).fix(
                    "the centre's calls reach the person without the speakerphone: on a Quectel \
                     module turn its USB audio class on (AT+QCFG=\"USBCFG\", last field 1) and \
                     name its card in audio.call_device as `aplay -L` lists it; use a build with \
                     audio devices (feature alsa); on a SIMCom module set modem.voice_port instead",
                ))
            }
            "radio" => checks.push(radio(rest)),
            "modem" => checks.push(modem(rest)),
            "audio" => checks.push(audio(rest)),
            "" if is_pendant(rest) => {
                pendants += 1;
                checks.push(pendant(rest));
            }
            _ => {}
        }
    }
    if pendants == 0 {
        checks.push(
            Check::new("pendants", Level::Red, "no pendant is configured or paired").fix(
                "pair the person's pendant (`vigil pair`) or add it as [[pendant]] in config.toml",
            ),
        );
    }
    checks
}

fn fault_fix(name: &str) -> &'static str {
    match name {
        "radio" => "check the transceiver board and its cable (radio.spi, radio.gpio_chip)",
        "modem" => "check the cellular module's cable and modem.port, the SIM and the antenna",
        "registration" => {
            "the SCAIP registrar refuses or does not answer: check proxy, transport and the route's credentials with the centre"
        }
        "route" => "a route has failed every attempt for an hour: check its settings with the centre",
        "storage" => "the journal cannot be written: check the SD card and free space in data_dir",
        "journal" => "the journal was unreadable and was started afresh; the old file is kept in data_dir for inspection",
        "audio" => "check the loudspeaker and audio.output_device",
        _ => "see `vigil status` and the service's log (`journalctl -u vigil`)",
    }
}

fn radio(rest: &str) -> Check {
    if rest.starts_with("FAULT") {
        return Check::new("radio", Level::Red, rest)
            .fix("the base cannot hear pendants: check the transceiver and the radio settings named above");
    }
    if rest.starts_with("JAMMED") {
        return Check::new("radio", Level::Red, rest)
            .fix("something transmits on the alarm channel: look for a faulty device nearby, or move the base");
    }
    if rest.starts_with("opening") {
        return Check::new("radio", Level::Amber, "the radio is still opening")
            .fix("wait a few seconds and run the check again");
    }
    // "listening, channel -97 dBm, …": the noise floor.
    let level = rest
        .split("channel ")
        .nth(1)
        .and_then(|r| r.split(" dBm").next())
        .and_then(|n| n.trim().parse::<i16>().ok());
    match level {
        Some(dbm) if dbm > -85 => Check::new(
            "radio",
            Level::Amber,
            format!("listening, but the channel is noisy ({dbm} dBm)"),
        )
        .fix(
            "move the base away from routers, chargers and screens; weak pendants may not be heard",
        ),
        Some(dbm) => Check::new(
            "radio",
            Level::Green,
            format!("listening, noise floor {dbm} dBm"),
        ),
        None => Check::new("radio", Level::Green, "listening"),
    }
}

fn modem(rest: &str) -> Check {
    if rest.starts_with("ready") && !rest.contains("NOT REGISTERED") {
        return Check::new("modem", Level::Green, rest);
    }
    if rest.starts_with("starting") || rest.starts_with("RECOVERING") {
        return Check::new("modem", Level::Amber, rest)
            .fix("the module is starting or recovering: wait a minute and run the check again");
    }
    if rest.contains("NOT REGISTERED") {
        return Check::new("modem", Level::Red, rest)
            .fix("check the SIM (active, PIN in config), the antenna and the coverage at the base's place");
    }
    Check::new("modem", Level::Red, rest)
        .fix("no cellular module answers: check its cable and power, and modem.port in config.toml")
}

fn audio(rest: &str) -> Check {
    if rest.contains("FAULT") || rest.contains("lost") {
        return Check::new("audio", Level::Red, rest)
            .fix("check the loudspeaker and audio.output_device");
    }
    if rest.contains("disabled") || rest.contains("mute") {
        return Check::new("audio", Level::Amber, rest)
            .fix("the person hears no prompts and cannot be asked; fit a loudspeaker unless this is intended");
    }
    Check::new("audio", Level::Green, rest)
}

/// A pendant line of `vigil status`: eight hex digits first.
fn is_pendant(rest: &str) -> bool {
    rest.split_whitespace()
        .next()
        .is_some_and(|id| id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn pendant(rest: &str) -> Check {
    let id = rest.split_whitespace().next().unwrap_or("?");
    let what = format!("pendant {id}");
    if rest.contains("MISSING") {
        return Check::new(what, Level::Red, rest)
            .fix("not heard for too long: change its battery, or bring it closer to the base");
    }
    if rest.contains("never heard") {
        return Check::new(what, Level::Amber, "never heard since the unit started").fix(
            "press its button once where it will be used (bathroom, bed) and run the check again",
        );
    }
    let rssi = rest
        .rsplit(", ")
        .find_map(|p| p.strip_suffix(" dBm"))
        .and_then(|n| n.trim().parse::<i16>().ok());
    match rssi {
        Some(r) if r < -95 => {
            Check::new(what, Level::Amber, format!("heard, but weakly ({r} dBm)")).fix(
                "move the base nearer the middle of the home, off the floor and away from metal",
            )
        }
        Some(r) => Check::new(what, Level::Green, format!("heard at {r} dBm")),
        None => Check::new(what, Level::Green, "heard"),
    }
}

/// What became of a test report raised on the running unit.
#[derive(Clone, Debug, Default)]
pub struct TestOutcome {
    /// Its alarm reference, once the unit raised it.
    pub reference: Option<String>,
    /// Each attempt event so far, oldest first.
    pub attempts: Vec<AttemptEvent>,
    /// The route that acknowledged it.
    pub acked_by: Option<String>,
    /// How long it took (or was waited for).
    pub elapsed: Duration,
}

/// Raises a test report on the running unit and follows it in the journal until a route
/// acknowledges it or `wait` passes; `progress` hears each new attempt event as it happens.
pub async fn raise_and_follow(
    config: &Config,
    wait: Duration,
    progress: &mut dyn FnMut(&AttemptEvent),
) -> Result<TestOutcome, super::control::ControlError> {
    // The unit stamps alarms with its own clock, mapped from its monotonic clock at start:
    // allow it to lag this process's reading a little.
    let since = Timestamp(Timestamp::now().0.saturating_sub(10_000));
    super::control::request(&config.data_dir, "test-call").await?;
    let path = config.data_dir.join("journal.sqlite");
    let started = Instant::now();
    let mut outcome = TestOutcome::default();
    while started.elapsed() < wait {
        if let Ok(j) = Journal::open(&path) {
            if let Ok(Some((id, state, reference))) = j.newest_alarm(AlarmCause::ManualTest, since)
            {
                let attempts = j.attempts_of(id).unwrap_or_default();
                for e in attempts.iter().skip(outcome.attempts.len()) {
                    progress(e);
                }
                outcome.attempts = attempts;
                outcome.reference = Some(reference);
                if state != "open" {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    outcome.elapsed = started.elapsed();
    outcome.acked_by = outcome
        .attempts
        .iter()
        .find(|e| e.kind == "acknowledged")
        .map(|e| e.route.clone());
    Ok(outcome)
}

/// The test report's checks: every route it reached, and whether one acknowledged it.
async fn test_call(config: &Config, wait: Duration) -> Vec<Check> {
    let outcome = match raise_and_follow(config, wait, &mut |_| {}).await {
        Ok(o) => o,
        Err(e) => {
            return vec![Check::new("test report", Level::Red, e.to_string())
                .fix("the unit did not take the test request; see `journalctl -u vigil`")]
        }
    };
    let mut checks = Vec::new();
    let Some(reference) = outcome.reference else {
        return vec![Check::new(
            "test report",
            Level::Red,
            "the unit did not raise the test report",
        )
        .fix("see `vigil log` and `journalctl -u vigil`")];
    };
    let mut tried = std::collections::BTreeSet::new();
    for AttemptEvent {
        route,
        kind,
        detail,
        ..
    } in &outcome.attempts
    {
        tried.insert(route.clone());
        match kind.as_str() {
            "failed" => checks.push(
                Check::new(format!("route {route}"), Level::Red, detail.clone())
                    .fix(route_fix(config, route)),
            ),
            "acknowledged" => checks.push(Check::new(
                format!("route {route}"),
                Level::Green,
                format!("acknowledged the test report ({detail})"),
            )),
            _ => {}
        }
    }
    for r in &config.routes {
        if !tried.contains(&r.name) && r.carries.test {
            checks.push(
                Check::new(
                    format!("route {}", r.name),
                    Level::Amber,
                    "not tried: an earlier route acknowledged the test report first",
                )
                .fix("it is used only when the routes before it fail; ask the centre for a test on it"),
            );
        }
    }
    checks.push(match outcome.acked_by {
        Some(route) => Check::new(
            "test report",
            Level::Green,
            format!(
                "{reference} acknowledged via {route} in {:.1} s",
                outcome.elapsed.as_secs_f32()
            ),
        ),
        None => Check::new(
            "test report",
            Level::Red,
            format!("{reference} not acknowledged within {} s", wait.as_secs()),
        )
        .fix("no route carries alarms from this home: fix the red routes above"),
    });
    checks
}

fn route_fix(config: &Config, name: &str) -> &'static str {
    match config.routes.iter().find(|r| r.name == name).map(|r| r.kind()) {
        Some(RouteKind::Scaip) => {
            "check proxy, transport and the route's [credentials] (username, secret, realm) with the centre"
        }
        Some(RouteKind::Dc09) => {
            "check receiver address, account, receiver_number and the key (and key_format) with the centre"
        }
        Some(RouteKind::Sms) => "check the gateway number, the shared secret and the modem",
        Some(RouteKind::ContactId) => "check the receiver's number and the modem's voice calls",
        Some(RouteKind::Voice) => "check the number, and that the person answers and presses the key",
        None => "see `vigil log` for each attempt",
    }
}

/// The table, one line per check, and what to do for each amber and red.
pub fn render(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.what.len()).max().unwrap_or(0);
    let mut t = String::new();
    for c in checks {
        let _ = writeln!(t, "{:<6} {:<width$}  {}", c.level.label(), c.what, c.found);
        if let Some(fix) = &c.fix {
            let _ = writeln!(t, "{:<6} {:<width$}  -> {fix}", "", "");
        }
    }
    let worst = checks.iter().map(|c| c.level).max().unwrap_or(Level::Green);
    let _ = writeln!(
        t,
        "{}",
        match worst {
            Level::Green => "All green: the unit is ready.",
            Level::Amber => "No red: the unit works; look at each amber line before leaving.",
            Level::Red =>
                "RED: fix each red line before leaving the home, then run this check again.",
        }
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_become_checks() {
        let status = "time:        2026-12-05 04:47:00.563Z\n\
            mains:       present\n\
            faults:      none\n\
            radio:       listening, channel -80 dBm, 0 frames refused (none)\n\
            modem:       not open (no module answers on modem.port)\n\
            audio:       audio disabled\n\
            pendants:    2\n  \
            00A1B2C3 fall     zone   1  Anna's neck pendant      never heard since start\n  \
            00A1B2C4 fixed    zone   2  Bathroom pull cord       last heard 3 s ago, -99 dBm\n";
        let checks = from_status(status);
        let level = |what: &str| checks.iter().find(|c| c.what == what).map(|c| c.level);
        assert_eq!(level("power"), Some(Level::Green));
        assert_eq!(level("radio"), Some(Level::Amber), "{checks:#?}");
        assert_eq!(level("modem"), Some(Level::Red));
        assert_eq!(level("audio"), Some(Level::Amber));
        assert_eq!(level("pendant 00A1B2C3"), Some(Level::Amber));
        assert_eq!(level("pendant 00A1B2C4"), Some(Level::Amber));
        assert!(checks
            .iter()
            .filter(|c| c.level != Level::Green)
            .all(|c| c.fix.is_some()));
        let faulty = from_status("faults:      radio: FAULT (radio fault) since 2026-12-05\n");
        assert_eq!(faulty[0].what, "fault radio");
        assert_eq!(faulty[0].level, Level::Red);
        let unusable = from_status(
            "routes:      arc-contact-id: CANNOT WORK since 2026-12-05: SIMCom: the module does not report the receiver's 1400/2300 Hz tones (left out of the plan)\n",
        );
        assert_eq!(unusable[0].what, "route arc-contact-id");
        assert_eq!(unusable[0].level, Level::Red);
        assert!(unusable[0].fix.as_deref().unwrap_or("").contains("module"));
        let port = |status: &str| {
            from_status(status)
                .into_iter()
                .find(|c| c.what == "call port")
        };
        let refused = port(
            "call port:   DEGRADED: the module refused AT+QPCMV=1,2 (see the log): cellular calls' speech cannot reach the speakerphone\n",
        )
        .expect("a check for the call port");
        assert_eq!(refused.level, Level::Amber);
        assert!(refused
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("audio.call_device"));
        assert!(port(
            "call port:   the module's USB audio card plughw:CARD=EC25,DEV=0 (AT+QPCMV=1,2), through the speakerphone\n"
        )
        .is_none());
    }
}
