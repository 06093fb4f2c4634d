//! The vocabulary the core speaks with its adapters: what goes in, what comes out.
//!
//! Every type here is plain data. Adapters (radio, modem, IP routes, voice, GPIO) turn what
//! happens in the world into [`Input`]s and carry out [`Output`]s; the journal stores
//! [`Record`]s.

use std::fmt;
pub use std::time::Duration;

/// Wall-clock time in milliseconds since the Unix epoch (UTC), as the runtime tells the core.
///
/// The core never reads a clock: every call carries `now`, so tests drive it with a fake one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The timestamp `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Timestamp {
        Timestamp(secs * 1000)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// The current wall-clock time; for adapters and the runtime only, never the core.
    pub fn now() -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(since_epoch.as_millis() as u64)
    }

    /// As a UTC date and time.
    pub fn to_utc(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(self.0 as i64).unwrap_or_default()
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(rhs.as_millis() as u64))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_utc().format("%Y-%m-%d %H:%M:%S%.3fZ"))
    }
}

/// A trigger device's radio id (pendant, fall detector, pull cord): 32 bits, shown as 8 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(pub u32);

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}", self.0)
    }
}

impl std::str::FromStr for DeviceId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 8 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("`{s}` is not a device id (1 to 8 hex digits)"));
        }
        u32::from_str_radix(s, 16)
            .map(DeviceId)
            .map_err(|e| e.to_string())
    }
}

/// What kind of trigger a device is; decides its alarm behaviour and how centres see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// A worn pendant or wrist button (SCAIP `dty` 0003).
    Personal,
    /// A worn pendant with a fall detector (SCAIP `dty` 0005).
    Fall,
    /// A fixed trigger such as a pull cord (SCAIP `dty` 0004).
    Fixed,
}

impl DeviceKind {
    /// The name used in configuration and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Personal => "personal",
            DeviceKind::Fall => "fall",
            DeviceKind::Fixed => "fixed",
        }
    }

    /// Parses the configuration name.
    pub fn parse(s: &str) -> Option<DeviceKind> {
        match s {
            "personal" => Some(DeviceKind::Personal),
            "fall" => Some(DeviceKind::Fall),
            "fixed" => Some(DeviceKind::Fixed),
            _ => None,
        }
    }
}

/// A trigger device as the installer described it, snapshotted into each alarm it raises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Radio id.
    pub id: DeviceId,
    /// Kind of trigger.
    pub kind: DeviceKind,
    /// Contact ID zone / user number (1–999), also the SCAIP location code.
    pub zone: u16,
    /// Where it is or who wears it, in words an operator reads ("Bedroom", "Anna's pendant").
    pub location: String,
}

impl Device {
    /// A pendant paired over the air: personal, zone 0, named by its id until the installer
    /// gives it a place in the configuration.
    pub fn paired(id: DeviceId) -> Device {
        Device {
            id,
            kind: DeviceKind::Personal,
            zone: 0,
            location: format!("paired pendant {id}"),
        }
    }
}

/// Journal key of an alarm, assigned by the core in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AlarmId(pub u64);

impl fmt::Display for AlarmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The reference every route carries so that an acknowledgement can be matched to its alarm
/// (SCAIP `ref`, the SMS acknowledgement, logs): 1–16 characters of A–Z, 0–9.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AlarmRef(String);

impl AlarmRef {
    /// The reference of alarm `id` raised at `raised_at`: hex seconds then hex id, 12–16 chars,
    /// so references stay unique across restarts and journal resets.
    pub fn new(id: AlarmId, raised_at: Timestamp) -> AlarmRef {
        let s = format!(
            "{:X}{:04X}",
            raised_at.as_secs() & 0xFFFF_FFFF,
            id.0 & 0xFFFF_FFFF
        );
        AlarmRef(s.chars().take(16).collect())
    }

    /// Accepts a stored or received reference if it has the allowed form.
    pub fn parse(s: &str) -> Option<AlarmRef> {
        let ok = (1..=16).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric());
        ok.then(|| AlarmRef(s.to_string()))
    }

    /// The reference text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AlarmRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether an alarm is a call for help, a technical report or a test; decides priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlarmClass {
    /// A person needs help. Always first.
    Personal,
    /// Something about the unit or a device needs attention.
    Technical,
    /// A test report proving the path to the centre works.
    Test,
}

