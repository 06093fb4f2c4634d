//! Transceivers behind one trait: the RFM69HCW on SPI, and a simulated radio on UDP loopback.

pub mod rfm69;
#[cfg(feature = "sim")]
pub mod sim;

use std::sync::Arc;
use std::time::Duration;

use super::RadioError;

/// A frame as the transceiver received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The frame's bytes (after the length byte, CRC already checked by the packet engine).
    pub bytes: Vec<u8>,
    /// Signal strength while it was received, dBm.
    pub rssi_dbm: Option<i16>,
}

/// A half-duplex packet transceiver on the alarm channel.
pub trait Transceiver: Send {
    /// Waits up to `timeout` for a frame; `None` if none came.
    fn receive(&mut self, timeout: Duration) -> Result<Option<Received>, RadioError>;
    /// Sends one frame and returns once it is on air; then listens again.
    fn transmit(&mut self, frame: &[u8]) -> Result<(), RadioError>;
    /// The channel's current signal strength, dBm, for jamming detection.
    fn channel_rssi(&mut self) -> Result<i16, RadioError>;
    /// A way for another thread to end a [`Transceiver::receive`] wait at once, if the
    /// transceiver has one. With it the radio worker waits for frames without a short timeout.
    fn waker(&self) -> Option<Waker> {
        None
    }
    /// True when the transceiver knows nothing is on the channel, so sampling its RSSI would
    /// only read the noise floor. A real receiver cannot know that without sampling.
    fn channel_quiet(&mut self) -> bool {
        false
    }
}

/// Ends a transceiver's `receive` wait early (see [`Transceiver::waker`]).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

impl<T: Transceiver + ?Sized> Transceiver for Box<T> {
    fn receive(&mut self, timeout: Duration) -> Result<Option<Received>, RadioError> {
        (**self).receive(timeout)
    }
    fn transmit(&mut self, frame: &[u8]) -> Result<(), RadioError> {
        (**self).transmit(frame)
    }
    fn channel_rssi(&mut self) -> Result<i16, RadioError> {
        (**self).channel_rssi()
    }
    fn waker(&self) -> Option<Waker> {
        (**self).waker()
    }
    fn channel_quiet(&mut self) -> bool {
        (**self).channel_quiet()
    }
}

/// Opens the transceiver the configuration names.
pub fn open(radio: &crate::config::Radio) -> Result<Box<dyn Transceiver>, RadioError> {
    match &radio.driver {
        #[cfg(feature = "sim")]
        crate::config::RadioDriver::Sim { listen } => Ok(Box::new(sim::SimRadio::bind(
            *listen,
            sim::SimChannel::default(),
        )?)),
        #[cfg(not(feature = "sim"))]
        crate::config::RadioDriver::Sim { .. } => Err(RadioError::Usage(
            "radio.driver = \"sim\" needs the simulators, which this build leaves out; \
             set radio.driver = \"rfm69\""
                .into(),
        )),
        d @ crate::config::RadioDriver::Rfm69 { .. } => rfm69::open(d, radio.band),
    }
}
