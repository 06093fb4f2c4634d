//! Putting a unit together from its configuration: journal, core, routes, modem, radio and
//! voice, wired into one [`Unit`].
//!
//! A part that cannot start never stops the unit: a route whose receiver cannot be reached at
//! start is started again on its next delivery; a missing modem is opened again every 30 s
//! (cellular routes fail over meanwhile); missing audio gives a mute voice. Help still goes
//! out by whatever works.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{
    Adapters, CallControl, Clock, DeliveryFuture, PendantAcks, StatusReport, SystemClock,
    Transport, Unit, VoiceOut,
};
use crate::config::{Config, Transport as RouteConfig};
use crate::core::{
    AlarmId, Delivery, DeliveryResult, DeviceId, Input, Prompt, Timestamp, UnitFault,
};
use crate::journal::{Journal, JournalError};
use crate::modem::{Modem, ModemEvent, RemoteCommand, Timing};
use crate::radio::link::{LinkConfig, RadioHandle, RadioLink};
use crate::voice::Voice;

/// Why a unit could not be put together.
#[derive(Debug, thiserror::Error)]
pub enum ApplianceError {
    /// The journal could not be opened.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The journal could not be read back.
    #[error(transparent)]
    Runtime(#[from] super::RuntimeError),
}

/// Where the unit's sound goes.
#[derive(Clone)]
pub enum AudioChoice {
    /// The configured (or default) ALSA devices; mute with a logged reason if they fail.
    Devices,
    /// The simulated backend, writing what is played to WAV files in this folder.
    Simulated(std::path::PathBuf),
    /// No audio at all.
    Mute,
}

/// Options beyond the configuration file.
pub struct Options {
    /// Where sound goes.
    pub audio: AudioChoice,
    /// Modem timing: real, or fast against the simulator.
    pub modem_timing: Timing,
}

/// A unit ready to run, with the handles the caller may need.
pub struct Appliance {
    /// The loop; run it with [`Unit::run`].
    pub unit: Unit,
    /// Everything else; its tasks stop when it is dropped.
    pub parts: Parts,
}

/// The adapters' handles and background tasks around a unit.
pub struct Parts {
    /// The radio, while it works.
    pub radio: RadioSlot,
    /// The modem, once it is open.
    pub modem: ModemSlot,
    /// The voice.
    pub voice: Voice,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Parts {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The modem, once it could be opened; shared by the cellular routes and call control.
#[derive(Clone, Default)]
pub struct ModemSlot(Arc<Mutex<Option<Modem>>>);

impl ModemSlot {
    /// The modem, if open.
    pub fn get(&self) -> Option<Modem> {
        crate::sync::lock(&self.0).clone()
    }

    fn set(&self, modem: Modem) {
        *crate::sync::lock(&self.0) = Some(modem);
    }
}

/// Builds the unit for `config`. Must run inside a tokio runtime.
pub async fn assemble(config: &Config, options: Options) -> Result<Appliance, ApplianceError> {
    assemble_with_clock(config, options, Arc::new(SystemClock)).await
}

/// [`assemble`] with the core's wall clock given (the demo moves it forward).
pub async fn assemble_with_clock(
    config: &Config,
    options: Options,
    clock: Arc<dyn Clock>,
) -> Result<Appliance, ApplianceError> {
    // A journal that cannot be read is moved aside and a fresh one started: the unit runs,
    // and tells the centre what it lost.
    let (mut journal, lost) = Journal::open_or_replace(&config.data_dir, clock.clone())?;
    journal.set_route_names(config.routes.iter().map(|r| r.name.clone()).collect());

    // Pendants paired over the air join those in the configuration.
    let mut settings = config.core_settings();
    for (device, _) in journal.paired()? {
        if !settings.devices.iter().any(|d| d.id == device.id) {
            settings.devices.push(device);
        }
    }
    let (core, journal) = super::restore(settings, journal, clock.wall())?;

    let modem = ModemSlot::default();
    let audio_wanted = !matches!(options.audio, AudioChoice::Mute);
    let audio_choice = options.audio.clone();
    let voice = open_voice(config, options.audio, clock.clone());
    // While the unit speaks a prompt, a call's loudspeaker audio is held, then resumes.
    let speaking: crate::voice::speakerphone::Speaking = match voice.engine() {
        Some(engine) => {
            let engine = engine.clone();
            Arc::new(move || crate::voice::lock(&engine).is_speaking())
        }
        None => Arc::new(|| false),
    };
    let speakerphone = call_audio(config, &audio_choice, speaking);
    let sip_calls = Arc::new(SipCalls::new(config, speakerphone.clone()));
    let lazies: Vec<Arc<Lazy>> = config
        .routes
        .iter()
        .map(|r| Arc::new(lazy_route(config, r, &modem, &sip_calls, &clock)))
        .collect();
    let mut tasks = Vec::new();
    let routes = lazies
        .iter()
        .map(|l| Arc::new(l.clone()) as Arc<dyn Transport>)
        .collect();

    let mut status: Vec<Arc<dyn StatusReport>> = Vec::new();
    let radio = RadioSlot::default();
    status.push(Arc::new(radio.clone()));
    let pendants: Arc<dyn PendantAcks> = Arc::new(radio.clone());
    status.push(Arc::new(ModemStatus(modem.clone())));
    status.push(Arc::new(VoiceStatus(voice.clone())));

    let adapters = Adapters {
        status,
        routes,
        voice: Arc::new(voice.clone()),
        pendants,
        calls: Arc::new(Calls {
            modem: modem.clone(),
            sip: sip_calls,
            clock: clock.clone(),
        }),
    };
    let mut unit = Unit::new(core, journal, adapters, clock.clone());
    // IP routes start (and register with their centre) now, so the first alarm does not wait
    // for it; then their health is followed.
    let unregistered = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    for (i, (lazy, route)) in lazies.iter().zip(&config.routes).enumerate() {
        if !route.kind().uses_modem() {
            tasks.push(tokio::spawn(watch_route_health(
                lazy.clone(),
                crate::core::RouteId(i),
                unit.inputs(),
            )));
        }
        if route.kind() == crate::core::RouteKind::Scaip {
            tasks.push(tokio::spawn(watch_registration(
                lazy.clone(),
                crate::core::RouteId(i),
                unregistered.clone(),
                unit.inputs(),
            )));
        }
        if let Some(call) = CallRoute::of(&route.transport) {
            tasks.push(tokio::spawn(watch_call_route_fit(
                modem.clone(),
                call,
                crate::core::RouteId(i),
                unit.inputs(),
            )));
        }
    }
    unit.set_pairing(Arc::new(RadioPairing {
        slot: radio.clone(),
        window: config.radio.pairing_window,
        voice: voice.clone(),
    }));
    let inputs = unit.inputs();
    let control = unit.control();
    if let Some(lost) = &lost {
        tracing::error!(moved_to = %lost.moved_to.display(), why = %lost.why,
            "the journal was lost: open alarms in it cannot be resumed");
        let _ = inputs.try_send(Input::Fault {
            fault: UnitFault::JournalLost,
            active: true,
        });
    }
    // A unit that should speak but cannot: the person hears no prompt, so the centre must know.
    if let (true, Some(reason)) = (audio_wanted, voice.fault()) {
        tracing::error!(%reason, "audio output lost: the person cannot hear the base unit");
        let _ = inputs.try_send(Input::Fault {
            fault: UnitFault::Audio,
            active: true,
        });
    }

    tasks.push(tokio::spawn(keep_radio(
        config.clone(),
        radio.clone(),
        inputs.clone(),
        clock.clone(),
    )));

    if needs_modem(config) {
        tasks.push(tokio::spawn(keep_modem(
            config.clone(),
            options.modem_timing,
            modem.clone(),
            inputs.clone(),
            control.clone(),
            speakerphone,
        )));
    }

    Ok(Appliance {
        unit,
        parts: Parts {
            radio,
            modem,
            voice,
            tasks,
        },
    })
}

fn needs_modem(config: &Config) -> bool {
    !config.remote.allowed_numbers.is_empty() || config.routes.iter().any(|r| r.kind().uses_modem())
}

/// The unit's clock as the voice side sees it: wall time and the local time of day (quiet
/// hours), so a shifted clock (the demo) reaches the voice engine too.
struct VoiceClock(Arc<dyn Clock>);

impl crate::voice::Clock for VoiceClock {
    fn now(&self) -> Timestamp {
        self.0.wall()
    }

    fn local_minute_of_day(&self) -> u16 {
        use chrono::Timelike;
        let local = self.0.wall().to_utc().with_timezone(&chrono::Local);
        (local.hour() * 60 + local.minute()) as u16
    }
}

fn open_voice(config: &Config, audio: AudioChoice, clock: Arc<dyn Clock>) -> Voice {
    let settings = crate::voice::VoiceSettings::from_config(&config.audio, &config.unit);
    let clock: Arc<dyn crate::voice::Clock> = Arc::new(VoiceClock(clock));
    match audio {
        AudioChoice::Mute => Voice::mute("audio disabled", clock),
        AudioChoice::Simulated(dir) => {
            let backend = crate::voice::sim::SimAudio::real_time(crate::voice::sim::SimConfig {
                out_dir: Some(dir),
                ..Default::default()
            });
            Voice::open_or_mute(&settings, Box::new(backend), clock)
        }
        AudioChoice::Devices => device_voice(config, &settings, clock),
    }
}

#[cfg(feature = "alsa")]
fn device_voice(
    config: &Config,
    settings: &crate::voice::VoiceSettings,
    clock: Arc<dyn crate::voice::Clock>,
) -> Voice {
    let backend = crate::voice::device::CpalAudio::new(
        config.audio.output_device.clone(),
        config.audio.input_device.clone(),
    );
    Voice::open_or_mute(settings, Box::new(backend), clock)
}

#[cfg(not(feature = "alsa"))]
fn device_voice(
    _config: &Config,
    _settings: &crate::voice::VoiceSettings,
    clock: Arc<dyn crate::voice::Clock>,
) -> Voice {
    tracing::error!("built without the `alsa` feature: no audio devices; alarms still go out");
    Voice::mute("built without audio support (feature `alsa`)", clock)
}

fn start_radio(config: &Config, clock: Arc<dyn Clock>) -> Result<(RadioLink, RadioHandle), String> {
    let transceiver = crate::radio::driver::open(&config.radio).map_err(|e| e.to_string())?;
    // The radio thread keeps counters in the journal through its own connection.
    let mut store = Journal::open_dir(&config.data_dir).map_err(|e| e.to_string())?;
    store.set_clock(clock);
    let link = RadioLink::start(
        transceiver,
        store,
        &config.pendants,
        LinkConfig::from(&config.radio),
    )
    .map_err(|e| e.to_string())?;
    let handle = link.handle();
    Ok((link, handle))
}

/// The first wait before the radio is opened again after a failure; it doubles up to
/// [`RADIO_RETRY_MAX`].
const RADIO_RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between attempts to open a failed radio.
const RADIO_RETRY_MAX: Duration = Duration::from_secs(30);

/// The radio link while it works, and why it does not when it does not; shared by the
/// task that keeps it open, the acknowledgements and `vigil status`.
#[derive(Clone, Default)]
pub struct RadioSlot(Arc<std::sync::Mutex<RadioState>>);

#[derive(Default)]
struct RadioState {
    handle: Option<RadioHandle>,
    /// Why the radio is not working, and since when (wall time, for the status line).
    fault: Option<(String, Timestamp)>,
}

impl RadioSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, RadioState> {
        crate::sync::lock(&self.0)
    }

    /// The working link's handle, if the radio works.
    pub fn get(&self) -> Option<RadioHandle> {
        self.lock().handle.clone()
    }

    /// Why the radio does not work, if it does not.
    pub fn fault(&self) -> Option<String> {
        self.lock().fault.as_ref().map(|(reason, _)| reason.clone())
    }

    fn set_working(&self, handle: RadioHandle) {
        let mut s = self.lock();
        s.handle = Some(handle);
        s.fault = None;
    }

    fn set_fault(&self, reason: String, now: Timestamp) {
        let mut s = self.lock();
        s.handle = None;
        if s.fault.is_none() {
            s.fault = Some((reason, now));
        } else if let Some(f) = s.fault.as_mut() {
            f.0 = reason;
        }
    }
}

/// `vigil pair` through the running unit's radio link.
struct RadioPairing {
    slot: RadioSlot,
    window: Duration,
    /// The base says the code aloud, as the pendant blinks it.
    voice: Voice,
}

impl super::PairingDesk for RadioPairing {
    fn open(
        &self,
        replace: bool,
        window: Option<Duration>,
        lines: mpsc::Sender<String>,
        inputs: mpsc::Sender<Input>,
    ) {
        use crate::radio::link::PairingReport;
        let say = |lines: &mpsc::Sender<String>, text: String| {
            // The installer may have gone; the window goes on without them.
            let _ = lines.try_send(text);
        };
        let Some(radio) = self.slot.get() else {
            let why = self.slot.fault().unwrap_or_else(|| "not open yet".into());
            say(
                &lines,
                format!("the radio is not working ({why}): nothing can pair now"),
            );
            return;
        };
        let length = window
            .unwrap_or(self.window)
            .min(crate::radio::pairing::MAX_WINDOW);
        let mut reports = match radio.open_pairing(length, replace) {
            Ok(r) => r,
            Err(e) => {
                say(
                    &lines,
                    format!("the pairing window could not be opened: {e}"),
                );
                return;
            }
        };
        say(
            &lines,
            format!(
                "pairing window open for {} s: hold the pendant next to the base and hold its \
                 button until the light flashes",
                length.as_secs()
            ),
        );
        let voice = self.voice.clone();
        tokio::spawn(async move {
            while let Some(report) = reports.recv().await {
                match report {
                    PairingReport::Code { device, code } => {
                        voice.play(crate::core::Prompt::PairingCode);
                        for d in code.digits().bytes() {
                            voice.play(crate::core::Prompt::Digit(d.saturating_sub(b'0')));
                        }
                        say(
                            &lines,
                            format!(
                            "pendant {device} asks to pair; its light blinks the code {code}. If \
                             the pendant shows the same code, confirm it: vigil pair --confirm {}",
                            code.digits()
                        ),
                        )
                    }
                    PairingReport::Refused { message, .. } => say(&lines, message),
                    PairingReport::Paired(device) => {
                        say(
                            &lines,
                            format!(
                                "paired pendant {device}: it is in `vigil status` now; press its \
                                 button to test it"
                            ),
                        );
                        let _ = inputs
                            .send(Input::Paired {
                                device: crate::core::Device::paired(device),
                            })
                            .await;
                        return;
                    }
                    PairingReport::Closed => {
                        say(
                            &lines,
                            "the pairing window closed; no pendant was paired".into(),
                        );
                        return;
                    }
                }
            }
        });
    }

