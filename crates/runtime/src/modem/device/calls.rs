//! Calls: the voice line, dialling and placing calls, answering calls from the allowed
//! numbers while the auto-answer window is open, the module's call audio port (SIMCom's voice
//! port or Quectel's USB audio card, bridged to the speakerphone), and hang-up.
//!
//! Every call that goes on as speech after its purpose is served (the centre's call answered
//! after an alarm, the call-back the centre asks for, a voice route's call after the person's
//! accept key, Contact ID's call after the kissoff) is handed to [`Modem::carry_speech`]: one
//! task owns its speech through the speakerphone until the call ends.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, Notify, OwnedMutexGuard};
use tokio::time::Instant;

use super::{Modem, ModemEvent, Unusable};
use crate::modem::at::{self, CallState, Urc};
use crate::modem::audio_port::{self, AudioPort, NoAudioPort};
use crate::modem::engine::Command;
use crate::modem::number::DialNumber;
use crate::modem::voice_port::{self, VoicePortError};
use crate::modem::ModemError;
use crate::sync::lock;
use crate::voice::call_port::{bridge, BridgeEnd, CallAudio, CallAudioPort};

/// A command of a call or an SMS that the modem did not carry out, in words an operator can
/// act on: the modem's error, and what its numbered `+CME`/`+CMS` error means when known.
#[derive(Debug)]
pub struct CommandFailed {
    /// What went wrong.
    pub error: ModemError,
    /// The meaning of the module's error number (TS 27.007 §9.2, TS 27.005 §3.2.5).
    pub meaning: Option<&'static str>,
}

