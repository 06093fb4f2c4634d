//! SIA DC-09 over TCP and UDP: framing, CRC-16/ARC, optional AES-CBC, ACK/NAK/DUH.
//!
//! One [`Dc09Link`] per configured route. Each alarm goes out as one `ADM-CID` (Contact ID,
//! SIA DC-05) or `SIA-DCS` (SIA DC-03) frame; only an `ACK` for that sequence number and
//! account counts as delivered. A `NAK` carries the receiver's clock: the link adopts it only
//! from a NAK that decrypts with the link's key (a NAK in clear could come from anyone on the
//! path) and resends; a `DUH` means the receiver will not take this account, type or key — a
//! configuration error, so the core moves to the next route. `NULL` frames test the link.
//!
//! What to send and what an answer means is decided by [`frame::exchange::Exchange`], which
//! does no IO; a link only carries its frames over TCP or UDP, reads the unit's clock for it
//! and keeps the clock offset it learns from one frame to the next.

/// The frame, its CRC and its encryption.
pub use vigil_wire::dc09 as frame;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::config::{Dc09Protocol, Dc09Route, KeyFormat};
use crate::core::{Alarm, AlarmCause, Delivery, DeliveryResult, UnitFault};
use frame::exchange::{self, Answer, Exchange, Outcome, Reliability};
pub use frame::exchange::{ExchangeFailure, Verdict};
pub use frame::{crc16_arc, Dc09Key, Frame, MessageId};

pub use vigil_wire::dc09::Dc09Error;

pub use crate::config::Dc09Payload;

/// The SIA DC-03 event code for an alarm cause.
pub fn sia_code(cause: AlarmCause) -> &'static str {
    match cause {
        AlarmCause::Help => "QA",              // emergency alarm
        AlarmCause::Fall => "MA",              // medical alarm
        AlarmCause::AlarmNotReceived => "QA",  // emergency alarm (a press the base missed)
        AlarmCause::PendantMissing => "US",    // untyped zone supervisory
        AlarmCause::PendantRestored => "UR",   // untyped zone restoral
        AlarmCause::PendantBatteryLow => "XT", // transmitter battery trouble
        AlarmCause::Tamper => "TA",            // tamper alarm
        AlarmCause::MainsLost => "AT",         // AC trouble
        AlarmCause::MainsRestored => "AR",     // AC restoral
        AlarmCause::BaseBatteryLow => "YT",    // system battery trouble
        AlarmCause::Jamming => "XQ",           // RF interference
        AlarmCause::JammingEnded => "XH",      // RF interference restoral
        AlarmCause::PeriodicTest => "RP",      // automatic test
        AlarmCause::ManualTest => "RX",        // manual test
        AlarmCause::Fault(f) => match f {
            UnitFault::Radio | UnitFault::Audio => "ET", // expansion (peripheral) trouble
            UnitFault::Modem | UnitFault::Registration | UnitFault::Route => "YC", // communication fail
            UnitFault::Storage | UnitFault::JournalLost => "IA", // equipment failure
        },
        AlarmCause::FaultCleared(f) => match f {
            UnitFault::Radio | UnitFault::Audio => "ER", // expansion restoral
            UnitFault::Modem | UnitFault::Registration | UnitFault::Route => "YK", // communication restoral
            UnitFault::Storage | UnitFault::JournalLost => "IR", // equipment failure restoral
        },
    }
}

/// Longest alarm text (extended data `I`): room for the reference, the place, the event and
/// a fall's evidence.
const MAX_TEXT: usize = 160;

