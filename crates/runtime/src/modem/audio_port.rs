//! Where the module puts a call's audio for the unit, so the unit's echo-cancelled
//! speakerphone carries the call as it carries a SIP call. Two families, two ways:
//!
//! - **SIMCom SIM7500/SIM7600**: PCM frames on its voice port, a serial interface of its USB
//!   (`modem.voice_port`), streamed while `AT+CPCMREG=1` ([`super::voice_port`]).
//! - **Quectel EC25/EG25**: a USB audio class sound card, once `AT+QPCMV=1,2` (voice over USB,
//!   port 2 = the audio class) is set at start; the unit opens it through ALSA by the name the
//!   installer gives (`audio.call_device`), which needs a build with audio devices (feature
//!   `alsa`).
//!
//! [`choose`] decides from what the module proved at init and what the installer configured;
//! everything that carries a cellular call's speech asks it, so the call logic is written once.

use super::profile::{Capabilities, Profile};

/// How a simulated module names the stream that stands in for its USB audio card in
/// `audio.call_device` (`sim:` and the stream's path). Only a build with the simulators
/// (feature `sim`) opens it; elsewhere it is an ALSA name like any other.
pub const SIM_CARD_PREFIX: &str = "sim:";

/// Whether this build can open `card`: an ALSA name with audio devices (feature `alsa`), a
/// simulated module's card ([`SIM_CARD_PREFIX`]) with the simulators (feature `sim`).
pub fn can_open(card: &str) -> bool {
    cfg!(feature = "alsa") || (cfg!(feature = "sim") && card.starts_with(SIM_CARD_PREFIX))
}

/// The module's port for a call's audio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioPort {
    /// SIMCom's voice port (a serial device path), streaming on `AT+CPCMREG=1`.
    VoicePort(String),
    /// Quectel's USB audio class card (an ALSA PCM name), voice over USB on `AT+QPCMV=1,2`.
    SoundCard(String),
}

/// Why no port carries a call's audio to the unit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoAudioPort {
    /// Neither `modem.voice_port` nor `audio.call_device` is set: the module's own audio path
    /// carries the call (its analog codec, or nothing).
    #[error("the module's own audio path carries calls (neither modem.voice_port nor audio.call_device is set)")]
    NotWired,
    /// The module has not been recognised yet.
    #[error("the module has not started yet")]
    NotStarted,
    /// The port configured belongs to another family of module.
    #[error("{key} is set, but only {wants} modules carry calls there and the module is {fitted}")]
    WrongModule {
        /// The configuration key.
        key: &'static str,
        /// The family that uses it.
        wants: &'static str,
        /// The family fitted.
        fitted: &'static str,
    },
    /// The module refused the command that puts the call there.
    #[error("the module refused {command} (see the log)")]
    Refused {
        /// The command.
        command: &'static str,
    },
    /// A sound card is configured but this build cannot open audio devices.
    #[error(
        "audio.call_device is set, but this build has no audio device support (feature `alsa`)"
    )]
    NoAudioDevices,
}

