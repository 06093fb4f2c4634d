//! Remote commands by SMS from an allowed number: `<COMMAND> <nonce> <code>`, the code
//! authenticating command and nonce, the nonce kept above the last accepted one so an
//! overheard command cannot be replayed. Also the allow-list, which auto-answer and call-backs
//! share.

use std::sync::{Arc, Mutex};

use super::Modem;
use crate::modem::auth;
use crate::modem::number::{same_number, DialNumber, NumberError};

/// A command received by SMS from a configured number with a valid code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteCommand {
    /// `STATUS`: report the unit's state (the runtime replies with [`Modem::send_sms`]).
    Status,
    /// `TEST`: send a test report.
    Test,
    /// `SILENCE`: silence repeated technical warnings.
    Silence,
}

impl RemoteCommand {
    fn parse(verb: &str) -> Option<RemoteCommand> {
        match verb.to_ascii_uppercase().as_str() {
            "STATUS" => Some(RemoteCommand::Status),
            "TEST" => Some(RemoteCommand::Test),
            "SILENCE" => Some(RemoteCommand::Silence),
            _ => None,
        }
    }

    /// The verb as sent by SMS.
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteCommand::Status => "STATUS",
            RemoteCommand::Test => "TEST",
            RemoteCommand::Silence => "SILENCE",
        }
    }
}

/// Where the last accepted remote-command nonce is kept. Remote commands must carry a nonce
/// above it; keeping it durably (the journal does, on the unit) means a restart does not let
/// an overheard command be replayed.
pub trait NonceStore: Send {
    /// The last accepted nonce, 0 if none was ever accepted.
    fn last_nonce(&self) -> Result<u64, NonceStoreError>;
    /// Records `nonce` as the last accepted one; returns only once it is kept.
    fn save_nonce(&mut self, nonce: u64) -> Result<(), NonceStoreError>;
}

/// A [`NonceStore`] that could not read or keep the nonce: what its storage said.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NonceStoreError(pub String);

/// Why an SMS was not taken as a remote command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RemoteRefusal {
    /// The sender is not on `remote.allowed_numbers`.
    #[error("sender is not an allowed number")]
    NotAllowed,
    /// `remote.secret` is not set.
    #[error("remote commands are not configured")]
    NotConfigured,
    /// Not three words.
    #[error("not `<COMMAND> <nonce> <code>`")]
    Malformed,
    /// A command the unit does not have.
    #[error("unknown command")]
    UnknownCommand,
    /// The nonce is not a number.
    #[error("nonce is not a number")]
    BadNonce,
    /// The authentication code does not match the command and nonce.
    #[error("wrong authentication code")]
    WrongCode,
    /// The nonce is not above the last accepted one: a replay.
    #[error("replayed command (nonce not above the last one)")]
    Replayed,
    /// The last nonce could not be read, so a replay could not be ruled out.
    #[error("cannot check the nonce against replay: {0}")]
    NonceUnreadable(NonceStoreError),
    /// The nonce could not be kept, so a restart could accept the command again.
    #[error("cannot keep the nonce against replay: {0}")]
    NonceNotKept(NonceStoreError),
}

/// A [`NonceStore`] in memory. Clones share the nonce, so a second modem over a clone sees
/// what the first accepted, as a restarted unit sees its journal.
#[derive(Clone, Debug, Default)]
pub struct MemoryNonce(Arc<Mutex<u64>>);

impl NonceStore for MemoryNonce {
    // A panic elsewhere while holding the lock leaves a whole u64 behind: still the nonce.
    fn last_nonce(&self) -> Result<u64, NonceStoreError> {
        Ok(*crate::sync::lock(&self.0))
    }

    fn save_nonce(&mut self, nonce: u64) -> Result<(), NonceStoreError> {
        *crate::sync::lock(&self.0) = nonce;
        Ok(())
    }
}

/// A [`NonceStore`] that cannot be used (the journal did not open): every remote command is
/// refused with the reason, rather than accepted without replay protection.
#[derive(Clone, Debug)]
pub struct NoNonceStore(pub String);

impl NonceStore for NoNonceStore {
    fn last_nonce(&self) -> Result<u64, NonceStoreError> {
        Err(NonceStoreError(self.0.clone()))
    }

    fn save_nonce(&mut self, _nonce: u64) -> Result<(), NonceStoreError> {
        Err(NonceStoreError(self.0.clone()))
    }
}

impl Modem {
    /// Checks a call-back address a centre asked for (SCAIP `tnu`, `gsm:` scheme): a
    /// well-formed number that is also on `remote.allowed_numbers`, or why not.
    pub fn check_call_back(&self, requested: &str) -> Result<DialNumber, NumberError> {
        let number = DialNumber::parse_callback(requested)?;
        if !self.allowed(number.as_str()) {
            return Err(NumberError::NotAllowed(number));
        }
        Ok(number)
    }

    pub(super) fn allowed(&self, number: &str) -> bool {
        self.inner
            .settings
            .allowed_numbers
            .iter()
            .any(|n| same_number(n, number))
    }

    pub(super) fn remote(&self, from: &str, text: &str) -> Result<RemoteCommand, RemoteRefusal> {
        if !self.allowed(from) {
            return Err(RemoteRefusal::NotAllowed);
        }
        let Some(secret) = self.inner.settings.remote_secret.as_deref() else {
            return Err(RemoteRefusal::NotConfigured);
        };
        let w: Vec<&str> = text.split_whitespace().collect();
        let [verb, nonce, code] = w.as_slice() else {
            return Err(RemoteRefusal::Malformed);
        };
        let command = RemoteCommand::parse(verb).ok_or(RemoteRefusal::UnknownCommand)?;
        let nonce: u64 = nonce.parse().map_err(|_| RemoteRefusal::BadNonce)?;
        if !auth::verify(secret, &format!("{} {nonce}", command.as_str()), code) {
            return Err(RemoteRefusal::WrongCode);
        }
        // Held across the check and the save: two commands never both pass with one nonce.
        let mut nonces = crate::sync::lock(&self.inner.nonces);
        let last = nonces
            .last_nonce()
            .map_err(RemoteRefusal::NonceUnreadable)?;
        if nonce <= last {
            return Err(RemoteRefusal::Replayed);
        }
        // Kept before the command is acted on, so a restart cannot accept it again.
        nonces
            .save_nonce(nonce)
            .map_err(RemoteRefusal::NonceNotKept)?;
        Ok(command)
    }
}
