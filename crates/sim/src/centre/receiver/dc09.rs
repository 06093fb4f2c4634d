//! A simulated SIA DC-09 receiver on loopback: checks LEN and CRC, decrypts, checks the
//! account and the sender's clock (−40/+20 s) like a real receiver, and answers ACK, NAK, DUH
//! or nothing as the test or demo tells it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::ReceiverError;
use crate::centre::dc09::{self, frame, Dc09Error, Dc09Key, Frame, MessageId};
use crate::config::Dc09Protocol;
use crate::core::AlarmCause;

/// How the simulated receiver answers a frame it could read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dc09Answer {
    /// Accept.
    Ack,
    /// Reject and send our time.
    Nak,
    /// Refuse (as for an unknown account).
    Duh,
    /// Say nothing (a lost answer).
    Silent,
}

/// Settings of the simulated receiver.
#[derive(Clone, Debug)]
pub struct Dc09ReceiverConfig {
    /// TCP or UDP.
    pub protocol: Dc09Protocol,
    /// AES key; when set, plain event frames are refused with DUH.
    pub key: Option<Vec<u8>>,
    /// Our receiver number (`R`), as sent back in answers.
    pub receiver_number: String,
    /// Accounts we serve; empty = any.
    pub accounts: Vec<String>,
    /// Print what an operator would see to stdout.
    pub print: bool,
}

/// One frame as it arrived, with what we made of it.
#[derive(Clone, Debug)]
pub struct Dc09Received {
    /// The bytes as they came over the wire.
    pub raw: Vec<u8>,
    /// The frame, if it could be read.
    pub frame: Option<Frame>,
    /// Why it was rejected, if it was.
    pub problem: Option<String>,
    /// What we answered (None = silence).
    pub answered: Option<MessageId>,
    /// The answer's bytes as sent.
    pub reply: Option<Vec<u8>>,
    /// The operator's line for it.
    pub display: String,
}

struct Shared {
    config: Dc09ReceiverConfig,
    key: Option<Dc09Key>,
    script: Mutex<VecDeque<Dc09Answer>>,
    default_answer: Mutex<Dc09Answer>,
    clock_offset_ms: AtomicI64,
    received: Mutex<Vec<Dc09Received>>,
    arrived: Notify,
}

