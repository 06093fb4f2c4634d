//! The sans-IO alarm core: no async, no clock, no IO.
//!
//! Feed it [`Input`]s with [`Core::handle`] and the passing of time with
//! [`Core::handle_timeout`]; carry out what [`Core::poll_output`] returns, in order,
//! committing every [`Output::Persist`] before acting on the next output.
//!
//! Time: every `now` the core is given drives timers (cancel windows, retries, attempt
//! timeouts, supervision), so it must never step. The runtime gives it the wall time at start
//! plus monotonic time since (`runtime::CoreTime`): NTP stepping a Raspberry Pi's clock from
//! 1970 or a stale fake-hwclock time moves no timer. The core's timestamps in the journal are
//! therefore wall times as of the unit's start, exact unless the wall clock stepped while it
//! ran. After a restart the monotonic clock starts again at boot, so the runtime bridges
//! journalled times with the wall clock: if the wall clock is not plausible yet (before
//! `runtime::WALL_FLOOR`), an interrupted cancel window escalates at once (fail towards
//! help); if it stepped back, a window still lasts no longer than its own length.

// Bad input and broken invariants are handled, not panicked on. Tests may still unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod machine;
mod settings;
mod types;

pub use machine::{Core, DeviceStatus, OpenAlarmStatus, Recovered};
pub use settings::{AlarmBehaviour, Carries, RetrySchedule, RouteSettings, Settings, Supervision};
pub use types::*;
