//! Pairing a pendant with the base: an X25519 key agreement (RFC 7748) and HKDF-SHA256
//! (RFC 5869), both from ring, authenticated by a six-digit code that both sides derive from
//! the exchange and a person compares, as in Bluetooth LE numeric comparison.
//!
//! 1. The installer opens the window on the base (`vigil pair`, run by root on the unit, or the
//!    base's button): at most [`MAX_WINDOW`], one pendant, close range (the request must be
//!    heard above `radio.pairing_min_rssi`).
//! 2. The wearer holds the pendant's button until it flashes. The pendant sends `PairRequest`
//!    with a SHA-256 *commitment* to a fresh X25519 public key, not the key itself.
//! 3. The base answers `PairAccept` with its own fresh public key.
//! 4. The pendant sends `PairReveal` with the key it committed to. The base checks it against
//!    the commitment; both derive the key and the code from the device id and both public keys.
//! 5. The pendant blinks the code, `vigil pair` prints it, and the installer confirms it with
//!    `vigil pair --confirm CODE`. Only then does the base store the key (with the pendant, in
//!    one journal transaction) and send `PairDone`, a key confirmation the pendant checks
//!    before it keeps the key. A wrong code ends the window; nothing is stored.
//!
//! Why the commitment: someone in the middle who answers each side with its own key could
//! otherwise try keys until both sides show the same code (10⁶ tries). The pendant's key is
//! fixed before it sees the base's, and the base's key is fixed before it sees the pendant's,
//! so each side's code is chance to the attacker: one in a million per attempt, and an attempt
//! costs the window.
//!
//! A pendant id that already has a key (configured or paired) is refused unless the window was
//! opened to replace it (`vigil pair --replace`): pairing can never silently take over a
//! pendant someone wears.

use std::time::Duration;

use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::digest::{digest, SHA256};
use ring::hkdf::{KeyType, Salt, HKDF_SHA256};
use ring::rand::SystemRandom;
use subtle::ConstantTimeEq;
use tracing::{info, warn};
use zeroize::Zeroizing;

use super::frame::{
    emit_pair_done, emit_pair_key, Frame, FrameBuf, FrameCipher, FrameError, FrameType, PendantKey,
    HEADER_LEN, PUBLIC_KEY_LEN,
};
use super::RadioError;
use crate::core::{DeviceId, Timestamp};

const SALT: &[u8] = b"vigil pendant pairing v2";

/// The longest a pairing window stays open.
pub const MAX_WINDOW: Duration = Duration::from_secs(60);

/// The code both sides show: six decimal digits. Compared in constant time.
#[derive(Clone, Copy, Debug)]
pub struct PairingCode(u32);

impl PartialEq for PairingCode {
    fn eq(&self, other: &PairingCode) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for PairingCode {}

impl PairingCode {
    /// Reads a code typed by a person: six digits, spaces allowed.
    pub fn parse(s: &str) -> Option<PairingCode> {
        let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok().map(PairingCode))
            .flatten()
    }

    /// The six digits without a space, as `vigil pair --confirm` sends them.
    pub fn digits(&self) -> String {
        format!("{:06}", self.0)
    }

    /// The code derived from the device id and both public keys.
    fn derive(device: DeviceId, pendant_pub: &[u8], base_pub: &[u8]) -> PairingCode {
        let mut input = Vec::with_capacity(24 + 4 + 2 * PUBLIC_KEY_LEN);
        input.extend_from_slice(b"vigil pairing code v2");
        input.extend_from_slice(&device.0.to_be_bytes());
        input.extend_from_slice(pendant_pub);
        input.extend_from_slice(base_pub);
        let d = digest(&SHA256, &input);
        let mut first = [0u8; 4];
        first.copy_from_slice(&d.as_ref()[..4]);
        PairingCode(u32::from_be_bytes(first) % 1_000_000)
    }
}

