//! Sensor conditions applied to recorded trials before scoring: what another pendant's
//! accelerometer would have delivered from the same movement.
//!
//! SisFall was recorded at 200 Hz with a ±16 g sensor. A pendant may sample at 25–200 Hz with
//! jittered timestamps, saturate at ±2, 4 or 8 g per axis, add noise, or have an axis stuck.
//! [`Condition::apply`] turns a 200 Hz trace into what such a sensor reads: sample times
//! `i / rate` plus uniform jitter, values linearly interpolated from the trace at those
//! times, Gaussian noise per axis, an axis frozen at its first reading, then per-axis
//! saturation (the sensor clips after its own noise). The jitter and noise are seeded from
//! the condition's seed and the trial's name, so a run is repeatable.

use std::fmt;
use std::str::FromStr;

use super::detector::{SensorConfig, MAX_RATE_HZ, MIN_RATE_HZ};
use super::sisfall::Trial;
use super::FallError;

/// One set of sensor conditions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    /// Sample rate the detector runs at, in Hz.
    pub rate_hz: u16,
    /// Per-axis saturation, in g (`None`: the recording's own range).
    pub clip_g: Option<f32>,
    /// Timestamp jitter: each sample time is off by up to ± this, in ms (uniform).
    pub jitter_ms: f32,
    /// Standard deviation of Gaussian noise added per axis, in mg.
    pub noise_mg: f32,
    /// An axis (0 = x, 1 = y, 2 = z) frozen at its first reading.
    pub stuck_axis: Option<usize>,
    /// Seed of the jitter and noise.
    pub seed: u64,
}

impl Default for Condition {
    fn default() -> Self {
        Condition {
            rate_hz: 200,
            clip_g: None,
            jitter_ms: 0.0,
            noise_mg: 0.0,
            stuck_axis: None,
            seed: 1,
        }
    }
}

/// A condition that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConditionError {
    /// A `key=value` item with an unknown key.
    #[error("unknown condition {0:?} (expected rate, clip, jitter, noise, stuck or seed)")]
    Key(String),
    /// A value that is not a number or out of range.
    #[error("condition {key}: {value:?} is not {expected}")]
    Value {
        /// The key.
        key: &'static str,
        /// The text given.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

impl Condition {
    /// Checks the ranges the detector and a real sensor allow.
    pub fn validate(&self) -> Result<(), FallError> {
        if !(MIN_RATE_HZ..=MAX_RATE_HZ).contains(&self.rate_hz) {
            return Err(FallError::Rate {
                rate_hz: self.rate_hz,
            });
        }
        Ok(())
    }

    /// The sensor this condition stands for: the range its clipping implies (SisFall's
    /// ±16 g when unclipped), at its rate.
    pub fn sensor(&self) -> SensorConfig {
        let range_g = match self.clip_g {
            Some(c) => c.ceil().clamp(1.0, 16.0) as u8,
            None => 16,
        };
        SensorConfig {
            range_g,
            rate_hz: self.rate_hz,
        }
    }

    /// What the sensor of this condition reads from `trial`, at [`Condition::rate_hz`].
    pub fn apply(&self, trial: &Trial) -> Vec<[f32; 3]> {
        let src = &trial.samples;
        let Some(&first) = src.first() else {
            return Vec::new();
        };
        let from = f64::from(trial.rate_hz.max(1));
        let to = f64::from(self.rate_hz.max(1));
        let duration = src.len() as f64 / from;
        let count = (duration * to).floor() as usize;
        let mut rng = SplitMix64::new(self.seed ^ fnv1a(trial.id().as_bytes()));
        let jitter_s = f64::from(self.jitter_ms.max(0.0)) / 1000.0;
        let noise_g = f64::from(self.noise_mg.max(0.0)) / 1000.0;
        let last = (src.len() - 1) as f64;
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let mut t = i as f64 / to;
            if jitter_s > 0.0 {
                t += (2.0 * rng.next_f64() - 1.0) * jitter_s;
            }
            let pos = (t * from).clamp(0.0, last);
            let k = pos.floor() as usize;
            let frac = (pos - k as f64) as f32;
            let a = src.get(k).copied().unwrap_or(first);
            let b = src.get(k + 1).copied().unwrap_or(a);
            let mut s = [0f32; 3];
            for axis in 0..3 {
                s[axis] = a[axis] + (b[axis] - a[axis]) * frac;
                if noise_g > 0.0 {
                    s[axis] += (rng.next_gaussian() * noise_g) as f32;
                }
            }
            if let Some(axis) = self.stuck_axis {
                if let (Some(v), Some(f)) = (s.get_mut(axis), first.get(axis)) {
                    *v = *f;
                }
            }
            if let Some(clip) = self.clip_g {
                for v in &mut s {
                    *v = v.clamp(-clip, clip);
                }
            }
            out.push(s);
        }
        out
    }
}

