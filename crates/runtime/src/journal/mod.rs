//! Durable journal of alarms and their delivery (SQLite in WAL mode, `synchronous=FULL`).
//!
//! Every [`Record`] the core emits is committed here, in its own transaction, before the
//! runtime acts on the core's next output: an alarm exists on disk before anyone hears of
//! it, and each delivery step is on disk before the next. On start, [`Journal::recover`]
//! returns every alarm that was neither acknowledged nor cancelled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::{Clock, SystemClock};

use crate::core::{
    Alarm, AlarmCause, AlarmId, AlarmRef, Device, DeviceId, DeviceKind, FallEvidence, Record,
    Recovered, Timestamp,
};

/// Journal failures.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite refused.
    #[error("journal {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The data folder could not be made.
    #[error("journal folder {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The pendants' counter marks beside the journal could not be written.
    #[error("pendant counter marks {path}: {source}")]
    Counters {
        /// The marks file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// Another connection was reading, so the write-ahead log could not be emptied.
    #[error("journal {0}: busy, the write-ahead log was not folded in")]
    Busy(PathBuf),
    /// A stored row could not be understood.
    #[error("journal {path}: alarm {id} has an unreadable {what}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Alarm id.
        id: u64,
        /// Which field.
        what: &'static str,
    },
}

/// A journal that could not be used and was moved aside for a fresh one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostJournal {
    /// Where the unusable file now is, kept for inspection.
    pub moved_to: PathBuf,
    /// What was wrong with it.
    pub why: String,
}

/// The file beside the journal that keeps each pendant's highest accepted frame counter, so a
/// lost, emptied or restored-from-an-older-copy journal cannot reopen replay of frames the
/// unit has already accepted.
pub const COUNTER_MARKS: &str = "pendant-counters";

/// Reads the counter marks (`DEVICE COUNTER` per line, hex id and decimal counter); a file
/// that is missing or has unreadable lines gives what it can.
fn read_marks(path: &Path) -> BTreeMap<u32, u32> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (d, c) = l.trim().split_once(' ')?;
            Some((u32::from_str_radix(d, 16).ok()?, c.trim().parse().ok()?))
        })
        .collect()
}

/// Replaces the marks file with `marks`, durably: a temporary file synced, renamed over it,
/// and the folder synced.
fn write_marks(path: &Path, marks: &BTreeMap<u32, u32>) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    for (d, c) in marks {
        writeln!(tmp, "{d:08X} {c}")?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// One line of the readable timeline (`vigil log`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEntry {
    /// When.
    pub at: Timestamp,
    /// Which alarm.
    pub alarm: AlarmId,
    /// Its reference.
    pub reference: String,
    /// What happened, in words.
    pub text: String,
}

/// The journal file.
pub struct Journal {
    conn: Connection,
    path: PathBuf,
    route_names: Vec<String>,
    /// The reserve was given up to a full disk and is not back yet.
    on_reserve: bool,
    /// Counters of frames accepted since the pendant's counter was last committed (see
    /// [`COUNTER_BATCH`]).
    pending: BTreeMap<DeviceId, u32>,
    /// The unit's wall clock, for what the journal dates itself (a pairing, a counter gap).
    clock: Arc<dyn Clock>,
}

/// A pendant's counter is committed (journal and marks) when it is this far past the
/// committed one; frames in between (heartbeats: an alarm frame's counter is committed with its
/// alarm) wait in memory. An idle day then writes about 0.3 MB to the SD card instead of 2.5
/// MB (`cargo bench --bench flash`); after a power cut, at most this many heartbeats of each
/// pendant could be replayed, and a replayed heartbeat raises nothing.
pub const COUNTER_BATCH: u32 = 16;

/// A file of zeros kept beside the journal and given up when the disk is full, so the alarm
/// that found the disk full is still written: [`Journal::append`] deletes it and writes again.
pub const RESERVE: &str = "journal.reserve";

/// Size of the reserve: room for thousands of alarm records.
pub const RESERVE_BYTES: u64 = 2 * 1024 * 1024;

/// WAL pages after which a commit checkpoints into the database.
const WAL_CHECKPOINT_PAGES: i64 = 256;

/// Bytes of WAL kept after a checkpoint; the rest of the file is given back.
const WAL_SIZE_LIMIT: i64 = 512 * 1024;

