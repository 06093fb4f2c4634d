//! A small SIP node (RFC 3261) for SCAIP: UDP or TCP transport, non-INVITE client
//! transactions with retransmission (§17.1.2), server-side duplicate suppression (§17.2.2),
//! and digest authentication (RFC 7616 / RFC 8760: SHA-256 when offered, MD5 only when it is
//! the only choice) answering both 401 and 407.
//!
//! Messages are parsed with `rsip`; requests are written as text.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::ScaipError;
use crate::config::SipTransport;

/// Timer T1 (RFC 3261 §17.1.1.1): round-trip estimate.
pub const T1: Duration = Duration::from_millis(500);
/// Timer T2: cap of the non-INVITE retransmission interval.
pub const T2: Duration = Duration::from_secs(4);
/// Largest message we accept.
const MAX_MESSAGE: usize = 16 * 1024;
/// Connections a node accepts at once; more are closed as they arrive, so a flood of idle
/// connections cannot use up the unit's file descriptors and starve its other routes.
pub const MAX_ACCEPTED: usize = 16;
/// An accepted connection that sends nothing for this long is closed.
pub const ACCEPTED_IDLE: Duration = Duration::from_secs(30);

/// A parsed SIP message and the helpers SCAIP needs.
#[derive(Clone, Debug)]
pub struct SipMsg {
    msg: rsip::SipMessage,
    headers: Vec<(String, String)>,
}

/// Long header names for the compact forms (RFC 3261 §7.3.3).
fn canonical(name: &str) -> String {
    let long = match name.to_ascii_lowercase().as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        other => return other.to_string(),
    };
    long.to_string()
}

impl SipMsg {
    /// Parses one complete message.
    pub fn parse(bytes: &[u8]) -> Result<SipMsg, ScaipError> {
        let msg = rsip::SipMessage::try_from(bytes)
            .map_err(|e| ScaipError::Sip(format!("unreadable SIP message: {e}")))?;
        let list = match &msg {
            rsip::SipMessage::Request(r) => &r.headers,
            rsip::SipMessage::Response(r) => &r.headers,
        };
        let mut headers = Vec::new();
        for h in list.iter() {
            let text = h.to_string();
            if let Some((name, value)) = text.split_once(':') {
                let name = canonical(name.trim());
                // A header line may carry several comma-separated Via values.
                if name == "via" {
                    for v in value.split(',') {
                        headers.push((name.clone(), v.trim().to_string()));
                    }
                } else {
                    headers.push((name, value.trim().to_string()));
                }
            }
        }
        Ok(SipMsg { msg, headers })
    }

    /// The first value of header `name` (case-insensitive, compact forms understood).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = canonical(name);
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        let name = canonical(name);
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Status code of a response.
    pub fn status(&self) -> Option<u16> {
        match &self.msg {
            rsip::SipMessage::Response(r) => Some(r.status_code.code()),
            rsip::SipMessage::Request(_) => None,
        }
    }

    /// Reason phrase of a response.
    pub fn reason(&self) -> String {
        match &self.msg {
            rsip::SipMessage::Response(r) => r.status_code.to_string(),
            rsip::SipMessage::Request(_) => String::new(),
        }
    }

    /// Method of a request.
    pub fn method(&self) -> Option<String> {
        match &self.msg {
            rsip::SipMessage::Request(r) => Some(r.method.to_string()),
            rsip::SipMessage::Response(_) => None,
        }
    }

    /// Request-URI of a request.
    pub fn request_uri(&self) -> Option<String> {
        match &self.msg {
            rsip::SipMessage::Request(r) => Some(r.uri.to_string()),
            rsip::SipMessage::Response(_) => None,
        }
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        self.msg.body()
    }

    /// The top Via's branch.
    pub fn branch(&self) -> Option<String> {
        self.header("via").and_then(|v| param(v, "branch"))
    }

    /// The CSeq method.
    pub fn cseq_method(&self) -> Option<String> {
        self.header("cseq")
            .and_then(|c| c.split_whitespace().nth(1))
            .map(str::to_string)
    }
}

/// Parses untrusted bytes as a SIP message and reads the headers SCAIP uses; never panics.
/// The entry point of the `scaip_sip` fuzz target.
pub fn parse_untrusted(bytes: &[u8]) -> Result<SipMsg, ScaipError> {
    let m = SipMsg::parse(bytes)?;
    let _ = (
        m.branch(),
        m.status(),
        m.method(),
        m.request_uri(),
        m.cseq_method(),
    );
    for name in [
        "to",
        "from",
        "contact",
        "www-authenticate",
        "proxy-authenticate",
    ] {
        if let Some(v) = m.header(name) {
            let _ = (
                addr_uri(v),
                aor(&addr_uri(v)),
                param(v, "tag"),
                Challenge::parse(v),
            );
        }
    }
    Ok(m)
}

/// The value of `;name=value` in a header value (outside `<…>`).
pub fn param(value: &str, name: &str) -> Option<String> {
    let after_uri = match value.rfind('>') {
        Some(i) => value.get(i + 1..).unwrap_or(""),
        None => value,
    };
    after_uri.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The URI of a name-addr (`"x" <sip:a@b>;tag=1`) or addr-spec (`sip:a@b;tag=1`).
pub fn addr_uri(value: &str) -> String {
    if let (Some(l), Some(r)) = (value.find('<'), value.find('>')) {
        if l < r {
            return value.get(l + 1..r).unwrap_or("").to_string();
        }
    }
    value.split(';').next().unwrap_or("").trim().to_string()
}

/// `user@host` of a SIP URI, without scheme, port and parameters, for comparing identities.
pub fn aor(uri: &str) -> String {
    let u = uri.trim();
    let u = u
        .strip_prefix("sip:")
        .or_else(|| u.strip_prefix("sips:"))
        .unwrap_or(u);
    let u = u.split([';', '?']).next().unwrap_or(u);
    let (user, host) = match u.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, u),
    };
    let host = if host.starts_with('[') {
        host.split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or(host).to_string()
    };
    match user {
        Some(user) => format!("{user}@{}", host.to_ascii_lowercase()),
        None => host.to_ascii_lowercase(),
    }
}

