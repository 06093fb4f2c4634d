//! The core's view of a validated configuration.

use std::time::Duration;

use crate::core::{Device, RouteSettings, Settings};
use crate::{Config, Transport};

impl Config {
    /// The part of this configuration the alarm core decides with.
    pub fn core_settings(&self) -> Settings {
        Settings {
            alarm: self.alarm,
            retry: self.retry,
            routes: self
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
            supervision: self.supervision,
            devices: self
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
