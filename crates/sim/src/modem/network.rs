//! A simulated cellular network and the parties behind it, for tests and the demo.
//!
//! The simulated modem ([`super::sim`]) attaches here with its own number. SMS and calls it
//! originates reach parties by number: a [`Person`] (answers or not, presses a key or not,
//! voicemail), a Contact ID receiving centre ([`CidCentre`]: handshake, decodes DTMF, checks
//! the checksum, kissoff or not), an SMS [`Responder`] (valid, forged or no acknowledgement).
//! The network can also lose SMS and send SMS or calls to the modem (remote commands,
//! centre call-backs). Everything parties saw is kept as [`Record`]s for tests to inspect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::auth;
use super::pdu::Concat;

/// How a person treats a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pickup {
    /// Answers after ringing.
    Answers,
    /// The line is busy.
    Busy,
    /// Rings until the network gives up.
    NoAnswer,
    /// A voicemail box answers: connected, but nobody presses a key.
    Voicemail,
}

/// A person with a phone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// Whether and how the call is picked up.
    pub pickup: Pickup,
    /// The key pressed after hearing the announcement, if any.
    pub key: Option<char>,
    /// The person (or network) drops the call this long after answering.
    pub drop_after: Option<Duration>,
}

impl Person {
    /// Answers and presses `key` after the announcement.
    pub fn accepting(key: char) -> Person {
        Person {
            pickup: Pickup::Answers,
            key: Some(key),
            drop_after: None,
        }
    }
}

/// When a Contact ID centre sends its kissoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kissoff {
    /// After every valid message.
    Always,
    /// Never (a broken receiver).
    Never,
    /// Only from the n-th valid message on (earlier ones lost to line noise).
    FromAttempt(u32),
}

/// A Contact ID (SIA DC-05) receiving centre on a phone line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidCentre {
    /// Whether it sends the 1400/2300 Hz handshake after answering.
    pub handshake: bool,
    /// Kissoff policy.
    pub kissoff: Kissoff,
    /// Whether it picks up at all.
    pub answers: bool,
    /// It drops the call this long after answering.
    pub drop_after: Option<Duration>,
    /// How long its 1400 Hz kissoff lasts, ms (DC-05: 750–1000).
    pub kissoff_ms: u32,
}

impl CidCentre {
    /// A working receiver.
    pub fn working() -> CidCentre {
        CidCentre {
            handshake: true,
            kissoff: Kissoff::Always,
            answers: true,
            drop_after: None,
            kissoff_ms: 850,
        }
    }
}

/// What an SMS responder sends back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `ACK <ref> <code>` with the right code.
    Valid,
    /// `ACK <ref> <code>` with a code made with a wrong secret.
    Forged,
    /// Nothing.
    Silent,
    /// A valid acknowledgement, but sent from another number.
    FromNumber(String),
}

/// An SMS gateway at a centre that acknowledges alarm texts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Responder {
    /// Shared secret for the acknowledgement code. Never logged.
    pub secret: String,
    /// What it answers.
    pub reply: Reply,
}

/// Someone reachable through the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Party {
    /// A person's phone.
    Person(Person),
    /// A Contact ID receiving centre.
    Centre(CidCentre),
    /// An SMS acknowledgement gateway.
    Responder(Responder),
    /// An echo test line: answers and sends back what it hears, after the network's delay.
    EchoLine,
}

/// What the network tells an attached modem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToModem {
    /// An SMS for the modem.
    Sms {
        /// Sender.
        from: String,
        /// Text.
        text: String,
    },
    /// An incoming call.
    Incoming {
        /// Call id.
        call: u32,
        /// Caller's number.
        from: String,
    },
    /// An outgoing call progressed.
    Progress {
        /// Call id.
        call: u32,
        /// New state.
        progress: Progress,
    },
    /// A DTMF digit arrives in the call audio.
    Dtmf {
        /// Call id.
        call: u32,
        /// Digit.
        digit: char,
    },
    /// A single tone (Hz) of `ms` milliseconds begins on the line: the call's audio, for a
    /// module that streams it to the host.
    ToneStart {
        /// Call id.
        call: u32,
        /// Frequency.
        hz: u16,
        /// How long it lasts.
        ms: u32,
    },
    /// The far end sends back what it hears (an echo test line), in the call's audio.
    Echo {
        /// Call id.
        call: u32,
    },
    /// A single tone (Hz) of `ms` milliseconds was heard in the call audio; sent when the
    /// tone ends, as a module's tone detector reports it.
    Tone {
        /// Call id.
        call: u32,
        /// Frequency.
        hz: u16,
        /// How long it lasted.
        ms: u32,
    },
}

