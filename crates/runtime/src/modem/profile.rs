//! Module profiles: how each family of cellular module speaks into a call, hears DTMF and
//! the Contact ID tones, and sends DTMF, from its AT manual. The module is recognised at init
//! from `AT+CGMI` / `AT+CGMM` (TS 27.007 §5.1, §5.2); what it then proves it can do (the
//! detection and speech commands it accepts) decides which call routes can work on it.
//!
//! - **Quectel EC25/EG25** (EC2x AT Commands Manual): speech `AT+QTTS=2,"…"`, finished with
//!   `+QTTS: 0`; detection `AT+QTONEDET=1`, reporting DTMF as `+QTONEDET: <ascii>` and the
//!   1400/2300 Hz Contact ID tones as codes 69/70 with their length; `AT+VTS="<digits>"`
//!   sends the digits as one string.
//! - **SIMCom SIM7500/SIM7600** (SIM7500_SIM7600 Series AT Command Manual): speech
//!   `AT+CTTS=2,"…"`, finished with `+CTTS: 0`, played to the far end after `AT+CDTAM=1`;
//!   detection `AT+DDET=1`, reporting DTMF as `+RXDTMF: <key>`, with no single-tone
//!   detection; `AT+VTS` takes the digits quoted and separated by commas, at most 29
//!   characters. Its voice over USB (`AT+CPCMREG=1`, the call as PCM on its audio interface,
//!   `modem.voice_port`) lets the unit hear the Contact ID tones itself
//!   ([`super::voice_port`]).
//! - Quectel's voice over USB (`AT+QPCMV=<enable>,<port>`, port 2 the USB audio class) puts the
//!   call on a sound card of the module's own, which the unit opens through ALSA
//!   (`audio.call_device`, [`super::audio_port`]).
//! - **Unknown modules** get the TS 27.007 commands only (`AT+VTS` one digit at a time): no
//!   speech and no detection, so neither call route can be acknowledged on them.

/// A family of modules, as recognised from its identification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Quectel EC25/EG25 and their siblings.
    Quectel,
    /// SIMCom SIM7500/SIM7600 series.
    Simcom,
    /// Anything else: plain TS 27.007.
    Generic,
}

/// The longest `AT+VTS` argument SIM7600 takes (its manual: 29 characters).
const SIMCOM_VTS_MAX: usize = 29;

/// Quectel's voice over USB on its USB audio class card: `AT+QPCMV=<enable>,<port>` with
/// enable 1 and port 2 (0 is the USB NMEA port, 1 the debug UART).
pub const QUECTEL_USB_AUDIO: &str = "AT+QPCMV=1,2";

impl Profile {
    /// How this module's own call audio is set. SIMCom: `AT+CSDVC=3` (the speakerphone path)
    /// and `AT+CMICGAIN`; Quectel: `AT+QAUDMOD=2` (speaker mode, its echo canceller and noise
    /// suppressor tuned for a loudspeaker) and `AT+QMIC` (analog and digital uplink gain);
    /// both and any other module: TS 27.007's `AT+CLVL` for the volume.
    pub fn call_audio(self) -> CallAudioPlan {
        match self {
            Profile::Simcom => CallAudioPlan {
                route: Some("AT+CSDVC=3"),
                volume: "AT+CLVL",
                mic_gain: Some("AT+CMICGAIN"),
            },
            Profile::Quectel => CallAudioPlan {
                route: Some("AT+QAUDMOD=2"),
                volume: "AT+CLVL",
                mic_gain: Some("AT+QMIC"),
            },
            Profile::Generic => CallAudioPlan {
                route: None,
                volume: "AT+CLVL",
                mic_gain: None,
            },
        }
    }

    /// The profile for a module that names itself `manufacturer` (`AT+CGMI`) and `model`
    /// (`AT+CGMM`).
    pub fn detect(manufacturer: &str, model: &str) -> Profile {
        let m = manufacturer.to_ascii_uppercase();
        let model = model.to_ascii_uppercase();
        if m.contains("QUECTEL") || model.starts_with("EC2") || model.starts_with("EG2") {
            Profile::Quectel
        } else if m.contains("SIMCOM") || model.contains("SIM7") {
            Profile::Simcom
        } else {
            Profile::Generic
        }
    }

