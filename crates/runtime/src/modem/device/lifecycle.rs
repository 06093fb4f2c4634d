//! The modem's lifecycle: opening the port, the init sequence (SIM unlock, learning what the
//! module can do in a call, its call audio), health checks, and the supervisor that recovers a
//! module that stops answering or reboots (`AT+CFUN=1,1`, then the power key).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use super::{Inner, MemoryNonce, Modem, ModemEvent, NonceStore, Settings, Status, Timing};
use crate::config;
use crate::modem::at::{self, FinalResult, RegStatus, Urc};
use crate::modem::engine::{self, AtClient, Command};
use crate::modem::power::{self, PowerKey};
use crate::modem::profile::{Capabilities, Profile};
use crate::modem::ModemError;

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

impl Modem {
    /// Opens the configured serial port, claims the power-key GPIO if configured, and starts.
    pub fn open(config: &config::Config) -> Result<Modem, ModemError> {
        Modem::open_with(config, Timing::real())
    }

    /// [`Modem::open`] with other timing (the demo pairs [`Timing::fast`] with the simulator).
    pub fn open_with(config: &config::Config, timing: Timing) -> Result<Modem, ModemError> {
        Modem::open_with_nonces(config, timing, Box::new(MemoryNonce::default()))
    }

    /// [`Modem::open_with`], keeping the last remote-command nonce in `nonces` (the journal on
    /// the unit) so that it survives a restart.
    pub fn open_with_nonces(
        config: &config::Config,
        timing: Timing,
        nonces: Box<dyn NonceStore>,
    ) -> Result<Modem, ModemError> {
        let modem = &config.modem;
        let at = engine::open(&modem.port.to_string_lossy(), modem.baud)?;
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
            Settings::from_config(modem, &config.audio, &config.remote, &config.credentials),
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
                speech: Mutex::new(None),
            }),
        };
        tokio::spawn(supervise(m.clone(), recover_rx, power_key));
        m
    }

    /// Tells the supervisor the modem misbehaved (a command timed out): it will recover it.
    pub fn report_fault(&self, reason: &str) {
        // Unusable from now on, so the next attempt fails over at once instead of queueing
        // behind a dead module.
        self.set_status(Status::Recovering(reason.to_string()));
        let _ = self.inner.recover.send(reason.to_string());
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
        let usb_audio = self.set_usb_audio(profile).await;
        let call_audio = self.set_call_audio(profile).await;
        let caps = Capabilities {
            profile,
            hears_dtmf,
            hears_tones: (hears_dtmf && profile.hears_single_tones()) || pcm,
            pcm,
            speaks,
            call_audio,
            usb_audio,
        };
        tracing::info!(
            manufacturer = %manufacturer,
            model = %model,
            module = profile.name(),
            hears_dtmf,
            hears_tones = caps.hears_tones,
            pcm,
            ?usb_audio,
            speaks,
            "module recognised"
        );
        self.inner.caps.send_if_modified(|c| {
            let changed = *c != Some(caps);
            *c = Some(caps);
            changed
        });
    }

    /// Puts the module's calls on its USB audio class card where the installer named the card
    /// (`audio.call_device`), at every start: the module keeps `AT+QPCMV` across calls but not
    /// across a restart, and a module swapped or reconfigured meanwhile is set right. `None`
    /// when no card is configured or the module has none; `Some(false)` when it refused.
    async fn set_usb_audio(&self, profile: Profile) -> Option<bool> {
        let card = self.inner.settings.call_device.as_deref()?;
        let Some(command) = profile.usb_audio_command() else {
            tracing::warn!(card, module = profile.name(), "audio.call_device is set, but only Quectel modules carry calls on a USB audio card; it is not used");
            return None;
        };
        match self.cmd(command).await {
            Ok(_) => {
                tracing::info!(card, "calls on the module's USB audio card");
                Some(true)
            }
            Err(e) => {
                tracing::warn!(error = %e, card, "the module refused voice over USB audio: cellular calls' speech cannot reach the speakerphone");
                Some(false)
            }
        }
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
    *crate::sync::lock(&m.inner.reg) = (RegStatus::Unknown, RegStatus::Unknown);
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
