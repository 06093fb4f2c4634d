//! RTCP (RFC 3550 §6) for a call's audio: the reception statistics of the far end's stream
//! (loss by sequence number, Appendix A.3; interarrival jitter, A.8), the compound reports the
//! unit sends (SR or RR, then SDES with its CNAME, BYE at the end of the call), and the
//! validation of the far end's packets (A.2, and RFC 5506's reduced-size packets), from which
//! the round trip is read.
//!
//! Untrusted input: a datagram on the RTCP port is checked whole (version, lengths adding up
//! to the datagram, the first packet a report) before anything in it is used; a report about
//! another SSRC than the unit's is ignored.

use thiserror::Error;

/// RTCP packet types (RFC 3550 §12.1).
const SR: u8 = 200;
const RR: u8 = 201;
const SDES: u8 = 202;
const BYE: u8 = 203;

/// The most packets taken from one compound datagram.
const MAX_PACKETS: usize = 16;

/// Why a datagram is not a compound RTCP packet the call can use (RFC 3550 A.2).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RtcpError {
    /// Shorter than a header, or than its length field says.
    #[error("RTCP packet truncated")]
    Truncated,
    /// Version other than 2.
    #[error("RTCP version {0}")]
    Version(u8),
    /// Padding on a packet that is not the last, or longer than the packet.
    #[error("RTCP padding misplaced")]
    Padding,
    /// The packets' lengths do not add up to the datagram's.
    #[error("RTCP lengths do not add up")]
    Length,
    /// More packets than any real compound carries.
    #[error("RTCP compound packet of more than {MAX_PACKETS} packets")]
    TooMany,
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost in all (may be negative with duplicates: 24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_sequence: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// The middle 32 bits of the NTP timestamp of the last SR received from this source.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        let lost = (self.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0xFF_FFFF;
        out.extend_from_slice(&(u32::from(self.fraction_lost) << 24 | lost).to_be_bytes());
        out.extend_from_slice(&self.highest_sequence.to_be_bytes());
        out.extend_from_slice(&self.jitter.to_be_bytes());
        out.extend_from_slice(&self.last_sr.to_be_bytes());
        out.extend_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }

    fn parse(b: &[u8]) -> ReportBlock {
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let lost = word(4) & 0xFF_FFFF;
        ReportBlock {
            ssrc: word(0),
            fraction_lost: b[4],
            // Sign-extend the 24-bit count.
            cumulative_lost: ((lost << 8) as i32) >> 8,
            highest_sequence: word(8),
            jitter: word(12),
            last_sr: word(16),
            delay_since_last_sr: word(20),
        }
    }
}

/// What the sender of an SR said about its own stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// NTP timestamp (seconds and fraction since 1900, or any consistent time base).
    pub ntp: u64,
    /// The RTP timestamp of the same instant.
    pub rtp_timestamp: u32,
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
}

/// One packet of a received compound datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A sender report.
    Sender {
        ssrc: u32,
        info: SenderInfo,
        blocks: Vec<ReportBlock>,
    },
    /// A receiver report.
    Receiver { ssrc: u32, blocks: Vec<ReportBlock> },
    /// The far end leaves the session.
    Bye { sources: Vec<u32> },
    /// SDES or a type the call does not use; only counted.
    Other(u8),
}