/// The frame ID and data (`#acct|…`) for `alarm`, plus the alarm text as extended data `I`.
pub fn event_frame_data(
    alarm: &Alarm,
    account: &str,
    payload: Dc09Payload,
) -> (MessageId, String, Vec<String>) {
    let zone = alarm.zone().min(999);
    let data = match payload {
        Dc09Payload::AdmCid => {
            let (q, code) = alarm.cause.contact_id();
            format!("#{account}|{q}{code:03} 01 {zone:03}")
        }
        Dc09Payload::SiaDcs => format!("#{account}|Nri1/{}{zone:03}", sia_code(alarm.cause)),
    };
    let id = match payload {
        Dc09Payload::AdmCid => MessageId::AdmCid,
        Dc09Payload::SiaDcs => MessageId::SiaDcs,
    };
    // The alarm's reference leads the alarm text, so an operator (and a crash audit) can tie
    // the event to the unit's journal as with SCAIP's `ref` and the SMS `REF=`.
    let mut text = format!("ref {} ", alarm.reference);
    if let Some(device) = &alarm.device {
        text.push_str(&device.location);
        text.push_str(": ");
    }
    text.push_str(alarm.cause.describe());
    // A fall carries what the pendant's detector measured.
    if let Some(e) = &alarm.evidence {
        text.push_str("; ");
        text.push_str(&e.ascii());
    }
    let text: String = text
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .filter(|c| !matches!(c, '[' | ']' | '|' | '_'))
        .take(MAX_TEXT)
        .collect();
    (id, data, vec![format!("I{text}")])
}

/// Turns the key text of the configuration into AES key bytes, the way the receiver reads
/// it: receivers differ on whether the hex text decodes to the key or its characters are the
/// key (DC-09 leaves it open), so the installer chooses.
pub fn key_bytes(text: &str, format: KeyFormat) -> Result<Vec<u8>, Dc09Error> {
    let bytes = match format {
        KeyFormat::HexBytes => hex::decode(text.trim())
            .map_err(|_| Dc09Error::Malformed("key is not an even number of hex digits"))?,
        KeyFormat::Ascii => text.trim().as_bytes().to_vec(),
    };
    Dc09Key::new(&bytes)?;
    Ok(bytes)
}

/// Link-test state for status displays and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// No link test has run yet.
    Unknown,
    /// The last `NULL` was acknowledged.
    Up,
    /// The last `NULL` was not acknowledged; why.
    Down(LinkError),
}

/// Why a frame on a DC-09 link was not acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The frame's exchange with the receiver failed.
    Exchange {
        /// The receiver, `host:port`.
        receiver: String,
        /// TCP or UDP.
        protocol: Dc09Protocol,
        /// What went wrong.
        failure: ExchangeFailure,
    },
    /// The receiver answered a `NULL` link test with `DUH`.
    DuhToLinkTest,
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Exchange {
                failure: failure @ ExchangeFailure::Frame(_),
                ..
            } => write!(f, "{failure}"),
            LinkError::Exchange {
                receiver,
                protocol,
                failure:
                    failure @ (ExchangeFailure::NoAnswer { .. } | ExchangeFailure::Network { .. }),
            } => write!(f, "DC-09 {receiver} ({}): {failure}", proto_name(*protocol)),
            LinkError::Exchange {
                receiver, failure, ..
            } => write!(f, "DC-09 {receiver}: {failure}"),
            LinkError::DuhToLinkTest => f.write_str("receiver answered DUH to a link test"),
        }
    }
}

impl std::error::Error for LinkError {}

struct Sender {
    route: String,
    receiver: String,
    protocol: Dc09Protocol,
    /// Account, receiver number, line prefix, key and transport, as the frames carry them.
    link: exchange::Link,
    answer_timeout: Duration,
    payload: Dc09Payload,
    /// The unit's wall clock, for the frames' timestamps and the ACK's time check.
    clock: Arc<dyn Clock>,
    /// Sequence number and clock correction; one frame in flight at a time (DC-09 §5.3).
    state: Mutex<SendState>,
}

struct SendState {
    seq: u16,
    /// Receiver clock minus ours, learned from NAKs, in milliseconds.
    clock_offset_ms: i64,
}

/// A SIA DC-09 route: delivers alarms and runs the `NULL` link test.
pub struct Dc09Link {
    sender: Arc<Sender>,
    link: Arc<watch::Sender<LinkState>>,
    link_test: Option<JoinHandle<()>>,
}

