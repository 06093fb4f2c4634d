//! SIP (RFC 3261) as SCAIP uses it: bounded parsing of untrusted messages, digest
//! authentication (RFC 7616) with constant-time checks, client transactions (§17.1) as
//! sans-IO state machines, and the server side's timing: server transactions (§17.2) and a
//! UAS's 2xx sent again until its ACK (§13.3.1.4).

pub mod digest;
pub mod message;
pub mod server;
pub mod transaction;

/// A SIP message or digest exchange that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    /// A SIP message we cannot use.
    #[error("SIP: {0}")]
    Message(String),
    /// Digest authentication cannot go on.
    #[error("authentication: {0}")]
    Auth(String),
}
