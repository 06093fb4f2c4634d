//! SIP (RFC 3261) as SCAIP uses it: bounded parsing of untrusted messages, digest
//! authentication (RFC 7616) with constant-time checks, and client transactions (§17.1) as
//! sans-IO state machines.

pub mod digest;
pub mod message;
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
