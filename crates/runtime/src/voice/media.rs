//! One call's media: G.711 over RTP (RFC 3550, RFC 3551) between a UDP socket and the unit's
//! call audio. Every 20 ms the microphone's frame goes out as one packet and one frame from
//! the jitter buffer goes to the loudspeaker; packets are taken as they arrive, only from the
//! far end the SDP negotiated ([`SourceGate`]), placed by their RTP timestamp, and RFC 4733
//! telephone-events are reported as DTMF keys. RTCP (RFC 3550 §6) runs beside it on the next
//! port, or on the RTP port itself when the SDP agreed `a=rtcp-mux` (RFC 5761; told apart from
//! RTP by its packet type, §4): the unit reports what it sent and what it received, and reads
//! the far end's reports for the call's round trip and loss. When the SDP agreed SRTP (keys exchanged over TLS),
//! every RTP and RTCP packet is protected on the way out and must authenticate on the way in
//! ([`super::srtp`]); plain packets are then dropped.
//!
//! Untrusted input: anyone on the network can send datagrams to the port. A datagram from
//! elsewhere, one that is no RTP, another payload type or a payload that is not one 20 ms
//! frame is counted and dropped; nothing in a packet decides a size or an allocation.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::call_port::{CallAudioPort, FRAME};
use super::jitter::{JitterBuffer, Played};
use super::rtcp::{self, Item, Reception, Sent};
use super::rtp::{Packet, SourceGate};
use super::sdp::{Agreed, Direction};
use super::srtp::Session;
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
    /// RTCP reports sent.
    pub rtcp_sent: u64,
    /// RTCP packets received from the far end and read.
    pub rtcp_received: u64,
    /// RTCP datagrams dropped: from elsewhere or not valid RTCP.
    pub rtcp_dropped: u64,
    /// The latest round trip the far end's reports showed.
    pub round_trip: Option<Duration>,
    /// Packets of the unit's stream the far end last reported lost in all.
    pub far_end_lost: i32,
    /// Interarrival jitter of the far end's audio at the call's end, in milliseconds.
    pub jitter_ms: u32,
    /// The far end said goodbye in RTCP.
    pub far_end_bye: bool,
    /// The call's media was SRTP at its end.
    pub srtp: bool,
    /// RTCP shared the RTP port at the call's end (RFC 5761), as the SDP agreed.
    pub rtcp_mux: bool,
}

/// A call's RTP and RTCP sockets, bound before the answer so the port can go in the SDP.
pub struct Media {
    socket: Arc<UdpSocket>,
    rtcp: UdpSocket,
    local: SocketAddr,
}

/// How many port pairs are tried before binding gives up.
const BIND_TRIES: usize = 64;

