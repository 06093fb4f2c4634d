//! Pairing a pendant with the base: an X25519 key agreement (RFC 7748) and HKDF-SHA256
//! (RFC 5869), both from ring, bound to a button press on the pendant and a short window
//! opened on the base by `vigil pair`.
//!
//! 1. The installer opens the window; the wearer holds the pendant's button until it flashes,
//!    and the pendant sends a `PairRequest` with a fresh X25519 public key.
//! 2. The base answers with its own fresh public key and a tag made with the derived key
//!    (key confirmation), and stores the key. The pendant checks the tag and keeps the key.
//!
//! Only one pendant may pair per window: a second one is refused, and so is every request when
//! no window is open. The installer compares the printed id with the label on the pendant.
//! The exchange is unauthenticated by design (a pendant has no display), so the window is
//! short and the installer watches it.

use std::time::Duration;

use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::hkdf::{KeyType, Salt, HKDF_SHA256};
use ring::rand::SystemRandom;
use tracing::{info, warn};

use super::frame::{
    emit_pair_accept, emit_pair_request, Frame, FrameBuf, FrameCipher, FrameType, PendantKey,
    HEADER_LEN, PUBLIC_KEY_LEN,
};
use super::RadioError;
use crate::core::{DeviceId, Timestamp};

const SALT: &[u8] = b"vigil pendant pairing v1";

struct KeyLen;
impl KeyType for KeyLen {
    fn len(&self) -> usize {
        32
    }
}

/// The pendant key both sides derive from the shared secret and the transcript.
fn derive(
    shared: &[u8],
    device: DeviceId,
    pendant_pub: &[u8],
    base_pub: &[u8],
) -> Result<PendantKey, RadioError> {
    let device = device.0.to_be_bytes();
    let info = [&device[..], pendant_pub, base_pub];
    let mut out = [0u8; 32];
    Salt::new(HKDF_SHA256, SALT)
        .extract(shared)
        .expand(&info, KeyLen)
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| RadioError::Key("key derivation failed".into()))?;
    Ok(PendantKey::new(out))
}

fn keypair(rng: &SystemRandom) -> Result<(EphemeralPrivateKey, [u8; PUBLIC_KEY_LEN]), RadioError> {
    let private = EphemeralPrivateKey::generate(&X25519, rng)
        .map_err(|_| RadioError::Key("could not generate an X25519 key".into()))?;
    let public = private
        .compute_public_key()
        .map_err(|_| RadioError::Key("could not compute an X25519 public key".into()))?;
    let mut out = [0u8; PUBLIC_KEY_LEN];
    out.copy_from_slice(public.as_ref());
    Ok((private, out))
}

fn agree(
    private: EphemeralPrivateKey,
    peer: &[u8],
    device: DeviceId,
    pendant_pub: &[u8],
    base_pub: &[u8],
) -> Result<PendantKey, RadioError> {
    agreement::agree_ephemeral(private, &UnparsedPublicKey::new(&X25519, peer), |shared| {
        derive(shared, device, pendant_pub, base_pub)
    })
    .map_err(|_| RadioError::Key("X25519 agreement failed (bad public key)".into()))?
}

/// What the base decided about a pairing request.
#[derive(Debug)]
pub enum PairingOutcome {
    /// Accepted: send `reply`, store `key` for `device` (unless `repeat`).
    Accepted {
        /// The new pendant.
        device: DeviceId,
        /// The agreed key.
        key: PendantKey,
        /// The `PairAccept` frame to transmit.
        reply: FrameBuf,
        /// The pendant repeated its request (our accept was lost): resend, already stored.
        repeat: bool,
    },
    /// Refused, with a message for the installer.
    Refused {
        /// The pendant that asked, if the frame could be read.
        device: Option<DeviceId>,
        /// Why, in words an installer can act on.
        message: String,
    },
}

struct Paired {
    device: DeviceId,
    pendant_pub: [u8; PUBLIC_KEY_LEN],
    key: PendantKey,
    reply: FrameBuf,
}

