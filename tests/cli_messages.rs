//! What the installer's commands say when there is nothing to show.

/// `vigil log` on a journal without alarms says so instead of printing nothing.
#[test]
fn log_of_an_empty_journal_says_no_alarms_yet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    drop(vigil::journal::Journal::open(&path).unwrap());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("log")
        .arg("--journal")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("no alarms yet"), "{said:?}");
}

/// `vigil status` with no unit running says so once, with the next step.
#[test]
fn status_without_a_running_unit_says_how_to_start_it() {
    let dir = tempfile::tempdir().unwrap();
    let example = include_str!("../config.toml");
    let line = example
        .lines()
        .find(|l| l.starts_with("data_dir"))
        .expect("the example names its data_dir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        example.replace(line, &format!("data_dir = {:?}", dir.path().join("data"))),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("status")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("the unit is not running") && said.contains("systemctl start vigil"),
        "{said}"
    );
    assert_eq!(said.matches("control.sock").count(), 1, "{said}");
}

/// The example configuration with its data_dir (and sounds_dir, if given) moved into `dir`.
fn example_config(dir: &std::path::Path, sounds: Option<&std::path::Path>) -> std::path::PathBuf {
    let mut text = include_str!("../config.toml").to_string();
    for (key, value) in [
        ("data_dir", Some(dir.join("data"))),
        ("sounds_dir", sounds.map(|s| s.to_path_buf())),
    ] {
        if let Some(value) = value {
            let line = text
                .lines()
                .find(|l| l.starts_with(key))
                .expect("the example names the key")
                .to_string();
            text = text.replace(&line, &format!("{key} = {value:?}"));
        }
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn vigil_in(cwd: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.current_dir(cwd).env_remove("VIGIL_CONFIG");
    c
}

/// Every command finds its configuration by one rule: --config, else $VIGIL_CONFIG, else
/// /etc/vigil/config.toml, else ./config.toml; `vigil --help` says so.
#[test]
fn every_command_finds_the_configuration_by_one_rule() {
    let system = std::path::Path::new("/etc/vigil/config.toml");
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), None);
    let elsewhere = tempfile::tempdir().unwrap();

    let help = vigil_in(elsewhere.path()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("VIGIL_CONFIG") && help.contains("/etc/vigil/config.toml"),
        "{help}"
    );

    // From $VIGIL_CONFIG: status looks for that unit's socket.
    let out = vigil_in(elsewhere.path())
        .arg("status")
        .env("VIGIL_CONFIG", &config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&dir.path().join("data").display().to_string()),
        "{said}"
    );

    // From ./config.toml, for check-config and log alike (unless the system file exists,
    // which comes first).
    for args in [&["check-config"][..], &["log"][..]] {
        let out = vigil_in(dir.path()).args(args).output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if system.exists() {
            assert!(said.contains("/etc/vigil"), "{args:?}: {said}");
        } else {
            assert!(
                said.contains("config.toml: OK") || said.contains("no journal here yet"),
                "{args:?}: {said}"
            );
        }
    }

    // Nowhere: one sentence that says what to do.
    if !system.exists() {
        for args in [
            &["status"][..],
            &["check-config"][..],
            &["log"][..],
            &["prompts", "check"][..],
        ] {
            let out = vigil_in(elsewhere.path()).args(args).output().unwrap();
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?}");
            assert!(
                said.contains("no configuration found") && said.contains("--config FILE"),
                "{args:?}: {said}"
            );
        }
    }
}

