//! `vigil prompts`: check the prompt files, play prompts into WAV files or on the speaker, list
//! audio devices. For installers and for whoever adds a language.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::catalogue;
use super::sim::{SimAudio, SimClock, SimConfig};
use super::{lock, Voice, VoiceError, VoiceSettings};
use crate::core::{Prompt, Timestamp};

/// Check, play and list the voice prompts.
#[derive(Args, Debug)]
pub struct PromptsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: PromptsAction,
}

/// `vigil prompts` actions.
#[derive(Subcommand, Debug)]
pub enum PromptsAction {
    /// Check that every prompt exists in every language as valid, audible audio.
    Check {
        /// The sounds folder [default: `audio.sounds_dir` of the configuration].
        #[arg(long)]
        sounds: Option<PathBuf>,
        /// The configuration whose sounds to check [default: see `vigil --help`].
        #[arg(long, conflicts_with = "sounds")]
        config: Option<PathBuf>,
    },
    /// Play prompts (by file stem, e.g. `fall_detected`) into WAV files, or on the speaker.
    Play {
        /// The sounds folder [default: `audio.sounds_dir` of the configuration].
        #[arg(long)]
        sounds: Option<PathBuf>,
        /// The configuration whose sounds and language to use [default: see `vigil --help`].
        #[arg(long, conflicts_with = "sounds")]
        config: Option<PathBuf>,
        /// Language folder [default: `unit.language` of the configuration, else en].
        #[arg(long)]
        language: Option<String>,
        /// Volume, 0–100 %.
        #[arg(long, default_value_t = 80)]
        volume: u8,
        /// Write WAV files and a timeline here (simulated speaker).
        #[arg(long, conflicts_with = "device")]
        out: Option<PathBuf>,
        /// Play on this output device ("default" for the default); needs the `alsa` feature.
        #[arg(long)]
        device: Option<String>,
        /// The prompts, in order.
        #[arg(required = true)]
        prompts: Vec<String>,
    },
    /// List the audio devices (needs the `alsa` feature).
    Devices,
}

/// Runs `vigil prompts`.
pub fn run(args: &PromptsArgs) -> Result<ExitCode, VoiceError> {
    match &args.action {
        PromptsAction::Check { sounds, config } => check(&sounds_dir(sounds, config)?.0),
        PromptsAction::Play {
            sounds,
            config,
            language,
            volume,
            out,
            device,
            prompts,
        } => {
            let prompts = prompts
                .iter()
                .map(|name| {
                    Prompt::ALL
                        .into_iter()
                        .find(|p| p.file_stem() == name)
                        .ok_or_else(|| VoiceError::BadFile {
                            path: PathBuf::from(name),
                            reason: format!(
                                "not a prompt; prompts: {}",
                                Prompt::ALL.map(|p| p.file_stem()).join(", ")
                            ),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let (sounds, configured_language) = sounds_dir(sounds, config)?;
            let settings = VoiceSettings {
                sounds_dir: sounds,
                language: language
                    .clone()
                    .or(configured_language)
                    .unwrap_or_else(|| "en".into()),
                volume: *volume,
                quiet_hours: None,
            };
            match device {
                Some(name) => play_on_device(&settings, name, &prompts),
                None => play_to_files(&settings, out.clone(), &prompts),
            }
        }
        PromptsAction::Devices => devices(),
    }
}

/// The sounds folder (and the configured language) to use: `--sounds` if given, else those
/// of the configuration found by the rule every command follows.
fn sounds_dir(
    sounds: &Option<PathBuf>,
    config: &Option<PathBuf>,
) -> Result<(PathBuf, Option<String>), VoiceError> {
    if let Some(dir) = sounds {
        return Ok((dir.clone(), None));
    }
    let usage = |path: PathBuf, reason: String| VoiceError::BadFile { path, reason };
    let path = crate::config::locate(config.as_deref()).map_err(|e| {
        usage(
            PathBuf::from("--sounds"),
            format!("{e}; or pass --sounds DIR"),
        )
    })?;
    let cfg = crate::config::load(&path).map_err(|e| usage(path.clone(), e.to_string()))?;
    let dir = cfg.audio.sounds_dir.clone();
    if !dir.is_dir() {
        return Err(usage(
            dir,
            format!(
                "no such folder (audio.sounds_dir in {}); pass --sounds DIR to check another",
                path.display()
            ),
        ));
    }
    Ok((dir, Some(cfg.unit.language.clone())))
}

fn check(sounds: &std::path::Path) -> Result<ExitCode, VoiceError> {
    let mut bad = 0;
    for lang in catalogue::languages(sounds)? {
        let problems = catalogue::verify_language(sounds, &lang);
        if problems.is_empty() {
            println!("{lang}: {} prompts OK", Prompt::ALL.len());
        }
        for p in &problems {
            println!("{lang}: {p}");
        }
        bad += problems.len();
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn play_to_files(
    settings: &VoiceSettings,
    out: Option<PathBuf>,
    prompts: &[Prompt],
) -> Result<ExitCode, VoiceError> {
    let clock = Arc::new(SimClock::new(Timestamp::now(), 0));
    let config = SimConfig {
        out_dir: out.clone(),
        ..SimConfig::default()
    };
    let sim = SimAudio::manual(config, clock);
    let voice = Voice::open(settings, Box::new(sim.clone()), sim.clock())?;
    for &p in prompts {
        voice.play(p);
    }
    // Prompts are seconds long: two minutes is far more than any list needs.
    for _ in 0..1200 {
        sim.advance(Duration::from_millis(100));
        if voice.engine().is_none_or(|e| lock(e).is_idle()) {
            break;
        }
    }
    print!("{}", sim.timeline_text());
    if let Some(dir) = out {
        println!("WAV files and timeline.txt in {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "alsa")]
fn play_on_device(
    settings: &VoiceSettings,
    name: &str,
    prompts: &[Prompt],
) -> Result<ExitCode, VoiceError> {
    let name = (name != "default").then(|| name.to_string());
    let backend = super::device::CpalAudio::new(name, None);
    let voice = Voice::open(settings, Box::new(backend), Arc::new(super::SystemClock))?;
    for &p in prompts {
        voice.play(p);
    }
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..1200 {
        if voice.engine().is_none_or(|e| lock(e).is_idle()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the device drain its buffer.
    std::thread::sleep(Duration::from_millis(300));
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "alsa"))]
fn play_on_device(
    _settings: &VoiceSettings,
    name: &str,
    _prompts: &[Prompt],
) -> Result<ExitCode, VoiceError> {
    Err(VoiceError::Device {
        direction: "output",
        name: name.to_string(),
        reason: "this vigil was built without the `alsa` feature".to_string(),
    })
}

#[cfg(feature = "alsa")]
fn devices() -> Result<ExitCode, VoiceError> {
    use super::device::{device_names, Direction};
    for (what, dir) in [("output", Direction::Output), ("input", Direction::Input)] {
        let names = device_names(dir);
        if names.is_empty() {
            println!("{what}: none");
        }
        for n in names {
            println!("{what}: {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "alsa"))]
fn devices() -> Result<ExitCode, VoiceError> {
    Err(VoiceError::Device {
        direction: "output",
        name: "(any)".to_string(),
        reason: "this vigil was built without the `alsa` feature".to_string(),
    })
}
