//! SIA DC-09 route against the simulated receiver: ACK, NAK with time resync, DUH, lost
//! answers, CRC errors on the line, refused connections, plain and encrypted frames.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vigil::centre::dc09::{self, frame, Dc09Key, Dc09Link, Dc09Payload, Frame, MessageId};
use vigil::centre::receiver::dc09::{Dc09Answer, Dc09Receiver, Dc09ReceiverConfig};
use vigil::config::{Dc09Protocol, Dc09Route};
use vigil::core::{
    Alarm, AlarmCause, AlarmId, AlarmRef, Delivery, DeliveryResult, Device, DeviceId, DeviceKind,
    RouteId, Timestamp,
};

const AES256: &[u8] = b"0123456789abcdef0123456789abcdef";

fn delivery(cause: AlarmCause) -> Delivery {
    let raised_at = Timestamp::now();
    Delivery {
        alarm: Alarm {
            id: AlarmId(42),
            reference: AlarmRef::new(AlarmId(42), raised_at),
            cause,
            device: Some(Device {
                id: DeviceId(0x00C0FFEE),
                kind: DeviceKind::Personal,
                zone: 3,
                location: "Bedroom".into(),
            }),
            raised_at,
            evidence: None,
        },
        route: RouteId(0),
        attempt: 1,
    }
}

fn route(receiver: String, protocol: Dc09Protocol, key: Option<&[u8]>) -> Dc09Route {
    Dc09Route {
        receiver,
        protocol,
        receiver_number: "1".into(),
        line_prefix: "1".into(),
        key: key.map(|k| k.to_vec().into()),
        answer_timeout: Duration::from_millis(1500),
        link_test: Duration::ZERO,
        payload: vigil::centre::dc09::Dc09Payload::AdmCid,
    }
}

async fn receiver(protocol: Dc09Protocol, key: Option<&[u8]>) -> Dc09Receiver {
    Dc09Receiver::start(Dc09ReceiverConfig {
        protocol,
        key: key.map(<[u8]>::to_vec),
        receiver_number: "1".into(),
        accounts: vec!["1234".into()],
        print: true,
    })
    .await
    .expect("receiver starts")
}

async fn link(r: &Dc09Receiver, protocol: Dc09Protocol, key: Option<&[u8]>) -> Dc09Link {
    Dc09Link::start(
        "dc09",
        &route(r.addr().to_string(), protocol, key),
        "1234",
        Dc09Payload::AdmCid,
    )
    .await
    .expect("link starts")
}

fn assert_acked(result: &DeliveryResult) {
    assert!(
        matches!(result, DeliveryResult::Acked { callback: None, .. }),
        "{result:?}"
    );
}

#[tokio::test]
async fn plain_tcp_alarm_is_acknowledged() {
    let r = receiver(Dc09Protocol::Tcp, None).await;
    let l = link(&r, Dc09Protocol::Tcp, None).await;
    assert_acked(&l.deliver(&delivery(AlarmCause::Help)).await);
    let got = r.received();
    assert_eq!(got.len(), 1);
    let f = got[0].frame.as_ref().expect("readable");
    assert_eq!(f.id, MessageId::AdmCid);
    assert!(!f.encrypted);
    assert_eq!(f.data, "#1234|1101 01 003");
    assert_eq!(got[0].answered, Some(MessageId::Ack));
    assert!(
        got[0].display.contains("help button pressed"),
        "{}",
        got[0].display
    );
    assert!(got[0].display.contains("Bedroom"));
}

#[tokio::test]
async fn encrypted_udp_alarm_is_acknowledged() {
    let r = receiver(Dc09Protocol::Udp, Some(AES256)).await;
    let l = link(&r, Dc09Protocol::Udp, Some(AES256)).await;
    assert_acked(&l.deliver(&delivery(AlarmCause::Fall)).await);
    let got = r.received();
    assert_eq!(got.len(), 1);
    let raw = String::from_utf8_lossy(&got[0].raw);
    assert!(raw.contains("\"*ADM-CID\""), "{raw}");
    assert!(!raw.contains("1100"), "event visible in clear: {raw}");
    assert_eq!(
        got[0].frame.as_ref().map(|f| f.data.as_str()),
        Some("#1234|1100 01 003")
    );
}

