//! The sans-IO alarm core: no async, no clock, no IO.

mod types;
pub use types::*;