    fn confirm(
        &self,
        code: crate::radio::pairing::PairingCode,
        reply: tokio::sync::oneshot::Sender<String>,
    ) {
        let Some(radio) = self.slot.get() else {
            let _ = reply.send("the radio is not working: nothing can pair now\n".into());
            return;
        };
        tokio::spawn(async move {
            let text = match radio.confirm_pairing(code).await {
                Ok(device) => format!("paired pendant {device}\n"),
                Err(e) => format!("{e}\n"),
            };
            let _ = reply.send(text);
        });
    }
}

/// Opens the radio, reports a radio fault to the core when it cannot be opened or its link
/// stops (the transceiver stops answering, its thread dies), opens it again with backoff, and
/// reports the restore once it works. A base that cannot hear its pendants must say so at
/// once rather than wait for them to time out as missing.
async fn keep_radio(
    config: Config,
    slot: RadioSlot,
    inputs: mpsc::Sender<Input>,
    clock: Arc<dyn Clock>,
) {
    let mut retry = RADIO_RETRY_FIRST;
    let mut faulted = false;
    loop {
        let opened = {
            let (config, clock) = (config.clone(), clock.clone());
            tokio::task::spawn_blocking(move || start_radio(&config, clock))
                .await
                .unwrap_or_else(|_| Err("opening the radio panicked".into()))
        };
        let reason = match opened {
            Ok((mut link, handle)) => {
                tracing::info!("radio working");
                slot.set_working(handle);
                retry = RADIO_RETRY_FIRST;
                if std::mem::take(&mut faulted)
                    && inputs
                        .send(Input::Fault {
                            fault: UnitFault::Radio,
                            active: false,
                        })
                        .await
                        .is_err()
                {
                    return;
                }
                while let Some(input) = link.recv().await {
                    if inputs.send(input).await.is_err() {
                        return;
                    }
                }
                let stopped = tokio::task::spawn_blocking(move || link.stop()).await;
                match stopped {
                    Ok(Err(e)) => format!("radio stopped: {e}"),
                    Ok(Ok(())) => "radio stopped".to_string(),
                    Err(_) => "the radio thread died".to_string(),
                }
            }
            Err(e) => format!("radio did not open: {e}"),
        };
        tracing::error!(error = %reason, retry_s = retry.as_secs(), "radio fault: pendants cannot be heard");
        slot.set_fault(reason, clock.wall());
        if !std::mem::replace(&mut faulted, true)
            && inputs
                .send(Input::Fault {
                    fault: UnitFault::Radio,
                    active: true,
                })
                .await
                .is_err()
        {
            return;
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RADIO_RETRY_MAX);
    }
}

/// Opens the modem, and again whenever it cannot be opened, then forwards its events.
async fn keep_modem(
    config: Config,
    timing: Timing,
    slot: ModemSlot,
    inputs: mpsc::Sender<Input>,
    control: mpsc::Sender<super::control::ControlRequest>,
    call_audio: Option<crate::centre::scaip::call::CallAudio>,
) {
    // A modem absent for this long is a fault the centre hears of, over the routes it leaves.
    const MODEM_GRACE: Duration = Duration::from_secs(5 * 60);
    let absent_since = tokio::time::Instant::now();
    let mut reported = false;
    let modem = loop {
        // The last remote-command nonce is kept in the journal through the modem's own
        // connection; without a journal, remote commands are refused rather than replayable.
        let nonces: Box<dyn crate::modem::NonceStore> = match Journal::open_dir(&config.data_dir) {
            Ok(j) => Box::new(j),
            Err(e) => {
                tracing::error!(error = %e, "journal unavailable to the modem: remote commands refused");
                Box::new(crate::modem::NoNonceStore(format!(
                    "journal unavailable: {e}"
                )))
            }
        };
        match Modem::open_with_nonces(&config, timing, nonces) {
            Ok(m) => break m,
            Err(e) => {
                tracing::error!(port = %config.modem.port.display(), error = %e, "modem not available; cellular routes fail over; trying again in 30 s");
                if !reported && absent_since.elapsed() >= MODEM_GRACE {
                    reported = true;
                    let _ = inputs
                        .send(Input::Fault {
                            fault: UnitFault::Modem,
                            active: true,
                        })
                        .await;
                }
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        }
    };
    slot.set(modem.clone());
    if reported {
        let _ = inputs
            .send(Input::Fault {
                fault: UnitFault::Modem,
                active: false,
            })
            .await;
    }
    let mut events = modem.events();
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "modem events lagged");
                continue;
            }
            Err(_) => break,
        };
        if let ModemEvent::IncomingCall { answered: true, .. } = &event {
            // On a module wired by USB audio the speech goes through the speakerphone.
            modem.carry_speech(call_audio.as_ref(), None).await;
        }
        if let Some(input) = event.to_input() {
            if inputs.send(input).await.is_err() {
                break;
            }
        }
        if let ModemEvent::Remote {
            from,
            command: RemoteCommand::Status,
        } = &event
        {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if control
                .send(super::control::ControlRequest::Status(tx))
                .await
                .is_ok()
            {
                if let Ok(text) = rx.await {
                    let summary = sms_status(&text);
                    if let Err(e) = modem.send_sms(from, &summary).await {
                        tracing::warn!(error = %e, "status reply by SMS failed");
                    }
                }
            }
        }
    }
}

