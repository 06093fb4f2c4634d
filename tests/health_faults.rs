//! Health watches turn a part that stays broken into a technical alarm: the centre hears of
//! it, never only a log line.

use std::time::Duration;

use vigil::core::{AlarmCause, Output, Record, UnitFault};
use vigil::runtime::appliance::{assemble, AudioChoice, Options};
use vigil::runtime::Event;

/// The shipped example, with its data in `dir` and the modem at a path where none is.
fn site_without_modem(dir: &std::path::Path) -> vigil::config::Config {
    let example = include_str!("../config.toml");
    let text = example
        .replace(
            "data_dir = \"/var/lib/vigil\"",
            &format!("data_dir = {:?}", dir.join("data")),
        )
        .replace(
            "port = \"/dev/vigil-modem\"",
            &format!("port = {:?}", dir.join("no-modem")),
        );
    assert_ne!(text, example);
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    vigil::config::load(&path).unwrap()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_modem_absent_for_five_minutes_is_a_technical_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let config = site_without_modem(dir.path());
    let built = assemble(
        &config,
        Options {
            audio: AudioChoice::Mute,
            modem_timing: vigil::modem::Timing::real(),
        },
    )
    .await
    .unwrap();
    let mut unit = built.unit;
    let mut events = unit.events();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(unit.run(async {
        let _ = stopped.await;
    }));
    let raised = |e: &Event| match e {
        Event::Output(_, Output::Persist(Record::Raised { alarm, .. })) => Some(alarm.cause),
        _ => None,
    };
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(10 * 60);
    let at = loop {
        let e = tokio::select! {
            e = events.recv() => e.expect("unit stopped"),
            _ = tokio::time::sleep_until(deadline) => panic!("no modem fault within 10 minutes"),
        };
        if raised(&e) == Some(AlarmCause::Fault(UnitFault::Modem)) {
            break tokio::time::Instant::now();
        }
    };
    // Not at the first failed open: only once the grace time has passed.
    assert!(at - started >= Duration::from_secs(5 * 60));
    stop.send(()).unwrap();
    drop(task.await.unwrap());
    drop(built.parts);
}

/// Without working audio the person hears no prompt: the centre is told at start.
#[cfg(not(feature = "alsa"))]
#[tokio::test]
async fn a_unit_that_cannot_speak_reports_its_audio_lost() {
    let dir = tempfile::tempdir().unwrap();
    let config = site_without_modem(dir.path());
    let built = assemble(
        &config,
        Options {
            // A build without ALSA has no audio devices to open.
            audio: AudioChoice::Devices,
            modem_timing: vigil::modem::Timing::real(),
        },
    )
    .await
    .unwrap();
    let mut unit = built.unit;
    let mut events = unit.events();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(unit.run(async {
        let _ = stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let e = tokio::select! {
            e = events.recv() => e.expect("unit stopped"),
            _ = tokio::time::sleep_until(deadline) => panic!("audio loss not reported"),
        };
        if let Event::Output(_, Output::Persist(Record::Raised { alarm, .. })) = &e {
            if alarm.cause == AlarmCause::Fault(UnitFault::Audio) {
                break;
            }
        }
    }
    stop.send(()).unwrap();
    drop(task.await.unwrap());
    drop(built.parts);
}
