//! The streaming fall detector, written against `core` only so the pendant's microcontroller
//! runs the same code: no allocation, no `std` maths, fixed-size state.
//!
//! How it decides. A fall is a sequence: the body drops (the acceleration magnitude falls below
//! 1 g while it accelerates downwards), hits the floor (a peak well above 1 g), and ends up in
//! another posture, lying rather still. Each of these alone also happens in daily life (jogging
//! hits 3–5 g, sitting down quickly drops and lands, lying down changes posture), so the
//! detector weighs them together. Every feature is orientation-independent: magnitudes of the
//! acceleration vector, and the angle between the gravity direction before and after the
//! event, whatever way the sensor hangs.
//!
//! Samples are summarised in blocks of 0.1 s kept in a ring of 6.4 s, so the per-sample work
//! is a square root and a few sums; an impact (the highest peak from 0.5 s before to 1.5 s
//! after, above the trigger level) is judged once 3 s of its aftermath are in the ring, so a
//! fall is reported 3 s after its impact. The decision is a weighted sum of clipped features
//! ([`features`]) whose weights `vigil fall-tune` chose on tuning subjects only. A fall is
//! reported once: impacts in the 10 s after a reported fall belong to it. At power-up the
//! first 0.1 s stands in for the unseen past, so an impact in the first seconds is judged too.
//! At rates that are not a multiple of 10 Hz a block is the nearest whole number of samples.

use super::FallError;

/// Lowest supported sample rate in Hz.
pub const MIN_RATE_HZ: u16 = 50;
/// Highest supported sample rate in Hz.
pub const MAX_RATE_HZ: u16 = 200;

/// Blocks per second: a block summarises 0.1 s.
const BLOCKS_PER_S: u16 = 10;
/// Ring length in blocks (6.4 s); a power of two.
const RING: usize = 64;
/// The impact being judged is this many blocks old: the aftermath observed.
const JUDGE_DELAY: usize = 30;
/// A candidate impact must be the highest peak from 0.5 s before it to 1.5 s after it: the
/// floor impact of a fall is its hardest, and a stumble just before it is part of it.
const PEAK_BEFORE: usize = 5;
const PEAK_AFTER: usize = 15;
/// Blocks before the impact searched for the drop (free fall, downward velocity): 1 s.
const DROP_BLOCKS: usize = 10;
/// Posture before: blocks 2.5 s to 1.5 s before the impact.
const PRE_POSTURE: (usize, usize) = (25, 15);
/// Posture and stillness after: blocks 1 s to 3 s after the impact.
const POST: (usize, usize) = (10, 30);
/// After reporting a fall, later impacts within this many blocks (10 s) are part of the same
/// fall: judged, but not reported again.
const REPEAT_BLOCKS: u64 = 100;
/// Below this magnitude the body counts as falling freely, in g.
const FREE_FALL_G: f32 = 0.6;
/// Time constant of the leaky velocity integrator, in seconds.
const VELOCITY_TAU_S: f32 = 1.0;
/// Inputs beyond this magnitude per axis are clipped, in g (an ADXL345 reads ±16 g).
const AXIS_LIMIT_G: f32 = 32.0;

/// Tunable parameters of the decision. [`FallParams::SHIPPED`] are what the product uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FallParams {
    /// Impact peak (g) a moment must reach to be judged at all.
    pub trigger_g: f32,
    /// Bias of the linear decision value.
    pub bias: f32,
    /// Weight per g of impact peak above 1 g (peak clipped at 8 g).
    pub w_peak: f32,
    /// Weight per second of free fall.
    pub w_free_fall: f32,
    /// Weight per g·s of downward velocity before the impact.
    pub w_velocity: f32,
    /// Weight per 90° of posture change.
    pub w_posture: f32,
    /// Weight per g of movement (standard deviation of the magnitude) after the impact
    /// (clipped at 0.5 g); negative, since a person who fell tends to lie still.
    pub w_motion: f32,
    /// Weight of impact (g above 1) times posture change (per 90°): both together.
    pub w_impact_posture: f32,
    /// Decision value at or above which the detector reports a fall.
    pub threshold: f32,
    /// Impact peaks count up to this magnitude, in g (see [`FallParams::SMALL_RANGE`]).
    pub impact_cap_g: f32,
}

