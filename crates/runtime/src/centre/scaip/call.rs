//! Voice calls on the SCAIP route's SIP registration: the unit answers the centre's call-back
//! (an INVITE through the proxy, RFC 3261 §13.3) so the operator can talk with the person.
//!
//! The unit is a user agent server here, with one call at a time:
//! - an INVITE arrives only through the trust rules of the route (from the proxy, on the
//!   registered flow); it is answered automatically only inside the auto-answer window the core
//!   opens after an alarm (480 outside it, 486 while a call is up);
//! - the SDP offer (RFC 3264) is answered with G.711 A-law or µ-law and telephone-events; the
//!   media run between the RTP socket and the unit's call audio ([`crate::voice::media`]);
//! - over UDP the 200 is sent again until the ACK comes (§13.3.1.4), and the call is ended with
//!   a BYE when none comes within 64·T1;
//! - BYE ends the call, CANCEL of an answered INVITE changes nothing (§9.2), and a re-INVITE
//!   (hold, a new address) is answered with the same negotiation.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use vigil_wire::sip::server::AnswerRetransmission;

use super::sip::{self, Incoming, SipNode, T1};
use super::{lock, ALLOW};
use crate::voice::call_port::CallAudioPort;
use crate::voice::g711::Law;
use crate::voice::media::{Media, MediaStats};
use crate::voice::sdp::{self, Agreed};
use crate::voice::srtp;

use crate::voice::call_port::AudioDeviceError;
pub use crate::voice::call_port::CallAudio;

