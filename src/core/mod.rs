//! The sans-IO alarm core: no async, no clock, no IO.
//!
//! Feed it [`Input`]s with [`Core::handle`] and the passing of time with
//! [`Core::handle_timeout`]; carry out what [`Core::poll_output`] returns, in order,
//! committing every [`Output::Persist`] before acting on the next output.

mod machine;
mod settings;
mod types;

pub use machine::{Core, DeviceStatus, OpenAlarmStatus, Recovered};
pub use settings::{RouteSettings, Settings};
pub use types::*;
