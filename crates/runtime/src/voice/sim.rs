//! A simulated speaker and microphone for the demo and tests.
//!
//! The speaker writes every prompt it played to `NNN-<lang>-<prompt>.wav` (exactly the samples
//! that left it: a cut prompt's file is short) and appends to `timeline.txt`; tests read the
//! same timeline in memory. The microphone hears what the test says into the room, room noise,
//! and — like a real base unit, whose speaker and microphone sit a few centimetres apart — the
//! speaker's own output. It can be dead (exact zeros), fail mid-window, or be absent; the
//! speaker can be absent too, and then opening fails like a missing ALSA device.
//!
//! Time is either manual ([`SimAudio::advance`] with a [`SimClock`], for deterministic tests)
//! or real (a thread renders 20 ms blocks as the wall clock goes, for `vigil demo`).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tracing::warn;

use super::engine::{Clock, SystemClock, TimedEvent, VoiceEvent};
use super::pcm::{self, Clip};
use super::{lock, AudioBackend, Rates, SharedEngine, VoiceError};
use crate::core::{Prompt, Timestamp};

/// A clock that moves only when told: wall time and a local UTC offset.
#[derive(Debug)]
pub struct SimClock {
    millis: AtomicU64,
    utc_offset_min: i32,
}

impl SimClock {
    /// A clock at `start`, in a zone `utc_offset_min` minutes ahead of UTC.
    pub fn new(start: Timestamp, utc_offset_min: i32) -> SimClock {
        SimClock {
            millis: AtomicU64::new(start.0),
            utc_offset_min,
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.millis
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.millis.load(Ordering::SeqCst))
    }

    fn local_minute_of_day(&self) -> u16 {
        let minutes = (self.now().0 / 60_000) as i64 + i64::from(self.utc_offset_min);
        minutes.rem_euclid(1440) as u16
    }
}

/// How the simulated microphone behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MicState {
    /// Hears the room.
    Working,
    /// Delivers exact zeros (a muted or unplugged converter).
    Dead,
    /// The capture stream fails at the next block.
    Failing,
    /// There is no microphone device.
    Absent,
}

/// Settings of the simulated devices.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Speaker sample rate (real devices run at 44.1 or 48 kHz).
    pub output_rate: u32,
    /// Microphone sample rate.
    pub input_rate: u32,
    /// Whether there is a speaker at all.
    pub speaker_present: bool,
    /// The microphone.
    pub mic: MicState,
    /// How much of the speaker the microphone hears (0 = none; a base unit is about 0.3).
    pub echo_gain: f32,
    /// RMS level of room noise at the microphone, dBFS (−120 for none).
    pub room_noise_dbfs: f32,
    /// Where to write WAVs and the timeline; None keeps them in memory only.
    pub out_dir: Option<PathBuf>,
    /// Block length, ms.
    pub block_ms: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            output_rate: 48_000,
            input_rate: 16_000,
            speaker_present: true,
            mic: MicState::Working,
            echo_gain: 0.3,
            room_noise_dbfs: -60.0,
            out_dir: None,
            block_ms: 10,
        }
    }
}

/// A prompt file the simulated speaker wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct PlayedFile {
    /// The prompt.
    pub prompt: Prompt,
    /// Its language.
    pub language: String,
    /// When it started.
    pub started: Timestamp,
    /// Whether it was cut short.
    pub cut: bool,
    /// What left the speaker.
    pub audio: Clip,
    /// Where it was written, if anywhere.
    pub path: Option<PathBuf>,
}

/// The simulated devices; clones share them (give one to [`super::Voice`], keep one to drive
/// and inspect).
#[derive(Clone)]
pub struct SimAudio {
    inner: Arc<Mutex<SimState>>,
    manual: Option<Arc<SimClock>>,
}

struct Recording {
    prompt: Prompt,
    language: String,
    started: Timestamp,
    samples: Vec<f32>,
}

struct SimState {
    config: SimConfig,
    engine: Option<SharedEngine>,
    mic: MicState,
    room: VecDeque<f32>,
    noise_seed: u32,
    timeline: Vec<TimedEvent>,
    files: Vec<PlayedFile>,
    recording: Option<Recording>,
    seq: u32,
    problems: Vec<String>,
}

impl SimAudio {
    /// Devices driven by hand with [`SimAudio::advance`] on `clock`.
    pub fn manual(config: SimConfig, clock: Arc<SimClock>) -> SimAudio {
        SimAudio::build(config, Some(clock))
    }

    /// Devices that run on the wall clock once started (for the demo).
    pub fn real_time(config: SimConfig) -> SimAudio {
        SimAudio::build(config, None)
    }

