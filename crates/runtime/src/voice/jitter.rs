//! A fixed 40 ms jitter buffer for a call's RTP audio: frames are put back in sequence order,
//! late and duplicate frames are dropped, and a lost frame is concealed by repeating the last
//! one at half its level, falling to silence after three in a row. Sans-IO: the call pushes
//! frames as they arrive and pops one every 20 ms.

use std::collections::BTreeMap;

use super::call_port::FRAME;

/// Frames held before playing starts: 40 ms, enough for the jitter of a wired or fibre link
/// to the centre, and within the 40 ms the unit may add to the far end's speech.
pub const DEPTH: usize = 2;
/// Frames held at most; a frame further ahead than this restarts the buffer.
const CAPACITY: u16 = 50;
/// Concealed frames in a row before playing silence.
const MAX_CONCEALED: u8 = 3;

/// What the buffer did with one pop, for the call's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Played {
    /// The frame in sequence.
    Frame,
    /// A lost frame, concealed.
    Concealed,
    /// Nothing to play: before the buffer filled, or after a long loss.
    Silence,
}

/// The buffer of one call's incoming audio.
#[derive(Debug)]
pub struct JitterBuffer {
    /// Frames by their distance from `base`, so sequence numbers may wrap.
    frames: BTreeMap<u32, [i16; FRAME]>,
    base: Option<u16>,
    /// Distance from `base` of the next frame to play, once playing.
    next: Option<u32>,
    last: [i16; FRAME],
    concealed: u8,
}

impl Default for JitterBuffer {
    fn default() -> JitterBuffer {
        JitterBuffer {
            frames: BTreeMap::new(),
            base: None,
            next: None,
            last: [0; FRAME],
            concealed: 0,
        }
    }
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new() -> JitterBuffer {
        JitterBuffer::default()
    }

    /// Distance of `seq` from the base, unwrapped around the next frame to play.
    fn index(&self, seq: u16) -> Option<u32> {
        let base = self.base?;
        let anchor = self.next.unwrap_or(0);
        let anchor_seq = base.wrapping_add(anchor as u16);
        let delta = i32::from(seq.wrapping_sub(anchor_seq) as i16);
        u32::try_from(i64::from(anchor) + i64::from(delta)).ok()
    }

    /// One frame arrived with RTP sequence number `seq`. Returns false when it was dropped
    /// (late, duplicate).
    pub fn push(&mut self, seq: u16, frame: [i16; FRAME]) -> bool {
        if self.base.is_none() {
            self.base = Some(seq.wrapping_sub(CAPACITY));
        }
        let Some(index) = self.index(seq) else {
            return false;
        };
        if let Some(next) = self.next {
            if index < next {
                return false;
            }
            if index - next > u32::from(CAPACITY) {
                // The far end jumped: start again from this frame.
                *self = JitterBuffer {
                    last: self.last,
                    ..JitterBuffer::default()
                };
                return self.push(seq, frame);
            }
        }
        if self.frames.contains_key(&index) {
            return false;
        }
        self.frames.insert(index, frame);
        while self.frames.len() > usize::from(CAPACITY) {
            self.frames.pop_first();
        }
        true
    }

    /// The frame for the next 20 ms.
    pub fn pop(&mut self) -> ([i16; FRAME], Played) {
        let next = match self.next {
            Some(next) => next,
            None if self.frames.len() >= DEPTH => *self.frames.keys().next().unwrap_or(&0),
            None => return ([0; FRAME], Played::Silence),
        };
        self.next = Some(next + 1);
        if let Some(frame) = self.frames.remove(&next) {
            self.last = frame;
            self.concealed = 0;
            return (frame, Played::Frame);
        }
        if self.concealed < MAX_CONCEALED {
            self.concealed += 1;
            for s in &mut self.last {
                *s /= 2;
            }
            return (self.last, Played::Concealed);
        }
        ([0; FRAME], Played::Silence)
    }
}
