//! The SIA DC-09 frame (ANSI/SIA DC-09-2013 §5.5): what goes over TCP or UDP.
//!
//! ```text
//! LF CRC LEN "ID" seq Rrcvr Lpref #acct [data] [ext]… _HH:MM:SS,MM-DD-YYYY CR
//! ```
//!
//! `CRC` is CRC-16/ARC of everything from the first `"` up to (not including) `CR`, as four
//! upper-case hex digits; `LEN` is the length of that same span as `0` and three hex digits.
//! An encrypted frame has `*` before the ID and carries, after `[`, the upper-case hex of
//! `AES-CBC(zero IV, pad | data ] ext… _timestamp)` (§5.5.1.9).

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use chrono::{NaiveDateTime, Timelike};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use std::time::Duration;

pub mod exchange;

/// What can go wrong on a DC-09 link: in a frame, and (for the link) on the network.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Dc09Error {
    /// CRC in the frame does not match its contents.
    #[error("CRC mismatch: frame says {declared:04X}, contents give {computed:04X}")]
    Crc {
        /// CRC written in the frame.
        declared: u16,
        /// CRC of what arrived.
        computed: u16,
    },
    /// LEN in the frame does not match its contents.
    #[error("length mismatch: frame says {declared}, {actual} characters arrived")]
    Length {
        /// LEN written in the frame.
        declared: usize,
        /// What arrived.
        actual: usize,
    },
    /// The frame is not laid out as DC-09 §5.5 says.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// Unknown ID token.
    #[error("unknown message type \"{0}\"")]
    UnknownId(String),
    /// An encrypted frame arrived and no key is configured.
    #[error("encrypted frame but no key configured")]
    NoKey,
    /// The decrypted text has no `|` after the pad or no `]`: wrong key.
    #[error("decryption gave garbage: the receiver uses another key or key format")]
    Decrypt,
    /// A key of the wrong size.
    #[error("AES key must be 16, 24 or 32 bytes, not {0}")]
    KeyLength(usize),
    /// The frame would exceed the 3-hex-digit length.
    #[error("frame body of {0} characters is longer than DC-09 allows (4095)")]
    TooLong(usize),
    /// Resolving, connecting, reading or writing failed.
    #[error("{0}")]
    Io(String),
    /// The receiver did not answer in time.
    #[error("no answer from the receiver within {0:?}")]
    Timeout(Duration),
}

/// The longest frame we read or write: `LEN` has three hex digits of payload.
pub const MAX_FRAME: usize = 1 + 4 + 4 + 0xFFF + 1;

/// CRC-16/ARC (poly 0x8005 reflected = 0xA001, init 0, no final xor), as DC-09 §5.5.1.2 asks.
pub fn crc16_arc(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// The message types (the quoted ID token) this unit sends and understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageId {
    /// Contact ID event (SIA DC-05) in DC-09 framing.
    AdmCid,
    /// SIA DC-03 event.
    SiaDcs,
    /// Link test (supervision): no event.
    Null,
    /// Receiver: accepted.
    Ack,
    /// Receiver: rejected (CRC or time): resend, resynchronising time from its timestamp.
    Nak,
    /// Receiver: does not understand or accept (account, type, key).
    Duh,
}

impl MessageId {
    /// The token between the quotes.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageId::AdmCid => "ADM-CID",
            MessageId::SiaDcs => "SIA-DCS",
            MessageId::Null => "NULL",
            MessageId::Ack => "ACK",
            MessageId::Nak => "NAK",
            MessageId::Duh => "DUH",
        }
    }

    /// Parses the token between the quotes.
    pub fn parse(s: &str) -> Option<MessageId> {
        [
            MessageId::AdmCid,
            MessageId::SiaDcs,
            MessageId::Null,
            MessageId::Ack,
            MessageId::Nak,
            MessageId::Duh,
        ]
        .into_iter()
        .find(|id| id.as_str() == s)
    }
}

/// An AES key for DC-09 encryption: 128, 192 or 256 bits; compared in constant time, zeroed
/// when dropped.
#[derive(Clone)]
pub struct Dc09Key(Zeroizing<Vec<u8>>);

