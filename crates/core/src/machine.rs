//! The alarm state machine.
//!
//! [`Core`] is driven by [`Core::handle`], [`Core::handle_timeout`] and read through
//! [`Core::poll_output`] and [`Core::poll_timeout`]. It owns every decision: windows,
//! escalation order, retries, priorities and supervision. It never does IO and never reads a
//! clock, so a scenario is a sequence of calls with a fake `now`.

use std::collections::{BTreeMap, VecDeque};

use super::settings::Settings;
use super::types::*;

/// An alarm that is not finished: in its window, or going round the routes.
#[derive(Clone, Debug)]
struct OpenAlarm {
    alarm: Alarm,
    phase: Phase,
    /// Last attempt number used (attempts count from 1).
    attempts: u32,
    /// Rounds through the routes completed without an acknowledgement.
    rounds: u32,
    /// Position in this round's order of the next route to try.
    next_route: usize,
    /// This round's order of the routes (indices into the plan): those not known to be
    /// down first, in the configured order, then those known to be down. Empty until the
    /// round's first attempt.
    order: Vec<usize>,
    /// The next attempt may start at this time.
    ready_at: Timestamp,
    /// While a receiver holds the alarm (SCAIP `snu=4`): the route and since when.
    hold: Option<(RouteId, Timestamp)>,
    /// The routes of the latest attempts, so a late acknowledgement names its route.
    recent: VecDeque<(u32, RouteId)>,
    /// The counter of the pendant's latest frame for this alarm: the pendant waits for word
    /// that help is coming under it.
    frame: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// In its cancel or confirmation window; the prompt repeats at `prompt_at`.
    Window {
        until: Timestamp,
        prompt: Prompt,
        prompt_at: Timestamp,
    },
    /// Going round the routes.
    Escalating,
}

/// The one delivery attempt running.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    alarm: AlarmId,
    attempt: u32,
    route: RouteId,
    class: AlarmClass,
    deadline: Timestamp,
}

/// What the core knows of a paired device.
#[derive(Clone, Debug)]
struct PendantState {
    device: Device,
    /// When last heard; until it is, when the unit started (supervision counts from then).
    last_heard: Timestamp,
    /// Whether a frame has come from it since the unit started.
    heard: bool,
    missing_reported: bool,
    battery_reported_at: Option<Timestamp>,
    tamper_reported_at: Option<Timestamp>,
    last_rssi: Option<i16>,
    last_battery_mv: Option<u16>,
    /// The alarm count of the pendant's last heartbeat (none since the unit started).
    heartbeat_alarms: Option<u16>,
    /// Help and fall frames received from it since that heartbeat.
    alarms_since_heartbeat: u16,
}

/// An unacknowledged alarm read back from the journal at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The alarm as raised.
    pub alarm: Alarm,
    /// End of its window, if it had one.
    pub window_until: Option<Timestamp>,
    /// Whether it had left its window.
    pub escalated: bool,
    /// Attempts made so far.
    pub attempts: u32,
}

/// A snapshot of one open alarm, for `vigil status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenAlarmStatus {
    /// The alarm.
    pub alarm: Alarm,
    /// End of its window, if still in it.
    pub window_until: Option<Timestamp>,
    /// Attempts so far.
    pub attempts: u32,
    /// Completed rounds.
    pub rounds: u32,
}

/// A snapshot of one device, for `vigil status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceStatus {
    /// The device.
    pub device: Device,
    /// When last heard (or when the unit started, if not since: see `heard`).
    pub last_heard: Timestamp,
    /// Whether it was heard since the unit started; if not, `last_heard` is only the start.
    pub heard: bool,
    /// Whether it is reported missing.
    pub missing: bool,
    /// Last reported battery voltage.
    pub battery_mv: Option<u16>,
    /// Last signal strength.
    pub rssi_dbm: Option<i16>,
}

/// How often a pendant's low battery or tamper is reported again while it persists.
const REPEAT_TECHNICAL: Duration = Duration::from_secs(24 * 3600);
/// Bounds on a receiver's hold interval (SCAIP: resend after 5–20 s).
const HOLD_MIN: Duration = Duration::from_secs(5);
const HOLD_MAX: Duration = Duration::from_secs(20);
/// How many attempts' routes an alarm remembers for late acknowledgements.
const RECENT_ATTEMPTS: usize = 16;
/// How long the `SILENCE` remote command keeps technical prompts quiet at the base.
pub const SILENCE_FOR: Duration = Duration::from_secs(8 * 3600);
/// A route that has failed every attempt for this long is a fault of the unit, reported to
/// the centre (its restore when it works again).
pub const ROUTE_FAILING_FOR: Duration = Duration::from_secs(3600);

