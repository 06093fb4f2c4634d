//! Crash and power-loss proof.
//!
//! `sigkill_at_random_points_never_loses_an_alarm` runs the real `vigil` binary against a
//! simulated site, presses simulated pendants and kills the unit with SIGKILL at random
//! points of the alarm's handling (from just after the frame left the pendant to the middle
//! of a delivery, some while the IP centre is down so SMS carries the alarm, some again
//! during the delivery resumed after the restart), restarts it, and at the end proves that
//! every alarm — each one in the journal and each press a pendant saw acknowledged — was
//! acknowledged at a receiver under its original reference. Retransmissions are allowed;
//! losses are not.
//!
//! `VIGIL_CRASH_RUNS` sets the number of kill points (default 12), `VIGIL_CRASH_SEED` the
//! seed (printed on every run). Soak: `VIGIL_CRASH_RUNS=200 cargo test --test crash_harness
//! sigkill -- --nocapture` (about 6 minutes in a debug build on two cores).
//!
//! The torn-write tests take a journal written by the real journal code as it is on disk at
//! a power cut (database and WAL copied while the connection is still open) and damage it:
//! the last WAL frame torn, garbage after the WAL, the database's last page torn during a
//! checkpoint. Each must still open and give back every committed alarm.

mod site_support;

use std::path::Path;
use std::time::Duration;

use site_support::*;
use vigil::centre::receiver::dc09::Dc09Answer;
use vigil::core::{
    Alarm, AlarmCause, AlarmId, AlarmRef, Device, DeviceId, DeviceKind, EscalationReason, Record,
    RouteId, Timestamp,
};
use vigil::journal::Journal;
use vigil::radio::frame::Event as Frame;
use vigil::runtime::simsite::{SimSite, SiteOptions};

/// splitmix64: small, seeded, good enough to place kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_never_loses_an_alarm() {
    let runs = env_number("VIGIL_CRASH_RUNS").unwrap_or(12);
    let seed = env_number("VIGIL_CRASH_SEED").unwrap_or_else(now_ms);
    soak(runs, seed, Faults::default()).await;
}

/// The same kill points with the data filesystem full: a small tmpfs filled to its last byte
/// once the unit has started, so every alarm is written into the journal's reserve (or the
/// room it leaves when given up). Needs root to mount the tmpfs.
#[cfg_attr(not(vigil_is_root), ignore = "needs root to mount a tmpfs")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_on_a_full_disk_never_loses_an_alarm() {
    let runs = env_number("VIGIL_CRASH_RUNS").unwrap_or(6);
    let seed = env_number("VIGIL_CRASH_SEED").unwrap_or_else(now_ms);
    let faults = Faults {
        full_disk: true,
        ..Faults::default()
    };
    soak(runs, seed, faults).await;
}

/// The same kill points, and at every restart the unit's wall clock comes back wrong, as on a
/// Raspberry Pi (no real-time clock) after a power cut: at 1970, at the stale time that
/// fake-hwclock saved three days ago, or an hour off either way; the next restart may set it
/// right again, a step forward of days or decades. Monotonic time stays true. Needs libfaketime.
#[cfg_attr(
    not(vigil_has_faketime),
    ignore = "needs libfaketime: apt-get install libfaketime"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_the_clock_stepped_at_each_restart_never_loses_an_alarm() {
    let runs = env_number("VIGIL_CRASH_RUNS").unwrap_or(8);
    let seed = env_number("VIGIL_CRASH_SEED").unwrap_or_else(now_ms);
    let faults = Faults {
        clock_steps: true,
        ..Faults::default()
    };
    soak(runs, seed, faults).await;
}

/// How far the unit's time stamps may be from this clock, in milliseconds, either way.
const SLACK_MS: i64 = 25;
/// The pause between one press's end and the next press: more than twice [`SLACK_MS`].
const PRESS_GAP: Duration = Duration::from_millis(100);

