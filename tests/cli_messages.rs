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
