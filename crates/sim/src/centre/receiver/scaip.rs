//! A simulated SCAIP receiving centre on loopback: a SIP registrar with digest challenge
//! (401), optionally a proxy's challenge on MESSAGE (407), and an alarm handler that answers
//! each `<mrq>` with the `snu` it is told (or not at all) in a separate MESSAGE carrying
//! `<mrs>` to the device's registered contact — or through an outbound proxy such as Kamailio.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use super::ReceiverError;
use crate::centre::scaip::sip::{self, Incoming, SipNode};
use crate::centre::scaip::{self, xml, MessageType, Mrq, Mrs, ScaipBody};
use crate::config::SipTransport;
use crate::core::{AlarmCause, Timestamp};

/// How the receiver answers the next alarm `<mrq>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScaipAnswer {
    /// `snu` to answer; `None` = send no `<mrs>` at all.
    pub snu: Option<u16>,
    /// `mre`: ask for a voice call.
    pub mre: Option<u16>,
    /// `cre`: where to call.
    pub cre: Option<u16>,
    /// `tnu`: number to call.
    pub tnu: Option<String>,
    /// `hbi`: heartbeat interval in minutes.
    pub hbi: Option<u32>,
}

impl ScaipAnswer {
    /// Answer with this `snu` only.
    pub fn snu(snu: u16) -> ScaipAnswer {
        ScaipAnswer {
            snu: Some(snu),
            ..ScaipAnswer::default()
        }
    }

    /// Send no `<mrs>`.
    pub fn silent() -> ScaipAnswer {
        ScaipAnswer::default()
    }
}

/// Settings of the simulated SCAIP receiver.
#[derive(Clone, Debug)]
pub struct ScaipReceiverConfig {
    /// UDP or TCP.
    pub transport: SipTransport,
    /// Digest realm (also the host of our URI).
    pub realm: String,
    /// Devices allowed to register: user name and password.
    pub users: Vec<(String, String)>,
    /// User part of the receiver's URI (`arc` in `sip:arc@realm`).
    pub receiver_user: String,
    /// Challenge MESSAGE requests with 407 as an authenticating proxy does.
    pub challenge_messages: bool,
    /// Send `<mrs>` through this proxy to the device's address of record instead of to the
    /// contact registered here.
    pub outbound_proxy: Option<SocketAddr>,
    /// Print what an operator would see.
    pub print: bool,
}

/// One `<mrq>` as it arrived.
#[derive(Clone, Debug)]
pub struct ScaipReceived {
    /// From URI of the MESSAGE.
    pub from: String,
    /// How many Via headers the MESSAGE carried (1 = sent directly, more = through proxies).
    pub via_hops: usize,
    /// The request, if its body was valid.
    pub mrq: Option<Mrq>,
    /// What was wrong with the body.
    pub problem: Option<String>,
    /// The `snu` sent back in `<mrs>` (None = no `<mrs>`).
    pub answered: Option<u16>,
    /// Whether the `<mrs>` MESSAGE got a 2xx from the device.
    pub mrs_delivered: Option<bool>,
    /// The operator's line.
    pub display: String,
}

/// One accepted REGISTER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Address of record.
    pub aor: String,
    /// Registered contact URI.
    pub contact: String,
    /// Granted expiry in seconds.
    pub expires: u64,
}

#[derive(Default)]
struct State {
    script: VecDeque<ScaipAnswer>,
    default: ScaipAnswer,
    received: Vec<ScaipReceived>,
    registrations: Vec<Binding>,
    auth_failures: u32,
    bindings: HashMap<String, (String, SocketAddr)>,
    nonces: HashSet<String>,
    /// The clock of the operator's display, when a simulation moves time for the unit and
    /// the centre alike; the system clock otherwise.
    clock: Option<Arc<dyn crate::runtime::Clock>>,
    /// The operator who takes the unit's calls, if one is on duty.
    operator: Option<Operator>,
}

/// A simulated operator at the centre: takes the calls a unit places (its call-back after an
/// alarm), says `says` into each, keeps what it hears, and hangs up after `hang_up_after`.
#[derive(Clone)]
pub struct Operator {
    /// What the operator says, 8 kHz.
    pub says: Vec<i16>,
    /// How long each call lasts before the operator hangs up.
    pub hang_up_after: Duration,
    /// What the operator heard, call after call.
    pub heard: Arc<Mutex<Vec<i16>>>,
    /// Calls answered.
    pub answered: Arc<std::sync::atomic::AtomicU32>,
}

