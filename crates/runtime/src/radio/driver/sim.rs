//! A simulated radio channel over UDP on loopback.
//!
//! Each datagram is one transmission on the simulated air:
//!
//! ```text
//! "VA" | kind (0 frame, 1 carrier) | signal dBm (i16 BE) | frame bytes, or carrier ms (u32 BE)
//! ```
//!
//! The sender states the signal level at which the base hears it (its distance, in effect).
//! The base side applies the configured loss, hears carrier (a simulated jammer) as channel
//! RSSI, and loses frames that arrive under a carrier less than 6 dB weaker than them (the
//! co-channel rejection of an FSK receiver), as a real receiver would.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tracing::debug;

use super::{Received, Transceiver};
use crate::radio::RadioError;

const MAGIC: &[u8; 2] = b"VA";
/// A datagram the base sends itself to end a receive wait (not air: nobody transmitted).
const WAKE: &[u8; 2] = b"VW";
const KIND_FRAME: u8 = 0;
const KIND_CARRIER: u8 = 1;
/// Receiver noise floor reported when the channel is quiet, dBm.
pub const NOISE_FLOOR_DBM: i16 = -112;
/// Signal level of the base's own transmissions as pendants hear them, dBm.
const BASE_SIGNAL_DBM: i16 = -60;
/// Co-channel rejection: a frame survives a carrier this many dB weaker than itself.
const CAPTURE_DB: i16 = 6;
/// Peers not heard for this long no longer get our transmissions.
const PEER_TIMEOUT: Duration = Duration::from_secs(600);

/// One transmission on the simulated air.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Air {
    /// A frame at a signal level.
    Frame {
        /// Level at the receiver, dBm.
        rssi_dbm: i16,
        /// The frame.
        bytes: Vec<u8>,
    },
    /// Unmodulated carrier for a while (a jammer, or a neighbour's long transmission).
    Carrier {
        /// Level at the receiver, dBm.
        rssi_dbm: i16,
        /// How long it lasts.
        duration: Duration,
    },
}

impl Air {
    /// Parses a datagram; `None` for anything that is not simulated air.
    pub fn parse(d: &[u8]) -> Option<Air> {
        let rest = d.strip_prefix(MAGIC)?;
        let (&kind, rest) = rest.split_first()?;
        let rssi = i16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
        let rest = rest.get(2..)?;
        match kind {
            KIND_FRAME => Some(Air::Frame {
                rssi_dbm: rssi,
                bytes: rest.to_vec(),
            }),
            KIND_CARRIER => {
                let ms: [u8; 4] = rest.try_into().ok()?;
                Some(Air::Carrier {
                    rssi_dbm: rssi,
                    duration: Duration::from_millis(u64::from(u32::from_be_bytes(ms))),
                })
            }
            _ => None,
        }
    }

    /// The datagram.
    pub fn emit(&self) -> Vec<u8> {
        let mut d = MAGIC.to_vec();
        match self {
            Air::Frame { rssi_dbm, bytes } => {
                d.push(KIND_FRAME);
                d.extend_from_slice(&rssi_dbm.to_be_bytes());
                d.extend_from_slice(bytes);
            }
            Air::Carrier { rssi_dbm, duration } => {
                d.push(KIND_CARRIER);
                d.extend_from_slice(&rssi_dbm.to_be_bytes());
                let ms = u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
                d.extend_from_slice(&ms.to_be_bytes());
            }
        }
        d
    }
}

/// How the simulated channel treats frames on their way to the base.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimChannel {
    /// Share of frames lost on the way, 0–1 (each direction).
    pub loss: f64,
    /// Report this RSSI for every frame instead of the level the sender states.
    pub rssi_dbm: Option<i16>,
    /// Seed of the loss generator, so a test's losses repeat.
    pub seed: u64,
}

impl Default for SimChannel {
    fn default() -> SimChannel {
        SimChannel {
            loss: 0.0,
            rssi_dbm: None,
            seed: 0x5EED_0FA1_A2A3,
        }
    }
}

/// A small xorshift generator for the channel's losses (not for keys).
#[derive(Clone, Debug)]
struct Xorshift(u64);

