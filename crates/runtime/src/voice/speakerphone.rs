//! The base unit as a speakerphone in a voice call: the far end's speech on the loudspeaker,
//! the microphone to the far end, and between the two the echo canceller, because the
//! loudspeaker is a few centimetres from the microphone and without it the operator hears
//! themselves.
//!
//! - [`EchoCancelled`] wraps any call port: what it plays is the canceller's reference, and
//!   what its microphone hears goes through speexdsp ([`super::echo`]) before the far end.
//! - `DevicePort` (feature `alsa`): the unit's loudspeaker and microphone through cpal, one
//!   playback and one capture stream at the call's 8 kHz.
//!
//! Every call the unit takes or makes uses both, so the path that carries the person's voice
//! is the one that is tested: the simulated backend puts a simulated room between its
//! loudspeaker and microphone (`sim_call::SimRoom`, feature `sim`) and the same canceller
//! removes it.

use tracing::warn;

use super::call_port::{CallAudioPort, FRAME};
use super::echo::EchoCanceller;

/// A call port whose microphone has the echo of its own loudspeaker removed and the room's
/// noise suppressed. Without speexdsp the call still goes through, uncancelled, and the log
/// says why (a call without echo cancellation is better than none).
pub struct EchoCancelled {
    inner: Box<dyn CallAudioPort>,
    canceller: Option<EchoCanceller>,
    /// The frame the loudspeaker was given last: the canceller's reference.
    reference: [i16; FRAME],
}

impl EchoCancelled {
    /// Wraps `inner`, loading the canceller.
    pub fn new(inner: Box<dyn CallAudioPort>) -> EchoCancelled {
        let canceller = match EchoCanceller::open() {
            Ok(c) => Some(c),
            Err(why) => {
                warn!(%why, "call without echo cancellation: the far end may hear itself");
                None
            }
        };
        EchoCancelled {
            inner,
            canceller,
            reference: [0; FRAME],
        }
    }

    /// Whether the echo is being cancelled.
    pub fn cancelling(&self) -> bool {
        self.canceller.is_some()
    }
}

impl CallAudioPort for EchoCancelled {
    fn play(&mut self, frame: &[i16; FRAME]) {
        self.reference = *frame;
        self.inner.play(frame);
    }

    fn capture(&mut self) -> [i16; FRAME] {
        let mic = self.inner.capture();
        match &mut self.canceller {
            Some(c) => c.process(&mic, &self.reference),
            None => mic,
        }
    }
}

/// Whether the unit is speaking a prompt on its loudspeaker right now.
pub type Speaking = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

/// A call port whose loudspeaker audio is held while the unit speaks a prompt: an alarm's
/// prompt ("help is coming", "do you need help?") is heard over a call, not mixed under the
/// operator's voice, and the call resumes when it ends. The microphone stays open, so the
/// operator hears the prompt as the person does, and the person's answer.
pub struct HeldForPrompts {
    inner: Box<dyn CallAudioPort>,
    speaking: Speaking,
    held: bool,
}

impl HeldForPrompts {
    /// Wraps `inner`; `speaking` says when a prompt plays.
    pub fn new(inner: Box<dyn CallAudioPort>, speaking: Speaking) -> HeldForPrompts {
        HeldForPrompts {
            inner,
            speaking,
            held: false,
        }
    }
}

impl CallAudioPort for HeldForPrompts {
    fn play(&mut self, frame: &[i16; FRAME]) {
        let held = (self.speaking)();
        if held != self.held {
            if held {
                tracing::info!("call audio held while a prompt plays");
            } else {
                tracing::info!("call audio resumed after the prompt");
            }
            self.held = held;
        }
        if held {
            self.inner.play(&[0; FRAME]);
        } else {
            self.inner.play(frame);
        }
    }

    fn capture(&mut self) -> [i16; FRAME] {
        self.inner.capture()
    }
}

#[cfg(feature = "alsa")]
pub use device_port::DevicePort;

#[cfg(feature = "alsa")]
mod device_port {
    use std::collections::VecDeque;
    use std::sync::{mpsc, Arc, Mutex, MutexGuard};
    use std::time::Duration;

    use super::super::call_port::{AudioDeviceError, CallAudioPort, FRAME, RATE};
    use super::super::device;
    use super::super::pcm::to_i16;
    use super::super::VoiceError;

    /// The most audio either direction holds, 60 ms: a device whose clock runs a little
    /// faster or slower than the call's drops or pads a few samples instead of drifting into
    /// delay the operator would hear.
    const MAX_BUFFERED: usize = 3 * FRAME;
    /// How long the devices may take to start streaming.
    const OPEN_WITHIN: Duration = Duration::from_secs(3);

    #[derive(Default)]
    struct Rings {
        to_speaker: VecDeque<f32>,
        from_mic: VecDeque<f32>,
    }

    fn bounded(queue: &mut VecDeque<f32>, samples: impl IntoIterator<Item = f32>) {
        device::push_bounded(queue, samples, MAX_BUFFERED);
    }