/// Why an alarm was raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlarmCause {
    /// Help button on a pendant, a fixed trigger or the base.
    Help,
    /// A fall detected and not cancelled.
    Fall,
    /// A pendant's heartbeat says it sent a help or fall the base never received (a frame
    /// lost or jammed): treated as a call for help, since someone pressed or fell.
    AlarmNotReceived,
    /// A pendant has not been heard for longer than its supervision time.
    PendantMissing,
    /// A missing pendant is heard again.
    PendantRestored,
    /// A pendant reports a low battery.
    PendantBatteryLow,
    /// A pendant reports its case opened or torn off.
    Tamper,
    /// Mains power lost for longer than the report delay.
    MainsLost,
    /// Mains power back after a reported loss.
    MainsRestored,
    /// The base unit's own battery is low.
    BaseBatteryLow,
    /// Sustained carrier on the alarm channel without valid frames.
    Jamming,
    /// The jamming has ended.
    JammingEnded,
    /// The periodic test report.
    PeriodicTest,
    /// A test asked for by the installer or a remote command.
    ManualTest,
    /// The unit itself has a fault that stops it working as it should.
    Fault(UnitFault),
    /// A reported fault of the unit has cleared.
    FaultCleared(UnitFault),
}

/// A fault of the base unit itself. Every one is a technical alarm to the centre, with its
/// own restore where one can happen, and a line in `vigil status`: never just a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UnitFault {
    /// The radio transceiver does not open, stops answering, or its worker died.
    Radio,
    /// The cellular modem has been absent or unusable for longer than its grace time.
    Modem,
    /// The SIP route's registration has been lost for longer than its grace time.
    Registration,
    /// A route has failed every attempt for longer than its grace time.
    Route,
    /// The journal cannot write: alarms go on from memory, but are not durable.
    Storage,
    /// The journal was unreadable and had to be started afresh (one-off, no restore).
    JournalLost,
    /// The audio output is lost: the person cannot hear the base unit.
    Audio,
}

impl UnitFault {
    /// All faults, for tables and tests.
    pub const ALL: [UnitFault; 7] = [
        UnitFault::Radio,
        UnitFault::Modem,
        UnitFault::Registration,
        UnitFault::Route,
        UnitFault::Storage,
        UnitFault::JournalLost,
        UnitFault::Audio,
    ];

    /// Whether the fault can clear; a one-off fault is reported once and never restored.
    pub fn restores(self) -> bool {
        self != UnitFault::JournalLost
    }

    /// Stable name of the fault in the journal, logs and `vigil status`.
    pub fn as_str(self) -> &'static str {
        self.names().0
    }

    /// Journal names of the raise and of the restore.
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            UnitFault::Radio => ("radio", "radio-fault", "radio-restored"),
            UnitFault::Modem => ("modem", "modem-fault", "modem-restored"),
            UnitFault::Registration => {
                ("registration", "registration-lost", "registration-restored")
            }
            UnitFault::Route => ("route", "route-failing", "route-restored"),
            UnitFault::Storage => ("storage", "storage-fault", "storage-restored"),
            UnitFault::JournalLost => ("journal", "journal-lost", "journal-lost-cleared"),
            UnitFault::Audio => ("audio", "audio-fault", "audio-restored"),
        }
    }

    /// What an operator reads for the fault and for its restore.
    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            UnitFault::Radio => (
                "base unit radio receiver fault: pendants cannot be heard",
                "base unit radio receiver working again",
            ),
            UnitFault::Modem => (
                "base unit cellular modem not working",
                "base unit cellular modem working again",
            ),
            UnitFault::Registration => (
                "base unit not registered with the alarm centre's SIP service",
                "base unit registered with the alarm centre's SIP service again",
            ),
            UnitFault::Route => (
                "a route to the alarm centre has failed for an hour",
                "a failing route to the alarm centre works again",
            ),
            UnitFault::Storage => (
                "base unit storage failure: alarms are not being recorded",
                "base unit storage working again",
            ),
            UnitFault::JournalLost => (
                "base unit alarm journal was unreadable and was started afresh",
                "base unit alarm journal restored",
            ),
            UnitFault::Audio => (
                "base unit loudspeaker not working: the person cannot hear prompts",
                "base unit loudspeaker working again",
            ),
        }
    }

    /// The Contact ID (SIA DC-05) event code of the fault (its restore uses qualifier 3).
    pub fn contact_id(self) -> u16 {
        match self {
            // 330 system peripheral trouble.
            UnitFault::Radio | UnitFault::Audio => 330,
            // 353 long range radio transmitter fault (the cellular link).
            UnitFault::Modem => 353,
            // 350 communication trouble.
            UnitFault::Registration | UnitFault::Route => 350,
            // 300 system trouble.
            UnitFault::Storage | UnitFault::JournalLost => 300,
        }
    }
}

