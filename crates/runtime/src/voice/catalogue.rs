//! The prompt catalogue: `sounds/catalogue/<lang>.tsv` holds the texts, `sounds/<lang>/<stem>.wav`
//! the spoken prompts (made by `sounds/make-prompts.sh`), one for every [`Prompt`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tracing::{error, warn};

use super::pcm::{self, Clip};
use super::VoiceError;
use crate::core::Prompt;

/// The language used when a prompt is missing in the configured one.
pub const FALLBACK_LANGUAGE: &str = "en";

/// Sample rate of the committed prompt files.
pub const PROMPT_RATE: u32 = 16_000;

/// Prompts quieter than this RMS level count as silent (the files are made at about −21 dBFS).
pub const SILENT_BELOW_DBFS: f32 = -40.0;

/// One language's catalogue file: the synthesizer voice and the text of every prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogueText {
    /// The espeak-ng voice the texts are spoken with.
    pub voice: String,
    /// Text by file stem.
    pub texts: BTreeMap<String, String>,
}

impl CatalogueText {
    /// Parses `<stem><TAB><text>` lines (`#` starts a comment line, `voice<TAB><name>` names
    /// the voice); every [`Prompt`] must be there exactly once and nothing else.
    pub fn parse(text: &str) -> Result<CatalogueText, (usize, String)> {
        let mut voice = None;
        let mut texts = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('\t')
                .ok_or((n, "expected `<stem><TAB><text>`".to_string()))?;
            let value = value.trim();
            if value.is_empty() {
                return Err((n, format!("`{key}` has no text")));
            }
            if key == "voice" {
                voice = Some(value.to_string());
                continue;
            }
            if !Prompt::ALL.iter().any(|p| p.file_stem() == key) {
                return Err((n, format!("`{key}` is not a prompt")));
            }
            if texts.insert(key.to_string(), value.to_string()).is_some() {
                return Err((n, format!("`{key}` is listed twice")));
            }
        }
        let voice = voice.ok_or((0, "no `voice` line".to_string()))?;
        if let Some(p) = Prompt::ALL
            .iter()
            .find(|p| !texts.contains_key(p.file_stem()))
        {
            return Err((0, format!("prompt `{}` is missing", p.file_stem())));
        }
        Ok(CatalogueText { voice, texts })
    }

    /// Reads and parses `<sounds_dir>/catalogue/<language>.tsv`.
    pub fn load(sounds_dir: &Path, language: &str) -> Result<CatalogueText, VoiceError> {
        let path = catalogue_path(sounds_dir, language);
        let text = std::fs::read_to_string(&path).map_err(|source| VoiceError::Io {
            path: path.clone(),
            source,
        })?;
        CatalogueText::parse(&text).map_err(|(line, reason)| VoiceError::Catalogue {
            path,
            line,
            reason,
        })
    }
}

/// Where a language's catalogue text lives.
pub fn catalogue_path(sounds_dir: &Path, language: &str) -> PathBuf {
    sounds_dir.join("catalogue").join(format!("{language}.tsv"))
}

/// Where a prompt's WAV file lives.
pub fn prompt_path(sounds_dir: &Path, language: &str, prompt: Prompt) -> PathBuf {
    sounds_dir
        .join(language)
        .join(format!("{}.wav", prompt.file_stem()))
}

/// The languages that have a catalogue file, sorted.
pub fn languages(sounds_dir: &Path) -> Result<Vec<String>, VoiceError> {
    let dir = sounds_dir.join("catalogue");
    let entries = std::fs::read_dir(&dir).map_err(|source| VoiceError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut langs: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".tsv").map(str::to_string)
        })
        .collect();
    langs.sort();
    Ok(langs)
}