/// A running simulated DC-09 receiver; stops when dropped.
pub struct Dc09Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Dc09Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Dc09Receiver {
    /// Starts listening on `127.0.0.1:0`.
    pub async fn start(config: Dc09ReceiverConfig) -> Result<Dc09Receiver, ReceiverError> {
        let key = config
            .key
            .as_deref()
            .map(Dc09Key::new)
            .transpose()
            .map_err(|e| ReceiverError::Config(e.to_string()))?;
        let protocol = config.protocol;
        let shared = Arc::new(Shared {
            config,
            key,
            script: Mutex::new(VecDeque::new()),
            default_answer: Mutex::new(Dc09Answer::Ack),
            clock_offset_ms: AtomicI64::new(0),
            received: Mutex::new(Vec::new()),
            arrived: Notify::new(),
        });
        let bind = SocketAddr::from(([127, 0, 0, 1], 0));
        let (addr, task) = match protocol {
            Dc09Protocol::Tcp => {
                let listener = TcpListener::bind(bind).await.map_err(ReceiverError::io)?;
                let addr = listener.local_addr().map_err(ReceiverError::io)?;
                let shared = Arc::clone(&shared);
                (addr, tokio::spawn(serve_tcp(listener, shared)))
            }
            Dc09Protocol::Udp => {
                let socket = UdpSocket::bind(bind).await.map_err(ReceiverError::io)?;
                let addr = socket.local_addr().map_err(ReceiverError::io)?;
                let shared = Arc::clone(&shared);
                (addr, tokio::spawn(serve_udp(socket, shared)))
            }
        };
        Ok(Dc09Receiver { addr, shared, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answer the next frames like this, in order, then fall back to the default.
    pub fn script(&self, answers: &[Dc09Answer]) {
        if let Ok(mut s) = self.shared.script.lock() {
            s.extend(answers.iter().copied());
        }
    }

    /// Answer every frame not covered by a script like this.
    pub fn set_default(&self, answer: Dc09Answer) {
        if let Ok(mut d) = self.shared.default_answer.lock() {
            *d = answer;
        }
    }

    /// Shift the receiver's clock, in milliseconds.
    pub fn set_clock_offset(&self, ms: i64) {
        self.shared.clock_offset_ms.store(ms, Ordering::Relaxed);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Dc09Received> {
        self.shared
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Waits until at least `n` frames have arrived or `limit` passes; returns how many did.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.shared.arrived.notified();
            let count = self.received().len();
            if count >= n {
                return count;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.received().len();
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((mut stream, _peer)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            while let Ok(bytes) = dc09::read_frame(&mut stream).await {
                if let Some(answer) = shared.handle(&bytes) {
                    if stream.write_all(&answer).await.is_err() {
                        break;
                    }
                }
            }
        });
    }
}

async fn serve_udp(socket: UdpSocket, shared: Arc<Shared>) {
    let mut buf = vec![0u8; frame::MAX_FRAME];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(answer) = shared.handle(buf.get(..n).unwrap_or(&[])) {
            let _ = socket.send_to(&answer, peer).await;
        }
    }
}

/// The receiver's current time (its own clock, not the unit's) as DC-09 writes it, shifted
/// by `offset_ms`.
fn utc_now(offset_ms: i64) -> Option<chrono::NaiveDateTime> {
    chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis() + offset_ms)
        .map(|t| t.naive_utc())
}

impl Shared {
    /// Judges one frame, records it and returns the answer bytes.
    fn handle(&self, raw: &[u8]) -> Option<Vec<u8>> {
        let offset = self.clock_offset_ms.load(Ordering::Relaxed);
        let now = utc_now(offset);
        let mut record = Dc09Received {
            raw: raw.to_vec(),
            frame: None,
            problem: None,
            answered: None,
            reply: None,
            display: String::new(),
        };
        let (answer, reply) = match Frame::parse(raw, self.key.as_ref()) {
            Err(
                e @ (Dc09Error::Crc { .. } | Dc09Error::Length { .. } | Dc09Error::Malformed(_)),
            ) => {
                record.problem = Some(e.to_string());
                (Some(MessageId::Nak), None)
            }
            Err(e) => {
                record.problem = Some(e.to_string());
                (Some(MessageId::Duh), None)
            }
            Ok(f) => {
                let verdict = self.judge(&f, now);
                record.frame = Some(f.clone());
                match verdict {
                    Err((id, why)) => {
                        record.problem = Some(why);
                        (Some(id), Some(f))
                    }
                    Ok(()) => {
                        let scripted = self.script.lock().ok().and_then(|mut s| s.pop_front());
                        let answer = scripted.unwrap_or_else(|| {
                            self.default_answer
                                .lock()
                                .map(|d| *d)
                                .unwrap_or(Dc09Answer::Ack)
                        });
                        let id = match answer {
                            Dc09Answer::Ack => Some(MessageId::Ack),
                            Dc09Answer::Nak => Some(MessageId::Nak),
                            Dc09Answer::Duh => Some(MessageId::Duh),
                            Dc09Answer::Silent => None,
                        };
                        (id, Some(f))
                    }
                }
            }
        };
        record.answered = answer;
        let bytes = answer.and_then(|id| self.answer(id, reply.as_ref(), now));
        record.reply = bytes.clone();
        record.display = self.display(&record);
        if self.config.print {
            println!("{}", record.display);
        }
        if let Ok(mut r) = self.received.lock() {
            r.push(record);
        }
        self.arrived.notify_waiters();
        bytes
    }

    /// The checks a receiver makes on a frame it could read.
    fn judge(
        &self,
        f: &Frame,
        now: Option<chrono::NaiveDateTime>,
    ) -> Result<(), (MessageId, String)> {
        if self.key.is_some() && !f.encrypted {
            return Err((MessageId::Duh, "plain frame on an encrypted line".into()));
        }
        if !matches!(
            f.id,
            MessageId::AdmCid | MessageId::SiaDcs | MessageId::Null
        ) {
            return Err((
                MessageId::Duh,
                format!("{} is not for a receiver", f.id.as_str()),
            ));
        }
        let accounts = &self.config.accounts;
        let account = f.account.clone().unwrap_or_default();
        if !accounts.is_empty() && !accounts.iter().any(|a| a.eq_ignore_ascii_case(&account)) {
            return Err((MessageId::Duh, format!("unknown account {account}")));
        }
        match (f.timestamp, now) {
            (Some(ts), Some(now)) => {
                let skew = (ts - now).num_seconds();
                if !(-40..=20).contains(&skew) {
                    return Err((
                        MessageId::Nak,
                        format!("timestamp {skew:+} s off our clock"),
                    ));
                }
            }
            (None, _) if f.encrypted => {
                return Err((MessageId::Nak, "encrypted frame without timestamp".into()));
            }
            _ => {}
        }
        Ok(())
    }

    fn answer(
        &self,
        id: MessageId,
        to: Option<&Frame>,
        now: Option<chrono::NaiveDateTime>,
    ) -> Option<Vec<u8>> {
        let reply = match (id, to) {
            (MessageId::Ack | MessageId::Duh, Some(f)) => Frame {
                id,
                encrypted: id == MessageId::Ack && f.encrypted,
                seq: f.seq,
                receiver: Some(self.config.receiver_number.clone()),
                prefix: f.prefix.clone(),
                account: f.account.clone(),
                data: String::new(),
                extended: Vec::new(),
                timestamp: if f.encrypted { now } else { None },
            },
            // NAK to a frame that decrypted but whose time was off: encrypted with the
            // account's key, so the unit can trust the time it carries.
            (MessageId::Nak, Some(f)) if f.encrypted => Frame {
                id,
                encrypted: true,
                seq: 0,
                receiver: Some("0".into()),
                prefix: Some("0".into()),
                account: f.account.clone(),
                data: String::new(),
                extended: Vec::new(),
                timestamp: now,
            },
            // NAK, or DUH to something we could not read: `"NAK"0000R0L0A0[]_time`.
            _ => Frame {
                id,
                encrypted: false,
                seq: 0,
                receiver: Some("0".into()),
                prefix: Some("0".into()),
                account: None,
                data: String::new(),
                extended: Vec::new(),
                timestamp: now,
            },
        };
        reply.emit(self.key.as_ref()).ok()
    }

    fn display(&self, r: &Dc09Received) -> String {
        let answered = r.answered.map_or("(no answer)", MessageId::as_str);
        let Some(f) = &r.frame else {
            return format!(
                "[DC-09 R{}] unreadable frame: {} -> {answered}",
                self.config.receiver_number,
                r.problem.as_deref().unwrap_or("?")
            );
        };
        let when = f
            .timestamp
            .map(|t| format!("{} UTC", t.format("%Y-%m-%d %H:%M:%S")))
            .unwrap_or_else(|| "no time".into());
        let crypt = self
            .key
            .as_ref()
            .filter(|_| f.encrypted)
            .map(|k| format!(", AES-{}", k.bits()))
            .unwrap_or_default();
        let event = describe_event(f);
        let text = f
            .extended
            .iter()
            .find_map(|e| e.strip_prefix('I'))
            .map(|t| format!(" \"{t}\""))
            .unwrap_or_default();
        let problem = r
            .problem
            .as_ref()
            .map(|p| format!(" [{p}]"))
            .unwrap_or_default();
        format!(
            "[DC-09 R{}] {when} account {}: {event}{text} (seq {:04}{crypt}){problem} -> {answered}",
            self.config.receiver_number,
            f.account.as_deref().unwrap_or("-"),
            f.seq
        )
    }
}

/// What an operator reads for an event frame: the event and the zone.
pub fn describe_event(f: &Frame) -> String {
    match f.id {
        MessageId::Null => "link test".into(),
        MessageId::AdmCid => {
            let cid = f.data.split('|').nth(1).unwrap_or("");
            let digits: Vec<&str> = cid.split(' ').collect();
            let (q, code) = digits
                .first()
                .filter(|e| e.len() == 4)
                .map(|e| (e.get(..1).unwrap_or(""), e.get(1..).unwrap_or("")))
                .unwrap_or(("", ""));
            let zone = digits.get(2).copied().unwrap_or("?");
            let what = AlarmCause::ALL
                .into_iter()
                .find(|c| {
                    let (cq, cc) = c.contact_id();
                    q.parse::<u8>().ok() == Some(cq) && code.parse::<u16>().ok() == Some(cc)
                })
                .map_or("unknown event", AlarmCause::describe);
            format!("Contact ID {q}{code} {what}, zone {zone}")
        }
        MessageId::SiaDcs => {
            let ev = f.data.split('|').nth(1).unwrap_or("");
            let ev = ev.rsplit('/').next().unwrap_or(ev);
            let code = ev.get(..2).unwrap_or("");
            let zone = ev.get(2..).unwrap_or("");
            let what = AlarmCause::ALL
                .into_iter()
                .find(|c| dc09::sia_code(*c) == code)
                .map_or("unknown event", AlarmCause::describe);
            format!("SIA {code} {what}, zone {zone}")
        }
        other => other.as_str().to_string(),
    }
}
