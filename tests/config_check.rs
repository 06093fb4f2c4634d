//! The installer's configuration: the shipped example is valid, mistakes are all reported
//! precisely, and no input makes the loader panic.

use std::path::Path;

use proptest::prelude::*;
use vigil::config::{self, ConfigError, Problem};

const EXAMPLE: &str = include_str!("../config.toml");

fn problems(text: &str) -> Vec<Problem> {
    match config::parse(text, Path::new("site.toml")) {
        Err(ConfigError::Invalid { problems }) => problems,
        Ok(_) => Vec::new(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn the_shipped_example_is_valid_and_complete() {
    let c = config::load(Path::new("config.toml")).expect("config.toml must be valid");
    assert_eq!(c.unit.controller_id, "4600123456");
    assert_eq!(c.pendants.len(), 2);
    assert_eq!(c.routes.len(), 5);
    assert_eq!(c.retry.fast_rounds, 16);
    assert_eq!(c.retry.fast_interval.as_secs(), 30);
    assert_eq!(c.retry.slow_interval.as_secs(), 600);
    assert!(c.supervision.mains_report_delay.as_secs() <= 180);
    assert!(c.supervision.test_interval.as_secs() <= 86_400);
    assert!(c.supervision.test_offset < c.supervision.test_interval);
    assert_eq!(c.alarm.fall_confirm_window.as_secs(), 30);
    assert_eq!(
        c.fall,
        vigil::fall::SensorConfig {
            range_g: 2,
            rate_hz: 50
        }
    );
}

#[test]
fn fall_sensor_range_and_rate_are_checked() {
    let text = EXAMPLE
        .replace("range_g = 2", "range_g = 3")
        .replace("rate_hz = 50", "rate_hz = 25");
    let p = problems(&text);
    let shown: Vec<String> = p.iter().map(|p| p.to_string()).collect();
    assert_eq!(p.len(), 2, "{shown:#?}");
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(
        shown[0].contains(&format!("site.toml:{}", line_of("range_g = 3")))
            && shown[0].contains("fall.range_g")
            && shown[0].contains("2, 4, 8 or 16"),
        "{shown:#?}"
    );
    assert!(
        shown[1].contains(&format!("site.toml:{}", line_of("rate_hz = 25")))
            && shown[1].contains("fall.rate_hz")
            && shown[1].contains("50 to 200"),
        "{shown:#?}"
    );
    // Without the table: SisFall's range at the lowest rate.
    let start = EXAMPLE.find("\n# The fall pendants'").unwrap();
    let c = config::parse(&EXAMPLE[..start], Path::new("site.toml")).unwrap();
    assert_eq!((c.fall.range_g, c.fall.rate_hz), (16, 50));
}

#[test]
fn five_mistakes_give_five_precise_messages() {
    let text = EXAMPLE
        .replace(
            "controller_id = \"4600123456\"",
            "controller_id = \"46-00\"",
        )
        .replace("volume = 80", "volume = 180")
        .replace("id = \"00A1B2C4\"", "id = \"00A1B2C3\"")
        .replace("number = \"+46701111111\"", "number = \"0701111111\"")
        .replace("credentials = \"arc-sip\"", "credentials = \"arc-sipp\"");
    let p = problems(&text);
    let shown: Vec<String> = p.iter().map(|p| p.to_string()).collect();
    assert_eq!(p.len(), 5, "{shown:#?}");
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let expect = [
        (
            "unit.controller_id",
            line_of("\"46-00\""),
            "not 1 to 32 digits",
        ),
        ("unit.volume", line_of("volume = 180"), "allowed: 0 to 100"),
        (
            "pendant[2].id",
            text.lines()
                .enumerate()
                .filter(|(_, l)| l.contains("id = \"00A1B2C3\""))
                .nth(1)
                .unwrap()
                .0
                + 1,
            "duplicate pendant id",
        ),
        (
            "route[1].credentials",
            line_of("\"arc-sipp\""),
            "no [credentials.arc-sipp] table",
        ),
        (
            "route[3].number",
            line_of("\"0701111111\""),
            "not an E.164 number",
        ),
    ];
    for (key, line, words) in expect {
        let hit = p
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("no problem for {key}: {shown:#?}"));
        assert_eq!(hit.line, line, "{key}");
        assert!(hit.column > 1);
        assert!(hit.message.contains(words), "{key}: {}", hit.message);
        assert!(hit.to_string().starts_with(&format!("site.toml:{line}:")));
    }
}

#[test]
fn unknown_keys_wrong_types_and_ranges_name_what_is_allowed() {
    let text = EXAMPLE
        .replace("mains_report_delay = \"2m\"", "mains_report_delay = \"5m\"")
        .replace("band = \"eu869\"", "bands = \"eu869\"")
        .replace("confirm_window = \"30s\"", "confirm_window = 30")
        .replace("test_interval = \"24h\"", "test_interval = \"48h\"")
        .replace("kind = \"fixed\"", "kind = \"cord\"");
    let p = problems(&text);
    let find = |key: &str| {
        p.iter()
            .find(|p| p.key == key)
            .map(|p| p.message.clone())
            .unwrap_or_default()
    };
    assert!(find("supervision.mains_report_delay").contains("allowed: 0s to 3m"));
    assert!(find("supervision.test_interval").contains("allowed: 1h to 1d"));
    assert!(find("radio.bands").contains("unknown key; allowed here: band,"));
    assert!(find("alarm.fall.confirm_window").contains("needs a unit"));
    assert!(find("pendant[2].kind").contains("allowed: personal, fall, fixed"));
    assert_eq!(p.len(), 5);
}

#[test]
fn syntax_errors_point_at_their_line() {
    let text = "[unit]\ncontroller_id = \"1\"\nsubscriber = \n";
    let p = problems(text);
    assert!(!p.is_empty());
    assert_eq!(p[0].line, 3);
    assert_eq!(p[0].key, "(syntax)");
}

#[test]
fn missing_tables_and_routes_are_reported() {
    let p = problems("data_dir = \"/tmp/x\"\n");
    assert!(p
        .iter()
        .any(|p| p.key == "unit" && p.message.contains("missing table [unit]")));
    let p = problems("[unit]\ncontroller_id = \"1\"\ncontact_id_account = \"1234\"\nsia_account = \"123\"\nsubscriber = \"A\"\n");
    assert!(
        p.iter()
            .any(|p| p.key == "route" && p.message.contains("no route configured")),
        "{p:?}"
    );
}

#[test]
fn secrets_are_never_echoed_in_problems() {
    let text = EXAMPLE
        .replace(
            "6b1f0c2e9a4d7f3b8c5e1a2d4f6b8c0e1a3c5e7f9b1d3f5a7c9e1b3d5f7a9c1e",
            "topsecretkeymaterial",
        )
        .replace("# sim_pin = \"1234\"", "sim_pin = \"12a4\"")
        .replace(
            "secret = \"change-me-sms-secret-openssl-rand-hex-16\"",
            "secret = \"short\"",
        );
    let p = problems(&text);
    let all: String = p
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(p.len(), 3, "{all}");
    assert!(!all.contains("topsecretkeymaterial"));
    assert!(!all.contains("12a4"));
    assert!(!all.contains("\"short\"") && !all.contains("`short`"));
    let c = config::load(Path::new("config.toml")).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("change-me-sip-password"));
    assert!(!debug.contains("6b1f0c2e"));
}

#[test]
fn durations_parse_and_print_the_same_way() {
    for (text, secs) in [
        ("30s", 30),
        ("10m", 600),
        ("1h30m", 5400),
        ("24h", 86_400),
        ("1d", 86_400),
    ] {
        assert_eq!(config::parse_duration(text).unwrap().as_secs(), secs);
    }
    assert_eq!(config::parse_duration("500ms").unwrap().as_millis(), 500);
    for bad in [
        "",
        "30",
        "s",
        "10x",
        "-5s",
        "1h 30m",
        "99999999999999999999s",
    ] {
        assert!(config::parse_duration(bad).is_none(), "{bad}");
    }
    assert_eq!(
        config::format_duration(std::time::Duration::from_secs(5400)),
        "1h30m"
    );
    assert!(config::is_e164("+46701234567"));
    for bad in [
        "46701234567",
        "+0701234567",
        "+4670",
        "+46 70 123",
        "+4670123456789012",
    ] {
        assert!(!config::is_e164(bad), "{bad}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary text never panics the loader.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = config::parse(&text, Path::new("x.toml"));
    }

    /// The example with one line mangled is either valid or reported with a line number.
    #[test]
    fn mangled_example_lines_are_reported_not_panicked(line in 0usize..200, junk in "[a-z0-9=\"\\[\\] .#-]{0,12}") {
        let text: String = EXAMPLE.lines().enumerate()
            .map(|(i, l)| if i == line { format!("{junk}\n") } else { format!("{l}\n") })
            .collect();
        if let Err(ConfigError::Invalid { problems }) = config::parse(&text, Path::new("x.toml")) {
            prop_assert!(!problems.is_empty());
            for p in problems {
                prop_assert!(p.line >= 1 && p.line <= text.lines().count() + 1);
            }
        }
    }

    /// A secrets file of secrets.toml-like junk beside the example never panics the loader,
    /// and each of its problems is placed inside the file it names.
    #[test]
    fn arbitrary_secrets_never_panic(text in "(\\[\\[?(pendant|route|modem|credentials\\.x|unit)\\]\\]?\n|(id|name|key|secret|sim_pin|zone) = \"[0-9A-Fa-z-]{0,70}\"\n|\\PC{0,20}\n){0,12}") {
        let secrets_file = Path::new("s.toml");
        if let Err(ConfigError::Invalid { problems }) =
            config::parse_with_secrets(EXAMPLE, Path::new("c.toml"), &text, secrets_file)
        {
            for p in problems {
                let lines = if p.file == secrets_file { &text } else { EXAMPLE }.lines().count();
                prop_assert!(p.line >= 1 && p.line <= lines + 1, "{p}");
            }
        }
    }
}

#[test]
fn short_hmac_secrets_are_refused_where_they_are_written() {
    for (table, secret) in [
        (
            "[credentials.arc-sms]",
            "change-me-sms-secret-openssl-rand-hex-16",
        ),
        (
            "[credentials.remote]",
            "change-me-remote-secret-openssl-rand-hex-16",
        ),
    ] {
        // Eight characters passed before; 31 is one short of 16 bytes as hex.
        for short in ["12345678", "0123456789abcdef0123456789abcde"] {
            let text = EXAMPLE.replace(secret, short);
            let line = text
                .lines()
                .position(|l| l.contains(&format!("\"{short}\"")))
                .unwrap()
                + 1;
            let p = problems(&text);
            let name = table.trim_matches(['[', ']']);
            assert!(
                p.iter()
                    .any(|p| p.key == format!("{name}.secret") && p.line == line),
                "{short}: {p:?}"
            );
            assert!(!p.iter().any(|p| p.to_string().contains(short)));
        }
    }
    assert!(problems(EXAMPLE).is_empty());
}

/// SCAIP over TLS asked of a binary built without it is a precise configuration error, not a
/// route that fails at run time.
#[test]
fn scaip_tls_needs_the_tls_build() {
    let text = EXAMPLE.replace(
        "transport = \"udp\"\nlocal_uri",
        "transport = \"tls\"\ntls_ca = \"/etc/vigil/ca.pem\"\nlocal_uri",
    );
    assert_ne!(text, EXAMPLE);
    let p = problems(&text);
    let line = text
        .lines()
        .position(|l| l == "transport = \"tls\"")
        .unwrap()
        + 1;
    let tls: Vec<_> = p.iter().filter(|p| p.key.ends_with(".transport")).collect();
    if cfg!(feature = "tls") {
        assert!(tls.is_empty(), "{p:?}");
    } else {
        assert_eq!(tls.len(), 1, "{p:?}");
        assert_eq!(tls[0].line, line);
        assert!(
            tls[0].message.contains("--features tls"),
            "{}",
            tls[0].message
        );
    }
}

/// `vigil check-config` on files that are no configuration: each is a clear problem with exit
/// status 2, and none blocks (a FIFO) or reads without end (a device).
#[test]
fn check_config_refuses_what_is_not_a_configuration_file_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let check = |path: &Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("check-config")
            .arg(path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    let missing = dir.path().join("missing.toml");
    let (code, err) = check(&missing);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot read"), "{err}");

    let (code, err) = check(dir.path());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a regular file"), "{err}");

    let fifo = dir.path().join("fifo.toml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let (code, err) = check(&fifo);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a regular file"), "{err}");

    let (code, err) = check(Path::new("/dev/zero"));
    assert_eq!(code, Some(2), "{err}");

    let big = dir.path().join("big.toml");
    std::fs::write(&big, "# x\n".repeat(300_000)).unwrap();
    let (code, err) = check(&big);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("larger than"), "{err}");

    let latin1 = dir.path().join("latin1.toml");
    let mut bytes = EXAMPLE.as_bytes().to_vec();
    let at = EXAMPLE.find("[unit]").unwrap();
    bytes.splice(at..at, b"# caf\xe9\n".iter().copied());
    std::fs::write(&latin1, &bytes).unwrap();
    let line = EXAMPLE[..at].lines().count() + 1;
    let (code, err) = check(&latin1);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("latin1.toml:{line}:6:")) && err.contains("UTF-8"),
        "{err}"
    );
}

