//! A full disk does not lose the alarm: on a small tmpfs filled to the last byte, the journal
//! gives up its reserve and writes the alarm anyway; it is there after a reopen, and the
//! journal says it is on its reserve (a storage fault) until space comes back. Needs root to
//! mount the tmpfs: ignored otherwise, except under CI (`CI=true`), where it runs.

mod site_support;

use site_support::Tmpfs;
use vigil::core::{Alarm, AlarmCause, AlarmId, AlarmRef, Record, Timestamp};
use vigil::journal::{Journal, RESERVE};

fn alarm(id: u64) -> Alarm {
    let at = Timestamp(1_764_000_000_000 + id);
    Alarm {
        id: AlarmId(id),
        reference: AlarmRef::new(AlarmId(id), at),
        cause: AlarmCause::Help,
        device: None,
        raised_at: at,
        evidence: None,
    }
}

fn raised(id: u64) -> Record {
    Record::Raised {
        alarm: alarm(id),
        window_until: None,
        frame: None,
    }
}

#[cfg_attr(not(vigil_is_root), ignore = "mounting a tmpfs needs root")]
#[test]
fn an_alarm_is_journalled_on_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let _fs = Tmpfs::mount(dir.path(), 8);
    let data = dir.path().join("data");
    let (mut j, lost) =
        Journal::open_or_replace(&data, std::sync::Arc::new(vigil::clock::SystemClock)).unwrap();
    assert!(lost.is_none());
    assert!(data.join(RESERVE).exists(), "the reserve is made at open");
    j.append(&raised(1)).unwrap();
    assert!(!j.on_reserve());

    let filler = _fs.fill();
    j.append(&raised(2))
        .expect("the alarm is written into the reserve");
    assert!(j.on_reserve(), "a full disk is a storage fault");
    assert!(!data.join(RESERVE).exists());
    drop(j);

    let j = Journal::open(&data.join("journal.sqlite")).unwrap();
    let open: Vec<u64> = j.recover().unwrap().iter().map(|r| r.alarm.id.0).collect();
    assert_eq!(open, vec![1, 2], "both alarms survive a reopen");
    drop(j);

    // Space comes back: the next write takes the reserve back and the fault clears.
    std::fs::remove_file(filler).unwrap();
    let (mut j, _) =
        Journal::open_or_replace(&data, std::sync::Arc::new(vigil::clock::SystemClock)).unwrap();
    j.append(&raised(3)).unwrap();
    assert!(!j.on_reserve());
    assert!(data.join(RESERVE).exists());
}
