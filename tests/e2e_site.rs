//! The whole unit, assembled from a generated configuration, against every simulator:
//! pendant frames over the simulated radio, SCAIP and DC-09 receivers on loopback, the
//! cellular module on a pseudo-terminal with its network.

use std::time::Duration;

use tokio::sync::mpsc;
use vigil::core::{Output, Record};
use vigil::radio::frame::Event as Frame;
use vigil::runtime::appliance::{assemble, AudioChoice, Options};
use vigil::runtime::simsite::{SimSite, SiteOptions};
use vigil::runtime::Event;

async fn acknowledged(events: &mut mpsc::UnboundedReceiver<Event>, limit: Duration) -> Vec<Record> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut records = Vec::new();
    loop {
        let e = tokio::select! {
            e = events.recv() => e.expect("unit stopped"),
            _ = tokio::time::sleep_until(deadline) => panic!("no acknowledgement within {limit:?}: {records:#?}"),
        };
        if let Event::Output(_, Output::Persist(r)) = e {
            let done = matches!(r, Record::Acknowledged { .. });
            records.push(r);
            if done {
                return records;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pendant_press_reaches_the_scaip_centre_and_ip_outage_falls_back_to_sms() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    let built = assemble(
        &site.config,
        Options {
            audio: AudioChoice::Mute,
            modem_timing: vigil::modem::Timing::fast(),
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

    let mut pendant = site.pendant(0, 0).unwrap();
    let tries = tokio::task::spawn_blocking(move || {
        let t = pendant.send(Frame::Help).unwrap();
        (t, pendant)
    })
    .await
    .unwrap();
    let (tries, pendant) = tries;
    assert!(tries.is_some(), "the base acknowledges the pendant");
    let records = acknowledged(&mut events, Duration::from_secs(20)).await;
    let Record::Acknowledged { route, by, .. } = records.last().unwrap() else {
        unreachable!()
    };
    assert_eq!(route.0, 0, "SCAIP first: {by} {records:#?}");
    let got = site.scaip.received();
    assert_eq!(got.len(), 1);

    // The IP centre goes down: the next alarm gets through by SMS.
    site.ip_centre_down(true);
    let mut pendant = pendant;
    tokio::task::spawn_blocking(move || pendant.send(Frame::Help).unwrap())
        .await
        .unwrap();
    let records = acknowledged(&mut events, Duration::from_secs(40)).await;
    let Record::Acknowledged { route, .. } = records.last().unwrap() else {
        unreachable!()
    };
    assert_eq!(route.0, 2, "{records:#?}");
    let failed = records
        .iter()
        .filter(|r| matches!(r, Record::AttemptFailed { .. }))
        .count();
    assert_eq!(failed, 2, "SCAIP and DC-09 failed first: {records:#?}");

    stop.send(()).unwrap();
    let journal = task.await.unwrap();
    assert!(journal.recover().unwrap().is_empty());
}