/// A digest challenge from `WWW-Authenticate` or `Proxy-Authenticate`.
#[derive(Clone, Debug, Default)]
pub struct Challenge {
    /// Realm.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque value to echo.
    pub opaque: Option<String>,
    /// Whether the server offers `qop=auth`.
    pub qop_auth: bool,
    /// Algorithm named by the server (MD5 if absent).
    pub algorithm: Option<String>,
    /// Whether the nonce was stale (credentials were right).
    pub stale: bool,
}

/// `key=value, key="value"` pairs of an auth header after its scheme.
pub fn auth_params(value: &str) -> (String, HashMap<String, String>) {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    let mut map = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.trim().is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut escaped = false;
            for c in chars.by_ref() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => break,
                    (_, c) => {
                        escaped = false;
                        val.push(c);
                    }
                }
            }
        } else {
            val = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        map.insert(key.trim().to_ascii_lowercase(), val.trim().to_string());
    }
    (scheme.to_string(), map)
}

impl Challenge {
    /// The digest algorithm this challenge asks for, if the unit supports it: SHA-256
    /// (RFC 8760) or MD5 (also when none is named, RFC 7616 §3.3).
    fn digest_algorithm(
        &self,
    ) -> Result<(rsip::headers::auth::Algorithm, &'static str), ScaipError> {
        match self.algorithm.as_deref() {
            None => Ok((rsip::headers::auth::Algorithm::Md5, "MD5")),
            Some(a) if a.eq_ignore_ascii_case("md5") => {
                Ok((rsip::headers::auth::Algorithm::Md5, "MD5"))
            }
            Some(a) if a.eq_ignore_ascii_case("sha-256") => {
                Ok((rsip::headers::auth::Algorithm::Sha256, "SHA-256"))
            }
            Some(a) => Err(ScaipError::Auth(format!(
                "digest algorithm {a} is not supported (SHA-256 or MD5)"
            ))),
        }
    }

    /// Picks the challenge to answer among those a 401/407 carries (RFC 8760 §2.4): SHA-256
    /// when the server offers it, MD5 only when it is the only choice.
    pub fn pick<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
        let usable: Vec<Challenge> = values
            .into_iter()
            .filter_map(Challenge::parse)
            .filter(|c| c.digest_algorithm().is_ok())
            .collect();
        let sha256 = usable
            .iter()
            .position(|c| c.digest_algorithm().is_ok_and(|(_, n)| n == "SHA-256"));
        let i = sha256.unwrap_or(0);
        usable.into_iter().nth(i)
    }

    /// Parses a Digest challenge.
    pub fn parse(value: &str) -> Option<Challenge> {
        let (scheme, p) = auth_params(value);
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        Some(Challenge {
            realm: p.get("realm")?.clone(),
            nonce: p.get("nonce")?.clone(),
            opaque: p.get("opaque").cloned(),
            qop_auth: p
                .get("qop")
                .is_some_and(|q| q.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth"))),
            algorithm: p.get("algorithm").cloned(),
            stale: p
                .get("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The `Authorization` / `Proxy-Authorization` value for `method` on `uri`.
    pub fn answer(
        &self,
        method: &str,
        uri: &str,
        user: &str,
        password: &str,
        nc: u32,
    ) -> Result<String, ScaipError> {
        let (algorithm, algorithm_name) = self.digest_algorithm()?;
        let parsed_uri =
            rsip::Uri::try_from(uri).map_err(|e| ScaipError::Sip(format!("bad URI {uri}: {e}")))?;
        let method_r: rsip::Method = method
            .parse()
            .map_err(|_| ScaipError::Sip(format!("unknown method {method}")))?;
        let cnonce = random_token(16);
        let qop = self.qop_auth.then(|| rsip::headers::auth::AuthQop::Auth {
            cnonce: cnonce.clone(),
            nc: u8::try_from(nc.min(99)).unwrap_or(1),
        });
        let response = rsip::services::DigestGenerator {
            username: user,
            password,
            nonce: &self.nonce,
            uri: &parsed_uri,
            realm: &self.realm,
            method: &method_r,
            qop: qop.as_ref(),
            algorithm,
        }
        .compute();
        let mut s = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{parsed_uri}\", response=\"{response}\", algorithm={algorithm_name}",
            self.realm, self.nonce
        );
        if qop.is_some() {
            s.push_str(&format!(
                ", qop=auth, nc={:08}, cnonce=\"{cnonce}\"",
                nc.min(99)
            ));
        }
        if let Some(o) = &self.opaque {
            s.push_str(&format!(", opaque=\"{o}\""));
        }
        Ok(s)
    }
}

/// Checks a client's `Authorization` value against our nonce and the user's password.
pub fn verify_authorization(
    value: &str,
    method: &str,
    realm: &str,
    nonce: &str,
    user: &str,
    password: &str,
) -> bool {
    let (scheme, p) = auth_params(value);
    if !scheme.eq_ignore_ascii_case("digest")
        || p.get("username").map(String::as_str) != Some(user)
        || p.get("realm").map(String::as_str) != Some(realm)
        || p.get("nonce").map(String::as_str) != Some(nonce)
    {
        return false;
    }
    let (Some(uri), Some(response)) = (p.get("uri"), p.get("response")) else {
        return false;
    };
    let Ok(uri) = rsip::Uri::try_from(uri.as_str()) else {
        return false;
    };
    let Ok(method) = method.parse::<rsip::Method>() else {
        return false;
    };
    let qop = match p.get("qop").map(String::as_str) {
        Some("auth") => {
            let nc = p.get("nc").and_then(|n| n.parse::<u8>().ok()).unwrap_or(0);
            Some(rsip::headers::auth::AuthQop::Auth {
                cnonce: p.get("cnonce").cloned().unwrap_or_default(),
                nc,
            })
        }
        None => None,
        Some(_) => return false,
    };
    let algorithm = match p
        .get("algorithm")
        .map(|a| a.to_ascii_uppercase())
        .as_deref()
    {
        None | Some("MD5") => rsip::headers::auth::Algorithm::Md5,
        Some("SHA-256") => rsip::headers::auth::Algorithm::Sha256,
        Some(_) => return false,
    };
    let expected = rsip::services::DigestGenerator {
        username: user,
        password,
        nonce,
        uri: &uri,
        realm,
        method: &method,
        qop: qop.as_ref(),
        algorithm,
    }
    .compute();
    // Not rsip's `verify`, which compares with `==`: how soon a wrong answer is refused must
    // not tell a client how much of it was right.
    expected.as_bytes().ct_eq(response.as_bytes()).into()
}

/// A SIP message for the log: `Authorization` and `Proxy-Authorization` values are replaced,
/// at every level, since a digest answer can be cracked offline for the password.
pub fn redacted(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let name = line.split(':').next().unwrap_or("").trim();
        if matches!(
            canonical(name).as_str(),
            "authorization" | "proxy-authorization"
        ) && line.contains(':')
        {
            out.push_str(name);
            out.push_str(": <redacted>\r\n");
        } else {
            out.push_str(line);
        }
    }
    out
}

/// `n` random lower-case hex characters (branches, tags, Call-IDs, nonces).
pub fn random_token(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; n.div_ceil(2)];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    let mut s = hex::encode(bytes);
    s.truncate(n);
    s
}

/// How a request reached this node: what the trust rules look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// A UDP datagram; only its source address says who sent it.
    Datagram,
    /// On a TCP/TLS connection this node opened (RFC 5626 style flow to its proxy).
    Opened,
    /// On a TCP/TLS connection a peer opened to this node's listener.
    Accepted,
}

