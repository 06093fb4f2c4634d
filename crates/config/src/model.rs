//! The installer's configuration as typed data, after validation.
//!
//! Every field here was checked by [`super::load`]: ranges hold, numbers are E.164,
//! references resolve. Adapters take their part of it and trust it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub use crate::core::{AlarmBehaviour, Carries, RetrySchedule, Supervision};
use crate::core::{DeviceId, DeviceKind, RouteKind};

/// A password, shared secret or PIN: never printed, compared in constant time, and its bytes
/// overwritten when dropped, so a core dump or a freed page does not give it away.
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// The secret's text, for the code that signs or answers with it; never for a log.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Secret {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(Zeroizing::new(s))
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret::from(s.to_string())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Secret {}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Who this unit is and how it speaks.
    pub unit: Unit,
    /// Paired trigger devices.
    pub pendants: Vec<Pendant>,
    /// Behaviour per trigger kind.
    pub alarm: AlarmBehaviour,
    /// Retry schedule across the routes.
    pub retry: RetrySchedule,
    /// The ordered escalation plan.
    pub routes: Vec<Route>,
    /// Named credentials that routes refer to.
    pub credentials: BTreeMap<String, Credentials>,
    /// Supervision and technical reporting.
    pub supervision: Supervision,
    /// Sub-GHz radio.
    pub radio: Radio,
    /// Cellular modem.
    pub modem: Modem,
    /// Remote commands by SMS.
    pub remote: Remote,
    /// GPIO pins (BCM numbering).
    pub gpio: Gpio,
    /// Audio devices.
    pub audio: Audio,
    /// The fall pendants' accelerometer (`[fall]`): what the simulated pendant reads with.
    pub fall: vigil_fall::SensorConfig,
    /// Where the journal lives.
    pub data_dir: PathBuf,
    /// Settings that work but should be changed (`check-config` prints them; `run` logs them).
    pub warnings: Vec<crate::Problem>,
}

/// Identity of the unit and of the person it protects.
#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    /// SCAIP controller id (`cid`): 1–32 digits.
    pub controller_id: String,
    /// Contact ID account: 4 digits/pseudo-hex (0–9, B–F).
    pub contact_id_account: String,
    /// SIA DC-09 account: 3–16 hex characters.
    pub sia_account: String,
    /// Name of the person, for SMS texts and call announcements.
    pub subscriber: String,
    /// Address of the home, for SMS texts.
    pub address: String,
    /// Prompt language: a folder under `sounds/` ("en", "de", "sv").
    pub language: String,
    /// Speaker volume, 0–100 %.
    pub volume: u8,
    /// Local hours in which technical warnings are not spoken, if set.
    pub quiet_hours: Option<QuietHours>,
}

/// A span of local time-of-day; may wrap midnight (22:00–07:00).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietHours {
    /// Start, minutes after local midnight.
    pub start_min: u16,
    /// End, minutes after local midnight.
    pub end_min: u16,
}

impl QuietHours {
    /// Whether `minute_of_day` (0–1439, local) falls inside.
    pub fn contains(&self, minute_of_day: u16) -> bool {
        if self.start_min <= self.end_min {
            (self.start_min..self.end_min).contains(&minute_of_day)
        } else {
            minute_of_day >= self.start_min || minute_of_day < self.end_min
        }
    }
}

/// A paired trigger device.
#[derive(Clone, PartialEq)]
pub struct Pendant {
    /// Radio id.
    pub id: DeviceId,
    /// Kind of trigger.
    pub kind: DeviceKind,
    /// AES-256 key, if provisioned here (otherwise from pairing, kept in the journal); zeroed
    /// when dropped.
    pub key: Option<Zeroizing<[u8; 32]>>,
    /// Where it is or who wears it.
    pub location: String,
    /// Contact ID zone and SCAIP location code, 1–999.
    pub zone: u16,
}

impl std::fmt::Debug for Pendant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pendant")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("key", &self.key.as_ref().map(|_| "<secret>"))
            .field("location", &self.location)
            .field("zone", &self.zone)
            .finish()
    }
}

