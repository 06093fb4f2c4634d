//! A simulated site: every simulator the unit talks to, started on loopback and a
//! pseudo-terminal, and a `config.toml` pointing the real unit at them.
//!
//! The receiving centre listens for SCAIP (a SIP registrar and alarm handler) and DC-09; the
//! cellular network behind a simulated module on a pty delivers SMS to an acknowledging
//! gateway, calls to a Contact ID receiver and to a person; the radio is UDP on loopback.
//! `vigil demo`, the end-to-end tests, the crash harness and the benchmarks all use it.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::centre::receiver::dc09::{Dc09Answer, Dc09Receiver, Dc09ReceiverConfig};
use crate::centre::receiver::scaip::{ScaipAnswer, ScaipReceiver, ScaipReceiverConfig};
use crate::config::{Config, Dc09Protocol, SipTransport};
use crate::core::DeviceId;
use crate::modem::network::{CidCentre, Party, Person, Reply, Responder};
use crate::modem::sim::{SimConfig, SimWorld};
use crate::radio::frame::PendantKey;
use crate::radio::pendant::SimPendant;

/// Simulated-site failures.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// A simulator did not start.
    #[error("simulator: {0}")]
    Simulator(String),
    /// The generated configuration was refused (a bug in the site).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Writing the site's files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The numbers on the simulated cellular network.
pub mod numbers {
    /// The unit's own SIM.
    pub const UNIT: &str = "+46700000001";
    /// The centre's SMS acknowledgement gateway.
    pub const SMS_GATEWAY: &str = "+46700000010";
    /// The subscriber's daughter, who answers and presses 1.
    pub const DAUGHTER: &str = "+46700000020";
    /// The centre's Contact ID receiver.
    pub const CONTACT_ID: &str = "+46700000030";
}

/// The pendants of the site: a fall-detecting neck pendant and a bathroom pull cord.
pub const PENDANTS: [(u32, &str, &str, &str); 2] = [
    (
        0x00A1_B2C3,
        "fall",
        "Anna's neck pendant",
        "6b1f0c2e9a4d7f3b8c5e1a2d4f6b8c0e1a3c5e7f9b1d3f5a7c9e1b3d5f7a9c1e",
    ),
    (
        0x00A1_B2C4,
        "fixed",
        "Bathroom pull cord",
        "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0",
    ),
];

/// The SMS route's shared secret at the simulated site (the gateway computes codes with it).
pub const SMS_SECRET: &str = "site-sms-shared-secret-0123456789";
/// The unit's SIP password at the simulated registrar.
pub const SIP_PASSWORD: &str = "site-sip-password";
/// The DC-09 link's AES key at the simulated site, in hex.
pub const DC09_KEY_HEX: &str = "000102030405060708090A0B0C0D0E0F";
/// The remote-command secret of the simulated site.
pub const REMOTE_SECRET: &str = "site-remote-secret-0123456789abcdef";

/// Timing and plan choices for a site.
#[derive(Clone, Debug)]
pub struct SiteOptions {
    /// Fall confirmation window.
    pub fall_window: Duration,
    /// Pull-cord cancel window.
    pub fixed_window: Duration,
    /// A pendant unheard this long is missing (the configuration's minimum is 10 min).
    pub missing_after: Duration,
    /// Pause between rounds.
    pub fast_interval: Duration,
    /// Per-attempt limit of the IP routes.
    pub attempt_timeout: Duration,
    /// How long the SMS route waits for the gateway's authenticated reply.
    pub sms_reply_timeout: Duration,
    /// Whether the receivers print what an operator sees.
    pub print: bool,
    /// Which cellular module the site's unit has.
    pub modem: crate::modem::sim::Model,
    /// Whether the plan ends with a Contact ID route to the alarm receiver's line.
    pub contact_id_route: bool,
    /// Whether the configuration names the module's voice port, where it has one (SIMCom).
    pub wire_voice_port: bool,
    /// `audio.call_device`: the module's USB audio card (Quectel), if the site names one.
    pub call_device: Option<String>,
}

impl Default for SiteOptions {
    fn default() -> SiteOptions {
        SiteOptions {
            fall_window: Duration::from_secs(4),
            fixed_window: Duration::from_secs(3),
            missing_after: Duration::from_secs(600),
            fast_interval: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(15),
            sms_reply_timeout: Duration::from_secs(10),
            print: false,
            modem: crate::modem::sim::Model::QuectelEc25,
            contact_id_route: false,
            wire_voice_port: true,
            call_device: None,
        }
    }
}

