//! SRTP and SRTCP (RFC 3711) for a call whose keys were exchanged in its SDP (SDES, RFC 4568)
//! over TLS: the `a=crypto` suites the unit speaks, its keys, and one call's protect and
//! unprotect contexts. The cipher work is `rtc-srtp`'s (webrtc-rs, AES counter mode with
//! HMAC-SHA1 through ring), with replay protection on what the unit receives.
//!
//! Keys never reach a log: [`Key`]'s `Debug` says only that it is there, and its bytes are
//! wiped when it is dropped.

use base64::Engine as _;
use rtc_srtp::context::Context;
use rtc_srtp::crypto::providers::RingCrypto;
use rtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use rtc_srtp::protection_profile::ProtectionProfile;
use thiserror::Error;
use zeroize::Zeroizing;

/// Master key (16 bytes) and master salt (14 bytes), as `inline:` carries them.
pub const KEY_LEN: usize = 30;

/// Packets the replay window remembers (RFC 3711 §3.3.2 asks for at least 64).
const REPLAY_WINDOW: usize = 128;

/// The crypto suites the unit offers and accepts (RFC 4568 §6.2), preferred first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// AES-128 counter mode with an 80-bit HMAC-SHA1 tag: the suite every SDES peer has.
    AesCm128HmacSha1_80,
    /// The same with a 32-bit tag.
    AesCm128HmacSha1_32,
}

impl Suite {
    /// The suite's name in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite named `name`, if the unit has it.
    pub fn from_name(name: &str) -> Option<Suite> {
        [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32]
            .into_iter()
            .find(|s| s.name() == name)
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }
}

/// One side's master key and salt, wiped on drop and never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<secret>)")
    }
}

impl Key {
    /// A fresh random key for the unit's own stream.
    pub fn random() -> Key {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        // The system's generator failing would leave the key all zeros: refuse to use it.
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes[..]).is_err()
        {
            tracing::error!("no random numbers for an SRTP key");
        }
        Key(bytes)
    }

    /// The key from an `inline:` value: base64 of exactly 30 bytes. A lifetime or MKI
    /// (`|2^20|1:4`) is not taken: the unit keeps one key per call and has no MKI.
    pub fn from_inline(value: &str) -> Option<Key> {
        if value.contains('|') {
            return None;
        }
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(value)
                .ok()?,
        );
        let bytes: [u8; KEY_LEN] = raw.as_slice().try_into().ok()?;
        Some(Key(Zeroizing::new(bytes)))
    }

    /// The key as an `inline:` value.
    pub fn inline(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&self.0[..]))
    }

    /// Whether the key is usable: not all zeros (a failed generator).
    pub fn usable(&self) -> bool {
        self.0.iter().any(|&b| b != 0)
    }

    fn split(&self) -> (&[u8], &[u8]) {
        self.0.split_at(16)
    }
}

/// The keys of one call: the suite and tag agreed, the unit's key for what it sends and the
/// far end's for what it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The `a=crypto` tag of the agreed line.
    pub tag: u32,
    pub suite: Suite,
    /// Protects what the unit sends.
    pub ours: Key,
    /// Protects what the far end sends.
    pub theirs: Key,
}

/// Why a packet was not protected or unprotected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SrtpError {
    /// The context could not be made from the keys.
    #[error("SRTP keys unusable")]
    Keys,
    /// Authentication failed, a replay, or not an SRTP packet.
    #[error("SRTP packet refused")]
    Refused,
}

/// One call's SRTP: protects what the unit sends, unprotects what it receives.
pub struct Session {
    tx: Context,
    rx: Context,
}