/// One route of the escalation plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// Installer's name for it, used in logs and the journal.
    pub name: String,
    /// Which classes of alarm it carries.
    pub carries: Carries,
    /// How long one attempt may take before the core moves on.
    pub attempt_timeout: Duration,
    /// Kind-specific settings.
    pub transport: Transport,
}

impl Route {
    /// The kind of route.
    pub fn kind(&self) -> RouteKind {
        match self.transport {
            Transport::Scaip(_) => RouteKind::Scaip,
            Transport::Dc09(_) => RouteKind::Dc09,
            Transport::ContactId(_) => RouteKind::ContactId,
            Transport::Sms(_) => RouteKind::Sms,
            Transport::Voice(_) => RouteKind::Voice,
        }
    }
}

/// Kind-specific route settings.
#[derive(Clone, Debug, PartialEq)]
pub enum Transport {
    /// SCAIP over SIP.
    Scaip(ScaipRoute),
    /// SIA DC-09.
    Dc09(Dc09Route),
    /// Contact ID over a voice call.
    ContactId(ContactIdRoute),
    /// SMS with authenticated reply.
    Sms(SmsRoute),
    /// Voice call to a person.
    Voice(VoiceRoute),
}

/// SIP transport for SCAIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SipTransport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

/// SCAIP over SIP.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaipRoute {
    /// Receiver's SIP URI, e.g. `sip:arc@centre.example`.
    pub receiver_uri: String,
    /// Registrar/proxy address to send to.
    pub proxy: String,
    /// SIP transport.
    pub transport: SipTransport,
    /// Our own SIP URI (the `From` and registered contact's address of record).
    pub local_uri: String,
    /// Local address to bind (port 0 = any).
    pub bind: SocketAddr,
    /// Name of the credentials for digest authentication.
    pub credentials: String,
    /// How long to wait for `<mrs>` before `mty=RE` and the next route.
    pub answer_timeout: Duration,
    /// How long to keep resending on `snu=4` (hold), 3–30 min.
    pub hold_limit: Duration,
    /// Heartbeat (`mty=PI`) interval, 1–1440 min, unless the centre sets `hbi`.
    pub heartbeat: Duration,
    /// REGISTER expiry asked for.
    pub register_expiry: Duration,
    /// How often the flow to the proxy is checked: a CRLF ping on TCP/TLS (RFC 5626 §4.4.1),
    /// a binding query on UDP (RFC 3261 §10.2.3). A failed check, a lost binding or a dropped
    /// connection registers again at once.
    pub keepalive: Duration,
    /// PEM file of the certificate authority that signs the centre's TLS certificate.
    pub tls_ca: Option<PathBuf>,
}

/// DC-09 transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dc09Protocol {
    /// TCP: one frame per write, wait for the reply.
    Tcp,
    /// UDP: one datagram per frame.
    Udp,
}

/// How the configured DC-09 key text turns into AES key bytes (receivers differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFormat {
    /// The hex text decodes to the key bytes (32 hex chars = AES-128).
    HexBytes,
    /// The characters themselves are the key bytes (16/24/32 ASCII chars).
    Ascii,
}

/// SIA DC-09 over IP.
#[derive(Clone, PartialEq)]
pub struct Dc09Route {
    /// Receiver address.
    pub receiver: String,
    /// TCP or UDP.
    pub protocol: Dc09Protocol,
    /// Receiver number (`R`), 1–6 hex.
    pub receiver_number: String,
    /// Account prefix (`L`), 1–6 hex.
    pub line_prefix: String,
    /// AES key, if the link is encrypted; zeroed when dropped.
    pub key: Option<Zeroizing<Vec<u8>>>,
    /// Which event payload the receiver expects.
    pub payload: Dc09Payload,
    /// How long to wait for ACK/NAK/DUH.
    pub answer_timeout: Duration,
    /// `NULL` link-test interval (0 = off).
    pub link_test: Duration,
}