/// How often a route known to be down is probed with a `NULL`, whatever the link test
/// interval (even none): it is used again as soon as it answers.
pub const PROBE_WHILE_DOWN: Duration = Duration::from_secs(2);

impl Drop for Dc09Link {
    fn drop(&mut self) {
        if let Some(task) = self.link_test.take() {
            task.abort();
        }
    }
}

impl Dc09Link {
    /// Sets up the route `name` for the unit's SIA account and starts the link test, if the
    /// route asks for one. The key, if any, must be 16, 24 or 32 bytes (the configuration has
    /// already turned its text into bytes in the format the receiver expects).
    pub async fn start(
        name: &str,
        route: &Dc09Route,
        account: &str,
        payload: Dc09Payload,
    ) -> Result<Dc09Link, Dc09Error> {
        Dc09Link::start_with_clock(name, route, account, payload, Arc::new(SystemClock)).await
    }

    /// [`Dc09Link::start`] on the unit's clock: the frames' timestamps are its wall time
    /// (corrected by the receiver's NAKs), never a clock the link reads itself.
    pub async fn start_with_clock(
        name: &str,
        route: &Dc09Route,
        account: &str,
        payload: Dc09Payload,
        clock: Arc<dyn Clock>,
    ) -> Result<Dc09Link, Dc09Error> {
        let key = route.key.as_deref().map(|k| Dc09Key::new(k)).transpose()?;
        let sender = Arc::new(Sender {
            route: name.to_string(),
            receiver: route.receiver.clone(),
            protocol: route.protocol,
            link: exchange::Link {
                account: account.to_ascii_uppercase(),
                receiver_number: route.receiver_number.to_ascii_uppercase(),
                line_prefix: route.line_prefix.to_ascii_uppercase(),
                key,
                reliability: match route.protocol {
                    Dc09Protocol::Tcp => Reliability::Stream,
                    Dc09Protocol::Udp => Reliability::Datagram,
                },
            },
            answer_timeout: route.answer_timeout,
            payload,
            clock,
            state: Mutex::new(SendState {
                seq: 0,
                clock_offset_ms: 0,
            }),
        });
        let link = Arc::new(watch::channel(LinkState::Unknown).0);
        let task = {
            let sender = Arc::clone(&sender);
            let link = Arc::clone(&link);
            let every = route.link_test;
            tokio::spawn(async move {
                let mut state = link.subscribe();
                loop {
                    // The configured link test while up (none if 0); a probe every few seconds
                    // while down, so the route is used again as soon as it works.
                    let down = matches!(*state.borrow_and_update(), LinkState::Down(_));
                    let wait = if down {
                        if every.is_zero() {
                            PROBE_WHILE_DOWN
                        } else {
                            every.min(PROBE_WHILE_DOWN)
                        }
                    } else if every.is_zero() {
                        if state.changed().await.is_err() {
                            return;
                        }
                        continue;
                    } else {
                        every
                    };
                    tokio::time::sleep(wait).await;
                    let new = match sender.link_test().await {
                        Ok(()) => LinkState::Up,
                        Err(reason) => {
                            tracing::warn!(route = %sender.route, %reason, "DC-09 link test failed");
                            LinkState::Down(reason)
                        }
                    };
                    link.send_replace(new);
                }
            })
        };
        Ok(Dc09Link {
            sender,
            link,
            link_test: Some(task),
        })
    }

