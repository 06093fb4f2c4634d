//! Voice-activity detection for the confirmation window: is someone answering?
//!
//! The audio is first band-passed to the speech band (200–3500 Hz, two second-order
//! Butterworth sections), which takes out hum, rumble and fan noise below and hiss above.
//! Frames of 20 ms are then judged on three measures:
//! - **energy** above an adaptive noise floor (the minimum of the smoothed frame energy over
//!   the last 2 s, so steady noise — a fan, a fridge, traffic — rises into the floor and stops
//!   counting, while speech, which keeps pausing between syllables, stands out of it);
//! - an **absolute level** (−55 dBFS) below which nothing counts;
//! - the **zero-crossing rate**: voiced speech crosses zero less than 4 000 times a second, hiss
//!   and white noise about half the sample rate.
//!
//! Speech is declared once 160 ms of speech-like frames fall within 1.5 s: enough for one
//! short word ("help", "yes"), more than a door slam or a cough's click. Dead capture (exact
//! digital zeros) and noise too loud to hear through give [`Heard::Unclear`]; the core treats
//! that as a reason to call for help.

use std::collections::VecDeque;

use crate::core::Heard;

/// Frame length in milliseconds.
pub const FRAME_MS: u32 = 20;

/// Tuning of the detector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VadConfig {
    /// How far above the noise floor a speech frame must be, dB.
    pub margin_db: f32,
    /// Frames quieter than this never count as speech, dBFS.
    pub min_level_dbfs: f32,
    /// Frames crossing zero more often than this (per second) count as noise.
    pub max_crossings_per_s: f32,
    /// Speech-like frames needed within [`VadConfig::window_frames`].
    pub needed_frames: usize,
    /// The sliding window in frames.
    pub window_frames: usize,
    /// Frames over which the noise floor is the minimum.
    pub floor_frames: usize,
    /// A noise floor above this, for most of the window, drowns speech: unclear.
    pub too_loud_dbfs: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            margin_db: 9.0,
            min_level_dbfs: -55.0,
            max_crossings_per_s: 4000.0,
            needed_frames: 8,
            window_frames: 75,
            floor_frames: 100,
            too_loud_dbfs: -18.0,
        }
    }
}

/// Measures of one frame, for tests and tuning.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameMeasure {
    /// Frame energy, dBFS.
    pub level_dbfs: f32,
    /// Noise floor when the frame was judged, dBFS.
    pub floor_dbfs: f32,
    /// Zero crossings per second.
    pub crossings_per_s: f32,
    /// Whether it counted as speech.
    pub speech: bool,
}

/// A streaming voice-activity detector over mono samples at one rate.
#[derive(Clone, Debug)]
pub struct Vad {
    config: VadConfig,
    rate: u32,
    frame_len: usize,
    pending: Vec<f32>,
    smoothed_db: Option<f32>,
    recent_levels: VecDeque<f32>,
    recent_speech: VecDeque<bool>,
    speech_in_window: usize,
    frames: u64,
    zero_frames: u64,
    loud_frames: u64,
    heard_speech: bool,
    last: Option<FrameMeasure>,
    raw_zero: bool,
    high_pass: Biquad,
    low_pass: Option<Biquad>,
}

/// A second-order IIR section (RBJ audio-EQ cookbook), direct form I.
#[derive(Clone, Copy, Debug)]
struct Biquad {
    b: [f32; 3],
    a: [f32; 2],
    x: [f32; 2],
    y: [f32; 2],
}

impl Biquad {
    /// Butterworth (Q = 1/√2) high-pass or low-pass at `freq` Hz.
    fn butterworth(freq: f32, rate: u32, high: bool) -> Biquad {
        let w0 = std::f32::consts::TAU * freq / rate as f32;
        let alpha = w0.sin() / (2.0 * std::f32::consts::FRAC_1_SQRT_2);
        let cos = w0.cos();
        let a0 = 1.0 + alpha;
        let (b0, b1) = if high {
            ((1.0 + cos) / 2.0, -(1.0 + cos))
        } else {
            ((1.0 - cos) / 2.0, 1.0 - cos)
        };
        Biquad {
            b: [b0 / a0, b1 / a0, b0 / a0],
            a: [-2.0 * cos / a0, (1.0 - alpha) / a0],
            x: [0.0; 2],
            y: [0.0; 2],
        }
    }

