//! What the radio itself supervises: signal statistics per pendant (for the installer's range
//! test) and jamming of the channel. Missing-heartbeat supervision belongs to the core.

use std::collections::{BTreeMap, VecDeque};
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
    /// Frames never heard: counters skipped between two accepted frames.
    pub missed: u64,
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
    /// A new accepted frame; how many frames before it were never heard (its counter's jump).
    pub fn accepted(&mut self, device: DeviceId, counter: u32, rssi: Option<i16>) -> u32 {
        let s = self.links.entry(device).or_default();
        let gap = s
            .last_counter
            .map_or(0, |last| counter.saturating_sub(last).saturating_sub(1));
        s.missed += u64::from(gap);
        s.frames += 1;
        s.first_counter.get_or_insert(counter);
        s.last_counter = Some(counter);
        s.rssi(rssi);
        gap
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

/// Detects jamming by channel occupancy: the share of RSSI samples at or above the threshold
/// over a sliding window of `after`, less what the valid frames heard in that window explain.
///
/// A lone carrier, a jammer switched on and off (duty-cycled), or one that answers each frame
/// it hears (reactive) all keep the channel busy far beyond what pendants can: each of them
/// may use 0.1 % of the hour. So jamming starts when more than [`JAMMING_SHARE`] of the
/// window's samples are busy and not explained by valid frames, and ends when less than
/// [`CLEAR_SHARE`] are (a flickering jammer does not flap the alarm). Each new valid frame
/// explains [`FRAME_EXCUSE`] of carrier; replays and retransmissions explain nothing, so an
/// attacker replaying a recorded frame under a carrier does not reset the detector.
#[derive(Clone, Debug)]
pub struct JammingDetector {
    threshold_dbm: i16,
    after: Duration,
    /// Samples in the window: when, and whether the channel was busy.
    samples: VecDeque<(Timestamp, bool)>,
    /// New valid frames heard in the window.
    frames: VecDeque<Timestamp>,
    /// When sampling (re)started: a window is judged once it is full.
    since: Option<Timestamp>,
    active: bool,
}

/// Share of unexplained busy samples in the window at which jamming starts.
pub const JAMMING_SHARE: f64 = 0.25;
/// Share below which reported jamming ends.
pub const CLEAR_SHARE: f64 = 0.10;
/// A longer gap between samples means sampling paused: the window starts again.
const MAX_SAMPLE_GAP: Duration = Duration::from_secs(2);
/// Carrier a valid frame explains: its own airtime and its acknowledgement, rounded up to a
/// sampling period.
pub const FRAME_EXCUSE: Duration = Duration::from_millis(500);

impl JammingDetector {
    /// A detector with the configured threshold and window.
    pub fn new(threshold_dbm: i16, after: Duration) -> JammingDetector {
        JammingDetector {
            threshold_dbm,
            after,
            samples: VecDeque::new(),
            frames: VecDeque::new(),
            since: None,
            active: false,
        }
    }

    /// Whether jamming is currently reported.
    pub fn active(&self) -> bool {
        self.active
    }

    /// The share of the window's samples that are busy and not explained by valid frames.
    pub fn occupancy(&self) -> f64 {
        let n = self.samples.len();
        if n == 0 {
            return 0.0;
        }
        let busy = self.samples.iter().filter(|(_, b)| *b).count() as f64;
        let span = self.span().as_secs_f64().max(0.001);
        // The samples one frame's excuse covers, at the window's sampling rate.
        let per_frame = FRAME_EXCUSE.as_secs_f64() * (n as f64 / span);
        let explained = self.frames.len() as f64 * per_frame.max(1.0);
        ((busy - explained).max(0.0) / n as f64).min(1.0)
    }

    fn span(&self) -> Duration {
        match (self.samples.front(), self.samples.back()) {
            (Some((a, _)), Some((b, _))) => b.since(*a),
            _ => Duration::ZERO,
        }
    }

    fn forget_before(&mut self, now: Timestamp) {
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.since(*t) > self.after)
        {
            self.samples.pop_front();
        }
        while self
            .frames
            .front()
            .is_some_and(|t| now.since(*t) > self.after)
        {
            self.frames.pop_front();
        }
    }

    /// A channel RSSI sample; returns the new state when it changes.
    pub fn sample(&mut self, now: Timestamp, rssi_dbm: i16) -> Option<bool> {
        // Sampling paused (the channel was known quiet): what came before is another window,
        // and mixing sparse old samples with dense new ones would skew the share.
        if self
            .samples
            .back()
            .is_some_and(|(t, _)| now.since(*t) > MAX_SAMPLE_GAP)
        {
            self.samples.clear();
            self.since = None;
        }
        let since = *self.since.get_or_insert(now);
        self.samples
            .push_back((now, rssi_dbm >= self.threshold_dbm));
        self.forget_before(now);
        // Judge only a full window: a few busy samples at start are not a trend.
        if now.since(since) < self.after {
            return None;
        }
        let share = self.occupancy();
        if !self.active && share >= JAMMING_SHARE {
            self.active = true;
            warn!(
                rssi_dbm,
                occupancy_pct = (share * 100.0).round(),
                "channel busy without valid frames: jamming"
            );
            return Some(true);
        }
        if self.active && share < CLEAR_SHARE {
            self.active = false;
            warn!(rssi_dbm, "channel clear again: jamming ended");
            return Some(false);
        }
        None
    }

    /// True when nothing is pending: not jamming and no busy sample in the window, so a
    /// channel known to be quiet needs no further samples.
    pub fn settled(&self) -> bool {
        !self.active && !self.samples.iter().any(|(_, b)| *b)
    }

    /// A new valid frame was received (never a replay or retransmission): some carrier was a
    /// pendant, not a jammer.
    pub fn valid_frame(&mut self, now: Timestamp) {
        self.frames.push_back(now);
        self.forget_before(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp(ms)
    }

    /// Samples every 250 ms for `secs` seconds from `from`, busy when `busy(ms)`; the changes.
    fn run(
        j: &mut JammingDetector,
        from: u64,
        secs: u64,
        busy: impl Fn(u64) -> bool,
        frame: impl Fn(u64) -> bool,
    ) -> Vec<(u64, bool)> {
        let mut changes = vec![];
        for ms in (from..from + secs * 1000).step_by(250) {
            if frame(ms) {
                j.valid_frame(t(ms));
            }
            let rssi = if busy(ms) { -60 } else { -110 };
            if let Some(c) = j.sample(t(ms), rssi) {
                changes.push((ms, c));
            }
        }
        changes
    }

    #[test]
    fn continuous_carrier_is_jamming_and_clears_after_quiet() {
        let mut j = JammingDetector::new(-90, Duration::from_secs(10));
        let changes = run(&mut j, 0, 40, |ms| ms < 20_000, |_| false);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0], (10_000, true), "{changes:?}");
        assert!(!changes[1].1 && (28_000..31_000).contains(&changes[1].0));
    }

    #[test]
    fn a_busy_sample_after_a_pause_is_not_judged_against_old_quiet_ones() {
        let mut j = JammingDetector::new(-90, Duration::from_secs(10));
        assert_eq!(j.sample(t(0), -110), None);
        assert_eq!(j.sample(t(9_800), -110), None);
        // Sampling paused; a frame is in flight at the next sample.
        assert_eq!(j.sample(t(12_000), -60), None);
        assert!(!j.active());
    }

    #[test]
    fn duty_cycled_carrier_is_jamming() {
        // 300 ms on, 700 ms off: every frame of a pendant is likely hit, never 10 s in a row.
        let mut j = JammingDetector::new(-90, Duration::from_secs(10));
        let changes = run(&mut j, 0, 30, |ms| ms % 1000 < 300, |_| false);
        assert!(matches!(changes.first(), Some((_, true))), "{changes:?}");
    }

    #[test]
    fn a_busy_channel_of_pendants_and_short_bursts_are_not_jamming() {
        // A burst of carrier every 10 s (a neighbour's device): 5 % of the time.
        let mut j = JammingDetector::new(-90, Duration::from_secs(10));
        assert_eq!(run(&mut j, 0, 60, |ms| ms % 10_000 < 500, |_| false), []);
        // Frames every 2 s, each seen busy for one sample: explained by the frames.
        let mut j = JammingDetector::new(-90, Duration::from_secs(10));
        assert_eq!(
            run(&mut j, 0, 60, |ms| ms % 2000 == 0, |ms| ms % 2000 == 0),
            []
        );
    }

    #[test]
    fn valid_frames_under_a_continuous_carrier_do_not_hide_it() {
        // A pendant next to the base still gets through now and then; the others do not.
        let mut j = JammingDetector::new(-90, Duration::from_secs(10));
        let changes = run(&mut j, 0, 30, |_| true, |ms| ms % 3000 == 0);
        assert!(matches!(changes.first(), Some((_, true))), "{changes:?}");
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
