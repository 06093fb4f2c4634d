//! The cellular modem: an AT command engine (3GPP TS 27.007 / 27.005) over a serial port,
//! SMS PDUs (TS 23.040) and the modem's lifecycle (init, health, recovery).
//!
//! Layers, bottom up:
//! - [`at`]: total parsers for what a modem writes (final results, information lines, URCs).
//! - [`pdu`]: SMS-SUBMIT / SMS-DELIVER encoding, GSM 7-bit and UCS-2, concatenation.
//! - [`engine`]: one command in flight over `serialport`, bridged into tokio; URCs as events.
//! - [`device`]: the modem as the runtime sees it ([`Modem`]): init, health, recovery,
//!   incoming SMS and calls, remote commands, auto-answer.
//! - [`audio_port`]: where the module puts a call's audio for the unit's speakerphone
//!   (SIMCom's voice port, Quectel's USB audio card).
//!
//! The simulated module and network live in the `vigil-sim` crate.

/// AT command lines and what a modem answers (3GPP TS 27.007).
pub use vigil_wire::at;
pub mod audio_port;
pub mod auth;
pub mod device;
pub mod engine;
pub mod number;
/// SMS PDUs (3GPP TS 23.040).
pub use vigil_wire::pdu;
pub mod power;
pub mod profile;
pub mod voice_port;

pub use device::{
    CallError, CommandFailed, DialFailure, MemoryNonce, Modem, ModemEvent, NoNonceStore,
    NonceStore, NonceStoreError, RemoteCommand, RemoteRefusal, SpeechError, Timing, Unusable,
};
pub use engine::{AtClient, Command};
pub use number::{DialNumber, NumberError};
pub use power::PowerKey;
pub use profile::{Capabilities, Profile};
pub use voice_port::VoicePortError;

/// Everything that can go wrong on the cellular side.
#[derive(Debug, thiserror::Error)]
pub enum ModemError {
    /// The serial port could not be opened or failed.
    #[error("serial port {port}: {source}")]
    Port {
        /// Device path.
        port: String,
        /// What the OS said.
        source: serialport::Error,
    },
    /// Reading or writing the port failed.
    #[error("serial I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The modem did not give a final result in time.
    #[error("modem did not answer `{command}` within {timeout_ms} ms")]
    Timeout {
        /// The command line sent.
        command: String,
        /// The timeout that ran out.
        timeout_ms: u64,
    },
    /// The modem answered with an error final result.
    #[error("`{command}` failed: {result}")]
    Rejected {
        /// The command line sent.
        command: String,
        /// The final result, e.g. `+CMS ERROR: 331`.
        result: at::FinalResult,
    },
    /// The AT engine task is gone (port closed, shut down).
    #[error("the AT engine has stopped")]
    EngineStopped,
    /// The modem is being reset or re-initialised.
    #[error("modem not ready: {0}")]
    NotReady(String),
    /// A line from the modem could not be parsed.
    #[error(transparent)]
    Parse(#[from] at::ParseError),
    /// A PDU could not be encoded or decoded.
    #[error(transparent)]
    Pdu(#[from] pdu::PduError),
    /// The SIM is missing, locked or refuses the PIN.
    #[error("SIM: {0}")]
    Sim(String),
    /// The modem is not registered on a network.
    #[error("not registered: {0}")]
    Network(String),
    /// The power key GPIO failed.
    #[error("power key: {0}")]
    PowerKey(String),
}
