//! A journal that cannot be read never takes the unit out of service: emptied, overwritten
//! with noise, a bad header, a bad page, cut short, or a folder in its place, the real
//! `vigil run` moves it aside, starts a fresh one, tells the centre "journal lost", still
//! raises and delivers the next press, and does not take back a frame it had already
//! accepted (the pendants' counter marks live beside the journal).

mod site_support;

use std::path::Path;
use std::time::{Duration, Instant};

use site_support::*;
use vigil::centre::scaip::status_code;
use vigil::core::{AlarmCause, UnitFault};
use vigil::radio::frame::Event as Frame;
use vigil::runtime::simsite::{SimSite, SiteOptions};

const LIMIT: Duration = Duration::from_secs(40);

#[derive(Clone, Copy, Debug)]
enum Damage {
    Emptied,
    Noise,
    BadHeader,
    BadPage,
    CutShort,
    Folder,
}

fn damage(journal: &Path, how: Damage) {
    use std::io::{Seek, SeekFrom, Write};
    let len = std::fs::metadata(journal).unwrap().len();
    let junk = |n: usize| -> Vec<u8> { (0..n).map(|i| (i * 151 % 251) as u8).collect() };
    match how {
        Damage::Emptied => std::fs::write(journal, b"").unwrap(),
        Damage::Noise => std::fs::write(journal, junk(len as usize)).unwrap(),
        Damage::BadHeader | Damage::BadPage => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(journal)
                .unwrap();
            let (at, n) = match how {
                Damage::BadHeader => (0, 100),
                _ => (4096, 4096),
            };
            assert!(len >= at + n as u64, "journal of {len} bytes");
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&junk(n)).unwrap();
            f.sync_all().unwrap();
        }
        Damage::CutShort => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(journal)
                .unwrap();
            f.set_len(len / 2).unwrap();
        }
        Damage::Folder => {
            std::fs::remove_file(journal).unwrap();
            std::fs::create_dir(journal).unwrap();
        }
    }
}

