//! Call audio for cellular modules that expose the call as PCM (a USB audio function, or a
//! PCM/I2S port behind an ALSA codec): the far end goes to the unit's speaker, the unit's
//! microphone goes to the far end, the unit can speak prompts into the call (the announcement
//! to a person on a voice route), and the received audio is searched for DTMF digits and the
//! Contact ID handshake and kissoff where the modem cannot report them.
//!
//! [`CallAudio`] is the sans-IO part (mixing and detection, tested here); with the `alsa`
//! feature, `CallBridge` runs it on the module's sound card (capture and playback), and the
//! call's speech crosses to the unit's echo-cancelled speakerphone through
//! [`super::call_port::bridge`], as every call's does.

use std::collections::VecDeque;

use super::catalogue::PromptSet;
use super::tones::{ContactIdDetector, ContactIdTone, DtmfDetector};
use crate::core::Prompt;

/// How much the microphone is lowered while a prompt is spoken into the call (−20 dB).
pub const DUCK_GAIN: f32 = 0.1;

/// A tone heard in the received call audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallTone {
    /// A DTMF key (`0`–`9`, `*`, `#`, `A`–`D`).
    Digit(char),
    /// A Contact ID receiver tone.
    ContactId(ContactIdTone),
}

/// Mixing and tone detection for one call, at the call's sample rate.
pub struct CallAudio {
    prompts: PromptSet,
    dtmf: DtmfDetector,
    contact_id: ContactIdDetector,
    announcement: VecDeque<f32>,
    tones: Vec<CallTone>,
}

impl CallAudio {
    /// Call audio at the rate of `prompts` (load them at the call device's rate).
    pub fn new(prompts: PromptSet) -> CallAudio {
        let rate = prompts.rate();
        CallAudio {
            prompts,
            dtmf: DtmfDetector::new(rate),
            contact_id: ContactIdDetector::new(rate),
            announcement: VecDeque::new(),
            tones: Vec::new(),
        }
    }

    /// The call's sample rate.
    pub fn rate(&self) -> u32 {
        self.prompts.rate()
    }

    /// Speaks `prompt` into the call after anything already being spoken.
    pub fn announce(&mut self, prompt: Prompt) {
        if let Some(audio) = self.prompts.get(prompt) {
            self.announcement.extend(audio.samples.iter().copied());
        }
    }

    /// Whether a prompt is being spoken into the call.
    pub fn is_announcing(&self) -> bool {
        !self.announcement.is_empty()
    }

    /// Audio received from the far end: searched for tones.
    pub fn received(&mut self, samples: &[f32]) {
        let tones = &mut self.tones;
        self.dtmf
            .push(samples, |d| tones.push(CallTone::Digit(d.key)));
        self.contact_id
            .push(samples, |t| tones.push(CallTone::ContactId(t.tone)));
    }

    /// Fills `out` (to the far end) from the microphone, with any prompt mixed over it.
    pub fn send(&mut self, mic: &[f32], out: &mut [f32]) {
        for (i, o) in out.iter_mut().enumerate() {
            let m = mic.get(i).copied().unwrap_or(0.0);
            *o = match self.announcement.pop_front() {
                Some(p) => (p + m * DUCK_GAIN).clamp(-1.0, 1.0),
                None => m,
            };
        }
    }

    /// Tones heard since the last call.
    pub fn take_tones(&mut self) -> Vec<CallTone> {
        std::mem::take(&mut self.tones)
    }
}

#[cfg(feature = "alsa")]
pub use real::{CallBridge, STALL};

#[cfg(feature = "alsa")]
mod real {
    use std::collections::VecDeque;
    use std::sync::{mpsc, Arc, Mutex, MutexGuard};
    use std::time::{Duration, Instant};

    use super::{CallAudio, CallTone};
    use crate::core::Prompt;
    use crate::sync::lock;
    use crate::voice::call_port::{ModuleStream, FRAME, RATE};
    use crate::voice::device;
    use crate::voice::pcm::to_i16;
    use crate::voice::VoiceError;