    fn run(&mut self, x: f32) -> f32 {
        let y = self.b[0] * x + self.b[1] * self.x[0] + self.b[2] * self.x[1]
            - self.a[0] * self.y[0]
            - self.a[1] * self.y[1];
        self.x = [x, self.x[0]];
        self.y = [y, self.y[0]];
        y
    }
}

impl Vad {
    /// A detector for audio at `rate` Hz with the default tuning.
    pub fn new(rate: u32) -> Vad {
        Vad::with_config(rate, VadConfig::default())
    }

    /// A detector with explicit tuning.
    pub fn with_config(rate: u32, config: VadConfig) -> Vad {
        let rate = rate.max(1000);
        let frame_len = (rate * FRAME_MS / 1000) as usize;
        Vad {
            config,
            rate,
            frame_len,
            pending: Vec::with_capacity(frame_len),
            smoothed_db: None,
            recent_levels: VecDeque::with_capacity(config.floor_frames + 1),
            recent_speech: VecDeque::with_capacity(config.window_frames + 1),
            speech_in_window: 0,
            frames: 0,
            zero_frames: 0,
            loud_frames: 0,
            heard_speech: false,
            last: None,
            raw_zero: true,
            high_pass: Biquad::butterworth(200.0, rate, true),
            low_pass: (rate > 8000).then(|| Biquad::butterworth(3500.0, rate, false)),
        }
    }

    /// Feeds captured samples; true once speech has been heard (it stays true).
    pub fn push(&mut self, samples: &[f32]) -> bool {
        for &s in samples {
            let s = if s.is_finite() {
                s.clamp(-1.0, 1.0)
            } else {
                0.0
            };
            self.raw_zero &= s == 0.0;
            let mut y = self.high_pass.run(s);
            if let Some(lp) = self.low_pass.as_mut() {
                y = lp.run(y);
            }
            self.pending.push(y);
            if self.pending.len() == self.frame_len {
                let frame = std::mem::take(&mut self.pending);
                self.judge(&frame);
                self.pending = frame;
                self.pending.clear();
            }
        }
        self.heard_speech
    }

    /// Drops a partial frame: the samples that follow are not continuous with it (the
    /// speaker was playing and its echo was not fed).
    pub fn discontinuity(&mut self) {
        self.pending.clear();
        self.raw_zero = true;
    }

    /// Whether speech has been heard.
    pub fn heard_speech(&self) -> bool {
        self.heard_speech
    }

    /// Frames judged so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The measures of the last frame judged.
    pub fn last_frame(&self) -> Option<FrameMeasure> {
        self.last
    }

    /// The verdict on everything fed so far.
    pub fn verdict(&self) -> Heard {
        if self.heard_speech {
            Heard::Speech
        } else if self.frames == 0 || self.zero_frames * 10 >= self.frames * 9 {
            // No audio, or a converter delivering exact zeros: a dead or muted microphone.
            Heard::Unclear
        } else if self.loud_frames * 2 >= self.frames {
            Heard::Unclear
        } else {
            Heard::Silence
        }
    }

