//! Goertzel detection of DTMF digits and the Contact ID handshake and kissoff in call audio
//! made with sox: telephone levels (tones at −20 dBFS and below), twist, frequency error,
//! and noise; and no false digits or kissoffs from speech.

mod voice_support;

use std::path::{Path, PathBuf};

use vigil::voice::tones::{DTMF_COLS, DTMF_KEYS, DTMF_ROWS};
use vigil::voice::{ContactIdDetector, ContactIdTone, DtmfDetector};
use voice_support::{load, tools, Studio};

const RATE: u32 = 8000;

/// DTMF for `keys` as a Contact ID sender sends it: `on` ms tones, `off` ms gaps, low tone at
/// `level` (linear), high tone 2 dB above (normal twist), frequencies off by `error` (0.01 = 1 %).
fn dtmf(studio: &Studio, keys: &str, on: f32, off: f32, level: f32, error: f32) -> PathBuf {
    let mut parts = vec![studio.silence(0.2, RATE)];
    for k in keys.chars() {
        let (r, c) = DTMF_KEYS
            .iter()
            .enumerate()
            .find_map(|(r, row)| row.iter().position(|&x| x == k).map(|c| (r, c)))
            .expect("a DTMF key");
        let low = DTMF_ROWS[r] * (1.0 + error);
        let high = DTMF_COLS[c] * (1.0 + error);
        parts.push(studio.tones(&[(low, level), (high, level * 1.26)], on, RATE));
        parts.push(studio.silence(off, RATE));
    }
    parts.push(studio.silence(0.2, RATE));
    studio.concat(&parts)
}

fn with_noise(studio: &Studio, signal: &Path, noise_dbfs: f32) -> Vec<f32> {
    let len = load(signal).seconds() as f32 + 0.1;
    let noise = studio.noise("whitenoise", len, RATE, noise_dbfs);
    load(&studio.mix(signal, &noise)).samples
}

#[cfg_attr(
    not(vigil_has_speech_tools),
    ignore = "espeak-ng and sox are not installed: apt-get install espeak-ng sox"
)]
#[test]
fn a_contact_id_message_decodes_at_telephone_level_in_noise() {
    if !tools() {
        return;
    }
    let studio = Studio::new();
    // ACCT 1234, MT 18, Q 1, EEE 101, GG 00, CCC 001, checksum 5 (DC-05 §4).
    let message = "1234181101000015";
    let clean = dtmf(&studio, message, 0.055, 0.055, 0.1, 0.0);
    // Tones about −20 dBFS each, white noise at −40 dBFS RMS: 20 dB SNR.
    let audio = with_noise(&studio, &clean, -40.0);
    assert_eq!(DtmfDetector::decode(RATE, &audio), message);
}

#[cfg_attr(
    not(vigil_has_speech_tools),
    ignore = "espeak-ng and sox are not installed: apt-get install espeak-ng sox"
)]
#[test]
fn every_key_decodes_with_1_5_percent_frequency_error_and_in_heavier_noise() {
    if !tools() {
        return;
    }
    let studio = Studio::new();
    let keys = "0123456789*#ABCD";
    for error in [-0.015, 0.015] {
        let clean = dtmf(&studio, keys, 0.06, 0.06, 0.1, error);
        let audio = with_noise(&studio, &clean, -32.0);
        assert_eq!(DtmfDetector::decode(RATE, &audio), keys, "error {error}");
    }
}

#[cfg_attr(
    not(vigil_has_speech_tools),
    ignore = "espeak-ng and sox are not installed: apt-get install espeak-ng sox"
)]
#[test]
fn a_key_decodes_at_16_khz_and_at_low_level() {
    if !tools() {
        return;
    }
    let studio = Studio::new();
    let a = studio.tones(&[(852.0, 0.03), (1477.0, 0.035)], 0.07, 16_000);
    let audio =
        load(&studio.concat(&[studio.silence(0.1, 16_000), a, studio.silence(0.1, 16_000)]));
    assert_eq!(DtmfDetector::decode(16_000, &audio.samples), "9");
}

