//! One frame's exchange with a DC-09 receiver, as a sans-IO state machine: the frame out, the
//! receiver's answer in, until an `ACK`, a `DUH` or a failure (ANSI/SIA DC-09-2013 §5.3–§5.5).
//!
//! The caller owns the socket and the clock. It asks [`Exchange::start`] for the frame's bytes,
//! sends them, and hands [`Exchange::handle`] what came back (or that nothing did) together
//! with the unit's wall time; the answer is an [`Outcome`]: send these bytes, done, or failed
//! with an [`ExchangeFailure`]. Everything the protocol decides lives here: the ACK must carry
//! this frame's sequence number, account and encryption, and on an encrypted link a timestamp
//! inside the time window; only a `NAK` that decrypts with the link's key moves the clock;
//! a frame is resent after a `NAK` up to [`MAX_NAKS`] times, and over UDP after silence up to
//! [`UDP_SENDS`] sends in all.

use std::time::Duration;

use chrono::NaiveDateTime;
use vigil_core::Timestamp;

use super::{format_timestamp, Dc09Error, Dc09Key, Frame, MessageId};

/// How often a frame is resent after a NAK before the attempt fails.
pub const MAX_NAKS: u32 = 3;
/// UDP datagrams get lost: sends per attempt (NAKed ones included) before silence fails it.
pub const UDP_SENDS: u32 = 3;
/// How far an encrypted ACK's timestamp may trail this unit's (resynchronised) clock: the
/// window DC-09 receivers apply to the frames they take, seen from the sender's side.
pub const ACK_WINDOW_BEHIND_MS: i64 = 20_000;
/// How far an encrypted ACK's timestamp may lead this unit's (resynchronised) clock.
pub const ACK_WINDOW_AHEAD_MS: i64 = 40_000;

/// The sequence number after `seq`: 0001–9999, then 0001 again (0000 is never sent).
pub fn next_sequence(seq: u16) -> u16 {
    if seq >= 9999 {
        1
    } else {
        seq + 1
    }
}

/// What the transport under the frames guarantees, which decides what silence means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reliability {
    /// TCP: a frame arrives or the connection fails; silence means the receiver did not answer.
    Stream,
    /// UDP: a datagram or its answer may be lost on the way; silence is worth a resend.
    Datagram,
}

/// A DC-09 link as the frames name it: who the unit is to the receiver, the key, the transport.
#[derive(Clone, Debug)]
pub struct Link {
    /// The unit's account (`#acct`), upper-case hex.
    pub account: String,
    /// Receiver number (`R`), upper-case hex.
    pub receiver_number: String,
    /// Account prefix (`L`), upper-case hex.
    pub line_prefix: String,
    /// The AES key; `None` sends in clear.
    pub key: Option<Dc09Key>,
    /// TCP or UDP.
    pub reliability: Reliability,
}

/// What came back after the caller sent a frame.
#[derive(Clone, Copy, Debug)]
pub enum Answer<'a> {
    /// The receiver's reply: one frame as read from the connection or the datagram.
    Reply(&'a [u8]),
    /// Nothing within the answer timeout, which was this long.
    Silence(Duration),
    /// Sending the frame or reading the reply failed (resolve, connect, write, read).
    Broken(&'a Dc09Error),
}

/// The receiver's verdict on a frame it answered for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `ACK`: the receiver has the event.
    Ack,
    /// `DUH`: the receiver will not take this account, message type or key.
    Duh,
}

/// What the caller does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send these bytes (the frame, first or again, stamped with the current time) and hand
    /// the answer to [`Exchange::handle`].
    Send(Vec<u8>),
    /// The exchange is over with the receiver's verdict.
    Done(Verdict),
    /// The exchange is over without one.
    Failed(ExchangeFailure),
}

/// The NAKs a frame got, for the failure that ends its exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naks {
    /// How many.
    pub count: u32,
    /// The time the last one carried, if any.
    pub receiver_time: Option<NaiveDateTime>,
}

impl std::fmt::Display for Naks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NAK {} times (receiver time {})",
            self.count,
            self.receiver_time.map(format_timestamp).unwrap_or_default()
        )
    }
}

