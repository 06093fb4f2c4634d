//! The radio link end to end on loopback: the simulated pendant (library and `vigil pendant`)
//! sends real encrypted frames to the simulated radio; the link authenticates them, raises
//! events, acknowledges under the duty-cycle budget, pairs, and detects jamming.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use tokio::time::timeout;
use vigil::config::{Band, Pendant};
use vigil::core::{DeviceId, DeviceKind, Input, Output, RadioEventKind};
use vigil::radio::driver::sim::{SimChannel, SimPeer, SimRadio};
use vigil::radio::frame::{Event, Frame, FrameCipher, FrameType, PendantKey};
use vigil::radio::link::{LinkConfig, PairingReport, RadioLink};
use vigil::radio::pairing::PendantPairing;
use vigil::radio::store::MemoryStore;

const KEY_HEX: &str = "6b1f0c2e9a4d7f3b8c5e1a2d4f6b8c0e1a3c5e7f9b1d3f5a7c9e1b3d5f7a9c1e";
const ID: DeviceId = DeviceId(0x00A1B2C3);
const WAIT: Duration = Duration::from_secs(10);

fn key() -> PendantKey {
    PendantKey::from_hex(KEY_HEX).unwrap()
}

fn pendant(id: DeviceId, key: &PendantKey) -> Pendant {
    Pendant {
        id,
        kind: DeviceKind::Personal,
        key: Some((*key.as_bytes()).into()),
        location: "Anna".into(),
        zone: 1,
    }
}

fn config(jamming_after: Duration) -> LinkConfig {
    LinkConfig {
        band: Band::Eu869,
        jamming_rssi_dbm: -90,
        jamming_after,
        pairing_min_rssi: -60,
    }
}

fn link(pendants: &[Pendant], channel: SimChannel) -> (RadioLink, SocketAddr) {
    let radio = SimRadio::bind(SocketAddr::from(([127, 0, 0, 1], 0)), channel).unwrap();
    let addr = radio.local_addr().unwrap();
    let link = RadioLink::start(
        radio,
        MemoryStore::new(),
        pendants,
        config(Duration::from_secs(30)),
    )
    .unwrap();
    (link, addr)
}

/// Waits for the next radio event, skipping nothing: any other input fails the test.
async fn next_event(link: &mut RadioLink) -> vigil::core::RadioEvent {
    match timeout(WAIT, link.recv()).await {
        Ok(Some(Input::Radio(e))) => e,
        other => panic!("expected a radio event, got {other:?}"),
    }
}

async fn nothing_for(link: &mut RadioLink, d: Duration) {
    if let Ok(Some(i)) = timeout(d, link.recv()).await {
        panic!("unexpected input {i:?}");
    }
}

fn is_ack_for(bytes: &[u8], cipher: &FrameCipher, counter: u32) -> bool {
    Frame::new_checked(bytes)
        .ok()
        .filter(|f| f.frame_type() == FrameType::Ack)
        .and_then(|f| cipher.open_ack(&f).ok())
        == Some(counter)
}