    /// The family's name, for logs and `vigil status`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Quectel => "Quectel",
            Profile::Simcom => "SIMCom",
            Profile::Generic => "an unknown module",
        }
    }

    /// The command that turns on reports of DTMF (and, where the module can, tones) heard
    /// from the far end.
    pub fn detection_command(self) -> Option<&'static str> {
        match self {
            Profile::Quectel => Some("AT+QTONEDET=1"),
            Profile::Simcom => Some("AT+DDET=1"),
            Profile::Generic => None,
        }
    }

    /// A command to send once so the module's speech goes to the far end of a call.
    pub fn speech_setup_command(self) -> Option<&'static str> {
        match self {
            Profile::Simcom => Some("AT+CDTAM=1"),
            Profile::Quectel | Profile::Generic => None,
        }
    }

    /// The command that speaks `text` (already stripped of quotes and control characters)
    /// into the call.
    pub fn speech_command(self, text: &str) -> Option<String> {
        match self {
            Profile::Quectel => Some(format!("AT+QTTS=2,\"{text}\"")),
            Profile::Simcom => Some(format!("AT+CTTS=2,\"{text}\"")),
            Profile::Generic => None,
        }
    }

    /// The command that puts the module's calls on its USB audio class card, if it has one.
    pub fn usb_audio_command(self) -> Option<&'static str> {
        match self {
            Profile::Quectel => Some(QUECTEL_USB_AUDIO),
            Profile::Simcom | Profile::Generic => None,
        }
    }

    /// Whether the module's detector reports the 1400 Hz and 2300 Hz Contact ID tones.
    pub fn hears_single_tones(self) -> bool {
        self == Profile::Quectel
    }

    /// The `AT+VTS` commands that send `digits` (0-9, *, #, A-D), in order, in the form the
    /// module's manual gives.
    pub fn dtmf_commands(self, digits: &str) -> Vec<String> {
        match self {
            Profile::Quectel => vec![format!("AT+VTS=\"{digits}\"")],
            Profile::Simcom => {
                // "1,2,3": a digit and a comma each, so 15 digits fit in 29 characters.
                let per_command = SIMCOM_VTS_MAX.div_ceil(2);
                let chars: Vec<char> = digits.chars().collect();
                chars
                    .chunks(per_command)
                    .map(|chunk| {
                        let list: Vec<String> = chunk.iter().map(char::to_string).collect();
                        format!("AT+VTS=\"{}\"", list.join(","))
                    })
                    .collect()
            }
            Profile::Generic => digits.chars().map(|d| format!("AT+VTS={d}")).collect(),
        }
    }
}

/// What the module in the unit proved it can do in a call, learnt at init.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// The module's family.
    pub profile: Profile,
    /// It accepted its detection command: DTMF from the far end is reported.
    pub hears_dtmf: bool,
    /// The Contact ID handshake and kissoff can be heard: reported by the module, or heard by
    /// the unit in the call's audio on the voice port.
    pub hears_tones: bool,
    /// The call's audio reaches the unit as PCM on the module's voice port (SIMCom
    /// `AT+CPCMREG`, with `modem.voice_port` set): the unit hears the tones itself and sends
    /// Contact ID digits in the audio, at DC-05's timing.
    pub pcm: bool,
    /// It can speak an announcement into a call.
    pub speaks: bool,
    /// The installer's call audio settings: `None` when none are configured, `Some(true)`
    /// when the module took them all, `Some(false)` when it refused a part.
    pub call_audio: Option<bool>,
    /// Calls on the module's USB audio class card (Quectel `AT+QPCMV=1,2`, with
    /// `audio.call_device` set): `None` when not asked for on this module, `Some(false)` when
    /// the module refused it.
    pub usb_audio: Option<bool>,
}

