//! The Contact ID route (SIA DC-05): DTMF over a cellular voice call, kissoff, then speech.
//!
//! A message is `ACCT MT Q EEE GG CCC S`: 4-digit account, message type 18, qualifier
//! (1 new event, 3 restore, 6 status), 3-digit event code, 2-digit group/partition, 3-digit
//! zone or user, and a checksum digit so that the sum of all 16 digit values is a multiple
//! of 15, where digit 0 counts as 10 and pseudo-hex B–F count 11–15 (a checksum of 10 is
//! sent as `0`, of 15 as `F`). B–F go out on the line as DTMF `*`, `#`, `A`, `B`, `C`.
//!
//! The call: `ATD<number>;`, wait for `+CLCC` stat 0 (answered), wait for the receiver's
//! handshake (1400 Hz then 2300 Hz, reported by the modem's tone detector as `+QTONEDET`),
//! pause 250 ms, send the 16 digits with `AT+VTS`, wait 1.25 s for the kissoff (1400 Hz);
//! repeat up to 4 times. After the kissoff the call stays up for speech: through the unit's
//! echo-cancelled speakerphone when the module puts calls on a port the unit reads, as the
//! centre's call ([`Modem::carry_speech`]), else on the module's own audio path.
//!
//! The kissoff is the only acknowledgement this route has, so it is timed: a 1400 Hz tone
//! counts only if it lasted 750–1000 ms (DC-05, with [`KISSOFF_SLACK_MS`] for the detector's
//! resolution) and ended inside the attempt's window (1.25 s to begin, plus its own length).
//! A 1400 Hz burst of a handshake sent again, a tone that goes on and on, or a report without
//! its length (a module that cannot time tones) is not a kissoff: the digits go again, and
//! after the last attempt the alarm goes on by the next route.
//!
//! A module whose detector cannot hear the tones (SIMCom) streams the call to the unit on its
//! voice port ([`crate::modem::voice_port`]): the unit's own detector hears and times the
//! handshake and kissoff, and the unit sends the digits in the audio itself, 55 ms each with
//! 55 ms between them, as DC-05 asks (`AT+VTS` counts tone lengths in tenths of a second).
//! After the kissoff that stream goes on as the call's speech, never stopped and started again.

use std::time::Duration;

use crate::config::{ContactIdRoute, Unit};
use crate::core::{Alarm, Delivery, DeliveryResult};
use crate::modem::at::Urc;
use crate::modem::voice_port::{PortEvent, VoicePort};
use crate::modem::{CommandFailed, Modem};
use crate::voice::call_port::CallAudio;
use crate::voice::tones::ContactIdTone;

pub use vigil_wire::contact_id::*;

/// Contact ID over a cellular voice call to a receiving centre.
pub struct ContactIdCall {
    modem: Modem,
    number: String,
    account: String,
    speakerphone: Option<CallAudio>,
}

