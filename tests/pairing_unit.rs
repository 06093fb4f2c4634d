//! Pairing a pendant through the running unit, as an installer does it: `vigil pair` asks the
//! running `vigil run` to open its window, the (simulated) pendant commits to its key, both
//! show the same six-digit code, `vigil pair --confirm` takes it, and only then is the pendant
//! stored; its first press raises an alarm. And the attacks on pairing: an id that already has
//! a key, a pendant far away, a wrong code, a client that is not root or the service's user.

mod site_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use site_support::*;
use vigil::runtime::simsite::{SimSite, SiteOptions, PENDANTS};

const LIMIT: Duration = Duration::from_secs(30);

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("vigil runs")
}

/// A child whose stdout lines arrive on a channel.
struct Lines {
    child: Child,
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn spawn(args: &[&str]) -> Lines {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("vigil runs");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Lines {
            child,
            rx,
            seen: Vec::new(),
        }
    }

    /// The first line (from now) containing `what`; panics with what was said after `LIMIT`.
    fn until(&mut self, what: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(what) {
                        return l;
                    }
                }
                Err(_) => panic!("no line with {what:?}; said: {:#?}", self.seen),
            }
        }
    }

    fn exit_success(mut self) -> bool {
        self.child.wait().expect("wait").success()
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The six digits of a code line ("… the code 047 193 …").
fn code_in(line: &str) -> String {
    let after = line.split("code ").nth(1).expect("a code");
    after
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == ' ')
        .collect::<String>()
        .split_whitespace()
        .take(2)
        .collect()
}

