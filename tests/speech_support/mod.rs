//! Speech-like test signals at 8 kHz, made from a seed: the operator and the person in the
//! speakerphone's echo tests.

#![allow(dead_code)]

/// The call's sample rate.
pub const RATE: usize = 8000;

/// A repeatable generator.
pub struct Lcg(pub u32);

impl Lcg {
    pub fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (self.0 >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
    }
}

/// Speech-like sound: a voice of `pitch` Hz (harmonics falling off to 3.4 kHz) whose vowel
/// changes, in syllables of about 200 ms with short pauses.
pub fn talker(seconds: f32, pitch: f32, level: f32, seed: u32) -> Vec<f32> {
    let mut rng = Lcg(seed);
    let n = (seconds * RATE as f32) as usize;
    let mut out = Vec::with_capacity(n);
    let mut formant = 600.0;
    for i in 0..n {
        if i % 1600 == 0 {
            formant = 400.0 + 1800.0 * (rng.next() * 0.5 + 0.5);
        }
        let t = i as f32 / RATE as f32;
        let syllable = ((t * 5.0 * std::f32::consts::PI).sin()).max(0.0);
        let mut v = 0.0;
        let mut k = 1.0;
        while k * pitch < 3400.0 {
            let f = k * pitch;
            let gain = 1.0 / (1.0 + ((f - formant) / 300.0).powi(2));
            v += gain * (2.0 * std::f32::consts::PI * f * t).sin() / k.sqrt();
            k += 1.0;
        }
        out.push(syllable * v + syllable * rng.next() / 12.0);
    }
    // `level` is the peak.
    let peak = out.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-9);
    out.iter().map(|v| v * level / peak).collect()
}

/// Artificial voice in the manner of ITU-T P.50: noise shaped to speech's long-term spectrum
/// (falling 6 dB per octave above 500 Hz) and cut into syllables of about 200 ms, peak `level`.
pub fn artificial_voice(seconds: f32, level: f32, seed: u32) -> Vec<f32> {
    let mut rng = Lcg(seed);
    let n = (seconds * RATE as f32) as usize;
    let (mut low, mut band) = (0.0f32, 0.0f32);
    let mut out: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            let syllable = ((t * 5.0 * std::f32::consts::PI).sin()).max(0.0);
            // A one-pole low-pass at about 500 Hz, minus a slower one: speech's band.
            let x = rng.next();
            low += 0.33 * (x - low);
            band += 0.05 * (low - band);
            syllable * (low - band)
        })
        .collect();
    let peak = out.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-9);
    for v in &mut out {
        *v *= level / peak;
    }
    out
}