/// ` (earlier: …)` after a failure that followed NAKs, nothing otherwise.
fn earlier_naks(naks: &Option<Naks>) -> String {
    naks.as_ref()
        .map(|n| format!(" (earlier: {n})"))
        .unwrap_or_default()
}

/// Why a frame's exchange ended without an `ACK` or a `DUH`. The texts are what operators and
/// logs read, after `DC-09 <receiver>: `.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeFailure {
    /// The frame could not be built (too long, or a key that does not fit).
    #[error("{0}")]
    Frame(Dc09Error),
    /// The answer does not parse. It may still be an ACK the receiver meant, so the frame may
    /// have been taken: the attempt sends no second copy.
    #[error(
        "the receiver's answer could not be read ({0}); check key and key_format with the centre"
    )]
    Unreadable(Dc09Error),
    /// An encrypted ACK whose timestamp is not within the window of the unit's clock: on an
    /// encrypted link the sequence number and account travel in clear, so only the encrypted
    /// timestamp proves the ACK is fresh and not a recorded one relabelled (§5.5.1.9).
    #[error(
        "encrypted ACK refused, its timestamp ({}) is not within the time window of this unit's clock",
        .timestamp.map(format_timestamp).unwrap_or_else(|| "none".into())
    )]
    AckOutsideTimeWindow {
        /// The time the ACK carried, if any.
        timestamp: Option<NaiveDateTime>,
    },
    /// An ACK with another sequence number or account than the frame's, or in clear for an
    /// encrypted frame (or the other way round).
    #[error("ACK for sequence {seq} / another account, expected {expected}")]
    AckForAnotherFrame {
        /// The sequence number the ACK carried.
        seq: u16,
        /// The frame's.
        expected: u16,
    },
    /// A NAK in clear to an encrypted frame: the receiver could not decrypt it. Resending the
    /// same frame cannot help, nor should a forged NAK buy copies.
    #[error("NAK in clear to an encrypted frame: the receiver could not decrypt it; check key and key_format with the centre")]
    ClearNakToEncryptedFrame,
    /// The receiver NAKed the frame more than [`MAX_NAKS`] times.
    #[error("frame rejected, {0}")]
    TooManyNaks(Naks),
    /// Something other than ACK, NAK or DUH.
    #[error("answered {} instead of ACK/NAK/DUH", .0.as_str())]
    UnexpectedAnswer(MessageId),
    /// No answer within the timeout (over UDP, after [`UDP_SENDS`] sends).
    #[error("no answer from the receiver within {waited:?}{}", earlier_naks(.earlier))]
    NoAnswer {
        /// The answer timeout.
        waited: Duration,
        /// NAKs before the silence.
        earlier: Option<Naks>,
    },
    /// The network failed: the receiver could not be resolved, reached, written to or read.
    #[error("{error}{}", earlier_naks(.earlier))]
    Network {
        /// What failed.
        error: Dc09Error,
        /// NAKs before the failure.
        earlier: Option<Naks>,
    },
}

/// One frame's exchange: built for a link and a message, fed the receiver's answers.
#[derive(Debug)]
pub struct Exchange<'a> {
    link: &'a Link,
    /// Receiver clock minus the unit's, in milliseconds: learned from trusted NAKs.
    clock_offset_ms: i64,
    /// The frame; its timestamp is set anew for each send.
    frame: Frame,
    /// Frames sent so far.
    sends: u32,
    /// NAKs so far.
    naks: Option<Naks>,
    /// The end, once reached: later answers do not change it.
    end: Option<Outcome>,
}