/// A request that arrived, with where it came from.
#[derive(Debug)]
pub struct Incoming {
    /// Sender's transport address (responses go back there).
    pub peer: SocketAddr,
    /// The transport flow it came on.
    pub flow: Flow,
    /// The request.
    pub msg: SipMsg,
}

/// Server transactions: branch → where and what we answered (None while being handled).
type ServerTransactions = HashMap<String, Option<(SocketAddr, Vec<u8>)>>;
type Pending = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<SipMsg>>>>;
type Conns = Arc<Mutex<HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>>>;

/// Everything the socket tasks share.
struct Shared {
    transport: SipTransport,
    pending: Pending,
    conns: Conns,
    /// Server transactions: branch → our response, for answering retransmissions (§17.2.2).
    answered: Mutex<ServerTransactions>,
    incoming: mpsc::UnboundedSender<Incoming>,
    /// Simulated network loss of incoming requests (simulators only): method → how many.
    lose: Mutex<HashMap<String, u32>>,
    /// TLS role when the transport is TLS.
    #[cfg(feature = "tls")]
    tls: Option<TlsRole>,
    /// Room for accepted connections ([`MAX_ACCEPTED`]).
    accepted: Arc<tokio::sync::Semaphore>,
    /// Keep-alive pongs (a lone CRLF, RFC 5626 §4.4.1) heard on connections this node opened.
    pongs: tokio::sync::watch::Sender<u64>,
    /// Connections this node opened that have closed (the flow to the proxy dropped).
    flows_closed: tokio::sync::watch::Sender<u64>,
    /// Accepted connections, closed when the node is dropped (a server that stops).
    accepted_tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

/// A SIP node bound to one local address: sends requests, matches responses, hands incoming
/// requests to its owner.
pub struct SipNode {
    shared: Arc<Shared>,
    local: SocketAddr,
    udp: Option<Arc<UdpSocket>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Whether [`SipNode::send`] opens a connection when there is none (a server reaching a
    /// contact). A client that registers its flow's address opens flows itself.
    auto_connect: std::sync::atomic::AtomicBool,
}

impl Drop for SipNode {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.lock() {
            for t in tasks.iter() {
                t.abort();
            }
        }
        if let Ok(tasks) = self.shared.accepted_tasks.lock() {
            for t in tasks.iter() {
                t.abort();
            }
        }
    }
}

impl SipNode {
    /// Binds `bind` (UDP socket or TCP listener) and starts reading.
    pub async fn bind(
        transport: SipTransport,
        bind: SocketAddr,
    ) -> Result<(Arc<SipNode>, mpsc::UnboundedReceiver<Incoming>), ScaipError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            transport,
            pending: Arc::default(),
            conns: Arc::default(),
            answered: Mutex::new(HashMap::new()),
            incoming: tx,
            lose: Mutex::new(HashMap::new()),
            #[cfg(feature = "tls")]
            tls: None,
            accepted: Arc::new(tokio::sync::Semaphore::new(MAX_ACCEPTED)),
            pongs: tokio::sync::watch::channel(0).0,
            accepted_tasks: Mutex::new(Vec::new()),
            flows_closed: tokio::sync::watch::channel(0).0,
        });
        let io = |e: std::io::Error| {
            ScaipError::Io(format!(
                "{}: {e}",
                crate::hint::bind_failed(&bind, "the SCAIP route's bind", &e)
            ))
        };
        match transport {
            SipTransport::Udp => {
                let socket = Arc::new(UdpSocket::bind(bind).await.map_err(io)?);
                let local = socket.local_addr().map_err(io)?;
                let reader = tokio::spawn(read_udp(Arc::clone(&socket), Arc::clone(&shared)));
                Ok((
                    Arc::new(SipNode {
                        shared,
                        local,
                        udp: Some(socket),
                        tasks: Mutex::new(vec![reader]),
                        auto_connect: std::sync::atomic::AtomicBool::new(true),
                    }),
                    rx,
                ))
            }
            SipTransport::Tcp => {
                let listener = TcpListener::bind(bind).await.map_err(io)?;
                let local = listener.local_addr().map_err(io)?;
                let accept = tokio::spawn(accept_tcp(listener, Arc::clone(&shared)));
                Ok((
                    Arc::new(SipNode {
                        shared,
                        local,
                        udp: None,
                        tasks: Mutex::new(vec![accept]),
                        auto_connect: std::sync::atomic::AtomicBool::new(true),
                    }),
                    rx,
                ))
            }
            SipTransport::Tls => Err(ScaipError::Sip(if cfg!(feature = "tls") {
                "SIP over TLS needs certificates: use the TLS constructor".into()
            } else {
                "SIP over TLS is not built into this binary (feature `tls`); use TCP or UDP".into()
            })),
        }
    }

    /// Our transport address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// `UDP` or `TCP`, as written in Via.
    pub fn transport_name(&self) -> &'static str {
        match self.shared.transport {
            SipTransport::Udp => "UDP",
            SipTransport::Tcp => "TCP",
            SipTransport::Tls => "TLS",
        }
    }

    /// Makes the next `n` incoming requests of `method` vanish as if lost on the network.
    pub fn lose_incoming(&self, method: &str, n: u32) {
        if let Ok(mut l) = self.shared.lose.lock() {
            l.insert(method.to_string(), n);
        }
    }

    /// Sends raw bytes to `peer` (connecting over TCP if needed).
    pub async fn send(&self, peer: SocketAddr, bytes: Vec<u8>) -> Result<(), ScaipError> {
        tracing::debug!(%peer, msg = %redacted(&bytes), "SIP out");
        if let Some(udp) = &self.udp {
            udp.send_to(&bytes, peer)
                .await
                .map_err(|e| ScaipError::Io(format!("sending to {peer}: {e}")))?;
            return Ok(());
        }
        let conn = match self.live_conn(peer) {
            Some(c) => c,
            None if !self.auto_connect.load(Ordering::Relaxed) => {
                return Err(ScaipError::Io(format!("no connection to {peer}")));
            }
            None => {
                self.connect(peer).await?;
                self.shared
                    .conns
                    .lock()
                    .ok()
                    .and_then(|c| c.get(&peer).cloned())
                    .ok_or_else(|| ScaipError::Io(format!("connection to {peer} closed")))?
            }
        };
        conn.send(bytes)
            .map_err(|_| ScaipError::Io(format!("connection to {peer} closed")))
    }

    /// Sends only on connections opened with [`SipNode::connect`]: the owner opens its flow
    /// itself and registers its address.
    pub fn connect_only_explicitly(&self) {
        self.auto_connect.store(false, Ordering::Relaxed);
    }

    /// Whether a connection this node can send on to `peer` is open (always true over UDP).
    pub fn has_flow(&self, peer: SocketAddr) -> bool {
        self.udp.is_some() || self.live_conn(peer).is_some()
    }

    /// The open connection to `peer`, if there is one.
    fn live_conn(&self, peer: SocketAddr) -> Option<mpsc::UnboundedSender<Vec<u8>>> {
        self.shared
            .conns
            .lock()
            .ok()
            .and_then(|c| c.get(&peer).cloned())
            .filter(|c| !c.is_closed())
    }

    /// Ticks each time a connection this node opened closes.
    pub fn flows_closed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.flows_closed.subscribe()
    }

    /// A keep-alive on the open connection to `peer`: CRLFCRLF out, a CRLF back within
    /// `within` (RFC 5626 §4.4.1). Not for UDP, where a binding query does the job.
    pub async fn ping(&self, peer: SocketAddr, within: Duration) -> Result<(), ScaipError> {
        let conn = self
            .live_conn(peer)
            .ok_or_else(|| ScaipError::Io(format!("no connection to {peer}")))?;
        let mut pongs = self.shared.pongs.subscribe();
        pongs.borrow_and_update();
        conn.send(b"\r\n\r\n".to_vec())
            .map_err(|_| ScaipError::Io(format!("connection to {peer} closed")))?;
        match tokio::time::timeout(within, pongs.changed()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(ScaipError::Io(format!(
                "no keep-alive answer from {peer} within {} s",
                within.as_secs()
            ))),
        }
    }

    /// Opens a connection (TCP, or TLS as client) to `peer` now; returns our local address.
    pub async fn connect(&self, peer: SocketAddr) -> Result<SocketAddr, ScaipError> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(peer))
            .await
            .map_err(|_| ScaipError::Io(format!("connecting to {peer} timed out")))?
            .map_err(|e| ScaipError::Io(format!("cannot connect to {peer}: {e}")))?;
        let local = stream
            .local_addr()
            .map_err(|e| ScaipError::Io(format!("connection to {peer}: {e}")))?;
        let task = self.start_stream(stream, peer).await?;
        if let Ok(mut t) = self.tasks.lock() {
            t.retain(|t| !t.is_finished());
            t.push(task);
        }
        Ok(local)
    }

    #[cfg(not(feature = "tls"))]
    async fn start_stream(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Result<JoinHandle<()>, ScaipError> {
        Ok(start_connection(
            stream,
            peer,
            Flow::Opened,
            Arc::clone(&self.shared),
        ))
    }

    #[cfg(feature = "tls")]
    async fn start_stream(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Result<JoinHandle<()>, ScaipError> {
        match &self.shared.tls {
            None => Ok(start_connection(
                stream,
                peer,
                Flow::Opened,
                Arc::clone(&self.shared),
            )),
            Some(TlsRole::Client {
                config,
                server_name,
            }) => {
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(server_name.clone(), stream)
                    .await
                    .map_err(|e| ScaipError::Io(format!("TLS with {peer}: {e}")))?;
                Ok(start_connection(
                    tls,
                    peer,
                    Flow::Opened,
                    Arc::clone(&self.shared),
                ))
            }
            Some(TlsRole::Server { .. }) => Err(ScaipError::Io(format!(
                "no TLS connection from {peer} to answer on"
            ))),
        }
    }

    /// Binds a SIP-over-TLS node: a client connects out to its proxy and receives requests
    /// on that same connection; a server listens on `bind`.
    #[cfg(feature = "tls")]
    pub async fn bind_tls(
        bind: SocketAddr,
        role: TlsRole,
    ) -> Result<(Arc<SipNode>, mpsc::UnboundedReceiver<Incoming>), ScaipError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let server = match &role {
            TlsRole::Server { config } => Some(Arc::clone(config)),
            TlsRole::Client { .. } => None,
        };
        let shared = Arc::new(Shared {
            transport: SipTransport::Tls,
            pending: Arc::default(),
            conns: Arc::default(),
            answered: Mutex::new(HashMap::new()),
            incoming: tx,
            lose: Mutex::new(HashMap::new()),
            tls: Some(role),
            accepted: Arc::new(tokio::sync::Semaphore::new(MAX_ACCEPTED)),
            pongs: tokio::sync::watch::channel(0).0,
            accepted_tasks: Mutex::new(Vec::new()),
            flows_closed: tokio::sync::watch::channel(0).0,
        });
        let (local, tasks) = match server {
            Some(config) => {
                let io = |e: std::io::Error| {
                    ScaipError::Io(format!(
                        "{}: {e}",
                        crate::hint::bind_failed(&bind, "the SCAIP route's bind", &e)
                    ))
                };
                let listener = TcpListener::bind(bind).await.map_err(io)?;
                let local = listener.local_addr().map_err(io)?;
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let shared = Arc::clone(&shared);
                let task = tokio::spawn(async move {
                    loop {
                        let (stream, peer, permit) = admit(&listener, &shared).await;
                        let acceptor = acceptor.clone();
                        let shared = Arc::clone(&shared);
                        tokio::spawn(async move {
                            let handshake =
                                tokio::time::timeout(ACCEPTED_IDLE, acceptor.accept(stream)).await;
                            match handshake {
                                Ok(Ok(tls)) => {
                                    let _ =
                                        start_connection(tls, peer, Flow::Accepted, shared).await;
                                }
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "SIP TLS handshake failed")
                                }
                                Err(_) => tracing::debug!(%peer, "SIP TLS handshake timed out"),
                            }
                            drop(permit);
                        });
                    }
                });
                (local, vec![task])
            }
            None => (bind, Vec::new()),
        };
        Ok((
            Arc::new(SipNode {
                shared,
                local,
                udp: None,
                tasks: Mutex::new(tasks),
                auto_connect: std::sync::atomic::AtomicBool::new(true),
            }),
            rx,
        ))
    }

    /// Runs a non-INVITE client transaction: sends the request built by `build(branch)` to
    /// `peer`, retransmitting over UDP (Timer E), and returns the final response or times out.
    pub async fn transaction(
        &self,
        peer: SocketAddr,
        build: &(dyn Fn(&str) -> String + Send + Sync),
        timeout: Duration,
    ) -> Result<SipMsg, ScaipError> {
        let branch = format!("z9hG4bK{}", random_token(16));
        let bytes = build(&branch).into_bytes();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _guard = PendingGuard::insert(&self.shared.pending, branch.clone(), tx);
        self.send(peer, bytes.clone()).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut interval = T1;
        let reliable = self.udp.is_none();
        loop {
            let wait_until = if reliable {
                deadline
            } else {
                (tokio::time::Instant::now() + interval).min(deadline)
            };
            match tokio::time::timeout_at(wait_until, rx.recv()).await {
                Ok(Some(resp)) => {
                    if resp.status().is_some_and(|s| s >= 200) {
                        return Ok(resp);
                    }
                    // Provisional: keep waiting, retransmit at T2 (§17.1.2.2).
                    interval = T2;
                }
                Ok(None) => return Err(ScaipError::Io("transport closed".into())),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(ScaipError::NoResponse(timeout));
                }
                Err(_) => {
                    self.send(peer, bytes.clone()).await?;
                    interval = (interval * 2).min(T2);
                }
            }
        }
    }

    /// Runs an INVITE client transaction (§17.1.1): sends the request built by `build(branch)`
    /// to `peer`, over UDP again at Timer A until any response comes, and waits for the final
    /// response: `answer` without a provisional response (Timer B), `ring` once the far end
    /// rings. A final response other than 2xx is acknowledged here, in this transaction, with
    /// the ACK `ack(branch, response)` builds (§17.1.1.3). A 2xx is the caller's to acknowledge
    /// (its ACK is a transaction of its own, §13.2.2.4); [`Invited::retransmits`] gives the
    /// 2xx the far end sends again until that ACK reaches it. When it rings past `ring`, the
    /// INVITE is cancelled with the CANCEL `cancel(branch)` builds (§9.1) and the 487 that
    /// ends it acknowledged.
    pub async fn invite_transaction(
        &self,
        peer: SocketAddr,
        build: &(dyn Fn(&str) -> String + Send + Sync),
        ack: &(dyn Fn(&str, &SipMsg) -> String + Send + Sync),
        cancel: &(dyn Fn(&str) -> String + Send + Sync),
        answer: Duration,
        ring: Duration,
    ) -> Result<Invited, ScaipError> {
        let branch = format!("z9hG4bK{}", random_token(16));
        let bytes = build(&branch).into_bytes();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let guard = PendingGuard::insert(&self.shared.pending, branch.clone(), tx);
        self.send(peer, bytes.clone()).await?;
        let mut deadline = tokio::time::Instant::now() + answer;
        let mut interval = T1;
        let mut retransmit = self.udp.is_some();
        let mut ringing = false;
        let mut cancelled = false;
        loop {
            let wait_until = if retransmit {
                (tokio::time::Instant::now() + interval).min(deadline)
            } else {
                deadline
            };
            match tokio::time::timeout_at(wait_until, rx.recv()).await {
                // The answer to the CANCEL itself (same branch): the INVITE's 487 follows.
                Ok(Some(resp)) if resp.cseq_method().as_deref() == Some("CANCEL") => {}
                Ok(Some(resp)) => match resp.status().unwrap_or(0) {
                    100..=199 => {
                        // Proceeding: no more retransmissions, and the far end may ring long.
                        retransmit = false;
                        if !ringing && !cancelled {
                            ringing = true;
                            deadline = tokio::time::Instant::now() + ring;
                        }
                    }
                    200..=299 => {
                        return Ok(Invited {
                            response: resp,
                            branch,
                            later: Some((guard, rx)),
                        })
                    }
                    _ => {
                        self.send(peer, ack(&branch, &resp).into_bytes()).await?;
                        return Ok(Invited {
                            response: resp,
                            branch,
                            later: None,
                        });
                    }
                },
                Ok(None) => return Err(ScaipError::Io("transport closed".into())),
                Err(_) if tokio::time::Instant::now() >= deadline && ringing && !cancelled => {
                    // Nobody picked up: the far end stops ringing, and its 487 is awaited.
                    cancelled = true;
                    self.send(peer, cancel(&branch).into_bytes()).await?;
                    deadline = tokio::time::Instant::now() + answer;
                }
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(ScaipError::NoResponse(if ringing { ring } else { answer }));
                }
                Err(_) => {
                    self.send(peer, bytes.clone()).await?;
                    interval *= 2;
                }
            }
        }
    }

    /// Answers a request: copies Via, From, To (adding `to_tag`), Call-ID and CSeq (§8.2.6.2).
    pub async fn respond(
        &self,
        to: &Incoming,
        status: u16,
        reason: &str,
        to_tag: &str,
        extra: &[String],
    ) -> Result<(), ScaipError> {
        self.respond_with_body(to, status, reason, to_tag, extra, None)
            .await
            .map(drop)
    }

    /// [`SipNode::respond`] with a body, given as its content type and text. Returns the
    /// response's bytes, for a UAS that retransmits its 2xx to an INVITE (§13.3.1.4).
    pub async fn respond_with_body(
        &self,
        to: &Incoming,
        status: u16,
        reason: &str,
        to_tag: &str,
        extra: &[String],
        body: Option<(&str, &str)>,
    ) -> Result<Vec<u8>, ScaipError> {
        let bytes = Self::response_bytes(to, status, reason, to_tag, extra, body);
        let req = &to.msg;
        if let (Some(branch), Ok(mut a)) = (req.branch(), self.shared.answered.lock()) {
            a.insert(branch, Some((to.peer, bytes.clone())));
        }
        self.send(to.peer, bytes.clone()).await?;
        Ok(bytes)
    }

    /// The bytes of a response to `to`.
    fn response_bytes(
        to: &Incoming,
        status: u16,
        reason: &str,
        to_tag: &str,
        extra: &[String],
        body: Option<(&str, &str)>,
    ) -> Vec<u8> {
        let req = &to.msg;
        let mut s = format!("SIP/2.0 {status} {reason}\r\n");
        for v in req.headers("via") {
            s.push_str(&format!("Via: {v}\r\n"));
        }
        for name in ["From", "Call-ID", "CSeq"] {
            if let Some(v) = req.header(name) {
                s.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        if let Some(v) = req.header("to") {
            if param(v, "tag").is_none() && !to_tag.is_empty() {
                s.push_str(&format!("To: {v};tag={to_tag}\r\n"));
            } else {
                s.push_str(&format!("To: {v}\r\n"));
            }
        }
        for h in extra {
            s.push_str(h);
            s.push_str("\r\n");
        }
        // No Server header: a product banner only helps whoever probes the unit.
        match body {
            Some((content_type, text)) => s.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            )),
            None => s.push_str("Content-Length: 0\r\n\r\n"),
        }
        s.into_bytes()
    }
}

