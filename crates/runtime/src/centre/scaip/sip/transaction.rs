//! SIP transactions (RFC 3261 §17): the non-INVITE and INVITE client transactions with their
//! timers and retransmissions, the INVITE's CANCEL and ACK, and the server side: responses
//! and the duplicate requests they answer again (§17.2.2).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::message::{param, random_token, SipMsg};
use super::transport::{Incoming, Pending, Shared, SipNode};
use crate::centre::scaip::ScaipError;

/// Timer T1 (RFC 3261 §17.1.1.1): round-trip estimate.
pub const T1: Duration = Duration::from_millis(500);
/// Timer T2: cap of the non-INVITE retransmission interval.
pub const T2: Duration = Duration::from_secs(4);

impl SipNode {
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

/// Hands a response to the client transaction waiting on its branch; with none waiting it is
/// dropped (a stray or late response).
pub(super) fn match_response(shared: &Shared, msg: SipMsg) {
    let tx = msg
        .branch()
        .and_then(|b| shared.pending.lock().ok().and_then(|p| p.get(&b).cloned()));
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
    let Ok(mut answered) = shared.answered.lock() else {
        return true;
    };
    match answered.get(&branch) {
        // A retransmission of a request we answered: answer again (§17.2.2).
        Some(Some((_, bytes))) => {
            reply(bytes.clone());
            true
        }
        // Still being handled: absorb.
        Some(None) => true,
        None => {
            if answered.len() > 512 {
                answered.clear();
            }
            answered.insert(branch, None);
            false
        }
    }
}
