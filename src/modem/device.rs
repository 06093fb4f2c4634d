//! The modem as the runtime and the routes see it: initialised, watched, recovered.
//!
//! [`Modem::start`] spawns a supervisor task that runs the init sequence, follows registration
//! URCs, reads incoming SMS (`+CMTI` → `AT+CMGR` → `AT+CMGD`), answers calls from configured
//! numbers while the core's auto-answer window is open, checks health periodically
//! (`AT+CSQ`, `AT+CREG?`), and recovers a module that stops answering or reboots: first
//! `AT+CFUN=1,1`, then the power key, then the init sequence again. While it recovers,
//! routes fail at once with the reason, so the core moves the alarm to its next route.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch, OwnedMutexGuard};
use tokio::time::Instant;

use super::at::{self, CallState, FinalResult, RegStatus, Urc};
use super::engine::{AtClient, Command};
use super::number::{DialNumber, NumberError};
use super::power::{self, PowerKey};
use super::profile::{Capabilities, Profile};
use super::{auth, pdu, ModemError};
use crate::config;
use crate::core::Input;

/// Timeouts and pacing. [`Timing::real`] for hardware, [`Timing::fast`] for the simulator.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Basic commands (`AT`, `AT+CSQ`…).
    pub command: Duration,
    /// Commands that wait on the network (`ATA`, `AT+VTS`, `ATD`).
    pub network: Duration,
    /// An SMS submission (`AT+CMGS`): the SIM7600 and EC25 manuals give 120 s as its maximum
    /// response time; a part given up on earlier may still go out, and the next is lost.
    pub sms_submit: Duration,
    /// From reset or power-on to `RDY`.
    pub boot: Duration,
    /// How long a dialled call may ring before we give up.
    pub answer: Duration,
    /// `AT+CLCC` polling interval while a call is set up.
    pub poll: Duration,
    /// From the first announcement to the accept key.
    pub accept: Duration,
    /// Contact ID: wait for the receiver's handshake after answer.
    pub handshake: Duration,
    /// Contact ID: wait for the kissoff after a message (DC-05: 1.25 s).
    pub kissoff: Duration,
    /// Contact ID: pause after the handshake before the first digit (DC-05: 250–300 ms).
    pub pre_send: Duration,
    /// Health check interval.
    pub health: Duration,
    /// Power key hold for one toggle.
    pub key_hold: Duration,
    /// Pause between the power-off and power-on pulses.
    pub key_gap: Duration,
    /// Pause before trying the init sequence again after a SIM or network failure.
    pub retry: Duration,
}

impl Timing {
    /// For a real SIM7600 / EC25 module.
    pub fn real() -> Timing {
        Timing {
            command: Duration::from_secs(3),
            network: Duration::from_secs(60),
            sms_submit: Duration::from_secs(120),
            boot: Duration::from_secs(30),
            answer: Duration::from_secs(45),
            poll: Duration::from_millis(500),
            accept: Duration::from_secs(60),
            handshake: Duration::from_secs(10),
            kissoff: Duration::from_millis(1250),
            pre_send: Duration::from_millis(250),
            health: Duration::from_secs(60),
            key_hold: power::PULSE,
            key_gap: Duration::from_secs(3),
            retry: Duration::from_secs(30),
        }
    }

    /// Scaled down for the simulated module and network.
    pub fn fast() -> Timing {
        Timing {
            command: Duration::from_millis(800),
            network: Duration::from_millis(2000),
            sms_submit: Duration::from_millis(2000),
            boot: Duration::from_millis(1000),
            answer: Duration::from_millis(800),
            poll: Duration::from_millis(20),
            accept: Duration::from_millis(600),
            handshake: Duration::from_millis(400),
            kissoff: Duration::from_millis(300),
            pre_send: Duration::from_millis(5),
            health: Duration::from_millis(300),
            key_hold: Duration::from_millis(10),
            key_gap: Duration::from_millis(20),
            retry: Duration::from_millis(200),
        }
    }
}

/// What the modem needs from the configuration.
#[derive(Clone, Default)]
pub struct Settings {
    /// SIM PIN. Never logged.
    pub sim_pin: Option<config::Secret>,
    /// Numbers allowed to send remote commands and to be auto-answered, E.164.
    pub allowed_numbers: Vec<String>,
    /// Secret authenticating remote commands. Never logged.
    pub remote_secret: Option<config::Secret>,
    /// The module's voice port (PCM of a call), if it has one wired.
    pub voice_port: Option<String>,
    /// The module's own call audio settings, if the installer gave them.
    pub call_audio: Option<config::ModuleCallAudio>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("sim_pin", &self.sim_pin.as_ref().map(|_| "<secret>"))
            .field("allowed_numbers", &self.allowed_numbers)
            .field(
                "remote_secret",
                &self.remote_secret.as_ref().map(|_| "<secret>"),
            )
            .field("voice_port", &self.voice_port)
            .field("call_audio", &self.call_audio)
            .finish()
    }
}

impl Settings {
    /// From the validated configuration.
    pub fn from_config(
        modem: &config::Modem,
        remote: &config::Remote,
        credentials: &BTreeMap<String, config::Credentials>,
    ) -> Settings {
        Settings {
            sim_pin: modem.sim_pin.clone(),
            allowed_numbers: remote.allowed_numbers.clone(),
            remote_secret: remote
                .credentials
                .as_ref()
                .and_then(|n| credentials.get(n))
                .map(|c| c.secret.clone()),
            voice_port: modem
                .voice_port
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            call_audio: modem.call_audio.clone(),
        }
    }
}

/// Where the modem is in its lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Running the init sequence.
    Starting,
    /// Initialised and answering.
    Ready,
    /// Being reset or power-cycled.
    Recovering(String),
    /// Initialisation failed (no SIM, wrong PIN…); retried periodically.
    Failed(String),
}

/// A command received by SMS from a configured number with a valid code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteCommand {
    /// `STATUS`: report the unit's state (the runtime replies with [`Modem::send_sms`]).
    Status,
    /// `TEST`: send a test report.
    Test,
    /// `SILENCE`: silence repeated technical warnings.
    Silence,
}

impl RemoteCommand {
    fn parse(verb: &str) -> Option<RemoteCommand> {
        match verb.to_ascii_uppercase().as_str() {
            "STATUS" => Some(RemoteCommand::Status),
            "TEST" => Some(RemoteCommand::Test),
            "SILENCE" => Some(RemoteCommand::Silence),
            _ => None,
        }
    }

