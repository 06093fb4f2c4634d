//! A call's audio as raw PCM on the module's voice port, for modules whose own detector cannot
//! hear the Contact ID tones. SIMCom SIM7500/SIM7600: after the call is connected,
//! `AT+CPCMREG=1` streams the call over USB on the module's audio serial interface (usually the
//! fifth, `/dev/ttyUSB4`): 8 kHz, 16-bit little-endian, mono, one 20 ms frame of 320 bytes each
//! way per frame period, the module's clock setting the pace; `AT+CPCMREG=0` stops it, and must
//! come before the call is hung up.
//!
//! [`VoicePort`] runs the port on its own thread: every frame the module sends is searched for
//! the Contact ID handshake and kissoff (the unit's own detector, [`ContactIdDetector`]), and
//! each is answered with one frame of what the unit has to say, DTMF digits at DC-05's timing
//! (which `AT+VTS` cannot give: it counts tone lengths in tenths of a second), else silence.
//!
//! The same port carries speech: as a [`ModuleStream`], [`bridge`] takes the far end's frames
//! to the unit's echo-cancelled speakerphone and the speakerphone's microphone back into the
//! call, so a module wired by USB audio (no analog codec of its own) carries the operator's
//! call as a SIP call does.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

pub use crate::voice::call_port::{bridge, BridgeEnd, ModuleStream};
use crate::voice::tones::{dtmf_samples, ContactIdDetector, ContactIdTone};

/// Samples per frame: 20 ms at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// Bytes per frame: 16-bit samples.
pub const FRAME_BYTES: usize = FRAME_SAMPLES * 2;
/// The port's sample rate, Hz.
pub const RATE: u32 = 8000;
/// DC-05: each digit 50–60 ms, and as long a pause after it.
pub const DIGIT_MS: u32 = 55;
/// How long the port may stay silent (no frame from the module) before the call's audio is
/// taken as lost.
pub const STALL: Duration = Duration::from_millis(500);

/// Why the module's voice port cannot carry a call.
#[derive(Debug, thiserror::Error)]
pub enum VoicePortError {
    /// The installer named no voice port (`modem.voice_port`).
    #[error("no modem.voice_port configured")]
    NotConfigured,
    /// The port could not be opened.
    #[error("the module's voice port {path}: {source}")]
    Open {
        /// Device path.
        path: String,
        /// What the OS said.
        source: serialport::Error,
    },
    /// The thread that runs the port could not start.
    #[error("voice port thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The module refused to stream the call on the port (`AT+CPCMREG=1`).
    #[error("the module would not stream the call (AT+CPCMREG=1): {0}")]
    NotStreamed(#[source] crate::modem::ModemError),
}

/// What the voice port heard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortEvent {
    /// A Contact ID tone, judged by the unit's detector (a kissoff is timed: 750–1000 ms).
    Tone(ContactIdTone),
    /// The module stopped sending frames, or the port failed.
    Lost(String),
}

/// The most of the far end's audio kept for the speakerphone, in samples (100 ms): the module
/// and the unit's frame clocks drift apart, and older audio is dropped rather than let the
/// call fall behind.
const HEARD_MAX: usize = FRAME_SAMPLES * 5;
/// The most of the unit's own audio queued for the far end (100 ms), for the same reason.
const SAID_MAX: usize = FRAME_SAMPLES * 5;

