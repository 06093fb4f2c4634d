//! The SMS route: alarm text out, authenticated reply back.
//!
//! The text tells a person who, what, where, when and which unit, and ends with a line a
//! gateway can parse (`VIGIL1 REF=… UNIT=… EV=… Z=… T=…`). `+CMGS` only proves the SMSC took
//! it; the alarm counts as delivered when a reply from exactly the configured number (same
//! +E.164 form) says `ACK <REF> <code>`, the code binding unit, alarm and attempt under the
//! route's secret ([`crate::modem::auth::ack_code`], 50 bits). Only the latest attempt's code
//! counts: once a new attempt's SMS has gone out, an earlier code is ignored. Wrong codes for
//! an alarm are counted; after [`MAX_WRONG_CODES`] the route takes no more replies for that
//! alarm and fails at once, so the alarm goes on by the other routes. Sent in PDU mode (GSM 7-bit, or UCS-2 for names such as
//! "Łucja Wąs"), concatenated when long; text mode on request for plain short texts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::config::{Credentials, Secret, SmsRoute, Unit};
use crate::core::{Alarm, AlarmClass, AlarmId, Delivery, DeliveryResult};
use crate::modem::device::same_number;
use crate::modem::{auth, Modem};

/// How the SMS goes to the modem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsMode {
    /// PDU mode (`AT+CMGF=0`): any alphabet, concatenation.
    Pdu,
    /// Text mode (`AT+CMGF=1`) when the text is short plain ASCII, else PDU.
    Text,
}

/// Wrong acknowledgement codes an alarm may receive before its SMS route stops listening.
pub const MAX_WRONG_CODES: u32 = 5;

/// An SMS route to one number.
pub struct Sms {
    modem: Modem,
    /// Wrong codes received per alarm.
    wrong_codes: Mutex<HashMap<AlarmId, u32>>,
    number: String,
    secret: Secret,
    reply_timeout: Duration,
    unit: Unit,
    mode: SmsMode,
}

/// The alarm text: readable lines, then the machine-parseable reference line.
pub fn alarm_text(unit: &Unit, alarm: &Alarm, attempt: u32) -> String {
    let head = match alarm.class() {
        AlarmClass::Personal => "ALARM",
        AlarmClass::Technical => "TECHNICAL",
        AlarmClass::Test => "TEST",
    };
    let (q, eee) = alarm.cause.contact_id();
    let place = match &alarm.device {
        Some(d) => format!("{}, {} (zone {})", unit.address, d.location, d.zone),
        None => format!("{}, base unit", unit.address),
    };
    format!(
        "{head}: {}\nWho: {}\nWhere: {place}\nWhen: {}\nUnit: {}\nReply ACK {} <code>\nVIGIL1 REF={} UNIT={} EV={q}{eee:03} Z={:03} T={} A={attempt}",
        alarm.describe_ascii(),
        unit.subscriber,
        alarm.raised_at.to_utc().format("%Y-%m-%d %H:%M:%SZ"),
        unit.controller_id,
        alarm.reference,
        alarm.reference,
        unit.controller_id,
        alarm.zone(),
        alarm.raised_at.as_secs(),
    )
}

/// A one-message form for text mode: who, what, where, when and the reference line.
pub fn compact_text(unit: &Unit, alarm: &Alarm, attempt: u32) -> String {
    let (q, eee) = alarm.cause.contact_id();
    let place = match &alarm.device {
        Some(d) => format!("{}, {}", unit.address, d.location),
        None => unit.address.clone(),
    };
    format!(
        "{}: {}. {place}. {} VIGIL1 REF={} UNIT={} EV={q}{eee:03} Z={:03} T={} A={attempt}",
        alarm.describe_ascii(),
        unit.subscriber,
        alarm.raised_at.to_utc().format("%Y-%m-%d %H:%MZ"),
        alarm.reference,
        unit.controller_id,
        alarm.zone(),
        alarm.raised_at.as_secs(),
    )
}

impl Sms {
    /// The route as configured; `credentials` are the ones `route.credentials` names.
    pub fn new(modem: Modem, route: &SmsRoute, credentials: &Credentials, unit: &Unit) -> Sms {
        Sms {
            modem,
            wrong_codes: Mutex::new(HashMap::new()),
            number: route.number.clone(),
            secret: credentials.secret.clone(),
            reply_timeout: route.reply_timeout,
            unit: unit.clone(),
            mode: SmsMode::Pdu,
        }
    }