impl std::fmt::Display for PairingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:03} {:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// The commitment a pendant sends before its public key.
fn commitment(public: &[u8; PUBLIC_KEY_LEN]) -> [u8; PUBLIC_KEY_LEN] {
    let mut input = Vec::with_capacity(32 + PUBLIC_KEY_LEN);
    input.extend_from_slice(b"vigil pairing commitment v2");
    input.extend_from_slice(public);
    let mut out = [0u8; PUBLIC_KEY_LEN];
    out.copy_from_slice(digest(&SHA256, &input).as_ref());
    out
}

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
    let mut out = Zeroizing::new([0u8; 32]);
    Salt::new(HKDF_SHA256, SALT)
        .extract(shared)
        .expand(&info, KeyLen)
        .and_then(|okm| okm.fill(out.as_mut()))
        .map_err(|_| RadioError::Key("key derivation failed".into()))?;
    Ok(PendantKey::new(*out))
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

/// What the base makes of a pairing frame.
#[derive(Debug)]
pub enum PairingOutcome {
    /// Transmit this frame (an accept, or a confirmation sent again).
    Send(FrameBuf),
    /// The pendant revealed its key: the installer must compare and confirm this code.
    Code {
        /// The pendant.
        device: DeviceId,
        /// The code it shows.
        code: PairingCode,
    },
    /// Refused, with a message for the installer.
    Refused {
        /// The pendant that asked, if the frame could be read.
        device: Option<DeviceId>,
        /// Why, in words an installer can act on.
        message: String,
    },
    /// Nothing to do: the pendant said again what it said (the installer is reading the code).
    Quiet,
}

/// A confirmed pairing: store the key, then send `done`.
#[derive(Debug)]
pub struct Confirmed {
    /// The new pendant.
    pub device: DeviceId,
    /// Its key.
    pub key: PendantKey,
    /// The `PairDone` frame to transmit.
    pub done: FrameBuf,
}

enum State {
    /// Open, nothing heard yet.
    Waiting,
    /// A pendant committed; our accept went out.
    Committed {
        device: DeviceId,
        attempt: u32,
        commitment: [u8; PUBLIC_KEY_LEN],
        private: EphemeralPrivateKey,
        base_pub: [u8; PUBLIC_KEY_LEN],
        accept: FrameBuf,
    },
    /// The pendant revealed its key; waiting for the installer's confirmation.
    Revealed {
        device: DeviceId,
        attempt: u32,
        pendant_pub: [u8; PUBLIC_KEY_LEN],
        key: PendantKey,
        code: PairingCode,
    },
    /// Confirmed and stored; `done` is sent again if the pendant reveals again.
    Paired {
        device: DeviceId,
        pendant_pub: [u8; PUBLIC_KEY_LEN],
        done: FrameBuf,
    },
    /// Ended by a mismatch: nothing more in this window.
    Aborted,
}

/// The base's side: a pairing window and at most one pendant paired in it.
pub struct PairingWindow {
    until: Option<Timestamp>,
    replace: bool,
    min_rssi: i16,
    state: State,
}

impl Default for PairingWindow {
    fn default() -> PairingWindow {
        PairingWindow {
            until: None,
            replace: false,
            min_rssi: -60,
            state: State::Waiting,
        }
    }
}

impl PairingWindow {
    /// A closed window.
    pub fn new() -> PairingWindow {
        PairingWindow::default()
    }

    /// Opens the window for `length` (at most [`MAX_WINDOW`]) from `now`, forgetting any
    /// earlier pairing. `replace`: a pendant id that already has a key may pair again.
    /// Requests heard below `min_rssi` dBm are refused.
    pub fn open(&mut self, now: Timestamp, length: Duration, replace: bool, min_rssi: i16) {
        let length = length.min(MAX_WINDOW);
        self.until = Some(now + length);
        self.replace = replace;
        self.min_rssi = min_rssi;
        self.state = State::Waiting;
        info!(seconds = length.as_secs(), replace, "pairing window open");
    }

    /// Closes the window.
    pub fn close(&mut self) {
        self.until = None;
    }

    /// Whether the window is open at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.until.is_some_and(|u| now < u) && !matches!(self.state, State::Aborted)
    }

    /// The pendant paired in the current window, if any.
    pub fn paired(&self) -> Option<DeviceId> {
        match &self.state {
            State::Paired { device, .. } => Some(*device),
            _ => None,
        }
    }