/// The installer's test call to a phone number (the centre's echo test line, on the unit's
/// allow-list like every number it calls): the module dials it, the test prompt goes into the
/// call on the module's call audio port, and what comes back is measured, as for a SIP test
/// call. Only a module that puts calls where the unit hears them (SIMCom with
/// `modem.voice_port`, Quectel with `audio.call_device`) lets the unit hear the call's audio;
/// elsewhere the reason says so.
async fn cellular_call_test(
    modem: Option<Modem>,
    target: &str,
    said: Vec<i16>,
    lines: &mpsc::Sender<String>,
) -> Result<String, String> {
    use crate::voice::call_test::{listen_time, report, ProbePort};
    let modem = modem.ok_or("the modem is not available")?;
    // A call opens the home's microphone: only the centre's numbers (remote.allowed_numbers)
    // are called, as for the centre's call-backs.
    let number = modem
        .check_call_back(target)
        .map_err(|e| format!("{target}: {e}; a test call goes only to the centre's numbers"))?;
    if let Err(e) = modem.audio_port() {
        return Err(format!("the unit hears a cellular call's audio only on the module's voice port (SIMCom, modem.voice_port) or its USB audio card (Quectel, audio.call_device): {e}; or call the centre's sip: echo line"));
    }
    if said.is_empty() {
        return Err("no test prompt to say".into());
    }
    let said = Arc::new(said);
    let _ = lines.send(format!("calling {number}")).await;
    let started = tokio::time::Instant::now();
    let (line, _urcs) = modem.place_call(&number).await.map_err(|e| e.to_string())?;
    let _ = lines
        .send(format!(
            "answered after {} ms; saying the test prompt",
            started.elapsed().as_millis()
        ))
        .await;
    let (port, heard) = ProbePort::new(Arc::clone(&said));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let talk = tokio::spawn({
        let modem = modem.clone();
        async move { modem.speak_in_call(Box::new(port), stop).await }
    });
    tokio::time::sleep(listen_time(&said)).await;
    stop_tx.send_replace(true);
    let spoke = talk.await.map_err(|e| e.to_string())?;
    line.hang_up().await;
    spoke.map_err(|e| e.to_string())?;
    let heard = crate::sync::lock(&heard).clone();
    report(&said, &heard).map_err(|e| e.to_string())
}