/// Why a call the unit places did not get going.
#[derive(Debug, thiserror::Error)]
pub enum CallSetupError {
    /// The unit has a call up already (one call at a time).
    #[error("a call is already up")]
    AlreadyUp,
    /// The unit has no loudspeaker and microphone for calls.
    #[error("this unit has no call audio (loudspeaker and microphone)")]
    NoCallAudio,
    /// No socket for the call's RTP.
    #[error("no RTP socket: {0}")]
    NoRtpSocket(#[source] std::io::Error),
    /// The loudspeaker and microphone could not be opened.
    #[error("the call audio could not be opened: {0}")]
    CallAudio(#[source] AudioDeviceError),
    /// Opening the call audio did not finish.
    #[error("opening the call audio failed")]
    CallAudioTask,
    /// The ACK to the far end's answer could not be sent.
    #[error("the ACK could not be sent: {0}")]
    Ack(#[source] Box<super::ScaipError>),
    /// The far end's SDP answer offers nothing the unit can use.
    #[error("the far end's answer cannot be used: {0}")]
    Answer(#[source] sdp::SdpError),
}

/// The laws the unit answers with, in its order of preference when the offer allows both.
const LAWS: [Law; 2] = [Law::Alaw, Law::Ulaw];

/// What the centre's calls have done, for `vigil status`, logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallReport {
    /// A call is up now.
    pub active: bool,
    /// Calls answered since start.
    pub answered: u32,
    /// Calls the unit placed that were answered, since start.
    pub placed: u32,
    /// Calls refused (outside the window, busy, no common codec).
    pub refused: u32,
    /// DTMF keys the far end sent, in order (the last 32).
    pub keys: String,
    /// How the last call ended, and its media counters.
    pub last_end: Option<(String, MediaStats)>,
}

/// The call in progress.
struct Active {
    call_id: String,
    /// The unit's tag in the dialog (its To tag).
    local_tag: String,
    /// The centre's From header as it came (with its tag): the To of the unit's requests.
    remote_from: String,
    /// The unit's To header with its tag: the From of the unit's requests.
    local_to: String,
    /// Where the unit's requests in the dialog go (the centre's Contact).
    remote_target: String,
    /// Record-Route, in order: the unit's requests carry it as Route (§12.1.1).
    route_set: Vec<String>,
    agreed: watch::Sender<Agreed>,
    stop: watch::Sender<bool>,
    acked: watch::Sender<bool>,
    media_local: SocketAddr,
    sdp_version: u64,
    session_id: u64,
    /// The unit's requests in the dialog carry a CSeq above this (§12.2.1.1): the INVITE's,
    /// when the unit placed the call.
    cseq_floor: u32,
}

/// The SCAIP route's calls.
pub struct CallDesk {
    answer_until: Mutex<Option<Instant>>,
    audio: Mutex<Option<CallAudio>>,
    active: Mutex<Option<Active>>,
    report: watch::Sender<CallReport>,
    cseq: sip::CSeq,
}

impl Default for CallDesk {
    fn default() -> CallDesk {
        CallDesk {
            answer_until: Mutex::new(None),
            audio: Mutex::new(None),
            active: Mutex::new(None),
            report: watch::channel(CallReport::default()).0,
            cseq: sip::CSeq::default(),
        }
    }
}

/// What the link gives the desk to answer and send with.
pub(super) struct Dialogue<'a> {
    pub node: &'a Arc<SipNode>,
    /// The unit's contact URI.
    pub contact: String,
    /// The unit's address for RTP.
    pub media_ip: IpAddr,
    /// The proxy, where the unit's requests go.
    pub proxy: SocketAddr,
    /// The Via header for a branch.
    pub via: &'a (dyn Fn(&str) -> String + Send + Sync),
    /// Whether the transport is unreliable (UDP): the 2xx is retransmitted.
    pub udp: bool,
    /// Whether the signalling is encrypted (TLS), so SRTP keys may travel in the SDP.
    pub keys_safe: bool,
}

impl CallDesk {
    /// Answers the centre's calls until `until` (monotonic), as the core asks after an alarm.
    pub fn answer_until(&self, until: Instant) {
        *lock(&self.answer_until) = Some(until);
    }

    /// The audio calls use: the unit's loudspeaker and microphone. Without it, calls are
    /// refused (480): there is no way to speak.
    pub fn set_audio(&self, audio: CallAudio) {
        *lock(&self.audio) = Some(audio);
    }

    /// Whether a call could carry speech: the unit has call audio.
    pub fn can_speak(&self) -> bool {
        lock(&self.audio).is_some()
    }

    /// Follows what the calls do.
    pub fn report(&self) -> watch::Receiver<CallReport> {
        self.report.subscribe()
    }

    fn refused(&self) {
        self.report.send_modify(|r| r.refused += 1);
    }

    /// Handles a request of the call methods; false if `req` is not one.
    pub(super) async fn on_request(
        self: &Arc<Self>,
        d: Dialogue<'_>,
        req: &Incoming,
        tag: &str,
    ) -> bool {
        let method = req.msg.method().unwrap_or_default();
        match method.as_str() {
            "INVITE" => self.on_invite(d, req).await,
            "ACK" => {
                if let Some(a) = lock(&self.active).as_ref() {
                    if req.msg.header("call-id") == Some(a.call_id.as_str()) {
                        a.acked.send_replace(true);
                    }
                }
            }
            "BYE" => {
                let ours = self.take_if(req);
                match ours {
                    Some(a) => {
                        let _ = d.node.respond(req, 200, "OK", &a.local_tag, &[]).await;
                        self.end(a, "the centre hung up");
                    }
                    None => {
                        let _ = d
                            .node
                            .respond(req, 481, "Call/Transaction Does Not Exist", tag, &[])
                            .await;
                    }
                }
            }
            "CANCEL" => {
                // The unit answers at once, so a CANCEL finds the INVITE answered already:
                // it is acknowledged and changes nothing (§9.2). One for no call is 481.
                let known = lock(&self.active)
                    .as_ref()
                    .is_some_and(|a| req.msg.header("call-id") == Some(a.call_id.as_str()));
                let (code, reason) = if known {
                    (200, "OK")
                } else {
                    (481, "Call/Transaction Does Not Exist")
                };
                let _ = d.node.respond(req, code, reason, tag, &[]).await;
            }
            _ => return false,
        }
        true
    }

    /// The active call, taken out, if `req` belongs to it.
    fn take_if(&self, req: &Incoming) -> Option<Active> {
        let mut active = lock(&self.active);
        let ours = active.as_ref().is_some_and(|a| {
            req.msg.header("call-id") == Some(a.call_id.as_str())
                && req
                    .msg
                    .header("to")
                    .and_then(|t| sip::param(t, "tag"))
                    .is_some_and(|t| t == a.local_tag)
        });
        if ours {
            active.take()
        } else {
            None
        }
    }

    fn end(&self, a: Active, why: &str) {
        tracing::info!(call_id = %a.call_id, why, "call ended");
        let why = why.to_string();
        // The report first, then the media's stop: the media task fills in its counters when
        // it ends, and must not find the report still without this call's end.
        self.report.send_modify(|r| {
            r.active = false;
            r.last_end = Some((why, MediaStats::default()));
        });
        a.stop.send_replace(true);
    }

    async fn on_invite(self: &Arc<Self>, d: Dialogue<'_>, req: &Incoming) {
        let node = d.node;
        let to_tag = req.msg.header("to").and_then(|t| sip::param(t, "tag"));
        if let Some(to_tag) = to_tag {
            return self.on_reinvite(&d, req, &to_tag).await;
        }
        let local_tag = sip::random_token(10);
        let refuse = |code: u16, reason: &'static str| {
            let local_tag = local_tag.clone();
            async move {
                self.refused();
                tracing::info!(code, reason, "centre's call refused");
                let _ = node.respond(req, code, reason, &local_tag, &[]).await;
            }
        };
        if lock(&self.active).is_some() {
            return refuse(486, "Busy Here").await;
        }
        let in_window = lock(&self.answer_until).is_some_and(|u| Instant::now() < u);
        if !in_window {
            return refuse(480, "Temporarily Unavailable").await;
        }
        let Some(audio) = lock(&self.audio).clone() else {
            return refuse(480, "Temporarily Unavailable").await;
        };
        let agreed = match negotiated(req, d.keys_safe) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "centre's call: unusable SDP offer");
                let code = e.sip_status();
                return refuse(code, reason_of(code)).await;
            }
        };
        let media = match Media::bind(d.media_ip).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "centre's call: no RTP socket");
                return refuse(500, "Server Internal Error").await;
            }
        };
        // The loudspeaker and microphone open before the call is answered: a call nobody
        // could hear is refused, and the operator's phone says so at once.
        let port = match tokio::task::spawn_blocking(move || audio()).await {
            Ok(Ok(port)) => port,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "centre's call refused: the call audio could not be opened");
                return refuse(503, "Service Unavailable").await;
            }
            Err(_) => {
                tracing::error!("centre's call refused: opening the call audio failed");
                return refuse(503, "Service Unavailable").await;
            }
        };
        let session_id = rand_u32();
        let answer = sdp::write_answer(&agreed, media.local(), session_id, 1);
        let call_id = req.msg.header("call-id").unwrap_or_default().to_string();
        let remote_from = req.msg.header("from").unwrap_or_default().to_string();
        let local_to = format!(
            "{};tag={local_tag}",
            req.msg.header("to").unwrap_or_default()
        );
        let remote_target = req
            .msg
            .header("contact")
            .map(sip::addr_uri)
            .unwrap_or_default();
        let route_set: Vec<String> = req
            .msg
            .headers("record-route")
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut extra = vec![format!("Contact: <{}>", d.contact), ALLOW.to_string()];
        extra.extend(route_set.iter().map(|r| format!("Record-Route: {r}")));
        let bytes = match node
            .respond_with_body(
                req,
                200,
                "OK",
                &local_tag,
                &extra,
                Some(("application/sdp", &answer)),
            )
            .await
        {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(error = %e, "centre's call: the answer could not be sent");
                return;
            }
        };
        let (agreed_tx, agreed_rx) = watch::channel(agreed);
        let (stop_tx, stop_rx) = watch::channel(false);
        let (acked_tx, acked_rx) = watch::channel(false);
        *lock(&self.active) = Some(Active {
            call_id: call_id.clone(),
            local_tag,
            remote_from,
            local_to,
            remote_target,
            route_set,
            agreed: agreed_tx,
            stop: stop_tx,
            acked: acked_tx,
            media_local: media.local(),
            sdp_version: 1,
            session_id,
            cseq_floor: 0,
        });
        self.report.send_modify(|r| {
            r.active = true;
            r.answered += 1;
        });
        tracing::info!(%call_id, "centre's call answered");
        self.run_media(media, port, agreed_rx, stop_rx, call_id.clone());
        if d.udp {
            let desk = Arc::clone(self);
            let (node, peer) = (Arc::clone(node), req.peer);
            let bye = ByeRoute::of(&d);
            tokio::spawn(async move {
                desk.until_acked(node, peer, bytes, acked_rx, call_id, bye)
                    .await;
            });
        }
    }

    /// Runs a call's media and follows the keys the far end sends.
    fn run_media(
        self: &Arc<Self>,
        media: Media,
        port: Box<dyn CallAudioPort>,
        agreed_rx: watch::Receiver<Agreed>,
        stop_rx: watch::Receiver<bool>,
        call_id: String,
    ) {
        let (keys_tx, mut keys) = mpsc::unbounded_channel();
        let desk = Arc::clone(self);
        let id = call_id;
        tokio::spawn(async move {
            let stats = media.run(agreed_rx, port, stop_rx, keys_tx).await;
            tracing::info!(call_id = %id, ?stats, "call media ended");
            desk.report.send_modify(|r| {
                if let Some((_, s)) = r.last_end.as_mut() {
                    *s = stats;
                }
            });
        });
        let desk = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(k) = keys.recv().await {
                tracing::info!(key = %k, "DTMF from the centre");
                desk.report.send_modify(|r| {
                    r.keys.push(k);
                    if r.keys.len() > 32 {
                        r.keys.remove(0);
                    }
                });
            }
        });
    }

    /// Gets a call the unit places ready: its call audio (`audio`, or the unit's loudspeaker
    /// and microphone) open and an RTP socket bound for the offer. Refused while a call is up
    /// or without call audio.
    pub(super) async fn prepare(
        &self,
        media_ip: IpAddr,
        audio: Option<CallAudio>,
        keys_safe: bool,
    ) -> Result<Placing, CallSetupError> {
        if lock(&self.active).is_some() {
            return Err(CallSetupError::AlreadyUp);
        }
        let audio = audio
            .or_else(|| lock(&self.audio).clone())
            .ok_or(CallSetupError::NoCallAudio)?;
        let media = Media::bind(media_ip)
            .await
            .map_err(CallSetupError::NoRtpSocket)?;
        let port = match tokio::task::spawn_blocking(move || audio()).await {
            Ok(Ok(port)) => port,
            Ok(Err(e)) => return Err(CallSetupError::CallAudio(e)),
            Err(_) => return Err(CallSetupError::CallAudioTask),
        };
        let session_id = rand_u32();
        // Over TLS the call is offered as SRTP only: its keys are safe in the SDP, and the
        // home's audio should not cross the network in the clear.
        let key = keys_safe.then(srtp::Key::random);
        Ok(Placing {
            offer: sdp::write_offer(&LAWS, media.local(), session_id, 1, key.as_ref()),
            key,
            media,
            port,
            call_id: format!("{}@vigil", sip::random_token(20)),
            from_tag: sip::random_token(10),
            session_id,
        })
    }

    /// The far end answered the unit's call (`invited` holds the 2xx to the INVITE of CSeq
    /// `cseq`): the 2xx is acknowledged (again for each copy the far end resends), the dialog
    /// kept for the BYE either side sends, and the media started. An answer the unit cannot
    /// use is acknowledged and the call ended with a BYE (§13.2.2.4).
    pub(super) async fn connected(
        self: &Arc<Self>,
        d: Dialogue<'_>,
        placing: Placing,
        local_uri: &str,
        mut invited: sip::Invited,
        cseq: u32,
    ) -> Result<(), CallSetupError> {
        let resp = &invited.response;
        let remote_from = resp.header("to").unwrap_or_default().to_string();
        let remote_target = resp
            .header("contact")
            .map(sip::addr_uri)
            .unwrap_or_default();
        // The UAC's route set is the Record-Route of the 2xx, reversed (§12.1.2).
        let mut route_set: Vec<String> = resp
            .headers("record-route")
            .iter()
            .map(|s| s.to_string())
            .collect();
        route_set.reverse();
        let local_to = format!("<{local_uri}>;tag={}", placing.from_tag);
        let mut ack = format!(
            "ACK {remote_target} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n",
            (d.via)(&format!("z9hG4bK{}", sip::random_token(16)))
        );
        for r in &route_set {
            ack.push_str(&format!("Route: {r}\r\n"));
        }
        ack.push_str(&format!(
            "From: {local_to}\r\nTo: {remote_from}\r\nCall-ID: {}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
            placing.call_id
        ));
        d.node
            .send(d.proxy, ack.clone().into_bytes())
            .await
            .map_err(|e| CallSetupError::Ack(Box::new(e)))?;
        let answer = std::str::from_utf8(resp.body())
            .map_err(|_| sdp::SdpError::Malformed { line: 0 })
            .and_then(|text| sdp::read_answer(text, &LAWS, placing.key.as_ref()));
        {
            let (node, proxy) = (Arc::clone(d.node), d.proxy);
            tokio::spawn(async move {
                while invited.retransmits(64 * T1).await.is_some() {
                    let _ = node.send(proxy, ack.clone().into_bytes()).await;
                }
            });
        }
        let (agreed_tx, agreed_rx) = watch::channel(answer.as_ref().cloned().unwrap_or(Agreed {
            law: LAWS[0],
            telephone_event: None,
            remote: SocketAddr::new(d.media_ip, 0),
            direction: sdp::Direction::Inactive,
            rtcp: None,
            srtp: None,
            lines: Default::default(),
            rtcp_mux: false,
        }));
        let (stop_tx, stop_rx) = watch::channel(false);
        let active = Active {
            call_id: placing.call_id.clone(),
            local_tag: placing.from_tag,
            remote_from,
            local_to,
            remote_target,
            route_set,
            agreed: agreed_tx,
            stop: stop_tx,
            acked: watch::channel(true).0,
            media_local: placing.media.local(),
            sdp_version: 1,
            session_id: placing.session_id,
            cseq_floor: cseq,
        };
        if let Err(e) = answer {
            let bye = ByeRoute::of(&d);
            self.send_bye(d.node, &active, &bye).await;
            return Err(CallSetupError::Answer(e));
        }
        *lock(&self.active) = Some(active);
        self.report.send_modify(|r| {
            r.active = true;
            r.placed += 1;
        });
        tracing::info!(call_id = %placing.call_id, "call placed and answered");
        self.run_media(
            placing.media,
            placing.port,
            agreed_rx,
            stop_rx,
            placing.call_id,
        );
        Ok(())
    }

    /// The unit hangs up the call in progress, if any: BYE through the proxy.
    pub(super) async fn hang_up(&self, d: Dialogue<'_>) -> bool {
        let Some(a) = lock(&self.active).take() else {
            return false;
        };
        let bye = ByeRoute::of(&d);
        self.send_bye(d.node, &a, &bye).await;
        self.end(a, "the unit hung up");
        true
    }

    /// Sends the 2xx again at T1, 2·T1… (at most T2) until the ACK; with none after 64·T1,
    /// ends the call with a BYE (§13.3.1.4).
    async fn until_acked(
        self: Arc<Self>,
        node: Arc<SipNode>,
        peer: SocketAddr,
        bytes: Vec<u8>,
        mut acked: watch::Receiver<bool>,
        call_id: String,
        bye: ByeRoute,
    ) {
        let mut answer = AnswerRetransmission::new(bytes, Instant::now().into_std());
        while let Some(at) = answer.poll_timeout() {
            tokio::select! {
                // The ACK came, or the call ended before it.
                _ = acked.wait_for(|a| *a) => return,
                () = tokio::time::sleep_until(Instant::from_std(at)) => {}
            }
            if answer.handle_timeout(Instant::now().into_std()).is_some() {
                break;
            }
            while let Some(copy) = answer.poll_transmit() {
                let _ = node.send(peer, copy).await;
            }
        }
        tracing::warn!(%call_id, "no ACK for the answer: ending the call");
        let taken = {
            let mut active = lock(&self.active);
            if active.as_ref().is_some_and(|a| a.call_id == call_id) {
                active.take()
            } else {
                None
            }
        };
        if let Some(a) = taken {
            self.send_bye(&node, &a, &bye).await;
            self.end(a, "no ACK from the centre");
        }
    }

    /// The unit hangs up: BYE in the dialog, through the proxy.
    async fn send_bye(&self, node: &SipNode, a: &Active, route: &ByeRoute) {
        let cseq = self.cseq.next().max(a.cseq_floor + 1);
        let build = |branch: &str| {
            let via = route.via.replacen("z9hG4bK", branch, 1);
            let mut s = format!(
                "BYE {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n",
                a.remote_target
            );
            for r in &a.route_set {
                s.push_str(&format!("Route: {r}\r\n"));
            }
            s.push_str(&format!(
                "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n",
                a.local_to, a.remote_from, a.call_id
            ));
            s
        };
        match node
            .transaction(route.proxy, &build, Duration::from_secs(8))
            .await
        {
            Ok(resp) if resp.status().is_some_and(|s| s >= 300) => {
                tracing::warn!(status = ?resp.status(), reason = %resp.reason(), "BYE refused");
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "BYE not answered"),
        }
    }

    /// A re-INVITE in the call: the new offer is negotiated the same way (hold is a
    /// direction, a new address moves the media).
    async fn on_reinvite(&self, d: &Dialogue<'_>, req: &Incoming, to_tag: &str) {
        let offer = negotiated(req, d.keys_safe);
        let answer = {
            let mut active = lock(&self.active);
            match active.as_mut().filter(|a| {
                req.msg.header("call-id") == Some(a.call_id.as_str()) && a.local_tag == to_tag
            }) {
                None => None,
                Some(a) => Some(match offer {
                    Ok(agreed) => {
                        a.sdp_version += 1;
                        let text =
                            sdp::write_answer(&agreed, a.media_local, a.session_id, a.sdp_version);
                        a.agreed.send_replace(agreed);
                        Ok((text, a.local_tag.clone(), d.contact.clone()))
                    }
                    Err(e) => Err(e),
                }),
            }
        };
        let Some(answer) = answer else {
            let _ = d
                .node
                .respond(req, 481, "Call/Transaction Does Not Exist", to_tag, &[])
                .await;
            return;
        };
        match answer {
            Ok((text, tag, contact)) => {
                let extra = [format!("Contact: <{contact}>")];
                let _ = d
                    .node
                    .respond_with_body(
                        req,
                        200,
                        "OK",
                        &tag,
                        &extra,
                        Some(("application/sdp", &text)),
                    )
                    .await;
            }
            Err(e) => {
                let _ = d
                    .node
                    .respond(req, e.sip_status(), reason_of(e.sip_status()), to_tag, &[])
                    .await;
            }
        }
    }
}