/// Why a Contact ID message was not acknowledged by a kissoff, in the call that was answered.
#[derive(Debug, thiserror::Error)]
pub enum NotAcknowledged {
    /// The call ended (or its audio was lost) before the receiver's handshake.
    #[error("{0}")]
    Ended(String),
    /// The receiver never sent its handshake.
    #[error("no Contact ID handshake from the receiver")]
    NoHandshake,
    /// The receiver hung up while the digits went out.
    #[error("the receiver hung up before the kissoff (attempt {attempt})")]
    HungUp {
        /// Which sending of the message, from 1.
        attempt: u32,
    },
    /// The digits could not be sent.
    #[error("sending the digits: {0}")]
    Sending(#[source] DigitsNotSent),
    /// The call ended (or its audio was lost) while waiting for the kissoff.
    #[error("{why} before the kissoff (attempt {attempt})")]
    EndedBeforeKissoff {
        /// How it ended.
        why: String,
        /// Which sending of the message, from 1.
        attempt: u32,
    },
    /// No kissoff after every attempt DC-05 allows.
    #[error("no kissoff after {0} attempts")]
    NoKissoff(u32),
}

/// Why the message's digits did not go out.
#[derive(Debug, thiserror::Error)]
pub enum DigitsNotSent {
    /// The module refused or did not answer `AT+VTS`.
    #[error(transparent)]
    Command(#[from] CommandFailed),
    /// A digit that DTMF cannot carry.
    #[error("{0:?} is not DTMF")]
    NotDtmf(String),
    /// The module's voice port did not take the digits in time.
    #[error("the module's voice port did not take the digits")]
    NotTaken,
}

enum Heard {
    /// A tone the module reported, with its length if it timed it.
    Tone {
        hz: u16,
        ms: Option<u32>,
    },
    /// The handshake, heard by the unit in the call's audio.
    Handshake,
    /// A kissoff, heard and timed by the unit in the call's audio.
    Kissoff,
    Ended(String),
}

/// The next thing heard in the call, within `within`: from the module's reports, and from the
/// call's audio when the unit streams it.
async fn next(
    urcs: &mut tokio::sync::broadcast::Receiver<Urc>,
    pcm: Option<&mut VoicePort>,
    within: Duration,
) -> Option<Heard> {
    let reported = async {
        loop {
            match urcs.recv().await {
                Ok(Urc::Tone { hz, ms }) => return Heard::Tone { hz, ms },
                Ok(Urc::NoCarrier) => return Heard::Ended("the receiver hung up".into()),
                Ok(Urc::Rdy) => return Heard::Ended("the modem restarted during the call".into()),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return Heard::Ended("the AT engine stopped".into()),
            }
        }
    };
    let streamed = async {
        let Some(port) = pcm else {
            return std::future::pending().await;
        };
        match port.next().await {
            PortEvent::Tone(ContactIdTone::Handshake) => Heard::Handshake,
            PortEvent::Tone(ContactIdTone::Kissoff) => Heard::Kissoff,
            PortEvent::Lost(why) => Heard::Ended(why),
        }
    };
    tokio::time::timeout(within, async {
        tokio::select! {
            h = reported => h,
            h = streamed => h,
        }
    })
    .await
    .ok()
}

impl ContactIdCall {
    /// The route to `route.number`, reporting for `unit`'s Contact ID account.
    pub fn new(modem: Modem, route: &ContactIdRoute, unit: &Unit) -> ContactIdCall {
        ContactIdCall {
            modem,
            number: route.number.clone(),
            account: unit.contact_id_account.clone(),
            speakerphone: None,
        }
    }

    /// The route whose calls go on after the kissoff as speech through the unit's
    /// speakerphone, which `speakerphone` opens.
    #[must_use]
    pub fn with_speakerphone(mut self, speakerphone: CallAudio) -> ContactIdCall {
        self.speakerphone = Some(speakerphone);
        self
    }

    /// Delivers one alarm: acknowledged only by a kissoff. Cancellation-safe: dropping the
    /// future hangs the call up.
    pub async fn deliver(&self, delivery: &Delivery) -> DeliveryResult {
        let alarm = &delivery.alarm;
        let failed = |reason: String| {
            tracing::warn!(alarm_id = alarm.id.0, route = delivery.route.0, reason = %reason, "Contact ID not delivered");
            DeliveryResult::Failed { reason }
        };
        let msg = match Message::for_alarm(&self.account, alarm) {
            Ok(m) => m,
            Err(e) => return failed(format!("cannot build the Contact ID message: {e}")),
        };
        let number = match crate::modem::DialNumber::parse(&self.number) {
            Ok(n) => n,
            Err(e) => return failed(format!("route number: {e}")),
        };
        let (mut line, mut urcs) = match self.modem.place_call(&number).await {
            Ok(call) => call,
            Err(e) => return failed(e.to_string()),
        };
        let caps = self.modem.capabilities();
        // A module that cannot hear the tones streams the call to the unit, which hears them
        // and sends the digits in the audio itself.
        let mut pcm = None;
        if caps.is_some_and(|c| c.pcm) {
            match self.modem.open_voice_port().await {
                Ok(p) => pcm = Some(p),
                Err(e) => {
                    line.hang_up().await;
                    return failed(e.to_string());
                }
            }
        }
        let result = self
            .exchange(alarm, &msg, &mut line, &mut urcs, pcm.as_mut())
            .await;
        match result {
            Ok(by) => {
                // The line stays open for speech with the operator, on the stream that carried
                // the digits when there is one (closed when the speech cannot use it). It is
                // handed over before the line is let go, so the next call placed ends this
                // call's speech first.
                self.modem
                    .carry_speech(self.speakerphone.as_ref(), pcm)
                    .await;
                line.keep_open();
                DeliveryResult::Acked { by, callback: None }
            }
            Err(reason) => {
                if let Some(p) = pcm {
                    self.modem.close_voice_port(p).await;
                }
                line.hang_up().await;
                failed(reason.to_string())
            }
        }
    }