impl FallParams {
    /// The parameters the product ships with.
    ///
    /// Chosen by `vigil fall-tune` on SisFall subjects SA01–SA10, SE01–SE04 and SE06 only
    /// (see [`crate::tune::TUNING_SUBJECTS`]); the other subjects were held out.
    pub const SHIPPED: FallParams = FallParams {
        trigger_g: 1.4,
        bias: -4.318_983_6,
        w_peak: -0.243_785_71,
        w_free_fall: 0.048_784_14,
        w_velocity: 0.216_399_12,
        w_posture: 1.108_609_8,
        w_motion: -0.407_54,
        w_impact_posture: 3.082_565_5,
        threshold: -0.222_213_63,
        impact_cap_g: 8.0,
    };

    /// The parameters for sensors of ±4 g or less, whatever their rate.
    ///
    /// Such a sensor clips each axis during a hard impact, so its vector magnitude reads
    /// about 3 g however hard the floor was: impacts count only up to 3 g, and the weights
    /// were chosen on the same tuning subjects, read both as recorded and as a ±2 g sensor at
    /// 50 Hz with 5 ms jitter: `vigil fall-tune --impact-cap-g 3 --conditions
    /// "rate=200;rate=50,clip=2,jitter=5"` (see the README's fall section).
    pub const SMALL_RANGE: FallParams = FallParams {
        trigger_g: 1.4,
        bias: -5.755_007_3,
        w_peak: 0.753_591_66,
        w_free_fall: 0.208_175_84,
        w_velocity: 0.283_245_92,
        w_posture: 1.173_286,
        w_motion: -0.425_073_03,
        w_impact_posture: 4.266_054_6,
        threshold: -0.024_013_758,
        impact_cap_g: IMPACT_CAP_SMALL_RANGE_G,
    };

    /// The parameters for a sensor: [`FallParams::SMALL_RANGE`] up to ±4 g, else
    /// [`FallParams::SHIPPED`].
    pub fn for_sensor(sensor: &SensorConfig) -> FallParams {
        if sensor.range_g <= 4 {
            FallParams::SMALL_RANGE
        } else {
            FallParams::SHIPPED
        }
    }

    /// The decision value of a set of evidence: the weighted sum of [`features`].
    pub fn decision(&self, e: &Evidence) -> f32 {
        let f = features(e, self.impact_cap_g);
        let w = self.weights();
        let mut d = 0.0;
        for (a, b) in f.iter().zip(w.iter()) {
            d += a * b;
        }
        d
    }

    /// The weights in the order of [`features`].
    pub fn weights(&self) -> [f32; FEATURES] {
        [
            self.bias,
            self.w_peak,
            self.w_free_fall,
            self.w_velocity,
            self.w_posture,
            self.w_motion,
            self.w_impact_posture,
        ]
    }

    /// These parameters with the weights replaced (order of [`features`]).
    pub fn with_weights(self, w: [f32; FEATURES]) -> Self {
        FallParams {
            bias: w[0],
            w_peak: w[1],
            w_free_fall: w[2],
            w_velocity: w[3],
            w_posture: w[4],
            w_motion: w[5],
            w_impact_posture: w[6],
            ..self
        }
    }
}

/// Impact cap of small-range sensors, in g: a ±2 g sensor clips each axis at 2 g, so its
/// vector magnitude reads about 3 g at a hard impact.
pub const IMPACT_CAP_SMALL_RANGE_G: f32 = 3.0;

/// What the pendant's accelerometer is: set per pendant model, fixed at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorConfig {
    /// Full-scale range per axis, in g (2, 4, 8 or 16).
    pub range_g: u8,
    /// Sample rate, in Hz (50–200).
    pub rate_hz: u16,
}

impl SensorConfig {
    /// SisFall's ADXL345: ±16 g at 200 Hz.
    pub const SISFALL: SensorConfig = SensorConfig {
        range_g: 16,
        rate_hz: 200,
    };
}

