//! The gate every received frame passes before the core hears of it: authentication, replay
//! protection and retransmission deduplication.

use std::collections::HashMap;
use std::fmt;

use tracing::{debug, error};

use super::frame::{Event, Frame, FrameCipher, FrameError, FrameType, PendantKey, MAX_FRAME_LEN};
use super::store::PendantStore;
use super::RadioError;
use crate::config::Pendant;
use crate::core::{DeviceId, RadioEvent};

/// Why a frame was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Too short, too long, unknown type or wrong body length: noise or corruption.
    Malformed,
    /// A frame format version this base does not speak.
    UnsupportedVersion,
    /// A device id no key is known for.
    UnknownPendant,
    /// The tag does not match: forged, corrupted in transit, or sealed with another key.
    AuthenticationFailed,
    /// Authentic, but its counter is not above the last accepted one.
    Replayed,
    /// Authentic, but its content is not an event this base knows.
    UnknownEvent,
    /// A frame type that is not an event (an ack or pairing frame where an event belongs).
    UnexpectedFrame,
}

impl Rejection {
    /// All reasons, in report order.
    pub const ALL: [Rejection; 7] = [
        Rejection::Malformed,
        Rejection::UnsupportedVersion,
        Rejection::UnknownPendant,
        Rejection::AuthenticationFailed,
        Rejection::Replayed,
        Rejection::UnknownEvent,
        Rejection::UnexpectedFrame,
    ];

    /// Name for logs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::UnsupportedVersion => "unsupported-version",
            Rejection::UnknownPendant => "unknown-pendant",
            Rejection::AuthenticationFailed => "authentication-failed",
            Rejection::Replayed => "replayed",
            Rejection::UnknownEvent => "unknown-event",
            Rejection::UnexpectedFrame => "unexpected-frame",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many frames were refused, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RejectionCounts([u64; 7]);

impl RejectionCounts {
    /// Frames refused for `reason`.
    pub fn get(&self, reason: Rejection) -> u64 {
        self.0[reason.index()]
    }

    /// Frames refused for any reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The frames refused since `earlier`, a snapshot of the same counts.
    pub fn since(&self, earlier: &RejectionCounts) -> RejectionCounts {
        let mut d = *self;
        for (n, e) in d.0.iter_mut().zip(earlier.0) {
            *n = n.saturating_sub(e);
        }
        d
    }

    fn bump(&mut self, reason: Rejection) {
        self.0[reason.index()] += 1;
    }
}

impl fmt::Display for RejectionCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for r in Rejection::ALL {
            if self.get(r) > 0 {
                write!(f, "{}{}={}", if first { "" } else { " " }, r, self.get(r))?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// What the gate decided about one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A new, authentic event: hand it to the core.
    Fresh {
        /// The event for the core.
        event: RadioEvent,
        /// The frame's event with its full payload.
        detail: Event,
    },
    /// The exact bytes of the last accepted frame again: the pendant did not hear our ack.
    /// Not raised again; re-acknowledge if it was acknowledged.
    Retransmission {
        /// The pendant.
        device: DeviceId,
        /// The repeated frame's counter.
        counter: u32,
    },
    /// Refused.
    Rejected {
        /// Why.
        reason: Rejection,
        /// The claimed device id, when the header could be read.
        device: Option<DeviceId>,
    },
}

struct Known {
    cipher: FrameCipher,
    last_counter: Option<u32>,
    /// The highest counter in the store.
    stored_counter: Option<u32>,
    last_frame: Option<([u8; MAX_FRAME_LEN], usize)>,
    last_event: Option<Event>,
}

/// Authenticates, deduplicates and replay-checks frames for every known pendant.
pub struct FrameGate<S: PendantStore> {
    pendants: HashMap<DeviceId, Known>,
    store: S,
    rejections: RejectionCounts,
    store_failures: u64,
}

impl<S: PendantStore> FrameGate<S> {
    /// A gate for the pendants with keys in configuration and those paired earlier (from
    /// `store`). A key in configuration takes precedence over a paired one: the installer's
    /// provisioning is explicit. Last counters come from `store`.
    pub fn new(store: S, provisioned: &[Pendant]) -> Result<FrameGate<S>, RadioError> {
        let mut gate = FrameGate {
            pendants: HashMap::new(),
            store,
            rejections: RejectionCounts::default(),
            store_failures: 0,
        };
        for (id, key) in gate.store.paired_keys()? {
            gate.insert(id, &key)?;
        }
        for p in provisioned {
            if let Some(bytes) = &p.key {
                gate.insert(p.id, &PendantKey::new(**bytes))?;
            }
        }
        Ok(gate)
    }

