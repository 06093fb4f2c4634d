//! The radio link the runtime talks to: a worker thread owns the transceiver, passes every
//! frame through the gate, answers pairing requests in an open window, sends acknowledgements
//! under the duty-cycle budget, samples the channel for jamming; the runtime gets
//! [`Input`]s asynchronously and hands back [`Output::AckPendant`] requests.
//!
//! The transceivers are blocking (SPI and GPIO reads, or a UDP socket with a timeout), so the
//! worker is a plain thread; the channels to the runtime are tokio's.

use std::collections::{HashMap, VecDeque};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::driver::{Transceiver, Waker};
use super::duty::{airtime, DutyCycle, Priority, BIT_RATE};
use super::frame::{Frame, FrameType};
use super::gate::{FrameGate, Rejection, RejectionCounts, Verdict};
use super::pairing::{PairingCode, PairingOutcome, PairingRefusal, PairingWindow};
use super::store::PendantStore;
use super::supervision::{JammingDetector, RangeStats};
use super::RadioError;
use crate::config::{Band, Pendant, Radio};
use crate::core::{DeviceId, Input, Output, Timestamp};
use crate::sync::lock;

/// How long one receive call may block before the worker looks at its mailbox, for a
/// transceiver that cannot be woken.
const POLL: Duration = Duration::from_millis(50);
/// The longest receive wait of a transceiver that is woken for its mail and knows when its
/// channel is quiet: nothing then needs the worker before a frame or a request arrives.
const IDLE_WAIT: Duration = Duration::from_secs(60);
/// How many recent help and fall frames are remembered, to give their acks priority.
const RECENT_ALARMS: usize = 64;
/// How many times a minute a pendant's repeat of one frame is acknowledged again. A genuine
/// pendant retransmits a few times until it hears the ack; an attacker replaying a recorded
/// frame must not turn each replay into airtime of the base's hourly budget.
const REACKS_PER_MINUTE: u32 = 3;
/// How often refused frames are summarised in the log, at most.
const REFUSALS_EVERY: Duration = Duration::from_secs(60);
/// How long the transceiver may keep failing (SPI not answering, RSSI not readable) before
/// the link stops, so the runtime reports a radio fault and opens it again.
const FAILING_FOR: Duration = Duration::from_secs(10);
/// How often the channel RSSI is sampled for jamming detection.
const RSSI_EVERY: Duration = Duration::from_millis(250);

/// Link settings, from the `[radio]` configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// Band: decides the duty-cycle budget.
    pub band: Band,
    /// Jamming threshold, dBm.
    pub jamming_rssi_dbm: i16,
    /// How long carrier must persist to be jamming.
    pub jamming_after: Duration,
    /// Weakest signal a pairing request may be heard at, dBm (close range only).
    pub pairing_min_rssi: i16,
}

impl From<&Radio> for LinkConfig {
    fn from(r: &Radio) -> LinkConfig {
        LinkConfig {
            band: r.band,
            jamming_rssi_dbm: r.jamming_rssi_dbm,
            jamming_after: r.jamming_after,
            pairing_min_rssi: r.pairing_min_rssi,
        }
    }
}

/// What happened in a pairing window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PairingReport {
    /// A pendant revealed its key: the installer compares this code with the pendant's.
    Code {
        /// The pendant.
        device: DeviceId,
        /// The code it shows.
        code: PairingCode,
    },
    /// A pendant was paired and stored.
    Paired(DeviceId),
    /// A request was refused; the message is for the installer.
    Refused {
        /// Who asked, if known.
        device: Option<DeviceId>,
        /// Why.
        message: String,
    },
    /// The window closed.
    Closed,
}