/// Number of decision features.
pub const FEATURES: usize = 7;

/// The decision features of some evidence, each clipped to a physical range so no single
/// extreme reading decides: 1 (bias), impact above 1 g (up to `impact_cap_g`), free fall in s (≤ 1 s),
/// downward velocity in g·s (≤ 2), posture change in units of 90° (≤ 1: lying is lying), movement after in g
/// (≤ 0.5), and impact × posture change.
pub fn features(e: &Evidence, impact_cap_g: f32) -> [f32; FEATURES] {
    let impact = clamp(e.peak_g, 1.0, impact_cap_g.max(1.0)) - 1.0;
    let posture = clamp(e.posture_change_deg / 90.0, 0.0, 1.0);
    [
        1.0,
        impact,
        clamp(f32::from(e.free_fall_ms) / 1000.0, 0.0, 1.0),
        clamp(-e.velocity_gs, 0.0, 2.0),
        posture,
        clamp(e.motion_after_g, 0.0, 0.5),
        impact * posture,
    ]
}

impl Default for FallParams {
    fn default() -> Self {
        FallParams::SHIPPED
    }
}

/// What the detector saw around an impact: the fall's evidence.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Evidence {
    /// Highest acceleration magnitude around the impact, in g.
    pub peak_g: f32,
    /// Longest free-fall run (magnitude below 0.6 g) in the second before the impact, in ms.
    pub free_fall_ms: u16,
    /// Lowest magnitude in the second before the impact, in g.
    pub min_before_g: f32,
    /// Lowest leaky integral of (magnitude − 1 g) in the second before the impact, in g·s
    /// (negative: moving downwards; × 9.81 gives m/s).
    pub velocity_gs: f32,
    /// Angle between the gravity direction 2.5–1.5 s before and 1–3 s after the impact, in °.
    pub posture_change_deg: f32,
    /// Standard deviation of the magnitude 1–3 s after the impact, in g: small when still.
    pub motion_after_g: f32,
}

/// A judged impact: the evidence, its decision value and whether it is a fall.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    /// Index of the first sample of the 0.1 s block holding the impact peak.
    pub impact_sample: u64,
    /// Linear decision value; the detector reports a fall when it reaches the threshold.
    pub score: f32,
    /// True when `score` reached the threshold and no fall was reported in the 10 s before
    /// (later impacts of the same fall are judged but not reported again).
    pub is_fall: bool,
    /// What the decision rests on.
    pub evidence: Evidence,
}

/// A detected fall, reported `JUDGE_DELAY` (3 s) after its impact.
pub type FallEvent = Assessment;

/// Summary of 0.1 s of samples, fixed point (mg) to keep the ring small.
#[derive(Debug, Clone, Copy, Default)]
struct Block {
    /// Mean acceleration vector (gravity direction when still), mg.
    mean: [i16; 3],
    /// Highest, lowest and mean magnitude, mg.
    max: u16,
    min: u16,
    avg: u16,
    /// Standard deviation of the magnitude within the block, mg.
    std: u16,
    /// Lowest leaky velocity, mg·s.
    velocity: i16,
    /// Longest free-fall run ending in this block, ms.
    free_fall_ms: u16,
}

/// The streaming detector. Feed it samples in g with [`FallDetector::push`].
#[derive(Debug, Clone)]
pub struct FallDetector {
    params: FallParams,
    rate_hz: u16,
    block_len: u16,
    dt: f32,
    leak: f32,
    ms_per_sample: f32,
    // Current block accumulators.
    n: u16,
    sum: [f32; 3],
    sum_m: f32,
    sum_m2: f32,
    max_m: f32,
    min_m: f32,
    min_v: f32,
    free_fall_max: u16,
    // Running state.
    velocity: f32,
    free_fall_run: u16,
    samples_seen: u64,
    blocks_seen: u64,
    /// Block index of the last reported fall's impact.
    last_fall_block: Option<u64>,
    ring: [Block; RING],
}