    fn insert(&mut self, id: DeviceId, key: &PendantKey) -> Result<(), RadioError> {
        let last_counter = self.store.last_counter(id)?;
        self.pendants.insert(
            id,
            Known {
                cipher: FrameCipher::new(key),
                last_counter,
                stored_counter: last_counter,
                last_frame: None,
                last_event: None,
            },
        );
        Ok(())
    }

    /// Adds a pendant just paired: stores its key durably, then trusts it.
    pub fn add_paired(&mut self, id: DeviceId, key: &PendantKey) -> Result<(), RadioError> {
        self.store.save_paired_key(id, key)?;
        self.insert(id, key)
    }

    /// Whether a key is known for `id`.
    pub fn knows(&self, id: DeviceId) -> bool {
        self.pendants.contains_key(&id)
    }

    /// The known pendants.
    pub fn pendants(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.pendants.keys().copied()
    }

    /// The cipher of a known pendant, to seal acknowledgements.
    pub fn cipher(&self, id: DeviceId) -> Option<&FrameCipher> {
        self.pendants.get(&id).map(|k| &k.cipher)
    }

    /// The last event accepted from `id` and its counter.
    pub fn last_accepted(&self, id: DeviceId) -> Option<(u32, Event)> {
        let k = self.pendants.get(&id)?;
        Some((k.last_counter?, k.last_event?))
    }

    /// Frames refused so far, by reason.
    pub fn rejections(&self) -> RejectionCounts {
        self.rejections
    }

    /// How many accepted counters could not be persisted.
    pub fn store_failures(&self) -> u64 {
        self.store_failures
    }

    /// Decides about one received frame.
    pub fn check(&mut self, bytes: &[u8], rssi_dbm: Option<i16>) -> Verdict {
        let frame = match Frame::new_checked(bytes) {
            Ok(f) => f,
            Err(FrameError::UnsupportedVersion(_)) => {
                return self.reject(Rejection::UnsupportedVersion, None);
            }
            Err(_) => return self.reject(Rejection::Malformed, None),
        };
        let device = frame.device();
        if frame.frame_type() != FrameType::Event {
            return self.reject(Rejection::UnexpectedFrame, Some(device));
        }
        let Some(known) = self.pendants.get_mut(&device) else {
            return self.reject(Rejection::UnknownPendant, Some(device));
        };
        let counter = frame.counter();
        if let Some((last, len)) = &known.last_frame {
            if last.get(..*len) == Some(bytes) {
                debug!(pendant = %device, counter, "retransmission of the last frame");
                return Verdict::Retransmission { device, counter };
            }
        }
        let detail = match known.cipher.open_event(&frame) {
            Ok(e) => e,
            Err(FrameError::Authentication) => {
                return self.reject(Rejection::AuthenticationFailed, Some(device));
            }
            Err(_) => return self.reject(Rejection::UnknownEvent, Some(device)),
        };
        if known.last_counter.is_some_and(|last| counter <= last) {
            // No frame since the restart, and this authentic one carries the stored counter:
            // the pendant repeats the frame whose acknowledgement the power cut swallowed (or
            // someone replays it). Either way it raises nothing; it is acknowledged again.
            if known.last_frame.is_none() && known.stored_counter == Some(counter) {
                return Verdict::Retransmission { device, counter };
            }
            return self.reject(Rejection::Replayed, Some(device));
        }
        let gap_after = known
            .last_counter
            .filter(|last| counter > last.saturating_add(1));
        known.last_counter = Some(counter);
        if let Some(last) = gap_after {
            if let Err(e) = self.store.note_gap(device, last, counter) {
                self.store_failures += 1;
                tracing::warn!(pendant = %device, error = %e, "counter gap not journalled");
            }
        }
        let Some(known) = self.pendants.get_mut(&device) else {
            return self.reject(Rejection::UnknownPendant, Some(device));
        };
        let mut copy = [0u8; MAX_FRAME_LEN];
        copy[..bytes.len()].copy_from_slice(bytes);
        known.last_frame = Some((copy, bytes.len()));
        known.last_event = Some(detail);
        // A help or fall frame's counter is stored only once the core has the alarm in its
        // journal and acknowledges it ([`FrameGate::acknowledged`]): were it stored now, a
        // crash before the journal commit would make the pendant's retransmission after the
        // restart look like a replay, and the call for help would be lost.
        if !detail.is_alarm() {
            self.store_counter(device, counter);
        }
        Verdict::Fresh {
            event: RadioEvent {
                device,
                counter,
                kind: detail.kind(),
                rssi_dbm,
            },
            detail,
        }
    }

    /// The counter stored for `id`: after a restart, the last frame acknowledged.
    pub fn stored_counter(&self, id: DeviceId) -> Option<u32> {
        self.pendants.get(&id).and_then(|k| k.stored_counter)
    }