/// Validates and splits a compound RTCP datagram (RFC 3550 A.2).
pub fn parse(data: &[u8]) -> Result<Vec<Item>, RtcpError> {
    let mut items = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if items.len() == MAX_PACKETS {
            return Err(RtcpError::TooMany);
        }
        if rest.len() < 4 {
            return Err(RtcpError::Truncated);
        }
        let version = rest[0] >> 6;
        if version != 2 {
            return Err(RtcpError::Version(version));
        }
        let padded = rest[0] & 0x20 != 0;
        let count = usize::from(rest[0] & 0x1F);
        // A packet that does not begin with a report is taken too: reduced-size RTCP (RFC
        // 5506) and keepalives (an APP packet alone) are real traffic, and nothing is read
        // from them.
        let kind = rest[1];
        let len = 4 * (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1);
        let packet = rest.get(..len).ok_or(RtcpError::Length)?;
        rest = &rest[len..];
        let mut body = &packet[4..];
        if padded {
            // Only the last packet of a compound may be padded.
            if !rest.is_empty() {
                return Err(RtcpError::Padding);
            }
            let pad = usize::from(packet[len - 1]);
            if pad == 0 || pad > body.len() {
                return Err(RtcpError::Padding);
            }
            body = &body[..body.len() - pad];
        }
        let word = |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let blocks_from = |b: &[u8]| -> Result<Vec<ReportBlock>, RtcpError> {
            let need = 24 * count;
            let raw = b.get(..need).ok_or(RtcpError::Truncated)?;
            Ok(raw.chunks_exact(24).map(ReportBlock::parse).collect())
        };
        items.push(match kind {
            SR => {
                if body.len() < 24 {
                    return Err(RtcpError::Truncated);
                }
                Item::Sender {
                    ssrc: word(body, 0),
                    info: SenderInfo {
                        ntp: u64::from(word(body, 4)) << 32 | u64::from(word(body, 8)),
                        rtp_timestamp: word(body, 12),
                        packets: word(body, 16),
                        octets: word(body, 20),
                    },
                    blocks: blocks_from(&body[24..])?,
                }
            }
            RR => {
                if body.len() < 4 {
                    return Err(RtcpError::Truncated);
                }
                Item::Receiver {
                    ssrc: word(body, 0),
                    blocks: blocks_from(&body[4..])?,
                }
            }
            BYE => {
                let raw = body.get(..4 * count).ok_or(RtcpError::Truncated)?;
                Item::Bye {
                    sources: raw.chunks_exact(4).map(|c| word(c, 0)).collect(),
                }
            }
            other => Item::Other(other),
        });
    }
    if items.is_empty() {
        return Err(RtcpError::Truncated);
    }
    Ok(items)
}

/// The middle 32 bits of a 64-bit NTP timestamp, as LSR carries it.
pub fn middle32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// A duration as a 64-bit NTP-format value (seconds in the high word, fraction in the low).
pub fn ntp_from(elapsed: std::time::Duration) -> u64 {
    let secs = elapsed.as_secs();
    let frac = (u64::from(elapsed.subsec_nanos()) << 32) / 1_000_000_000;
    secs << 32 | frac
}

/// Reception statistics of the far end's stream (RFC 3550 A.1, A.3, A.8).
#[derive(Debug, Clone, Default)]
pub struct Reception {
    ssrc: Option<u32>,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Interarrival jitter ×16, in timestamp units (A.8).
    jitter16: u32,
    last_transit: Option<u32>,
    /// LSR and the NTP-format local time the SR arrived.
    last_sr: Option<(u32, u64)>,
}

/// A sequence number further ahead than this is a restart, not loss (A.1's MAX_DROPOUT).
const MAX_DROPOUT: u16 = 3000;
/// A sequence number at most this far behind is a late packet (A.1's MAX_MISORDER).
const MAX_MISORDER: u16 = 100;

impl Reception {
    /// Notes one RTP packet of the far end's stream: its SSRC, its sequence number and, for
    /// packets whose timestamp is their sampling instant, that timestamp and the local arrival
    /// time in timestamp units (8 kHz), for the jitter. (An RFC 4733 event repeats its start's
    /// timestamp for as long as a key is held; it counts for loss, not for jitter.)
    pub fn packet(&mut self, ssrc: u32, seq: u16, timing: Option<(u32, u32)>) {
        if self.ssrc != Some(ssrc) {
            // A new source (or the first): statistics start again (A.1's init_seq).
            *self = Reception {
                ssrc: Some(ssrc),
                base_seq: u32::from(seq),
                max_seq: seq,
                last_sr: None,
                ..Reception::default()
            };
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
            } else if delta <= u16::MAX - MAX_MISORDER {
                // A jump: the sender restarted its sequence. Start again from here.
                self.base_seq = u32::from(seq);
                self.max_seq = seq;
                self.cycles = 0;
                self.received = 0;
                self.expected_prior = 0;
                self.received_prior = 0;
            }
            // else: a late or duplicate packet, counted as received below.
        }
        self.received = self.received.wrapping_add(1);
        let Some((timestamp, arrival)) = timing else {
            return;
        };
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit.wrapping_sub(last) as i32).unsigned_abs();
            // J += (|D| - J) / 16, kept ×16 (A.8).
            self.jitter16 = self
                .jitter16
                .wrapping_add(d)
                .wrapping_sub((self.jitter16 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Notes an SR from the far end that arrived at local NTP-format time `now`.
    pub fn sender_report(&mut self, ssrc: u32, ntp: u64, now: u64) {
        if self.ssrc == Some(ssrc) || self.ssrc.is_none() {
            self.last_sr = Some((middle32(ntp), now));
        }
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter16 >> 4
    }

    /// Packets lost in all, by sequence number.
    pub fn lost(&self) -> i64 {
        i64::from(self.extended_max().wrapping_sub(self.base_seq)) + 1 - i64::from(self.received)
    }

    fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// The report block for the far end's stream at local NTP-format time `now`, and the
    /// interval counters moved on (A.3); `None` before any packet arrived.
    pub fn block(&mut self, now: u64) -> Option<ReportBlock> {
        let ssrc = self.ssrc?;
        let expected = self
            .extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1);
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay) = match self.last_sr {
            Some((lsr, at)) => (lsr, middle32(now.wrapping_sub(at))),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_sequence: self.extended_max(),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr: delay,
        })
    }
}

