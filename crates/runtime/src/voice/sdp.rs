//! SDP offer/answer (RFC 3264, RFC 4566) for the unit's voice calls: parse the far end's offer
//! defensively, choose G.711 and RFC 4733 telephone-events from it, and write the answer.
//!
//! Only what a G.711 audio call needs is read: the connection address, the first audio
//! stream's port, payload types and direction. The offer is untrusted input: its size, its
//! line count and every number in it are bounded, and anything malformed is an error rather
//! than a guess. No crate is used: the few fields needed fit in one small parser, and the
//! available SDP crates bring in a WebRTC stack.

use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

use super::g711::Law;
use super::srtp::{Key, SrtpKeys, Suite};

/// The largest offer accepted, in bytes.
pub const MAX_SDP: usize = 8192;
/// The most payload types read from one media line.
const MAX_FORMATS: usize = 32;
/// The most `a=crypto` lines read from one stream.
const MAX_CRYPTO: usize = 8;

/// Why an offer could not be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SdpError {
    /// Larger than [`MAX_SDP`].
    #[error("SDP of {0} bytes is larger than allowed")]
    TooLarge(usize),
    /// A line that is not `x=value`, or a field that does not parse.
    #[error("malformed SDP line {line}")]
    Malformed { line: usize },
    /// No `v=0` first line.
    #[error("SDP does not start with v=0")]
    Version,
    /// No audio stream, or no connection address for it.
    #[error("SDP has no audio stream with an address")]
    NoAudio,
    /// The audio stream offers neither PCMU nor PCMA over RTP/AVP: answered with 488.
    #[error("no common codec")]
    NoCommonCodec,
    /// SRTP offered (or required by the unit's offer) without a crypto suite and key the unit
    /// can use.
    #[error("no usable SRTP crypto suite")]
    NoCrypto,
    /// SRTP keys offered over a signalling path that is not encrypted: anyone on the path
    /// has read them (RFC 4568 §8.3), so the unit will not use them, nor send its own.
    #[error("SRTP keys offered over unencrypted signalling")]
    KeysInClear,
}

impl SdpError {
    /// The SIP status to answer an INVITE carrying this offer with.
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::NoCommonCodec
            | SdpError::NoAudio
            | SdpError::NoCrypto
            | SdpError::KeysInClear => 488,
            _ => 400,
        }
    }
}

/// Media direction (RFC 3264 §5.1, §8.4 for hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction of the answer to an offer with this direction.
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// The part of an offer the call uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Where the far end wants its RTP (port 0: stream refused).
    pub remote: SocketAddr,
    /// Payload types in the far end's order of preference.
    pub formats: Vec<u8>,
    /// Dynamic payload type of `telephone-event/8000`, if offered.
    pub telephone_event: Option<u8>,
    /// The stream's direction.
    pub direction: Direction,
    /// Where the far end wants its RTCP when not at the RTP port + 1 (`a=rtcp`, RFC 3605).
    pub rtcp: Option<SocketAddr>,
    /// The stream is SRTP (`RTP/SAVP`).
    pub secure: bool,
    /// The `a=crypto` lines the unit can use (tag, suite, key), in the far end's order.
    pub crypto: Vec<(u32, Suite, Key)>,
}

/// What was agreed for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreed {
    /// The G.711 law both ends use.
    pub law: Law,
    /// The telephone-event payload type, when both ends have it.
    pub telephone_event: Option<u8>,
    /// Where to send RTP.
    pub remote: SocketAddr,
    /// The unit's direction in the answer.
    pub direction: Direction,
    /// Where to send RTCP when not at the RTP port + 1 (`a=rtcp`, RFC 3605).
    pub rtcp: Option<SocketAddr>,
    /// The call's SRTP keys, when the media is SRTP.
    pub srtp: Option<SrtpKeys>,
}