impl Media {
    /// Binds a call's sockets on `ip`: RTP on an even port the system chooses and RTCP on the
    /// next one (RFC 3550 §11), so a far end that follows the default finds both.
    pub async fn bind(ip: IpAddr) -> std::io::Result<Media> {
        let mut last = None;
        for _ in 0..BIND_TRIES {
            let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
            let local = socket.local_addr()?;
            if !local.port().is_multiple_of(2) || local.port() == u16::MAX {
                continue;
            }
            match UdpSocket::bind(SocketAddr::new(ip, local.port() + 1)).await {
                Ok(rtcp) => {
                    return Ok(Media {
                        socket: Arc::new(socket),
                        rtcp,
                        local,
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "no free pair of ports for RTP and RTCP",
            )
        }))
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
        let mut gate = gate_for(&current, current.remote);
        let mut protection = Protection::new(&current);
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
        // RTCP. Its NTP-format times count from the call's start: RFC 3550 §6.4.1 needs only a
        // consistent base for the round trip, and the unit's wall clock may not be set.
        let origin = tokio::time::Instant::now();
        let ntp_now = || rtcp::ntp_from(origin.elapsed());
        let cname = format!("vigil-{ssrc:08x}@{}", self.local.ip());
        let mut reception = Reception::default();
        let mut sent = Sent::default();
        let mut rtcp_gate = gate_for(&current, current.rtcp_to());
        let mut rtcp_out = Vec::with_capacity(128);
        let mut rtcp_buf = [0u8; 1500];
        let mut next_report = origin + rtcp::interval(true, random_u16());
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
                    gate = gate_for(&current, current.remote);
                    if current.srtp.is_some() || !matches!(protection, Protection::Plain) {
                        protection = Protection::new(&current);
                    }
                    rtcp_gate = gate_for(&current, current.rtcp_to());
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
                        if let Some(wire) = protection.seal(&out, Session::protect_rtp) {
                            if self.socket.send_to(&wire, gate.send_to()).await.is_ok() {
                                stats.sent += 1;
                                sent.packets = sent.packets.wrapping_add(1);
                                sent.octets = sent.octets.wrapping_add(payload.len() as u32);
                                first = false;
                            }
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
                    let data = buf.get(..n).unwrap_or(&[]);
                    if current.rtcp_mux && is_rtcp(data) {
                        let plain = rtcp_gate
                            .admits(from)
                            .then(|| protection.open(data, Session::unprotect_rtcp))
                            .flatten();
                        if plain.is_some() {
                            rtcp_gate.latch(from);
                        }
                        match plain {
                            Some(p) if read_report(&p, ssrc, ntp_now(), &mut reception, &mut stats) => {}
                            _ => stats.rtcp_dropped += 1,
                        }
                        continue;
                    }
                    if !gate.admits(from) {
                        stats.dropped += 1;
                        continue;
                    }
                    let Some(plain) = protection.open(buf.get(..n).unwrap_or(&[]), Session::unprotect_rtp) else {
                        stats.dropped += 1;
                        continue;
                    };
                    // Only a packet that authenticated (or any, for plain RTP) latches the
                    // far end's port: a stranger on its address cannot take the call over.
                    gate.latch(from);
                    let Ok(packet) = Packet::parse(&plain) else {
                        stats.dropped += 1;
                        continue;
                    };
                    // Jitter from audio only: an RFC 4733 event repeats its start's timestamp.
                    let arrival = (origin.elapsed().as_micros() / 125) as u32;
                    let audio = packet.payload_type == current.law.payload_type();
                    reception.packet(packet.ssrc, packet.sequence, audio.then_some((packet.timestamp, arrival)));
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
                _ = tokio::time::sleep_until(next_report) => {
                    next_report = tokio::time::Instant::now() + rtcp::interval(false, random_u16());
                    if current.remote.port() != 0 {
                        let s = (sent.packets > 0).then_some(Sent { rtp_timestamp: timestamp, ..sent });
                        let block = reception.block(ntp_now());
                        rtcp::write_report(&mut rtcp_out, ssrc, ntp_now(), s, block, &cname, false);
                        if let Some(wire) = protection.seal(&rtcp_out, Session::protect_rtcp) {
                            if self.rtcp_socket(&current).send_to(&wire, rtcp_gate.send_to()).await.is_ok() {
                                stats.rtcp_sent += 1;
                            }
                        }
                    }
                }
                got = self.rtcp.recv_from(&mut rtcp_buf) => {
                    let Ok((n, from)) = got else { continue };
                    let plain = rtcp_gate
                        .admits(from)
                        .then(|| protection.open(&rtcp_buf[..n], Session::unprotect_rtcp))
                        .flatten();
                    if plain.is_some() {
                        rtcp_gate.latch(from);
                    }
                    match plain {
                        Some(p) if read_report(&p, ssrc, ntp_now(), &mut reception, &mut stats) => {}
                        _ => stats.rtcp_dropped += 1,
                    }
                }
            }
        }
        // Goodbye in RTCP too (RFC 3550 §6.6), with the last report.
        if current.remote.port() != 0 {
            let s = (sent.packets > 0).then_some(Sent {
                rtp_timestamp: timestamp,
                ..sent
            });
            let block = reception.block(ntp_now());
            rtcp::write_report(&mut rtcp_out, ssrc, ntp_now(), s, block, &cname, true);
            if let Some(wire) = protection.seal(&rtcp_out, Session::protect_rtcp) {
                if self
                    .rtcp_socket(&current)
                    .send_to(&wire, rtcp_gate.send_to())
                    .await
                    .is_ok()
                {
                    stats.rtcp_sent += 1;
                }
            }
        }
        stats.jitter_ms = reception.jitter() / 8;
        stats.srtp = matches!(protection, Protection::Srtp(_));
        stats.rtcp_mux = current.rtcp_mux;
        stats
    }
}

