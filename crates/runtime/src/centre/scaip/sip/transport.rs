//! SIP transport (RFC 3261 §18): the node bound to a UDP socket, a TCP listener or TLS, the
//! connections it opens and accepts, Content-Length framing on streams, keep-alives
//! (RFC 5626 §4.4.1), and the rustls settings for either end of SIP over TLS.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::message::{canonical, redacted, SipMsg};
use super::transaction;
use crate::centre::scaip::ScaipError;
use crate::config::SipTransport;
use crate::sync::lock;
use vigil_wire::sip::server::ServerTransactions;

/// Largest message we accept.
const MAX_MESSAGE: usize = 16 * 1024;
/// Connections a node accepts at once; more are closed as they arrive, so a flood of idle
/// connections cannot use up the unit's file descriptors and starve its other routes.
pub const MAX_ACCEPTED: usize = 16;
/// An accepted connection that sends nothing for this long is closed.
pub const ACCEPTED_IDLE: Duration = Duration::from_secs(30);
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
pub(super) type Pending = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<SipMsg>>>>;
type Conns = Arc<Mutex<HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>>>;

/// Everything the socket tasks share.
pub(super) struct Shared {
    transport: SipTransport,
    pub(super) pending: Pending,
    conns: Conns,
    /// Server transactions: branch → our response, for answering retransmissions (§17.2.2).
    pub(super) answered: Mutex<ServerTransactions>,
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
    pub(super) shared: Arc<Shared>,
    local: SocketAddr,
    pub(super) udp: Option<Arc<UdpSocket>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Whether [`SipNode::send`] opens a connection when there is none (a server reaching a
    /// contact). A client that registers its flow's address opens flows itself.
    auto_connect: std::sync::atomic::AtomicBool,
}

impl Drop for SipNode {
    fn drop(&mut self) {
        for t in lock(&self.tasks).iter() {
            t.abort();
        }
        for t in lock(&self.shared.accepted_tasks).iter() {
            t.abort();
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
            answered: Mutex::new(ServerTransactions::default()),
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
        lock(&self.shared.lose).insert(method.to_string(), n);
    }

    /// Keeps `task` until the node is dropped, which aborts it.
    pub(super) fn keep_task(&self, task: JoinHandle<()>) {
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
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
                lock(&self.shared.conns)
                    .get(&peer)
                    .cloned()
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
        lock(&self.shared.conns)
            .get(&peer)
            .cloned()
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
        self.keep_task(task);
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
            answered: Mutex::new(ServerTransactions::default()),
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
        transaction::match_response(shared, msg);
        return;
    }
    let method = msg.method().unwrap_or_default();
    if method == "ACK" {
        return;
    }
    if let Some(n) = lock(&shared.lose).get_mut(&method) {
        if *n > 0 {
            *n -= 1;
            tracing::debug!(%peer, %method, "SIP: simulated loss of an incoming request");
            return;
        }
    }
    if transaction::absorbed_by_server_transaction(shared, &msg, reply) {
        return;
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
        {
            let mut tasks = lock(&shared.accepted_tasks);
            tasks.retain(|t| !t.is_finished());
            tasks.push(conn.abort_handle());
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
    {
        let mut c = lock(&shared.conns);
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
        {
            let mut c = lock(&shared.conns);
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
