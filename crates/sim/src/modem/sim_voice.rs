//! The simulated SIM7600's voice over USB (`AT+CPCMREG`): the call's audio as raw PCM on a
//! second pseudo-terminal, as the module's audio serial interface carries it. 8 kHz, 16-bit
//! little-endian, mono; the module sends one 20 ms frame (320 bytes) per frame period while
//! streaming, paced by its own clock, and plays what the host sends into the call.
//!
//! The far end's audio (the tones a Contact ID receiver puts on the line) plays out in line
//! time whether or not the host listens: audio that nobody streamed is gone, as on a real call.
//! What the host sends is heard by the far end through a DTMF decoder, as a receiver hears it.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::ModemError;
use crate::voice::tones::{sine, DtmfDetector};

/// Samples per 20 ms frame at 8 kHz.
const FRAME_SAMPLES: usize = 160;
/// One frame period.
const FRAME: Duration = Duration::from_millis(20);
/// The level of the far end's tones on the line (−10 dBFS peak).
const TONE_LEVEL: f32 = 0.3;

#[derive(Default)]
struct Line {
    /// `AT+CPCMREG=1`, and a call to stream.
    streaming: bool,
    /// The far end's audio still to play, in line time.
    far: VecDeque<i16>,
    /// What the host sent while streaming, as the far end heard it (at most [`TAPE`] samples).
    heard: Vec<i16>,
    /// The far end is an echo line: what the host sends comes back after [`ECHO_DELAY`].
    echo: bool,
}

/// The network's delay on an echo line's round trip: 120 ms of line time.
const ECHO_DELAY: usize = 8000 * 120 / 1000;

/// The longest recording of what the host sent: two minutes.
const TAPE: usize = 8000 * 120;

/// What the far end heard from the host on the voice port, readable while the module runs.
#[derive(Clone)]
pub struct AudioTap(Arc<Mutex<Line>>);

impl AudioTap {
    /// The far end speaks: `samples` (8 kHz) go on the line after what is already queued,
    /// played out in line time.
    pub fn say(&self, samples: &[i16]) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .far
            .extend(samples.iter().copied());
    }

    /// Everything the host sent into calls so far, 8 kHz samples.
    pub fn heard(&self) -> Vec<i16> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .heard
            .clone()
    }
}

/// The module's audio serial interface. Dropping it stops its thread.
pub(super) struct AudioFunction {
    path: String,
    line: Arc<Mutex<Line>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AudioFunction {
    /// Opens the pty and starts the frame clock; digits the host plays into the call go to
    /// `heard`.
    pub(super) fn spawn(heard: mpsc::UnboundedSender<char>) -> Result<AudioFunction, ModemError> {
        use serialport::SerialPort;
        let (mut master, slave) =
            serialport::TTYPort::pair().map_err(|source| ModemError::Port {
                port: "pty".into(),
                source,
            })?;
        let _ = master.set_timeout(Duration::ZERO);
        let path = slave
            .name()
            .ok_or_else(|| ModemError::Sim("pty has no name".into()))?;
        let line = Arc::new(Mutex::new(Line::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("sim-voice-port".into())
            .spawn({
                let (line, stop) = (Arc::clone(&line), Arc::clone(&stop));
                // The slave side stays open with the thread, so the master never reads EIO
                // between the host's opens.
                move || clock(master, &slave, &line, &stop, &heard)
            })
            .map_err(|e| ModemError::Sim(format!("voice port thread: {e}")))?;
        Ok(AudioFunction {
            path,
            line,
            stop,
            thread: Some(thread),
        })
    }

    /// The serial device the host opens.
    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// Starts or stops streaming the call to the host.
    pub(super) fn set_streaming(&self, on: bool) {
        self.lock().streaming = on;
    }

    /// The far end puts `hz` for `ms` on the line.
    pub(super) fn far_tone(&self, hz: u16, ms: u32) {
        let samples = sine(f32::from(hz), 8000, ms, TONE_LEVEL);
        self.lock()
            .far
            .extend(samples.into_iter().map(crate::voice::pcm::to_i16));
    }

    /// A handle on the same recording, for the module's owner.
    pub(super) fn tap(&self) -> AudioTap {
        AudioTap(Arc::clone(&self.line))
    }

    /// The call ended: nothing more comes from the far end.
    pub(super) fn call_ended(&self) {
        let mut l = self.lock();
        l.far.clear();
        l.echo = false;
    }

    /// The far end is an echo line from now on, with the network's delay before the first
    /// sample comes back.
    pub(super) fn echo(&self) {
        let mut l = self.lock();
        l.echo = true;
        l.far.extend(std::iter::repeat_n(0, ECHO_DELAY));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Line> {
        self.line.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for AudioFunction {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One frame each period: the far end's audio out (to the host when streaming), the host's
/// audio in and through the DTMF decoder.
fn clock(
    mut port: serialport::TTYPort,
    _slave: &serialport::TTYPort,
    line: &Mutex<Line>,
    stop: &AtomicBool,
    heard: &mpsc::UnboundedSender<char>,
) {
    let mut decoder = DtmfDetector::new(8000);
    let mut inbound: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut pcm: Vec<i16> = Vec::with_capacity(FRAME_SAMPLES * 4);
    let mut samples = Vec::with_capacity(FRAME_SAMPLES * 4);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        next += FRAME;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let (streaming, frame) = {
            let mut l = line.lock().unwrap_or_else(PoisonError::into_inner);
            let mut frame = [0u8; FRAME_SAMPLES * 2];
            for pair in frame.chunks_exact_mut(2) {
                let s = l.far.pop_front().unwrap_or(0);
                pair.copy_from_slice(&s.to_le_bytes());
            }
            (l.streaming, frame)
        };
        // Whatever the host wrote since the last frame.
        loop {
            match port.read(&mut buf) {
                Ok(n) if n > 0 => inbound.extend_from_slice(buf.get(..n).unwrap_or(&[])),
                _ => break,
            }
        }
        if !streaming {
            inbound.clear();
            decoder = DtmfDetector::new(8000);
            continue;
        }
        if port.write_all(&frame).is_err() {
            // Nobody has the port open: the frame is lost, as on USB with no reader.
            continue;
        }
        let whole = inbound.len() / 2 * 2;
        pcm.clear();
        pcm.extend(
            inbound[..whole]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        );
        inbound.drain(..whole);
        {
            let mut l = line.lock().unwrap_or_else(PoisonError::into_inner);
            let room = TAPE.saturating_sub(l.heard.len());
            l.heard.extend(pcm.iter().take(room));
            if l.echo {
                l.far.extend(pcm.iter().copied());
            }
        }
        samples.clear();
        samples.extend(pcm.iter().map(|&s| f32::from(s) / 32768.0));
        decoder.push(&samples, |d| {
            let _ = heard.send(d.key);
        });
    }
}
