//! The part of the configuration the core decides with; `vigil_config` builds it from a
//! validated `config.toml` (`Config::core_settings`).

use super::types::{AlarmClass, Device, RouteKind};
use std::time::Duration;

/// One route as the core sees it: which alarms it carries and how long an attempt may take.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteSettings {
    /// Installer's name.
    pub name: String,
    /// Kind of route.
    pub kind: RouteKind,
    /// Classes carried.
    pub carries: Carries,
    /// An attempt without a result after this long has failed.
    pub attempt_timeout: Duration,
    /// How long a receiver may hold an alarm (SCAIP `snu=4`) before the next route.
    pub hold_limit: Duration,
}

impl RouteSettings {
    /// Whether this route carries alarms of `class`.
    pub fn carries(&self, class: AlarmClass) -> bool {
        match class {
            AlarmClass::Personal => self.carries.personal,
            AlarmClass::Technical => self.carries.technical,
            AlarmClass::Test => self.carries.test,
        }
    }
}

/// Everything the core needs to decide.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Windows per trigger kind.
    pub alarm: AlarmBehaviour,
    /// Pauses between rounds.
    pub retry: RetrySchedule,
    /// The escalation plan, in order.
    pub routes: Vec<RouteSettings>,
    /// Supervision timers.
    pub supervision: Supervision,
    /// Paired devices known from the configuration.
    pub devices: Vec<Device>,
}

/// Windows per trigger kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlarmBehaviour {
    /// Pre-alarm cancel window after a help press on a personal trigger (0 = call at once).
    pub personal_cancel_window: Duration,
    /// Pre-alarm cancel window for fixed triggers.
    pub fixed_cancel_window: Duration,
    /// Fall confirmation window: help escalates at once, only a cancel stops it.
    pub fall_confirm_window: Duration,
    /// How often a window's prompt is repeated.
    pub prompt_repeat: Duration,
}

/// When to go round the routes again while an alarm is unacknowledged. Never gives up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetrySchedule {
    /// Rounds at the fast interval.
    pub fast_rounds: u32,
    /// Pause between fast rounds.
    pub fast_interval: Duration,
    /// Pause between rounds after the fast ones, forever.
    pub slow_interval: Duration,
}

/// Which classes of alarm a route carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carries {
    /// Personal alarms (help, fall).
    pub personal: bool,
    /// Technical reports.
    pub technical: bool,
    /// Test reports.
    pub test: bool,
}

/// Supervision and technical reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Supervision {
    /// How often pendants send a heartbeat.
    pub heartbeat_interval: Duration,
    /// A pendant unheard this long is reported missing.
    pub missing_after: Duration,
    /// Mains loss reported after this long (≤ 180 s).
    pub mains_report_delay: Duration,
    /// Periodic test interval (≤ 24 h).
    pub test_interval: Duration,
    /// Offset of this unit's test within the interval, so a fleet does not call at once.
    pub test_offset: Duration,
    /// How long after an alarm incoming calls from centre numbers are answered automatically.
    pub auto_answer_window: Duration,
}
