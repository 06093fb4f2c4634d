//! The voice side end to end on the simulated speaker and microphone: which prompts played,
//! in which language and order, what a more urgent prompt cut, quiet hours, volume, the
//! device rate, listening windows (speech, silence, the unit's own echo, dead and missing
//! microphones) and a missing speaker.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use vigil::config::QuietHours;
use vigil::core::{Heard, Prompt, Timestamp};
use vigil::voice::catalogue;
use vigil::voice::pcm;
use vigil::voice::sim::{MicState, SimAudio, SimClock, SimConfig};
use vigil::voice::{Voice, VoiceError, VoiceEvent, VoiceSettings};

/// 2026-11-25 12:00:00 UTC.
const NOON: Timestamp = Timestamp::from_secs(1_795_608_000);

fn sounds() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sounds")
}

fn settings(language: &str, volume: u8, quiet_hours: Option<QuietHours>) -> VoiceSettings {
    VoiceSettings {
        sounds_dir: sounds(),
        language: language.to_string(),
        volume,
        quiet_hours,
    }
}

fn unit(
    settings: &VoiceSettings,
    config: SimConfig,
    start: Timestamp,
) -> (Voice, SimAudio, Arc<SimClock>) {
    let clock = Arc::new(SimClock::new(start, 0));
    let sim = SimAudio::manual(config, clock.clone());
    let voice = Voice::open(settings, Box::new(sim.clone()), sim.clock()).unwrap();
    (voice, sim, clock)
}

/// Devices at the prompts' own rate: tests other than the resampling one stay fast.
fn at_16k() -> SimConfig {
    SimConfig {
        output_rate: 16_000,
        ..SimConfig::default()
    }
}

fn secs(s: f32) -> Duration {
    Duration::from_secs_f32(s)
}

#[test]
fn an_alarm_prompt_cuts_a_warning_and_the_files_and_timeline_show_it() {
    let out = tempfile::tempdir().unwrap();
    let config = SimConfig {
        out_dir: Some(out.path().to_path_buf()),
        ..SimConfig::default()
    };
    assert_eq!(config.output_rate, 48_000);
    let (voice, sim, _) = unit(&settings("de", 80, None), config, NOON);
    voice.play(Prompt::MainsLost);
    sim.advance(secs(0.5));
    voice.play(Prompt::FallDetected);
    voice.play(Prompt::CallingCentre);
    sim.advance(secs(25.0));

    let de = |p| (p, "de".to_string());
    assert_eq!(
        sim.played(),
        [
            de(Prompt::MainsLost),
            de(Prompt::FallDetected),
            de(Prompt::CallingCentre),
            de(Prompt::MainsLost)
        ]
    );
    let timeline = sim.timeline();
    let cut = timeline
        .iter()
        .find(|e| matches!(e.event, VoiceEvent::Cut { .. }))
        .expect("a cut");
    assert_eq!(
        cut.event,
        VoiceEvent::Cut {
            prompt: Prompt::MainsLost,
            by: Prompt::FallDetected
        }
    );
    assert_eq!(cut.at, Timestamp(NOON.0 + 500));

    let files = sim.files();
    assert_eq!(files.len(), 4);
    assert!(files[0].cut && !files[1].cut && !files[3].cut);
    // The cut warning's file holds the half second that was played, at the device's rate.
    assert_eq!(files[0].audio.rate, 48_000);
    assert_eq!(files[0].audio.samples.len(), 24_000);
    // The fall prompt played in full: its 16 kHz file resampled to 48 kHz.
    let source = catalogue::load_prompt(&sounds(), "de", Prompt::FallDetected).unwrap();
    assert_eq!(files[1].audio.samples.len(), source.samples.len() * 3);
    // Written to disk as WAV files named after order, language and prompt.
    let written = pcm::read_wav(files[0].path.as_ref().unwrap()).unwrap();
    assert_eq!(written.samples.len(), 24_000);
    assert!(out.path().join("001-de-mains_lost-cut.wav").exists());
    assert!(out.path().join("002-de-fall_detected.wav").exists());
    let text = std::fs::read_to_string(out.path().join("timeline.txt")).unwrap();
    assert!(
        text.contains("12:00:00.500Z cut mains_lost by fall_detected"),
        "{text}"
    );
    assert_eq!(text, sim.timeline_text());
    assert!(sim.problems().is_empty());
}

#[test]
fn warnings_wait_for_quiet_hours_to_end_and_alarm_prompts_do_not() {
    let quiet = QuietHours {
        start_min: 22 * 60,
        end_min: 7 * 60,
    };
    // 23:30 local time (UTC here).
    let (voice, sim, clock) = unit(
        &settings("sv", 60, Some(quiet)),
        at_16k(),
        Timestamp(NOON.0 + 11 * 3_600_000 + 30 * 60_000),
    );
    voice.play(Prompt::PendantBatteryLow);
    sim.advance(secs(5.0));
    assert!(sim.played().is_empty());
    assert!(sim.timeline().iter().any(|e| e.event
        == VoiceEvent::Deferred {
            prompt: Prompt::PendantBatteryLow
        }));
    voice.play(Prompt::AlarmRaised);
    sim.advance(secs(5.0));
    assert_eq!(sim.played(), [(Prompt::AlarmRaised, "sv".to_string())]);
    // 07:00 next morning.
    clock.advance(Duration::from_secs(7 * 3600 + 30 * 60));
    sim.advance(secs(6.0));
    assert_eq!(
        sim.played()[1],
        (Prompt::PendantBatteryLow, "sv".to_string())
    );
}