impl FallDetector {
    /// A detector with the shipped parameters for a sensor sampled at `rate_hz` (50–200 Hz).
    pub fn new(rate_hz: u16) -> Result<Self, FallError> {
        Self::with_params(rate_hz, FallParams::SHIPPED)
    }

    /// A detector for a sensor, with the parameters for its range ([`FallParams::for_sensor`]).
    pub fn for_sensor(sensor: SensorConfig) -> Result<Self, FallError> {
        Self::with_params(sensor.rate_hz, FallParams::for_sensor(&sensor))
    }

    /// A detector with explicit parameters (tuning and experiments).
    pub fn with_params(rate_hz: u16, params: FallParams) -> Result<Self, FallError> {
        if !(MIN_RATE_HZ..=MAX_RATE_HZ).contains(&rate_hz) {
            return Err(FallError::Rate { rate_hz });
        }
        let block_len = (rate_hz + BLOCKS_PER_S / 2) / BLOCKS_PER_S;
        let dt = 1.0 / f32::from(rate_hz);
        Ok(FallDetector {
            params,
            rate_hz,
            block_len,
            dt,
            leak: 1.0 - dt / VELOCITY_TAU_S,
            ms_per_sample: 1000.0 * dt,
            n: 0,
            sum: [0.0; 3],
            sum_m: 0.0,
            sum_m2: 0.0,
            max_m: 0.0,
            min_m: f32::MAX,
            min_v: f32::MAX,
            free_fall_max: 0,
            velocity: 0.0,
            free_fall_run: 0,
            samples_seen: 0,
            blocks_seen: 0,
            last_fall_block: None,
            ring: [Block::default(); RING],
        })
    }

    /// The parameters in use.
    pub fn params(&self) -> &FallParams {
        &self.params
    }

    /// Forgets everything seen so far.
    pub fn reset(&mut self) {
        if let Ok(fresh) = Self::with_params(self.rate_hz, self.params) {
            *self = fresh;
        }
    }

    /// Feeds one sample `[x, y, z]` in g. Returns the assessment of an impact when one is
    /// judged (about 3 s after it); [`Assessment::is_fall`] says whether it is a fall.
    #[inline]
    pub fn push(&mut self, sample: [f32; 3]) -> Option<Assessment> {
        let x = sanitize(sample[0]);
        let y = sanitize(sample[1]);
        let z = sanitize(sample[2]);
        let m2 = x * x + y * y + z * z;
        let m = sqrt(m2);
        self.sum[0] += x;
        self.sum[1] += y;
        self.sum[2] += z;
        self.sum_m += m;
        self.sum_m2 += m2;
        self.max_m = self.max_m.max(m);
        self.min_m = self.min_m.min(m);
        self.velocity = self.velocity * self.leak + (m - 1.0) * self.dt;
        self.min_v = self.min_v.min(self.velocity);
        if m < FREE_FALL_G {
            self.free_fall_run = self.free_fall_run.saturating_add(1);
            self.free_fall_max = self.free_fall_max.max(self.free_fall_run);
        } else {
            self.free_fall_run = 0;
        }
        self.samples_seen += 1;
        self.n += 1;
        if self.n >= self.block_len {
            self.end_block()
        } else {
            None
        }
    }

    /// Feeds one sample and returns only falls.
    pub fn push_fall(&mut self, sample: [f32; 3]) -> Option<FallEvent> {
        self.push(sample).filter(|a| a.is_fall)
    }

    /// Bytes of state the detector keeps.
    pub const fn state_size() -> usize {
        core::mem::size_of::<FallDetector>()
    }

