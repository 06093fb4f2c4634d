//! SCAIP (SS 91100, CLC/TS 50134-9) over SIP: REGISTER, MESSAGE with `<mrq>`, `<mrs>` answers.
//!
//! The unit REGISTERs with digest authentication and keeps the registration fresh. Each alarm
//! goes out as a SIP MESSAGE (RFC 3428) carrying `application/scaip+xml` `<mrq>`; the SIP
//! `200` only says the request arrived. The receiver's verdict comes back as a separate
//! MESSAGE with `<mrs>` to our registered contact, matched by `ref`: `snu` 0 is the only
//! acknowledgement; 4 asks to resend later (hold); 5 and 6 end the session (next route);
//! anything else is an error. Without an `<mrs>` in time the unit sends `mty=RE` with the same
//! `ref` and the core moves on. Heartbeats (`mty=PI`) run at the configured interval unless
//! the centre set another with `hbi`.

pub mod call;
pub mod session;
pub mod sip;
/// SCAIP bodies (SS 91100).
pub use vigil_wire::scaip as xml;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{Credentials, ScaipRoute, Secret, SipTransport, Unit};
use crate::core::{
    Alarm, AlarmCause, AlarmClass, AlarmId, Delivery, DeliveryResult, DeviceKind, UnitFault,
};
use crate::sync::lock;
use session::{after_exchange, CallBack, ExchangeError, Step};
use sip::{CSeq, Challenge, Flow, Incoming, SipMsg, SipNode};
pub use xml::{MessageType, Mrq, Mrs, ScaipBody};

/// What can go wrong on a SCAIP route.
#[derive(Debug, thiserror::Error)]
pub enum ScaipError {
    /// A SCAIP body that breaks SS 91100; `snu` is what a receiver answers.
    #[error("invalid SCAIP body (snu {snu}): {what}")]
    Invalid {
        /// The SCAIP status number for this error.
        snu: u16,
        /// What is wrong.
        what: String,
    },
    /// A SIP message we cannot use.
    #[error("SIP: {0}")]
    Sip(String),
    /// A call the unit may not place ([`ScaipLink::may_call`]).
    #[error("SIP: {0}")]
    Refused(#[from] CallRefused),
    /// A call the unit places that did not get going.
    #[error("SIP: {0}")]
    CallSetup(#[from] call::CallSetupError),
    /// Sockets.
    #[error("network: {0}")]
    Io(String),
    /// No final SIP response.
    #[error("no SIP response within {0:?}")]
    NoResponse(Duration),
    /// Digest authentication failed.
    #[error("authentication: {0}")]
    Auth(String),
    /// A final SIP error response.
    #[error("{status} {reason}")]
    Rejected {
        /// SIP status code.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
}

/// Why the unit will not call an address: a call opens the home's microphone, so it calls
/// only plain `sip:` addresses in the centre's own domain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallRefused {
    /// Not a `sip:` URI (`sips:`, `tel:`…).
    #[error("`{0}` is not a sip: URI")]
    NotSip(String),
    /// Characters a SIP address may not have (a header smuggled in, a display name).
    #[error("the call-back URI has characters a SIP address may not")]
    Characters,
    /// An address outside the domain of the unit's own address of record.
    #[error("`{target}` is outside the centre's domain `{domain}`: not called")]
    OutsideDomain {
        /// The address asked for.
        target: String,
        /// The centre's domain.
        domain: String,
    },
}

impl From<vigil_wire::scaip::InvalidBody> for ScaipError {
    fn from(e: vigil_wire::scaip::InvalidBody) -> ScaipError {
        ScaipError::Invalid {
            snu: e.snu,
            what: e.what,
        }
    }
}

impl From<vigil_wire::sip::SipError> for ScaipError {
    fn from(e: vigil_wire::sip::SipError) -> ScaipError {
        match e {
            vigil_wire::sip::SipError::Message(m) => ScaipError::Sip(m),
            vigil_wire::sip::SipError::Auth(m) => ScaipError::Auth(m),
        }
    }
}

/// The SCAIP status code (`stc`) for each alarm cause, from SS 91100:2014 Annex C.
///
/// The match is exhaustive: a cause added to the core does not compile until it has a code.
/// Annex C has no "interference ended" code; the end of jamming is reported as the radio
/// link re-established (0124), the restore of radio supervision.
pub fn status_code(cause: AlarmCause) -> u16 {
    match cause {
        AlarmCause::Help => 10, // 0010 alarm, manual
        AlarmCause::Fall => 9,  // 0009 alarm, automatic
        // The pendant's heartbeat says a press or fall was sent: an alarm, whichever it was.
        AlarmCause::AlarmNotReceived => 10, // 0010 alarm, manual
        AlarmCause::PendantMissing => 123,  // 0123 radio test transmission missing
        AlarmCause::Jamming => 122,         // 0122 radio interference
        AlarmCause::PendantRestored | AlarmCause::JammingEnded => 124, // 0124 re-established
        AlarmCause::PendantBatteryLow | AlarmCause::BaseBatteryLow => 16, // 0016 battery low
        AlarmCause::Tamper => 125,          // 0125 tamper alarm
        AlarmCause::MainsLost => 85,        // 0085 mains failure
        AlarmCause::MainsRestored => 86,    // 0086 mains restored
        AlarmCause::PeriodicTest | AlarmCause::ManualTest => 102, // 0102 test, primary channel
        // Unit faults have no code of their own in Annex C: they use the range reserved for
        // codes agreed with the centre (0900–0999), a fault odd, its restore even.
        AlarmCause::Fault(f) => 901 + 2 * fault_index(f),
        AlarmCause::FaultCleared(f) => 902 + 2 * fault_index(f),
    }
}

/// The fault's place in [`UnitFault::ALL`], which fixes its agreed status codes.
fn fault_index(fault: UnitFault) -> u16 {
    UnitFault::ALL
        .iter()
        .position(|f| *f == fault)
        .map_or(0, |i| i as u16)
}

/// Annex A device type of the base unit itself: "local unit & controller".
pub const DTY_LOCAL_UNIT: u16 = 2;

/// The SCAIP device type (`dty`, SS 91100:2014 Annex A): 0003 personal trigger, 0004 fixed
/// trigger, 0005 fall detector; 0002 local unit & controller for the unit's own reports.
pub fn device_type(alarm: &Alarm) -> u16 {
    if alarm.cause == AlarmCause::Fall {
        return 5;
    }
    match alarm.device.as_ref().map(|d| d.kind) {
        Some(DeviceKind::Personal) => 3,
        Some(DeviceKind::Fall) => 5,
        Some(DeviceKind::Fixed) => 4,
        None => DTY_LOCAL_UNIT,
    }
}

/// A location code (`lco`) from SS 91100:2014 Annex D, 0–999, sent as three digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocationCode(u16);

/// Annex D location names the unit knows, with their codes.
const ANNEX_D: &[(&str, u16)] = &[
    ("unknown", 0),
    ("undefined", 1),
    ("home", 2),
    ("bathroom", 11),
    ("wc", 11),
    ("toilet", 11),
    ("bedroom", 12),
    ("kitchen", 21),
    ("stairs", 25),
    ("hallway", 42),
    ("hall", 42),
    ("living room", 43),
    ("livingroom", 43),
    ("living_room", 43),
];

impl LocationCode {
    /// 000: location unknown.
    pub const UNKNOWN: LocationCode = LocationCode(0);

    /// The code for an Annex D name (`bathroom`, `living room`, …, any case) or a number
    /// 0–999 written as digits.
    pub fn parse(s: &str) -> Option<LocationCode> {
        let t = s.trim();
        if !t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit()) {
            return t.parse().ok().map(LocationCode);
        }
        let lower = t.to_lowercase();
        ANNEX_D
            .iter()
            .find(|(name, _)| *name == lower)
            .map(|(_, c)| LocationCode(*c))
    }

    /// The code as a number.
    pub fn code(self) -> u16 {
        self.0
    }

    /// The Annex D name of a code the unit knows (`bathroom` for 011), for display.
    pub fn name(code: u16) -> Option<&'static str> {
        ANNEX_D.iter().find(|(_, c)| *c == code).map(|(n, _)| *n)
    }
}