/// Checks a prompt file's bytes: 16 kHz mono 16-bit PCM, 0.3–30 s, audible, not clipped.
pub fn check_prompt_wav(bytes: &[u8]) -> Result<Clip, VoiceError> {
    let (format, clip) = pcm::parse_wav_with_format(bytes)?;
    let bad = |why: String| Err(VoiceError::Wav(why));
    if format.channels != 1 || format.float || format.rate != PROMPT_RATE {
        return bad(format!(
            "{} channel(s), {} Hz, {}: prompts are 16 kHz mono 16-bit",
            format.channels,
            format.rate,
            if format.float { "float" } else { "16-bit" }
        ));
    }
    let seconds = clip.seconds();
    if !(0.3..=30.0).contains(&seconds) {
        return bad(format!("{seconds:.2} s long (0.3–30 s expected)"));
    }
    let rms = pcm::rms_dbfs(&clip.samples);
    if rms < SILENT_BELOW_DBFS {
        return bad(format!("silent: RMS {rms:.1} dBFS"));
    }
    let clipped = clip.samples.iter().filter(|s| s.abs() >= 0.999).count();
    if clipped * 10_000 > clip.samples.len() {
        return bad(format!("{clipped} clipped samples"));
    }
    Ok(clip)
}

/// Reads and checks one prompt file.
pub fn load_prompt(sounds_dir: &Path, language: &str, prompt: Prompt) -> Result<Clip, VoiceError> {
    let path = prompt_path(sounds_dir, language, prompt);
    let bytes = std::fs::read(&path).map_err(|source| VoiceError::Io {
        path: path.clone(),
        source,
    })?;
    check_prompt_wav(&bytes).map_err(|e| VoiceError::BadFile {
        path,
        reason: e.to_string(),
    })
}

/// Every problem with a language's prompts: a missing catalogue line, a missing or bad file.
pub fn verify_language(sounds_dir: &Path, language: &str) -> Vec<VoiceError> {
    let mut problems = Vec::new();
    if let Err(e) = CatalogueText::load(sounds_dir, language) {
        problems.push(e);
    }
    for prompt in Prompt::ALL {
        if let Err(e) = load_prompt(sounds_dir, language, prompt) {
            problems.push(e);
        }
    }
    problems
}

/// The prompts of one language, converted to the speaker's sample rate, ready to play.
#[derive(Clone, Debug)]
pub struct PromptSet {
    language: String,
    rate: u32,
    clips: BTreeMap<Prompt, PromptAudio>,
}

/// A prompt's audio and the language it is actually in (after any fallback).
#[derive(Clone, Debug)]
pub struct PromptAudio {
    /// The language of the file played, or `"tone"` for the built-in fallback signal.
    pub language: String,
    /// Samples at the set's rate.
    pub samples: std::sync::Arc<[f32]>,
}

impl PromptSet {
    /// Loads every prompt of `language` at `rate`. A missing or bad file falls back to English,
    /// then to a tone pattern, so the unit is never silent about an alarm; each problem is
    /// logged and returned for the installer.
    pub fn load(sounds_dir: &Path, language: &str, rate: u32) -> (PromptSet, Vec<VoiceError>) {
        let mut problems = Vec::new();
        let mut clips = BTreeMap::new();
        for prompt in Prompt::ALL {
            let mut tried = vec![language];
            if language != FALLBACK_LANGUAGE {
                tried.push(FALLBACK_LANGUAGE);
            }
            let mut found = None;
            for lang in tried {
                match load_prompt(sounds_dir, lang, prompt) {
                    Ok(clip) => {
                        found = Some((lang.to_string(), clip));
                        break;
                    }
                    Err(e) => {
                        warn!(prompt = prompt.file_stem(), language = lang, error = %e, "prompt not usable");
                        problems.push(e);
                    }
                }
            }
            let (lang, clip) = found.unwrap_or_else(|| {
                error!(
                    prompt = prompt.file_stem(),
                    "no prompt file in any language, a tone pattern stands in"
                );
                ("tone".to_string(), fallback_tone(prompt))
            });
            let samples: std::sync::Arc<[f32]> = clip.resampled(rate).samples.into();
            clips.insert(
                prompt,
                PromptAudio {
                    language: lang,
                    samples,
                },
            );
        }
        (
            PromptSet {
                language: language.to_string(),
                rate,
                clips,
            },
            problems,
        )
    }

    /// Tone patterns only (no files): for a unit whose sounds folder is missing.
    pub fn tones(rate: u32) -> PromptSet {
        let clips = Prompt::ALL
            .into_iter()
            .map(|p| {
                let samples = fallback_tone(p).resampled(rate).samples.into();
                (
                    p,
                    PromptAudio {
                        language: "tone".to_string(),
                        samples,
                    },
                )
            })
            .collect();
        PromptSet {
            language: "tone".to_string(),
            rate,
            clips,
        }
    }

