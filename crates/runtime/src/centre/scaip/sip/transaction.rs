//! SIP transactions (RFC 3261 §17) on the node: the non-INVITE and INVITE client
//! transactions, driven from the sans-IO machines of `vigil_wire::sip::transaction` (which
//! hold every timer, retransmission, ACK and CANCEL), and the server side: responses and the
//! duplicate requests they answer again (§17.2.2).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use vigil_wire::sip::server::Arrival;
use vigil_wire::sip::transaction::{Event, InviteClient, InviteState, NonInviteClient};

use super::message::{param, random_token, SipMsg};
use super::transport::{Incoming, Pending, Shared, SipNode};
use crate::centre::scaip::ScaipError;
use crate::sync::lock;

pub use vigil_wire::sip::transaction::{T1, T2};

/// What woke a transaction's driver.
enum Wake {
    Response(Box<SipMsg>),
    Timer,
    Closed,
}

/// The next response on `rx`, or the timer at `at` (never, for None), whichever comes first.
async fn next(rx: &mut mpsc::UnboundedReceiver<SipMsg>, at: Option<std::time::Instant>) -> Wake {
    let recv = async {
        match rx.recv().await {
            Some(resp) => Wake::Response(Box::new(resp)),
            None => Wake::Closed,
        }
    };
    match at {
        Some(at) => tokio::time::timeout_at(Instant::from_std(at), recv)
            .await
            .unwrap_or(Wake::Timer),
        None => recv.await,
    }
}

