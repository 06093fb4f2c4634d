//! A simulated cellular module (Quectel EC25 / SIMCom SIM7600 style) on a pseudo-terminal.
//!
//! It speaks V.250 / TS 27.007 / TS 27.005 on the master side of a pty; Vigil opens the slave
//! path with `serialport` exactly as it opens `/dev/ttyUSB2` on the unit. Behaviour modelled:
//! echo until `ATE0`, `AT+CMEE` 0/1/2, SIM states (`+CPIN: READY`, `SIM PIN`, `SIM PUK`, not
//! inserted), registration that takes time and emits `+CREG`/`+CEREG`, `+CSQ`, the SMS `> `
//! prompt (Ctrl-Z sends, ESC aborts) with PDU length checks, `+CMTI` and `+CMGR`, voice calls
//! with `+CLCC` states, `BUSY`/`NO ANSWER`/`NO CARRIER`, `AT+VTS` only in an active call,
//! `RING`/`+CLIP`, `AT+QTTS` announcements, `AT+QTONEDET` DTMF/tone detection, `RDY` after a
//! reset (`AT+CFUN=1,1` or the power key). Faults are scripted per test with [`Fault`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::at::{CallState, RegStatus};
use super::engine::{spawn_reader, spawn_writer, CTRL_Z, ESC};
use super::network::{EndCause, Network, Progress, ToModem, ToParty};
use super::power::PowerKey;
use super::{pdu, ModemError};

/// A simulated module on its network, ready for tests and the demo.
pub struct SimWorld {
    /// The network with its parties.
    pub network: Network,
    /// The module on its pty.
    pub module: SimModem,
}

impl SimWorld {
    /// A network with `config.network`'s timing and one module configured by `config`.
    pub fn start(config: SimConfig) -> Result<SimWorld, ModemError> {
        let network = Network::new(config.network);
        let module = SimModem::spawn(&network, config)?;
        Ok(SimWorld { network, module })
    }

    /// Opens the module's pty with the real `serialport` path and starts a [`super::Modem`]
    /// with fast timing and the simulated power key.
    pub fn open_modem(
        &self,
        settings: super::device::Settings,
    ) -> Result<super::Modem, ModemError> {
        let at = super::engine::open(self.module.path(), 115_200)?;
        Ok(super::Modem::start(
            at,
            settings,
            super::Timing::fast(),
            Some(Box::new(self.module.power_key())),
        ))
    }
}

/// A fault the simulated module (or its SIM / radio) shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No SIM card: `+CPIN` gives `+CME ERROR: 10`.
    NoSim,
    /// The SIM's PIN is not the configured one (`+CME ERROR: 16`, then PUK after 3 tries).
    WrongPin,
    /// The network refuses registration (`+CREG: 3`).
    RegistrationDenied,
    /// No network coverage: searching forever, `+CSQ: 99,99`.
    NoNetwork,
    /// The next `count` SMS submissions fail with `+CMS ERROR: <code>`.
    CmsError {
        /// TS 27.005 §3.2.5 error code.
        code: u16,
        /// How many submissions fail.
        count: u32,
    },
    /// The module hangs: it reads but never answers, until power-cycled by its key.
    Silent,
    /// Noise on the line: garbage bytes before every response.
    Garbage,
    /// The module reboots by itself when the next SMS is submitted (mid-command).
    RebootOnSms,
    /// The next `n` `AT+CPIN?` answer `+CME ERROR: 14` (SIM busy), as a SIM still starting
    /// after boot does.
    SimBusy(u32),
    /// The module is busy until then (a network search, a flash write): it reads but answers
    /// nothing, then answers again as if nothing happened. Made by [`Fault::busy_for`].
    BusyUntil(std::time::Instant),
    /// A Quectel module whose USB configuration has no audio class function (the last field
    /// of `AT+QCFG="USBCFG"` off, or a firmware without it): `AT+QPCMV=1,2` is refused with
    /// `+CME ERROR: 4` (operation not supported); the other ports still are taken.
    NoUsbAudio,
}

impl Fault {
    /// Busy for `d` from now.
    pub fn busy_for(d: Duration) -> Fault {
        Fault::BusyUntil(std::time::Instant::now() + d)
    }
}

/// Delays of the simulated module.
#[derive(Clone, Copy, Debug)]
pub struct SimTiming {
    /// From power-on or reset to `RDY`.
    pub boot: Duration,
    /// From SIM ready to registered.
    pub registration: Duration,
    /// Network round trip of an SMS submission.
    pub cmgs: Duration,
    /// Time per DTMF digit of `AT+VTS` (tone plus pause).
    pub dtmf_digit: Duration,
    /// Length of a text-to-speech announcement.
    pub tts: Duration,
    /// Interval of `RING` for an incoming call.
    pub ring_repeat: Duration,
}

impl SimTiming {
    /// Delays as a real module gives them: `RDY` some 12 s after power-on (the EC25 and
    /// SIM7600 hardware guides give 10–16 s), registration a few seconds after the SIM is
    /// ready, an SMS submission's network round trip of 3 s, a DTMF digit of `AT+VTS` as 100 ms
    /// of tone (`AT+VTD` default 1, in tenths of a second) and a pause, an announcement of
    /// about 8 s, `RING` every 5 s (a European ring cycle).
    pub fn real() -> SimTiming {
        SimTiming {
            boot: Duration::from_secs(12),
            registration: Duration::from_secs(3),
            cmgs: Duration::from_secs(3),
            dtmf_digit: Duration::from_millis(150),
            tts: Duration::from_secs(8),
            ring_repeat: Duration::from_secs(5),
        }
    }

    /// Short delays for tests and the demo.
    pub fn fast() -> SimTiming {
        SimTiming {
            boot: Duration::from_millis(80),
            registration: Duration::from_millis(60),
            cmgs: Duration::from_millis(20),
            dtmf_digit: Duration::from_millis(2),
            tts: Duration::from_millis(60),
            ring_repeat: Duration::from_millis(100),
        }
    }
}

/// How to build a simulated module.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The SIM's own number on the network.
    pub number: String,
    /// The SIM's PIN, if it asks for one.
    pub pin: Option<String>,
    /// Signal, `+CSQ` rssi 0–31.
    pub rssi: u8,
    /// Faults from the start.
    pub faults: Vec<Fault>,
    /// Delays.
    pub timing: SimTiming,
    /// Delays of the network and the people and centres on it.
    pub network: super::network::NetTiming,
    /// Which module is simulated: its identification and its own call commands.
    pub model: Model,
}

/// The simulated module's family: each answers to its own manual's call commands and refuses
/// the other's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Model {
    /// Quectel EC25: `AT+QTTS`, `AT+QTONEDET` (DTMF as `+QTONEDET: <ascii>`, the 1400/2300 Hz
    /// tones as 69/70 with their length), `AT+VTS="<digits>"`.
    #[default]
    QuectelEc25,
    /// SIMCom SIM7600: `AT+CTTS` (heard by the far end only after `AT+CDTAM=1`), `AT+DDET`
    /// (DTMF as `+RXDTMF: <key>`, no single tones), `AT+VTS` with comma-separated digits of
    /// at most 29 characters.
    SimcomSim7600,
}

impl Model {
    /// `ATI`, `AT+CGMI`, `AT+CGMM`, `AT+CGMR` answers.
    fn identity(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Model::QuectelEc25 => ("Quectel", "EC25", "Revision: EC25EFAR06A06M4G"),
            Model::SimcomSim7600 => (
                "SIMCOM INCORPORATED",
                "SIMCOM_SIM7600E-H",
                "+CGMR: LE20B04SIM7600M22",
            ),
        }
    }
}

impl SimConfig {
    /// A healthy module with SIM `number`, no PIN.
    pub fn new(number: &str) -> SimConfig {
        SimConfig {
            number: number.to_string(),
            pin: None,
            rssi: 21,
            faults: Vec::new(),
            timing: SimTiming::fast(),
            network: super::network::NetTiming::fast(),
            model: Model::QuectelEc25,
        }
    }
}

enum Control {
    /// A DTMF key the far end decoded from the host's audio on the voice port.
    HeardInBand(char),
    Inject(Fault),
    Clear,
    Reboot,
    PowerKey,
}

