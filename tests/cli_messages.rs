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
