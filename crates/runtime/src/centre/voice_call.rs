//! The voice-call route: call a person, announce the alarm, accept on a key press.
//!
//! `ATD<number>;` then `+CLCC` until the call is active (stat 0); `BUSY`, `NO ANSWER`,
//! `NO CARRIER` end it. The announcement is spoken into the call by the module's
//! text-to-speech (Quectel `AT+QTTS=2,"…"` / SIMCom `AT+CTTS=2,"…"`, finished when `+QTTS: 0`
//! / `+CTTS: 0` arrives; see [`crate::modem::profile`]) and repeated until the person presses
//! the accept key, reported by the module's DTMF detector (`+QTONEDET: <ascii>` /
//! `+RXDTMF: <key>`). A voicemail box answers but never presses the
//! key: that is not delivered. After the key the call stays up so the person can speak
//! with the subscriber: through the unit's echo-cancelled speakerphone when the module puts
//! calls on a port the unit reads, as the centre's call ([`Modem::carry_speech`]), else on
//! the module's own audio path.

use crate::config::{Unit, VoiceRoute};
use crate::core::{Delivery, DeliveryResult};
use crate::modem::at::Urc;
use crate::modem::{Command, Modem, Profile};
use crate::voice::call_port::CallAudio;

/// A voice call to one person.
pub struct VoiceCall {
    modem: Modem,
    number: String,
    accept_key: char,
    unit: Unit,
    speakerphone: Option<CallAudio>,
}

impl VoiceCall {
    /// The route as configured.
    pub fn new(modem: Modem, route: &VoiceRoute, unit: &Unit) -> VoiceCall {
        VoiceCall {
            modem,
            number: route.number.clone(),
            accept_key: route.accept_key,
            unit: unit.clone(),
            speakerphone: None,
        }
    }

    /// The route whose accepted calls go on as speech through the unit's speakerphone, which
    /// `speakerphone` opens.
    #[must_use]
    pub fn with_speakerphone(mut self, speakerphone: CallAudio) -> VoiceCall {
        self.speakerphone = Some(speakerphone);
        self
    }

    /// What the person hears.
    pub fn announcement(&self, delivery: &Delivery) -> String {
        let a = &delivery.alarm;
        let place = a
            .device
            .as_ref()
            .map(|d| format!(", {}", d.location))
            .unwrap_or_default();
        // Quotes would end the AT string argument, and CR, LF, Ctrl-Z or ESC would end or
        // abort the command line: names and addresses come from outside, so drop them all.
        format!(
            "This is the emergency alarm of {} at {}{place}: {}. Press {} to accept.",
            self.unit.subscriber,
            self.unit.address,
            a.cause.describe(),
            self.accept_key
        )
        .chars()
        .filter(|c| *c != '"' && !c.is_control())
        .collect()
    }

    /// Delivers one alarm: acknowledged only by the accept key. Cancellation-safe: dropping
    /// the future hangs the call up.
    pub async fn deliver(&self, delivery: &Delivery) -> DeliveryResult {
        let alarm = &delivery.alarm;
        let failed = |reason: String| {
            tracing::warn!(alarm_id = alarm.id.0, route = delivery.route.0, reason = %reason, "voice call not accepted");
            DeliveryResult::Failed { reason }
        };
        let number = match crate::modem::DialNumber::parse(&self.number) {
            Ok(n) => n,
            Err(e) => return failed(format!("route number: {e}")),
        };
        let (line, mut urcs) = match self.modem.place_call(&number).await {
            Ok(call) => call,
            Err(e) => return failed(e.to_string()),
        };
        let t = self.modem.timing();
        let text = self.announcement(delivery);
        // The module's own way of speaking into the call; before init has recognised it,
        // Quectel's (the module the unit ships with).
        let profile = self
            .modem
            .capabilities()
            .map_or(Profile::Quectel, |c| c.profile);
        let Some(speak) = profile.speech_command(&text) else {
            line.hang_up().await;
            return failed(format!(
                "{} cannot speak the announcement into a call",
                profile.name()
            ));
        };
        let deadline = tokio::time::Instant::now() + t.accept;
        'announce: loop {
            let tts = Command::new(speak.clone(), t.command);
            if let Err(e) = self.modem.at().send(tts).await {
                let r = self.modem.call_failure(e);
                line.hang_up().await;
                return failed(format!("announcement: {r}"));
            }
            loop {
                let u = tokio::select! {
                    u = urcs.recv() => u,
                    () = tokio::time::sleep_until(deadline) => break 'announce,
                };
                match u {
                    Ok(Urc::Dtmf(k)) if k == self.accept_key => {
                        tracing::info!(alarm_id = alarm.id.0, by = %self.number, "alarm accepted by key");
                        // The call goes on as speech; it is handed over before the line is
                        // let go, so the next call placed ends this call's speech first.
                        self.modem
                            .carry_speech(self.speakerphone.as_ref(), None)
                            .await;
                        line.keep_open();
                        return DeliveryResult::Acked {
                            by: self.number.clone(),
                            callback: None,
                        };
                    }
                    Ok(Urc::Dtmf(k)) => tracing::debug!(key = %k, "other key ignored"),
                    Ok(Urc::TtsDone) => continue 'announce,
                    Ok(Urc::NoCarrier) => {
                        return failed(format!(
                            "{} hung up without pressing {}",
                            self.number, self.accept_key
                        ));
                    }
                    Ok(Urc::Rdy) => return failed("the modem restarted during the call".into()),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return failed("the AT engine stopped".into()),
                }
            }
        }
        line.hang_up().await;
        failed(format!(
            "answered but no accept key within {} s (voicemail or nobody pressed {})",
            t.accept.as_secs_f32(),
            self.accept_key
        ))
    }
}