impl Xorshift {
    fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The base's simulated transceiver.
#[derive(Debug)]
pub struct SimRadio {
    socket: UdpSocket,
    channel: SimChannel,
    rng: Xorshift,
    peers: Vec<(SocketAddr, Instant)>,
    carrier: Option<(i16, Instant)>,
}

impl SimRadio {
    /// Listens on `addr` (loopback, port 0 for any).
    pub fn bind(addr: SocketAddr, channel: SimChannel) -> Result<SimRadio, RadioError> {
        let socket = UdpSocket::bind(addr)
            .map_err(|e| RadioError::io(crate::hint::bind_failed(&addr, "radio.listen", &e), e))?;
        Ok(SimRadio {
            socket,
            rng: Xorshift(channel.seed | 1),
            channel,
            peers: Vec::new(),
            carrier: None,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> Result<SocketAddr, RadioError> {
        self.socket
            .local_addr()
            .map_err(|e| RadioError::io("reading the local address", e))
    }

    fn carrier_now(&mut self) -> Option<i16> {
        match self.carrier {
            Some((rssi, until)) if Instant::now() < until => Some(rssi),
            _ => {
                self.carrier = None;
                None
            }
        }
    }

    fn heard_from(&mut self, peer: SocketAddr) {
        let now = Instant::now();
        self.peers
            .retain(|(a, seen)| *a != peer && now.duration_since(*seen) < PEER_TIMEOUT);
        self.peers.push((peer, now));
    }
}

impl Transceiver for SimRadio {
    fn receive(&mut self, timeout: Duration) -> Result<Option<Received>, RadioError> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 512];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket
                .set_read_timeout(Some(left))
                .map_err(|e| RadioError::io("setting the socket timeout", e))?;
            let (n, peer) = match self.socket.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                // A pendant that has gone away answers our ack with ICMP "port unreachable";
                // on the real air nobody would notice.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(RadioError::io("receiving from the simulated air", e)),
            };
            let datagram = buf.get(..n).unwrap_or_default();
            if datagram == WAKE {
                return Ok(None);
            }
            match Air::parse(datagram) {
                Some(Air::Carrier { rssi_dbm, duration }) => {
                    self.carrier = Some((rssi_dbm, Instant::now() + duration));
                    // The channel changed: let the caller sample it now.
                    return Ok(None);
                }
                Some(Air::Frame { rssi_dbm, bytes }) => {
                    self.heard_from(peer);
                    let rssi = self.channel.rssi_dbm.unwrap_or(rssi_dbm);
                    if self.carrier_now().is_some_and(|c| c > rssi - CAPTURE_DB) {
                        debug!(rssi, "simulated frame lost under carrier");
                        continue;
                    }
                    if self.rng.unit() < self.channel.loss {
                        debug!("simulated frame lost");
                        continue;
                    }
                    return Ok(Some(Received {
                        bytes,
                        rssi_dbm: Some(rssi),
                    }));
                }
                None => debug!(len = n, "not simulated air, ignored"),
            }
        }
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), RadioError> {
        let d = Air::Frame {
            rssi_dbm: BASE_SIGNAL_DBM,
            bytes: frame.to_vec(),
        }
        .emit();
        for i in 0..self.peers.len() {
            if self.rng.unit() < self.channel.loss {
                continue;
            }
            let Some(&(peer, _)) = self.peers.get(i) else {
                break;
            };
            self.socket
                .send_to(&d, peer)
                .map_err(|e| RadioError::io(format!("sending to {peer}"), e))?;
        }
        Ok(())
    }

    fn channel_rssi(&mut self) -> Result<i16, RadioError> {
        Ok(self.carrier_now().unwrap_or(NOISE_FLOOR_DBM))
    }

    fn waker(&self) -> Option<super::Waker> {
        let socket = self.socket.try_clone().ok()?;
        let me = self.socket.local_addr().ok()?;
        Some(std::sync::Arc::new(move || {
            // A full receive buffer drops it, but then the wait is over anyway.
            let _ = socket.send_to(WAKE, me);
        }))
    }

    fn channel_quiet(&mut self) -> bool {
        // The simulated air has carrier only when a carrier datagram said so, and any
        // datagram ends the receive wait.
        self.carrier_now().is_none()
    }
}

/// The pendant's (or a jammer's) end of the simulated air.
#[derive(Debug)]
pub struct SimPeer {
    socket: UdpSocket,
    base: SocketAddr,
    rssi_dbm: i16,
}

