//! The runtime: tokio tasks that connect the adapters to the core.
//!
//! One loop owns the [`Core`] and the [`Journal`]. Adapters send [`Input`]s into it through a
//! channel; it carries out the core's [`Output`]s in order, committing every
//! [`Output::Persist`] before acting on the next output. Deliveries run as their own tasks,
//! so a slow route never stalls the loop, and can be aborted when the core says so.

pub mod appliance;
pub mod control;
pub mod gpio;
pub mod install_check;
pub mod radio_cli;
pub mod service;
pub mod timeline;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::core::{
    AlarmId, Core, Delivery, DeliveryResult, DeviceId, Input, Output, Prompt, Timestamp, UnitFault,
};
use crate::journal::{Journal, JournalError};

/// How long the voice adapter listens past the end of the core's window.
const LISTEN_OVERLAP: Duration = Duration::from_millis(100);

/// A delivery in progress; dropping it abandons the attempt.
pub type DeliveryFuture = Pin<Box<dyn Future<Output = DeliveryResult> + Send>>;

/// One route of the plan, as the runtime drives it.
pub trait Transport: Send + Sync + 'static {
    /// Carries one delivery attempt to its receiver and says what came of it.
    fn deliver(&self, delivery: Delivery) -> DeliveryFuture;
    /// Whether the route works as its own traffic shows (registration, link tests), for
    /// routes that keep such traffic: a change to true brings waiting alarms back at once.
    fn health(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        None
    }
}

/// The base unit's speaker and microphone.
pub trait VoiceOut: Send + Sync + 'static {
    /// Queues a prompt.
    fn play(&self, prompt: Prompt);
    /// Listens for speech until `until`, then sends [`Input::Heard`] on `inputs`.
    fn listen(&self, alarm: AlarmId, until: Timestamp, inputs: mpsc::Sender<Input>);
    /// Stops a listening window early.
    fn stop_listening(&self);
}

/// Acknowledgements back to pendants over the radio.
pub trait PendantAcks: Send + Sync + 'static {
    /// Acknowledges a frame so the pendant stops retransmitting.
    fn ack(&self, device: DeviceId, counter: u32);
    /// Tells the pendant that a receiving centre has the alarm of its frame `counter`.
    fn help_coming(&self, device: DeviceId, counter: u32);
}

/// Pairing pendants through the running unit (`vigil pair`).
pub trait PairingDesk: Send + Sync + 'static {
    /// Opens the pairing window; lines for the installer go to `lines` until it is over; a
    /// pendant paired in it is reported to the core on `inputs`.
    fn open(
        &self,
        replace: bool,
        window: Option<Duration>,
        lines: mpsc::Sender<String>,
        inputs: mpsc::Sender<Input>,
    );
    /// The installer's code for the pendant waiting in the window; the answer goes to `reply`.
    fn confirm(
        &self,
        code: crate::radio::pairing::PairingCode,
        reply: tokio::sync::oneshot::Sender<String>,
    );
}

/// Voice-call control on the cellular modem.
pub trait CallControl: Send + Sync + 'static {
    /// Calls `number` for speech about `alarm`; reports [`Input::Call`] events on `inputs`.
    fn start_call(&self, alarm: AlarmId, number: String, inputs: mpsc::Sender<Input>);
    /// Answers calls from the allowed numbers until `until`.
    fn auto_answer(&self, until: Timestamp);
    /// The installer's test call to `target`: progress and the result go to `lines`.
    fn call_test(&self, target: String, lines: mpsc::Sender<String>) {
        let _ = target;
        tokio::spawn(async move {
            let _ = lines
                .send("FAILED: this unit cannot place test calls".into())
                .await;
        });
    }
}

/// An adapter that can say how it is, for `vigil status` (modem signal, route reachability…).
pub trait StatusReport: Send + Sync + 'static {
    /// Lines of text, each `name: state`.
    fn status_lines(&self) -> Vec<String>;
}

