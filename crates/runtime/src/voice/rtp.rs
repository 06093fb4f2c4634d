//! RTP packets (RFC 3550 §5.1) for a call's G.711 audio, and the gate that accepts media only
//! from the address the far end's SDP negotiated.

use std::net::SocketAddr;

use thiserror::Error;

/// Why a datagram is not an RTP packet the call can use.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RtpError {
    /// Shorter than its header says.
    #[error("RTP packet truncated")]
    Truncated,
    /// Version other than 2.
    #[error("RTP version {0}")]
    Version(u8),
    /// Padding longer than the payload.
    #[error("RTP padding larger than the payload")]
    Padding,
}

/// One parsed RTP packet, borrowing its payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Parses a datagram.
    pub fn parse(data: &'a [u8]) -> Result<Packet<'a>, RtpError> {
        if data.len() < 12 {
            return Err(RtpError::Truncated);
        }
        let version = data[0] >> 6;
        if version != 2 {
            return Err(RtpError::Version(version));
        }
        let padding = data[0] & 0x20 != 0;
        let extension = data[0] & 0x10 != 0;
        let csrc = usize::from(data[0] & 0x0F);
        let mut start = 12 + 4 * csrc;
        if extension {
            let words = data.get(start + 2..start + 4).ok_or(RtpError::Truncated)?;
            start += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        let mut end = data.len();
        if start > end {
            return Err(RtpError::Truncated);
        }
        if padding {
            let pad = usize::from(data[end - 1]);
            if pad == 0 || pad > end - start {
                return Err(RtpError::Padding);
            }
            end -= pad;
        }
        Ok(Packet {
            payload_type: data[1] & 0x7F,
            marker: data[1] & 0x80 != 0,
            sequence: u16::from_be_bytes([data[2], data[3]]),
            timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
            payload: &data[start..end],
        })
    }

    /// Writes the packet (no CSRC, extension or padding) into `out`, cleared first.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(0x80);
        out.push(u8::from(self.marker) << 7 | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(self.payload);
    }
}

/// Accepts media only from the negotiated remote: the SDP's address and port, or, once a
/// packet came from the SDP's address, the port it came from (symmetric RTP behind NAT). For
/// SRTP ([`SourceGate::authenticated`]) any address may be the far end's, since only a packet
/// that authenticates is latched on: a phone behind NAT that wrote its private address in the
/// SDP is heard.
#[derive(Debug)]
pub struct SourceGate {
    negotiated: SocketAddr,
    latched: Option<SocketAddr>,
    any_address: bool,
}

impl SourceGate {
    /// A gate for the address the far end's SDP gave.
    pub fn new(negotiated: SocketAddr) -> SourceGate {
        SourceGate {
            negotiated,
            latched: None,
            any_address: false,
        }
    }

    /// A gate for SRTP media: before it latches, a packet from any address is looked at (its
    /// authentication decides), and it is sent to the SDP's address until then.
    pub fn authenticated(negotiated: SocketAddr) -> SourceGate {
        SourceGate {
            any_address: true,
            ..SourceGate::new(negotiated)
        }
    }

    /// Whether a datagram from `from` belongs to the call; the first one from the SDP's
    /// address latches the port.
    pub fn accept(&mut self, from: SocketAddr) -> bool {
        let admitted = self.admits(from);
        if admitted {
            self.latch(from);
        }
        admitted
    }

    /// Whether a datagram from `from` may belong to the call, without latching on it: for
    /// SRTP, where only a packet that authenticates may move where the media goes.
    pub fn admits(&self, from: SocketAddr) -> bool {
        match self.latched {
            Some(latched) => from == latched,
            None => self.any_address || from.ip() == self.negotiated.ip(),
        }
    }

    /// Latches on `from` (an admitted datagram's source) if nothing is latched yet.
    pub fn latch(&mut self, from: SocketAddr) {
        if self.latched.is_none() {
            self.latched = Some(from);
        }
    }

    /// Where to send the call's RTP.
    pub fn send_to(&self) -> SocketAddr {
        self.latched.unwrap_or(self.negotiated)
    }
}