/// A call the unit is placing, between its offer and the far end's answer.
pub(super) struct Placing {
    media: Media,
    port: Box<dyn CallAudioPort>,
    /// The unit's SDP offer.
    pub offer: String,
    /// The new dialog's Call-ID.
    pub call_id: String,
    /// The unit's From tag in it.
    pub from_tag: String,
    session_id: u64,
    /// The unit's SRTP key in the offer, when the call is offered as SRTP.
    key: Option<srtp::Key>,
}

impl Placing {
    /// Takes SRTP out of the offer, for a far end that refused it; `false` when the offer
    /// had none.
    pub(super) fn without_srtp(&mut self) -> bool {
        if self.key.take().is_none() {
            return false;
        }
        self.offer = sdp::write_offer(&LAWS, self.media.local(), self.session_id, 2, None);
        true
    }
}

/// Where the unit's BYE goes, and its Via header with the bare branch prefix `z9hG4bK`, which
/// each transaction completes.
struct ByeRoute {
    proxy: SocketAddr,
    via: String,
}

impl ByeRoute {
    /// The route of the dialogue `d`.
    fn of(d: &Dialogue<'_>) -> ByeRoute {
        ByeRoute {
            proxy: d.proxy,
            via: (d.via)("z9hG4bK"),
        }
    }
}

/// The request's SDP offer, negotiated with the unit's laws; SRTP only when `keys_safe`.
fn negotiated(req: &Incoming, keys_safe: bool) -> Result<Agreed, sdp::SdpError> {
    std::str::from_utf8(req.msg.body())
        .map_err(|_| sdp::SdpError::Malformed { line: 0 })
        .and_then(sdp::parse_offer)
        .and_then(|o| sdp::negotiate_over(&o, &LAWS, keys_safe))
}

/// The reason phrase of the statuses an offer can be refused with.
fn reason_of(code: u16) -> &'static str {
    match code {
        488 => "Not Acceptable Here",
        _ => "Bad Request",
    }
}

fn rand_u32() -> u64 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u64::from(u32::from_be_bytes(b))
}