impl PartialEq for Dc09Key {
    fn eq(&self, other: &Dc09Key) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Dc09Key {}

impl Dc09Key {
    /// Accepts 16, 24 or 32 key bytes.
    pub fn new(bytes: &[u8]) -> Result<Dc09Key, Dc09Error> {
        match bytes.len() {
            16 | 24 | 32 => Ok(Dc09Key(Zeroizing::new(bytes.to_vec()))),
            n => Err(Dc09Error::KeyLength(n)),
        }
    }

    /// Key size in bits.
    pub fn bits(&self) -> usize {
        self.0.len() * 8
    }

    /// AES-CBC with a zero IV over whole blocks (the caller pads).
    pub fn encrypt(&self, plain: &[u8]) -> Result<Vec<u8>, Dc09Error> {
        let iv = [0u8; 16];
        let out = match self.0.len() {
            16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(&self.0, &iv)
                .map_err(|_| Dc09Error::KeyLength(16))?
                .encrypt_padded_vec_mut::<NoPadding>(plain),
            24 => cbc::Encryptor::<aes::Aes192>::new_from_slices(&self.0, &iv)
                .map_err(|_| Dc09Error::KeyLength(24))?
                .encrypt_padded_vec_mut::<NoPadding>(plain),
            _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(&self.0, &iv)
                .map_err(|_| Dc09Error::KeyLength(32))?
                .encrypt_padded_vec_mut::<NoPadding>(plain),
        };
        Ok(out)
    }

    /// AES-CBC decryption with a zero IV; the input must be whole blocks.
    pub fn decrypt(&self, cipher: &[u8]) -> Result<Vec<u8>, Dc09Error> {
        if cipher.is_empty() || !cipher.len().is_multiple_of(16) {
            return Err(Dc09Error::Malformed(
                "encrypted part is not whole AES blocks",
            ));
        }
        let iv = [0u8; 16];
        let bad = |_| Dc09Error::Malformed("encrypted part is not whole AES blocks");
        match self.0.len() {
            16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&self.0, &iv)
                .map_err(|_| Dc09Error::KeyLength(16))?
                .decrypt_padded_vec_mut::<NoPadding>(cipher)
                .map_err(bad),
            24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(&self.0, &iv)
                .map_err(|_| Dc09Error::KeyLength(24))?
                .decrypt_padded_vec_mut::<NoPadding>(cipher)
                .map_err(bad),
            _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(&self.0, &iv)
                .map_err(|_| Dc09Error::KeyLength(32))?
                .decrypt_padded_vec_mut::<NoPadding>(cipher)
                .map_err(bad),
        }
    }
}

impl std::fmt::Debug for Dc09Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dc09Key(AES-{}, <secret>)", self.bits())
    }
}

/// Printable pad characters: DC-09 forbids `|`, `[` and `]` in the pad.
const PAD_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `len` random pad characters from the allowed set.
pub fn random_pad(len: usize) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; len];
    // A failing system RNG leaves zeros, which still map to a valid (if predictable) pad;
    // the pad only hides the block layout, it is not key material.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    bytes
        .iter()
        .map(|b| PAD_CHARS[usize::from(*b) % PAD_CHARS.len()])
        .collect()
}

/// How many pad characters make `pad | rest` a whole number of AES blocks (1–16).
pub fn pad_len(rest_len: usize) -> usize {
    16 - (rest_len + 1) % 16
}

/// One DC-09 frame, parsed or to be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The message type.
    pub id: MessageId,
    /// Whether the frame is (or is to be) encrypted (`*` before the ID).
    pub encrypted: bool,
    /// Sequence number 0000–9999; a retransmission keeps its number.
    pub seq: u16,
    /// Receiver number (`R`), hex, if present.
    pub receiver: Option<String>,
    /// Account prefix (`L`), hex.
    pub prefix: Option<String>,
    /// Account (`#acct`), hex; `None` for a NAK (`A0`) or a frame without one.
    pub account: Option<String>,
    /// The data between `[` and `]`, e.g. `#1234|1101 01 001`.
    pub data: String,
    /// Extended data fields, each without its brackets (e.g. `IBedroom`).
    pub extended: Vec<String>,
    /// The sender's UTC time.
    pub timestamp: Option<NaiveDateTime>,
}