impl<'a> Exchange<'a> {
    /// The exchange of frame `id` with sequence number `seq`, `data` (`#acct|…`, empty for a
    /// `NULL`) and `extended` data fields on `link`, whose clock is `clock_offset_ms` behind
    /// the receiver's as far as the link knows.
    pub fn new(
        link: &'a Link,
        clock_offset_ms: i64,
        seq: u16,
        id: MessageId,
        data: String,
        extended: Vec<String>,
    ) -> Exchange<'a> {
        Exchange {
            link,
            clock_offset_ms,
            frame: Frame {
                id,
                encrypted: link.key.is_some(),
                seq,
                receiver: Some(link.receiver_number.clone()),
                prefix: Some(link.line_prefix.clone()),
                account: Some(link.account.clone()),
                data,
                extended,
                timestamp: None,
            },
            sends: 0,
            naks: None,
            end: None,
        }
    }

    /// The frame's first transmission, stamped with `now` (the unit's wall time) corrected by
    /// the link's clock offset.
    pub fn start(&mut self, now: Timestamp) -> Outcome {
        match &self.end {
            Some(end) => end.clone(),
            None => self.transmit(now),
        }
    }

    /// What to do after `answer` came back at `now` (the unit's wall time).
    pub fn handle(&mut self, now: Timestamp, answer: Answer<'_>) -> Outcome {
        if let Some(end) = &self.end {
            return end.clone();
        }
        match answer {
            Answer::Reply(bytes) => self.reply(now, bytes),
            Answer::Silence(waited) => {
                if self.link.reliability == Reliability::Datagram && self.sends < UDP_SENDS {
                    return self.transmit(now);
                }
                self.fail(ExchangeFailure::NoAnswer {
                    waited,
                    earlier: self.naks.clone(),
                })
            }
            Answer::Broken(error) => self.fail(ExchangeFailure::Network {
                error: error.clone(),
                earlier: self.naks.clone(),
            }),
        }
    }

    /// Receiver clock minus the unit's, in milliseconds, as of now: the link keeps it for its
    /// next exchanges.
    pub fn clock_offset_ms(&self) -> i64 {
        self.clock_offset_ms
    }

    /// The frame's sequence number.
    pub fn seq(&self) -> u16 {
        self.frame.seq
    }

    /// How many times the frame has been sent.
    pub fn sends(&self) -> u32 {
        self.sends
    }

    /// The unit's time on the receiver's clock, as far as the link knows it.
    fn corrected_ms(&self, now: Timestamp) -> i64 {
        i64::try_from(now.as_millis())
            .unwrap_or(i64::MAX)
            .saturating_add(self.clock_offset_ms)
    }

    fn transmit(&mut self, now: Timestamp) -> Outcome {
        self.frame.timestamp =
            chrono::DateTime::from_timestamp_millis(self.corrected_ms(now)).map(|t| t.naive_utc());
        match self.frame.emit(self.link.key.as_ref()) {
            Ok(bytes) => {
                self.sends += 1;
                Outcome::Send(bytes)
            }
            Err(e) => self.fail(ExchangeFailure::Frame(e)),
        }
    }

    fn finish(&mut self, end: Outcome) -> Outcome {
        self.end = Some(end.clone());
        end
    }

    fn fail(&mut self, failure: ExchangeFailure) -> Outcome {
        self.finish(Outcome::Failed(failure))
    }

    fn reply(&mut self, now: Timestamp, bytes: &[u8]) -> Outcome {
        let key = self.link.key.as_ref();
        let reply = match Frame::parse(bytes, key) {
            Ok(f) => f,
            Err(e) => return self.fail(ExchangeFailure::Unreadable(e)),
        };
        match reply.id {
            MessageId::Ack
                if reply.seq == self.frame.seq
                    && reply
                        .account
                        .as_deref()
                        .is_none_or(|a| a.eq_ignore_ascii_case(&self.link.account))
                    && reply.encrypted == key.is_some() =>
            {
                if key.is_some() {
                    let ours = self.corrected_ms(now);
                    let fresh = reply.timestamp.is_some_and(|theirs| {
                        let skew = theirs.and_utc().timestamp_millis() - ours;
                        (-ACK_WINDOW_BEHIND_MS..=ACK_WINDOW_AHEAD_MS).contains(&skew)
                    });
                    if !fresh {
                        return self.fail(ExchangeFailure::AckOutsideTimeWindow {
                            timestamp: reply.timestamp,
                        });
                    }
                }
                self.finish(Outcome::Done(Verdict::Ack))
            }
            MessageId::Ack => self.fail(ExchangeFailure::AckForAnotherFrame {
                seq: reply.seq,
                expected: self.frame.seq,
            }),
            MessageId::Nak => self.nak(now, &reply),
            MessageId::Duh => self.finish(Outcome::Done(Verdict::Duh)),
            other => self.fail(ExchangeFailure::UnexpectedAnswer(other)),
        }
    }

    fn nak(&mut self, now: Timestamp, reply: &Frame) -> Outcome {
        let encrypted_link = self.link.key.is_some();
        // A receiver that could not decrypt our frame answers a NAK in clear: sending the
        // same frame again cannot help (nor should a forged NAK buy copies).
        if encrypted_link && !reply.encrypted {
            return self.fail(ExchangeFailure::ClearNakToEncryptedFrame);
        }
        // On an encrypted link only a NAK that decrypted with the link's key can move the
        // clock: a NAK in clear could come from anyone on the path, who would then steer the
        // timestamps towards a recorded ACK's. A plain link has no such ACK check to protect
        // (anyone on its path could forge its ACK outright), and every NAK on it is clear:
        // there the NAK's time is taken, so a unit whose clock is still at 1970 gets through.
        let trusted = reply.encrypted == encrypted_link;
        if let Some(theirs) = reply.timestamp.filter(|_| trusted) {
            let ours = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
            self.clock_offset_ms = theirs.and_utc().timestamp_millis().saturating_sub(ours);
        }
        let count = self.naks.as_ref().map_or(0, |n| n.count) + 1;
        let naks = Naks {
            count,
            receiver_time: reply.timestamp,
        };
        self.naks = Some(naks.clone());
        if count > MAX_NAKS {
            return self.fail(ExchangeFailure::TooManyNaks(naks));
        }
        self.transmit(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    /// 2026-12-05 05:55:03 UTC, a whole second: DC-09 timestamps carry seconds.
    const NOW: Timestamp = Timestamp::from_secs(1_796_450_103);

    fn link(key: Option<&[u8]>, reliability: Reliability) -> Link {
        Link {
            account: "1234".into(),
            receiver_number: "1".into(),
            line_prefix: "1".into(),
            key: key.map(|k| Dc09Key::new(k).unwrap()),
            reliability,
        }
    }

    fn exchange(link: &Link, offset_ms: i64) -> Exchange<'_> {
        Exchange::new(
            link,
            offset_ms,
            7,
            MessageId::AdmCid,
            "#1234|1101 01 003".into(),
            vec!["Iref 1 help button pressed".into()],
        )
    }

    fn at(ms: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .naive_utc()
    }

    fn now_ms() -> i64 {
        NOW.as_millis() as i64
    }

    /// The bytes of an answer as a receiver emits it: `id` for `seq` and `account`, encrypted
    /// under `key` if given, stamped `time`.
    fn answer(
        id: MessageId,
        seq: u16,
        account: Option<&str>,
        key: Option<&Dc09Key>,
        time: Option<NaiveDateTime>,
    ) -> Vec<u8> {
        Frame {
            id,
            encrypted: key.is_some(),
            seq,
            receiver: Some("1".into()),
            prefix: Some("1".into()),
            account: account.map(str::to_string),
            data: String::new(),
            extended: vec![],
            timestamp: time,
        }
        .emit(key)
        .unwrap()
    }

    fn sent(outcome: Outcome, key: Option<&Dc09Key>) -> Frame {
        match outcome {
            Outcome::Send(bytes) => Frame::parse(&bytes, key).unwrap(),
            other => panic!("expected a frame to send, got {other:?}"),
        }
    }

    fn failure(outcome: Outcome) -> ExchangeFailure {
        match outcome {
            Outcome::Failed(f) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn sequence_numbers_wrap_to_one() {
        assert_eq!(next_sequence(0), 1);
        assert_eq!(next_sequence(41), 42);
        assert_eq!(next_sequence(9999), 1);
    }

    #[test]
    fn a_plain_frame_is_acknowledged() {
        let link = link(None, Reliability::Stream);
        let mut x = exchange(&link, 0);
        let frame = sent(x.start(NOW), None);
        assert_eq!(frame.id, MessageId::AdmCid);
        assert_eq!(frame.seq, 7);
        assert_eq!(frame.account.as_deref(), Some("1234"));
        assert_eq!(frame.data, "#1234|1101 01 003");
        assert_eq!(frame.timestamp, Some(at(now_ms())));
        assert!(!frame.encrypted);
        let ack = answer(MessageId::Ack, 7, Some("1234"), None, None);
        assert_eq!(
            x.handle(NOW, Answer::Reply(&ack)),
            Outcome::Done(Verdict::Ack)
        );
        assert_eq!(x.sends(), 1);
    }

    #[test]
    fn the_frame_carries_the_links_clock() {
        let link = link(Some(KEY), Reliability::Stream);
        let key = link.key.clone();
        let mut x = exchange(&link, -5_000);
        let frame = sent(x.start(NOW), key.as_ref());
        assert!(frame.encrypted);
        assert_eq!(frame.timestamp, Some(at(now_ms() - 5_000)));
    }

    #[test]
    fn an_encrypted_ack_is_taken_only_inside_the_time_window() {
        let link = link(Some(KEY), Reliability::Stream);
        let key = link.key.clone();
        let cases = [
            (-ACK_WINDOW_BEHIND_MS, true),
            (-ACK_WINDOW_BEHIND_MS - 1_000, false),
            (ACK_WINDOW_AHEAD_MS, true),
            (ACK_WINDOW_AHEAD_MS + 1_000, false),
        ];
        for (skew, taken) in cases {
            let mut x = exchange(&link, 0);
            x.start(NOW);
            let ack = answer(
                MessageId::Ack,
                7,
                Some("1234"),
                key.as_ref(),
                Some(at(now_ms() + skew)),
            );
            let outcome = x.handle(NOW, Answer::Reply(&ack));
            if taken {
                assert_eq!(outcome, Outcome::Done(Verdict::Ack), "skew {skew} ms");
            } else {
                assert_eq!(
                    failure(outcome),
                    ExchangeFailure::AckOutsideTimeWindow {
                        timestamp: Some(at(now_ms() + skew))
                    },
                    "skew {skew} ms"
                );
            }
        }
    }

    /// A recorded ACK relabelled to this frame's sequence number and account: everything in
    /// clear matches, only its encrypted timestamp (ten minutes old) gives it away.
    #[test]
    fn a_replayed_encrypted_ack_with_an_old_timestamp_is_refused() {
        let link = link(Some(KEY), Reliability::Stream);
        let key = link.key.clone();
        let old = at(now_ms() - 600_000);
        let recorded = answer(MessageId::Ack, 7, Some("1234"), key.as_ref(), Some(old));
        let mut x = exchange(&link, 0);
        x.start(NOW);
        let f = failure(x.handle(NOW, Answer::Reply(&recorded)));
        assert_eq!(
            f.to_string(),
            "encrypted ACK refused, its timestamp (05:45:03,12-05-2026) is not within the time window of this unit's clock"
        );
        // The same ACK without a timestamp proves nothing either.
        let bare = answer(MessageId::Ack, 7, Some("1234"), key.as_ref(), None);
        let mut x = exchange(&link, 0);
        x.start(NOW);
        assert_eq!(
            failure(x.handle(NOW, Answer::Reply(&bare))).to_string(),
            "encrypted ACK refused, its timestamp (none) is not within the time window of this unit's clock"
        );
    }

    #[test]
    fn an_ack_for_another_frame_fails() {
        let link = link(Some(KEY), Reliability::Stream);
        let key = link.key.clone();
        let fresh = Some(at(now_ms()));
        let other_seq = answer(MessageId::Ack, 8, Some("1234"), key.as_ref(), fresh);
        let other_account = answer(MessageId::Ack, 7, Some("9999"), key.as_ref(), fresh);
        let in_clear = answer(MessageId::Ack, 7, Some("1234"), None, fresh);
        for (bytes, seq) in [(other_seq, 8), (other_account, 7), (in_clear, 7)] {
            let mut x = exchange(&link, 0);
            x.start(NOW);
            let f = failure(x.handle(NOW, Answer::Reply(&bytes)));
            assert_eq!(f, ExchangeFailure::AckForAnotherFrame { seq, expected: 7 });
            assert_eq!(
                f.to_string(),
                format!("ACK for sequence {seq} / another account, expected 7")
            );
            assert_eq!(x.sends(), 1);
        }
    }

    #[test]
    fn a_nak_in_clear_on_an_encrypted_link_ends_the_attempt_and_leaves_the_clock() {
        let link = link(Some(KEY), Reliability::Stream);
        let mut x = exchange(&link, 1_500);
        x.start(NOW);
        let forged = answer(
            MessageId::Nak,
            0,
            None,
            None,
            Some(at(now_ms() + 3_600_000)),
        );
        let f = failure(x.handle(NOW, Answer::Reply(&forged)));
        assert_eq!(f, ExchangeFailure::ClearNakToEncryptedFrame);
        assert!(f.to_string().contains("check key and key_format"));
        assert_eq!(x.clock_offset_ms(), 1_500, "the clock did not move");
        assert_eq!(x.sends(), 1, "no copy resent");
    }

    /// The receiver NAKs a frame an hour fast with its own time: the link adopts it and the
    /// frame goes out again, same sequence number, stamped with the receiver's time.
    #[test]
    fn a_trusted_nak_moves_the_clock_and_the_resent_frame_carries_the_receivers_time() {
        let link = link(Some(KEY), Reliability::Stream);
        let key = link.key.clone();
        let mut x = exchange(&link, 3_600_000);
        let first = sent(x.start(NOW), key.as_ref());
        assert_eq!(first.timestamp, Some(at(now_ms() + 3_600_000)));
        let theirs = at(now_ms() - 2_000);
        let nak = answer(MessageId::Nak, 0, None, key.as_ref(), Some(theirs));
        // The answer arrives 300 ms after the frame left.
        let later = Timestamp(NOW.0 + 300);
        let again = sent(x.handle(later, Answer::Reply(&nak)), key.as_ref());
        assert_eq!(x.clock_offset_ms(), -2_300);
        assert_eq!(again.seq, first.seq, "a resend keeps its sequence number");
        assert_eq!(
            again.timestamp,
            Some(theirs),
            "stamped on the receiver's clock"
        );
        assert_eq!(again.data, first.data);
        // Its ACK is judged on the receiver's clock too.
        let ack = answer(MessageId::Ack, 7, Some("1234"), key.as_ref(), Some(theirs));
        assert_eq!(
            x.handle(later, Answer::Reply(&ack)),
            Outcome::Done(Verdict::Ack)
        );
    }

    /// A plain link's NAKs are all in clear: a unit booted at 1970 takes the receiver's time.
    #[test]
    fn a_plain_links_nak_sets_a_1970_clock_right() {
        let link = link(None, Reliability::Stream);
        let mut x = exchange(&link, -now_ms() + 30_000);
        let first = sent(x.start(NOW), None);
        assert_eq!(first.timestamp, Some(at(30_000)));
        let nak = answer(MessageId::Nak, 0, None, None, Some(at(now_ms())));
        let again = sent(x.handle(NOW, Answer::Reply(&nak)), None);
        assert_eq!(x.clock_offset_ms(), 0);
        assert_eq!(again.timestamp, Some(at(now_ms())));
    }

    #[test]
    fn too_many_naks_fail_the_attempt() {
        let link = link(None, Reliability::Stream);
        let mut x = exchange(&link, 0);
        x.start(NOW);
        let theirs = at(now_ms());
        let nak = answer(MessageId::Nak, 0, None, None, Some(theirs));
        for _ in 0..MAX_NAKS {
            sent(x.handle(NOW, Answer::Reply(&nak)), None);
        }
        let f = failure(x.handle(NOW, Answer::Reply(&nak)));
        assert_eq!(
            f.to_string(),
            "frame rejected, NAK 4 times (receiver time 05:55:03,12-05-2026)"
        );
        assert_eq!(x.sends(), MAX_NAKS + 1);
    }

    #[test]
    fn udp_resends_on_silence_up_to_the_limit() {
        let link = link(None, Reliability::Datagram);
        let mut x = exchange(&link, 0);
        let first = sent(x.start(NOW), None);
        let waited = Duration::from_millis(1500);
        let later = Timestamp(NOW.0 + 1_500);
        for _ in 1..UDP_SENDS {
            let again = sent(x.handle(later, Answer::Silence(waited)), None);
            assert_eq!(again.seq, first.seq);
        }
        let f = failure(x.handle(later, Answer::Silence(waited)));
        assert_eq!(
            f,
            ExchangeFailure::NoAnswer {
                waited,
                earlier: None
            }
        );
        assert_eq!(f.to_string(), "no answer from the receiver within 1.5s");
        assert_eq!(x.sends(), UDP_SENDS);
    }

    #[test]
    fn tcp_silence_fails_at_once_and_names_the_naks_before() {
        let link = link(None, Reliability::Stream);
        let mut x = exchange(&link, 0);
        x.start(NOW);
        let nak = answer(MessageId::Nak, 0, None, None, Some(at(now_ms())));
        sent(x.handle(NOW, Answer::Reply(&nak)), None);
        let f = failure(x.handle(NOW, Answer::Silence(Duration::from_secs(3))));
        assert_eq!(
            f.to_string(),
            "no answer from the receiver within 3s (earlier: NAK 1 times (receiver time 05:55:03,12-05-2026))"
        );
    }

    #[test]
    fn a_network_error_fails_the_attempt() {
        let link = link(None, Reliability::Datagram);
        let mut x = exchange(&link, 0);
        x.start(NOW);
        let error = Dc09Error::Io("cannot connect to 127.0.0.1:9: refused".into());
        let f = failure(x.handle(NOW, Answer::Broken(&error)));
        assert_eq!(f.to_string(), "cannot connect to 127.0.0.1:9: refused");
        assert_eq!(x.sends(), 1);
    }

    #[test]
    fn duh_ends_the_exchange() {
        let link = link(None, Reliability::Stream);
        let mut x = exchange(&link, 0);
        x.start(NOW);
        let duh = answer(MessageId::Duh, 7, Some("1234"), None, None);
        assert_eq!(
            x.handle(NOW, Answer::Reply(&duh)),
            Outcome::Done(Verdict::Duh)
        );
        // Whatever comes after the end does not change it.
        let ack = answer(MessageId::Ack, 7, Some("1234"), None, None);
        assert_eq!(
            x.handle(NOW, Answer::Reply(&ack)),
            Outcome::Done(Verdict::Duh)
        );
    }

    #[test]
    fn an_answer_that_is_not_ack_nak_or_duh_fails() {
        let link = link(None, Reliability::Stream);
        let mut x = exchange(&link, 0);
        x.start(NOW);
        let null = answer(MessageId::Null, 7, Some("1234"), None, None);
        let f = failure(x.handle(NOW, Answer::Reply(&null)));
        assert_eq!(f, ExchangeFailure::UnexpectedAnswer(MessageId::Null));
        assert_eq!(f.to_string(), "answered NULL instead of ACK/NAK/DUH");
    }

    /// An ACK under another key may be one the receiver meant: no second copy is sent.
    #[test]
    fn an_unreadable_answer_fails_without_a_second_copy() {
        let link = link(Some(KEY), Reliability::Datagram);
        let other = Dc09Key::new(b"another key 16 b").unwrap();
        let mut x = exchange(&link, 0);
        x.start(NOW);
        let ack = answer(
            MessageId::Ack,
            7,
            Some("1234"),
            Some(&other),
            Some(at(now_ms())),
        );
        let f = failure(x.handle(NOW, Answer::Reply(&ack)));
        assert!(matches!(f, ExchangeFailure::Unreadable(_)), "{f:?}");
        assert!(
            f.to_string()
                .starts_with("the receiver's answer could not be read ("),
            "{f}"
        );
        assert!(f
            .to_string()
            .ends_with("check key and key_format with the centre"));
        assert_eq!(x.sends(), 1);
    }
}