/// The free location text for `<lte>`: at most 32 characters (Table 1), cut on a character
/// boundary; `None` when empty.
pub fn location_text(s: &str) -> Option<String> {
    let t: String = s
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(32)
        .collect();
    let t = t.trim_end().to_string();
    (!t.is_empty()).then_some(t)
}

/// What `crd` offers the centre when the unit cannot speak in a SIP call (no call audio).
pub const NO_VOICE: &str = "no-voice:";

/// The `<mrq>` for an alarm under session reference `reference`; `crd` says how the centre
/// may reach the unit by voice (the unit's SIP address, or `no-voice:`).
pub fn alarm_request(alarm: &Alarm, reference: &str, cid: &str, crd: &str) -> Mrq {
    Mrq {
        reference: reference.to_string(),
        cid: cid.to_string(),
        dty: device_type(alarm),
        mty: Some(MessageType::Message),
        stc: Some(status_code(alarm.cause)),
        // The alarm's own reference, which DC-09 and SMS carry too, so the centre can tie the
        // sessions of one alarm together; the session `ref` stays random.
        stt: Some(alarm.reference.as_str().to_string()),
        // What the pendant's fall detector measured, in Table 1's free information text.
        ite: alarm
            .evidence
            .map(|e| format!("fall detector: {}", e.ascii())),
        pri: Some(match alarm.class() {
            AlarmClass::Personal => 1,
            AlarmClass::Technical => 3,
            AlarmClass::Test => 5,
        }),
        lco: alarm.device.as_ref().map(|d| {
            LocationCode::parse(&d.location)
                .unwrap_or(LocationCode::UNKNOWN)
                .code()
        }),
        lva: None,
        lte: alarm
            .device
            .as_ref()
            .and_then(|d| location_text(&d.location)),
        crd: Some(crd.to_string()),
        did: alarm.device.as_ref().map(|d| d.id.to_string()),
    }
}

/// Characters a SCAIP `ref` may hold (SS 91100 Table 1: A–Z a–z 0–9).
const REF_ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Length of the session references the unit makes: Table 1's maximum, ~95 bits.
pub const SESSION_REF_LEN: usize = 16;

/// A new SCAIP session reference: 16 characters drawn uniformly from Table 1's alphabet by
/// the system CSPRNG. The `<mrs>` binds to it, so it must not be guessable: nothing about the
/// alarm, the time or the attempt goes into it.
pub fn new_session_ref() -> Result<String, ScaipError> {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    let mut out = String::with_capacity(SESSION_REF_LEN);
    let mut byte = [0u8; 1];
    while out.len() < SESSION_REF_LEN {
        rng.fill(&mut byte)
            .map_err(|_| ScaipError::Io("the system random source failed".into()))?;
        // 248 = 4 × 62: rejecting the rest keeps every character equally likely.
        if let Some(&c) = REF_ALPHABET
            .get(usize::from(byte[0] % 62))
            .filter(|_| byte[0] < 248)
        {
            out.push(char::from(c));
        }
    }
    Ok(out)
}

/// Registration state, as status displays and `deliver` see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registration {
    /// Not yet answered.
    Pending,
    /// Registered; the registrar granted this long.
    Registered(Duration),
    /// The last REGISTER failed; why.
    Failed(String),
}

struct HoldSession {
    reference: String,
    since: Instant,
}

/// Why a request to the unit was refused with 403.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Refusal {
    /// Its source address is not the proxy's.
    NotTheProxy,
    /// It came from the proxy's address but not on the flow the unit registered on.
    NotTheRegisteredFlow,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::NotTheProxy => "not_the_proxy",
            Refusal::NotTheRegisteredFlow => "not_the_registered_flow",
        }
    }
}

/// Counts refused requests and logs a summary at most once a minute, so a flood cannot
/// flood the log.
#[derive(Default)]
struct Refusals {
    not_the_proxy: u64,
    not_the_registered_flow: u64,
    last_logged: Option<Instant>,
}

/// How often refused requests are summarised in the log.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

impl Refusals {
    fn count(&mut self, route: &str, why: Refusal) {
        match why {
            Refusal::NotTheProxy => self.not_the_proxy += 1,
            Refusal::NotTheRegisteredFlow => self.not_the_registered_flow += 1,
        }
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_EVERY)
        {
            return;
        }
        tracing::warn!(
            route,
            last = why.as_str(),
            not_the_proxy = self.not_the_proxy,
            not_the_registered_flow = self.not_the_registered_flow,
            "SCAIP: refused requests that did not come from the proxy (403)"
        );
        self.not_the_proxy = 0;
        self.not_the_registered_flow = 0;
        self.last_logged = Some(now);
    }
}

/// A request to send through the proxy.
struct OutRequest<'a> {
    method: &'a str,
    uri: &'a str,
    to: &'a str,
    call_id: &'a str,
    extra: &'a [String],
    body: Option<&'a str>,
}

struct Link {
    route: String,
    cfg: ScaipRoute,
    cid: String,
    user: String,
    secret: Secret,
    /// The only digest realm the password is given to, if configured.
    realm: Option<String>,
    node: Arc<SipNode>,
    proxy: SocketAddr,
    local_uri: String,
    /// The contact as registered: over TCP/TLS the address of the flow to the proxy, which
    /// changes when the flow is opened again.
    contact: Mutex<String>,
    via_host: Mutex<String>,
    /// The user part and transport parameter the contact is made of.
    contact_user: String,
    contact_params: &'static str,
    /// A contact of a dropped flow, removed (expires=0) by the next REGISTER.
    stale_contact: Mutex<Option<String>>,
    /// Register again now: the flow was renewed or dropped, or a keep-alive failed.
    reregister: tokio::sync::Notify,
    /// One reconnection at a time.
    reconnecting: tokio::sync::Mutex<()>,
    /// Unregistered on purpose: nothing registers again.
    unregistered: std::sync::atomic::AtomicBool,
    /// Whether the centre answered the last request (`<mrs>`): false after an alarm or a
    /// heartbeat went unanswered; heartbeats then probe every few seconds.
    answering: watch::Sender<bool>,
    from_tag: String,
    reg_call_id: String,
    cseq: CSeq,
    registration: watch::Sender<Registration>,
    heartbeat_every: watch::Sender<Duration>,
    waiters: Mutex<HashMap<String, mpsc::UnboundedSender<Mrs>>>,
    holds: Mutex<HashMap<AlarmId, HoldSession>>,
    predefined_callback: Mutex<String>,
    /// The centre's voice calls to the unit.
    calls: Arc<call::CallDesk>,
    /// How long a call the unit places may ring.
    call_ring: Mutex<Duration>,
}

/// How long a call the unit places may go without a provisional response (Timer B, 64·T1).
const CALL_ANSWER: Duration = Duration::from_secs(32);
/// How long it may ring before the unit cancels it.
const CALL_RING: Duration = Duration::from_secs(60);