    /// Handshake, digits and kissoff in the call on `line`: who acknowledged, or why not.
    async fn exchange(
        &self,
        alarm: &Alarm,
        msg: &Message,
        line: &mut crate::modem::device::CallLine,
        urcs: &mut tokio::sync::broadcast::Receiver<Urc>,
        mut pcm: Option<&mut VoicePort>,
    ) -> Result<String, NotAcknowledged> {
        let t = self.modem.timing();
        // DC-05: 1400 Hz then 2300 Hz from the receiver before we may send. The receiver may
        // have sent them before the call was seen answered: those are read first.
        let mut early = line.take_heard().into_iter().filter_map(|u| match u {
            Urc::Tone { hz, ms } => Some(Heard::Tone { hz, ms }),
            _ => None,
        });
        let mut seen_1400 = false;
        loop {
            let heard = match early.next() {
                Some(h) => Some(h),
                None => next(urcs, pcm.as_deref_mut(), t.handshake).await,
            };
            match heard {
                Some(Heard::Handshake) => break,
                Some(Heard::Tone { hz: 1400, .. }) => seen_1400 = true,
                Some(Heard::Tone { hz: 2300, .. }) if seen_1400 => break,
                Some(Heard::Tone { .. } | Heard::Kissoff) => {}
                Some(Heard::Ended(why)) => return Err(NotAcknowledged::Ended(why)),
                None => return Err(NotAcknowledged::NoHandshake),
            }
        }
        tokio::time::sleep(t.pre_send).await;
        let dtmf = msg.dtmf();
        // The digits in the module's own `AT+VTS` form (one string, or comma-separated in
        // pieces on SIMCom); before init has recognised it, Quectel's.
        let profile = self
            .modem
            .capabilities()
            .map_or(crate::modem::Profile::Quectel, |c| c.profile);
        let commands = profile.dtmf_commands(&dtmf);
        for attempt in 1..=ATTEMPTS {
            let sent = match pcm.as_deref_mut() {
                Some(port) => send_in_audio(port, &dtmf).await,
                None => self.send_by_vts(&commands, t.network).await,
            };
            if let Err(r) = sent {
                // A dropped call makes AT+VTS fail; its NO CARRIER came first.
                let dropped =
                    std::iter::from_fn(|| urcs.try_recv().ok()).any(|u| u == Urc::NoCarrier);
                if dropped {
                    return Err(NotAcknowledged::HungUp { attempt });
                }
                return Err(NotAcknowledged::Sending(r));
            }
            // The kissoff must begin within `t.kissoff`; it is reported when it ends.
            let longest = KISSOFF_MS.end() + KISSOFF_SLACK_MS;
            let deadline =
                tokio::time::Instant::now() + t.kissoff + Duration::from_millis(u64::from(longest));
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match next(urcs, pcm.as_deref_mut(), left).await {
                    Some(Heard::Tone { hz, ms }) if !is_kissoff(hz, ms) => {
                        tracing::info!(
                            alarm_id = alarm.id.0,
                            attempt,
                            hz,
                            ms = ?ms,
                            "a tone that is no Contact ID kissoff"
                        );
                    }
                    Some(Heard::Handshake) => {
                        tracing::info!(
                            alarm_id = alarm.id.0,
                            attempt,
                            "a handshake again, not a kissoff"
                        );
                    }
                    Some(Heard::Tone { .. } | Heard::Kissoff) => {
                        tracing::info!(alarm_id = alarm.id.0, attempt, "Contact ID kissoff");
                        return Ok(format!("Contact ID {}", self.number));
                    }
                    Some(Heard::Ended(why)) => {
                        return Err(NotAcknowledged::EndedBeforeKissoff { why, attempt });
                    }
                    None => break,
                }
            }
            tracing::debug!(alarm_id = alarm.id.0, attempt, "no kissoff");
        }
        Err(NotAcknowledged::NoKissoff(ATTEMPTS))
    }

