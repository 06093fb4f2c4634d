//! The voice engine shared by an audio backend and the [`Voice`](super::Voice) handle: the
//! player and the listening window, driven by the backend's render and capture calls.
//!
//! Backends call [`Engine::render`] from their output path and [`Engine::capture`] from their
//! input path; the handle asks for prompts and windows. Every call is short and never waits
//! on IO, so a lock around the engine is held only for microseconds.

use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::player::{Player, PlayerEventKind};
use super::vad::Vad;
use crate::core::{Heard, Prompt, Timestamp};

/// The time of day and the wall clock, as the voice side needs them.
pub trait Clock: Send + Sync {
    /// Wall-clock now.
    fn now(&self) -> Timestamp;
    /// Local minutes after midnight (0–1439), for quiet hours.
    fn local_minute_of_day(&self) -> u16;
}

/// The system's clock and time zone.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn local_minute_of_day(&self) -> u16 {
        use chrono::Timelike;
        let now = chrono::Local::now();
        (now.hour() * 60 + now.minute()) as u16
    }
}

/// How long after a prompt ends the microphone still hears it (room echo, speaker ring-down).
pub const ECHO_TAIL_MS: u64 = 300;

/// Something the voice side did, for logs and the simulated backend's timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VoiceEvent {
    /// A prompt started, in this language.
    Started {
        /// The prompt.
        prompt: Prompt,
        /// Language of the audio (`"tone"` for the stand-in signal).
        language: String,
    },
    /// A prompt played to its end.
    Finished {
        /// The prompt.
        prompt: Prompt,
    },
    /// A prompt was cut by a more urgent one.
    Cut {
        /// The prompt cut.
        prompt: Prompt,
        /// The prompt that cut it.
        by: Prompt,
    },
    /// A technical warning waits for quiet hours to end.
    Deferred {
        /// The prompt.
        prompt: Prompt,
    },
    /// A listening window opened.
    Listening {
        /// Its end.
        until: Timestamp,
    },
    /// A listening window closed with this verdict.
    Heard {
        /// The verdict.
        heard: Heard,
    },
    /// The audio path failed; prompts may not be heard.
    Fault {
        /// What failed.
        reason: String,
    },
}

/// A [`VoiceEvent`] with when it happened and at which output sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedEvent {
    /// When.
    pub at: Timestamp,
    /// Output sample index (since the engine started) it happened at.
    pub sample: u64,
    /// What.
    pub event: VoiceEvent,
}

struct Window {
    id: u64,
    until: Timestamp,
    vad: Vad,
    reply: Option<oneshot::Sender<Heard>>,
}

/// The player and the listening window behind one lock.
pub struct Engine {
    player: Player,
    clock: Arc<dyn Clock>,
    input_rate: u32,
    window: Option<Window>,
    next_window_id: u64,
    output_samples: u64,
    quiet_until_sample: u64,
    events: Vec<TimedEvent>,
    keep_events: bool,
}

impl Engine {
    /// An engine over `player`; captured audio arrives at `input_rate`.
    pub fn new(player: Player, clock: Arc<dyn Clock>, input_rate: u32) -> Engine {
        Engine {
            player,
            clock,
            input_rate,
            window: None,
            next_window_id: 1,
            output_samples: 0,
            quiet_until_sample: 0,
            events: Vec::new(),
            keep_events: false,
        }
    }

    /// Keeps events for [`Engine::take_events`] (a timeline); otherwise they are only logged.
    pub fn keep_events(&mut self, keep: bool) {
        self.keep_events = keep;
    }

    /// The speaker's sample rate.
    pub fn output_rate(&self) -> u32 {
        self.player.rate()
    }