/// The module's port for a call's audio, from what it proved at init (`caps`; `None` before
/// the first init), the installer's `voice_port` and `call_device`, and whether this build
/// can open audio devices (`alsa`).
pub fn choose(
    caps: Option<&Capabilities>,
    voice_port: Option<&str>,
    call_device: Option<&str>,
    alsa: bool,
) -> Result<AudioPort, NoAudioPort> {
    if voice_port.is_none() && call_device.is_none() {
        return Err(NoAudioPort::NotWired);
    }
    let caps = caps.ok_or(NoAudioPort::NotStarted)?;
    let fitted = caps.profile.name();
    if let Some(port) = voice_port {
        return match (caps.profile, caps.pcm) {
            (Profile::Simcom, true) => Ok(AudioPort::VoicePort(port.to_string())),
            (Profile::Simcom, false) => Err(NoAudioPort::Refused {
                command: "AT+CPCMREG",
            }),
            _ => Err(NoAudioPort::WrongModule {
                key: "modem.voice_port",
                wants: Profile::Simcom.name(),
                fitted,
            }),
        };
    }
    let Some(card) = call_device else {
        return Err(NoAudioPort::NotWired);
    };
    match (caps.profile, caps.usb_audio) {
        (Profile::Quectel, Some(true)) if alsa => Ok(AudioPort::SoundCard(card.to_string())),
        (Profile::Quectel, Some(true)) => Err(NoAudioPort::NoAudioDevices),
        (Profile::Quectel, _) => Err(NoAudioPort::Refused {
            command: super::profile::QUECTEL_USB_AUDIO,
        }),
        _ => Err(NoAudioPort::WrongModule {
            key: "audio.call_device",
            wants: Profile::Quectel.name(),
            fitted,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(profile: Profile, pcm: bool, usb_audio: Option<bool>) -> Capabilities {
        Capabilities {
            profile,
            hears_dtmf: true,
            hears_tones: true,
            pcm,
            speaks: true,
            call_audio: None,
            usb_audio,
        }
    }

    const PORT: &str = "/dev/ttyUSB4";
    const CARD: &str = "plughw:CARD=EC25,DEV=0";

    #[test]
    fn each_family_carries_calls_on_its_own_port() {
        let simcom = caps(Profile::Simcom, true, None);
        assert_eq!(
            choose(Some(&simcom), Some(PORT), None, false),
            Ok(AudioPort::VoicePort(PORT.into()))
        );
        let quectel = caps(Profile::Quectel, false, Some(true));
        assert_eq!(
            choose(Some(&quectel), None, Some(CARD), true),
            Ok(AudioPort::SoundCard(CARD.into()))
        );
    }

    #[test]
    fn nothing_configured_leaves_the_call_to_the_module() {
        let quectel = caps(Profile::Quectel, false, None);
        assert_eq!(
            choose(Some(&quectel), None, None, true),
            Err(NoAudioPort::NotWired)
        );
        assert_eq!(choose(None, None, None, true), Err(NoAudioPort::NotWired));
        assert_eq!(
            choose(None, None, Some(CARD), true),
            Err(NoAudioPort::NotStarted)
        );
    }

    #[test]
    fn a_port_that_cannot_work_says_why() {
        // A refusal at init.
        let refused = caps(Profile::Quectel, false, Some(false));
        let e = choose(Some(&refused), None, Some(CARD), true).unwrap_err();
        assert_eq!(
            e,
            NoAudioPort::Refused {
                command: "AT+QPCMV=1,2"
            }
        );
        assert!(e.to_string().contains("AT+QPCMV=1,2"), "{e}");
        let simcom_refused = caps(Profile::Simcom, false, None);
        assert_eq!(
            choose(Some(&simcom_refused), Some(PORT), None, true),
            Err(NoAudioPort::Refused {
                command: "AT+CPCMREG"
            })
        );
        // A build that cannot open the card.
        let quectel = caps(Profile::Quectel, false, Some(true));
        let e = choose(Some(&quectel), None, Some(CARD), false).unwrap_err();
        assert_eq!(e, NoAudioPort::NoAudioDevices);
        assert!(e.to_string().contains("feature `alsa`"), "{e}");
        // The other family's port.
        let simcom = caps(Profile::Simcom, false, None);
        let e = choose(Some(&simcom), None, Some(CARD), true).unwrap_err();
        assert!(
            e.to_string()
                .contains("audio.call_device is set, but only Quectel modules")
                && e.to_string().contains("SIMCom"),
            "{e}"
        );
        let e = choose(Some(&quectel), Some(PORT), None, true).unwrap_err();
        assert!(
            matches!(
                e,
                NoAudioPort::WrongModule {
                    key: "modem.voice_port",
                    ..
                }
            ),
            "{e}"
        );
        let generic = caps(Profile::Generic, false, None);
        assert!(matches!(
            choose(Some(&generic), None, Some(CARD), true),
            Err(NoAudioPort::WrongModule { .. })
        ));
    }
}