impl AlarmCause {
    /// All causes, for tables and tests.
    pub const ALL: [AlarmCause; 14 + 2 * UnitFault::ALL.len()] = [
        AlarmCause::Help,
        AlarmCause::Fall,
        AlarmCause::AlarmNotReceived,
        AlarmCause::PendantMissing,
        AlarmCause::PendantRestored,
        AlarmCause::PendantBatteryLow,
        AlarmCause::Tamper,
        AlarmCause::MainsLost,
        AlarmCause::MainsRestored,
        AlarmCause::BaseBatteryLow,
        AlarmCause::Jamming,
        AlarmCause::JammingEnded,
        AlarmCause::PeriodicTest,
        AlarmCause::ManualTest,
        AlarmCause::Fault(UnitFault::Radio),
        AlarmCause::Fault(UnitFault::Modem),
        AlarmCause::Fault(UnitFault::Registration),
        AlarmCause::Fault(UnitFault::Route),
        AlarmCause::Fault(UnitFault::Storage),
        AlarmCause::Fault(UnitFault::JournalLost),
        AlarmCause::Fault(UnitFault::Audio),
        AlarmCause::FaultCleared(UnitFault::Radio),
        AlarmCause::FaultCleared(UnitFault::Modem),
        AlarmCause::FaultCleared(UnitFault::Registration),
        AlarmCause::FaultCleared(UnitFault::Route),
        AlarmCause::FaultCleared(UnitFault::Storage),
        AlarmCause::FaultCleared(UnitFault::JournalLost),
        AlarmCause::FaultCleared(UnitFault::Audio),
    ];

    /// Personal, technical or test.
    pub fn class(self) -> AlarmClass {
        match self {
            AlarmCause::Help | AlarmCause::Fall | AlarmCause::AlarmNotReceived => {
                AlarmClass::Personal
            }
            AlarmCause::PeriodicTest | AlarmCause::ManualTest => AlarmClass::Test,
            _ => AlarmClass::Technical,
        }
    }

    /// The Contact ID (SIA DC-05) event: qualifier (1 new event, 3 restore) and event code.
    pub fn contact_id(self) -> (u8, u16) {
        match self {
            AlarmCause::Help => (1, 101),
            AlarmCause::Fall => (1, 100),
            // Personal emergency: the pendant's call for help, by whatever route it came.
            AlarmCause::AlarmNotReceived => (1, 101),
            AlarmCause::PendantMissing => (1, 381),
            AlarmCause::PendantRestored => (3, 381),
            AlarmCause::PendantBatteryLow => (1, 384),
            AlarmCause::Tamper => (1, 383),
            AlarmCause::MainsLost => (1, 301),
            AlarmCause::MainsRestored => (3, 301),
            AlarmCause::BaseBatteryLow => (1, 302),
            AlarmCause::Jamming => (1, 344),
            AlarmCause::JammingEnded => (3, 344),
            AlarmCause::PeriodicTest => (1, 602),
            AlarmCause::ManualTest => (1, 601),
            AlarmCause::Fault(f) => (1, f.contact_id()),
            AlarmCause::FaultCleared(f) => (3, f.contact_id()),
        }
    }

    /// Stable name used in the journal and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmCause::Help => "help",
            AlarmCause::Fall => "fall",
            AlarmCause::AlarmNotReceived => "alarm-not-received",
            AlarmCause::PendantMissing => "pendant-missing",
            AlarmCause::PendantRestored => "pendant-restored",
            AlarmCause::PendantBatteryLow => "pendant-battery-low",
            AlarmCause::Tamper => "tamper",
            AlarmCause::MainsLost => "mains-lost",
            AlarmCause::MainsRestored => "mains-restored",
            AlarmCause::BaseBatteryLow => "base-battery-low",
            AlarmCause::Jamming => "jamming",
            AlarmCause::JammingEnded => "jamming-ended",
            AlarmCause::PeriodicTest => "periodic-test",
            AlarmCause::ManualTest => "manual-test",
            AlarmCause::Fault(f) => f.names().1,
            AlarmCause::FaultCleared(f) => f.names().2,
        }
    }

    /// Parses [`AlarmCause::as_str`].
    pub fn parse(s: &str) -> Option<AlarmCause> {
        AlarmCause::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// A short English description for operators' screens and SMS texts.
    pub fn describe(self) -> &'static str {
        match self {
            AlarmCause::Help => "help button pressed",
            AlarmCause::Fall => "fall detected",
            AlarmCause::AlarmNotReceived => {
                "help or fall sent by the pendant but never received (radio lost or jammed)"
            }
            AlarmCause::PendantMissing => "pendant not heard (supervision lost)",
            AlarmCause::PendantRestored => "pendant heard again",
            AlarmCause::PendantBatteryLow => "pendant battery low",
            AlarmCause::Tamper => "pendant tamper",
            AlarmCause::MainsLost => "mains power lost",
            AlarmCause::MainsRestored => "mains power restored",
            AlarmCause::BaseBatteryLow => "base unit battery low",
            AlarmCause::Jamming => "radio jamming detected",
            AlarmCause::JammingEnded => "radio jamming ended",
            AlarmCause::PeriodicTest => "periodic test",
            AlarmCause::ManualTest => "test call",
            AlarmCause::Fault(f) => f.describe().0,
            AlarmCause::FaultCleared(f) => f.describe().1,
        }
    }
}