impl fmt::Display for Condition {
    /// The condition in the form [`Condition::from_str`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate={}", self.rate_hz)?;
        if let Some(c) = self.clip_g {
            write!(f, ",clip={c}")?;
        }
        if self.jitter_ms > 0.0 {
            write!(f, ",jitter={}", self.jitter_ms)?;
        }
        if self.noise_mg > 0.0 {
            write!(f, ",noise={}", self.noise_mg)?;
        }
        if let Some(a) = self.stuck_axis {
            write!(f, ",stuck={}", ["x", "y", "z"].get(a).unwrap_or(&"?"))?;
        }
        Ok(())
    }
}

impl FromStr for Condition {
    type Err = ConditionError;

    /// Reads `rate=50,clip=2,jitter=5,noise=10,stuck=x,seed=7` (any subset, any order;
    /// `stuck` alone freezes x).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut c = Condition::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            match key.trim() {
                "rate" => c.rate_hz = number("rate", value, "a rate in Hz")?,
                "clip" => c.clip_g = Some(positive("clip", value, "a range in g above 0")?),
                "jitter" => c.jitter_ms = positive("jitter", value, "a jitter in ms")?,
                "noise" => c.noise_mg = positive("noise", value, "a noise level in mg")?,
                "seed" => c.seed = number("seed", value, "an integer seed")?,
                "stuck" => c.stuck_axis = Some(parse_axis(value)?),
                other => return Err(ConditionError::Key(other.to_string())),
            }
        }
        Ok(c)
    }
}

/// Reads an accelerometer range in g: 2, 4, 8 or 16.
pub fn parse_range_g(value: &str) -> Result<u8, ConditionError> {
    match value.trim() {
        "2" => Ok(2),
        "4" => Ok(4),
        "8" => Ok(8),
        "16" => Ok(16),
        other => Err(ConditionError::Value {
            key: "range",
            value: other.to_string(),
            expected: "an accelerometer range of 2, 4, 8 or 16 g",
        }),
    }
}

/// Reads `x`, `y`, `z`, `0`, `1` or `2` (empty: x).
pub fn parse_axis(value: &str) -> Result<usize, ConditionError> {
    match value.trim() {
        "" | "x" | "0" => Ok(0),
        "y" | "1" => Ok(1),
        "z" | "2" => Ok(2),
        other => Err(ConditionError::Value {
            key: "stuck",
            value: other.to_string(),
            expected: "an axis (x, y or z)",
        }),
    }
}

fn number<T: FromStr>(
    key: &'static str,
    value: &str,
    expected: &'static str,
) -> Result<T, ConditionError> {
    value.trim().parse().map_err(|_| ConditionError::Value {
        key,
        value: value.to_string(),
        expected,
    })
}

fn positive(key: &'static str, value: &str, expected: &'static str) -> Result<f32, ConditionError> {
    let v: f32 = number(key, value, expected)?;
    if v.is_finite() && v >= 0.0 && !(key == "clip" && v == 0.0) {
        Ok(v)
    } else {
        Err(ConditionError::Value {
            key,
            value: value.to_string(),
            expected,
        })
    }
}

