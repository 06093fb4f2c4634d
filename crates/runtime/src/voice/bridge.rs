//! Call audio for cellular modules that expose the call as PCM (a USB audio function, or a
//! PCM/I2S port behind an ALSA codec): the far end goes to the unit's speaker, the unit's
//! microphone goes to the far end, the unit can speak prompts into the call (the announcement
//! to a person on a voice route), and the received audio is searched for DTMF digits and the
//! Contact ID handshake and kissoff where the modem cannot report them.
//!
//! [`CallAudio`] is the sans-IO part (mixing and detection, tested here); with the `alsa`
//! feature, `CallBridge` runs it between four cpal streams.

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
pub use real::CallBridge;

#[cfg(feature = "alsa")]
mod real {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use tracing::warn;

    use super::{CallAudio, CallTone};
    use crate::core::Prompt;
    use crate::voice::device;
    use crate::voice::VoiceError;

    /// Most samples buffered between two streams (250 ms at 16 kHz); older ones are dropped so
    /// delay never builds up in a call.
    const MAX_BUFFERED: usize = 4000;

    struct Shared {
        audio: CallAudio,
        to_speaker: VecDeque<f32>,
        to_modem: VecDeque<f32>,
    }

    /// Four cpal streams around a [`CallAudio`]: modem capture → speaker, microphone → modem
    /// playback. Every stream runs at the call device's rate (ALSA's plug layer converts the
    /// local devices). Dropping the bridge ends it.
    pub struct CallBridge {
        shared: Arc<Mutex<Shared>>,
        _streams: Vec<cpal::Stream>,
    }

    fn push_bounded(queue: &mut VecDeque<f32>, samples: &[f32]) {
        device::push_bounded(queue, samples.iter().copied(), MAX_BUFFERED);
    }

    impl CallBridge {
        /// Opens the modem's PCM device `call_device` (capture and playback) and the local
        /// speaker and microphone (configured names or defaults), at the rate of `audio`.
        pub fn open(
            call_device: &str,
            local_output: Option<&str>,
            local_input: Option<&str>,
            audio: CallAudio,
        ) -> Result<CallBridge, VoiceError> {
            let rate = audio.rate();
            let shared = Arc::new(Mutex::new(Shared {
                audio,
                to_speaker: VecDeque::new(),
                to_modem: VecDeque::new(),
            }));
            let mut streams = Vec::new();

            let s = shared.clone();
            streams.push(device::input_stream(
                Some(call_device),
                rate,
                move |samples| {
                    let mut g = s.lock().unwrap_or_else(|p| p.into_inner());
                    g.audio.received(samples);
                    push_bounded(&mut g.to_speaker, samples);
                },
            )?);
            let s = shared.clone();
            streams.push(device::output_stream(local_output, rate, move |out| {
                let mut g = s.lock().unwrap_or_else(|p| p.into_inner());
                for o in out.iter_mut() {
                    *o = g.to_speaker.pop_front().unwrap_or(0.0);
                }
            })?);
            let s = shared.clone();
            streams.push(device::input_stream(local_input, rate, move |mic| {
                let mut g = s.lock().unwrap_or_else(|p| p.into_inner());
                let mut out = vec![0.0; mic.len()];
                g.audio.send(mic, &mut out);
                push_bounded(&mut g.to_modem, &out);
            })?);
            let s = shared.clone();
            streams.push(device::output_stream(
                Some(call_device),
                rate,
                move |out| {
                    let mut g = s.lock().unwrap_or_else(|p| p.into_inner());
                    for o in out.iter_mut() {
                        *o = g.to_modem.pop_front().unwrap_or(0.0);
                    }
                },
            )?);
            Ok(CallBridge {
                shared,
                _streams: streams,
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

        fn guard(&self) -> std::sync::MutexGuard<'_, Shared> {
            self.shared.lock().unwrap_or_else(|p| {
                warn!("call audio lock poisoned; continuing");
                p.into_inner()
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
