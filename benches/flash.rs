//! Bytes the unit writes to its flash (SD card) in an idle day, measured: what the journal
//! writes for a day of two pendants' heartbeats (one every 15 minutes each, every accepted
//! frame's counter committed) and the daily test report, in a folder on a real disk. Reads
//! the process's own I/O counters (`/proc/self/io`): `wchar`, the bytes handed to write
//! calls, and `write_bytes`, the bytes the kernel sent to the block device (what wears the
//! card). `cargo bench --bench flash`.

use std::time::Duration;

use vigil::core::{
    Alarm, AlarmCause, AlarmId, AlarmRef, DeviceId, EscalationReason, Record, RouteId, Timestamp,
};
use vigil::journal::Journal;
use vigil::radio::store::PendantStore;

fn io() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("wchar:"), field("write_bytes:"))
}

fn main() {
    // A folder on the same disk as the build, not a tmpfs: a tmpfs writes no device bytes.
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let dir = tempfile::tempdir_in(&base).expect("a folder under target/");
    let (mut journal, _) =
        Journal::open_or_replace(dir.path(), std::sync::Arc::new(vigil::clock::SystemClock))
            .expect("journal");
    let pendants = [DeviceId(0x00A1_B2C3), DeviceId(0x00A1_B2C4)];
    let before = io();
    let day = Duration::from_secs(24 * 3600);
    let every = Duration::from_secs(15 * 60);
    let beats = (day.as_secs() / every.as_secs()) as u32;
    for n in 1..=beats {
        for p in pendants {
            journal.save_counter(p, n).expect("counter");
        }
    }
    let t0 = Timestamp(1_764_000_000_000);
    let test = Alarm {
        id: AlarmId(1),
        reference: AlarmRef::new(AlarmId(1), t0),
        cause: AlarmCause::PeriodicTest,
        device: None,
        raised_at: t0,
        evidence: None,
    };
    for r in [
        Record::Raised {
            alarm: test.clone(),
            window_until: None,
            frame: None,
        },
        Record::Escalated {
            alarm: test.id,
            at: t0,
            reason: EscalationReason::Immediate,
        },
        Record::AttemptStarted {
            alarm: test.id,
            attempt: 1,
            route: RouteId(0),
            at: t0,
        },
        Record::Acknowledged {
            alarm: test.id,
            attempt: 1,
            route: RouteId(0),
            at: t0,
            by: "centre".into(),
        },
    ] {
        journal.append(&r).expect("append");
    }
    drop(journal);
    let after = io();
    let commits = beats as usize * pendants.len() + 4; // frames saved and records appended
    println!(
        "flash writes for an idle day: 2 pendants, a heartbeat every 15 min each, one test report"
    );
    println!("  frames and records:            {commits}");
    println!(
        "  bytes handed to write calls:   {} ({:.0} per frame or record)",
        after.0 - before.0,
        (after.0 - before.0) as f64 / commits as f64
    );
    println!(
        "  bytes sent to the disk:        {} ({:.2} MB)",
        after.1 - before.1,
        (after.1 - before.1) as f64 / 1e6
    );
}
