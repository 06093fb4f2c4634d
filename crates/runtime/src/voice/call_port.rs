//! The audio of one voice call as the call's transport sees it: 20 ms frames of 8 kHz mono
//! linear PCM, one in each direction per frame period.
//!
//! A cellular call reaches the unit on a port of the module's ([`ModuleStream`]: SIMCom's
//! voice port, Quectel's USB audio card); [`bridge`] carries it between that port and the
//! unit's speakerphone ([`CallAudioPort`]), the same way whichever port it is.

use std::sync::Arc;
use std::time::Duration;

/// Opens the audio for one call: the unit's loudspeaker and microphone, or why they cannot
/// be used. It may block while devices open: it is called off the async loop.
pub type CallAudio =
    Arc<dyn Fn() -> Result<Box<dyn CallAudioPort>, AudioDeviceError> + Send + Sync>;

/// Why the unit's loudspeaker and microphone could not be opened for a call.
#[derive(Debug, thiserror::Error)]
pub enum AudioDeviceError {
    /// The thread that holds the devices' streams could not start.
    #[error("the speakerphone thread could not start: {0}")]
    Thread(#[source] std::io::Error),
    /// A device is missing or refused the call's format.
    #[error(transparent)]
    Device(#[from] super::VoiceError),
    /// The devices did not start streaming in time.
    #[error("the audio devices did not open within {} s", .0.as_secs())]
    Timeout(Duration),
}

/// Samples per frame: 20 ms at 8 kHz.
pub const FRAME: usize = 160;
/// The call's sample rate, in Hz.
pub const RATE: u32 = 8000;

/// One call's audio at the unit: what the far end says goes to the loudspeaker, what the
/// microphone hears goes to the far end. The transport calls both once per frame period.
pub trait CallAudioPort: Send {
    /// One frame from the far end, for the loudspeaker (silence when nothing arrived in time).
    fn play(&mut self, frame: &[i16; FRAME]);
    /// One frame for the far end, from the microphone.
    fn capture(&mut self) -> [i16; FRAME];
}

/// A call's audio at the module's end, as the unit reads and writes it: one frame each way per
/// frame period, the module's clock setting the pace of what arrives.
pub trait ModuleStream: Send {
    /// One frame of the far end's audio, if a whole one has come.
    fn take_frame(&mut self) -> Option<[i16; FRAME]>;
    /// Queues one frame of the unit's audio for the far end.
    fn say_frame(&mut self, frame: &[i16; FRAME]);
    /// Why the call's audio stopped, once it has (the module stopped sending, the device
    /// failed).
    fn lost(&mut self) -> Option<String>;
}

/// How a bridged call's speech ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BridgeEnd {
    /// The unit ended it (the call is over).
    Stopped,
    /// The module stopped sending the call's audio, or its port failed.
    Lost(String),
}

/// Carries a call's speech between the module's port and the unit's speakerphone `audio` (the
/// echo canceller is part of it) until `stop` says so: every 20 ms one frame of the far end's
/// audio to the loudspeaker (silence when none came, so the canceller's reference stays in
/// step) and one frame of the microphone to the far end.
pub async fn bridge(
    module: &mut dyn ModuleStream,
    audio: &mut dyn CallAudioPort,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> BridgeEnd {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return BridgeEnd::Stopped;
                }
            }
            _ = tick.tick() => {
                if let Some(why) = module.lost() {
                    return BridgeEnd::Lost(why);
                }
                let far = module.take_frame().unwrap_or([0; FRAME]);
                audio.play(&far);
                module.say_frame(&audio.capture());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module port that gives `frames`, then reports the stream lost once they are all
    /// taken; keeps what it was told.
    struct Scripted {
        frames: Vec<[i16; FRAME]>,
        said: Vec<[i16; FRAME]>,
    }

    impl ModuleStream for Scripted {
        fn take_frame(&mut self) -> Option<[i16; FRAME]> {
            (!self.frames.is_empty()).then(|| self.frames.remove(0))
        }
        fn say_frame(&mut self, frame: &[i16; FRAME]) {
            self.said.push(*frame);
        }
        fn lost(&mut self) -> Option<String> {
            self.frames.is_empty().then(|| "gone".to_string())
        }
    }

    /// A speakerphone whose microphone hears the frame number it is on.
    struct Counting {
        played: Vec<[i16; FRAME]>,
    }

    impl CallAudioPort for Counting {
        fn play(&mut self, frame: &[i16; FRAME]) {
            self.played.push(*frame);
        }
        fn capture(&mut self) -> [i16; FRAME] {
            [self.played.len() as i16; FRAME]
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_frame_period_moves_one_frame_each_way_until_the_port_is_lost() {
        let mut module = Scripted {
            frames: vec![[1; FRAME], [2; FRAME], [3; FRAME]],
            said: Vec::new(),
        };
        let mut phone = Counting { played: Vec::new() };
        let (_keep, mut stop) = tokio::sync::watch::channel(false);
        let end = bridge(&mut module, &mut phone, &mut stop).await;
        assert_eq!(end, BridgeEnd::Lost("gone".into()));
        // All three frames reached the loudspeaker, and after each the microphone's frame went
        // back; the tick after the last found the port lost.
        assert_eq!(phone.played, [[1; FRAME], [2; FRAME], [3; FRAME]]);
        assert_eq!(module.said, [[1; FRAME], [2; FRAME], [3; FRAME]]);
    }
}
