//! A simulated pendant as a library: real, sealed frames to the simulated radio, with
//! retransmission until the base acknowledges. `vigil pendant`, the demo and the end-to-end
//! tests all send through it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::driver::sim::SimPeer;
use super::frame::{Event, Frame, FrameCipher, FrameType, PendantKey};
use super::RadioError;
use crate::core::DeviceId;

/// Sends `frame` (counter `counter` of pendant `id`) until the base acknowledges it, at most
/// `retries + 1` times, waiting `ack_wait` for each acknowledgement. Returns the number of
/// transmissions it took, or None if none was acknowledged.
pub fn send_until_acked(
    peer: &SimPeer,
    frame: &[u8],
    cipher: &FrameCipher,
    id: DeviceId,
    counter: u32,
    retries: u32,
    ack_wait: Duration,
) -> Result<Option<u32>, RadioError> {
    for attempt in 1..=retries + 1 {
        peer.send(frame)?;
        let deadline = Instant::now() + ack_wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(bytes) = peer.receive(left)? else {
                break;
            };
            let Ok(f) = Frame::new_checked(&bytes[..]) else {
                continue;
            };
            if f.frame_type() == FrameType::Ack
                && f.device() == id
                && cipher.open_ack(&f).ok() == Some(counter)
            {
                return Ok(Some(attempt));
            }
        }
    }
    Ok(None)
}

/// A pendant that keeps its counter in memory.
pub struct SimPendant {
    id: DeviceId,
    cipher: FrameCipher,
    peer: SimPeer,
    counter: u32,
}

impl SimPendant {
    /// A pendant `id` with `key`, heard by the base at `base` with `rssi_dbm`, whose last
    /// used counter was `counter`.
    pub fn new(
        id: DeviceId,
        key: &PendantKey,
        base: SocketAddr,
        rssi_dbm: i16,
        counter: u32,
    ) -> Result<SimPendant, RadioError> {
        Ok(SimPendant {
            id,
            cipher: FrameCipher::new(key),
            peer: SimPeer::new(base, rssi_dbm)?,
            counter,
        })
    }

    /// The pendant's id.
    pub fn id(&self) -> DeviceId {
        self.id
    }

    /// The last counter used.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// Sends `event` as a new frame, retransmitting up to 3 times; the number of
    /// transmissions it took to be acknowledged, or None.
    pub fn send(&mut self, event: Event) -> Result<Option<u32>, RadioError> {
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| RadioError::Usage("the counter is exhausted".into()))?;
        let frame = self.cipher.seal_event(self.id, self.counter, event);
        send_until_acked(
            &self.peer,
            frame.as_bytes(),
            &self.cipher,
            self.id,
            self.counter,
            3,
            Duration::from_millis(700),
        )
    }

    /// Sends `event` once, without waiting for an acknowledgement (a heartbeat, say).
    pub fn send_once(&mut self, event: Event) -> Result<(), RadioError> {
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| RadioError::Usage("the counter is exhausted".into()))?;
        let frame = self.cipher.seal_event(self.id, self.counter, event);
        self.peer.send(frame.as_bytes())
    }
}