    fn build(config: SimConfig, manual: Option<Arc<SimClock>>) -> SimAudio {
        if let Some(dir) = &config.out_dir {
            if let Err(e) = std::fs::create_dir_all(dir) {
                warn!(dir = %dir.display(), error = %e, "cannot create the simulated audio folder");
            }
        }
        let mic = config.mic;
        SimAudio {
            inner: Arc::new(Mutex::new(SimState {
                config,
                engine: None,
                mic,
                room: VecDeque::new(),
                noise_seed: 0x9E37_79B9,
                timeline: Vec::new(),
                files: Vec::new(),
                recording: None,
                seq: 0,
                problems: Vec::new(),
            })),
            manual,
        }
    }

    /// The clock the engine should use with these devices.
    pub fn clock(&self) -> Arc<dyn Clock> {
        match &self.manual {
            Some(c) => c.clone(),
            None => Arc::new(SystemClock),
        }
    }

    fn state(&self) -> MutexGuard<'_, SimState> {
        crate::sync::lock(&self.inner)
    }

    /// Someone in the room makes this sound, starting now (mixed into the microphone).
    pub fn say(&self, clip: &Clip) {
        let mut s = self.state();
        let rate = s.config.input_rate;
        let audio = clip.resampled(rate).samples;
        let room: &mut VecDeque<f32> = &mut s.room;
        for (i, x) in audio.into_iter().enumerate() {
            match room.get_mut(i) {
                Some(slot) => *slot += x,
                None => room.push_back(x),
            }
        }
    }

    /// Changes the microphone's behaviour from now on.
    pub fn set_mic(&self, mic: MicState) {
        self.state().mic = mic;
    }

    /// Renders and captures `by` of audio, moving the manual clock along. Does nothing on
    /// real-time devices (they move by themselves).
    pub fn advance(&self, by: Duration) {
        let Some(clock) = &self.manual else {
            return;
        };
        let block_ms = u64::from(self.state().config.block_ms.max(1));
        let blocks = by.as_millis() as u64 / block_ms;
        for _ in 0..blocks {
            step(&self.inner);
            clock.advance(Duration::from_millis(block_ms));
        }
    }

    /// Everything that happened, in order.
    pub fn timeline(&self) -> Vec<TimedEvent> {
        self.state().timeline.clone()
    }

    /// The prompts played (started), with their language, in order.
    pub fn played(&self) -> Vec<(Prompt, String)> {
        self.state()
            .timeline
            .iter()
            .filter_map(|e| match &e.event {
                VoiceEvent::Started { prompt, language } => Some((*prompt, language.clone())),
                _ => None,
            })
            .collect()
    }

    /// The audio each prompt put out, in order (finished or cut).
    pub fn files(&self) -> Vec<PlayedFile> {
        self.state().files.clone()
    }

    /// Problems writing files.
    pub fn problems(&self) -> Vec<String> {
        self.state().problems.clone()
    }

    /// The timeline as text, one event a line (what `timeline.txt` holds).
    pub fn timeline_text(&self) -> String {
        let mut out = String::new();
        for e in self.state().timeline.iter() {
            let _ = writeln!(out, "{}", describe(e));
        }
        out
    }
}

/// One timeline line: `<UTC time> <event>`.
pub fn describe(e: &TimedEvent) -> String {
    let what = match &e.event {
        VoiceEvent::Started { prompt, language } => {
            format!("play {language}/{}", prompt.file_stem())
        }
        VoiceEvent::Finished { prompt } => format!("done {}", prompt.file_stem()),
        VoiceEvent::Cut { prompt, by } => {
            format!("cut {} by {}", prompt.file_stem(), by.file_stem())
        }
        VoiceEvent::Deferred { prompt } => {
            format!("defer {} (quiet hours)", prompt.file_stem())
        }
        VoiceEvent::Listening { until } => format!("listen until {until}"),
        VoiceEvent::Heard { heard } => format!("heard {heard:?}"),
        VoiceEvent::Fault { reason } => format!("fault {reason}"),
    };
    format!("{} {what}", e.at)
}

impl AudioBackend for SimAudio {
    fn describe(&self) -> String {
        let s = self.state();
        format!(
            "simulated speaker {} Hz, microphone {:?} {} Hz",
            s.config.output_rate, s.mic, s.config.input_rate
        )
    }

    fn open(&mut self) -> Result<Rates, VoiceError> {
        let s = self.state();
        if !s.config.speaker_present {
            return Err(VoiceError::NoDevice {
                direction: "output",
                name: "(default)".to_string(),
                available: "none".to_string(),
            });
        }
        Ok(Rates {
            output: s.config.output_rate,
            input: (s.mic != MicState::Absent).then_some(s.config.input_rate),
        })
    }