#[tokio::test]
async fn encrypted_tcp_aes128_and_aes192() {
    for key in [&b"0123456789ABCDEF"[..], &b"0123456789ABCDEF01234567"[..]] {
        let r = receiver(Dc09Protocol::Tcp, Some(key)).await;
        let l = link(&r, Dc09Protocol::Tcp, Some(key)).await;
        assert_acked(&l.deliver(&delivery(AlarmCause::MainsLost)).await);
        assert_eq!(
            r.received()[0].frame.as_ref().map(|f| f.encrypted),
            Some(true)
        );
    }
}

#[tokio::test]
async fn nak_resynchronises_time_and_resends() {
    let r = receiver(Dc09Protocol::Tcp, Some(AES256)).await;
    let l = link(&r, Dc09Protocol::Tcp, Some(AES256)).await;
    // Our clock is an hour fast: the receiver refuses the timestamp.
    l.skew_clock(3_600_000).await;
    assert_acked(&l.deliver(&delivery(AlarmCause::Help)).await);
    let got = r.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].answered, Some(MessageId::Nak));
    assert!(got[0]
        .problem
        .as_deref()
        .unwrap_or("")
        .contains("timestamp"));
    assert_eq!(got[1].answered, Some(MessageId::Ack));
    let (a, b) = (
        got[0].frame.as_ref().unwrap(),
        got[1].frame.as_ref().unwrap(),
    );
    assert_eq!(a.seq, b.seq, "a resend keeps its sequence number");
    // The next alarm goes out with the corrected clock at once.
    assert_acked(&l.deliver(&delivery(AlarmCause::Help)).await);
    assert_eq!(r.received().len(), 3);
    assert_eq!(r.received()[2].answered, Some(MessageId::Ack));
}

/// A wall clock the test steps, as NTP steps a Raspberry Pi's (no real-time clock) at boot.
struct SteppedClock(std::sync::atomic::AtomicI64);

impl vigil::clock::Clock for SteppedClock {
    fn monotonic(&self) -> Duration {
        vigil::clock::SystemClock.monotonic()
    }
    fn wall(&self) -> Timestamp {
        let offset = self.0.load(std::sync::atomic::Ordering::SeqCst);
        Timestamp((Timestamp::now().0 as i64 + offset).max(0) as u64)
    }
}

/// The frames carry the unit's clock, not one the link reads itself: booted at 1970 the first
/// frame says 1970, the receiver NAKs it with its time, and the resent frame is taken; when NTP
/// then steps the clock forward by decades, the next frame is NAKed once more and resynced.
#[tokio::test]
async fn frames_carry_the_units_clock_and_a_nak_resyncs_it_at_boot_and_after_a_step() {
    use chrono::Datelike;
    use vigil::clock::Clock;
    let r = receiver(Dc09Protocol::Tcp, Some(AES256)).await;
    let at_1970 = 10_000 - Timestamp::now().0 as i64;
    let clock = std::sync::Arc::new(SteppedClock(std::sync::atomic::AtomicI64::new(at_1970)));
    let l = Dc09Link::start_with_clock(
        "dc09",
        &route(r.addr().to_string(), Dc09Protocol::Tcp, Some(AES256)),
        "1234",
        Dc09Payload::AdmCid,
        clock.clone(),
    )
    .await
    .expect("link starts");
    assert!(!clock.wall_plausible());
    assert_acked(&l.deliver(&delivery(AlarmCause::Help)).await);
    let got = r.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    let stamp = |i: usize| {
        r.received()[i]
            .frame
            .as_ref()
            .and_then(|f| f.timestamp)
            .expect("a timestamp")
    };
    assert_eq!(
        stamp(0).year(),
        1970,
        "the first frame's time is the unit's"
    );
    assert_eq!(got[0].answered, Some(MessageId::Nak));
    assert_eq!(got[1].answered, Some(MessageId::Ack));

    // NTP sets the clock right: the offset learned at 1970 is now decades out.
    clock.0.store(0, std::sync::atomic::Ordering::SeqCst);
    assert_acked(&l.deliver(&delivery(AlarmCause::Help)).await);
    let got = r.received();
    assert_eq!(got.len(), 4, "{got:#?}");
    assert_eq!(got[2].answered, Some(MessageId::Nak));
    assert_eq!(got[3].answered, Some(MessageId::Ack));
    let skew = (stamp(3).and_utc().timestamp_millis() - Timestamp::now().0 as i64).abs();
    assert!(
        skew < 60_000,
        "the resent frame is {skew} ms off the receiver's time"
    );
}