/// How a module's own call audio is set (see [`Profile::call_audio`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallAudioPlan {
    /// The command that routes the call to the loudspeaker path, with the module's
    /// speakerphone echo canceller and noise suppressor.
    pub route: Option<&'static str>,
    /// The loudspeaker volume command (its ranges read from `=?`).
    pub volume: &'static str,
    /// The microphone gain command, if the module has one.
    pub mic_gain: Option<&'static str>,
}

impl Capabilities {
    /// Why a voice-call route (announcement, then an accept key) cannot work, if it cannot.
    pub fn voice_call_blocker(&self) -> Option<String> {
        let name = self.profile.name();
        match (self.speaks, self.hears_dtmf) {
            (true, true) => None,
            (false, _) => Some(format!(
                "{name}: the module cannot speak the announcement into a call"
            )),
            (true, false) => Some(format!(
                "{name}: the module does not report the accept key (no DTMF detection)"
            )),
        }
    }

    /// Why a Contact ID route (handshake, digits, kissoff) cannot work, if it cannot.
    pub fn contact_id_blocker(&self) -> Option<String> {
        let name = self.profile.name();
        if self.hears_tones {
            None
        } else if self.profile == Profile::Simcom {
            Some(format!(
                "{name}: the module does not report the receiver's 1400/2300 Hz tones; set modem.voice_port to its USB audio port (usually /dev/ttyUSB4) so the unit hears them in the call"
            ))
        } else {
            Some(format!(
                "{name}: the module does not report the receiver's 1400/2300 Hz tones, so no handshake or kissoff can be heard"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_recognised_from_their_identification() {
        assert_eq!(Profile::detect("Quectel", "EC25"), Profile::Quectel);
        assert_eq!(Profile::detect("", "EG25"), Profile::Quectel);
        assert_eq!(
            Profile::detect("SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H"),
            Profile::Simcom
        );
        assert_eq!(Profile::detect("", "SIMCOM_SIM7600G-H"), Profile::Simcom);
        assert_eq!(Profile::detect("u-blox", "SARA-R410M"), Profile::Generic);
    }

    #[test]
    fn simcom_digits_are_comma_separated_and_split_at_its_limit() {
        let cmds = Profile::Simcom.dtmf_commands("1234181101003015");
        assert_eq!(
            cmds,
            vec![
                "AT+VTS=\"1,2,3,4,1,8,1,1,0,1,0,0,3,0,1\"".to_string(),
                "AT+VTS=\"5\"".to_string()
            ]
        );
        for c in &cmds {
            let arg = c.trim_start_matches("AT+VTS=").trim_matches('"');
            assert!(arg.len() <= SIMCOM_VTS_MAX, "{c}");
        }
        assert_eq!(
            Profile::Quectel.dtmf_commands("1234"),
            vec!["AT+VTS=\"1234\"".to_string()]
        );
        assert_eq!(Profile::Generic.dtmf_commands("12").len(), 2);
    }

    #[test]
    fn routes_that_cannot_work_say_why() {
        let simcom = Capabilities {
            profile: Profile::Simcom,
            hears_dtmf: true,
            hears_tones: false,
            pcm: false,
            speaks: true,
            call_audio: None,
            usb_audio: None,
        };
        assert_eq!(simcom.voice_call_blocker(), None);
        let why = simcom.contact_id_blocker().unwrap();
        assert!(
            why.contains("1400/2300 Hz") && why.contains("modem.voice_port"),
            "{why}"
        );
        let streamed = Capabilities {
            hears_tones: true,
            pcm: true,
            ..simcom
        };
        assert_eq!(streamed.contact_id_blocker(), None);
        let quectel = Capabilities {
            profile: Profile::Quectel,
            hears_dtmf: true,
            hears_tones: true,
            pcm: false,
            speaks: true,
            call_audio: None,
            usb_audio: None,
        };
        assert_eq!(quectel.contact_id_blocker(), None);
        let deaf = Capabilities {
            hears_dtmf: false,
            ..quectel
        };
        assert!(deaf.voice_call_blocker().unwrap().contains("DTMF"));
    }
}