/// Progress of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The far end rings.
    Alerting,
    /// Connected.
    Active,
    /// Ended.
    Ended(EndCause),
}

/// Why a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndCause {
    /// The far end is busy.
    Busy,
    /// Nobody answered.
    NoAnswer,
    /// Dropped or hung up by the far end.
    NoCarrier,
}

/// What the modem does in a call, as the far end hears it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToParty {
    /// DTMF digits (`AT+VTS`).
    Dtmf(String),
    /// Text-to-speech played into the call (`AT+QTTS`).
    Speech(String),
    /// The modem answered an incoming call (`ATA`).
    Answered,
    /// The modem hung up.
    Hangup,
}

/// What happened in the network, for tests and the demo timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A complete SMS reached `to`.
    SmsDelivered {
        /// Sender.
        from: String,
        /// Recipient.
        to: String,
        /// Text (parts joined).
        text: String,
    },
    /// The network lost an SMS part.
    SmsLost {
        /// Recipient.
        to: String,
    },
    /// A party replied by SMS.
    SmsReplied {
        /// The replying number.
        from: String,
        /// Text.
        text: String,
    },
    /// A call was answered by `to`.
    CallAnswered {
        /// Who answered.
        to: String,
    },
    /// A person heard the announcement.
    Heard {
        /// Who.
        to: String,
        /// Text.
        text: String,
    },
    /// A person pressed a key.
    KeyPressed {
        /// Who.
        to: String,
        /// Key.
        key: char,
    },
    /// A Contact ID message was received.
    CidMessage {
        /// Centre number.
        to: String,
        /// The 16 DTMF digits as heard.
        dtmf: String,
        /// Whether length, type and checksum were right.
        valid: bool,
    },
    /// The centre sent its kissoff.
    Kissoff {
        /// Centre number.
        to: String,
    },
    /// The modem answered a call from `from`.
    ModemAnswered {
        /// Caller.
        from: String,
    },
}

/// Delays of the simulated network.
#[derive(Clone, Copy, Debug)]
pub struct NetTiming {
    /// Ringing before a person or centre picks up.
    pub ring: Duration,
    /// Ringing before the network reports no answer.
    pub no_answer: Duration,
    /// From announcement to key press.
    pub key_delay: Duration,
    /// From answer to the Contact ID handshake.
    pub handshake_delay: Duration,
    /// From the last digit to the kissoff.
    pub kissoff_delay: Duration,
    /// From an SMS arriving to the responder's reply.
    pub reply_delay: Duration,
    /// Whether a tone on the line takes its own length in time (false: reported at once).
    pub tones_take_time: bool,
}

impl NetTiming {
    /// Delays as a real network and real people give them: a phone rings about 4 s (a
    /// little over one ring cycle) before it is picked up, the network gives up after 30 s,
    /// a person takes 2 s to press a key, a Contact ID receiver answers after 1 s and
    /// kisses off 250 ms after the last digit, an SMS gateway replies after 5 s.
    pub fn real() -> NetTiming {
        NetTiming {
            ring: Duration::from_secs(4),
            no_answer: Duration::from_secs(30),
            key_delay: Duration::from_secs(2),
            handshake_delay: Duration::from_secs(1),
            kissoff_delay: Duration::from_millis(250),
            reply_delay: Duration::from_secs(5),
            tones_take_time: true,
        }
    }

    /// Short delays for tests and the demo.
    pub fn fast() -> NetTiming {
        NetTiming {
            ring: Duration::from_millis(60),
            no_answer: Duration::from_millis(250),
            key_delay: Duration::from_millis(40),
            handshake_delay: Duration::from_millis(30),
            kissoff_delay: Duration::from_millis(20),
            reply_delay: Duration::from_millis(40),
            tones_take_time: false,
        }
    }
}