/// One alarm (or technical or test report) as every route must carry it to a receiver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alarm {
    /// Journal key.
    pub id: AlarmId,
    /// Reference carried on every route.
    pub reference: AlarmRef,
    /// Why it was raised.
    pub cause: AlarmCause,
    /// The device that raised it, if any (None for the base unit itself).
    pub device: Option<Device>,
    /// When it was raised.
    pub raised_at: Timestamp,
    /// What the pendant's fall detector measured, for a fall it reported.
    pub evidence: Option<FallEvidence>,
}

impl Alarm {
    /// What happened, in words, with the fall's evidence where there is some: "fall detected
    /// (impact 4.9 g, free fall 160 ms, turned 95°, then still (0.06 g))".
    pub fn describe(&self) -> String {
        match &self.evidence {
            Some(e) => format!("{} ({})", self.cause.describe(), e.describe()),
            None => self.cause.describe().to_string(),
        }
    }

    /// As [`Alarm::describe`], in printable ASCII (an SMS stays in the GSM 7-bit alphabet).
    pub fn describe_ascii(&self) -> String {
        match &self.evidence {
            Some(e) => format!("{} ({})", self.cause.describe(), e.ascii()),
            None => self.cause.describe().to_string(),
        }
    }

    /// Personal, technical or test.
    pub fn class(&self) -> AlarmClass {
        self.cause.class()
    }

    /// Contact ID zone (the device's zone, 0 for the base unit).
    pub fn zone(&self) -> u16 {
        self.device.as_ref().map_or(0, |d| d.zone)
    }
}

/// Index of a route in the configured escalation plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteId(pub usize);

/// The kinds of route to a receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// SCAIP (SS 91100) over SIP.
    Scaip,
    /// SIA DC-09 over TCP or UDP.
    Dc09,
    /// Contact ID (SIA DC-05) DTMF over a cellular voice call, then speech.
    ContactId,
    /// SMS with an authenticated reply.
    Sms,
    /// Voice call to a person who presses a key to accept.
    Voice,
}

impl RouteKind {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Scaip => "scaip",
            RouteKind::Dc09 => "dc09",
            RouteKind::ContactId => "contact-id",
            RouteKind::Sms => "sms",
            RouteKind::Voice => "voice",
        }
    }

    /// Parses the configuration name.
    pub fn parse(s: &str) -> Option<RouteKind> {
        match s {
            "scaip" => Some(RouteKind::Scaip),
            "dc09" => Some(RouteKind::Dc09),
            "contact-id" => Some(RouteKind::ContactId),
            "sms" => Some(RouteKind::Sms),
            "voice" => Some(RouteKind::Voice),
            _ => None,
        }
    }

    /// Whether the route needs the cellular modem (one call or SMS at a time).
    pub fn uses_modem(self) -> bool {
        matches!(
            self,
            RouteKind::ContactId | RouteKind::Sms | RouteKind::Voice
        )
    }
}

/// One attempt to get one alarm to a receiver over one route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The alarm to carry.
    pub alarm: Alarm,
    /// Which route of the plan.
    pub route: RouteId,
    /// Attempt number for this alarm, counting from 1 across all routes and restarts.
    pub attempt: u32,
}

/// What a route reports about one delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryResult {
    /// A receiver acknowledged at application level: SCAIP `snu=0`, DC-09 `ACK`, Contact ID
    /// kissoff, an authenticated SMS reply, a person's accept key. Nothing less counts.
    Acked {
        /// Who acknowledged, for the journal ("SCAIP sip:arc@…", "+4670…").
        by: String,
        /// The receiver asks the unit to call it for speech (SCAIP `mre` ≥ 1).
        callback: Option<String>,
    },
    /// The receiver has it queued and asks for a resend later (SCAIP `snu=4`).
    Hold {
        /// When to resend.
        retry_after: Duration,
    },
    /// The receiver will not treat it now (SCAIP `snu` 5 or 6, DC-09 `DUH`): next route at once.
    Declined {
        /// Why, in the receiver's words.
        reason: String,
    },
    /// The attempt failed: no answer, no network, busy line, bad credentials…
    Failed {
        /// What went wrong, for the journal and the installer.
        reason: String,
    },
}

/// The two buttons a base unit has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseButton {
    /// The big help button on the base.
    Help,
    /// The cancel (reset) button on the base.
    Cancel,
}

/// What a pendant frame said, once authenticated and deduplicated by the radio layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RadioEventKind {
    /// Short press: help.
    Help,
    /// Long press: cancel.
    Cancel,
    /// The pendant's fall detector fired, with what it measured.
    Fall {
        /// The detector's evidence, when the pendant sent it.
        evidence: Option<FallEvidence>,
    },
    /// Periodic sign of life, with the battery voltage.
    Heartbeat {
        /// Battery voltage in millivolts.
        battery_mv: u16,
        /// How many help and fall frames the pendant has sent since it was paired (wrapping),
        /// if it says: the base compares it with what it received.
        alarms_sent: Option<u16>,
    },
    /// The pendant says its battery is low.
    LowBattery {
        /// Battery voltage in millivolts.
        battery_mv: u16,
    },
    /// The case was opened or the pendant torn off.
    Tamper,
}