/// `vigil prompts check` checks the configured sounds folder, not ./sounds.
#[test]
fn prompts_check_reads_the_configured_sounds() {
    let dir = tempfile::tempdir().unwrap();
    let sounds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sounds");
    let config = example_config(dir.path(), Some(&sounds));
    let out = vigil_in(dir.path())
        .args(["prompts", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("en:") && said.contains("prompts OK"),
        "{said}"
    );

    // A configured folder that is not there is named, with the key and the way out.
    let missing = dir.path().join("no-sounds");
    let config = example_config(dir.path(), Some(&missing));
    let out = vigil_in(dir.path())
        .args(["prompts", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("no-sounds")
            && said.contains("audio.sounds_dir")
            && said.contains("--sounds"),
        "{said}"
    );
}

/// A data_dir the service may not write says "permission denied", names the user the unit
/// runs as and the command that fixes it, and gives the OS error once. As root the unit is
/// started as `nobody` (setpriv, util-linux) so the kernel really refuses.
#[test]
fn unwritable_data_dir_says_permission_denied_and_how_to_fix_it() {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = example_config(dir.path(), None);
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = if root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_vigil"));
        c
    } else {
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o500)).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
    };
    let out = cmd
        .args(["run", "--no-audio", "--config"])
        .arg(&config)
        .output()
        .expect("setpriv (util-linux) runs the unit as nobody");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("permission denied on {}", data.display()))
            && said.contains("chown -R"),
        "{said}"
    );
    assert_eq!(said.matches("os error 13").count(), 1, "{said}");
}

/// A missing SPI device is said as such, with the setting and the next step, not as a
/// debug dump of the driver's error type.
#[test]
fn missing_spi_device_says_what_to_check() {
    let driver = vigil::config::RadioDriver::Rfm69 {
        spi: "/dev/no-such-spidev9.9".into(),
        gpio_chip: "/dev/no-such-gpiochip".into(),
        irq_line: 25,
        reset_line: 22,
    };
    let Err(e) = vigil::radio::driver::rfm69::open(&driver, vigil::config::Band::Eu869) else {
        panic!("opened a transceiver that is not there");
    };
    let said = e.to_string();
    assert!(
        said.contains("no SPI device at /dev/no-such-spidev9.9 (radio.spi)")
            && said.contains("dtparam=spi=on")
            && !said.contains("SPIError {"),
        "{said}"
    );
}

/// `vigil range-test` redraws its table in place on a terminal and prints one line per sample
/// when its output goes to a file or a pipe.
#[test]
fn range_test_redraws_on_a_terminal_and_prints_lines_when_piped() {
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), None);
    let store = dir.path().join("radio.state");
    let args = |c: &mut std::process::Command| {
        c.arg("range-test")
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0", "--seconds", "2", "--store"])
            .arg(&store);
    };
    let mut piped = vigil_in(dir.path());
    args(&mut piped);
    let out = piped.output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        !said.contains('\x1b'),
        "escape codes in piped output: {said:?}"
    );
    for t in ["0s channel", "1s channel", "2s channel"] {
        assert!(said.lines().any(|l| l.starts_with(t)), "{t}: {said}");
    }
    // On a terminal (a pseudo-terminal from util-linux's script): the table is redrawn by
    // moving the cursor back up over it.
    let command = format!(
        "{} range-test --config {} --listen 127.0.0.1:0 --seconds 2 --store {}",
        env!("CARGO_BIN_EXE_vigil"),
        config.display(),
        store.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir.path())
        .output()
        .expect("script (util-linux) gives the command a terminal");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("\x1b[2A\x1b[J"),
        "no redraw on a terminal: {said:?}"
    );
    assert!(!said.contains("0s channel"), "{said:?}");
}

/// `vigil pair` with no configuration used to open a simulated radio silently and still say
/// "hold the pendant's button". Now it finds the configuration by the rule every command
/// follows (to reach the running unit), and says how to name one when there is none.
#[test]
fn pair_without_a_configuration_says_so_instead_of_simulating() {
    let installed = std::path::Path::new("/etc/vigil/config.toml").exists();
    let empty = tempfile::tempdir().unwrap();
    let out = vigil_in(empty.path())
        .args(["pair", "--window", "1"])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!said.contains("simulated radio listening"), "{said}");
    if installed {
        // The rule finds the installed unit's configuration first.
        assert!(!said.contains("no configuration found"), "{said}");
    } else {
        assert!(!out.status.success(), "{said}");
        assert!(
            said.contains("no configuration found") && said.contains("--config FILE"),
            "{said}"
        );
    }
}
