//! The pendant radio frame: wire format, event payloads and AES-256-GCM sealing.
//!
//! Every frame starts with the same 9-byte header, sent in clear and authenticated as
//! associated data; the body depends on the frame type:
//!
//! ```text
//!  0        1               5               9
//! +--------+---------------+---------------+---------------------------------------+
//! |ver|type| device id (BE)  | counter (BE)  | body                                  |
//! +--------+---------------+---------------+---------------------------------------+
//! Event       (pendant -> base): AES-256-GCM(event code, payload) + 16-byte tag
//! Ack         (base -> pendant): 16-byte tag over the header (empty plaintext)
//! PairRequest (pendant -> base): SHA-256 commitment to the pendant's X25519 public key (32)
//! PairAccept  (base -> pendant): base's X25519 public key (32 bytes)
//! PairReveal  (pendant -> base): pendant's X25519 public key (32 bytes)
//! PairDone    (base -> pendant): 16-byte key confirmation over the header
//! ```
//!
//! The longest frame is 41 bytes, so every frame fits the RFM69's 66-byte FIFO together
//! with its length byte, and no frame needs a FIFO refill while on air. Pairing is described
//! in the runtime's `radio::pairing`.
//!
//! The 96-bit GCM nonce is `device id ‖ counter ‖ direction ‖ 0 0 0` (NIST SP 800-38D §8.2.1,
//! deterministic construction): the pendant never reuses a counter, and the base's
//! acknowledgement of counter `n` is the same bytes every time it is sent, so no nonce is ever
//! used with two different plaintexts under one key.

use std::fmt;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use vigil_core::{DeviceId, FallEvidence, RadioEventKind};

/// A radio frame that cannot be read, opened or built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the frame needs.
    #[error("frame of {len} bytes is shorter than the {need} bytes it needs")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// More bytes than any frame has.
    #[error("frame of {len} bytes is longer than any radio frame")]
    TooLong {
        /// Bytes received.
        len: usize,
    },
    /// A frame format version this base does not speak.
    #[error("frame format version {0} is not supported (this base speaks version 1)")]
    UnsupportedVersion(u8),
    /// A frame type code that does not exist.
    #[error("unknown frame type {0}")]
    UnknownFrameType(u8),
    /// The body length does not fit the frame type.
    #[error("{frame_type} frame cannot be {len} bytes long")]
    BadLength {
        /// The frame type.
        frame_type: &'static str,
        /// Its length.
        len: usize,
    },
    /// An event code that does not exist.
    #[error("unknown event code {0}")]
    UnknownEvent(u8),
    /// An event's payload has the wrong length.
    #[error("event code {code} cannot carry a {len}-byte payload")]
    BadEventPayload {
        /// The event code.
        code: u8,
        /// The payload length.
        len: usize,
    },
    /// A frame of another type where this one was expected.
    #[error("unexpected {0} frame")]
    UnexpectedFrame(&'static str),
    /// The authentication tag does not match.
    #[error("authentication failed (forged, corrupted or sealed with another key)")]
    Authentication,
    /// Key handling failed.
    #[error("key: {0}")]
    Key(String),
}

/// The frame format version this code speaks.
pub const VERSION: u8 = 1;
/// Length of the clear header: control byte, device id, counter.
pub const HEADER_LEN: usize = 9;
/// Length of the AES-GCM authentication tag.
pub const TAG_LEN: usize = 16;
/// Length of an X25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// The longest frame on air (the pairing frames that carry a key or a commitment).
pub const MAX_FRAME_LEN: usize = HEADER_LEN + PUBLIC_KEY_LEN;
/// The longest event plaintext: event code and a fall's 7-byte evidence.
pub const MAX_EVENT_LEN: usize = 8;

mod field {
    use std::ops::Range;
    pub const CONTROL: usize = 0;
    pub const DEVICE: Range<usize> = 1..5;
    pub const COUNTER: Range<usize> = 5..9;
    pub const BODY: usize = 9;
}

