//! Simulated call audio: a port for tests that records every frame the call plays to the
//! loudspeaker and feeds the call a known recording as the microphone ([`SimCallPort`], the
//! installer's test-call probe under its simulator name), the simulated backend's port that
//! records each call to a file, and a simulated room around it.

use super::call_port::{CallAudioPort, FRAME};

/// Records what reached the loudspeaker; the microphone plays a recording once, then silence.
/// The same port the installer's test call uses to say its prompt and keep what came back.
pub use super::call_test::ProbePort as SimCallPort;

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

/// A simulated room around a simulated speakerphone: what the port plays comes back into its
/// microphone as a real base unit's does, the direct path 10 ms later at −6 dB and three
/// reflections from the walls, over a floor of room noise at about −60 dBFS. The simulated
/// backend calls through it, so its calls need the echo canceller as a real unit's do.
pub struct SimRoom {
    inner: Box<dyn CallAudioPort>,
    /// The loudspeaker's output, newest last; as long as the echo path.
    speaker: std::collections::VecDeque<f32>,
    noise: u32,
}

/// The room's echo path at 8 kHz: (delay in samples, gain).
pub const ROOM_ECHO: [(usize, f32); 4] = [(80, 0.5), (200, -0.15), (430, 0.08), (770, -0.04)];

impl SimRoom {
    /// `inner`'s loudspeaker heard by its own microphone.
    pub fn new(inner: Box<dyn CallAudioPort>) -> SimRoom {
        let longest = ROOM_ECHO.iter().map(|(d, _)| *d).max().unwrap_or(0);
        SimRoom {
            inner,
            speaker: std::iter::repeat_n(0.0, longest + FRAME).collect(),
            noise: 0x5EED,
        }
    }
}

impl CallAudioPort for SimRoom {
    fn play(&mut self, frame: &[i16; FRAME]) {
        self.inner.play(frame);
        self.speaker.drain(..FRAME);
        self.speaker
            .extend(frame.iter().map(|&s| f32::from(s) / 32768.0));
    }

    fn capture(&mut self) -> [i16; FRAME] {
        let mut mic = self.inner.capture();
        // The microphone's frame lines up with the loudspeaker's latest.
        let end = self.speaker.len();
        for (i, m) in mic.iter_mut().enumerate() {
            let t = end - FRAME + i;
            let echo: f32 = ROOM_ECHO
                .iter()
                .map(|&(d, g)| g * self.speaker.get(t.wrapping_sub(d)).copied().unwrap_or(0.0))
                .sum();
            self.noise = self
                .noise
                .wrapping_mul(1_664_525)
                .wrapping_add(1_013_904_223);
            let noise = ((self.noise >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * 0.0012;
            let v = f32::from(*m) / 32768.0 + echo + noise;
            *m = super::pcm::to_i16(v);
        }
        mic
    }
}