    /// The digits by `AT+VTS`, the module generating the tones.
    async fn send_by_vts(
        &self,
        commands: &[String],
        timeout: Duration,
    ) -> Result<(), DigitsNotSent> {
        for c in commands {
            let vts = crate::modem::Command::new(c.clone(), timeout);
            if let Err(e) = self.modem.at().send(vts).await {
                return Err(DigitsNotSent::Command(self.modem.call_failure(e)));
            }
        }
        Ok(())
    }
}

/// The digits as DTMF in the call's audio, 55 ms each and 55 ms apart (DC-05: 50–60 ms),
/// waiting until the last has gone.
async fn send_in_audio(port: &mut VoicePort, dtmf: &str) -> Result<(), DigitsNotSent> {
    if !port.send_digits(dtmf) {
        return Err(DigitsNotSent::NotDtmf(dtmf.to_string()));
    }
    let playing = u64::from(2 * crate::modem::voice_port::DIGIT_MS) * dtmf.len() as u64;
    if port.flush(Duration::from_millis(playing + 1_000)).await {
        Ok(())
    } else {
        Err(DigitsNotSent::NotTaken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_makes_a_multiple_of_15() {
        // 1234 18 1 131 01 015: values 1+2+3+4+1+8+1+1+3+1+10+1+10+1+5 = 52 → S = 8.
        let m = Message::new("1234", 1, 131, 1, 15).unwrap();
        assert_eq!(m.digits(), "1234181131010158");
        let sum: u32 = m.digits().chars().filter_map(value).sum();
        assert_eq!(sum % 15, 0);
    }

    #[test]
    fn checksum_ten_is_sent_as_zero_and_fifteen_as_f() {
        // Search zones until the checksum is 10 and 15, and check their spelling.
        let mut seen = (false, false);
        for zone in 0..30 {
            let d = Message::new("1234", 1, 101, 1, zone).unwrap().digits();
            let body: u32 = d.chars().take(15).filter_map(value).sum();
            match 15 - body % 15 {
                10 => {
                    assert!(d.ends_with('0'));
                    seen.0 = true;
                }
                15 => {
                    assert!(d.ends_with('F'));
                    seen.1 = true;
                }
                _ => {}
            }
        }
        assert_eq!(seen, (true, true));
    }

    #[test]
    fn pseudo_hex_goes_out_as_star_hash_and_letters() {
        let m = Message::new("B1CF", 1, 101, 1, 1).unwrap();
        let d = m.dtmf();
        assert!(d.starts_with("*1#C"), "{d}");
        assert_eq!(Message::from_dtmf(&d).unwrap(), m);
    }

    #[test]
    fn receiver_rejects_bad_messages() {
        let d = Message::new("1234", 1, 101, 1, 3).unwrap().dtmf();
        let mut bad: Vec<char> = d.chars().collect();
        bad[8] = if bad[8] == '1' { '2' } else { '1' };
        let bad: String = bad.into_iter().collect();
        assert!(matches!(
            Message::from_dtmf(&bad),
            Err(CidError::Checksum(_))
        ));
        assert_eq!(Message::from_dtmf("123"), Err(CidError::Length(3)));
        assert!(Message::from_dtmf("123417110101001X").is_err());
    }
}