/// An open voice port. Dropping it stops the thread (the `AT+CPCMREG=0` is the caller's).
pub struct VoicePort {
    events: mpsc::UnboundedReceiver<PortEvent>,
    /// Samples waiting to go to the far end.
    out: Arc<Mutex<VecDeque<i16>>>,
    /// The far end's audio not yet taken by [`VoicePort::take_frame`].
    heard: Arc<Mutex<VecDeque<i16>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl VoicePort {
    /// Opens the port at `path` and starts listening. The module streams only after
    /// `AT+CPCMREG=1`; frames read before that are none.
    pub fn open(path: &str) -> Result<VoicePort, VoicePortError> {
        let port = serialport::new(path, 115_200)
            .timeout(Duration::from_millis(40))
            .open_native()
            .map_err(|source| VoicePortError::Open {
                path: path.to_string(),
                source,
            })?;
        // Audio left over from an earlier call is not this call's.
        let _ = serialport::SerialPort::clear(&port, serialport::ClearBuffer::Input);
        let (tx, events) = mpsc::unbounded_channel();
        let out = Arc::new(Mutex::new(VecDeque::new()));
        let heard = Arc::new(Mutex::new(VecDeque::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("voice-port".into())
            .spawn({
                let (out, heard, stop, path) = (
                    Arc::clone(&out),
                    Arc::clone(&heard),
                    Arc::clone(&stop),
                    path.to_string(),
                );
                move || run(port, &path, &tx, &out, &heard, &stop)
            })
            .map_err(VoicePortError::Thread)?;
        Ok(VoicePort {
            events,
            out,
            heard,
            stop,
            thread: Some(thread),
        })
    }

    /// Queues `keys` as DTMF at DC-05's timing (55 ms tone, 55 ms pause each). False if a key
    /// is not a DTMF key.
    pub fn send_digits(&self, keys: &str) -> bool {
        let Some(samples) = dtmf_samples(keys, RATE, DIGIT_MS, DIGIT_MS) else {
            return false;
        };
        let mut out = crate::sync::lock(&self.out);
        out.extend(samples.iter().map(|&s| crate::voice::pcm::to_i16(s)));
        true
    }

    /// Whether everything queued has gone to the module.
    pub fn sent(&self) -> bool {
        crate::sync::lock(&self.out).is_empty()
    }

    /// Waits until everything queued has gone, at most `limit`. False if it had not.
    pub async fn flush(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.sent() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// One frame of the far end's audio, if one has come.
    pub fn take_frame(&self) -> Option<[i16; FRAME_SAMPLES]> {
        let mut heard = crate::sync::lock(&self.heard);
        if heard.len() < FRAME_SAMPLES {
            return None;
        }
        let mut frame = [0i16; FRAME_SAMPLES];
        for (s, h) in frame.iter_mut().zip(heard.drain(..FRAME_SAMPLES)) {
            *s = h;
        }
        Some(frame)
    }

    /// Queues one frame of the unit's audio for the far end.
    pub fn say_frame(&self, frame: &[i16; FRAME_SAMPLES]) {
        let mut out = crate::sync::lock(&self.out);
        crate::voice::pcm::push_bounded(&mut out, frame.iter().copied(), SAID_MAX);
    }

    /// The next thing heard (the caller bounds the wait).
    pub async fn next(&mut self) -> PortEvent {
        self.events
            .recv()
            .await
            .unwrap_or_else(|| PortEvent::Lost("the voice port stopped".into()))
    }
}

impl Drop for VoicePort {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // The thread wakes within one read timeout.
            let _ = t.join();
        }
    }
}

/// The port's loop: frames in, tones out, one frame back per frame received.
fn run(
    mut port: serialport::TTYPort,
    path: &str,
    tx: &mpsc::UnboundedSender<PortEvent>,
    out: &Mutex<VecDeque<i16>>,
    heard: &Mutex<VecDeque<i16>>,
    stop: &AtomicBool,
) {
    let mut detector = ContactIdDetector::new(RATE);
    let mut pending: Vec<u8> = Vec::with_capacity(FRAME_BYTES * 4);
    let mut buf = [0u8; FRAME_BYTES * 4];
    let mut samples = [0f32; FRAME_SAMPLES];
    let mut streaming = false;
    let mut quiet_since = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match port.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => pending.extend_from_slice(buf.get(..n).unwrap_or(&[])),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => {
                let _ = tx.send(PortEvent::Lost(format!(
                    "the module's voice port {path}: {e}"
                )));
                return;
            }
        }
        let frames = pending.len() / FRAME_BYTES;
        if frames == 0 {
            // Once the module has streamed, a stall means the call's audio is gone.
            if streaming && quiet_since.elapsed() > STALL {
                let _ = tx.send(PortEvent::Lost(format!(
                    "the module's voice port {path} stopped sending audio"
                )));
                streaming = false;
            }
            continue;
        }
        streaming = true;
        quiet_since = std::time::Instant::now();
        let mut reply = Vec::with_capacity(frames * FRAME_BYTES);
        for frame in pending.chunks_exact(FRAME_BYTES) {
            for (s, b) in samples.iter_mut().zip(frame.chunks_exact(2)) {
                *s = f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0;
            }
            detector.push(&samples, |t| {
                let _ = tx.send(PortEvent::Tone(t.tone));
            });
            crate::voice::pcm::push_bounded(
                &mut crate::sync::lock(heard),
                frame
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]])),
                HEARD_MAX,
            );
            let mut o = crate::sync::lock(out);
            for _ in 0..FRAME_SAMPLES {
                let s = o.pop_front().unwrap_or(0);
                reply.extend_from_slice(&s.to_le_bytes());
            }
        }
        pending.drain(..frames * FRAME_BYTES);
        if let Err(e) = port.write_all(&reply) {
            let _ = tx.send(PortEvent::Lost(format!(
                "the module's voice port {path}: {e}"
            )));
            return;
        }
    }
}

impl crate::voice::call_port::ModuleStream for VoicePort {
    fn take_frame(&mut self) -> Option<[i16; FRAME_SAMPLES]> {
        VoicePort::take_frame(self)
    }

    fn say_frame(&mut self, frame: &[i16; FRAME_SAMPLES]) {
        VoicePort::say_frame(self, frame);
    }

    fn lost(&mut self) -> Option<String> {
        // Tones heard meanwhile are not for speech: they are dropped here.
        loop {
            match self.events.try_recv() {
                Ok(PortEvent::Lost(why)) => return Some(why),
                Ok(PortEvent::Tone(_)) => {}
                Err(mpsc::error::TryRecvError::Empty) => return None,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    return Some("the voice port stopped".into())
                }
            }
        }
    }
}