/// The final response to an INVITE.
pub struct Invited {
    /// The final response.
    pub response: SipMsg,
    /// The INVITE's branch.
    pub branch: String,
    later: Option<(PendingGuard, mpsc::UnboundedReceiver<SipMsg>)>,
}

impl Invited {
    /// The next copy of the 2xx the far end sends again (until it has the ACK), or None once
    /// `within` passes without one.
    pub async fn retransmits(&mut self, within: Duration) -> Option<SipMsg> {
        let (_, rx) = self.later.as_mut()?;
        tokio::time::timeout(within, rx.recv()).await.ok().flatten()
    }
}

/// Removes a pending transaction when its future ends or is dropped.
struct PendingGuard {
    pending: Pending,
    branch: String,
}

impl PendingGuard {
    fn insert(
        pending: &Pending,
        branch: String,
        tx: mpsc::UnboundedSender<SipMsg>,
    ) -> PendingGuard {
        if let Ok(mut p) = pending.lock() {
            p.insert(branch.clone(), tx);
        }
        PendingGuard {
            pending: Arc::clone(pending),
            branch,
        }
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&self.branch);
        }
    }
}

/// Dispatches one message read from the network.
async fn dispatch(
    shared: &Shared,
    peer: SocketAddr,
    flow: Flow,
    bytes: &[u8],
    reply: &(dyn Fn(Vec<u8>) + Sync),
) {
    let msg = match SipMsg::parse(bytes) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "SIP: dropping unreadable message");
            return;
        }
    };
    tracing::trace!(%peer, msg = %redacted(bytes), "SIP in");
    if msg.status().is_some() {
        let tx = msg
            .branch()
            .and_then(|b| shared.pending.lock().ok().and_then(|p| p.get(&b).cloned()));
        if let Some(tx) = tx {
            let _ = tx.send(msg);
        }
        return;
    }
    let method = msg.method().unwrap_or_default();
    if method == "ACK" {
        return;
    }
    if let Ok(mut lose) = shared.lose.lock() {
        if let Some(n) = lose.get_mut(&method) {
            if *n > 0 {
                *n -= 1;
                tracing::debug!(%peer, %method, "SIP: simulated loss of an incoming request");
                return;
            }
        }
    }
    if let Some(branch) = msg.branch() {
        let Ok(mut answered) = shared.answered.lock() else {
            return;
        };
        match answered.get(&branch) {
            // A retransmission of a request we answered: answer again (§17.2.2).
            Some(Some((_, bytes))) => {
                reply(bytes.clone());
                return;
            }
            // Still being handled: absorb.
            Some(None) => return,
            None => {
                if answered.len() > 512 {
                    answered.clear();
                }
                answered.insert(branch, None);
            }
        }
    }
    let _ = shared.incoming.send(Incoming { peer, flow, msg });
}

