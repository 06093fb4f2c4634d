//! The server side of SIP's timing (RFC 3261) as sans-IO state, fed the time by its driver:
//!
//! - [`ServerTransactions`]: the server transactions a node has open (§17.2), so a request that
//!   comes again is answered again with the same response, or absorbed while the first copy is
//!   still being handled, and never reaches its handler twice. A transaction is kept until
//!   Timer J after its last response (64·T1, §17.2.2) and the table holds a bounded number,
//!   so a flood of requests cannot grow it.
//! - [`AnswerRetransmission`]: a UAS's 2xx to an INVITE, sent again at T1, 2·T1… (at most T2)
//!   until the ACK comes, and given up after 64·T1 (§13.3.1.4).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::transaction::{T1, T2};

/// Timer J: how long a server transaction answers its request's retransmissions after its
/// final response (64·T1 over UDP, §17.2.2). Kept over every transport: a copy relayed by a
/// proxy can come late over TCP too.
pub const TIMER_J: Duration = Duration::from_secs(32);

/// How many server transactions [`ServerTransactions::new`] holds by default.
pub const MAX_SERVER_TRANSACTIONS: usize = 512;

/// What an arriving request is to the server transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// A request no transaction has: it opens one, and goes to its handler.
    New,
    /// A request answered already: these bytes answer it again (§17.2.1, §17.2.2).
    Retransmission(Vec<u8>),
    /// The first copy is still being handled: this one is absorbed.
    InProgress,
}

#[derive(Debug)]
struct Transaction {
    /// The latest response, sent again for each copy of the request.
    answer: Option<Vec<u8>>,
    /// When the transaction ends: Timer J after its latest response (or after it opened).
    until: Instant,
}

/// The server transactions a SIP node has open, by the branch of the request's top Via.
#[derive(Debug)]
pub struct ServerTransactions {
    open: HashMap<String, Transaction>,
    capacity: usize,
}

impl Default for ServerTransactions {
    fn default() -> Self {
        ServerTransactions::new(MAX_SERVER_TRANSACTIONS)
    }
}

impl ServerTransactions {
    /// A table of at most `capacity` transactions (at least one).
    pub fn new(capacity: usize) -> Self {
        ServerTransactions {
            open: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// A request with `branch` arrived at `now`.
    pub fn arrive(&mut self, branch: &str, now: Instant) -> Arrival {
        self.expire(now);
        match self.open.get(branch) {
            Some(Transaction {
                answer: Some(bytes),
                ..
            }) => Arrival::Retransmission(bytes.clone()),
            Some(Transaction { answer: None, .. }) => Arrival::InProgress,
            None => {
                if self.open.len() >= self.capacity {
                    self.evict_oldest();
                }
                self.open.insert(
                    branch.to_string(),
                    Transaction {
                        answer: None,
                        until: now + TIMER_J,
                    },
                );
                Arrival::New
            }
        }
    }

    /// The request with `branch` was answered with `bytes` at `now`: its copies get them
    /// until Timer J. A response to a request the table never saw (or forgot) opens its
    /// transaction, so late copies are still answered.
    pub fn answered(&mut self, branch: &str, bytes: Vec<u8>, now: Instant) {
        self.expire(now);
        if !self.open.contains_key(branch) && self.open.len() >= self.capacity {
            self.evict_oldest();
        }
        self.open.insert(
            branch.to_string(),
            Transaction {
                answer: Some(bytes),
                until: now + TIMER_J,
            },
        );
    }

    /// How many transactions are open.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        self.open.retain(|_, t| t.until > now);
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .open
            .iter()
            .min_by_key(|(_, t)| t.until)
            .map(|(branch, _)| branch.clone());
        if let Some(branch) = oldest {
            self.open.remove(&branch);
        }
    }
}

/// What became of a 2xx sent again until its ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerOutcome {
    /// The ACK came.
    Acknowledged,
    /// No ACK within 64·T1: the dialog is confirmed, but the session should end (BYE).
    NoAck,
}

/// A UAS's 2xx to an INVITE, sent again until the ACK (§13.3.1.4). Its first copy is the
/// driver's to send; the copies after it come from [`AnswerRetransmission::poll_transmit`].
#[derive(Debug)]
pub struct AnswerRetransmission {
    bytes: Vec<u8>,
    every: Duration,
    next: Instant,
    give_up: Instant,
    outcome: Option<AnswerOutcome>,
    transmit: Option<Vec<u8>>,
}

impl AnswerRetransmission {
    /// The 2xx `bytes`, first sent at `now`.
    pub fn new(bytes: Vec<u8>, now: Instant) -> Self {
        AnswerRetransmission {
            bytes,
            every: T1,
            next: now + T1,
            give_up: now + 64 * T1,
            outcome: None,
            transmit: None,
        }
    }