impl Frame {
    /// The part after `[` that is encrypted or sent in clear: `data] ext… _ts`.
    fn tail(&self) -> String {
        let mut s = String::with_capacity(self.data.len() + 24);
        s.push_str(&self.data);
        s.push(']');
        for ext in &self.extended {
            s.push('[');
            s.push_str(ext);
            s.push(']');
        }
        if let Some(ts) = self.timestamp {
            s.push('_');
            s.push_str(&format_timestamp(ts));
        }
        s
    }

    /// The span covered by CRC and LEN (from the first `"` up to CR), given the pad for an
    /// encrypted frame (ignored for a plain one).
    fn body(&self, key: Option<&Dc09Key>, pad: &[u8]) -> Result<String, Dc09Error> {
        let mut s = String::with_capacity(64);
        s.push('"');
        if self.encrypted {
            s.push('*');
        }
        s.push_str(self.id.as_str());
        s.push('"');
        s.push_str(&format!("{:04}", self.seq % 10_000));
        if let Some(r) = &self.receiver {
            s.push('R');
            s.push_str(r);
        }
        if let Some(l) = &self.prefix {
            s.push('L');
            s.push_str(l);
        }
        match &self.account {
            Some(acct) => {
                s.push('#');
                s.push_str(acct);
            }
            None => s.push_str("A0"),
        }
        s.push('[');
        let tail = self.tail();
        if self.encrypted {
            let key = key.ok_or(Dc09Error::NoKey)?;
            let mut plain = Vec::with_capacity(pad.len() + 1 + tail.len());
            plain.extend_from_slice(pad);
            plain.push(b'|');
            plain.extend_from_slice(tail.as_bytes());
            if plain.len() % 16 != 0 {
                return Err(Dc09Error::Malformed("pad does not fill the last AES block"));
            }
            s.push_str(&hex::encode_upper(key.encrypt(&plain)?));
        } else {
            s.push_str(&tail);
        }
        Ok(s)
    }

    /// The frame's bytes with the given pad characters (encrypted frames only; see
    /// [`pad_len`]). Used by known-answer tests; senders use [`Frame::emit`].
    pub fn emit_with_pad(&self, key: Option<&Dc09Key>, pad: &[u8]) -> Result<Vec<u8>, Dc09Error> {
        let body = self.body(key, pad)?;
        if body.len() > 0xFFF {
            return Err(Dc09Error::TooLong(body.len()));
        }
        let crc = crc16_arc(body.as_bytes());
        Ok(format!("\n{crc:04X}{:04X}{body}\r", body.len()).into_bytes())
    }

    /// The frame's bytes; an encrypted frame gets a fresh random pad.
    pub fn emit(&self, key: Option<&Dc09Key>) -> Result<Vec<u8>, Dc09Error> {
        let pad = if self.encrypted {
            random_pad(pad_len(self.tail().len()))
        } else {
            Vec::new()
        };
        self.emit_with_pad(key, &pad)
    }

    /// Parses one frame (LF optional, CR required), checking LEN and CRC, decrypting with
    /// `key` if the frame is encrypted.
    pub fn parse(bytes: &[u8], key: Option<&Dc09Key>) -> Result<Frame, Dc09Error> {
        let bytes = bytes.strip_prefix(b"\n").unwrap_or(bytes);
        let bytes = bytes
            .strip_suffix(b"\r")
            .ok_or(Dc09Error::Malformed("no CR at the end"))?;
        let (crc_hex, rest) = split(bytes, 4).ok_or(Dc09Error::Malformed("too short for CRC"))?;
        let (len_hex, body) = split(rest, 4).ok_or(Dc09Error::Malformed("too short for LEN"))?;
        let crc = hex_u16(crc_hex).ok_or(Dc09Error::Malformed("CRC is not 4 hex digits"))?;
        let len = hex_u16(len_hex).ok_or(Dc09Error::Malformed("LEN is not 4 hex digits"))?;
        if usize::from(len) != body.len() {
            return Err(Dc09Error::Length {
                declared: usize::from(len),
                actual: body.len(),
            });
        }
        let computed = crc16_arc(body);
        if computed != crc {
            return Err(Dc09Error::Crc {
                declared: crc,
                computed,
            });
        }
        let body = std::str::from_utf8(body).map_err(|_| Dc09Error::Malformed("not ASCII"))?;
        parse_body(body, key)
    }
}

