//! Wire formats the unit speaks, as pure functions over bytes and text: no IO, no clock, no
//! async. The adapters in `vigil-runtime` carry them over sockets and the modem.
//!
//! - [`contact_id`]: SIA DC-05 Contact ID messages and the kissoff's timing;
//! - [`dc09`]: SIA DC-09 frames, their CRC and AES-CBC encryption, and one frame's exchange
//!   with a receiver as a state machine ([`dc09::exchange`]);
//! - [`at`]: AT command lines and what a modem answers (3GPP TS 27.007), total parsers;
//! - [`pdu`]: SMS PDUs (3GPP TS 23.040), GSM 7-bit and UCS-2, concatenation;
//! - [`scaip`]: SCAIP bodies (SS 91100), bounded parsing of untrusted XML;
//! - [`radio`]: the pendant's radio frames, their AES-GCM seal and events;
//! - [`sip`]: SIP messages and digest authentication.

// Bad input and broken invariants are handled, not panicked on. Tests may still unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod at;
pub mod contact_id;
pub mod dc09;
pub mod pdu;
pub mod radio;
pub mod scaip;
pub mod sip;
