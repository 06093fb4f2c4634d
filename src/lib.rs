//! Vigil: the home base unit of a personal emergency response system (social alarm).
//!
//! A sans-IO [`core`] decides; adapters at the edge ([`radio`], [`modem`], [`centre`],
//! [`voice`], [`journal`]) carry out what it decides; [`runtime`] wires them together.
//! Each layer is a crate of its own (README "Layout"); this one puts them under one name for
//! the `vigil` binary, the tests and the benchmarks.

pub use vigil_config as config;
pub use vigil_core as core;
pub use vigil_fall as fall;
#[cfg(not(feature = "sim"))]
pub use vigil_runtime::{centre, modem, radio, runtime};
pub use vigil_runtime::{clock, hint, journal, voice};
#[cfg(feature = "sim")]
pub use vigil_sim::{centre, demo, modem, radio, runtime};