impl Agreed {
    /// Where the far end takes its RTCP: its `a=rtcp`, else the RTP port + 1 (RFC 3550 §11).
    pub fn rtcp_to(&self) -> SocketAddr {
        self.rtcp.unwrap_or_else(|| {
            SocketAddr::new(self.remote.ip(), self.remote.port().wrapping_add(1))
        })
    }
}

fn field<T: std::str::FromStr>(s: Option<&str>, line: usize) -> Result<T, SdpError> {
    s.and_then(|v| v.parse().ok())
        .ok_or(SdpError::Malformed { line })
}

/// Parses an offer's audio stream.
pub fn parse_offer(text: &str) -> Result<Offer, SdpError> {
    if text.len() > MAX_SDP {
        return Err(SdpError::TooLarge(text.len()));
    }
    let mut session_addr: Option<IpAddr> = None;
    let mut media_addr: Option<IpAddr> = None;
    let mut audio: Option<(u16, Vec<u8>)> = None;
    let mut in_audio = false;
    let mut seen_audio = false;
    let mut telephone_event = None;
    let mut direction = Direction::SendRecv;
    let mut rtcp: Option<(u16, Option<IpAddr>)> = None;
    let mut secure = false;
    let mut crypto = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim_end_matches('\r');
        if raw.is_empty() {
            continue;
        }
        let (kind, value) = raw.split_once('=').ok_or(SdpError::Malformed { line })?;
        if i == 0 {
            if kind != "v" || value != "0" {
                return Err(SdpError::Version);
            }
            continue;
        }
        match kind {
            "m" => {
                in_audio = false;
                let mut parts = value.split(' ');
                let media = parts.next();
                let port: u16 =
                    field(parts.next().map(|p| p.split('/').next().unwrap_or(p)), line)?;
                let proto = parts.next();
                if media == Some("audio") && !seen_audio {
                    seen_audio = true;
                    if proto == Some("RTP/AVP") || proto == Some("RTP/SAVP") {
                        secure = proto == Some("RTP/SAVP");
                        let formats = parts
                            .take(MAX_FORMATS)
                            .map(|f| f.parse::<u8>().map_err(|_| SdpError::Malformed { line }))
                            .collect::<Result<Vec<_>, _>>()?;
                        if formats.iter().any(|&f| f > 127) {
                            return Err(SdpError::Malformed { line });
                        }
                        audio = Some((port, formats));
                        in_audio = true;
                    }
                }
            }
            "c" => {
                let mut parts = value.split(' ');
                if parts.next() != Some("IN") {
                    return Err(SdpError::Malformed { line });
                }
                let _family = parts.next();
                let addr: IpAddr =
                    field(parts.next().map(|a| a.split('/').next().unwrap_or(a)), line)?;
                if in_audio {
                    media_addr = Some(addr);
                } else if !seen_audio {
                    session_addr = Some(addr);
                }
            }
            "a" if in_audio || !seen_audio => {
                let (name, rest) = value.split_once(':').unwrap_or((value, ""));
                match name {
                    "sendrecv" => direction = Direction::SendRecv,
                    "sendonly" => direction = Direction::SendOnly,
                    "recvonly" => direction = Direction::RecvOnly,
                    "inactive" => direction = Direction::Inactive,
                    "rtcp" if in_audio => {
                        let mut parts = rest.split(' ');
                        let port: u16 = field(parts.next(), line)?;
                        let addr = match (parts.next(), parts.next(), parts.next()) {
                            (Some("IN"), Some(_), Some(a)) => Some(field::<IpAddr>(Some(a), line)?),
                            (None, _, _) => None,
                            _ => return Err(SdpError::Malformed { line }),
                        };
                        rtcp = Some((port, addr));
                    }
                    // `a=crypto:<tag> <suite> inline:<key>[|lifetime|MKI] [params]` (RFC 4568
                    // §9.1). A line the unit cannot use is passed over, as the answerer may.
                    "crypto" if in_audio && crypto.len() < MAX_CRYPTO => {
                        let mut parts = rest.split(' ');
                        let tag = parts.next().and_then(|t| t.parse::<u32>().ok());
                        let suite = parts.next().and_then(Suite::from_name);
                        let key = parts
                            .next()
                            .and_then(|k| k.strip_prefix("inline:"))
                            .and_then(Key::from_inline);
                        // Session parameters (KDR, UNENCRYPTED_SRTP, ...) change the keying
                        // or turn protection off: the unit uses only lines without them.
                        if let (Some(tag), Some(suite), Some(key), None) =
                            (tag, suite, key, parts.next())
                        {
                            crypto.push((tag, suite, key));
                        }
                    }
                    "rtpmap" if in_audio => {
                        let (pt, encoding) =
                            rest.split_once(' ').ok_or(SdpError::Malformed { line })?;
                        let pt: u8 = field(Some(pt), line)?;
                        if encoding.eq_ignore_ascii_case("telephone-event/8000") {
                            telephone_event = Some(pt);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let (port, formats) = audio.ok_or(SdpError::NoAudio)?;
    let addr = media_addr.or(session_addr).ok_or(SdpError::NoAudio)?;
    let telephone_event = telephone_event.filter(|pt| formats.contains(pt));
    Ok(Offer {
        remote: SocketAddr::new(addr, port),
        formats,
        telephone_event,
        direction,
        rtcp: rtcp.map(|(port, at)| SocketAddr::new(at.unwrap_or(addr), port)),
        secure,
        crypto,
    })
}

/// Chooses the law for an offer that came over encrypted signalling (or from the unit's own
/// simulators): see [`negotiate_over`].
pub fn negotiate(offer: &Offer, ours: &[Law]) -> Result<Agreed, SdpError> {
    negotiate_over(offer, ours, true)
}

/// Chooses the law for an offer: the far end's first G.711 payload type among `ours`. An
/// SRTP offer is taken only when it came over encrypted signalling (`keys_safe`): the first
/// of its crypto lines the unit can use, answered with a fresh key of the unit's own.
pub fn negotiate_over(offer: &Offer, ours: &[Law], keys_safe: bool) -> Result<Agreed, SdpError> {
    let mut agreed = media_of(offer, ours)?;
    agreed.srtp = if offer.secure {
        if !keys_safe {
            return Err(SdpError::KeysInClear);
        }
        let (tag, suite, theirs) = offer.crypto.first().cloned().ok_or(SdpError::NoCrypto)?;
        Some(SrtpKeys {
            tag,
            suite,
            ours: Key::random(),
            theirs,
        })
    } else {
        None
    };
    Ok(agreed)
}

/// What an offer (or answer) gives the media, SRTP aside: the far end's first G.711 law among
/// `ours`, its events, address, direction and RTCP address.
fn media_of(offer: &Offer, ours: &[Law]) -> Result<Agreed, SdpError> {
    let law = offer
        .formats
        .iter()
        .filter_map(|&pt| Law::from_payload_type(pt))
        .find(|law| ours.contains(law))
        .ok_or(SdpError::NoCommonCodec)?;
    Ok(Agreed {
        law,
        telephone_event: offer.telephone_event,
        remote: offer.remote,
        direction: offer.direction.answer(),
        rtcp: offer.rtcp,
        srtp: None,
    })
}

/// The payload type the unit offers for RFC 4733 telephone-events.
pub const OFFERED_TELEPHONE_EVENT: u8 = 101;

/// Writes the unit's offer for a call it places (RFC 3264 §5): G.711 A-law and µ-law in
/// `laws`' order and telephone-events, send and receive, RTP at `local`; SRTP with `key` when
/// given (only over encrypted signalling).
pub fn write_offer(
    laws: &[Law],
    local: SocketAddr,
    session_id: u64,
    version: u64,
    key: Option<&Key>,
) -> String {
    let family = if local.is_ipv4() { "IP4" } else { "IP6" };
    let ip = local.ip();
    let te = OFFERED_TELEPHONE_EVENT;
    let mut formats = String::new();
    let mut attrs = String::new();
    for law in laws {
        let (pt, name) = match law {
            Law::Ulaw => (law.payload_type(), "PCMU"),
            Law::Alaw => (law.payload_type(), "PCMA"),
        };
        formats.push_str(&format!("{pt} "));
        attrs.push_str(&format!("a=rtpmap:{pt} {name}/8000\r\n"));
    }
    formats.push_str(&te.to_string());
    attrs.push_str(&format!(
        "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\n"
    ));
    if let Some(key) = key {
        attrs.push_str(&crypto_line(
            OFFERED_CRYPTO_TAG,
            Suite::AesCm128HmacSha1_80,
            key,
        ));
    }
    format!(
        "v=0\r\no=vigil {session_id} {version} IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\n\
         t=0 0\r\nm=audio {port} {proto} {formats}\r\n{attrs}a=ptime:20\r\na=sendrecv\r\n",
        port = local.port(),
        proto = if key.is_some() { "RTP/SAVP" } else { "RTP/AVP" },
    )
}

/// The tag of the one crypto line the unit offers.
const OFFERED_CRYPTO_TAG: u32 = 1;

fn crypto_line(tag: u32, suite: Suite, key: &Key) -> String {
    format!(
        "a=crypto:{tag} {} inline:{}\r\n",
        suite.name(),
        &*key.inline()
    )
}

/// Reads the far end's answer to the unit's offer: the law it chose (one the unit offered),
/// its address, its telephone-event type and the direction as the unit sees it. When the
/// offer was SRTP with `key`, the answer must be SRTP on the crypto line offered, with the far
/// end's own key; a plain answer to it, or SRTP the unit did not offer, is refused.
pub fn read_answer(text: &str, offered: &[Law], key: Option<&Key>) -> Result<Agreed, SdpError> {
    let answer = parse_offer(text)?;
    let mut agreed = media_of(&answer, offered)?;
    agreed.srtp = match (key, answer.secure) {
        (None, false) => None,
        (Some(ours), true) => {
            let (tag, suite, theirs) = answer
                .crypto
                .iter()
                .find(|(tag, suite, _)| {
                    *tag == OFFERED_CRYPTO_TAG && *suite == Suite::AesCm128HmacSha1_80
                })
                .cloned()
                .ok_or(SdpError::NoCrypto)?;
            Some(SrtpKeys {
                tag,
                suite,
                ours: ours.clone(),
                theirs,
            })
        }
        _ => return Err(SdpError::NoCrypto),
    };
    // In an answer the far end keeps the event type the unit offered (RFC 3264 §6.1).
    agreed.telephone_event = answer
        .telephone_event
        .filter(|&te| te == OFFERED_TELEPHONE_EVENT);
    Ok(agreed)
}

/// Writes the answer for `agreed`, with the unit's RTP at `local`.
pub fn write_answer(agreed: &Agreed, local: SocketAddr, session_id: u64, version: u64) -> String {
    let family = if local.is_ipv4() { "IP4" } else { "IP6" };
    let ip = local.ip();
    let pt = agreed.law.payload_type();
    let name = match agreed.law {
        Law::Ulaw => "PCMU",
        Law::Alaw => "PCMA",
    };
    let mut formats = pt.to_string();
    let mut attrs = format!("a=rtpmap:{pt} {name}/8000\r\n");
    if let Some(keys) = &agreed.srtp {
        attrs.push_str(&crypto_line(keys.tag, keys.suite, &keys.ours));
    }
    if let Some(te) = agreed.telephone_event {
        formats.push_str(&format!(" {te}"));
        attrs.push_str(&format!(
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\n"
        ));
    }
    format!(
        "v=0\r\no=vigil {session_id} {version} IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\n\
         t=0 0\r\nm=audio {port} {proto} {formats}\r\n{attrs}a=ptime:20\r\na={dir}\r\n",
        port = local.port(),
        proto = if agreed.srtp.is_some() {
            "RTP/SAVP"
        } else {
            "RTP/AVP"
        },
        dir = agreed.direction.attribute(),
    )
}
