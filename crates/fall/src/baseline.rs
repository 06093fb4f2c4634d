//! The SisFall paper's threshold detectors, for side-by-side comparison.
//!
//! Sucerquia et al. (Sensors 17(1):198, 2017) low-pass the acceleration with a 4th-order
//! Butterworth filter at 5 Hz and compute features over 1 s windows. Their best are
//! C8 = sqrt(σx² + σz²), the spread in the horizontal plane (SisFall axes: +y along gravity
//! when standing), and C9 = sqrt(σx² + σy² + σz²). A trial fires when any window's feature
//! reaches the threshold. These need the waist orientation of SisFall; the product detector
//! does not.

/// Which baseline feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// sqrt(σx² + σz²).
    C8,
    /// sqrt(σx² + σy² + σz²).
    C9,
}

impl Baseline {
    /// Both, in report order.
    pub const ALL: [Baseline; 2] = [Baseline::C8, Baseline::C9];

    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Baseline::C8 => "C8",
            Baseline::C9 => "C9",
        }
    }

    /// Thresholds (g) chosen by `vigil fall-tune` on the tuning subjects: the one with the
    /// best balanced accuracy there.
    pub fn shipped_threshold(self) -> f64 {
        match self {
            Baseline::C8 => C8_THRESHOLD,
            Baseline::C9 => C9_THRESHOLD,
        }
    }
}

/// C8 threshold chosen on the tuning subjects (best balanced accuracy).
pub const C8_THRESHOLD: f64 = 0.5595;
/// C9 threshold chosen on the tuning subjects (best balanced accuracy).
pub const C9_THRESHOLD: f64 = 0.7672;

/// A biquad section in direct form II transposed.
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
    z: [f64; 2],
}

impl Biquad {
    /// Low-pass section by the bilinear transform with pre-warping (RBJ cookbook form).
    fn low_pass(cutoff_hz: f64, rate_hz: f64, q: f64) -> Self {
        let w0 = 2.0 * std::f64::consts::PI * cutoff_hz / rate_hz;
        let alpha = w0.sin() / (2.0 * q);
        let cos = w0.cos();
        let a0 = 1.0 + alpha;
        Biquad {
            b: [
                (1.0 - cos) / 2.0 / a0,
                (1.0 - cos) / a0,
                (1.0 - cos) / 2.0 / a0,
            ],
            a: [-2.0 * cos / a0, (1.0 - alpha) / a0],
            z: [0.0; 2],
        }
    }

    fn run(&mut self, x: f64) -> f64 {
        let y = self.b[0] * x + self.z[0];
        self.z[0] = self.b[1] * x - self.a[0] * y + self.z[1];
        self.z[1] = self.b[2] * x - self.a[1] * y;
        y
    }
}

/// 4th-order Butterworth low-pass: two sections with Q = 1/(2 cos(π/8)) and 1/(2 cos(3π/8)).
#[derive(Debug, Clone, Copy)]
pub struct Butterworth4 {
    sections: [Biquad; 2],
}

impl Butterworth4 {
    /// A filter at `cutoff_hz` for samples at `rate_hz`.
    pub fn new(cutoff_hz: f64, rate_hz: f64) -> Self {
        let q1 = 1.0 / (2.0 * (std::f64::consts::PI / 8.0).cos());
        let q2 = 1.0 / (2.0 * (3.0 * std::f64::consts::PI / 8.0).cos());
        Butterworth4 {
            sections: [
                Biquad::low_pass(cutoff_hz, rate_hz, q1),
                Biquad::low_pass(cutoff_hz, rate_hz, q2),
            ],
        }
    }

    /// Filters one sample, starting from rest at the first sample's value is up to the caller.
    pub fn run(&mut self, x: f64) -> f64 {
        let y = self.sections[0].run(x);
        self.sections[1].run(y)
    }
}

/// The largest C8 and C9 over all 1 s windows (hop 0.1 s) of a trace sampled at `rate_hz`.
///
/// Each axis is filtered from a state primed with its first value (so the start is not an
/// artificial step). Returns zeros for traces shorter than one window.
pub fn peak_features(samples: &[[f32; 3]], rate_hz: u16) -> [f64; 2] {
    let rate = f64::from(rate_hz.max(1));
    let window = usize::from(rate_hz.max(1));
    let hop = (window / 10).max(1);
    if samples.len() < window {
        return [0.0, 0.0];
    }
    // Filter each axis, keep prefix sums of value and square for O(1) window variance.
    let mut prefix = vec![[0f64; 6]; samples.len() + 1];
    let mut filters = [Butterworth4::new(5.0, rate); 3];
    if let Some(first) = samples.first() {
        for (axis, filter) in filters.iter_mut().enumerate() {
            // Prime to steady state on the first value.
            for _ in 0..(4 * window) {
                filter.run(f64::from(first[axis]));
            }
        }
    }
    for (i, s) in samples.iter().enumerate() {
        let mut next = prefix[i];
        for axis in 0..3 {
            let y = filters[axis].run(f64::from(s[axis]));
            next[axis] += y;
            next[axis + 3] += y * y;
        }
        prefix[i + 1] = next;
    }
    let n = window as f64;
    let mut best = [0f64; 2];
    let mut start = 0;
    while start + window <= samples.len() {
        let (a, b) = (prefix[start], prefix[start + window]);
        let var = |axis: usize| {
            let mean = (b[axis] - a[axis]) / n;
            ((b[axis + 3] - a[axis + 3]) / n - mean * mean).max(0.0)
        };
        let (vx, vy, vz) = (var(0), var(1), var(2));
        best[0] = best[0].max((vx + vz).sqrt());
        best[1] = best[1].max((vx + vy + vz).sqrt());
        start += hop;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn butterworth_passes_dc_and_attenuates_20_hz() {
        let mut f = Butterworth4::new(5.0, 200.0);
        let mut y = 0.0;
        for _ in 0..2000 {
            y = f.run(1.0);
        }
        assert!((y - 1.0).abs() < 1e-9);
        let mut f = Butterworth4::new(5.0, 200.0);
        let mut peak: f64 = 0.0;
        for i in 0..4000 {
            let x = (2.0 * std::f64::consts::PI * 20.0 * i as f64 / 200.0).sin();
            let y = f.run(x);
            if i > 2000 {
                peak = peak.max(y.abs());
            }
        }
        // 4th order: 24 dB/octave, two octaves above cutoff ≈ −48 dB.
        assert!(peak < 0.01, "{peak}");
    }

    #[test]
    fn features_of_a_still_trace_are_zero_and_of_shaking_are_not() {
        let still = vec![[0.0f32, 1.0, 0.0]; 600];
        assert!(peak_features(&still, 200)[1] < 1e-6);
        let shaking: Vec<[f32; 3]> = (0..600)
            .map(|i| [(i as f32 * 0.05).sin(), 1.0, 0.0])
            .collect();
        let [c8, c9] = peak_features(&shaking, 200);
        assert!(c8 > 0.5 && (c9 - c8).abs() < 1e-6, "{c8} {c9}");
    }
}