impl std::fmt::Debug for Dc09Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dc09Route")
            .field("receiver", &self.receiver)
            .field("protocol", &self.protocol)
            .field("receiver_number", &self.receiver_number)
            .field("line_prefix", &self.line_prefix)
            .field("key", &self.key.as_ref().map(|_| "<secret>"))
            .field("payload", &self.payload)
            .field("answer_timeout", &self.answer_timeout)
            .field("link_test", &self.link_test)
            .finish()
    }
}

/// Contact ID over a cellular voice call to a receiving centre.
#[derive(Clone, Debug, PartialEq)]
pub struct ContactIdRoute {
    /// Receiver's phone number, E.164.
    pub number: String,
}

/// SMS to a number whose reply acknowledges.
#[derive(Clone, Debug, PartialEq)]
pub struct SmsRoute {
    /// Destination, E.164.
    pub number: String,
    /// Name of the credentials whose secret authenticates the reply.
    pub credentials: String,
    /// How long to wait for the authenticated reply.
    pub reply_timeout: Duration,
}

/// Voice call to a person who presses a key to accept.
#[derive(Clone, Debug, PartialEq)]
pub struct VoiceRoute {
    /// Person's phone number, E.164.
    pub number: String,
    /// DTMF key that accepts.
    pub accept_key: char,
}

/// A named secret: a username/password for SIP digest, or a shared secret for HMACs.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name (SIP digest), if any.
    pub username: Option<String>,
    /// Password or shared secret. Never logged.
    pub secret: Secret,
    /// The digest realm the SIP password belongs to, if set: a challenge for any other realm
    /// is refused rather than answered, so the password is never used where it was not meant.
    pub realm: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("secret", &"<secret>")
            .field("realm", &self.realm)
            .finish()
    }
}

/// Radio band plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Band {
    /// 869.2125 MHz, social-alarm band (CEPT ERC/REC 70-03 Annex 10), 0.1 % duty cycle.
    Eu869,
    /// 868.3 MHz SRD band.
    Eu868,
    /// 915 MHz ISM (Americas).
    Us915,
}

/// Which radio hardware.
#[derive(Clone, Debug, PartialEq)]
pub enum RadioDriver {
    /// RFM69HCW / SX1231 on SPI.
    Rfm69 {
        /// spidev path.
        spi: PathBuf,
        /// GPIO chip for interrupt and reset lines.
        gpio_chip: PathBuf,
        /// DIO0 interrupt line.
        irq_line: u32,
        /// Reset line.
        reset_line: u32,
    },
    /// Simulated radio over UDP on loopback.
    Sim {
        /// Where the base listens.
        listen: SocketAddr,
    },
}

/// Sub-GHz radio.
#[derive(Clone, Debug, PartialEq)]
pub struct Radio {
    /// Band plan.
    pub band: Band,
    /// Hardware.
    pub driver: RadioDriver,
    /// RSSI above which a channel sample counts as busy (for the jamming occupancy).
    pub jamming_rssi_dbm: i16,
    /// The sliding window over which channel occupancy is judged.
    pub jamming_after: Duration,
    /// How long `vigil pair` keeps the pairing window open (at most 60 s).
    pub pairing_window: Duration,
    /// Weakest signal a pairing request may be heard at, dBm: pairing is for a pendant held
    /// next to the base.
    pub pairing_min_rssi: i16,
}

/// Cellular modem.
#[derive(Clone, PartialEq)]
pub struct Modem {
    /// Serial device.
    pub port: PathBuf,
    /// Baud rate.
    pub baud: u32,
    /// SIM PIN, if the SIM asks for one. Never logged.
    pub sim_pin: Option<Secret>,
    /// Packet data APN, if IP goes over cellular.
    pub apn: Option<String>,
    /// GPIO line of the modem's power key, for hard resets.
    pub power_key_pin: Option<u8>,
    /// The module's voice port, where it streams a call's audio as PCM (SIMCom SIM7600's USB
    /// audio interface, usually `/dev/ttyUSB4`): how the unit hears the Contact ID tones on a
    /// module that cannot report them.
    pub voice_port: Option<PathBuf>,
    /// The module's own call audio (its analog codec wired to the unit's loudspeaker and
    /// microphone), set at every start; `None` leaves the module's defaults.
    pub call_audio: Option<ModuleCallAudio>,
}