/// What a pendant's fall detector measured when it fired: the impact, the free fall before
/// it, how far the body turned, and how still it lay after. Sent with the fall, journalled
/// with the alarm and passed to the centre so an operator knows what kind of fall it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FallEvidence {
    /// Peak acceleration of the impact, milli-g.
    pub peak_mg: u16,
    /// Free fall before the impact, milliseconds.
    pub free_fall_ms: u16,
    /// Change of the body's orientation, degrees (0–180).
    pub posture_change_deg: u8,
    /// Movement left after the impact, milli-g (low: lying still).
    pub stillness_mg: u16,
}

impl FallEvidence {
    /// A typical fall with an impact of `peak_mg`: 300 ms of free fall, turned 90°, then
    /// still. For simulated pendants and tests.
    pub const fn typical(peak_mg: u16) -> FallEvidence {
        FallEvidence {
            peak_mg,
            free_fall_ms: 300,
            posture_change_deg: 90,
            stillness_mg: 40,
        }
    }

    /// In words, for the journal, the SMS and the operator: "impact 4.9 g, free fall 160 ms,
    /// turned 95°, then still (0.48 g)". ASCII only where protocols need it: see
    /// [`FallEvidence::ascii`].
    pub fn describe(&self) -> String {
        format!(
            "impact {:.1} g, free fall {} ms, turned {}°, {}",
            f32::from(self.peak_mg) / 1000.0,
            self.free_fall_ms,
            self.posture_change_deg,
            self.after()
        )
    }

    /// As [`FallEvidence::describe`], in printable ASCII ("deg" for the degree sign).
    pub fn ascii(&self) -> String {
        format!(
            "impact {:.1} g, free fall {} ms, turned {} deg, {}",
            f32::from(self.peak_mg) / 1000.0,
            self.free_fall_ms,
            self.posture_change_deg,
            self.after()
        )
    }

    fn after(&self) -> String {
        let g = f32::from(self.stillness_mg) / 1000.0;
        // Below about 0.1 g of movement left the person is lying still.
        if self.stillness_mg < 100 {
            format!("then still ({g:.2} g)")
        } else {
            format!("then moving ({g:.2} g)")
        }
    }

    /// The four numbers as the journal keeps them: `peak,free_fall,posture,stillness`.
    pub fn to_record(&self) -> String {
        format!(
            "{},{},{},{}",
            self.peak_mg, self.free_fall_ms, self.posture_change_deg, self.stillness_mg
        )
    }

    /// Parses [`FallEvidence::to_record`].
    pub fn from_record(s: &str) -> Option<FallEvidence> {
        let mut it = s.split(',');
        let e = FallEvidence {
            peak_mg: it.next()?.trim().parse().ok()?,
            free_fall_ms: it.next()?.trim().parse().ok()?,
            posture_change_deg: it.next()?.trim().parse().ok()?,
            stillness_mg: it.next()?.trim().parse().ok()?,
        };
        it.next().is_none().then_some(e)
    }
}

/// An authenticated event from a paired device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RadioEvent {
    /// The device that sent it.
    pub device: DeviceId,
    /// The frame counter, echoed in the acknowledgement to the pendant.
    pub counter: u32,
    /// What it said.
    pub kind: RadioEventKind,
    /// Received signal strength, when the transceiver measured it.
    pub rssi_dbm: Option<i16>,
}

/// What the voice adapter heard while listening during a confirmation window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard {
    /// Speech: someone is there and answering. Help is called at once (speech never cancels).
    Speech,
    /// Nothing but silence until the window's end.
    Silence,
    /// The microphone failed or the audio could not be judged.
    Unclear,
}

impl Heard {
    /// What was heard, in words for a person.
    pub fn describe(self) -> &'static str {
        match self {
            Heard::Speech => "the person spoke",
            Heard::Silence => "no answer, only silence",
            Heard::Unclear => "the microphone could not tell",
        }
    }
}

/// Events of a voice call the core started (a callback the centre asked for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEvent {
    /// The far end answered.
    Connected,
    /// The call ended (hang-up, no carrier, failed to connect).
    Ended {
        /// Why, for the journal.
        reason: String,
    },
    /// The centre asked for a call the unit must not place: a malformed number or one that is
    /// not on the household's allow-list. Journalled, never dialled.
    Refused {
        /// What was wrong, for the journal.
        reason: String,
    },
}