/// The round trip a report block about the unit's own stream shows (RFC 3550 §6.4.1):
/// the arrival time less LSR less DLSR, in 1/65536 s; `None` when the far end has not yet
/// had an SR from the unit.
pub fn round_trip(block: &ReportBlock, now: u64) -> Option<std::time::Duration> {
    if block.last_sr == 0 {
        return None;
    }
    let units = middle32(now)
        .wrapping_sub(block.last_sr)
        .wrapping_sub(block.delay_since_last_sr);
    // A negative result (clock skew, a forged block) wraps to a huge value: not believed.
    if units > 10 << 16 {
        return None;
    }
    Some(std::time::Duration::from_micros(
        u64::from(units) * 1_000_000 / 65_536,
    ))
}

/// What the unit has sent of its own stream, for its SR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub packets: u32,
    pub octets: u32,
    /// The RTP timestamp of the report's instant.
    pub rtp_timestamp: u32,
}

/// Writes one compound report into `out` (cleared first): an SR when `sent` has packets (an
/// RR otherwise) with `block` if any, an SDES with `cname`, and a BYE when `bye`.
pub fn write_report(
    out: &mut Vec<u8>,
    ssrc: u32,
    ntp: u64,
    sent: Option<Sent>,
    block: Option<ReportBlock>,
    cname: &str,
    bye: bool,
) {
    out.clear();
    let count = u8::from(block.is_some());
    let start = out.len();
    match sent {
        Some(s) => {
            out.extend_from_slice(&[0x80 | count, SR, 0, 0]);
            out.extend_from_slice(&ssrc.to_be_bytes());
            out.extend_from_slice(&ntp.to_be_bytes());
            out.extend_from_slice(&s.rtp_timestamp.to_be_bytes());
            out.extend_from_slice(&s.packets.to_be_bytes());
            out.extend_from_slice(&s.octets.to_be_bytes());
        }
        None => {
            out.extend_from_slice(&[0x80 | count, RR, 0, 0]);
            out.extend_from_slice(&ssrc.to_be_bytes());
        }
    }
    if let Some(b) = block {
        b.write(out);
    }
    set_length(out, start);
    // SDES: one chunk, the CNAME (RFC 3550 §6.5.1), ended by null octets to a 32-bit word.
    let start = out.len();
    out.extend_from_slice(&[0x81, SDES, 0, 0]);
    out.extend_from_slice(&ssrc.to_be_bytes());
    let name = &cname.as_bytes()[..cname.len().min(255)];
    out.push(1);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    set_length(out, start);
    if bye {
        let start = out.len();
        out.extend_from_slice(&[0x81, BYE, 0, 0]);
        out.extend_from_slice(&ssrc.to_be_bytes());
        set_length(out, start);
    }
}

/// Sets the length field of the packet that begins at `start` and runs to the end of `out`.
fn set_length(out: &mut [u8], start: usize) {
    let words = ((out.len() - start) / 4 - 1) as u16;
    out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
}