#[tokio::test]
async fn repeated_nak_fails_the_attempt() {
    let r = receiver(Dc09Protocol::Tcp, None).await;
    r.set_default(Dc09Answer::Nak);
    let l = link(&r, Dc09Protocol::Tcp, None).await;
    let result = l.deliver(&delivery(AlarmCause::Help)).await;
    assert!(
        matches!(&result, DeliveryResult::Failed { reason } if reason.contains("NAK")),
        "{result:?}"
    );
    assert_eq!(r.received().len(), 4);
}

#[tokio::test]
async fn duh_is_a_configuration_error() {
    let r = receiver(Dc09Protocol::Tcp, None).await;
    // An account the receiver does not know.
    let l = Dc09Link::start(
        "dc09",
        &route(r.addr().to_string(), Dc09Protocol::Tcp, None),
        "9999",
        Dc09Payload::AdmCid,
    )
    .await
    .unwrap();
    let result = l.deliver(&delivery(AlarmCause::Help)).await;
    assert!(
        matches!(&result, DeliveryResult::Declined { reason } if reason.contains("DUH")),
        "{result:?}"
    );
    assert_eq!(r.received()[0].answered, Some(MessageId::Duh));
}

#[tokio::test]
async fn wrong_key_is_declined() {
    let r = receiver(Dc09Protocol::Udp, Some(AES256)).await;
    let l = link(
        &r,
        Dc09Protocol::Udp,
        Some(b"ffffffffffffffffffffffffffffffff"),
    )
    .await;
    let result = l.deliver(&delivery(AlarmCause::Help)).await;
    assert!(
        matches!(result, DeliveryResult::Declined { .. }),
        "{result:?}"
    );
    // A plain frame on an encrypted line is refused too.
    let l = link(&r, Dc09Protocol::Udp, None).await;
    assert!(matches!(
        l.deliver(&delivery(AlarmCause::Help)).await,
        DeliveryResult::Declined { .. }
    ));
}

#[tokio::test]
async fn silent_receiver_fails_over_tcp() {
    let r = receiver(Dc09Protocol::Tcp, None).await;
    r.set_default(Dc09Answer::Silent);
    let l = link(&r, Dc09Protocol::Tcp, None).await;
    let result = l.deliver(&delivery(AlarmCause::Help)).await;
    assert!(
        matches!(&result, DeliveryResult::Failed { reason } if reason.contains("no answer")),
        "{result:?}"
    );
    assert_eq!(r.received().len(), 1);
}

#[tokio::test]
async fn lost_udp_answer_is_resent_then_acknowledged() {
    let r = receiver(Dc09Protocol::Udp, None).await;
    r.script(&[Dc09Answer::Silent]);
    let l = link(&r, Dc09Protocol::Udp, None).await;
    assert_acked(&l.deliver(&delivery(AlarmCause::Help)).await);
    let got = r.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].answered, None);
    assert_eq!(got[1].answered, Some(MessageId::Ack));
}

#[tokio::test]
async fn refused_tcp_connection_fails_clearly() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let l = Dc09Link::start(
        "dc09",
        &route(addr.to_string(), Dc09Protocol::Tcp, None),
        "1234",
        Dc09Payload::AdmCid,
    )
    .await
    .unwrap();
    let result = l.deliver(&delivery(AlarmCause::Help)).await;
    assert!(
        matches!(&result, DeliveryResult::Failed { reason } if reason.contains("cannot connect")),
        "{result:?}"
    );
}

