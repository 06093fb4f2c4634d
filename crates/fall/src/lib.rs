//! The pendant's fall detector, its evaluation on SisFall, and trace replay.
//!
//! - [`detector`]: the streaming detector itself, `core`-only, allocation-free, bounded state.
//! - [`sisfall`]: loader for SisFall trial files (both the original and the 3-column form).
//! - [`baseline`]: the SisFall paper's threshold detectors C8 and C9, for comparison.
//! - [`condition`]: what another sensor (rate, range, jitter, noise, stuck axis) reads.
//! - [`eval`]: `vigil fall-eval`, scoring the shipped detector and the baselines on a folder.
//! - [`tune`]: `vigil fall-tune`, choosing parameters on tuning subjects only.
//!
//! The simulated pendant turns a recorded trial into fall frames with [`replay`].

// Bad input and broken invariants are handled, not panicked on. Tests may still unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod baseline;
pub mod condition;
pub mod detector;
pub mod eval;
pub mod sisfall;
pub mod tune;

use std::path::PathBuf;

pub use detector::{Assessment, Evidence, FallDetector, FallEvent, FallParams, SensorConfig};
pub use sisfall::{Trial, TrialKind};

/// Everything that can go wrong in fall detection, loading and evaluation.
#[derive(Debug, thiserror::Error)]
pub enum FallError {
    /// The detector supports 50–200 Hz.
    #[error("sample rate {rate_hz} Hz is outside the supported 50–200 Hz")]
    Rate {
        /// The rate asked for.
        rate_hz: u16,
    },
    /// A line with a column count other than 3 or 9.
    #[error("line {line}: expected 3 or 9 comma-separated columns, found {found}")]
    Columns {
        /// 1-based line number.
        line: usize,
        /// Columns found.
        found: usize,
    },
    /// A value that is not an integer.
    #[error("line {line}: {value:?} is not an integer sensor reading")]
    Value {
        /// 1-based line number.
        line: usize,
        /// The offending text.
        value: String,
    },
    /// A file whose name does not follow SisFall's `Dnn_…`/`Fnn_…` scheme.
    #[error("{path}: not a SisFall trial name (expected Dnn_SUBJECT_Rnn.txt or Fnn_…)")]
    FileName {
        /// The file.
        path: PathBuf,
    },
    /// A folder without any trial.
    #[error("{path}: no SisFall trial files (Dnn_*.txt, Fnn_*.txt) found")]
    NoTrials {
        /// The folder.
        path: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {error}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error (in the message, not chained, so it is said once).
        error: std::io::Error,
    },
    /// A parse error inside a named file.
    #[error("{path}: {error}")]
    InFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: Box<FallError>,
    },
    /// Writing a report file failed.
    #[error("{path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error (in the message, not chained, so it is said once).
        error: std::io::Error,
    },
    /// A sensor condition that cannot be applied.
    #[error(transparent)]
    Condition(#[from] condition::ConditionError),
    /// Tuning or evaluation needs both falls and activities.
    #[error("{0}")]
    Data(String),
}

/// Streams a trial through a fresh detector with the shipped parameters, as the pendant
/// would at `rate_hz`, and returns each fall with the index (at `rate_hz`) of the sample
/// that completed its judgement.
///
/// A trial recorded at another rate is resampled by sample-and-hold decimation or repetition,
/// which is what a pendant sampling at `rate_hz` would have seen.
pub fn replay(trial: &Trial, rate_hz: u16) -> Result<Vec<(usize, FallEvent)>, FallError> {
    let mut detector = FallDetector::new(rate_hz)?;
    Ok(resample(&trial.samples, trial.rate_hz, rate_hz)
        .enumerate()
        .filter_map(|(i, s)| detector.push_fall(s).map(|e| (i, e)))
        .collect())
}

/// As [`replay`], but as a pendant with `sensor` reads the trial: saturated at its range,
/// sampled at its rate, judged with the parameters for its range.
pub fn replay_sensor(
    trial: &Trial,
    sensor: SensorConfig,
) -> Result<Vec<(usize, FallEvent)>, FallError> {
    let condition = condition::Condition {
        rate_hz: sensor.rate_hz,
        clip_g: Some(f32::from(sensor.range_g.max(1))),
        ..condition::Condition::default()
    };
    let mut detector = FallDetector::for_sensor(sensor)?;
    Ok(condition
        .apply(trial)
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| detector.push_fall(s).map(|e| (i, e)))
        .collect())
}

/// Samples of a trace recorded at `from_hz` as seen at `to_hz` (nearest earlier sample).
pub fn resample(
    samples: &[[f32; 3]],
    from_hz: u16,
    to_hz: u16,
) -> impl Iterator<Item = [f32; 3]> + '_ {
    let from = u64::from(from_hz.max(1));
    let to = u64::from(to_hz.max(1));
    let count = (samples.len() as u64 * to / from) as usize;
    (0..count).filter_map(move |i| samples.get((i as u64 * from / to) as usize).copied())
}

/// Fuzzing entry: the first byte picks a sample rate, the rest are little-endian `i16`
/// triplets in mg (any values, including the sensor's extremes) streamed through the detector.
/// Returns how many impacts were judged, or `None` if any carried non-finite evidence.
pub fn fuzz_detector(data: &[u8]) -> Option<usize> {
    let rate = detector::MIN_RATE_HZ + u16::from(data.first().copied().unwrap_or(0)) % 151;
    let mut detector = FallDetector::new(rate).ok()?;
    let mut judged = 0;
    for chunk in data.get(1..).unwrap_or(&[]).chunks_exact(6) {
        let axis = |i: usize| {
            let raw = i16::from_le_bytes([
                chunk.get(i).copied().unwrap_or(0),
                chunk.get(i + 1).copied().unwrap_or(0),
            ]);
            f32::from(raw) / 1000.0
        };
        if let Some(a) = detector.push([axis(0), axis(2), axis(4)]) {
            let e = a.evidence;
            let finite = [
                a.score,
                e.peak_g,
                e.min_before_g,
                e.velocity_gs,
                e.posture_change_deg,
                e.motion_after_g,
            ];
            if !finite.iter().all(|v| v.is_finite()) {
                return None;
            }
            judged += 1;
        }
    }
    Some(judged)
}

/// Fuzzing entry: parses arbitrary bytes as a trial file; must answer, never panic.
pub fn fuzz_trial_text(data: &[u8]) -> Result<usize, FallError> {
    let text = String::from_utf8_lossy(data);
    sisfall::parse_samples(&text).map(|s| s.len())
}