/// The base's side: a pairing window and at most one pendant paired in it.
#[derive(Default)]
pub struct PairingWindow {
    until: Option<Timestamp>,
    paired: Option<Paired>,
}

impl PairingWindow {
    /// A closed window.
    pub fn new() -> PairingWindow {
        PairingWindow::default()
    }

    /// Opens the window for `length` from `now`, forgetting any earlier pairing.
    pub fn open(&mut self, now: Timestamp, length: Duration) {
        self.until = Some(now + length);
        self.paired = None;
        info!(seconds = length.as_secs(), "pairing window open");
    }

    /// Closes the window.
    pub fn close(&mut self) {
        self.until = None;
    }

    /// Whether the window is open at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.until.is_some_and(|u| now < u)
    }

    /// The pendant paired in the current window, if any.
    pub fn paired(&self) -> Option<DeviceId> {
        self.paired.as_ref().map(|p| p.device)
    }

    /// Handles a received `PairRequest` frame.
    pub fn request(&mut self, now: Timestamp, bytes: &[u8]) -> PairingOutcome {
        let frame = match Frame::new_checked(bytes) {
            Ok(f) if f.frame_type() == FrameType::PairRequest => f,
            _ => return refuse(None, "not a pairing request frame".into()),
        };
        let device = frame.device();
        if !self.is_open(now) {
            return refuse(
                Some(device),
                format!(
                    "pairing request from pendant {device} refused: no pairing window is open \
                     (run `vigil pair`, then hold the pendant's button)"
                ),
            );
        }
        let mut pendant_pub = [0u8; PUBLIC_KEY_LEN];
        pendant_pub.copy_from_slice(frame.body());
        if let Some(p) = &self.paired {
            if p.device == device && p.pendant_pub == pendant_pub {
                return PairingOutcome::Accepted {
                    device,
                    key: p.key.clone(),
                    reply: p.reply,
                    repeat: true,
                };
            }
            return refuse(
                Some(device),
                format!(
                    "pairing request from pendant {device} refused: pendant {} was already paired \
                     in this window; open a new window for each pendant",
                    p.device
                ),
            );
        }
        match accept(device, frame.counter(), &pendant_pub) {
            Ok((key, reply)) => {
                info!(pendant = %device, "pendant paired");
                self.paired = Some(Paired {
                    device,
                    pendant_pub,
                    key: key.clone(),
                    reply,
                });
                PairingOutcome::Accepted {
                    device,
                    key,
                    reply,
                    repeat: false,
                }
            }
            Err(e) => refuse(
                Some(device),
                format!("pairing with pendant {device} failed: {e}"),
            ),
        }
    }
}

fn refuse(device: Option<DeviceId>, message: String) -> PairingOutcome {
    match device {
        Some(d) => warn!(pendant = %d, %message, "pairing refused"),
        None => warn!(%message, "pairing refused"),
    }
    PairingOutcome::Refused { device, message }
}

fn accept(
    device: DeviceId,
    attempt: u32,
    pendant_pub: &[u8; PUBLIC_KEY_LEN],
) -> Result<(PendantKey, FrameBuf), RadioError> {
    let (private, base_pub) = keypair(&SystemRandom::new())?;
    let key = agree(private, pendant_pub, device, pendant_pub, &base_pub)?;
    let reply = emit_pair_accept(device, attempt, &base_pub, &FrameCipher::new(&key));
    Ok((key, reply))
}

/// The pendant's side of pairing (used by the simulated pendant and by tests).
pub struct PendantPairing {
    device: DeviceId,
    attempt: u32,
    private: EphemeralPrivateKey,
    public: [u8; PUBLIC_KEY_LEN],
}

impl PendantPairing {
    /// Starts pairing: a fresh X25519 key pair, as after a long button press.
    pub fn start(device: DeviceId, attempt: u32) -> Result<PendantPairing, RadioError> {
        let (private, public) = keypair(&SystemRandom::new())?;
        Ok(PendantPairing {
            device,
            attempt,
            private,
            public,
        })
    }