/// What a frame is, from the control byte's low nibble.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// An encrypted pendant event.
    Event,
    /// The base's acknowledgement of an event.
    Ack,
    /// A pendant in pairing mode commits to its public key.
    PairRequest,
    /// The base answers a pairing request with its public key.
    PairAccept,
    /// The pendant reveals the public key it committed to.
    PairReveal,
    /// The base confirms the agreed key once the installer confirmed the code.
    PairDone,
    /// The base tells the pendant that a receiving centre has its alarm.
    HelpComing,
}

impl FrameType {
    fn code(self) -> u8 {
        match self {
            FrameType::Event => 0,
            FrameType::Ack => 1,
            FrameType::PairRequest => 2,
            FrameType::PairAccept => 3,
            FrameType::PairReveal => 4,
            FrameType::PairDone => 5,
            FrameType::HelpComing => 6,
        }
    }

    fn from_code(code: u8) -> Option<FrameType> {
        match code {
            0 => Some(FrameType::Event),
            1 => Some(FrameType::Ack),
            2 => Some(FrameType::PairRequest),
            3 => Some(FrameType::PairAccept),
            4 => Some(FrameType::PairReveal),
            5 => Some(FrameType::PairDone),
            6 => Some(FrameType::HelpComing),
            _ => None,
        }
    }

    /// Allowed body lengths for this type.
    fn body_len_ok(self, len: usize) -> bool {
        match self {
            FrameType::Event => (TAG_LEN + 1..=TAG_LEN + MAX_EVENT_LEN).contains(&len),
            FrameType::Ack => len == TAG_LEN,
            FrameType::PairRequest | FrameType::PairAccept | FrameType::PairReveal => {
                len == PUBLIC_KEY_LEN
            }
            FrameType::PairDone | FrameType::HelpComing => len == TAG_LEN,
        }
    }

    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FrameType::Event => "event",
            FrameType::Ack => "ack",
            FrameType::PairRequest => "pair-request",
            FrameType::PairAccept => "pair-accept",
            FrameType::PairReveal => "pair-reveal",
            FrameType::PairDone => "pair-done",
            FrameType::HelpComing => "help-coming",
        }
    }
}

/// A read/write view of a frame in a buffer, in the manner of smoltcp's wire types.
#[derive(Clone, Debug)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it; accessors may then panic on short buffers.
    /// Use [`Frame::new_checked`] for anything received.
    pub fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer after [`Frame::check_len`].
    pub fn new_checked(buffer: T) -> Result<Frame<T>, FrameError> {
        let frame = Frame::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks the header is present, the version and type are known and the body length fits
    /// the type, so that no accessor can panic.
    pub fn check_len(&self) -> Result<(), FrameError> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(FrameError::Truncated {
                len: data.len(),
                need: HEADER_LEN,
            });
        }
        if data.len() > MAX_FRAME_LEN {
            return Err(FrameError::TooLong { len: data.len() });
        }
        let version = data[field::CONTROL] >> 4;
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let code = data[field::CONTROL] & 0x0F;
        let frame_type = FrameType::from_code(code).ok_or(FrameError::UnknownFrameType(code))?;
        let body = data.len() - HEADER_LEN;
        if !frame_type.body_len_ok(body) {
            return Err(FrameError::BadLength {
                frame_type: frame_type.as_str(),
                len: data.len(),
            });
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Frame format version (control byte, high nibble).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::CONTROL] >> 4
    }

    /// Frame type (control byte, low nibble); checked by [`Frame::check_len`].
    pub fn frame_type(&self) -> FrameType {
        FrameType::from_code(self.buffer.as_ref()[field::CONTROL] & 0x0F)
            .unwrap_or(FrameType::Event)
    }

    /// The pendant's radio id.
    pub fn device(&self) -> DeviceId {
        DeviceId(read_u32(&self.buffer.as_ref()[field::DEVICE]))
    }

    /// The pendant's monotonic frame counter (for an ack: the counter acknowledged).
    pub fn counter(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::COUNTER])
    }

    /// The clear header, authenticated as associated data.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN]
    }

    /// Everything after the header.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[field::BODY..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets version and type.
    pub fn set_control(&mut self, version: u8, frame_type: FrameType) {
        self.buffer.as_mut()[field::CONTROL] = (version << 4) | frame_type.code();
    }

    /// Sets the device id.
    pub fn set_device(&mut self, device: DeviceId) {
        self.buffer.as_mut()[field::DEVICE].copy_from_slice(&device.0.to_be_bytes());
    }

    /// Sets the counter.
    pub fn set_counter(&mut self, counter: u32) {
        self.buffer.as_mut()[field::COUNTER].copy_from_slice(&counter.to_be_bytes());
    }

    /// The body, writable.
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::BODY..]
    }
}