/// The adapters the loop carries outputs out with.
pub struct Adapters {
    /// Adapters that report their state in `vigil status`.
    pub status: Vec<Arc<dyn StatusReport>>,
    /// Routes, in plan order (index = [`crate::core::RouteId`]).
    pub routes: Vec<Arc<dyn Transport>>,
    /// Speaker and microphone.
    pub voice: Arc<dyn VoiceOut>,
    /// Radio acknowledgements.
    pub pendants: Arc<dyn PendantAcks>,
    /// Calls.
    pub calls: Arc<dyn CallControl>,
}

/// What happened, for timelines and tests: every input the core got and every output it gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An input reached the core.
    Input(Timestamp, Input),
    /// The core asked for this, and it was carried out (persisted, played, started…).
    Output(Timestamp, Output),
    /// The journal refused a record; the unit goes on (fail towards help).
    JournalFailed(Timestamp, String),
}

/// Runtime failures that stop the unit.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The journal could not be opened or read at start.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

pub use crate::clock::{Clock, SystemClock, WALL_FLOOR};

/// The core's time: the wall time when the unit started plus monotonic time since. Every
/// window, timeout, retry and supervision interval in the core runs on it, so a step of the
/// wall clock (NTP at boot, a stale fake-hwclock, an installer) never cuts or stretches one.
#[derive(Clone, Copy, Debug)]
pub struct CoreTime {
    wall_at_start: Timestamp,
    monotonic_at_start: Duration,
}

impl CoreTime {
    /// Anchors the core's time to `clock` now.
    pub fn anchor(clock: &dyn Clock) -> CoreTime {
        CoreTime {
            wall_at_start: clock.wall(),
            monotonic_at_start: clock.monotonic(),
        }
    }

    /// The core's now: follows the monotonic clock only.
    pub fn now(&self, clock: &dyn Clock) -> Timestamp {
        self.wall_at_start + clock.monotonic().saturating_sub(self.monotonic_at_start)
    }
}

/// The base unit's main loop.
pub struct Unit {
    core: Core,
    journal: Journal,
    adapters: Adapters,
    clock: Arc<dyn Clock>,
    time: CoreTime,
    inputs_tx: mpsc::Sender<Input>,
    inputs_rx: mpsc::Receiver<Input>,
    results_tx: mpsc::Sender<(AlarmId, u32, DeliveryResult)>,
    results_rx: mpsc::Receiver<(AlarmId, u32, DeliveryResult)>,
    running: HashMap<(AlarmId, u32), JoinHandle<()>>,
    events: Option<mpsc::UnboundedSender<Event>>,
    alive: watch::Sender<Timestamp>,
    control_tx: mpsc::Sender<control::ControlRequest>,
    control_rx: mpsc::Receiver<control::ControlRequest>,
    /// Whether the last journal write failed (reported as [`UnitFault::Storage`]).
    storage_failed: bool,
    /// Pairing through the radio, where the unit has one.
    pairing: Option<Arc<dyn PairingDesk>>,
}

impl Unit {
    /// A unit around `core`, with its open alarms already restored from `journal`.
    pub fn new(core: Core, journal: Journal, adapters: Adapters, clock: Arc<dyn Clock>) -> Unit {
        let (inputs_tx, inputs_rx) = mpsc::channel(256);
        let (results_tx, results_rx) = mpsc::channel(64);
        let time = CoreTime::anchor(clock.as_ref());
        let (alive, _) = watch::channel(time.now(clock.as_ref()));
        let (control_tx, control_rx) = mpsc::channel(8);
        Unit {
            core,
            journal,
            adapters,
            clock,
            time,
            inputs_tx,
            inputs_rx,
            results_tx,
            results_rx,
            running: HashMap::new(),
            events: None,
            alive,
            control_tx,
            control_rx,
            storage_failed: false,
            pairing: None,
        }
    }

    /// Lets `vigil pair` pair pendants through `desk`.
    pub fn set_pairing(&mut self, desk: Arc<dyn PairingDesk>) {
        self.pairing = Some(desk);
    }

    /// Where the control socket sends its requests.
    pub fn control(&self) -> mpsc::Sender<control::ControlRequest> {
        self.control_tx.clone()
    }