/// A SCAIP route: registration, alarm delivery, heartbeats.
pub struct ScaipLink {
    link: Arc<Link>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for ScaipLink {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A SIP URI without its parameters, lower case, for comparing contacts.
fn bare_uri(uri: &str) -> String {
    uri.split(';')
        .next()
        .unwrap_or(uri)
        .trim()
        .to_ascii_lowercase()
}

/// Resolves `host[:port]`, SIP's default port 5060 if none is given.
async fn resolve(target: &str) -> Result<SocketAddr, ScaipError> {
    let with_port = if target
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !target.ends_with(']')
    {
        target.to_string()
    } else {
        format!("{target}:5060")
    };
    let mut addrs = tokio::net::lookup_host(with_port.as_str())
        .await
        .map_err(|e| ScaipError::Io(format!("cannot resolve {target}: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| ScaipError::Io(format!("{target} resolves to no address")))
}

/// The local address to bind: `bind`'s own if it names one, else the address the system
/// uses towards `proxy` (learnt by connecting a UDP socket), so the SIP port is not open on
/// every interface of the home network.
fn towards(proxy: SocketAddr, bind: SocketAddr) -> Result<std::net::IpAddr, ScaipError> {
    if !bind.ip().is_unspecified() {
        return Ok(bind.ip());
    }
    std::net::UdpSocket::bind(SocketAddr::new(bind.ip(), 0))
        .and_then(|s| s.connect(proxy).and_then(|()| s.local_addr()))
        .map(|a| a.ip())
        .map_err(|e| ScaipError::Io(format!("no route to {proxy}: {e}")))
}

/// Removes a waiter for `<mrs>` when its delivery ends or is dropped.
struct WaiterGuard<'a> {
    link: &'a Link,
    reference: String,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        lock(&self.link.waiters).remove(&self.reference);
    }
}

/// How long a request awaiting `<mrs>` may wait for the registration of a flow just opened
/// again.
const FLOW_REGISTER_WAIT: Duration = Duration::from_secs(2);

/// The methods the unit takes (OPTIONS and 405 answers).
const ALLOW: &str = "Allow: INVITE, ACK, BYE, CANCEL, MESSAGE, OPTIONS";

/// How often a proxy that cannot be registered with, or a centre that does not answer, is
/// probed.
const PROBE_WHILE_DOWN: Duration = Duration::from_secs(3);

/// How long to wait before resending a held alarm (SCAIP: 5–20 s).
pub const HOLD_RESEND: Duration = Duration::from_secs(5);

impl ScaipLink {
    /// Binds the SIP socket, starts registering and listening, and starts heartbeats.
    pub async fn start(
        name: &str,
        route: &ScaipRoute,
        unit: &Unit,
        credentials: &Credentials,
    ) -> Result<ScaipLink, ScaipError> {
        let proxy = resolve(&route.proxy).await?;
        let bind = SocketAddr::new(towards(proxy, route.bind)?, route.bind.port());
        let (node, incoming) = SipNode::bind(route.transport, bind).await?;
        node.connect_only_explicitly();
        let local = match route.transport {
            // Over TCP the unit opens the flow to its proxy and registers the address of that
            // connection, so the proxy sends `<mrs>` back on it (RFC 5626 style): requests on
            // connections anyone else opens are refused.
            // While the proxy is unreachable the listener's address stands in; registration
            // keeps retrying.
            SipTransport::Tcp => match node.connect(proxy).await {
                Ok(local) => local,
                Err(e) => {
                    tracing::warn!(route = name, error = %e, "SCAIP: cannot reach the proxy yet");
                    node.local_addr()
                }
            },
            SipTransport::Udp | SipTransport::Tls => node.local_addr(),
        };
        ScaipLink::start_on(name, route, unit, credentials, proxy, node, incoming, local)
    }

    /// Like [`ScaipLink::start`] for SIP over TLS (RFC 3261 §26.2.1, as SCAIP asks): the
    /// unit connects to its proxy, checks the proxy's certificate against the CA certificates
    /// in `ca_pem`, registers over that connection and receives `<mrs>` on it.
    #[cfg(feature = "tls")]
    pub async fn start_tls(
        name: &str,
        route: &ScaipRoute,
        unit: &Unit,
        credentials: &Credentials,
        ca_pem: &[u8],
    ) -> Result<ScaipLink, ScaipError> {
        let proxy = resolve(&route.proxy).await?;
        let host = route
            .proxy
            .rsplit_once(':')
            .filter(|(_, p)| p.parse::<u16>().is_ok())
            .map_or(route.proxy.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let role = sip::tls_client(ca_pem, host)?;
        let (node, incoming) = SipNode::bind_tls(route.bind, role).await?;
        node.connect_only_explicitly();
        let local = node.connect(proxy).await?;
        let mut route = route.clone();
        route.transport = SipTransport::Tls;
        ScaipLink::start_on(
            name,
            &route,
            unit,
            credentials,
            proxy,
            node,
            incoming,
            local,
        )
    }

    #[allow(clippy::too_many_arguments)] // one private constructor shared by the transports
    fn start_on(
        name: &str,
        route: &ScaipRoute,
        unit: &Unit,
        credentials: &Credentials,
        proxy: SocketAddr,
        node: Arc<SipNode>,
        incoming: mpsc::UnboundedReceiver<Incoming>,
        local: SocketAddr,
    ) -> Result<ScaipLink, ScaipError> {
        let ip = if local.ip().is_unspecified() {
            // The address the system would use towards the proxy.
            let probe = std::net::UdpSocket::bind(SocketAddr::new(local.ip(), 0))
                .and_then(|s| s.connect(proxy).and_then(|()| s.local_addr()))
                .map_err(|e| ScaipError::Io(format!("no route to {proxy}: {e}")))?;
            probe.ip()
        } else {
            local.ip()
        };
        let via_host = SocketAddr::new(ip, local.port()).to_string();
        let local_uri = route.local_uri.clone();
        let user = sip::aor(&local_uri)
            .split('@')
            .next()
            .unwrap_or("")
            .to_string();
        let transport_param = match route.transport {
            SipTransport::Udp => "",
            SipTransport::Tcp => ";transport=tcp",
            SipTransport::Tls => ";transport=tls",
        };
        let contact = format!("sip:{user}@{via_host}{transport_param}");
        let link = Arc::new(Link {
            route: name.to_string(),
            cfg: route.clone(),
            cid: unit.controller_id.clone(),
            user: credentials.username.clone().unwrap_or_else(|| user.clone()),
            secret: credentials.secret.clone(),
            realm: credentials.realm.clone(),
            node,
            proxy,
            local_uri,
            contact: Mutex::new(contact),
            via_host: Mutex::new(via_host),
            contact_user: user,
            contact_params: transport_param,
            stale_contact: Mutex::new(None),
            reregister: tokio::sync::Notify::new(),
            reconnecting: tokio::sync::Mutex::new(()),
            unregistered: std::sync::atomic::AtomicBool::new(false),
            answering: watch::channel(true).0,
            from_tag: sip::random_token(10),
            reg_call_id: format!("{}@vigil", sip::random_token(20)),
            cseq: CSeq::default(),
            registration: watch::channel(Registration::Pending).0,
            heartbeat_every: watch::channel(route.heartbeat).0,
            waiters: Mutex::new(HashMap::new()),
            holds: Mutex::new(HashMap::new()),
            predefined_callback: Mutex::new(route.receiver_uri.clone()),
            calls: Arc::new(call::CallDesk::default()),
            call_ring: Mutex::new(CALL_RING),
        });
        let tasks = vec![
            tokio::spawn(Arc::clone(&link).listen(incoming)),
            tokio::spawn(Arc::clone(&link).keep_registered()),
            tokio::spawn(Arc::clone(&link).heartbeats()),
            tokio::spawn(Arc::clone(&link).keep_alive()),
            tokio::spawn(Arc::clone(&link).watch_flow()),
        ];
        Ok(ScaipLink { link, tasks })
    }

    /// Where the centre's voice callback goes when `mrs` asks for it without a `tnu`
    /// (`cre` 61, predefined receiver). Defaults to the receiver URI.
    pub fn set_predefined_callback(&self, target: &str) {
        *lock(&self.link.predefined_callback) = target.to_string();
    }

    /// Answers the centre's voice calls until `until`, as the core asks after an alarm.
    pub fn answer_calls_until(&self, until: Instant) {
        self.link.calls.answer_until(until);
    }

    /// The loudspeaker and microphone the centre's calls use; without them calls are refused.
    pub fn set_call_audio(&self, audio: call::CallAudio) {
        self.link.calls.set_audio(audio);
    }

    /// Calls `target` (a `sip:` URI the proxy routes) with the unit's loudspeaker and
    /// microphone, as the centre asks with `mre`/`tnu` or an installer's test call does.
    /// Returns once the far end answered (the call then runs until either side hangs up), or
    /// why it did not. Only what [`ScaipLink::may_call`] allows is called.
    pub async fn place_call(&self, target: &str) -> Result<(), ScaipError> {
        self.may_call(target)?;
        Arc::clone(&self.link).place_call(target, None).await
    }

    /// [`ScaipLink::place_call`] with other call audio than the loudspeaker and microphone
    /// (the installer's test call).
    pub async fn place_call_with(
        &self,
        target: &str,
        audio: call::CallAudio,
    ) -> Result<(), ScaipError> {
        self.may_call(target)?;
        Arc::clone(&self.link).place_call(target, Some(audio)).await
    }

    /// Whether the unit may call `target` on this route: a plain `sip:` URI in the centre's
    /// own domain (the domain of the unit's address of record), nothing that could smuggle a
    /// header or reach anyone else. The centre names the number, but a call opens the home's
    /// microphone, so the unit calls nobody outside the centre.
    pub fn may_call(&self, target: &str) -> Result<(), CallRefused> {
        let Some(rest) = target.strip_prefix("sip:") else {
            return Err(CallRefused::NotSip(target.to_string()));
        };
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.!~*'()+%@:;=".contains(c);
        if target.len() > 256 || !rest.chars().all(allowed) {
            return Err(CallRefused::Characters);
        }
        let host = |uri: &str| {
            let aor = sip::aor(uri);
            let after_at = aor.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
            after_at.split([':', ';']).next().unwrap_or("").to_string()
        };
        let (theirs, ours) = (host(target), host(&self.link.local_uri));
        if !rest.contains('@') || theirs.is_empty() || theirs != ours {
            return Err(CallRefused::OutsideDomain {
                target: target.to_string(),
                domain: ours,
            });
        }
        Ok(())
    }

    /// How long a call the unit places may ring before it is cancelled (a minute unless set).
    pub fn set_call_ring(&self, ring: Duration) {
        *lock(&self.link.call_ring) = ring;
    }

    /// Hangs up the call in progress; false if there is none.
    pub async fn hang_up(&self) -> bool {
        let via = |branch: &str| self.link.via(branch);
        self.link.calls.hang_up(self.link.dialogue(&via)).await
    }

    /// Follows the centre's calls.
    pub fn calls(&self) -> watch::Receiver<call::CallReport> {
        self.link.calls.report()
    }

    /// The current registration state.
    pub fn registration(&self) -> Registration {
        self.link.registration.borrow().clone()
    }

    /// True while registered and the centre answers, as it changes: the route's health learnt
    /// from its own traffic (registration, alarms, heartbeats, and heartbeats sent every few
    /// seconds as probes while the centre does not answer).
    pub fn health(&self) -> watch::Receiver<bool> {
        let mut reg = self.link.registration.subscribe();
        let mut answering = self.link.answering.subscribe();
        let up = |reg: &Registration, answering: bool| {
            matches!(reg, Registration::Registered(_)) && answering
        };
        let (tx, rx) = watch::channel(up(&reg.borrow(), *answering.borrow()));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = reg.changed() => if r.is_err() { return },
                    a = answering.changed() => if a.is_err() { return },
                }
                let now = up(&reg.borrow_and_update(), *answering.borrow_and_update());
                tx.send_if_modified(|v| std::mem::replace(v, now) != now);
                if tx.is_closed() {
                    return;
                }
            }
        });
        rx
    }