/// `vigil check-config` on `text` written to `dir/config.toml`: its exit code, and what it
/// printed (standard output, then standard error).
fn check_text(dir: &Path, text: &str) -> (Option<i32>, String) {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// SIP in clear to a proxy that is not on this machine works, but anyone on the path can
/// read the alarms and answer for the centre: check-config warns with the line of the
/// transport and still says OK (a warning never stops the unit); on loopback, no warning.
#[test]
fn clear_sip_to_a_remote_proxy_is_a_warning_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str| check_text(dir.path(), text);
    let line = EXAMPLE
        .lines()
        .position(|l| l == "transport = \"udp\"")
        .expect("the example's SCAIP route names its transport")
        + 1;
    let (code, out) = check(EXAMPLE);
    assert_eq!(code, Some(0), "{out}");
    let warning = out
        .lines()
        .find(|l| l.starts_with("warning:") && l.contains(".transport"))
        .unwrap_or_else(|| panic!("no warning: {out}"));
    assert!(
        warning.contains(&format!("config.toml:{line}:"))
            && warning.contains("route[1].transport")
            && warning.contains("tls"),
        "{warning}"
    );
    assert!(out.contains(": OK:"), "{out}");

    let local = EXAMPLE.replace(
        "proxy = \"arc.example.net:5060\"",
        "proxy = \"127.0.0.1:5060\"",
    );
    assert_ne!(local, EXAMPLE);
    let (code, out) = check(&local);
    assert_eq!(code, Some(0));
    assert!(!out.contains(".transport"), "{out}");
}