    /// Sends one alarm and waits for the receiver's verdict. Dropping the future aborts the
    /// attempt (the connection closes; the sequence number is not reused).
    pub async fn deliver(&self, delivery: &Delivery) -> DeliveryResult {
        let alarm = &delivery.alarm;
        let (id, data, extended) =
            event_frame_data(alarm, &self.sender.link.account, self.sender.payload);
        tracing::info!(route = %self.sender.route, alarm_id = alarm.id.0, attempt = delivery.attempt,
            id = id.as_str(), "DC-09 sending alarm");
        let verdict = self.sender.exchange(id, data, extended).await;
        // What the delivery learnt of the link: an answer is a working link, none a down one.
        match &verdict {
            Ok(_) => {
                self.link
                    .send_if_modified(|s| std::mem::replace(s, LinkState::Up) != LinkState::Up);
            }
            Err(error) => {
                self.link.send_replace(LinkState::Down(error.clone()));
            }
        }
        match verdict {
            Ok(Verdict::Ack) => DeliveryResult::Acked {
                by: format!(
                    "DC-09 {} R{}",
                    self.sender.receiver, self.sender.link.receiver_number
                ),
                callback: None,
            },
            Ok(Verdict::Duh) => DeliveryResult::Declined {
                reason: format!(
                    "DC-09 receiver {} answered DUH: it does not accept account {} / this message type / this key — check the configuration",
                    self.sender.receiver, self.sender.link.account
                ),
            },
            Err(error) => DeliveryResult::Failed {
                reason: error.to_string(),
            },
        }
    }

    /// The result of the latest link test.
    pub fn link_state(&self) -> LinkState {
        self.link.borrow().clone()
    }

    /// True while the link is known to work (the last frame or `NULL` was answered), as it
    /// changes.
    pub fn health(&self) -> watch::Receiver<bool> {
        let mut state = self.link.subscribe();
        let up = |s: &LinkState| !matches!(s, LinkState::Down(_));
        let (tx, rx) = watch::channel(up(&state.borrow()));
        tokio::spawn(async move {
            while state.changed().await.is_ok() {
                let now = up(&state.borrow_and_update());
                tx.send_if_modified(|v| std::mem::replace(v, now) != now);
                if tx.is_closed() {
                    return;
                }
            }
        });
        rx
    }

    /// Sends one `NULL` link test now; `Err` says why it was not acknowledged.
    pub async fn link_test(&self) -> Result<(), LinkError> {
        self.sender.link_test().await
    }

    /// Shifts this link's clock (for demonstrations of a receiver's time check and tests).
    pub async fn skew_clock(&self, by_ms: i64) {
        self.sender.state.lock().await.clock_offset_ms += by_ms;
    }
}

impl Sender {
    async fn link_test(&self) -> Result<(), LinkError> {
        match self
            .exchange(MessageId::Null, String::new(), Vec::new())
            .await?
        {
            Verdict::Ack => Ok(()),
            Verdict::Duh => Err(LinkError::DuhToLinkTest),
        }
    }

    /// Sends one frame until ACK, DUH, too many NAKs or silence: carries the bytes the
    /// [`Exchange`] asks for and hands it the answers with the unit's wall time.
    async fn exchange(
        &self,
        id: MessageId,
        data: String,
        extended: Vec<String>,
    ) -> Result<Verdict, LinkError> {
        let mut state = self.state.lock().await;
        state.seq = exchange::next_sequence(state.seq);
        let seq = state.seq;
        let mut exchange =
            Exchange::new(&self.link, state.clock_offset_ms, seq, id, data, extended);
        let mut outcome = exchange.start(self.clock.wall());
        loop {
            match outcome {
                Outcome::Send(bytes) => {
                    let answer = self.send(&bytes).await;
                    let now = self.clock.wall();
                    outcome = match &answer {
                        Ok(reply) => exchange.handle(now, Answer::Reply(reply)),
                        Err(Dc09Error::Timeout(waited)) => {
                            exchange.handle(now, Answer::Silence(*waited))
                        }
                        Err(e) => exchange.handle(now, Answer::Broken(e)),
                    };
                    // Kept at once: a dropped delivery must not lose what a NAK taught.
                    let offset = exchange.clock_offset_ms();
                    if offset != state.clock_offset_ms {
                        state.clock_offset_ms = offset;
                        tracing::info!(route = %self.route, seq, offset_ms = offset,
                            "DC-09 NAK: clock resynchronised to the receiver's");
                    }
                    if let (Err(Dc09Error::Timeout(t)), Outcome::Send(_)) = (&answer, &outcome) {
                        tracing::debug!(route = %self.route, seq, "DC-09 no answer over UDP in {t:?}, resending");
                    }
                }
                Outcome::Done(verdict) => {
                    if verdict == Verdict::Ack {
                        tracing::info!(route = %self.route, seq, "DC-09 ACK");
                    }
                    return Ok(verdict);
                }
                Outcome::Failed(failure) => {
                    match &failure {
                        ExchangeFailure::AckOutsideTimeWindow { .. } => {
                            tracing::warn!(route = %self.route, seq,
                                "DC-09 encrypted ACK refused: its timestamp is outside the time window");
                        }
                        ExchangeFailure::ClearNakToEncryptedFrame => {
                            tracing::warn!(route = %self.route, seq,
                                "DC-09 NAK in clear: not taken as the receiver's time");
                        }
                        _ => {}
                    }
                    return Err(LinkError::Exchange {
                        receiver: self.receiver.clone(),
                        protocol: self.protocol,
                        failure,
                    });
                }
            }
        }
    }