/// What goes wrong besides the power, for one soak.
#[derive(Clone, Copy, Default)]
struct Faults {
    /// The data filesystem is full once the unit has started.
    full_disk: bool,
    /// Each restart comes back with its wall clock wrong (or right again).
    clock_steps: bool,
}

/// The wall-clock offsets restarts come back with, in turn, in seconds: an hour ahead, an hour
/// behind (a step back of two), 1970 (ten seconds after the epoch at the soak's start), three
/// days stale (a step forward of decades), then right again (forward three days).
fn clock_offsets() -> [i64; 5] {
    let at_1970 = 10 - (now_ms() / 1000) as i64;
    [3_600, -3_600, at_1970, -3 * 86_400, 0]
}

/// The times of the unit's log lines (its wall clock), in ms since the epoch.
fn log_times(log: &Path) -> Vec<i64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis())
        .collect()
}

async fn soak(runs: u64, seed: u64, faults: Faults) {
    let full_disk = faults.full_disk;
    eprintln!(
        "crash harness: {runs} kill points{}{}, seed {seed} (VIGIL_CRASH_SEED={seed} repeats the plan)",
        if full_disk { " on a full disk" } else { "" },
        if faults.clock_steps {
            " with the wall clock stepped at each restart"
        } else {
            ""
        }
    );
    let mut rng = Rng(seed);
    let offsets = clock_offsets();
    // The offset each start comes back with, and every offset the unit has run with.
    let mut used_offsets = vec![0i64];
    let mut starts = 0;
    let mut next_offset = || {
        if !faults.clock_steps {
            return 0;
        }
        let o = offsets[starts % offsets.len()];
        starts += 1;
        if !used_offsets.contains(&o) {
            used_offsets.push(o);
        }
        o
    };

    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(
        dir.path(),
        SiteOptions {
            fixed_window: Duration::from_secs(1),
            ..SiteOptions::default()
        },
    )
    .await
    .unwrap();
    // DC-09 frames carry no alarm reference, so the proof runs through the routes that do
    // (SCAIP `ref`, the SMS `REF=`): the DC-09 receiver refuses, and the plan moves on.
    site.dc09.set_default(Dc09Answer::Duh);
    let log = dir.path().join("vigil.log");
    let journal = site.config.data_dir.join("journal.sqlite");
    let disk = full_disk.then(|| Tmpfs::mount(&site.config.data_dir, 16));

    let mut unit = Some(VigilProcess::start(&site, &log).await);
    // Full from now on: the journal and its reserve are in place.
    let filler = disk.as_ref().map(Tmpfs::fill);
    let mut counters = [0u32; 2];
    let mut presses = Vec::new();
    let (mut kills, mut down_kills, mut resume_kills, mut early_kills) = (0u64, 0u64, 0u64, 0u64);
    while kills < runs {
        let ip_down = rng.below(4) == 0;
        site.ip_centre_down(ip_down);
        let index = if rng.below(4) == 0 { 1 } else { 0 };
        counters[index] += 1;
        let pending = tokio::task::spawn_blocking({
            let (radio, counter) = (site.radio, counters[index]);
            move || press_until_acked(radio, index, counter, Frame::Help, Duration::from_secs(40))
        });
        // Where the alarm is when the power goes: spread over its handling, with a third of
        // the points just after the frame left the pendant (reception, journal commit, ack).
        let span = if ip_down { 4_500 } else { 300 } + if index == 1 { 1_000 } else { 0 };
        let delay = if rng.below(3) == 0 {
            early_kills += 1;
            rng.below(25)
        } else {
            rng.below(span)
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        unit.take().expect("running").kill();
        kills += 1;
        if ip_down {
            down_kills += 1;
        }
        let offset = next_offset();
        unit = Some(VigilProcess::start_with_clock(&site, &log, offset).await);
        // Sometimes the power goes again while the alarm resumes.
        if kills < runs && rng.below(4) == 0 {
            tokio::time::sleep(Duration::from_millis(rng.below(span / 2 + 50))).await;
            unit.take().expect("running").kill();
            kills += 1;
            resume_kills += 1;
            let offset = next_offset();
            unit = Some(VigilProcess::start_with_clock(&site, &log, offset).await);
        }
        let p = pending.await.unwrap();
        let acked = p.acked_at.is_some();
        presses.push(p);
        if acked {
            wait_all_closed(&journal, 1, Duration::from_secs(60), &log).await;
        }
        // The next press comes later than the clocks' slack, so no alarm fits two presses.
        tokio::time::sleep(PRESS_GAP).await;
    }
    site.ip_centre_down(false);
    wait_all_closed(&journal, 1, Duration::from_secs(60), &log).await;
    // Space again, so the journal can be read back as it was left.
    if let Some(f) = &filler {
        let _ = std::fs::remove_file(f);
    }
    let status = unit
        .take()
        .expect("running")
        .terminate(Duration::from_secs(15))
        .await;
    assert!(status.success(), "clean exit on SIGTERM: {status}");

    let (alarms, repeated) = read_journal(&journal);
    // Whether the unit's time `t` falls between `from` and `to` on this clock. With the clock
    // stepped, the unit's time is this clock plus the offset it ran with; the offsets are an
    // hour or more apart, so none lends a press another press's alarm.
    let within = |t: u64, from: u64, to: u64| {
        used_offsets.iter().any(|o| {
            let t = t as i64 - o * 1000;
            t + SLACK_MS >= from as i64 && t <= to as i64 + SLACK_MS
        })
    };
    let acks = acknowledged_references(&site);
    let mut lost = Vec::new();
    for p in &presses {
        let Some(acked_at) = p.acked_at else {
            lost.push(format!(
                "pendant {} frame {} was never acknowledged ({} transmissions)",
                p.device, p.counter, p.transmissions
            ));
            continue;
        };
        // The alarm of a press was raised (or the press merged into the pendant's open
        // alarm) between its first transmission and its acknowledgement.
        // Same machine, same clock. The unit's time is its wall clock at start plus monotonic
        // time since, each counted in whole milliseconds, and a restarted unit under
        // libfaketime was seen a few milliseconds behind this clock: hence [`SLACK_MS`] either
        // way, and presses [`PRESS_GAP`] apart, so the slack never lends a press its
        // neighbour's alarm (an alarm raised by the next press, sent 2 ms after this one's
        // acknowledgement, was once counted as this press raised twice).
        let during = |t: u64| within(t, p.sent_at, acked_at);
        let of_pendant = |id: i64| {
            alarms
                .iter()
                .any(|a| a.id == id && a.device == Some(p.device.0))
        };
        let raised = alarms
            .iter()
            .any(|a| a.device == Some(p.device.0) && during(a.raised_at));
        let merged = repeated
            .iter()
            .any(|(id, at)| of_pendant(*id) && during(*at));
        if !raised && !merged {
            lost.push(format!(
                "pendant {} frame {} was acknowledged but no alarm holds it",
                p.device, p.counter
            ));
        }
    }
    for a in &alarms {
        if a.state != "acknowledged" {
            lost.push(format!(
                "alarm {} ref {} ended {}",
                a.id, a.reference, a.state
            ));
        }
        if !acks.iter().any(|(r, via)| same_alarm(r, via, &a.reference)) {
            lost.push(format!(
                "alarm {} ref {} ({}) was acknowledged at no receiver under its reference",
                a.id, a.reference, a.cause
            ));
        }
    }
    // Nothing made up: every reference a receiver acknowledged is an alarm of the journal.
    for (r, via) in &acks {
        assert!(
            alarms.iter().any(|a| same_alarm(r, via, &a.reference)),
            "{via} acknowledged ref {r}, which is no alarm of the journal: {alarms:#?}"
        );
    }
    let retransmitted = acks.len().saturating_sub(alarms.len());
    // A press whose acknowledgement a kill swallowed after its alarm was committed is heard
    // again after the restart, and known: its counter is committed with the alarm (or with
    // the record of a press merged into an open alarm). Only an alarm that could not be
    // journalled at all (a full disk past its reserve) goes on from memory without its
    // counter, so its repeat may raise it again: a duplicate at the centre, never a loss.
    let duplicated = presses
        .iter()
        .filter(|p| {
            let Some(acked_at) = p.acked_at else {
                return false;
            };
            let raised: Vec<_> = alarms
                .iter()
                .filter(|a| {
                    a.device == Some(p.device.0) && within(a.raised_at, p.sent_at, acked_at)
                })
                .collect();
            if raised.len() > 1 {
                eprintln!(
                    "crash harness: pendant {} frame {} (sent {}, acknowledged {}) raised {raised:?}",
                    p.device, p.counter, p.sent_at, acked_at
                );
            }
            raised.len() > 1
        })
        .count();
    drop(disk);
    if faults.clock_steps {
        // The unit really ran with its clock off: its own log lines, stamped by its wall
        // clock, say 1970 and an hour ahead. (Whether it also journalled something in each of
        // those runs depends on where the kills fell.)
        let times = log_times(&log);
        let real_now = now_ms() as i64;
        assert!(
            times.iter().any(|&t| t < 365 * 86_400_000),
            "the unit never ran with its clock at 1970\n{}",
            log_tail(&log)
        );
        assert!(
            times.iter().any(|&t| t > real_now + 1_800_000),
            "the unit never ran with its clock an hour ahead (now {real_now})\n{}",
            log_tail(&log)
        );
    }
    // The disk was full from the unit's first kill point on (`Tmpfs::fill` stops only at
    // ENOSPC). Whether the unit then needed more room than its WAL already held, and so gave
    // up its reserve and raised "storage failure", depends on where the kills fell.
    let storage_faults = alarms.iter().filter(|a| a.cause == "storage-fault").count();
    if full_disk {
        eprintln!("crash harness: storage faults raised on the full disk: {storage_faults}");
    }
    eprintln!(
        "crash harness: seed {seed}: {kills} kill points ({early_kills} just after the frame, \
         {down_kills} with the IP centre down, {resume_kills} during a resumed delivery), \
         {} presses, {} alarms ({duplicated} presses raised twice), {} receiver \
         acknowledgements ({retransmitted} repeats), lost alarms: {}",
        presses.len(),
        alarms.len(),
        acks.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "seed {seed}: lost alarms:\n{}\njournal: {alarms:#?}\nreceivers: {acks:?}\nlog tail:\n{}",
        lost.join("\n"),
        log_tail(&log)
    );
    assert!(
        full_disk || duplicated == 0,
        "seed {seed}: {duplicated} presses raised twice with the journal working\nlog tail:\n{}",
        log_tail(&log)
    );
}

fn alarm(id: u64) -> Alarm {
    let raised_at = Timestamp(1_764_000_000_000 + id * 1_000);
    Alarm {
        id: AlarmId(id),
        reference: AlarmRef::new(AlarmId(id), raised_at),
        cause: AlarmCause::Help,
        device: Some(Device {
            id: DeviceId(0x00A1_B2C3),
            kind: DeviceKind::Fall,
            zone: 1,
            location: "Anna's neck pendant".into(),
        }),
        raised_at,
        evidence: None,
    }
}

/// Writes alarms 1..=6 through the real journal (odd ones acknowledged), then alarm 7 as the
/// last transaction, and copies the files as they are on disk while the connection is open
/// (no checkpoint, the WAL holds every commit). With `checkpoint`, a checkpoint has copied
/// the WAL into the database first (the WAL is kept, as at a power cut mid-checkpoint).
fn power_cut_copy(out: &Path, checkpoint: bool) -> (std::path::PathBuf, std::path::PathBuf) {
    let live = tempfile::tempdir().unwrap();
    let path = live.path().join("journal.sqlite");
    let mut j = Journal::open(&path).unwrap();
    for id in 1..=7u64 {
        let a = alarm(id);
        let at = Timestamp(a.raised_at.0 + 10);
        j.append(&Record::Raised {
            alarm: a.clone(),
            window_until: None,
            frame: None,
        })
        .unwrap();
        if id == 7 {
            // The last transaction: the alarm a power cut may tear.
            break;
        }
        j.append(&Record::Escalated {
            alarm: a.id,
            at,
            reason: EscalationReason::Immediate,
        })
        .unwrap();
        j.append(&Record::AttemptStarted {
            alarm: a.id,
            attempt: 1,
            route: RouteId(0),
            at,
        })
        .unwrap();
        if id % 2 == 1 {
            j.append(&Record::Acknowledged {
                alarm: a.id,
                attempt: 1,
                route: RouteId(0),
                at,
                by: "receiver".into(),
            })
            .unwrap();
        }
    }
    if checkpoint {
        let c = rusqlite::Connection::open(&path).unwrap();
        let (busy, _, _): (i64, i64, i64) = c
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(busy, 0);
    }
    let wal = live.path().join("journal.sqlite-wal");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 0,
        "the commits are in the WAL"
    );
    let db_copy = out.join("journal.sqlite");
    let wal_copy = out.join("journal.sqlite-wal");
    std::fs::copy(&path, &db_copy).unwrap();
    std::fs::copy(&wal, &wal_copy).unwrap();
    drop(j);
    (db_copy, wal_copy)
}

