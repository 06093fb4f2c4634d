//! What the radio itself supervises: signal statistics per pendant (for the installer's range
//! test) and jamming of the channel. Missing-heartbeat supervision belongs to the core.

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::warn;

use crate::core::{DeviceId, Timestamp};

/// Signal and packet statistics of one pendant.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkStats {
    /// Distinct frames accepted (retransmissions not counted).
    pub frames: u64,
    /// Retransmissions of an accepted frame heard.
    pub retransmissions: u64,
    /// Frames claiming this pendant that failed authentication or replay checks.
    pub rejected: u64,
    /// Counter of the first frame accepted in this session.
    pub first_counter: Option<u32>,
    /// Counter of the last frame accepted.
    pub last_counter: Option<u32>,
    /// RSSI of the last frame, dBm.
    pub rssi_last: Option<i16>,
    /// Weakest RSSI seen, dBm.
    pub rssi_min: Option<i16>,
    /// Strongest RSSI seen, dBm.
    pub rssi_max: Option<i16>,
    rssi_sum: i64,
    rssi_count: u64,
}

impl LinkStats {
    /// Mean RSSI of accepted frames, dBm.
    pub fn rssi_mean(&self) -> Option<f64> {
        (self.rssi_count > 0).then(|| self.rssi_sum as f64 / self.rssi_count as f64)
    }

    /// Share of the pendant's frames (by counter span) heard at least once, 0–1.
    pub fn packet_success(&self) -> Option<f64> {
        let (first, last) = (self.first_counter?, self.last_counter?);
        let span = u64::from(last.checked_sub(first)?) + 1;
        Some((self.frames as f64 / span as f64).min(1.0))
    }

    fn rssi(&mut self, rssi: Option<i16>) {
        if let Some(r) = rssi {
            self.rssi_last = Some(r);
            self.rssi_min = Some(self.rssi_min.map_or(r, |m| m.min(r)));
            self.rssi_max = Some(self.rssi_max.map_or(r, |m| m.max(r)));
            self.rssi_sum += i64::from(r);
            self.rssi_count += 1;
        }
    }
}

/// Statistics of every pendant heard.
#[derive(Clone, Debug, Default)]
pub struct RangeStats {
    links: BTreeMap<DeviceId, LinkStats>,
}

impl RangeStats {
    /// A new accepted frame.
    pub fn accepted(&mut self, device: DeviceId, counter: u32, rssi: Option<i16>) {
        let s = self.links.entry(device).or_default();
        s.frames += 1;
        s.first_counter.get_or_insert(counter);
        s.last_counter = Some(counter);
        s.rssi(rssi);
    }

    /// A retransmission of the last accepted frame.
    pub fn retransmission(&mut self, device: DeviceId, rssi: Option<i16>) {
        let s = self.links.entry(device).or_default();
        s.retransmissions += 1;
        s.rssi(rssi);
    }

    /// A frame claiming `device` was refused.
    pub fn rejected(&mut self, device: DeviceId) {
        self.links.entry(device).or_default().rejected += 1;
    }

    /// One pendant's statistics.
    pub fn get(&self, device: DeviceId) -> Option<&LinkStats> {
        self.links.get(&device)
    }

    /// Every pendant's statistics, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&DeviceId, &LinkStats)> {
        self.links.iter()
    }
}

/// Detects sustained carrier on the channel without valid frames.
///
/// Jamming starts when every RSSI sample has been at or above the threshold, and no valid frame
/// was received, for `after`; it ends when the channel has been below the threshold for
/// `after` again (the same time both ways, so a flickering jammer does not flap the alarm).
#[derive(Clone, Debug)]
pub struct JammingDetector {
    threshold_dbm: i16,
    after: Duration,
    busy_since: Option<Timestamp>,
    quiet_since: Option<Timestamp>,
    active: bool,
}

impl JammingDetector {
    /// A detector with the configured threshold and time.
    pub fn new(threshold_dbm: i16, after: Duration) -> JammingDetector {
        JammingDetector {
            threshold_dbm,
            after,
            busy_since: None,
            quiet_since: None,
            active: false,
        }
    }

    /// Whether jamming is currently reported.
    pub fn active(&self) -> bool {
        self.active
    }

    /// A channel RSSI sample; returns the new state when it changes.
    pub fn sample(&mut self, now: Timestamp, rssi_dbm: i16) -> Option<bool> {
        if rssi_dbm >= self.threshold_dbm {
            self.quiet_since = None;
            let since = *self.busy_since.get_or_insert(now);
            if !self.active && now.since(since) >= self.after {
                self.active = true;
                warn!(rssi_dbm, "sustained carrier without valid frames: jamming");
                return Some(true);
            }
        } else {
            self.busy_since = None;
            let since = *self.quiet_since.get_or_insert(now);
            if self.active && now.since(since) >= self.after {
                self.active = false;
                warn!(rssi_dbm, "channel clear again: jamming ended");
                return Some(false);
            }
        }
        None
    }

    /// True when nothing is pending: not jamming and no carrier being timed, so a channel known
    /// to be quiet needs no further samples.
    pub fn settled(&self) -> bool {
        !self.active && self.busy_since.is_none()
    }

    /// A valid frame was received: the carrier was a pendant, not a jammer.
    pub fn valid_frame(&mut self, now: Timestamp) {
        if !self.active {
            self.busy_since = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp(ms)
    }

    #[test]
    fn sustained_carrier_is_jamming_and_clears_after_quiet() {
        let mut j = JammingDetector::new(-90, Duration::from_secs(10));
        let mut changes = vec![];
        for s in 0..=30u64 {
            let rssi = if s < 20 { -60 } else { -110 };
            if let Some(c) = j.sample(t(s * 1000), rssi) {
                changes.push((s, c));
            }
        }
        assert_eq!(changes, vec![(10, true), (30, false)]);
    }

    #[test]
    fn short_bursts_and_valid_frames_are_not_jamming() {
        let mut j = JammingDetector::new(-90, Duration::from_secs(10));
        for s in 0..100u64 {
            // 9 s of carrier, 1 s quiet, forever: never 10 s in a row.
            let rssi = if s % 10 == 9 { -110 } else { -50 };
            assert_eq!(j.sample(t(s * 1000), rssi), None);
        }
        let mut j = JammingDetector::new(-90, Duration::from_secs(10));
        for s in 0..100u64 {
            if s % 5 == 0 {
                j.valid_frame(t(s * 1000));
            }
            assert_eq!(j.sample(t(s * 1000), -50), None);
        }
    }

    #[test]
    fn packet_success_counts_distinct_frames_over_the_counter_span() {
        let mut r = RangeStats::default();
        for c in [10, 11, 13, 14] {
            r.accepted(DeviceId(1), c, Some(-80 + c as i16));
        }
        r.retransmission(DeviceId(1), Some(-100));
        let s = r.get(DeviceId(1)).unwrap();
        assert_eq!(s.packet_success(), Some(0.8));
        assert_eq!(s.rssi_min, Some(-100));
        assert_eq!(s.rssi_max, Some(-66));
        assert_eq!(s.rssi_last, Some(-100));
    }
}
