//! SIP client transactions (RFC 3261 §17.1) as sans-IO state machines: the non-INVITE client
//! transaction (§17.1.2, Figure 6) and the INVITE client transaction (§17.1.1, Figure 5) with
//! its CANCEL (§9.1) and the ACK of a non-2xx final response (§17.1.1.3).
//!
//! A machine owns no socket and reads no clock. Its driver sends what
//! [`poll_transmit`](NonInviteClient::poll_transmit) gives, calls
//! [`handle_timeout`](NonInviteClient::handle_timeout) once the instant of
//! [`poll_timeout`](NonInviteClient::poll_timeout) has come, and feeds every response it
//! receives to [`handle_response`](NonInviteClient::handle_response); what happens comes back
//! as an [`Event`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::message::{canonical, SipMsg};
use super::SipError;

/// Timer T1 (§17.1.1.1): round-trip estimate, the first retransmission interval.
pub const T1: Duration = Duration::from_millis(500);
/// Timer T2: cap of the non-INVITE retransmission interval.
pub const T2: Duration = Duration::from_secs(4);
/// Timer T4: how long a message may stay in the network.
pub const T4: Duration = Duration::from_secs(5);
/// Timer D over an unreliable transport: how long a Completed INVITE transaction acknowledges
/// retransmissions of its final response (§17.1.1.2, "at least 32 seconds").
pub const TIMER_D: Duration = Duration::from_secs(32);

/// What a client transaction tells its transaction user.
#[derive(Clone, Debug)]
pub enum Event {
    /// A 1xx: the server is working on the request.
    Provisional(SipMsg),
    /// The final response, once (its retransmissions are absorbed, or acknowledged again
    /// for a non-2xx to INVITE).
    Final(SipMsg),
    /// No final response in time: Timer F (non-INVITE), Timer B (INVITE), or 64·T1 after a
    /// CANCEL went out (§9.1). The transaction is Terminated.
    TimedOut,
    /// Timer K or Timer D fired: a Completed transaction is over.
    Terminated,
}

/// States of the non-INVITE client transaction (§17.1.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonInviteState {
    /// The request is out; no response yet.
    Trying,
    /// A provisional response came.
    Proceeding,
    /// The final response came; retransmissions of it are absorbed until Timer K.
    Completed,
    /// Over.
    Terminated,
}

/// States of the INVITE client transaction (§17.1.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteState {
    /// The INVITE is out; no response yet.
    Calling,
    /// A provisional response came: no more retransmissions, no Timer B.
    Proceeding,
    /// A non-2xx final response came and was acknowledged; acknowledged again until Timer D.
    Completed,
    /// Over (a 2xx ends the transaction at once: its ACK belongs to the dialog, §13.2.2.4).
    Terminated,
}

/// The request a client transaction sends, and what its responses are matched on (§17.1.3).
#[derive(Clone, Debug)]
struct Request {
    bytes: Vec<u8>,
    branch: String,
    method: String,
    cseq: u32,
}

impl Request {
    fn parse(bytes: Vec<u8>) -> Result<Request, SipError> {
        let msg = SipMsg::parse(&bytes)?;
        let method = msg.method().ok_or_else(|| {
            SipError::Message("a client transaction starts with a request, not a response".into())
        })?;
        let branch = msg
            .branch()
            .filter(|b| b.starts_with("z9hG4bK") && b.len() > "z9hG4bK".len())
            .ok_or_else(|| {
                SipError::Message(format!(
                    "{method} without a z9hG4bK branch in its top Via (RFC 3261 §8.1.1.7)"
                ))
            })?;
        let cseq = msg.header("cseq").unwrap_or_default();
        let mut parts = cseq.split_whitespace();
        let number = parts.next().and_then(|n| n.parse::<u32>().ok());
        let (Some(cseq), Some(true)) = (number, parts.next().map(|m| m == method)) else {
            return Err(SipError::Message(format!(
                "{method} with CSeq \"{cseq}\": want a number and the request's method"
            )));
        };
        Ok(Request {
            bytes,
            branch,
            method,
            cseq,
        })
    }

    /// Whether `resp` answers this request: a response with the same top-Via branch and
    /// CSeq method (§17.1.3).
    fn answered_by(&self, resp: &SipMsg) -> bool {
        resp.status().is_some()
            && resp.branch().as_deref() == Some(self.branch.as_str())
            && resp.cseq_method().as_deref() == Some(self.method.as_str())
    }