/// A TCP relay that flips one bit of the first frame it carries, as a bad line would.
async fn corrupting_relay(target: std::net::SocketAddr) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut inbound, _)) = listener.accept().await {
            let mut outbound = TcpStream::connect(target).await.unwrap();
            let corrupt = std::mem::replace(&mut first, false);
            tokio::spawn(async move {
                let mut frame = dc09::read_frame(&mut inbound).await.unwrap();
                if corrupt {
                    let i = frame.len() - 3;
                    frame[i] ^= 0x01;
                }
                outbound.write_all(&frame).await.unwrap();
                let reply = dc09::read_frame(&mut outbound).await.unwrap();
                inbound.write_all(&reply).await.unwrap();
            });
        }
    });
    addr
}

#[tokio::test]
async fn crc_mismatch_on_the_line_is_naked_and_resent() {
    let r = receiver(Dc09Protocol::Tcp, None).await;
    let relay = corrupting_relay(r.addr()).await;
    let l = Dc09Link::start(
        "dc09",
        &route(relay.to_string(), Dc09Protocol::Tcp, None),
        "1234",
        Dc09Payload::SiaDcs,
    )
    .await
    .unwrap();
    assert_acked(&l.deliver(&delivery(AlarmCause::Fall)).await);
    let got = r.received();
    assert_eq!(got.len(), 2);
    assert!(
        got[0].problem.as_deref().unwrap_or("").contains("CRC"),
        "{:?}",
        got[0].problem
    );
    assert_eq!(got[0].answered, Some(MessageId::Nak));
    assert_eq!(
        got[1].frame.as_ref().map(|f| f.data.as_str()),
        Some("#1234|Nri1/MA003")
    );
}

#[tokio::test]
async fn receiver_naks_a_bad_crc_sent_directly() {
    let r = receiver(Dc09Protocol::Tcp, None).await;
    let body = "\"NULL\"0001R1L1#1234[]";
    let bad = format!(
        "\n{:04X}{:04X}{body}\r",
        frame::crc16_arc(body.as_bytes()) ^ 1,
        body.len()
    );
    let mut s = TcpStream::connect(r.addr()).await.unwrap();
    s.write_all(bad.as_bytes()).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), dc09::read_frame(&mut s))
        .await
        .unwrap()
        .unwrap();
    let reply = Frame::parse(&reply, None).unwrap();
    assert_eq!(reply.id, MessageId::Nak);
    assert!(
        reply.timestamp.is_some(),
        "a NAK carries the receiver's time"
    );
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_millis(50), s.read_to_end(&mut rest)).await;
}

#[tokio::test]
async fn null_link_test_is_acknowledged_and_supervised() {
    let r = receiver(Dc09Protocol::Udp, Some(AES256)).await;
    let mut cfg = route(r.addr().to_string(), Dc09Protocol::Udp, Some(AES256));
    cfg.link_test = Duration::from_millis(100);
    let l = Dc09Link::start("dc09", &cfg, "1234", Dc09Payload::AdmCid)
        .await
        .unwrap();
    assert!(r.wait_for(2, Duration::from_secs(10)).await >= 2);
    let got = r.received();
    assert!(got
        .iter()
        .all(|g| g.frame.as_ref().map(|f| f.id) == Some(MessageId::Null)));
    assert!(got.iter().all(|g| g.answered == Some(MessageId::Ack)));
    assert_eq!(l.link_test().await, Ok(()));
    r.set_default(Dc09Answer::Silent);
    assert!(l.link_test().await.is_err());
}

fn unescape(s: &str) -> Vec<u8> {
    s.replace("\\n", "\n").replace("\\r", "\r").into_bytes()
}