#[derive(Default)]
struct Inner {
    parties: HashMap<String, Party>,
    modems: HashMap<String, mpsc::UnboundedSender<ToModem>>,
    records: Vec<Record>,
    lose_sms: u32,
    next_call: u32,
    partial: HashMap<(String, String, u8), Vec<Option<String>>>,
    incoming: HashMap<u32, (String, mpsc::UnboundedSender<ToParty>)>,
}

/// The simulated network. Cheap to clone; all clones are the same network.
#[derive(Clone)]
pub struct Network {
    inner: Arc<Mutex<Inner>>,
    timing: NetTiming,
}

impl Network {
    /// An empty network.
    pub fn new(timing: NetTiming) -> Network {
        Network {
            inner: Arc::new(Mutex::new(Inner::default())),
            timing,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `party` at `number` (replacing any).
    pub fn add(&self, number: &str, party: Party) {
        self.lock().parties.insert(number.to_string(), party);
    }

    /// Attaches a modem with `number`; the receiver gets what the network sends it.
    pub fn attach(&self, number: &str) -> mpsc::UnboundedReceiver<ToModem> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().modems.insert(number.to_string(), tx);
        rx
    }

    /// The network loses the next `n` SMS parts.
    pub fn lose_next_sms(&self, n: u32) {
        self.lock().lose_sms = n;
    }

    /// Everything recorded so far.
    pub fn records(&self) -> Vec<Record> {
        self.lock().records.clone()
    }

    fn record(&self, r: Record) {
        tracing::debug!(record = ?r, "network");
        self.lock().records.push(r);
    }

    /// Sends an SMS to the modem with `modem` number, as if from `from`.
    pub fn sms_to_modem(&self, modem: &str, from: &str, text: &str) {
        let tx = self.lock().modems.get(modem).cloned();
        if let Some(tx) = tx {
            let _ = tx.send(ToModem::Sms {
                from: from.to_string(),
                text: text.to_string(),
            });
        }
    }

    /// Calls the modem with `modem` number from `from`; the caller hangs up after `give_up`.
    pub fn call_modem(&self, modem: &str, from: &str, give_up: Duration) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (call, modem_tx) = {
            let mut g = self.lock();
            g.next_call += 1;
            let call = g.next_call;
            g.incoming.insert(call, (from.to_string(), tx));
            (call, g.modems.get(modem).cloned())
        };
        let Some(modem_tx) = modem_tx else { return };
        let _ = modem_tx.send(ToModem::Incoming {
            call,
            from: from.to_string(),
        });
        let net = self.clone();
        let from = from.to_string();
        tokio::spawn(async move {
            let answered = tokio::time::timeout(give_up, async {
                while let Some(ev) = rx.recv().await {
                    if ev == ToParty::Answered {
                        return true;
                    }
                }
                false
            })
            .await
            .unwrap_or(false);
            if answered {
                net.record(Record::ModemAnswered { from });
            } else {
                let _ = modem_tx.send(ToModem::Progress {
                    call,
                    progress: Progress::Ended(EndCause::NoCarrier),
                });
            }
        });
    }

    /// The latest caller from `from` to `modem` hangs up: the modem hears `NO CARRIER`.
    pub fn caller_hangs_up(&self, modem: &str, from: &str) {
        let g = self.lock();
        let call = g
            .incoming
            .iter()
            .filter(|(_, (caller, _))| caller == from)
            .map(|(call, _)| *call)
            .max();
        if let (Some(call), Some(tx)) = (call, g.modems.get(modem)) {
            let _ = tx.send(ToModem::Progress {
                call,
                progress: Progress::Ended(EndCause::NoCarrier),
            });
        }
    }

    /// The modem tells the caller of incoming call `call` something (answer, hang-up).
    pub fn to_caller(&self, call: u32, ev: ToParty) {
        let g = self.lock();
        if let Some((_, tx)) = g.incoming.get(&call) {
            let _ = tx.send(ev);
        }
    }