/// FNV-1a, to derive a per-trial seed from its name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64 (Steele, Lea, Flood 2014): small, seedable, good enough for test signals.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn next_gaussian(&mut self) -> f64 {
        let u1 = self.next_f64().max(f64::MIN_POSITIVE);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sisfall::TrialKind;

    fn trial(samples: Vec<[f32; 3]>) -> Trial {
        Trial {
            subject: "SA01".into(),
            file_name: "F01_SA01_R01.txt".into(),
            kind: TrialKind::Fall(1),
            rate_hz: 200,
            samples,
        }
    }

    fn ramp() -> Trial {
        // x rises 1 g per second, y is a 5 g spike at 1 s, z is -1 g.
        trial(
            (0..400)
                .map(|i| {
                    let t = i as f32 / 200.0;
                    [t, if i == 200 { 5.0 } else { 0.0 }, -1.0]
                })
                .collect(),
        )
    }

    #[test]
    fn clip_saturates_each_axis_at_the_range() {
        let c: Condition = "clip=2".parse().unwrap();
        let out = c.apply(&ramp());
        assert_eq!(out.len(), 400);
        assert_eq!(out[200][1], 2.0);
        assert!(out.iter().all(|s| s.iter().all(|v| v.abs() <= 2.0)));
        assert_eq!(out[399][0], 399.0 / 200.0);
    }

    #[test]
    fn rate_takes_the_trace_at_the_new_sample_times() {
        let c: Condition = "rate=50".parse().unwrap();
        let out = c.apply(&ramp());
        assert_eq!(out.len(), 100);
        assert_eq!(out[25][0], 100.0 / 200.0);
        assert_eq!(out[50][1], 5.0);
    }

    #[test]
    fn jitter_interpolates_between_recorded_samples_and_is_seeded() {
        let c: Condition = "rate=50,jitter=5".parse().unwrap();
        let t = ramp();
        let out = c.apply(&t);
        assert_eq!(out, c.apply(&t), "same seed, same trace");
        let other = Condition { seed: 2, ..c }.apply(&t);
        assert_ne!(out, other);
        // x is t in seconds: each sample is within 5 ms of its nominal time, and some are off.
        let mut moved = 0;
        for (i, s) in out.iter().enumerate().skip(1).take(90) {
            let nominal = i as f32 / 50.0;
            assert!((s[0] - nominal).abs() <= 0.005 + 1e-4, "{i}: {}", s[0]);
            moved += usize::from((s[0] - nominal).abs() > 1e-4);
            assert_eq!(s[2], -1.0);
        }
        assert!(moved > 45, "{moved}");
    }

    #[test]
    fn noise_has_the_asked_spread_and_stuck_axis_freezes() {
        let still = trial(vec![[0.0, 1.0, 0.0]; 20_000]);
        let c: Condition = "noise=20,stuck=y".parse().unwrap();
        let out = c.apply(&still);
        let n = out.len() as f64;
        let var = out.iter().map(|s| f64::from(s[0]).powi(2)).sum::<f64>() / n;
        assert!((var.sqrt() - 0.020).abs() < 0.001, "{}", var.sqrt());
        assert!(out.iter().all(|s| s[1] == 1.0));
        assert!(out.iter().any(|s| s[2] != 0.0));
    }

    #[test]
    fn reads_and_prints_condition_lists() {
        let c: Condition = "rate=50, clip=2,jitter=5,noise=10,stuck=z,seed=9"
            .parse()
            .unwrap();
        assert_eq!(
            c,
            Condition {
                rate_hz: 50,
                clip_g: Some(2.0),
                jitter_ms: 5.0,
                noise_mg: 10.0,
                stuck_axis: Some(2),
                seed: 9
            }
        );
        assert_eq!(c.to_string(), "rate=50,clip=2,jitter=5,noise=10,stuck=z");
        assert!(matches!(
            "clip=0".parse::<Condition>(),
            Err(ConditionError::Value { key: "clip", .. })
        ));
        assert!(matches!(
            "speed=3".parse::<Condition>(),
            Err(ConditionError::Key(_))
        ));
        assert!(matches!(
            "stuck=w".parse::<Condition>(),
            Err(ConditionError::Value { key: "stuck", .. })
        ));
    }
}