    fn end_block(&mut self) -> Option<Assessment> {
        let n = f32::from(self.n);
        let avg = self.sum_m / n;
        let var = self.sum_m2 / n - avg * avg;
        let block = Block {
            mean: [
                to_i16(self.sum[0] / n * 1000.0),
                to_i16(self.sum[1] / n * 1000.0),
                to_i16(self.sum[2] / n * 1000.0),
            ],
            max: to_u16(self.max_m * 1000.0),
            min: to_u16(self.min_m * 1000.0),
            avg: to_u16(avg * 1000.0),
            std: to_u16(sqrt(var.max(0.0)) * 1000.0),
            velocity: to_i16(self.min_v * 1000.0),
            free_fall_ms: to_u16(f32::from(self.free_fall_max) * self.ms_per_sample),
        };
        if self.blocks_seen == 0 {
            // At power-up, take it that the first 0.1 s is how things were before, so an
            // impact early on still has a posture to compare with.
            self.ring = [block; RING];
        }
        let slot = (self.blocks_seen as usize) & (RING - 1);
        if let Some(b) = self.ring.get_mut(slot) {
            *b = block;
        }
        self.blocks_seen += 1;
        self.n = 0;
        self.sum = [0.0; 3];
        self.sum_m = 0.0;
        self.sum_m2 = 0.0;
        self.max_m = 0.0;
        self.min_m = f32::MAX;
        self.min_v = f32::MAX;
        self.free_fall_max = 0;
        self.judge()
    }

    /// Block `age` blocks before the newest one (0 = newest).
    #[inline]
    fn ago(&self, age: usize) -> Block {
        let index = (self.blocks_seen as usize).wrapping_sub(1 + age) & (RING - 1);
        self.ring.get(index).copied().unwrap_or_default()
    }

    /// Judges the block `JUDGE_DELAY` old if it is an impact.
    fn judge(&mut self) -> Option<Assessment> {
        // The impact must be a block actually seen (the ring is pre-filled before that).
        if self.blocks_seen <= JUDGE_DELAY as u64 {
            return None;
        }
        let impact_age = JUDGE_DELAY;
        let impact = self.ago(impact_age);
        let trigger = to_u16(self.params.trigger_g * 1000.0);
        if impact.max < trigger {
            return None;
        }
        // A local peak: above the blocks before it, not below those after it.
        for d in 1..=PEAK_BEFORE {
            if self.ago(impact_age + d).max >= impact.max {
                return None;
            }
        }
        for d in 1..=PEAK_AFTER {
            if self.ago(impact_age - d).max > impact.max {
                return None;
            }
        }
        let mut drop_free_fall = 0u16;
        let mut drop_min = u16::MAX;
        let mut drop_velocity = i16::MAX;
        for d in 0..=DROP_BLOCKS {
            let b = self.ago(impact_age + d);
            drop_free_fall = drop_free_fall.max(b.free_fall_ms);
            drop_min = drop_min.min(b.min);
            drop_velocity = drop_velocity.min(b.velocity);
        }
        let before = self.mean_vector(impact_age + PRE_POSTURE.1 + 1, impact_age + PRE_POSTURE.0);
        let after = self.mean_vector(impact_age - POST.1 + 1, impact_age - POST.0);
        // Movement after: total standard deviation of the magnitude over the post window.
        let (mut s, mut s2, mut count) = (0f32, 0f32, 0f32);
        for age in (impact_age - POST.1 + 1)..=(impact_age - POST.0) {
            let b = self.ago(age);
            let avg = f32::from(b.avg) / 1000.0;
            let std = f32::from(b.std) / 1000.0;
            s += avg;
            s2 += avg * avg + std * std;
            count += 1.0;
        }
        let mean = s / count;
        let motion = sqrt((s2 / count - mean * mean).max(0.0));
        let evidence = Evidence {
            peak_g: f32::from(impact.max) / 1000.0,
            free_fall_ms: drop_free_fall,
            min_before_g: f32::from(drop_min) / 1000.0,
            velocity_gs: f32::from(drop_velocity) / 1000.0,
            posture_change_deg: angle_deg(before, after),
            motion_after_g: motion,
        };
        let score = self.params.decision(&evidence);
        let impact_block = self.blocks_seen - 1 - impact_age as u64;
        let repeat = self
            .last_fall_block
            .is_some_and(|b| impact_block < b + REPEAT_BLOCKS);
        let is_fall = score >= self.params.threshold && !repeat;
        if is_fall {
            self.last_fall_block = Some(impact_block);
        }
        Some(Assessment {
            impact_sample: impact_block * u64::from(self.block_len),
            score,
            is_fall,
            evidence,
        })
    }

