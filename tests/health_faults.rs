//! Health watches turn a part that stays broken into a technical alarm: the centre hears of
//! it, never only a log line.

use std::time::Duration;

use vigil::core::{AlarmCause, Output, Record, UnitFault};
use vigil::runtime::appliance::{assemble, AudioChoice, Options};
use vigil::runtime::Event;

/// The shipped example, with its data in `dir`, the modem at a path where none is and the IP
/// centre unreachable.
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
    let mut config = vigil::config::load(&path).unwrap();
    // The IP centre on loopback where nothing answers: no name to look up (a sandbox has no
    // DNS, and a lookup that hangs would only slow the test down).
    for route in &mut config.routes {
        match &mut route.transport {
            vigil::config::Transport::Scaip(r) => r.proxy = "127.0.0.1:9".into(),
            vigil::config::Transport::Dc09(r) => r.receiver = "127.0.0.1:9".into(),
            _ => {}
        }
    }
    config
}

/// A running unit for `config` with `audio`, and the events it emits.
struct Running {
    events: tokio::sync::mpsc::UnboundedReceiver<Event>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<vigil::journal::Journal>,
    parts: vigil::runtime::appliance::Parts,
}

async fn run(config: &vigil::config::Config, audio: AudioChoice) -> Running {
    let built = assemble(
        config,
        Options {
            audio,
            modem_timing: vigil::modem::Timing::real(),
        },
    )
    .await
    .unwrap();
    let mut unit = built.unit;
    let events = unit.events();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(unit.run(async {
        let _ = stopped.await;
    }));
    Running {
        events,
        stop,
        task,
        parts: built.parts,
    }
}

impl Running {
    /// Waits until an alarm of `cause` is raised, at most `limit`; when it was.
    async fn raised(&mut self, cause: AlarmCause, limit: Duration) -> tokio::time::Instant {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let e = tokio::select! {
                e = self.events.recv() => e.expect("unit stopped"),
                _ = tokio::time::sleep_until(deadline) => panic!("no {cause:?} within {limit:?}"),
            };
            if let Event::Output(_, Output::Persist(Record::Raised { alarm, .. })) = &e {
                if alarm.cause == cause {
                    return tokio::time::Instant::now();
                }
            }
        }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        drop(self.task.await.unwrap());
        drop(self.parts);
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_modem_absent_for_five_minutes_is_a_technical_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let mut unit = run(&site_without_modem(dir.path()), AudioChoice::Mute).await;
    let started = tokio::time::Instant::now();
    let at = unit
        .raised(
            AlarmCause::Fault(UnitFault::Modem),
            Duration::from_secs(10 * 60),
        )
        .await;
    // Not at the first failed open: only once the grace time has passed.
    assert!(at - started >= Duration::from_secs(5 * 60));
    unit.stop().await;
}

/// Without working audio the person hears no prompt: the centre is told at start.
#[cfg(not(feature = "alsa"))]
#[tokio::test]
async fn a_unit_that_cannot_speak_reports_its_audio_lost() {
    let dir = tempfile::tempdir().unwrap();
    // A build without ALSA has no audio devices to open.
    let mut unit = run(&site_without_modem(dir.path()), AudioChoice::Devices).await;
    unit.raised(AlarmCause::Fault(UnitFault::Audio), Duration::from_secs(20))
        .await;
    unit.stop().await;
}

/// A SCAIP route that cannot register (here its proxy is nowhere to be found) for five
/// minutes is a technical alarm: the centre hears of it by another route, not only the log.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_scaip_route_unregistered_for_five_minutes_is_a_technical_alarm() {
    let dir = tempfile::tempdir().unwrap();
    // Its proxy never answers.
    let mut unit = run(&site_without_modem(dir.path()), AudioChoice::Mute).await;
    let started = tokio::time::Instant::now();
    let at = unit
        .raised(
            AlarmCause::Fault(UnitFault::Registration),
            Duration::from_secs(10 * 60),
        )
        .await;
    assert!(
        at - started >= Duration::from_secs(5 * 60),
        "not before the grace time: after {:?}",
        at - started
    );
    unit.stop().await;
}