impl Operator {
    /// An operator saying `says` and hanging up after `hang_up_after`.
    pub fn new(says: Vec<i16>, hang_up_after: Duration) -> Operator {
        Operator {
            says,
            hang_up_after,
            heard: Arc::default(),
            answered: Arc::default(),
        }
    }
}

struct Shared {
    config: ScaipReceiverConfig,
    node: Arc<SipNode>,
    uri: String,
    tag: String,
    cseq: sip::CSeq,
    state: Mutex<State>,
    arrived: Notify,
}

/// A running simulated SCAIP receiver; stops when dropped.
pub struct ScaipReceiver {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for ScaipReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScaipReceiver {
    /// Starts on `127.0.0.1:0`; answers `snu=0` unless told otherwise.
    pub async fn start(config: ScaipReceiverConfig) -> Result<ScaipReceiver, ReceiverError> {
        ScaipReceiver::start_at(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on a given address (when a proxy must be told where we are beforehand).
    pub async fn start_at(
        config: ScaipReceiverConfig,
        bind: SocketAddr,
    ) -> Result<ScaipReceiver, ReceiverError> {
        let (node, incoming) = SipNode::bind(config.transport, bind)
            .await
            .map_err(|e| ReceiverError::Io(e.to_string()))?;
        Ok(ScaipReceiver::run(config, node, incoming))
    }

    /// Starts a SIP-over-TLS receiver on `127.0.0.1:0` with this certificate chain and
    /// PKCS#8 key (PEM). Answers go back over the connection the device registered on.
    #[cfg(feature = "tls")]
    pub async fn start_tls(
        mut config: ScaipReceiverConfig,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<ScaipReceiver, ReceiverError> {
        config.transport = SipTransport::Tls;
        let role =
            sip::tls_server(cert_pem, key_pem).map_err(|e| ReceiverError::Config(e.to_string()))?;
        let (node, incoming) = SipNode::bind_tls(SocketAddr::from(([127, 0, 0, 1], 0)), role)
            .await
            .map_err(|e| ReceiverError::Io(e.to_string()))?;
        Ok(ScaipReceiver::run(config, node, incoming))
    }

    fn run(
        config: ScaipReceiverConfig,
        node: Arc<SipNode>,
        incoming: mpsc::UnboundedReceiver<Incoming>,
    ) -> ScaipReceiver {
        let uri = format!("sip:{}@{}", config.receiver_user, config.realm);
        let shared = Arc::new(Shared {
            config,
            node,
            uri,
            tag: sip::random_token(10),
            cseq: sip::CSeq::default(),
            state: Mutex::new(State {
                default: ScaipAnswer::snu(0),
                ..State::default()
            }),
            arrived: Notify::new(),
        });
        let task = tokio::spawn(Arc::clone(&shared).serve(incoming));
        ScaipReceiver { shared, task }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.shared.node.local_addr()
    }

    /// The receiver's SIP URI (`sip:arc@realm`).
    pub fn uri(&self) -> &str {
        &self.shared.uri
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> Option<T> {
        self.shared.state.lock().ok().map(|mut s| f(&mut s))
    }

    /// Answer the next alarms like this, in order.
    pub fn script(&self, answers: Vec<ScaipAnswer>) {
        self.with(|s| s.script.extend(answers));
    }

    /// Shows times on the operator's display from `clock`: a simulated site that moves the
    /// unit's time forward moves the centre's with it, so both tell one time.
    pub fn set_clock(&self, clock: Arc<dyn crate::runtime::Clock>) {
        self.with(|s| s.clock = Some(clock));
    }

    /// Puts `operator` on duty: the unit's calls (INVITEs for any user in the centre's domain)
    /// are answered by them; without one they are refused (480).
    pub fn set_operator(&self, operator: Operator) {
        self.with(|s| s.operator = Some(operator));
    }

    /// Answer every alarm not covered by a script like this.
    pub fn set_default(&self, answer: ScaipAnswer) {
        self.with(|s| s.default = answer);
    }

    /// Loses every registration, as a registrar restart does.
    pub fn forget_bindings(&self) {
        self.with(|s| s.bindings.clear());
    }

    /// Makes the next `n` MESSAGE requests vanish before they reach us (a lossy network).
    pub fn lose_messages(&self, n: u32) {
        self.shared.node.lose_incoming("MESSAGE", n);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<ScaipReceived> {
        self.with(|s| s.received.clone()).unwrap_or_default()
    }

    /// Accepted REGISTERs (including refreshes), oldest first.
    pub fn registrations(&self) -> Vec<Binding> {
        self.with(|s| s.registrations.clone()).unwrap_or_default()
    }

    /// REGISTERs refused for wrong credentials.
    pub fn auth_failures(&self) -> u32 {
        self.with(|s| s.auth_failures).unwrap_or(0)
    }

    /// Waits until `pred` holds over the received list, or `limit` passes.
    pub async fn wait_until(
        &self,
        limit: Duration,
        pred: impl Fn(&[ScaipReceived], &[Binding]) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.shared.arrived.notified();
            let ok = self
                .with(|s| pred(&s.received, &s.registrations))
                .unwrap_or(false);
            if ok {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self
                    .with(|s| pred(&s.received, &s.registrations))
                    .unwrap_or(false);
            }
        }
    }
}

fn describe_stc(stc: u16) -> &'static str {
    match stc {
        10 => "manual alarm",
        9 => "automatic alarm",
        16 => "battery low",
        85 => "power failure",
        86 => "power restored",
        123 => "radio supervision lost",
        124 => "radio supervision restored",
        102 => "test",
        11 => "technical alarm",
        _ => AlarmCause::ALL
            .into_iter()
            .find(|c| scaip::status_code(*c) == stc)
            .map_or("unknown status", AlarmCause::describe),
    }
}

fn describe_dty(dty: u16) -> &'static str {
    match dty {
        1 => "unspecified device",
        2 => "base unit",
        3 => "personal pendant",
        4 => "fixed trigger",
        5 => "fall-detector pendant",
        _ => "device",
    }
}

impl Shared {
    fn state<T>(&self, f: impl FnOnce(&mut State) -> T) -> Option<T> {
        self.state.lock().ok().map(|mut s| f(&mut s))
    }

    fn new_challenge(&self, header: &str) -> String {
        let nonce = sip::random_token(24);
        self.state(|s| {
            if s.nonces.len() > 256 {
                s.nonces.clear();
            }
            s.nonces.insert(nonce.clone());
        });
        format!(
            "{header}: Digest realm=\"{}\", nonce=\"{nonce}\", qop=\"auth\", algorithm=MD5",
            self.config.realm
        )
    }

    /// Whether `value` (an Authorization header) proves one of our users.
    fn authorized(&self, value: Option<&str>, method: &str) -> bool {
        let Some(value) = value else {
            return false;
        };
        let (_, p) = sip::auth_params(value);
        let (Some(user), Some(nonce)) = (p.get("username"), p.get("nonce")) else {
            return false;
        };
        let known = self.state(|s| s.nonces.contains(nonce)).unwrap_or(false);
        known
            && self.config.users.iter().any(|(u, pw)| {
                u == user
                    && sip::verify_authorization(value, method, &self.config.realm, nonce, u, pw)
            })
    }

    async fn serve(self: Arc<Self>, mut incoming: mpsc::UnboundedReceiver<Incoming>) {
        while let Some(req) = incoming.recv().await {
            let method = req.msg.method().unwrap_or_default();
            match method.as_str() {
                "REGISTER" => self.on_register(req).await,
                "MESSAGE" => {
                    let me = Arc::clone(&self);
                    tokio::spawn(async move { me.on_message(req).await });
                }
                "OPTIONS" => {
                    let _ = self.node.respond(&req, 200, "OK", &self.tag, &[]).await;
                }
                "INVITE" => {
                    let me = Arc::clone(&self);
                    tokio::spawn(async move { me.on_invite(req).await });
                }
                // The unit's ACK needs no answer; its BYE ends the call on its side, and the
                // operator's end stops when the operator hangs up.
                "ACK" => {}
                "BYE" => {
                    let _ = self.node.respond(&req, 200, "OK", &self.tag, &[]).await;
                }
                _ => {
                    let _ = self
                        .node
                        .respond(&req, 405, "Method Not Allowed", &self.tag, &[])
                        .await;
                }
            }
        }
    }

    /// The unit calls the centre: the operator on duty answers (after a proxy challenge, as
    /// for its MESSAGEs), talks, and hangs up.
    async fn on_invite(&self, req: Incoming) {
        use crate::voice::{g711::Law, media::Media, sdp};
        let Some(operator) = self.state(|s| s.operator.clone()).flatten() else {
            let _ = self
                .node
                .respond(&req, 480, "Temporarily Unavailable", &self.tag, &[])
                .await;
            return;
        };
        if self.challenged(&req, "INVITE").await {
            return;
        }
        let agreed = std::str::from_utf8(req.msg.body())
            .map_err(|_| sdp::SdpError::Malformed { line: 0 })
            .and_then(sdp::parse_offer)
            .and_then(|o| sdp::negotiate(&o, &[Law::Alaw, Law::Ulaw]));
        let agreed = match agreed {
            Ok(a) => a,
            Err(e) => {
                let _ = self
                    .node
                    .respond(&req, 488, "Not Acceptable Here", &self.tag, &[])
                    .await;
                tracing::warn!(error = %e, "centre: the unit's call offer is unusable");
                return;
            }
        };
        let Ok(media) = Media::bind(self.node.local_addr().ip()).await else {
            let _ = self
                .node
                .respond(&req, 500, "Server Internal Error", &self.tag, &[])
                .await;
            return;
        };
        let answer = sdp::write_answer(&agreed, media.local(), 1, 1);
        let contact = format!("Contact: <sip:operator@{}>", self.node.local_addr());
        if self
            .node
            .respond_with_body(
                &req,
                200,
                "OK",
                &self.tag,
                &[contact],
                Some(("application/sdp", &answer)),
            )
            .await
            .is_err()
        {
            return;
        }
        operator
            .answered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (port, heard) = crate::voice::sim_call::SimCallPort::new(operator.says.clone());
        let (_agreed_tx, agreed_rx) = tokio::sync::watch::channel(agreed);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (keys, _keys) = mpsc::unbounded_channel();
        let call = tokio::spawn(media.run(agreed_rx, Box::new(port), stop_rx, keys));
        tokio::time::sleep(operator.hang_up_after).await;
        // The operator hangs up: BYE to the unit's contact, in the unit's dialog.
        let target = req
            .msg
            .header("contact")
            .map(sip::addr_uri)
            .unwrap_or_default();
        let (from, to, call_id) = (
            req.msg.header("to").unwrap_or_default().to_string(),
            req.msg.header("from").unwrap_or_default().to_string(),
            req.msg.header("call-id").unwrap_or_default().to_string(),
        );
        let (transport, via_host, tag) = (
            self.node.transport_name(),
            self.node.local_addr(),
            self.tag.clone(),
        );
        let build = |branch: &str| {
            format!(
                "BYE {target} SIP/2.0\r\nVia: SIP/2.0/{transport} {via_host};branch={branch};rport\r\n\
                 Max-Forwards: 70\r\nFrom: {from};tag={tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
                 CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let _ = self
            .node
            .transaction(req.peer, &build, Duration::from_secs(8))
            .await;
        stop_tx.send_replace(true);
        let _ = call.await;
        let heard = heard.lock().map(|h| h.clone()).unwrap_or_default();
        let mut all = operator
            .heard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.extend(heard);
    }

    async fn on_register(&self, req: Incoming) {
        let auth = req.msg.header("authorization").map(str::to_string);
        if !self.authorized(auth.as_deref(), "REGISTER") {
            if auth.is_some() {
                self.state(|s| s.auth_failures += 1);
            }
            let challenge = self.new_challenge("WWW-Authenticate");
            let _ = self
                .node
                .respond(&req, 401, "Unauthorized", &self.tag, &[challenge])
                .await;
            self.arrived.notify_waiters();
            return;
        }
        let aor = req
            .msg
            .header("to")
            .map(|t| sip::aor(&sip::addr_uri(t)))
            .unwrap_or_default();
        // Every Contact (RFC 3261 §10.3): each with its own expires, else the request's.
        let default_expires = req
            .msg
            .header("expires")
            .and_then(|e| e.trim().parse::<u64>().ok())
            .unwrap_or(3600);
        let contacts: Vec<(String, u64)> = req
            .msg
            .headers("contact")
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(|c| {
                let expires = sip::param(c, "expires")
                    .and_then(|e| e.trim().parse::<u64>().ok())
                    .unwrap_or(default_expires)
                    .min(3600);
                (sip::addr_uri(c), expires)
            })
            .collect();
        if contacts.is_empty() {
            // A query (RFC 3261 §10.2.3): the current bindings, nothing changed.
            let bound = self
                .state(|s| s.bindings.get(&aor).map(|(c, _)| c.clone()))
                .flatten();
            let extra: Vec<String> = bound
                .into_iter()
                .map(|c| format!("Contact: <{c}>;expires=3600"))
                .collect();
            let _ = self.node.respond(&req, 200, "OK", &self.tag, &extra).await;
            return;
        }
        let (contact, expires) = contacts.first().cloned().unwrap_or_default();
        // Over TCP and TLS the device is reached on the connection it registered on (RFC 5626
        // style flow): a device accepts requests only there.
        let target_of = |contact: &str| {
            if matches!(self.config.transport, SipTransport::Tls | SipTransport::Tcp) {
                req.peer
            } else {
                contact_addr(contact).unwrap_or(req.peer)
            }
        };
        self.state(|s| {
            for (c, e) in &contacts {
                if *e == 0 {
                    if s.bindings.get(&aor).is_some_and(|(bound, _)| bound == c) {
                        s.bindings.remove(&aor);
                    }
                } else {
                    s.bindings.insert(aor.clone(), (c.clone(), target_of(c)));
                }
                s.registrations.push(Binding {
                    aor: aor.clone(),
                    contact: c.clone(),
                    expires: *e,
                });
            }
        });
        let extra = [format!("Contact: <{contact}>;expires={expires}")];
        let _ = self.node.respond(&req, 200, "OK", &self.tag, &extra).await;
        if self.config.print {
            println!(
                "[SCAIP {}] {aor} registered at {contact} for {expires} s",
                self.uri
            );
        }
        self.arrived.notify_waiters();
    }

    /// Whether `req` (a `method` request from a unit) was turned away with a proxy challenge
    /// (407), as a centre's proxy does until the unit proves its credentials.
    async fn challenged(&self, req: &Incoming, method: &str) -> bool {
        if !self.config.challenge_messages
            || self.authorized(req.msg.header("proxy-authorization"), method)
        {
            return false;
        }
        let challenge = self.new_challenge("Proxy-Authenticate");
        let _ = self
            .node
            .respond(
                req,
                407,
                "Proxy Authentication Required",
                &self.tag,
                &[challenge],
            )
            .await;
        true
    }

    async fn on_message(&self, req: Incoming) {
        if self.challenged(&req, "MESSAGE").await {
            return;
        }
        let ruri = req.msg.request_uri().unwrap_or_default();
        if sip::aor(&ruri).split('@').next() != Some(self.config.receiver_user.as_str()) {
            let _ = self
                .node
                .respond(&req, 404, "Not Found", &self.tag, &[])
                .await;
            return;
        }
        let from = req
            .msg
            .header("from")
            .map(sip::addr_uri)
            .unwrap_or_default();
        // As registrar, serve only devices with a binding: a device the registrar lost (a
        // restart) hears 404 and must register again before its <mrs> can reach it.
        if self.config.outbound_proxy.is_none()
            && self
                .state(|s| !s.bindings.contains_key(&sip::aor(&from)))
                .unwrap_or(true)
        {
            let _ = self
                .node
                .respond(&req, 404, "Not Found", &self.tag, &[])
                .await;
            return;
        }
        let content_type = req
            .msg
            .header("content-type")
            .unwrap_or("")
            .to_ascii_lowercase();
        if !content_type.starts_with(xml::CONTENT_TYPE) {
            let _ = self
                .node
                .respond(&req, 415, "Unsupported Media Type", &self.tag, &[])
                .await;
            return;
        }
        let _ = self.node.respond(&req, 200, "OK", &self.tag, &[]).await;
        let mut record = ScaipReceived {
            from: from.clone(),
            via_hops: req.msg.headers("via").len(),
            mrq: None,
            problem: None,
            answered: None,
            mrs_delivered: None,
            display: String::new(),
        };
        let parsed = table1::check(req.msg.body())
            .and_then(|()| xml::parse(req.msg.body()).map_err(Into::into));
        let reply = match parsed {
            Ok(ScaipBody::Request(mrq)) => {
                let answer = match mrq.mty {
                    Some(MessageType::Reset) => ScaipAnswer::silent(),
                    Some(MessageType::Ping) => {
                        let hbi = self.state(|s| s.default.hbi).flatten();
                        ScaipAnswer {
                            hbi,
                            ..ScaipAnswer::snu(0)
                        }
                    }
                    _ => self
                        .state(|s| s.script.pop_front().unwrap_or_else(|| s.default.clone()))
                        .unwrap_or_else(|| ScaipAnswer::snu(0)),
                };
                record.mrq = Some(mrq.clone());
                answer.snu.map(|snu| Mrs {
                    reference: mrq.reference.clone(),
                    snu,
                    mre: answer.mre,
                    cre: answer.cre,
                    tnu: answer.tnu.clone(),
                    hbi: answer.hbi,
                })
            }
            Ok(ScaipBody::Response(_)) => {
                record.problem = Some("an <mrs> sent to the receiver".into());
                None
            }
            Err(e) => {
                record.problem = Some(e.to_string());
                // Answer the error with its snu if the ref can be found.
                let snu = match &e {
                    scaip::ScaipError::Invalid { snu, .. } => *snu,
                    _ => 3,
                };
                let text = String::from_utf8_lossy(req.msg.body()).to_string();
                text.split("<ref>")
                    .nth(1)
                    .and_then(|r| r.split("</ref>").next())
                    .filter(|r| xml::valid_ref(r))
                    .map(|r| Mrs {
                        reference: r.to_string(),
                        snu,
                        ..Mrs::default()
                    })
            }
        };
        record.answered = reply.as_ref().map(|m| m.snu);
        record.display = self.display(&record);
        if self.config.print {
            println!("{}", record.display);
        }
        // Recorded before the <mrs> goes out: the device may act on it at once.
        let index = self
            .state(|s| {
                s.received.push(record);
                s.received.len() - 1
            })
            .unwrap_or(0);
        self.arrived.notify_waiters();
        if let Some(mrs) = &reply {
            let delivered = self.send_mrs(&from, mrs).await;
            self.state(|s| {
                if let Some(r) = s.received.get_mut(index) {
                    r.mrs_delivered = Some(delivered);
                }
            });
            self.arrived.notify_waiters();
        }
    }

    /// Sends `<mrs>` in its own MESSAGE to the device's contact (or through the proxy).
    async fn send_mrs(&self, device: &str, mrs: &Mrs) -> bool {
        let aor = sip::aor(device);
        let (ruri, peer) = match self.config.outbound_proxy {
            Some(proxy) => (format!("sip:{aor}"), proxy),
            None => {
                let Some((contact, addr)) = self.state(|s| s.bindings.get(&aor).cloned()).flatten()
                else {
                    tracing::warn!(device = %aor, "SCAIP receiver: device not registered, cannot send mrs");
                    return false;
                };
                (contact, addr)
            }
        };
        let body = mrs.emit();
        let call_id = format!("{}@centre", sip::random_token(16));
        let cseq = self.cseq.next();
        let transport = self.node.transport_name();
        let via_host = self.node.local_addr();
        let build = |branch: &str| {
            format!(
                "MESSAGE {ruri} SIP/2.0\r\nVia: SIP/2.0/{transport} {via_host};branch={branch};rport\r\nMax-Forwards: 70\r\n\
                 From: <{}>;tag={}\r\nTo: <sip:{aor}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} MESSAGE\r\n\
                 Content-Type: {}\r\nContent-Length: {}\r\n\r\n{body}",
                self.uri,
                self.tag,
                xml::CONTENT_TYPE,
                body.len()
            )
        };
        match self
            .node
            .transaction(peer, &build, Duration::from_secs(8))
            .await
        {
            Ok(resp) => resp.status().is_some_and(|s| (200..300).contains(&s)),
            Err(e) => {
                tracing::warn!(device = %aor, error = %e, "SCAIP receiver: mrs not delivered");
                false
            }
        }
    }

    fn display(&self, r: &ScaipReceived) -> String {
        let now = self
            .state(|s| s.clock.as_ref().map(|c| c.wall()))
            .flatten()
            .unwrap_or_else(Timestamp::now);
        let answered = match r.answered {
            Some(snu) => format!("mrs snu={snu} ({})", xml::snu_meaning(snu)),
            None => "no mrs".into(),
        };
        let Some(m) = &r.mrq else {
            return format!(
                "[SCAIP {}] {now} from {}: invalid request: {} -> {answered}",
                self.uri,
                r.from,
                r.problem.as_deref().unwrap_or("?")
            );
        };
        let kind = m.mty.map_or("ME", MessageType::as_str);
        if m.mty == Some(MessageType::Reset) {
            return format!(
                "[SCAIP {}] {now} unit {}: reset (RE) of ref {}",
                self.uri, m.cid, m.reference
            );
        }
        if m.mty == Some(MessageType::Ping) {
            return format!(
                "[SCAIP {}] {now} unit {}: heartbeat -> {answered}",
                self.uri, m.cid
            );
        }
        let stc = m.stc.map_or("no status".to_string(), |s| {
            format!("{s:04} {}", describe_stc(s))
        });
        // The device as the operator knows it: its type, its id and where it is.
        let device = match m.did.as_deref() {
            Some(d) => format!(" from {} {d}", describe_dty(m.dty)),
            None => format!(" from the {}", describe_dty(m.dty)),
        };
        // Annex D's code as a centre's screen names it: the room, then the code.
        let code = m.lco.map(|c| match scaip::LocationCode::name(c) {
            Some(name) => format!("{name}, location code {c:03}"),
            None => format!("location code {c:03}"),
        });
        let location = match (&m.lte, code) {
            (Some(v), Some(c)) => format!(" at \"{v}\" ({c})"),
            (Some(v), None) => format!(" at \"{v}\""),
            (None, Some(c)) => format!(" at {c}"),
            (None, None) => String::new(),
        };
        let alarm = m
            .stt
            .as_deref()
            .map_or(String::new(), |r| format!(", alarm {r}"));
        let info = m
            .ite
            .as_deref()
            .map_or(String::new(), |i| format!(" [{i}]"));
        format!(
            "[SCAIP {}] {now} unit {}: {kind} {stc}{device}{location}{info}{alarm} (session {}) -> {answered}",
            self.uri, m.cid, m.reference
        )
    }
}

/// `host:port` of a contact URI, if it is an IP address.
fn contact_addr(contact: &str) -> Option<SocketAddr> {
    let u = contact.strip_prefix("sip:")?;
    let u = u.split(';').next()?;
    let hostport = u.rsplit('@').next()?;
    hostport
        .parse()
        .ok()
        .or_else(|| format!("{hostport}:5060").parse().ok())
}

/// The receiver's own reading of SS 91100:2014 Table 1 (element lengths and characters),
/// Annex A (`dty`), Annex C (`stc`) and Annex D (`lco`): it refuses what a strict centre
/// refuses, with the standard's error `snu`, whatever the unit's code believes.
mod table1 {
    use crate::centre::scaip::{xml, ScaipError};

    /// Annex A device types the centre knows (900–999 are agreed with the centre).
    const DTY: &[u16] = &[2, 3, 4, 5];
    /// Annex C status codes the centre knows.
    const STC: &[u16] = &[9, 10, 14, 16, 85, 86, 95, 102, 103, 122, 123, 124, 125];
    /// Annex D location codes the centre knows (090–099 are agreed with the centre).
    const LCO: &[u16] = &[0, 1, 2, 11, 12, 21, 25, 42, 43];

    fn err(snu: u16, what: String) -> ScaipError {
        ScaipError::Invalid { snu, what }
    }

    fn digits(name: &str, v: &str, max: usize) -> Result<u16, ScaipError> {
        if v.chars().count() > max {
            return Err(err(1, format!("<{name}> longer than {max}: `{v}`")));
        }
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(2, format!("<{name}> must be 1-{max} digits: `{v}`")));
        }
        v.parse().map_err(|_| err(2, format!("<{name}> `{v}`")))
    }

    fn text(name: &str, v: &str, max: usize, printable_ascii: bool) -> Result<(), ScaipError> {
        if v.chars().count() > max {
            return Err(err(1, format!("<{name}> longer than {max}")));
        }
        if v.is_empty() || (printable_ascii && !v.bytes().all(|b| (0x20..0x7f).contains(&b))) {
            return Err(err(
                2,
                format!("<{name}> must be 1-{max} characters: `{v}`"),
            ));
        }
        Ok(())
    }

    fn in_table(
        name: &str,
        v: u16,
        table: &[u16],
        agreed: std::ops::RangeInclusive<u16>,
    ) -> Result<(), ScaipError> {
        if table.contains(&v) || agreed.contains(&v) {
            Ok(())
        } else {
            Err(err(3, format!("<{name}> {v:04} is in no code table")))
        }
    }

    /// Checks an `<mrq>` element by element; `<mrs>` and unreadable bodies are left to the
    /// parser.
    pub fn check(body: &[u8]) -> Result<(), ScaipError> {
        let Ok((root, fields)) = xml::elements(body) else {
            return Ok(());
        };
        if root != "mrq" {
            return Ok(());
        }
        let has = |n: &str| fields.iter().any(|(k, _)| k == n);
        if !has("ref") {
            return Err(err(10, "<ref> missing".into()));
        }
        for tag in ["cid", "dty"] {
            if !has(tag) {
                return Err(err(7, format!("<{tag}> missing")));
            }
        }
        for (name, v) in &fields {
            match name.as_str() {
                "ref" => {
                    if v.len() > 16 {
                        return Err(err(1, "<ref> longer than 16".into()));
                    }
                    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
                        return Err(err(2, format!("<ref> `{v}`")));
                    }
                }
                "mty" if !["ME", "RE", "IN", "PI"].contains(&v.as_str()) => {
                    return Err(err(3, format!("<mty> `{v}`")));
                }
                "cid" => {
                    if v.len() > 32 {
                        return Err(err(1, "<cid> longer than 32".into()));
                    }
                    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(err(2, format!("<cid> `{v}`")));
                    }
                }
                "dty" => in_table("dty", digits("dty", v, 4)?, DTY, 900..=999)?,
                "stc" => in_table("stc", digits("stc", v, 4)?, STC, 900..=999)?,
                "lco" => in_table("lco", digits("lco", v, 3)?, LCO, 90..=99)?,
                "dco" | "ico" | "hbo" => {
                    digits(name, v, 3)?;
                }
                "ame" => {
                    digits(name, v, 4)?;
                }
                "pri" => {
                    digits(name, v, 1)?;
                }
                "did" => text(name, v, 16, true)?,
                "lva" => text(name, v, 2, true)?,
                "dte" | "stt" | "lte" => text(name, v, 32, false)?,
                "ite" => text(name, v, 128, false)?,
                "crd" => {
                    text(name, v, 256, false)?;
                    if !["no-voice:", "gsm:", "sip:", "sip-pp:"]
                        .iter()
                        .any(|s| v.starts_with(s))
                    {
                        return Err(err(3, format!("<crd> scheme of `{v}`")));
                    }
                }
                "ver" => {
                    let b = v.as_bytes();
                    let ok = b.len() == 5
                        && b.get(2) == Some(&b'.')
                        && b.iter()
                            .enumerate()
                            .all(|(i, c)| i == 2 || c.is_ascii_digit());
                    if !ok {
                        return Err(err(2, format!("<ver> `{v}`")));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn snu(body: &str) -> Option<u16> {
            match check(body.as_bytes()) {
                Ok(()) => None,
                Err(ScaipError::Invalid { snu, .. }) => Some(snu),
                Err(e) => panic!("{e}"),
            }
        }

        const GOOD: &str = "<mrq><ref>Ab1</ref><cid>4612345</cid><dty>0003</dty><stc>0010</stc>\
                            <lco>011</lco><lte>Bathroom</lte><crd>no-voice:</crd></mrq>";

        #[test]
        fn a_table1_request_passes() {
            assert_eq!(snu(GOOD), None);
        }

        /// What the unit used to send: a 4-digit Contact ID zone in `lco`, a name in `lva`,
        /// tamper as 0011, its own reports as dty 0001.
        #[test]
        fn the_old_content_is_refused_with_the_standard_snu() {
            assert_eq!(
                snu(&GOOD.replace("<lco>011</lco>", "<lco>0001</lco>")),
                Some(1)
            );
            assert_eq!(
                snu(&GOOD.replace("<lte>Bathroom</lte>", "<lva>Bedroom</lva>")),
                Some(1)
            );
            assert_eq!(snu(&GOOD.replace("0010", "0011")), Some(3));
            assert_eq!(snu(&GOOD.replace("0003", "0001")), Some(3));
            assert_eq!(
                snu(&GOOD.replace("<lco>011</lco>", "<lco>044</lco>")),
                Some(3)
            );
            assert_eq!(snu(&GOOD.replace("no-voice:", "tel:+4670")), Some(3));
            assert_eq!(
                snu(&GOOD.replace("<ref>Ab1</ref>", "<ref>A-1</ref>")),
                Some(2)
            );
            assert_eq!(snu(&GOOD.replace("<ref>Ab1</ref>", "")), Some(10));
            assert_eq!(snu(&GOOD.replace("<dty>0003</dty>", "")), Some(7));
            assert_eq!(
                snu(&GOOD.replace("<stc>0010</stc>", "<stc>10a</stc>")),
                Some(2)
            );
        }
    }
}