fn read_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_be_bytes(a)
}

/// What a pendant says in an event frame, with its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// Short press: help.
    Help,
    /// Long press: cancel.
    Cancel,
    /// The fall detector fired, with what it measured: impact (milli-g), free fall (ms),
    /// posture change (degrees) and the movement left after (milli-g), 7 bytes.
    Fall(FallEvidence),
    /// Periodic sign of life with the battery voltage and, from pendants that count them, how
    /// many alarm (help and fall) events it has sent, wrapping at 65536: a gap against what the
    /// base received shows an alarm lost on the way (a jammer that spares heartbeats).
    Heartbeat {
        /// Battery voltage, millivolts.
        battery_mv: u16,
        /// Alarm events sent since pairing.
        alarms_sent: Option<u16>,
    },
    /// The battery is low.
    LowBattery {
        /// Battery voltage, millivolts.
        battery_mv: u16,
    },
    /// Case opened or pendant torn off.
    Tamper,
}

impl Event {
    const HELP: u8 = 1;
    const CANCEL: u8 = 2;
    const FALL: u8 = 3;
    const HEARTBEAT: u8 = 4;
    const LOW_BATTERY: u8 = 5;
    const TAMPER: u8 = 6;

    /// Parses a decrypted event: code byte, then a big-endian 16-bit payload where the event
    /// has one.
    pub fn parse(data: &[u8]) -> Result<Event, FrameError> {
        let (&code, rest) = data
            .split_first()
            .ok_or(FrameError::Truncated { len: 0, need: 1 })?;
        let word = |rest: &[u8]| -> Result<u16, FrameError> {
            match rest {
                [a, b] => Ok(u16::from_be_bytes([*a, *b])),
                _ => Err(FrameError::BadEventPayload {
                    code,
                    len: rest.len(),
                }),
            }
        };
        let none = |rest: &[u8]| -> Result<(), FrameError> {
            if rest.is_empty() {
                Ok(())
            } else {
                Err(FrameError::BadEventPayload {
                    code,
                    len: rest.len(),
                })
            }
        };
        match code {
            Self::HELP => none(rest).map(|()| Event::Help),
            Self::CANCEL => none(rest).map(|()| Event::Cancel),
            Self::TAMPER => none(rest).map(|()| Event::Tamper),
            Self::FALL => match rest {
                [p0, p1, f0, f1, deg, s0, s1] => Ok(Event::Fall(FallEvidence {
                    peak_mg: u16::from_be_bytes([*p0, *p1]),
                    free_fall_ms: u16::from_be_bytes([*f0, *f1]),
                    posture_change_deg: (*deg).min(180),
                    stillness_mg: u16::from_be_bytes([*s0, *s1]),
                })),
                _ => Err(FrameError::BadEventPayload {
                    code,
                    len: rest.len(),
                }),
            },
            Self::HEARTBEAT => match rest {
                [b0, b1, a0, a1] => Ok(Event::Heartbeat {
                    battery_mv: u16::from_be_bytes([*b0, *b1]),
                    alarms_sent: Some(u16::from_be_bytes([*a0, *a1])),
                }),
                _ => word(rest).map(|battery_mv| Event::Heartbeat {
                    battery_mv,
                    alarms_sent: None,
                }),
            },
            Self::LOW_BATTERY => word(rest).map(|battery_mv| Event::LowBattery { battery_mv }),
            other => Err(FrameError::UnknownEvent(other)),
        }
    }