/// Now, as the machines count it (tokio's clock, so a paused test clock drives them too).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl SipNode {
    /// Runs a non-INVITE client transaction: sends the request built by `build(branch)` to
    /// `peer`, retransmitting over UDP (Timer E), and returns the final response, or times out
    /// after `timeout` (Timer F).
    pub async fn transaction(
        &self,
        peer: SocketAddr,
        build: &(dyn Fn(&str) -> String + Send + Sync),
        timeout: Duration,
    ) -> Result<SipMsg, ScaipError> {
        let branch = format!("z9hG4bK{}", random_token(16));
        let reliable = self.udp.is_none();
        let mut tx = NonInviteClient::new(build(&branch).into_bytes(), reliable, now())?
            .with_timeout(timeout);
        let (sender, mut rx) = mpsc::unbounded_channel();
        let _guard = PendingGuard::insert(&self.shared.pending, branch, sender);
        loop {
            while let Some(bytes) = tx.poll_transmit() {
                self.send(peer, bytes).await?;
            }
            let event = match next(&mut rx, tx.poll_timeout()).await {
                Wake::Response(resp) => tx.handle_response(*resp, now()),
                Wake::Timer => tx.handle_timeout(now()),
                Wake::Closed => return Err(ScaipError::Io("transport closed".into())),
            };
            match event {
                Some(Event::Final(resp)) => return Ok(resp),
                Some(Event::TimedOut) => return Err(ScaipError::NoResponse(timeout)),
                Some(Event::Provisional(_) | Event::Terminated) | None => {}
            }
        }
    }

    /// Runs an INVITE client transaction (§17.1.1): sends the INVITE built by `build(branch)`
    /// to `peer`, over UDP again at Timer A until any response comes, and waits for the final
    /// response: `answer` without a provisional response (Timer B), `ring` once the far end
    /// rings. A final response other than 2xx is acknowledged here, in this transaction
    /// (§17.1.1.3), and over UDP again whenever it comes again until Timer D. A 2xx is the caller's to acknowledge (its ACK is a transaction of its own,
    /// §13.2.2.4); [`Invited::retransmits`] gives the 2xx the far end sends again until that
    /// ACK reaches it. When it rings past `ring`, the INVITE is cancelled (§9.1) and the 487
    /// that ends it acknowledged.
    pub async fn invite_transaction(
        &self,
        peer: SocketAddr,
        build: &(dyn Fn(&str) -> String + Send + Sync),
        answer: Duration,
        ring: Duration,
    ) -> Result<Invited, ScaipError> {
        let branch = format!("z9hG4bK{}", random_token(16));
        let reliable = self.udp.is_none();
        let mut tx =
            InviteClient::new(build(&branch).into_bytes(), reliable, now())?.with_timeout(answer);
        let (sender, mut rx) = mpsc::unbounded_channel();
        let guard = PendingGuard::insert(&self.shared.pending, branch.clone(), sender);
        // When the far end started ringing; past `ring` the INVITE is cancelled.
        let mut ringing: Option<std::time::Instant> = None;
        let mut cancelled = false;
        loop {
            while let Some(bytes) = tx.poll_transmit() {
                self.send(peer, bytes).await?;
            }
            let ring_ends = ringing.filter(|_| !cancelled).map(|at| at + ring);
            let wake = match (tx.poll_timeout(), ring_ends) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let event = match next(&mut rx, wake).await {
                Wake::Response(resp) => tx.handle_response(*resp, now()),
                Wake::Timer => {
                    let now = now();
                    if ring_ends.is_some_and(|end| now >= end) {
                        // Nobody picked up: the far end stops ringing, and its 487 is awaited.
                        cancelled = true;
                        tx.cancel(now);
                    }
                    tx.handle_timeout(now)
                }
                Wake::Closed => return Err(ScaipError::Io("transport closed".into())),
            };
            match event {
                Some(Event::Provisional(_)) => {
                    ringing.get_or_insert_with(now);
                }
                Some(Event::Final(response)) => {
                    let later = if response.status().is_some_and(|s| s < 300) {
                        Some((guard, rx))
                    } else {
                        // The ACK of a non-2xx. Over UDP the transaction stays Completed until
                        // Timer D and acknowledges the response again each time the far end
                        // resends it, because that ACK was lost (§17.1.1.2).
                        while let Some(bytes) = tx.poll_transmit() {
                            self.send(peer, bytes).await?;
                        }
                        if let Some(udp) = &self.udp {
                            let udp = Arc::clone(udp);
                            self.keep_task(tokio::spawn(acknowledge_until_timer_d(
                                udp, peer, tx, guard, rx,
                            )));
                        }
                        None
                    };
                    return Ok(Invited {
                        response,
                        branch,
                        later,
                    });
                }
                Some(Event::TimedOut) => {
                    return Err(ScaipError::NoResponse(if ringing.is_some() {
                        ring
                    } else {
                        answer
                    }))
                }
                Some(Event::Terminated) | None => {}
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
        if let Some(branch) = req.branch() {
            lock(&self.shared.answered).answered(&branch, bytes.clone(), now());
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

/// An INVITE client transaction Completed by a final response other than 2xx, over UDP, until
/// Timer D ends it: each time the far end resends that response (the ACK was lost), the ACK
/// goes again. Holds the transaction's branch meanwhile, so the resent response reaches it.
async fn acknowledge_until_timer_d(
    udp: Arc<tokio::net::UdpSocket>,
    peer: SocketAddr,
    mut tx: InviteClient,
    _branch: PendingGuard,
    mut rx: mpsc::UnboundedReceiver<SipMsg>,
) {
    while tx.state() != InviteState::Terminated {
        // Its events tell nothing new: the caller has the final response already.
        let _ = match next(&mut rx, tx.poll_timeout()).await {
            Wake::Response(resp) => tx.handle_response(*resp, now()),
            Wake::Timer => tx.handle_timeout(now()),
            Wake::Closed => return,
        };
        while let Some(bytes) = tx.poll_transmit() {
            let _ = udp.send_to(&bytes, peer).await;
        }
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
        lock(pending).insert(branch.clone(), tx);
        PendingGuard {
            pending: Arc::clone(pending),
            branch,
        }
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        lock(&self.pending).remove(&self.branch);
    }
}

/// Hands a response to the client transaction waiting on its branch; with none waiting it is
/// dropped (a stray or late response).
pub(super) fn match_response(shared: &Shared, msg: SipMsg) {
    let tx = msg
        .branch()
        .and_then(|b| lock(&shared.pending).get(&b).cloned());
    if let Some(tx) = tx {
        let _ = tx.send(msg);
    }
}

/// Whether an incoming request belongs to a server transaction already open (§17.2.2), and so
/// goes no further: a retransmission of a request we answered is answered again through
/// `reply`, one still being handled is absorbed. A new request opens its transaction here.
pub(super) fn absorbed_by_server_transaction(
    shared: &Shared,
    msg: &SipMsg,
    reply: &(dyn Fn(Vec<u8>) + Sync),
) -> bool {
    let Some(branch) = msg.branch() else {
        return false;
    };
    let arrival = lock(&shared.answered).arrive(&branch, now());
    match arrival {
        Arrival::Retransmission(bytes) => {
            reply(bytes);
            true
        }
        Arrival::InProgress => true,
        Arrival::New => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SipTransport;

    /// A panic while the map of waiting client transactions was locked poisons the lock; the
    /// map is whole, so a response still finds its transaction instead of every transaction
    /// after it timing out.
    #[tokio::test]
    async fn responses_find_their_transaction_after_a_panic_poisoned_the_map() {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let (client, _) = SipNode::bind(SipTransport::Udp, any).await.unwrap();
        let (server, mut incoming) = SipNode::bind(SipTransport::Udp, any).await.unwrap();
        let pending = Arc::clone(&client.shared.pending);
        let _ = std::thread::spawn(move || {
            let _held = pending.lock();
            panic!("a panic while the map is locked");
        })
        .join();
        assert!(client.shared.pending.is_poisoned());

        let answering = Arc::clone(&server);
        tokio::spawn(async move {
            while let Some(request) = incoming.recv().await {
                let _ = answering.respond(&request, 200, "OK", "t2", &[]).await;
            }
        });
        let from = client.local_addr();
        let build = move |branch: &str| request("OPTIONS", from, branch, "poisoned@127.0.0.1");
        let response = client
            .transaction(server.local_addr(), &build, Duration::from_secs(2))
            .await
            .expect("the 200 reaches the transaction");
        assert_eq!(response.status(), Some(200));
    }

    /// A far end refuses the unit's INVITE (486) and, because the unit's ACK was lost, sends
    /// its 486 again: the transaction, Completed until Timer D, acknowledges it again
    /// (§17.1.1.2), although the caller already has its answer.
    #[tokio::test]
    async fn a_refusal_sent_again_is_acknowledged_again() {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let (client, _) = SipNode::bind(SipTransport::Udp, any).await.unwrap();
        let far = tokio::net::UdpSocket::bind(any).await.unwrap();
        let far_addr = far.local_addr().unwrap();
        let from = client.local_addr();
        let calling = tokio::spawn(async move {
            let build = move |branch: &str| request("INVITE", from, branch, "refused@127.0.0.1");
            let invited = client
                .invite_transaction(
                    far_addr,
                    &build,
                    Duration::from_secs(5),
                    Duration::from_secs(5),
                )
                .await
                .expect("a final response");
            (client, invited.response.status())
        });

        let invite = datagram(&far).await.expect("the INVITE");
        assert!(invite.starts_with("INVITE "), "{invite}");
        let header = |name: &str| {
            invite
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_default()
                .to_string()
        };
        let busy = format!(
            "SIP/2.0 486 Busy Here\r\n{}\r\n{}\r\n{};tag=far\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
            header("Via:"),
            header("From:"),
            header("To:"),
            header("Call-ID:"),
            header("CSeq:"),
        );
        far.send_to(busy.as_bytes(), from).await.unwrap();
        let (_client, status) = calling.await.unwrap();
        assert_eq!(status, Some(486));
        let ack = datagram(&far).await.expect("the ACK of the 486");
        assert!(ack.starts_with("ACK "), "{ack}");

        far.send_to(busy.as_bytes(), from).await.unwrap();
        let again = datagram(&far)
            .await
            .expect("the 486 sent again is acknowledged again");
        assert!(again.starts_with("ACK "), "{again}");
        assert_eq!(again, ack, "the same ACK, in the same transaction");
    }

    /// The next datagram on `socket` as text, within 2 s.
    async fn datagram(socket: &tokio::net::UdpSocket) -> Option<String> {
        let mut buf = vec![0u8; 4096];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(String::from_utf8_lossy(buf.get(..n)?).into_owned())
    }

    /// A request from `from` to 127.0.0.1 with no body, on `branch`.
    fn request(method: &str, from: SocketAddr, branch: &str, call_id: &str) -> String {
        format!(
            "{method} sip:far@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {from};branch={branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:near@127.0.0.1>;tag=t1\r\n\
             To: <sip:far@127.0.0.1>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 {method}\r\n\
             Content-Length: 0\r\n\r\n"
        )
    }
}
