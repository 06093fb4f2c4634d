//! The voice of the base unit: spoken prompts, listening for an answer, tones in call audio.
//!
//! - [`catalogue`]: `sounds/catalogue/<lang>.tsv` and `sounds/<lang>/<prompt>.wav`, checked
//!   and loaded at the speaker's rate, with English and then a tone pattern standing in for a
//!   missing file.
//! - [`player`]: the queue (alarm prompts cut technical ones, quiet hours hold technical ones
//!   back, volume) as a sans-IO mixer.
//! - [`vad`]: is someone answering during a confirmation window?
//! - [`tones`]: Goertzel detection of DTMF digits and the Contact ID handshake and kissoff.
//! - [`engine`]: the player and the listening window behind one lock, driven by a backend.
//! - [`sim`]: a simulated speaker and microphone that write what was played to WAV files and
//!   a timeline; `device` (feature `alsa`): real devices through cpal; [`bridge`]: call
//!   audio between a modem's PCM device and the unit.
//!
//! The runtime drives a [`Voice`] handle. Nothing here ever stops an alarm: a missing device,
//! a broken file or a failing stream is logged and reported, prompts fall back, and a listening
//! window that cannot hear ends as [`Heard::Unclear`], which the core treats as a call for help.

pub mod bridge;
pub mod call_port;
pub mod call_test;
pub mod catalogue;
pub mod cli;
#[cfg(feature = "alsa")]
pub mod device;
pub mod echo;
pub mod engine;
pub mod g711;
pub mod jitter;
pub mod media;
pub mod pcm;
pub mod player;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod sim;
#[cfg(feature = "sim")]
pub mod sim_call;
pub mod speakerphone;
pub mod srtp;
pub mod telephone_event;
pub mod tones;
pub mod vad;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing::{error, warn};

pub use engine::{Clock, Engine, SystemClock, TimedEvent, VoiceEvent};
pub use pcm::Clip;
pub use tones::{ContactIdDetector, ContactIdTone, Digit, DtmfDetector, Goertzel, ToneEvent};
pub use vad::Vad;

use crate::config::{Audio, QuietHours, Unit};
use crate::core::{Heard, Prompt, Timestamp};

/// Everything that can go wrong on the voice side.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    /// Bytes that are not a WAV file we can play.
    #[error("not a usable WAV file: {0}")]
    Wav(String),
    /// A file that could not be used.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file or folder that could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A catalogue text with a mistake in it.
    #[error("{path}:{line}: {reason}")]
    Catalogue {
        /// The catalogue file.
        path: PathBuf,
        /// Line number (0 for the file as a whole).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The configured (or default) audio device does not exist.
    #[error("no {direction} audio device {name}; devices present: {available}")]
    NoDevice {
        /// `output` or `input`.
        direction: &'static str,
        /// The name asked for, quoted, or "(default)".
        name: String,
        /// Names of the devices that are there.
        available: String,
    },
    /// An audio device that exists but cannot be used.
    #[error("{direction} audio device {name}: {reason}")]
    Device {
        /// `output` or `input`.
        direction: &'static str,
        /// The device.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

/// What the voice side takes from the configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct VoiceSettings {
    /// Folder with `catalogue/` and `<lang>/`.
    pub sounds_dir: PathBuf,
    /// Prompt language.
    pub language: String,
    /// Speaker volume, 0–100 %.
    pub volume: u8,
    /// When technical warnings are held back.
    pub quiet_hours: Option<QuietHours>,
}

impl VoiceSettings {
    /// Settings from the unit's configuration.
    pub fn from_config(audio: &Audio, unit: &Unit) -> VoiceSettings {
        VoiceSettings {
            sounds_dir: audio.sounds_dir.clone(),
            language: unit.language.clone(),
            volume: unit.volume,
            quiet_hours: unit.quiet_hours,
        }
    }
}

/// Sample rates of the opened devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rates {
    /// Speaker rate.
    pub output: u32,
    /// Microphone rate, None without a microphone (listening then ends as unclear).
    pub input: Option<u32>,
}

/// The engine as backends and the handle share it.
pub type SharedEngine = Arc<Mutex<Engine>>;

/// Locks the engine; a panic elsewhere while it was held does not stop the voice.
pub fn lock(engine: &SharedEngine) -> MutexGuard<'_, Engine> {
    crate::sync::lock(engine)
}

/// A speaker and microphone: real (`device`, feature `alsa`) or simulated ([`sim`]).
pub trait AudioBackend: Send {
    /// The devices, for logs.
    fn describe(&self) -> String;
    /// Opens the devices and says their rates; a missing speaker is an error.
    fn open(&mut self) -> Result<Rates, VoiceError>;
    /// Starts moving audio: from now on the backend calls [`Engine::render`] and
    /// [`Engine::capture`] (or [`Engine::capture_failed`]).
    fn start(&mut self, engine: SharedEngine) -> Result<(), VoiceError>;
}

/// The handle the runtime uses: cheap to clone, never blocks, never fails an alarm.
#[derive(Clone)]
pub struct Voice {
    inner: Arc<VoiceInner>,
}