    /// The `PairRequest` frame to send (and resend until answered).
    pub fn request(&self) -> FrameBuf {
        emit_pair_request(self.device, self.attempt, &self.public)
    }

    /// Checks the base's `PairAccept` and returns the agreed key.
    pub fn finish(self, bytes: &[u8]) -> Result<PendantKey, RadioError> {
        let frame = Frame::new_checked(bytes)?;
        if frame.frame_type() != FrameType::PairAccept {
            return Err(RadioError::UnexpectedFrame(frame.frame_type().as_str()));
        }
        if frame.device() != self.device || frame.counter() != self.attempt {
            return Err(RadioError::Pairing(
                "the accept answers another pendant".into(),
            ));
        }
        let body = frame.body();
        let (base_pub, tag) = body.split_at(PUBLIC_KEY_LEN);
        let key = agree(self.private, base_pub, self.device, &self.public, base_pub)?;
        let aad = bytes
            .get(..HEADER_LEN + PUBLIC_KEY_LEN)
            .ok_or(RadioError::Truncated {
                len: bytes.len(),
                need: HEADER_LEN + PUBLIC_KEY_LEN,
            })?;
        FrameCipher::new(&key)
            .check_pair_confirmation(self.device, aad, tag)
            .map_err(|_| RadioError::Pairing("key confirmation failed".into()))?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_000_000);

    fn window() -> PairingWindow {
        let mut w = PairingWindow::new();
        w.open(T0, Duration::from_secs(60));
        w
    }

    #[test]
    fn pendant_and_base_agree_the_same_key() {
        let mut w = window();
        let p = PendantPairing::start(DeviceId(0x42), 1).unwrap();
        let req = p.request();
        let PairingOutcome::Accepted {
            key, reply, repeat, ..
        } = w.request(T0, req.as_bytes())
        else {
            panic!("refused")
        };
        assert!(!repeat);
        assert_eq!(p.finish(reply.as_bytes()).unwrap(), key);
        // The lost-accept case: same request again gets the same answer.
        let PairingOutcome::Accepted {
            reply: again,
            repeat,
            ..
        } = w.request(T0, req.as_bytes())
        else {
            panic!("refused")
        };
        assert!(repeat);
        assert_eq!(again, reply);
    }

    #[test]
    fn tampered_accept_is_refused_by_the_pendant() {
        let mut w = window();
        let p = PendantPairing::start(DeviceId(0x42), 1).unwrap();
        let PairingOutcome::Accepted { reply, .. } = w.request(T0, p.request().as_bytes()) else {
            panic!("refused")
        };
        let mut bytes = reply.as_bytes().to_vec();
        bytes[20] ^= 1; // the base's public key
        assert!(p.finish(&bytes).is_err());
    }

    #[test]
    fn outside_the_window_and_a_second_pendant_are_refused_with_a_message() {
        let mut w = PairingWindow::new();
        let p = PendantPairing::start(DeviceId(0x42), 1).unwrap();
        let PairingOutcome::Refused { message, .. } = w.request(T0, p.request().as_bytes()) else {
            panic!("accepted with no window")
        };
        assert!(message.contains("no pairing window"), "{message}");

        let mut w = window();
        assert!(matches!(
            w.request(T0, p.request().as_bytes()),
            PairingOutcome::Accepted { .. }
        ));
        let q = PendantPairing::start(DeviceId(0x43), 1).unwrap();
        let PairingOutcome::Refused { message, device } = w.request(T0, q.request().as_bytes())
        else {
            panic!("second pendant accepted")
        };
        assert_eq!(device, Some(DeviceId(0x43)));
        assert!(message.contains("00000042 was already paired"), "{message}");
        // Same id, different key (someone copying the id): refused too.
        let r = PendantPairing::start(DeviceId(0x42), 1).unwrap();
        assert!(matches!(
            w.request(T0, r.request().as_bytes()),
            PairingOutcome::Refused { .. }
        ));

        let late = T0 + Duration::from_secs(60);
        let mut w = window();
        assert!(matches!(
            w.request(late, p.request().as_bytes()),
            PairingOutcome::Refused { .. }
        ));
    }
}
