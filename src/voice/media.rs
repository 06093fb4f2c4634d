//! One call's media: G.711 over RTP (RFC 3550, RFC 3551) between a UDP socket and the unit's
//! call audio. Every 20 ms the microphone's frame goes out as one packet and one frame from
//! the jitter buffer goes to the loudspeaker; packets are taken as they arrive, only from the
//! far end the SDP negotiated ([`SourceGate`]), placed by their RTP timestamp, and RFC 4733
//! telephone-events are reported as DTMF keys.
//!
//! Untrusted input: anyone on the network can send datagrams to the port. A datagram from
//! elsewhere, one that is no RTP, another payload type or a payload that is not one 20 ms
//! frame is counted and dropped; nothing in a packet decides a size or an allocation.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::call_port::{CallAudioPort, FRAME};
use super::jitter::{JitterBuffer, Played};
use super::rtp::{Packet, SourceGate};
use super::sdp::{Agreed, Direction};
use super::telephone_event::DtmfReceiver;

/// What happened to one call's media, for logs and the call's end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Packets sent.
    pub sent: u64,
    /// Audio packets received and played.
    pub received: u64,
    /// Frames concealed or silent because nothing arrived in time.
    pub gaps: u64,
    /// Datagrams dropped: from elsewhere, not RTP, or not the call's audio.
    pub dropped: u64,
    /// DTMF keys received.
    pub keys: u64,
}

/// A call's RTP socket, bound before the answer so its port can go in the SDP.
pub struct Media {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
}

impl Media {
    /// Binds an RTP socket on `ip`, on a port the system chooses.
    pub async fn bind(ip: IpAddr) -> std::io::Result<Media> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let local = socket.local_addr()?;
        Ok(Media {
            socket: Arc::new(socket),
            local,
        })
    }

    /// Where the far end sends its RTP.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Runs the call's media until `stop` says so (or its sender is gone): `agreed` may change
    /// during the call (a re-INVITE: hold, a new address). Keys the far end sends go to
    /// `keys`. Returns the call's counters.
    pub async fn run(
        self,
        mut agreed: watch::Receiver<Agreed>,
        mut port: Box<dyn CallAudioPort>,
        mut stop: watch::Receiver<bool>,
        keys: mpsc::UnboundedSender<char>,
    ) -> MediaStats {
        let mut stats = MediaStats::default();
        let mut current = agreed.borrow_and_update().clone();
        let mut gate = SourceGate::new(current.remote);
        let mut jitter = JitterBuffer::new();
        let mut dtmf = DtmfReceiver::default();
        // RFC 3550 §5.1: random SSRC, first sequence number and timestamp.
        let mut seed = [0u8; 10];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed);
        let ssrc = u32::from_be_bytes([seed[0], seed[1], seed[2], seed[3]]);
        let mut seq = u16::from_be_bytes([seed[4], seed[5]]);
        let mut timestamp = u32::from_be_bytes([seed[6], seed[7], seed[8], seed[9]]);
        let mut first = true;
        let mut ts_base: Option<u32> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = [0u8; 1500];
        let mut out = Vec::with_capacity(12 + FRAME);
        let mut payload = Vec::with_capacity(FRAME);
        let mut decoded = Vec::with_capacity(FRAME);
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                changed = agreed.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    current = agreed.borrow_and_update().clone();
                    gate = SourceGate::new(current.remote);
                    ts_base = None;
                    jitter = JitterBuffer::new();
                }
                _ = tick.tick() => {
                    let mic = port.capture();
                    let sending = matches!(current.direction, Direction::SendRecv | Direction::SendOnly);
                    if sending && current.remote.port() != 0 {
                        payload.clear();
                        current.law.encode(&mic, &mut payload);
                        out.clear();
                        Packet {
                            payload_type: current.law.payload_type(),
                            marker: first,
                            sequence: seq,
                            timestamp,
                            ssrc,
                            payload: &payload,
                        }
                        .write(&mut out);
                        if self.socket.send_to(&out, gate.send_to()).await.is_ok() {
                            stats.sent += 1;
                            first = false;
                        }
                        seq = seq.wrapping_add(1);
                    }
                    timestamp = timestamp.wrapping_add(FRAME as u32);
                    let (frame, played) = jitter.pop();
                    if played != Played::Frame {
                        stats.gaps += 1;
                    }
                    port.play(&frame);
                }
                got = self.socket.recv_from(&mut buf) => {
                    let Ok((n, from)) = got else { continue };
                    if !gate.accept(from) {
                        stats.dropped += 1;
                        continue;
                    }
                    let Ok(packet) = Packet::parse(buf.get(..n).unwrap_or(&[])) else {
                        stats.dropped += 1;
                        continue;
                    };
                    if Some(packet.payload_type) == current.telephone_event {
                        if let Some(key) = dtmf.receive(packet.timestamp, packet.payload) {
                            stats.keys += 1;
                            let _ = keys.send(key);
                        }
                        continue;
                    }
                    if packet.payload_type != current.law.payload_type() || packet.payload.len() != FRAME {
                        stats.dropped += 1;
                        continue;
                    }
                    decoded.clear();
                    current.law.decode(packet.payload, &mut decoded);
                    let mut frame = [0i16; FRAME];
                    frame.copy_from_slice(&decoded[..FRAME]);
                    // Audio plays at its timestamp, not its sequence number: RFC 4733 events
                    // sent between audio packets take sequence numbers too, and a sender that
                    // stops in silence moves the timestamp on.
                    let base = *ts_base.get_or_insert(packet.timestamp);
                    let slot = (packet.timestamp.wrapping_sub(base) / FRAME as u32) as u16;
                    if jitter.push(slot, frame) {
                        stats.received += 1;
                    }
                }
            }
        }
        stats
    }
}