/// Loudness and echo settings for a module whose analog codec carries the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleCallAudio {
    /// Loudspeaker volume, percent of the module's range (`AT+CLVL`).
    pub volume: u8,
    /// Microphone gain, percent of the module's range (SIMCom `AT+CMICGAIN`, Quectel
    /// `AT+QMIC`).
    pub mic_gain: u8,
    /// The installer's echo-canceller tuning for the enclosure, sent after the settings above:
    /// whole audio commands such as `AT+QEEC=5,40`.
    pub tuning: Vec<String>,
}

/// The audio commands an installer may send as tuning: SIMCom's and Quectel's gain, route,
/// echo-canceller and noise-suppressor settings, and TS 27.007's volume.
pub const TUNING_COMMANDS: [&str; 12] = [
    "CLVL", "CMICGAIN", "COUTGAIN", "CSDVC", "CECM", "CECWB", "CNSN", "QMIC", "QRXGAIN", "QAUDMOD",
    "QEEC", "QSIDET",
];

impl std::fmt::Debug for Modem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Modem")
            .field("port", &self.port)
            .field("baud", &self.baud)
            .field("sim_pin", &self.sim_pin.as_ref().map(|_| "<secret>"))
            .field("apn", &self.apn)
            .field("power_key_pin", &self.power_key_pin)
            .field("voice_port", &self.voice_port)
            .field("call_audio", &self.call_audio)
            .finish()
    }
}

/// Remote commands by SMS and automatic answering of centre calls.
#[derive(Clone, Debug, PartialEq)]
pub struct Remote {
    /// Numbers allowed to send commands and to be auto-answered, E.164.
    pub allowed_numbers: Vec<String>,
    /// Name of the credentials whose secret authenticates commands.
    pub credentials: Option<String>,
}

/// GPIO pins, BCM numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gpio {
    /// Base cancel button (active low).
    pub cancel_button: Option<u8>,
    /// Base help button (active low).
    pub help_button: Option<u8>,
    /// Mains-present input (high = present).
    pub mains_present: Option<u8>,
    /// Status LED.
    pub led: Option<u8>,
}

/// Audio devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audio {
    /// cpal output device name, or None for the default.
    pub output_device: Option<String>,
    /// cpal input device name, or None for the default.
    pub input_device: Option<String>,
    /// The cellular module's own sound card (Quectel's USB audio class, `AT+QPCMV=1,2`) as an
    /// ALSA PCM name: a cellular call's audio is read and written there and carried through
    /// the unit's echo-cancelled speakerphone. None when the module has no such card in use.
    pub call_device: Option<String>,
    /// Folder holding `<lang>/<prompt>.wav`.
    pub sounds_dir: PathBuf,
}

/// Which DC-09 payload carries events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dc09Payload {
    /// `ADM-CID`: Contact ID event codes (what most receivers expect).
    AdmCid,
    /// `SIA-DCS`: SIA DC-03 two-letter event codes.
    SiaDcs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_never_printed_and_compares_whole() {
        let s = Secret::from("remote-secret-0123456789abcdef");
        assert_eq!(format!("{s:?}"), "<secret>");
        let c = Credentials {
            username: Some("unit".into()),
            secret: s.clone(),
            realm: None,
        };
        assert!(!format!("{c:?}").contains("remote-secret"));
        assert_eq!(s.as_str(), "remote-secret-0123456789abcdef");
        assert_eq!(
            s,
            Secret::from("remote-secret-0123456789abcdef".to_string())
        );
        assert_ne!(s, Secret::from("remote-secret-0123456789abcdeF"));
        assert_ne!(s, Secret::from("remote-secret-0123456789abcde"));
    }
}