/// The time to the next report (RFC 3550 §6.2, §6.3.1): the 5 s minimum for a two-party
/// call, halved before the first report, randomised over 0.5–1.5 of that and divided by
/// e − 3/2 to compensate for timer reconsideration. `random` is a value in 0..=u16::MAX.
pub fn interval(first: bool, random: u16) -> std::time::Duration {
    let minimum = if first { 2.5 } else { 5.0 };
    let factor = 0.5 + f64::from(random) / f64::from(u16::MAX);
    std::time::Duration::from_secs_f64(minimum * factor / 1.218_281_828)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_parses_back_as_written() {
        let block = ReportBlock {
            ssrc: 7,
            fraction_lost: 25,
            cumulative_lost: -3,
            highest_sequence: 70_000,
            jitter: 12,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65_536,
        };
        let mut out = Vec::new();
        let sent = Sent {
            packets: 10,
            octets: 1600,
            rtp_timestamp: 99,
        };
        write_report(
            &mut out,
            42,
            1 << 32,
            Some(sent),
            Some(block),
            "vigil",
            true,
        );
        let items = parse(&out).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(
            items[0],
            Item::Sender {
                ssrc: 42,
                info: SenderInfo {
                    ntp: 1 << 32,
                    rtp_timestamp: 99,
                    packets: 10,
                    octets: 1600
                },
                blocks: vec![block],
            }
        );
        assert_eq!(items[1], Item::Other(SDES));
        assert_eq!(items[2], Item::Bye { sources: vec![42] });
    }

    #[test]
    fn loss_and_wrap_are_counted_by_sequence_number() {
        let mut r = Reception::default();
        // 65_530..=65_535 then 0..=9, with 2 and 3 missing: 16 expected, 14 received.
        for seq in (65_530u16..=65_535)
            .chain(0..10)
            .filter(|s| *s != 2 && *s != 3)
        {
            r.packet(1, seq, Some((u32::from(seq) * 160, u32::from(seq) * 160)));
        }
        let block = r.block(0).unwrap();
        assert_eq!(block.cumulative_lost, 2);
        assert_eq!(block.highest_sequence, (1 << 16) + 9);
        assert_eq!(block.fraction_lost, (2 * 256 / 16) as u8);
        // The next interval lost nothing.
        r.packet(1, 10, None);
        assert_eq!(r.block(0).unwrap().fraction_lost, 0);
    }

    #[test]
    fn jitter_follows_arrival_variation() {
        let mut steady = Reception::default();
        let mut shaky = Reception::default();
        for i in 0..200u32 {
            steady.packet(1, i as u16, Some((i * 160, i * 160 + 1000)));
            let wobble = if i % 2 == 0 { 0 } else { 80 };
            shaky.packet(1, i as u16, Some((i * 160, i * 160 + 1000 + wobble)));
            // An event held for a second repeats one timestamp: no jitter from it.
            steady.packet(1, i as u16, None);
        }
        assert_eq!(steady.jitter(), 0);
        // |D| = 80 every packet: J converges to 80.
        assert!((75..=80).contains(&shaky.jitter()), "{}", shaky.jitter());
    }

    #[test]
    fn round_trip_is_read_from_lsr_and_dlsr() {
        // SR sent at t = 10 s, held 0.5 s by the far end, back at t = 10.6 s: 100 ms.
        let sent = ntp_from(std::time::Duration::from_secs(10));
        let block = ReportBlock {
            ssrc: 1,
            fraction_lost: 0,
            cumulative_lost: 0,
            highest_sequence: 0,
            jitter: 0,
            last_sr: middle32(sent),
            delay_since_last_sr: 32_768,
        };
        let rtt = round_trip(&block, ntp_from(std::time::Duration::from_millis(10_600))).unwrap();
        assert!((99..=101).contains(&rtt.as_millis()), "{rtt:?}");
        let never = ReportBlock {
            last_sr: 0,
            ..block
        };
        assert_eq!(round_trip(&never, 0), None);
    }

    #[test]
    fn malformed_compounds_are_refused() {
        let mut good = Vec::new();
        write_report(&mut good, 1, 0, None, None, "x", false);
        assert!(parse(&good).is_ok());
        // An SDES alone is reduced-size RTCP (RFC 5506): read, nothing in it used.
        assert_eq!(parse(&good[8..]), Ok(vec![Item::Other(SDES)]));
        // A length that runs past the datagram.
        assert_eq!(parse(&good[..good.len() - 4]), Err(RtcpError::Length));
        // Version 1.
        let mut v1 = good.clone();
        v1[0] = 0x40;
        assert_eq!(parse(&v1), Err(RtcpError::Version(1)));
        // Padding on the first of two packets.
        let mut pad = good.clone();
        pad[0] |= 0x20;
        assert_eq!(parse(&pad), Err(RtcpError::Padding));
        // A report count larger than the packet.
        let mut count = good.clone();
        count[0] = 0x81;
        assert_eq!(parse(&count), Err(RtcpError::Truncated));
        assert_eq!(parse(&[]), Err(RtcpError::Truncated));
    }
}
