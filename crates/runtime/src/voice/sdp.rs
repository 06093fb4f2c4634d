//! SDP offer/answer (RFC 3264, RFC 4566) for the unit's voice calls: parse the far end's offer
//! defensively, choose G.711 and RFC 4733 telephone-events from it, and write the answer.
//!
//! Only what a G.711 audio call needs is read: the connection address, each RTP audio
//! stream's port, payload types, direction and keys. One stream carries the call; the answer
//! repeats every other `m=` line of the offer with port 0, refusing it (RFC 3264 §6). So an
//! offer of the same audio both as SRTP and as plain RTP (`RTP/SAVP` and `RTP/AVP` lines, as
//! phones that offer SRTP optionally send it) is answered on the plain line when the signalling
//! was not encrypted, and on the SRTP line when it was. The offer is untrusted input: its size,
//! its line count and every number in it are bounded, and anything malformed is an error
//! rather than a guess. No crate is used: the few fields needed fit in one small parser, and
//! the available SDP crates bring in a WebRTC stack.

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
/// The most `m=` lines an offer may have.
const MAX_STREAMS: usize = 8;

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

/// One RTP audio stream of an offer (or answer): the part of it a call uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// Which `m=` line of the SDP it is, from 0.
    pub line: usize,
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
    /// RTCP on the RTP port (`a=rtcp-mux`, RFC 5761).
    pub rtcp_mux: bool,
}

/// One `m=` line as offered, as the answer repeats it when refusing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLine {
    /// `audio`, `video`, …
    pub media: String,
    /// `RTP/AVP`, `RTP/SAVP`, …
    pub proto: String,
    /// The format list as offered.
    pub formats: String,
}

/// An offer's media: its RTP audio streams and all its `m=` lines. Made only by
/// [`parse_offer`], so it has at least one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    first: Stream,
    /// The other RTP audio streams, in the offer's order.
    others: Vec<Stream>,
    lines: Vec<MediaLine>,
}

impl Offer {
    /// The first RTP audio stream (an answer to the unit's offer has only that one).
    pub fn first(&self) -> &Stream {
        &self.first
    }

    /// The RTP audio streams (`RTP/AVP` or `RTP/SAVP`), in the offer's order.
    pub fn streams(&self) -> impl Iterator<Item = &Stream> {
        std::iter::once(&self.first).chain(&self.others)
    }

    /// Every `m=` line, in order.
    pub fn lines(&self) -> &[MediaLine] {
        &self.lines
    }
}

/// The offer's `m=` lines and which of them carries the call: the answer repeats every line,
/// the others refused with port 0 (RFC 3264 §6). Empty: the answer has the call's line only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines {
    /// The offer's `m=` lines.
    pub offered: Vec<MediaLine>,
    /// Which of them the call uses.
    pub used: usize,
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
    /// The offer's `m=` lines, for the answer.
    pub lines: Lines,
    /// RTCP shares the RTP port both ways (RFC 5761: the far end offered `a=rtcp-mux` and the
    /// unit answered it).
    pub rtcp_mux: bool,
}

impl Agreed {
    /// Where the far end takes its RTCP: its RTP address when RTCP is multiplexed (RFC 5761
    /// §5.1.3), else its `a=rtcp`, else the RTP port + 1 (RFC 3550 §11).
    pub fn rtcp_to(&self) -> SocketAddr {
        if self.rtcp_mux {
            return self.remote;
        }
        self.rtcp.unwrap_or_else(|| {
            SocketAddr::new(self.remote.ip(), self.remote.port().wrapping_add(1))
        })
    }
}

fn field<T: std::str::FromStr>(s: Option<&str>, line: usize) -> Result<T, SdpError> {
    s.and_then(|v| v.parse().ok())
        .ok_or(SdpError::Malformed { line })
}

/// A stream being read: where its `m=` line is, what it says so far.
struct Reading {
    stream: Stream,
    /// Its own `c=` address, if it has one.
    addr: Option<IpAddr>,
    /// Its `a=rtcp` port and address.
    rtcp: Option<(u16, Option<IpAddr>)>,
}

/// A token of an `m=` line the answer may repeat: visible ASCII.
fn token(s: Option<&str>, line: usize) -> Result<String, SdpError> {
    match s {
        Some(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()) => Ok(t.to_string()),
        _ => Err(SdpError::Malformed { line }),
    }
}