    /// The most audio either direction holds, 100 ms: the card's clock and the unit's frame
    /// clock drift apart, and older audio is dropped rather than let the call fall behind.
    const MAX_BUFFERED: usize = 5 * FRAME;
    /// How long the card may send nothing before the call's audio is taken as lost (a module
    /// that rebooted leaves the USB bus, and its card with it).
    pub const STALL: Duration = Duration::from_millis(500);
    /// How long the card's streams may take to open.
    const OPEN_WITHIN: Duration = Duration::from_secs(3);

    struct Shared {
        audio: CallAudio,
        /// The far end's audio, for the unit.
        from_module: VecDeque<f32>,
        /// The unit's audio, with any prompt mixed in, for the far end.
        to_module: VecDeque<f32>,
        /// When the card last delivered audio.
        heard_at: Instant,
    }

    /// The module's sound card (a USB audio class function, such as Quectel's after
    /// `AT+QPCMV=1,2`) for one call, around a [`CallAudio`]: capture is the far end, searched
    /// for tones; playback is what the unit says, with any prompt mixed over it. Both streams
    /// run at the call's 8 kHz (ALSA's plug layer converts for a card at another rate) on a
    /// thread of their own (cpal streams may not move between threads); dropping the bridge
    /// ends them. As a [`ModuleStream`] it carries the call through the speakerphone.
    pub struct CallBridge {
        shared: Arc<Mutex<Shared>>,
        name: String,
        _stop: mpsc::Sender<()>,
    }

    fn bounded(queue: &mut VecDeque<f32>, samples: impl IntoIterator<Item = f32>) {
        device::push_bounded(queue, samples, MAX_BUFFERED);
    }

    impl CallBridge {
        /// Opens `call_device` (capture and playback) at 8 kHz around `audio`, whose prompts
        /// must be at that rate.
        pub fn open(call_device: &str, audio: CallAudio) -> Result<CallBridge, VoiceError> {
            if audio.rate() != RATE {
                return Err(VoiceError::Device {
                    direction: "output",
                    name: call_device.to_string(),
                    reason: format!(
                        "the call runs at {RATE} Hz, its prompts were loaded at {} Hz",
                        audio.rate()
                    ),
                });
            }
            let shared = Arc::new(Mutex::new(Shared {
                audio,
                from_module: VecDeque::new(),
                to_module: VecDeque::new(),
                heard_at: Instant::now(),
            }));
            let (ready_tx, ready) = mpsc::channel::<Result<(), VoiceError>>();
            let (stop, stopped) = mpsc::channel::<()>();
            let (name, streams_shared) = (call_device.to_string(), Arc::clone(&shared));
            std::thread::Builder::new()
                .name("call-device".into())
                .spawn(move || match open_streams(&name, &streams_shared) {
                    Ok(streams) => {
                        let _ = ready_tx.send(Ok(()));
                        // Until the bridge is dropped.
                        let _ = stopped.recv();
                        drop(streams);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                })
                .map_err(|e| VoiceError::Device {
                    direction: "input",
                    name: call_device.to_string(),
                    reason: format!("its thread could not start: {e}"),
                })?;
            match ready.recv_timeout(OPEN_WITHIN) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(VoiceError::Device {
                        direction: "input",
                        name: call_device.to_string(),
                        reason: format!("did not open within {} s", OPEN_WITHIN.as_secs()),
                    })
                }
            }
            lock(&shared).heard_at = Instant::now();
            Ok(CallBridge {
                shared,
                name: call_device.to_string(),
                _stop: stop,
            })
        }

        /// Speaks a prompt into the call.
        pub fn announce(&self, prompt: Prompt) {
            self.guard().audio.announce(prompt);
        }

        /// Whether a prompt is still being spoken into the call.
        pub fn is_announcing(&self) -> bool {
            self.guard().audio.is_announcing()
        }

        /// Tones heard in the call since the last call.
        pub fn take_tones(&self) -> Vec<CallTone> {
            self.guard().audio.take_tones()
        }