    fn start(&mut self, engine: SharedEngine) -> Result<(), VoiceError> {
        lock(&engine).keep_events(true);
        let block_ms = {
            let mut s = self.state();
            s.engine = Some(engine);
            s.config.block_ms.max(1)
        };
        if self.manual.is_none() {
            let weak = Arc::downgrade(&self.inner);
            std::thread::Builder::new()
                .name("sim-audio".into())
                .spawn(move || run_real_time(weak, block_ms))
                .map_err(|e| VoiceError::Device {
                    direction: "output",
                    name: "simulated".into(),
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }
}

/// Paces blocks on the wall clock until every handle to the devices is gone.
fn run_real_time(state: Weak<Mutex<SimState>>, block_ms: u32) {
    let start = std::time::Instant::now();
    let mut blocks = 0u64;
    while let Some(inner) = state.upgrade() {
        step(&inner);
        drop(inner);
        blocks += 1;
        let due = start + Duration::from_millis(blocks * u64::from(block_ms));
        std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
    }
}

/// One block: the speaker renders, the microphone captures (room + echo + noise).
fn step(inner: &Mutex<SimState>) {
    let mut s = crate::sync::lock(inner);
    let Some(engine) = s.engine.clone() else {
        return;
    };
    let out_len = (s.config.output_rate * s.config.block_ms / 1000) as usize;
    let in_len = (s.config.input_rate * s.config.block_ms / 1000) as usize;
    let mut block = vec![0.0f32; out_len];
    let mut e = lock(&engine);
    let first_sample = e.output_samples();
    e.render(&mut block);

    match s.mic {
        MicState::Absent => e.check_deadline(),
        MicState::Failing => {
            if e.is_listening() {
                e.capture_failed("simulated capture error");
            }
        }
        MicState::Dead => e.capture(&vec![0.0; in_len]),
        MicState::Working => {
            let echo = pcm::resample(&block, s.config.output_rate, s.config.input_rate);
            let noise_amp = 10f32.powf(s.config.room_noise_dbfs / 20.0) * 3f32.sqrt();
            let mut mic = Vec::with_capacity(in_len);
            for i in 0..in_len {
                let room = s.room.pop_front().unwrap_or(0.0);
                let echo = echo.get(i).copied().unwrap_or(0.0) * s.config.echo_gain;
                s.noise_seed ^= s.noise_seed << 13;
                s.noise_seed ^= s.noise_seed >> 17;
                s.noise_seed ^= s.noise_seed << 5;
                let noise = noise_amp * ((s.noise_seed as f32 / u32::MAX as f32) * 2.0 - 1.0);
                mic.push(room + echo + noise);
            }
            e.capture(&mic);
        }
    }
    let events = e.take_events();
    drop(e);
    s.record(first_sample, &block, events);
}

impl SimState {
    fn record(&mut self, first: u64, block: &[f32], events: Vec<TimedEvent>) {
        let end = first + block.len() as u64;
        let mut cursor = first;
        let mut lines = String::new();
        for ev in events {
            let at = ev.sample.clamp(first, end);
            if let Some(rec) = self.recording.as_mut() {
                let from = (cursor - first) as usize;
                let to = (at - first) as usize;
                rec.samples
                    .extend_from_slice(block.get(from..to).unwrap_or(&[]));
            }
            cursor = at;
            match &ev.event {
                VoiceEvent::Started { prompt, language } => {
                    self.finish_recording(false);
                    self.recording = Some(Recording {
                        prompt: *prompt,
                        language: language.clone(),
                        started: ev.at,
                        samples: Vec::new(),
                    });
                }
                VoiceEvent::Finished { .. } => self.finish_recording(false),
                VoiceEvent::Cut { .. } => self.finish_recording(true),
                _ => {}
            }
            let _ = writeln!(lines, "{}", describe(&ev));
            self.timeline.push(ev);
        }
        if let Some(rec) = self.recording.as_mut() {
            let from = (cursor - first) as usize;
            rec.samples
                .extend_from_slice(block.get(from..).unwrap_or(&[]));
        }
        if !lines.is_empty() {
            if let Some(dir) = self.config.out_dir.clone() {
                if let Err(e) = append(&dir.join("timeline.txt"), &lines) {
                    self.problems.push(e);
                }
            }
        }
    }

    fn finish_recording(&mut self, cut: bool) {
        let Some(rec) = self.recording.take() else {
            return;
        };
        self.seq += 1;
        let audio = Clip::new(self.config.output_rate, rec.samples);
        let path = self.config.out_dir.as_ref().map(|dir| {
            dir.join(format!(
                "{:03}-{}-{}{}.wav",
                self.seq,
                rec.language,
                rec.prompt.file_stem(),
                if cut { "-cut" } else { "" }
            ))
        });
        if let Some(p) = &path {
            if let Err(e) = pcm::write_wav(p, &audio) {
                self.problems.push(e.to_string());
            }
        }
        self.files.push(PlayedFile {
            prompt: rec.prompt,
            language: rec.language,
            started: rec.started,
            cut,
            audio,
            path,
        });
    }
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}