    /// The core acknowledges frame `counter` of `device` (its alarm is in the journal): from
    /// now on the counter survives a restart.
    pub fn acknowledged(&mut self, device: DeviceId, counter: u32) {
        self.store_counter(device, counter);
    }

    /// Stores `counter` unless a higher one is stored already. A failure is counted and
    /// logged, never fatal: the event is raised even if the disk is full, and the counter is
    /// still enforced in memory until restart.
    fn store_counter(&mut self, device: DeviceId, counter: u32) {
        let Some(known) = self.pendants.get_mut(&device) else {
            return;
        };
        if known.stored_counter.is_some_and(|s| s >= counter) {
            return;
        }
        match self.store.save_counter(device, counter) {
            Ok(()) => known.stored_counter = Some(counter),
            Err(e) => {
                self.store_failures += 1;
                error!(pendant = %device, counter, error = %e, "could not persist the pendant's counter");
            }
        }
    }

    fn reject(&mut self, reason: Rejection, device: Option<DeviceId>) -> Verdict {
        self.rejections.bump(reason);
        // Counted, not logged one by one: a flood of forged frames must not fill the disk.
        // The radio link summarises the counts at most once a minute.
        match device {
            Some(d) => debug!(pendant = %d, reason = reason.as_str(), "radio frame rejected"),
            None => debug!(reason = reason.as_str(), "radio frame rejected"),
        }
        Verdict::Rejected { reason, device }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEARTBEAT: Event = Event::Heartbeat {
        battery_mv: 3000,
        alarms_sent: None,
    };
    use crate::core::{DeviceKind, RadioEventKind};
    use crate::radio::store::MemoryStore;

    const ID: DeviceId = DeviceId(0x00C0FFEE);

    fn pendant(key: u8) -> Pendant {
        Pendant {
            id: ID,
            kind: DeviceKind::Personal,
            key: Some([key; 32].into()),
            location: "Anna".into(),
            zone: 1,
        }
    }

    fn gate() -> FrameGate<MemoryStore> {
        FrameGate::new(MemoryStore::new(), &[pendant(1)]).unwrap()
    }

    fn seal(key: u8, counter: u32, e: Event) -> Vec<u8> {
        FrameCipher::new(&PendantKey::new([key; 32]))
            .seal_event(ID, counter, e)
            .as_bytes()
            .to_vec()
    }

    #[test]
    fn accepts_fresh_frames_in_counter_order() {
        let mut g = gate();
        let v = g.check(&seal(1, 1, Event::Help), Some(-70));
        assert!(
            matches!(v, Verdict::Fresh { event, .. } if event.kind == RadioEventKind::Help && event.rssi_dbm == Some(-70))
        );
        assert!(matches!(
            g.check(&seal(1, 5, Event::Cancel), None),
            Verdict::Fresh { .. }
        ));
        assert_eq!(g.last_accepted(ID), Some((5, Event::Cancel)));
    }

    #[test]
    fn exact_repeat_is_a_retransmission_and_older_frames_are_replays() {
        let mut g = gate();
        let f1 = seal(1, 1, Event::Help);
        let f2 = seal(1, 2, Event::Fall(crate::core::FallEvidence::typical(2500)));
        assert!(matches!(g.check(&f1, None), Verdict::Fresh { .. }));
        assert_eq!(
            g.check(&f1, None),
            Verdict::Retransmission {
                device: ID,
                counter: 1
            }
        );
        assert!(matches!(g.check(&f2, None), Verdict::Fresh { .. }));
        assert!(matches!(
            g.check(&f1, None),
            Verdict::Rejected {
                reason: Rejection::Replayed,
                ..
            }
        ));
        // Same counter, other content: a replay, not a retransmission.
        let other = seal(1, 2, Event::Help);
        assert!(matches!(
            g.check(&other, None),
            Verdict::Rejected {
                reason: Rejection::Replayed,
                ..
            }
        ));
        assert_eq!(g.rejections().get(Rejection::Replayed), 2);
    }

    #[test]
    fn counters_survive_a_restart() {
        let mut g = gate();
        assert!(matches!(
            g.check(&seal(1, 10, Event::Help), None),
            Verdict::Fresh { .. }
        ));
        // The core has the alarm in its journal and acknowledges the frame.
        g.acknowledged(ID, 10);
        let store = g.store.clone();
        let mut g = FrameGate::new(store, &[pendant(1)]).unwrap();
        // After a restart the last acknowledged frame raises nothing: it is acknowledged
        // again (the power may have cut the acknowledgement), older frames are replays.
        assert_eq!(
            g.check(&seal(1, 10, Event::Help), None),
            Verdict::Retransmission {
                device: ID,
                counter: 10
            }
        );
        assert!(matches!(
            g.check(&seal(1, 9, Event::Help), None),
            Verdict::Rejected {
                reason: Rejection::Replayed,
                ..
            }
        ));
        assert!(matches!(
            g.check(&seal(1, 11, Event::Help), None),
            Verdict::Fresh { .. }
        ));
    }

    #[test]
    fn an_alarm_frame_not_yet_acknowledged_is_heard_again_after_a_restart() {
        let mut g = gate();
        assert!(matches!(
            g.check(&seal(1, 9, HEARTBEAT), None),
            Verdict::Fresh { .. }
        ));
        assert!(matches!(
            g.check(&seal(1, 10, Event::Help), None),
            Verdict::Fresh { .. }
        ));
        // The unit stops before the alarm reached the journal: the pendant's retransmission
        // after the restart is a fresh frame, and the heartbeat before it stays refused.
        let store = g.store.clone();
        let mut g = FrameGate::new(store, &[pendant(1)]).unwrap();
        assert!(matches!(
            g.check(&seal(1, 10, Event::Help), None),
            Verdict::Fresh { .. }
        ));
        assert!(matches!(
            g.check(&seal(1, 9, HEARTBEAT), None),
            Verdict::Rejected {
                reason: Rejection::Replayed,
                ..
            }
        ));
        // An older acknowledgement never moves the stored counter back.
        g.acknowledged(ID, 10);
        g.acknowledged(ID, 3);
        let store = g.store.clone();
        let mut g = FrameGate::new(store, &[pendant(1)]).unwrap();
        assert_eq!(g.stored_counter(ID), Some(10));
        assert!(matches!(
            g.check(&seal(1, 10, Event::Help), None),
            Verdict::Retransmission { counter: 10, .. }
        ));
    }

    #[test]
    fn refuses_wrong_key_unknown_pendant_and_corruption_by_reason() {
        let mut g = gate();
        let r = |v: Verdict| match v {
            Verdict::Rejected { reason, .. } => Some(reason),
            _ => None,
        };
        assert_eq!(
            r(g.check(&seal(2, 1, Event::Help), None)),
            Some(Rejection::AuthenticationFailed)
        );
        let mut unknown = seal(1, 1, Event::Help);
        unknown[1] ^= 0x80;
        assert_eq!(r(g.check(&unknown, None)), Some(Rejection::UnknownPendant));
        let mut flipped = seal(1, 1, Event::Help);
        flipped[12] ^= 4;
        assert_eq!(
            r(g.check(&flipped, None)),
            Some(Rejection::AuthenticationFailed)
        );
        let f = seal(1, 1, Event::Help);
        assert_eq!(r(g.check(&f[..20], None)), Some(Rejection::Malformed));
        let mut v2 = f.clone();
        v2[0] = 0x20;
        assert_eq!(r(g.check(&v2, None)), Some(Rejection::UnsupportedVersion));
        let ack = FrameCipher::new(&PendantKey::new([1; 32])).seal_ack(ID, 1);
        assert_eq!(
            r(g.check(ack.as_bytes(), None)),
            Some(Rejection::UnexpectedFrame)
        );
        assert_eq!(g.rejections().total(), 6);
        // The genuine frame still goes through after all that.
        assert!(matches!(g.check(&f, None), Verdict::Fresh { .. }));
    }

    #[test]
    fn provisioned_key_wins_over_paired_key() {
        let mut store = MemoryStore::new();
        store
            .save_paired_key(ID, &PendantKey::new([9; 32]))
            .unwrap();
        let mut g = FrameGate::new(store, &[pendant(1)]).unwrap();
        assert!(matches!(
            g.check(&seal(1, 1, Event::Help), None),
            Verdict::Fresh { .. }
        ));
    }

    struct FailingStore;
    impl PendantStore for FailingStore {
        fn last_counter(&self, _: DeviceId) -> Result<Option<u32>, RadioError> {
            Ok(None)
        }
        fn save_counter(&mut self, _: DeviceId, _: u32) -> Result<(), RadioError> {
            Err(RadioError::Store("disk full".into()))
        }
        fn paired_keys(&self) -> Result<Vec<(DeviceId, PendantKey)>, RadioError> {
            Ok(vec![])
        }
        fn save_paired_key(&mut self, _: DeviceId, _: &PendantKey) -> Result<(), RadioError> {
            Err(RadioError::Store("disk full".into()))
        }
    }

    #[test]
    fn a_failing_store_does_not_swallow_a_call_for_help() {
        let mut g = FrameGate::new(FailingStore, &[pendant(1)]).unwrap();
        assert!(matches!(
            g.check(&seal(1, 1, Event::Help), None),
            Verdict::Fresh { .. }
        ));
        // The counter is stored when the core acknowledges the alarm.
        g.acknowledged(ID, 1);
        assert_eq!(g.store_failures(), 1);
        assert!(matches!(
            g.check(&seal(1, 1, Event::Cancel), None),
            Verdict::Rejected { .. }
        ));
    }
}