#[cfg_attr(
    not(vigil_has_speech_tools),
    ignore = "espeak-ng and sox are not installed: apt-get install espeak-ng sox"
)]
#[test]
fn speech_and_noise_give_no_digits_or_kissoff() {
    if !tools() {
        return;
    }
    let studio = Studio::new();
    let speech = studio.speech(
        "en-gb",
        "Hello, this is the alarm centre. Can you hear me? Please press one to accept.",
        RATE,
        -6.0,
    );
    let audio = with_noise(&studio, &speech, -45.0);
    assert_eq!(DtmfDetector::decode(RATE, &audio), "");
    assert_eq!(ContactIdDetector::detect(RATE, &audio), []);
    let noise = load(&studio.noise("pinknoise", 3.0, RATE, -15.0)).samples;
    assert_eq!(DtmfDetector::decode(RATE, &noise), "");
    assert_eq!(ContactIdDetector::detect(RATE, &noise), []);
}

#[cfg_attr(
    not(vigil_has_speech_tools),
    ignore = "espeak-ng and sox are not installed: apt-get install espeak-ng sox"
)]
#[test]
fn handshake_then_kissoff_after_a_message_in_noise() {
    if !tools() {
        return;
    }
    let studio = Studio::new();
    let handshake = [
        studio.silence(0.3, RATE),
        studio.tones(&[(1400.0, 0.1)], 0.1, RATE),
        studio.silence(0.1, RATE),
        studio.tones(&[(2300.0, 0.1)], 0.1, RATE),
        studio.silence(0.25, RATE),
    ];
    let mut parts = handshake.to_vec();
    // The sender's own DTMF is heard on the line too: it must not look like a kissoff.
    parts.push(dtmf(&studio, "1234181101000015", 0.055, 0.055, 0.1, 0.0));
    parts.push(studio.tones(&[(1400.0, 0.08)], 0.8, RATE));
    parts.push(studio.silence(0.3, RATE));
    let clean = studio.concat(&parts);
    let audio = with_noise(&studio, &clean, -38.0);
    let mut events = Vec::new();
    let mut detector = ContactIdDetector::new(RATE);
    for chunk in audio.chunks(160) {
        detector.push(chunk, |e| events.push(e));
    }
    let tones: Vec<ContactIdTone> = events.iter().map(|e| e.tone).collect();
    assert_eq!(tones, [ContactIdTone::Handshake, ContactIdTone::Kissoff]);
    // The kissoff is timed (750–1000 ms), so it is recognised when the tone ends.
    let kissoff_at = events[1].at as f32 / RATE as f32;
    let tone_end = load(&clean).seconds() as f32 - 0.3;
    assert!(
        (kissoff_at - tone_end).abs() < 0.05,
        "{kissoff_at} {tone_end}"
    );
}

#[cfg_attr(
    not(vigil_has_speech_tools),
    ignore = "espeak-ng and sox are not installed: apt-get install espeak-ng sox"
)]
#[test]
fn a_kissoff_slightly_off_frequency_still_counts_and_a_short_one_does_not() {
    if !tools() {
        return;
    }
    let studio = Studio::new();
    let off = studio.tones(&[(1400.0 * 1.015, 0.1)], 0.85, RATE);
    let audio = with_noise(
        &studio,
        &studio.concat(&[off, studio.silence(0.2, RATE)]),
        -40.0,
    );
    assert_eq!(
        ContactIdDetector::detect(RATE, &audio),
        [ContactIdTone::Kissoff]
    );
    // 300 ms (a handshake's burst is 100 ms) and 1.5 s: neither is a kissoff.
    let long = studio.tones(&[(1400.0, 0.1)], 1.5, RATE);
    let audio = with_noise(
        &studio,
        &studio.concat(&[long, studio.silence(0.2, RATE)]),
        -40.0,
    );
    assert_eq!(ContactIdDetector::detect(RATE, &audio), []);
    let short = studio.tones(&[(1400.0, 0.1)], 0.3, RATE);
    let audio = with_noise(
        &studio,
        &studio.concat(&[short, studio.silence(0.2, RATE)]),
        -40.0,
    );
    assert_eq!(ContactIdDetector::detect(RATE, &audio), []);
}
