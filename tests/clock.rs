//! Wall-clock steps against the running unit: a Raspberry Pi has no real-time clock, so its
//! wall time starts at 1970 or at a stale fake-hwclock time and NTP steps it later. Timers run
//! on monotonic time: a step neither cuts nor stretches a cancel window, nor reports every
//! pendant missing. Runs on tokio's paused clock, so hours pass instantly and exactly.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::sync::mpsc;
use tokio::time::Instant;
use vigil::core::*;
use vigil::journal::Journal;
use vigil::runtime::*;

const HOUR_MS: i64 = 3_600_000;

/// A clock whose monotonic time is tokio's (paused) time and whose wall time a test can step.
struct SteppedClock {
    start: Instant,
    wall_at_start: Timestamp,
    step_ms: AtomicI64,
}

impl SteppedClock {
    fn new(wall_at_start: Timestamp) -> Arc<SteppedClock> {
        Arc::new(SteppedClock {
            start: Instant::now(),
            wall_at_start,
            step_ms: AtomicI64::new(0),
        })
    }

    /// Steps the wall clock by `ms` (negative: back), as NTP or an installer would.
    fn step(&self, ms: i64) {
        self.step_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for SteppedClock {
    fn monotonic(&self) -> Duration {
        self.start.elapsed()
    }

    fn wall(&self) -> Timestamp {
        let ms = (self.wall_at_start.0 + self.monotonic().as_millis() as u64) as i64
            + self.step_ms.load(Ordering::SeqCst);
        Timestamp(ms.max(0) as u64)
    }
}

/// A route that acknowledges at once.
struct Receiver;

impl Transport for Receiver {
    fn deliver(&self, _: Delivery) -> DeliveryFuture {
        Box::pin(async { acked("receiver") })
    }
}

struct Quiet;
impl VoiceOut for Quiet {
    fn play(&self, _: Prompt) {}
    fn listen(&self, _: AlarmId, _: Timestamp, _: mpsc::Sender<Input>) {}
    fn stop_listening(&self) {}
}
impl PendantAcks for Quiet {
    fn ack(&self, _: DeviceId, _: u32) {}
    fn help_coming(&self, _: DeviceId, _: u32) {}
}
impl CallControl for Quiet {
    fn start_call(&self, _: AlarmId, _: String, _: mpsc::Sender<Input>) {}
    fn auto_answer(&self, _: Timestamp) {}
}

fn radio(device: u32, counter: u32, kind: RadioEventKind) -> Input {
    Input::Radio(RadioEvent {
        device: DeviceId(0xA000 + device),
        counter,
        kind,
        rssi_dbm: None,
    })
}

struct Running {
    events: mpsc::UnboundedReceiver<Event>,
    inputs: mpsc::Sender<Input>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Journal>,
    _dir: tempfile::TempDir,
}

fn start(clock: Arc<SteppedClock>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("journal.sqlite")).unwrap();
    let (core, journal) = restore(settings(), journal, clock.wall()).unwrap();
    let adapters = Adapters {
        status: Vec::new(),
        routes: vec![Arc::new(Receiver), Arc::new(Receiver), Arc::new(Receiver)],
        voice: Arc::new(Quiet),
        pendants: Arc::new(Quiet),
        calls: Arc::new(Quiet),
    };
    let mut unit = Unit::new(core, journal, adapters, clock);
    let events = unit.events();
    let inputs = unit.inputs();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(unit.run(async {
        let _ = stopped.await;
    }));
    Running {
        events,
        inputs,
        stop,
        task,
        _dir: dir,
    }
}

impl Running {
    /// Waits (in paused time, at most `limit`) for an event matching `done`.
    async fn until(&mut self, limit: Duration, done: impl Fn(&Event) -> bool) -> Option<Event> {
        let deadline = Instant::now() + limit;
        loop {
            let e = tokio::select! {
                e = self.events.recv() => e.expect("unit stopped"),
                _ = tokio::time::sleep_until(deadline) => return None,
            };
            if done(&e) {
                return Some(e);
            }
        }
    }

