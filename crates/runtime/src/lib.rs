//! Vigil: the home base unit of a personal emergency response system (social alarm).
//!
//! A sans-IO [`core`] decides; adapters at the edge ([`radio`], [`modem`], [`centre`],
//! [`voice`], [`journal`]) carry out what it decides; [`runtime`] wires them together.

// Bad input and broken invariants are handled, not panicked on: an alarm must never be lost.
// Tests may still unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod centre;
pub mod clock;
use vigil_config as config;
use vigil_core as core;
pub mod hint;
pub mod journal;
pub mod modem;
pub mod radio;
pub mod runtime;
pub mod sync;
pub mod voice;