async fn survives(how: Damage) {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    let log = dir.path().join("vigil.log");
    let data = site.config.data_dir.clone();
    let journal = data.join("journal.sqlite");

    // A first alarm, delivered: the journal holds it and pendant 0's counter 1.
    let unit = VigilProcess::start(&site, &log).await;
    press(site.radio, 0, 1, Frame::Help).await.unwrap();
    wait_all_closed(&journal, 1, LIMIT, &log).await;
    let status = unit.terminate(Duration::from_secs(15)).await;
    assert!(status.success());
    let before = site.scaip.received().len();

    damage(&journal, how);
    let unit = VigilProcess::start(&site, &log).await;

    // The centre hears that the journal was lost.
    let lost = status_code(AlarmCause::Fault(UnitFault::JournalLost));
    let deadline = Instant::now() + LIMIT;
    while !site.scaip.received()[before..]
        .iter()
        .any(|r| r.mrq.as_ref().and_then(|m| m.stc) == Some(lost))
    {
        assert!(
            Instant::now() < deadline,
            "{how:?}: no journal-lost report at the centre; log:\n{}",
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("journal.sqlite.lost-"))
        .collect();
    assert!(
        !kept.is_empty(),
        "{how:?}: the damaged journal is kept aside"
    );

    // The frame accepted before the loss, sent again, raises nothing.
    send_once(site.radio, 0, 1, Frame::Help);
    // A new press is raised and delivered.
    let p = press(site.radio, 0, 2, Frame::Help).await.unwrap();
    assert!(p.acked_at.is_some(), "{how:?}: {}", log_tail(&log));
    let alarms = wait_all_closed(&journal, 2, LIMIT, &log).await;
    let help: Vec<_> = alarms.iter().filter(|a| a.cause == "help").collect();
    assert_eq!(
        help.len(),
        1,
        "{how:?}: a replayed frame raised an alarm: {alarms:#?}"
    );
    assert!(
        alarms.iter().any(|a| a.cause == "journal-lost"),
        "{alarms:#?}"
    );
    let status = unit.terminate(Duration::from_secs(15)).await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_journal() {
    survives(Damage::Emptied).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_overwritten_with_noise() {
    survives(Damage::Noise).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_with_a_bad_header() {
    survives(Damage::BadHeader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_with_a_bad_page() {
    survives(Damage::BadPage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_cut_short() {
    survives(Damage::CutShort).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_where_the_journal_was() {
    survives(Damage::Folder).await;
}

/// A journal restored from an older copy: before, a recorded frame accepted after that copy
/// raised a new alarm again. The counter marks beside the journal are never lower than what
/// the unit accepted, so the replay raises nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_restored_from_an_older_copy_does_not_reopen_replay() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    let log = dir.path().join("vigil.log");
    let journal = site.config.data_dir.join("journal.sqlite");
    let copy = dir.path().join("journal-copy.sqlite");

    let unit = VigilProcess::start(&site, &log).await;
    press(site.radio, 0, 1, Frame::Help).await.unwrap();
    wait_all_closed(&journal, 1, LIMIT, &log).await;
    assert!(unit.terminate(Duration::from_secs(15)).await.success());
    std::fs::copy(&journal, &copy).unwrap();

    let unit = VigilProcess::start(&site, &log).await;
    press(site.radio, 0, 2, Frame::Help).await.unwrap();
    wait_all_closed(&journal, 2, LIMIT, &log).await;
    assert!(unit.terminate(Duration::from_secs(15)).await.success());

    // The older copy comes back, as from a backup.
    std::fs::copy(&copy, &journal).unwrap();
    let unit = VigilProcess::start(&site, &log).await;
    send_once(site.radio, 0, 2, Frame::Help);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (alarms, _) = read_journal(&journal);
    assert_eq!(
        alarms.len(),
        1,
        "the replayed frame raised an alarm: {alarms:#?}"
    );
    // The pendant's next real press still goes through.
    let p = press(site.radio, 0, 3, Frame::Help).await.unwrap();
    assert!(p.acked_at.is_some(), "{}", log_tail(&log));
    wait_all_closed(&journal, 2, LIMIT, &log).await;
    assert!(unit.terminate(Duration::from_secs(15)).await.success());
}

/// A press merged into the pendant's open alarm: its counter was kept only in memory (counters
/// of frames that raise nothing are committed in batches), so after a power cut that swallowed
/// its acknowledgement, the pendant's retransmission of it raised a second alarm once the first
/// was closed. The journal now keeps the counter with the "repeated" record, in the same
/// transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_merged_into_an_open_alarm_is_not_raised_again_after_a_power_cut() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    let log = dir.path().join("vigil.log");
    let journal = site.config.data_dir.join("journal.sqlite");
    // Nobody answers: the alarm stays open while the second press arrives.
    every_route_down(&site);

    let unit = VigilProcess::start(&site, &log).await;
    let first = press(site.radio, 0, 1, Frame::Help).await.unwrap();
    assert!(first.acked_at.is_some(), "{}", log_tail(&log));
    let again = press(site.radio, 0, 2, Frame::Help).await.unwrap();
    assert!(again.acked_at.is_some(), "{}", log_tail(&log));
    let (alarms, repeated) = read_journal(&journal);
    assert_eq!(alarms.len(), 1, "{alarms:#?}");
    assert!(!repeated.is_empty(), "the second press was not merged");
    // The power goes before the unit stops in order.
    unit.kill();

    site.ip_centre_down(false);
    site.sms_gateway_silent(false);
    let unit = VigilProcess::start(&site, &log).await;
    wait_all_closed(&journal, 1, LIMIT, &log).await;
    // The pendant never heard the second acknowledgement and sends that frame again.
    send_once(site.radio, 0, 2, Frame::Help);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (alarms, _) = read_journal(&journal);
    assert_eq!(
        alarms.len(),
        1,
        "the retransmitted press raised a second alarm: {alarms:#?}"
    );
    assert!(unit.terminate(Duration::from_secs(15)).await.success());
}