/// Settings that load but will not work as meant: each named with its line, as an error
/// (exit 2) or, where the unit still runs, a warning.
#[test]
fn settings_that_will_not_work_as_meant_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str| check_text(dir.path(), text);
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    let sounds = concat!(env!("CARGO_MANIFEST_DIR"), "/sounds");
    let base = EXAMPLE.replace("/usr/share/vigil/sounds", sounds);

    // Errors: exit 2 with the line.
    for (from, to, key, says) in [
        (
            "data_dir = \"/var/lib/vigil\"",
            "data_dir = \"\"",
            "data_dir",
            "empty",
        ),
        (
            "carries = [\"personal\"]",
            "carries = []",
            ".carries",
            "no alarm",
        ),
        (
            "subscriber = \"Anna Svensson\"",
            &format!("subscriber = \"{}\"", "A".repeat(200)),
            "unit.subscriber",
            "at most 64",
        ),
    ] {
        let text = base.replace(from, to);
        assert_ne!(text, base, "{from}");
        let (code, out) = check(&text);
        assert_eq!(code, Some(2), "{to}: {out}");
        let line = line_of(&text, to.split(" =").next().unwrap());
        assert!(
            out.lines()
                .any(|l| l.contains(&format!(":{line}:")) && l.contains(key) && l.contains(says)),
            "{to}: {out}"
        );
    }

    // Warnings: the unit runs (exit 0), but beeps instead of speaking, or uses a secret
    // anyone can read.
    let (code, out) = check(&base.replace("language = \"en\"", "language = \"fr\""));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("unit.language") && out.contains("`fr`") && out.contains("beeps"),
        "{out}"
    );
    let (code, out) = check(&EXAMPLE.replace("/usr/share/vigil/sounds", "/no/such/sounds"));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("audio.sounds_dir") && out.contains("beeps"),
        "{out}"
    );
    let (_, out) = check(&base);
    let key_line = line_of(&base, "key = \"6b1f0c2e");
    assert!(
        out.lines().any(|l| l.starts_with("warning:")
            && l.contains(&format!(":{key_line}:"))
            && l.contains("pendant[1].key")
            && l.contains("published")),
        "{out}"
    );
    assert!(
        out.contains("credentials.arc-sip.secret: published"),
        "the example's secrets are published: {out}"
    );
    // A fresh secret is not.
    let own = base.replace("change-me-sip-password", "a3f9c2d17be84e6aa0c5f1e2d3b4a596");
    let (_, out) = check(&own);
    assert!(!out.contains("credentials.arc-sip.secret: "), "{out}");
}