impl Session {
    /// The contexts for `keys`.
    pub fn new(keys: &SrtpKeys) -> Result<Session, SrtpError> {
        if !keys.ours.usable() {
            return Err(SrtpError::Keys);
        }
        let context = |key: &Key, replay: bool| {
            let (master, salt) = key.split();
            let (rtp, rtcp) = if replay {
                (
                    Some(srtp_replay_protection(REPLAY_WINDOW)),
                    Some(srtcp_replay_protection(REPLAY_WINDOW)),
                )
            } else {
                (None, None)
            };
            Context::new(master, salt, keys.suite.profile(), rtp, rtcp, &RingCrypto)
                .map_err(|_| SrtpError::Keys)
        };
        Ok(Session {
            tx: context(&keys.ours, false)?,
            rx: context(&keys.theirs, true)?,
        })
    }

    /// An RTP packet as SRTP.
    pub fn protect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        done(self.tx.encrypt_rtp(packet))
    }

    /// An SRTP packet back as RTP: refused unless authentic and not a replay.
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        done(self.rx.decrypt_rtp(packet))
    }

    /// An RTCP compound as SRTCP.
    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        done(self.tx.encrypt_rtcp(packet))
    }

    /// An SRTCP packet back as RTCP: refused unless authentic and not a replay.
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        done(self.rx.decrypt_rtcp(packet))
    }
}

/// A packet the cipher made, or why not (the context's error says no more than that).
fn done<T: AsRef<[u8]>, E>(result: Result<T, E>) -> Result<Vec<u8>, SrtpError> {
    result
        .map(|b| b.as_ref().to_vec())
        .map_err(|_| SrtpError::Refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 8];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend(std::iter::repeat_n(0xd5, 160));
        p
    }

    fn pair() -> (Session, Session) {
        let (a, b) = (Key::random(), Key::random());
        let keys = |ours: &Key, theirs: &Key| SrtpKeys {
            tag: 1,
            suite: Suite::AesCm128HmacSha1_80,
            ours: ours.clone(),
            theirs: theirs.clone(),
        };
        (
            Session::new(&keys(&a, &b)).unwrap(),
            Session::new(&keys(&b, &a)).unwrap(),
        )
    }

    #[test]
    fn a_packet_crosses_and_a_forged_or_replayed_one_does_not() {
        let (mut a, mut b) = pair();
        let plain = rtp(7);
        let sealed = a.protect_rtp(&plain).unwrap();
        assert_eq!(sealed.len(), plain.len() + 10, "an 80-bit tag");
        assert_ne!(sealed[12..172], plain[12..172], "the payload is encrypted");
        assert_eq!(b.unprotect_rtp(&sealed).unwrap(), plain);
        // The same packet again: a replay.
        assert_eq!(b.unprotect_rtp(&sealed), Err(SrtpError::Refused));
        // One bit of the payload changed: the tag no longer matches.
        let mut forged = a.protect_rtp(&rtp(8)).unwrap();
        forged[20] ^= 1;
        assert_eq!(b.unprotect_rtp(&forged), Err(SrtpError::Refused));
        // Plain RTP where SRTP was agreed.
        assert_eq!(b.unprotect_rtp(&rtp(9)), Err(SrtpError::Refused));
    }

    #[test]
    fn rtcp_is_protected_too() {
        let (mut a, mut b) = pair();
        let mut report = Vec::new();
        crate::voice::rtcp::write_report(&mut report, 0x1234_5678, 1, None, None, "x", false);
        let sealed = a.protect_rtcp(&report).unwrap();
        assert_eq!(b.unprotect_rtcp(&sealed).unwrap(), report);
        assert_eq!(b.unprotect_rtcp(&sealed), Err(SrtpError::Refused));
    }

    #[test]
    fn inline_keys_are_30_bytes_of_base64_without_lifetime_or_mki() {
        let key = Key::random();
        let inline = key.inline();
        assert_eq!(inline.len(), 40);
        assert_eq!(Key::from_inline(&inline), Some(key));
        assert_eq!(Key::from_inline("AAAA"), None);
        assert_eq!(Key::from_inline(&format!("{}|2^20|1:4", &*inline)), None);
        assert_eq!(Key::from_inline("not base64 at all!!"), None);
        assert!(!format!("{:?}", Key::random()).contains(&*inline));
    }
}