/// Live figures of the link, for `vigil range-test` and `vigil status`.
#[derive(Clone, Debug, Default)]
pub struct LinkStatus {
    /// Per-pendant signal and packet statistics.
    pub range: RangeStats,
    /// Frames refused, by reason.
    pub rejections: RejectionCounts,
    /// Acknowledgements transmitted.
    pub acks_sent: u64,
    /// Acknowledgements not sent because the duty-cycle budget was spent.
    pub acks_over_budget: u64,
    /// The base's airtime in the last hour.
    pub airtime_last_hour: Duration,
    /// Whether jamming is currently reported.
    pub jamming: bool,
    /// Last channel RSSI sample, dBm.
    pub channel_rssi_dbm: Option<i16>,
    /// Transceiver errors since start.
    pub transceiver_errors: u64,
    /// Repeats of an acknowledged frame not acknowledged again (over the per-minute cap).
    pub reacks_withheld: u64,
}

enum Control {
    Ack {
        device: DeviceId,
        counter: u32,
    },
    HelpComing {
        device: DeviceId,
        counter: u32,
    },
    OpenPairing {
        length: Duration,
        replace: bool,
        reports: mpsc::UnboundedSender<PairingReport>,
    },
    ConfirmPairing {
        code: PairingCode,
        reply: oneshot::Sender<Result<DeviceId, PairingRefusal>>,
    },
    Stop,
}

/// The worker's mailbox: each request also ends the transceiver's receive wait, if it can be.
#[derive(Clone)]
struct Mailbox {
    tx: std_mpsc::Sender<Control>,
    wake: Option<Waker>,
}

impl Mailbox {
    fn send(&self, c: Control) -> Result<(), std_mpsc::SendError<Control>> {
        self.tx.send(c)?;
        if let Some(wake) = &self.wake {
            wake();
        }
        Ok(())
    }
}

/// A cloneable handle for acknowledgements and figures, for tasks other than the one that
/// receives.
#[derive(Clone)]
pub struct RadioHandle {
    control: Mailbox,
    status: Arc<Mutex<LinkStatus>>,
}

impl RadioHandle {
    /// Asks for an acknowledgement of `counter` to `device` (the core's `AckPendant`).
    pub fn ack(&self, device: DeviceId, counter: u32) -> Result<(), RadioError> {
        self.control
            .send(Control::Ack { device, counter })
            .map_err(|_| RadioError::Stopped)
    }

    /// Tells a pendant that a receiving centre has the alarm of its frame `counter`.
    pub fn help_coming(&self, device: DeviceId, counter: u32) -> Result<(), RadioError> {
        self.control
            .send(Control::HelpComing { device, counter })
            .map_err(|_| RadioError::Stopped)
    }

    /// A snapshot of the link's figures.
    pub fn status(&self) -> LinkStatus {
        lock(&self.status).clone()
    }

    /// Opens a pairing window of `length` (at most [`super::pairing::MAX_WINDOW`]); `replace`
    /// lets an id that already has a key pair again. Reports come on the returned channel.
    pub fn open_pairing(
        &self,
        length: Duration,
        replace: bool,
    ) -> Result<mpsc::UnboundedReceiver<PairingReport>, RadioError> {
        let (reports, rx) = mpsc::unbounded_channel();
        self.control
            .send(Control::OpenPairing {
                length,
                replace,
                reports,
            })
            .map_err(|_| RadioError::Stopped)?;
        Ok(rx)
    }

    /// The installer confirms the code the pendant shows: the pendant is stored and told.
    pub async fn confirm_pairing(&self, code: PairingCode) -> Result<DeviceId, PairingRefusal> {
        let (reply, rx) = oneshot::channel();
        self.control
            .send(Control::ConfirmPairing { code, reply })
            .map_err(|_| PairingRefusal::RadioStopped)?;
        rx.await.unwrap_or(Err(PairingRefusal::RadioStopped))
    }
}

/// The runtime's handle on the radio.
pub struct RadioLink {
    inputs: mpsc::Receiver<Input>,
    handle: RadioHandle,
    worker: Option<JoinHandle<Result<(), RadioError>>>,
}