/// The first lines of the status, short enough for two SMS parts.
fn sms_status(text: &str) -> String {
    let mut out = String::from("Vigil status\n");
    for line in text.lines() {
        if out.len() + line.len() > 300 {
            break;
        }
        out.push_str(
            line.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .as_str(),
        );
        out.push('\n');
    }
    out
}

fn lazy_route(
    config: &Config,
    route: &crate::config::Route,
    modem: &ModemSlot,
    sip_calls: &Arc<SipCalls>,
    clock: &Arc<dyn Clock>,
) -> Lazy {
    let name = route.name.clone();
    let unit = config.unit.clone();
    let credentials = config.credentials.clone();
    match &route.transport {
        RouteConfig::Scaip(r) => {
            let (r, sip_calls) = (r.clone(), sip_calls.clone());
            Lazy::new(name.clone(), move || {
                let (name, r, unit, credentials, sip_calls) = (
                    name.clone(),
                    r.clone(),
                    unit.clone(),
                    credentials.clone(),
                    sip_calls.clone(),
                );
                Box::pin(async move {
                    let creds = credentials
                        .get(&r.credentials)
                        .ok_or_else(|| format!("no credentials `{}`", r.credentials))?;
                    let link = Arc::new(start_scaip(&name, &r, &unit, creds).await?);
                    sip_calls.adopt(&link);
                    Ok(Arc::new(Shared(link)) as Arc<dyn Transport>)
                })
            })
        }
        RouteConfig::Dc09(r) => {
            let (r, clock) = (r.clone(), clock.clone());
            Lazy::new(name.clone(), move || {
                let (name, r, account, clock) = (
                    name.clone(),
                    r.clone(),
                    unit.sia_account.clone(),
                    clock.clone(),
                );
                Box::pin(async move {
                    let link = crate::centre::dc09::Dc09Link::start_with_clock(
                        &name, &r, &account, r.payload, clock,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    Ok(Arc::new(Shared(Arc::new(link))) as Arc<dyn Transport>)
                })
            })
        }
        RouteConfig::Sms(r) => {
            let (r, slot) = (r.clone(), modem.clone());
            Lazy::new(name, move || {
                let (r, slot, unit, credentials) =
                    (r.clone(), slot.clone(), unit.clone(), credentials.clone());
                Box::pin(async move {
                    let modem = slot.get().ok_or("modem not available")?;
                    let creds = credentials
                        .get(&r.credentials)
                        .ok_or_else(|| format!("no credentials `{}`", r.credentials))?;
                    Ok(Arc::new(Shared(Arc::new(crate::centre::sms::Sms::new(
                        modem, &r, creds, &unit,
                    )))) as Arc<dyn Transport>)
                })
            })
        }
        // After their acknowledgement the call routes' calls go on as speech through the
        // speakerphone, as the centre's call does.
        RouteConfig::ContactId(r) => {
            let r = r.clone();
            call_route(name, modem, sip_calls, move |modem, speakerphone| {
                let route = crate::centre::contact_id::ContactIdCall::new(modem, &r, &unit);
                match speakerphone {
                    Some(s) => route.with_speakerphone(s),
                    None => route,
                }
            })
        }
        RouteConfig::Voice(r) => {
            let r = r.clone();
            call_route(name, modem, sip_calls, move |modem, speakerphone| {
                let route = crate::centre::voice_call::VoiceCall::new(modem, &r, &unit);
                match speakerphone {
                    Some(s) => route.with_speakerphone(s),
                    None => route,
                }
            })
        }
    }
}

async fn start_scaip(
    name: &str,
    route: &crate::config::ScaipRoute,
    unit: &crate::config::Unit,
    creds: &crate::config::Credentials,
) -> Result<crate::centre::scaip::ScaipLink, String> {
    if route.transport == crate::config::SipTransport::Tls {
        return start_scaip_tls(name, route, unit, creds).await;
    }
    crate::centre::scaip::ScaipLink::start(name, route, unit, creds)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(feature = "tls")]
async fn start_scaip_tls(
    name: &str,
    route: &crate::config::ScaipRoute,
    unit: &crate::config::Unit,
    creds: &crate::config::Credentials,
) -> Result<crate::centre::scaip::ScaipLink, String> {
    let ca_path = route.tls_ca.as_ref().ok_or("no tls_ca configured")?;
    let ca = std::fs::read(ca_path).map_err(|e| format!("{}: {e}", ca_path.display()))?;
    crate::centre::scaip::ScaipLink::start_tls(name, route, unit, creds, &ca)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "tls"))]