    /// An SMS part submitted by modem `from`. Returns false if the network lost it.
    pub fn submit(&self, from: &str, to: &str, text: &str, concat: Option<Concat>) -> bool {
        let whole = {
            let mut g = self.lock();
            if g.lose_sms > 0 {
                g.lose_sms -= 1;
                drop(g);
                self.record(Record::SmsLost { to: to.to_string() });
                return false;
            }
            match concat {
                None => Some(text.to_string()),
                Some(c) => {
                    let key = (from.to_string(), to.to_string(), c.reference);
                    let parts = g
                        .partial
                        .entry(key.clone())
                        .or_insert_with(|| vec![None; usize::from(c.total)]);
                    if let Some(slot) = parts.get_mut(usize::from(c.seq).wrapping_sub(1)) {
                        *slot = Some(text.to_string());
                    }
                    if parts.iter().all(Option::is_some) {
                        let joined = parts.iter().flatten().cloned().collect::<String>();
                        g.partial.remove(&key);
                        Some(joined)
                    } else {
                        None
                    }
                }
            }
        };
        if let Some(text) = whole {
            self.record(Record::SmsDelivered {
                from: from.to_string(),
                to: to.to_string(),
                text: text.clone(),
            });
            let party = self.lock().parties.get(to).cloned();
            if let Some(Party::Responder(r)) = party {
                self.respond(r, from.to_string(), to.to_string(), text);
            }
        }
        true
    }

    fn respond(&self, r: Responder, modem: String, me: String, text: String) {
        // The gateway reads the reference line: `VIGIL1 REF=… UNIT=… … A=<attempt>`.
        let field = |name: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(str::to_string)
        };
        let (Some(reference), Some(unit), Some(attempt)) = (
            field("REF="),
            field("UNIT="),
            field("A=").and_then(|a| a.parse::<u32>().ok()),
        ) else {
            return;
        };
        let (secret, sender) = match &r.reply {
            Reply::Valid => (r.secret.clone(), me),
            Reply::Forged => (format!("{}-guess", r.secret), me),
            Reply::FromNumber(n) => (r.secret.clone(), n.clone()),
            Reply::Silent => return,
        };
        let reply = auth::ack_text(&secret, &unit, &reference, attempt);
        let net = self.clone();
        let delay = self.timing.reply_delay;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            net.record(Record::SmsReplied {
                from: sender.clone(),
                text: reply.clone(),
            });
            net.sms_to_modem(&modem, &sender, &reply);
        });
    }

    /// Modem `from` dials `to`. Returns the call id and the channel to the far end.
    pub fn dial(
        &self,
        to: &str,
        modem: mpsc::UnboundedSender<ToModem>,
    ) -> (u32, mpsc::UnboundedSender<ToParty>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (call, party) = {
            let mut g = self.lock();
            g.next_call += 1;
            (g.next_call, g.parties.get(to).cloned())
        };
        let far = FarEnd {
            net: self.clone(),
            call,
            number: to.to_string(),
            modem,
            rx,
            timing: self.timing,
        };
        tokio::spawn(far.run(party));
        (call, tx)
    }
}

/// One call's far end, running as a task.
struct FarEnd {
    net: Network,
    call: u32,
    number: String,
    modem: mpsc::UnboundedSender<ToModem>,
    rx: mpsc::UnboundedReceiver<ToParty>,
    timing: NetTiming,
}

impl FarEnd {
    fn progress(&self, p: Progress) {
        let _ = self.modem.send(ToModem::Progress {
            call: self.call,
            progress: p,
        });
    }