impl SimPeer {
    /// An endpoint on loopback sending to the base at `base`, heard there at `rssi_dbm`.
    pub fn new(base: SocketAddr, rssi_dbm: i16) -> Result<SimPeer, RadioError> {
        let local: SocketAddr = if base.is_ipv6() {
            SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 0))
        } else {
            SocketAddr::from(([127, 0, 0, 1], 0))
        };
        let socket =
            UdpSocket::bind(local).map_err(|e| RadioError::io(format!("binding {local}"), e))?;
        Ok(SimPeer {
            socket,
            base,
            rssi_dbm,
        })
    }

    /// Transmits a frame.
    pub fn send(&self, frame: &[u8]) -> Result<(), RadioError> {
        let d = Air::Frame {
            rssi_dbm: self.rssi_dbm,
            bytes: frame.to_vec(),
        }
        .emit();
        self.socket
            .send_to(&d, self.base)
            .map(|_| ())
            .map_err(|e| RadioError::io(format!("sending to {}", self.base), e))
    }

    /// Transmits unmodulated carrier for `duration` at `rssi_dbm` (a jammer).
    pub fn carrier(&self, rssi_dbm: i16, duration: Duration) -> Result<(), RadioError> {
        let d = Air::Carrier { rssi_dbm, duration }.emit();
        self.socket
            .send_to(&d, self.base)
            .map(|_| ())
            .map_err(|e| RadioError::io(format!("sending to {}", self.base), e))
    }

    /// Waits up to `timeout` for a frame from the base.
    pub fn receive(&self, timeout: Duration) -> Result<Option<Vec<u8>>, RadioError> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 512];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket
                .set_read_timeout(Some(left))
                .map_err(|e| RadioError::io("setting the socket timeout", e))?;
            match self.socket.recv_from(&mut buf) {
                Ok((n, _)) => {
                    if let Some(Air::Frame { bytes, .. }) =
                        Air::parse(buf.get(..n).unwrap_or_default())
                    {
                        return Ok(Some(bytes));
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(RadioError::Usage(format!(
                        "nothing listens at {}: is the base's simulated radio running?",
                        self.base
                    )))
                }
                Err(e) => return Err(RadioError::io("receiving from the simulated air", e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    #[test]
    fn air_round_trips_and_rejects_garbage() {
        for a in [
            Air::Frame {
                rssi_dbm: -77,
                bytes: vec![1, 2, 3],
            },
            Air::Carrier {
                rssi_dbm: -40,
                duration: Duration::from_millis(1500),
            },
        ] {
            assert_eq!(Air::parse(&a.emit()), Some(a));
        }
        assert_eq!(Air::parse(b"VA"), None);
        assert_eq!(Air::parse(b"XX\0\0\0"), None);
        assert_eq!(Air::parse(b"VA\x01\0\0\0"), None);
    }

    #[test]
    fn frames_cross_and_acks_come_back() {
        let mut base = SimRadio::bind(loopback(), SimChannel::default()).unwrap();
        let peer = SimPeer::new(base.local_addr().unwrap(), -85).unwrap();
        peer.send(&[9, 9, 9]).unwrap();
        let r = base.receive(Duration::from_secs(2)).unwrap().unwrap();
        assert_eq!(
            r,
            Received {
                bytes: vec![9, 9, 9],
                rssi_dbm: Some(-85)
            }
        );
        base.transmit(&[7]).unwrap();
        assert_eq!(peer.receive(Duration::from_secs(2)).unwrap(), Some(vec![7]));
        assert_eq!(base.receive(Duration::from_millis(20)).unwrap(), None);
    }

    #[test]
    fn loss_drops_about_the_configured_share() {
        let chan = SimChannel {
            loss: 0.5,
            ..SimChannel::default()
        };
        let mut base = SimRadio::bind(loopback(), chan).unwrap();
        let peer = SimPeer::new(base.local_addr().unwrap(), -85).unwrap();
        for _ in 0..200 {
            peer.send(&[1]).unwrap();
        }
        // Every datagram is queued on loopback; read until the queue stays empty.
        let mut got = 0;
        while base.receive(Duration::from_millis(500)).unwrap().is_some() {
            got += 1;
        }
        assert!((60..140).contains(&got), "{got} of 200 with 50 % loss");
    }

    #[test]
    fn carrier_raises_channel_rssi_and_drowns_weaker_frames() {
        let mut base = SimRadio::bind(loopback(), SimChannel::default()).unwrap();
        assert_eq!(base.channel_rssi().unwrap(), NOISE_FLOOR_DBM);
        let jammer = SimPeer::new(base.local_addr().unwrap(), -50).unwrap();
        jammer.carrier(-50, Duration::from_secs(30)).unwrap();
        let weak = SimPeer::new(base.local_addr().unwrap(), -80).unwrap();
        weak.send(&[1]).unwrap();
        assert_eq!(base.receive(Duration::from_millis(300)).unwrap(), None);
        assert_eq!(base.channel_rssi().unwrap(), -50);
        let strong = SimPeer::new(base.local_addr().unwrap(), -30).unwrap();
        strong.send(&[2]).unwrap();
        assert!(base.receive(Duration::from_secs(2)).unwrap().is_some());
    }

    #[test]
    fn a_vanished_peer_does_not_break_the_base() {
        let mut base = SimRadio::bind(loopback(), SimChannel::default()).unwrap();
        let peer = SimPeer::new(base.local_addr().unwrap(), -70).unwrap();
        peer.send(&[1]).unwrap();
        assert!(base.receive(Duration::from_secs(2)).unwrap().is_some());
        drop(peer);
        base.transmit(&[2]).unwrap();
        assert_eq!(base.receive(Duration::from_millis(100)).unwrap(), None);
    }
}
