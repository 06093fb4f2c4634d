//! A help press the base never hears (a frame lost, or a jammer that lets heartbeats through
//! but destroys alarm frames) still reaches the centre: the pendant's next heartbeat counts
//! the alarms it sent, and the real `vigil run` raises one for the press it missed.

mod site_support;

use std::time::{Duration, Instant};

use site_support::*;
use vigil::runtime::simsite::{SimSite, SiteOptions, PENDANTS};

fn pendant(action: &str, to: &str, state: &std::path::Path) -> std::process::Output {
    pendant_cli(
        action,
        to,
        state,
        &["--retries", "1", "--ack-wait-ms", "200"],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_lost_on_the_air_is_raised_when_the_heartbeat_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    let log = dir.path().join("vigil.log");
    let _unit = VigilProcess::start(&site, &log).await;
    let radio = site.radio.to_string();
    let state = dir.path().join("pendant.state");

    // A heartbeat the base hears: its count is the baseline.
    pendant("heartbeat", &radio, &state);
    // The press goes nowhere: nobody listens on that port (the frame is lost).
    let lost = pendant("press", "127.0.0.1:9", &state);
    assert!(!lost.status.success(), "the lost press was acknowledged?");
    let journal = site.config.data_dir.join("journal.sqlite");
    assert!(
        read_journal(&journal).0.iter().all(|a| a.cause != "help"),
        "the base cannot have heard the press"
    );
    // The next heartbeat says one alarm was sent.
    pendant("heartbeat", &radio, &state);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (alarms, _) = read_journal(&journal);
        if alarms.iter().any(|a| {
            a.cause == "alarm-not-received"
                && a.device == Some(PENDANTS[0].0)
                && a.state == "acknowledged"
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no alarm for the lost press reached the centre: {alarms:?}\n{}",
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The jump of the counter over the lost frame is in the journal.
    let db = rusqlite::Connection::open(&journal).unwrap();
    let gap: (i64, i64, i64) = db
        .query_row("SELECT device, last, next FROM counter_gap", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("a counter gap row");
    assert_eq!(gap, (i64::from(PENDANTS[0].0), 1, 3));
}