#[derive(Default)]
struct Shared {
    commands: Vec<String>,
    powered: bool,
    /// The audio settings the module holds now.
    audio: BTreeMap<&'static str, Vec<u32>>,
}

/// Control of a running simulated module. Dropping it stops the module.
pub struct SimModem {
    path: String,
    model: Model,
    voice_port: Option<(String, super::sim_voice::AudioTap)>,
    ctl: mpsc::UnboundedSender<Control>,
    shared: Arc<Mutex<Shared>>,
}

impl SimModem {
    /// Opens a pty pair and starts the module on the current tokio runtime, attached to
    /// `network` with the SIM's number. Returns once the pty exists; the module boots
    /// (`RDY`) after `timing.boot`.
    pub fn spawn(network: &Network, config: SimConfig) -> Result<SimModem, ModemError> {
        let (mut master, slave) =
            serialport::TTYPort::pair().map_err(|source| ModemError::Port {
                port: "pty".into(),
                source,
            })?;
        use serialport::SerialPort;
        let _ = master.set_timeout(Duration::from_millis(50));
        let path = slave
            .name()
            .ok_or_else(|| ModemError::Sim("pty has no name".into()))?;
        let writer = master
            .try_clone_native()
            .map_err(|source| ModemError::Port {
                port: path.clone(),
                source,
            })?;
        let (bytes_tx, bytes_rx) = mpsc::channel(64);
        spawn_reader(Box::new(master), bytes_tx);
        let out = spawn_writer(Box::new(writer));
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        // SIMCom streams calls over USB on a second interface (its voice port); Quectel puts
        // them on its USB audio class card, which the simulation stands in for with the same
        // kind of PCM stream. Digits the host plays into a call come back as keys the far end
        // heard.
        let audio = {
            let (keys_tx, mut keys) = mpsc::unbounded_channel();
            let audio = super::sim_voice::AudioFunction::spawn(keys_tx)?;
            // Weak: the module stops when its owner drops the last strong sender.
            let ctl = ctl.downgrade();
            tokio::spawn(async move {
                while let Some(k) = keys.recv().await {
                    let Some(ctl) = ctl.upgrade() else { return };
                    if ctl.send(Control::HeardInBand(k)).is_err() {
                        return;
                    }
                }
            });
            Some(audio)
        };
        let voice_port = audio.as_ref().map(|a| (a.path().to_string(), a.tap()));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let from_net = network.attach(&config.number);
        let (net_tx, net_rx) = mpsc::unbounded_channel();
        // Calls the module originates report back through the same channel as the network's.
        let relay_tx = net_tx.clone();
        tokio::spawn(relay(from_net, relay_tx));
        let mut m = Module {
            net: network.clone(),
            net_tx,
            out,
            shared: shared.clone(),
            cfg: config.clone(),
            faults: config.faults.clone(),
            st: State::off(),
            input: Vec::new(),
            sms_input: None,
            timers: Vec::new(),
            _slave: slave,
            audio,
        };
        m.power_on();
        tokio::spawn(m.run(bytes_rx, net_rx, ctl_rx));
        Ok(SimModem {
            path,
            model: config.model,
            voice_port,
            ctl,
            shared,
        })
    }

    /// The serial device path to open (the pty's slave side).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The module's voice port (SIMCom's USB audio interface), if it has one.
    pub fn voice_port(&self) -> Option<&str> {
        self.voice_port
            .as_ref()
            .filter(|_| self.model == Model::SimcomSim7600)
            .map(|(p, _)| p.as_str())
    }

    /// The name the unit opens the module's USB audio card by (`audio.call_device`), on a
    /// Quectel module: [`SIM_CARD_PREFIX`](vigil_runtime::modem::audio_port::SIM_CARD_PREFIX)
    /// and the path of the stream that stands in for the card. It carries calls once the unit
    /// set `AT+QPCMV=1,2`, as the card does.
    pub fn sound_card(&self) -> Option<String> {
        self.voice_port
            .as_ref()
            .filter(|_| self.model == Model::QuectelEc25)
            .map(|(p, _)| format!("{}{p}", vigil_runtime::modem::audio_port::SIM_CARD_PREFIX))
    }

    /// Everything the host sent into calls on the module's call audio port (SIMCom's voice
    /// port, Quectel's USB audio card), as the far end heard it: 8 kHz 16-bit samples, the last
    /// two minutes at most.
    pub fn voice_port_audio(&self) -> Vec<i16> {
        self.voice_port
            .as_ref()
            .map(|(_, tap)| tap.heard())
            .unwrap_or_default()
    }

    /// The far end of the call speaks on the module's call audio port: `samples` at 8 kHz, in
    /// line time.
    pub fn far_end_says(&self, samples: &[i16]) {
        if let Some((_, tap)) = &self.voice_port {
            tap.say(samples);
        }
    }

    /// Adds a fault now.
    pub fn inject(&self, fault: Fault) {
        let _ = self.ctl.send(Control::Inject(fault));
    }

    /// Removes all faults (the SIM is put back, coverage returns…).
    pub fn clear_faults(&self) {
        let _ = self.ctl.send(Control::Clear);
    }

    /// The module reboots by itself now.
    pub fn reboot(&self) {
        let _ = self.ctl.send(Control::Reboot);
    }

    /// The values of an audio setting the module took (`"+CLVL"`), if any since power-on.
    pub fn audio_setting(&self, name: &str) -> Option<Vec<u32>> {
        self.shared
            .lock()
            .ok()
            .and_then(|s| s.audio.get(name).cloned())
    }

    /// Every command line the module received, in order.
    pub fn commands(&self) -> Vec<String> {
        self.shared
            .lock()
            .map(|s| s.commands.clone())
            .unwrap_or_default()
    }

    /// Whether the module is powered.
    pub fn powered(&self) -> bool {
        self.shared.lock().map(|s| s.powered).unwrap_or(false)
    }

    /// The module's power key, for [`super::Modem`]'s hard recovery path.
    pub fn power_key(&self) -> SimPowerKey {
        SimPowerKey {
            ctl: self.ctl.clone(),
            pressed: Mutex::new(false),
        }
    }
}

/// The simulated module's power key: each press-and-release toggles power.
pub struct SimPowerKey {
    ctl: mpsc::UnboundedSender<Control>,
    pressed: Mutex<bool>,
}

impl PowerKey for SimPowerKey {
    fn set_pressed(&self, pressed: bool) -> Result<(), ModemError> {
        let mut p = self
            .pressed
            .lock()
            .map_err(|_| ModemError::PowerKey("lock poisoned".into()))?;
        if *p && !pressed {
            self.ctl
                .send(Control::PowerKey)
                .map_err(|_| ModemError::PowerKey("simulated module stopped".into()))?;
        }
        *p = pressed;
        Ok(())
    }
}

