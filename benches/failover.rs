//! Failover, measured on the simulated site with the unit assembled in-process (as `vigil
//! run` builds it): how long a press takes to be acknowledged when the first route (SCAIP)
//! dies silently, and then when it is already known to be down. Printed, never asserted.
//! `cargo bench --bench failover`.
//!
//! The SCAIP centre answers nothing (its proxy "dead"); DC-09 acknowledges. The first press
//! waits out SCAIP's answer timeout (3 s on the site) before DC-09; the core then knows SCAIP
//! is down, so later presses go to DC-09 first and SCAIP only last in the round.
//!
//! Then every route goes down (IP centre silent, SMS gateway silent, nobody answers the
//! phone): a press goes round every route and waits for the next round; the IP centre comes
//! back, and the figure is from its return to the acknowledgement. Last, the registrar forgets
//! the unit's binding (a restart): the next press must be acknowledged over SCAIP, with no
//! reset and no second copy.

use std::time::{Duration, Instant};

use vigil::core::{Output, Record};
use vigil::radio::frame::Event as Frame;
use vigil::runtime::appliance::{assemble, AudioChoice, Options};
use vigil::runtime::simsite::{SimSite, SiteOptions};
use vigil::runtime::Event;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("dir");
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .expect("site");
    site.scaip
        .set_default(vigil::centre::receiver::scaip::ScaipAnswer::silent());
    let built = assemble(
        &site.config,
        Options {
            audio: AudioChoice::Mute,
            modem_timing: vigil::modem::Timing::fast(),
        },
    )
    .await
    .expect("assemble");
    let mut unit = built.unit;
    let mut events = unit.events();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(unit.run(async {
        let _ = stopped.await;
    }));
    // Let the routes register before the first press.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut pendant = site.pendant(0, 0).expect("pendant");
    let mut figures = Vec::new();
    for n in 0..4 {
        let t0 = Instant::now();
        tokio::task::block_in_place(|| pendant.send(Frame::Help)).expect("press");
        let by = loop {
            match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
                Ok(Some(Event::Output(_, Output::Persist(Record::Acknowledged { route, .. })))) => {
                    break route
                }
                Ok(Some(_)) => {}
                other => panic!("no acknowledgement: {other:?}"),
            }
        };
        figures.push((n, t0.elapsed(), by));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let names: Vec<String> = site.config.routes.iter().map(|r| r.name.clone()).collect();
    println!(
        "failover on the simulated site: SCAIP proxy silent (answer timeout 3 s), DC-09 answering"
    );
    for (n, took, by) in figures {
        let when = if n == 0 {
            "first press, SCAIP dying silently"
        } else {
            "later press, SCAIP known to be down"
        };
        println!(
            "  {when:<36} acknowledged via {:<10} after {:>7.1} ms",
            names.get(by.0).map_or("?", String::as_str),
            took.as_secs_f64() * 1000.0
        );
    }

    // Every route down, then the IP centre back.
    site.ip_centre_down(true);
    site.sms_gateway_silent(true);
    site.cellular.network.add(
        vigil::runtime::simsite::numbers::DAUGHTER,
        vigil::modem::network::Party::Person(vigil::modem::network::Person {
            pickup: vigil::modem::network::Pickup::NoAnswer,
            key: None,
            drop_after: None,
        }),
    );
    tokio::task::block_in_place(|| pendant.send(Frame::Help)).expect("press");
    let t_press = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(300), events.recv()).await {
            Ok(Some(Event::Output(_, Output::Play(vigil::core::Prompt::StillTrying)))) => break,
            Ok(Some(Event::Output(_, Output::Persist(Record::Acknowledged { .. })))) => {
                panic!("acknowledged with every route down")
            }
            Ok(Some(_)) => {}
            other => panic!("the round did not end: {other:?}"),
        }
    }
    let round = t_press.elapsed();
    site.ip_centre_down(false);
    site.scaip
        .set_default(vigil::centre::receiver::scaip::ScaipAnswer::silent());
    let t_back = Instant::now();
    let back_by = loop {
        match tokio::time::timeout(Duration::from_secs(300), events.recv()).await {
            Ok(Some(Event::Output(_, Output::Persist(Record::Acknowledged { route, .. })))) => {
                break route
            }
            Ok(Some(_)) => {}
            other => panic!("no acknowledgement after the centre came back: {other:?}"),
        }
    };
    let after_return = t_back.elapsed();
    site.sms_gateway_silent(false);

    // The registrar forgets the binding; the SCAIP centre answers again.
    site.scaip
        .set_default(vigil::centre::receiver::scaip::ScaipAnswer::snu(0));
    tokio::time::sleep(Duration::from_secs(6)).await;
    let before = site.scaip.received().len();
    site.scaip.forget_bindings();
    tokio::task::block_in_place(|| pendant.send(Frame::Help)).expect("press");
    let t_restart = Instant::now();
    let restart_by = loop {
        match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
            Ok(Some(Event::Output(_, Output::Persist(Record::Acknowledged { route, .. })))) => {
                break route
            }
            Ok(Some(_)) => {}
            other => panic!("no acknowledgement after the registrar restart: {other:?}"),
        }
    };
    let after_restart = t_restart.elapsed();
    let sent: Vec<_> = site.scaip.received()[before..]
        .iter()
        .filter_map(|r| r.mrq.clone())
        .collect();
    let resets = sent
        .iter()
        .filter(|m| m.mty == Some(vigil::centre::scaip::MessageType::Reset))
        .count();
    println!(
        "  {:<36} acknowledged via {:<10} {:>7.1} ms after the IP centre came back (round {:.1} s)",
        "every route down, then IP back",
        names.get(back_by.0).map_or("?", String::as_str),
        after_return.as_secs_f64() * 1000.0,
        round.as_secs_f64()
    );
    println!(
        "  {:<36} acknowledged via {:<10} after {:>7.1} ms ({} copy at the centre, {} reset(s))",
        "registrar restart, next press",
        names.get(restart_by.0).map_or("?", String::as_str),
        after_restart.as_secs_f64() * 1000.0,
        sent.len(),
        resets
    );
    let _ = stop.send(());
    let _ = task.await;
}
