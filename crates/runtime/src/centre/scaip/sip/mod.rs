//! A small SIP node (RFC 3261) for SCAIP: UDP, TCP or TLS transport, client
//! transactions with retransmission (§17.1.2), server-side duplicate suppression (§17.2.2),
//! and digest authentication (RFC 7616 / RFC 8760: SHA-256 when offered, MD5 only when it is
//! the only choice) answering both 401 and 407.
//!
//! Messages are parsed with `rsip`; requests are written as text.
//!
//! - `message`: parsing and writing SIP messages, header values, URIs and parameters.
//! - `digest`: digest challenges, answers to them, and checking a client's answer.
//! - `transport`: the node's UDP/TCP/TLS sockets, stream framing and TLS settings.
//! - `transaction`: the async drivers of the client transactions (whose timers,
//!   retransmissions, ACK and CANCEL are `vigil_wire::sip::transaction`'s sans-IO machines),
//!   and the server side.

/// Digest authentication.
pub use vigil_wire::sip::digest;
/// SIP messages.
pub use vigil_wire::sip::message;
mod transaction;
mod transport;

pub use digest::{auth_params, verify_authorization, Challenge};
pub use message::{addr_uri, aor, param, parse_untrusted, random_token, redacted, CSeq, SipMsg};
pub use transaction::{Invited, T1, T2};
#[cfg(feature = "tls")]
pub use transport::{tls_client, tls_server, TlsRole};
pub use transport::{Flow, Incoming, SipNode, ACCEPTED_IDLE, MAX_ACCEPTED};
