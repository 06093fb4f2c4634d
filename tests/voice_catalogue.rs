//! The committed prompts: every prompt the core can ask for exists in every language, the
//! catalogue texts and the WAV files agree, and every file is valid, audible, loudness-matched
//! audio. Also: the WAV parser never panics on random bytes (the `voice_wav` fuzz target's
//! function, exercised here without a nightly toolchain).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use vigil::core::Prompt;
use vigil::voice::catalogue::{self, CatalogueText};
use vigil::voice::pcm;

fn sounds() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sounds")
}

#[test]
fn there_are_at_least_english_german_and_swedish() {
    let langs = catalogue::languages(&sounds()).unwrap();
    for lang in ["en", "de", "sv"] {
        assert!(
            langs.iter().any(|l| l == lang),
            "{lang} missing from {langs:?}"
        );
    }
}

#[test]
fn every_language_has_every_prompt_as_valid_audible_audio() {
    let dir = sounds();
    for lang in catalogue::languages(&dir).unwrap() {
        let text = CatalogueText::load(&dir, &lang).unwrap();
        assert_eq!(text.texts.len(), Prompt::ALL.len(), "{lang}");
        let problems = catalogue::verify_language(&dir, &lang);
        assert!(problems.is_empty(), "{lang}: {problems:#?}");
    }
}

#[test]
fn no_stray_files_in_a_language_folder() {
    let dir = sounds();
    for lang in catalogue::languages(&dir).unwrap() {
        for entry in std::fs::read_dir(dir.join(&lang)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".wav").unwrap_or(&name);
            assert!(
                Prompt::ALL.iter().any(|p| p.file_stem() == stem),
                "{lang}/{name} is not a prompt"
            );
        }
    }
}

#[test]
fn prompts_are_loudness_matched_and_longer_texts_are_longer() {
    let dir = sounds();
    for lang in catalogue::languages(&dir).unwrap() {
        let text = CatalogueText::load(&dir, &lang).unwrap();
        for prompt in Prompt::ALL {
            let clip = catalogue::load_prompt(&dir, &lang, prompt).unwrap();
            // make-prompts.sh sets the speech to −20 dBFS RMS, then pads 150 ms of silence at
            // both ends (measured without them: they weigh heavily on a single digit).
            let pad = (clip.rate as f64 * 0.15) as usize;
            let speech = clip
                .samples
                .get(pad..clip.samples.len().saturating_sub(pad))
                .unwrap_or(&clip.samples);
            let rms = pcm::rms_dbfs(speech);
            assert!(
                (-24.0..=-19.0).contains(&rms),
                "{lang}/{prompt:?}: {rms} dBFS"
            );
            // Roughly 6–25 characters a second of speech: the file matches its text. A single
            // word (a digit) is said slower than a sentence; it must just be a word's length.
            let chars = text.texts[prompt.file_stem()].chars().count() as f64;
            let seconds = speech.len() as f64 / f64::from(clip.rate);
            if chars >= 10.0 {
                let rate = chars / seconds;
                assert!(
                    (6.0..=25.0).contains(&rate),
                    "{lang}/{prompt:?}: {rate} chars/s"
                );
            } else {
                assert!(
                    (0.1..=1.5).contains(&seconds),
                    "{lang}/{prompt:?}: {seconds} s for one word"
                );
            }
        }
    }
}

#[test]
fn a_corrupt_prompt_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("xx")).unwrap();
    let path = catalogue::prompt_path(dir.path(), "xx", Prompt::HeardYou);
    std::fs::write(&path, b"RIFF....WAVEfmt ").unwrap();
    let err = catalogue::load_prompt(dir.path(), "xx", Prompt::HeardYou).unwrap_err();
    assert!(err.to_string().contains("heard_you.wav"), "{err}");
    // A silent but well-formed file is refused too.
    pcm::write_wav(&path, &pcm::Clip::new(16_000, vec![0.0; 16_000])).unwrap();
    let err = catalogue::load_prompt(dir.path(), "xx", Prompt::HeardYou).unwrap_err();
    assert!(err.to_string().contains("silent"), "{err}");
    // And one at the wrong rate.
    pcm::write_wav(
        &path,
        &catalogue::fallback_tone(Prompt::HeardYou).resampled(48_000),
    )
    .unwrap();
    let err = catalogue::load_prompt(dir.path(), "xx", Prompt::HeardYou).unwrap_err();
    assert!(err.to_string().contains("48000 Hz"), "{err}");
}

proptest! {
    #[test]
    fn wav_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = catalogue::check_prompt_wav(&bytes);
    }

    #[test]
    fn wav_parsing_never_panics_on_damaged_headers(
        flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..8),
    ) {
        let mut bytes = std::fs::read(catalogue::prompt_path(&sounds(), "en", Prompt::Cancelled)).unwrap();
        bytes.truncate(4096);
        for (at, value) in flips {
            if let Some(b) = bytes.get_mut(at) {
                *b = value;
            }
        }
        let _ = catalogue::check_prompt_wav(&bytes);
    }
}