/// Everything that can happen to the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// An authenticated radio event.
    Radio(RadioEvent),
    /// A base unit button.
    Button(BaseButton),
    /// The mains-present input changed.
    Mains {
        /// Whether mains power is present.
        present: bool,
    },
    /// The base unit's battery monitor changed.
    BaseBattery {
        /// Whether the battery is low.
        low: bool,
    },
    /// The radio's jamming detector changed.
    Jamming {
        /// Whether carrier without valid frames is sustained.
        active: bool,
    },
    /// The cellular network registration changed.
    Network {
        /// Whether the modem is registered (home or roaming).
        registered: bool,
    },
    /// A route reports on a delivery attempt.
    Delivery {
        /// The alarm.
        alarm: AlarmId,
        /// The attempt number from [`Delivery::attempt`].
        attempt: u32,
        /// What happened.
        result: DeliveryResult,
    },
    /// The voice adapter's verdict for a listening window.
    Heard {
        /// The alarm whose window it was.
        alarm: AlarmId,
        /// What it heard.
        heard: Heard,
    },
    /// A call the core started changed state.
    Call {
        /// The alarm the call belongs to.
        alarm: AlarmId,
        /// What happened.
        event: CallEvent,
    },
    /// An installer or an authenticated remote command asks for a test report.
    TestRequest,
    /// An authenticated remote command silences repeated technical warnings.
    SilenceWarnings,
    /// An adapter's health watch says a fault of the unit began or ended.
    Fault {
        /// Which part of the unit.
        fault: UnitFault,
        /// Whether the fault is present now.
        active: bool,
    },
    /// A route's own traffic shows it works again (registered with its proxy, a link test
    /// answered) after it was known down: alarms waiting for their next round go now.
    RouteUp {
        /// The route.
        route: RouteId,
    },
    /// A route cannot work on this unit's hardware (`why`), or can again (`None`): it is left
    /// out of the rounds while another route remains, and reported as a route fault.
    RouteUnusable {
        /// The route.
        route: RouteId,
        /// What it lacks, in words for the installer; `None` when it can work again.
        why: Option<String>,
    },
    /// A pendant was paired over the air (its key is already stored): supervise it from now,
    /// as never heard until its first frame.
    Paired {
        /// The pendant.
        device: Device,
    },
}

/// Voice prompts the core asks for. Every prompt exists in every language under
/// `sounds/<lang>/<name>.wav`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prompt {
    /// "An alarm has been raised."
    AlarmRaised,
    /// "Do you need help? Press cancel to stop the alarm." — repeated during a pre-alarm window.
    PreAlarm,
    /// "A fall was detected. If you are all right, press and hold your button." — repeated.
    FallDetected,
    /// "I heard you. Help is being called."
    HeardYou,
    /// "Calling the alarm centre."
    CallingCentre,
    /// "You are connected to the alarm centre."
    Connected,
    /// "Your alarm has been received. Help is on the way."
    HelpComing,
    /// "Still trying to reach the alarm centre."
    StillTrying,
    /// "The alarm has been cancelled."
    Cancelled,
    /// "Test call in progress."
    TestCall,
    /// "Mains power lost."
    MainsLost,
    /// "Mains power restored."
    MainsRestored,
    /// "The base unit battery is low."
    BaseBatteryLow,
    /// "The pendant battery is low."
    PendantBatteryLow,
    /// "Your pendant has not been heard from."
    PendantMissing,
    /// "No mobile network."
    NoNetwork,
    /// "The base unit cannot hear your pendant. The alarm centre has been told." — jamming or
    /// a radio fault: the person must know a press may not get through.
    RadioTrouble,
    /// "The pairing code is" — before the six digits of a pairing code (`vigil pair`).
    PairingCode,
    /// One spoken digit, 0–9 (a larger number is said as 9).
    Digit(u8),
}

impl Prompt {
    /// Every prompt, in catalogue order.
    pub const ALL: [Prompt; 28] = [
        Prompt::AlarmRaised,
        Prompt::PreAlarm,
        Prompt::FallDetected,
        Prompt::HeardYou,
        Prompt::CallingCentre,
        Prompt::Connected,
        Prompt::HelpComing,
        Prompt::StillTrying,
        Prompt::Cancelled,
        Prompt::TestCall,
        Prompt::MainsLost,
        Prompt::MainsRestored,
        Prompt::BaseBatteryLow,
        Prompt::PendantBatteryLow,
        Prompt::PendantMissing,
        Prompt::NoNetwork,
        Prompt::RadioTrouble,
        Prompt::PairingCode,
        Prompt::Digit(0),
        Prompt::Digit(1),
        Prompt::Digit(2),
        Prompt::Digit(3),
        Prompt::Digit(4),
        Prompt::Digit(5),
        Prompt::Digit(6),
        Prompt::Digit(7),
        Prompt::Digit(8),
        Prompt::Digit(9),
    ];

