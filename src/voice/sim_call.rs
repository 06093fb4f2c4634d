//! A simulated call audio port for tests: it records every frame the call plays to the
//! loudspeaker and feeds the call a known recording as the microphone.

use std::sync::{Arc, Mutex, PoisonError};

use super::call_port::{CallAudioPort, FRAME};

/// Records what reached the loudspeaker; the microphone plays `mic` once, then silence.
pub struct SimCallPort {
    played: Arc<Mutex<Vec<i16>>>,
    mic: Vec<i16>,
    pos: usize,
}

impl SimCallPort {
    /// A port whose microphone hears `mic`, and a shared handle on what it played.
    pub fn new(mic: Vec<i16>) -> (SimCallPort, Arc<Mutex<Vec<i16>>>) {
        let played = Arc::new(Mutex::new(Vec::new()));
        let port = SimCallPort {
            played: Arc::clone(&played),
            mic,
            pos: 0,
        };
        (port, played)
    }
}

impl CallAudioPort for SimCallPort {
    fn play(&mut self, frame: &[i16; FRAME]) {
        self.played
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(frame);
    }

    fn capture(&mut self) -> [i16; FRAME] {
        let mut frame = [0i16; FRAME];
        let end = (self.pos + FRAME).min(self.mic.len());
        if self.pos < end {
            frame[..end - self.pos].copy_from_slice(&self.mic[self.pos..end]);
        }
        self.pos = end;
        frame
    }
}

/// The simulated unit's call audio (`vigil run --simulated-audio DIR`): what the far end says
/// is written to `DIR/call-<n>.wav` when the call ends, and the microphone hears silence.
pub struct FileCallPort {
    path: std::path::PathBuf,
    played: Vec<i16>,
}

impl FileCallPort {
    /// The `n`th call's port, recording into `dir`.
    pub fn new(dir: &std::path::Path, n: u32) -> FileCallPort {
        FileCallPort {
            path: dir.join(format!("call-{n}.wav")),
            played: Vec::new(),
        }
    }
}

impl CallAudioPort for FileCallPort {
    fn play(&mut self, frame: &[i16; FRAME]) {
        // At most ten minutes are kept.
        if self.played.len() < 8000 * 600 {
            self.played.extend_from_slice(frame);
        }
    }

    fn capture(&mut self) -> [i16; FRAME] {
        [0; FRAME]
    }
}

impl Drop for FileCallPort {
    fn drop(&mut self) {
        let clip = super::pcm::Clip::new(
            super::call_port::RATE,
            self.played
                .iter()
                .map(|&s| f32::from(s) / 32768.0)
                .collect(),
        );
        if let Err(e) = super::pcm::write_wav(&self.path, &clip) {
            tracing::warn!(error = %e, "the call's recording could not be written");
        }
    }
}