async fn relay(mut from: mpsc::UnboundedReceiver<ToModem>, to: mpsc::UnboundedSender<ToModem>) {
    while let Some(ev) = from.recv().await {
        if to.send(ev).is_err() {
            return;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sim {
    Ready,
    Pin { tries: u8 },
    Puk,
    Absent,
}

struct Call {
    id: u32,
    incoming: bool,
    state: CallState,
    number: String,
    far: Option<mpsc::UnboundedSender<ToParty>>,
}

struct Stored {
    from: String,
    text: String,
    read: bool,
}

/// Volatile module state, lost on reset.
struct State {
    powered: bool,
    booted: bool,
    echo: bool,
    cmee: u8,
    cmgf: u8,
    creg_n: u8,
    cereg_n: u8,
    cgreg_n: u8,
    /// `AT+COPS` operator format: 0 long name, 1 short name, 2 numeric.
    cops_format: u8,
    clip: bool,
    /// `AT+CRC=1`: incoming calls as `+CRING: VOICE` instead of `RING` (TS 27.007 §6.11).
    crc: bool,
    cnmi_mt: u8,
    tonedet: bool,
    /// SIMCom `AT+CDTAM=1`: speech goes to the far end of the call, not the local speaker.
    speech_to_far_end: bool,
    /// SIMCom `AT+CPCMREG=1`: the call's audio streams on the voice port.
    pcmreg: bool,
    /// Quectel `AT+QPCMV=<enable>,<port>`: voice over USB on or off, and where (0 the USB
    /// NMEA port, 1 the debug UART, 2 the USB audio class card). Off at power-on.
    qpcmv: (u8, u8),
    /// Audio settings taken (`AT+CLVL=3`, `AT+QMIC=…`): command name to values. Forgotten at
    /// power-off, as a module's volatile audio settings are.
    audio: BTreeMap<&'static str, Vec<u32>>,
    /// TE character set (`AT+CSCS`): "GSM", "IRA" or "UCS2".
    cscs: &'static str,
    sim: Sim,
    reg: RegStatus,
    call: Option<Call>,
}

impl State {
    fn off() -> State {
        State {
            powered: false,
            booted: false,
            echo: true,
            cmee: 0,
            cmgf: 0,
            creg_n: 0,
            cereg_n: 0,
            cgreg_n: 0,
            cops_format: 0,
            clip: false,
            crc: false,
            cnmi_mt: 0,
            tonedet: false,
            speech_to_far_end: false,
            pcmreg: false,
            qpcmv: (0, 0),
            audio: BTreeMap::new(),
            cscs: "GSM",
            sim: Sim::Absent,
            reg: RegStatus::NotSearching,
            call: None,
        }
    }
}

enum Timer {
    Boot,
    Registered,
    Final(String),
    Urc(String),
    Ring(u32),
}

struct SmsInput {
    pdu_len: Option<usize>,
    to: Option<String>,
    body: Vec<u8>,
}

struct Module {
    net: Network,
    net_tx: mpsc::UnboundedSender<ToModem>,
    out: std::sync::mpsc::Sender<Vec<u8>>,
    shared: Arc<Mutex<Shared>>,
    cfg: SimConfig,
    faults: Vec<Fault>,
    st: State,
    input: Vec<u8>,
    sms_input: Option<SmsInput>,
    timers: Vec<(Instant, Timer)>,
    /// Keeps the slave side open so the master never reads EIO between openers.
    _slave: serialport::TTYPort,
    /// SIMCom's voice over USB (`AT+CPCMREG`), on its own pty.
    audio: Option<super::sim_voice::AudioFunction>,
}

/// The SIM's storage survives resets; kept outside [`State`].
static NEXT_MR: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);

impl Module {
    async fn run(
        mut self,
        mut bytes: mpsc::Receiver<Vec<u8>>,
        mut net: mpsc::UnboundedReceiver<ToModem>,
        mut ctl: mpsc::UnboundedReceiver<Control>,
    ) {
        let mut storage: BTreeMap<u16, Stored> = BTreeMap::new();
        loop {
            let next = self.timers.iter().map(|(t, _)| *t).min();
            tokio::select! {
                b = bytes.recv() => match b {
                    Some(b) => for byte in b { self.byte(byte, &mut storage) },
                    None => return,
                },
                ev = net.recv() => match ev {
                    Some(ev) => self.network(ev, &mut storage),
                    None => return,
                },
                c = ctl.recv() => match c {
                    Some(Control::Inject(f)) => {
                        // Coverage faults act at once, as a cell going away does.
                        let reg = match f {
                            Fault::NoNetwork => Some(RegStatus::Searching),
                            Fault::RegistrationDenied => Some(RegStatus::Denied),
                            _ => None,
                        };
                        self.faults.push(f);
                        if let (Some(r), true) = (reg, self.st.sim == Sim::Ready && self.st.booted) {
                            self.set_reg(r);
                        }
                    }
                    Some(Control::Clear) => {
                        self.faults.clear();
                        if self.st.sim == Sim::Ready && self.st.booted && !self.st.reg.is_registered() {
                            self.start_registration();
                        }
                    }
                    Some(Control::Reboot) => self.reset(),
                    Some(Control::HeardInBand(key)) => {
                        if self.active() {
                            if let Some(far) = self.st.call.as_ref().and_then(|c| c.far.as_ref()) {
                                let _ = far.send(ToParty::Dtmf(key.to_string()));
                            }
                        }
                    }
                    Some(Control::PowerKey) => {
                        if self.st.powered { self.power_off() } else { self.power_on() }
                    }
                    None => {
                        self.end_call(None);
                        return;
                    }
                },
                () = sleep_opt(next) => self.fire(),
            }
        }
    }

    fn has(&self, f: &Fault) -> bool {
        self.faults.contains(f)
    }

    /// Spends one of the SIM-busy answers still owed.
    fn take_sim_busy(&mut self) -> bool {
        for f in self.faults.iter_mut() {
            if let Fault::SimBusy(n) = f {
                if *n > 0 {
                    *n -= 1;
                    return true;
                }
            }
        }
        false
    }

    fn silent(&self) -> bool {
        !self.st.powered
            || !self.st.booted
            || self.has(&Fault::Silent)
            || self
                .faults
                .iter()
                .any(|f| matches!(f, Fault::BusyUntil(t) if std::time::Instant::now() < *t))
    }

    fn write(&self, bytes: &[u8]) {
        let _ = self.out.send(bytes.to_vec());
    }

    /// A response or URC line, V.250 verbose format: `CR LF text CR LF`.
    fn line(&self, text: &str) {
        if self.has(&Fault::Garbage) {
            self.write(b"\x00\xff\xfe~#\x13\r\n\xc3");
        }
        self.write(format!("\r\n{text}\r\n").as_bytes());
    }

    fn cme(&self, code: u16, words: &str) {
        match self.st.cmee {
            0 => self.line("ERROR"),
            1 => self.line(&format!("+CME ERROR: {code}")),
            _ => self.line(&format!("+CME ERROR: {words}")),
        }
    }

    fn cms(&self, code: u16, words: &str) {
        match self.st.cmee {
            0 => self.line("ERROR"),
            1 => self.line(&format!("+CMS ERROR: {code}")),
            _ => self.line(&format!("+CMS ERROR: {words}")),
        }
    }

    fn after(&mut self, d: Duration, t: Timer) {
        self.timers.push((Instant::now() + d, t));
    }

    fn fire(&mut self) {
        let now = Instant::now();
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.timers)
            .into_iter()
            .partition(|(t, _)| *t <= now);
        self.timers = rest;
        for (_, t) in due {
            match t {
                Timer::Boot => self.booted(),
                Timer::Registered => self.registered(),
                Timer::Final(s) | Timer::Urc(s) => {
                    if !self.silent() {
                        self.line(&s);
                    }
                }
                Timer::Ring(id) => {
                    let ringing = self
                        .st
                        .call
                        .as_ref()
                        .is_some_and(|c| c.id == id && c.state == CallState::Incoming);
                    if ringing {
                        self.ring();
                        self.after(self.cfg.timing.ring_repeat, Timer::Ring(id));
                    }
                }
            }
        }
    }

    fn set_powered(&mut self, on: bool) {
        if let Ok(mut s) = self.shared.lock() {
            s.powered = on;
            if !on {
                s.audio.clear();
            }
        }
    }

    fn power_on(&mut self) {
        self.st = State::off();
        self.st.powered = true;
        if let Ok(mut s) = self.shared.lock() {
            s.audio.clear();
        }
        self.set_powered(true);
        // A power cycle clears a hung firmware.
        self.faults.retain(|f| *f != Fault::Silent);
        self.timers.clear();
        self.after(self.cfg.timing.boot, Timer::Boot);
    }

    fn power_off(&mut self) {
        self.end_call(None);
        self.st = State::off();
        self.set_powered(false);
        self.timers.clear();
        self.faults.retain(|f| *f != Fault::Silent);
    }

    fn reset(&mut self) {
        self.end_call(None);
        self.power_on();
    }

    fn booted(&mut self) {
        self.st.booted = true;
        self.st.sim = if self.has(&Fault::NoSim) {
            Sim::Absent
        } else if self.cfg.pin.is_some() || self.has(&Fault::WrongPin) {
            Sim::Pin { tries: 3 }
        } else {
            Sim::Ready
        };
        self.line("RDY");
        self.line(match self.st.sim {
            Sim::Ready => "+CPIN: READY",
            Sim::Pin { .. } => "+CPIN: SIM PIN",
            Sim::Puk => "+CPIN: SIM PUK",
            Sim::Absent => "+CPIN: NOT INSERTED",
        });
        if self.st.sim == Sim::Ready {
            self.start_registration();
        }
    }

    fn start_registration(&mut self) {
        self.set_reg(RegStatus::Searching);
        self.after(self.cfg.timing.registration, Timer::Registered);
    }

    fn registered(&mut self) {
        if self.st.sim != Sim::Ready {
            return;
        }
        let stat = if self.has(&Fault::RegistrationDenied) {
            RegStatus::Denied
        } else if self.has(&Fault::NoNetwork) {
            RegStatus::Searching
        } else {
            RegStatus::Home
        };
        self.set_reg(stat);
    }

    /// `<stat>` as `+CREG`/`+CGREG`/`+CEREG` report it for presentation mode `n`: with n=2
    /// and a registered SIM, the cell's location area, cell id and access technology too
    /// (TS 27.007 §7.2).
    fn reg_fields(&self, n: u8) -> String {
        let stat = self.st.reg.code();
        if n == 2 && self.st.reg.is_registered() {
            format!("{stat},\"1A2B\",\"01C3D4E5\",7")
        } else {
            stat.to_string()
        }
    }

    fn set_reg(&mut self, stat: RegStatus) {
        if self.st.reg == stat {
            return;
        }
        self.st.reg = stat;
        if self.silent() {
            return;
        }
        for (name, n) in [
            ("+CREG", self.st.creg_n),
            ("+CGREG", self.st.cgreg_n),
            ("+CEREG", self.st.cereg_n),
        ] {
            if n >= 1 {
                let fields = self.reg_fields(n);
                self.line(&format!("{name}: {fields}"));
            }
        }
    }

    fn byte(&mut self, b: u8, storage: &mut BTreeMap<u16, Stored>) {
        if self.silent() {
            return;
        }
        if let Some(sms) = self.sms_input.as_mut() {
            if self.st.echo && b != CTRL_Z && b != ESC {
                let _ = self.out.send(vec![b]);
            }
            match b {
                CTRL_Z => {
                    if let Some(sms) = self.sms_input.take() {
                        self.submit(sms);
                    }
                }
                ESC => {
                    self.sms_input = None;
                    self.line("OK");
                }
                _ if sms.body.len() < 2048 => sms.body.push(b),
                _ => {}
            }
            return;
        }
        if b == ESC {
            // Outside the SMS prompt an ESC abandons what was typed so far.
            self.input.clear();
            return;
        }
        if self.st.echo {
            let _ = self.out.send(vec![b]);
        }
        match b {
            b'\r' => {
                let line = String::from_utf8_lossy(&self.input).trim().to_string();
                self.input.clear();
                if !line.is_empty() {
                    self.command(&line, storage);
                }
            }
            b'\n' => {}
            _ if self.input.len() < 1024 => self.input.push(b),
            _ => {}
        }
    }

    fn needs_sim(&self, sms: bool) -> bool {
        let (code, words) = match self.st.sim {
            Sim::Ready => return true,
            Sim::Absent => (10, "SIM not inserted"),
            Sim::Pin { .. } => (11, "SIM PIN required"),
            Sim::Puk => (12, "SIM PUK required"),
        };
        if sms {
            self.cms(300 + code, words);
        } else {
            self.cme(code, words);
        }
        false
    }

    fn command(&mut self, line: &str, storage: &mut BTreeMap<u16, Stored>) {
        if let Ok(mut s) = self.shared.lock() {
            // Never keep a PIN, even in the simulator's log.
            let logged = if line.to_ascii_uppercase().starts_with("AT+CPIN=") {
                "AT+CPIN=<pin>".to_string()
            } else {
                line.to_string()
            };
            s.commands.push(logged);
        }
        let upper = line.to_ascii_uppercase();
        if !upper.starts_with("AT") {
            self.line("ERROR");
            return;
        }
        // "AT" is ASCII, so byte 2 is a character boundary in both.
        let cmd = line.get(2..).unwrap_or("");
        let ucmd = upper.get(2..).unwrap_or("");
        let quectel = self.cfg.model == Model::QuectelEc25;
        let arg = |p: &str| -> Option<String> {
            ucmd.strip_prefix(p)
                .and_then(|_| cmd.get(p.len()..))
                .map(str::to_string)
        };
        match ucmd {
            "" => self.line("OK"),
            "E0" => {
                self.st.echo = false;
                self.line("OK");
            }
            "E1" | "E" => {
                self.st.echo = true;
                self.line("OK");
            }
            "I" => {
                let (maker, model, revision) = self.cfg.model.identity();
                self.line(&format!("{maker}\r\n{model}\r\n{revision}"));
                self.line("OK");
            }
            // V.250 §6.1.1/6.1.2: back to the stored (here factory) profile.
            "Z" | "Z0" | "&F" | "&F0" => {
                self.st.echo = true;
                self.st.cmee = 0;
                self.st.cmgf = 0;
                self.st.cscs = "GSM";
                self.line("OK");
            }
            // TS 27.007 §5: identification (and the V.250 +G forms).
            "+CGMI" | "+GMI" => self.info(self.cfg.model.identity().0),
            "+CGMM" | "+GMM" => self.info(self.cfg.model.identity().1),
            "+CGMR" | "+GMR" => self.info(self.cfg.model.identity().2),
            "+CGSN" | "+GSN" => self.info("867698041234567"),
            "+CIMI" => {
                if self.needs_sim(false) {
                    self.info("240011234567890");
                }
            }
            // TS 27.007 §5.5: TE character set.
            "+CSCS?" => self.info(&format!("+CSCS: \"{}\"", self.st.cscs)),
            "+CSCS=?" => self.info("+CSCS: (\"GSM\",\"IRA\",\"UCS2\")"),
            // TS 27.007 §7.3: operator selection.
            "+COPS?" => {
                if self.st.reg.is_registered() {
                    let (f, name) = match self.st.cops_format {
                        1 => (1, "SimOp"),
                        2 => (2, "24001"),
                        _ => (0, "Sim Operator"),
                    };
                    self.info(&format!("+COPS: 0,{f},\"{name}\",7"));
                } else {
                    self.info("+COPS: 0");
                }
            }
            "+COPS=?" => {
                if self.needs_sim(false) {
                    self.info("+COPS: (2,\"Sim Operator\",\"SimOp\",\"24001\",7),,(0-4),(0-2)");
                }
            }
            "+CMEE?" => self.info(&format!("+CMEE: {}", self.st.cmee)),
            "+CMGF?" => self.info(&format!("+CMGF: {}", self.st.cmgf)),
            "+CMGF=?" => self.info("+CMGF: (0,1)"),
            // TS 27.005 §3.2.3: service centre address.
            "+CSCA?" => {
                if self.needs_sim(true) {
                    self.info("+CSCA: \"+46705008999\",145");
                }
            }
            // TS 27.005 §3.2.2: one store ("SM", 50 places) for reading, writing and receiving.
            "+CPMS?" => {
                let used = storage.len();
                self.info(&format!(
                    "+CPMS: \"SM\",{used},50,\"SM\",{used},50,\"SM\",{used},50"
                ));
            }
            "+CPMS=?" => self.info("+CPMS: (\"SM\"),(\"SM\"),(\"SM\")"),
            "+CLIP?" => self.info(&format!("+CLIP: {},1", u8::from(self.st.clip))),
            // Test commands (`=?`): the values each command takes (TS 27.007 / 27.005).
            "+CMEE=?" => self.info("+CMEE: (0-2)"),
            "+CREG=?" => self.info("+CREG: (0-2)"),
            "+CEREG=?" => self.info("+CEREG: (0-2)"),
            "+CLIP=?" => self.info("+CLIP: (0,1)"),
            "+CRC=?" => self.info("+CRC: (0,1)"),
            "+CRC?" => self.info(&format!("+CRC: {}", u8::from(self.st.crc))),
            "+CSQ=?" => self.info("+CSQ: (0-31,99),(0-7,99)"),
            "+CFUN=?" => self.info("+CFUN: (0,1,4),(0,1)"),
            "+CMGL=?" => self.info("+CMGL: (0-4)"),
            "+CNMI=?" => self.info("+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)"),
            "+CHUP=?" | "+CLCC=?" | "+CPIN=?" | "+CMGS=?" | "+CMGR=?" | "+CIMI=?" | "+CGMI=?"
            | "+CGMM=?" | "+CGMR=?" | "+CGSN=?" => self.line("OK"),
            "+CSQ" => {
                let rssi = if self.st.reg.is_registered() {
                    self.cfg.rssi
                } else {
                    99
                };
                self.line(&format!("+CSQ: {rssi},99"));
                self.line("OK");
            }
            "+CPIN?" if self.take_sim_busy() => self.cme(14, "SIM busy"),
            "+CPIN?" => match self.st.sim {
                Sim::Absent => self.cme(10, "SIM not inserted"),
                s => {
                    self.line(match s {
                        Sim::Ready => "+CPIN: READY",
                        Sim::Pin { .. } => "+CPIN: SIM PIN",
                        _ => "+CPIN: SIM PUK",
                    });
                    self.line("OK");
                }
            },
            "+CREG?" => {
                let f = self.reg_fields(self.st.creg_n);
                self.info(&format!("+CREG: {},{f}", self.st.creg_n));
            }
            "+CGREG?" => {
                let f = self.reg_fields(self.st.cgreg_n);
                self.info(&format!("+CGREG: {},{f}", self.st.cgreg_n));
            }
            "+CEREG?" => {
                let f = self.reg_fields(self.st.cereg_n);
                self.info(&format!("+CEREG: {},{f}", self.st.cereg_n));
            }
            "+CGREG=?" => self.info("+CGREG: (0-2)"),
            // TS 27.007 §10.1.9: packet service attached once registered.
            "+CGATT?" => {
                let attached = u8::from(self.st.reg.is_registered());
                self.info(&format!("+CGATT: {attached}"));
            }
            "+CGATT=?" => self.info("+CGATT: (0,1)"),
            "+CFUN?" => {
                self.line("+CFUN: 1");
                self.line("OK");
            }
            "+CFUN=1,1" => {
                self.line("OK");
                self.reset();
            }
            "+CLCC" => {
                if let Some(c) = &self.st.call {
                    self.line(&format!(
                        "+CLCC: 1,{},{},0,0,\"{}\",{}",
                        u8::from(c.incoming),
                        c.state.code(),
                        c.number,
                        if c.number.starts_with('+') { 145 } else { 129 }
                    ));
                }
                self.line("OK");
            }
            "A" => self.answer(),
            "H" | "+CHUP" => {
                self.end_call(None);
                self.line("OK");
            }
            _ => {
                if let Some(v) = arg("+CMEE=") {
                    self.set_u8(&v, 2, |s, n| s.cmee = n);
                } else if let Some(v) = arg("+CREG=") {
                    self.set_u8(&v, 2, |s, n| s.creg_n = n);
                } else if let Some(v) = arg("+CEREG=") {
                    self.set_u8(&v, 2, |s, n| s.cereg_n = n);
                } else if let Some(v) = arg("+CGREG=") {
                    self.set_u8(&v, 2, |s, n| s.cgreg_n = n);
                } else if let Some(v) = arg("+CMGF=") {
                    self.set_u8(&v, 1, |s, n| s.cmgf = n);
                } else if let Some(v) = arg("+CRC=") {
                    self.set_u8(&v, 1, |s, n| s.crc = n == 1);
                } else if let Some(v) = arg("+CLIP=") {
                    self.set_u8(&v, 1, |s, n| s.clip = n == 1);
                } else if let Some(v) = arg("+QTONEDET=").filter(|_| quectel) {
                    self.set_u8(&v, 1, |s, n| s.tonedet = n == 1);
                } else if let Some(v) = arg("+DDET=").filter(|_| !quectel) {
                    // <mode>[,<interval>][,<reportMode>]: only the mode matters here.
                    let mode = v.split(',').next().unwrap_or("").to_string();
                    self.set_u8(&mode, 1, |s, n| s.tonedet = n == 1);
                } else if let Some(v) = arg("+CDTAM=").filter(|_| !quectel) {
                    self.set_u8(&v, 1, |s, n| s.speech_to_far_end = n == 1);
                } else if let Some((setting, params)) = audio_setting(ucmd, quectel) {
                    self.audio(ucmd, setting, params);
                } else if ucmd == "+CPCMREG=?" && !quectel {
                    self.info("+CPCMREG: (0,1)");
                } else if ucmd == "+CPCMREG?" && !quectel {
                    self.info(&format!("+CPCMREG: {}", u8::from(self.st.pcmreg)));
                } else if let Some(v) = arg("+CPCMREG=").filter(|_| !quectel) {
                    self.pcmreg(&v);
                } else if ucmd == "+QPCMV=?" && quectel {
                    self.info("+QPCMV: (0,1),(0-2)");
                } else if ucmd == "+QPCMV?" && quectel {
                    let (enable, port) = self.st.qpcmv;
                    self.info(&format!("+QPCMV: {enable},{port}"));
                } else if let Some(v) = arg("+QPCMV=").filter(|_| quectel) {
                    self.qpcmv(&v);
                } else if let Some(v) = arg("+CNMI=") {
                    let mt = super::at::fields(&v)
                        .get(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    self.st.cnmi_mt = mt;
                    self.line("OK");
                } else if let Some(v) = arg("+CSCS=") {
                    match v.trim().trim_matches('"').to_ascii_uppercase().as_str() {
                        "GSM" => self.st.cscs = "GSM",
                        "IRA" => self.st.cscs = "IRA",
                        "UCS2" => self.st.cscs = "UCS2",
                        _ => return self.cme(4, "operation not supported"),
                    }
                    self.line("OK");
                } else if let Some(v) = arg("+CPMS=") {
                    let stores = super::at::fields(&v);
                    if stores.is_empty() || stores.iter().any(|s| !s.eq_ignore_ascii_case("SM")) {
                        self.cms(302, "operation not allowed");
                    } else {
                        let used = storage.len();
                        self.info(&format!("+CPMS: {used},50,{used},50,{used},50"));
                    }
                } else if let Some(v) = arg("+COPS=") {
                    // Automatic (0) or a request to deregister (2) are taken; manual
                    // selection of another network is refused.
                    let fields: Vec<&str> = v.split(',').map(str::trim).collect();
                    match (fields.first().copied(), fields.get(1).copied()) {
                        (Some("3"), Some(f @ ("0" | "1" | "2"))) => {
                            self.st.cops_format = f.parse().unwrap_or(0);
                            self.line("OK");
                        }
                        (Some("0" | "2"), _) => self.line("OK"),
                        _ => self.cme(3, "operation not allowed"),
                    }
                } else if arg("+VTD=").is_some() || arg("+CFUN=").is_some() {
                    self.line("OK");
                } else if let Some(v) = arg("+CPIN=") {
                    self.enter_pin(&v);
                } else if let Some(v) = arg("+CMGS=") {
                    self.cmgs(&v);
                } else if let Some(v) = arg("+CMGR=") {
                    self.cmgr(&v, storage);
                } else if let Some(v) = arg("+CMGL=") {
                    self.cmgl(&v, storage);
                } else if let Some(v) = arg("+CMGD=") {
                    match v
                        .trim()
                        .parse::<u16>()
                        .ok()
                        .and_then(|i| storage.remove(&i))
                    {
                        Some(_) => self.line("OK"),
                        None => self.cms(321, "invalid memory index"),
                    }
                } else if let Some(v) = arg("D") {
                    self.dial(&v);
                } else if let Some(v) = arg("+VTS=") {
                    self.vts(&v);
                } else if let Some(v) = arg("+QTTS=").filter(|_| quectel) {
                    self.tts(&v);
                } else if let Some(v) = arg("+CTTS=").filter(|_| !quectel) {
                    self.tts(&v);
                } else {
                    self.line("ERROR");
                }
            }
        }
    }

    /// An information response and its final OK.
    fn info(&mut self, text: &str) {
        self.line(text);
        self.line("OK");
    }

    /// An audio setting's test (`=?`: its ranges), read (`?`: its values) or write command:
    /// every value must be inside its parameter's range or list, else +CME ERROR 50
    /// (TS 27.007 §9.2.1, "Incorrect parameters").
    fn audio(&mut self, ucmd: &str, setting: &'static str, params: &[Param]) {
        let rest = &ucmd[setting.len()..];
        if rest == "=?" {
            let ranges: Vec<String> = params.iter().map(Param::test).collect();
            self.info(&format!("{setting}: {}", ranges.join(",")));
        } else if rest == "?" {
            let values = self
                .st
                .audio
                .get(setting)
                .cloned()
                .unwrap_or_else(|| params.iter().map(Param::default_value).collect());
            let values: Vec<String> = values.iter().map(u32::to_string).collect();
            self.info(&format!("{setting}: {}", values.join(",")));
        } else if let Some(v) = rest.strip_prefix('=') {
            let values: Option<Vec<u32>> = v
                .split(',')
                .map(|n| match n.trim().strip_prefix("0X") {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => n.trim().parse().ok(),
                })
                .collect();
            match values {
                Some(values)
                    if values.len() == params.len()
                        && values.iter().zip(params).all(|(v, p)| p.admits(*v)) =>
                {
                    self.st.audio.insert(setting, values);
                    if let Ok(mut s) = self.shared.lock() {
                        s.audio = self.st.audio.clone();
                    }
                    self.line("OK");
                }
                _ => self.cme(50, "Incorrect parameters"),
            }
        } else {
            self.cme(4, "operation not supported");
        }
    }

    fn set_u8(&mut self, v: &str, max: u8, set: impl FnOnce(&mut State, u8)) {
        match v.trim().parse::<u8>() {
            Ok(n) if n <= max => {
                set(&mut self.st, n);
                self.line("OK");
            }
            _ => self.cme(4, "operation not supported"),
        }
    }

    fn enter_pin(&mut self, v: &str) {
        let given = v.trim().trim_matches('"');
        match self.st.sim {
            Sim::Pin { tries } => {
                let right = !self.has(&Fault::WrongPin) && self.cfg.pin.as_deref() == Some(given);
                if right {
                    self.st.sim = Sim::Ready;
                    self.line("OK");
                    self.line("+CPIN: READY");
                    self.start_registration();
                } else {
                    self.st.sim = if tries <= 1 {
                        Sim::Puk
                    } else {
                        Sim::Pin { tries: tries - 1 }
                    };
                    self.cme(16, "incorrect password");
                }
            }
            Sim::Absent => self.cme(10, "SIM not inserted"),
            Sim::Puk => self.cme(12, "SIM PUK required"),
            Sim::Ready => self.cme(3, "operation not allowed"),
        }
    }

    fn cmgs(&mut self, v: &str) {
        if !self.needs_sim(true) {
            return;
        }
        if !self.st.reg.is_registered() {
            self.cms(331, "no network service");
            return;
        }
        let v = v.trim();
        let input = if self.st.cmgf == 0 {
            match v.parse::<usize>() {
                Ok(n) if (7..=164).contains(&n) => SmsInput {
                    pdu_len: Some(n),
                    to: None,
                    body: Vec::new(),
                },
                _ => {
                    self.cms(304, "invalid PDU mode parameter");
                    return;
                }
            }
        } else {
            let to = super::at::fields(v).into_iter().next().unwrap_or_default();
            if to.is_empty() {
                self.cms(302, "operation not allowed");
                return;
            }
            SmsInput {
                pdu_len: None,
                to: Some(to),
                body: Vec::new(),
            }
        };
        self.sms_input = Some(input);
        // TS 27.005 §3.5.1: the prompt is CR LF '>' space, with no line end after it.
        self.write(b"\r\n> ");
    }

    fn submit(&mut self, sms: SmsInput) {
        if self.has(&Fault::RebootOnSms) {
            self.faults.retain(|f| *f != Fault::RebootOnSms);
            self.reset();
            return;
        }
        let pending = self
            .faults
            .iter()
            .position(|f| matches!(f, Fault::CmsError { .. }));
        if let Some(i) = pending {
            if let Some(Fault::CmsError { code, count }) = self.faults.get(i).cloned() {
                if count <= 1 {
                    self.faults.remove(i);
                } else if let Some(f) = self.faults.get_mut(i) {
                    *f = Fault::CmsError {
                        code,
                        count: count - 1,
                    };
                }
                self.cms(code, "network error");
                return;
            }
        }
        let body = String::from_utf8_lossy(&sms.body).trim().to_string();
        let (to, text, concat) = match (sms.pdu_len, sms.to) {
            (Some(n), _) => match pdu::decode_submit(&body) {
                Ok(s) if s.tpdu_len == n => (s.to, s.text, s.concat),
                _ => {
                    self.cms(304, "invalid PDU mode parameter");
                    return;
                }
            },
            (None, Some(to)) => {
                if body.chars().count() > pdu::MAX_SEPTETS {
                    self.cms(305, "invalid text mode parameter");
                    return;
                }
                (to, body, None)
            }
            (None, None) => {
                self.cms(500, "unknown error");
                return;
            }
        };
        let delivered = self.net.submit(&self.cfg.number, &to, &text, concat);
        let mr = NEXT_MR.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if delivered {
            let t = self.cfg.timing.cmgs;
            self.after(t, Timer::Urc(format!("+CMGS: {mr}")));
            self.after(t, Timer::Final("OK".into()));
        } else {
            // Lost by the network after the SMSC took it: the module still says sent.
            self.after(self.cfg.timing.cmgs, Timer::Urc(format!("+CMGS: {mr}")));
            self.after(self.cfg.timing.cmgs, Timer::Final("OK".into()));
        }
    }

    fn cmgr(&mut self, v: &str, storage: &mut BTreeMap<u16, Stored>) {
        let Some(msg) = v
            .trim()
            .parse::<u16>()
            .ok()
            .and_then(|i| storage.get_mut(&i))
        else {
            self.cms(321, "invalid memory index");
            return;
        };
        let stat = u8::from(msg.read);
        msg.read = true;
        let (from, text) = (msg.from.clone(), msg.text.clone());
        let now = chrono::Utc::now();
        if self.st.cmgf == 0 {
            match pdu::encode_deliver("+46700000999", &from, &text, now) {
                Ok(hex) => {
                    let tpdu_len = deliver_tpdu_len(&hex);
                    self.line(&format!("+CMGR: {stat},,{tpdu_len}\r\n{hex}"));
                    self.line("OK");
                }
                Err(_) => self.cms(500, "unknown error"),
            }
        } else {
            let st = if stat == 0 { "REC UNREAD" } else { "REC READ" };
            let ts = now.format("%y/%m/%d,%H:%M:%S+00");
            self.line(&format!("+CMGR: \"{st}\",\"{from}\",,\"{ts}\"\r\n{text}"));
            self.line("OK");
        }
    }

    /// `AT+CMGL=<stat>` in PDU mode: 0 unread, 1 read, 4 all (TS 27.005 §3.4.2).
    fn cmgl(&mut self, v: &str, storage: &mut BTreeMap<u16, Stored>) {
        let want: Option<u8> = v.trim().parse().ok();
        if self.st.cmgf != 0 || !matches!(want, Some(0 | 1 | 4)) {
            self.cms(302, "operation not allowed");
            return;
        }
        let now = chrono::Utc::now();
        for (index, msg) in storage.iter_mut() {
            let stat = u8::from(msg.read);
            if want != Some(4) && want != Some(stat) {
                continue;
            }
            msg.read = true;
            if let Ok(hex) = pdu::encode_deliver("+46700000999", &msg.from, &msg.text, now) {
                let tpdu_len = deliver_tpdu_len(&hex);
                self.line(&format!("+CMGL: {index},{stat},,{tpdu_len}\r\n{hex}"));
            }
        }
        self.line("OK");
    }

    fn dial(&mut self, v: &str) {
        let v = v.trim();
        let Some(dialled) = v.strip_suffix(';') else {
            // Data calls are not offered by this module.
            self.line("NO CARRIER");
            return;
        };
        // V.250 §6.3.1 dial modifiers (T tone, P pulse, W, comma, !, @) mean nothing on a
        // mobile network (TS 27.007 §6.2): they are ignored, the digits dialled.
        let number: String = dialled
            .chars()
            .filter(|c| !matches!(c.to_ascii_uppercase(), 'T' | 'P' | 'W' | ',' | '!' | '@'))
            .collect();
        let number = number.as_str();
        if !self.needs_sim(false) {
            return;
        }
        if !self.st.reg.is_registered() {
            self.cme(30, "no network service");
            return;
        }
        if self.st.call.is_some() || number.is_empty() {
            self.cme(3, "operation not allowed");
            return;
        }
        let (id, far) = self.net.dial(number, self.net_tx.clone());
        self.st.call = Some(Call {
            id,
            incoming: false,
            state: CallState::Dialing,
            number: number.to_string(),
            far: Some(far),
        });
        // TS 27.007 §6.27 (ATD;): OK as soon as dialling starts, not when answered.
        self.line("OK");
    }

    fn answer(&mut self) {
        match self.st.call.as_mut() {
            Some(c) if c.incoming && c.state == CallState::Incoming => {
                c.state = CallState::Active;
                let id = c.id;
                self.net.to_caller(id, ToParty::Answered);
                self.usb_voice();
                self.line("OK");
            }
            _ => self.line("NO CARRIER"),
        }
    }

    fn active(&self) -> bool {
        self.st
            .call
            .as_ref()
            .is_some_and(|c| c.state == CallState::Active)
    }

    /// Quectel `AT+QPCMV=<enable>[,<port>]`: voice over USB, kept across calls until the
    /// module powers off. Values outside `(0,1),(0-2)` are +CME ERROR 50 ("Incorrect
    /// parameters", TS 27.007 §9.2.1), as for the audio settings; the audio class port on a
    /// module without one is +CME ERROR 4.
    fn qpcmv(&mut self, v: &str) {
        let fields: Vec<Option<u8>> = v.split(',').map(|f| f.trim().parse().ok()).collect();
        let (enable, port) = match fields.as_slice() {
            [Some(e)] => (*e, self.st.qpcmv.1),
            [Some(e), Some(p)] => (*e, *p),
            _ => return self.cme(50, "Incorrect parameters"),
        };
        if enable > 1 || port > 2 {
            return self.cme(50, "Incorrect parameters");
        }
        if enable == 1 && port == 2 && self.has(&Fault::NoUsbAudio) {
            return self.cme(4, "operation not supported");
        }
        self.st.qpcmv = (enable, port);
        if let Ok(mut s) = self.shared.lock() {
            s.audio
                .insert("+QPCMV", vec![u32::from(enable), u32::from(port)]);
        }
        self.usb_voice();
        self.line("OK");
    }

    /// Quectel's voice over USB: while `AT+QPCMV=1,2` holds, an active call's audio is on
    /// the USB audio card (the simulation's stream standing in for it), and only then.
    fn usb_voice(&self) {
        if self.cfg.model != Model::QuectelEc25 {
            return;
        }
        if let Some(a) = &self.audio {
            a.set_streaming(self.st.qpcmv == (1, 2) && self.active());
        }
    }

    /// SIMCom `AT+CPCMREG=<0|1>`: voice over USB, started once a call is connected and
    /// stopped before the next; starting it twice, or with no call up, is refused.
    fn pcmreg(&mut self, v: &str) {
        match v.trim() {
            "1" if self.st.pcmreg || !self.active() => self.cme(3, "operation not allowed"),
            "1" => {
                self.st.pcmreg = true;
                if let Some(a) = &self.audio {
                    a.set_streaming(true);
                }
                self.line("OK");
            }
            "0" => {
                self.st.pcmreg = false;
                if let Some(a) = &self.audio {
                    a.set_streaming(false);
                }
                self.line("OK");
            }
            _ => self.cme(4, "operation not supported"),
        }
    }

    fn vts(&mut self, v: &str) {
        if !self.active() {
            self.cme(3, "operation not allowed");
            return;
        }
        let digits: String = match self.cfg.model {
            Model::QuectelEc25 => v
                .split(',')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"')
                .to_string(),
            // SIM7600 manual: the digits quoted and separated by commas ("1,3,5"), at most
            // 29 characters; a run of digits without commas is not its form.
            Model::SimcomSim7600 => {
                let list = v.trim().trim_matches('"');
                let parts: Vec<&str> = list.split(',').map(str::trim).collect();
                if list.len() > 29 || parts.iter().any(|p| p.chars().count() != 1) {
                    self.cme(4, "operation not supported");
                    return;
                }
                parts.concat()
            }
        };
        if digits.is_empty()
            || !digits
                .chars()
                .all(|c| matches!(c, '0'..='9' | '*' | '#' | 'A'..='D'))
        {
            self.cme(4, "operation not supported");
            return;
        }
        if let Some(far) = self.st.call.as_ref().and_then(|c| c.far.as_ref()) {
            let _ = far.send(ToParty::Dtmf(digits.clone()));
        }
        let n = digits.chars().count() as u32;
        self.after(self.cfg.timing.dtmf_digit * n, Timer::Final("OK".into()));
    }

    fn tts(&mut self, v: &str) {
        let f = super::at::fields(v);
        let text = f.get(1).cloned().unwrap_or_default();
        if f.first().map(String::as_str) != Some("2") || text.is_empty() {
            self.cme(4, "operation not supported");
            return;
        }
        // SIMCom plays to the local speaker unless `AT+CDTAM=1` sent it to the far end.
        let heard_far = match self.cfg.model {
            Model::QuectelEc25 => true,
            Model::SimcomSim7600 => self.st.speech_to_far_end,
        };
        if let Some(far) = self
            .st
            .call
            .as_ref()
            .filter(|c| c.state == CallState::Active && heard_far)
            .and_then(|c| c.far.as_ref())
        {
            let _ = far.send(ToParty::Speech(text));
        }
        self.line("OK");
        let done = match self.cfg.model {
            Model::QuectelEc25 => "+QTTS: 0",
            Model::SimcomSim7600 => "+CTTS: 0",
        };
        self.after(self.cfg.timing.tts, Timer::Urc(done.into()));
    }

    fn ring(&self) {
        self.line(if self.st.crc { "+CRING: VOICE" } else { "RING" });
        if self.st.clip {
            if let Some(c) = &self.st.call {
                let toa = if c.number.starts_with('+') { 145 } else { 129 };
                self.line(&format!("+CLIP: \"{}\",{toa},\"\",0,\"\",0", c.number));
            }
        }
    }

    /// Ends the current call; `cause` is the far end's reason (None: ended here).
    fn end_call(&mut self, cause: Option<EndCause>) {
        let Some(c) = self.st.call.take() else { return };
        if let Some(a) = &self.audio {
            a.set_streaming(false);
            a.call_ended();
        }
        if cause.is_none() {
            if let Some(far) = &c.far {
                let _ = far.send(ToParty::Hangup);
            }
            if c.incoming {
                self.net.to_caller(c.id, ToParty::Hangup);
            }
        }
    }

    fn network(&mut self, ev: ToModem, storage: &mut BTreeMap<u16, Stored>) {
        if !self.st.powered || !self.st.booted {
            if let ToModem::Progress { .. } | ToModem::Incoming { .. } = ev {
                return;
            }
        }
        match ev {
            ToModem::Sms { from, text } => {
                // The SIM stores it even while the firmware is hung; the URC needs a live one.
                let index = (1..=30u16).find(|i| !storage.contains_key(i));
                let Some(index) = index else { return };
                storage.insert(
                    index,
                    Stored {
                        from,
                        text,
                        read: false,
                    },
                );
                if !self.silent() && self.st.cnmi_mt == 1 {
                    self.line(&format!("+CMTI: \"SM\",{index}"));
                }
            }
            ToModem::Incoming { call, from } => {
                if self.st.call.is_some() || !self.st.reg.is_registered() {
                    self.net.to_caller(call, ToParty::Hangup);
                    return;
                }
                self.st.call = Some(Call {
                    id: call,
                    incoming: true,
                    state: CallState::Incoming,
                    number: from,
                    far: None,
                });
                if !self.silent() {
                    self.ring();
                }
                self.after(self.cfg.timing.ring_repeat, Timer::Ring(call));
            }
            ToModem::Progress { call, progress } => {
                let Some(c) = self.st.call.as_mut().filter(|c| c.id == call) else {
                    return;
                };
                match progress {
                    Progress::Alerting => c.state = CallState::Alerting,
                    Progress::Active => {
                        c.state = CallState::Active;
                        self.usb_voice();
                    }
                    Progress::Ended(cause) => {
                        self.end_call(Some(cause));
                        if !self.silent() {
                            self.line(match cause {
                                EndCause::Busy => "BUSY",
                                EndCause::NoAnswer => "NO ANSWER",
                                EndCause::NoCarrier => "NO CARRIER",
                            });
                        }
                    }
                }
            }
            ToModem::Dtmf { call, digit } => {
                if self.in_call(call) && self.st.tonedet && !self.silent() {
                    match self.cfg.model {
                        Model::QuectelEc25 => {
                            self.line(&format!("+QTONEDET: {}", u32::from(digit)));
                        }
                        Model::SimcomSim7600 => {
                            self.line(&format!("+RXDTMF: {digit}"));
                        }
                    }
                }
            }
            ToModem::Echo { call } => {
                if let Some(a) = self.audio.as_ref().filter(|_| self.in_call(call)) {
                    a.echo();
                }
            }
            ToModem::ToneStart { call, hz, ms } => {
                // Only the call's audio carries it: the voice port, while streaming.
                if let Some(a) = self.audio.as_ref().filter(|_| self.in_call(call)) {
                    a.far_tone(hz, ms);
                }
            }
            ToModem::Tone { call, hz, ms } => {
                // Quectel reports the Contact ID tones as codes 69 (1400 Hz) and 70 (2300 Hz)
                // with their persistence time in ms, when the tone ends; it hears no others.
                // SIMCom's detector hears DTMF only.
                let code = match hz {
                    1400 => Some(69),
                    2300 => Some(70),
                    _ => None,
                };
                if let Some(code) = code.filter(|_| self.cfg.model == Model::QuectelEc25) {
                    if self.in_call(call) && self.st.tonedet && !self.silent() {
                        self.line(&format!("+QTONEDET: {code},{ms}"));
                    }
                }
            }
        }
    }

    fn in_call(&self, id: u32) -> bool {
        self.st
            .call
            .as_ref()
            .is_some_and(|c| c.id == id && c.state == CallState::Active)
    }
}

/// `<length>` of `+CMGR`/`+CMGL` in PDU mode: TPDU octets, the SMSC field not counted.
fn deliver_tpdu_len(hex: &str) -> usize {
    let smsc_octets = hex
        .get(..2)
        .and_then(|h| usize::from_str_radix(h, 16).ok())
        .unwrap_or(0);
    (hex.len() / 2).saturating_sub(1 + smsc_octets)
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// `vigil modem-sim`: a simulated module and network for trying Vigil or a terminal program
/// (`picocom`, `minicom`) against; prints the pty path and the network's log.
#[derive(Clone, Debug, clap::Args)]
pub struct SimArgs {
    /// The simulated SIM's number.
    #[arg(long, default_value = "+46700000001")]
    pub number: String,
    /// A PIN the simulated SIM asks for.
    #[arg(long)]
    pub pin: Option<String>,
    /// Number of the SMS acknowledgement gateway.
    #[arg(long, default_value = "+46700000010")]
    pub sms_gateway: String,
    /// The gateway's shared secret (a simulator value, not a real one).
    #[arg(long, default_value = "demo-secret")]
    pub secret: String,
    /// Number of a person who answers and presses `--key`.
    #[arg(long, default_value = "+46700000020")]
    pub person: String,
    /// The key the person presses.
    #[arg(long, default_value_t = '1')]
    pub key: char,
    /// Number of a Contact ID receiving centre.
    #[arg(long, default_value = "+46700000030")]
    pub centre: String,
    /// Short delays (a phone picked up in 60 ms) instead of a real module's and network's (12 s
    /// to boot, 4 s of ringing).
    #[arg(long)]
    pub fast: bool,
    /// The module to simulate: `quectel` (EC25) or `simcom` (SIM7600).
    #[arg(long, default_value = "quectel", value_parser = parse_model)]
    pub model: Model,
}

fn parse_model(s: &str) -> Result<Model, String> {
    match s.to_ascii_lowercase().as_str() {
        "quectel" | "ec25" => Ok(Model::QuectelEc25),
        "simcom" | "sim7600" => Ok(Model::SimcomSim7600),
        other => Err(format!(
            "`{other}` is not a simulated module; allowed: quectel, simcom"
        )),
    }
}

impl SimArgs {
    /// Starts the world these arguments describe (on the current tokio runtime).
    pub fn start(&self) -> Result<SimWorld, ModemError> {
        let mut cfg = SimConfig::new(&self.number);
        cfg.model = self.model;
        cfg.pin = self.pin.clone();
        if !self.fast {
            cfg.timing = SimTiming::real();
            cfg.network = super::network::NetTiming::real();
        }
        let w = SimWorld::start(cfg)?;
        use super::network::{CidCentre, Party, Person, Reply, Responder};
        w.network.add(
            &self.sms_gateway,
            Party::Responder(Responder {
                secret: self.secret.clone(),
                reply: Reply::Valid,
            }),
        );
        w.network
            .add(&self.person, Party::Person(Person::accepting(self.key)));
        w.network
            .add(&self.centre, Party::Centre(CidCentre::working()));
        Ok(w)
    }
}

/// Runs `vigil modem-sim` until Ctrl-C.
pub fn run_cli(args: SimArgs) -> Result<std::process::ExitCode, ModemError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let w = args.start()?;
        println!("simulated module on {}", w.module.path());
        if let Some(voice) = w.module.voice_port() {
            println!("its voice port (AT+CPCMREG, PCM 8 kHz 16-bit) on {voice}");
        }
        println!(
            "SIM {}; SMS gateway {}; person {} (presses {}); Contact ID centre {}",
            args.number, args.sms_gateway, args.person, args.key, args.centre
        );
        let mut shown = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tick.tick() => {
                    let records = w.network.records();
                    for r in records.iter().skip(shown) {
                        println!("network: {r:?}");
                    }
                    shown = records.len();
                }
            }
        }
        Ok(std::process::ExitCode::SUCCESS)
    })
}