/// Makes the reserve if it is not there (best effort: a disk already full makes none).
fn ensure_reserve(dir: &Path) -> bool {
    let path = dir.join(RESERVE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() >= RESERVE_BYTES) {
        return true;
    }
    let made = (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&path)?;
        let zeros = vec![0u8; 64 * 1024];
        for _ in 0..RESERVE_BYTES / zeros.len() as u64 {
            f.write_all(&zeros)?;
        }
        f.sync_all()
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    made.is_ok()
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alarm (
    id           INTEGER PRIMARY KEY,
    reference    TEXT    NOT NULL,
    cause        TEXT    NOT NULL,
    device       INTEGER,
    device_kind  TEXT,
    zone         INTEGER,
    location     TEXT,
    raised_at    INTEGER NOT NULL,
    window_until INTEGER,
    escalated    INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    state        TEXT    NOT NULL DEFAULT 'open',
    closed_at    INTEGER,
    closed_by    TEXT
);
CREATE INDEX IF NOT EXISTS alarm_open ON alarm(state);
CREATE TABLE IF NOT EXISTS fall_evidence (
    alarm    INTEGER PRIMARY KEY,
    evidence TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS event (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    alarm   INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    route   TEXT,
    attempt INTEGER,
    detail  TEXT
);
CREATE INDEX IF NOT EXISTS event_alarm ON event(alarm);
CREATE TABLE IF NOT EXISTS counter_gap (
    device  INTEGER NOT NULL,
    last    INTEGER NOT NULL,
    next    INTEGER NOT NULL,
    at      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pendant_counter (
    device  INTEGER PRIMARY KEY,
    counter INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS paired_pendant (
    device    INTEGER PRIMARY KEY,
    kind      TEXT    NOT NULL,
    key       BLOB    NOT NULL,
    location  TEXT    NOT NULL,
    zone      INTEGER NOT NULL,
    paired_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS remote_nonce (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    nonce INTEGER NOT NULL
);
";

/// One event of an alarm's delivery, as [`Journal::attempts_of`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptEvent {
    /// The route's name.
    pub route: String,
    /// Attempt number.
    pub attempt: u32,
    /// `attempt` (started), `failed` or `acknowledged`.
    pub kind: String,
    /// The failure reason, or who acknowledged.
    pub detail: String,
}

impl JournalError {
    /// Whether SQLite found the disk full.
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            JournalError::Sqlite {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } if e.code == rusqlite::ErrorCode::DiskFull
        )
    }

    /// Whether the journal file itself is damaged (not a database, a corrupt page), as
    /// opposed to a folder or permission problem that moving it aside would not fix.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            JournalError::Sqlite {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } if matches!(
                e.code,
                rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
            )
        )
    }
}

