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