fn status(site: &SimSite) -> String {
    let out = vigil(&[
        "status",
        "--config",
        &site.config_path.display().to_string(),
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pendant(site: &SimSite, action: &str, id: &str, state: &Path, rssi: &str) -> Lines {
    Lines::spawn(&[
        "pendant",
        action,
        "--id",
        id,
        "--to",
        &site.radio.to_string(),
        "--state",
        &state.display().to_string(),
        "--rssi",
        rssi,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installer_pairs_a_new_pendant_through_the_running_unit_and_its_press_raises_an_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    let log = dir.path().join("vigil.log");
    let _unit = VigilProcess::start(&site, &log).await;
    let config = site.config_path.display().to_string();

    let mut pair = Lines::spawn(&["pair", "--config", &config]);
    pair.until("pairing window open");
    let state = dir.path().join("pendant.state");
    let mut pendant_side = pendant(&site, "pair", "C0FFEE", &state, "-40");
    let blinks = pendant_side.until("blinks the code");
    let asks = pair.until("asks to pair");
    assert!(asks.contains("00C0FFEE"), "{asks}");
    let code = code_in(&blinks);
    assert_eq!(code, code_in(&asks), "both sides show the same code");
    assert!(
        !status(&site).contains("00C0FFEE"),
        "nothing is stored before the code is confirmed"
    );
    // The base says the code too (this unit runs without audio, so its log tells what it
    // would have said).
    let spoken: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| l.split("prompt=\"").nth(1))
        .map(|p| p.trim_end_matches('"').to_string())
        .skip_while(|p| p != "pairing_code")
        .take(7)
        .collect();
    let digits: Vec<String> = code.chars().map(|c| format!("digit_{c}")).collect();
    assert_eq!(
        spoken.first().map(String::as_str),
        Some("pairing_code"),
        "{spoken:?}"
    );
    assert_eq!(spoken[1..], digits[..], "the base speaks the code it shows");

    let confirm = vigil(&["pair", "--config", &config, "--confirm", &code]);
    let said = String::from_utf8_lossy(&confirm.stdout);
    assert!(confirm.status.success(), "{said}");
    assert!(said.contains("paired pendant 00C0FFEE"), "{said}");
    pendant_side.until("paired; key kept");
    assert!(pendant_side.exit_success());
    pair.until("paired pendant 00C0FFEE");
    assert!(pair.exit_success());

    // The pendant is in the status at once, and not as heard.
    let s = status(&site);
    let row = s
        .lines()
        .find(|l| l.contains("00C0FFEE"))
        .unwrap_or_else(|| panic!("paired pendant not in status:\n{s}"));
    assert!(row.contains("never heard"), "{row}");

    // Its press raises an alarm that reaches the centre.
    let press = pendant(&site, "press", "C0FFEE", &state, "-70");
    assert!(press.exit_success(), "the unit acknowledged the press");
    let journal = site.config.data_dir.join("journal.sqlite");
    let deadline = Instant::now() + LIMIT;
    loop {
        let (alarms, _) = read_journal(&journal);
        if alarms
            .iter()
            .any(|a| a.device == Some(0x00C0_FFEE) && a.state == "acknowledged")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no acknowledged alarm from the paired pendant: {alarms:?}\n{}",
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A rogue pairing request for the id of a pendant someone wears, a request from far away and
/// a wrong code are refused; nothing is stored and the worn pendant keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rogue_far_away_and_wrongly_confirmed_pairings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    let log = dir.path().join("vigil.log");
    let _unit = VigilProcess::start(&site, &log).await;
    let config = site.config_path.display().to_string();
    let worn = format!("{:08X}", PENDANTS[0].0);

    // The id of a provisioned pendant, without --replace.
    let mut pair = Lines::spawn(&["pair", "--config", &config]);
    pair.until("pairing window open");
    let rogue_state = dir.path().join("rogue.state");
    let rogue = pendant(&site, "pair", &worn, &rogue_state, "-40");
    let refused = pair.until("refused");
    assert!(
        refused.contains(&worn) && refused.contains("--replace"),
        "{refused}"
    );
    assert!(!rogue.exit_success(), "the rogue got no accept");
    assert!(
        !rogue_state.exists()
            || !std::fs::read_to_string(&rogue_state)
                .unwrap()
                .contains("key")
    );

    // From the street.
    let far = pendant(
        &site,
        "pair",
        "BADBAD",
        &dir.path().join("far.state"),
        "-85",
    );
    let refused = pair.until("-85 dBm");
    assert!(refused.contains("00BADBAD refused"), "{refused}");
    assert!(!far.exit_success());

    // A wrong code ends the window and stores nothing.
    let mut near = pendant(
        &site,
        "pair",
        "0DDBA11",
        &dir.path().join("near.state"),
        "-40",
    );
    let blinks = near.until("blinks the code");
    let right = code_in(&blinks);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    let confirm = vigil(&["pair", "--config", &config, "--confirm", &wrong]);
    let said = String::from_utf8_lossy(&confirm.stdout);
    assert!(!confirm.status.success(), "{said}");
    assert!(said.contains("does not match"), "{said}");
    let confirm = vigil(&["pair", "--config", &config, "--confirm", &right]);
    assert!(
        !confirm.status.success(),
        "the window is over after a wrong code"
    );
    pair.until("no pendant was paired");
    assert!(!pair.exit_success());
    drop(near);
    let s = status(&site);
    assert!(!s.contains("0DDBA11") && !s.contains("00BADBAD"), "{s}");

    // The worn pendant's key is untouched: its press is authentic and acknowledged.
    let radio = site.radio;
    let p = tokio::task::spawn_blocking(move || {
        press_until_acked(
            radio,
            0,
            1,
            vigil::radio::frame::Event::Help,
            Duration::from_secs(20),
        )
    })
    .await
    .unwrap();
    assert!(
        p.acked_at.is_some(),
        "the worn pendant still works:\n{}",
        log_tail(&log)
    );
}

/// With no unit running, `vigil pair` says so and stops: pairing never happens behind the
/// service's back.
#[test]
fn pair_without_a_running_unit_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let text = include_str!("../config.toml").replace(
        "data_dir = \"/var/lib/vigil\"",
        &format!("data_dir = \"{}\"", dir.path().display()),
    );
    assert_ne!(
        text,
        include_str!("../config.toml"),
        "data_dir not replaced"
    );
    std::fs::write(&config, text).unwrap();
    let out = vigil(&["pair", "--config", &config.display().to_string()]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("not running"), "{said}");
    assert!(!said.contains("pairing window open"), "{said}");
}