    fn judge(&mut self, frame: &[f32]) {
        self.frames += 1;
        let n = frame.len() as f32;
        // Exact zeros at the input (the filters ring, so look before them).
        if std::mem::replace(&mut self.raw_zero, true) {
            self.zero_frames += 1;
        }
        let mean = frame.iter().sum::<f32>() / n;
        let energy: f64 = frame
            .iter()
            .map(|&s| f64::from(s - mean) * f64::from(s - mean))
            .sum::<f64>()
            / f64::from(n);
        let level = super::pcm::power_db(energy);
        let mut crossings = 0u32;
        let mut previous = 0.0f32;
        for &s in frame {
            let s = s - mean;
            if (s >= 0.0) != (previous >= 0.0) {
                crossings += 1;
            }
            previous = s;
        }
        let crossings_per_s = crossings as f32 * self.rate as f32 / n;

        // Floor: minimum of lightly smoothed levels over the last `floor_frames`.
        let smoothed = match self.smoothed_db {
            Some(prev) => 0.6 * prev + 0.4 * level,
            None => level,
        };
        self.smoothed_db = Some(smoothed);
        self.recent_levels.push_back(smoothed);
        if self.recent_levels.len() > self.config.floor_frames {
            self.recent_levels.pop_front();
        }
        let floor = self
            .recent_levels
            .iter()
            .copied()
            .fold(f32::INFINITY, f32::min);
        if floor > self.config.too_loud_dbfs {
            self.loud_frames += 1;
        }

        let speech = level > floor + self.config.margin_db
            && level > self.config.min_level_dbfs
            && crossings_per_s < self.config.max_crossings_per_s;
        self.recent_speech.push_back(speech);
        if speech {
            self.speech_in_window += 1;
        }
        if self.recent_speech.len() > self.config.window_frames
            && self.recent_speech.pop_front() == Some(true)
        {
            self.speech_in_window -= 1;
        }
        if self.speech_in_window >= self.config.needed_frames {
            self.heard_speech = true;
        }
        self.last = Some(FrameMeasure {
            level_dbfs: level,
            floor_dbfs: floor,
            crossings_per_s,
            speech,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 16_000;

    /// A deterministic noise source (xorshift), uniform in −amp..amp.
    fn noise(n: usize, amp: f32, seed: u32) -> Vec<f32> {
        let mut x = seed.max(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                amp * ((x as f32 / u32::MAX as f32) * 2.0 - 1.0)
            })
            .collect()
    }

    /// A voiced-speech-like signal: 140 Hz harmonics, syllables of 200 ms with 120 ms pauses.
    fn syllables(seconds: f32, amp: f32) -> Vec<f32> {
        let n = (RATE as f32 * seconds) as usize;
        (0..n)
            .map(|i| {
                let t = i as f32 / RATE as f32;
                let in_syllable = (t % 0.32) < 0.2;
                if !in_syllable {
                    return 0.0;
                }
                let f0 = 140.0;
                (1..6)
                    .map(|h| (std::f32::consts::TAU * f0 * h as f32 * t).sin() / h as f32)
                    .sum::<f32>()
                    * amp
            })
            .collect()
    }

    fn mix(a: &[f32], b: &[f32]) -> Vec<f32> {
        a.iter().zip(b).map(|(x, y)| x + y).collect()
    }

    #[test]
    fn quiet_room_is_silence() {
        let mut vad = Vad::new(RATE);
        vad.push(&noise(RATE as usize * 3, 0.002, 7));
        assert_eq!(vad.verdict(), Heard::Silence);
        assert_eq!(vad.frames(), 150);
    }

    #[test]
    fn syllables_in_a_quiet_room_are_speech() {
        let mut vad = Vad::new(RATE);
        let audio = mix(&syllables(2.0, 0.1), &noise(RATE as usize * 2, 0.002, 3));
        assert!(vad.push(&audio));
        assert_eq!(vad.verdict(), Heard::Speech);
    }

    #[test]
    fn loud_steady_hiss_is_not_speech() {
        let mut vad = Vad::new(RATE);
        vad.push(&noise(RATE as usize * 3, 0.05, 11));
        assert_eq!(vad.verdict(), Heard::Silence);
        assert!(!vad.last_frame().unwrap().speech);
    }

    #[test]
    fn noise_that_drowns_everything_is_unclear() {
        let mut vad = Vad::new(RATE);
        vad.push(&noise(RATE as usize * 3, 0.6, 5));
        assert_eq!(vad.verdict(), Heard::Unclear);
    }

    #[test]
    fn a_dead_microphone_or_no_audio_is_unclear() {
        let mut vad = Vad::new(RATE);
        assert_eq!(vad.verdict(), Heard::Unclear);
        vad.push(&vec![0.0; RATE as usize * 2]);
        assert_eq!(vad.verdict(), Heard::Unclear);
    }

    #[test]
    fn a_single_click_is_not_speech() {
        let mut vad = Vad::new(RATE);
        let mut audio = noise(RATE as usize * 2, 0.002, 9);
        for (i, s) in audio[16_000..16_800].iter_mut().enumerate() {
            *s += 0.8 * (-(i as f32) / 150.0).exp() * (i as f32 * 0.3).sin();
        }
        vad.push(&audio);
        assert_eq!(vad.verdict(), Heard::Silence);
    }

    #[test]
    fn garbage_samples_do_not_break_the_detector() {
        let mut vad = Vad::new(RATE);
        vad.push(&[f32::NAN, f32::INFINITY, -f32::INFINITY, 1e30, -1e30]);
        vad.push(&vec![f32::NAN; 1000]);
        assert!(matches!(vad.verdict(), Heard::Unclear | Heard::Silence));
    }
}