async fn start_scaip_tls(
    _name: &str,
    _route: &crate::config::ScaipRoute,
    _unit: &crate::config::Unit,
    _creds: &crate::config::Credentials,
) -> Result<crate::centre::scaip::ScaipLink, String> {
    Err("SIP over TLS needs a build with the `tls` feature".into())
}

/// A route that places a cellular call (Contact ID, a call to a person): built on the open
/// modem when first needed, with the speakerphone that carries the call's speech afterwards.
fn call_route<R: Send + Sync + 'static>(
    name: String,
    modem: &ModemSlot,
    sip_calls: &Arc<SipCalls>,
    build: impl Fn(Modem, Option<crate::centre::scaip::call::CallAudio>) -> R + Send + Sync + 'static,
) -> Lazy
where
    Shared<R>: Transport,
{
    let (slot, speakerphone, build) = (modem.clone(), sip_calls.audio.clone(), Arc::new(build));
    Lazy::new(name, move || {
        let (slot, speakerphone, build) = (slot.clone(), speakerphone.clone(), build.clone());
        Box::pin(async move {
            let modem = slot.get().ok_or("modem not available")?;
            Ok(Arc::new(Shared(Arc::new(build(modem, speakerphone)))) as Arc<dyn Transport>)
        })
    })
}

type MakeFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Arc<dyn Transport>, String>> + Send>>;

/// A route started on its first delivery, and started again after a failed start.
struct Lazy {
    name: String,
    make: Box<dyn Fn() -> MakeFuture + Send + Sync>,
    started: tokio::sync::Mutex<Option<Arc<dyn Transport>>>,
}

impl Lazy {
    fn new(name: String, make: impl Fn() -> MakeFuture + Send + Sync + 'static) -> Lazy {
        Lazy {
            name,
            make: Box::new(make),
            started: tokio::sync::Mutex::new(None),
        }
    }
}

impl Transport for Arc<Lazy> {
    fn deliver(&self, delivery: Delivery) -> DeliveryFuture {
        let this = self.clone();
        Box::pin(async move { this.deliver_now(delivery).await })
    }
}

impl Lazy {
    /// The started route, starting it now if it is not yet.
    async fn ensure_started(&self) -> Result<Arc<dyn Transport>, String> {
        let mut started = self.started.lock().await;
        if let Some(r) = started.as_ref() {
            return Ok(r.clone());
        }
        match (self.make)().await {
            Ok(r) => {
                *started = Some(r.clone());
                Ok(r)
            }
            Err(reason) => {
                tracing::warn!(route = %self.name, %reason, "route could not start");
                Err(reason)
            }
        }
    }

    async fn deliver_now(&self, delivery: Delivery) -> DeliveryResult {
        match self.ensure_started().await {
            Ok(route) => route.deliver(delivery).await,
            Err(reason) => DeliveryResult::Failed {
                reason: format!("route could not start: {reason}"),
            },
        }
    }
}

/// A route's link shared between the deliveries that use it.
struct Shared<T>(Arc<T>);

macro_rules! transport_for {
    ($t:ty) => {
        impl Transport for Shared<$t> {
            fn deliver(&self, delivery: Delivery) -> DeliveryFuture {
                let link = self.0.clone();
                Box::pin(async move { link.deliver(&delivery).await })
            }
        }
    };
    // Routes whose own traffic tells whether they work.
    ($t:ty, health) => {
        impl Transport for Shared<$t> {
            fn deliver(&self, delivery: Delivery) -> DeliveryFuture {
                let link = self.0.clone();
                Box::pin(async move { link.deliver(&delivery).await })
            }

            fn health(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
                Some(self.0.health())
            }
        }
    };
}

transport_for!(crate::centre::scaip::ScaipLink, health);
transport_for!(crate::centre::dc09::Dc09Link, health);

/// How long a SCAIP route may stay unregistered before it is a fault of the unit.
const REGISTRATION_GRACE: Duration = Duration::from_secs(5 * 60);