impl Journal {
    /// Opens (or creates) `journal.sqlite` in `data_dir`.
    pub fn open_dir(data_dir: &Path) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(data_dir).map_err(|source| JournalError::Folder {
            path: data_dir.to_path_buf(),
            source,
        })?;
        Journal::open(&data_dir.join("journal.sqlite"))
    }

    /// Opens `data_dir`'s journal; one that cannot be used (not a file, emptied, not a
    /// database, failing SQLite's integrity check) is moved aside, named with the time, with
    /// its `-wal` and `-shm`, and a fresh journal is started in its place: the unit never
    /// refuses to run because of its journal. The caller reports the loss (a technical alarm).
    /// The pendants' counter marks (see [`COUNTER_MARKS`]) survive the loss. `clock` is the
    /// unit's: it names the file moved aside and dates what the journal stamps itself.
    pub fn open_or_replace(
        data_dir: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<(Journal, Option<LostJournal>), JournalError> {
        std::fs::create_dir_all(data_dir).map_err(|source| JournalError::Folder {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join("journal.sqlite");
        if !ensure_reserve(data_dir) {
            tracing::warn!(folder = %data_dir.display(),
                "no room for the journal's reserve: a full disk would stop alarms being journalled");
        }
        let why = match std::fs::symlink_metadata(&path) {
            Ok(m) if !m.is_file() => "it is not a regular file".to_string(),
            Ok(m) if m.len() == 0 => "it is empty".to_string(),
            _ => match Journal::open(&path).and_then(|j| j.check().map(|()| j)) {
                Ok(mut j) => {
                    j.set_clock(clock);
                    return Ok((j, None));
                }
                Err(e) if e.is_corruption() => e.to_string(),
                Err(e) => return Err(e),
            },
        };
        let stamp = chrono::DateTime::from_timestamp_millis(clock.wall().0 as i64)
            .unwrap_or_default()
            .format("%Y%m%dT%H%M%S%.3fZ");
        let moved_to = data_dir.join(format!("journal.sqlite.lost-{stamp}"));
        for suffix in ["", "-wal", "-shm"] {
            let from = data_dir.join(format!("journal.sqlite{suffix}"));
            if std::fs::symlink_metadata(&from).is_ok() {
                let to = data_dir.join(format!("journal.sqlite.lost-{stamp}{suffix}"));
                std::fs::rename(&from, &to).map_err(|source| JournalError::Folder {
                    path: from.clone(),
                    source,
                })?;
            }
        }
        tracing::error!(journal = %path.display(), moved_to = %moved_to.display(), why = %why,
            "journal unusable: moved aside, a fresh one started");
        let mut j = Journal::open(&path)?;
        j.set_clock(clock);
        Ok((j, Some(LostJournal { moved_to, why })))
    }

    /// SQLite's own check of every page, and the tables in place.
    fn check(&self) -> Result<(), JournalError> {
        let verdict: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(self.err())?;
        if verdict != "ok" {
            return Err(JournalError::Sqlite {
                path: self.path.clone(),
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                    Some(verdict),
                ),
            });
        }
        self.conn
            .query_row("SELECT COUNT(*) FROM alarm", [], |r| r.get::<_, i64>(0))
            .map(|_| ())
            .map_err(self.err())
    }

    /// The counter marks file beside this journal.
    fn marks_path(&self) -> PathBuf {
        self.path
            .parent()
            .unwrap_or(Path::new("."))
            .join(COUNTER_MARKS)
    }

    /// Raises the marks file's mark of `device` to `counter` (never lowers it).
    fn raise_mark(&self, device: DeviceId, counter: u32) -> Result<(), JournalError> {
        let path = self.marks_path();
        let mut marks = read_marks(&path);
        let mark = marks.entry(device.0).or_insert(0);
        if *mark >= counter && path.exists() {
            return Ok(());
        }
        *mark = (*mark).max(counter);
        write_marks(&path, &marks).map_err(|source| JournalError::Counters { path, source })
    }

    /// Forgets `device`'s mark: a new pairing starts a new counter sequence.
    fn forget_mark(&self, device: DeviceId) -> Result<(), JournalError> {
        let path = self.marks_path();
        let mut marks = read_marks(&path);
        if marks.remove(&device.0).is_some() {
            write_marks(&path, &marks).map_err(|source| JournalError::Counters { path, source })?;
        }
        Ok(())
    }

    /// Folds the write-ahead log into the database file and empties it (a clean stop).
    pub fn checkpoint(&self) -> Result<(), JournalError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(self.err())
            .and_then(|busy| {
                if busy == 0 {
                    Ok(())
                } else {
                    Err(JournalError::Busy(self.path.clone()))
                }
            })
    }

    /// Opens (or creates) the journal database at `path`.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let err = |source| JournalError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        // WAL survives a crash mid-write; FULL syncs the WAL on every commit.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        // The WAL stays inside the reserve: checkpointed every 256 pages, 1 MiB (SQLite's
        // default is 1000, 4 MiB, twice the reserve) and cut back to 512 KiB after, so on a
        // full disk the reserve given up holds the WAL's growth for many alarms and restarts.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)
            .map_err(err)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        // A journal restored from an older copy, or started afresh after a loss, must not
        // accept frames the unit already accepted: the marks beside it are never lower.
        let marks = read_marks(&path.parent().unwrap_or(Path::new(".")).join(COUNTER_MARKS));
        for (device, counter) in marks {
            conn.execute(
                "INSERT INTO pendant_counter (device, counter) VALUES (?1, ?2)
                 ON CONFLICT(device) DO UPDATE SET counter = MAX(counter, excluded.counter)",
                params![i64::from(device), i64::from(counter)],
            )
            .map_err(err)?;
        }
        Ok(Journal {
            conn,
            path: path.to_path_buf(),
            route_names: Vec::new(),
            on_reserve: false,
            pending: BTreeMap::new(),
            clock: Arc::new(SystemClock),
        })
    }

    /// Makes every later write fail (`refuse`) or work again, as a failing disk would; for
    /// fault-injection tests of the runtime (SQLite's `query_only`).
    #[doc(hidden)]
    pub fn refuse_writes(&self, refuse: bool) -> Result<(), JournalError> {
        self.conn
            .pragma_update(None, "query_only", refuse)
            .map_err(self.err())
    }

    /// Dates what the journal stamps itself (a pairing over the air, a counter gap) by the
    /// unit's clock instead of the system's.
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.clock = clock;
    }

    /// Names routes in the timeline by the plan's route names.
    pub fn set_route_names(&mut self, names: Vec<String>) {
        self.route_names = names;
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
        |source| JournalError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Commits one record durably.
    pub fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        let dir = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        match self.append_once(record) {
            Err(e) if e.is_disk_full() && std::fs::remove_file(dir.join(RESERVE)).is_ok() => {
                // The disk is full: the reserve makes room for this record and the next.
                tracing::error!(journal = %self.path.display(),
                    "disk full: the journal writes into its reserve");
                self.on_reserve = true;
                self.append_once(record)
            }
            Ok(()) if self.on_reserve => {
                // Space again: take the reserve back.
                self.on_reserve = !ensure_reserve(&dir);
                Ok(())
            }
            other => other,
        }
    }

    /// Whether the journal is writing into its reserve because the disk filled up (a storage
    /// fault until space comes back).
    pub fn on_reserve(&self) -> bool {
        self.on_reserve
    }

    fn append_once(&mut self, record: &Record) -> Result<(), JournalError> {
        let path = self.path.clone();
        let err = |source| JournalError::Sqlite {
            path: path.clone(),
            source,
        };
        let names = &self.route_names;
        let route_of = |r: crate::core::RouteId| {
            names
                .get(r.0)
                .cloned()
                .unwrap_or_else(|| format!("route {}", r.0 + 1))
        };
        let tx = self.conn.transaction().map_err(err)?;
        match record {
            Record::Raised {
                alarm,
                window_until,
                frame,
            } => {
                let d = alarm.device.as_ref();
                if let (Some(d), Some(counter)) = (d, frame) {
                    // The radio's replay gate reads this: a retransmission of the frame that
                    // raised this alarm is then known after a crash, never raised twice.
                    tx.execute(
                        "INSERT INTO pendant_counter (device, counter) VALUES (?1, ?2)
                         ON CONFLICT(device) DO UPDATE SET counter = MAX(counter, excluded.counter)",
                        params![d.id.0 as i64, *counter as i64],
                    )
                    .map_err(err)?;
                }
                tx.execute(
                    "INSERT INTO alarm (id, reference, cause, device, device_kind, zone, location, raised_at, window_until)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        alarm.id.0 as i64,
                        alarm.reference.as_str(),
                        alarm.cause.as_str(),
                        d.map(|d| d.id.0 as i64),
                        d.map(|d| d.kind.as_str()),
                        d.map(|d| d.zone as i64),
                        d.map(|d| d.location.as_str()),
                        alarm.raised_at.0 as i64,
                        window_until.map(|t| t.0 as i64),
                    ],
                )
                .map_err(err)?;
                if let Some(e) = &alarm.evidence {
                    tx.execute(
                        "INSERT OR REPLACE INTO fall_evidence (alarm, evidence) VALUES (?1, ?2)",
                        params![alarm.id.0 as i64, e.to_record()],
                    )
                    .map_err(err)?;
                }
                let detail = match window_until {
                    Some(w) => format!(
                        "{}; window {} s",
                        alarm.describe(),
                        w.since(alarm.raised_at).as_secs()
                    ),
                    None => alarm.describe(),
                };
                insert_event(
                    &tx,
                    alarm.raised_at,
                    alarm.id,
                    "raised",
                    None,
                    None,
                    &detail,
                )
                .map_err(err)?;
            }
            Record::Repeated { alarm, at, frame } => {
                if let Some((device, counter)) = frame {
                    tx.execute(
                        "INSERT INTO pendant_counter (device, counter) VALUES (?1, ?2)
                         ON CONFLICT(device) DO UPDATE SET counter = MAX(counter, excluded.counter)",
                        params![device.0 as i64, *counter as i64],
                    )
                    .map_err(err)?;
                }
                insert_event(
                    &tx,
                    *at,
                    *alarm,
                    "repeated",
                    None,
                    None,
                    "trigger pressed again",
                )
                .map_err(err)?;
            }
            Record::Escalated { alarm, at, reason } => {
                tx.execute(
                    "UPDATE alarm SET escalated = 1 WHERE id = ?1",
                    params![alarm.0 as i64],
                )
                .map_err(err)?;
                insert_event(&tx, *at, *alarm, "escalated", None, None, reason.as_str())
                    .map_err(err)?;
            }
            Record::AttemptStarted {
                alarm,
                attempt,
                route,
                at,
            } => {
                tx.execute(
                    "UPDATE alarm SET attempts = MAX(attempts, ?2) WHERE id = ?1",
                    params![alarm.0 as i64, *attempt as i64],
                )
                .map_err(err)?;
                insert_event(
                    &tx,
                    *at,
                    *alarm,
                    "attempt",
                    Some(&route_of(*route)),
                    Some(*attempt),
                    "",
                )
                .map_err(err)?;
            }
            Record::AttemptFailed {
                alarm,
                attempt,
                route,
                at,
                reason,
            } => {
                insert_event(
                    &tx,
                    *at,
                    *alarm,
                    "failed",
                    Some(&route_of(*route)),
                    Some(*attempt),
                    reason,
                )
                .map_err(err)?;
            }
            Record::Acknowledged {
                alarm,
                attempt,
                route,
                at,
                by,
            } => {
                tx.execute(
                    "UPDATE alarm SET state = 'acknowledged', closed_at = ?2, closed_by = ?3 WHERE id = ?1",
                    params![alarm.0 as i64, at.0 as i64, by],
                )
                .map_err(err)?;
                insert_event(
                    &tx,
                    *at,
                    *alarm,
                    "acknowledged",
                    Some(&route_of(*route)),
                    Some(*attempt),
                    by,
                )
                .map_err(err)?;
            }
            Record::Cancelled { alarm, at, by } => {
                let by = by.to_string();
                tx.execute(
                    "UPDATE alarm SET state = 'cancelled', closed_at = ?2, closed_by = ?3 WHERE id = ?1",
                    params![alarm.0 as i64, at.0 as i64, by],
                )
                .map_err(err)?;
                insert_event(&tx, *at, *alarm, "cancelled", None, None, &by).map_err(err)?;
            }
            Record::CallBackRefused { alarm, at, reason } => {
                insert_event(&tx, *at, *alarm, "call-back-refused", None, None, reason)
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        match record {
            Record::Raised {
                alarm,
                frame: Some(counter),
                ..
            } => {
                if let Some(d) = &alarm.device {
                    self.raise_mark(d.id, *counter)?;
                }
            }
            Record::Repeated {
                frame: Some((device, counter)),
                ..
            } => self.raise_mark(*device, *counter)?,
            _ => {}
        }
        Ok(())
    }

    /// The id the next alarm gets: one above every id ever used.
    pub fn next_id(&self) -> Result<u64, JournalError> {
        let max: Option<i64> = self
            .conn
            .query_row("SELECT MAX(id) FROM alarm", [], |r| r.get(0))
            .map_err(self.err())?;
        Ok(max.map_or(1, |m| m as u64 + 1))
    }

    /// Every alarm neither acknowledged nor cancelled, oldest first.
    pub fn recover(&self) -> Result<Vec<Recovered>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, reference, cause, device, device_kind, zone, location, raised_at,
                        window_until, escalated, attempts
                 FROM alarm WHERE state = 'open' ORDER BY id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, Option<i64>>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, i64>(10)?,
                ))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (
                id,
                reference,
                cause,
                device,
                kind,
                zone,
                location,
                raised,
                window,
                escalated,
                attempts,
            ) = row.map_err(self.err())?;
            let corrupt = |what| JournalError::Corrupt {
                path: self.path.clone(),
                id: id as u64,
                what,
            };
            let cause = AlarmCause::parse(&cause).ok_or_else(|| corrupt("cause"))?;
            let reference = AlarmRef::parse(&reference).ok_or_else(|| corrupt("reference"))?;
            let device = match device {
                None => None,
                Some(d) => Some(Device {
                    id: DeviceId(d as u32),
                    kind: kind
                        .as_deref()
                        .and_then(DeviceKind::parse)
                        .ok_or_else(|| corrupt("device kind"))?,
                    zone: zone.unwrap_or(0) as u16,
                    location: location.unwrap_or_default(),
                }),
            };
            let evidence: Option<String> = self
                .conn
                .query_row(
                    "SELECT evidence FROM fall_evidence WHERE alarm = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(self.err())?;
            out.push(Recovered {
                alarm: Alarm {
                    id: AlarmId(id as u64),
                    reference,
                    cause,
                    device,
                    raised_at: Timestamp(raised as u64),
                    evidence: evidence.as_deref().and_then(FallEvidence::from_record),
                },
                window_until: window.map(|w| Timestamp(w as u64)),
                escalated: escalated != 0,
                attempts: attempts as u32,
            });
        }
        Ok(out)
    }

    /// The readable timeline of the last `limit` events, oldest first.
    pub fn timeline(&self, limit: usize) -> Result<Vec<TimelineEntry>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT e.at, e.alarm, a.reference, a.location, e.kind, e.route, e.attempt, e.detail
                 FROM event e JOIN alarm a ON a.id = e.alarm
                 ORDER BY e.seq DESC LIMIT ?1",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (at, alarm, reference, location, kind, route, attempt, detail) =
                row.map_err(self.err())?;
            let detail = detail.unwrap_or_default();
            let route = route.unwrap_or_default();
            let attempt = attempt.unwrap_or(0);
            let text = match kind.as_str() {
                "raised" => match location {
                    Some(l) => format!("RAISED from {l}: {detail}"),
                    None => format!("RAISED at the base unit: {detail}"),
                },
                "repeated" => "trigger pressed again (merged into this alarm)".to_string(),
                "escalated" => format!(
                    "escalating: {}",
                    crate::core::EscalationReason::parse(&detail)
                        .map_or(detail.as_str(), |r| r.describe())
                ),
                "attempt" => format!("attempt {attempt} via {route}"),
                "failed" => format!("attempt {attempt} via {route} failed: {detail}"),
                "acknowledged" => {
                    format!("ACKNOWLEDGED via {route} (attempt {attempt}) by {detail}")
                }
                "cancelled" => format!("CANCELLED by {detail}"),
                "call-back-refused" => format!("the centre's call-back was REFUSED: {detail}"),
                other => format!("{other} {detail}"),
            };
            out.push(TimelineEntry {
                at: Timestamp(at as u64),
                alarm: AlarmId(alarm as u64),
                reference,
                text,
            });
        }
        out.reverse();
        Ok(out)
    }

    /// When the last test report was raised, and what became of it.
    pub fn last_test(&self) -> Result<Option<(Timestamp, String)>, JournalError> {
        self.conn
            .query_row(
                "SELECT raised_at, state FROM alarm WHERE cause IN ('periodic-test', 'manual-test')
                 ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        Timestamp(r.get::<_, i64>(0)? as u64),
                        r.get::<_, String>(1)?,
                    ))
                },
            )
            .optional()
            .map_err(self.err())
    }

    /// The newest alarm of `cause` raised at or after `since`: its id, state and reference.
    pub fn newest_alarm(
        &self,
        cause: AlarmCause,
        since: Timestamp,
    ) -> Result<Option<(AlarmId, String, String)>, JournalError> {
        self.conn
            .query_row(
                "SELECT id, state, reference FROM alarm WHERE cause = ?1 AND raised_at >= ?2
                 ORDER BY id DESC LIMIT 1",
                params![cause.as_str(), since.0 as i64],
                |r| {
                    Ok((
                        AlarmId(r.get::<_, i64>(0)? as u64),
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(self.err())
    }

    /// Each attempt of `alarm` so far, oldest first: when it started, failed or was
    /// acknowledged.
    pub fn attempts_of(&self, alarm: AlarmId) -> Result<Vec<AttemptEvent>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT route, attempt, kind, detail FROM event
                 WHERE alarm = ?1 AND kind IN ('attempt', 'failed', 'acknowledged') ORDER BY seq",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![alarm.0 as i64], |r| {
                Ok(AttemptEvent {
                    route: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    attempt: r.get::<_, Option<i64>>(1)?.unwrap_or(0) as u32,
                    kind: r.get::<_, String>(2)?,
                    detail: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// The last accepted frame counter of a pendant.
    pub fn pendant_counter(&self, device: DeviceId) -> Result<Option<u32>, JournalError> {
        self.conn
            .query_row(
                "SELECT counter FROM pendant_counter WHERE device = ?1",
                params![device.0 as i64],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|c| c.map(|c| c as u32))
            .map_err(self.err())
    }

    /// Durably stores a pendant's last accepted frame counter; a lower one than stored is
    /// ignored (the core commits alarm frames' counters on its own connection, and the radio
    /// may learn of an older frame after that): only a new pairing starts the count again.
    pub fn set_pendant_counter(
        &mut self,
        device: DeviceId,
        counter: u32,
    ) -> Result<(), JournalError> {
        self.conn
            .execute(
                "INSERT INTO pendant_counter (device, counter) VALUES (?1, ?2)
                 ON CONFLICT(device) DO UPDATE SET counter = MAX(counter, excluded.counter)",
                params![device.0 as i64, counter as i64],
            )
            .map(|_| ())
            .map_err(self.err())?;
        self.raise_mark(device, counter)
    }

    /// The last accepted remote-command nonce, 0 if none was ever accepted.
    pub fn remote_nonce(&self) -> Result<u64, JournalError> {
        self.conn
            .query_row("SELECT nonce FROM remote_nonce WHERE id = 1", [], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            // Stored as the same 64 bits (SQLite integers are signed).
            .map(|n| n.map_or(0, |n| n as u64))
            .map_err(self.err())
    }

    /// Durably stores the last accepted remote-command nonce.
    pub fn set_remote_nonce(&mut self, nonce: u64) -> Result<(), JournalError> {
        self.conn
            .execute(
                "INSERT INTO remote_nonce (id, nonce) VALUES (1, ?1)
                 ON CONFLICT(id) DO UPDATE SET nonce = excluded.nonce",
                params![nonce as i64],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Stores a pendant paired over the air, with its key.
    pub fn save_paired(
        &mut self,
        device: &Device,
        key: &[u8; 32],
        at: Timestamp,
    ) -> Result<(), JournalError> {
        insert_paired(&self.conn, device, key, at).map_err(self.err())
    }
}

/// The paired pendant's row, replacing an older one of the same id.
fn insert_paired(
    conn: &Connection,
    device: &Device,
    key: &[u8; 32],
    at: Timestamp,
) -> rusqlite::Result<()> {
    {
        conn
            .execute(
                "INSERT INTO paired_pendant (device, kind, key, location, zone, paired_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(device) DO UPDATE SET kind = excluded.kind, key = excluded.key,
                   location = excluded.location, zone = excluded.zone, paired_at = excluded.paired_at",
                params![
                    device.id.0 as i64,
                    device.kind.as_str(),
                    &key[..],
                    device.location,
                    device.zone as i64,
                    at.0 as i64
                ],
            )
            .map(|_| ())
    }
}

impl Journal {
    /// Pendants paired over the air, with their keys.
    pub fn paired(&self) -> Result<Vec<(Device, [u8; 32])>, JournalError> {
        let mut stmt = self
            .conn
            .prepare("SELECT device, kind, key, location, zone FROM paired_pendant ORDER BY device")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, key, location, zone) = row.map_err(self.err())?;
            let corrupt = |what| JournalError::Corrupt {
                path: self.path.clone(),
                id: id as u64,
                what,
            };
            let key: [u8; 32] = key.try_into().map_err(|_| corrupt("pendant key"))?;
            let kind = DeviceKind::parse(&kind).ok_or_else(|| corrupt("device kind"))?;
            out.push((
                Device {
                    id: DeviceId(id as u32),
                    kind,
                    zone: zone as u16,
                    location,
                },
                key,
            ));
        }
        Ok(out)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    at: Timestamp,
    alarm: AlarmId,
    kind: &str,
    route: Option<&str>,
    attempt: Option<u32>,
    detail: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO event (at, alarm, kind, route, attempt, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            at.0 as i64,
            alarm.0 as i64,
            kind,
            route,
            attempt.map(|a| a as i64),
            detail
        ],
    )
    .map(|_| ())
}

impl Drop for Journal {
    /// An orderly stop commits the counters still waiting in memory.
    fn drop(&mut self) {
        for (device, counter) in std::mem::take(&mut self.pending) {
            if let Err(e) = self.set_pendant_counter(device, counter) {
                tracing::warn!(pendant = %device, error = %e, "pendant counter not committed at stop");
            }
        }
    }
}

/// The radio's counters and paired keys live in the journal, so a restart does not reopen
/// replay and paired pendants stay paired. The radio thread uses its own connection.
impl crate::radio::store::PendantStore for Journal {
    fn last_counter(&self, pendant: DeviceId) -> Result<Option<u32>, crate::radio::RadioError> {
        let durable = self
            .pendant_counter(pendant)
            .map_err(|e| crate::radio::RadioError::Store(e.to_string()))?;
        Ok(durable.max(self.pending.get(&pendant).copied()))
    }

    fn save_counter(
        &mut self,
        pendant: DeviceId,
        counter: u32,
    ) -> Result<(), crate::radio::RadioError> {
        let err = |e: JournalError| crate::radio::RadioError::Store(e.to_string());
        let durable = self.pendant_counter(pendant).map_err(err)?.unwrap_or(0);
        if counter > durable && counter - durable < COUNTER_BATCH {
            self.pending.insert(pendant, counter);
            return Ok(());
        }
        self.pending.remove(&pendant);
        self.set_pendant_counter(pendant, counter).map_err(err)
    }

    fn paired_keys(
        &self,
    ) -> Result<Vec<(DeviceId, crate::radio::frame::PendantKey)>, crate::radio::RadioError> {
        self.paired()
            .map(|v| {
                v.into_iter()
                    .map(|(d, key)| (d.id, crate::radio::frame::PendantKey::new(key)))
                    .collect()
            })
            .map_err(|e| crate::radio::RadioError::Store(e.to_string()))
    }

    fn note_gap(
        &mut self,
        pendant: DeviceId,
        last: u32,
        next: u32,
    ) -> Result<(), crate::radio::RadioError> {
        self.conn
            .execute(
                "INSERT INTO counter_gap (device, last, next, at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    pendant.0 as i64,
                    last as i64,
                    next as i64,
                    self.clock.wall().0 as i64
                ],
            )
            .map(|_| ())
            .map_err(|e| crate::radio::RadioError::Store(e.to_string()))
    }

    fn save_paired_key(
        &mut self,
        pendant: DeviceId,
        key: &crate::radio::frame::PendantKey,
    ) -> Result<(), crate::radio::RadioError> {
        let err = |e: JournalError| crate::radio::RadioError::Store(e.to_string());
        let device = Device::paired(pendant);
        let at = self.clock.wall();
        // The pendant, its key and the end of its old counter sequence (a new key starts a
        // new one) are one transaction: a crash leaves the old pairing or the new, never half.
        let commit = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            insert_paired(&tx, &device, key.as_bytes(), at)?;
            tx.execute(
                "DELETE FROM pendant_counter WHERE device = ?1",
                params![pendant.0 as i64],
            )?;
            tx.commit()
        };
        commit(&mut self.conn).map_err(self.err()).map_err(err)?;
        self.pending.remove(&pendant);
        self.forget_mark(pendant).map_err(err)
    }
}

/// The modem's remote-command nonce lives in the journal, so a restart does not reopen replay.
/// The modem uses its own connection.
impl crate::modem::NonceStore for Journal {
    fn last_nonce(&self) -> Result<u64, crate::modem::NonceStoreError> {
        self.remote_nonce()
            .map_err(|e| crate::modem::NonceStoreError(e.to_string()))
    }

    fn save_nonce(&mut self, nonce: u64) -> Result<(), crate::modem::NonceStoreError> {
        self.set_remote_nonce(nonce)
            .map_err(|e| crate::modem::NonceStoreError(e.to_string()))
    }
}