fn vigil(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigil_pendant_raises_events_counts_up_and_hears_the_ack() {
    let (mut link, addr) = link(&[pendant(ID, &key())], SimChannel::default());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("pendant.state");
    let (to, state_s) = (addr.to_string(), state.display().to_string());
    let run = move |action: &'static str, extra: &'static [&'static str]| {
        let (to, state_s) = (to.clone(), state_s.clone());
        tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "pendant", action, "--id", "00A1B2C3", "--key", KEY_HEX, "--to", &to,
            ];
            args.extend(["--state", &state_s]);
            args.extend(extra);
            vigil(&args)
        })
    };

    let press = run("press", &[]);
    let e = next_event(&mut link).await;
    assert_eq!((e.device, e.counter, e.kind), (ID, 1, RadioEventKind::Help));
    assert_eq!(e.rssi_dbm, Some(-70));
    // What the core answers to a help event.
    link.handle_output(&Output::AckPendant {
        device: e.device,
        counter: e.counter,
    })
    .unwrap();
    let out = press.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A radio acknowledgement means the base has the alarm, not that a centre has it.
    assert!(stdout.contains("alarm received"), "{stdout}");
    assert!(!stdout.contains("help is coming"), "{stdout}");

    // The next invocation continues the counter from the state file.
    let hold = run("hold", &["--retries", "0", "--ack-wait-ms", "100"]);
    let e = next_event(&mut link).await;
    assert_eq!((e.counter, e.kind), (2, RadioEventKind::Cancel));
    let out = hold.await.unwrap();
    assert!(out.status.success(), "a cancel needs no ack");
    assert!(String::from_utf8_lossy(&out.stdout).contains("no acknowledgement"));

    let hb = run(
        "heartbeat",
        &[
            "--battery-mv",
            "2800",
            "--retries",
            "0",
            "--ack-wait-ms",
            "50",
            "--count",
            "2",
            "--interval-ms",
            "10",
        ],
    );
    for counter in [3, 4] {
        let e = next_event(&mut link).await;
        assert_eq!(
            (e.counter, e.kind),
            (
                counter,
                // It counts the one help it sent before.
                RadioEventKind::Heartbeat {
                    battery_mv: 2800,
                    alarms_sent: Some(1)
                }
            )
        );
    }
    assert!(hb.await.unwrap().status.success());

    // A help press nobody acknowledges fails after its retransmissions, raised only once.
    let press = run("press", &["--retries", "2", "--ack-wait-ms", "200"]);
    let e = next_event(&mut link).await;
    assert_eq!((e.counter, e.kind), (5, RadioEventKind::Help));
    let out = press.await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    nothing_for(&mut link, Duration::from_millis(300)).await;
    let status = link.status();
    let stats = status.range.get(ID).unwrap();
    assert_eq!(stats.frames, 5);
    assert_eq!(stats.retransmissions, 2);
    assert_eq!(
        std::fs::read_to_string(&state).unwrap().lines().next(),
        Some("counter 5")
    );

    // A wrong key from the command line is refused, never raised.
    let wrong = "00".repeat(32);
    let to = addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        vigil(&[
            "pendant",
            "press",
            "--id",
            "00A1B2C3",
            "--key",
            &wrong,
            "--to",
            &to,
            "--retries",
            "0",
            "--ack-wait-ms",
            "100",
            "--state",
            &state.display().to_string(),
        ])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    nothing_for(&mut link, Duration::from_millis(300)).await;
    assert_eq!(link.status().rejections.total(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmission_is_acknowledged_again_but_raised_once() {
    let (mut link, addr) = link(&[pendant(ID, &key())], SimChannel::default());
    let peer = SimPeer::new(addr, -80).unwrap();
    let cipher = FrameCipher::new(&key());
    let frame = cipher.seal_event(ID, 7, Event::Fall(vigil::core::FallEvidence::typical(2800)));
    peer.send(frame.as_bytes()).unwrap();
    let e = next_event(&mut link).await;
    assert_eq!(
        (e.counter, e.kind),
        (
            7,
            RadioEventKind::Fall {
                evidence: Some(vigil::core::FallEvidence::typical(2800))
            }
        )
    );
    link.ack(ID, 7).unwrap();
    let got = tokio::task::block_in_place(|| peer.receive(WAIT).unwrap().unwrap());
    assert!(is_ack_for(&got, &cipher, 7));
    // The pendant missed it and sends the same bytes again: acked again, not raised again.
    peer.send(frame.as_bytes()).unwrap();
    let again = tokio::task::block_in_place(|| peer.receive(WAIT).unwrap().unwrap());
    assert_eq!(again, got);
    nothing_for(&mut link, Duration::from_millis(300)).await;
    assert_eq!(link.status().acks_sent, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_frames_over_the_air_raise_nothing() {
    let (mut link, addr) = link(&[pendant(ID, &key())], SimChannel::default());
    let peer = SimPeer::new(addr, -75).unwrap();
    let good = FrameCipher::new(&key());
    let evil = FrameCipher::new(&PendantKey::new([0xEE; 32]));
    let first = good.seal_event(ID, 1, Event::Help);
    peer.send(first.as_bytes()).unwrap();
    assert_eq!(next_event(&mut link).await.counter, 1);
    let second = good.seal_event(ID, 2, Event::Help);
    peer.send(second.as_bytes()).unwrap();
    assert_eq!(next_event(&mut link).await.counter, 2);
    for i in 0..300u32 {
        match i % 3 {
            0 => peer
                .send(evil.seal_event(ID, 100 + i, Event::Help).as_bytes())
                .unwrap(),
            1 => peer.send(first.as_bytes()).unwrap(),
            _ => {
                let mut b = good
                    .seal_event(ID, 100 + i, Event::Help)
                    .as_bytes()
                    .to_vec();
                b[12] ^= 0x40;
                peer.send(&b).unwrap();
            }
        }
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let genuine = good.seal_event(ID, 3, Event::Tamper);
    peer.send(genuine.as_bytes()).unwrap();
    let e = next_event(&mut link).await;
    assert_eq!(
        (e.counter, e.kind),
        (3, RadioEventKind::Tamper),
        "the first input after the flood"
    );
    let status = link.status();
    assert_eq!(status.rejections.total(), 300);
    assert!(vigil::runtime::radio_cli::range_table(&status).contains("00A1B2C3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_in_the_window_then_events_and_refusals() {
    let (mut link, addr) = link(&[], SimChannel::default());
    let near = SimPeer::new(addr, -45).unwrap();
    let new_id = DeviceId(0x0BADCAFE);
    let receive =
        |peer: &SimPeer, wait| tokio::task::block_in_place(|| peer.receive(wait).unwrap());

    // Outside any window: refused, nothing stored.
    let p = PendantPairing::start(new_id, 1).unwrap();
    near.send(p.request().as_bytes()).unwrap();
    assert_eq!(
        receive(&near, Duration::from_millis(500)),
        None,
        "no answer outside the window"
    );

    let mut reports = link.open_pairing(Duration::from_secs(5), false).unwrap();
    // Heard from too far away: refused.
    let far = SimPeer::new(addr, -75).unwrap();
    far.send(p.request().as_bytes()).unwrap();
    match timeout(WAIT, reports.recv()).await.unwrap() {
        Some(PairingReport::Refused { message, .. }) => {
            assert!(message.contains("-75 dBm"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    near.send(p.request().as_bytes()).unwrap();
    let accept = receive(&near, WAIT).unwrap();
    let pendant = p.accepted(&accept).unwrap();
    near.send(pendant.reveal.as_bytes()).unwrap();
    assert_eq!(
        timeout(WAIT, reports.recv()).await.unwrap(),
        Some(PairingReport::Code {
            device: new_id,
            code: pendant.code
        })
    );
    // Not stored before the code is confirmed.
    let f = FrameCipher::new(&PendantKey::new([0; 32])).seal_event(new_id, 1, Event::Help);
    near.send(f.as_bytes()).unwrap();
    assert_eq!(
        link.handle().confirm_pairing(pendant.code).await,
        Ok(new_id)
    );
    let done = receive(&near, WAIT).unwrap();
    let key = pendant.finish(&done).unwrap();
    assert_eq!(
        timeout(WAIT, reports.recv()).await.unwrap(),
        Some(PairingReport::Paired(new_id))
    );

    // A second pendant in the same window is refused with a message.
    let other = PendantPairing::start(DeviceId(0x0BADCAFF), 1).unwrap();
    near.send(other.request().as_bytes()).unwrap();
    match timeout(WAIT, reports.recv()).await.unwrap() {
        Some(PairingReport::Refused { device, message }) => {
            assert_eq!(device, Some(DeviceId(0x0BADCAFF)));
            assert!(
                message.contains("already pairing in this window"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        timeout(WAIT, reports.recv()).await.unwrap(),
        Some(PairingReport::Closed)
    );

    // The new pendant's frames are now authentic.
    let f = FrameCipher::new(&key).seal_event(new_id, 1, Event::Help);
    near.send(f.as_bytes()).unwrap();
    let e = next_event(&mut link).await;
    assert_eq!((e.device, e.kind), (new_id, RadioEventKind::Help));

    // The id now has a key: pairing it again needs a window opened to replace it.
    let mut reports = link.open_pairing(Duration::from_secs(5), false).unwrap();
    let again = PendantPairing::start(new_id, 2).unwrap();
    near.send(again.request().as_bytes()).unwrap();
    match timeout(WAIT, reports.recv()).await.unwrap() {
        Some(PairingReport::Refused { message, .. }) => {
            assert!(message.contains("--replace"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_storm_never_exceeds_the_duty_cycle_budget() {
    let pendants: Vec<Pendant> = (0..8u32)
        .map(|i| pendant(DeviceId(0x100 + i), &PendantKey::new([i as u8 + 1; 32])))
        .collect();
    let (mut link, addr) = link(&pendants, SimChannel::default());
    let peers: Vec<SimPeer> = (0..8).map(|_| SimPeer::new(addr, -70).unwrap()).collect();
    // Each pendant makes itself heard first (noise), so the simulated air reaches all of them.
    for p in &peers {
        p.send(&[0xFF; 3]).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut raised = 0u32;
    for counter in 1..=40u32 {
        for (i, p) in pendants.iter().enumerate() {
            let c = FrameCipher::new(&PendantKey::new(*p.key.as_deref().unwrap()));
            peers[i]
                .send(c.seal_event(p.id, counter, Event::Help).as_bytes())
                .unwrap();
        }
        // Acknowledge everything that arrived, as the core would.
        while let Ok(Some(Input::Radio(e))) = timeout(Duration::from_millis(100), link.recv()).await
        {
            link.ack(e.device, e.counter).unwrap();
            raised += 1;
        }
    }
    while let Ok(Some(Input::Radio(e))) = timeout(Duration::from_millis(300), link.recv()).await {
        link.ack(e.device, e.counter).unwrap();
        raised += 1;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = link.status();
    // 3.6 s per hour at 58.333 ms per ack: at most 61 acks.
    let ack_airtime = vigil::radio::duty::airtime(25, vigil::radio::duty::BIT_RATE);
    let most = (Duration::from_millis(3600).as_micros() / ack_airtime.as_micros()) as u64;
    assert_eq!(most, 61);
    assert!(
        raised > 61,
        "the storm must exceed the budget ({raised} events)"
    );
    assert_eq!(status.acks_sent, most);
    assert_eq!(
        status.acks_sent + status.acks_over_budget,
        u64::from(raised)
    );
    assert!(status.airtime_last_hour <= Duration::from_millis(3600));
    // And no more than that went on air: every pendant hears every transmission of the base.
    for p in &peers {
        let heard = tokio::task::block_in_place(|| {
            std::iter::from_fn(|| p.receive(Duration::from_millis(100)).unwrap()).count()
        });
        assert_eq!(heard as u64, most);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_carrier_is_jamming_and_its_end_is_reported() {
    let radio =
        SimRadio::bind(SocketAddr::from(([127, 0, 0, 1], 0)), SimChannel::default()).unwrap();
    let addr = radio.local_addr().unwrap();
    let mut link = RadioLink::start(
        radio,
        MemoryStore::new(),
        &[],
        config(Duration::from_secs(4)),
    )
    .unwrap();
    let jammer = SimPeer::new(addr, -40).unwrap();
    // A short burst (a neighbour's device) keeps the channel busy for a tenth of the window:
    // not jamming.
    jammer.carrier(-50, Duration::from_millis(400)).unwrap();
    nothing_for(&mut link, Duration::from_millis(5000)).await;
    jammer.carrier(-50, Duration::from_secs(6)).unwrap();
    assert_eq!(
        timeout(WAIT, link.recv()).await.unwrap(),
        Some(Input::Jamming { active: true })
    );
    assert!(link.status().jamming);
    assert_eq!(
        timeout(WAIT, link.recv()).await.unwrap(),
        Some(Input::Jamming { active: false })
    );
    assert!(!link.status().jamming);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routine_acks_cannot_spend_the_alarm_reserve() {
    let pendants: Vec<Pendant> = (0..8u32)
        .map(|i| pendant(DeviceId(0x200 + i), &PendantKey::new([i as u8 + 9; 32])))
        .collect();
    let (mut link, addr) = link(&pendants, SimChannel::default());
    let peers: Vec<SimPeer> = (0..8).map(|_| SimPeer::new(addr, -70).unwrap()).collect();
    let send_round = |counter: u32, event: Event| {
        for (i, p) in pendants.iter().enumerate() {
            let c = FrameCipher::new(&PendantKey::new(*p.key.as_deref().unwrap()));
            peers[i]
                .send(c.seal_event(p.id, counter, event).as_bytes())
                .unwrap();
        }
    };
    // A flood of heartbeats, every one acknowledged: only half the budget may go to them.
    for counter in 1..=6u32 {
        send_round(
            counter,
            Event::Heartbeat {
                battery_mv: 3000,
                alarms_sent: None,
            },
        );
        while let Ok(Some(Input::Radio(e))) = timeout(Duration::from_millis(150), link.recv()).await
        {
            link.ack(e.device, e.counter).unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let routine = link.status();
    // 1.8 s / 58.333 ms = 30 routine acks.
    assert_eq!(routine.acks_sent, 30);
    assert_eq!(routine.acks_over_budget, 48 - 30);
    // Help still gets its acks from the reserve.
    send_round(7, Event::Help);
    while let Ok(Some(Input::Radio(e))) = timeout(Duration::from_millis(300), link.recv()).await {
        assert_eq!(e.kind, RadioEventKind::Help);
        link.ack(e.device, e.counter).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(link.status().acks_sent, 38);
}

const SISFALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sisfall/adxl345");
const FALL_TRIAL: &str = "SA01/F01_SA01_R01.txt";
const ACTIVITY_TRIAL: &str = "SA12/D08_SA12_R04.txt";

fn trial(name: &str) -> vigil::fall::Trial {
    vigil::fall::sisfall::load_trial(&std::path::Path::new(SISFALL).join(name)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_pendant_replays_a_fall_trial_and_stays_quiet_on_an_activity() {
    let (mut link, addr) = link(&[pendant(ID, &key())], SimChannel::default());
    let mut p = vigil::radio::pendant::SimPendant::new(ID, &key(), addr, -70, 10).unwrap();

    // An activity (quick sit in a half-height chair): the detector stays quiet, nothing goes out.
    let (sent, back) = tokio::task::spawn_blocking(move || {
        let sent = p
            .replay_trial(
                &trial(ACTIVITY_TRIAL),
                vigil::fall::SensorConfig {
                    range_g: 16,
                    rate_hz: 50,
                },
                false,
            )
            .unwrap();
        (sent, p)
    })
    .await
    .unwrap();
    p = back;
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(p.counter(), 10, "no frame used a counter");
    nothing_for(&mut link, Duration::from_millis(300)).await;
    assert_eq!(link.status().range.get(ID).map_or(0, |s| s.frames), 0);

    // A real fall: one sealed fall frame, accepted and acknowledged.
    let replay = tokio::task::spawn_blocking(move || {
        let sent = p
            .replay_trial(
                &trial(FALL_TRIAL),
                vigil::fall::SensorConfig {
                    range_g: 2,
                    rate_hz: 50,
                },
                false,
            )
            .unwrap();
        (sent, p)
    });
    let e = next_event(&mut link).await;
    assert_eq!((e.device, e.counter), (ID, 11));
    assert!(
        matches!(e.kind, RadioEventKind::Fall { evidence: Some(ev) } if ev.peak_mg > 1500),
        "the replayed fall carries the detector's evidence: {:?}",
        e.kind
    );
    link.handle_output(&Output::AckPendant {
        device: e.device,
        counter: e.counter,
    })
    .unwrap();
    let (sent, p) = replay.await.unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let s = sent[0];
    assert_eq!((s.counter, p.counter()), (11, 11));
    assert!(s.transmissions.is_some(), "acknowledged: {s:?}");
    assert!(s.fall.event.is_fall);
    assert_eq!(
        f32::from(s.fall.peak_mg),
        (s.fall.event.evidence.peak_g * 1000.0).round()
    );
    assert!(s.fall.peak_mg > 1400, "{s:?}");
    // Sent when the detector judged it, 3 s after the impact, inside the 15 s trial.
    let impact_s = s.fall.event.impact_sample as f64 / 50.0;
    let at = s.fall.at.as_secs_f64();
    assert!(at > impact_s + 2.8 && at < 15.0, "{at} {impact_s}");
    nothing_for(&mut link, Duration::from_millis(300)).await;
}

fn site_config(radio: SocketAddr, key_line: &str) -> String {
    format!(
        "[unit]\ncontroller_id = \"4600123456\"\ncontact_id_account = \"1234\"\n\
         sia_account = \"1234\"\nsubscriber = \"Anna\"\naddress = \"Storgatan 1\"\nlanguage = \"en\"\n\n\
         [[pendant]]\nid = \"00A1B2C3\"\nkind = \"fall\"\n{key_line}\n\n\
         [[route]]\nname = \"daughter\"\nkind = \"voice\"\nnumber = \"+46703333333\"\n\n\
         [radio]\ndriver = \"sim\"\nlisten = \"{radio}\"\n\n[modem]\nport = \"/dev/null\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigil_pendant_replay_takes_key_and_radio_from_the_configuration() {
    let (mut link, addr) = link(&[pendant(ID, &key())], SimChannel::default());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, site_config(addr, &format!("key = \"{KEY_HEX}\""))).unwrap();
    let state = dir.path().join("pendant.state");
    let (config_s, state_s) = (config.display().to_string(), state.display().to_string());
    let run = move |trial: &'static str| {
        let (config_s, state_s) = (config_s.clone(), state_s.clone());
        tokio::task::spawn_blocking(move || {
            let file = format!("{SISFALL}/{trial}");
            vigil(&[
                "pendant", "replay", &file, "--id", "00A1B2C3", "--config", &config_s, "--state",
                &state_s,
            ])
        })
    };

    let out = run(ACTIVITY_TRIAL).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("did not fire: nothing sent"), "{stdout}");
    nothing_for(&mut link, Duration::from_millis(300)).await;

    let fall = run(FALL_TRIAL);
    let e = next_event(&mut link).await;
    assert_eq!((e.device, e.counter), (ID, 1));
    assert!(
        matches!(e.kind, RadioEventKind::Fall { evidence: Some(_) }),
        "{:?}",
        e.kind
    );
    link.handle_output(&Output::AckPendant {
        device: e.device,
        counter: e.counter,
    })
    .unwrap();
    let out = fall.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("fall #1") && stdout.contains("alarm received"),
        "{stdout}"
    );
    assert!(!stdout.contains("help is coming"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(&state).unwrap().lines().next(),
        Some("counter 1")
    );

    // A configuration the unit would refuse is refused here too, with file, line and key.
    let bad = site_config(addr, "key = \"not-hex\"");
    let line = bad.lines().position(|l| l.starts_with("key =")).unwrap() + 1;
    std::fs::write(&config, bad).unwrap();
    let out = run(FALL_TRIAL).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("config.toml:{line}:")) && stderr.contains("pendant[1].key"),
        "{stderr}"
    );
    nothing_for(&mut link, Duration::from_millis(300)).await;
}

#[test]
fn vigil_range_test_over_loopback() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    // A pendant paired earlier: the same key on both sides.
    let key = "6b1f0c2e9a4d7f3b8c5e1a2d4f6b8c0e1a3c5e7f9b1d3f5a7c9e1b3d5f7a9c1e";
    let store = dir.path().join("radio.state");
    std::fs::write(&store, format!("key 00C0FFEE {key}\n")).unwrap();
    let pstate = dir.path().join("p.state");
    std::fs::write(&pstate, format!("counter 0\nkey {key}\n")).unwrap();

    // Range test with the pendant (key from the store) sending heartbeats.
    let mut base = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "range-test",
            "--listen",
            "127.0.0.1:0",
            "--seconds",
            "3",
            "--store",
        ])
        .arg(&store)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(base.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.rsplit(' ').next().unwrap().to_string();
    let out = vigil(&[
        "pendant",
        "heartbeat",
        "--id",
        "C0FFEE",
        "--to",
        &addr,
        "--state",
        &pstate.display().to_string(),
        "--count",
        "4",
        "--interval-ms",
        "50",
        "--retries",
        "0",
        "--ack-wait-ms",
        "20",
        "--rssi",
        "-81",
    ]);
    assert!(out.status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(base.wait().unwrap().success());
    let last = rest
        .iter()
        .rev()
        .find(|l| l.starts_with("00C0FFEE"))
        .expect("a line for the pendant");
    let cols: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(cols[1], "4", "{last}");
    assert_eq!(cols[2], "100.0%", "{last}");
    assert!(last.contains("-81 dBm"), "{last}");
}
