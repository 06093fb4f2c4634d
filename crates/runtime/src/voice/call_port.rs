//! The audio of one voice call as the call's transport sees it: 20 ms frames of 8 kHz mono
//! linear PCM, one in each direction per frame period.

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