    /// Handles a received pairing frame heard at `rssi`; `has_key` says whether a pendant id
    /// already has a key.
    pub fn frame(
        &mut self,
        now: Timestamp,
        bytes: &[u8],
        rssi: Option<i16>,
        has_key: impl Fn(DeviceId) -> bool,
    ) -> PairingOutcome {
        let frame = match Frame::new_checked(bytes) {
            Ok(f) => f,
            Err(_) => return refuse(None, "not a pairing frame".into()),
        };
        let device = frame.device();
        let mut body = [0u8; PUBLIC_KEY_LEN];
        match frame.frame_type() {
            FrameType::PairRequest | FrameType::PairReveal => body.copy_from_slice(frame.body()),
            _ => return refuse(Some(device), "not a pairing frame".into()),
        }
        if !self.is_open(now) {
            return refuse(
                Some(device),
                format!(
                    "pairing request from pendant {device} refused: no pairing window is open \
                     (run `vigil pair` on the unit, then hold the pendant's button)"
                ),
            );
        }
        // Close range: someone down the street cannot pair, a pendant in the hand can.
        match rssi {
            Some(r) if r >= self.min_rssi => {}
            heard => {
                let level = heard.map_or("unknown".to_string(), |r| format!("{r} dBm"));
                return refuse(
                    Some(device),
                    format!(
                        "pairing request from pendant {device} refused: heard at {level}, below \
                         {} dBm; hold the pendant next to the base",
                        self.min_rssi
                    ),
                );
            }
        }
        if frame.frame_type() == FrameType::PairRequest {
            self.request(device, frame.counter(), body, has_key(device))
        } else {
            self.reveal(device, body)
        }
    }

    fn request(
        &mut self,
        device: DeviceId,
        attempt: u32,
        commit: [u8; PUBLIC_KEY_LEN],
        has_key: bool,
    ) -> PairingOutcome {
        match &self.state {
            State::Waiting => {}
            State::Committed {
                device: d,
                commitment: c,
                accept,
                ..
            } if *d == device && *c == commit => return PairingOutcome::Send(*accept),
            State::Committed { device: d, .. }
            | State::Revealed { device: d, .. }
            | State::Paired { device: d, .. } => {
                let d = *d;
                return refuse(
                    Some(device),
                    format!(
                        "pairing request from pendant {device} refused: pendant {d} is already \
                         pairing in this window; open a new window for each pendant"
                    ),
                );
            }
            State::Aborted => return refuse(Some(device), "the pairing window was ended".into()),
        }
        if has_key && !self.replace {
            return refuse(
                Some(device),
                format!(
                    "pairing request from pendant {device} refused: that id already has a key; \
                     to give it a new one run `vigil pair --replace`"
                ),
            );
        }
        let (private, base_pub) = match keypair(&SystemRandom::new()) {
            Ok(k) => k,
            Err(e) => return refuse(Some(device), format!("pairing failed: {e}")),
        };
        let accept = emit_pair_key(FrameType::PairAccept, device, attempt, &base_pub);
        self.state = State::Committed {
            device,
            attempt,
            commitment: commit,
            private,
            base_pub,
            accept,
        };
        PairingOutcome::Send(accept)
    }