    /// The verb as sent by SMS.
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteCommand::Status => "STATUS",
            RemoteCommand::Test => "TEST",
            RemoteCommand::Silence => "SILENCE",
        }
    }
}

/// What the modem tells the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModemEvent {
    /// Initialised (again) and answering.
    Ready,
    /// Not usable: init failed, or it stopped answering or rebooted; recovery follows.
    Down {
        /// Why.
        reason: String,
    },
    /// Registration changed.
    Registration {
        /// The new status.
        status: RegStatus,
    },
    /// An authenticated remote command.
    Remote {
        /// Sender.
        from: String,
        /// What it asks.
        command: RemoteCommand,
    },
    /// An SMS that was not an acknowledgement nor a valid command (logged and ignored).
    Ignored {
        /// Sender.
        from: String,
        /// Why it was ignored.
        why: String,
    },
    /// A call ended (`NO CARRIER`): the far end hung up or the network dropped it.
    CallEnded {
        /// Why.
        reason: String,
    },
    /// A call came in.
    IncomingCall {
        /// Caller id as presented.
        from: String,
        /// Whether it was answered automatically.
        answered: bool,
    },
}

impl ModemEvent {
    /// The core input this event stands for, if any.
    pub fn to_input(&self) -> Option<Input> {
        match self {
            ModemEvent::Registration { status } => Some(Input::Network {
                registered: status.is_registered(),
            }),
            ModemEvent::Remote {
                command: RemoteCommand::Test,
                ..
            } => Some(Input::TestRequest),
            ModemEvent::Remote {
                command: RemoteCommand::Silence,
                ..
            } => Some(Input::SilenceWarnings),
            _ => None,
        }
    }
}

/// Where the last accepted remote-command nonce is kept. Remote commands must carry a nonce
/// above it; keeping it durably (the journal does, on the unit) means a restart does not let
/// an overheard command be replayed.
pub trait NonceStore: Send {
    /// The last accepted nonce, 0 if none was ever accepted.
    fn last_nonce(&self) -> Result<u64, String>;
    /// Records `nonce` as the last accepted one; returns only once it is kept.
    fn save_nonce(&mut self, nonce: u64) -> Result<(), String>;
}

/// A [`NonceStore`] in memory. Clones share the nonce, so a second modem over a clone sees
/// what the first accepted, as a restarted unit sees its journal.
#[derive(Clone, Debug, Default)]
pub struct MemoryNonce(Arc<Mutex<u64>>);

impl NonceStore for MemoryNonce {
    fn last_nonce(&self) -> Result<u64, String> {
        self.0
            .lock()
            .map(|n| *n)
            .map_err(|_| "nonce lock poisoned".to_string())
    }

    fn save_nonce(&mut self, nonce: u64) -> Result<(), String> {
        let mut n = self
            .0
            .lock()
            .map_err(|_| "nonce lock poisoned".to_string())?;
        *n = nonce;
        Ok(())
    }
}

/// A [`NonceStore`] that cannot be used (the journal did not open): every remote command is
/// refused with the reason, rather than accepted without replay protection.
#[derive(Clone, Debug)]
pub struct NoNonceStore(pub String);

impl NonceStore for NoNonceStore {
    fn last_nonce(&self) -> Result<u64, String> {
        Err(self.0.clone())
    }

    fn save_nonce(&mut self, _nonce: u64) -> Result<(), String> {
        Err(self.0.clone())
    }
}

/// An SMS received by the modem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingSms {
    /// Sender.
    pub from: String,
    /// Text.
    pub text: String,
}

/// Signal, registration and SIM, from `AT+CSQ`, `AT+CREG?`, `AT+CPIN?`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// Received signal in dBm (TS 27.007 §8.5), None if unknown.
    pub signal_dbm: Option<i16>,
    /// Registration.
    pub registration: RegStatus,
    /// Whether the SIM is present and unlocked.
    pub sim_ready: bool,
}

struct Inner {
    at: AtClient,
    settings: Settings,
    timing: Timing,
    status: watch::Sender<Status>,
    events: broadcast::Sender<ModemEvent>,
    sms: broadcast::Sender<IncomingSms>,
    line: Arc<tokio::sync::Mutex<()>>,
    reg: Mutex<(RegStatus, RegStatus)>,
    auto_answer: Mutex<Option<Instant>>,
    recover: mpsc::UnboundedSender<String>,
    concat_ref: AtomicU8,
    nonces: Mutex<Box<dyn NonceStore>>,
    /// The SIM refused the configured PIN once: never try it again (3 tries lock to PUK).
    pin_refused: std::sync::atomic::AtomicBool,
    /// What the module proved it can do in a call, once init has run.
    caps: watch::Sender<Option<Capabilities>>,
}

/// Handle on the modem. Cheap to clone; all clones share one module.
#[derive(Clone)]
pub struct Modem {
    inner: Arc<Inner>,
}

/// Exclusive use of the voice line for one call; hangs the call up if dropped mid-call
/// (an aborted delivery never leaves a call open), unless [`CallLine::keep_open`] was called.
pub struct CallLine {
    modem: Modem,
    _guard: OwnedMutexGuard<()>,
    in_call: bool,
    /// Tones and digits heard while the call was being set up (a receiver's handshake can
    /// come before the poll that sees the call answered): the route reads them first.
    heard: Vec<Urc>,
}

impl CallLine {
    /// Tones and digits the far end sent while the call was being set up, oldest first.
    pub fn take_heard(&mut self) -> Vec<Urc> {
        std::mem::take(&mut self.heard)
    }

    /// Leaves the call up when this is dropped (Contact ID: the line stays open for speech).
    pub fn keep_open(mut self) {
        self.in_call = false;
    }

    /// Hangs up now.
    pub async fn hang_up(mut self) {
        self.in_call = false;
        self.modem.hang_up().await;
    }
}

impl Drop for CallLine {
    fn drop(&mut self) {
        if self.in_call {
            let m = self.modem.clone();
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                h.spawn(async move { m.hang_up().await });
            }
        }
    }
}

impl Modem {
    /// Opens the configured serial port, claims the power-key GPIO if configured, and starts.
    pub fn open(
        modem: &config::Modem,
        remote: &config::Remote,
        credentials: &BTreeMap<String, config::Credentials>,
    ) -> Result<Modem, ModemError> {
        Modem::open_with(modem, remote, credentials, Timing::real())
    }