    /// Where adapters send what happens.
    pub fn inputs(&self) -> mpsc::Sender<Input> {
        self.inputs_tx.clone()
    }

    /// Every input and output from now on, for a timeline.
    pub fn events(&mut self) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.events = Some(tx);
        rx
    }

    /// Ticks each time the loop goes round: the watchdog pings only while it moves.
    pub fn alive(&self) -> watch::Receiver<Timestamp> {
        self.alive.subscribe()
    }

    /// The core, for status snapshots between runs.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The core's (monotonic) now.
    fn now(&self) -> Timestamp {
        self.time.now(self.clock.as_ref())
    }

    /// A deadline in the core's time as wall time, for adapters that still compare deadlines
    /// with the wall clock (voice, modem): right as long as the wall clock does not step
    /// before the deadline passes.
    fn as_wall(&self, deadline: Timestamp, now: Timestamp) -> Timestamp {
        self.clock.wall() + deadline.since(now)
    }

    fn emit(&self, e: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    /// Runs until `shutdown` completes. Deliveries still running are abandoned; their
    /// alarms are in the journal and resume on the next start.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Journal {
        tokio::pin!(shutdown);
        self.carry_out();
        loop {
            let now = self.now();
            let _ = self.alive.send(now);
            let sleep = self
                .core
                .poll_timeout()
                .map(|t| t.since(now))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                Some(input) = self.inputs_rx.recv() => {
                    let now = self.now();
                    self.emit(Event::Input(now, input.clone()));
                    self.core.handle(now, input);
                }
                Some((alarm, attempt, result)) = self.results_rx.recv() => {
                    self.running.remove(&(alarm, attempt));
                    let now = self.now();
                    let input = Input::Delivery { alarm, attempt, result };
                    self.emit(Event::Input(now, input.clone()));
                    self.core.handle(now, input);
                }
                Some(request) = self.control_rx.recv() => {
                    match request {
                        control::ControlRequest::Status(reply) => {
                            let _ = reply.send(self.status_text());
                        }
                        control::ControlRequest::TestCall(reply) => {
                            let now = self.now();
                            self.emit(Event::Input(now, Input::TestRequest));
                            self.core.handle(now, Input::TestRequest);
                            let _ = reply.send("test report raised; follow it with `vigil log`\n".into());
                        }
                        control::ControlRequest::CallTest { target, lines } => {
                            self.adapters.calls.call_test(target, lines);
                        }
                        control::ControlRequest::PlayCheck(reply) => {
                            // Played like any prompt, at the configured volume: what the
                            // person will hear in an alarm.
                            self.adapters.voice.play(Prompt::TestCall);
                            let _ = reply.send("playing the test prompt at the base\n".into());
                        }
                        control::ControlRequest::Pair { replace, window, lines } => match &self.pairing {
                            Some(desk) => desk.open(replace, window, lines, self.inputs_tx.clone()),
                            None => {
                                let _ = lines.try_send("this unit has no radio to pair with".into());
                            }
                        },
                        control::ControlRequest::PairConfirm { code, reply } => match &self.pairing {
                            Some(desk) => desk.confirm(code, reply),
                            None => {
                                let _ = reply.send("this unit has no radio to pair with\n".into());
                            }
                        },
                    }
                }
                _ = tokio::time::sleep(sleep) => {
                    self.core.handle_timeout(self.now());
                }
            }
            self.carry_out();
        }
        for (_, task) in self.running.drain() {
            task.abort();
        }
        self.journal
    }

    /// Carries out every pending output, in order.
    fn carry_out(&mut self) {
        while let Some(output) = self.core.poll_output() {
            let now = self.now();
            match &output {
                Output::Persist(record) => {
                    // The commit (with its fsync) holds this loop, so nothing the core asked
                    // after it happens before it is durable; on a multi-threaded runtime the
                    // other tasks (radio acknowledgements, routes, the control socket) move to
                    // another worker meanwhile instead of waiting behind the disk.
                    let journal = &mut self.journal;
                    let appended =
                        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                                tokio::task::block_in_place(|| journal.append(record))
                            }
                            _ => journal.append(record),
                        };
                    let failed = match appended {
                        // Written into the reserve of a full disk: still a storage fault.
                        Ok(()) => self.journal.on_reserve(),
                        Err(e) => {
                            // Help goes on from memory even if the disk fails; the failure
                            // is loud: a technical alarm to the centre and a line in status.
                            tracing::error!(alarm_id = record.alarm().0, error = %e, "journal write failed");
                            self.emit(Event::JournalFailed(now, e.to_string()));
                            true
                        }
                    };
                    if std::mem::replace(&mut self.storage_failed, failed) != failed {
                        let fault = Input::Fault {
                            fault: UnitFault::Storage,
                            active: failed,
                        };
                        // The loop is the queue's only reader: never wait on it from here.
                        if self.inputs_tx.try_send(fault).is_err() {
                            tracing::error!("input queue full: storage fault not reported yet");
                            self.storage_failed = !failed;
                        }
                    }
                }
                Output::Play(prompt) => self.adapters.voice.play(*prompt),
                // The microphone stays open a little past the core's window, so the core's
                // own timer, not a verdict racing it, ends a window nobody answered.
                Output::Listen { alarm, until } => self.adapters.voice.listen(
                    *alarm,
                    self.as_wall(*until, now) + LISTEN_OVERLAP,
                    self.inputs_tx.clone(),
                ),
                Output::StopListening => self.adapters.voice.stop_listening(),
                Output::AckPendant { device, counter } => {
                    self.adapters.pendants.ack(*device, *counter)
                }
                Output::TellPendantHelpComing { device, counter } => {
                    self.adapters.pendants.help_coming(*device, *counter)
                }
                Output::Deliver(delivery) => self.start_delivery(delivery.clone()),
                Output::AbortDelivery { alarm, attempt } => {
                    if let Some(task) = self.running.remove(&(*alarm, *attempt)) {
                        task.abort();
                    }
                }
                Output::StartCall { alarm, number } => {
                    self.adapters
                        .calls
                        .start_call(*alarm, number.clone(), self.inputs_tx.clone())
                }
                Output::AutoAnswer { until } => {
                    self.adapters.calls.auto_answer(self.as_wall(*until, now))
                }
            }
            self.emit(Event::Output(now, output));
        }
    }

    /// The answer to `vigil status`.
    fn status_text(&self) -> String {
        use std::fmt::Write;
        let now = self.now();
        let mut t = String::new();
        let _ = writeln!(t, "time:        {}", self.clock.wall());
        let _ = writeln!(
            t,
            "mains:       {}",
            if self.core.mains_present() {
                "present"
            } else {
                "LOST"
            }
        );
        let mut faults = self.core.faults().peekable();
        if faults.peek().is_none() {
            let _ = writeln!(t, "faults:      none");
        }
        for (fault, since) in faults {
            let _ = writeln!(
                t,
                "faults:      {}: FAULT ({}) since {since}",
                fault.as_str(),
                fault.describe().0
            );
        }
        let mut down = self.core.routes_down().peekable();
        if down.peek().is_none() {
            let _ = writeln!(t, "routes:      none known to be down");
        }
        for (route, since) in down {
            let _ = writeln!(
                t,
                "routes:      {}: DOWN since {since} (its last attempt failed; tried last until it works)",
                self.core.route_name(route)
            );
        }
        for (route, since, why) in self.core.routes_unusable() {
            let _ = writeln!(
                t,
                "routes:      {}: CANNOT WORK since {since}: {why} (left out of the plan)",
                self.core.route_name(route)
            );
        }
        if let Some(until) = self.core.silenced_until() {
            let _ = writeln!(
                t,
                "prompts:     technical prompts silenced until {until} (SILENCE by SMS)"
            );
        }
        let _ = writeln!(t, "next test:   {}", self.core.next_test());
        match self.journal.last_test() {
            Ok(Some((at, state))) => {
                let _ = writeln!(t, "last test:   {at} ({state})");
            }
            _ => {
                let _ = writeln!(t, "last test:   none yet");
            }
        }
        for adapter in &self.adapters.status {
            for line in adapter.status_lines() {
                let _ = writeln!(t, "{line}");
            }
        }
        let devices = self.core.devices();
        let _ = writeln!(t, "pendants:    {}", devices.len());
        for d in devices {
            let _ = writeln!(
                t,
                "  {} {:<8} zone {:>3}  {:<24} {}{}{}{}",
                d.device.id,
                d.device.kind.as_str(),
                d.device.zone,
                d.device.location,
                heard_text(now, &d),
                d.battery_mv
                    .map(|b| format!(", battery {b} mV"))
                    .unwrap_or_default(),
                d.rssi_dbm.map(|r| format!(", {r} dBm")).unwrap_or_default(),
                if d.missing { ", MISSING" } else { "" },
            );
        }
        let open = self.core.open_alarms();
        let _ = writeln!(t, "open alarms: {}", open.len());
        for a in open {
            let _ = writeln!(
                t,
                "  {} ref {} {}, raised {}: {} attempt(s), {} round(s){}",
                a.alarm.id,
                a.alarm.reference,
                a.alarm.describe(),
                a.alarm.raised_at,
                a.attempts,
                a.rounds,
                a.window_until
                    .map(|w| format!(", in window until {w}"))
                    .unwrap_or_default()
            );
        }
        t
    }

    fn start_delivery(&mut self, delivery: Delivery) {
        let key = (delivery.alarm.id, delivery.attempt);
        let Some(route) = self.adapters.routes.get(delivery.route.0).cloned() else {
            // The plan and the adapters disagree: report it as a failure so the core moves on.
            let tx = self.results_tx.clone();
            let _ = tx.try_send((
                key.0,
                key.1,
                DeliveryResult::Failed {
                    reason: format!("route {} has no transport", delivery.route.0 + 1),
                },
            ));
            return;
        };
        tracing::info!(
            alarm_id = delivery.alarm.id.0,
            reference = %delivery.alarm.reference,
            route = delivery.route.0,
            attempt = delivery.attempt,
            "delivery started"
        );
        let tx = self.results_tx.clone();
        let task = tokio::spawn(async move {
            let result = route.deliver(delivery).await;
            let _ = tx.send((key.0, key.1, result)).await;
        });
        self.running.insert(key, task);
    }
}