    /// Uses `mode` to hand the text to the modem.
    pub fn with_mode(mut self, mode: SmsMode) -> Sms {
        self.mode = mode;
        self
    }

    /// Delivers one alarm: acknowledged only by an authenticated reply. Cancellation-safe:
    /// dropping the future stops waiting (an SMS half-typed at the prompt is aborted by the
    /// engine's timeout with ESC).
    pub async fn deliver(&self, delivery: &Delivery) -> DeliveryResult {
        let alarm = &delivery.alarm;
        let failed = |reason: String| {
            tracing::warn!(alarm_id = alarm.id.0, route = delivery.route.0, reason = %reason, "SMS not acknowledged");
            DeliveryResult::Failed { reason }
        };
        if self.wrong_codes(alarm.id) >= MAX_WRONG_CODES {
            return failed(format!(
                "SMS route closed for this alarm after {MAX_WRONG_CODES} wrong codes"
            ));
        }
        if let Err(e) = self.modem.usable() {
            return failed(e.to_string());
        }
        let text = alarm_text(&self.unit, alarm, delivery.attempt);
        let short = compact_text(&self.unit, alarm, delivery.attempt);
        // Subscribe before sending: a fast reply must not slip past.
        let mut inbox = self.modem.incoming_sms();
        let use_text = self.mode == SmsMode::Text && short.is_ascii() && short.len() <= 160;
        let sent = if use_text {
            self.modem.send_sms_text(&self.number, &short).await
        } else {
            self.modem.send_sms(&self.number, &text).await
        };
        let mrs = match sent {
            Ok(m) => m,
            Err(e) => {
                return failed(format!(
                    "SMS to {}: {}",
                    self.number,
                    self.modem.call_failure(e)
                ))
            }
        };
        tracing::info!(
            alarm_id = alarm.id.0,
            route = delivery.route.0,
            parts = mrs.len(),
            "SMS sent, waiting for the reply"
        );
        let wait = async {
            loop {
                match inbox.recv().await {
                    Ok(sms) => {
                        if !same_number(&sms.from, &self.number) {
                            tracing::debug!(from = %sms.from, "SMS from another number ignored");
                            continue;
                        }
                        let Some(reply) = auth::parse_ack(&sms.text) else {
                            continue;
                        };
                        if reply.reference != alarm.reference.as_str() {
                            tracing::debug!("acknowledgement of another alarm");
                            continue;
                        }
                        let unit = self.unit.controller_id.as_str();
                        if reply.matches(&self.secret, unit, delivery.attempt) {
                            return Ok(sms.from);
                        }
                        if (1..delivery.attempt).any(|a| reply.matches(&self.secret, unit, a)) {
                            tracing::info!(
                                alarm_id = alarm.id.0,
                                "code of an earlier attempt ignored"
                            );
                            continue;
                        }
                        let wrong = self.count_wrong_code(alarm.id);
                        tracing::warn!(alarm_id = alarm.id.0, from = %sms.from, wrong, "reply with a wrong code");
                        if wrong >= MAX_WRONG_CODES {
                            return Err(format!(
                                "{wrong} wrong acknowledgement codes: SMS route closed for this alarm"
                            ));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return Err("the modem stopped".to_string()),
                }
            }
        };
        match tokio::time::timeout(self.reply_timeout, wait).await {
            Ok(Ok(by)) => {
                tracing::info!(alarm_id = alarm.id.0, by = %by, "SMS acknowledged");
                DeliveryResult::Acked { by, callback: None }
            }
            Ok(Err(reason)) => failed(reason),
            Err(_) => failed(format!(
                "the SMS went out ({}) but no acknowledgement came back within {} s",
                match mrs.len() {
                    1 => "1 part".to_string(),
                    n => format!("{n} parts"),
                },
                self.reply_timeout.as_secs_f32()
            )),
        }
    }

    fn wrong_codes(&self, alarm: AlarmId) -> u32 {
        crate::sync::lock(&self.wrong_codes)
            .get(&alarm)
            .copied()
            .unwrap_or(0)
    }

    fn count_wrong_code(&self, alarm: AlarmId) -> u32 {
        let mut m = crate::sync::lock(&self.wrong_codes);
        let n = m.entry(alarm).or_insert(0);
        *n += 1;
        *n
    }
}
