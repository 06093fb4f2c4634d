//! Airtime and the transmitter's duty-cycle budget.
//!
//! The social-alarm band 869.200–869.250 MHz allows each transmitter 0.1 % duty cycle
//! (CEPT ERC/REC 70-03, social alarms; equipment standard ETSI EN 303 406): 3.6 s of
//! airtime in any hour. The base's acknowledgements count against its own budget, which
//! [`DutyCycle`] never lets it exceed.

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::Band;
use crate::core::Timestamp;

/// Bit rate on air, all bands: 4.8 kbit/s GFSK with 2.4 kHz deviation fits a 25 kHz channel.
pub const BIT_RATE: u32 = 4800;
/// Preamble bytes sent before the sync word (0xAA…, RegPreamble).
pub const PREAMBLE_LEN: usize = 4;
/// Sync word bytes (RegSyncConfig size 3).
pub const SYNC_LEN: usize = 3;
/// Length byte plus CRC-16 added by the packet engine.
pub const PACKET_OVERHEAD: usize = 1 + 2;

/// Time on air of a frame of `len` bytes at `bit_rate` (preamble, sync, length, frame, CRC).
pub fn airtime(len: usize, bit_rate: u32) -> Duration {
    let bits = ((PREAMBLE_LEN + SYNC_LEN + PACKET_OVERHEAD + len) * 8) as u64;
    Duration::from_micros(bits * 1_000_000 / u64::from(bit_rate.max(1)))
}

/// The airtime a transmitter may use per hour in `band`.
pub fn hourly_budget(band: Band) -> Duration {
    match band {
        // 0.1 % of 3600 s.
        Band::Eu869 => Duration::from_millis(3_600),
        // 868.0–868.6 MHz non-specific SRD band: 1 % (ERC/REC 70-03 Annex 1).
        Band::Eu868 => Duration::from_millis(36_000),
        // FCC §15.249 sets no duty cycle; keep 1 % so one base cannot hog the channel.
        Band::Us915 => Duration::from_millis(36_000),
    }
}

/// Whose transmission is asking for airtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Answers to help and fall frames: may use the whole budget.
    Alarm,
    /// Everything else (acks of heartbeats, pairing): may not touch the alarm reserve.
    Routine,
}

/// A sliding one-hour airtime budget.
#[derive(Clone, Debug)]
pub struct DutyCycle {
    limit: Duration,
    reserve: Duration,
    window: Duration,
    spent: VecDeque<(Timestamp, Duration)>,
    used: Duration,
}

impl DutyCycle {
    /// A budget of `limit` per hour, of which half is kept for alarm acknowledgements.
    pub fn new(limit: Duration) -> DutyCycle {
        DutyCycle {
            limit,
            reserve: limit / 2,
            window: Duration::from_secs(3600),
            spent: VecDeque::new(),
            used: Duration::ZERO,
        }
    }

    /// The budget for `band`.
    pub fn for_band(band: Band) -> DutyCycle {
        DutyCycle::new(hourly_budget(band))
    }

    fn expire(&mut self, now: Timestamp) {
        while let Some(&(at, t)) = self.spent.front() {
            if now.since(at) >= self.window {
                self.used = self.used.saturating_sub(t);
                self.spent.pop_front();
            } else {
                break;
            }
        }
    }

    /// Airtime used in the hour before `now`.
    pub fn used(&mut self, now: Timestamp) -> Duration {
        self.expire(now);
        self.used
    }

    /// Airtime still available at `now` for `priority`.
    pub fn available(&mut self, now: Timestamp, priority: Priority) -> Duration {
        self.expire(now);
        let cap = match priority {
            Priority::Alarm => self.limit,
            Priority::Routine => self.limit.saturating_sub(self.reserve),
        };
        cap.saturating_sub(self.used)
    }

    /// Books `airtime` starting at `now` if the budget allows it; false means do not send.
    pub fn try_spend(&mut self, now: Timestamp, airtime: Duration, priority: Priority) -> bool {
        if self.available(now, priority) < airtime {
            return false;
        }
        self.used += airtime;
        self.spent.push_back((now, airtime));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn airtime_of_the_frames() {
        // Help frame: 26 bytes + 10 bytes of PHY overhead = 288 bits = 60 ms at 4.8 kbit/s.
        assert_eq!(airtime(26, BIT_RATE), Duration::from_millis(60));
        assert_eq!(airtime(25, BIT_RATE), Duration::from_micros(58_333));
    }

    #[test]
    fn frames_per_hour_in_the_social_alarm_band() {
        // (frame, bytes, airtime µs, frames per hour within 3.6 s)
        let table = [
            ("help/cancel/tamper", 26, 60_000, 60),
            ("heartbeat/battery/fall", 28, 63_333, 56),
            ("ack", 25, 58_333, 61),
            ("pair request", 41, 85_000, 42),
            ("pair accept", 57, 111_666, 32),
        ];
        let budget = hourly_budget(Band::Eu869);
        for (name, len, us, per_hour) in table {
            let t = airtime(len, BIT_RATE);
            assert_eq!(t.as_micros(), us, "{name}");
            assert_eq!(budget.as_micros() / t.as_micros(), per_hour, "{name}");
        }
    }

    #[test]
    fn no_hour_ever_exceeds_the_budget_under_a_storm() {
        // Five hours of acks asked for every 200 ms, alarm and routine mixed, in bursts.
        let mut d = DutyCycle::for_band(Band::Eu869);
        let ack = airtime(25, BIT_RATE);
        let mut sent: Vec<Timestamp> = Vec::new();
        let start = Timestamp::from_secs(1_000_000);
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for step in 0..(5 * 3600 * 5) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(3) {
                continue; // quiet moments
            }
            let now = start + Duration::from_millis(step * 200);
            let p = if x.is_multiple_of(2) {
                Priority::Alarm
            } else {
                Priority::Routine
            };
            if d.try_spend(now, ack, p) {
                sent.push(now);
            }
        }
        // Check every window that starts at a transmission.
        for (i, &t0) in sent.iter().enumerate() {
            let end = t0 + Duration::from_secs(3600);
            let n = sent[i..].iter().take_while(|&&t| t < end).count() as u32;
            assert!(
                ack * n <= Duration::from_millis(3600),
                "{n} acks in the hour from {t0}"
            );
        }
        // The budget was used, not just refused: about 61 acks an hour for five hours.
        assert!(sent.len() >= 5 * 60, "{}", sent.len());
    }

    #[test]
    fn budget_refuses_what_would_exceed_it_and_frees_after_an_hour() {
        let mut d = DutyCycle::new(Duration::from_millis(100));
        let t0 = Timestamp::from_secs(1000);
        assert!(d.try_spend(t0, Duration::from_millis(40), Priority::Alarm));
        assert!(
            !d.try_spend(t0, Duration::from_millis(40), Priority::Routine),
            "reserve"
        );
        assert!(d.try_spend(t0, Duration::from_millis(60), Priority::Alarm));
        assert!(!d.try_spend(t0, Duration::from_millis(1), Priority::Alarm));
        let later = t0 + Duration::from_secs(3599);
        assert!(!d.try_spend(later, Duration::from_millis(1), Priority::Alarm));
        let hour = t0 + Duration::from_secs(3600);
        assert!(d.try_spend(hour, Duration::from_millis(50), Priority::Routine));
        assert_eq!(d.used(hour), Duration::from_millis(50));
    }
}
