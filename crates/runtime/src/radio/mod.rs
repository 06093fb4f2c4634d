//! The radio side of the base: pendant frames, their authentication and replay protection,
//! pairing, acknowledgements under the duty-cycle budget, jamming detection and signal
//! statistics, and the transceivers (RFM69HCW on SPI, or a simulated radio on UDP loopback).
//!
//! Received bytes pass the [`gate::FrameGate`] before anything else sees them; only fresh,
//! authentic events reach the core as [`crate::core::RadioEvent`]s, through [`link::RadioLink`].

pub mod driver;
pub mod duty;
/// The frame format, its AES-GCM seal and its events.
pub use vigil_wire::radio as frame;
pub mod gate;
pub mod link;
pub mod pairing;
pub mod store;
pub mod supervision;

use thiserror::Error;

/// Everything that can go wrong in the radio module.
#[derive(Debug, Error)]
pub enum RadioError {
    /// A frame that cannot be read, opened or built.
    #[error(transparent)]
    Frame(#[from] frame::FrameError),
    /// Key handling failed.
    #[error("key: {0}")]
    Key(String),
    /// Pairing failed.
    #[error("pairing: {0}")]
    Pairing(String),
    /// The pendant store failed.
    #[error("pendant store: {0}")]
    Store(String),
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The SPI bus or a GPIO line failed.
    #[error("transceiver bus: {0}")]
    Bus(String),
    /// The transceiver does not behave as the datasheet says.
    #[error("transceiver: {0}")]
    Chip(String),
    /// The radio link's worker has stopped.
    #[error("the radio link has stopped")]
    Stopped,
    /// A command-line or configuration value is unusable.
    #[error("{0}")]
    Usage(String),
}

impl RadioError {
    /// An IO failure while `context`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> RadioError {
        RadioError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Runs untrusted bytes through everything a received frame meets: the wire parser, the gate
/// (with a known test pendant), the event parser, the pairing window and the simulated-air parser. For the fuzz target
/// `radio_frame` and its proptest twin; must never panic.
pub fn inspect_untrusted_frame(bytes: &[u8]) {
    use crate::core::{DeviceId, Timestamp};
    let key = frame::PendantKey::new([0x5A; 32]);
    let mut store = store::MemoryStore::new();
    if store::PendantStore::save_paired_key(&mut store, DeviceId(0x0000_0001), &key).is_err() {
        return;
    }
    if let Ok(mut g) = gate::FrameGate::new(store, &[]) {
        let _ = g.check(bytes, Some(-80));
        let _ = g.check(bytes, None);
    }
    if let Ok(f) = frame::Frame::new_checked(bytes) {
        let _ = (f.version(), f.device(), f.counter(), f.header(), f.body());
        let c = frame::FrameCipher::new(&key);
        let _ = c.open_event(&f);
        let _ = c.open_ack(&f);
    }
    let _ = frame::Event::parse(bytes);
    #[cfg(feature = "sim")]
    let _ = driver::sim::Air::parse(bytes);
    let mut w = pairing::PairingWindow::new();
    w.open(Timestamp(0), std::time::Duration::from_secs(60), true, -127);
    let _ = w.frame(Timestamp(1), bytes, Some(-40), |_| false);
    if let Some(code) = pairing::PairingCode::parse("000000") {
        let _ = w.confirm(Timestamp(2), code);
    }
}