    /// The microphone's sample rate.
    pub fn input_rate(&self) -> u32 {
        self.input_rate
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Asks for a prompt.
    pub fn play(&mut self, prompt: Prompt) {
        debug!(prompt = prompt.file_stem(), "prompt asked for");
        self.player.enqueue(prompt);
    }

    /// Drops technical warnings.
    pub fn silence_warnings(&mut self) {
        self.player.clear_technical();
    }

    /// Whether a prompt is playing now.
    pub fn is_speaking(&self) -> bool {
        self.player.is_speaking()
    }

    /// Whether nothing plays or waits.
    pub fn is_idle(&self) -> bool {
        self.player.is_idle()
    }

    /// Opens a listening window until `until`; the verdict arrives on the returned channel.
    /// A window already open is closed with its verdict so far.
    pub fn listen(&mut self, until: Timestamp) -> (u64, oneshot::Receiver<Heard>) {
        self.close_window(None);
        let (tx, rx) = oneshot::channel();
        let id = self.next_window_id;
        self.next_window_id += 1;
        self.window = Some(Window {
            id,
            until,
            vad: Vad::new(self.input_rate),
            reply: Some(tx),
        });
        self.record(VoiceEvent::Listening { until });
        (id, rx)
    }

    /// Closes the open window early (the core's `StopListening`) with its verdict so far.
    pub fn stop_listening(&mut self) {
        self.close_window(None);
    }

    /// Closes window `id` if it is still the open one (its listener went away).
    pub fn abandon_window(&mut self, id: u64) {
        if self.window.as_ref().is_some_and(|w| w.id == id) {
            self.window = None;
        }
    }

    /// Whether a listening window is open.
    pub fn is_listening(&self) -> bool {
        self.window.is_some()
    }

    /// Fills `out` with the next speaker samples (mono, at [`Engine::output_rate`]).
    pub fn render(&mut self, out: &mut [f32]) {
        let start = self.output_samples;
        let minute = self.clock.local_minute_of_day();
        self.player.render(out, minute);
        for e in self.player.take_events() {
            let event = match e.kind {
                PlayerEventKind::Started { prompt, language } => {
                    VoiceEvent::Started { prompt, language }
                }
                PlayerEventKind::Finished { prompt } => VoiceEvent::Finished { prompt },
                PlayerEventKind::Cut { prompt, by } => VoiceEvent::Cut { prompt, by },
                PlayerEventKind::Deferred { prompt } => VoiceEvent::Deferred { prompt },
            };
            self.record_at(start + e.offset as u64, event);
        }
        self.output_samples += out.len() as u64;
        if self.player.is_speaking() {
            let tail = u64::from(self.output_rate()) * ECHO_TAIL_MS / 1000;
            self.quiet_until_sample = self.output_samples + tail;
        }
        self.check_deadline();
    }

    /// Takes captured microphone samples (mono, at [`Engine::input_rate`]).
    pub fn capture(&mut self, samples: &[f32]) {
        let echo = self.player.is_speaking() || self.output_samples < self.quiet_until_sample;
        let mut verdict = None;
        if let Some(w) = self.window.as_mut() {
            if echo {
                // The microphone hears our own prompt: that is not the person answering.
                w.vad.discontinuity();
            } else if w.vad.push(samples) {
                verdict = Some(Heard::Speech);
            }
        }
        if verdict.is_some() {
            self.close_window(verdict);
        } else {
            self.check_deadline();
        }
    }

    /// The capture path failed: the open window ends as [`Heard::Unclear`] (fail towards help).
    pub fn capture_failed(&mut self, reason: &str) {
        warn!(reason, "microphone capture failed");
        self.record(VoiceEvent::Fault {
            reason: format!("capture: {reason}"),
        });
        self.close_window(Some(Heard::Unclear));
    }

    /// The output path failed.
    pub fn playback_failed(&mut self, reason: &str) {
        warn!(reason, "speaker playback failed");
        self.record(VoiceEvent::Fault {
            reason: format!("playback: {reason}"),
        });
    }

    /// Closes the window if its time is up.
    pub fn check_deadline(&mut self) {
        if self
            .window
            .as_ref()
            .is_some_and(|w| self.clock.now() >= w.until)
        {
            self.close_window(None);
        }
    }

    /// Events recorded since the last call (only with [`Engine::keep_events`]).
    pub fn take_events(&mut self) -> Vec<TimedEvent> {
        std::mem::take(&mut self.events)
    }

    /// Output samples rendered since the start.
    pub fn output_samples(&self) -> u64 {
        self.output_samples
    }

    fn close_window(&mut self, verdict: Option<Heard>) {
        let Some(mut w) = self.window.take() else {
            return;
        };
        let heard = verdict.unwrap_or_else(|| w.vad.verdict());
        if let Some(reply) = w.reply.take() {
            // The listener may have gone away; nothing to do then.
            let _ = reply.send(heard);
        }
        self.record(VoiceEvent::Heard { heard });
    }

    fn record(&mut self, event: VoiceEvent) {
        self.record_at(self.output_samples, event);
    }

    fn record_at(&mut self, sample: u64, event: VoiceEvent) {
        // The clock's now is the time of output sample `output_samples` (the start of the
        // block being rendered); events inside the block are offset from it.
        let rate = u64::from(self.output_rate().max(1));
        let now = self.clock.now().0;
        let at = if sample >= self.output_samples {
            Timestamp(now.saturating_add((sample - self.output_samples) * 1000 / rate))
        } else {
            Timestamp(now.saturating_sub((self.output_samples - sample) * 1000 / rate))
        };
        match &event {
            VoiceEvent::Started { prompt, language } => {
                info!(prompt = prompt.file_stem(), language = %language, "prompt playing")
            }
            VoiceEvent::Cut { prompt, by } => {
                info!(
                    prompt = prompt.file_stem(),
                    by = by.file_stem(),
                    "prompt cut"
                )
            }
            VoiceEvent::Deferred { prompt } => {
                info!(
                    prompt = prompt.file_stem(),
                    "warning waits for quiet hours to end"
                )
            }
            VoiceEvent::Heard { heard } => info!(?heard, "listening window closed"),
            _ => debug!(?event, "voice"),
        }
        if self.keep_events {
            self.events.push(TimedEvent { at, sample, event });
        }
    }
}
