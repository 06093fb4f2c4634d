//! The runtime loop: outputs carried out in order, the journal written before a delivery
//! starts, slow routes abandoned, and open alarms resumed after a restart.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::sync::mpsc;
use vigil::core::*;
use vigil::journal::Journal;
use vigil::runtime::control;
use vigil::runtime::*;

/// A route that checks the journal already holds the alarm, then answers as scripted.
struct Receiver {
    journal: PathBuf,
    answer: Option<DeliveryResult>,
    seen: Arc<Mutex<Vec<(AlarmRef, u32, bool)>>>,
}

impl Transport for Receiver {
    fn deliver(&self, d: Delivery) -> DeliveryFuture {
        let conn = rusqlite_free_check(&self.journal, d.alarm.id);
        self.seen
            .lock()
            .unwrap()
            .push((d.alarm.reference.clone(), d.attempt, conn));
        let answer = self.answer.clone();
        Box::pin(async move {
            match answer {
                Some(a) => a,
                None => std::future::pending().await,
            }
        })
    }
}

/// Whether the journal on disk (read through a second connection) holds the alarm.
fn rusqlite_free_check(path: &std::path::Path, id: AlarmId) -> bool {
    let j = Journal::open(path).unwrap();
    j.recover().unwrap().iter().any(|r| r.alarm.id == id)
}

#[derive(Default)]
struct Quiet {
    played: Mutex<Vec<Prompt>>,
    acks: Mutex<Vec<(DeviceId, u32)>>,
}
impl VoiceOut for Quiet {
    fn play(&self, p: Prompt) {
        self.played.lock().unwrap().push(p);
    }
    fn listen(&self, _: AlarmId, _: Timestamp, _: mpsc::Sender<Input>) {}
    fn stop_listening(&self) {}
}
impl PendantAcks for Quiet {
    fn ack(&self, d: DeviceId, c: u32) {
        self.acks.lock().unwrap().push((d, c));
    }
    fn help_coming(&self, _: DeviceId, _: u32) {}
}
impl CallControl for Quiet {
    fn start_call(&self, _: AlarmId, _: String, _: mpsc::Sender<Input>) {}
    fn auto_answer(&self, _: Timestamp) {}
}

fn help() -> Input {
    Input::Radio(RadioEvent {
        device: DeviceId(0xA001),
        counter: 7,
        kind: RadioEventKind::Help,
        rssi_dbm: None,
    })
}

async fn until_acked(events: &mut mpsc::UnboundedReceiver<Event>) -> Vec<Event> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let e = tokio::select! {
            e = events.recv() => e.expect("unit stopped"),
            _ = tokio::time::sleep_until(deadline) => panic!("not acknowledged: {seen:#?}"),
        };
        let done = matches!(
            e,
            Event::Output(_, Output::Persist(Record::Acknowledged { .. }))
        );
        seen.push(e);
        if done {
            return seen;
        }
    }
}

#[tokio::test]
async fn alarm_is_on_disk_before_its_first_delivery_and_a_hung_route_is_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut s = settings();
    s.routes[0].attempt_timeout = Duration::from_millis(300);
    let (core, journal) = restore(s, Journal::open(&path).unwrap(), Timestamp::now()).unwrap();
    let quiet = Arc::new(Quiet::default());
    let adapters = Adapters {
        status: Vec::new(),
        routes: vec![
            Arc::new(Receiver {
                journal: path.clone(),
                answer: None,
                seen: seen.clone(),
            }),
            Arc::new(Receiver {
                journal: path.clone(),
                answer: Some(acked("sms responder")),
                seen: seen.clone(),
            }),
        ],
        voice: quiet.clone(),
        pendants: quiet.clone(),
        calls: quiet.clone(),
    };
    let mut unit = Unit::new(core, journal, adapters, Arc::new(SystemClock));
    let mut events = unit.events();
    let inputs = unit.inputs();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(unit.run(async {
        let _ = stopped.await;
    }));
    inputs.send(help()).await.unwrap();
    let timeline = until_acked(&mut events).await;
    stop.send(()).unwrap();
    let journal = task.await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter().all(|(_, _, on_disk)| *on_disk),
        "a delivery started before the alarm was on disk"
    );
    assert_eq!(seen[0].0, seen[1].0, "one reference across routes");
    assert!(timeline.iter().any(|e| matches!(
        e,
        Event::Output(_, Output::AbortDelivery { attempt: 1, .. })
    )));
    assert_eq!(
        quiet.acks.lock().unwrap().as_slice(),
        &[(DeviceId(0xA001), 7)]
    );
    assert!(quiet.played.lock().unwrap().contains(&Prompt::HelpComing));
    assert!(journal.recover().unwrap().is_empty());
    let log = journal.timeline(20).unwrap();
    assert!(
        log.iter()
            .any(|e| e.text.contains("failed: no result within 300ms")),
        "{log:#?}"
    );
}