    /// One frame out, one reply back, within the answer timeout.
    async fn send(&self, bytes: &[u8]) -> Result<Vec<u8>, Dc09Error> {
        let addr = resolve(&self.receiver).await?;
        let timeout = self.answer_timeout;
        match self.protocol {
            Dc09Protocol::Tcp => {
                let mut stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
                    .await
                    .map_err(|_| {
                        Dc09Error::Io(format!("connecting to {addr} timed out after {timeout:?}"))
                    })?
                    .map_err(|e| Dc09Error::Io(format!("cannot connect to {addr}: {e}")))?;
                stream
                    .write_all(bytes)
                    .await
                    .map_err(|e| Dc09Error::Io(format!("writing to {addr}: {e}")))?;
                tokio::time::timeout(timeout, read_frame(&mut stream))
                    .await
                    .map_err(|_| Dc09Error::Timeout(timeout))?
            }
            Dc09Protocol::Udp => {
                let local: SocketAddr = if addr.is_ipv4() {
                    SocketAddr::from(([0, 0, 0, 0], 0))
                } else {
                    SocketAddr::from(([0u16; 8], 0))
                };
                let socket = UdpSocket::bind(local)
                    .await
                    .map_err(|e| Dc09Error::Io(format!("opening a UDP socket: {e}")))?;
                socket
                    .connect(addr)
                    .await
                    .map_err(|e| Dc09Error::Io(format!("UDP to {addr}: {e}")))?;
                socket
                    .send(bytes)
                    .await
                    .map_err(|e| Dc09Error::Io(format!("sending to {addr}: {e}")))?;
                let mut buf = vec![0u8; frame::MAX_FRAME];
                let n = tokio::time::timeout(timeout, socket.recv(&mut buf))
                    .await
                    .map_err(|_| Dc09Error::Timeout(timeout))?
                    .map_err(|e| Dc09Error::Io(format!("receiving from {addr}: {e}")))?;
                buf.truncate(n);
                Ok(buf)
            }
        }
    }
}

fn proto_name(p: Dc09Protocol) -> &'static str {
    match p {
        Dc09Protocol::Tcp => "TCP",
        Dc09Protocol::Udp => "UDP",
    }
}

/// Resolves `host:port`.
pub(crate) async fn resolve(target: &str) -> Result<SocketAddr, Dc09Error> {
    tokio::net::lookup_host(target)
        .await
        .map_err(|e| Dc09Error::Io(format!("cannot resolve {target}: {e}")))?
        .next()
        .ok_or_else(|| Dc09Error::Io(format!("{target} resolves to no address")))
}

