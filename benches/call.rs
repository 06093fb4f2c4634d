//! A SIP call's media as the unit runs it (`voice::media`), on loopback: the latency the unit
//! adds in each direction and the CPU one call costs. Printed, never asserted.
//! `cargo bench --bench call`.
//!
//! - Microphone to RTP: from the moment the unit takes a 20 ms frame from its microphone to
//!   that frame's packet arriving at the far end. The frame itself is 20 ms of sound that had
//!   to be heard before it could be sent: that framing is added to the figure.
//! - RTP to loudspeaker: from a packet leaving the far end to its audio being handed to the
//!   loudspeaker, jitter buffer included.
//! - CPU: the process's user and system time (`/proc/self/stat`) over 20 s of a call with a
//!   far end sending its 50 packets a second, as a share of one core.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use vigil::voice::call_port::{CallAudioPort, FRAME};
use vigil::voice::g711::Law;
use vigil::voice::media::Media;
use vigil::voice::rtp::Packet;
use vigil::voice::sdp::{Agreed, Direction};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A port that stamps its captures and notes when marked audio reaches the loudspeaker.
struct Stamping {
    captured: Arc<Mutex<Vec<Instant>>>,
    played_marks: Arc<Mutex<Vec<(i16, Instant)>>>,
}

impl CallAudioPort for Stamping {
    fn play(&mut self, frame: &[i16; FRAME]) {
        // A marked frame carries its number in every sample (a constant level).
        if frame[0] != 0 && frame.iter().all(|&s| s == frame[0]) {
            if let Ok(mut p) = self.played_marks.lock() {
                p.push((frame[0], Instant::now()));
            }
        }
    }

    fn capture(&mut self) -> [i16; FRAME] {
        if let Ok(mut c) = self.captured.lock() {
            c.push(Instant::now());
        }
        [1000; FRAME]
    }
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15; 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let unit = Media::bind(LOOPBACK).await.expect("socket");
    let unit_addr = unit.local();
    let far = tokio::net::UdpSocket::bind((LOOPBACK, 0))
        .await
        .expect("socket");
    let far_addr = far.local_addr().expect("addr");
    let captured = Arc::new(Mutex::new(Vec::new()));
    let played_marks = Arc::new(Mutex::new(Vec::new()));
    let port = Stamping {
        captured: captured.clone(),
        played_marks: played_marks.clone(),
    };
    let (stop_tx, stop) = watch::channel(false);
    let (_agreed_tx, agreed) = watch::channel(Agreed {
        law: Law::Ulaw,
        telephone_event: None,
        remote: far_addr,
        direction: Direction::SendRecv,
        rtcp: None,
        srtp: None,
        lines: Default::default(),
        rtcp_mux: false,
    });
    let (keys, _k) = mpsc::unbounded_channel();
    // As in every call the unit makes: the speakerphone's echo canceller in the path.
    let port = vigil::voice::speakerphone::EchoCancelled::new(Box::new(port));
    let cancelling = port.cancelling();
    let media = tokio::spawn(unit.run(agreed, Box::new(port), stop, keys));