/// The sans-IO alarm core.
#[derive(Debug)]
pub struct Core {
    settings: Settings,
    outputs: VecDeque<Output>,
    next_id: u64,
    alarms: BTreeMap<AlarmId, OpenAlarm>,
    in_flight: Option<InFlight>,
    pendants: BTreeMap<DeviceId, PendantState>,
    mains_lost_since: Option<Timestamp>,
    mains_reported: bool,
    base_battery_reported: bool,
    jamming_reported: bool,
    /// Faults of the unit reported to the centre, with when each began.
    faults: BTreeMap<UnitFault, Timestamp>,
    network_ok: bool,
    next_test: Timestamp,
    listening: Option<AlarmId>,
    /// Routes whose last attempt failed (no answer, refused connection…), since when: each
    /// round tries them after the others. An acknowledgement on a route clears it.
    route_down: BTreeMap<RouteId, Timestamp>,
    /// Routes that cannot work on this unit's hardware (a call route on a module that cannot
    /// hear its acknowledgement), since when and why: left out of every round while another
    /// route remains.
    route_unusable: BTreeMap<RouteId, (Timestamp, String)>,
    /// Technical prompts are not spoken until then (the `SILENCE` remote command).
    silenced_until: Option<Timestamp>,
    /// The time of the input or timeout being handled.
    now: Timestamp,
}

impl Core {
    /// A core for these settings, started at `now`, with the next alarm id `next_id`
    /// (one more than the highest id in the journal).
    pub fn new(settings: Settings, now: Timestamp, next_id: u64) -> Core {
        let pendants = settings
            .devices
            .iter()
            .map(|d| (d.id, PendantState::new(d.clone(), now)))
            .collect();
        let next_test = next_test_after(now, &settings);
        Core {
            settings,
            outputs: VecDeque::new(),
            next_id: next_id.max(1),
            alarms: BTreeMap::new(),
            in_flight: None,
            pendants,
            mains_lost_since: None,
            mains_reported: false,
            base_battery_reported: false,
            jamming_reported: false,
            faults: BTreeMap::new(),
            network_ok: true,
            next_test,
            listening: None,
            silenced_until: None,
            now,
            route_down: BTreeMap::new(),
            route_unusable: BTreeMap::new(),
        }
    }

