//! A full disk does not lose the alarm: on a small tmpfs filled to the last byte, the journal
//! gives up its reserve and writes the alarm anyway; it is there after a reopen, and the
//! journal says it is on its reserve (a storage fault) until space comes back. Needs root to
//! mount the tmpfs: ignored otherwise, except under CI (`CI=true`), where it runs.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use vigil::core::{Alarm, AlarmCause, AlarmId, AlarmRef, Record, Timestamp};
use vigil::journal::{Journal, RESERVE};

/// A tmpfs of `mb` MiB at `dir`, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mb: u32) -> Tmpfs {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount -t tmpfs (as root) failed");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn fill(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![7u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let small = [7u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
    path
}

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
    let (mut j, lost) = Journal::open_or_replace(&data).unwrap();
    assert!(lost.is_none());
    assert!(data.join(RESERVE).exists(), "the reserve is made at open");
    j.append(&raised(1)).unwrap();
    assert!(!j.on_reserve());

    let filler = fill(dir.path());
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
    let (mut j, _) = Journal::open_or_replace(&data).unwrap();
    j.append(&raised(3)).unwrap();
    assert!(!j.on_reserve());
    assert!(data.join(RESERVE).exists());
}