/// One parameter of an audio setting: a range, or a list of values.
#[derive(Debug)]
enum Param {
    Range(u32, u32),
    OneOf(&'static [u32]),
}

impl Param {
    fn admits(&self, v: u32) -> bool {
        match self {
            Param::Range(lo, hi) => (*lo..=*hi).contains(&v),
            Param::OneOf(list) => list.contains(&v),
        }
    }

    fn test(&self) -> String {
        match self {
            Param::Range(lo, hi) => format!("({lo}-{hi})"),
            Param::OneOf(list) => {
                let items: Vec<String> = list.iter().map(u32::to_string).collect();
                format!("({})", items.join(","))
            }
        }
    }

    fn default_value(&self) -> u32 {
        match self {
            Param::Range(lo, hi) => lo + (hi - lo) / 2,
            Param::OneOf(list) => list.first().copied().unwrap_or(0),
        }
    }
}

/// The audio settings each module takes, with its parameters. SIMCom SIM7600: TS 27.007's
/// `+CLVL` (0-5), `+CMICGAIN` and `+COUTGAIN` (0-8), `+CSDVC` (1 handset, 3 speakerphone).
/// Quectel EC25: `+CLVL` (0-5), `+QMIC` (analog and digital uplink gain, 0-65535 each),
/// `+QRXGAIN` (0-65535), `+QAUDMOD` (0 handset, 1 headset, 2 speaker, 3 off, 4 Bluetooth,
/// 5 none), `+QSIDET` (0-65535) and `+QEEC` (parameter index, value).
fn audio_setting(ucmd: &str, quectel: bool) -> Option<(&'static str, &'static [Param])> {
    const SIMCOM: &[(&str, &[Param])] = &[
        ("+CLVL", &[Param::Range(0, 5)]),
        ("+CMICGAIN", &[Param::Range(0, 8)]),
        ("+COUTGAIN", &[Param::Range(0, 8)]),
        ("+CSDVC", &[Param::OneOf(&[1, 3])]),
    ];
    const QUECTEL: &[(&str, &[Param])] = &[
        ("+CLVL", &[Param::Range(0, 5)]),
        ("+QMIC", &[Param::Range(0, 65535), Param::Range(0, 65535)]),
        ("+QRXGAIN", &[Param::Range(0, 65535)]),
        ("+QAUDMOD", &[Param::Range(0, 5)]),
        ("+QSIDET", &[Param::Range(0, 65535)]),
        ("+QEEC", &[Param::Range(0, 44), Param::Range(0, 65535)]),
    ];
    let table = if quectel { QUECTEL } else { SIMCOM };
    table.iter().find_map(|(name, params)| {
        let rest = ucmd.strip_prefix(name)?;
        (rest.is_empty() || rest.starts_with('=') || rest.starts_with('?'))
            .then_some((*name, *params))
    })
}