    /// A request made from this one's request line and headers for `method` (ACK §17.1.1.3,
    /// CANCEL §9.1): the same Request-URI, top Via, Max-Forwards, From, Call-ID, Route and
    /// CSeq number; `to` replaces To (the response's, with its tag, for an ACK); no body.
    /// Made from the text we wrote, so nothing is reordered or re-encoded.
    fn derived(&self, method: &str, to: Option<&str>) -> Vec<u8> {
        let text = String::from_utf8_lossy(&self.bytes);
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        let mut lines = head.split("\r\n");
        let uri = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or_default();
        let mut out = format!("{method} {uri} SIP/2.0\r\n");
        let mut via_taken = false;
        let mut keeping = false;
        for line in lines {
            // A folded continuation (§7.3.1) goes with the header it continues.
            if line.starts_with([' ', '\t']) {
                if keeping {
                    out.push_str(line);
                    out.push_str("\r\n");
                }
                continue;
            }
            keeping = false;
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            match canonical(name.trim()).as_str() {
                "via" if !via_taken => {
                    via_taken = true;
                    keeping = !value.contains(',');
                    let top = value.split(',').next().unwrap_or_default();
                    out.push_str(&format!("{name}:{top}\r\n"));
                }
                "max-forwards" | "from" | "call-id" | "route" => {
                    keeping = true;
                    out.push_str(line);
                    out.push_str("\r\n");
                }
                "to" => match to {
                    Some(to) => out.push_str(&format!("To: {to}\r\n")),
                    None => {
                        keeping = true;
                        out.push_str(line);
                        out.push_str("\r\n");
                    }
                },
                "cseq" => out.push_str(&format!("CSeq: {} {method}\r\n", self.cseq)),
                _ => {}
            }
        }
        out.push_str("Content-Length: 0\r\n\r\n");
        out.into_bytes()
    }
}

/// A retransmission timer: when it fires next and the interval that got it there.
#[derive(Clone, Copy, Debug)]
struct Retransmit {
    at: Instant,
    interval: Duration,
}

fn due(at: Option<Instant>, now: Instant) -> bool {
    at.is_some_and(|at| now >= at)
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The non-INVITE client transaction (§17.1.2): over UDP the request goes again at Timer E,
/// T1 doubling up to T2 (at T2 once a provisional response came); over TCP or TLS it goes
/// once. Timer F (64·T1) ends the wait for a final response.
#[derive(Debug)]
pub struct NonInviteClient {
    request: Request,
    reliable: bool,
    state: NonInviteState,
    transmit: VecDeque<Vec<u8>>,
    started: Instant,
    timer_e: Option<Retransmit>,
    timer_f: Instant,
    timer_k: Option<Instant>,
}

impl NonInviteClient {
    /// Starts the transaction of `request` (its bytes as they go out, with a z9hG4bK branch)
    /// at `now`; `reliable` for TCP or TLS. The request is the first thing to transmit.
    pub fn new(request: Vec<u8>, reliable: bool, now: Instant) -> Result<Self, SipError> {
        let request = Request::parse(request)?;
        if matches!(request.method.as_str(), "INVITE" | "ACK") {
            return Err(SipError::Message(format!(
                "{} is not a non-INVITE transaction (RFC 3261 §17.1.2)",
                request.method
            )));
        }
        Ok(Self::start(request, reliable, now))
    }

    fn start(request: Request, reliable: bool, now: Instant) -> Self {
        NonInviteClient {
            transmit: VecDeque::from([request.bytes.clone()]),
            request,
            reliable,
            state: NonInviteState::Trying,
            started: now,
            timer_e: (!reliable).then_some(Retransmit {
                at: now + T1,
                interval: T1,
            }),
            timer_f: now + 64 * T1,
            timer_k: None,
        }
    }

    /// Timer F set to `timeout` from the start instead of 64·T1, for a transaction user that
    /// cannot wait that long.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timer_f = self.started + timeout;
        self
    }

    /// The state (§17.1.2.2).
    pub fn state(&self) -> NonInviteState {
        self.state
    }

    /// The branch of the request's top Via, which its responses carry.
    pub fn branch(&self) -> &str {
        &self.request.branch
    }

    /// The next message to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// When [`NonInviteClient::handle_timeout`] is next due; None once Terminated.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            NonInviteState::Trying | NonInviteState::Proceeding => {
                earliest(self.timer_e.map(|e| e.at), Some(self.timer_f))
            }
            NonInviteState::Completed => self.timer_k,
            NonInviteState::Terminated => None,
        }
    }

    /// Fires the timers due at `now`: Timer F ends the transaction, Timer E retransmits
    /// (§17.1.2.2), Timer K terminates a Completed one.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Event> {
        match self.state {
            NonInviteState::Trying | NonInviteState::Proceeding => {
                if now >= self.timer_f {
                    self.terminate();
                    return Some(Event::TimedOut);
                }
                if let Some(e) = self.timer_e.filter(|e| now >= e.at) {
                    self.transmit.push_back(self.request.bytes.clone());
                    let interval = match self.state {
                        NonInviteState::Proceeding => T2,
                        _ => (e.interval * 2).min(T2),
                    };
                    self.timer_e = Some(Retransmit {
                        at: now + interval,
                        interval,
                    });
                }
                None
            }
            NonInviteState::Completed if due(self.timer_k, now) => {
                self.terminate();
                Some(Event::Terminated)
            }
            NonInviteState::Completed | NonInviteState::Terminated => None,
        }
    }

    /// Takes a response received at `now`. Responses to another request (branch or CSeq
    /// method, §17.1.3) and retransmissions of the final response give None.
    pub fn handle_response(&mut self, resp: SipMsg, now: Instant) -> Option<Event> {
        if !self.request.answered_by(&resp) {
            return None;
        }
        let status = resp.status()?;
        match self.state {
            NonInviteState::Trying | NonInviteState::Proceeding if status < 200 => {
                self.state = NonInviteState::Proceeding;
                Some(Event::Provisional(resp))
            }
            NonInviteState::Trying | NonInviteState::Proceeding => {
                self.timer_e = None;
                if self.reliable {
                    // Timer K is zero over a reliable transport.
                    self.terminate();
                } else {
                    self.state = NonInviteState::Completed;
                    self.timer_k = Some(now + T4);
                }
                Some(Event::Final(resp))
            }
            NonInviteState::Completed | NonInviteState::Terminated => None,
        }
    }

    fn terminate(&mut self) {
        self.state = NonInviteState::Terminated;
        self.timer_e = None;
        self.timer_k = None;
    }
}