impl std::fmt::Display for CommandFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.meaning {
            Some(w) => write!(f, "{} ({w})", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

impl std::error::Error for CommandFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Why a dialled call was not answered.
#[derive(Debug, thiserror::Error)]
pub enum DialFailure {
    /// The far end is busy (`BUSY`).
    #[error("busy")]
    Busy,
    /// The network gave up ringing (`NO ANSWER`).
    #[error("no answer")]
    NoAnswer,
    /// The call failed before it was answered (`NO CARRIER`).
    #[error("no carrier (call failed)")]
    NoCarrier,
    /// The module restarted (`RDY`) while the call was set up.
    #[error("modem restarted during the call")]
    Restarted,
    /// The module stopped listing the call before it was answered.
    #[error("call ended before it was answered")]
    Ended,
    /// Nobody answered within the unit's own ring time.
    #[error("no answer within {} s", .0.as_secs_f32())]
    RingTimeout(Duration),
    /// `ATD` or `AT+CLCC` failed.
    #[error(transparent)]
    Command(CommandFailed),
}

/// Why a call was not placed: the modem not usable, or the dialled number not answering.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The modem cannot place calls now.
    #[error(transparent)]
    Unusable(#[from] Unusable),
    /// The call was dialled but not answered.
    #[error("call to {number}: {reason}")]
    Dial {
        /// The number dialled.
        number: DialNumber,
        /// Why it was not answered.
        #[source]
        reason: DialFailure,
    },
}

/// Why a call's speech could not go through the unit's speakerphone.
#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    /// The module puts the call's audio nowhere the unit reads.
    #[error(transparent)]
    NoAudioPort(#[from] NoAudioPort),
    /// The module's voice port could not be opened or would not stream.
    #[error(transparent)]
    VoicePort(#[from] VoicePortError),
    /// The module's USB audio card could not be opened.
    #[error("the module's sound card: {0}")]
    SoundCard(#[source] crate::voice::VoiceError),
    /// Opening the module's USB audio card did not finish.
    #[error("the module's sound card: {0}")]
    SoundCardTask(#[source] tokio::task::JoinError),
}

/// The speech of the call in progress, carried through the speakerphone by its own task.
pub(super) struct Speech {
    /// Tells the task the call is over (the unit ends it for its next call).
    end: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
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

/// How long a call-back the centre asked for waits for a modem that is not ready yet.
pub const CALL_BACK_WAIT: Duration = Duration::from_secs(60);

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
    /// Answers calls from the configured numbers for `left` from now (the core's window,
    /// measured by the core's clock, so the modem reads no wall clock of its own).
    pub fn auto_answer_for(&self, left: Duration) {
        *crate::sync::lock(&self.inner.auto_answer) = Some(Instant::now() + left);
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
    ) -> Result<(), DialFailure> {
        let t = self.inner.timing;
        line.in_call = true;
        if let Err(e) = self
            .inner
            .at
            .send(Command::new(format!("ATD{number};"), t.network).call_setup())
            .await
        {
            return Err(DialFailure::Command(self.call_failure(e)));
        }
        let deadline = Instant::now() + t.answer;
        let mut poll = tokio::time::interval(t.poll);
        loop {
            tokio::select! {
                u = urcs.recv() => match u {
                    Ok(Urc::Busy) => return Err(DialFailure::Busy),
                    Ok(Urc::NoAnswer) => return Err(DialFailure::NoAnswer),
                    Ok(Urc::NoCarrier) => return Err(DialFailure::NoCarrier),
                    Ok(Urc::Rdy) => return Err(DialFailure::Restarted),
                    // The far end may speak before the poll sees the call answered.
                    Ok(u @ (Urc::Tone { .. } | Urc::Dtmf(_))) => line.heard.push(u),
                    _ => {}
                },
                _ = poll.tick() => {
                    let calls = match self.calls().await {
                        Ok(c) => c,
                        Err(e) => return Err(DialFailure::Command(self.call_failure(e))),
                    };
                    let call = calls.into_iter().find(|c| !c.incoming && c.voice);
                    match call.map(|c| c.state) {
                        Some(CallState::Active) => return Ok(()),
                        Some(_) => {}
                        None => {
                            // Give a final code that raced the poll a moment to arrive.
                            if let Ok(Ok(u)) = tokio::time::timeout(t.poll, urcs.recv()).await {
                                match u {
                                    Urc::Busy => return Err(DialFailure::Busy),
                                    Urc::NoAnswer => return Err(DialFailure::NoAnswer),
                                    _ => {}
                                }
                            }
                            return Err(DialFailure::Ended);
                        }
                    }
                },
                () = tokio::time::sleep_until(deadline) => {
                    return Err(DialFailure::RingTimeout(t.answer));
                }
            }
        }
    }

    /// A failed command with the meaning of its error number, and recovery if the modem
    /// stopped answering.
    pub fn call_failure(&self, e: ModemError) -> CommandFailed {
        if matches!(e, ModemError::Timeout { .. } | ModemError::EngineStopped) {
            self.report_fault(&e.to_string());
        }
        let meaning = match &e {
            ModemError::Rejected { result, .. } => at::explain(result),
            _ => None,
        };
        CommandFailed { error: e, meaning }
    }

    /// Calls `number` for speech (the core's `Output::StartCall`, a centre's call-back
    /// request) and leaves the call up; it ends with [`ModemEvent::CallEnded`] or
    /// [`Modem::hang_up`].
    ///
    /// The centre may ask before the modem is ready (its answer can come over IP while the
    /// module is still starting or recovering): the call waits for the modem, up to
    /// `CALL_BACK_WAIT`, rather than being lost.
    pub async fn start_call(&self, number: &DialNumber) -> Result<(), CallError> {
        self.wait_usable(CALL_BACK_WAIT).await?;
        let (line, _urcs) = self.place_call(number).await?;
        line.keep_open();
        Ok(())
    }

    /// Takes the call line and dials `number` until it answers, with a subscription to the
    /// module's unsolicited results from before the dial. On failure the call is hung up and
    /// the error says why: the modem not usable, or the number not answering.
    pub async fn place_call(
        &self,
        number: &DialNumber,
    ) -> Result<(CallLine, broadcast::Receiver<Urc>), CallError> {
        self.usable()?;
        let mut line = self.call_line().await;
        self.end_open_call().await;
        let mut urcs = self.inner.at.subscribe();
        if let Err(reason) = self.dial(&mut line, number, &mut urcs).await {
            line.hang_up().await;
            return Err(CallError::Dial {
                number: number.clone(),
                reason,
            });
        }
        Ok((line, urcs))
    }

    /// A call left open for speech (after a Contact ID kissoff, or a person's accept) would
    /// make the next `ATD` fail (`+CME ERROR: 3`): it is ended in order first, and the new call
    /// placed once the module lists no call.
    async fn end_open_call(&self) {
        let t = self.inner.timing;
        // Its speech first: SIMCom's stream stops before the call does, and cannot stop the
        // next call's.
        self.end_speech().await;
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
    pub async fn open_voice_port(&self) -> Result<voice_port::VoicePort, VoicePortError> {
        let Some(path) = self.inner.settings.voice_port.as_deref() else {
            return Err(VoicePortError::NotConfigured);
        };
        let port = voice_port::VoicePort::open(path)?;
        if self.cmd("AT+CPCMREG=1").await.is_err() {
            let _ = self.cmd("AT+CPCMREG=0").await;
            self.cmd("AT+CPCMREG=1")
                .await
                .map_err(VoicePortError::NotStreamed)?;
        }
        Ok(port)
    }

    /// Stops streaming the call (`AT+CPCMREG=0`, which SIMCom wants before the call ends) and
    /// closes the port; the module's own audio path carries the call again.
    pub async fn close_voice_port(&self, port: voice_port::VoicePort) {
        if let Err(e) = self.cmd("AT+CPCMREG=0").await {
            tracing::debug!(error = %e, "AT+CPCMREG=0 failed");
        }
        drop(port);
    }

    /// Where the module puts a call's audio for the unit's speakerphone, or why nowhere: from
    /// what it proved at init and the installer's `modem.voice_port` / `audio.call_device`.
    pub fn audio_port(&self) -> Result<AudioPort, NoAudioPort> {
        let settings = &self.inner.settings;
        audio_port::choose(
            self.capabilities().as_ref(),
            settings.voice_port.as_deref(),
            settings.call_device.as_deref(),
            settings
                .call_device
                .as_deref()
                .is_some_and(audio_port::can_open),
        )
    }

    /// Carries the call in progress through the unit's speakerphone `audio` on the module's
    /// call audio port ([`Modem::audio_port`]: a module wired by USB audio, with no analog codec
    /// of its own): speech crosses both ways until `stop` says so or the module stops sending,
    /// then the port is closed (SIMCom's voice port stops streaming first).
    pub async fn speak_in_call(
        &self,
        audio: Box<dyn CallAudioPort>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<BridgeEnd, SpeechError> {
        self.speak_on(None, audio, stop).await
    }

    /// [`Modem::speak_in_call`], on `streaming` when the call already streams on the voice
    /// port (Contact ID's call, whose tones and digits it carried): the same stream goes on as
    /// speech, never stopped and started again.
    async fn speak_on(
        &self,
        streaming: Option<voice_port::VoicePort>,
        mut audio: Box<dyn CallAudioPort>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<BridgeEnd, SpeechError> {
        if let Some(mut port) = streaming {
            let end = bridge(&mut port, audio.as_mut(), &mut stop).await;
            self.close_voice_port(port).await;
            return Ok(end);
        }
        match self.audio_port()? {
            AudioPort::VoicePort(_) => {
                let mut port = self.open_voice_port().await?;
                let end = bridge(&mut port, audio.as_mut(), &mut stop).await;
                self.close_voice_port(port).await;
                Ok(end)
            }
            AudioPort::SoundCard(card) => speak_on_sound_card(card, audio, stop).await,
        }
    }

    /// Carries the connected call's speech through the unit's speakerphone (`speakerphone`
    /// opens it) when the module puts calls on a port the unit reads ([`Modem::audio_port`]:
    /// SIMCom's voice port, Quectel's USB audio card; a module wired by USB audio has no
    /// loudspeaker of its own), until the call ends: the far end hangs up, the modem goes down,
    /// or the unit places its next call. `streaming` is the voice port already streaming this
    /// call (Contact ID's, after the kissoff): the speech goes on on it.
    ///
    /// True when a task now owns the call's speech. False when the module has no such port or
    /// the unit no speakerphone: then `streaming` is closed and the module's own audio path
    /// carries the call, as it always did.
    pub async fn carry_speech(
        &self,
        speakerphone: Option<&CallAudio>,
        streaming: Option<voice_port::VoicePort>,
    ) -> bool {
        let fits = match (speakerphone, self.audio_port()) {
            (Some(s), Ok(port)) => {
                tracing::info!(?port, "the call's speech goes through the speakerphone");
                Some(s.clone())
            }
            (None, _) | (_, Err(NoAudioPort::NotWired)) => None,
            (Some(_), Err(e)) => {
                tracing::error!(error = %e, "the call's speech cannot reach the speakerphone; the module's own audio path carries it");
                None
            }
        };
        let Some(speakerphone) = fits else {
            if let Some(port) = streaming {
                self.close_voice_port(port).await;
            }
            return false;
        };
        // An earlier call's speech whose end passed unseen is over now.
        self.end_speech().await;
        // Subscribed now, so the call's end cannot pass unseen while the audio opens.
        let events = self.events();
        let end = Arc::new(Notify::new());
        let task =
            tokio::spawn(
                self.clone()
                    .speech(speakerphone, streaming, events, Arc::clone(&end)),
            );
        *lock(&self.inner.speech) = Some(Speech { end, task });
        true
    }

    /// The task of [`Modem::carry_speech`]: opens the speakerphone, then bridges until the
    /// call ends.
    async fn speech(
        self,
        speakerphone: CallAudio,
        streaming: Option<voice_port::VoicePort>,
        mut events: broadcast::Receiver<ModemEvent>,
        end: Arc<Notify>,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        let port = match tokio::task::spawn_blocking(move || speakerphone()).await {
            Ok(Ok(port)) => port,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the call's speech cannot reach the speakerphone");
                if let Some(p) = streaming {
                    self.close_voice_port(p).await;
                }
                return;
            }
            Err(_) => {
                if let Some(p) = streaming {
                    self.close_voice_port(p).await;
                }
                return;
            }
        };
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let call_ends = async {
            loop {
                tokio::select! {
                    () = end.notified() => break,
                    e = events.recv() => match e {
                        Ok(ModemEvent::CallEnded { .. } | ModemEvent::Down { .. })
                        | Err(RecvError::Closed) => break,
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                    },
                }
            }
            stop_tx.send_replace(true);
            // The bridge stops, closes its port and returns; this waits for it.
            std::future::pending::<()>().await
        };
        let spoke = tokio::select! {
            spoke = self.speak_on(streaming, port, stop) => spoke,
            () = call_ends => return,
        };
        match spoke {
            Ok(end) => tracing::info!(?end, "the call's speech through the speakerphone ended"),
            Err(e) => {
                tracing::error!(error = %e, "the call's speech cannot go through the speakerphone")
            }
        }
    }

    /// Ends the call's speech through the speakerphone, if a task carries it, and waits until
    /// its port is closed.
    async fn end_speech(&self) {
        let speech = lock(&self.inner.speech).take();
        let Some(Speech { end, task }) = speech else {
            return;
        };
        end.notify_one();
        if tokio::time::timeout(self.inner.timing.command, task)
            .await
            .is_err()
        {
            tracing::warn!("the call's speech did not end in time");
        }
    }

    pub(super) async fn incoming_call(&self, from: &str) {
        let open = lock(&self.inner.auto_answer).is_some_and(|until| Instant::now() < until);
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

/// The call's speech on the module's USB audio card (Quectel, `AT+QPCMV=1,2` set at start and
/// kept across calls): the card is opened for this call and closed when it ends. With the
/// simulators, a simulated module's card ([`audio_port::SIM_CARD_PREFIX`]) is the PCM stream
/// that stands in for it.
async fn speak_on_sound_card(
    card: String,
    audio: Box<dyn CallAudioPort>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<BridgeEnd, SpeechError> {
    #[cfg(feature = "sim")]
    if let Some(path) = card.strip_prefix(audio_port::SIM_CARD_PREFIX) {
        let (mut audio, mut stop) = (audio, stop);
        let mut stream = voice_port::VoicePort::open(path)?;
        return Ok(bridge(&mut stream, audio.as_mut(), &mut stop).await);
    }
    speak_on_alsa_card(card, audio, stop).await
}

/// [`speak_on_sound_card`] through ALSA.
#[cfg(feature = "alsa")]
async fn speak_on_alsa_card(
    card: String,
    mut audio: Box<dyn CallAudioPort>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<BridgeEnd, SpeechError> {
    use crate::voice::bridge::{CallAudio, CallBridge};
    use crate::voice::catalogue::PromptSet;
    // Opening waits for the card's streams to start: off the runtime's threads.
    let opened = tokio::task::spawn_blocking(move || {
        let audio = CallAudio::new(PromptSet::tones(crate::voice::call_port::RATE));
        CallBridge::open(&card, audio).map_err(SpeechError::SoundCard)
    })
    .await
    .map_err(SpeechError::SoundCardTask)?;
    let mut card = opened?;
    Ok(bridge(&mut card, audio.as_mut(), &mut stop).await)
}

/// Without audio devices in the build no sound card is chosen ([`audio_port::choose`]); this
/// says so should one be asked for.
#[cfg(not(feature = "alsa"))]
async fn speak_on_alsa_card(
    _card: String,
    _audio: Box<dyn CallAudioPort>,
    _stop: tokio::sync::watch::Receiver<bool>,
) -> Result<BridgeEnd, SpeechError> {
    Err(SpeechError::NoAudioPort(NoAudioPort::NoAudioDevices))
}
