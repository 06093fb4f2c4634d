//! The part of the configuration the core decides with.

use super::types::{AlarmClass, Device, RouteKind};
use crate::config::{AlarmBehaviour, Carries, Config, RetrySchedule, Supervision, Transport};
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

impl Settings {
    /// The core's view of a validated configuration.
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            alarm: config.alarm,
            retry: config.retry,
            routes: config
                .routes
                .iter()
                .map(|r| RouteSettings {
                    name: r.name.clone(),
                    kind: r.kind(),
                    carries: r.carries,
                    attempt_timeout: r.attempt_timeout,
                    hold_limit: match &r.transport {
                        Transport::Scaip(s) => s.hold_limit,
                        _ => Duration::from_secs(600),
                    },
                })
                .collect(),
            supervision: config.supervision,
            devices: config
                .pendants
                .iter()
                .map(|p| Device {
                    id: p.id,
                    kind: p.kind,
                    zone: p.zone,
                    location: p.location.clone(),
                })
                .collect(),
        }
    }
}