        /// Samples of the far end not yet taken, and of the unit's not yet played to the card:
        /// both stay under 100 ms while the streams run.
        pub fn buffered(&self) -> (usize, usize) {
            let g = self.guard();
            (g.from_module.len(), g.to_module.len())
        }

        fn guard(&self) -> MutexGuard<'_, Shared> {
            lock(&self.shared)
        }
    }

    fn open_streams(
        name: &str,
        shared: &Arc<Mutex<Shared>>,
    ) -> Result<Vec<cpal::Stream>, VoiceError> {
        let s = Arc::clone(shared);
        let capture = device::input_stream(Some(name), RATE, move |samples| {
            let mut g = lock(&s);
            g.audio.received(samples);
            bounded(&mut g.from_module, samples.iter().copied());
            g.heard_at = Instant::now();
        })?;
        let s = Arc::clone(shared);
        let playback = device::output_stream(Some(name), RATE, move |out| {
            let mut g = lock(&s);
            for o in out.iter_mut() {
                *o = g.to_module.pop_front().unwrap_or(0.0);
            }
        })?;
        Ok(vec![capture, playback])
    }

    impl ModuleStream for CallBridge {
        fn take_frame(&mut self) -> Option<[i16; FRAME]> {
            let mut g = self.guard();
            if g.from_module.len() < FRAME {
                return None;
            }
            let mut frame = [0i16; FRAME];
            for (s, v) in frame.iter_mut().zip(g.from_module.drain(..FRAME)) {
                *s = to_i16(v);
            }
            Some(frame)
        }

        fn say_frame(&mut self, frame: &[i16; FRAME]) {
            let mic: Vec<f32> = frame.iter().map(|&s| f32::from(s) / 32768.0).collect();
            let mut out = [0f32; FRAME];
            let mut g = self.guard();
            g.audio.send(&mic, &mut out);
            bounded(&mut g.to_module, out);
        }

        fn lost(&mut self) -> Option<String> {
            let quiet = self.guard().heard_at.elapsed();
            (quiet > STALL).then(|| {
                format!(
                    "the module's sound card {} sent nothing for {} ms",
                    self.name,
                    quiet.as_millis()
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freqs: &[f32], rate: u32, ms: u32) -> Vec<f32> {
        (0..(rate * ms / 1000) as usize)
            .map(|i| {
                freqs
                    .iter()
                    .map(|f| 0.2 * (std::f32::consts::TAU * f * i as f32 / rate as f32).sin())
                    .sum()
            })
            .collect()
    }

    #[test]
    fn received_audio_yields_digits_and_kissoff() {
        let mut call = CallAudio::new(PromptSet::tones(8000));
        let mut audio = tone(&[852.0, 1477.0], 8000, 60);
        audio.extend(vec![0.0; 480]);
        audio.extend(tone(&[1400.0], 8000, 800));
        audio.extend(vec![0.0; 800]);
        for chunk in audio.chunks(160) {
            call.received(chunk);
        }
        assert_eq!(
            call.take_tones(),
            [
                CallTone::Digit('9'),
                CallTone::ContactId(ContactIdTone::Kissoff)
            ]
        );
        assert!(call.take_tones().is_empty());
    }

    #[test]
    fn a_prompt_spoken_into_the_call_ducks_the_microphone() {
        let mut call = CallAudio::new(PromptSet::tones(8000));
        let mic = vec![0.5; 160];
        let mut out = vec![0.0; 160];
        call.send(&mic, &mut out);
        assert_eq!(out, mic);
        call.announce(Prompt::HelpComing);
        assert!(call.is_announcing());
        let mut sent = Vec::new();
        while call.is_announcing() {
            call.send(&mic, &mut out);
            sent.extend_from_slice(&out);
        }
        // The first samples of the tone pattern fade in from zero: only the ducked mic is there.
        assert!((sent[0] - 0.5 * DUCK_GAIN).abs() < 1e-3);
        let expected = PromptSet::tones(8000)
            .get(Prompt::HelpComing)
            .unwrap()
            .samples
            .len();
        assert!(sent.len() >= expected && sent.len() < expected + 160);
        call.send(&mic, &mut out);
        assert_eq!(out, mic);
    }
}
