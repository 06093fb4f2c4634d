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

/// The module's sound card for a call (Quectel's USB audio class, `audio.call_device`), here
/// ALSA's null device: both streams run, the far end's audio arrives in whole frames, and a
/// prompt spoken into the call goes out as the unit says frames.
#[test]
fn the_modules_sound_card_carries_frames_and_speaks_a_prompt_into_the_call() {
    use vigil::voice::bridge::{CallAudio, CallBridge};
    use vigil::voice::call_port::{ModuleStream, FRAME};
    use vigil::voice::catalogue::PromptSet;
    if !null_device_present() {
        return;
    }
    let (prompts, problems) = PromptSet::load(&settings().sounds_dir, "en", 8000);
    assert!(problems.is_empty(), "{problems:?}");
    let mut card = CallBridge::open("null", CallAudio::new(prompts)).unwrap();
    // The card's capture runs: the far end's audio (the null device's silence) arrives.
    let give_up = Instant::now() + Duration::from_secs(5);
    let far = loop {
        if let Some(f) = card.take_frame() {
            break f;
        }
        assert!(Instant::now() < give_up, "the card's capture never ran");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(far, [0; FRAME]);
    assert_eq!(card.lost(), None);
    // A prompt goes out as the unit says its frames, and the card's playback takes them.
    card.announce(Prompt::HelpComing);
    assert!(card.is_announcing());
    let give_up = Instant::now() + Duration::from_secs(60);
    while card.is_announcing() && Instant::now() < give_up {
        card.say_frame(&[0; FRAME]);
        let _ = card.take_frame();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!card.is_announcing(), "the prompt never went into the call");
    let (from_module, to_module) = card.buffered();
    assert!(
        from_module <= 5 * FRAME && to_module <= 5 * FRAME,
        "{from_module} {to_module}"
    );
    // ALSA's null capture is silence: no tones in it.
    assert!(card.take_tones().is_empty());
    // The call runs at 8 kHz; a card that is not there is an error, not a panic.
    let wrong_rate = CallBridge::open("null", CallAudio::new(PromptSet::tones(16_000)));
    assert!(wrong_rate.is_err());
    let missing = CallBridge::open(
        "hw:CARD=NoSuchCard,DEV=0",
        CallAudio::new(PromptSet::tones(8000)),
    );
    let err = missing.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("NoSuchCard"), "{err}");
}

/// A cellular call on the module's sound card crosses to the speakerphone through the same
/// bridge as the voice port's: every 20 ms a frame of the far end reaches the loudspeaker and
/// one of the microphone goes to the card, until the call ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_on_the_modules_sound_card_goes_through_the_speakerphone() {
    use vigil::voice::bridge::{CallAudio, CallBridge};
    use vigil::voice::call_port::{bridge, BridgeEnd, FRAME};
    use vigil::voice::catalogue::PromptSet;
    use vigil::voice::sim_call::SimCallPort;
    if !null_device_present() {
        return;
    }
    let mut card = tokio::task::spawn_blocking(|| {
        CallBridge::open("null", CallAudio::new(PromptSet::tones(8000)))
    })
    .await
    .unwrap()
    .unwrap();
    let (mut speakerphone, heard_by_person) = SimCallPort::new(vec![1000; 8000]);
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let ends = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        stop_tx.send_replace(true);
    });
    let end = bridge(&mut card, &mut speakerphone, &mut stop).await;
    ends.await.unwrap();
    assert_eq!(end, BridgeEnd::Stopped);
    // About 30 frame periods: the loudspeaker got a frame in each (silence from the null card).
    let played = heard_by_person.lock().unwrap().clone();
    assert!(
        played.len() >= 20 * FRAME && played.len() <= 40 * FRAME,
        "{} samples reached the loudspeaker",
        played.len()
    );
    assert!(played.iter().all(|&s| s == 0));
    // What the microphone said went to the card, which plays it out: never more than 100 ms queued.
    let (_, to_module) = card.buffered();
    assert!(to_module <= 5 * FRAME, "{to_module}");
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