    /// The language asked for.
    pub fn language(&self) -> &str {
        &self.language
    }

    /// The sample rate of the clips.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// A prompt's audio.
    pub fn get(&self, prompt: Prompt) -> Option<&PromptAudio> {
        self.clips.get(&prompt)
    }
}

/// A signal that stands in for a prompt with no file: three rising beeps for alarm prompts,
/// two low ones for technical warnings.
pub fn fallback_tone(prompt: Prompt) -> Clip {
    use crate::core::Urgency;
    let rate = PROMPT_RATE;
    let freqs: &[f32] = match prompt.urgency() {
        Urgency::Alarm => &[660.0, 880.0, 1100.0],
        Urgency::Technical => &[440.0, 440.0],
    };
    let mut samples = Vec::new();
    for &f in freqs {
        let n = rate as usize / 4;
        samples.extend((0..n).map(|i| {
            let env = (i.min(n - i) as f32 / 80.0).min(1.0);
            0.3 * env * (std::f32::consts::TAU * f * i as f32 / rate as f32).sin()
        }));
        samples.extend(std::iter::repeat_n(0.0, rate as usize / 8));
    }
    Clip::new(rate, samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_catalogue() -> String {
        let mut s = String::from("# comment\nvoice\ten-gb\n");
        for p in Prompt::ALL {
            s.push_str(&format!("{}\tText of {:?}.\n", p.file_stem(), p));
        }
        s
    }

    #[test]
    fn a_complete_catalogue_parses() {
        let cat = CatalogueText::parse(&full_catalogue()).unwrap();
        assert_eq!(cat.voice, "en-gb");
        assert_eq!(cat.texts.len(), Prompt::ALL.len());
        assert_eq!(cat.texts["heard_you"], "Text of HeardYou.");
    }

    #[test]
    fn catalogue_errors_name_the_line() {
        let missing = full_catalogue().replace("no_network\tText of NoNetwork.\n", "");
        assert_eq!(
            CatalogueText::parse(&missing).unwrap_err().1,
            "prompt `no_network` is missing"
        );
        let unknown = format!("{}fire_alarm\tFire!\n", full_catalogue());
        // The line after the header, the voice and every prompt.
        assert_eq!(
            CatalogueText::parse(&unknown).unwrap_err().0,
            Prompt::ALL.len() + 3
        );
        let twice = format!("{}cancelled\tAgain.\n", full_catalogue());
        assert!(CatalogueText::parse(&twice)
            .unwrap_err()
            .1
            .contains("twice"));
        let no_tab = full_catalogue().replace("cancelled\t", "cancelled ");
        assert!(CatalogueText::parse(&no_tab).unwrap_err().1.contains("TAB"));
        let no_voice = full_catalogue().replace("voice\ten-gb\n", "");
        assert!(CatalogueText::parse(&no_voice).is_err());
    }

    #[test]
    fn fallback_tones_are_audible_prompts() {
        for p in Prompt::ALL {
            let clip = fallback_tone(p);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.wav");
            pcm::write_wav(&path, &clip).unwrap();
            check_prompt_wav(&std::fs::read(&path).unwrap()).unwrap();
        }
    }

    #[test]
    fn missing_files_fall_back_to_english_then_tones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("en")).unwrap();
        let tone = fallback_tone(Prompt::Cancelled);
        pcm::write_wav(&prompt_path(dir.path(), "en", Prompt::Cancelled), &tone).unwrap();
        let (set, problems) = PromptSet::load(dir.path(), "de", 48_000);
        assert_eq!(set.get(Prompt::Cancelled).unwrap().language, "en");
        assert_eq!(set.get(Prompt::HeardYou).unwrap().language, "tone");
        // Each prompt but one is missing in both languages; that one only in German.
        assert_eq!(problems.len(), 2 * Prompt::ALL.len() - 1);
        let played = &set.get(Prompt::Cancelled).unwrap().samples;
        assert_eq!(played.len(), tone.samples.len() * 3);
    }
}