    /// Length of [`Event::emit`]'s output.
    pub fn buffer_len(&self) -> usize {
        match self {
            Event::Help | Event::Cancel | Event::Tamper => 1,
            Event::Fall(_) => 8,
            Event::Heartbeat {
                alarms_sent: Some(_),
                ..
            } => 5,
            _ => 3,
        }
    }

    /// Writes the event into `out`, returning the bytes written (`out` ≥ 3 bytes).
    pub fn emit(&self, out: &mut [u8; MAX_EVENT_LEN]) -> usize {
        let (code, word) = match *self {
            Event::Help => (Self::HELP, None),
            Event::Cancel => (Self::CANCEL, None),
            Event::Tamper => (Self::TAMPER, None),
            Event::Fall(e) => {
                out[0] = Self::FALL;
                out[1..3].copy_from_slice(&e.peak_mg.to_be_bytes());
                out[3..5].copy_from_slice(&e.free_fall_ms.to_be_bytes());
                out[5] = e.posture_change_deg.min(180);
                out[6..8].copy_from_slice(&e.stillness_mg.to_be_bytes());
                return 8;
            }
            Event::Heartbeat {
                battery_mv,
                alarms_sent: Some(n),
            } => {
                out[0] = Self::HEARTBEAT;
                out[1..3].copy_from_slice(&battery_mv.to_be_bytes());
                out[3..5].copy_from_slice(&n.to_be_bytes());
                return 5;
            }
            Event::Heartbeat { battery_mv, .. } => (Self::HEARTBEAT, Some(battery_mv)),
            Event::LowBattery { battery_mv } => (Self::LOW_BATTERY, Some(battery_mv)),
        };
        out[0] = code;
        match word {
            Some(w) => {
                out[1..3].copy_from_slice(&w.to_be_bytes());
                3
            }
            None => 1,
        }
    }

    /// What the core hears of it.
    pub fn kind(&self) -> RadioEventKind {
        match *self {
            Event::Help => RadioEventKind::Help,
            Event::Cancel => RadioEventKind::Cancel,
            Event::Fall(e) => RadioEventKind::Fall { evidence: Some(e) },
            Event::Heartbeat {
                battery_mv,
                alarms_sent,
            } => RadioEventKind::Heartbeat {
                battery_mv,
                alarms_sent,
            },
            Event::LowBattery { battery_mv } => RadioEventKind::LowBattery { battery_mv },
            Event::Tamper => RadioEventKind::Tamper,
        }
    }

    /// Whether it is a call for help the base answers first (help, fall).
    pub fn is_alarm(&self) -> bool {
        matches!(self, Event::Help | Event::Fall(_))
    }

    /// Short name for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Event::Help => "help",
            Event::Cancel => "cancel",
            Event::Fall(_) => "fall",
            Event::Heartbeat { .. } => "heartbeat",
            Event::LowBattery { .. } => "low-battery",
            Event::Tamper => "tamper",
        }
    }
}

/// A pendant's 256-bit AES key. Never printed; zeroed when dropped; compared in constant time.
#[derive(Clone)]
pub struct PendantKey([u8; 32]);

impl PartialEq for PendantKey {
    fn eq(&self, other: &PendantKey) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for PendantKey {}

impl PendantKey {
    /// Wraps raw key bytes.
    pub fn new(bytes: [u8; 32]) -> PendantKey {
        PendantKey(bytes)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<PendantKey, FrameError> {
        let mut out = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(s.trim(), out.as_mut())
            .map_err(|_| FrameError::Key("a pendant key is 64 hex digits".into()))?;
        Ok(PendantKey(*out))
    }

    /// A fresh random key.
    pub fn generate() -> Result<PendantKey, FrameError> {
        use ring::rand::SecureRandom;
        let mut out = Zeroizing::new([0u8; 32]);
        ring::rand::SystemRandom::new()
            .fill(out.as_mut())
            .map_err(|_| FrameError::Key("the system random source failed".into()))?;
        Ok(PendantKey(*out))
    }

    /// The key bytes, for storage only.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// As 64 hex digits, for storage only.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for PendantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PendantKey(<secret>)")
    }
}

impl Drop for PendantKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Which way a frame goes; part of the nonce so both directions never share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Uplink = 0,
    Downlink = 1,
    PairConfirm = 2,
    HelpComing = 3,
}