/// The module's voice port is a device path; a bare name is refused at its line.
#[test]
fn the_modem_voice_port_is_an_absolute_device_path() {
    let good = EXAMPLE.replace(
        "# voice_port = \"/dev/ttyUSB4\"",
        "voice_port = \"/dev/ttyUSB4\"",
    );
    let cfg = config::parse(&good, Path::new("site.toml")).expect("valid");
    assert_eq!(
        cfg.modem.voice_port.as_deref(),
        Some(Path::new("/dev/ttyUSB4"))
    );
    let bad = EXAMPLE.replace(
        "# voice_port = \"/dev/ttyUSB4\"",
        "voice_port = \"ttyUSB4\"",
    );
    let p = problems(&bad);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "modem.voice_port");
    assert!(p[0].message.contains("/dev/ttyUSB4"), "{}", p[0].message);
    let line = bad
        .lines()
        .position(|l| l.starts_with("voice_port"))
        .expect("line")
        + 1;
    assert_eq!(p[0].line, line);
}

/// A Quectel module's sound card: an ALSA name, not the unit's own loudspeaker, never with
/// SIMCom's voice port (a module carries calls on one of them); each refused at its line.
#[test]
fn the_call_device_is_the_modules_own_sound_card_and_not_with_a_voice_port() {
    const COMMENTED: &str = "# call_device = \"plughw:CARD=EC25,DEV=0\"";
    assert!(
        EXAMPLE.contains(COMMENTED),
        "config.toml documents audio.call_device"
    );
    assert_eq!(
        config::parse(EXAMPLE, Path::new("site.toml"))
            .unwrap()
            .audio
            .call_device,
        None
    );
    let good = EXAMPLE.replace(COMMENTED, "call_device = \"plughw:CARD=EC25,DEV=0\"");
    let cfg = config::parse(&good, Path::new("site.toml")).expect("valid");
    assert_eq!(
        cfg.audio.call_device.as_deref(),
        Some("plughw:CARD=EC25,DEV=0")
    );
    let line_in =
        |text: &str, needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;

    // Not a device name.
    let bad = EXAMPLE.replace(COMMENTED, "call_device = \"plughw:CARD=EC25, DEV=0\"");
    let p = problems(&bad);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].key, "audio.call_device");
    assert_eq!(p[0].line, line_in(&bad, "call_device"));
    assert!(p[0].message.contains("aplay -L"), "{}", p[0].message);

    // The unit's own loudspeaker is not the module's card.
    let bad = EXAMPLE
        .replace(
            "# output_device = \"default\"",
            "output_device = \"default\"",
        )
        .replace(COMMENTED, "call_device = \"default\"");
    let p = problems(&bad);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].key, "audio.call_device");
    assert_eq!(p[0].line, line_in(&bad, "call_device"));
    assert!(
        p[0].message.contains("audio.output_device"),
        "{}",
        p[0].message
    );

    // SIMCom's voice port and Quectel's sound card together cannot both carry the call.
    let both = good.replace(
        "# voice_port = \"/dev/ttyUSB4\"",
        "voice_port = \"/dev/ttyUSB4\"",
    );
    let p = problems(&both);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].key, "audio.call_device");
    assert_eq!(p[0].line, line_in(&both, "call_device"));
    assert!(
        p[0].message.contains("modem.voice_port") && p[0].message.contains("AT+QPCMV"),
        "{}",
        p[0].message
    );
    assert!(
        p[0].to_string()
            .starts_with(&format!("site.toml:{}:", p[0].line)),
        "{}",
        p[0]
    );

    // A bare hw: device works only at the card's own rate: a warning, not a refusal.
    let bare = EXAMPLE.replace(COMMENTED, "call_device = \"hw:CARD=EC25,DEV=0\"");
    let cfg = config::parse(&bare, Path::new("site.toml")).expect("a warning only");
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.key == "audio.call_device" && w.message.contains("plughw:CARD=EC25,DEV=0")),
        "{:#?}",
        cfg.warnings
    );
    // A build without audio devices says the call device cannot be used; one with them does not.
    let no_alsa = cfg
        .warnings
        .iter()
        .any(|w| w.key == "audio.call_device" && w.message.contains("feature `alsa`"));
    assert_eq!(no_alsa, !cfg!(feature = "alsa"), "{:#?}", cfg.warnings);
}