/// Whether the INVITE is to be cancelled, and the CANCEL's own transaction once it is out.
#[derive(Debug)]
enum Cancel {
    No,
    /// Asked before any provisional response: a CANCEL must wait for one (§9.1).
    Asked,
    Sent(Box<NonInviteClient>),
}

/// The INVITE client transaction (§17.1.1): over UDP the INVITE goes again at Timer A (T1,
/// doubling) until a response; Timer B (64·T1) ends the wait for one. A provisional response
/// stops both. A 2xx ends the transaction (its ACK is the dialog's); any other final response
/// is acknowledged here (§17.1.1.3), again for each retransmission of it until Timer D. The
/// INVITE can be cancelled (§9.1): the CANCEL runs as a non-INVITE transaction of the same
/// branch inside this one, and without a final response 64·T1 later the INVITE times out.
#[derive(Debug)]
pub struct InviteClient {
    request: Request,
    reliable: bool,
    state: InviteState,
    transmit: VecDeque<Vec<u8>>,
    started: Instant,
    timer_a: Option<Retransmit>,
    timer_b: Duration,
    /// Timer B while Calling; the §9.1 limit once a CANCEL is out.
    deadline: Option<Instant>,
    timer_d: Option<Instant>,
    ack: Option<Vec<u8>>,
    cancel: Cancel,
}

impl InviteClient {
    /// Starts the transaction of the INVITE `request` (its bytes as they go out, with a
    /// z9hG4bK branch) at `now`; `reliable` for TCP or TLS. The INVITE is the first thing to
    /// transmit.
    pub fn new(request: Vec<u8>, reliable: bool, now: Instant) -> Result<Self, SipError> {
        let request = Request::parse(request)?;
        if request.method != "INVITE" {
            return Err(SipError::Message(format!(
                "{} is not an INVITE (RFC 3261 §17.1.1)",
                request.method
            )));
        }
        Ok(InviteClient {
            transmit: VecDeque::from([request.bytes.clone()]),
            request,
            reliable,
            state: InviteState::Calling,
            started: now,
            timer_a: (!reliable).then_some(Retransmit {
                at: now + T1,
                interval: T1,
            }),
            timer_b: 64 * T1,
            deadline: Some(now + 64 * T1),
            timer_d: None,
            ack: None,
            cancel: Cancel::No,
        })
    }