fn nonce(device: DeviceId, counter: u32, direction: Direction) -> Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[0..4].copy_from_slice(&device.0.to_be_bytes());
    n[4..8].copy_from_slice(&counter.to_be_bytes());
    n[8] = direction as u8;
    Nonce::assume_unique_for_key(n)
}

/// A frame assembled in a fixed buffer, ready for the transceiver.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FrameBuf {
    buf: [u8; MAX_FRAME_LEN],
    len: usize,
}

impl FrameBuf {
    fn new(len: usize) -> FrameBuf {
        FrameBuf {
            buf: [0; MAX_FRAME_LEN],
            len,
        }
    }

    /// The frame's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn frame_mut(&mut self) -> Frame<&mut [u8]> {
        Frame::new_unchecked(&mut self.buf[..self.len])
    }
}

impl fmt::Debug for FrameBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FrameBuf({})", hex::encode(self.as_bytes()))
    }
}

/// AES-256-GCM sealing and opening of one pendant's frames.
pub struct FrameCipher {
    key: LessSafeKey,
}

impl fmt::Debug for FrameCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FrameCipher(<secret>)")
    }
}

impl FrameCipher {
    /// A cipher for one pendant's key.
    pub fn new(key: &PendantKey) -> FrameCipher {
        // AES-256 takes exactly 32 bytes, which is what a PendantKey holds.
        let unbound = UnboundKey::new(&AES_256_GCM, &key.0);
        let key = match unbound {
            Ok(k) => k,
            Err(_) => unreachable!("AES-256-GCM accepts every 32-byte key"),
        };
        FrameCipher {
            key: LessSafeKey::new(key),
        }
    }

    /// Builds and seals an event frame (what a pendant sends).
    pub fn seal_event(&self, device: DeviceId, counter: u32, event: Event) -> FrameBuf {
        let mut plain = [0u8; MAX_EVENT_LEN];
        let n = event.emit(&mut plain);
        let mut out = FrameBuf::new(HEADER_LEN + n + TAG_LEN);
        let mut frame = out.frame_mut();
        frame.set_control(VERSION, FrameType::Event);
        frame.set_device(device);
        frame.set_counter(counter);
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(frame.header());
        let body = frame.body_mut();
        body[..n].copy_from_slice(&plain[..n]);
        let (text, tag_out) = body.split_at_mut(n);
        self.seal(device, counter, Direction::Uplink, &header, text, tag_out);
        out
    }

    /// Checks an event frame's tag and decrypts its event. The frame must be a checked
    /// [`FrameType::Event`] frame.
    pub fn open_event<T: AsRef<[u8]>>(&self, frame: &Frame<T>) -> Result<Event, FrameError> {
        if frame.frame_type() != FrameType::Event {
            return Err(FrameError::UnexpectedFrame(frame.frame_type().as_str()));
        }
        let body = frame.body();
        let mut buf = [0u8; MAX_EVENT_LEN + TAG_LEN];
        let buf = buf
            .get_mut(..body.len())
            .ok_or(FrameError::TooLong { len: body.len() })?;
        buf.copy_from_slice(body);
        let plain = self
            .key
            .open_in_place(
                nonce(frame.device(), frame.counter(), Direction::Uplink),
                Aad::from(frame.header()),
                buf,
            )
            .map_err(|_| FrameError::Authentication)?;
        Event::parse(plain)
    }

    /// Builds the base's acknowledgement of `counter` (the same bytes every time).
    pub fn seal_ack(&self, device: DeviceId, counter: u32) -> FrameBuf {
        self.seal_notice(FrameType::Ack, Direction::Downlink, device, counter)
    }