    /// Waits until the registration is answered (or `limit` passes).
    pub async fn wait_registered(&self, limit: Duration) -> Registration {
        let mut rx = self.link.registration.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|r| *r != Registration::Pending)).await;
        let state = rx.borrow().clone();
        state
    }

    /// The heartbeat interval in force (configured, or the centre's `hbi`).
    pub fn heartbeat_interval(&self) -> Duration {
        *self.link.heartbeat_every.borrow()
    }

    /// The address of the node's own TCP listener, if it has one.
    pub fn local_listener(&self) -> Option<SocketAddr> {
        (self.link.cfg.transport == SipTransport::Tcp).then(|| self.link.node.local_addr())
    }

    /// Our contact URI as registered.
    pub fn contact(&self) -> String {
        self.link.contact()
    }

    /// Stops registering and heartbeats and removes the registration (REGISTER with
    /// `Expires: 0`), so the centre stops sending to this contact.
    pub async fn unregister(&self) -> Result<(), ScaipError> {
        for t in &self.tasks {
            t.abort();
        }
        self.link
            .unregistered
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.link.register_for(0).await?;
        self.link
            .registration
            .send_replace(Registration::Failed("unregistered".into()));
        Ok(())
    }

    /// Sends one alarm and waits for its `<mrs>`. Dropping the future abandons the attempt.
    pub async fn deliver(&self, delivery: &Delivery) -> DeliveryResult {
        self.link.deliver(delivery).await
    }
}

