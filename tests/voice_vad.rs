//! Voice-activity detection on recorded-like audio made with espeak-ng and sox: speech in three
//! languages at conversational and distant levels over room noise; silence, steady noise and a
//! dead microphone.

mod voice_support;

use vigil::core::Heard;
use vigil::voice::Vad;
use voice_support::{load, tools, Studio};

/// Runs the detector over a file in 10 ms blocks, as a capture stream delivers it.
fn heard(path: &std::path::Path) -> Heard {
    let clip = load(path);
    let mut vad = Vad::new(clip.rate);
    for block in clip.samples.chunks((clip.rate / 100) as usize) {
        vad.push(block);
    }
    vad.verdict()
}

#[cfg_attr(
    not(vigil_has_speech_tools),
    ignore = "espeak-ng and sox are not installed: apt-get install espeak-ng sox"
)]
#[test]
fn speech_in_every_prompt_language_is_heard_over_room_noise() {
    if !tools() {
        return;
    }
    let studio = Studio::new();
    for (voice, text) in [
        ("en-gb", "Help. I have fallen and I cannot get up."),
        ("de", "Hilfe, ich bin gestürzt."),
        ("sv", "Hjälp, jag har ramlat."),
    ] {
        // A person a few metres away: speech peaks at −20 dBFS, pink room noise at −55 dBFS,
        // after a second of quiet (the window opens before they speak).
        let speech = studio.delay(&studio.speech(voice, text, 16_000, -20.0), 1.0);
        let noise = studio.noise("pinknoise", 5.0, 16_000, -55.0);
        assert_eq!(
            heard(&studio.mix(&speech, &noise)),
            Heard::Speech,
            "{voice}"
        );
    }
}

#[cfg_attr(
    not(vigil_has_speech_tools),
    ignore = "espeak-ng and sox are not installed: apt-get install espeak-ng sox"
)]
#[test]
fn faint_speech_and_a_single_word_are_heard() {
    if !tools() {
        return;
    }
    let studio = Studio::new();
    // Someone on the floor in the next room: peaks at −35 dBFS over −60 dBFS noise.
    let faint = studio.delay(&studio.speech("en-gb", "I need help", 16_000, -35.0), 0.5);
    let noise = studio.noise("whitenoise", 3.0, 16_000, -60.0);
    assert_eq!(heard(&studio.mix(&faint, &noise)), Heard::Speech);
    let word = studio.delay(&studio.speech("en-gb", "Yes!", 16_000, -15.0), 0.5);
    assert_eq!(heard(&studio.mix(&word, &noise)), Heard::Speech);
}

#[cfg_attr(
    not(vigil_has_speech_tools),
    ignore = "espeak-ng and sox are not installed: apt-get install espeak-ng sox"
)]
#[test]
fn speech_over_loud_hiss_is_heard_at_48_khz() {
    if !tools() {
        return;
    }
    let studio = Studio::new();
    let speech = studio.delay(
        &studio.speech("en-gb", "Please help me, I am on the floor.", 48_000, -12.0),
        1.0,
    );
    let noise = studio.noise("whitenoise", 5.0, 48_000, -35.0);
    assert_eq!(heard(&studio.mix(&speech, &noise)), Heard::Speech);
}

#[cfg_attr(
    not(vigil_has_speech_tools),
    ignore = "espeak-ng and sox are not installed: apt-get install espeak-ng sox"
)]
#[test]
fn a_quiet_room_is_silence() {
    if !tools() {
        return;
    }
    let studio = Studio::new();
    let silence = studio.silence(5.0, 16_000);
    let noise = studio.noise("pinknoise", 5.0, 16_000, -62.0);
    assert_eq!(heard(&studio.mix(&silence, &noise)), Heard::Silence);
}

#[cfg_attr(
    not(vigil_has_speech_tools),
    ignore = "espeak-ng and sox are not installed: apt-get install espeak-ng sox"
)]
#[test]
fn steady_noise_is_not_speech() {
    if !tools() {
        return;
    }
    let studio = Studio::new();
    // A fan or a fridge (brown), a radio between stations (white), traffic (pink).
    for (colour, level) in [
        ("brownnoise", -30.0),
        ("whitenoise", -30.0),
        ("pinknoise", -35.0),
    ] {
        let noise = studio.noise(colour, 5.0, 16_000, level);
        assert_eq!(heard(&noise), Heard::Silence, "{colour}");
    }
}

#[cfg_attr(
    not(vigil_has_speech_tools),
    ignore = "espeak-ng and sox are not installed: apt-get install espeak-ng sox"
)]
#[test]
fn noise_too_loud_to_hear_through_is_unclear() {
    if !tools() {
        return;
    }
    let studio = Studio::new();
    let noise = studio.noise("pinknoise", 5.0, 16_000, -10.0);
    assert_eq!(heard(&noise), Heard::Unclear);
}

#[cfg_attr(
    not(vigil_has_speech_tools),
    ignore = "espeak-ng and sox are not installed: apt-get install espeak-ng sox"
)]
#[test]
fn a_dead_microphone_is_unclear() {
    if !tools() {
        return;
    }
    let studio = Studio::new();
    assert_eq!(heard(&studio.silence(5.0, 16_000)), Heard::Unclear);
}