/// Frames built by OpenSSL and Python (tests/data/make_dc09_vectors.sh), not by Vigil.
#[test]
fn known_answer_frames() {
    let text = include_str!("data/dc09_vectors.txt");
    let pad = text
        .lines()
        .find_map(|l| l.strip_prefix("pad "))
        .expect("pad line");
    let frame = Frame {
        id: MessageId::AdmCid,
        encrypted: false,
        seq: 1,
        receiver: Some("1".into()),
        prefix: Some("1".into()),
        account: Some("1234".into()),
        data: "#1234|1101 01 003".into(),
        extended: vec!["IBedroom: help button pressed".into()],
        timestamp: frame::parse_timestamp("14:30:00,11-25-2026"),
    };
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.starts_with("pad ")) {
        let (key, expected) = line.split_once(' ').expect("key and frame");
        let expected = unescape(expected);
        if key == "plain" {
            assert_eq!(frame.emit(None).unwrap(), expected);
            assert_eq!(Frame::parse(&expected, None).unwrap(), frame);
        } else {
            let key = Dc09Key::new(&hex::decode(key).unwrap()).unwrap();
            let mut enc = frame.clone();
            enc.encrypted = true;
            assert_eq!(
                String::from_utf8(enc.emit_with_pad(Some(&key), pad.as_bytes()).unwrap()).unwrap(),
                String::from_utf8(expected.clone()).unwrap()
            );
            assert_eq!(Frame::parse(&expected, Some(&key)).unwrap(), enc);
        }
        checked += 1;
    }
    assert_eq!(checked, 4);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = frame::parse_untrusted(&bytes);
        }

        #[test]
        fn framed_noise_never_panics(body in "[ -~]{0,120}") {
            let framed = format!("\n{:04X}{:04X}{body}\r", frame::crc16_arc(body.as_bytes()), body.len());
            let _ = frame::parse_untrusted(framed.as_bytes());
        }

        #[test]
        fn frames_round_trip(seq in 0u16..10000, acct in "[0-9A-F]{3,16}", data in "[ -Z^-{}~]{0,60}",
                             enc in any::<bool>(), keylen in prop::sample::select(vec![16usize, 24, 32])) {
            let key = Dc09Key::new(&vec![7u8; keylen]).unwrap();
            let f = Frame {
                id: MessageId::SiaDcs, encrypted: enc, seq, receiver: Some("12".into()),
                prefix: Some("3".into()), account: Some(acct), data, extended: vec![],
                timestamp: frame::parse_timestamp("01:02:03,04-05-2026"),
            };
            let bytes = f.emit(Some(&key)).unwrap();
            prop_assert_eq!(Frame::parse(&bytes, Some(&key)).unwrap(), f);
        }
    }
}

/// A receiver on TCP that answers the first frame it gets with an encrypted ACK made by
/// `answer` from the frame (parsed with the key) and the key.
async fn scripted_encrypted_receiver(
    key: &'static [u8],
    answer: fn(&Frame, &Dc09Key) -> Vec<u8>,
) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let key = Dc09Key::new(key).unwrap();
            let Ok(bytes) = dc09::read_frame(&mut stream).await else {
                continue;
            };
            let frame = Frame::parse(&bytes, Some(&key)).expect("the unit's frame parses");
            let _ = stream.write_all(&answer(&frame, &key)).await;
        }
    });
    addr
}

/// An encrypted ACK for `frame` as a receiver would send it, stamped `at`, with or without the
/// `|` after the pad.
fn encrypted_ack(frame: &Frame, key: &Dc09Key, at: chrono::NaiveDateTime, bar: bool) -> Vec<u8> {
    let tail = format!("]_{}", frame::format_timestamp(at));
    let sep = if bar { "|" } else { "" };
    let pad_len = (16 - (tail.len() + sep.len()) % 16) % 16;
    let plain = format!("{}{sep}{tail}", "P".repeat(pad_len));
    assert_eq!(plain.len() % 16, 0);
    let cipher = hex::encode_upper(key.encrypt(plain.as_bytes()).unwrap());
    let body = format!(
        "\"*ACK\"{:04}R{}L{}#{}[{cipher}",
        frame.seq,
        frame.receiver.as_deref().unwrap_or("0"),
        frame.prefix.as_deref().unwrap_or("0"),
        frame.account.as_deref().unwrap_or("0"),
    );
    let crc = frame::crc16_arc(body.as_bytes());
    format!("\n{crc:04X}{:04X}{body}\r", body.len()).into_bytes()
}