    /// The routes that cannot work on this unit's hardware, since when and why.
    pub fn routes_unusable(&self) -> impl Iterator<Item = (RouteId, Timestamp, &str)> + '_ {
        self.route_unusable
            .iter()
            .map(|(r, (t, why))| (*r, *t, why.as_str()))
    }

    /// The routes known to be down (their last attempt failed), with since when.
    pub fn routes_down(&self) -> impl Iterator<Item = (RouteId, Timestamp)> + '_ {
        self.route_down.iter().map(|(r, t)| (*r, *t))
    }

    /// The installer's name of a route of the plan.
    pub fn route_name(&self, route: RouteId) -> &str {
        self.settings
            .routes
            .get(route.0)
            .map_or("?", |r| r.name.as_str())
    }

    /// The order of a new round: routes not known to be down first, then the others, each
    /// group in the configured order. Routes that cannot work on this hardware are left out,
    /// unless no other route is left: then every route is tried, towards help.
    fn round_order(&self) -> Vec<usize> {
        let n = self.settings.routes.len();
        let unusable = |i: &usize| self.route_unusable.contains_key(&RouteId(*i));
        let candidates: Vec<usize> = if (0..n).all(|i| unusable(&i)) {
            (0..n).collect()
        } else {
            (0..n).filter(|i| !unusable(i)).collect()
        };
        let down = |i: &usize| self.route_down.contains_key(&RouteId(*i));
        let mut order: Vec<usize> = candidates.iter().copied().filter(|i| !down(i)).collect();
        order.extend(candidates.into_iter().filter(|i| down(i)));
        order
    }

    /// Until when technical prompts are silenced at the base, if they are.
    pub fn silenced_until(&self) -> Option<Timestamp> {
        self.silenced_until.filter(|t| *t > self.now)
    }

    /// Takes back the unacknowledged alarms of the journal after a restart: windows that
    /// have not ended resume, every other alarm goes to the routes at once.
    pub fn restore(&mut self, now: Timestamp, recovered: Vec<Recovered>) {
        for r in recovered {
            let id = r.alarm.id;
            self.next_id = self.next_id.max(id.0 + 1);
            let mut open = OpenAlarm::new(r.alarm, Phase::Escalating, now);
            open.attempts = r.attempts;
            match r.window_until {
                Some(until) if !r.escalated && until > now => {
                    let prompt = window_prompt(open.alarm.cause);
                    open.phase = Phase::Window {
                        until,
                        prompt,
                        prompt_at: now + self.settings.alarm.prompt_repeat,
                    };
                    self.alarms.insert(id, open);
                    self.out(Output::Play(prompt));
                    self.listen(id, until);
                }
                _ => {
                    self.alarms.insert(id, open);
                    if !r.escalated {
                        self.out(Output::Persist(Record::Escalated {
                            alarm: id,
                            at: now,
                            reason: EscalationReason::Resumed,
                        }));
                    }
                }
            }
        }
        self.pump(now);
    }

    /// Registers a device paired while running.
    pub fn add_device(&mut self, device: Device, now: Timestamp) {
        self.pendants
            .entry(device.id)
            .and_modify(|p| p.device = device.clone())
            .or_insert_with(|| PendantState::new(device, now));
    }

    /// The next output to carry out, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Core::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let mut t: Option<Timestamp> = Some(self.next_test);
        let mut consider = |x: Timestamp| t = Some(t.map_or(x, |t| t.min(x)));
        for a in self.alarms.values() {
            match a.phase {
                Phase::Window {
                    until, prompt_at, ..
                } => {
                    consider(until);
                    consider(prompt_at);
                }
                Phase::Escalating if self.in_flight.is_none() => consider(a.ready_at),
                Phase::Escalating => {}
            }
        }
        if let Some(f) = &self.in_flight {
            consider(f.deadline);
        }
        for p in self.pendants.values() {
            if !p.missing_reported {
                consider(p.last_heard + self.settings.supervision.missing_after);
            }
        }
        if let (Some(since), false) = (self.mains_lost_since, self.mains_reported) {
            consider(since + self.settings.supervision.mains_report_delay);
        }
        if !self.faults.contains_key(&UnitFault::Route) {
            if let Some(since) = self.route_down.values().min() {
                consider(*since + ROUTE_FAILING_FOR);
            }
        }
        t
    }

    /// Open alarms, for status displays.
    pub fn open_alarms(&self) -> Vec<OpenAlarmStatus> {
        self.alarms
            .values()
            .map(|a| OpenAlarmStatus {
                alarm: a.alarm.clone(),
                window_until: match a.phase {
                    Phase::Window { until, .. } => Some(until),
                    Phase::Escalating => None,
                },
                attempts: a.attempts,
                rounds: a.rounds,
            })
            .collect()
    }

    /// Devices and what is known of them, for status displays.
    pub fn devices(&self) -> Vec<DeviceStatus> {
        self.pendants
            .values()
            .map(|p| DeviceStatus {
                device: p.device.clone(),
                last_heard: p.last_heard,
                heard: p.heard,
                missing: p.missing_reported,
                battery_mv: p.last_battery_mv,
                rssi_dbm: p.last_rssi,
            })
            .collect()
    }

    /// Whether mains power is present as far as the core knows.
    pub fn mains_present(&self) -> bool {
        self.mains_lost_since.is_none()
    }

    /// When the next periodic test report is due.
    pub fn next_test(&self) -> Timestamp {
        self.next_test
    }

    /// Handles something that happened at `now`.
    pub fn handle(&mut self, now: Timestamp, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::Radio(ev) => self.on_radio(now, ev),
            Input::Button(BaseButton::Help) => self.on_base_help(now),
            Input::Button(BaseButton::Cancel) => self.cancel(now, CancelSource::BaseButton),
            Input::Mains { present } => self.on_mains(now, present),
            Input::BaseBattery { low } => {
                if low && !self.base_battery_reported {
                    self.base_battery_reported = true;
                    self.raise(now, AlarmCause::BaseBatteryLow, None);
                } else if !low {
                    self.base_battery_reported = false;
                }
            }
            Input::Jamming { active } => {
                if active && !self.jamming_reported {
                    self.jamming_reported = true;
                    self.out(Output::Play(Prompt::RadioTrouble));
                    self.raise(now, AlarmCause::Jamming, None);
                } else if !active && self.jamming_reported {
                    self.jamming_reported = false;
                    self.raise(now, AlarmCause::JammingEnded, None);
                }
            }
            Input::Fault { fault, active } => self.on_fault(now, fault, active),
            Input::RouteUp { route } => {
                if self.route_down.remove(&route).is_some() {
                    // Alarms paused between rounds go round again at once rather than wait
                    // out the pause; a held alarm keeps the time its receiver asked for.
                    for a in self.alarms.values_mut() {
                        let between_rounds = a.phase == Phase::Escalating
                            && a.rounds > 0
                            && a.order.is_empty()
                            && a.hold.is_none();
                        if between_rounds && a.ready_at > now {
                            a.ready_at = now;
                        }
                    }
                }
            }
            // The route fault follows in `refresh_route_fault`.
            Input::RouteUnusable { route, why } => match why {
                Some(why) => {
                    self.route_unusable.entry(route).or_insert((now, why));
                }
                None => {
                    self.route_unusable.remove(&route);
                }
            },
            Input::Paired { device } => {
                // A new key starts afresh: never heard, supervised from now.
                self.pendants
                    .insert(device.id, PendantState::new(device, now));
            }
            Input::Network { registered } => {
                if self.network_ok && !registered {
                    self.out(Output::Play(Prompt::NoNetwork));
                }
                self.network_ok = registered;
            }
            Input::Delivery {
                alarm,
                attempt,
                result,
            } => self.on_delivery(now, alarm, attempt, result),
            Input::Heard { alarm, heard } => self.on_heard(now, alarm, heard),
            Input::Call { alarm, event } => match event {
                CallEvent::Connected => self.out(Output::Play(Prompt::Connected)),
                CallEvent::Ended { .. } => {}
                CallEvent::Refused { reason } => {
                    self.out(Output::Persist(Record::CallBackRefused {
                        alarm,
                        at: now,
                        reason,
                    }))
                }
            },
            Input::TestRequest => {
                self.out(Output::Play(Prompt::TestCall));
                self.raise(now, AlarmCause::ManualTest, None);
            }
            // Technical prompts go quiet at the base for a while; every report still goes to
            // the centre, and alarm prompts are never silenced.
            Input::SilenceWarnings => self.silenced_until = Some(now + SILENCE_FOR),
        }
        self.refresh_route_fault(now);
        self.pump(now);
    }

    /// The route fault is present while a route cannot work on this hardware, or has failed
    /// every attempt for [`ROUTE_FAILING_FOR`]; it is raised and restored as that changes.
    fn refresh_route_fault(&mut self, now: Timestamp) {
        let due = !self.route_unusable.is_empty()
            || self
                .route_down
                .values()
                .any(|since| now >= *since + ROUTE_FAILING_FOR);
        if due != self.faults.contains_key(&UnitFault::Route) {
            self.on_fault(now, UnitFault::Route, due);
        }
    }

    /// Lets time pass up to `now`: windows end, attempts time out, supervision fires.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
        // Windows and their prompts.
        let ids: Vec<AlarmId> = self.alarms.keys().copied().collect();
        for id in ids {
            let Some(a) = self.alarms.get_mut(&id) else {
                continue;
            };
            if let Phase::Window {
                until,
                prompt,
                prompt_at,
            } = a.phase
            {
                if now >= until {
                    self.escalate(now, id, EscalationReason::WindowExpired);
                } else if now >= prompt_at {
                    a.phase = Phase::Window {
                        until,
                        prompt,
                        prompt_at: now + self.settings.alarm.prompt_repeat,
                    };
                    self.out(Output::Play(prompt));
                }
            }
        }

        // An attempt that outlived its route's timeout failed.
        if let Some(f) = self.in_flight {
            if now >= f.deadline {
                let timeout = self.settings.routes[f.route.0].attempt_timeout;
                self.out(Output::AbortDelivery {
                    alarm: f.alarm,
                    attempt: f.attempt,
                });
                self.route_down.entry(f.route).or_insert(now);
                self.attempt_failed(
                    now,
                    f,
                    format!(
                        "no result within {}",
                        super::types::format_duration(timeout)
                    ),
                );
            }
        }

        // Pendant supervision.
        let missing_after = self.settings.supervision.missing_after;
        let missing: Vec<Device> = self
            .pendants
            .values_mut()
            .filter(|p| !p.missing_reported && now >= p.last_heard + missing_after)
            .map(|p| {
                p.missing_reported = true;
                p.device.clone()
            })
            .collect();
        for device in missing {
            self.out(Output::Play(Prompt::PendantMissing));
            self.raise(now, AlarmCause::PendantMissing, Some(device));
        }

        // Mains loss, once it has lasted the report delay.
        if let (Some(since), false) = (self.mains_lost_since, self.mains_reported) {
            if now >= since + self.settings.supervision.mains_report_delay {
                self.mains_reported = true;
                self.out(Output::Play(Prompt::MainsLost));
                self.raise(now, AlarmCause::MainsLost, None);
            }
        }

        // Periodic test.
        if now >= self.next_test {
            self.next_test = next_test_after(now, &self.settings);
            let pending = self
                .alarms
                .values()
                .any(|a| a.alarm.cause == AlarmCause::PeriodicTest);
            if !pending {
                self.raise(now, AlarmCause::PeriodicTest, None);
            }
        }

        self.refresh_route_fault(now);
        self.pump(now);
    }

    fn out(&mut self, o: Output) {
        if let Output::Play(p) = o {
            if p.urgency() == Urgency::Technical && self.silenced_until().is_some() {
                return;
            }
        }
        self.outputs.push_back(o);
    }

    fn device(&self, id: DeviceId) -> Device {
        self.pendants.get(&id).map_or_else(
            || Device {
                id,
                kind: DeviceKind::Personal,
                zone: 0,
                location: format!("unregistered device {id}"),
            },
            |p| p.device.clone(),
        )
    }

    fn on_radio(&mut self, now: Timestamp, ev: RadioEvent) {
        let device = self.device(ev.device);
        let restored = {
            let p = self
                .pendants
                .entry(ev.device)
                .or_insert_with(|| PendantState::new(device.clone(), now));
            p.last_heard = now;
            p.heard = true;
            p.last_rssi = ev.rssi_dbm.or(p.last_rssi);
            std::mem::replace(&mut p.missing_reported, false)
        };
        if restored {
            self.raise(now, AlarmCause::PendantRestored, Some(device.clone()));
        }
        if matches!(ev.kind, RadioEventKind::Help | RadioEventKind::Fall { .. }) {
            if let Some(p) = self.pendants.get_mut(&ev.device) {
                p.alarms_since_heartbeat = p.alarms_since_heartbeat.wrapping_add(1);
            }
        }
        match ev.kind {
            RadioEventKind::Help => {
                self.on_trigger(now, device, AlarmCause::Help, None, ev.counter);
            }
            RadioEventKind::Fall { evidence } => {
                self.on_trigger(now, device, AlarmCause::Fall, evidence, ev.counter);
            }
            RadioEventKind::Cancel => {
                self.out(Output::AckPendant {
                    device: ev.device,
                    counter: ev.counter,
                });
                self.cancel(now, CancelSource::Pendant(ev.device));
            }
            RadioEventKind::Heartbeat {
                battery_mv,
                alarms_sent,
            } => {
                let missed = self.pendants.get_mut(&ev.device).map_or(0, |p| {
                    p.last_battery_mv = Some(battery_mv);
                    alarms_sent.map_or(0, |n| p.alarms_missed(n))
                });
                // Someone pressed or fell and the base never heard it (a lost or jammed
                // frame): fail towards help, an alarm at once, no window to cancel in.
                if missed > 0 {
                    self.raise(now, AlarmCause::AlarmNotReceived, Some(device));
                }
            }
            RadioEventKind::LowBattery { battery_mv } => {
                let due = self.pendants.get_mut(&ev.device).is_some_and(|p| {
                    p.last_battery_mv = Some(battery_mv);
                    let due = p
                        .battery_reported_at
                        .is_none_or(|t| now >= t + REPEAT_TECHNICAL);
                    if due {
                        p.battery_reported_at = Some(now);
                    }
                    due
                });
                self.out(Output::AckPendant {
                    device: ev.device,
                    counter: ev.counter,
                });
                if due {
                    self.out(Output::Play(Prompt::PendantBatteryLow));
                    self.raise(now, AlarmCause::PendantBatteryLow, Some(device));
                }
            }
            RadioEventKind::Tamper => {
                let due = self.pendants.get_mut(&ev.device).is_some_and(|p| {
                    let due = p
                        .tamper_reported_at
                        .is_none_or(|t| now >= t + Duration::from_secs(3600));
                    if due {
                        p.tamper_reported_at = Some(now);
                    }
                    due
                });
                self.out(Output::AckPendant {
                    device: ev.device,
                    counter: ev.counter,
                });
                if due {
                    self.raise(now, AlarmCause::Tamper, Some(device));
                }
            }
        }
    }

    /// A help press or fall from a device: merge into its open personal alarm, or raise one.
    fn on_trigger(
        &mut self,
        now: Timestamp,
        device: Device,
        cause: AlarmCause,
        evidence: Option<FallEvidence>,
        counter: u32,
    ) {
        let open = self
            .alarms
            .values()
            .find(|a| {
                a.alarm.class() == AlarmClass::Personal
                    && a.alarm.device.as_ref().map(|d| d.id) == Some(device.id)
            })
            .map(|a| (a.alarm.id, a.phase));
        match open {
            Some((id, phase)) => {
                if let Some(a) = self.alarms.get_mut(&id) {
                    a.frame = Some(counter);
                }
                self.out(Output::Persist(Record::Repeated {
                    alarm: id,
                    at: now,
                    frame: Some((device.id, counter)),
                }));
                self.out(Output::AckPendant {
                    device: device.id,
                    counter,
                });
                if matches!(phase, Phase::Window { .. }) && cause == AlarmCause::Help {
                    self.escalate(now, id, EscalationReason::HelpPressed);
                }
            }
            None => {
                let id = self.raise_from(now, cause, Some(device.clone()), evidence, Some(counter));
                // Acknowledge only once the alarm is in the journal.
                self.out(Output::AckPendant {
                    device: device.id,
                    counter,
                });
                if let Some(a) = self.alarms.get(&id) {
                    if matches!(a.phase, Phase::Window { .. }) {
                        self.out(Output::Play(window_prompt(cause)));
                    }
                }
            }
        }
    }

    fn on_base_help(&mut self, now: Timestamp) {
        let in_window: Vec<AlarmId> = self
            .alarms
            .values()
            .filter(|a| matches!(a.phase, Phase::Window { .. }))
            .map(|a| a.alarm.id)
            .collect();
        if in_window.is_empty() {
            self.raise(now, AlarmCause::Help, None);
        }
        for id in in_window {
            self.escalate(now, id, EscalationReason::HelpPressed);
        }
    }

    /// Raises a new alarm: persisted first, then announced.
    fn raise(&mut self, now: Timestamp, cause: AlarmCause, device: Option<Device>) -> AlarmId {
        self.raise_from(now, cause, device, None, None)
    }

    /// Raises an alarm that a pendant frame with counter `frame` triggered.
    fn raise_from(
        &mut self,
        now: Timestamp,
        cause: AlarmCause,
        device: Option<Device>,
        evidence: Option<FallEvidence>,
        frame: Option<u32>,
    ) -> AlarmId {
        let id = AlarmId(self.next_id);
        self.next_id += 1;
        let alarm = Alarm {
            id,
            reference: AlarmRef::new(id, now),
            cause,
            device,
            raised_at: now,
            evidence,
        };
        let window = self.window_for(&alarm);
        let window_until = (!window.is_zero()).then(|| now + window);
        self.out(Output::Persist(Record::Raised {
            alarm: alarm.clone(),
            window_until,
            frame,
        }));
        let personal = alarm.class() == AlarmClass::Personal;
        let pendant = alarm.device.as_ref().map(|d| d.id);
        match window_until {
            Some(until) => {
                let prompt = window_prompt(cause);
                self.alarms.insert(
                    id,
                    OpenAlarm::new(
                        alarm,
                        Phase::Window {
                            until,
                            prompt,
                            prompt_at: now + self.settings.alarm.prompt_repeat,
                        },
                        now,
                    ),
                );
                self.listen(id, until);
            }
            None => {
                self.alarms
                    .insert(id, OpenAlarm::new(alarm, Phase::Escalating, now));
                self.out(Output::Persist(Record::Escalated {
                    alarm: id,
                    at: now,
                    reason: EscalationReason::Immediate,
                }));
                if personal {
                    self.out(Output::Play(Prompt::AlarmRaised));
                    self.out(Output::Play(Prompt::CallingCentre));
                }
            }
        }
        if let (Some(a), Some(_)) = (self.alarms.get_mut(&id), pendant) {
            a.frame = frame;
        }
        id
    }

    fn window_for(&self, alarm: &Alarm) -> Duration {
        let w = &self.settings.alarm;
        match (alarm.cause, alarm.device.as_ref().map(|d| d.kind)) {
            (AlarmCause::Fall, _) => w.fall_confirm_window,
            (AlarmCause::Help, Some(DeviceKind::Fixed)) => w.fixed_cancel_window,
            (AlarmCause::Help, Some(_)) => w.personal_cancel_window,
            _ => Duration::ZERO,
        }
    }

    fn listen(&mut self, alarm: AlarmId, until: Timestamp) {
        self.listening = Some(alarm);
        self.out(Output::Listen { alarm, until });
    }

    fn stop_listening(&mut self, alarm: AlarmId) {
        if self.listening == Some(alarm) {
            self.listening = None;
            self.out(Output::StopListening);
        }
    }

    /// An alarm leaves its window for the routes.
    fn escalate(&mut self, now: Timestamp, id: AlarmId, reason: EscalationReason) {
        let Some(a) = self.alarms.get_mut(&id) else {
            return;
        };
        if !matches!(a.phase, Phase::Window { .. }) {
            return;
        }
        // A verdict that arrives once the window is over changes nothing: the window ran out.
        let reason = match a.phase {
            Phase::Window { until, .. } if now >= until => EscalationReason::WindowExpired,
            _ => reason,
        };
        a.phase = Phase::Escalating;
        a.ready_at = now;
        self.out(Output::Persist(Record::Escalated {
            alarm: id,
            at: now,
            reason,
        }));
        self.stop_listening(id);
        let prompt = if reason == EscalationReason::SpeechHeard {
            Prompt::HeardYou
        } else {
            Prompt::CallingCentre
        };
        self.out(Output::Play(prompt));
    }

    /// A cancel stops the alarms still in their window; after that, only a receiver ends them.
    fn cancel(&mut self, now: Timestamp, by: CancelSource) {
        let targets: Vec<AlarmId> = self
            .alarms
            .values()
            .filter(|a| matches!(a.phase, Phase::Window { .. }))
            .filter(|a| match by {
                CancelSource::BaseButton => true,
                CancelSource::Pendant(id) => a.alarm.device.as_ref().map(|d| d.id) == Some(id),
            })
            .map(|a| a.alarm.id)
            .collect();
        if targets.is_empty() {
            if self
                .alarms
                .values()
                .any(|a| a.alarm.class() == AlarmClass::Personal)
            {
                // Too late to cancel: say that help is still being called.
                self.out(Output::Play(Prompt::CallingCentre));
            }
            return;
        }
        for id in targets {
            self.alarms.remove(&id);
            self.out(Output::Persist(Record::Cancelled {
                alarm: id,
                at: now,
                by,
            }));
            self.stop_listening(id);
        }
        self.out(Output::Play(Prompt::Cancelled));
    }

    fn on_heard(&mut self, now: Timestamp, id: AlarmId, heard: Heard) {
        if self.listening == Some(id) {
            self.listening = None;
        }
        match heard {
            Heard::Speech => self.escalate(now, id, EscalationReason::SpeechHeard),
            Heard::Unclear => self.escalate(now, id, EscalationReason::Unclear),
            // Silence: the window runs to its end and then escalates.
            Heard::Silence => {}
        }
    }

    /// A fault is reported once when it begins and restored once when it ends; a one-off
    /// fault stays listed, so it is reported once per run of the unit.
    fn on_fault(&mut self, now: Timestamp, fault: UnitFault, active: bool) {
        if active {
            if let std::collections::btree_map::Entry::Vacant(e) = self.faults.entry(fault) {
                e.insert(now);
                if fault == UnitFault::Radio {
                    self.out(Output::Play(Prompt::RadioTrouble));
                }
                self.raise(now, AlarmCause::Fault(fault), None);
            }
        } else if fault.restores() && self.faults.remove(&fault).is_some() {
            self.raise(now, AlarmCause::FaultCleared(fault), None);
        }
    }

    /// The unit's present faults and since when, for `vigil status`.
    pub fn faults(&self) -> impl Iterator<Item = (UnitFault, Timestamp)> + '_ {
        self.faults.iter().map(|(f, t)| (*f, *t))
    }

    fn on_mains(&mut self, now: Timestamp, present: bool) {
        if present {
            self.mains_lost_since = None;
            if std::mem::replace(&mut self.mains_reported, false) {
                self.out(Output::Play(Prompt::MainsRestored));
                self.raise(now, AlarmCause::MainsRestored, None);
            }
        } else if self.mains_lost_since.is_none() {
            self.mains_lost_since = Some(now);
        }
    }

    fn on_delivery(&mut self, now: Timestamp, id: AlarmId, attempt: u32, result: DeliveryResult) {
        if !self.alarms.contains_key(&id) {
            return;
        }
        let current = self
            .in_flight
            .filter(|f| f.alarm == id && f.attempt == attempt);
        match result {
            DeliveryResult::Acked { by, callback } => {
                // A receiver has it, even if the answer came late: the alarm is done.
                // Only an attempt this alarm started can acknowledge it (and so open the
                // auto-answer window or place a call-back): a result naming any other
                // attempt did not come from the alarm's own route.
                let Some(route) = self
                    .alarms
                    .get(&id)
                    .and_then(|a| a.recent.iter().find(|(n, _)| *n == attempt))
                    .map(|(_, r)| *r)
                else {
                    return;
                };
                if let Some(f) = self.in_flight.filter(|f| f.alarm == id) {
                    if f.attempt != attempt {
                        self.out(Output::AbortDelivery {
                            alarm: id,
                            attempt: f.attempt,
                        });
                    }
                    self.in_flight = None;
                }
                let Some(open) = self.alarms.remove(&id) else {
                    return;
                };
                self.route_down.remove(&route);
                self.out(Output::Persist(Record::Acknowledged {
                    alarm: id,
                    attempt,
                    route,
                    at: now,
                    by,
                }));
                if open.alarm.class() == AlarmClass::Personal {
                    // Only now may the pendant say that help is coming: its radio
                    // acknowledgement meant only that the base has the alarm.
                    if let (Some(device), Some(counter)) =
                        (open.alarm.device.as_ref().map(|d| d.id), open.frame)
                    {
                        self.out(Output::TellPendantHelpComing { device, counter });
                    }
                    self.out(Output::Play(Prompt::HelpComing));
                    self.out(Output::AutoAnswer {
                        until: now + self.settings.supervision.auto_answer_window,
                    });
                    if let Some(number) = callback {
                        self.out(Output::StartCall { alarm: id, number });
                    }
                }
            }
            _ if current.is_none() => {
                // A late failure of an attempt already given up on: nothing new.
            }
            DeliveryResult::Hold { retry_after } => {
                let Some(f) = current else { return };
                let hold_limit = self.settings.routes[f.route.0].hold_limit;
                self.in_flight = None;
                let Some(a) = self.alarms.get_mut(&id) else {
                    return;
                };
                let since = match a.hold {
                    Some((route, since)) if route == f.route => since,
                    _ => now,
                };
                let reason = format!(
                    "receiver holds the alarm; resend in {} s",
                    retry_after.as_secs()
                );
                if now < since + hold_limit {
                    a.hold = Some((f.route, since));
                    a.ready_at = now + retry_after.clamp(HOLD_MIN, HOLD_MAX);
                    self.out(Output::Persist(Record::AttemptFailed {
                        alarm: id,
                        attempt,
                        route: f.route,
                        at: now,
                        reason,
                    }));
                } else {
                    let reason = format!(
                        "receiver held the alarm for {} s without acknowledging",
                        now.since(since).as_secs()
                    );
                    self.attempt_failed(now, f, reason);
                }
            }
            DeliveryResult::Declined { reason } => {
                if let Some(f) = current {
                    self.attempt_failed(now, f, reason);
                }
            }
            DeliveryResult::Failed { reason } => {
                if let Some(f) = current {
                    // The route itself did not work: later rounds try it last.
                    self.route_down.entry(f.route).or_insert(now);
                    self.attempt_failed(now, f, reason);
                }
            }
        }
    }

    /// Records a failed attempt and moves the alarm to its next route.
    fn attempt_failed(&mut self, now: Timestamp, f: InFlight, reason: String) {
        self.in_flight = None;
        self.out(Output::Persist(Record::AttemptFailed {
            alarm: f.alarm,
            attempt: f.attempt,
            route: f.route,
            at: now,
            reason,
        }));
        if let Some(a) = self.alarms.get_mut(&f.alarm) {
            a.hold = None;
            a.next_route = a.position(f.route) + 1;
            a.ready_at = now;
        }
    }

    /// Starts the next delivery if the line is free, personal alarms first; a personal alarm
    /// that is ready pre-empts a technical or test delivery.
    fn pump(&mut self, now: Timestamp) {
        // Bounded: each pass either starts an attempt, or ends a round (which pushes
        // `ready_at` into the future), or finds nothing ready.
        for _ in 0..(self.alarms.len() * (self.settings.routes.len() + 2) + 2) {
            let Some(id) = self.next_ready(now) else {
                return;
            };
            let class = self
                .alarms
                .get(&id)
                .map_or(AlarmClass::Test, |a| a.alarm.class());
            if let Some(f) = self.in_flight {
                if class == AlarmClass::Personal && f.class != AlarmClass::Personal {
                    self.out(Output::AbortDelivery {
                        alarm: f.alarm,
                        attempt: f.attempt,
                    });
                    self.in_flight = None;
                    self.out(Output::Persist(Record::AttemptFailed {
                        alarm: f.alarm,
                        attempt: f.attempt,
                        route: f.route,
                        at: now,
                        reason: "set aside for a personal alarm".into(),
                    }));
                    // The set-aside report retries the same route once the line is free.
                    if let Some(a) = self.alarms.get_mut(&f.alarm) {
                        a.next_route = a.position(f.route);
                        a.ready_at = now;
                    }
                } else {
                    return;
                }
            }
            self.start_attempt(now, id);
            if self.in_flight.is_some() {
                // Another personal alarm may still be waiting; it gets the line when this
                // attempt ends (one call or SMS at a time, no storm).
                if class == AlarmClass::Personal {
                    return;
                }
            }
        }
    }

    /// The alarm whose next attempt should start now: personal before technical and test,
    /// older before newer.
    fn next_ready(&self, now: Timestamp) -> Option<AlarmId> {
        self.alarms
            .values()
            .filter(|a| a.phase == Phase::Escalating && a.ready_at <= now)
            .filter(|a| self.in_flight.is_none_or(|f| f.alarm != a.alarm.id))
            .min_by_key(|a| (a.alarm.class(), a.alarm.id))
            .map(|a| a.alarm.id)
    }

    fn start_attempt(&mut self, now: Timestamp, id: AlarmId) {
        let order = self.round_order();
        let routes = &self.settings.routes;
        let fast = self.settings.retry;
        let Some(a) = self.alarms.get_mut(&id) else {
            return;
        };
        if a.order.is_empty() {
            a.order = order;
        }
        let class = a.alarm.class();
        let next = (a.next_route..a.order.len()).find(|&p| routes[a.order[p]].carries(class));
        match next {
            Some(p) => {
                let i = a.order[p];
                a.attempts += 1;
                a.next_route = p;
                let attempt = a.attempts;
                let route = RouteId(i);
                if a.recent.len() == RECENT_ATTEMPTS {
                    a.recent.pop_front();
                }
                a.recent.push_back((attempt, route));
                let delivery = Delivery {
                    alarm: a.alarm.clone(),
                    route,
                    attempt,
                };
                self.in_flight = Some(InFlight {
                    alarm: id,
                    attempt,
                    route,
                    class,
                    deadline: now + routes[i].attempt_timeout,
                });
                self.out(Output::Persist(Record::AttemptStarted {
                    alarm: id,
                    attempt,
                    route,
                    at: now,
                }));
                self.out(Output::Deliver(delivery));
            }
            None => {
                // Round over without an acknowledgement: pause, then go round again. Forever.
                a.rounds += 1;
                a.next_route = 0;
                a.order.clear();
                let pause = if a.rounds <= fast.fast_rounds {
                    fast.fast_interval
                } else {
                    fast.slow_interval
                };
                a.ready_at = now + pause;
                if class == AlarmClass::Personal {
                    self.out(Output::Play(Prompt::StillTrying));
                }
            }
        }
    }
}

