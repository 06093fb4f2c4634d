//! The modem as the runtime and the routes see it: initialised, watched, recovered.
//!
//! [`Modem::start`] spawns a supervisor task that runs the init sequence, follows registration
//! URCs, reads incoming SMS (`+CMTI` → `AT+CMGR` → `AT+CMGD`), answers calls from configured
//! numbers while the core's auto-answer window is open, checks health periodically
//! (`AT+CSQ`, `AT+CREG?`), and recovers a module that stops answering or reboots: first
//! `AT+CFUN=1,1`, then the power key, then the init sequence again. While it recovers,
//! routes fail at once with the reason, so the core moves the alarm to its next route.
//!
//! Here: the [`Modem`] handle, its [`Settings`] and [`Timing`], the events it
//! emits and the state its parts share. Each job has its own file and `impl Modem`:
//! - `lifecycle.rs`: opening, the init sequence, SIM unlock, learning the module's
//!   capabilities, its call audio, health checks, and recovery (reset, power key).
//! - `sms.rs`: sending SMS and reading what arrives (PDU mode).
//! - `calls.rs`: the call line, dialling, placing and answering calls, the voice port, hang-up
//!   and auto-answer.
//! - `remote.rs`: remote commands by SMS (authentication, nonces) and the allow-list.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use super::at::RegStatus;
use super::engine::{AtClient, Command};
use super::power;
use super::profile::Capabilities;
use super::ModemError;
use crate::config;
use crate::core::Input;

mod calls;
mod lifecycle;
mod remote;
mod sms;

pub use super::number::same_number;
pub use calls::{CallError, CallLine, CommandFailed, DialFailure, SpeechError};
pub use lifecycle::Health;
pub use remote::{
    MemoryNonce, NoNonceStore, NonceStore, NonceStoreError, RemoteCommand, RemoteRefusal,
};
pub use sms::IncomingSms;

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
    /// The module's USB audio class card (ALSA name), if the installer named one.
    pub call_device: Option<String>,
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
            .field("call_device", &self.call_device)
            .field("call_audio", &self.call_audio)
            .finish()
    }
}

impl Settings {
    /// From the validated configuration.
    pub fn from_config(
        modem: &config::Modem,
        audio: &config::Audio,
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
            call_device: audio.call_device.clone(),
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

/// Why calls and SMS cannot go now ([`Modem::usable`]): a route fails at once with it, so the
/// core moves the alarm on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// The init sequence has not finished yet.
    #[error("modem not ready: starting")]
    Starting,
    /// The module is being reset or power-cycled, for this reason.
    #[error("modem recovering: {0}")]
    Recovering(String),
    /// Initialisation failed (no SIM, wrong PIN…), for this reason; retried periodically.
    #[error("modem unusable: {0}")]
    Failed(String),
    /// Not registered on a network; the registration as the module reports it.
    #[error("no network: {0}")]
    NoNetwork(String),
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
        why: RemoteRefusal,
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
    /// The task that carries the call's speech through the speakerphone, if one does.
    speech: Mutex<Option<calls::Speech>>,
}

/// Handle on the modem. Cheap to clone; all clones share one module.
#[derive(Clone)]
pub struct Modem {
    inner: Arc<Inner>,
}

impl Modem {
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
        let (cs, eps) = *crate::sync::lock(&self.inner.reg);
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
    pub async fn wait_usable(&self, timeout: Duration) -> Result<(), Unusable> {
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
    pub fn usable(&self) -> Result<(), Unusable> {
        match self.status() {
            Status::Ready => {}
            Status::Starting => return Err(Unusable::Starting),
            Status::Recovering(r) => return Err(Unusable::Recovering(r)),
            Status::Failed(r) => return Err(Unusable::Failed(r)),
        }
        let reg = self.registration();
        if reg.is_registered() {
            Ok(())
        } else {
            Err(Unusable::NoNetwork(reg.describe().to_string()))
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

    fn update_reg(&self, cs: Option<RegStatus>, eps: Option<RegStatus>) {
        let before = self.registration();
        {
            let mut g = crate::sync::lock(&self.inner.reg);
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