/// The end of a cancel window interrupted by a restart, on the new start's time. The journal
/// holds wall times, and the monotonic clock restarted at boot, so the wall clock is the only
/// bridge: if it is not plausible yet ([`WALL_FLOOR`]) how much of the window is left is
/// unknown and the window ends now (fail towards help); if it stepped back since, the window
/// still lasts no longer than its own length from now.
fn resumed_window(
    until: Option<Timestamp>,
    raised_at: Timestamp,
    now: Timestamp,
) -> Option<Timestamp> {
    let until = until?;
    if now < WALL_FLOOR {
        return None;
    }
    Some(until.min(now + until.since(raised_at)))
}

/// Opens the journal, restores the core from it, and returns both, ready for [`Unit::new`].
pub fn restore(
    settings: crate::core::Settings,
    journal: Journal,
    now: Timestamp,
) -> Result<(Core, Journal), RuntimeError> {
    let mut recovered = journal.recover()?;
    for r in &mut recovered {
        r.window_until = resumed_window(r.window_until, r.alarm.raised_at, now);
    }
    let mut core = Core::new(settings, now, journal.next_id()?);
    if !recovered.is_empty() {
        tracing::warn!(
            open_alarms = recovered.len(),
            "resuming unacknowledged alarms from the journal"
        );
    }
    core.restore(now, recovered);
    Ok((core, journal))
}

/// When a pendant was last heard, or that it never was since the unit started: the core's
/// supervision clock starts at start-up, which is not a sign of life.
fn heard_text(now: Timestamp, d: &crate::core::DeviceStatus) -> String {
    if d.heard {
        format!(
            "last heard {} ago",
            crate::config::format_duration(Duration::from_secs(now.since(d.last_heard).as_secs()))
        )
    } else {
        "never heard since start".into()
    }
}