    /// [`Modem::open`] with other timing (the demo pairs [`Timing::fast`] with the simulator).
    pub fn open_with(
        modem: &config::Modem,
        remote: &config::Remote,
        credentials: &BTreeMap<String, config::Credentials>,
        timing: Timing,
    ) -> Result<Modem, ModemError> {
        Modem::open_with_nonces(
            modem,
            remote,
            credentials,
            timing,
            Box::new(MemoryNonce::default()),
        )
    }

    /// [`Modem::open_with`], keeping the last remote-command nonce in `nonces` (the journal on
    /// the unit) so that it survives a restart.
    pub fn open_with_nonces(
        modem: &config::Modem,
        remote: &config::Remote,
        credentials: &BTreeMap<String, config::Credentials>,
        timing: Timing,
        nonces: Box<dyn NonceStore>,
    ) -> Result<Modem, ModemError> {
        let at = super::engine::open(&modem.port.to_string_lossy(), modem.baud)?;
        let key: Option<Box<dyn PowerKey>> = match modem.power_key_pin {
            Some(pin) => match power::GpioPowerKey::new(pin) {
                Ok(k) => Some(Box::new(k)),
                Err(e) => {
                    tracing::warn!(error = %e, "power key unavailable; only soft resets");
                    None
                }
            },
            None => None,
        };
        Ok(Modem::start_with_nonces(
            at,
            Settings::from_config(modem, remote, credentials),
            timing,
            key,
            nonces,
        ))
    }

    /// Starts the supervisor over an AT engine. Must run inside a tokio runtime.
    pub fn start(
        at: AtClient,
        settings: Settings,
        timing: Timing,
        power_key: Option<Box<dyn PowerKey>>,
    ) -> Modem {
        Modem::start_with_nonces(
            at,
            settings,
            timing,
            power_key,
            Box::new(MemoryNonce::default()),
        )
    }

    /// [`Modem::start`] with the last remote-command nonce kept in `nonces`.
    pub fn start_with_nonces(
        at: AtClient,
        settings: Settings,
        timing: Timing,
        power_key: Option<Box<dyn PowerKey>>,
        nonces: Box<dyn NonceStore>,
    ) -> Modem {
        let (recover, recover_rx) = mpsc::unbounded_channel();
        let (status, _) = watch::channel(Status::Starting);
        let m = Modem {
            inner: Arc::new(Inner {
                at,
                settings,
                timing,
                status,
                events: broadcast::channel(64).0,
                sms: broadcast::channel(64).0,
                line: Arc::new(tokio::sync::Mutex::new(())),
                reg: Mutex::new((RegStatus::Unknown, RegStatus::Unknown)),
                auto_answer: Mutex::new(None),
                recover,
                concat_ref: AtomicU8::new(1),
                nonces: Mutex::new(nonces),
                pin_refused: std::sync::atomic::AtomicBool::new(false),
                caps: watch::channel(None).0,
            }),
        };
        tokio::spawn(supervise(m.clone(), recover_rx, power_key));
        m
    }

    /// The AT engine, for commands outside this module's vocabulary.
    pub fn at(&self) -> &AtClient {
        &self.inner.at
    }

    /// Timing in use.
    pub fn timing(&self) -> Timing {
        self.inner.timing
    }

    /// Modem events from now on.
    pub fn events(&self) -> broadcast::Receiver<ModemEvent> {
        self.inner.events.subscribe()
    }

    /// SMS received from now on (acknowledgements included).
    pub fn incoming_sms(&self) -> broadcast::Receiver<IncomingSms> {
        self.inner.sms.subscribe()
    }

    /// The lifecycle status now.
    pub fn status(&self) -> Status {
        self.inner.status.borrow().clone()
    }

    /// The best of circuit-switched and EPS registration.
    pub fn registration(&self) -> RegStatus {
        let (cs, eps) = self
            .inner
            .reg
            .lock()
            .map(|g| *g)
            .unwrap_or((RegStatus::Unknown, RegStatus::Unknown));
        if cs.is_registered() {
            cs
        } else if eps.is_registered() {
            eps
        } else if cs == RegStatus::Denied || eps == RegStatus::Denied {
            RegStatus::Denied
        } else {
            cs
        }
    }