async fn read_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let data = buf.get(..n).unwrap_or(&[]).to_vec();
        let s = Arc::clone(&socket);
        let reply = move |bytes: Vec<u8>| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let _ = s.send_to(&bytes, peer).await;
            });
        };
        dispatch(&shared, peer, Flow::Datagram, &data, &reply).await;
    }
}

/// Accepts the next connection there is room for. Connections beyond [`MAX_ACCEPTED`] are
/// closed at once; accept errors (out of descriptors) back off instead of spinning.
async fn admit(
    listener: &TcpListener,
    shared: &Shared,
) -> (TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit) {
    let mut refused: u64 = 0;
    let mut backoff = Duration::from_millis(50);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(50);
                match Arc::clone(&shared.accepted).try_acquire_owned() {
                    Ok(permit) => {
                        if refused > 0 {
                            tracing::warn!(refused, "SIP: connections closed, too many at once");
                        }
                        return (stream, peer, permit);
                    }
                    Err(_) => {
                        refused += 1;
                        drop(stream);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "SIP: accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn accept_tcp(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, peer, permit) = admit(&listener, &shared).await;
        let conn = start_connection(stream, peer, Flow::Accepted, Arc::clone(&shared));
        if let Ok(mut t) = shared.accepted_tasks.lock() {
            t.retain(|t| !t.is_finished());
            t.push(conn.abort_handle());
        }
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Registers a TCP connection for sending and starts its reader and writer.
fn start_connection<S>(
    stream: S,
    peer: SocketAddr,
    flow: Flow,
    shared: Arc<Shared>,
) -> JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (read, mut write) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    if let Ok(mut c) = shared.conns.lock() {
        // An accepted connection never takes over a live one the node opened to that peer.
        let live = c.get(&peer).is_some_and(|t| !t.is_closed());
        if flow == Flow::Opened || !live {
            c.insert(peer, tx.clone());
        }
    }
    tokio::spawn(async move {
        // The writer ends with this task, however it ends (an abort included), so the
        // connection closes.
        let writer = AbortOnDrop(tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if write.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        }));
        read_tcp(read, peer, flow, &shared, tx.clone()).await;
        drop(writer);
        if let Ok(mut c) = shared.conns.lock() {
            if c.get(&peer).is_some_and(|t| t.same_channel(&tx)) {
                c.remove(&peer);
            }
        }
        // Told only once the connection is gone from the map, so whoever reacts opens anew.
        if flow == Flow::Opened {
            tracing::info!(%peer, "SIP: the connection to the proxy closed");
            shared.flows_closed.send_modify(|n| *n += 1);
        }
    })
}