/// Reads one frame (up to and including CR) from a stream.
pub async fn read_frame<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, Dc09Error> {
    let mut out = Vec::with_capacity(128);
    let mut byte = [0u8; 1];
    loop {
        let n = r
            .read(&mut byte)
            .await
            .map_err(|e| Dc09Error::Io(format!("reading: {e}")))?;
        if n == 0 {
            return Err(Dc09Error::Io(
                "connection closed before a complete frame".into(),
            ));
        }
        if out.is_empty() && byte[0] != b'\n' {
            continue; // skip noise between frames
        }
        out.push(byte[0]);
        if byte[0] == b'\r' {
            return Ok(out);
        }
        if out.len() > frame::MAX_FRAME {
            return Err(Dc09Error::Malformed("frame longer than DC-09 allows"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{AlarmId, AlarmRef, Device, DeviceId, DeviceKind, Timestamp};

    fn alarm(cause: AlarmCause) -> Alarm {
        Alarm {
            id: AlarmId(7),
            reference: AlarmRef::new(AlarmId(7), Timestamp::from_secs(1_700_000_000)),
            cause,
            device: Some(Device {
                id: DeviceId(0xA1B2C3D4),
                kind: DeviceKind::Personal,
                zone: 3,
                location: "Anna's [pendant]".into(),
            }),
            raised_at: Timestamp::from_secs(1_700_000_000),
            evidence: None,
        }
    }

    #[test]
    fn adm_cid_data_follows_contact_id() {
        let (id, data, ext) =
            event_frame_data(&alarm(AlarmCause::Help), "1234", Dc09Payload::AdmCid);
        assert_eq!(id, MessageId::AdmCid);
        assert_eq!(data, "#1234|1101 01 003");
        let reference = alarm(AlarmCause::Help).reference;
        assert_eq!(
            ext,
            vec![format!(
                "Iref {reference} Anna's pendant: help button pressed"
            )]
        );
        let (_, data, _) = event_frame_data(
            &alarm(AlarmCause::MainsRestored),
            "1234",
            Dc09Payload::AdmCid,
        );
        assert_eq!(data, "#1234|3301 01 003");
    }

    #[test]
    fn key_text_formats() {
        let hex = "30313233343536373839414243444546";
        assert_eq!(
            key_bytes(hex, KeyFormat::HexBytes).unwrap(),
            b"0123456789ABCDEF"
        );
        assert_eq!(key_bytes(hex, KeyFormat::Ascii).unwrap().len(), 32);
        assert!(key_bytes("0123456789ABCDEF", KeyFormat::Ascii).is_ok());
        assert!(matches!(
            key_bytes("ABC", KeyFormat::HexBytes),
            Err(Dc09Error::Malformed(_))
        ));
        assert!(matches!(
            key_bytes("short", KeyFormat::Ascii),
            Err(Dc09Error::KeyLength(5))
        ));
    }

    /// Operators and the install check read these texts: the receiver leads, the transport
    /// only where the network failed.
    #[test]
    fn link_errors_name_the_receiver() {
        let error = |failure| LinkError::Exchange {
            receiver: "arc.example:12000".into(),
            protocol: Dc09Protocol::Tcp,
            failure,
        };
        assert_eq!(
            error(ExchangeFailure::NoAnswer {
                waited: Duration::from_secs(3),
                earlier: None
            })
            .to_string(),
            "DC-09 arc.example:12000 (TCP): no answer from the receiver within 3s"
        );
        assert_eq!(
            error(ExchangeFailure::ClearNakToEncryptedFrame).to_string(),
            "DC-09 arc.example:12000: NAK in clear to an encrypted frame: the receiver could not decrypt it; check key and key_format with the centre"
        );
        assert_eq!(
            error(ExchangeFailure::Frame(Dc09Error::TooLong(5000))).to_string(),
            "frame body of 5000 characters is longer than DC-09 allows (4095)"
        );
        assert_eq!(
            LinkError::DuhToLinkTest.to_string(),
            "receiver answered DUH to a link test"
        );
    }

    #[test]
    fn sia_dcs_data() {
        let (id, data, _) = event_frame_data(&alarm(AlarmCause::Fall), "ABC", Dc09Payload::SiaDcs);
        assert_eq!(id, MessageId::SiaDcs);
        assert_eq!(data, "#ABC|Nri1/MA003");
    }
}
