//! A timeline a person can follow: each event with its time relative to the first trigger.

use crate::core::{
    BaseButton, CallEvent, DeliveryResult, Input, Output, RadioEventKind, Record, Timestamp,
};

use super::Event;

/// Turns runtime events into readable lines.
#[derive(Debug, Default)]
pub struct Timeline {
    start: Option<Timestamp>,
    route_names: Vec<String>,
    /// Alarms cancelled at the base: what the microphone made of them no longer matters.
    cancelled: std::collections::BTreeSet<crate::core::AlarmId>,
}

impl Timeline {
    /// A timeline naming routes by the plan's names.
    pub fn new(route_names: Vec<String>) -> Timeline {
        Timeline {
            start: None,
            route_names,
            cancelled: std::collections::BTreeSet::new(),
        }
    }

    /// Restarts the clock: the next event is at +0.0 s.
    pub fn reset(&mut self) {
        self.start = None;
    }

    /// The route's name in the plan, or its place in the plan when the timeline has no names.
    fn route(&self, i: usize) -> String {
        self.route_names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("route {}", i + 1))
    }

    /// The line for an event, or None for events too small to show.
    pub fn line(&mut self, event: &Event) -> Option<String> {
        match event {
            Event::Output(_, Output::Persist(Record::Cancelled { alarm, .. })) => {
                self.cancelled.insert(*alarm);
            }
            // The listening ends with the cancel; its verdict is no news.
            Event::Input(_, Input::Heard { alarm, .. }) if self.cancelled.contains(alarm) => {
                return None;
            }
            _ => {}
        }
        let (at, text) = match event {
            Event::Input(at, input) => (*at, self.input(input)?),
            Event::Output(at, output) => (*at, self.output(output)?),
            Event::JournalFailed(at, e) => (*at, format!("JOURNAL WRITE FAILED: {e}")),
        };
        let start = *self.start.get_or_insert(at);
        let rel = at.0 as i64 - start.0 as i64;
        Some(format!("{:>+8.1} s  {text}", rel as f64 / 1000.0))
    }

    fn input(&self, input: &Input) -> Option<String> {
        Some(match input {
            Input::Radio(ev) => {
                let what = match ev.kind {
                    RadioEventKind::Help => "help button pressed".to_string(),
                    RadioEventKind::Cancel => "button held: cancel".to_string(),
                    RadioEventKind::Fall { evidence } => match evidence {
                        Some(e) => format!("fall detected by the pendant: {}", e.describe()),
                        None => "fall detected by the pendant".to_string(),
                    },
                    RadioEventKind::Heartbeat { battery_mv, .. } => {
                        format!("heartbeat, battery {battery_mv} mV")
                    }
                    RadioEventKind::LowBattery { battery_mv } => {
                        format!("low battery, {battery_mv} mV")
                    }
                    RadioEventKind::Tamper => "tamper".to_string(),
                };
                let rssi = ev
                    .rssi_dbm
                    .map(|r| format!(", {r} dBm"))
                    .unwrap_or_default();
                format!(
                    "radio    pendant {} (frame {}{rssi}): {what}",
                    ev.device, ev.counter
                )
            }
            Input::Button(BaseButton::Help) => {
                "button   help button pressed on the base unit".into()
            }
            Input::Button(BaseButton::Cancel) => {
                "button   cancel button pressed on the base unit".into()
            }
            Input::Mains { present: false } => "power    mains lost".into(),
            Input::Mains { present: true } => "power    mains back".into(),
            Input::BaseBattery { low: true } => {
                "power    the base unit's backup battery is low".into()
            }
            Input::BaseBattery { low: false } => {
                "power    the base unit's backup battery is charged again".into()
            }
            Input::Jamming { active: true } => {
                "radio    jamming detected: the radio channel is blocked".into()
            }
            Input::Jamming { active: false } => {
                "radio    jamming over: the channel is clear".into()
            }
            Input::Paired { device } => format!("radio    pendant {} paired", device.id),
            Input::RouteUp { route } => format!("route    {} works again", self.route(route.0)),
            Input::RouteUnusable {
                route,
                why: Some(why),
            } => format!("route    {} cannot work here: {why}", self.route(route.0)),
            Input::RouteUnusable { route, why: None } => {
                format!("route    {} can work again", self.route(route.0))
            }
            Input::Network { registered: true } => {
                "modem    registered on the mobile network".into()
            }
            Input::Network { registered: false } => {
                "modem    not registered on any mobile network".into()
            }
            Input::Fault { fault, active } => {
                let (began, ended) = fault.describe();
                format!("fault    {}", if *active { began } else { ended })
            }
            Input::Delivery {
                alarm,
                attempt,
                result,
            } => {
                let r = match result {
                    DeliveryResult::Acked { by, callback } => format!(
                        "ACKNOWLEDGED by {by}{}",
                        callback
                            .as_ref()
                            .map(|c| format!(", callback requested to {c}"))
                            .unwrap_or_default()
                    ),
                    DeliveryResult::Hold { retry_after } => {
                        format!("held by receiver, resend in {} s", retry_after.as_secs())
                    }
                    DeliveryResult::Declined { reason } => format!("declined: {reason}"),
                    DeliveryResult::Failed { reason } => format!("failed: {reason}"),
                };
                format!("route    alarm {alarm} attempt {attempt}: {r}")
            }
            Input::Heard { alarm, heard } => {
                format!("voice    alarm {alarm}: {}", heard.describe())
            }
            Input::Call { alarm, event } => {
                let what = match event {
                    CallEvent::Connected => "the centre's call-back is connected".to_string(),
                    CallEvent::Ended { reason } => format!("the call ended: {reason}"),
                    CallEvent::Refused { reason } => {
                        format!("the centre's call-back was refused: {reason}")
                    }
                };
                format!("call     alarm {alarm}: {what}")
            }
            Input::TestRequest => "command  test call requested".into(),
            Input::SilenceWarnings => "command  silence warnings".into(),
        })
    }

    fn output(&self, output: &Output) -> Option<String> {
        Some(match output {
            Output::Persist(r) => match r {
                Record::Raised {
                    alarm,
                    window_until,
                    ..
                } => format!(
                    "journal  alarm {} ref {} RAISED: {}{}{}",
                    alarm.id,
                    alarm.reference,
                    alarm.describe(),
                    alarm
                        .device
                        .as_ref()
                        .map(|d| format!(" ({}, {})", d.id, d.location))
                        .unwrap_or_default(),
                    window_until
                        .map(|w| format!(", window {} s", w.since(alarm.raised_at).as_secs()))
                        .unwrap_or_default()
                ),
                Record::Repeated { alarm, .. } => {
                    format!("journal  alarm {alarm}: trigger again, merged")
                }
                Record::Escalated { alarm, reason, .. } => {
                    format!("journal  alarm {alarm}: escalating ({})", reason.describe())
                }
                Record::AttemptStarted { .. } => return None,
                Record::AttemptFailed {
                    alarm,
                    attempt,
                    route,
                    reason,
                    ..
                } => format!(
                    "journal  alarm {alarm} attempt {attempt} via {} failed: {reason}",
                    self.route(route.0)
                ),
                Record::Acknowledged {
                    alarm, route, by, ..
                } => format!(
                    "journal  alarm {alarm} ACKNOWLEDGED via {} by {by}",
                    self.route(route.0)
                ),
                Record::Cancelled { alarm, by, .. } => {
                    format!("journal  alarm {alarm} CANCELLED by {by}")
                }
                Record::CallBackRefused { alarm, reason, .. } => {
                    format!("journal  alarm {alarm}: centre's call-back refused: {reason}")
                }
            },
            Output::Play(p) => format!("voice    \"{}\"", p.file_stem().replace('_', " ")),
            Output::Listen { alarm, until } => {
                format!("voice    listening for an answer (alarm {alarm}) until {until}")
            }
            Output::StopListening => return None,
            Output::AckPendant { device, counter } => {
                format!("radio    acknowledged frame {counter} to pendant {device}")
            }
            Output::TellPendantHelpComing { device, counter } => {
                format!("radio    told pendant {device} that help is coming (frame {counter})")
            }
            Output::Deliver(d) => format!(
                "route    alarm {} attempt {} -> {}",
                d.alarm.id,
                d.attempt,
                self.route(d.route.0)
            ),
            Output::AbortDelivery { alarm, attempt } => {
                format!("route    alarm {alarm} attempt {attempt} abandoned")
            }
            Output::StartCall { number, .. } => format!("call     calling {number} for speech"),
            Output::AutoAnswer { until } => {
                format!("call     answering the centre's calls until {until}")
            }
        })
    }
}