/// The module's call audio: percentages, and tuning that is only audio settings with numbers
/// (nothing else reaches the modem from the configuration), each refused at its line.
#[test]
fn the_modules_call_audio_takes_only_audio_settings() {
    let good = EXAMPLE
        .replace("# call_volume = 80", "call_volume = 70")
        .replace(
            "# call_tuning = [\"AT+QEEC=5,40\", \"AT+QEEC=21,26600\"]",
            "call_tuning = [\"AT+QEEC=5,40\", \"AT+CECWB=0x0800\"]",
        );
    let cfg = config::parse(&good, Path::new("site.toml")).expect("valid");
    let audio = cfg.modem.call_audio.expect("call audio set");
    assert_eq!((audio.volume, audio.mic_gain), (70, 50));
    assert_eq!(audio.tuning, ["AT+QEEC=5,40", "AT+CECWB=0x0800"]);
    assert_eq!(
        config::parse(EXAMPLE, Path::new("site.toml"))
            .unwrap()
            .modem
            .call_audio,
        None
    );
    for (tuning, says) in [
        ("AT+CFUN=0", "not an audio setting"),
        ("AT+QEEC=5,40;+CFUN=0", "numbers"),
        ("ATD+46700000000;", "not a setting"),
        ("AT+QEEC=5,40\\r\\nAT+CFUN=0", "numbers"),
        ("AT+CLVL=", "numbers"),
    ] {
        let bad = EXAMPLE.replace(
            "# call_tuning = [\"AT+QEEC=5,40\", \"AT+QEEC=21,26600\"]",
            &format!("call_tuning = [\"{tuning}\"]"),
        );
        let p = problems(&bad);
        assert_eq!(p.len(), 1, "{tuning}: {p:?}");
        assert_eq!(p[0].key, "modem.call_tuning");
        assert!(p[0].message.contains(says), "{tuning}: {}", p[0].message);
        let line = bad
            .lines()
            .position(|l| l.starts_with("call_tuning"))
            .unwrap()
            + 1;
        assert_eq!(p[0].line, line);
    }
    let loud = EXAMPLE.replace("# call_volume = 80", "call_volume = 101");
    assert_eq!(problems(&loud)[0].key, "modem.call_volume");
}