    /// Waits until the modem is ready and registered, or `timeout` passes.
    pub async fn wait_usable(&self, timeout: Duration) -> Result<(), String> {
        let mut rx = self.inner.status.subscribe();
        let mut events = self.events();
        let deadline = Instant::now() + timeout;
        loop {
            if self.usable().is_ok() {
                return Ok(());
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return self.usable() },
                _ = events.recv() => {}
                () = tokio::time::sleep_until(deadline) => return self.usable(),
            }
        }
    }

    /// Ok if calls and SMS can go now, or the reason they cannot.
    pub fn usable(&self) -> Result<(), String> {
        match self.status() {
            Status::Ready => {}
            Status::Starting => return Err("modem not ready: starting".into()),
            Status::Recovering(r) => return Err(format!("modem recovering: {r}")),
            Status::Failed(r) => return Err(format!("modem unusable: {r}")),
        }
        let reg = self.registration();
        if reg.is_registered() {
            Ok(())
        } else {
            Err(format!("no network: {}", reg.describe()))
        }
    }

    /// Tells the supervisor the modem misbehaved (a command timed out): it will recover it.
    pub fn report_fault(&self, reason: &str) {
        // Unusable from now on, so the next attempt fails over at once instead of queueing
        // behind a dead module.
        self.set_status(Status::Recovering(reason.to_string()));
        let _ = self.inner.recover.send(reason.to_string());
    }

    /// Answers calls from the configured numbers for `left` from now (the core's window,
    /// measured by the core's clock, so the modem reads no wall clock of its own).
    pub fn auto_answer_for(&self, left: Duration) {
        if let Ok(mut g) = self.inner.auto_answer.lock() {
            *g = Some(Instant::now() + left);
        }
    }

    fn set_status(&self, s: Status) {
        self.inner.status.send_replace(s);
    }

    fn emit(&self, e: ModemEvent) {
        let _ = self.inner.events.send(e);
    }

    /// Sends a basic command with the basic timeout.
    async fn cmd(&self, line: &str) -> Result<super::engine::Response, ModemError> {
        self.inner
            .at
            .send(Command::new(line, self.inner.timing.command))
            .await
    }

    /// Signal and registration now.
    pub async fn health(&self) -> Result<Health, ModemError> {
        let csq = self
            .inner
            .at
            .send(Command::new("AT+CSQ", self.inner.timing.command).expect("+CSQ:"))
            .await?;
        let signal_dbm = match csq.line("+CSQ:") {
            Some(l) => at::parse_csq(l)?,
            None => None,
        };
        let reg = self
            .inner
            .at
            .send(Command::new("AT+CREG?", self.inner.timing.command).expect("+CREG:"))
            .await?;
        let cs = reg
            .line("+CREG:")
            .map(at::parse_reg_response)
            .transpose()?
            .unwrap_or(RegStatus::Unknown);
        self.update_reg(Some(cs), None);
        let sim_ready = match self
            .inner
            .at
            .send(Command::new("AT+CPIN?", self.inner.timing.command).expect("+CPIN:"))
            .await
        {
            Ok(r) => r.line("+CPIN:").is_some_and(|l| l.contains("READY")),
            Err(ModemError::Rejected { .. }) => false,
            Err(e) => return Err(e),
        };
        Ok(Health {
            signal_dbm,
            registration: self.registration(),
            sim_ready,
        })
    }

    fn update_reg(&self, cs: Option<RegStatus>, eps: Option<RegStatus>) {
        let before = self.registration();
        if let Ok(mut g) = self.inner.reg.lock() {
            if let Some(cs) = cs {
                g.0 = cs;
            }
            if let Some(eps) = eps {
                g.1 = eps;
            }
        }
        let after = self.registration();
        if before != after {
            tracing::info!(registration = after.describe(), "network registration");
            self.emit(ModemEvent::Registration { status: after });
        }
    }

    /// Sends an SMS in PDU mode (GSM 7-bit or UCS-2, concatenated if long).
    /// Returns the message references of `+CMGS`: "sent", not "received".
    pub async fn send_sms(&self, to: &str, text: &str) -> Result<Vec<u8>, ModemError> {
        let reference = self.inner.concat_ref.fetch_add(1, Ordering::Relaxed);
        let pdus = pdu::encode_message(to, text, reference)?;
        self.cmd("AT+CMGF=0").await?;
        let mut mrs = Vec::new();
        for p in pdus {
            let r = self
                .inner
                .at
                .send(
                    Command::new(
                        format!("AT+CMGS={}", p.tpdu_len),
                        self.inner.timing.sms_submit,
                    )
                    .expect("+CMGS:")
                    .with_body(p.hex),
                )
                .await?;
            mrs.push(cmgs_reference(&r));
        }
        Ok(mrs)
    }

    /// Sends an SMS in text mode (`AT+CMGF=1`, `AT+CSCS="IRA"`): plain ASCII, one message.
    pub async fn send_sms_text(&self, to: &str, text: &str) -> Result<Vec<u8>, ModemError> {
        if !text.is_ascii() || text.contains(['\u{1a}', '\u{1b}']) || text.len() > pdu::MAX_SEPTETS
        {
            return Err(ModemError::Pdu(
                "text mode takes one message of plain ASCII; use PDU mode",
            ));
        }
        self.cmd("AT+CMGF=1").await?;
        let sent = async {
            self.cmd("AT+CSCS=\"IRA\"").await?;
            let r = self
                .inner
                .at
                .send(
                    Command::new(format!("AT+CMGS=\"{to}\""), self.inner.timing.sms_submit)
                        .expect("+CMGS:")
                        .with_body(text),
                )
                .await?;
            Ok::<_, ModemError>(vec![cmgs_reference(&r)])
        }
        .await;
        // Incoming messages are read in PDU mode.
        let back = self.cmd("AT+CMGF=0").await;
        let mrs = sent?;
        back?;
        Ok(mrs)
    }

    /// Takes the voice line (waits for a call in progress to end).
    pub async fn call_line(&self) -> CallLine {
        let guard = self.inner.line.clone().lock_owned().await;
        CallLine {
            modem: self.clone(),
            _guard: guard,
            in_call: false,
            heard: Vec::new(),
        }
    }

    /// Dials `number` for voice on `line` and waits until it is answered (`+CLCC` stat 0).
    /// `urcs` must be subscribed before the call so no progress code is missed.
    pub async fn dial(
        &self,
        line: &mut CallLine,
        number: &DialNumber,
        urcs: &mut broadcast::Receiver<Urc>,
    ) -> Result<(), String> {
        let t = self.inner.timing;
        line.in_call = true;
        if let Err(e) = self
            .inner
            .at
            .send(Command::new(format!("ATD{number};"), t.network).call_setup())
            .await
        {
            return Err(self.call_failure(e));
        }
        let deadline = Instant::now() + t.answer;
        let mut poll = tokio::time::interval(t.poll);
        loop {
            tokio::select! {
                u = urcs.recv() => match u {
                    Ok(Urc::Busy) => return Err("busy".into()),
                    Ok(Urc::NoAnswer) => return Err("no answer".into()),
                    Ok(Urc::NoCarrier) => return Err("no carrier (call failed)".into()),
                    Ok(Urc::Rdy) => return Err("modem restarted during the call".into()),
                    // The far end may speak before the poll sees the call answered.
                    Ok(u @ (Urc::Tone { .. } | Urc::Dtmf(_))) => line.heard.push(u),
                    _ => {}
                },
                _ = poll.tick() => {
                    let calls = match self.calls().await {
                        Ok(c) => c,
                        Err(e) => return Err(self.call_failure(e)),
                    };
                    let call = calls.into_iter().find(|c| !c.incoming && c.voice);
                    match call.map(|c| c.state) {
                        Some(CallState::Active) => return Ok(()),
                        Some(_) => {}
                        None => {
                            // Give a final code that raced the poll a moment to arrive.
                            if let Ok(Ok(u)) = tokio::time::timeout(t.poll, urcs.recv()).await {
                                match u {
                                    Urc::Busy => return Err("busy".into()),
                                    Urc::NoAnswer => return Err("no answer".into()),
                                    _ => {}
                                }
                            }
                            return Err("call ended before it was answered".into());
                        }
                    }
                },
                () = tokio::time::sleep_until(deadline) => {
                    return Err(format!("no answer within {} s", t.answer.as_secs_f32()));
                }
            }
        }
    }

    /// The words for a failed command, and recovery if the modem stopped answering.
    pub fn call_failure(&self, e: ModemError) -> String {
        if matches!(e, ModemError::Timeout { .. } | ModemError::EngineStopped) {
            self.report_fault(&e.to_string());
        }
        match &e {
            ModemError::Rejected { result, .. } => match at::explain(result) {
                Some(w) => format!("{e} ({w})"),
                None => e.to_string(),
            },
            _ => e.to_string(),
        }
    }

    /// Calls `number` for speech (the core's `Output::StartCall`, a centre's call-back
    /// request) and leaves the call up; it ends with [`ModemEvent::CallEnded`] or
    /// [`Modem::hang_up`].
    pub async fn start_call(&self, number: &DialNumber) -> Result<(), String> {
        let (line, _urcs) = self.place_call(number).await?;
        line.keep_open();
        Ok(())
    }

    /// Takes the call line and dials `number` until it answers, with a subscription to the
    /// module's unsolicited results from before the dial. On failure the call is hung up and
    /// the reason says why: the modem not usable, or `call to <number>: …`.
    pub async fn place_call(
        &self,
        number: &DialNumber,
    ) -> Result<(CallLine, broadcast::Receiver<Urc>), String> {
        self.usable()?;
        let mut line = self.call_line().await;
        self.end_open_call().await;
        let mut urcs = self.inner.at.subscribe();
        if let Err(r) = self.dial(&mut line, number, &mut urcs).await {
            line.hang_up().await;
            return Err(format!("call to {number}: {r}"));
        }
        Ok((line, urcs))
    }

    /// A call left open for speech (after a Contact ID kissoff, or a person's accept) would
    /// make the next `ATD` fail (`+CME ERROR: 3`): it is ended in order first, and the new call
    /// placed once the module lists no call.
    async fn end_open_call(&self) {
        let t = self.inner.timing;
        if !self.calls().await.is_ok_and(|c| !c.is_empty()) {
            return;
        }
        tracing::info!("a call left open for speech is ended before the next call");
        self.hang_up().await;
        let deadline = Instant::now() + t.command;
        while Instant::now() < deadline {
            match self.calls().await {
                Ok(c) if c.is_empty() => return,
                Ok(_) => tokio::time::sleep(t.poll.min(Duration::from_millis(100))).await,
                Err(_) => return,
            }
        }
    }

    /// The calls the module lists (`AT+CLCC`).
    async fn calls(&self) -> Result<Vec<at::CallEntry>, ModemError> {
        let r = self
            .inner
            .at
            .send(Command::new("AT+CLCC", self.inner.timing.command).expect("+CLCC:"))
            .await?;
        Ok(r.lines
            .iter()
            .filter_map(|l| at::parse_clcc(l).ok())
            .collect())
    }

    /// Hangs up any call (`ATH`).
    pub async fn hang_up(&self) {
        if let Err(e) = self.cmd("ATH").await {
            tracing::debug!(error = %e, "ATH failed");
        }
    }

    /// Starts streaming the call in progress on the module's voice port (SIMCom
    /// `AT+CPCMREG=1`): the port is opened first so no frame is missed. A stream left on by an
    /// earlier call (the unit stopped mid-call) is stopped and started again.
    pub async fn open_voice_port(&self) -> Result<super::voice_port::VoicePort, String> {
        let Some(path) = self.inner.settings.voice_port.as_deref() else {
            return Err("no modem.voice_port configured".into());
        };
        let port = super::voice_port::VoicePort::open(path)?;
        if self.cmd("AT+CPCMREG=1").await.is_err() {
            let _ = self.cmd("AT+CPCMREG=0").await;
            self.cmd("AT+CPCMREG=1")
                .await
                .map_err(|e| format!("the module would not stream the call (AT+CPCMREG=1): {e}"))?;
        }
        Ok(port)
    }

    /// Stops streaming the call (`AT+CPCMREG=0`, which SIMCom wants before the call ends) and
    /// closes the port; the module's own audio path carries the call again.
    pub async fn close_voice_port(&self, port: super::voice_port::VoicePort) {
        if let Err(e) = self.cmd("AT+CPCMREG=0").await {
            tracing::debug!(error = %e, "AT+CPCMREG=0 failed");
        }
        drop(port);
    }

    /// Carries the call in progress through the unit's speakerphone `audio` on the module's
    /// voice port (SIMCom with `modem.voice_port`, a module wired by USB audio): streaming
    /// starts, speech crosses both ways until `stop` says so or the module stops streaming,
    /// then streaming stops.
    pub async fn speak_in_call(
        &self,
        mut audio: Box<dyn crate::voice::call_port::CallAudioPort>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<super::voice_port::BridgeEnd, String> {
        let mut port = self.open_voice_port().await?;
        let end = super::voice_port::bridge(&mut port, audio.as_mut(), &mut stop).await;
        self.close_voice_port(port).await;
        Ok(end)
    }

    /// What the module proved it can do in a call (its profile, detection and speech), once
    /// the first init has run.
    pub fn capabilities(&self) -> Option<Capabilities> {
        *self.inner.caps.borrow()
    }

    /// Follows [`Modem::capabilities`]: it changes when an init learns something new.
    pub fn capabilities_watch(&self) -> watch::Receiver<Option<Capabilities>> {
        self.inner.caps.subscribe()
    }

    /// The first information line that answers `line`, without its `+XXX:` echo.
    async fn identification(&self, line: &str) -> String {
        let Ok(r) = self.cmd(line).await else {
            return String::new();
        };
        let prefix = format!("{}:", line.trim_start_matches("AT"));
        r.lines
            .iter()
            .map(|l| l.trim_start_matches(prefix.as_str()).trim())
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_string()
    }

    /// Recognises the module and turns on what its profile offers for calls: reports of
    /// DTMF and tones from the far end, and speech to the far end. What the module refuses is
    /// recorded, so the routes that need it are left out of the plan.
    async fn learn_capabilities(&self) {
        let manufacturer = self.identification("AT+CGMI").await;
        let model = self.identification("AT+CGMM").await;
        let profile = Profile::detect(&manufacturer, &model);
        let hears_dtmf = match profile.detection_command() {
            Some(c) => match self.cmd(c).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(error = %e, module = profile.name(), "no DTMF detection: voice and Contact ID routes cannot be acknowledged");
                    false
                }
            },
            None => false,
        };
        let speaks = match profile.speech_setup_command() {
            Some(c) => match self.cmd(c).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(error = %e, module = profile.name(), "speech cannot reach the far end");
                    false
                }
            },
            None => profile.speech_command("").is_some(),
        };
        // SIMCom's voice over USB, where the installer wired its port: the unit hears the
        // call itself.
        let pcm = match (&self.inner.settings.voice_port, profile) {
            (Some(port), Profile::Simcom) => match self.cmd("AT+CPCMREG=?").await {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(error = %e, port = %port, "the module refuses voice over USB: the Contact ID tones cannot be heard");
                    false
                }
            },
            (Some(port), _) => {
                tracing::warn!(port = %port, module = profile.name(), "modem.voice_port is set, but only SIMCom modules stream calls there; it is not used");
                false
            }
            (None, _) => false,
        };
        let call_audio = self.set_call_audio(profile).await;
        let caps = Capabilities {
            profile,
            hears_dtmf,
            hears_tones: (hears_dtmf && profile.hears_single_tones()) || pcm,
            pcm,
            speaks,
            call_audio,
        };
        tracing::info!(
            manufacturer = %manufacturer,
            model = %model,
            module = profile.name(),
            hears_dtmf,
            hears_tones = caps.hears_tones,
            pcm,
            speaks,
            "module recognised"
        );
        self.inner.caps.send_if_modified(|c| {
            let changed = *c != Some(caps);
            *c = Some(caps);
            changed
        });
    }

    /// Sets the module's own call audio from the installer's settings, at every start (the
    /// module forgets them when it restarts): the loudspeaker route with the module's
    /// speakerphone echo canceller, the volume and microphone gain as shares of the ranges the
    /// module itself reports (`=?`, TS 27.007 §4.1), then the installer's tuning. `None` when
    /// nothing is configured; `Some(false)` when the module refused a part (named in the log).
    async fn set_call_audio(&self, profile: Profile) -> Option<bool> {
        let audio = self.inner.settings.call_audio.clone()?;
        let mut all = true;
        let mut send = |ok: Result<(), String>| {
            if let Err(e) = ok {
                tracing::warn!(error = %e, module = profile.name(), "the module refused a call audio setting");
                all = false;
            }
        };
        let plan = profile.call_audio();
        if let Some(route) = plan.route {
            send(
                self.cmd(route)
                    .await
                    .map(drop)
                    .map_err(|e| format!("{route}: {e}")),
            );
        }
        send(self.scaled(plan.volume, audio.volume).await);
        if let Some(mic) = plan.mic_gain {
            send(self.scaled(mic, audio.mic_gain).await);
        }
        for command in &audio.tuning {
            send(
                self.cmd(command)
                    .await
                    .map(drop)
                    .map_err(|e| format!("{command}: {e}")),
            );
        }
        tracing::info!(
            module = profile.name(),
            volume = audio.volume,
            mic_gain = audio.mic_gain,
            tuning = audio.tuning.len(),
            all_taken = all,
            "call audio set"
        );
        Some(all)
    }

    /// Sets `command` (such as `AT+CLVL`) to `percent` of each range its test command reports.
    async fn scaled(&self, command: &str, percent: u8) -> Result<(), String> {
        let name = command.trim_start_matches("AT");
        let test = self
            .inner
            .at
            .send(Command::new(format!("{command}=?"), self.inner.timing.command).expect(name))
            .await
            .map_err(|e| format!("{command}=?: {e}"))?;
        let ranges = test
            .line(name)
            .map(at::parse_ranges)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| format!("{command}=? gave no range"))?;
        let values: Vec<String> = ranges
            .iter()
            .map(|&(lo, hi)| (lo + (hi - lo) * u32::from(percent.min(100)) / 100).to_string())
            .collect();
        let set = format!("{command}={}", values.join(","));
        self.cmd(&set)
            .await
            .map(drop)
            .map_err(|e| format!("{set}: {e}"))
    }

    /// Runs the init sequence; returns once the module answers and its SIM is ready.
    async fn init(&self) -> Result<(), ModemError> {
        let t = self.inner.timing;
        // The module may still be booting: knock until it answers or the boot time is over.
        let deadline = Instant::now() + t.boot;
        loop {
            match self.cmd("AT").await {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(ModemError::EngineStopped) => return Err(ModemError::EngineStopped),
                Err(_) => {}
            }
        }
        self.cmd("ATE0").await?;
        self.cmd("AT+CMEE=2").await?;
        self.unlock_sim().await?;
        self.cmd("AT+CREG=1").await?;
        if let Err(e) = self.cmd("AT+CEREG=1").await {
            tracing::debug!(error = %e, "no EPS registration reports (2G/3G module)");
        }
        self.cmd("AT+CLIP=1").await?;
        self.cmd("AT+CMGF=0").await?;
        // TS 27.005 §3.4.1: store new SMS and indicate with +CMTI.
        self.cmd("AT+CNMI=2,1,0,0,0").await?;
        self.learn_capabilities().await;
        self.health().await?;
        if let Ok(r) = self
            .inner
            .at
            .send(Command::new("AT+CEREG?", t.command).expect("+CEREG:"))
            .await
        {
            if let Some(s) = r
                .line("+CEREG:")
                .and_then(|l| at::parse_reg_response(l).ok())
            {
                self.update_reg(None, Some(s));
            }
        }
        Ok(())
    }

    async fn unlock_sim(&self) -> Result<(), ModemError> {
        let t = self.inner.timing;
        let q = Command::new("AT+CPIN?", t.command).expect("+CPIN:");
        // A SIM still starting answers "SIM busy": asked again every half second for a while,
        // not given up on until the next init (30 s on a real module).
        let busy_until = Instant::now() + SIM_BUSY_FOR;
        let r = loop {
            match self.inner.at.send(q.clone()).await {
                Ok(r) => break r,
                Err(ModemError::Rejected { result, .. })
                    if at::is_sim_busy(&result) && Instant::now() < busy_until =>
                {
                    tracing::debug!("SIM busy: asking again");
                    tokio::time::sleep(SIM_BUSY_RETRY).await;
                }
                Err(ModemError::Rejected { result, .. }) => {
                    return Err(ModemError::Sim(sim_words(&result)));
                }
                Err(e) => return Err(e),
            }
        };
        let state = r
            .line("+CPIN:")
            .unwrap_or("")
            .trim_start_matches("+CPIN:")
            .trim();
        match state {
            "READY" => Ok(()),
            "SIM PIN" => {
                let Some(pin) = self.inner.settings.sim_pin.as_deref() else {
                    return Err(ModemError::Sim(
                        "the SIM asks for a PIN and none is configured".into(),
                    ));
                };
                if self.inner.pin_refused.load(Ordering::Relaxed) {
                    return Err(ModemError::Sim(
                        "the SIM refused the configured PIN; not tried again so the SIM is not PUK-locked".into(),
                    ));
                }
                match self.cmd(&format!("AT+CPIN=\"{pin}\"")).await {
                    Ok(_) => Ok(()),
                    Err(ModemError::Rejected { result, .. }) => {
                        self.inner.pin_refused.store(true, Ordering::Relaxed);
                        Err(ModemError::Sim(format!(
                            "the SIM refused the configured PIN ({})",
                            sim_words(&result)
                        )))
                    }
                    Err(e) => Err(e),
                }
            }
            other => Err(ModemError::Sim(format!(
                "SIM is locked ({other}); unlock it in a phone"
            ))),
        }
    }

    /// Reads and deletes every stored message (`AT+CMGL=4`, PDU mode): what arrived while
    /// the modem was being reset, or before Vigil started.
    async fn read_stored_sms(&self) {
        let r = self
            .inner
            .at
            .send(Command::new("AT+CMGL=4", self.inner.timing.command).expect("+CMGL:"))
            .await;
        let Ok(r) = r else { return };
        let mut it = r.lines.iter();
        while let Some(head) = it.next() {
            let Some(rest) = head.strip_prefix("+CMGL:") else {
                continue;
            };
            let index: Option<u16> = at::fields(rest).first().and_then(|s| s.parse().ok());
            let Some(pdu_line) = it.next() else { break };
            if let Some(index) = index {
                let _ = self.cmd(&format!("AT+CMGD={index}")).await;
            }
            match pdu::decode_deliver(pdu_line) {
                Ok(d) => self.received(d.from, d.text),
                Err(e) => tracing::warn!(error = %e, "undecodable stored SMS ignored"),
            }
        }
    }

    async fn read_sms(&self, index: u16) {
        let t = self.inner.timing;
        let r = self
            .inner
            .at
            .send(Command::new(format!("AT+CMGR={index}"), t.command).expect("+CMGR:"))
            .await;
        let _ = self.cmd(&format!("AT+CMGD={index}")).await;
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, index, "cannot read SMS");
                return;
            }
        };
        let pos = r.lines.iter().position(|l| l.starts_with("+CMGR:"));
        let Some(pdu_line) = pos.and_then(|p| r.lines.get(p + 1)) else {
            tracing::warn!(index, "SMS without PDU");
            return;
        };
        match pdu::decode_deliver(pdu_line) {
            Ok(d) => self.received(d.from, d.text),
            Err(e) => tracing::warn!(error = %e, index, "undecodable SMS ignored"),
        }
    }

    fn received(&self, from: String, text: String) {
        let _ = self.inner.sms.send(IncomingSms {
            from: from.clone(),
            text: text.clone(),
        });
        let first = text.split_whitespace().next().unwrap_or("");
        if first.eq_ignore_ascii_case("ACK") {
            // Acknowledgements are for the SMS route waiting on them.
            return;
        }
        match self.remote(&from, &text) {
            Ok(command) => {
                tracing::info!(from = %from, command = command.as_str(), "remote command accepted");
                self.emit(ModemEvent::Remote { from, command });
            }
            Err(why) => {
                tracing::warn!(from = %from, why = %why, "SMS ignored");
                self.emit(ModemEvent::Ignored { from, why });
            }
        }
    }

    /// Checks a call-back address a centre asked for (SCAIP `tnu`, `gsm:` scheme): a
    /// well-formed number that is also on `remote.allowed_numbers`, or why not.
    pub fn check_call_back(&self, requested: &str) -> Result<DialNumber, NumberError> {
        let number = DialNumber::parse_callback(requested)?;
        if !self.allowed(number.as_str()) {
            return Err(NumberError::NotAllowed(number));
        }
        Ok(number)
    }

    fn allowed(&self, number: &str) -> bool {
        self.inner
            .settings
            .allowed_numbers
            .iter()
            .any(|n| same_number(n, number))
    }

    fn remote(&self, from: &str, text: &str) -> Result<RemoteCommand, String> {
        if !self.allowed(from) {
            return Err("sender is not an allowed number".into());
        }
        let Some(secret) = self.inner.settings.remote_secret.as_deref() else {
            return Err("remote commands are not configured".into());
        };
        let w: Vec<&str> = text.split_whitespace().collect();
        let [verb, nonce, code] = w.as_slice() else {
            return Err("not `<COMMAND> <nonce> <code>`".into());
        };
        let command = RemoteCommand::parse(verb).ok_or("unknown command")?;
        let nonce: u64 = nonce.parse().map_err(|_| "nonce is not a number")?;
        if !auth::verify(secret, &format!("{} {nonce}", command.as_str()), code) {
            return Err("wrong authentication code".into());
        }
        // Held across the check and the save: two commands never both pass with one nonce.
        let mut nonces = self.inner.nonces.lock().map_err(|_| "lock poisoned")?;
        let last = nonces
            .last_nonce()
            .map_err(|e| format!("cannot check the nonce against replay: {e}"))?;
        if nonce <= last {
            return Err("replayed command (nonce not above the last one)".into());
        }
        // Kept before the command is acted on, so a restart cannot accept it again.
        nonces
            .save_nonce(nonce)
            .map_err(|e| format!("cannot keep the nonce against replay: {e}"))?;
        Ok(command)
    }

    async fn incoming_call(&self, from: &str) {
        let open = self
            .inner
            .auto_answer
            .lock()
            .map(|g| g.is_some_and(|until| Instant::now() < until))
            .unwrap_or(false);
        let answer = open && self.allowed(from);
        let answered = if answer {
            match self
                .inner
                .at
                .send(Command::new("ATA", self.inner.timing.network).call_setup())
                .await
            {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "could not answer");
                    false
                }
            }
        } else {
            false
        };
        tracing::info!(from = %from, answered, window_open = open, "incoming call");
        self.emit(ModemEvent::IncomingCall {
            from: from.to_string(),
            answered,
        });
    }
}

