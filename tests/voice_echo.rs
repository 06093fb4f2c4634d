//! Echo cancellation on a synthetic echo path, as the base unit's speakerphone has: what the
//! loudspeaker plays comes back into the microphone delayed, attenuated and smeared by the
//! room, over a floor of room noise. After 2 s of convergence the canceller (speexdsp) removes
//! at least 30 dB of it (echo return loss enhancement), and the person's own speech still goes
//! through whole.
//!
//! Needs Debian's `libspeexdsp1`, loaded at run time. Reported as ignored when it is missing
//! (build.rs looks for it), except under CI (`CI=true`), where a missing library fails.

mod speech_support;

use speech_support::{artificial_voice, talker, Lcg};
use vigil::voice::call_port::FRAME;
use vigil::voice::echo::EchoCanceller;
use vigil::voice::pcm::align;

const RATE: usize = 8000;

/// The echo path: the loudspeaker 10 ms away through the converters and the case (−6 dB),
/// and three reflections from the room's walls.
fn echo_path() -> Vec<f32> {
    let mut h = vec![0.0; 800];
    h[80] = 0.5;
    h[200] = -0.15;
    h[430] = 0.08;
    h[770] = -0.04;
    h
}

fn convolve(x: &[f32], h: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for (n, out) in y.iter_mut().enumerate() {
        let mut acc = 0.0;
        for (k, &tap) in h.iter().enumerate().take(n + 1) {
            if tap != 0.0 {
                acc += tap * x[n - k];
            }
        }
        *out = acc;
    }
    y
}

fn to_i16(x: f32) -> i16 {
    (x.clamp(-1.0, 1.0) * 32767.0) as i16
}

fn energy(x: &[i16]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

#[cfg_attr(
    not(vigil_has_speexdsp),
    ignore = "needs speexdsp: apt-get install libspeexdsp1"
)]
#[test]
fn the_speakerphone_echo_is_cancelled_and_the_person_still_heard() {
    // 6 s of the operator on the loudspeaker, then 2 s of the person alone.
    let far: Vec<f32> = artificial_voice(6.0, 0.7, 1)
        .into_iter()
        .chain(std::iter::repeat_n(0.0, 2 * RATE))
        .collect();
    let near: Vec<f32> = std::iter::repeat_n(0.0, 6 * RATE)
        .chain(talker(2.0, 210.0, 0.4, 2))
        .collect();
    let echo = convolve(&far, &echo_path());
    let mut noise = Lcg(4);
    // Room noise at about −60 dBFS.
    let mic: Vec<i16> = echo
        .iter()
        .zip(&near)
        .map(|(e, n)| to_i16(e + n + 0.0012 * noise.next()))
        .collect();
    let played: Vec<i16> = far.iter().map(|&v| to_i16(v)).collect();

    let mut aec = EchoCanceller::open().expect("speexdsp");
    let mut out = Vec::with_capacity(mic.len());
    for (m, p) in mic.chunks_exact(FRAME).zip(played.chunks_exact(FRAME)) {
        let m: &[i16; FRAME] = m.try_into().unwrap();
        let p: &[i16; FRAME] = p.try_into().unwrap();
        out.extend_from_slice(&aec.process(m, p));
    }

    // ERLE after 2 s of convergence, while only the loudspeaker talks.
    let span = 2 * RATE..6 * RATE;
    let erle = 10.0 * (energy(&mic[span.clone()]) / energy(&out[span]).max(1.0)).log10();
    eprintln!("echo return loss enhancement: {erle:.1} dB");

    // The person's speech goes through at its level, one frame later (the preprocessor's
    // delay); the noise suppressor's spectral gains reshape the waveform a little.
    let near_i16: Vec<i16> = near.iter().map(|&v| to_i16(v)).collect();
    let person = 6 * RATE + RATE / 4..8 * RATE - RATE / 4;
    let (lag, c) = align(&near_i16[person.clone()], &out[person.start..], 400);
    let loss = 10.0
        * (energy(&near_i16[person.clone()])
            / energy(&out[person.start + lag..person.end + lag]).max(1.0))
        .log10();
    eprintln!(
        "near-end speech: correlation {c:.3}, {:.0} ms later, level change {loss:.1} dB",
        lag as f64 / 8.0
    );
    assert!(erle >= 30.0, "ERLE {erle:.1} dB");
    assert!(loss.abs() <= 3.0, "near-end level changed by {loss:.1} dB");
    assert!(c >= 0.75, "near-end speech reshaped: correlation {c}");
}