/// The example's secrets, as an installer moves them to `secrets.toml`, and the example
/// without them.
const SECRETS: &str = r#"# Secrets of the unit; only root reads this file.
[[pendant]]
id = "00A1B2C3"
key = "6b1f0c2e9a4d7f3b8c5e1a2d4f6b8c0e1a3c5e7f9b1d3f5a7c9e1b3d5f7a9c1e"

[[route]]
name = "arc-dc09"
key = "000102030405060708090A0B0C0D0E0F"

[credentials.arc-sip]
secret = "change-me-sip-password"

[credentials.arc-sms]
secret = "change-me-sms-secret-openssl-rand-hex-16"

[modem]
sim_pin = "1234"
"#;

fn without_secrets() -> String {
    let text = EXAMPLE
        .replace(
            "key = \"6b1f0c2e9a4d7f3b8c5e1a2d4f6b8c0e1a3c5e7f9b1d3f5a7c9e1b3d5f7a9c1e\"\n",
            "",
        )
        .replace("key = \"000102030405060708090A0B0C0D0E0F\"\n", "")
        .replace("secret = \"change-me-sip-password\"\n", "")
        .replace(
            "[credentials.arc-sms]\nsecret = \"change-me-sms-secret-openssl-rand-hex-16\"\n",
            "",
        );
    assert_eq!(
        text.matches("change-me").count(),
        1,
        "only the remote secret is left"
    );
    text
}