fn cmgs_reference(r: &super::engine::Response) -> u8 {
    r.line("+CMGS:")
        .and_then(|l| l.trim_start_matches("+CMGS:").trim().parse().ok())
        .unwrap_or(0)
}

/// How long a busy SIM is waited for during init.
const SIM_BUSY_FOR: Duration = Duration::from_secs(20);
/// How often a busy SIM is asked again.
const SIM_BUSY_RETRY: Duration = Duration::from_millis(500);

fn sim_words(result: &FinalResult) -> String {
    match at::explain(result) {
        Some(w) => w.to_string(),
        None => match result {
            FinalResult::Cme(c) | FinalResult::Cms(c) => c.to_string(),
            other => other.to_string(),
        },
    }
}

pub use super::number::same_number;

async fn supervise(
    m: Modem,
    mut recover_rx: mpsc::UnboundedReceiver<String>,
    key: Option<Box<dyn PowerKey>>,
) {
    let t = m.inner.timing;
    loop {
        let mut urcs = m.inner.at.subscribe();
        m.set_status(Status::Starting);
        match m.init().await {
            Ok(()) => {
                tracing::info!("modem ready");
                m.set_status(Status::Ready);
                m.emit(ModemEvent::Ready);
            }
            Err(ModemError::EngineStopped) => {
                m.set_status(Status::Failed("serial port closed".into()));
                return;
            }
            Err(e @ ModemError::Timeout { .. }) => {
                let reason = format!("modem not answering: {e}");
                recover(&m, &reason, key.as_deref()).await;
                continue;
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::error!(reason = %reason, "modem init failed");
                m.set_status(Status::Failed(reason.clone()));
                m.emit(ModemEvent::Down { reason });
                // Wait for a reboot, a recovery request or the retry time.
                tokio::select! {
                    () = tokio::time::sleep(t.retry) => {}
                    r = recover_rx.recv() => {
                        if let Some(r) = r { recover(&m, &r, key.as_deref()).await }
                    }
                }
                continue;
            }
        }
        // URCs queued during init: a boot `RDY` is history now, the rest still matters.
        let mut ringing: Option<String> = None;
        let mut queued = Vec::new();
        while let Ok(u) = urcs.try_recv() {
            if u != Urc::Rdy {
                queued.push(u);
            }
        }
        for u in queued {
            on_urc(&m, u, &mut ringing).await;
        }
        m.read_stored_sms().await;
        let mut health = tokio::time::interval(t.health);
        health.tick().await;
        loop {
            tokio::select! {
                u = urcs.recv() => match u {
                    Ok(u) => {
                        if on_urc(&m, u, &mut ringing).await {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "URC backlog overflowed");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = health.tick() => match m.health().await {
                    Ok(h) if !h.sim_ready => {
                        let reason = "SIM no longer ready".to_string();
                        tracing::error!(reason = %reason, "modem health");
                        m.set_status(Status::Failed(reason.clone()));
                        m.emit(ModemEvent::Down { reason });
                        break;
                    }
                    Ok(h) => tracing::debug!(signal_dbm = ?h.signal_dbm, registration = h.registration.describe(), "modem health"),
                    Err(e @ ModemError::Timeout { .. }) if answers_again(&m).await => {
                        tracing::warn!(error = %e, "health check timed out, but the module answers: no reset");
                    }
                    Err(e @ (ModemError::Timeout { .. } | ModemError::EngineStopped)) => {
                        recover(&m, &format!("health check: {e}"), key.as_deref()).await;
                        break;
                    }
                    Err(e) => tracing::warn!(error = %e, "health check"),
                },
                r = recover_rx.recv() => {
                    let Some(r) = r else { return };
                    // A command that timed out may just have met a busy module: reset it only
                    // if it does not answer a synchronising `AT` either.
                    if answers_again(&m).await {
                        tracing::warn!(reason = %r, "a command timed out, but the module answers: no reset");
                        m.set_status(Status::Ready);
                        continue;
                    }
                    recover(&m, &r, key.as_deref()).await;
                    break;
                }
            }
        }
        // Requests that piled up during recovery are answered by it.
        while recover_rx.try_recv().is_ok() {}
    }
}

/// Handles one URC while the modem is up; true when the module rebooted (re-init needed).
async fn on_urc(m: &Modem, u: Urc, ringing: &mut Option<String>) -> bool {
    match u {
        Urc::Rdy => {
            let reason = "module restarted by itself".to_string();
            tracing::warn!(reason = %reason, "modem reset");
            m.set_status(Status::Recovering(reason.clone()));
            m.emit(ModemEvent::Down { reason });
            return true;
        }
        Urc::Creg(s) => m.update_reg(Some(s), None),
        Urc::Cereg(s) => m.update_reg(None, Some(s)),
        Urc::Cmti { index, .. } => m.read_sms(index).await,
        Urc::Clip { number } if ringing.as_deref() != Some(number.as_str()) => {
            *ringing = Some(number.clone());
            m.incoming_call(&number).await;
        }
        Urc::NoCarrier => {
            *ringing = None;
            m.emit(ModemEvent::CallEnded {
                reason: "no carrier".into(),
            });
        }
        _ => {}
    }
    false
}

/// Whether the module answers a plain `AT` (a module busy for a moment does; a hung one does
/// not). After a timeout the engine first sends a synchronising `AT` of its own, with its own
/// time, so this waits for two answers in all.
async fn answers_again(m: &Modem) -> bool {
    m.cmd("AT").await.is_ok()
}

/// Soft reset, then power key; returns when `RDY` was seen or every path was tried.
async fn recover(m: &Modem, reason: &str, key: Option<&dyn PowerKey>) {
    let t = m.inner.timing;
    tracing::warn!(reason = %reason, "recovering modem");
    m.set_status(Status::Recovering(reason.to_string()));
    m.emit(ModemEvent::Down {
        reason: reason.to_string(),
    });
    if let Ok(mut g) = m.inner.reg.lock() {
        *g = (RegStatus::Unknown, RegStatus::Unknown);
    }
    let mut urcs = m.inner.at.subscribe();
    if m.cmd("AT+CFUN=1,1").await.is_ok() && wait_rdy(&mut urcs, t.boot).await {
        tracing::info!("modem restarted by AT+CFUN=1,1");
        return;
    }
    let Some(key) = key else {
        tracing::error!("modem does not answer and no power key is configured");
        tokio::time::sleep(t.retry).await;
        return;
    };
    // One pulse toggles power: a hung module goes off, the next pulse brings it up.
    for _ in 0..2 {
        if let Err(e) = power::pulse(key, t.key_hold).await {
            tracing::error!(error = %e, "power key");
            return;
        }
        if wait_rdy(&mut urcs, t.boot).await {
            tracing::info!("modem restarted by its power key");
            return;
        }
        tokio::time::sleep(t.key_gap).await;
    }
    tracing::error!("modem did not come back after power cycling");
}

async fn wait_rdy(urcs: &mut broadcast::Receiver<Urc>, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, async {
        loop {
            match urcs.recv().await {
                Ok(Urc::Rdy) => return true,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return false,
            }
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_subscriber() {
        assert!(same_number("+46701234567", "+46701234567"));
        assert!(!same_number("+46701234567", "0701234567"));
        assert!(!same_number("+46701234567", "+46701234568"));
        assert!(!same_number("+46701234567", "+45701234567"));
        assert!(!same_number("+46701234567", ""));
    }
}