/// A link with account 1234 over TCP to `addr`, AES-256 encrypted.
async fn encrypted_tcp_link(addr: std::net::SocketAddr) -> Dc09Link {
    Dc09Link::start(
        "dc09",
        &route(addr.to_string(), Dc09Protocol::Tcp, Some(AES256)),
        "1234",
        Dc09Payload::AdmCid,
    )
    .await
    .unwrap()
}

fn utc_now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

#[tokio::test]
async fn encrypted_ack_without_a_bar_after_the_pad_is_accepted() {
    let addr =
        scripted_encrypted_receiver(AES256, |f, k| encrypted_ack(f, k, utc_now(), false)).await;
    let l = encrypted_tcp_link(addr).await;
    assert_acked(&l.deliver(&delivery(AlarmCause::Help)).await);
}

#[tokio::test]
async fn a_recorded_encrypted_ack_relabelled_to_the_alarm_is_refused() {
    // Sequence, receiver, line and account in clear match the alarm's frame; the encrypted
    // timestamp is that of an ACK recorded ten minutes earlier.
    let addr = scripted_encrypted_receiver(AES256, |f, k| {
        encrypted_ack(f, k, utc_now() - chrono::Duration::minutes(10), true)
    })
    .await;
    let l = encrypted_tcp_link(addr).await;
    let result = l.deliver(&delivery(AlarmCause::Help)).await;
    assert!(
        matches!(&result, DeliveryResult::Failed { reason } if reason.contains("time window")),
        "{result:?}"
    );
}

/// A NAK in clear, as anyone on the path can send, an hour ahead: before, the link adopted
/// its time and stamped every later frame an hour ahead, so the genuine receiver's ACKs were
/// refused (or a recorded ACK of that time accepted). Now only a NAK that decrypts with the
/// link's key moves the clock: the forged ones fail that attempt and nothing else.
#[tokio::test]
async fn a_nak_in_clear_does_not_move_the_clock() {
    use std::sync::{Arc, Mutex};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stamps: Arc<Mutex<Vec<chrono::NaiveDateTime>>> = Arc::default();
    let seen = stamps.clone();
    tokio::spawn(async move {
        let key = Dc09Key::new(AES256).unwrap();
        let mut answered = 0;
        while let Ok((mut stream, _)) = listener.accept().await {
            while let Ok(bytes) = dc09::read_frame(&mut stream).await {
                let frame = Frame::parse(&bytes, Some(&key)).expect("the unit's frame parses");
                if let Some(t) = frame.timestamp {
                    seen.lock().unwrap().push(t);
                }
                answered += 1;
                let reply = if answered <= 1 {
                    // `"NAK"0000R0L0A0[]_<time>` in clear, an hour ahead.
                    let body = format!(
                        "\"NAK\"0000R0L0A0[]_{}",
                        frame::format_timestamp(utc_now() + chrono::Duration::hours(1))
                    );
                    let crc = frame::crc16_arc(body.as_bytes());
                    format!("\n{crc:04X}{:04X}{body}\r", body.len()).into_bytes()
                } else {
                    encrypted_ack(&frame, &key, utc_now(), true)
                };
                if stream.write_all(&reply).await.is_err() {
                    break;
                }
            }
        }
    });
    let l = encrypted_tcp_link(addr).await;
    let first = l.deliver(&delivery(AlarmCause::Help)).await;
    assert!(
        matches!(&first, DeliveryResult::Failed { reason } if reason.contains("NAK in clear") && reason.contains("key_format")),
        "{first:?}"
    );
    assert_eq!(
        stamps.lock().unwrap().len(),
        1,
        "no copy resent after a NAK in clear"
    );
    assert_acked(&l.deliver(&delivery(AlarmCause::Help)).await);
    let now = utc_now();
    for t in stamps.lock().unwrap().iter() {
        let skew = (*t - now).num_seconds().abs();
        assert!(skew < 60, "a frame went out stamped {t}, {skew} s off");
    }
}

