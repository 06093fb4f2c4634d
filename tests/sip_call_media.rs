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
