//! A call's media between two ends on loopback: what one end's microphone hears reaches the
//! other's loudspeaker through G.711 RTP, the jitter buffer and back, in both directions, and
//! datagrams from a stranger are dropped, not played.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use vigil::voice::g711::Law;
use vigil::voice::media::Media;
use vigil::voice::pcm::align;
use vigil::voice::sdp::{Agreed, Direction};
use vigil::voice::sim_call::SimCallPort;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Two seconds of a noise-like signal (no two stretches alike), at 8 kHz.
fn recording(seed: u32) -> Vec<i16> {
    let mut x = seed;
    (0..16_000)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 16) as i16) / 4
        })
        .collect()
}

fn agreed(law: Law, remote: SocketAddr) -> Agreed {
    Agreed {
        law,
        telephone_event: Some(101),
        remote,
        direction: Direction::SendRecv,
        rtcp: None,
        srtp: None,
        lines: Default::default(),
        rtcp_mux: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_crosses_both_ways_and_strangers_are_not_played() {
    for law in [Law::Alaw, Law::Ulaw] {
        let (a, b) = (
            Media::bind(LOOPBACK).await.unwrap(),
            Media::bind(LOOPBACK).await.unwrap(),
        );
        let (a_addr, b_addr) = (a.local(), b.local());
        let (a_says, b_says) = (recording(1), recording(2));
        let (a_port, a_heard) = SimCallPort::new(a_says.clone());
        let (b_port, b_heard) = SimCallPort::new(b_says.clone());
        let (stop_tx, stop) = watch::channel(false);
        let (_a_agreed_tx, a_agreed) = watch::channel(agreed(law, b_addr));
        let (_b_agreed_tx, b_agreed) = watch::channel(agreed(law, a_addr));
        let (keys, _keys_rx) = mpsc::unbounded_channel();
        let a_run = tokio::spawn(a.run(a_agreed, Box::new(a_port), stop.clone(), keys.clone()));
        let b_run = tokio::spawn(b.run(b_agreed, Box::new(b_port), stop.clone(), keys));
        // A stranger on the same host, another port: its audio must not be played.
        let stranger = tokio::net::UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut forged = vec![0x80, 8, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4];
        forged.extend(std::iter::repeat_n(0x55u8, 160));
        for _ in 0..20 {
            let _ = stranger.send_to(&forged, a_addr).await;
        }
        tokio::time::sleep(Duration::from_millis(2_600)).await;
        stop_tx.send_replace(true);
        let (a_stats, b_stats) = (a_run.await.unwrap(), b_run.await.unwrap());

        let a_heard = a_heard.lock().unwrap().clone();
        let b_heard = b_heard.lock().unwrap().clone();
        let (lag_ab, c_ab) = align(&a_says[..8_000], &b_heard, 2_400);
        let (lag_ba, c_ba) = align(&b_says[..8_000], &a_heard, 2_400);
        assert!(
            c_ab >= 0.9,
            "{law:?} A to B: correlation {c_ab} at lag {lag_ab}"
        );
        assert!(
            c_ba >= 0.9,
            "{law:?} B to A: correlation {c_ba} at lag {lag_ba}"
        );
        assert!(a_stats.dropped >= 20, "{a_stats:?}");
        assert!(
            b_stats.received > 100 && a_stats.sent > 100,
            "{a_stats:?} {b_stats:?}"
        );
    }
}

/// A phone that sends a held key as RFC 4733 events between its audio packets (baresip does):
/// the events take sequence numbers, so the audio is placed by its timestamp. Placed by
/// sequence number, half the frames fell in the wrong slots and the speech after the key press
/// was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_interleaved_with_key_events_is_played_whole() {
    let unit = Media::bind(LOOPBACK).await.unwrap();
    let unit_addr = unit.local();
    let phone = tokio::net::UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let phone_addr = phone.local_addr().unwrap();
    let (port, heard) = SimCallPort::new(Vec::new());
    let (stop_tx, stop) = watch::channel(false);
    let (_agreed_tx, agreed_rx) = watch::channel(agreed(Law::Alaw, phone_addr));
    let (keys_tx, mut keys) = mpsc::unbounded_channel();
    let run = tokio::spawn(unit.run(agreed_rx, Box::new(port), stop, keys_tx));

    let says = recording(3);
    let mut seq: u16 = 40_000;
    let mut ts: u32 = 90_000;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut payload = Vec::new();
    let mut packet = Vec::new();
    for (i, frame) in says.chunks_exact(160).take(100).enumerate() {
        tick.tick().await;
        Law::Alaw.encode(frame, &mut payload);
        vigil::voice::rtp::Packet {
            payload_type: 8,
            marker: i == 0,
            sequence: seq,
            timestamp: ts,
            ssrc: 0x1234,
            payload: &payload,
        }
        .write(&mut packet);
        phone.send_to(&packet, unit_addr).await.unwrap();
        seq = seq.wrapping_add(1);
        // From the 20th frame on, the key '5' is held: an event packet after each audio one.
        if i >= 20 {
            let event = [5u8, 10, 0, 160];
            vigil::voice::rtp::Packet {
                payload_type: 101,
                marker: i == 20,
                sequence: seq,
                timestamp: 90_000 + 20 * 160,
                ssrc: 0x1234,
                payload: &event,
            }
            .write(&mut packet);
            phone.send_to(&packet, unit_addr).await.unwrap();
            seq = seq.wrapping_add(1);
        }
        ts = ts.wrapping_add(160);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_tx.send_replace(true);
    let stats = run.await.unwrap();
    let heard = heard.lock().unwrap().clone();
    // The speech well after the key press (frames 40 to 90) is there.
    let (lag, c) = align(&says[40 * 160..90 * 160], &heard, 12_000);
    assert!(c >= 0.9, "correlation {c} at lag {lag}; {stats:?}");
    assert_eq!(keys.try_recv().ok(), Some('5'));
    assert!(keys.try_recv().is_err(), "one press, reported once");
}

/// With SRTP agreed, speech crosses encrypted, and plain RTP from the far end's own address
/// (someone on the path who has not got the keys) is dropped, not played; sent before the far
/// end's first packet, it does not take the call's media over either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srtp_speech_crosses_and_plain_packets_are_refused() {
    use vigil::voice::srtp::{Key, SrtpKeys, Suite};
    let (a, b) = (
        Media::bind(LOOPBACK).await.unwrap(),
        Media::bind(LOOPBACK).await.unwrap(),
    );
    let (a_addr, b_addr) = (a.local(), b.local());
    let (a_key, b_key) = (Key::random(), Key::random());
    let keyed = |remote, ours: &Key, theirs: &Key| Agreed {
        srtp: Some(SrtpKeys {
            tag: 1,
            suite: Suite::AesCm128HmacSha1_80,
            ours: ours.clone(),
            theirs: theirs.clone(),
        }),
        ..agreed(Law::Alaw, remote)
    };
    let (a_says, b_says) = (recording(3), recording(4));
    let (a_port, a_heard) = SimCallPort::new(a_says.clone());
    let (b_port, b_heard) = SimCallPort::new(b_says.clone());
    let (stop_tx, stop) = watch::channel(false);
    let (_a_tx, a_agreed) = watch::channel(keyed(b_addr, &a_key, &b_key));
    let (_b_tx, b_agreed) = watch::channel(keyed(a_addr, &b_key, &a_key));
    let (keys, _keys_rx) = mpsc::unbounded_channel();
    let a_run = tokio::spawn(a.run(a_agreed, Box::new(a_port), stop.clone(), keys.clone()));
    let b_run = tokio::spawn(b.run(b_agreed, Box::new(b_port), stop.clone(), keys));
    // Plain RTP, loud, from the far end's address (a socket on loopback, as B is).
    let intruder = tokio::net::UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let mut plain = vec![0x80, 8, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4];
    plain.extend(std::iter::repeat_n(0x55u8, 160));
    for i in 0..20u16 {
        plain[2..4].copy_from_slice(&i.to_be_bytes());
        let _ = intruder.send_to(&plain, a_addr).await;
    }
    tokio::time::sleep(Duration::from_millis(2_800)).await;
    stop_tx.send_replace(true);
    let (a_stats, b_stats) = (a_run.await.unwrap(), b_run.await.unwrap());
    let a_heard = a_heard.lock().unwrap().clone();
    let b_heard = b_heard.lock().unwrap().clone();
    let (_, c_ab) = align(&a_says[..8_000], &b_heard, 2_400);
    let (_, c_ba) = align(&b_says[..8_000], &a_heard, 2_400);
    assert!(
        c_ab >= 0.9 && c_ba >= 0.9,
        "SRTP speech: {c_ab} {c_ba} {a_stats:?} {b_stats:?}"
    );
    assert!(
        a_stats.dropped >= 20,
        "plain packets were not refused: {a_stats:?}"
    );
    assert!(b_stats.received > 100, "{b_stats:?}");
}

/// A phone behind NAT writes its private address in the SDP and sends from another. With SRTP
/// the unit listens to any address until a packet authenticates, then talks to where it came
/// from: speech crosses. With plain RTP nothing from an address the SDP did not name is
/// played (anyone could send it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nat_an_srtp_phone_is_heard_and_a_plain_one_from_elsewhere_is_not() {
    use vigil::voice::srtp::{Key, SrtpKeys, Suite};
    for srtp in [true, false] {
        let (unit, phone) = (
            Media::bind(LOOPBACK).await.unwrap(),
            Media::bind(LOOPBACK).await.unwrap(),
        );
        let (unit_addr, phone_addr) = (unit.local(), phone.local());
        // What the phone's SDP says: its private address, where nothing of it listens.
        let private: SocketAddr =
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), phone_addr.port());
        let (unit_key, phone_key) = (Key::random(), Key::random());
        let keyed = |remote, ours: &Key, theirs: &Key| Agreed {
            srtp: srtp.then(|| SrtpKeys {
                tag: 1,
                suite: Suite::AesCm128HmacSha1_80,
                ours: ours.clone(),
                theirs: theirs.clone(),
            }),
            ..agreed(Law::Alaw, remote)
        };
        let (unit_says, phone_says) = (recording(5), recording(6));
        let (unit_port, unit_heard) = SimCallPort::new(unit_says.clone());
        let (phone_port, phone_heard) = SimCallPort::new(phone_says.clone());
        let (stop_tx, stop) = watch::channel(false);
        let (_u, unit_agreed) = watch::channel(keyed(private, &unit_key, &phone_key));
        let (_p, phone_agreed) = watch::channel(keyed(unit_addr, &phone_key, &unit_key));
        let (keys, _keys_rx) = mpsc::unbounded_channel();
        let u =
            tokio::spawn(unit.run(unit_agreed, Box::new(unit_port), stop.clone(), keys.clone()));
        let p = tokio::spawn(phone.run(phone_agreed, Box::new(phone_port), stop, keys));
        tokio::time::sleep(Duration::from_millis(2_800)).await;
        stop_tx.send_replace(true);
        let (u_stats, _) = (u.await.unwrap(), p.await.unwrap());
        let unit_heard = unit_heard.lock().unwrap().clone();
        let phone_heard = phone_heard.lock().unwrap().clone();
        let (_, to_unit) = align(&phone_says[..8_000], &unit_heard, 2_400);
        let (_, to_phone) = align(&unit_says[..8_000], &phone_heard, 2_400);
        if srtp {
            assert!(
                to_unit >= 0.9 && to_phone >= 0.9,
                "SRTP behind NAT: {to_unit} {to_phone} {u_stats:?}"
            );
        } else {
            assert!(
                u_stats.received == 0 && u_stats.dropped > 100,
                "{u_stats:?}"
            );
            assert!(
                to_phone < 0.5,
                "plain RTP went to an address nobody named: {to_phone}"
            );
        }
    }
}