    /// The file stem under `sounds/<lang>/`.
    pub fn file_stem(self) -> &'static str {
        match self {
            Prompt::AlarmRaised => "alarm_raised",
            Prompt::PreAlarm => "pre_alarm",
            Prompt::FallDetected => "fall_detected",
            Prompt::HeardYou => "heard_you",
            Prompt::CallingCentre => "calling_centre",
            Prompt::Connected => "connected",
            Prompt::HelpComing => "help_coming",
            Prompt::StillTrying => "still_trying",
            Prompt::Cancelled => "cancelled",
            Prompt::TestCall => "test_call",
            Prompt::MainsLost => "mains_lost",
            Prompt::MainsRestored => "mains_restored",
            Prompt::BaseBatteryLow => "base_battery_low",
            Prompt::PendantBatteryLow => "pendant_battery_low",
            Prompt::PendantMissing => "pendant_missing",
            Prompt::NoNetwork => "no_network",
            Prompt::RadioTrouble => "radio_trouble",
            Prompt::PairingCode => "pairing_code",
            Prompt::Digit(d) => match d {
                0 => "digit_0",
                1 => "digit_1",
                2 => "digit_2",
                3 => "digit_3",
                4 => "digit_4",
                5 => "digit_5",
                6 => "digit_6",
                7 => "digit_7",
                8 => "digit_8",
                _ => "digit_9",
            },
        }
    }

    /// Alarm prompts pre-empt technical ones and ignore quiet hours.
    pub fn urgency(self) -> Urgency {
        match self {
            Prompt::MainsLost
            | Prompt::MainsRestored
            | Prompt::BaseBatteryLow
            | Prompt::PendantBatteryLow
            | Prompt::PendantMissing
            | Prompt::NoNetwork
            | Prompt::RadioTrouble => Urgency::Technical,
            _ => Urgency::Alarm,
        }
    }
}

/// Priority of a prompt in the voice queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Urgency {
    /// A technical warning: waits for quiet hours to end, yields to alarm prompts.
    Technical,
    /// About an alarm: plays at once, cuts a technical warning.
    Alarm,
}

/// Who or what cancelled an alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelSource {
    /// A long press on the pendant that raised it (or another paired pendant).
    Pendant(DeviceId),
    /// The cancel button on the base.
    BaseButton,
}

impl fmt::Display for CancelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelSource::Pendant(id) => write!(f, "pendant {id}"),
            CancelSource::BaseButton => f.write_str("base cancel button"),
        }
    }
}

/// Why an alarm left its window and went to the routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EscalationReason {
    /// No window configured for this trigger.
    Immediate,
    /// The window ran out without a cancel.
    WindowExpired,
    /// Help pressed during the window.
    HelpPressed,
    /// Speech heard during the window.
    SpeechHeard,
    /// The microphone could not tell: fail towards help.
    Unclear,
    /// Resumed from the journal after a restart.
    Resumed,
}