    /// Every event within `span` of paused time.
    async fn collect(&mut self, span: Duration) -> Vec<Event> {
        let deadline = Instant::now() + span;
        let mut seen = Vec::new();
        loop {
            tokio::select! {
                e = self.events.recv() => seen.push(e.expect("unit stopped")),
                _ = tokio::time::sleep_until(deadline) => return seen,
            }
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

fn is_raised(e: &Event) -> bool {
    matches!(e, Event::Output(_, Output::Persist(Record::Raised { .. })))
}

fn is_delivery(e: &Event) -> bool {
    matches!(e, Event::Output(_, Output::Deliver(_)))
}

fn missing_reported(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Output(_, Output::Persist(Record::Raised { alarm, .. }))
                if alarm.cause == AlarmCause::PendantMissing =>
            {
                Some(format!("{:?}", alarm.device.as_ref().map(|d| d.id)))
            }
            _ => None,
        })
        .collect()
}

/// A fixed trigger's 10 s cancel window, with the wall clock stepped by `step_ms` inside it
/// and the loop woken by a heartbeat: the alarm goes out exactly when the window ends.
async fn cancel_window_with_step(step_ms: i64) {
    let clock = SteppedClock::new(T0);
    let mut unit = start(clock.clone());
    unit.inputs
        .send(radio(3, 1, RadioEventKind::Help))
        .await
        .unwrap();
    unit.until(Duration::from_secs(5), is_raised)
        .await
        .expect("alarm raised");
    let raised = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    clock.step(step_ms);
    let heartbeat = RadioEventKind::Heartbeat {
        battery_mv: 3000,
        alarms_sent: None,
    };
    unit.inputs.send(radio(1, 1, heartbeat)).await.unwrap();
    let delivered = unit.until(Duration::from_secs(3 * 3600), is_delivery).await;
    let after = raised.elapsed();
    assert!(
        delivered.is_some(),
        "no delivery within 3 h after a step of {step_ms} ms"
    );
    let window = settings().alarm.fixed_cancel_window;
    assert!(
        after >= window && after < window + Duration::from_secs(1),
        "a wall-clock step of {step_ms} ms moved the 10 s cancel window: delivered after {after:?}"
    );
    unit.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_step_forward_of_an_hour_does_not_cut_the_cancel_window() {
    cancel_window_with_step(HOUR_MS).await;
}

#[tokio::test(start_paused = true)]
async fn a_step_back_of_an_hour_does_not_stretch_the_cancel_window() {
    cancel_window_with_step(-HOUR_MS).await;
}

/// The unit starts with wall time `boot_wall`; after 30 s NTP steps it to `T0`. No pendant is
/// reported missing in the next hour (they are supervised over 4 h).
async fn no_pendant_missing_after_ntp_step(boot_wall: Timestamp) {
    let clock = SteppedClock::new(boot_wall);
    let mut unit = start(clock.clone());
    let before = unit.collect(Duration::from_secs(30)).await;
    clock.step(T0.0 as i64 - clock.wall().0 as i64);
    assert!(clock.wall_plausible(), "T0 is a plausible wall time");
    let heartbeat = RadioEventKind::Heartbeat {
        battery_mv: 3000,
        alarms_sent: None,
    };
    unit.inputs.send(radio(1, 1, heartbeat)).await.unwrap();
    let after = unit.collect(Duration::from_secs(3600)).await;
    let missing = missing_reported(&[before, after].concat());
    assert!(
        missing.is_empty(),
        "a wall-clock step from {boot_wall} to {T0} reported pendants missing: {missing:?}"
    );
    unit.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_boot_at_1970_stepping_to_now_reports_no_pendant_missing() {
    let boot = Timestamp::from_secs(12);
    assert!(
        !SteppedClock::new(boot).wall_plausible(),
        "1970 is not plausible"
    );
    no_pendant_missing_after_ntp_step(boot).await;
}

#[tokio::test(start_paused = true)]
async fn a_stale_clock_stepping_three_days_forward_reports_no_pendant_missing() {
    no_pendant_missing_after_ntp_step(Timestamp(T0.0 - 72 * HOUR_MS as u64)).await;
}

#[test]
fn the_system_clock_is_plausible_and_monotonic() {
    let c = SystemClock;
    assert!(
        c.wall_plausible(),
        "the build machine's clock is set: {}",
        c.wall()
    );
    let a = c.monotonic();
    let b = c.monotonic();
    assert!(b >= a);
}

/// A journal holding one fixed-trigger alarm raised at `T0`, still inside its 10 s window.
fn journal_with_open_window(dir: &std::path::Path) -> Journal {
    let mut journal = Journal::open(&dir.join("journal.sqlite")).unwrap();
    let alarm = Alarm {
        id: AlarmId(1),
        reference: AlarmRef::new(AlarmId(1), T0),
        cause: AlarmCause::Help,
        device: Some(device(3, DeviceKind::Fixed)),
        raised_at: T0,
        evidence: None,
    };
    journal
        .append(&Record::Raised {
            alarm,
            window_until: Some(T0 + Duration::from_secs(10)),
            frame: None,
        })
        .unwrap();
    journal
}

/// What the core asks for right after restoring at wall time `now`.
fn outputs_after_restore(now: Timestamp) -> Vec<Output> {
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_with_open_window(dir.path());
    let (mut core, _journal) = restore(settings(), journal, now).unwrap();
    std::iter::from_fn(|| core.poll_output()).collect()
}

#[test]
fn a_window_interrupted_by_a_restart_escalates_at_once_when_the_wall_clock_is_unknown() {
    // Restarted on a board whose clock is back at 1970: how long the window has left is
    // unknown, so the alarm goes out now (fail towards help) rather than waiting for 2026.
    let outputs = outputs_after_restore(Timestamp::from_secs(12));
    assert!(
        outputs.iter().any(|o| matches!(o, Output::Deliver(_))),
        "an interrupted window with an unknown wall clock did not escalate: {outputs:#?}"
    );
}

#[test]
fn a_window_interrupted_by_a_restart_is_not_stretched_by_a_clock_stepped_back() {
    // Restarted with the wall clock an hour behind the journal: the window may last at most
    // its own length from now, not an hour and ten seconds.
    let now = Timestamp(T0.0 - HOUR_MS as u64);
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_with_open_window(dir.path());
    let (mut core, _journal) = restore(settings(), journal, now).unwrap();
    while core.poll_output().is_some() {}
    let later = now + Duration::from_secs(11);
    core.handle_timeout(later);
    let outputs: Vec<Output> = std::iter::from_fn(|| core.poll_output()).collect();
    assert!(
        outputs.iter().any(|o| matches!(o, Output::Deliver(_))),
        "11 s after a restart with the clock an hour back the window is still open: {outputs:#?}"
    );
}

#[test]
fn a_window_interrupted_by_a_restart_resumes_when_the_wall_clock_is_right() {
    let outputs = outputs_after_restore(T0 + Duration::from_secs(4));
    assert!(
        !outputs.iter().any(|o| matches!(o, Output::Deliver(_))),
        "a window with 6 s left escalated at once: {outputs:#?}"
    );
}

/// One time source: apart from the clock itself, only the simulators (other machines, with
/// clocks of their own) and the one-shot installer tools read the wall clock. Every part of
/// the running unit is given the unit's clock, so a test, the demo or the whole-unit
/// simulation that steps it steps it everywhere.
#[test]
fn no_part_of_the_running_unit_reads_the_wall_clock_itself() {
    const READS: [&str; 5] = [
        "Timestamp::now()",
        "SystemTime::now()",
        "Utc::now()",
        "Local::now()",
        "OffsetDateTime::now",
    ];
    const ALLOWED: [&str; 8] = [
        // The clock, and the timestamp type's own reading of it.
        "crates/runtime/src/clock.rs",
        "crates/core/src/types.rs",
        // The voice side's clock: the system's time of day, for quiet hours.
        "crates/runtime/src/voice/engine.rs",
        // Simulated peers: a centre's receivers and the mobile network keep their own time.
        "crates/sim/src/centre/receiver/dc09.rs",
        "crates/sim/src/centre/receiver/demo.rs",
        "crates/sim/src/modem/sim.rs",
        // Tools run once by an installer, not part of the running unit.
        "crates/runtime/src/runtime/install_check.rs",
        "crates/runtime/src/voice/cli.rs",
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("src"), root.join("crates")];
    let mut offenders = Vec::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let name = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if ALLOWED.contains(&name.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            if READS.iter().any(|r| line.contains(r)) && !line.trim_start().starts_with("//") {
                offenders.push(format!("{name}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "the wall clock read outside the clock:\n{}",
        offenders.join("\n")
    );
}
