//! The cpal backend against ALSA's `null` device (defined by alsa-lib's own configuration, so
//! present wherever libasound is): streams open, prompts play through the real callback path,
//! a capture of exact zeros ends a window as unclear, and a missing device is a clear error.
#![cfg(feature = "alsa")]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil::core::{Heard, Prompt, Timestamp};
use vigil::voice::device::{device_names, CpalAudio, Direction};
use vigil::voice::{lock, SystemClock, Voice, VoiceError, VoiceSettings};

fn settings() -> VoiceSettings {
    VoiceSettings {
        sounds_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("sounds"),
        language: "en".into(),
        volume: 50,
        quiet_hours: None,
    }
}

fn null_device_present() -> bool {
    let present = device_names(Direction::Output)
        .iter()
        .any(|n| n.starts_with("alsa:null"));
    if !present {
        eprintln!("skipped: ALSA has no `null` device here");
    }
    present
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_play_and_a_silent_capture_is_unclear_on_the_null_device() {
    if !null_device_present() {
        return;
    }
    let backend = CpalAudio::new(Some("null".into()), Some("null".into()));
    let voice = Voice::open(&settings(), Box::new(backend), Arc::new(SystemClock)).unwrap();
    assert_eq!(voice.fault(), None);
    voice.play(Prompt::Cancelled);
    let engine = voice.engine().unwrap().clone();
    // The device pulls samples: the prompt leaves the queue and plays out.
    let give_up = Instant::now() + Duration::from_secs(60);
    while !lock(&engine).is_idle() && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        lock(&engine).is_idle(),
        "the null device never pulled the prompt"
    );
    assert!(lock(&engine).output_samples() > 0);
    // ALSA's null capture delivers exact zeros, like a dead microphone.
    let until = Timestamp(Timestamp::now().0 + 1500);
    assert_eq!(voice.listen(until).await, Heard::Unclear);
}

#[test]
fn a_missing_device_is_named_in_the_error_with_the_devices_present() {
    let mut backend = CpalAudio::new(Some("hw:CARD=NoSuchCard,DEV=0".into()), None);
    let err = vigil::voice::AudioBackend::open(&mut backend).unwrap_err();
    assert!(
        matches!(
            err,
            VoiceError::NoDevice {
                direction: "output",
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("`hw:CARD=NoSuchCard,DEV=0`"), "{text}");
    assert!(text.contains("devices present:"), "{text}");
}

#[test]
fn the_call_bridge_opens_four_streams_and_speaks_a_prompt_into_the_call() {
    use vigil::voice::bridge::{CallAudio, CallBridge};
    use vigil::voice::catalogue::PromptSet;
    if !null_device_present() {
        return;
    }
    let (prompts, problems) = PromptSet::load(&settings().sounds_dir, "en", 8000);
    assert!(problems.is_empty(), "{problems:?}");
    let bridge =
        CallBridge::open("null", Some("null"), Some("null"), CallAudio::new(prompts)).unwrap();
    bridge.announce(Prompt::HelpComing);
    assert!(bridge.is_announcing());
    // The microphone stream drives the announcement out to the modem's side.
    let give_up = Instant::now() + Duration::from_secs(60);
    while bridge.is_announcing() && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !bridge.is_announcing(),
        "the prompt never went into the call"
    );
    // ALSA's null capture is silence: no tones in it.
    assert!(bridge.take_tones().is_empty());
}

/// The speakerphone port of a call on ALSA's null device: both streams run on their own
/// thread, the loudspeaker's stream takes what the call gives it, the microphone's fills the
/// call's frames, and neither direction holds more than 60 ms.
#[test]
fn the_speakerphone_port_runs_both_streams() {
    use vigil::voice::call_port::{CallAudioPort, FRAME};
    use vigil::voice::speakerphone::DevicePort;
    if !null_device_present() {
        return;
    }
    let mut port = DevicePort::open(Some("null".into()), Some("null".into())).unwrap();
    for _ in 0..3 {
        port.play(&[1000; FRAME]);
    }
    let give_up = Instant::now() + Duration::from_secs(5);
    // The loudspeaker's stream has taken the three frames; the microphone's has given one.
    loop {
        let (speaker, mic) = port.buffered();
        if speaker == 0 && mic >= FRAME {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "the streams do not run: {speaker} samples for the loudspeaker, {mic} from the microphone"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // ALSA's null capture is silence.
    assert_eq!(port.capture(), [0; FRAME]);
    for _ in 0..50 {
        port.play(&[1000; FRAME]);
    }
    let (speaker, mic) = port.buffered();
    assert!(speaker <= 3 * FRAME && mic <= 3 * FRAME, "{speaker} {mic}");
    let missing = DevicePort::open(Some("hw:CARD=NoSuchCard,DEV=0".into()), None);
    assert!(missing.is_err());
}
