//! A base that cannot hear its pendants says so: a transceiver that does not open is a
//! technical alarm at the receiving centre, retried until it opens, and then restored.

use std::net::UdpSocket;
use std::time::Duration;

use tokio::sync::mpsc;
use vigil::core::{AlarmCause, Output, Record, UnitFault};
use vigil::runtime::appliance::{assemble, AudioChoice, Options};
use vigil::runtime::simsite::{SimSite, SiteOptions};
use vigil::runtime::Event;

/// Waits for the acknowledgement of an alarm raised for `cause`.
async fn acknowledged(
    events: &mut mpsc::UnboundedReceiver<Event>,
    cause: AlarmCause,
    limit: Duration,
) -> Vec<Record> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut records = Vec::new();
    let mut alarm = None;
    loop {
        let e = tokio::select! {
            e = events.recv() => e.expect("unit stopped"),
            _ = tokio::time::sleep_until(deadline) => panic!("no acknowledged {cause:?} within {limit:?}: {records:#?}"),
        };
        if let Event::Output(_, Output::Persist(r)) = e {
            match &r {
                Record::Raised { alarm: a, .. } if a.cause == cause => alarm = Some(a.id),
                Record::Acknowledged { alarm: a, .. } if Some(*a) == alarm => {
                    records.push(r);
                    return records;
                }
                _ => {}
            }
            records.push(r);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_radio_that_does_not_open_is_a_technical_alarm_then_restored() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    // Something else holds the radio's port: the transceiver cannot open.
    let squatter = UdpSocket::bind(site.radio).unwrap();
    let built = assemble(
        &site.config,
        Options {
            audio: AudioChoice::Mute,
            modem_timing: vigil::modem::Timing::fast(),
        },
    )
    .await
    .unwrap();
    let radio = built.parts.radio.clone();
    let mut unit = built.unit;
    let mut events = unit.events();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(unit.run(async {
        let _ = stopped.await;
    }));

    acknowledged(
        &mut events,
        AlarmCause::Fault(UnitFault::Radio),
        Duration::from_secs(60),
    )
    .await;
    assert!(
        !site.scaip.received().is_empty(),
        "the radio fault reached the centre"
    );
    assert!(radio.fault().is_some(), "status shows the radio fault");
    assert!(radio.get().is_none());

    // The port is free again: the unit opens its radio on a retry and reports the restore.
    drop(squatter);
    acknowledged(
        &mut events,
        AlarmCause::FaultCleared(UnitFault::Radio),
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(radio.fault(), None);
    assert!(radio.get().is_some(), "the radio works again");

    let _ = stop.send(());
    task.await.unwrap();
    drop(built.parts);
}