/// Reads messages framed by Content-Length (RFC 3261 §18.3) from one connection.
async fn read_tcp<R: tokio::io::AsyncRead + Unpin>(
    mut read: R,
    peer: SocketAddr,
    flow: Flow,
    shared: &Shared,
    tx: mpsc::UnboundedSender<Vec<u8>>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Take out every complete message in the buffer.
        loop {
            // Keep-alives (RFC 5626 §4.4.1): a client pings with CRLFCRLF, a server pongs
            // with CRLF.
            let mut crlfs = 0;
            while buf.starts_with(b"\r\n") {
                buf.drain(..2);
                crlfs += 1;
            }
            match flow {
                Flow::Opened if crlfs > 0 => shared.pongs.send_modify(|n| *n += 1),
                Flow::Accepted if crlfs >= 2 => {
                    let _ = tx.send(b"\r\n".to_vec());
                }
                _ => {}
            }
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(buf.get(..end).unwrap_or(&[])).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    (canonical(n.trim()) == "content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            let total = end + 4 + len;
            if total > MAX_MESSAGE {
                return;
            }
            if buf.len() < total {
                break;
            }
            let message: Vec<u8> = buf.drain(..total).collect();
            let tx = tx.clone();
            let reply = move |bytes: Vec<u8>| {
                let _ = tx.send(bytes);
            };
            dispatch(shared, peer, flow, &message, &reply).await;
        }
        if buf.len() > MAX_MESSAGE {
            return;
        }
        let got = if flow == Flow::Accepted {
            match tokio::time::timeout(ACCEPTED_IDLE, read.read(&mut chunk)).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::debug!(%peer, "SIP: idle connection closed");
                    return;
                }
            }
        } else {
            read.read(&mut chunk).await
        };
        match got {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
        }
    }
}

