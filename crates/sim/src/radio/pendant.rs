//! A simulated pendant as a library: real, sealed frames to the simulated radio, with
//! retransmission until the base acknowledges. `vigil pendant`, the demo and the end-to-end
//! tests all send through it.
//!
//! A pendant with a fall detector can replay a recorded SisFall trial ([`detect_falls`],
//! [`SimPendant::replay_trial`]): the trial streams through the shipped detector as the pendant
//! would sample it, and each fall the detector reports goes out as a sealed fall frame carrying
//! the detector's peak impact.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::driver::sim::SimPeer;
use super::frame::{Event, Frame, FrameCipher, FrameType, PendantKey};
use super::RadioError;
use crate::core::{DeviceId, FallEvidence};
use crate::fall::{FallEvent, Trial};

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

/// After its alarm was acknowledged by radio, waits up to `wait` for the base's word that a
/// receiving centre has it: a "help is coming" frame for `counter`, sealed with the pendant's
/// key. Anything else heard meanwhile (another pendant's frames, a forged or replayed notice)
/// is ignored. True if the word came.
pub fn wait_help_coming(
    peer: &SimPeer,
    cipher: &FrameCipher,
    id: DeviceId,
    counter: u32,
    wait: Duration,
) -> Result<bool, RadioError> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let Some(bytes) = peer.receive(left)? else {
            return Ok(false);
        };
        let Ok(f) = Frame::new_checked(&bytes[..]) else {
            continue;
        };
        if f.device() == id && cipher.open_help_coming(&f).ok() == Some(counter) {
            return Ok(true);
        }
    }
}

/// A fall the pendant's detector reported while a trial played.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectedFall {
    /// Time into the trial at which the detector reported it (its judgement comes about 3 s
    /// after the impact): when the pendant sends the frame.
    pub at: Duration,
    /// Peak impact in milli-g, as the fall frame carries it.
    pub peak_mg: u16,
    /// The evidence as the fall frame carries it.
    pub evidence: FallEvidence,
    /// The detector's judgement and evidence.
    pub event: FallEvent,
}

/// A fall frame the pendant sent for a detected fall.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SentFall {
    /// What the detector reported.
    pub fall: DetectedFall,
    /// The frame's counter.
    pub counter: u32,
    /// Transmissions it took until the base acknowledged it, or None if it never did.
    pub transmissions: Option<u32>,
}

/// Streams `trial` through the shipped fall detector sampling at `rate_hz` (50–200 Hz), as
/// the pendant would, and returns every fall it reports, in order. An activity the detector
/// judges harmless gives none.
pub fn detect_falls(
    trial: &Trial,
    sensor: crate::fall::SensorConfig,
) -> Result<Vec<DetectedFall>, RadioError> {
    let rate_hz = sensor.rate_hz;
    let falls = crate::fall::replay_sensor(trial, sensor)
        .map_err(|e| RadioError::Usage(format!("{}: {e}", trial.id())))?;
    Ok(falls
        .into_iter()
        .map(|(index, event)| DetectedFall {
            // The sample that completed the judgement has been taken at the end of its period.
            at: Duration::from_secs_f64((index as f64 + 1.0) / f64::from(rate_hz.max(1))),
            peak_mg: peak_mg(event.evidence.peak_g),
            evidence: frame_evidence(&event.evidence),
            event,
        })
        .collect())
}

/// The detector's evidence in the fall frame's units: milli-g, milliseconds, whole degrees.
pub fn frame_evidence(e: &crate::fall::Evidence) -> FallEvidence {
    FallEvidence {
        peak_mg: peak_mg(e.peak_g),
        free_fall_ms: e.free_fall_ms,
        posture_change_deg: e.posture_change_deg.round().clamp(0.0, 180.0) as u8,
        stillness_mg: peak_mg(e.motion_after_g),
    }
}

/// g to the frame's milli-g, saturating (a NaN gives 0).
fn peak_mg(g: f32) -> u16 {
    (g * 1000.0).round().clamp(0.0, f32::from(u16::MAX)) as u16
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

    /// Listens up to `wait` for the base's word that a centre has the alarm of the last frame
    /// sent; true if it came (the pendant then says "help is coming").
    pub fn help_coming(&self, wait: Duration) -> Result<bool, RadioError> {
        wait_help_coming(&self.peer, &self.cipher, self.id, self.counter, wait)
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

    /// Replays a recorded trial through the pendant's fall detector at `rate_hz` and sends a
    /// fall frame (with the detector's peak impact) for each fall it reports, retransmitting
    /// until acknowledged as [`SimPendant::send`] does. With `realtime`, each frame goes out
    /// when the detector would have fired had the trial started now; otherwise at once.
    /// An empty list: the detector saw no fall, and nothing was sent.
    pub fn replay_trial(
        &mut self,
        trial: &Trial,
        sensor: crate::fall::SensorConfig,
        realtime: bool,
    ) -> Result<Vec<SentFall>, RadioError> {
        let started = Instant::now();
        let mut sent = Vec::new();
        for fall in detect_falls(trial, sensor)? {
            if realtime {
                std::thread::sleep((started + fall.at).saturating_duration_since(Instant::now()));
            }
            let transmissions = self.send(Event::Fall(fall.evidence))?;
            tracing::info!(
                pendant = %self.id,
                trial = %trial.id(),
                at_ms = fall.at.as_millis() as u64,
                peak_mg = fall.peak_mg,
                acknowledged = transmissions.is_some(),
                "replayed fall sent"
            );
            sent.push(SentFall {
                fall,
                counter: self.counter,
                transmissions,
            });
        }
        Ok(sent)
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