    /// Mean of the block mean vectors from `young` to `old` blocks ago (inclusive), in g.
    fn mean_vector(&self, young: usize, old: usize) -> [f32; 3] {
        let mut acc = [0f32; 3];
        for age in young..=old {
            let b = self.ago(age);
            acc[0] += f32::from(b.mean[0]);
            acc[1] += f32::from(b.mean[1]);
            acc[2] += f32::from(b.mean[2]);
        }
        acc
    }
}

/// Replaces non-finite input by 0 and clips it to the sensor's range.
#[inline]
fn sanitize(v: f32) -> f32 {
    if v.is_nan() {
        0.0
    } else {
        clamp(v, -AXIS_LIMIT_G, AXIS_LIMIT_G)
    }
}

#[inline]
fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    v.max(lo).min(hi)
}

#[inline]
fn to_i16(v: f32) -> i16 {
    // `as` saturates and maps NaN to 0.
    v as i16
}

#[inline]
fn to_u16(v: f32) -> u16 {
    v as u16
}

/// Square root for non-negative finite `x`: an exponent-halving first guess and three Newton
/// steps (relative error below 1e-6), so the detector needs no `std` or `libm`.
#[inline]
pub fn sqrt(x: f32) -> f32 {
    if x <= 0.0 {
        return 0.0;
    }
    let mut y = f32::from_bits(0x1fbd_1df5 + (x.to_bits() >> 1));
    y = 0.5 * (y + x / y);
    y = 0.5 * (y + x / y);
    0.5 * (y + x / y)
}

/// Angle between two vectors in degrees (0 when either is zero).
fn angle_deg(a: [f32; 3], b: [f32; 3]) -> f32 {
    let dot = a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    let na = sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]);
    let nb = sqrt(b[0] * b[0] + b[1] * b[1] + b[2] * b[2]);
    if na <= 0.0 || nb <= 0.0 {
        return 0.0;
    }
    acos_deg(clamp(dot / (na * nb), -1.0, 1.0))
}