/// The running simulators and the configuration that points at them.
pub struct SimSite {
    /// The site's folder: configuration, journal, recordings.
    pub dir: PathBuf,
    /// The generated configuration file.
    pub config_path: PathBuf,
    /// The configuration, loaded back through the real loader.
    pub config: Config,
    /// The SCAIP receiving centre.
    pub scaip: ScaipReceiver,
    /// The DC-09 receiving centre.
    pub dc09: Dc09Receiver,
    /// The cellular network and the simulated module on its pty.
    pub cellular: SimWorld,
    /// Where the unit's simulated radio listens.
    pub radio: SocketAddr,
}

fn free_udp_port() -> Result<SocketAddr, SiteError> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| SiteError::Simulator(e.to_string()))?;
    s.local_addr()
        .map_err(|e| SiteError::Simulator(e.to_string()))
}

impl SimSite {
    /// Starts every simulator and writes `config.toml` into `dir`. Must run inside a tokio
    /// runtime.
    pub async fn start(dir: &Path, options: SiteOptions) -> Result<SimSite, SiteError> {
        let sim = |e: &dyn std::fmt::Display| SiteError::Simulator(e.to_string());
        let controller = "4600123456";
        let scaip = ScaipReceiver::start(ScaipReceiverConfig {
            transport: SipTransport::Udp,
            realm: "arc.test".into(),
            users: vec![(controller.into(), SIP_PASSWORD.into())],
            receiver_user: "alarm".into(),
            challenge_messages: false,
            outbound_proxy: None,
            print: options.print,
        })
        .await
        .map_err(|e| sim(&e))?;
        let key = hex::decode(DC09_KEY_HEX).map_err(|e| sim(&e))?;
        let dc09 = Dc09Receiver::start(Dc09ReceiverConfig {
            protocol: Dc09Protocol::Tcp,
            key: Some(key),
            receiver_number: "1".into(),
            accounts: Vec::new(),
            print: options.print,
        })
        .await
        .map_err(|e| sim(&e))?;
        let cellular = SimWorld::start(SimConfig {
            model: options.modem,
            ..SimConfig::new(numbers::UNIT)
        })
        .map_err(|e| sim(&e))?;
        cellular.network.add(
            numbers::SMS_GATEWAY,
            Party::Responder(Responder {
                secret: SMS_SECRET.into(),
                reply: Reply::Valid,
            }),
        );
        cellular
            .network
            .add(numbers::DAUGHTER, Party::Person(Person::accepting('1')));
        cellular
            .network
            .add(numbers::CONTACT_ID, Party::Centre(CidCentre::working()));
        let radio = free_udp_port()?;

        std::fs::create_dir_all(dir).map_err(|source| SiteError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let text = site_config(
            dir,
            &options,
            scaip.addr(),
            dc09.addr(),
            cellular.module.path(),
            cellular
                .module
                .voice_port()
                .filter(|_| options.wire_voice_port),
            radio,
        );
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, &text).map_err(|source| SiteError::Io {
            path: config_path.clone(),
            source,
        })?;
        let config = crate::config::load(&config_path)?;
        Ok(SimSite {
            dir: dir.to_path_buf(),
            config_path,
            config,
            scaip,
            dc09,
            cellular,
            radio,
        })
    }

    /// A simulated pendant of this site (0: neck pendant, 1: pull cord), starting its counter
    /// at `counter`.
    pub fn pendant(&self, index: usize, counter: u32) -> Result<SimPendant, SiteError> {
        let (id, _, _, key) = PENDANTS
            .get(index)
            .ok_or_else(|| SiteError::Simulator(format!("no pendant {index}")))?;
        let key = PendantKey::from_hex(key).map_err(|e| SiteError::Simulator(e.to_string()))?;
        SimPendant::new(DeviceId(*id), &key, self.radio, -68, counter)
            .map_err(|e| SiteError::Simulator(e.to_string()))
    }

    /// Takes the IP receiving centre down (or back up): SCAIP answers nothing, DC-09 nothing.
    pub fn ip_centre_down(&self, down: bool) {
        if down {
            self.scaip.set_default(ScaipAnswer::silent());
            self.dc09.set_default(Dc09Answer::Silent);
        } else {
            self.scaip.set_default(ScaipAnswer::snu(0));
            self.dc09.set_default(Dc09Answer::Ack);
        }
    }

    /// Makes the SMS gateway silent (or answer again).
    pub fn sms_gateway_silent(&self, silent: bool) {
        self.cellular.network.add(
            numbers::SMS_GATEWAY,
            Party::Responder(Responder {
                secret: SMS_SECRET.into(),
                reply: if silent { Reply::Silent } else { Reply::Valid },
            }),
        );
    }
}