impl Link {
    /// What the call desk needs to answer and send in a dialog.
    fn dialogue<'a>(
        &'a self,
        via: &'a (dyn Fn(&str) -> String + Send + Sync),
    ) -> call::Dialogue<'a> {
        let media_ip = lock(&self.via_host)
            .parse::<SocketAddr>()
            .map(|a| a.ip())
            .unwrap_or(self.node.local_addr().ip());
        call::Dialogue {
            node: &self.node,
            contact: self.contact(),
            media_ip,
            proxy: self.proxy,
            via,
            udp: self.cfg.transport == SipTransport::Udp,
            keys_safe: self.cfg.transport == SipTransport::Tls,
        }
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.node.transport_name(),
            lock(&self.via_host)
        )
    }

    fn contact(&self) -> String {
        lock(&self.contact).clone()
    }

    /// Over TCP/TLS, opens the flow to the proxy again if it dropped, and makes its address
    /// the contact (the old one is removed at the next REGISTER, which is asked for at once).
    async fn ensure_flow(&self) -> Result<(), ScaipError> {
        if self.cfg.transport == SipTransport::Udp || self.node.has_flow(self.proxy) {
            return Ok(());
        }
        let _one = self.reconnecting.lock().await;
        if self.node.has_flow(self.proxy) {
            return Ok(());
        }
        let local = self.node.connect(self.proxy).await?;
        let via_host = local.to_string();
        let contact = format!(
            "sip:{}@{via_host}{}",
            self.contact_user, self.contact_params
        );
        let old = std::mem::replace(&mut *lock(&self.contact), contact.clone());
        *lock(&self.via_host) = via_host;
        if old != contact {
            tracing::info!(route = %self.route, %contact, "SCAIP: new flow to the proxy, registering it");
            lock(&self.stale_contact).get_or_insert(old);
            self.reregister.notify_one();
        }
        Ok(())
    }

    fn registrar_uri(&self) -> String {
        let aor = sip::aor(&self.local_uri);
        let host = aor.rsplit('@').next().unwrap_or(&aor).to_string();
        format!("sip:{host}")
    }

    /// Sends a SCAIP body to the receiving centre as a SIP MESSAGE (RFC 3428).
    async fn message(
        &self,
        call_id: &str,
        body: &str,
        timeout: Duration,
    ) -> Result<SipMsg, ScaipError> {
        let receiver = &self.cfg.receiver_uri;
        self.request(
            OutRequest {
                method: "MESSAGE",
                uri: receiver,
                to: receiver,
                call_id,
                extra: &[],
                body: Some(body),
            },
            timeout,
        )
        .await
    }

    /// Sends a request through the proxy, answering one digest challenge (401 or 407).
    async fn request(&self, out: OutRequest<'_>, timeout: Duration) -> Result<SipMsg, ScaipError> {
        let OutRequest {
            method,
            uri,
            to,
            call_id,
            extra,
            body,
        } = out;
        let mut auth: Option<String> = None;
        let mut answered_realm: Option<String> = None;
        let mut stale_retries = 0;
        let mut reopened = false;
        loop {
            self.ensure_flow().await?;
            let cseq = self.cseq.next();
            let build = |branch: &str| {
                let mut s = format!(
                    "{method} {uri} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n",
                    self.via(branch)
                );
                s.push_str(&format!(
                    "From: <{}>;tag={}\r\nTo: <{to}>\r\n",
                    self.local_uri, self.from_tag
                ));
                s.push_str(&format!("Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"));
                for h in extra {
                    s.push_str(h);
                    s.push_str("\r\n");
                }
                if let Some(a) = &auth {
                    s.push_str(a);
                    s.push_str("\r\n");
                }
                match body {
                    Some(b) => s.push_str(&format!(
                        "Content-Type: {}\r\nContent-Length: {}\r\n\r\n{b}",
                        xml::CONTENT_TYPE,
                        b.len()
                    )),
                    None => s.push_str("Content-Length: 0\r\n\r\n"),
                }
                s
            };
            let resp = match self.node.transaction(self.proxy, &build, timeout).await {
                // The flow dropped under the request: open it again (the contact changes, so
                // a registration follows) and send once more.
                Err(_) if !self.node.has_flow(self.proxy) && !reopened => {
                    reopened = true;
                    continue;
                }
                r => r?,
            };
            let status = resp.status().unwrap_or(0);
            let (header, auth_name) = match status {
                401 => ("www-authenticate", "Authorization"),
                407 => ("proxy-authenticate", "Proxy-Authorization"),
                _ => return Ok(resp),
            };
            let challenge = Challenge::pick(resp.headers(header)).ok_or_else(|| {
                ScaipError::Auth(format!("{status} without a usable digest challenge"))
            })?;
            if let Some(expected) = self.realm.as_deref() {
                if challenge.realm != expected {
                    return Err(ScaipError::Auth(format!(
                        "{method} challenged for realm \"{}\", but the password is for realm \"{expected}\": not answered",
                        challenge.realm
                    )));
                }
            }
            if answered_realm.as_deref() == Some(challenge.realm.as_str()) {
                if challenge.stale && stale_retries < 1 {
                    stale_retries += 1;
                } else {
                    return Err(ScaipError::Auth(format!(
                        "{method} refused with {status} after our digest answer: wrong user name or password for realm \"{}\"",
                        challenge.realm
                    )));
                }
            }
            let value = challenge.answer(method, uri, &self.user, &self.secret, 1)?;
            auth = Some(format!("{auth_name}: {value}"));
            answered_realm = Some(challenge.realm.clone());
        }
    }

    /// Places a call to `target` through the proxy: the INVITE with the unit's offer, one
    /// digest challenge answered as [`Link::request`] does, and on a 2xx the call connected
    /// by the desk.
    async fn place_call(
        self: &Arc<Self>,
        target: &str,
        audio: Option<call::CallAudio>,
    ) -> Result<(), ScaipError> {
        let media_ip = lock(&self.via_host)
            .parse::<SocketAddr>()
            .map(|a| a.ip())
            .unwrap_or(self.node.local_addr().ip());
        let mut placing = self
            .calls
            .prepare(media_ip, audio, self.cfg.transport == SipTransport::Tls)
            .await?;
        let mut auth: Option<String> = None;
        let mut answered_realm: Option<String> = None;
        let (invited, cseq) = loop {
            self.ensure_flow().await?;
            let cseq = self.cseq.next();
            let contact = self.contact();
            let head = |branch: &str| {
                format!(
                    "Via: {}\r\nMax-Forwards: 70\r\nFrom: <{}>;tag={}\r\n",
                    self.via(branch),
                    self.local_uri,
                    placing.from_tag
                )
            };
            let build = |branch: &str| {
                let mut s = format!("INVITE {target} SIP/2.0\r\n{}", head(branch));
                s.push_str(&format!(
                    "To: <{target}>\r\nCall-ID: {}\r\nCSeq: {cseq} INVITE\r\nContact: <{contact}>\r\n{ALLOW}\r\n",
                    placing.call_id
                ));
                if let Some(a) = &auth {
                    s.push_str(a);
                    s.push_str("\r\n");
                }
                s.push_str(&format!(
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{}",
                    placing.offer.len(),
                    placing.offer
                ));
                s
            };
            let ring = *lock(&self.call_ring);
            let invited = self
                .node
                .invite_transaction(self.proxy, &build, CALL_ANSWER, ring)
                .await?;
            let status = invited.response.status().unwrap_or(0);
            let (header, auth_name) = match status {
                200..=299 => break (invited, cseq),
                487 => {
                    return Err(ScaipError::Rejected {
                        status,
                        reason: format!("nobody answered within {} s", ring.as_secs()),
                    })
                }
                401 => ("www-authenticate", "Authorization"),
                407 => ("proxy-authenticate", "Proxy-Authorization"),
                // The far end takes no SRTP: the person must still be heard, so the call is
                // offered again with plain RTP (the refusal came over the TLS signalling, so
                // no one on the path forced it).
                488 if placing.without_srtp() => {
                    tracing::warn!(%target, "the far end refused SRTP: calling again with unencrypted audio");
                    continue;
                }
                _ => {
                    return Err(ScaipError::Rejected {
                        status,
                        reason: invited.response.reason(),
                    })
                }
            };
            let challenge = Challenge::pick(invited.response.headers(header)).ok_or_else(|| {
                ScaipError::Auth(format!("{status} without a usable digest challenge"))
            })?;
            if self.realm.as_deref().is_some_and(|r| r != challenge.realm)
                || answered_realm.as_deref() == Some(challenge.realm.as_str())
            {
                return Err(ScaipError::Auth(format!(
                    "INVITE refused with {status} for realm \"{}\"",
                    challenge.realm
                )));
            }
            let value = challenge.answer("INVITE", target, &self.user, &self.secret, 1)?;
            auth = Some(format!("{auth_name}: {value}"));
            answered_realm = Some(challenge.realm.clone());
        };
        let via = |branch: &str| self.via(branch);
        self.calls
            .connected(self.dialogue(&via), placing, &self.local_uri, invited, cseq)
            .await
            .map_err(ScaipError::from)
    }

    /// A REGISTER of our address of record with these header lines (in the registration's
    /// own Call-ID, RFC 3261 §10.2).
    async fn send_register(
        &self,
        extra: &[String],
        timeout: Duration,
    ) -> Result<SipMsg, ScaipError> {
        self.request(
            OutRequest {
                method: "REGISTER",
                uri: &self.registrar_uri(),
                to: &self.local_uri,
                call_id: &self.reg_call_id,
                extra,
                body: None,
            },
            timeout,
        )
        .await
    }

    /// One REGISTER; returns the granted expiry.
    async fn register(&self) -> Result<Duration, ScaipError> {
        self.register_for(self.cfg.register_expiry.as_secs().max(1))
            .await
    }

    /// One REGISTER asking for `expiry` seconds (0 removes the binding).
    async fn register_for(&self, expiry: u64) -> Result<Duration, ScaipError> {
        // The contact is the flow's address: open the flow first if it dropped.
        self.ensure_flow().await?;
        let current = self.contact();
        let stale = lock(&self.stale_contact).clone();
        let mut extra = vec![format!("Contact: <{current}>")];
        if let Some(old) = &stale {
            extra.push(format!("Contact: <{old}>;expires=0"));
        }
        extra.push(format!("Expires: {expiry}"));
        let resp = self.send_register(&extra, Duration::from_secs(8)).await?;
        match resp.status() {
            Some(200..=299) => {
                if stale.is_some() {
                    *lock(&self.stale_contact) = None;
                }
                let ours = sip::aor(&self.contact());
                let granted = resp
                    .headers("contact")
                    .into_iter()
                    .flat_map(|v| v.split(','))
                    .find(|c| sip::aor(&sip::addr_uri(c)) == ours)
                    .and_then(|c| sip::param(c, "expires"))
                    .or_else(|| resp.header("expires").map(str::to_string))
                    .and_then(|e| e.trim().parse::<u64>().ok())
                    .unwrap_or(expiry)
                    .min(86_400);
                Ok(Duration::from_secs(granted))
            }
            _ => Err(ScaipError::Rejected {
                status: resp.status().unwrap_or(0),
                reason: resp.reason(),
            }),
        }
    }

    /// Registers again now and publishes the outcome.
    async fn register_now(&self) {
        match self.register().await {
            Ok(granted) => {
                self.registration
                    .send_replace(Registration::Registered(granted));
            }
            Err(e) => {
                self.registration
                    .send_replace(Registration::Failed(format!("REGISTER failed: {e}")));
            }
        }
    }

    async fn keep_registered(self: Arc<Self>) {
        let mut backoff = Duration::from_secs(2);
        loop {
            match self.register().await {
                Ok(granted) => {
                    tracing::info!(route = %self.route, granted_s = granted.as_secs(), "SCAIP registered");
                    // send_replace: the state must be kept even while nobody is waiting on it.
                    self.registration
                        .send_replace(Registration::Registered(granted));
                    backoff = Duration::from_secs(2);
                    tokio::select! {
                        () = tokio::time::sleep((granted / 2).max(Duration::from_millis(500))) => {}
                        () = self.reregister.notified() => {
                            tracing::info!(route = %self.route, "SCAIP: registering again at once");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(route = %self.route, error = %e, "SCAIP registration failed");
                    self.registration
                        .send_replace(Registration::Failed(format!("REGISTER failed: {e}")));
                    // The keep-alive probe says when the proxy answers again.
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.reregister.notified() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(300));
                }
            }
        }
    }

    /// Checks the flow to the proxy every `keepalive`: a CRLF ping on TCP/TLS, a binding query
    /// on UDP. A failed check, or a binding the registrar lost, registers again at once.
    async fn keep_alive(self: Arc<Self>) {
        loop {
            let registered = matches!(*self.registration.borrow(), Registration::Registered(_));
            // Not registered: probe often, so the route is used again as soon as it works.
            let every = if registered {
                self.cfg.keepalive
            } else {
                self.cfg.keepalive.min(PROBE_WHILE_DOWN)
            };
            tokio::time::sleep(every).await;
            let registered = matches!(*self.registration.borrow(), Registration::Registered(_));
            let checked = match self.cfg.transport {
                // Over UDP nothing tells the unit that the registrar lost its binding (a
                // restart): ask for the bindings (RFC 3261 §10.2.3), which also keeps a NAT
                // binding open.
                SipTransport::Udp => match self.binding_present().await {
                    Ok(true) => Ok(()),
                    Ok(false) if registered => {
                        tracing::warn!(route = %self.route, "SCAIP: the registrar lost our binding: registering again");
                        self.reregister.notify_one();
                        Ok(())
                    }
                    Ok(false) => Ok(()),
                    Err(e) => Err(e),
                },
                SipTransport::Tcp | SipTransport::Tls => {
                    self.node.ping(self.proxy, Duration::from_secs(10)).await
                }
            };
            match checked {
                Err(e) if registered => {
                    tracing::warn!(route = %self.route, error = %e, "SCAIP keep-alive failed: registering again");
                    self.reregister.notify_one();
                }
                Err(_) => {}
                Ok(()) if !registered => {
                    tracing::info!(route = %self.route, "SCAIP: the proxy answers again: registering");
                    self.reregister.notify_one();
                }
                Ok(()) => {}
            }
        }
    }

    /// Whether the registrar still holds our contact: a REGISTER without Contact fetches the
    /// bindings (RFC 3261 §10.2.3).
    async fn binding_present(&self) -> Result<bool, ScaipError> {
        let resp = self.send_register(&[], Duration::from_secs(4)).await?;
        match resp.status() {
            Some(200..=299) => {
                let ours = bare_uri(&self.contact());
                Ok(resp
                    .headers("contact")
                    .into_iter()
                    .flat_map(|v| v.split(','))
                    .any(|c| {
                        bare_uri(&sip::addr_uri(c)) == ours
                            && sip::param(c, "expires").is_none_or(|e| e.trim() != "0")
                    }))
            }
            _ => Err(ScaipError::Rejected {
                status: resp.status().unwrap_or(0),
                reason: resp.reason(),
            }),
        }
    }

    /// A dropped flow to the proxy (TCP/TLS) is opened again and registered at once: until
    /// then the centre's `<mrs>` cannot reach the unit.
    async fn watch_flow(self: Arc<Self>) {
        let mut closed = self.node.flows_closed();
        while closed.changed().await.is_ok() {
            if self.cfg.transport == SipTransport::Udp {
                continue;
            }
            tracing::warn!(route = %self.route, "SCAIP: the flow to the proxy dropped: registering again");
            if let Err(e) = self.ensure_flow().await {
                tracing::warn!(route = %self.route, error = %e, "SCAIP: the proxy cannot be reached");
            }
            self.reregister.notify_one();
        }
    }

    /// Answers incoming requests; hands `<mrs>` to the delivery waiting for its `ref`.
    async fn listen(self: Arc<Self>, mut incoming: mpsc::UnboundedReceiver<Incoming>) {
        let tag = sip::random_token(10);
        let mut refusals = Refusals::default();
        while let Some(req) = incoming.recv().await {
            if let Err(why) = self.trusted(&req) {
                refusals.count(&self.route, why);
                let _ = self.node.respond(&req, 403, "Forbidden", &tag, &[]).await;
                continue;
            }
            let method = req.msg.method().unwrap_or_default();
            match method.as_str() {
                "MESSAGE" => {
                    let to_ok = req
                        .msg
                        .header("to")
                        .is_some_and(|t| sip::aor(&sip::addr_uri(t)) == sip::aor(&self.local_uri));
                    let ruri_ok = req.msg.request_uri().is_some_and(|u| {
                        let a = sip::aor(&u);
                        a == sip::aor(&self.contact()) || a == sip::aor(&self.local_uri)
                    });
                    if !(to_ok || ruri_ok) {
                        tracing::warn!(route = %self.route, "SCAIP: MESSAGE not for this unit refused");
                        let _ = self.node.respond(&req, 404, "Not Found", &tag, &[]).await;
                        continue;
                    }
                    let body = xml::parse(req.msg.body());
                    let status = if body.is_ok() {
                        (200, "OK")
                    } else {
                        (400, "Bad Request")
                    };
                    let _ = self.node.respond(&req, status.0, status.1, &tag, &[]).await;
                    match body {
                        Ok(ScaipBody::Response(mrs)) => self.on_mrs(mrs),
                        Ok(ScaipBody::Request(_)) => {
                            tracing::debug!(route = %self.route, "SCAIP: ignoring an mrq sent to the unit");
                        }
                        Err(e) => {
                            tracing::warn!(route = %self.route, error = %e, "SCAIP: unreadable body")
                        }
                    }
                }
                "OPTIONS" => {
                    let _ = self
                        .node
                        .respond(&req, 200, "OK", &tag, &[ALLOW.into()])
                        .await;
                }
                "INVITE" | "ACK" | "BYE" | "CANCEL" => {
                    let via = |branch: &str| self.via(branch);
                    self.calls.on_request(self.dialogue(&via), &req, &tag).await;
                }
                _ => {
                    let _ = self
                        .node
                        .respond(&req, 405, "Method Not Allowed", &tag, &[ALLOW.into()])
                        .await;
                }
            }
        }
    }

    /// Whether a request came from the proxy: over UDP from its address and port, over TCP or
    /// TLS on the connection the unit opened and registered on (an RFC 5626 style flow). Only
    /// such requests may carry `<mrs>`, holds or `hbi` (DESIGN §4, trust).
    fn trusted(&self, req: &Incoming) -> Result<(), Refusal> {
        if req.peer != self.proxy {
            return Err(Refusal::NotTheProxy);
        }
        match (self.cfg.transport, req.flow) {
            (SipTransport::Udp, Flow::Datagram) => Ok(()),
            (SipTransport::Tcp | SipTransport::Tls, Flow::Opened) => Ok(()),
            _ => Err(Refusal::NotTheRegisteredFlow),
        }
    }

    fn on_mrs(&self, mrs: Mrs) {
        if let Some(minutes) = mrs.hbi {
            let every = Duration::from_secs(u64::from(minutes) * 60);
            if *self.heartbeat_every.borrow() != every {
                tracing::info!(route = %self.route, minutes, "SCAIP: centre sets the heartbeat interval");
                self.heartbeat_every.send_replace(every);
            }
        }
        let waiter = lock(&self.waiters).get(&mrs.reference).cloned();
        match waiter {
            Some(tx) => {
                let _ = tx.send(mrs);
            }
            None => {
                tracing::debug!(route = %self.route, reference = %mrs.reference, "SCAIP: mrs for no open session")
            }
        }
    }

    /// Sends `mrq` and waits for its `<mrs>` until `deadline`.
    async fn exchange(&self, mrq: &Mrq, deadline: Instant) -> Result<Mrs, ExchangeError> {
        let r = self.exchange_once(mrq, deadline).await;
        if r.is_err() {
            // Unanswered or refused: the route is down until the centre answers again.
            self.answering
                .send_if_modified(|a| std::mem::replace(a, false));
        }
        r
    }

    async fn exchange_once(&self, mrq: &Mrq, deadline: Instant) -> Result<Mrs, ExchangeError> {
        mrq.validate()
            .map_err(|e| ExchangeError::NotDelivered(format!("SCAIP body not sent: {e}")))?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        lock(&self.waiters).insert(mrq.reference.clone(), tx);
        let _guard = WaiterGuard {
            link: self,
            reference: mrq.reference.clone(),
        };
        let body = mrq.emit();
        let call_id = format!("{}@vigil", sip::random_token(20));
        let sip_timeout = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(32));
        let receiver = &self.cfg.receiver_uri;
        // Over TCP/TLS, the centre's answer reaches the unit only on a flow the registrar
        // knows: a flow opened again and not yet registered is registered first (the proxy
        // just took the connection, so this is quick; bounded so the request is not held).
        if self.ensure_flow().await.is_ok() && lock(&self.stale_contact).is_some() {
            let _ = tokio::time::timeout(FLOW_REGISTER_WAIT, self.register_now()).await;
        }
        let mut registered_again = false;
        loop {
            let resp = self.message(&call_id, &body, sip_timeout).await;
            // Only the proxy's own answer counts here: a local timeout has used up the time.
            let status = resp.as_ref().ok().and_then(SipMsg::status).unwrap_or(0);
            // 404, 408 and 481 say the proxy lost our binding or our flow (a registrar restart,
            // a dropped connection): register again at once and resend, rather than wait for
            // an <mrs> that cannot reach us and then the next refresh.
            if matches!(status, 404 | 408 | 481) && !registered_again {
                registered_again = true;
                tracing::warn!(route = %self.route, status, "SCAIP: binding lost, registering again");
                self.register_now().await;
                continue;
            }
            let resp = resp.map_err(|e| {
                ExchangeError::NotDelivered(format!("SCAIP MESSAGE to {receiver}: {e}"))
            })?;
            match resp.status() {
                Some(200..=299) => break,
                status => {
                    return Err(ExchangeError::NotDelivered(format!(
                        "SCAIP MESSAGE to {receiver} refused: {} {}",
                        status.unwrap_or(0),
                        resp.reason()
                    )))
                }
            }
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(mrs)) => {
                self.answering
                    .send_if_modified(|a| !std::mem::replace(a, true));
                Ok(mrs)
            }
            _ => Err(ExchangeError::NoMrs {
                receiver: receiver.clone(),
                within: self.cfg.answer_timeout,
            }),
        }
    }

    async fn deliver(&self, delivery: &Delivery) -> DeliveryResult {
        let alarm = &delivery.alarm;
        let mut reg = self.registration.subscribe();
        let _ = tokio::time::timeout(
            self.cfg.answer_timeout,
            reg.wait_for(|r| *r != Registration::Pending),
        )
        .await;
        let mut state = reg.borrow().clone();
        if matches!(state, Registration::Failed(_))
            && !self.unregistered.load(std::sync::atomic::Ordering::Relaxed)
        {
            // The last REGISTER failed, but the proxy may be back: an alarm tries once more
            // rather than wait for the next retry.
            self.register_now().await;
            state = self.registration.borrow().clone();
        }
        match state {
            Registration::Registered(_) => {}
            Registration::Failed(reason) => {
                return DeliveryResult::Failed {
                    reason: format!("SCAIP not registered: {reason}"),
                }
            }
            Registration::Pending => {
                return DeliveryResult::Failed {
                    reason: "SCAIP registration not answered".into(),
                }
            }
        }
        // A resend after hold keeps the session's ref; anything else starts a new session.
        let held = lock(&self.holds)
            .get(&alarm.id)
            .map(|s| (s.reference.clone(), s.since));
        let reference = match held.as_ref().map(|(r, _)| r.clone()) {
            Some(r) => r,
            None => match new_session_ref() {
                Ok(r) => r,
                Err(e) => {
                    return DeliveryResult::Failed {
                        reason: e.to_string(),
                    }
                }
            },
        };
        // The centre may call back over SIP only when the unit can speak in that call.
        let crd = if self.calls.can_speak() {
            self.local_uri.as_str()
        } else {
            NO_VOICE
        };
        let mrq = alarm_request(alarm, &reference, &self.cid, crd);
        tracing::info!(route = %self.route, alarm_id = alarm.id.0, attempt = delivery.attempt,
            reference = %reference, stc = mrq.stc.unwrap_or(0), "SCAIP sending alarm");
        let deadline = Instant::now() + self.cfg.answer_timeout;
        let outcome = self.exchange(&mrq, deadline).await;
        if let Ok(mrs) = &outcome {
            tracing::info!(route = %self.route, alarm_id = alarm.id.0, reference = %reference, snu = mrs.snu, "SCAIP mrs");
        }
        // The session decides on std's instants; the route keeps tokio's (paused in tests).
        let held_since = held.map(|(_, since)| since.into_std());
        match after_exchange(
            outcome.as_ref(),
            held_since,
            Instant::now().into_std(),
            self.cfg.hold_limit,
        ) {
            Step::Hold { since } => {
                let since = Instant::from_std(since);
                lock(&self.holds).insert(alarm.id, HoldSession { reference, since });
                DeliveryResult::Hold {
                    retry_after: HOLD_RESEND,
                }
            }
            Step::Acked { call_back } => {
                self.end_session(alarm.id);
                let callback = call_back.map(|c| match c {
                    CallBack::Requested(target) => target,
                    CallBack::Predefined => lock(&self.predefined_callback).clone(),
                });
                DeliveryResult::Acked {
                    // The journal keeps the ref exactly as the centre saw it.
                    by: format!("SCAIP {} ref {reference}", self.cfg.receiver_uri),
                    callback,
                }
            }
            Step::Declined { snu } => {
                self.end_session(alarm.id);
                DeliveryResult::Declined {
                    reason: format!("SCAIP snu={snu}: {}", xml::snu_meaning(snu)),
                }
            }
            Step::Failed { failure, reset } => {
                self.end_session(alarm.id);
                if reset {
                    self.reset(&mrq).await;
                }
                DeliveryResult::Failed {
                    reason: failure.reason(&reference, reset),
                }
            }
        }
    }

    fn end_session(&self, alarm: AlarmId) {
        lock(&self.holds).remove(&alarm);
    }

    /// Sends `mty=RE` with the same ref: the device gives up this session.
    async fn reset(&self, mrq: &Mrq) {
        let re = Mrq {
            mty: Some(MessageType::Reset),
            ..mrq.clone()
        };
        let call_id = format!("{}@vigil", sip::random_token(20));
        let body = re.emit();
        if let Err(e) = self.message(&call_id, &body, Duration::from_secs(4)).await {
            tracing::warn!(route = %self.route, reference = %mrq.reference, error = %e, "SCAIP: mty=RE not delivered");
        }
    }

    async fn heartbeats(self: Arc<Self>) {
        let mut every = self.heartbeat_every.subscribe();
        let mut answering = self.answering.subscribe();
        let mut count: u32 = 0;
        loop {
            // A centre that stopped answering is probed every few seconds, so the route is
            // used again as soon as it answers.
            let interval = if *answering.borrow_and_update() {
                *every.borrow_and_update()
            } else {
                (*every.borrow_and_update()).min(PROBE_WHILE_DOWN)
            };
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                changed = every.changed() => {
                    if changed.is_err() { return; }
                    continue;
                }
                changed = answering.changed() => {
                    if changed.is_err() { return; }
                    continue;
                }
            }
            if !matches!(*self.registration.borrow(), Registration::Registered(_)) {
                continue;
            }
            count = count.wrapping_add(1);
            let mrq = Mrq {
                reference: match new_session_ref() {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(route = %self.route, error = %e, "SCAIP heartbeat not sent");
                        continue;
                    }
                },
                cid: self.cid.clone(),
                dty: DTY_LOCAL_UNIT,
                mty: Some(MessageType::Ping),
                ..Mrq::default()
            };
            let deadline = Instant::now() + self.cfg.answer_timeout;
            match self.exchange(&mrq, deadline).await {
                Ok(mrs) if mrs.snu == 0 => {
                    tracing::debug!(route = %self.route, "SCAIP heartbeat acknowledged")
                }
                Ok(mrs) => {
                    tracing::warn!(route = %self.route, snu = mrs.snu, "SCAIP heartbeat refused")
                }
                Err(e) => tracing::warn!(route = %self.route, error = %e, "SCAIP heartbeat failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{AlarmRef, Device, DeviceId, Timestamp};

    fn alarm(cause: AlarmCause, kind: Option<DeviceKind>) -> Alarm {
        Alarm {
            id: AlarmId(5),
            reference: AlarmRef::new(AlarmId(5), Timestamp::from_secs(1_764_000_000)),
            cause,
            device: kind.map(|kind| Device {
                id: DeviceId(0xC0FFEE),
                kind,
                zone: 2,
                location: "Kitchen".into(),
            }),
            raised_at: Timestamp::from_secs(1_764_000_000),
            evidence: None,
        }
    }

    /// Every code the unit can send, pinned to SS 91100:2014 Annex C.
    #[test]
    fn every_cause_has_its_annex_c_status_code() {
        let expected = |c: AlarmCause| match c {
            AlarmCause::Help => 10,
            AlarmCause::Fall => 9,
            AlarmCause::AlarmNotReceived => 10,
            AlarmCause::PendantMissing => 123,
            AlarmCause::PendantRestored => 124,
            AlarmCause::PendantBatteryLow => 16,
            AlarmCause::Tamper => 125,
            AlarmCause::MainsLost => 85,
            AlarmCause::MainsRestored => 86,
            AlarmCause::Jamming => 122,
            AlarmCause::JammingEnded => 124,
            AlarmCause::BaseBatteryLow => 16,
            AlarmCause::PeriodicTest | AlarmCause::ManualTest => 102,
            // Agreed with the centre, in Annex C's reserved range.
            AlarmCause::Fault(UnitFault::Radio) => 901,
            AlarmCause::FaultCleared(UnitFault::Radio) => 902,
            AlarmCause::Fault(UnitFault::Modem) => 903,
            AlarmCause::FaultCleared(UnitFault::Modem) => 904,
            AlarmCause::Fault(UnitFault::Registration) => 905,
            AlarmCause::FaultCleared(UnitFault::Registration) => 906,
            AlarmCause::Fault(UnitFault::Route) => 907,
            AlarmCause::FaultCleared(UnitFault::Route) => 908,
            AlarmCause::Fault(UnitFault::Storage) => 909,
            AlarmCause::FaultCleared(UnitFault::Storage) => 910,
            AlarmCause::Fault(UnitFault::JournalLost) => 911,
            AlarmCause::FaultCleared(UnitFault::JournalLost) => 912,
            AlarmCause::Fault(UnitFault::Audio) => 913,
            AlarmCause::FaultCleared(UnitFault::Audio) => 914,
        };
        for c in AlarmCause::ALL {
            assert_eq!(status_code(c), expected(c), "{c:?}");
        }
    }

    /// Every device type the unit can send, pinned to Annex A.
    #[test]
    fn device_types_follow_annex_a() {
        let dty = |cause, kind| device_type(&alarm(cause, kind));
        assert_eq!(dty(AlarmCause::Help, Some(DeviceKind::Personal)), 3);
        assert_eq!(dty(AlarmCause::Help, Some(DeviceKind::Fixed)), 4);
        assert_eq!(dty(AlarmCause::Help, Some(DeviceKind::Fall)), 5);
        assert_eq!(dty(AlarmCause::Fall, Some(DeviceKind::Personal)), 5);
        for c in AlarmCause::ALL {
            if c != AlarmCause::Fall {
                assert_eq!(dty(c, None), 2, "the unit's own report {c:?}");
            }
        }
    }

    #[test]
    fn location_codes_and_text() {
        let code = |s| LocationCode::parse(s).map(LocationCode::code);
        assert_eq!(code("bathroom"), Some(11));
        assert_eq!(code("Living room"), Some(43));
        assert_eq!(code("kitchen"), Some(21));
        assert_eq!(code("home"), Some(2));
        assert_eq!(code("043"), Some(43));
        assert_eq!(code("1000"), None);
        assert_eq!(code("attic"), None);
        let long = "Schlafzimmer im ersten Stock, hinten rechts";
        let t = location_text(long).unwrap();
        assert_eq!(t.chars().count(), 32);
        let umlauts = "ÄÖÜäöüß".repeat(6);
        assert_eq!(location_text(&umlauts).unwrap().chars().count(), 32);
        assert_eq!(location_text("  "), None);
    }

    #[test]
    fn every_alarm_request_passes_table1() {
        for c in AlarmCause::ALL {
            for kind in [None, Some(DeviceKind::Personal), Some(DeviceKind::Fixed)] {
                let m = alarm_request(&alarm(c, kind), "Ab12", "4612345", NO_VOICE);
                m.validate().unwrap();
                let body = m.emit();
                assert!(!body.contains("sip:"), "no SIP voice path offered: {body}");
            }
        }
    }

    #[test]
    fn validation_refuses_what_table1_forbids() {
        let ok = alarm_request(
            &alarm(AlarmCause::Help, Some(DeviceKind::Personal)),
            "Ab12",
            "4612345",
            NO_VOICE,
        );
        let snu = |m: Mrq| match m.validate() {
            Err(xml::InvalidBody { snu, .. }) => snu,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            snu(Mrq {
                lco: Some(1000),
                ..ok.clone()
            }),
            1
        );
        assert_eq!(
            snu(Mrq {
                lva: Some("Bedroom".into()),
                ..ok.clone()
            }),
            1
        );
        assert_eq!(
            snu(Mrq {
                lte: Some("x".repeat(33)),
                ..ok.clone()
            }),
            1
        );
        assert_eq!(
            snu(Mrq {
                did: Some("é".into()),
                ..ok.clone()
            }),
            2
        );
        assert_eq!(
            snu(Mrq {
                crd: Some("tel:+4670".into()),
                ..ok.clone()
            }),
            3
        );
        assert_eq!(
            snu(Mrq {
                reference: "A-1".into(),
                ..ok.clone()
            }),
            2
        );
        assert_eq!(
            snu(Mrq {
                cid: "12a".into(),
                ..ok
            }),
            2
        );
    }

    #[test]
    fn session_refs_are_random_over_the_whole_alphabet() {
        let refs: Vec<String> = (0..400).map(|_| new_session_ref().unwrap()).collect();
        let mut seen = std::collections::HashSet::new();
        for r in &refs {
            assert_eq!(r.len(), SESSION_REF_LEN);
            assert!(xml::valid_ref(r), "{r}");
            assert!(seen.insert(r.clone()), "repeated ref {r}");
        }
        // 6400 draws from 62 symbols: every symbol shows up (a miss has p < 1e-40).
        let used: std::collections::HashSet<u8> = refs.iter().flat_map(|r| r.bytes()).collect();
        assert_eq!(used.len(), REF_ALPHABET.len());
    }

    #[test]
    fn request_fields() {
        let a = alarm(AlarmCause::Help, Some(DeviceKind::Fixed));
        let r = new_session_ref().unwrap();
        assert!(xml::valid_ref(&r));
        let m = alarm_request(&a, &r, "4612345", NO_VOICE);
        assert_eq!(
            (m.dty, m.stc, m.lco, m.pri),
            (4, Some(10), Some(21), Some(1))
        );
        assert_eq!(m.lte.as_deref(), Some("Kitchen"));
        assert!(m.emit().contains("<lco>021</lco>"));
        assert_eq!(m.did.as_deref(), Some("00C0FFEE"));
        assert_eq!(
            device_type(&alarm(AlarmCause::Fall, Some(DeviceKind::Personal))),
            5
        );
        assert_eq!(device_type(&alarm(AlarmCause::MainsLost, None)), 2);
    }
}