impl RadioLink {
    /// Starts the link on `transceiver`, trusting the pendants with keys in `pendants` and
    /// those paired earlier in `store`.
    pub fn start<T, S>(
        transceiver: T,
        store: S,
        pendants: &[Pendant],
        config: LinkConfig,
    ) -> Result<RadioLink, RadioError>
    where
        T: Transceiver + 'static,
        S: PendantStore + Send + 'static,
    {
        let gate = FrameGate::new(store, pendants)?;
        // What was acknowledged before a restart may be acknowledged again.
        let acked = gate
            .pendants()
            .filter_map(|id| gate.stored_counter(id).map(|c| (id, c)))
            .collect();
        let (input_tx, inputs) = mpsc::channel(64);
        let (control, control_rx) = std_mpsc::channel();
        let wake = transceiver.waker();
        let event_driven = wake.is_some();
        let control = Mailbox { tx: control, wake };
        let status = Arc::new(Mutex::new(LinkStatus::default()));
        let mut worker = Worker {
            transceiver,
            gate,
            duty: DutyCycle::for_band(config.band),
            jamming: JammingDetector::new(config.jamming_rssi_dbm, config.jamming_after),
            pairing: PairingWindow::new(),
            pairing_min_rssi: config.pairing_min_rssi,
            pairing_reports: None,
            acked,
            recent_alarms: VecDeque::with_capacity(RECENT_ALARMS),
            stopping: false,
            failing_since: None,
            reacks: HashMap::new(),
            refusals_logged: None,
            event_driven,
            inputs: input_tx,
            control: control_rx,
            status: status.clone(),
            epoch: Instant::now(),
        };
        let worker = std::thread::Builder::new()
            .name("radio".into())
            .spawn(move || worker.run())
            .map_err(|e| RadioError::io("starting the radio thread", e))?;
        Ok(RadioLink {
            inputs,
            handle: RadioHandle { control, status },
            worker: Some(worker),
        })
    }

    /// A handle that acknowledges and reports while another task receives.
    pub fn handle(&self) -> RadioHandle {
        self.handle.clone()
    }

    /// The next authenticated event or jamming change; `None` once the link has stopped.
    pub async fn recv(&mut self) -> Option<Input> {
        self.inputs.recv().await
    }

    /// Asks for an acknowledgement of `counter` to `device` (the core's `AckPendant`).
    pub fn ack(&self, device: DeviceId, counter: u32) -> Result<(), RadioError> {
        self.handle.ack(device, counter)
    }

    /// Tells a pendant that a receiving centre has the alarm of its frame `counter`.
    pub fn help_coming(&self, device: DeviceId, counter: u32) -> Result<(), RadioError> {
        self.handle.help_coming(device, counter)
    }

    /// Carries out `output` if it is for the radio; true if it was.
    pub fn handle_output(&self, output: &Output) -> Result<bool, RadioError> {
        match output {
            Output::AckPendant { device, counter } => self.ack(*device, *counter).map(|()| true),
            Output::TellPendantHelpComing { device, counter } => {
                self.help_coming(*device, *counter).map(|()| true)
            }
            _ => Ok(false),
        }
    }

    /// Opens a pairing window of `length`; what happens in it comes on the returned channel,
    /// ending with [`PairingReport::Closed`].
    pub fn open_pairing(
        &self,
        length: Duration,
        replace: bool,
    ) -> Result<mpsc::UnboundedReceiver<PairingReport>, RadioError> {
        self.handle.open_pairing(length, replace)
    }

    /// A snapshot of the link's figures.
    pub fn status(&self) -> LinkStatus {
        self.handle.status()
    }