/// Which end of SIP over TLS a node is.
#[cfg(feature = "tls")]
#[derive(Clone)]
pub enum TlsRole {
    /// A device: connects to its proxy and checks the proxy's certificate.
    Client {
        /// rustls client settings (trust anchors).
        config: Arc<rustls::ClientConfig>,
        /// The name the proxy's certificate must carry.
        server_name: rustls::pki_types::ServerName<'static>,
    },
    /// A receiver or proxy: accepts connections with its certificate.
    Server {
        /// rustls server settings (certificate and key).
        config: Arc<rustls::ServerConfig>,
    },
}

/// TLS client settings trusting the CA certificates in `ca_pem`, for `server_name`.
#[cfg(feature = "tls")]
pub fn tls_client(ca_pem: &[u8], server_name: &str) -> Result<TlsRole, ScaipError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| ScaipError::Sip(format!("CA certificate file: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| ScaipError::Sip(format!("CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ScaipError::Sip(
            "no CA certificate in the trust file".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ScaipError::Sip(format!("TLS settings: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name = rustls::pki_types::ServerName::try_from(server_name.to_string())
        .map_err(|e| ScaipError::Sip(format!("TLS server name {server_name}: {e}")))?;
    Ok(TlsRole::Client {
        config: Arc::new(config),
        server_name,
    })
}

/// TLS server settings from a PEM certificate chain and PKCS#8 key.
#[cfg(feature = "tls")]
pub fn tls_server(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsRole, ScaipError> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ScaipError::Sip(format!("certificate file: {e}")))?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| ScaipError::Sip(format!("key file: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ScaipError::Sip(format!("TLS settings: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ScaipError::Sip(format!("certificate and key: {e}")))?;
    Ok(TlsRole::Server {
        config: Arc::new(config),
    })
}

/// A counter for CSeq numbers.
#[derive(Debug, Default)]
pub struct CSeq(AtomicU32);

impl CSeq {
    /// The next number.
    pub fn next(&self) -> u32 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_answer_verifies() {
        let c = Challenge::parse(
            "Digest realm=\"centre\", nonce=\"abc\", qop=\"auth,auth-int\", opaque=\"o\"",
        )
        .unwrap();
        assert!(c.qop_auth);
        let a = c
            .answer("REGISTER", "sip:centre.test", "unit", "pw", 1)
            .unwrap();
        assert!(verify_authorization(
            &a, "REGISTER", "centre", "abc", "unit", "pw"
        ));
        assert!(!verify_authorization(
            &a, "REGISTER", "centre", "abc", "unit", "wrong"
        ));
        let c = Challenge::parse("Digest realm=\"r\", nonce=\"n\"").unwrap();
        let a = c.answer("MESSAGE", "sip:arc@r", "u", "p", 1).unwrap();
        assert!(verify_authorization(&a, "MESSAGE", "r", "n", "u", "p"));
        assert!(!a.contains("qop"));
    }

    #[test]
    fn a_digest_answer_wrong_only_in_its_last_digit_is_refused() {
        let c = Challenge::parse("Digest realm=\"r\", nonce=\"n\"").unwrap();
        let a = c.answer("MESSAGE", "sip:arc@r", "u", "p", 1).unwrap();
        let response = auth_params(&a).1["response"].clone();
        let last = response.chars().last().unwrap();
        let mut wrong = response[..response.len() - 1].to_string();
        wrong.push(if last == '0' { '1' } else { '0' });
        let forged = a.replace(&response, &wrong);
        assert_ne!(forged, a);
        assert!(!verify_authorization(
            &forged, "MESSAGE", "r", "n", "u", "p"
        ));
    }

    /// MD5 digest without qop (RFC 2617 §3.2.2.1), value computed independently with Python.
    #[test]
    fn authorization_values_never_reach_the_log() {
        let msg = b"REGISTER sip:x SIP/2.0\r\nAuthorization: Digest response=\"abc\"\r\n\
                    proxy-authorization: Digest response=\"def\"\r\nTo: <sip:a@b>\r\n\r\n";
        let r = redacted(msg);
        assert!(!r.contains("abc") && !r.contains("def"), "{r}");
        assert!(r.contains("To: <sip:a@b>") && r.contains("Authorization: <redacted>"));
    }

    #[test]
    fn sha256_is_preferred_and_verifies() {
        let md5 = r#"Digest realm="centre.test", nonce="abc", qop="auth", algorithm=MD5"#;
        let sha = r#"Digest realm="centre.test", nonce="abc", qop="auth", algorithm=SHA-256"#;
        let c = Challenge::pick([md5, sha]).unwrap();
        assert_eq!(c.algorithm.as_deref(), Some("SHA-256"));
        let answer = c
            .answer("REGISTER", "sip:centre.test", "u", "pw", 1)
            .unwrap();
        assert!(answer.contains("algorithm=SHA-256"), "{answer}");
        let response = auth_params(&answer).1["response"].clone();
        assert_eq!(response.len(), 64, "a SHA-256 digest: {answer}");
        assert!(verify_authorization(
            &answer,
            "REGISTER",
            "centre.test",
            "abc",
            "u",
            "pw"
        ));
        assert!(!verify_authorization(
            &answer,
            "REGISTER",
            "centre.test",
            "abc",
            "u",
            "px"
        ));
        // MD5 only when it is the only choice.
        let only = Challenge::pick([md5]).unwrap();
        assert!(only
            .answer("REGISTER", "sip:centre.test", "u", "pw", 1)
            .unwrap()
            .contains("algorithm=MD5"));
        let odd = r#"Digest realm="x", nonce="n", algorithm=SHA-512-256"#;
        assert!(Challenge::pick([odd]).is_none());
    }

    #[test]
    fn digest_known_answer() {
        let c = Challenge {
            realm: "centre.test".into(),
            nonce: "4a1b2c3d".into(),
            ..Challenge::default()
        };
        let a = c
            .answer("REGISTER", "sip:centre.test", "unit", "secret", 1)
            .unwrap();
        let (_, p) = auth_params(&a);
        assert_eq!(
            p.get("response").map(String::as_str),
            Some("c8c5c413c02297bf097426b25e551f08")
        );
    }

    #[test]
    fn uris_and_params() {
        assert_eq!(
            aor("sip:Unit1@Example.COM:5060;transport=tcp"),
            "Unit1@example.com"
        );
        assert_eq!(addr_uri("\"A\" <sip:a@b>;tag=x"), "sip:a@b");
        assert_eq!(
            param("<sip:a@b;lr>;tag=x;expires=30", "expires").as_deref(),
            Some("30")
        );
        assert_eq!(
            param("SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1;rport", "branch").as_deref(),
            Some("z9hG4bK1")
        );
    }
}