/// Parses an offer's (or an answer's) media streams.
pub fn parse_offer(text: &str) -> Result<Offer, SdpError> {
    if text.len() > MAX_SDP {
        return Err(SdpError::TooLarge(text.len()));
    }
    let mut session_addr: Option<IpAddr> = None;
    let mut session_direction = Direction::SendRecv;
    let mut lines: Vec<MediaLine> = Vec::new();
    let mut read: Vec<Reading> = Vec::new();
    // The RTP audio stream whose attributes are being read, if the current `m=` line is one.
    let mut current: Option<Reading> = None;
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
                read.extend(current.take());
                if lines.len() == MAX_STREAMS {
                    return Err(SdpError::Malformed { line });
                }
                let mut parts = value.split(' ');
                let media = token(parts.next(), line)?;
                let port: u16 =
                    field(parts.next().map(|p| p.split('/').next().unwrap_or(p)), line)?;
                let proto = token(parts.next(), line)?;
                let formats: Vec<&str> = parts.collect();
                for f in &formats {
                    token(Some(f), line)?;
                }
                if media == "audio" && (proto == "RTP/AVP" || proto == "RTP/SAVP") {
                    let formats = formats
                        .iter()
                        .take(MAX_FORMATS)
                        .map(|f| f.parse::<u8>().map_err(|_| SdpError::Malformed { line }))
                        .collect::<Result<Vec<_>, _>>()?;
                    if formats.iter().any(|&f| f > 127) {
                        return Err(SdpError::Malformed { line });
                    }
                    current = Some(Reading {
                        stream: Stream {
                            line: lines.len(),
                            remote: SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port),
                            formats,
                            telephone_event: None,
                            direction: session_direction,
                            rtcp: None,
                            secure: proto == "RTP/SAVP",
                            crypto: Vec::new(),
                            rtcp_mux: false,
                        },
                        addr: None,
                        rtcp: None,
                    });
                }
                lines.push(MediaLine {
                    media,
                    proto,
                    formats: formats.join(" "),
                });
            }
            "c" => {
                let mut parts = value.split(' ');
                if parts.next() != Some("IN") {
                    return Err(SdpError::Malformed { line });
                }
                let _family = parts.next();
                let addr: IpAddr =
                    field(parts.next().map(|a| a.split('/').next().unwrap_or(a)), line)?;
                if let Some(r) = current.as_mut() {
                    r.addr = Some(addr);
                } else if lines.is_empty() {
                    session_addr = Some(addr);
                }
            }
            "a" => {
                let (name, rest) = value.split_once(':').unwrap_or((value, ""));
                let direction = match name {
                    "sendrecv" => Some(Direction::SendRecv),
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                let Some(r) = current.as_mut() else {
                    // Session level sets every stream's default; other streams' are not read.
                    if let (Some(d), true) = (direction, lines.is_empty()) {
                        session_direction = d;
                    }
                    continue;
                };
                if let Some(d) = direction {
                    r.stream.direction = d;
                }
                match name {
                    "rtcp-mux" => r.stream.rtcp_mux = true,
                    "rtcp" => {
                        let mut parts = rest.split(' ');
                        let port: u16 = field(parts.next(), line)?;
                        let addr = match (parts.next(), parts.next(), parts.next()) {
                            (Some("IN"), Some(_), Some(a)) => Some(field::<IpAddr>(Some(a), line)?),
                            (None, _, _) => None,
                            _ => return Err(SdpError::Malformed { line }),
                        };
                        r.rtcp = Some((port, addr));
                    }
                    // `a=crypto:<tag> <suite> inline:<key>[|lifetime|MKI] [params]` (RFC 4568
                    // §9.1). A line the unit cannot use is passed over, as the answerer may.
                    "crypto" if r.stream.crypto.len() < MAX_CRYPTO => {
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
                            r.stream.crypto.push((tag, suite, key));
                        }
                    }
                    "rtpmap" => {
                        let (pt, encoding) =
                            rest.split_once(' ').ok_or(SdpError::Malformed { line })?;
                        let pt: u8 = field(Some(pt), line)?;
                        if encoding.eq_ignore_ascii_case("telephone-event/8000") {
                            r.stream.telephone_event = Some(pt);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    read.extend(current.take());
    let mut streams = Vec::with_capacity(read.len());
    for r in read {
        // A stream without an address of its own or the session's cannot be used.
        let Some(addr) = r.addr.or(session_addr) else {
            continue;
        };
        let mut stream = r.stream;
        stream.remote = SocketAddr::new(addr, stream.remote.port());
        stream.telephone_event = stream
            .telephone_event
            .filter(|pt| stream.formats.contains(pt));
        stream.rtcp = r
            .rtcp
            .map(|(port, at)| SocketAddr::new(at.unwrap_or(addr), port));
        streams.push(stream);
    }
    let mut streams = streams.into_iter();
    let first = streams.next().ok_or(SdpError::NoAudio)?;
    Ok(Offer {
        first,
        others: streams.collect(),
        lines,
    })
}

/// Chooses the law for an offer that came over encrypted signalling (or from the unit's own
/// simulators): see [`negotiate_over`].
pub fn negotiate(offer: &Offer, ours: &[Law]) -> Result<Agreed, SdpError> {
    negotiate_over(offer, ours, true)
}

/// Chooses the stream and law for an offer: the far end's first G.711 payload type among
/// `ours`. An SRTP stream is taken only when it came over encrypted signalling (`keys_safe`):
/// the first of its crypto lines the unit can use, answered with a fresh key of the unit's
/// own. Of several audio streams the first usable one carries the call, SRTP ones first when
/// the keys are safe (RFC 3264 §6: the others are refused in the answer); when none is usable,
/// the reason is the most preferred stream's.
pub fn negotiate_over(offer: &Offer, ours: &[Law], keys_safe: bool) -> Result<Agreed, SdpError> {
    let mut order: Vec<&Stream> = offer.streams().collect();
    // Stable: within SRTP and within plain streams, the offer's order.
    order.sort_by_key(|s| s.secure != keys_safe);
    let mut first_error = None;
    for stream in order {
        match negotiate_stream(stream, ours, keys_safe) {
            Ok(mut agreed) => {
                if offer.lines.len() > 1 {
                    agreed.lines = Lines {
                        offered: offer.lines.clone(),
                        used: stream.line,
                    };
                }
                return Ok(agreed);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(SdpError::NoAudio))
}

/// [`negotiate_over`] for one stream.
fn negotiate_stream(stream: &Stream, ours: &[Law], keys_safe: bool) -> Result<Agreed, SdpError> {
    let mut agreed = media_of(stream, ours)?;
    agreed.srtp = if stream.secure {
        if !keys_safe {
            return Err(SdpError::KeysInClear);
        }
        let (tag, suite, theirs) = stream.crypto.first().cloned().ok_or(SdpError::NoCrypto)?;
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

/// What a stream of an offer (or answer) gives the media, SRTP aside: the far end's first
/// G.711 law among `ours`, its events, address, direction and RTCP address.
fn media_of(offer: &Stream, ours: &[Law]) -> Result<Agreed, SdpError> {
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
        lines: Lines::default(),
        rtcp_mux: offer.rtcp_mux,
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
    let parsed = parse_offer(text)?;
    let answer = parsed.first();
    let mut agreed = media_of(answer, offered)?;
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
    // The unit's offers keep RTCP on its own port: an answer cannot turn multiplexing on
    // (RFC 5761 §5.1.1).
    agreed.rtcp_mux = false;
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
    if agreed.rtcp_mux {
        attrs.push_str("a=rtcp-mux\r\n");
    }
    let ours = format!(
        "m=audio {port} {proto} {formats}\r\n{attrs}a=ptime:20\r\na={dir}\r\n",
        port = local.port(),
        proto = if agreed.srtp.is_some() {
            "RTP/SAVP"
        } else {
            "RTP/AVP"
        },
        dir = agreed.direction.attribute(),
    );
    // Every offered line in its place; the ones the call does not use refused with port 0.
    let media: String = if agreed.lines.offered.is_empty() {
        ours
    } else {
        agreed
            .lines
            .offered
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if i == agreed.lines.used {
                    ours.clone()
                } else {
                    let space = if l.formats.is_empty() { "" } else { " " };
                    format!("m={} 0 {}{space}{}\r\n", l.media, l.proto, l.formats)
                }
            })
            .collect()
    };
    format!(
        "v=0\r\no=vigil {session_id} {version} IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\n\
         t=0 0\r\n{media}"
    )
}