    /// Checks an acknowledgement frame (what a pendant does), returning the counter acked.
    pub fn open_ack<T: AsRef<[u8]>>(&self, frame: &Frame<T>) -> Result<u32, FrameError> {
        self.open_notice(frame, FrameType::Ack, Direction::Downlink)
    }

    /// Builds the base's word that a receiving centre has the alarm of the pendant's frame
    /// `counter`. Its own nonce direction keeps it apart from the acknowledgement of the
    /// same counter, so neither can stand in for the other.
    pub fn seal_help_coming(&self, device: DeviceId, counter: u32) -> FrameBuf {
        self.seal_notice(
            FrameType::HelpComing,
            Direction::HelpComing,
            device,
            counter,
        )
    }

    /// Checks a "help is coming" frame (what a pendant does), returning the counter it is for.
    pub fn open_help_coming<T: AsRef<[u8]>>(&self, frame: &Frame<T>) -> Result<u32, FrameError> {
        self.open_notice(frame, FrameType::HelpComing, Direction::HelpComing)
    }

    /// A downlink frame whose body is only the tag over its header.
    fn seal_notice(
        &self,
        frame_type: FrameType,
        direction: Direction,
        device: DeviceId,
        counter: u32,
    ) -> FrameBuf {
        let mut out = FrameBuf::new(HEADER_LEN + TAG_LEN);
        let mut frame = out.frame_mut();
        frame.set_control(VERSION, frame_type);
        frame.set_device(device);
        frame.set_counter(counter);
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(frame.header());
        self.seal(
            device,
            counter,
            direction,
            &header,
            &mut [],
            frame.body_mut(),
        );
        out
    }

    fn open_notice<T: AsRef<[u8]>>(
        &self,
        frame: &Frame<T>,
        frame_type: FrameType,
        direction: Direction,
    ) -> Result<u32, FrameError> {
        if frame.frame_type() != frame_type {
            return Err(FrameError::UnexpectedFrame(frame.frame_type().as_str()));
        }
        self.verify_tag(
            nonce(frame.device(), frame.counter(), direction),
            frame.header(),
            frame.body(),
        )?;
        Ok(frame.counter())
    }

    /// Key confirmation tag for a pairing accept: proves the base derived the same key.
    pub fn pair_confirmation(&self, device: DeviceId, aad: &[u8]) -> [u8; TAG_LEN] {
        let mut tag = [0u8; TAG_LEN];
        self.seal(device, 0, Direction::PairConfirm, aad, &mut [], &mut tag);
        tag
    }

    /// Checks a pairing accept's key confirmation tag.
    pub fn check_pair_confirmation(
        &self,
        device: DeviceId,
        aad: &[u8],
        tag: &[u8],
    ) -> Result<(), FrameError> {
        self.verify_tag(nonce(device, 0, Direction::PairConfirm), aad, tag)
    }

    fn seal(
        &self,
        device: DeviceId,
        counter: u32,
        direction: Direction,
        aad: &[u8],
        in_out: &mut [u8],
        tag_out: &mut [u8],
    ) {
        let sealed = self.key.seal_in_place_separate_tag(
            nonce(device, counter, direction),
            Aad::from(aad),
            in_out,
        );
        match sealed {
            Ok(tag) => tag_out.copy_from_slice(tag.as_ref()),
            // Only fails for inputs over 64 GiB.
            Err(_) => unreachable!("AES-GCM seals a few bytes"),
        }
    }

    fn verify_tag(&self, nonce: Nonce, aad: &[u8], tag: &[u8]) -> Result<(), FrameError> {
        let mut buf = [0u8; TAG_LEN];
        if tag.len() != TAG_LEN {
            return Err(FrameError::Authentication);
        }
        buf.copy_from_slice(tag);
        self.key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map(|_| ())
            .map_err(|_| FrameError::Authentication)
    }
}

