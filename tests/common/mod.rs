//! A fake-clock harness around the core, shared by the core scenario and property tests.
#![allow(dead_code)]

use std::time::Duration;

use vigil::config::{AlarmBehaviour, Carries, RetrySchedule, Supervision};
use vigil::core::*;

pub const T0: Timestamp = Timestamp(1_790_000_000_000);

pub fn device(n: u32, kind: DeviceKind) -> Device {
    Device {
        id: DeviceId(0xA000 + n),
        kind,
        zone: n as u16,
        location: format!("room {n}"),
    }
}

pub fn route(name: &str, kind: RouteKind, personal_only: bool) -> RouteSettings {
    RouteSettings {
        name: name.into(),
        kind,
        carries: Carries {
            personal: true,
            technical: !personal_only,
            test: !personal_only,
        },
        attempt_timeout: Duration::from_secs(60),
        hold_limit: Duration::from_secs(180),
    }
}

/// Three routes (SCAIP, SMS, a person's phone that takes personal alarms only), three devices.
pub fn settings() -> Settings {
    Settings {
        alarm: AlarmBehaviour {
            personal_cancel_window: Duration::ZERO,
            fixed_cancel_window: Duration::from_secs(10),
            fall_confirm_window: Duration::from_secs(30),
            prompt_repeat: Duration::from_secs(10),
        },
        retry: RetrySchedule {
            fast_rounds: 16,
            fast_interval: Duration::from_secs(30),
            slow_interval: Duration::from_secs(600),
        },
        routes: vec![
            route("scaip", RouteKind::Scaip, false),
            route("sms", RouteKind::Sms, false),
            route("daughter", RouteKind::Voice, true),
        ],
        supervision: Supervision {
            heartbeat_interval: Duration::from_secs(3600),
            missing_after: Duration::from_secs(4 * 3600),
            mains_report_delay: Duration::from_secs(120),
            test_interval: Duration::from_secs(24 * 3600),
            test_offset: Duration::from_secs(3 * 3600),
            auto_answer_window: Duration::from_secs(900),
        },
        devices: vec![
            device(1, DeviceKind::Personal),
            device(2, DeviceKind::Fall),
            device(3, DeviceKind::Fixed),
        ],
    }
}

/// The core with a fake clock and every output it produced, in order.
pub struct Harness {
    pub core: Core,
    pub now: Timestamp,
    pub outputs: Vec<Output>,
    counter: u32,
}

impl Harness {
    pub fn new(settings: Settings) -> Harness {
        Harness {
            core: Core::new(settings, T0, 1),
            now: T0,
            outputs: Vec::new(),
            counter: 0,
        }
    }

    /// Outputs produced since the last call.
    pub fn drain(&mut self) -> Vec<Output> {
        let mut fresh = Vec::new();
        while let Some(o) = self.core.poll_output() {
            fresh.push(o);
        }
        self.outputs.extend(fresh.iter().cloned());
        fresh
    }

    pub fn input(&mut self, input: Input) -> Vec<Output> {
        self.core.handle(self.now, input);
        self.drain()
    }

    /// Moves the clock forward, firing every timer on the way, in order.
    pub fn advance(&mut self, by: Duration) -> Vec<Output> {
        let end = self.now + by;
        let mut out = Vec::new();
        while let Some(t) = self.core.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t.max(self.now);
            self.core.handle_timeout(self.now);
            out.extend(self.drain());
        }
        self.now = end;
        self.core.handle_timeout(self.now);
        out.extend(self.drain());
        out
    }

    pub fn radio(&mut self, n: u32, kind: RadioEventKind) -> Vec<Output> {
        self.counter += 1;
        self.input(Input::Radio(RadioEvent {
            device: DeviceId(0xA000 + n),
            counter: self.counter,
            kind,
            rssi_dbm: Some(-70),
        }))
    }

    pub fn result(&mut self, d: &Delivery, result: DeliveryResult) -> Vec<Output> {
        self.input(Input::Delivery {
            alarm: d.alarm.id,
            attempt: d.attempt,
            result,
        })
    }
}

pub fn deliveries(outputs: &[Output]) -> Vec<Delivery> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Deliver(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

pub fn prompts(outputs: &[Output]) -> Vec<Prompt> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Play(p) => Some(*p),
            _ => None,
        })
        .collect()
}

pub fn records(outputs: &[Output]) -> Vec<Record> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Persist(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

pub fn acked(by: &str) -> DeliveryResult {
    DeliveryResult::Acked {
        by: by.into(),
        callback: None,
    }
}

pub fn failed(reason: &str) -> DeliveryResult {
    DeliveryResult::Failed {
        reason: reason.into(),
    }
}
