//! `vigil install-check` against the real binary on the simulated site: all green where the
//! site works, and each failure an installer meets (no modem, no radio, a wrong SIP password,
//! a silent DC-09 receiver) shown red with what to do.

mod site_support;

use std::path::Path;
use std::time::Duration;

use site_support::*;
use vigil::centre::receiver::dc09::Dc09Answer;
use vigil::radio::frame::Event as Frame;
use vigil::runtime::simsite::{SimSite, SiteOptions, SIP_PASSWORD};

/// Runs `vigil install-check`; its exit success and its table.
fn install_check(config: &Path, extra: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("install-check")
        .arg("--config")
        .arg(config)
        .args(extra)
        .output()
        .unwrap();
    let table = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{table}");
    (out.status.success(), table)
}

/// The table's line for `what`: (level, the rest).
fn line<'a>(table: &'a str, what: &str) -> Option<(&'a str, &'a str)> {
    table.lines().find_map(|l| {
        let (level, rest) = l.split_once(' ')?;
        let rest = rest.trim_start();
        rest.starts_with(what).then_some((level, rest))
    })
}

/// The fix printed under `what`'s line.
fn fix_of(table: &str, what: &str) -> Option<String> {
    let mut lines = table.lines();
    lines.find(|l| {
        l.split_once(' ')
            .is_some_and(|(_, r)| r.trim_start().starts_with(what))
    })?;
    lines
        .next()
        .and_then(|l| l.split_once("-> ").map(|(_, f)| f.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_site_is_green_with_the_test_report_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    let log = dir.path().join("vigil.log");
    let unit = VigilProcess::start(&site, &log).await;
    // The installer presses each pendant once where it will be used: a heartbeat each, which
    // the unit hears but does not acknowledge (the pendant does not wait for one).
    for index in [0, 1] {
        send_once(
            site.radio,
            index,
            1,
            Frame::Heartbeat {
                battery_mv: 3000,
                alarms_sent: None,
            },
        );
    }
    // Until the running unit's status shows both heard.
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["status", "--config"])
            .arg(&site.config_path)
            .output()
            .unwrap();
        let status = String::from_utf8_lossy(&out.stdout).to_string();
        if !status.contains("never heard") && status.contains("00A1B2C4") {
            break;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "the pendants were not heard:\n{status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let config = site.config_path.clone();
    let (ok, table) = tokio::task::spawn_blocking(move || install_check(&config, &[]))
        .await
        .unwrap();
    assert!(ok, "{table}\n{}", log_tail(&log));
    for what in [
        "configuration",
        "service",
        "power",
        "radio",
        "pendant 00A1B2C3",
        "pendant 00A1B2C4",
        "route arc-scaip",
        "test report",
    ] {
        assert_eq!(
            line(&table, what).map(|l| l.0),
            Some("GREEN"),
            "{what}:\n{table}"
        );
    }
    // The unit runs without speakers here: amber, with what it means.
    assert_eq!(line(&table, "audio").map(|l| l.0), Some("AMBER"), "{table}");
    assert!(fix_of(&table, "audio").is_some(), "{table}");
    assert!(table.contains("No red"), "{table}");
    // Without a loudspeaker there is nothing to listen for.
    assert_eq!(
        line(&table, "prompt heard").map(|l| l.0),
        Some("AMBER"),
        "{table}"
    );
    unit.terminate(Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sip_password_and_a_silent_dc09_receiver_are_red_with_their_fix() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    let text = std::fs::read_to_string(&site.config_path).unwrap();
    std::fs::write(
        &site.config_path,
        text.replace(SIP_PASSWORD, "not-the-sip-password"),
    )
    .unwrap();
    site.dc09.set_default(Dc09Answer::Silent);
    let log = dir.path().join("vigil.log");
    let unit = VigilProcess::start(&site, &log).await;
    let config = site.config_path.clone();
    let (ok, table) = tokio::task::spawn_blocking(move || install_check(&config, &[]))
        .await
        .unwrap();
    assert!(!ok, "{table}");
    let (level, scaip) = line(&table, "route arc-scaip").expect("the SCAIP route's line");
    assert_eq!(level, "RED", "{table}");
    assert!(scaip.contains("password"), "{table}");
    assert!(
        fix_of(&table, "route arc-scaip").is_some_and(|f| f.contains("credentials")),
        "{table}"
    );
    let (level, dc09) = line(&table, "route arc-dc09").expect("the DC-09 route's line");
    assert_eq!(level, "RED", "{table}");
    assert!(dc09.contains("no answer"), "{table}");
    assert!(
        fix_of(&table, "route arc-dc09").is_some_and(|f| f.contains("key")),
        "{table}"
    );
    // The SMS route still carries alarms: the test report is acknowledged.
    assert_eq!(
        line(&table, "route arc-sms").map(|l| l.0),
        Some("GREEN"),
        "{table}"
    );
    assert_eq!(
        line(&table, "test report").map(|l| l.0),
        Some("GREEN"),
        "{table}"
    );
    unit.terminate(Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_modem_and_no_radio_are_red_with_their_fix() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    // The radio's address is taken by another program; the modem's port does not exist.
    let squatter = std::net::UdpSocket::bind(site.radio).unwrap();
    let text = std::fs::read_to_string(&site.config_path).unwrap();
    let port = site.cellular.module.path().to_string();
    std::fs::write(&site.config_path, text.replace(&port, "/dev/no-such-modem")).unwrap();
    let log = dir.path().join("vigil.log");
    let unit = VigilProcess::start(&site, &log).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let config = site.config_path.clone();
    let (ok, table) =
        tokio::task::spawn_blocking(move || install_check(&config, &["--no-test-call"]))
            .await
            .unwrap();
    assert!(!ok, "{table}");
    let (level, radio) = line(&table, "radio").expect("radio line");
    assert_eq!(level, "RED", "{table}");
    assert!(radio.contains("radio.listen"), "{table}");
    assert_eq!(line(&table, "modem").map(|l| l.0), Some("RED"), "{table}");
    assert!(
        fix_of(&table, "modem").is_some_and(|f| f.contains("modem.port")),
        "{table}"
    );
    assert!(table.contains("RED: fix each red line"), "{table}");
    drop(squatter);
    unit.terminate(Duration::from_secs(15)).await;
}

#[test]
fn a_stopped_unit_is_red_with_how_to_start_it() {
    let dir = tempfile::tempdir().unwrap();
    let example = include_str!("../config.toml");
    let data_line = example.lines().find(|l| l.starts_with("data_dir")).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        example.replace(
            data_line,
            &format!("data_dir = {:?}", dir.path().join("data")),
        ),
    )
    .unwrap();
    let (ok, table) = install_check(&config, &[]);
    assert!(!ok);
    assert_eq!(
        line(&table, "configuration").map(|l| l.0),
        Some("GREEN"),
        "{table}"
    );
    assert_eq!(line(&table, "service").map(|l| l.0), Some("RED"), "{table}");
    assert!(
        fix_of(&table, "service").is_some_and(|f| f.contains("systemctl start vigil")),
        "{table}"
    );
}

/// `vigil test-call` follows its report: each attempt as it happens, then which route
/// acknowledged it, and exits 0 only once a receiver did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_call_follows_the_report_to_its_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    site.scaip
        .set_default(vigil::centre::receiver::scaip::ScaipAnswer::snu(1));
    let log = dir.path().join("vigil.log");
    let unit = VigilProcess::start(&site, &log).await;
    let config = site.config_path.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["test-call", "--wait", "60", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", log_tail(&log));
    let lines: Vec<&str> = said.lines().collect();
    assert!(lines[0].starts_with("attempt 1 via arc-scaip"), "{said}");
    assert!(
        lines[1].starts_with("attempt 1 via arc-scaip failed"),
        "{said}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("attempt 2 via arc-dc09")),
        "{said}"
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.contains("acknowledged via arc-dc09")),
        "{said}"
    );
    unit.terminate(Duration::from_secs(15)).await;
}

/// The audio step: the base plays its test prompt at the configured volume and the installer
/// says whether it was heard. Heard is green; not heard is red, with what to do; nobody at a
/// terminal to ask is amber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installer_says_whether_the_base_was_heard() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    let log = dir.path().join("vigil.log");
    let sounds = dir.path().join("sounds-played");
    std::fs::create_dir_all(&sounds).unwrap();
    let unit = VigilProcess::start_with_sound(&site, &log, &sounds).await;
    let check = |extra: &'static [&'static str]| {
        let config = site.config_path.clone();
        tokio::task::spawn_blocking(move || install_check(&config, extra))
    };
    let (_, table) = check(&["--no-test-call"]).await.unwrap();
    assert_eq!(line(&table, "audio").map(|l| l.0), Some("GREEN"), "{table}");
    assert_eq!(
        line(&table, "prompt heard").map(|l| l.0),
        Some("AMBER"),
        "{table}"
    );
    let (ok, table) = check(&["--no-test-call", "--heard", "yes"]).await.unwrap();
    assert_eq!(
        line(&table, "prompt heard").map(|l| l.0),
        Some("GREEN"),
        "{table}"
    );
    assert!(ok, "{table}");
    let (ok, table) = check(&["--no-test-call", "--heard", "no"]).await.unwrap();
    assert!(!ok, "a base nobody hears fails the check: {table}");
    assert_eq!(
        line(&table, "prompt heard").map(|l| l.0),
        Some("RED"),
        "{table}"
    );
    assert!(
        fix_of(&table, "prompt heard").is_some_and(|f| f.contains("volume")),
        "{table}"
    );
    // The unit played it (a prompt asked for again while it plays is not queued twice).
    let played = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("prompt playing") && l.contains("test_call"))
        .count();
    assert!(played >= 1, "{}", log_tail(&log));
    unit.terminate(Duration::from_secs(15)).await;
}