    // The far end: sends a marked frame every 20 ms (numbered 1..), records arrivals.
    let far = Arc::new(far);
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let receiver = tokio::spawn({
        let (far, arrivals) = (far.clone(), arrivals.clone());
        async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, _)) = far.recv_from(&mut buf).await {
                if n > 12 {
                    arrivals.lock().unwrap().push(Instant::now());
                }
            }
        }
    });
    let cpu_start = cpu_seconds();
    let wall_start = Instant::now();
    let mut sent_at = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut payload = Vec::new();
    let mut packet = Vec::new();
    for i in 0..1000u16 {
        tick.tick().await;
        // Marks cycle through 1..=200 as the frame's constant level; µ-law keeps them apart.
        let mark = 100 * (i16::try_from(i % 200).unwrap_or(0) + 1);
        Law::Ulaw.encode(&[mark; FRAME], &mut payload);
        Packet {
            payload_type: 0,
            marker: i == 0,
            sequence: i,
            timestamp: u32::from(i) * FRAME as u32,
            ssrc: 7,
            payload: &payload,
        }
        .write(&mut packet);
        sent_at.push((mark, Instant::now()));
        let _ = far.send_to(&packet, unit_addr).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let wall = wall_start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    stop_tx.send_replace(true);
    let _ = media.await;
    receiver.abort();

    // Microphone to RTP: the nth capture's packet is the nth arrival.
    let captured = captured.lock().unwrap().clone();
    let arrivals = arrivals.lock().unwrap().clone();
    let mut up: Vec<f64> = captured
        .iter()
        .zip(&arrivals)
        .map(|(c, a)| a.saturating_duration_since(*c).as_secs_f64() * 1000.0)
        .collect();
    // RTP to loudspeaker: each mark's first playing after its sending (µ-law rounds the
    // level, so the decoded mark is matched to the nearest one sent).
    let played = played_marks.lock().unwrap().clone();
    let decode = |m: i16| {
        let mut out = Vec::new();
        let mut code = Vec::new();
        Law::Ulaw.encode(&[m], &mut code);
        Law::Ulaw.decode(&code, &mut out);
        out[0]
    };
    let mut down = Vec::new();
    let mut next_played = 0;
    for (mark, at) in &sent_at {
        let level = decode(*mark);
        if let Some(k) = played[next_played..]
            .iter()
            .position(|(l, t)| *l == level && *t >= *at)
        {
            down.push(played[next_played + k].1.duration_since(*at).as_secs_f64() * 1000.0);
            next_played += k + 1;
        }
    }
    println!(
        "microphone to RTP: p50 {:.2} ms, p99 {:.2} ms of processing, plus 20 ms of framing ({} frames)",
        percentile(&mut up.clone(), 0.5),
        percentile(&mut up, 0.99),
        captured.len().min(arrivals.len())
    );
    println!(
        "RTP to loudspeaker: p50 {:.1} ms, p99 {:.1} ms ({} of {} frames matched)",
        percentile(&mut down.clone(), 0.5),
        percentile(&mut down, 0.99),
        down.len(),
        sent_at.len()
    );
    println!(
        "CPU for one call: {:.2} % of one core ({cpu:.2} s over {wall:.1} s, both ends of the loopback, echo canceller {})",
        100.0 * cpu / wall,
        if cancelling { "in the path" } else { "missing (no speexdsp)" }
    );
    srtp_cost();
}

/// What SRTP adds to a call: protecting the unit's 50 packets a second and authenticating and
/// decrypting the far end's 50, as a share of one core.
fn srtp_cost() {
    use vigil::voice::srtp::{Key, Session, SrtpKeys, Suite};
    let (a, b) = (Key::random(), Key::random());
    let keys = |ours: &Key, theirs: &Key| SrtpKeys {
        tag: 1,
        suite: Suite::AesCm128HmacSha1_80,
        ours: ours.clone(),
        theirs: theirs.clone(),
    };
    let (Ok(mut unit), Ok(mut far)) = (Session::new(&keys(&a, &b)), Session::new(&keys(&b, &a)))
    else {
        println!("SRTP: no session");
        return;
    };
    const PACKETS: u16 = 20_000;
    let mut packet = vec![0x80, 8, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    packet.extend(std::iter::repeat_n(0xd5u8, 160));
    let started = std::time::Instant::now();
    for seq in 0..PACKETS {
        packet[2..4].copy_from_slice(&seq.to_be_bytes());
        // Three operations a round: the far end's protect, and the unit's unprotect and protect.
        let sealed = far.protect_rtp(&packet).unwrap_or_default();
        let opened = unit.unprotect_rtp(&sealed).unwrap_or_default();
        let _ = unit.protect_rtp(&opened);
    }
    let per_operation = started.elapsed().as_secs_f64() / f64::from(PACKETS) / 3.0;
    // Per second of call the unit protects 50 packets and unprotects 50.
    let share = per_operation * 100.0 * 100.0;
    println!(
        "SRTP for one call: {:.2} µs per packet, {share:.3} % of one core (50 packets a second each way)",
        per_operation * 1e6
    );
}