fn split(b: &[u8], at: usize) -> Option<(&[u8], &[u8])> {
    (b.len() >= at).then(|| b.split_at(at))
}

fn hex_u16(b: &[u8]) -> Option<u16> {
    if b.len() != 4 || !b.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u16::from_str_radix(std::str::from_utf8(b).ok()?, 16).ok()
}

fn take_hex(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(s.len());
    s.split_at(end)
}

/// DC-09 pads the plaintext at its front, so it ends with `]` or the timestamp. Some
/// receivers (ioBroker's, for one) encrypt their answer with PKCS#7 padding on as well, which
/// puts 1 to 16 bytes of value n (0x01..=0x10) after the timestamp. Those bytes cannot end a
/// DC-09 plaintext, so a valid PKCS#7 trailer is dropped; anything else is left for the parser.
fn without_pkcs7_trailer(plain: &[u8]) -> &[u8] {
    match plain.last() {
        Some(&n) if (1..=16).contains(&n) && plain.len() >= usize::from(n) => {
            let (text, trailer) = plain.split_at(plain.len() - usize::from(n));
            if trailer.iter().all(|&b| b == n) {
                text
            } else {
                plain
            }
        }
        _ => plain,
    }
}

fn parse_body(body: &str, key: Option<&Dc09Key>) -> Result<Frame, Dc09Error> {
    let rest = body
        .strip_prefix('"')
        .ok_or(Dc09Error::Malformed("no opening quote"))?;
    let (encrypted, rest) = match rest.strip_prefix('*') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let close = rest
        .find('"')
        .ok_or(Dc09Error::Malformed("no closing quote"))?;
    let (id_text, rest) = rest.split_at(close);
    let id = MessageId::parse(id_text).ok_or_else(|| Dc09Error::UnknownId(id_text.to_string()))?;
    let rest = rest.get(1..).unwrap_or("");
    let seq_text = rest
        .get(..4)
        .ok_or(Dc09Error::Malformed("no sequence number"))?;
    if !seq_text.chars().all(|c| c.is_ascii_digit()) {
        return Err(Dc09Error::Malformed("sequence number is not 4 digits"));
    }
    let seq: u16 = seq_text
        .parse()
        .map_err(|_| Dc09Error::Malformed("sequence number is not 4 digits"))?;
    let mut rest = rest.get(4..).unwrap_or("");
    let mut receiver = None;
    if let Some(r) = rest.strip_prefix('R') {
        let (hex, r) = take_hex(r);
        if hex.is_empty() || hex.len() > 6 {
            return Err(Dc09Error::Malformed(
                "receiver number is not 1-6 hex digits",
            ));
        }
        receiver = Some(hex.to_string());
        rest = r;
    }
    let mut prefix = None;
    if let Some(r) = rest.strip_prefix('L') {
        let (hex, r) = take_hex(r);
        if hex.is_empty() || hex.len() > 6 {
            return Err(Dc09Error::Malformed("account prefix is not 1-6 hex digits"));
        }
        prefix = Some(hex.to_string());
        rest = r;
    }
    let mut account = None;
    if let Some(r) = rest.strip_prefix('#') {
        let (hex, r) = take_hex(r);
        if !(3..=16).contains(&hex.len()) {
            return Err(Dc09Error::Malformed("account is not 3-16 hex digits"));
        }
        account = Some(hex.to_string());
        rest = r;
    } else if let Some(r) = rest.strip_prefix('A') {
        // A NAK carries `A0` instead of an account.
        let (_, r) = take_hex(r);
        rest = r;
    }
    let rest = rest
        .strip_prefix('[')
        .ok_or(Dc09Error::Malformed("no '[' before the data"))?;
    let plain;
    let tail = if encrypted {
        let key = key.ok_or(Dc09Error::NoKey)?;
        let cipher =
            hex::decode(rest).map_err(|_| Dc09Error::Malformed("encrypted part is not hex"))?;
        plain = key.decrypt(&cipher)?;
        let text =
            std::str::from_utf8(without_pkcs7_trailer(&plain)).map_err(|_| Dc09Error::Decrypt)?;
        match text.find('|') {
            Some(bar) => text.get(bar + 1..).unwrap_or(""),
            // Receivers differ: some put no `|` after the pad of an answer. Pad characters
            // exclude `|[]`, so an answer without data (ACK, NAK, DUH) then starts at its `]`.
            None if matches!(id, MessageId::Ack | MessageId::Nak | MessageId::Duh) => text
                .get(text.find(']').ok_or(Dc09Error::Decrypt)?..)
                .unwrap_or(""),
            None => return Err(Dc09Error::Decrypt),
        }
    } else {
        rest
    };
    let close = tail.find(']').ok_or(if encrypted {
        Dc09Error::Decrypt
    } else {
        Dc09Error::Malformed("no ']' after the data")
    })?;
    let data = tail.get(..close).unwrap_or("").to_string();
    let mut rest = tail.get(close + 1..).unwrap_or("");
    let mut extended = Vec::new();
    while let Some(r) = rest.strip_prefix('[') {
        let close = r
            .find(']')
            .ok_or(Dc09Error::Malformed("extended data without ']'"))?;
        extended.push(r.get(..close).unwrap_or("").to_string());
        rest = r.get(close + 1..).unwrap_or("");
    }
    let timestamp = match rest.strip_prefix('_') {
        Some(ts) => Some(parse_timestamp(ts).ok_or(Dc09Error::Malformed("bad timestamp"))?),
        None if rest.is_empty() => None,
        None => return Err(Dc09Error::Malformed("trailing characters after the data")),
    };
    Ok(Frame {
        id,
        encrypted,
        seq,
        receiver,
        prefix,
        account,
        data,
        extended,
        timestamp,
    })
}