    fn reveal(&mut self, device: DeviceId, pendant_pub: [u8; PUBLIC_KEY_LEN]) -> PairingOutcome {
        match std::mem::replace(&mut self.state, State::Aborted) {
            State::Committed {
                device: d,
                attempt,
                commitment: c,
                private,
                base_pub,
                ..
            } if d == device => {
                if !bool::from(commitment(&pendant_pub).ct_eq(&c)) {
                    return refuse(
                        Some(device),
                        format!(
                            "pendant {device} revealed a key that does not match its request: \
                             pairing ended, nothing stored (someone else may be pairing)"
                        ),
                    );
                }
                let key = match agree(private, &pendant_pub, device, &pendant_pub, &base_pub) {
                    Ok(k) => k,
                    Err(e) => {
                        return refuse(Some(device), format!("pairing with {device} failed: {e}"))
                    }
                };
                let code = PairingCode::derive(device, &pendant_pub, &base_pub);
                info!(pendant = %device, "pendant revealed its key: waiting for the code");
                self.state = State::Revealed {
                    device,
                    attempt,
                    pendant_pub,
                    key,
                    code,
                };
                PairingOutcome::Code { device, code }
            }
            State::Revealed {
                device: d,
                attempt,
                pendant_pub: p,
                key,
                code,
            } if d == device && p == pendant_pub => {
                // Said again while the installer reads the code: nothing new.
                self.state = State::Revealed {
                    device,
                    attempt,
                    pendant_pub,
                    key,
                    code,
                };
                PairingOutcome::Quiet
            }
            State::Paired {
                device: d,
                pendant_pub: p,
                done,
            } if d == device && p == pendant_pub => {
                self.state = State::Paired {
                    device,
                    pendant_pub,
                    done,
                };
                PairingOutcome::Send(done)
            }
            other => {
                self.state = other;
                refuse(
                    Some(device),
                    format!("pendant {device} revealed a key without a request in this window"),
                )
            }
        }
    }

    /// The installer typed `code`: if it is the code of the pendant waiting, the pairing is
    /// confirmed (store the key, then send `done`). Any other code ends the window.
    pub fn confirm(
        &mut self,
        now: Timestamp,
        code: PairingCode,
    ) -> Result<Confirmed, PairingRefusal> {
        if !self.is_open(now) {
            return Err(PairingRefusal::NoWindow);
        }
        match std::mem::replace(&mut self.state, State::Aborted) {
            State::Revealed {
                device,
                attempt,
                pendant_pub,
                key,
                code: expected,
            } => {
                if code != expected {
                    warn!(pendant = %device, "wrong pairing code: window ended");
                    return Err(PairingRefusal::WrongCode(device));
                }
                let done = emit_pair_done(device, attempt, &FrameCipher::new(&key));
                self.state = State::Paired {
                    device,
                    pendant_pub,
                    done,
                };
                info!(pendant = %device, "pairing confirmed");
                Ok(Confirmed { device, key, done })
            }
            other => {
                self.state = other;
                Err(PairingRefusal::NoPendantWaiting)
            }
        }
    }
}

/// Why the installer's code did not pair a pendant; each says what to do next.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PairingRefusal {
    /// No window is open.
    #[error("no pairing window is open")]
    NoWindow,
    /// The code is not the one the waiting pendant shows: the window ended.
    #[error(
        "the code does not match the one pendant {0} shows: pairing ended, nothing stored; if \
         the pendant is yours, start again with `vigil pair`"
    )]
    WrongCode(DeviceId),
    /// The window is open but no pendant has shown a code yet.
    #[error("no pendant is waiting for a code: hold the pendant's button first")]
    NoPendantWaiting,
    /// The code was right but the pendant's key could not be stored: nothing is paired.
    #[error("pendant {device} could not be stored: {reason}")]
    NotStored {
        /// The pendant.
        device: DeviceId,
        /// What the store said.
        reason: String,
    },
    /// The radio's worker is not running.
    #[error("the radio is stopped")]
    RadioStopped,
}

fn refuse(device: Option<DeviceId>, message: String) -> PairingOutcome {
    match device {
        Some(d) => warn!(pendant = %d, %message, "pairing refused"),
        None => warn!(%message, "pairing refused"),
    }
    PairingOutcome::Refused { device, message }
}

/// The base's `kind` answer to pairing attempt `attempt` of `device`, or why it is not one.
fn answer_for(
    bytes: &[u8],
    kind: FrameType,
    device: DeviceId,
    attempt: u32,
) -> Result<Frame<&[u8]>, RadioError> {
    let frame = Frame::new_checked(bytes)?;
    if frame.frame_type() != kind {
        return Err(FrameError::UnexpectedFrame(frame.frame_type().as_str()).into());
    }
    if frame.device() != device || frame.counter() != attempt {
        return Err(RadioError::Pairing(format!(
            "the {} answers another pendant",
            kind.as_str()
        )));
    }
    Ok(frame)
}

/// The pendant's side of pairing (used by the simulated pendant and by tests).
pub struct PendantPairing {
    device: DeviceId,
    attempt: u32,
    private: EphemeralPrivateKey,
    public: [u8; PUBLIC_KEY_LEN],
}