#[test]
fn volume_follows_the_configuration() {
    let level = |volume| {
        let (voice, sim, _) = unit(&settings("en", volume, None), at_16k(), NOON);
        voice.play(Prompt::NoNetwork);
        sim.advance(secs(8.0));
        pcm::rms_dbfs(&sim.files()[0].audio.samples)
    };
    let loud = level(100);
    let quiet = level(40);
    assert!((loud - quiet - 24.0).abs() < 0.2, "{loud} {quiet}");
}

#[tokio::test]
async fn speech_ends_the_window_early_and_the_units_own_prompt_does_not() {
    let (voice, sim, _) = unit(&settings("en", 100, None), at_16k(), NOON);
    let until = Timestamp(NOON.0 + 20_000);
    // The pre-alarm prompt plays into the window; the microphone hears it (echo).
    voice.play(Prompt::PreAlarm);
    let verdict = voice.listen(until);
    sim.advance(secs(8.0));
    // A person answers: a Swedish prompt stands in for a real voice.
    sim.say(&catalogue::load_prompt(&sounds(), "sv", Prompt::HeardYou).unwrap());
    sim.advance(secs(4.0));
    assert_eq!(verdict.await, Heard::Speech);
    let heard_at = sim
        .timeline()
        .iter()
        .find(|e| matches!(e.event, VoiceEvent::Heard { .. }))
        .map(|e| e.at)
        .unwrap();
    assert!(heard_at > Timestamp(NOON.0 + 8_000) && heard_at < Timestamp(NOON.0 + 12_000));
}

#[tokio::test]
async fn a_window_with_only_the_units_prompts_is_silence() {
    let (voice, sim, _) = unit(&settings("en", 100, None), at_16k(), NOON);
    voice.play(Prompt::FallDetected);
    voice.play(Prompt::PreAlarm);
    let verdict = voice.listen(Timestamp(NOON.0 + 15_000));
    sim.advance(secs(16.0));
    assert_eq!(verdict.await, Heard::Silence);
    assert_eq!(sim.played().len(), 2);
}

#[tokio::test]
async fn stop_listening_ends_the_window_with_what_was_heard() {
    let (voice, sim, _) = unit(&settings("en", 100, None), at_16k(), NOON);
    let verdict = voice.listen(Timestamp(NOON.0 + 30_000));
    sim.advance(secs(2.0));
    voice.stop_listening();
    assert_eq!(verdict.await, Heard::Silence);
    sim.advance(secs(0.1));
    assert!(sim.timeline().iter().any(|e| e.event
        == VoiceEvent::Heard {
            heard: Heard::Silence
        }
        && e.at < Timestamp(NOON.0 + 3_000)));
}

#[tokio::test]
async fn dead_failing_and_missing_microphones_are_unclear() {
    for mic in [MicState::Dead, MicState::Failing, MicState::Absent] {
        let config = SimConfig { mic, ..at_16k() };
        let (voice, sim, _) = unit(&settings("en", 100, None), config, NOON);
        let verdict = voice.listen(Timestamp(NOON.0 + 5_000));
        sim.advance(secs(6.0));
        assert_eq!(verdict.await, Heard::Unclear, "{mic:?}");
        assert_eq!(voice.fault().is_some(), mic == MicState::Absent, "{mic:?}");
        // Prompts still play.
        voice.play(Prompt::HelpComing);
        sim.advance(secs(1.0));
        assert_eq!(sim.played().len(), 1);
    }
}

#[tokio::test]
async fn a_missing_speaker_is_a_clear_error_and_the_voice_goes_mute_not_down() {
    let config = SimConfig {
        speaker_present: false,
        ..at_16k()
    };
    let clock = Arc::new(SimClock::new(NOON, 0));
    let sim = SimAudio::manual(config, clock);
    let err = Voice::open(
        &settings("en", 100, None),
        Box::new(sim.clone()),
        sim.clock(),
    )
    .err()
    .expect("no speaker");
    assert!(matches!(
        err,
        VoiceError::NoDevice {
            direction: "output",
            ..
        }
    ));
    assert!(
        err.to_string().starts_with("no output audio device"),
        "{err}"
    );

    let voice = Voice::open_or_mute(
        &settings("en", 100, None),
        Box::new(sim.clone()),
        sim.clock(),
    );
    assert!(voice.fault().unwrap().contains("no output audio device"));
    voice.play(Prompt::AlarmRaised);
    assert_eq!(
        voice.listen(Timestamp(NOON.0 + 5_000)).await,
        Heard::Unclear
    );
}

#[test]
fn a_missing_language_falls_back_to_english() {
    let (voice, sim, _) = unit(&settings("fi", 100, None), at_16k(), NOON);
    voice.play(Prompt::Cancelled);
    sim.advance(secs(4.0));
    assert_eq!(sim.played(), [(Prompt::Cancelled, "en".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_time_simulation_plays_on_the_wall_clock_for_the_demo() {
    let sim = SimAudio::real_time(at_16k());
    let voice = Voice::open(
        &settings("en", 100, None),
        Box::new(sim.clone()),
        sim.clock(),
    )
    .unwrap();
    let start = Timestamp::now();
    voice.play(Prompt::Connected);
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    while sim.files().is_empty() && std::time::Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let files = sim.files();
    assert_eq!(files.len(), 1, "the prompt never finished");
    let source = catalogue::load_prompt(&sounds(), "en", Prompt::Connected).unwrap();
    assert_eq!(files[0].audio.samples.len(), source.samples.len());
    assert!(!files[0].cut);
    assert!(files[0].started >= start);
}
