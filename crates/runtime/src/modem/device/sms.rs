//! SMS: sending in PDU mode (GSM 7-bit or UCS-2, concatenated) or text mode, and reading
//! what arrives (`+CMTI` → `AT+CMGR` → `AT+CMGD`, and what was stored before init).
//! Acknowledgements are passed to the SMS route waiting on them; anything else is tried as a
//! remote command.

use std::sync::atomic::Ordering;

use super::{Modem, ModemEvent};
use crate::modem::at;
use crate::modem::engine::{Command, Response};
use crate::modem::{pdu, ModemError};

/// An SMS received by the modem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingSms {
    /// Sender.
    pub from: String,
    /// Text.
    pub text: String,
}

impl Modem {
    /// Sends an SMS in PDU mode (GSM 7-bit or UCS-2, concatenated if long).
    /// Returns the message references of `+CMGS`: "sent", not "received".
    pub async fn send_sms(&self, to: &str, text: &str) -> Result<Vec<u8>, ModemError> {
        let reference = self.inner.concat_ref.fetch_add(1, Ordering::Relaxed);
        let pdus = pdu::encode_message(to, text, reference)?;
        self.cmd("AT+CMGF=0").await?;
        let mut mrs = Vec::new();
        for p in pdus {
            let r = self
                .inner
                .at
                .send(
                    Command::new(
                        format!("AT+CMGS={}", p.tpdu_len),
                        self.inner.timing.sms_submit,
                    )
                    .expect("+CMGS:")
                    .with_body(p.hex),
                )
                .await?;
            mrs.push(cmgs_reference(&r));
        }
        Ok(mrs)
    }

    /// Sends an SMS in text mode (`AT+CMGF=1`, `AT+CSCS="IRA"`): plain ASCII, one message.
    pub async fn send_sms_text(&self, to: &str, text: &str) -> Result<Vec<u8>, ModemError> {
        if !text.is_ascii() || text.contains(['\u{1a}', '\u{1b}']) || text.len() > pdu::MAX_SEPTETS
        {
            return Err(ModemError::Pdu(pdu::PduError(
                "text mode takes one message of plain ASCII; use PDU mode",
            )));
        }
        self.cmd("AT+CMGF=1").await?;
        let sent = async {
            self.cmd("AT+CSCS=\"IRA\"").await?;
            let r = self
                .inner
                .at
                .send(
                    Command::new(format!("AT+CMGS=\"{to}\""), self.inner.timing.sms_submit)
                        .expect("+CMGS:")
                        .with_body(text),
                )
                .await?;
            Ok::<_, ModemError>(vec![cmgs_reference(&r)])
        }
        .await;
        // Incoming messages are read in PDU mode.
        let back = self.cmd("AT+CMGF=0").await;
        let mrs = sent?;
        back?;
        Ok(mrs)
    }

    /// Reads and deletes every stored message (`AT+CMGL=4`, PDU mode): what arrived while
    /// the modem was being reset, or before Vigil started.
    pub(super) async fn read_stored_sms(&self) {
        let r = self
            .inner
            .at
            .send(Command::new("AT+CMGL=4", self.inner.timing.command).expect("+CMGL:"))
            .await;
        let Ok(r) = r else { return };
        let mut it = r.lines.iter();
        while let Some(head) = it.next() {
            let Some(rest) = head.strip_prefix("+CMGL:") else {
                continue;
            };
            let index: Option<u16> = at::fields(rest).first().and_then(|s| s.parse().ok());
            let Some(pdu_line) = it.next() else { break };
            if let Some(index) = index {
                let _ = self.cmd(&format!("AT+CMGD={index}")).await;
            }
            match pdu::decode_deliver(pdu_line) {
                Ok(d) => self.received(d.from, d.text),
                Err(e) => tracing::warn!(error = %e, "undecodable stored SMS ignored"),
            }
        }
    }

    pub(super) async fn read_sms(&self, index: u16) {
        let t = self.inner.timing;
        let r = self
            .inner
            .at
            .send(Command::new(format!("AT+CMGR={index}"), t.command).expect("+CMGR:"))
            .await;
        let _ = self.cmd(&format!("AT+CMGD={index}")).await;
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, index, "cannot read SMS");
                return;
            }
        };
        let pos = r.lines.iter().position(|l| l.starts_with("+CMGR:"));
        let Some(pdu_line) = pos.and_then(|p| r.lines.get(p + 1)) else {
            tracing::warn!(index, "SMS without PDU");
            return;
        };
        match pdu::decode_deliver(pdu_line) {
            Ok(d) => self.received(d.from, d.text),
            Err(e) => tracing::warn!(error = %e, index, "undecodable SMS ignored"),
        }
    }

    fn received(&self, from: String, text: String) {
        let _ = self.inner.sms.send(IncomingSms {
            from: from.clone(),
            text: text.clone(),
        });
        let first = text.split_whitespace().next().unwrap_or("");
        if first.eq_ignore_ascii_case("ACK") {
            // Acknowledgements are for the SMS route waiting on them.
            return;
        }
        match self.remote(&from, &text) {
            Ok(command) => {
                tracing::info!(from = %from, command = command.as_str(), "remote command accepted");
                self.emit(ModemEvent::Remote { from, command });
            }
            Err(why) => {
                tracing::warn!(from = %from, why = %why, "SMS ignored");
                self.emit(ModemEvent::Ignored { from, why });
            }
        }
    }
}

fn cmgs_reference(r: &Response) -> u8 {
    r.line("+CMGS:")
        .and_then(|l| l.trim_start_matches("+CMGS:").trim().parse().ok())
        .unwrap_or(0)
}