/// Builds a clear pairing frame with a 32-byte body (a commitment or a public key): the key
/// exchange itself needs no secret.
pub fn emit_pair_key(
    kind: FrameType,
    device: DeviceId,
    attempt: u32,
    body: &[u8; PUBLIC_KEY_LEN],
) -> FrameBuf {
    debug_assert!(kind.body_len_ok(PUBLIC_KEY_LEN));
    let mut out = FrameBuf::new(HEADER_LEN + PUBLIC_KEY_LEN);
    let mut frame = out.frame_mut();
    frame.set_control(VERSION, kind);
    frame.set_device(device);
    frame.set_counter(attempt);
    frame.body_mut().copy_from_slice(body);
    out
}

/// Builds the base's `PairDone`: a key confirmation tag over the header, made with the new key.
pub fn emit_pair_done(device: DeviceId, attempt: u32, cipher: &FrameCipher) -> FrameBuf {
    let mut out = FrameBuf::new(HEADER_LEN + TAG_LEN);
    let mut frame = out.frame_mut();
    frame.set_control(VERSION, FrameType::PairDone);
    frame.set_device(device);
    frame.set_counter(attempt);
    let mut aad = [0u8; HEADER_LEN];
    aad.copy_from_slice(&out.as_bytes()[..HEADER_LEN]);
    let tag = cipher.pair_confirmation(device, &aad);
    out.buf[HEADER_LEN..HEADER_LEN + TAG_LEN].copy_from_slice(&tag);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PendantKey {
        PendantKey::new([b; 32])
    }

    #[test]
    fn event_frame_round_trips_and_has_the_documented_length() {
        let c = FrameCipher::new(&key(7));
        for (event, len) in [
            (Event::Help, 26),
            (Event::Cancel, 26),
            (Event::Tamper, 26),
            (Event::Fall(vigil_core::FallEvidence::typical(3100)), 33),
            (
                Event::Heartbeat {
                    battery_mv: 2950,
                    alarms_sent: None,
                },
                28,
            ),
            (Event::LowBattery { battery_mv: 2200 }, 28),
        ] {
            let buf = c.seal_event(DeviceId(0xA1B2C3D4), 42, event);
            assert_eq!(buf.as_bytes().len(), len, "{event:?}");
            let frame = Frame::new_checked(buf.as_bytes()).unwrap();
            assert_eq!(frame.version(), VERSION);
            assert_eq!(frame.frame_type(), FrameType::Event);
            assert_eq!(frame.device(), DeviceId(0xA1B2C3D4));
            assert_eq!(frame.counter(), 42);
            assert_eq!(c.open_event(&frame).unwrap(), event);
        }
    }

    /// "Help is coming" is sealed apart from the acknowledgement of the same counter: an
    /// acknowledgement relabelled as the notice, a notice under another key or for another
    /// counter, is refused; the genuine one opens.
    #[test]
    fn help_coming_cannot_be_made_from_an_ack_or_another_key() {
        let c = FrameCipher::new(&key(7));
        let id = DeviceId(0xA1B2C3D4);
        let notice = c.seal_help_coming(id, 42);
        assert_eq!(notice.as_bytes().len(), HEADER_LEN + TAG_LEN);
        let f = Frame::new_checked(notice.as_bytes()).unwrap();
        assert_eq!(f.frame_type(), FrameType::HelpComing);
        assert_eq!(c.open_help_coming(&f).unwrap(), 42);
        assert!(c.open_ack(&f).is_err(), "a notice is no acknowledgement");

        let ack = c.seal_ack(id, 42);
        let f = Frame::new_checked(ack.as_bytes()).unwrap();
        assert!(c.open_help_coming(&f).is_err());
        let mut relabelled = ack.as_bytes().to_vec();
        relabelled[0] = (relabelled[0] & 0xF0) | 6;
        let f = Frame::new_checked(&relabelled[..]).unwrap();
        assert_eq!(f.frame_type(), FrameType::HelpComing);
        assert!(c.open_help_coming(&f).is_err(), "a relabelled ack");

        let other = FrameCipher::new(&key(8)).seal_help_coming(id, 42);
        let f = Frame::new_checked(other.as_bytes()).unwrap();
        assert!(c.open_help_coming(&f).is_err(), "another key");
    }

    #[test]
    fn header_is_clear_and_event_is_encrypted() {
        let c = FrameCipher::new(&key(7));
        let buf = c.seal_event(DeviceId(0x01020304), 0x0A0B0C0D, Event::Help);
        assert_eq!(
            &buf.as_bytes()[..9],
            &[0x10, 1, 2, 3, 4, 0x0A, 0x0B, 0x0C, 0x0D]
        );
        assert_ne!(buf.as_bytes()[9], 1, "event code must not be sent in clear");
    }

    #[test]
    fn any_flipped_bit_fails_authentication() {
        let c = FrameCipher::new(&key(7));
        let buf = c.seal_event(
            DeviceId(5),
            9,
            Event::Heartbeat {
                battery_mv: 3000,
                alarms_sent: None,
            },
        );
        for i in 0..buf.as_bytes().len() * 8 {
            let mut bytes = buf.as_bytes().to_vec();
            bytes[i / 8] ^= 1 << (i % 8);
            let result = Frame::new_checked(&bytes[..]).and_then(|f| c.open_event(&f));
            assert!(result.is_err(), "bit {i} flipped still accepted");
        }
    }

    #[test]
    fn wrong_key_fails_authentication() {
        let buf = FrameCipher::new(&key(1)).seal_event(DeviceId(5), 9, Event::Help);
        let frame = Frame::new_checked(buf.as_bytes()).unwrap();
        assert!(matches!(
            FrameCipher::new(&key(2)).open_event(&frame),
            Err(FrameError::Authentication)
        ));
    }

    #[test]
    fn ack_is_deterministic_and_bound_to_counter() {
        let c = FrameCipher::new(&key(3));
        let a = c.seal_ack(DeviceId(5), 77);
        assert_eq!(a, c.seal_ack(DeviceId(5), 77));
        assert_eq!(a.as_bytes().len(), 25);
        let frame = Frame::new_checked(a.as_bytes()).unwrap();
        assert_eq!(c.open_ack(&frame).unwrap(), 77);
        let mut bytes = a.as_bytes().to_vec();
        bytes[8] ^= 1;
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert!(c.open_ack(&frame).is_err());
        // An uplink frame's tag is never a valid ack: directions have separate nonces.
        assert_ne!(
            &a.as_bytes()[9..],
            &c.seal_event(DeviceId(5), 77, Event::Help).as_bytes()[10..]
        );
    }

    #[test]
    fn short_long_and_unknown_frames_are_errors_not_panics() {
        assert!(matches!(
            Frame::new_checked(&[0x10u8; 3][..]),
            Err(FrameError::Truncated { .. })
        ));
        assert!(matches!(
            Frame::new_checked(&[0x10u8; 80][..]),
            Err(FrameError::TooLong { .. })
        ));
        assert!(matches!(
            Frame::new_checked(&[0x20u8; 26][..]),
            Err(FrameError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            Frame::new_checked(&[0x1Fu8; 26][..]),
            Err(FrameError::UnknownFrameType(15))
        ));
        assert!(matches!(
            Frame::new_checked(&[0x10u8; 12][..]),
            Err(FrameError::BadLength { .. })
        ));
        assert!(Event::parse(&[]).is_err());
        assert!(Event::parse(&[1, 0]).is_err());
        assert!(Event::parse(&[4]).is_err());
        assert!(Event::parse(&[9]).is_err());
    }

    #[test]
    fn key_debug_hides_the_key() {
        let k = PendantKey::new([0xAB; 32]);
        assert!(!format!("{k:?}").contains("ab"));
        assert!(!format!("{k:?}").contains("AB"));
        assert_eq!(PendantKey::from_hex(&k.to_hex()).unwrap(), k);
        assert!(PendantKey::from_hex("abc").is_err());
    }

    #[test]
    fn keys_differing_only_in_their_last_byte_differ() {
        let mut bytes = [0xAB; 32];
        let k = PendantKey::new(bytes);
        bytes[31] ^= 1;
        assert_ne!(PendantKey::new(bytes), k);
        assert_eq!(PendantKey::new([0xAB; 32]), k);
    }
}