fn open_ids(path: &Path) -> (Vec<u64>, u64) {
    let j = Journal::open(path).expect("a damaged journal still opens");
    let open = j
        .recover()
        .unwrap()
        .into_iter()
        .map(|r| r.alarm.id.0)
        .collect();
    (open, j.next_id().unwrap())
}

fn integrity(path: &Path) -> String {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .unwrap()
}

#[test]
fn a_torn_last_wal_frame_loses_only_the_transaction_it_tore() {
    let dir = tempfile::tempdir().unwrap();
    let (db, wal) = power_cut_copy(dir.path(), false);
    let len = std::fs::metadata(&wal).unwrap().len();
    // The power went while the last frame (alarm 7's commit) was being written.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .unwrap()
        .set_len(len - 1_000)
        .unwrap();
    let (open, next) = open_ids(&db);
    // Every committed alarm is back, the acknowledged ones stay closed; the torn transaction
    // is gone as a whole (alarm 7 either fully there or not at all: here not).
    assert_eq!(open, vec![2, 4, 6]);
    assert_eq!(next, 7);
    assert_eq!(integrity(&db), "ok");
    // And the journal takes new alarms again.
    let mut j = Journal::open(&db).unwrap();
    j.append(&Record::Raised {
        alarm: alarm(7),
        window_until: None,
        frame: None,
    })
    .unwrap();
    drop(j);
    assert_eq!(open_ids(&db).0, vec![2, 4, 6, 7]);
}

#[test]
fn garbage_after_the_wal_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (db, wal) = power_cut_copy(dir.path(), false);
    let mut rng = Rng(7);
    let garbage: Vec<u8> = (0..10_000).map(|_| rng.next() as u8).collect();
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&wal)
        .unwrap()
        .write_all(&garbage)
        .unwrap();
    let (open, next) = open_ids(&db);
    assert_eq!(open, vec![2, 4, 6, 7]);
    assert_eq!(next, 8);
    assert_eq!(integrity(&db), "ok");
}

#[test]
fn a_database_page_torn_during_a_checkpoint_is_restored_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _wal) = power_cut_copy(dir.path(), true);
    let len = std::fs::metadata(&db).unwrap().len();
    assert!(
        len >= 8_192,
        "the checkpoint wrote the database ({len} bytes)"
    );
    // The last page of the database file was half written when the power went.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len - 2_048)
        .unwrap();
    let (open, next) = open_ids(&db);
    assert_eq!(open, vec![2, 4, 6, 7]);
    assert_eq!(next, 8);
    assert_eq!(integrity(&db), "ok");
}