struct VoiceInner {
    engine: Option<SharedEngine>,
    clock: Arc<dyn Clock>,
    fault: Option<String>,
    // Kept alive for as long as the handle: dropping it stops the streams.
    _backend: Mutex<Option<Box<dyn AudioBackend>>>,
}

impl Voice {
    /// Opens `backend`, loads the prompts at its rate and starts it.
    pub fn open(
        settings: &VoiceSettings,
        mut backend: Box<dyn AudioBackend>,
        clock: Arc<dyn Clock>,
    ) -> Result<Voice, VoiceError> {
        let rates = backend.open()?;
        let (prompts, problems) =
            catalogue::PromptSet::load(&settings.sounds_dir, &settings.language, rates.output);
        if !problems.is_empty() {
            warn!(
                problems = problems.len(),
                language = %settings.language,
                "some prompts fall back to another language or a tone"
            );
        }
        let player = player::Player::new(prompts, settings.volume, settings.quiet_hours);
        let input_rate = rates.input.unwrap_or(catalogue::PROMPT_RATE);
        let engine = Arc::new(Mutex::new(Engine::new(player, clock.clone(), input_rate)));
        backend.start(engine.clone())?;
        let fault = rates
            .input
            .is_none()
            .then(|| "no microphone: listening windows end as unclear".to_string());
        if let Some(f) = &fault {
            warn!(backend = %backend.describe(), "{f}");
        }
        Ok(Voice {
            inner: Arc::new(VoiceInner {
                engine: Some(engine),
                clock,
                fault,
                _backend: Mutex::new(Some(backend)),
            }),
        })
    }

    /// Like [`Voice::open`], but a failure gives a mute voice (logged) instead of an error:
    /// the unit keeps raising alarms without a speaker.
    pub fn open_or_mute(
        settings: &VoiceSettings,
        backend: Box<dyn AudioBackend>,
        clock: Arc<dyn Clock>,
    ) -> Voice {
        let describe = backend.describe();
        match Voice::open(settings, backend, clock.clone()) {
            Ok(v) => v,
            Err(e) => {
                error!(backend = %describe, error = %e, "no audio: prompts will not be heard, alarms still go out");
                Voice::mute(&e.to_string(), clock)
            }
        }
    }

    /// A voice without audio: prompts are logged, listening ends as unclear.
    pub fn mute(reason: &str, clock: Arc<dyn Clock>) -> Voice {
        Voice {
            inner: Arc::new(VoiceInner {
                engine: None,
                clock,
                fault: Some(reason.to_string()),
                _backend: Mutex::new(None),
            }),
        }
    }

    /// What is wrong with the audio, if anything (for `vigil status` and the installer).
    pub fn fault(&self) -> Option<&str> {
        self.inner.fault.as_deref()
    }

    /// Queues a prompt; returns at once.
    pub fn play(&self, prompt: Prompt) {
        match &self.inner.engine {
            Some(engine) => lock(engine).play(prompt),
            None => warn!(prompt = prompt.file_stem(), "no audio: prompt not played"),
        }
    }

    /// Drops technical warnings waiting or playing.
    pub fn silence_warnings(&self) {
        if let Some(engine) = &self.inner.engine {
            lock(engine).silence_warnings();
        }
    }

    /// Opens a listening window until `until` at once and returns the future verdict; it
    /// resolves early on speech or when [`Voice::stop_listening`] is called. Dropping the future
    /// closes the window. Without a working microphone the answer is [`Heard::Unclear`].
    pub fn listen(&self, until: Timestamp) -> impl Future<Output = Heard> + Send + 'static {
        let opened = self.inner.engine.as_ref().map(|engine| {
            let (id, reply) = lock(engine).listen(until);
            let abandon = AbandonOnDrop {
                engine: engine.clone(),
                id,
            };
            (abandon, reply)
        });
        // The backend closes the window at `until`; this bound only catches a backend that
        // stopped calling the engine (a stalled stream).
        let bound = until.since(self.inner.clock.now()) + Duration::from_secs(2);
        async move {
            let Some((abandon, reply)) = opened else {
                return Heard::Unclear;
            };
            let heard = match tokio::time::timeout(bound, reply).await {
                Ok(Ok(heard)) => heard,
                Ok(Err(_)) => Heard::Unclear,
                Err(_) => {
                    warn!("audio stalled during a listening window");
                    Heard::Unclear
                }
            };
            drop(abandon);
            heard
        }
    }

    /// Ends the open listening window now (the core's `StopListening`).
    pub fn stop_listening(&self) {
        if let Some(engine) = &self.inner.engine {
            lock(engine).stop_listening();
        }
    }

    /// The engine, for backends and tests.
    pub fn engine(&self) -> Option<&SharedEngine> {
        self.inner.engine.as_ref()
    }
}

struct AbandonOnDrop {
    engine: SharedEngine,
    id: u64,
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        lock(&self.engine).abandon_window(self.id);
    }
}