/// The pendant after the base's accept: it shows `code` and waits for `PairDone`.
pub struct PendantRevealed {
    device: DeviceId,
    attempt: u32,
    key: PendantKey,
    /// The code the pendant blinks.
    pub code: PairingCode,
    /// The `PairReveal` frame to send (and resend until `PairDone` comes).
    pub reveal: FrameBuf,
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

    /// The `PairRequest` frame to send (and resend until answered): the commitment.
    pub fn request(&self) -> FrameBuf {
        emit_pair_key(
            FrameType::PairRequest,
            self.device,
            self.attempt,
            &commitment(&self.public),
        )
    }

    /// Takes the base's `PairAccept`: derives the key and the code, and reveals the public key.
    pub fn accepted(self, bytes: &[u8]) -> Result<PendantRevealed, RadioError> {
        let frame = answer_for(bytes, FrameType::PairAccept, self.device, self.attempt)?;
        let base_pub = frame.body().to_vec();
        let code = PairingCode::derive(self.device, &self.public, &base_pub);
        let reveal = emit_pair_key(
            FrameType::PairReveal,
            self.device,
            self.attempt,
            &self.public,
        );
        let key = agree(
            self.private,
            &base_pub,
            self.device,
            &self.public,
            &base_pub,
        )?;
        Ok(PendantRevealed {
            device: self.device,
            attempt: self.attempt,
            key,
            code,
            reveal,
        })
    }
}

