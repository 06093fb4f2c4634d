//! Simulated IP receiving centre: a SCAIP receiver (registrar and alarm handler) and a DC-09
//! receiver, both on loopback, both printing what an operator would see and recording what
//! they received so tests can check it.

pub mod dc09;
pub mod demo;
pub mod scaip;

/// What can go wrong starting a simulated receiver.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    /// Binding or using a socket failed.
    #[error("receiver socket: {0}")]
    Io(String),
    /// The receiver's own settings are wrong.
    #[error("receiver configuration: {0}")]
    Config(String),
}

impl ReceiverError {
    fn io(e: std::io::Error) -> ReceiverError {
        ReceiverError::Io(e.to_string())
    }
}