/// Follows a SCAIP route's registration: unregistered (or not even started) for
/// [`REGISTRATION_GRACE`] is a technical alarm, [`UnitFault::Registration`], restored when
/// every SCAIP route is registered again. `unregistered` holds the SCAIP routes reported, so
/// that two routes share the one fault.
async fn watch_registration(
    lazy: Arc<Lazy>,
    route: crate::core::RouteId,
    unregistered: Arc<Mutex<std::collections::BTreeSet<crate::core::RouteId>>>,
    inputs: mpsc::Sender<Input>,
) {
    let fault = |active: bool| Input::Fault {
        fault: UnitFault::Registration,
        active,
    };
    let since = tokio::time::Instant::now();
    // A route that cannot even start (its proxy's name does not resolve, its port is taken)
    // is as unregistered as one whose REGISTER goes unanswered.
    let transport = loop {
        match lazy.ensure_started().await {
            Ok(t) => break t,
            Err(_) => {
                // The core raises the fault once, however many routes report it.
                if since.elapsed() >= REGISTRATION_GRACE
                    && crate::sync::lock(&unregistered).insert(route)
                    && inputs.send(fault(true)).await.is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        }
    };
    let Some(mut health) = transport.health() else {
        return;
    };
    // Not registered yet at start: the grace time runs from then.
    let mut down_since = Some(since);
    loop {
        if *health.borrow_and_update() {
            down_since = None;
            let cleared = {
                let mut set = crate::sync::lock(&unregistered);
                set.remove(&route) && set.is_empty()
            };
            if cleared && inputs.send(fault(false)).await.is_err() {
                return;
            }
            if health.changed().await.is_err() {
                return;
            }
            continue;
        }
        let start = *down_since.get_or_insert_with(tokio::time::Instant::now);
        if crate::sync::lock(&unregistered).contains(&route) {
            // Reported: wait for it to come back.
            if health.changed().await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            changed = health.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(start + REGISTRATION_GRACE) => {
                // The core raises the fault once, however many routes report it.
                crate::sync::lock(&unregistered).insert(route);
                if inputs.send(fault(true)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A route that calls over the module and needs the module to hear its acknowledgement.
#[derive(Clone, Copy)]
enum CallRoute {
    ContactId,
    Voice,
}

impl CallRoute {
    fn of(route: &RouteConfig) -> Option<CallRoute> {
        match route {
            RouteConfig::ContactId(_) => Some(CallRoute::ContactId),
            RouteConfig::Voice(_) => Some(CallRoute::Voice),
            _ => None,
        }
    }
}

/// Once the modem is open, follows what its module can do in a call and tells the core when
/// a call route cannot work on it (left out of the plan, reported as a route fault and in
/// `vigil status`) or can again.
async fn watch_call_route_fit(
    slot: ModemSlot,
    call: CallRoute,
    route: crate::core::RouteId,
    inputs: mpsc::Sender<Input>,
) {
    let modem = loop {
        if let Some(m) = slot.get() {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut caps = modem.capabilities_watch();
    // Every route starts in the plan: only a change needs telling.
    let mut told: Option<String> = None;
    loop {
        let now = *caps.borrow_and_update();
        if let Some(c) = now {
            let why = match call {
                CallRoute::ContactId => c.contact_id_blocker(),
                CallRoute::Voice => c.voice_call_blocker(),
            };
            if told != why {
                if let Some(w) = &why {
                    tracing::warn!(route = route.0, why = %w, "route cannot work on this module: left out of the plan");
                }
                if inputs
                    .send(Input::RouteUnusable {
                        route,
                        why: why.clone(),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                told = why;
            }
        }
        if caps.changed().await.is_err() {
            return;
        }
    }
}

/// Starts an IP route, then tells the core when its own traffic shows it works again, so
/// alarms waiting between rounds use it at once instead of after the pause.
async fn watch_route_health(
    lazy: Arc<Lazy>,
    route: crate::core::RouteId,
    inputs: mpsc::Sender<Input>,
) {
    let Ok(transport) = lazy.ensure_started().await else {
        return;
    };
    let Some(mut health) = transport.health() else {
        return;
    };
    while health.changed().await.is_ok() {
        let up = *health.borrow_and_update();
        if up && inputs.send(Input::RouteUp { route }).await.is_err() {
            return;
        }
    }
}
transport_for!(crate::centre::sms::Sms);
transport_for!(crate::centre::contact_id::ContactIdCall);
transport_for!(crate::centre::voice_call::VoiceCall);

impl VoiceOut for Voice {
    fn play(&self, prompt: Prompt) {
        Voice::play(self, prompt);
    }

    fn listen(&self, alarm: AlarmId, until: Timestamp, inputs: mpsc::Sender<Input>) {
        let heard = Voice::listen(self, until);
        tokio::spawn(async move {
            let heard = heard.await;
            let _ = inputs.send(Input::Heard { alarm, heard }).await;
        });
    }

    fn stop_listening(&self) {
        Voice::stop_listening(self);
    }
}

impl PendantAcks for RadioSlot {
    fn ack(&self, device: DeviceId, counter: u32) {
        match self.get() {
            Some(radio) => {
                if let Err(e) = radio.ack(device, counter) {
                    tracing::error!(pendant = %device, error = %e, "acknowledgement not sent");
                }
            }
            None => tracing::warn!(pendant = %device, "no radio: acknowledgement not sent"),
        }
    }

    fn help_coming(&self, device: DeviceId, counter: u32) {
        match self.get() {
            Some(radio) => {
                if let Err(e) = radio.help_coming(device, counter) {
                    tracing::error!(pendant = %device, error = %e, "\"help is coming\" not sent");
                }
            }
            None => tracing::warn!(pendant = %device, "no radio: \"help is coming\" not sent"),
        }
    }
}

/// The centre's calls: over the cellular module, and over SIP on the SCAIP routes.
struct Calls {
    modem: ModemSlot,
    sip: Arc<SipCalls>,
    clock: Arc<dyn Clock>,
}

/// The call audio of the unit's SIP calls: the speakerphone, echo-cancelled. On devices, the
/// configured loudspeaker and microphone; with the simulated backend, a simulated room around
/// a port that records each call to `call-<n>.wav`, so its calls need the canceller too.
fn call_audio(
    config: &Config,
    choice: &AudioChoice,
    speaking: crate::voice::speakerphone::Speaking,
) -> Option<crate::centre::scaip::call::CallAudio> {
    #[cfg(any(feature = "sim", feature = "alsa"))]
    use crate::voice::call_port::CallAudioPort;
    #[cfg(any(feature = "sim", feature = "alsa"))]
    use crate::voice::speakerphone::{EchoCancelled, HeldForPrompts};
    match choice {
        #[cfg(not(feature = "sim"))]
        AudioChoice::Simulated(_) => None,
        #[cfg(feature = "sim")]
        AudioChoice::Simulated(dir) => {
            let (dir, n) = (dir.clone(), Arc::new(std::sync::atomic::AtomicU32::new(0)));
            Some(Arc::new(move || {
                let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let port = crate::voice::sim_call::FileCallPort::new(&dir, n);
                let room = crate::voice::sim_call::SimRoom::new(Box::new(port));
                let held = HeldForPrompts::new(Box::new(room), speaking.clone());
                Ok(Box::new(EchoCancelled::new(Box::new(held))) as Box<dyn CallAudioPort>)
            }))
        }
        #[cfg(feature = "alsa")]
        AudioChoice::Devices => {
            let (output, input) = (
                config.audio.output_device.clone(),
                config.audio.input_device.clone(),
            );
            Some(Arc::new(move || {
                let port =
                    crate::voice::speakerphone::DevicePort::open(output.clone(), input.clone())?;
                let held = HeldForPrompts::new(Box::new(port), speaking.clone());
                Ok(Box::new(EchoCancelled::new(Box::new(held))) as Box<dyn CallAudioPort>)
            }))
        }
        #[cfg(not(feature = "alsa"))]
        AudioChoice::Devices => {
            let _ = (config, speaking);
            tracing::warn!(
                "built without audio support (feature `alsa`): the centre's SIP calls are refused"
            );
            None
        }
        AudioChoice::Mute => None,
    }
}

/// The SCAIP routes' calls: each link, once started, takes the call audio and the window.
struct SipCalls {
    links: Mutex<Vec<Arc<crate::centre::scaip::ScaipLink>>>,
    until: Mutex<Option<tokio::time::Instant>>,
    audio: Option<crate::centre::scaip::call::CallAudio>,
    /// Where the prompts are and in which language: the installer's test call says the test
    /// prompt, loaded at the call's rate when a test call is asked for (not at every start).
    prompts: (std::path::PathBuf, String),
}

impl SipCalls {
    fn new(config: &Config, audio: Option<crate::centre::scaip::call::CallAudio>) -> SipCalls {
        SipCalls {
            links: Mutex::new(Vec::new()),
            until: Mutex::new(None),
            audio,
            prompts: (
                config.audio.sounds_dir.clone(),
                config.unit.language.clone(),
            ),
        }
    }

    /// The test prompt at the call's rate; empty when it cannot be had.
    async fn test_prompt(&self) -> Vec<i16> {
        let (dir, language) = self.prompts.clone();
        tokio::task::spawn_blocking(move || {
            let (prompts, _) = crate::voice::catalogue::PromptSet::load(
                &dir,
                &language,
                crate::voice::call_port::RATE,
            );
            prompts
                .get(crate::core::Prompt::TestCall)
                .map(|clip| {
                    clip.samples
                        .iter()
                        .map(|&s| crate::voice::pcm::to_i16(s))
                        .collect()
                })
                .unwrap_or_default()
        })
        .await
        .unwrap_or_default()
    }

    /// The installer's test call: calls `target` on the first SCAIP route that may, says the
    /// test prompt into the call, hangs up, and reports the round trip of what came back.
    async fn call_test(
        &self,
        target: &str,
        lines: &mpsc::Sender<String>,
    ) -> Result<String, String> {
        use crate::voice::call_test::{listen_time, report, ProbePort};
        let link = crate::sync::lock(&self.links)
            .iter()
            .find(|l| l.may_call(target).is_ok())
            .cloned();
        let Some(link) = link else {
            let why = crate::sync::lock(&self.links)
                .first()
                .map(|l| {
                    l.may_call(target)
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default()
                })
                .unwrap_or_else(|| "no SCAIP route is up to place a SIP call on".into());
            return Err(why);
        };
        let said = Arc::new(self.test_prompt().await);
        if said.is_empty() {
            return Err("no test prompt to say".into());
        }
        let heard: Arc<Mutex<Vec<i16>>> = Arc::default();
        let audio: crate::centre::scaip::call::CallAudio = {
            let (said, heard) = (Arc::clone(&said), Arc::clone(&heard));
            Arc::new(move || {
                let port = ProbePort::hearing_into(Arc::clone(&said), Arc::clone(&heard));
                Ok(Box::new(port) as Box<dyn crate::voice::call_port::CallAudioPort>)
            })
        };
        let _ = lines.send(format!("calling {target}")).await;
        let started = tokio::time::Instant::now();
        link.place_call_with(target, audio)
            .await
            .map_err(|e| format!("the call was not answered: {e}"))?;
        let _ = lines
            .send(format!(
                "answered after {} ms; saying the test prompt",
                started.elapsed().as_millis()
            ))
            .await;
        tokio::time::sleep(listen_time(&said)).await;
        link.hang_up().await;
        let heard = crate::sync::lock(&heard).clone();
        report(&said, &heard).map_err(|e| e.to_string())
    }

    fn adopt(&self, link: &Arc<crate::centre::scaip::ScaipLink>) {
        if let Some(a) = &self.audio {
            link.set_call_audio(a.clone());
        }
        if let Some(u) = *crate::sync::lock(&self.until) {
            link.answer_calls_until(u);
        }
        crate::sync::lock(&self.links).push(link.clone());
    }

    /// Places the call to `target` on the first SCAIP route that has call audio and may call
    /// it; why not, when none can.
    async fn place(&self, target: &str) -> Result<(), String> {
        let links: Vec<_> = crate::sync::lock(&self.links).clone();
        if links.is_empty() {
            return Err("no SCAIP route is up to place a SIP call on".into());
        }
        let mut why = Vec::new();
        for link in links {
            if let Err(e) = link.may_call(target) {
                why.push(e.to_string());
                continue;
            }
            if self.audio.is_none() {
                why.push(crate::centre::scaip::call::CallSetupError::NoCallAudio.to_string());
                continue;
            }
            match link.place_call(target).await {
                Ok(()) => return Ok(()),
                Err(e) => why.push(e.to_string()),
            }
        }
        Err(why.join("; "))
    }

    fn answer_until(&self, until: tokio::time::Instant) {
        *crate::sync::lock(&self.until) = Some(until);
        for l in crate::sync::lock(&self.links).iter() {
            l.answer_calls_until(until);
        }
    }
}

impl CallControl for Calls {
    fn call_test(&self, target: String, lines: mpsc::Sender<String>) {
        let sip = Arc::clone(&self.sip);
        let modem = self.modem.clone();
        tokio::spawn(async move {
            let result = if target.starts_with("sip:") {
                sip.call_test(&target, &lines).await
            } else {
                cellular_call_test(modem.get(), &target, sip.test_prompt().await, &lines).await
            };
            let last = match result {
                Ok(report) => format!("OK: {report}"),
                Err(why) => format!("FAILED: {why}"),
            };
            let _ = lines.send(last).await;
        });
    }

    fn start_call(&self, alarm: AlarmId, number: String, inputs: mpsc::Sender<Input>) {
        if number.starts_with("sip:") || number.starts_with("sips:") {
            // The centre asked for a call to a SIP address: placed on the SCAIP route.
            let sip = Arc::clone(&self.sip);
            tokio::spawn(async move {
                let event = match sip.place(&number).await {
                    Ok(()) => crate::core::CallEvent::Connected,
                    Err(reason) => {
                        tracing::warn!(alarm_id = alarm.0, %number, %reason, "the centre's call-back was not placed");
                        crate::core::CallEvent::Refused { reason }
                    }
                };
                let _ = inputs.send(Input::Call { alarm, event }).await;
            });
            return;
        }
        let Some(modem) = self.modem.get() else {
            tracing::error!(
                alarm_id = alarm.0,
                "no modem: the centre's callback request cannot be placed"
            );
            return;
        };
        // The centre chose this number: dial it only if it is well formed and on the
        // allow-list, so a call-back can never open the home's microphone to anyone else.
        let number = match modem.check_call_back(&number) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(alarm_id = alarm.0, error = %e, "call-back request refused");
                let reason = e.to_string();
                tokio::spawn(async move {
                    let event = crate::core::CallEvent::Refused { reason };
                    let _ = inputs.send(Input::Call { alarm, event }).await;
                });
                return;
            }
        };
        let speakerphone = self.sip.audio.clone();
        tokio::spawn(async move {
            let event = match modem.start_call(&number).await {
                Ok(()) => {
                    // On a module wired by USB audio the speech goes through the speakerphone.
                    modem.carry_speech(speakerphone.as_ref(), None).await;
                    crate::core::CallEvent::Connected
                }
                Err(e) => crate::core::CallEvent::Ended {
                    reason: e.to_string(),
                },
            };
            let _ = inputs.send(Input::Call { alarm, event }).await;
        });
    }

    fn auto_answer(&self, until: Timestamp) {
        let left = until.since(self.clock.wall());
        self.sip.answer_until(tokio::time::Instant::now() + left);
        match self.modem.get() {
            Some(m) => m.auto_answer_for(left),
            None => tracing::warn!("no modem: centre call-backs cannot be answered"),
        }
    }
}

impl StatusReport for RadioSlot {
    fn status_lines(&self) -> Vec<String> {
        let radio = {
            let state = self.lock();
            if let Some((reason, since)) = &state.fault {
                return vec![format!("radio:       FAULT ({reason}) since {since}")];
            }
            state.handle.clone()
        };
        let Some(radio) = radio else {
            return vec!["radio:       opening".into()];
        };
        let s = radio.status();
        vec![format!(
            "radio:       {}, channel {}, {} frames refused ({}), {} acks sent, {} withheld by duty cycle, airtime {} ms/h",
            if s.jamming { "JAMMED" } else { "listening" },
            s.channel_rssi_dbm.map_or("?".into(), |r| format!("{r} dBm")),
            s.rejections.total(),
            s.rejections,
            s.acks_sent,
            s.acks_over_budget,
            s.airtime_last_hour.as_millis()
        )]
    }
}

struct ModemStatus(ModemSlot);
impl StatusReport for ModemStatus {
    fn status_lines(&self) -> Vec<String> {
        match self.0.get() {
            None => vec!["modem:       not open (no module answers on modem.port)".into()],
            Some(m) => {
                use crate::modem::at::RegStatus;
                use crate::modem::device::Status;
                let network = match m.registration() {
                    RegStatus::Home => "registered on the home network",
                    RegStatus::Roaming => "registered, roaming",
                    RegStatus::Searching => "NOT REGISTERED (searching for a network)",
                    RegStatus::Denied => "NOT REGISTERED (the network denied the SIM)",
                    RegStatus::NotSearching => "NOT REGISTERED (not searching)",
                    RegStatus::Unknown => "registration unknown",
                };
                let mut lines = vec![match m.status() {
                    Status::Starting => "modem:       starting".to_string(),
                    Status::Ready => format!("modem:       ready, {network}"),
                    Status::Recovering(why) => format!("modem:       RECOVERING ({why})"),
                    Status::Failed(why) => format!("modem:       FAULT ({why})"),
                }];
                if let Some(c) = m.capabilities() {
                    let yes_no = |b: bool| if b { "yes" } else { "NO" };
                    lines.push(format!(
                        "module:      {}: speaks into calls {}, hears DTMF {}, hears Contact ID tones {}",
                        c.profile.name(),
                        yes_no(c.speaks),
                        yes_no(c.hears_dtmf),
                        match (c.hears_tones, c.pcm) {
                            (true, true) => "yes (the unit, in the call's audio on the voice port)",
                            (true, false) => "yes",
                            (false, _) => "NO",
                        }
                    ));
                    match c.call_audio {
                        Some(true) => lines.push("call audio:  set on the module (volume, microphone, echo canceller)".into()),
                        Some(false) => lines.push("call audio:  DEGRADED: the module refused part of modem.call_* (see the log)".into()),
                        None => {}
                    }
                    lines.extend(call_port_line(&m.audio_port()));
                }
                lines
            }
        }
    }
}

/// The status line for where a cellular call's speech goes: nothing when the module's own
/// audio path carries it by configuration, DEGRADED when a configured port cannot.
fn call_port_line(
    port: &Result<crate::modem::audio_port::AudioPort, crate::modem::audio_port::NoAudioPort>,
) -> Option<String> {
    use crate::modem::audio_port::{AudioPort, NoAudioPort};
    match port {
        Ok(AudioPort::VoicePort(path)) => Some(format!(
            "call port:   the module's voice port {path} (AT+CPCMREG), through the speakerphone"
        )),
        Ok(AudioPort::SoundCard(card)) => Some(format!(
            "call port:   the module's USB audio card {card} (AT+QPCMV=1,2), through the speakerphone"
        )),
        Err(NoAudioPort::NotWired | NoAudioPort::NotStarted) => None,
        Err(e) => Some(format!(
            "call port:   DEGRADED: {e}: cellular calls' speech cannot reach the speakerphone"
        )),
    }
}

struct VoiceStatus(Voice);
impl StatusReport for VoiceStatus {
    fn status_lines(&self) -> Vec<String> {
        vec![format!(
            "audio:       {}",
            self.0.fault().unwrap_or("speaker and microphone working")
        )]
    }
}