impl Media {
    /// The socket the call's RTCP goes out on: the RTP socket when multiplexed (RFC 5761).
    fn rtcp_socket(&self, agreed: &Agreed) -> &UdpSocket {
        if agreed.rtcp_mux {
            &self.socket
        } else {
            &self.rtcp
        }
    }
}

/// Whether a datagram on a multiplexed port is RTCP: its second octet is an RTCP packet type
/// (192–223), which as RTP would be payload types 64–95 with the marker set, a range RTP
/// never uses (RFC 5761 §4).
fn is_rtcp(data: &[u8]) -> bool {
    data.get(1).is_some_and(|pt| (192..=223).contains(pt))
}

/// Reads one RTCP compound packet from the far end (let through and unprotected) into the
/// call's reception state and counters: its sender reports, the round trip and loss of the
/// unit's stream (`ssrc`) it reports, a goodbye. False when it is no valid RTCP.
fn read_report(
    plain: &[u8],
    ssrc: u32,
    now: u64,
    reception: &mut Reception,
    stats: &mut MediaStats,
) -> bool {
    let Ok(items) = rtcp::parse(plain) else {
        return false;
    };
    stats.rtcp_received += 1;
    for item in items {
        let blocks = match item {
            Item::Sender {
                ssrc: theirs,
                info,
                blocks,
            } => {
                reception.sender_report(theirs, info.ntp, now);
                blocks
            }
            Item::Receiver { blocks, .. } => blocks,
            Item::Bye { .. } => {
                stats.far_end_bye = true;
                continue;
            }
            Item::Other(_) => continue,
        };
        for block in blocks.iter().filter(|b| b.ssrc == ssrc) {
            stats.far_end_lost = block.cumulative_lost;
            if let Some(rtt) = rtcp::round_trip(block, now) {
                stats.round_trip = Some(rtt);
            }
        }
    }
    true
}

/// The gate for one of the call's streams: any address may turn out to be the far end's when
/// SRTP authenticates its packets, else only the SDP's.
fn gate_for(agreed: &Agreed, negotiated: SocketAddr) -> SourceGate {
    if agreed.srtp.is_some() {
        SourceGate::authenticated(negotiated)
    } else {
        SourceGate::new(negotiated)
    }
}

/// How a call's packets cross the network.
enum Protection {
    /// Plain RTP and RTCP.
    Plain,
    /// SRTP and SRTCP with the call's keys.
    Srtp(Box<Session>),
    /// SRTP was agreed but its keys are unusable: nothing is sent in the clear instead, and
    /// nothing received is trusted.
    Unusable,
}

type Transform = fn(&mut Session, &[u8]) -> Result<Vec<u8>, super::srtp::SrtpError>;

impl Protection {
    fn new(agreed: &Agreed) -> Protection {
        match &agreed.srtp {
            None => Protection::Plain,
            Some(keys) => match Session::new(keys) {
                Ok(session) => Protection::Srtp(Box::new(session)),
                Err(e) => {
                    tracing::error!(error = %e, "the call's SRTP keys are unusable: no audio is sent");
                    Protection::Unusable
                }
            },
        }
    }

    /// A packet as it goes on the wire, or `None` when it cannot be sent protected.
    fn seal<'a>(&mut self, packet: &'a [u8], protect: Transform) -> Option<Cow<'a, [u8]>> {
        match self {
            Protection::Plain => Some(Cow::Borrowed(packet)),
            Protection::Srtp(session) => protect(session, packet).ok().map(Cow::Owned),
            Protection::Unusable => None,
        }
    }

    /// A packet from the wire as plain RTP or RTCP, or `None` when it does not authenticate.
    fn open<'a>(&mut self, packet: &'a [u8], unprotect: Transform) -> Option<Cow<'a, [u8]>> {
        self.seal(packet, unprotect)
    }
}

/// A random value for the RTCP interval.
fn random_u16() -> u16 {
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u16::from_be_bytes(b)
}