#[tokio::test]
async fn an_alarm_left_open_by_a_stop_is_delivered_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let quiet = Arc::new(Quiet::default());
    let adapters = |answer: Option<DeliveryResult>| Adapters {
        status: Vec::new(),
        routes: vec![Arc::new(Receiver {
            journal: path.clone(),
            answer,
            seen: seen.clone(),
        }) as Arc<dyn Transport>],
        voice: quiet.clone(),
        pendants: quiet.clone(),
        calls: quiet.clone(),
    };
    // First life: every route hangs; stop mid-escalation.
    let (core, journal) =
        restore(settings(), Journal::open(&path).unwrap(), Timestamp::now()).unwrap();
    let unit = Unit::new(core, journal, adapters(None), Arc::new(SystemClock));
    let inputs = unit.inputs();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(unit.run(async {
        let _ = stopped.await;
    }));
    inputs.send(help()).await.unwrap();
    while seen.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    drop(task.await.unwrap());
    let reference = seen.lock().unwrap()[0].0.clone();

    // Second life: the receiver is back.
    let (core, journal) =
        restore(settings(), Journal::open(&path).unwrap(), Timestamp::now()).unwrap();
    let mut unit = Unit::new(
        core,
        journal,
        adapters(Some(acked("centre"))),
        Arc::new(SystemClock),
    );
    let mut events = unit.events();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(unit.run(async {
        let _ = stopped.await;
    }));
    until_acked(&mut events).await;
    stop.send(()).unwrap();
    let journal = task.await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.last().unwrap().0,
        reference,
        "same reference after restart"
    );
    assert_eq!(seen.last().unwrap().1, 2, "attempt numbers continue");
    assert!(journal.recover().unwrap().is_empty());
}

#[tokio::test]
async fn status_and_test_call_over_the_control_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let quiet = Arc::new(Quiet::default());
    let (core, journal) =
        restore(settings(), Journal::open(&path).unwrap(), Timestamp::now()).unwrap();
    let adapters = Adapters {
        status: Vec::new(),
        // A receiver that never answers: alarms stay open for the status to show.
        routes: vec![Arc::new(Receiver {
            journal: path.clone(),
            answer: None,
            seen: seen.clone(),
        })],
        voice: quiet.clone(),
        pendants: quiet.clone(),
        calls: quiet.clone(),
    };
    let unit = Unit::new(core, journal, adapters, Arc::new(SystemClock));
    let socket = control::serve(&control::socket_path(dir.path()), unit.control()).unwrap();
    let inputs = unit.inputs();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(unit.run(async {
        let _ = stopped.await;
    }));
    inputs.send(help()).await.unwrap();

    let status = control::request(dir.path(), "status").await.unwrap();
    assert!(status.contains("open alarms: 1"), "{status}");
    assert!(status.contains(" help button pressed, raised "), "{status}");
    assert!(status.contains("0000A001 personal"), "{status}");
    assert!(status.contains("last test:   none yet"), "{status}");

    let answer = control::request(dir.path(), "test-call").await.unwrap();
    assert!(answer.contains("test report raised"), "{answer}");
    let status = control::request(dir.path(), "status").await.unwrap();
    assert!(status.contains("open alarms: 2"), "{status}");
    assert!(status.contains("test call, raised"), "{status}");
    assert!(
        status.contains("(open)"),
        "the last test shows as open: {status}"
    );

    let refused = control::request(dir.path(), "reboot").await.unwrap();
    assert!(refused.contains("unknown command `reboot`"), "{refused}");

    stop.send(()).unwrap();
    task.await.unwrap();
    socket.abort();
}

#[tokio::test]
async fn a_journal_that_cannot_write_does_not_stop_help_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (core, journal) =
        restore(settings(), Journal::open(&path).unwrap(), Timestamp::now()).unwrap();
    // The disk fails from now on.
    journal.refuse_writes(true).unwrap();
    let quiet = Arc::new(Quiet::default());
    let adapters = Adapters {
        status: Vec::new(),
        routes: vec![Arc::new(Receiver {
            journal: path.clone(),
            answer: Some(acked("centre")),
            seen: seen.clone(),
        }) as Arc<dyn Transport>],
        voice: quiet.clone(),
        pendants: quiet.clone(),
        calls: quiet.clone(),
    };
    let mut unit = Unit::new(core, journal, adapters, Arc::new(SystemClock));
    let mut events = unit.events();
    let inputs = unit.inputs();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(unit.run(async {
        let _ = stopped.await;
    }));
    inputs.send(help()).await.unwrap();
    // Help is delivered from memory, and the storage failure goes to the centre as well.
    let mut helped = false;
    let mut reported = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(helped && reported) {
        let e = tokio::select! {
            e = events.recv() => e.expect("unit stopped"),
            _ = tokio::time::sleep_until(deadline) => {
                panic!("help delivered: {helped}, storage failure reported: {reported}")
            }
        };
        if let Event::Output(_, Output::Deliver(d)) = &e {
            helped |= d.alarm.cause == AlarmCause::Help;
            reported |= d.alarm.cause == AlarmCause::Fault(UnitFault::Storage);
        }
    }
    stop.send(()).unwrap();
    drop(task.await.unwrap());
    assert!(seen.lock().unwrap().iter().any(|(_, _, on_disk)| !on_disk));
}