/// The prompts for a simulated site: those installed beside the program
/// (`<prefix>/share/vigil/sounds` for `<prefix>/bin/vigil`), else the source tree's.
fn sounds_dir() -> PathBuf {
    let installed = std::env::current_exe().ok().and_then(|exe| {
        exe.parent()
            .and_then(Path::parent)
            .map(|prefix| prefix.join("share/vigil/sounds"))
    });
    match installed {
        Some(dir) if dir.is_dir() => dir,
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sounds"),
    }
}

fn site_config(
    dir: &Path,
    o: &SiteOptions,
    scaip: SocketAddr,
    dc09: SocketAddr,
    modem: &str,
    voice_port: Option<&str>,
    radio: SocketAddr,
) -> String {
    let voice_port = voice_port.map_or(String::new(), |p| format!("voice_port = \"{p}\"\n"));
    let call_device = o
        .call_device
        .as_ref()
        .map_or(String::new(), |c| format!("call_device = \"{c}\"\n"));
    let fmt = crate::config::format_duration;
    let mut pendants = String::new();
    for (i, (id, kind, location, key)) in PENDANTS.iter().enumerate() {
        pendants.push_str(&format!(
            "[[pendant]]\nid = \"{id:08X}\"\nkind = \"{kind}\"\nlocation = \"{location}\"\nzone = {}\nkey = \"{key}\"\n\n",
            i + 1
        ));
    }
    let contact_id = if o.contact_id_route {
        format!(
            "[[route]]\nname = \"arc-contact-id\"\nkind = \"contact-id\"\nnumber = \"{}\"\nattempt_timeout = \"40s\"\n\n",
            numbers::CONTACT_ID
        )
    } else {
        String::new()
    };
    format!(
        r#"# A simulated site, written by the simulators; the unit reads it like any other.
data_dir = "{data}"

[unit]
controller_id = "4600123456"
contact_id_account = "1234"
sia_account = "1234"
subscriber = "Anna Svensson"
address = "Storgatan 1, 123 45 Småstad"
language = "en"

{pendants}[alarm]
prompt_repeat = "3s"

[alarm.personal]
cancel_window = "0s"

[alarm.fixed]
cancel_window = "{fixed}"

[alarm.fall]
confirm_window = "{fall}"

[escalation]
fast_rounds = 16
fast_interval = "{fast}"
slow_interval = "1m"

[[route]]
name = "arc-scaip"
kind = "scaip"
receiver_uri = "sip:alarm@arc.test"
proxy = "{scaip}"
local_uri = "sip:4600123456@arc.test"
bind = "127.0.0.1:0"
credentials = "arc-sip"
answer_timeout = "3s"
attempt_timeout = "{attempt}"

[[route]]
name = "arc-dc09"
kind = "dc09"
receiver = "{dc09}"
protocol = "tcp"
receiver_number = "1"
line_prefix = "1"
key = "{dc09_key}"
answer_timeout = "3s"
attempt_timeout = "{attempt}"

[[route]]
name = "arc-sms"
kind = "sms"
number = "{sms}"
credentials = "arc-sms"
reply_timeout = "{sms_reply}"
attempt_timeout = "40s"

[[route]]
name = "daughter"
kind = "voice"
number = "{daughter}"
accept_key = "1"
carries = ["personal"]
attempt_timeout = "40s"

{contact_id}[credentials.arc-sip]
username = "4600123456"
secret = "{sip_password}"

[credentials.arc-sms]
secret = "{sms_secret}"

[credentials.remote]
secret = "{remote_secret}"

[supervision]
heartbeat_interval = "5m"
missing_after = "{missing}"
mains_report_delay = "2s"
test_interval = "24h"
auto_answer_window = "15m"

[radio]
driver = "sim"
listen = "{radio}"
jamming_rssi_dbm = -80
jamming_after = "5s"

[modem]
port = "{modem}"
baud = 115200
{voice_port}
[remote]
allowed_numbers = ["{sms}"]
credentials = "remote"

[audio]
sounds_dir = "{sounds}"
{call_device}"#,
        data = dir.join("data").display(),
        fixed = fmt(o.fixed_window),
        fall = fmt(o.fall_window),
        fast = fmt(o.fast_interval),
        attempt = fmt(o.attempt_timeout),
        missing = fmt(o.missing_after),
        sms_reply = fmt(o.sms_reply_timeout),
        dc09_key = DC09_KEY_HEX,
        sms = numbers::SMS_GATEWAY,
        daughter = numbers::DAUGHTER,
        sip_password = SIP_PASSWORD,
        sms_secret = SMS_SECRET,
        remote_secret = REMOTE_SECRET,
        sounds = sounds_dir().display(),
    )
}