    /// Waits `d`; false if the modem hung up meanwhile.
    async fn wait(&mut self, d: Duration) -> bool {
        let sleep = tokio::time::sleep(d);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                ev = self.rx.recv() => match ev {
                    None | Some(ToParty::Hangup) => return false,
                    Some(_) => {}
                },
            }
        }
    }

    async fn run(mut self, party: Option<Party>) {
        let (answers, busy, drop_after) = match &party {
            Some(Party::Person(p)) => (
                matches!(p.pickup, Pickup::Answers | Pickup::Voicemail),
                p.pickup == Pickup::Busy,
                p.drop_after,
            ),
            Some(Party::Centre(c)) => (c.answers, false, c.drop_after),
            Some(Party::EchoLine) => (true, false, None),
            // No such subscriber, or an SMS-only number: the network ends the call.
            _ => {
                if self.wait(self.timing.key_delay).await {
                    self.progress(Progress::Ended(EndCause::NoCarrier));
                }
                return;
            }
        };
        if busy {
            if self.wait(self.timing.key_delay).await {
                self.progress(Progress::Ended(EndCause::Busy));
            }
            return;
        }
        self.progress(Progress::Alerting);
        if !answers {
            if self.wait(self.timing.no_answer).await {
                self.progress(Progress::Ended(EndCause::NoAnswer));
            }
            return;
        }
        if !self.wait(self.timing.ring).await {
            return;
        }
        self.progress(Progress::Active);
        self.net.record(Record::CallAnswered {
            to: self.number.clone(),
        });
        let drop_at = drop_after.map(|d| tokio::time::Instant::now() + d);
        let (modem, call) = (self.modem.clone(), self.call);
        let body = async {
            match party {
                Some(Party::Person(p)) => self.person(p).await,
                Some(Party::Centre(c)) => self.centre(c).await,
                Some(Party::EchoLine) => {
                    let _ = self.modem.send(ToModem::Echo { call: self.call });
                    while let Some(ev) = self.rx.recv().await {
                        if ev == ToParty::Hangup {
                            break;
                        }
                    }
                }
                _ => {}
            }
        };
        match drop_at {
            Some(at) => {
                tokio::select! {
                    () = body => {}
                    () = tokio::time::sleep_until(at) => {
                        let _ = modem.send(ToModem::Progress {
                            call,
                            progress: Progress::Ended(EndCause::NoCarrier),
                        });
                    }
                }
            }
            None => body.await,
        }
    }

    async fn person(&mut self, p: Person) {
        let mut pressed = false;
        while let Some(ev) = self.rx.recv().await {
            match ev {
                ToParty::Speech(text) => {
                    self.net.record(Record::Heard {
                        to: self.number.clone(),
                        text,
                    });
                    if p.pickup == Pickup::Answers && !pressed {
                        if let Some(key) = p.key {
                            pressed = true;
                            if !self.wait(self.timing.key_delay).await {
                                return;
                            }
                            self.net.record(Record::KeyPressed {
                                to: self.number.clone(),
                                key,
                            });
                            let _ = self.modem.send(ToModem::Dtmf {
                                call: self.call,
                                digit: key,
                            });
                        }
                    }
                }
                ToParty::Hangup => return,
                _ => {}
            }
        }
    }

    /// Plays `hz` for `ms` on the line; the modem hears it when it ends. False if the call ended.
    async fn tone(&mut self, hz: u16, ms: u32) -> bool {
        let _ = self.modem.send(ToModem::ToneStart {
            call: self.call,
            hz,
            ms,
        });
        if !self.tone_gap(ms).await {
            return false;
        }
        let _ = self.modem.send(ToModem::Tone {
            call: self.call,
            hz,
            ms,
        });
        true
    }

    /// Waits `ms` of line time when tones take time. False if the call ended.
    async fn tone_gap(&mut self, ms: u32) -> bool {
        if !self.timing.tones_take_time {
            return true;
        }
        self.wait(Duration::from_millis(u64::from(ms))).await
    }

    async fn centre(&mut self, c: CidCentre) {
        if c.handshake {
            if !self.wait(self.timing.handshake_delay).await {
                return;
            }
            // DC-05: 1400 Hz for 100 ms, 100 ms of silence, 2300 Hz for 100 ms.
            for hz in [1400, 2300] {
                if !self.tone(hz, 100).await || !self.tone_gap(100).await {
                    return;
                }
            }
        }
        let mut heard = String::new();
        let mut valid_count = 0u32;
        while let Some(ev) = self.rx.recv().await {
            match ev {
                ToParty::Dtmf(d) => heard.push_str(&d),
                ToParty::Hangup => return,
                _ => continue,
            }
            while heard.chars().count() >= 16 {
                let msg: String = heard.chars().take(16).collect();
                heard = heard.chars().skip(16).collect();
                let valid = crate::centre::contact_id::Message::from_dtmf(&msg).is_ok();
                self.net.record(Record::CidMessage {
                    to: self.number.clone(),
                    dtmf: msg,
                    valid,
                });
                if !valid {
                    continue;
                }
                valid_count += 1;
                let kiss = match c.kissoff {
                    Kissoff::Always => true,
                    Kissoff::Never => false,
                    Kissoff::FromAttempt(n) => valid_count >= n,
                };
                if kiss {
                    if !self.wait(self.timing.kissoff_delay).await {
                        return;
                    }
                    self.net.record(Record::Kissoff {
                        to: self.number.clone(),
                    });
                    if !self.tone(1400, c.kissoff_ms).await {
                        return;
                    }
                }
            }
        }
    }
}