fn secret_problems(config: &str, secrets: &str) -> Vec<String> {
    match config::parse_with_secrets(
        config,
        Path::new("/etc/vigil/config.toml"),
        secrets,
        Path::new("/etc/vigil/secrets.toml"),
    ) {
        Err(ConfigError::Invalid { problems }) => problems.iter().map(|p| p.to_string()).collect(),
        Ok(_) => Vec::new(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

/// Secrets in secrets.toml give the same configuration as secrets in config.toml; a route
/// is named by its name, a pendant by its id, and a [credentials.NAME] may live there whole.
#[test]
fn secrets_from_secrets_toml_are_the_same_configuration() {
    let all_in_one = EXAMPLE.replace("# sim_pin = \"1234\"", "sim_pin = \"1234\"");
    let one = config::parse(&all_in_one, Path::new("config.toml")).unwrap();
    let apart = config::parse_with_secrets(
        &without_secrets(),
        Path::new("config.toml"),
        SECRETS,
        Path::new("secrets.toml"),
    )
    .unwrap();
    assert_eq!(apart.pendants, one.pendants);
    assert_eq!(apart.routes, one.routes);
    assert_eq!(apart.credentials, one.credentials);
    assert_eq!(apart.modem, one.modem);
    // The example's published secrets are still named, at their line in secrets.toml.
    let key_line = line_of(SECRETS, "key = \"6b1f");
    assert!(
        apart
            .warnings
            .iter()
            .any(|w| w.to_string().starts_with(&format!(
                "secrets.toml:{key_line}:7: pendant[1].key: published"
            ))),
        "{:#?}",
        apart.warnings
    );
    // Without secrets.toml pendant 1 has no key (it would be paired) and the SIP route has
    // no secret: that is reported against config.toml.
    let p = secret_problems(&without_secrets(), "");
    assert!(
        p.iter().any(|p| p.starts_with("/etc/vigil/config.toml:")
            && p.contains("credentials.arc-sip.secret: missing")),
        "{p:#?}"
    );
}

/// A mistake in secrets.toml is reported with secrets.toml's path, line and column, and the
/// secret's text is never echoed.
#[test]
fn mistakes_in_secrets_toml_name_that_file_and_line() {
    let secrets = SECRETS
        .replace("sim_pin = \"1234\"", "sim_pim = \"1234\"")
        .replace("key = \"0001", "key = \"zz01");
    let p = secret_problems(&without_secrets(), &secrets);
    assert_eq!(p.len(), 2, "{p:#?}");
    let dc09 = line_of(&secrets, "key = \"zz01");
    assert!(
        p[0].starts_with(&format!(
            "/etc/vigil/secrets.toml:{dc09}:7: route[2].key: not an AES key"
        )),
        "{p:#?}"
    );
    assert!(!p[0].contains("zz01"), "{p:#?}");
    let pin = line_of(&secrets, "sim_pim");
    assert!(
        p[1].starts_with(&format!(
            "/etc/vigil/secrets.toml:{pin}:1: modem.sim_pim: unknown key; allowed here: sim_pin"
        )),
        "{p:#?}"
    );
    // A syntax error there too.
    let p = secret_problems(&without_secrets(), "[modem]\nsim_pin = 1234\"\n");
    assert!(
        p.len() == 1 && p[0].starts_with("/etc/vigil/secrets.toml:2:"),
        "{p:#?}"
    );
}

/// A secret given in both files is an error that names both places; a setting that is not a
/// secret, or an item that config.toml does not have, is refused in secrets.toml.
#[test]
fn secrets_toml_takes_only_secrets_and_each_once() {
    let p = secret_problems(EXAMPLE, SECRETS);
    let in_config = line_of(EXAMPLE, "key = \"6b1f");
    let in_secrets = line_of(SECRETS, "key = \"6b1f");
    assert!(
        p.iter().any(|p| p.starts_with(&format!(
            "/etc/vigil/secrets.toml:{in_secrets}:7: pendant[1].key: given in both files: also at /etc/vigil/config.toml:{in_config}:7"
        ))),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|p| p.contains("credentials.arc-sip.secret: given in both files")),
        "{p:#?}"
    );

    let secrets = format!(
        "{SECRETS}\n[unit]\nsubscriber = \"Anna\"\n\n[[pendant]]\nid = \"00A1B2C4\"\nzone = 7\n\n[[pendant]]\nid = \"0BADBEEF\"\nkey = \"{}\"\n",
        "ab".repeat(32)
    );
    let p = secret_problems(&without_secrets(), &secrets);
    assert_eq!(p.len(), 3, "{p:#?}");
    let at = |needle: &str| format!("/etc/vigil/secrets.toml:{}:", line_of(&secrets, needle));
    assert!(
        p[0].starts_with(&at("[unit]"))
            && p[0].contains("unit: not a secret; it belongs in config.toml"),
        "{p:#?}"
    );
    assert!(
        p[1].starts_with(&at("zone = 7"))
            && p[1].contains(
                "pendant[2].zone: not a secret; it belongs in config.toml. Allowed here: id, key"
            ),
        "{p:#?}"
    );
    assert!(
        p[2].starts_with(&at("id = \"0BADBEEF\""))
            && p[2].contains(
                "no [[pendant]] with id `0BADBEEF` in config.toml; there: 00A1B2C3, 00A1B2C4"
            ),
        "{p:#?}"
    );
}

/// `vigil check-config` reads secrets.toml beside the configuration, and warns (exit 0) when
/// the configuration holds secrets and every user can read it.
#[test]
fn check_config_warns_of_secrets_that_every_user_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let mode =
        |m: u32| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
    let (code, out) = check_text(dir.path(), EXAMPLE);
    assert_eq!(code, Some(0), "{out}");
    mode(0o644);
    let (code, out) = check_text(dir.path(), EXAMPLE);
    assert_eq!(code, Some(0), "{out}");
    let warning = out
        .lines()
        .find(|l| l.contains("can be read by every user"))
        .unwrap_or_else(|| panic!("no warning: {out}"));
    assert!(
        warning.starts_with("warning:")
            && warning.contains(&format!(":{}:", line_of(EXAMPLE, "key = \"6b1f")))
            && warning.contains("pendant[1].key, pendant[2].key, route[2].key")
            && warning.contains("secrets.toml"),
        "{warning}"
    );
    mode(0o640);
    let (_, out) = check_text(dir.path(), EXAMPLE);
    assert!(!out.contains("every user"), "{out}");

    // With the secrets beside it, the readable file holds only the remote secret.
    mode(0o644);
    std::fs::write(dir.path().join("secrets.toml"), SECRETS).unwrap();
    let (code, out) = check_text(dir.path(), &without_secrets());
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("credentials.remote.secret")
            && out.contains("every user")
            && out.contains("secrets.toml"),
        "{out}"
    );
    let (code, out) = check_text(dir.path(), EXAMPLE);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("given in both files"), "{out}");
}