/// An answer the unit cannot read (here an ACK under another key) may be an ACK the receiver
/// meant: before, the unit resent the frame up to four times per attempt, and a receiver that
/// took each one got four copies of one alarm. Now one attempt sends one copy, and fails with
/// what to check.
#[tokio::test]
async fn an_unreadable_answer_gets_no_second_copy_in_the_attempt() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let frames = Arc::new(AtomicUsize::new(0));
    let seen = frames.clone();
    tokio::spawn(async move {
        let other = Dc09Key::new(b"another key 16 b").unwrap();
        while let Ok((mut stream, _)) = listener.accept().await {
            while let Ok(bytes) = dc09::read_frame(&mut stream).await {
                seen.fetch_add(1, Ordering::SeqCst);
                let key = Dc09Key::new(AES256).unwrap();
                let frame = Frame::parse(&bytes, Some(&key)).expect("the unit's frame parses");
                let reply = encrypted_ack(&frame, &other, utc_now(), true);
                if stream.write_all(&reply).await.is_err() {
                    break;
                }
            }
        }
    });
    let l = encrypted_tcp_link(addr).await;
    let result = l.deliver(&delivery(AlarmCause::Help)).await;
    assert!(
        matches!(&result, DeliveryResult::Failed { reason } if reason.contains("could not be read") && reason.contains("key")),
        "{result:?}"
    );
    assert_eq!(
        frames.load(Ordering::SeqCst),
        1,
        "copies sent in one attempt"
    );
}

/// A route that failed an alarm is probed in the background (`NULL` every few seconds, even
/// with no link test configured), and reports itself up the moment the receiver answers, so a
/// waiting alarm does not sit out the pause between rounds.
#[tokio::test]
async fn a_failed_route_is_probed_and_reported_up_when_it_answers() {
    let r = receiver(Dc09Protocol::Tcp, None).await;
    r.set_default(Dc09Answer::Silent);
    let l = link(&r, Dc09Protocol::Tcp, None).await;
    let mut health = l.health();
    assert!(*health.borrow(), "not known down before anything failed");
    let result = l.deliver(&delivery(AlarmCause::Help)).await;
    assert!(
        matches!(result, DeliveryResult::Failed { .. }),
        "{result:?}"
    );
    let down = tokio::time::timeout(Duration::from_secs(2), health.wait_for(|up| !*up))
        .await
        .is_ok();
    assert!(down, "down after the failed alarm");
    let before = r.received().len();
    r.set_default(Dc09Answer::Ack);
    let up = tokio::time::timeout(
        vigil::centre::dc09::PROBE_WHILE_DOWN * 3,
        health.wait_for(|up| *up),
    )
    .await
    .is_ok();
    assert!(up, "not reported up again");
    assert!(
        r.received().len() > before,
        "the probe reached the receiver"
    );
}

/// A Raspberry Pi boots at 1970 until NTP steps its clock. An alarm raised before the step
/// goes out with a 1970 timestamp: the receiver refuses it with an encrypted NAK that carries
/// its own time, and the unit resends at once on the receiver's clock.
#[tokio::test]
async fn a_unit_booted_at_1970_is_set_right_by_the_receivers_nak() {
    let r = receiver(Dc09Protocol::Tcp, Some(AES256)).await;
    let l = link(&r, Dc09Protocol::Tcp, Some(AES256)).await;
    let since_1970 = vigil::core::Timestamp::now().as_millis() as i64 - 30_000;
    l.skew_clock(-since_1970).await;
    assert_acked(&l.deliver(&delivery(AlarmCause::Help)).await);
    let got = r.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    let first = got[0].frame.as_ref().unwrap();
    assert_eq!(
        first.timestamp.map(|t| t.and_utc().timestamp() / 86_400),
        Some(0),
        "the first frame carried the 1970 clock"
    );
    assert_eq!(got[0].answered, Some(MessageId::Nak));
    assert_eq!(got[1].answered, Some(MessageId::Ack));
}