    /// The next copy to send, if one is due.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.take()
    }

    /// When [`AnswerRetransmission::handle_timeout`] is due next; None once over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outcome.is_none().then(|| self.next.min(self.give_up))
    }

    /// The time came: at 64·T1 without an ACK it is over ([`AnswerOutcome::NoAck`]); before,
    /// a copy is due and the interval doubles, up to T2.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<AnswerOutcome> {
        if self.outcome.is_some() {
            return None;
        }
        if now >= self.give_up {
            self.outcome = Some(AnswerOutcome::NoAck);
            self.transmit = None;
            return self.outcome;
        }
        if now >= self.next {
            self.transmit = Some(self.bytes.clone());
            self.every = (self.every * 2).min(T2);
            self.next = (now + self.every).min(self.give_up);
        }
        None
    }

    /// The ACK came: nothing more is sent.
    pub fn acknowledged(&mut self) -> AnswerOutcome {
        if self.outcome.is_none() {
            self.outcome = Some(AnswerOutcome::Acknowledged);
            self.transmit = None;
        }
        self.outcome.unwrap_or(AnswerOutcome::Acknowledged)
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<AnswerOutcome> {
        self.outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_request_opens_a_transaction_and_its_copies_are_absorbed_then_answered_again() {
        let t0 = Instant::now();
        let mut table = ServerTransactions::default();
        assert_eq!(table.arrive("z9hG4bKa", t0), Arrival::New);
        assert_eq!(table.arrive("z9hG4bKa", t0 + ms(500)), Arrival::InProgress);
        table.answered("z9hG4bKa", b"SIP/2.0 200 OK".to_vec(), t0 + ms(600));
        assert_eq!(
            table.arrive("z9hG4bKa", t0 + ms(1500)),
            Arrival::Retransmission(b"SIP/2.0 200 OK".to_vec())
        );
        assert_eq!(table.arrive("z9hG4bKb", t0 + ms(1500)), Arrival::New);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn a_transaction_ends_timer_j_after_its_last_response() {
        let t0 = Instant::now();
        let mut table = ServerTransactions::default();
        assert_eq!(table.arrive("a", t0), Arrival::New);
        table.answered("a", b"100".to_vec(), t0);
        table.answered("a", b"200".to_vec(), t0 + ms(10_000));
        let last = t0 + ms(10_000) + TIMER_J;
        assert_eq!(
            table.arrive("a", last - ms(1)),
            Arrival::Retransmission(b"200".to_vec()),
            "still answered just before Timer J"
        );
        assert_eq!(
            table.arrive("a", last),
            Arrival::New,
            "a new transaction after"
        );
    }

    #[test]
    fn the_table_stays_bounded_and_lets_the_oldest_go_first() {
        let t0 = Instant::now();
        let mut table = ServerTransactions::new(3);
        for (i, b) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(table.arrive(b, t0 + ms(i as u64)), Arrival::New);
        }
        assert_eq!(table.arrive("d", t0 + ms(3)), Arrival::New);
        assert_eq!(table.len(), 3);
        assert_eq!(
            table.arrive("a", t0 + ms(4)),
            Arrival::New,
            "the oldest was let go"
        );
        assert_eq!(table.arrive("c", t0 + ms(5)), Arrival::InProgress);
        for i in 0..10_000u64 {
            table.arrive(&format!("flood{i}"), t0 + ms(10 + i));
        }
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn a_2xx_goes_again_at_t1_doubling_to_t2_until_the_ack() {
        let t0 = Instant::now();
        let mut answer = AnswerRetransmission::new(b"200".to_vec(), t0);
        let mut sent_at = Vec::new();
        let mut now = t0;
        while let Some(at) = answer.poll_timeout() {
            now = at;
            if answer.handle_timeout(now).is_some() {
                break;
            }
            if let Some(bytes) = answer.poll_transmit() {
                assert_eq!(bytes, b"200");
                sent_at.push(now.duration_since(t0).as_millis());
            }
            if sent_at.len() == 6 {
                assert_eq!(answer.acknowledged(), AnswerOutcome::Acknowledged);
            }
        }
        assert_eq!(sent_at, vec![500, 1500, 3500, 7500, 11_500, 15_500]);
        assert_eq!(answer.outcome(), Some(AnswerOutcome::Acknowledged));
        assert_eq!(answer.poll_timeout(), None);
        assert!(now < t0 + 64 * T1);
    }

    #[test]
    fn without_an_ack_it_gives_up_at_64_t1() {
        let t0 = Instant::now();
        let mut answer = AnswerRetransmission::new(b"200".to_vec(), t0);
        let mut copies = 0;
        let ended = loop {
            let at = answer.poll_timeout().expect("running until it gives up");
            if let Some(outcome) = answer.handle_timeout(at) {
                break (outcome, at);
            }
            copies += usize::from(answer.poll_transmit().is_some());
        };
        assert_eq!(ended, (AnswerOutcome::NoAck, t0 + 64 * T1));
        // 0.5, 1.5, 3.5, 7.5, then every 4 s up to 31.5 s.
        assert_eq!(copies, 10);
        assert_eq!(answer.poll_transmit(), None);
        assert_eq!(
            answer.acknowledged(),
            AnswerOutcome::NoAck,
            "a late ACK changes nothing"
        );
    }
}