/// The Debian package's configuration, with its secrets file, is valid; every secret is in
/// secrets.toml, so the config.toml the service's group reads holds none.
#[test]
fn the_packaged_configuration_keeps_its_secrets_apart() {
    let config = include_str!("../debian/config.toml");
    let secrets = include_str!("../debian/secrets.toml");
    let c = config::parse_with_secrets(
        config,
        Path::new("/etc/vigil/config.toml"),
        secrets,
        Path::new("/etc/vigil/secrets.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.audio.sounds_dir, Path::new("/usr/share/vigil/sounds"));
    assert_eq!(c.routes.len(), 5);
    assert!(
        c.pendants.iter().all(|p| p.key.is_none()),
        "paired, not keyed"
    );
    assert_eq!(c.credentials.len(), 3);
    // Without secrets.toml the routes that need a secret have none: config.toml holds none.
    let p = match config::parse(config, Path::new("/etc/vigil/config.toml")) {
        Err(ConfigError::Invalid { problems }) => problems,
        other => panic!("{other:?}"),
    };
    assert!(
        p.iter()
            .all(|p| p.key.starts_with("credentials.") || p.key.ends_with(".credentials")),
        "{p:#?}"
    );
    // The placeholders are named so an installer replaces them.
    assert!(
        c.warnings
            .iter()
            .filter(|w| w.file == Path::new("/etc/vigil/secrets.toml"))
            .count()
            >= 3,
        "{:#?}",
        c.warnings
    );
}