impl OpenAlarm {
    /// Where `route` is in this round's order (the end if it is not in it).
    fn position(&self, route: RouteId) -> usize {
        self.order
            .iter()
            .position(|&r| r == route.0)
            .unwrap_or(self.order.len())
    }

    fn new(alarm: Alarm, phase: Phase, now: Timestamp) -> OpenAlarm {
        OpenAlarm {
            alarm,
            phase,
            attempts: 0,
            rounds: 0,
            next_route: 0,
            order: Vec::new(),
            ready_at: now,
            hold: None,
            recent: VecDeque::new(),
            frame: None,
        }
    }
}

impl PendantState {
    fn new(device: Device, now: Timestamp) -> PendantState {
        PendantState {
            device,
            last_heard: now,
            heard: false,
            missing_reported: false,
            battery_reported_at: None,
            tamper_reported_at: None,
            last_rssi: None,
            last_battery_mv: None,
            heartbeat_alarms: None,
            alarms_since_heartbeat: 0,
        }
    }

    /// A heartbeat saying the pendant has sent `sent` alarms in all: how many of those since
    /// the last heartbeat never arrived.
    fn alarms_missed(&mut self, sent: u16) -> u16 {
        let missed = self.heartbeat_alarms.map_or(0, |before| {
            sent.wrapping_sub(before)
                .saturating_sub(self.alarms_since_heartbeat)
        });
        self.heartbeat_alarms = Some(sent);
        self.alarms_since_heartbeat = 0;
        missed
    }
}

fn window_prompt(cause: AlarmCause) -> Prompt {
    if cause == AlarmCause::Fall {
        Prompt::FallDetected
    } else {
        Prompt::PreAlarm
    }
}

/// The first test time after `now` on this unit's grid: `offset + k × interval` from the epoch.
fn next_test_after(now: Timestamp, settings: &Settings) -> Timestamp {
    let interval = settings.supervision.test_interval.as_millis().max(1) as u64;
    let offset = settings.supervision.test_offset.as_millis() as u64 % interval;
    let base = now.0.saturating_sub(offset);
    let k = base / interval + 1;
    Timestamp(k * interval + offset)
}