    /// The unit's loudspeaker and microphone for one call. The streams live on a thread of
    /// their own (cpal streams may not move between threads); dropping the port ends them.
    pub struct DevicePort {
        rings: Arc<Mutex<Rings>>,
        _stop: mpsc::Sender<()>,
    }

    impl DevicePort {
        /// Opens `output` and `input` (configured names, or the system's defaults) at 8 kHz.
        pub fn open(
            output: Option<String>,
            input: Option<String>,
        ) -> Result<DevicePort, AudioDeviceError> {
            let rings = Arc::new(Mutex::new(Rings::default()));
            let (ready_tx, ready) = mpsc::channel::<Result<(), VoiceError>>();
            let (stop, stopped) = mpsc::channel::<()>();
            let shared = Arc::clone(&rings);
            std::thread::Builder::new()
                .name("speakerphone".into())
                .spawn(move || {
                    let streams = open_streams(output.as_deref(), input.as_deref(), &shared);
                    match streams {
                        Ok(streams) => {
                            let _ = ready_tx.send(Ok(()));
                            // Until the port is dropped.
                            let _ = stopped.recv();
                            drop(streams);
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })
                .map_err(AudioDeviceError::Thread)?;
            match ready.recv_timeout(OPEN_WITHIN) {
                Ok(Ok(())) => Ok(DevicePort { rings, _stop: stop }),
                Ok(Err(e)) => Err(AudioDeviceError::Device(e)),
                Err(_) => Err(AudioDeviceError::Timeout(OPEN_WITHIN)),
            }
        }

        /// Samples waiting for the loudspeaker, and heard by the microphone but not yet taken:
        /// both stay under 60 ms while the streams run.
        pub fn buffered(&self) -> (usize, usize) {
            let g = self.rings();
            (g.to_speaker.len(), g.from_mic.len())
        }

        fn rings(&self) -> MutexGuard<'_, Rings> {
            crate::sync::lock(&self.rings)
        }
    }

    fn open_streams(
        output: Option<&str>,
        input: Option<&str>,
        rings: &Arc<Mutex<Rings>>,
    ) -> Result<Vec<cpal::Stream>, VoiceError> {
        let speaker = Arc::clone(rings);
        let out = device::output_stream(output, RATE, move |out| {
            let mut g = crate::sync::lock(&speaker);
            for o in out.iter_mut() {
                *o = g.to_speaker.pop_front().unwrap_or(0.0);
            }
        })?;
        let mic = Arc::clone(rings);
        let inp = device::input_stream(input, RATE, move |samples| {
            let mut g = crate::sync::lock(&mic);
            bounded(&mut g.from_mic, samples.iter().copied());
        })?;
        Ok(vec![out, inp])
    }

    impl CallAudioPort for DevicePort {
        fn play(&mut self, frame: &[i16; FRAME]) {
            let mut g = self.rings();
            bounded(
                &mut g.to_speaker,
                frame.iter().map(|&s| f32::from(s) / 32768.0),
            );
        }

        fn capture(&mut self) -> [i16; FRAME] {
            let mut g = self.rings();
            let mut frame = [0i16; FRAME];
            for s in &mut frame {
                match g.from_mic.pop_front() {
                    Some(v) => *s = to_i16(v),
                    None => break,
                }
            }
            frame
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hears exactly what it was last given, as a speakerphone with no room between would.
    struct Loopback([i16; FRAME]);

    impl CallAudioPort for Loopback {
        fn play(&mut self, frame: &[i16; FRAME]) {
            self.0 = *frame;
        }
        fn capture(&mut self) -> [i16; FRAME] {
            self.0
        }
    }

    #[test]
    fn a_prompt_holds_the_call_on_the_loudspeaker_and_the_call_resumes_after_it() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let prompt = Arc::new(AtomicBool::new(false));
        let probe = Arc::clone(&prompt);
        let mut port = HeldForPrompts::new(
            Box::new(Loopback([0; FRAME])),
            Arc::new(move || probe.load(Ordering::SeqCst)),
        );
        port.play(&[5; FRAME]);
        assert_eq!(port.capture(), [5; FRAME], "the operator is heard");
        prompt.store(true, Ordering::SeqCst);
        port.play(&[6; FRAME]);
        assert_eq!(
            port.capture(),
            [0; FRAME],
            "the operator is held during the prompt"
        );
        prompt.store(false, Ordering::SeqCst);
        port.play(&[7; FRAME]);
        assert_eq!(
            port.capture(),
            [7; FRAME],
            "the call resumes after the prompt"
        );
    }

    #[test]
    fn without_the_library_the_call_still_carries_the_microphone() {
        let mut port = EchoCancelled {
            inner: Box::new(Loopback([7; FRAME])),
            canceller: None,
            reference: [0; FRAME],
        };
        assert!(!port.cancelling());
        assert_eq!(port.capture(), [7; FRAME]);
        port.play(&[3; FRAME]);
        assert_eq!(port.reference, [3; FRAME]);
        assert_eq!(port.capture(), [3; FRAME]);
    }
}
