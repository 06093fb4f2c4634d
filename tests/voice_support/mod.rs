//! Test audio for the voice tests, made with espeak-ng and sox at test time.
//!
//! Without the tools the tests that need them are reported as ignored (build.rs looks for
//! them); with `CI=true` they run and fail instead, so CI cannot pass by skipping (CI installs
//! `espeak-ng` and `sox`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use vigil::voice::pcm::{read_wav, Clip};

/// Whether espeak-ng and sox are there; false (after a message) means skip the test.
/// Panics when they are missing on CI.
pub fn tools() -> bool {
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing: Vec<&str> = ["sox", "espeak-ng"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {missing:?} not installed: apt-get install espeak-ng sox");
    }
    eprintln!("skipped: {missing:?} not installed (apt-get install espeak-ng sox)");
    false
}

/// A scratch folder for generated audio.
pub struct Studio {
    dir: tempfile::TempDir,
    n: std::cell::Cell<u32>,
}

impl Studio {
    /// A new empty folder.
    pub fn new() -> Studio {
        Studio {
            dir: tempfile::tempdir().expect("temp dir"),
            n: std::cell::Cell::new(0),
        }
    }

    /// A fresh file name in the folder.
    pub fn path(&self, what: &str) -> PathBuf {
        self.n.set(self.n.get() + 1);
        self.dir
            .path()
            .join(format!("{:03}-{what}.wav", self.n.get()))
    }

    /// Runs sox with `args`; panics with sox's message if it fails.
    pub fn sox(&self, args: &[&str]) {
        let out = Command::new("sox").args(args).output().expect("run sox");
        assert!(
            out.status.success(),
            "sox {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `text` spoken by espeak-ng `voice`, at `rate`, speech peaks at `peak_dbfs`.
    pub fn speech(&self, voice: &str, text: &str, rate: u32, peak_dbfs: f32) -> PathBuf {
        let raw = self.path("espeak");
        let out = Command::new("espeak-ng")
            .args(["-v", voice, "-w"])
            .arg(&raw)
            .arg(text)
            .output()
            .expect("run espeak-ng");
        assert!(out.status.success(), "espeak-ng failed");
        let path = self.path("speech");
        self.sox(&[
            p(&raw),
            "-r",
            &rate.to_string(),
            "-b",
            "16",
            p(&path),
            "gain",
            "-n",
            &peak_dbfs.to_string(),
        ]);
        path
    }

    /// Noise of a sox colour (`whitenoise`, `pinknoise`, `brownnoise`) at an RMS level.
    pub fn noise(&self, colour: &str, seconds: f32, rate: u32, rms_dbfs: f32) -> PathBuf {
        let path = self.path(colour);
        self.sox(&[
            "-R",
            "-r",
            &rate.to_string(),
            "-n",
            "-b",
            "16",
            p(&path),
            "synth",
            &seconds.to_string(),
            colour,
        ]);
        // Set the RMS level: measure, then apply the difference.
        let rms = vigil::voice::pcm::rms_dbfs(&load(&path).samples);
        let out = self.path(colour);
        self.sox(&[p(&path), p(&out), "gain", &(rms_dbfs - rms).to_string()]);
        out
    }

    /// Silence of `seconds`.
    pub fn silence(&self, seconds: f32, rate: u32) -> PathBuf {
        let path = self.path("silence");
        self.sox(&[
            "-D",
            "-r",
            &rate.to_string(),
            "-n",
            "-b",
            "16",
            p(&path),
            "trim",
            "0",
            &seconds.to_string(),
        ]);
        path
    }

    /// One or two sine tones together (amplitudes linear, of full scale).
    pub fn tones(&self, tones: &[(f32, f32)], seconds: f32, rate: u32) -> PathBuf {
        let path = self.path("tone");
        let channels = tones.len().to_string();
        let len = seconds.to_string();
        let mut args: Vec<String> = vec![
            "-r".into(),
            rate.to_string(),
            "-c".into(),
            channels,
            "-n".into(),
            "-b".into(),
            "16".into(),
            p(&path).into(),
            "synth".into(),
            len,
        ];
        for (f, _) in tones {
            args.push("sine".into());
            args.push(f.to_string());
        }
        args.push("remix".into());
        args.push(
            tones
                .iter()
                .enumerate()
                .map(|(i, (_, a))| format!("{}v{a}", i + 1))
                .collect::<Vec<_>>()
                .join(","),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.sox(&args);
        path
    }

    /// The files one after another.
    pub fn concat(&self, parts: &[PathBuf]) -> PathBuf {
        let path = self.path("concat");
        let mut args: Vec<&str> = parts.iter().map(|x| p(x)).collect();
        args.push(p(&path));
        self.sox(&args);
        path
    }

    /// `a` with `b` mixed in at full level (the shorter is padded with silence).
    pub fn mix(&self, a: &Path, b: &Path) -> PathBuf {
        let path = self.path("mix");
        self.sox(&["-m", "-v", "1", p(a), "-v", "1", p(b), p(&path)]);
        path
    }

    /// `a` after `seconds` of silence.
    pub fn delay(&self, a: &Path, seconds: f32) -> PathBuf {
        let path = self.path("delay");
        self.sox(&[p(a), p(&path), "pad", &seconds.to_string(), "0"]);
        path
    }
}

/// A path as &str (temp paths are UTF-8).
pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Reads a generated file.
pub fn load(path: &Path) -> Clip {
    read_wav(path).expect("generated WAV")
}