/// `HH:MM:SS,MM-DD-YYYY` (UTC), as in §5.5.1.8.
pub fn format_timestamp(ts: NaiveDateTime) -> String {
    ts.with_nanosecond(0)
        .unwrap_or(ts)
        .format("%H:%M:%S,%m-%d-%Y")
        .to_string()
}

/// Parses `HH:MM:SS,MM-DD-YYYY`.
pub fn parse_timestamp(s: &str) -> Option<NaiveDateTime> {
    if s.len() != 19 || !s.is_ascii() {
        return None;
    }
    NaiveDateTime::parse_from_str(s, "%H:%M:%S,%m-%d-%Y").ok()
}

/// Parses a frame received in clear or encrypted under a fixed test key; never panics.
/// The entry point of the `dc09_frame` fuzz target.
pub fn parse_untrusted(bytes: &[u8]) -> Result<Frame, Dc09Error> {
    const FUZZ_KEY: [u8; 16] = *b"0123456789ABCDEF";
    let key = Dc09Key::new(&FUZZ_KEY)?;
    let frame = Frame::parse(bytes, Some(&key))?;
    // Whatever parses must emit again and parse back to the same frame.
    if let Ok(again) = frame.emit(Some(&key)) {
        if let Ok(back) = Frame::parse(&again, Some(&key)) {
            if back != frame {
                return Err(Dc09Error::Malformed("frame does not survive a round trip"));
            }
        }
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_arc_check_value() {
        assert_eq!(crc16_arc(b"123456789"), 0xBB3D);
        assert_eq!(crc16_arc(b""), 0);
    }

    #[test]
    fn keys_differing_only_in_their_last_byte_differ() {
        let mut bytes = vec![0x5A; 16];
        let k = Dc09Key::new(&bytes).unwrap();
        bytes[15] ^= 1;
        assert_ne!(Dc09Key::new(&bytes).unwrap(), k);
        assert_ne!(Dc09Key::new(&[0x5A; 24]).unwrap(), k);
        assert_eq!(Dc09Key::new(&[0x5A; 16]).unwrap(), k);
    }

    fn sample() -> Frame {
        Frame {
            id: MessageId::AdmCid,
            encrypted: false,
            seq: 1,
            receiver: Some("1".into()),
            prefix: Some("1".into()),
            account: Some("1234".into()),
            data: "#1234|1101 01 001".into(),
            extended: vec![],
            timestamp: parse_timestamp("14:30:00,11-25-2026"),
        }
    }

    #[test]
    fn plain_frame_layout() {
        let bytes = sample().emit(None).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let body = "\"ADM-CID\"0001R1L1#1234[#1234|1101 01 001]_14:30:00,11-25-2026";
        let crc = crc16_arc(body.as_bytes());
        assert_eq!(text, format!("\n{crc:04X}{:04X}{body}\r", body.len()));
        assert_eq!(Frame::parse(&bytes, None).unwrap(), sample());
    }

    #[test]
    fn encrypted_round_trip_all_key_sizes() {
        for len in [16, 24, 32] {
            let key = Dc09Key::new(&vec![0x5A; len]).unwrap();
            let mut f = sample();
            f.encrypted = true;
            f.extended = vec!["IBedroom".into()];
            let bytes = f.emit(Some(&key)).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains("1101"));
            assert_eq!(Frame::parse(&bytes, Some(&key)).unwrap(), f);
            let other = Dc09Key::new(&vec![0x33; len]).unwrap();
            assert!(Frame::parse(&bytes, Some(&other)).is_err());
            assert!(matches!(Frame::parse(&bytes, None), Err(Dc09Error::NoKey)));
        }
    }

    #[test]
    fn crc_mismatch_is_reported() {
        let mut bytes = sample().emit(None).unwrap();
        let pos = bytes.len() - 5;
        bytes[pos] ^= 0x01;
        assert!(matches!(
            Frame::parse(&bytes, None),
            Err(Dc09Error::Crc { .. })
        ));
    }

    #[test]
    fn nak_with_a0_parses() {
        let body = "\"NAK\"0000R0L0A0[]_10:20:30,01-02-2027";
        let frame = format!(
            "\n{:04X}{:04X}{body}\r",
            crc16_arc(body.as_bytes()),
            body.len()
        );
        let f = Frame::parse(frame.as_bytes(), None).unwrap();
        assert_eq!(f.id, MessageId::Nak);
        assert_eq!(f.account, None);
        assert_eq!(f.timestamp, parse_timestamp("10:20:30,01-02-2027"));
    }

    /// An encrypted ACK as ioBroker's SIA receiver sends it: NUL pad bytes, `|`, then
    /// PKCS#7 padding after the timestamp (here a whole block of 0x10).
    fn ack_with_trailer(key: &Dc09Key, trailer: &[u8]) -> Vec<u8> {
        let mut plain = vec![0u8; 10];
        plain.extend_from_slice(b"|]_16:31:19,12-05-2026");
        plain.extend_from_slice(trailer);
        let cipher = hex::encode_upper(key.encrypt(&plain).unwrap());
        let body = format!("\"*ACK\"0001R1L1#1234[{cipher}");
        format!(
            "\n{:04X}{:04X}{body}\r",
            crc16_arc(body.as_bytes()),
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn an_ack_with_pkcs7_padding_after_the_timestamp_parses() {
        let key = Dc09Key::new(&[0x11; 16]).unwrap();
        let f = Frame::parse(&ack_with_trailer(&key, &[0x10; 16]), Some(&key)).unwrap();
        assert_eq!(f.id, MessageId::Ack);
        assert_eq!(f.timestamp, parse_timestamp("16:31:19,12-05-2026"));
        // Anything that is not a whole PKCS#7 trailer is still refused.
        let mut odd = vec![0x10; 15];
        odd.push(0x0F);
        assert!(Frame::parse(&ack_with_trailer(&key, &odd), Some(&key)).is_err());
    }

    #[test]
    fn pad_fills_blocks() {
        for n in 0..64 {
            assert_eq!((pad_len(n) + 1 + n) % 16, 0);
            assert!((1..=16).contains(&pad_len(n)));
        }
        assert!(random_pad(100).iter().all(|b| b.is_ascii_alphanumeric()));
    }
}
