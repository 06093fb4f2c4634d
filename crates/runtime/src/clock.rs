//! The unit's one time source, injected into every part that needs the time: the runtime,
//! the journal, the routes and the voice side take it from here instead of reading a clock
//! themselves, so tests, the demo and the whole-unit simulation can step or shift it.

use std::time::Duration;

use crate::core::Timestamp;

/// The unit's one time source: monotonic time for timers, wall time for display and protocol
/// timestamps. Adapters take it from here instead of reading a clock themselves, so tests and
/// the demo can step or shift it.
pub trait Clock: Send + Sync + 'static {
    /// Time since an arbitrary start (boot); never steps, never goes back.
    fn monotonic(&self) -> Duration;
    /// UTC wall time as the system believes it; NTP or an installer may step it at any moment.
    fn wall(&self) -> Timestamp;
    /// Whether the wall clock can be believed: at or after [`WALL_FLOOR`]. A Raspberry Pi has
    /// no real-time clock and boots at 1970 (or a stale fake-hwclock time) until NTP steps it.
    fn wall_plausible(&self) -> bool {
        self.wall() >= WALL_FLOOR
    }
}

/// No plausible wall clock reads earlier than this (2026-01-01T00:00:00Z, before this code
/// was built): anything earlier is a clock that was never set.
pub const WALL_FLOOR: Timestamp = Timestamp::from_secs(1_767_225_600);

/// The system clock: `CLOCK_MONOTONIC` through [`std::time::Instant`] and the system's UTC.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn monotonic(&self) -> Duration {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed()
    }

    fn wall(&self) -> Timestamp {
        Timestamp::now()
    }
}