    /// Stops the worker and waits for it; returns the error that stopped it, if any.
    pub fn stop(mut self) -> Result<(), RadioError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), RadioError> {
        let _ = self.handle.control.send(Control::Stop);
        match self.worker.take() {
            Some(w) => w
                .join()
                .map_err(|_| RadioError::Chip("the radio thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for RadioLink {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

struct Worker<T, S: PendantStore> {
    transceiver: T,
    gate: FrameGate<S>,
    duty: DutyCycle,
    jamming: JammingDetector,
    pairing: PairingWindow,
    pairing_min_rssi: i16,
    pairing_reports: Option<mpsc::UnboundedSender<PairingReport>>,
    acked: HashMap<DeviceId, u32>,
    recent_alarms: VecDeque<(DeviceId, u32)>,
    stopping: bool,
    /// When the transceiver began failing without a success since.
    failing_since: Option<Instant>,
    /// Per pendant: the frame last acknowledged again, when its minute began and how many
    /// acknowledgements of repeats it drew in it.
    reacks: HashMap<DeviceId, (u32, Instant, u32)>,
    /// When refused frames were last summarised in the log, and the counts then.
    refusals_logged: Option<(Instant, RejectionCounts)>,
    /// Whether the transceiver's receive wait ends when mail arrives.
    event_driven: bool,
    inputs: mpsc::Sender<Input>,
    control: std_mpsc::Receiver<Control>,
    status: Arc<Mutex<LinkStatus>>,
    /// The start of the link's own time line, which is monotonic and never the wall clock:
    /// the duty-cycle budget, jamming windows and pairing windows only measure durations on
    /// it, so a step of the wall clock (NTP at boot on a Pi with no real-time clock) neither
    /// withholds acknowledgements for an hour nor cuts a pairing window.
    epoch: Instant,
}

/// Where the link's time line starts: a day in, so windows reaching back from its first
/// moments never go below zero.
const LINE_START: Timestamp = Timestamp::from_secs(86_400);

impl<T: Transceiver, S: PendantStore> Worker<T, S> {
    /// Now on the link's monotonic time line.
    fn now(&self) -> Timestamp {
        LINE_START + self.epoch.elapsed()
    }

    fn run(&mut self) -> Result<(), RadioError> {
        let mut last_sample: Option<Instant> = None;
        loop {
            if self.drain_control() {
                return Ok(());
            }
            let since_sample = last_sample.map_or(RSSI_EVERY, |t| t.elapsed());
            let wait = if !self.event_driven || self.pairing_reports.is_some() {
                POLL
            } else if self.needs_samples() {
                RSSI_EVERY.saturating_sub(since_sample)
            } else {
                IDLE_WAIT
            };
            match self.transceiver.receive(wait) {
                Ok(Some(r)) => {
                    self.failing_since = None;
                    self.frame(&r.bytes, r.rssi_dbm)?
                }
                Ok(None) => self.failing_since = None,
                Err(e) => self.transceiver_error(e)?,
            }
            // The first sample always, so the status has a channel reading.
            let due = last_sample.is_none_or(|t| t.elapsed() >= RSSI_EVERY);
            if due && (last_sample.is_none() || self.needs_samples()) {
                last_sample = Some(Instant::now());
                match self.transceiver.channel_rssi() {
                    Ok(rssi) => {
                        self.failing_since = None;
                        lock(&self.status).channel_rssi_dbm = Some(rssi);
                        if let Some(active) = self.jamming.sample(self.now(), rssi) {
                            lock(&self.status).jamming = active;
                            self.raise(Input::Jamming { active })?;
                        }
                    }
                    Err(e) => self.transceiver_error(e)?,
                }
            }
            if self.refusals_logged.is_some() {
                self.summarise_refusals();
            }
            if self.pairing_reports.is_some() && !self.pairing.is_open(self.now()) {
                self.pairing.close();
                if let Some(r) = self.pairing_reports.take() {
                    let _ = r.send(PairingReport::Closed);
                }
            }
        }
    }

    /// Whether the channel must be sampled for jamming: always, unless the transceiver knows
    /// it is quiet and the detector has nothing pending.
    fn needs_samples(&mut self) -> bool {
        !(self.transceiver.channel_quiet() && self.jamming.settled())
    }

    /// Carries out what the runtime asked for; true when it asked to stop.
    fn drain_control(&mut self) -> bool {
        loop {
            match self.control.try_recv() {
                Ok(Control::Ack { device, counter }) => self.ack(device, counter, false),
                Ok(Control::HelpComing { device, counter }) => self.help_coming(device, counter),
                Ok(Control::OpenPairing {
                    length,
                    replace,
                    reports,
                }) => {
                    self.pairing
                        .open(self.now(), length, replace, self.pairing_min_rssi);
                    self.pairing_reports = Some(reports);
                }
                Ok(Control::ConfirmPairing { code, reply }) => {
                    let _ = reply.send(self.confirm_pairing(code));
                }
                Ok(Control::Stop) | Err(std_mpsc::TryRecvError::Disconnected) => {
                    self.stopping = true;
                    return true;
                }
                Err(std_mpsc::TryRecvError::Empty) => return self.stopping,
            }
        }
    }

    /// Counts a transceiver error; stops the link with it once the transceiver has failed
    /// for [`FAILING_FOR`] without a success, so the runtime reports a radio fault.
    fn transceiver_error(&mut self, e: RadioError) -> Result<(), RadioError> {
        error!(error = %e, "transceiver error");
        lock(&self.status).transceiver_errors += 1;
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= FAILING_FOR {
            return Err(e);
        }
        // Do not spin on a broken bus.
        std::thread::sleep(Duration::from_millis(200));
        Ok(())
    }

    fn raise(&mut self, input: Input) -> Result<(), RadioError> {
        self.inputs
            .blocking_send(input)
            .map_err(|_| RadioError::Stopped)
    }

    fn frame(&mut self, bytes: &[u8], rssi: Option<i16>) -> Result<(), RadioError> {
        let now = self.now();
        if let Ok(f) = Frame::new_checked(bytes) {
            if matches!(
                f.frame_type(),
                FrameType::PairRequest | FrameType::PairReveal
            ) {
                // A window opened while this frame was on its way must count.
                self.drain_control();
                self.pairing_frame(self.now(), bytes, rssi);
                return Ok(());
            }
        }
        let verdict = self.gate.check(bytes, rssi);
        let mut status = lock(&self.status);
        status.rejections = self.gate.rejections();
        match verdict {
            Verdict::Fresh { event, detail } => {
                if detail.is_alarm() {
                    if self.recent_alarms.len() == RECENT_ALARMS {
                        self.recent_alarms.pop_front();
                    }
                    self.recent_alarms.push_back((event.device, event.counter));
                }
                self.jamming.valid_frame(now);
                let gap = status.range.accepted(event.device, event.counter, rssi);
                if gap > 0 {
                    // Frames the pendant sent that never arrived: lost or jammed. A lost alarm
                    // among them is raised from the pendant's next heartbeat.
                    warn!(pendant = %event.device, counter = event.counter, missed = gap,
                        "counter jumped: frames from this pendant were not heard");
                }
                drop(status);
                self.raise(Input::Radio(event))?;
            }
            Verdict::Retransmission { device, counter } => {
                status.range.retransmission(device, rssi);
                drop(status);
                // Not a sign of a working channel: an attacker replaying a recorded frame
                // under a carrier sends exactly this, to reset the jamming detector.
                if self.acked.get(&device) == Some(&counter) && self.may_reack(device, counter) {
                    self.ack(device, counter, true);
                }
            }
            Verdict::Rejected { reason, device } => {
                if let (Some(d), Rejection::AuthenticationFailed | Rejection::Replayed) =
                    (device, reason)
                {
                    status.range.rejected(d);
                }
                drop(status);
                self.summarise_refusals();
            }
        }
        Ok(())
    }

    /// Logs the frames refused since the last summary, by reason, at most once every
    /// [`REFUSALS_EVERY`]; the first refusal is logged at once.
    fn summarise_refusals(&mut self) {
        let counts = self.gate.rejections();
        let due = self
            .refusals_logged
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= REFUSALS_EVERY);
        if !due {
            return;
        }
        let new = match &self.refusals_logged {
            Some((_, then)) => counts.since(then),
            None => counts,
        };
        if new.total() > 0 {
            warn!(
                refused = new.total(),
                reasons = %new,
                "radio frames refused (summary, at most once a minute)"
            );
            self.refusals_logged = Some((Instant::now(), counts));
        }
    }

    /// Whether a repeat of `counter` from `device` may be acknowledged again: at most
    /// [`REACKS_PER_MINUTE`] times a minute per pendant.
    fn may_reack(&mut self, device: DeviceId, counter: u32) -> bool {
        let now = Instant::now();
        let entry = self.reacks.entry(device).or_insert((counter, now, 0));
        if entry.0 != counter || now.duration_since(entry.1) >= Duration::from_secs(60) {
            *entry = (counter, now, 0);
        }
        if entry.2 >= REACKS_PER_MINUTE {
            lock(&self.status).reacks_withheld += 1;
            return false;
        }
        entry.2 += 1;
        true
    }

    fn pairing_frame(&mut self, now: Timestamp, bytes: &[u8], rssi: Option<i16>) {
        let gate = &self.gate;
        let outcome = self
            .pairing
            .frame(now, bytes, rssi, |d| gate.cipher(d).is_some());
        let report = match outcome {
            PairingOutcome::Send(frame) => {
                self.transmit(frame.as_bytes(), Priority::Routine);
                None
            }
            PairingOutcome::Code { device, code } => Some(PairingReport::Code { device, code }),
            PairingOutcome::Refused { device, message } => {
                Some(PairingReport::Refused { device, message })
            }
            PairingOutcome::Quiet => None,
        };
        self.report_pairing(report);
    }

    fn report_pairing(&mut self, report: Option<PairingReport>) {
        if let (Some(report), Some(tx)) = (report, &self.pairing_reports) {
            let _ = tx.send(report);
        }
    }

    /// The installer's code: stores the pendant and its key, then tells the pendant.
    fn confirm_pairing(&mut self, code: PairingCode) -> Result<DeviceId, PairingRefusal> {
        let c = self.pairing.confirm(self.now(), code)?;
        if let Err(e) = self.gate.add_paired(c.device, &c.key) {
            self.pairing.close();
            return Err(PairingRefusal::NotStored {
                device: c.device,
                reason: e.to_string(),
            });
        }
        self.transmit(c.done.as_bytes(), Priority::Routine);
        self.report_pairing(Some(PairingReport::Paired(c.device)));
        Ok(c.device)
    }

    fn ack(&mut self, device: DeviceId, counter: u32, repeat: bool) {
        let Some(cipher) = self.gate.cipher(device) else {
            warn!(pendant = %device, counter, "ack asked for an unknown pendant");
            return;
        };
        let frame = cipher.seal_ack(device, counter);
        // The core acknowledges only what is in its journal: the counter may be stored now.
        self.gate.acknowledged(device, counter);
        // The first answer to a help or fall may use the reserve; everything else may not,
        // repeats of an answered alarm included (a replayed frame looks just like one).
        let priority = if !repeat && self.recent_alarms.contains(&(device, counter)) {
            Priority::Alarm
        } else {
            Priority::Routine
        };
        self.acked.insert(device, counter);
        if self.transmit(frame.as_bytes(), priority) {
            lock(&self.status).acks_sent += 1;
            info!(pendant = %device, counter, repeat, "acknowledged");
        } else {
            lock(&self.status).acks_over_budget += 1;
        }
    }

    /// Tells a pendant that its alarm reached a receiving centre. One frame per acknowledged
    /// alarm, so it may use the alarm reserve of the duty-cycle budget.
    fn help_coming(&mut self, device: DeviceId, counter: u32) {
        let Some(cipher) = self.gate.cipher(device) else {
            warn!(pendant = %device, counter, "\"help is coming\" for an unknown pendant");
            return;
        };
        let frame = cipher.seal_help_coming(device, counter);
        if self.transmit(frame.as_bytes(), Priority::Alarm) {
            info!(pendant = %device, counter, "told the pendant help is coming");
        }
    }

    /// Transmits if the duty-cycle budget allows; false if it did not go out.
    fn transmit(&mut self, bytes: &[u8], priority: Priority) -> bool {
        let now = self.now();
        if !self
            .duty
            .try_spend(now, airtime(bytes.len(), BIT_RATE), priority)
        {
            warn!(?priority, "duty-cycle budget spent: transmission withheld");
            return false;
        }
        lock(&self.status).airtime_last_hour = self.duty.used(now);
        match self.transceiver.transmit(bytes) {
            Ok(()) => true,
            Err(e) => {
                // Listening decides whether the transceiver has failed: a frame may still
                // come in while the transmitter errs.
                let _ = self.transceiver_error(e);
                false
            }
        }
    }
}