    /// Timer B set to `timeout` instead of 64·T1 (also the wait for a final response after a
    /// CANCEL).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timer_b = timeout;
        if self.state == InviteState::Calling {
            self.deadline = Some(self.started + timeout);
        }
        self
    }

    /// The state (§17.1.1.2).
    pub fn state(&self) -> InviteState {
        self.state
    }

    /// The branch of the INVITE's top Via, which its responses (and its CANCEL) carry.
    pub fn branch(&self) -> &str {
        &self.request.branch
    }

    /// The next message to send to the peer: the INVITE, its retransmissions, an ACK, a CANCEL.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// When [`InviteClient::handle_timeout`] is next due; None when only a response can move
    /// the transaction on (Proceeding without a CANCEL) or once Terminated.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let cancel = match (&self.cancel, self.state) {
            (_, InviteState::Terminated) => None,
            (Cancel::Sent(c), _) => c.poll_timeout(),
            (Cancel::No | Cancel::Asked, _) => None,
        };
        let own = match self.state {
            InviteState::Calling => earliest(self.timer_a.map(|a| a.at), self.deadline),
            InviteState::Proceeding => self.deadline,
            InviteState::Completed => self.timer_d,
            InviteState::Terminated => None,
        };
        earliest(own, cancel)
    }

    /// Cancels the INVITE (§9.1): the CANCEL goes out now if a provisional response came, or
    /// on the first one if none has; nothing once a final response came.
    pub fn cancel(&mut self, now: Instant) {
        match (self.state, &self.cancel) {
            (InviteState::Calling, Cancel::No) => self.cancel = Cancel::Asked,
            (InviteState::Proceeding, Cancel::No | Cancel::Asked) => self.send_cancel(now),
            _ => {}
        }
    }

    fn send_cancel(&mut self, now: Instant) {
        let request = Request {
            bytes: self.request.derived("CANCEL", None),
            branch: self.request.branch.clone(),
            method: "CANCEL".into(),
            cseq: self.request.cseq,
        };
        let mut cancel = NonInviteClient::start(request, self.reliable, now);
        self.transmit
            .extend(std::iter::from_fn(|| cancel.poll_transmit()));
        self.cancel = Cancel::Sent(Box::new(cancel));
        self.deadline = Some(now + self.timer_b);
    }

    /// Fires the timers due at `now`: Timer B (or the limit after a CANCEL) ends the
    /// transaction, Timer A retransmits the INVITE, Timer D terminates a Completed one; the
    /// CANCEL's own retransmissions go out.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Event> {
        if let Cancel::Sent(cancel) = &mut self.cancel {
            // The CANCEL's Timer F needs no answer: the INVITE's own limit covers it.
            let _ = cancel.handle_timeout(now);
            self.transmit
                .extend(std::iter::from_fn(|| cancel.poll_transmit()));
        }
        match self.state {
            InviteState::Calling | InviteState::Proceeding => {
                if due(self.deadline, now) {
                    self.terminate();
                    return Some(Event::TimedOut);
                }
                if let Some(a) = self.timer_a.filter(|a| now >= a.at) {
                    self.transmit.push_back(self.request.bytes.clone());
                    let interval = a.interval * 2;
                    self.timer_a = Some(Retransmit {
                        at: now + interval,
                        interval,
                    });
                }
                None
            }
            InviteState::Completed if due(self.timer_d, now) => {
                self.terminate();
                Some(Event::Terminated)
            }
            InviteState::Completed | InviteState::Terminated => None,
        }
    }

    /// Takes a response received at `now`. Responses to another request (branch or CSeq
    /// method, §17.1.3), responses to the CANCEL and retransmissions of the final response
    /// give None; a retransmitted non-2xx is acknowledged again.
    pub fn handle_response(&mut self, resp: SipMsg, now: Instant) -> Option<Event> {
        if let Cancel::Sent(cancel) = &mut self.cancel {
            if cancel.request.answered_by(&resp) {
                let _ = cancel.handle_response(resp, now);
                return None;
            }
        }
        if !self.request.answered_by(&resp) {
            return None;
        }
        let status = resp.status()?;
        match self.state {
            InviteState::Calling | InviteState::Proceeding => match status {
                100..=199 => {
                    if self.state == InviteState::Calling {
                        self.state = InviteState::Proceeding;
                        self.timer_a = None;
                        self.deadline = None;
                        if matches!(self.cancel, Cancel::Asked) {
                            self.send_cancel(now);
                        }
                    }
                    Some(Event::Provisional(resp))
                }
                200..=299 => {
                    self.terminate();
                    Some(Event::Final(resp))
                }
                _ => {
                    let ack = self.request.derived("ACK", resp.header("to"));
                    self.transmit.push_back(ack.clone());
                    self.ack = Some(ack);
                    self.timer_a = None;
                    self.deadline = None;
                    if self.reliable {
                        // Timer D is zero over a reliable transport.
                        self.state = InviteState::Terminated;
                    } else {
                        self.state = InviteState::Completed;
                        self.timer_d = Some(now + TIMER_D);
                    }
                    Some(Event::Final(resp))
                }
            },
            InviteState::Completed => {
                if status >= 300 {
                    self.transmit.extend(self.ack.clone());
                }
                None
            }
            InviteState::Terminated => None,
        }
    }

    fn terminate(&mut self) {
        self.state = InviteState::Terminated;
        self.timer_a = None;
        self.deadline = None;
        self.timer_d = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = "MESSAGE sip:alarm@arc.test SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKmsg1;rport\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:unit@arc.test>;tag=f1\r\n\
        To: <sip:alarm@arc.test>\r\n\
        Call-ID: m1\r\n\
        CSeq: 3 MESSAGE\r\n\
        Content-Length: 0\r\n\r\n";

    const INVITE: &str = "INVITE sip:echo@arc.test SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv1;rport\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:unit@arc.test>;tag=f1\r\n\
        To: <sip:echo@arc.test>\r\n\
        Call-ID: c1\r\n\
        CSeq: 7 INVITE\r\n\
        Contact: <sip:unit@192.0.2.1:5060>\r\n\
        Route: <sip:proxy.arc.test;lr>\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\n";

    fn response(status: u16, branch: &str, cseq: &str) -> SipMsg {
        let text = format!(
            "SIP/2.0 {status} Whatever\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch};rport\r\n\
             From: <sip:unit@arc.test>;tag=f1\r\n\
             To: <sip:echo@arc.test>;tag=t9\r\n\
             Call-ID: c1\r\n\
             CSeq: {cseq}\r\n\
             Content-Length: 0\r\n\r\n"
        );
        SipMsg::parse(text.as_bytes()).unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The driving surface both machines share, for running them on their timers alone.
    trait Machine {
        fn transmit(&mut self) -> Option<Vec<u8>>;
        fn timeout(&self) -> Option<Instant>;
        fn fire(&mut self, now: Instant) -> Option<Event>;
    }

    impl Machine for NonInviteClient {
        fn transmit(&mut self) -> Option<Vec<u8>> {
            self.poll_transmit()
        }
        fn timeout(&self) -> Option<Instant> {
            self.poll_timeout()
        }
        fn fire(&mut self, now: Instant) -> Option<Event> {
            self.handle_timeout(now)
        }
    }

    impl Machine for InviteClient {
        fn transmit(&mut self) -> Option<Vec<u8>> {
            self.poll_transmit()
        }
        fn timeout(&self) -> Option<Instant> {
            self.poll_timeout()
        }
        fn fire(&mut self, now: Instant) -> Option<Event> {
            self.handle_timeout(now)
        }
    }

    /// Runs `m` on its own timers (no response ever comes) from `start`: the offset of each
    /// send, all of which must be `request`, and the event it ends with and when.
    fn run_timers(
        m: &mut impl Machine,
        start: Instant,
        request: &str,
    ) -> (Vec<Duration>, Option<(Duration, Event)>) {
        let mut sent = Vec::new();
        let mut now = start;
        let mut drain = |m: &mut dyn Machine, now: Instant| {
            while let Some(bytes) = m.transmit() {
                assert_eq!(String::from_utf8_lossy(&bytes), request);
                sent.push(now - start);
            }
        };
        for _ in 0..100 {
            drain(m, now);
            let Some(at) = m.timeout() else {
                return (sent, None);
            };
            assert!(at >= now, "a timeout in the past");
            now = at;
            if let Some(event) = m.fire(now) {
                drain(m, now);
                return (sent, Some((now - start, event)));
            }
        }
        panic!("the transaction never ends");
    }

    fn run_non_invite(
        m: &mut NonInviteClient,
        start: Instant,
    ) -> (Vec<Duration>, Option<(Duration, Event)>) {
        run_timers(m, start, MESSAGE)
    }

    fn run_invite(
        m: &mut InviteClient,
        start: Instant,
    ) -> (Vec<Duration>, Option<(Duration, Event)>) {
        run_timers(m, start, INVITE)
    }

    #[test]
    fn over_udp_timer_e_doubles_from_t1_to_t2_until_timer_f() {
        let start = Instant::now();
        let mut m = NonInviteClient::new(MESSAGE.into(), false, start).unwrap();
        let (sent, end) = run_non_invite(&mut m, start);
        // Intervals 0.5, 1, 2, 4, 4, 4… s; Timer F at 64·T1 = 32 s.
        let want: Vec<Duration> = [
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ]
        .into_iter()
        .map(ms)
        .collect();
        assert_eq!(sent, want);
        assert!(
            matches!(end, Some((t, Event::TimedOut)) if t == ms(32_000)),
            "{end:?}"
        );
        assert_eq!(m.state(), NonInviteState::Terminated);
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn over_tcp_or_tls_the_request_goes_once() {
        let start = Instant::now();
        let mut m = NonInviteClient::new(MESSAGE.into(), true, start).unwrap();
        assert_eq!(m.poll_timeout(), Some(start + ms(32_000)));
        let (sent, end) = run_non_invite(&mut m, start);
        assert_eq!(sent, vec![ms(0)]);
        assert!(
            matches!(end, Some((t, Event::TimedOut)) if t == ms(32_000)),
            "{end:?}"
        );
    }

    #[test]
    fn a_shorter_timer_f_is_kept() {
        let start = Instant::now();
        let mut m = NonInviteClient::new(MESSAGE.into(), false, start)
            .unwrap()
            .with_timeout(ms(3000));
        let (sent, end) = run_non_invite(&mut m, start);
        assert_eq!(sent, vec![ms(0), ms(500), ms(1500)]);
        assert!(
            matches!(end, Some((t, Event::TimedOut)) if t == ms(3000)),
            "{end:?}"
        );
    }

    #[test]
    fn a_provisional_response_moves_timer_e_to_t2() {
        let start = Instant::now();
        let mut m = NonInviteClient::new(MESSAGE.into(), false, start).unwrap();
        assert_eq!(m.poll_transmit().as_deref(), Some(MESSAGE.as_bytes()));
        assert_eq!(m.handle_timeout(start + ms(500)).map(drop), None);
        assert_eq!(m.poll_transmit().as_deref(), Some(MESSAGE.as_bytes()));
        assert_eq!(m.poll_timeout(), Some(start + ms(1500)));

        let trying = response(100, "z9hG4bKmsg1", "3 MESSAGE");
        let event = m.handle_response(trying, start + ms(700));
        assert!(matches!(event, Some(Event::Provisional(ref r)) if r.status() == Some(100)));
        assert_eq!(m.state(), NonInviteState::Proceeding);
        assert_eq!(m.poll_transmit(), None);
        // Timer E runs on to its instant, then is reset to T2 each time (§17.1.2.2).
        assert_eq!(m.poll_timeout(), Some(start + ms(1500)));
        let (sent, end) = run_non_invite(&mut m, start + ms(1500));
        let from_1500: Vec<Duration> = [0, 4000, 8000, 12000, 16000, 20000, 24000, 28000]
            .into_iter()
            .map(ms)
            .collect();
        assert_eq!(sent, from_1500);
        assert!(
            matches!(end, Some((t, Event::TimedOut)) if t == ms(30_500)),
            "{end:?}"
        );
    }

    #[test]
    fn a_final_response_ends_it_and_its_retransmissions_are_absorbed_until_timer_k() {
        let start = Instant::now();
        let mut m = NonInviteClient::new(MESSAGE.into(), false, start).unwrap();
        let _ = m.poll_transmit();
        let event = m.handle_response(response(202, "z9hG4bKmsg1", "3 MESSAGE"), start + ms(200));
        assert!(matches!(event, Some(Event::Final(ref r)) if r.status() == Some(202)));
        assert_eq!(m.state(), NonInviteState::Completed);
        assert_eq!(m.poll_timeout(), Some(start + ms(5200)));
        let again = m.handle_response(response(202, "z9hG4bKmsg1", "3 MESSAGE"), start + ms(900));
        assert!(again.is_none());
        assert_eq!(m.handle_timeout(start + ms(5199)).map(drop), None);
        assert_eq!(m.poll_transmit(), None, "no retransmission once Completed");
        assert!(matches!(
            m.handle_timeout(start + ms(5200)),
            Some(Event::Terminated)
        ));
        assert_eq!(m.state(), NonInviteState::Terminated);
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn over_tcp_a_final_response_terminates_at_once() {
        let start = Instant::now();
        let mut m = NonInviteClient::new(MESSAGE.into(), true, start).unwrap();
        let event = m.handle_response(response(200, "z9hG4bKmsg1", "3 MESSAGE"), start);
        assert!(matches!(event, Some(Event::Final(_))));
        assert_eq!(m.state(), NonInviteState::Terminated);
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn responses_to_another_request_are_ignored() {
        let start = Instant::now();
        let mut m = NonInviteClient::new(MESSAGE.into(), false, start).unwrap();
        for other in [
            response(200, "z9hG4bKother", "3 MESSAGE"),
            response(200, "z9hG4bKmsg1", "3 REGISTER"),
        ] {
            assert!(m.handle_response(other, start + ms(100)).is_none());
        }
        assert_eq!(m.state(), NonInviteState::Trying);
        assert_eq!(m.poll_timeout(), Some(start + ms(500)));
        let mut i = InviteClient::new(INVITE.into(), false, start).unwrap();
        for other in [
            response(486, "z9hG4bKother", "7 INVITE"),
            response(180, "z9hG4bKinv2", "7 INVITE"),
            response(200, "z9hG4bKinv1", "7 CANCEL"),
        ] {
            assert!(i.handle_response(other, start + ms(100)).is_none());
        }
        assert_eq!(i.state(), InviteState::Calling);
        let _ = i.poll_transmit();
        assert_eq!(i.poll_transmit(), None, "no ACK for another branch's 486");
    }

    #[test]
    fn requests_a_transaction_cannot_run_are_refused() {
        let start = Instant::now();
        let no_branch = MESSAGE.replace(";branch=z9hG4bKmsg1", "");
        assert!(NonInviteClient::new(no_branch.into(), false, start).is_err());
        let old_branch = MESSAGE.replace("z9hG4bKmsg1", "1234");
        assert!(NonInviteClient::new(old_branch.into(), false, start).is_err());
        assert!(NonInviteClient::new(INVITE.into(), false, start).is_err());
        assert!(InviteClient::new(MESSAGE.into(), false, start).is_err());
        let wrong_cseq = MESSAGE.replace("3 MESSAGE", "3 OPTIONS");
        assert!(NonInviteClient::new(wrong_cseq.into(), false, start).is_err());
        let resp =
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nCSeq: 1 MESSAGE\r\n\r\n";
        assert!(NonInviteClient::new(resp.into(), false, start).is_err());
    }

    #[test]
    fn over_udp_timer_a_doubles_until_timer_b() {
        let start = Instant::now();
        let mut m = InviteClient::new(INVITE.into(), false, start).unwrap();
        let (sent, end) = run_invite(&mut m, start);
        let want: Vec<Duration> = [0, 500, 1500, 3500, 7500, 15500, 31500]
            .into_iter()
            .map(ms)
            .collect();
        assert_eq!(sent, want);
        assert!(
            matches!(end, Some((t, Event::TimedOut)) if t == ms(32_000)),
            "{end:?}"
        );
        assert_eq!(m.state(), InviteState::Terminated);
    }

    #[test]
    fn over_tcp_the_invite_goes_once_until_timer_b() {
        let start = Instant::now();
        let mut m = InviteClient::new(INVITE.into(), true, start).unwrap();
        let (sent, end) = run_invite(&mut m, start);
        assert_eq!(sent, vec![ms(0)]);
        assert!(
            matches!(end, Some((t, Event::TimedOut)) if t == ms(32_000)),
            "{end:?}"
        );
    }

    #[test]
    fn a_provisional_response_stops_timers_a_and_b() {
        let start = Instant::now();
        let mut m = InviteClient::new(INVITE.into(), false, start).unwrap();
        let _ = m.poll_transmit();
        let event = m.handle_response(response(180, "z9hG4bKinv1", "7 INVITE"), start + ms(300));
        assert!(matches!(event, Some(Event::Provisional(ref r)) if r.status() == Some(180)));
        assert_eq!(m.state(), InviteState::Proceeding);
        assert_eq!(m.poll_timeout(), None);
        assert!(m.handle_timeout(start + ms(64_000)).is_none());
        assert_eq!(m.poll_transmit(), None);
    }

    const ACK: &str = "ACK sip:echo@arc.test SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv1;rport\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:unit@arc.test>;tag=f1\r\n\
        To: <sip:echo@arc.test>;tag=t9\r\n\
        Call-ID: c1\r\n\
        CSeq: 7 ACK\r\n\
        Route: <sip:proxy.arc.test;lr>\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn a_non_2xx_is_acknowledged_in_the_transaction_until_timer_d() {
        let start = Instant::now();
        let mut m = InviteClient::new(INVITE.into(), false, start).unwrap();
        let _ = m.poll_transmit();
        let event = m.handle_response(response(486, "z9hG4bKinv1", "7 INVITE"), start + ms(1000));
        assert!(matches!(event, Some(Event::Final(ref r)) if r.status() == Some(486)));
        assert_eq!(m.poll_transmit().as_deref(), Some(ACK.as_bytes()));
        assert_eq!(m.poll_transmit(), None);
        assert_eq!(m.state(), InviteState::Completed);
        assert_eq!(m.poll_timeout(), Some(start + ms(33_000)));
        // The far end did not hear the ACK and sends its 486 again: acknowledged again.
        let again = m.handle_response(response(486, "z9hG4bKinv1", "7 INVITE"), start + ms(1500));
        assert!(again.is_none());
        assert_eq!(m.poll_transmit().as_deref(), Some(ACK.as_bytes()));
        assert!(matches!(
            m.handle_timeout(start + ms(33_000)),
            Some(Event::Terminated)
        ));
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn over_tcp_a_non_2xx_is_acknowledged_once_and_ends_it() {
        let start = Instant::now();
        let mut m = InviteClient::new(INVITE.into(), true, start).unwrap();
        let _ = m.poll_transmit();
        let event = m.handle_response(response(404, "z9hG4bKinv1", "7 INVITE"), start);
        assert!(matches!(event, Some(Event::Final(_))));
        assert_eq!(m.poll_transmit().as_deref(), Some(ACK.as_bytes()));
        assert_eq!(m.state(), InviteState::Terminated);
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn a_2xx_ends_it_and_its_ack_is_left_to_the_dialog() {
        let start = Instant::now();
        let mut m = InviteClient::new(INVITE.into(), false, start).unwrap();
        let _ = m.poll_transmit();
        let _ = m.handle_response(response(180, "z9hG4bKinv1", "7 INVITE"), start + ms(100));
        let event = m.handle_response(response(200, "z9hG4bKinv1", "7 INVITE"), start + ms(4000));
        assert!(matches!(event, Some(Event::Final(ref r)) if r.status() == Some(200)));
        assert_eq!(
            m.poll_transmit(),
            None,
            "no ACK from the transaction for a 2xx"
        );
        assert_eq!(m.state(), InviteState::Terminated);
        assert_eq!(m.poll_timeout(), None);
        let again = m.handle_response(response(200, "z9hG4bKinv1", "7 INVITE"), start + ms(4500));
        assert!(again.is_none());
    }

    const CANCEL: &str = "CANCEL sip:echo@arc.test SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv1;rport\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:unit@arc.test>;tag=f1\r\n\
        To: <sip:echo@arc.test>\r\n\
        Call-ID: c1\r\n\
        CSeq: 7 CANCEL\r\n\
        Route: <sip:proxy.arc.test;lr>\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn a_cancel_runs_its_own_retransmissions_and_the_487_is_acknowledged() {
        let start = Instant::now();
        let mut m = InviteClient::new(INVITE.into(), false, start).unwrap();
        let _ = m.poll_transmit();
        let _ = m.handle_response(response(180, "z9hG4bKinv1", "7 INVITE"), start + ms(100));
        m.cancel(start + ms(10_000));
        assert_eq!(m.poll_transmit().as_deref(), Some(CANCEL.as_bytes()));
        assert_eq!(m.poll_timeout(), Some(start + ms(10_500)));
        assert!(m.handle_timeout(start + ms(10_500)).is_none());
        assert_eq!(m.poll_transmit().as_deref(), Some(CANCEL.as_bytes()));
        // The CANCEL's 200 stops its retransmissions; the INVITE waits 64·T1 for its 487.
        assert!(m
            .handle_response(response(200, "z9hG4bKinv1", "7 CANCEL"), start + ms(10_600))
            .is_none());
        assert_eq!(
            m.poll_timeout(),
            Some(start + ms(15_600)),
            "the CANCEL's Timer K"
        );
        assert!(m.handle_timeout(start + ms(15_600)).is_none());
        assert_eq!(m.poll_transmit(), None);
        assert_eq!(m.poll_timeout(), Some(start + ms(42_000)));
        let event = m.handle_response(response(487, "z9hG4bKinv1", "7 INVITE"), start + ms(10_700));
        assert!(matches!(event, Some(Event::Final(ref r)) if r.status() == Some(487)));
        assert_eq!(m.poll_transmit().as_deref(), Some(ACK.as_bytes()));
    }

    #[test]
    fn without_a_final_response_64_t1_after_the_cancel_it_times_out() {
        let start = Instant::now();
        let mut m = InviteClient::new(INVITE.into(), true, start).unwrap();
        let _ = m.poll_transmit();
        let _ = m.handle_response(response(183, "z9hG4bKinv1", "7 INVITE"), start);
        m.cancel(start + ms(60_000));
        assert_eq!(m.poll_transmit().as_deref(), Some(CANCEL.as_bytes()));
        assert_eq!(m.poll_timeout(), Some(start + ms(92_000)));
        assert!(matches!(
            m.handle_timeout(start + ms(92_000)),
            Some(Event::TimedOut)
        ));
        assert_eq!(m.poll_transmit(), None, "over TCP the CANCEL went once");
        assert_eq!(m.state(), InviteState::Terminated);
    }

    #[test]
    fn a_cancel_before_any_provisional_response_waits_for_one() {
        let start = Instant::now();
        let mut m = InviteClient::new(INVITE.into(), true, start).unwrap();
        let _ = m.poll_transmit();
        m.cancel(start + ms(100));
        assert_eq!(
            m.poll_transmit(),
            None,
            "§9.1: no CANCEL before a provisional response"
        );
        let _ = m.handle_response(response(100, "z9hG4bKinv1", "7 INVITE"), start + ms(200));
        assert_eq!(m.poll_transmit().as_deref(), Some(CANCEL.as_bytes()));
        assert_eq!(m.poll_timeout(), Some(start + ms(32_200)));
    }
}
