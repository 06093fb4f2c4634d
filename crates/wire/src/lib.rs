//! Wire formats the unit speaks, as pure functions over bytes and text: no IO, no clock, no
//! async. The adapters in `vigil-runtime` carry them over sockets and the modem.
//!
//! - [`contact_id`]: SIA DC-05 Contact ID messages and the kissoff's timing;
//! - [`dc09`]: SIA DC-09 frames, their CRC and AES-CBC encryption.

// Bad input and broken invariants are handled, not panicked on. Tests may still unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod contact_id;
pub mod dc09;