impl PendantRevealed {
    /// Checks the base's `PairDone` and returns the agreed key.
    pub fn finish(self, bytes: &[u8]) -> Result<PendantKey, RadioError> {
        let frame = answer_for(bytes, FrameType::PairDone, self.device, self.attempt)?;
        let aad = bytes.get(..HEADER_LEN).ok_or(FrameError::Truncated {
            len: bytes.len(),
            need: HEADER_LEN,
        })?;
        FrameCipher::new(&self.key)
            .check_pair_confirmation(self.device, aad, frame.body())
            .map_err(|_| RadioError::Pairing("key confirmation failed".into()))?;
        Ok(self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_000_000);
    const NEAR: Option<i16> = Some(-40);

    fn window() -> PairingWindow {
        let mut w = PairingWindow::new();
        w.open(T0, Duration::from_secs(60), false, -60);
        w
    }

    fn sent(o: PairingOutcome) -> FrameBuf {
        match o {
            PairingOutcome::Send(f) => f,
            other => panic!("expected a frame to send, got {other:?}"),
        }
    }

    fn refused(o: PairingOutcome) -> String {
        match o {
            PairingOutcome::Refused { message, .. } => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn no_key(_: DeviceId) -> bool {
        false
    }

    #[test]
    fn both_sides_agree_the_key_and_the_code_and_the_installer_confirms() {
        let mut w = window();
        let p = PendantPairing::start(DeviceId(0x42), 1).unwrap();
        let req = p.request();
        let accept = sent(w.frame(T0, req.as_bytes(), NEAR, no_key));
        // The lost-accept case: the same request again gets the same answer.
        assert_eq!(sent(w.frame(T0, req.as_bytes(), NEAR, no_key)), accept);
        let pendant = p.accepted(accept.as_bytes()).unwrap();
        let PairingOutcome::Code { device, code } =
            w.frame(T0, pendant.reveal.as_bytes(), NEAR, no_key)
        else {
            panic!("no code")
        };
        assert_eq!((device, code), (DeviceId(0x42), pendant.code));
        let c = w.confirm(T0, pendant.code).unwrap();
        assert_eq!(w.paired(), Some(DeviceId(0x42)));
        // A lost PairDone: the reveal again gets it again.
        assert_eq!(
            sent(w.frame(T0, pendant.reveal.as_bytes(), NEAR, no_key)),
            c.done
        );
        assert_eq!(pendant.finish(c.done.as_bytes()).unwrap(), c.key);
    }

    #[test]
    fn a_wrong_code_ends_the_window_and_stores_nothing() {
        let mut w = window();
        let p = PendantPairing::start(DeviceId(0x42), 1).unwrap();
        let accept = sent(w.frame(T0, p.request().as_bytes(), NEAR, no_key));
        let pendant = p.accepted(accept.as_bytes()).unwrap();
        w.frame(T0, pendant.reveal.as_bytes(), NEAR, no_key);
        let wrong = PairingCode((pendant.code.0 + 1) % 1_000_000);
        assert_eq!(
            w.confirm(T0, wrong).unwrap_err(),
            PairingRefusal::WrongCode(DeviceId(0x42))
        );
        assert!(!w.is_open(T0));
        assert!(w.confirm(T0, pendant.code).is_err());
        assert_eq!(w.paired(), None);
    }

    #[test]
    fn a_key_that_does_not_match_its_commitment_is_refused() {
        let mut w = window();
        let p = PendantPairing::start(DeviceId(0x42), 1).unwrap();
        let accept = sent(w.frame(T0, p.request().as_bytes(), NEAR, no_key));
        // Someone in the middle reveals its own key for the pendant's commitment.
        let mallory = PendantPairing::start(DeviceId(0x42), 1).unwrap();
        let theirs = mallory.accepted(accept.as_bytes()).unwrap();
        let m = refused(w.frame(T0, theirs.reveal.as_bytes(), NEAR, no_key));
        assert!(m.contains("does not match its request"), "{m}");
        assert!(!w.is_open(T0));
    }

    #[test]
    fn a_tampered_accept_gives_the_pendant_another_code() {
        let mut w = window();
        let p = PendantPairing::start(DeviceId(0x42), 1).unwrap();
        let accept = sent(w.frame(T0, p.request().as_bytes(), NEAR, no_key));
        let mut bytes = accept.as_bytes().to_vec();
        bytes[20] ^= 1; // the base's public key
        let pendant = p.accepted(&bytes).unwrap();
        let PairingOutcome::Code { code, .. } =
            w.frame(T0, pendant.reveal.as_bytes(), NEAR, no_key)
        else {
            panic!("no code")
        };
        assert_ne!(
            code, pendant.code,
            "the codes differ, so the installer stops"
        );
    }

    #[test]
    fn far_away_known_ids_closed_windows_and_a_second_pendant_are_refused() {
        let p = PendantPairing::start(DeviceId(0x42), 1).unwrap();
        let req = p.request();
        let mut closed = PairingWindow::new();
        assert!(
            refused(closed.frame(T0, req.as_bytes(), NEAR, no_key)).contains("no pairing window")
        );

        let mut w = window();
        let m = refused(w.frame(T0, req.as_bytes(), Some(-75), no_key));
        assert!(m.contains("-75 dBm"), "{m}");
        assert!(refused(w.frame(T0, req.as_bytes(), None, no_key)).contains("unknown"));
        let m = refused(w.frame(T0, req.as_bytes(), NEAR, |_| true));
        assert!(m.contains("--replace"), "{m}");

        let mut replacing = PairingWindow::new();
        replacing.open(T0, Duration::from_secs(60), true, -60);
        sent(replacing.frame(T0, req.as_bytes(), NEAR, |_| true));

        let mut w = window();
        sent(w.frame(T0, req.as_bytes(), NEAR, no_key));
        let q = PendantPairing::start(DeviceId(0x43), 1).unwrap();
        let m = refused(w.frame(T0, q.request().as_bytes(), NEAR, no_key));
        assert!(m.contains("00000042 is already pairing"), "{m}");

        let mut w = PairingWindow::new();
        w.open(T0, Duration::from_secs(3600), false, -60);
        assert!(
            !w.is_open(T0 + MAX_WINDOW),
            "a window lasts at most {MAX_WINDOW:?}"
        );
    }

    #[test]
    fn codes_read_as_typed() {
        assert_eq!(PairingCode::parse("047 193"), Some(PairingCode(47193)));
        assert_eq!(PairingCode::parse("047193"), Some(PairingCode(47193)));
        assert_eq!(PairingCode::parse("47193"), None);
        assert_eq!(PairingCode::parse("04719x"), None);
        assert_eq!(PairingCode(47193).to_string(), "047 193");
    }
}