/// arccos in degrees for `c` in [−1, 1] (Abramowitz & Stegun 4.4.45, error < 0.01°).
fn acos_deg(c: f32) -> f32 {
    let negative = c < 0.0;
    let a = if negative { -c } else { c };
    let poly = 1.570_728_8 + a * (-0.212_114_4 + a * (0.074_261_0 + a * -0.018_729_3));
    let r = sqrt(1.0 - a) * poly;
    let rad = if negative {
        core::f32::consts::PI - r
    } else {
        r
    };
    rad * (180.0 / core::f32::consts::PI)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqrt_is_accurate() {
        for i in 0..10_000 {
            let x = i as f32 * 0.37 + 1e-3;
            let r = sqrt(x);
            assert!((r - x.sqrt()).abs() <= 2e-6 * x.sqrt(), "{x}");
        }
        assert_eq!(sqrt(0.0), 0.0);
        assert_eq!(sqrt(-1.0), 0.0);
    }

    #[test]
    fn acos_matches_std() {
        for i in -100..=100 {
            let c = i as f32 / 100.0;
            assert!((acos_deg(c) - c.acos().to_degrees()).abs() < 0.02, "{c}");
        }
        assert!((angle_deg([0.0, 1.0, 0.0], [1.0, 0.0, 0.0]) - 90.0).abs() < 0.02);
    }

    #[test]
    fn rejects_rates_outside_range() {
        assert!(FallDetector::new(49).is_err());
        assert!(FallDetector::new(201).is_err());
        assert!(FallDetector::new(50).is_ok());
        assert!(FallDetector::new(200).is_ok());
    }

    #[test]
    fn a_fall_is_reported_once_and_the_next_fall_again() {
        let rate = 100;
        let mut trace = synthetic_fall(rate);
        // Thrashing on the floor 1.5 s later: the same fall.
        trace.splice(
            trace.len() - 340..trace.len() - 330,
            std::iter::repeat_n([2.0, 2.0, 1.0], 10),
        );
        let mut d = FallDetector::new(rate).unwrap();
        assert_eq!(trace.iter().filter_map(|&s| d.push_fall(s)).count(), 1);
        // Up again for 10 s, then another fall.
        let mut d = FallDetector::new(rate).unwrap();
        let mut two = synthetic_fall(rate);
        two.extend(std::iter::repeat_n([0.0, 1.0, 0.0], 10 * usize::from(rate)));
        two.extend(synthetic_fall(rate));
        assert_eq!(two.iter().filter_map(|&s| d.push_fall(s)).count(), 2);
    }

    #[test]
    fn reset_forgets_the_past_and_keeps_the_rate() {
        let mut d = FallDetector::new(55).unwrap();
        let fall = synthetic_fall(55);
        let first: Vec<_> = fall.iter().filter_map(|&s| d.push(s)).collect();
        d.reset();
        let again: Vec<_> = fall.iter().filter_map(|&s| d.push(s)).collect();
        assert!(!first.is_empty());
        assert_eq!(first, again);
    }

    #[test]
    fn standing_still_is_never_judged() {
        let mut d = FallDetector::new(100).unwrap();
        for _ in 0..10_000 {
            assert!(d.push([0.0, 1.0, 0.0]).is_none());
        }
    }

    /// A synthetic fall: upright, 0.3 s free fall, a 4 g impact, then lying on the side.
    fn synthetic_fall(rate: u16) -> Vec<[f32; 3]> {
        let r = usize::from(rate);
        let mut s = vec![[0.0, 1.0, 0.0]; 3 * r];
        s.extend(std::iter::repeat_n([0.0, 0.2, 0.0], r * 3 / 10));
        s.extend(std::iter::repeat_n([2.0, 3.5, 0.0], r / 20));
        s.extend(std::iter::repeat_n([1.0, 0.02, 0.0], 5 * r));
        s
    }

    #[test]
    fn synthetic_fall_is_detected_with_its_evidence_at_every_rate() {
        for rate in [50u16, 100, 200] {
            let mut d = FallDetector::new(rate).unwrap();
            let falls: Vec<_> = synthetic_fall(rate)
                .into_iter()
                .filter_map(|s| d.push_fall(s))
                .collect();
            assert_eq!(falls.len(), 1, "rate {rate}");
            let e = falls[0].evidence;
            assert!(e.peak_g > 3.5, "{e:?}");
            assert!(e.free_fall_ms >= 250, "{e:?}");
            assert!((e.posture_change_deg - 90.0).abs() < 5.0, "{e:?}");
            assert!(e.motion_after_g < 0.05, "{e:?}");
        }
    }

    #[test]
    fn the_same_fall_in_any_orientation_gives_the_same_evidence() {
        let base = synthetic_fall(100);
        let rotate = |s: [f32; 3]| {
            // An arbitrary rotation: 40° about z, then 70° about x.
            let (c1, s1) = (40f32.to_radians().cos(), 40f32.to_radians().sin());
            let (c2, s2) = (70f32.to_radians().cos(), 70f32.to_radians().sin());
            let (x, y, z) = (c1 * s[0] - s1 * s[1], s1 * s[0] + c1 * s[1], s[2]);
            [x, c2 * y - s2 * z, s2 * y + c2 * z]
        };
        let mut a = FallDetector::new(100).unwrap();
        let mut b = FallDetector::new(100).unwrap();
        let ea: Vec<_> = base.iter().filter_map(|&s| a.push(s)).collect();
        let eb: Vec<_> = base.iter().filter_map(|&s| b.push(rotate(s))).collect();
        assert_eq!(ea.len(), eb.len());
        for (x, y) in ea.iter().zip(&eb) {
            assert!((x.evidence.peak_g - y.evidence.peak_g).abs() < 0.01);
            assert!((x.evidence.posture_change_deg - y.evidence.posture_change_deg).abs() < 1.0);
            assert_eq!(x.is_fall, y.is_fall);
        }
    }
}