impl EscalationReason {
    /// Stable name for the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationReason::Immediate => "immediate",
            EscalationReason::WindowExpired => "window-expired",
            EscalationReason::HelpPressed => "help-pressed",
            EscalationReason::SpeechHeard => "speech-heard",
            EscalationReason::Unclear => "audio-unclear",
            EscalationReason::Resumed => "resumed",
        }
    }

    /// Why the alarm went to the routes, in words for a person.
    pub fn describe(self) -> &'static str {
        match self {
            EscalationReason::Immediate => "no cancel window for this alarm",
            EscalationReason::WindowExpired => "nobody cancelled it in time",
            EscalationReason::HelpPressed => "help pressed again during the window",
            EscalationReason::SpeechHeard => "the person spoke: help called at once",
            EscalationReason::Unclear => "the answer could not be heard clearly",
            EscalationReason::Resumed => "resumed after the unit restarted",
        }
    }

    /// Parses [`EscalationReason::as_str`].
    pub fn parse(s: &str) -> Option<EscalationReason> {
        [
            EscalationReason::Immediate,
            EscalationReason::WindowExpired,
            EscalationReason::HelpPressed,
            EscalationReason::SpeechHeard,
            EscalationReason::Unclear,
            EscalationReason::Resumed,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// A fact the journal must hold durably before the core's next output is carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A new alarm; `window_until` is the end of its cancel or confirmation window, if any.
    Raised {
        /// The alarm.
        alarm: Alarm,
        /// End of the window in which a cancel stops it.
        window_until: Option<Timestamp>,
        /// The counter of the pendant frame that raised it. The journal keeps it as the
        /// pendant's last accepted counter in the same transaction, so after a crash the
        /// pendant's retransmission of that frame is known and not raised twice.
        frame: Option<u32>,
    },
    /// The same trigger fired again while its alarm was open; merged, not a new alarm.
    Repeated {
        /// The open alarm.
        alarm: AlarmId,
        /// When.
        at: Timestamp,
        /// The pendant and counter of the frame that repeated it. As with
        /// [`Record::Raised`], the journal keeps the counter in the same transaction: once the
        /// pendant hears its acknowledgement, a retransmission of this frame after a crash is
        /// known, and cannot raise a second alarm once this one is closed.
        frame: Option<(DeviceId, u32)>,
    },
    /// The alarm left its window and goes to the routes.
    Escalated {
        /// The alarm.
        alarm: AlarmId,
        /// When.
        at: Timestamp,
        /// Why.
        reason: EscalationReason,
    },
    /// A delivery attempt starts.
    AttemptStarted {
        /// The alarm.
        alarm: AlarmId,
        /// Attempt number.
        attempt: u32,
        /// Route used.
        route: RouteId,
        /// When.
        at: Timestamp,
    },
    /// A delivery attempt ended without an acknowledgement.
    AttemptFailed {
        /// The alarm.
        alarm: AlarmId,
        /// Attempt number.
        attempt: u32,
        /// Route used.
        route: RouteId,
        /// When.
        at: Timestamp,
        /// What the route said.
        reason: String,
    },
    /// A receiver acknowledged the alarm: it is done.
    Acknowledged {
        /// The alarm.
        alarm: AlarmId,
        /// Attempt number that got through.
        attempt: u32,
        /// Route used.
        route: RouteId,
        /// When.
        at: Timestamp,
        /// Who acknowledged.
        by: String,
    },
    /// The user cancelled the alarm inside its window: it is done.
    Cancelled {
        /// The alarm.
        alarm: AlarmId,
        /// When.
        at: Timestamp,
        /// Who cancelled.
        by: CancelSource,
    },
    /// A call-back the centre asked for was refused (see [`CallEvent::Refused`]).
    CallBackRefused {
        /// The alarm whose acknowledgement asked for it.
        alarm: AlarmId,
        /// When.
        at: Timestamp,
        /// Why.
        reason: String,
    },
}

impl Record {
    /// The alarm this record is about.
    pub fn alarm(&self) -> AlarmId {
        match self {
            Record::Raised { alarm, .. } => alarm.id,
            Record::Repeated { alarm, .. }
            | Record::Escalated { alarm, .. }
            | Record::AttemptStarted { alarm, .. }
            | Record::AttemptFailed { alarm, .. }
            | Record::Acknowledged { alarm, .. }
            | Record::Cancelled { alarm, .. }
            | Record::CallBackRefused { alarm, .. } => *alarm,
        }
    }
}

/// Everything the core asks the world to do. Outputs are carried out in order; a
/// [`Output::Persist`] is committed durably before the next output is acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Write this to the journal and fsync before going on.
    Persist(Record),
    /// Play a prompt on the base unit's speaker.
    Play(Prompt),
    /// Listen for speech until `until`, then report [`Input::Heard`].
    Listen {
        /// The alarm in its window.
        alarm: AlarmId,
        /// End of the window.
        until: Timestamp,
    },
    /// Stop listening (the window ended early).
    StopListening,
    /// Acknowledge a pendant's frame on the radio, so it stops retransmitting.
    AckPendant {
        /// The pendant.
        device: DeviceId,
        /// The counter of the frame being acknowledged.
        counter: u32,
    },
    /// Tell the pendant that a receiving centre has its alarm, so it may say "help is coming"
    /// (a radio acknowledgement means only that the base has it).
    TellPendantHelpComing {
        /// The pendant.
        device: DeviceId,
        /// The counter of its latest frame for the alarm.
        counter: u32,
    },
    /// Start a delivery attempt; the route answers with [`Input::Delivery`].
    Deliver(Delivery),
    /// Abandon a delivery attempt still running (a personal alarm needs the line).
    AbortDelivery {
        /// The alarm.
        alarm: AlarmId,
        /// The attempt.
        attempt: u32,
    },
    /// Call this number for speech (the centre asked for a callback).
    StartCall {
        /// The alarm it is for.
        alarm: AlarmId,
        /// Number or URI to call.
        number: String,
    },
    /// Answer incoming calls from the configured centre numbers until then.
    AutoAnswer {
        /// End of the window.
        until: Timestamp,
    },
}

impl Output {
    /// The alarm this output is about, if it is about one.
    pub fn alarm(&self) -> Option<AlarmId> {
        match self {
            Output::Persist(r) => Some(r.alarm()),
            Output::Listen { alarm, .. }
            | Output::AbortDelivery { alarm, .. }
            | Output::StartCall { alarm, .. } => Some(*alarm),
            Output::Deliver(d) => Some(d.alarm.id),
            _ => None,
        }
    }
}

/// Formats a duration the way the configuration writes it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut s = ms / 1000;
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{}", s / len, unit));
            s %= len;
        }
    }
    out
}
