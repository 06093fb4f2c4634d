//! An attacker in radio range, against the radio link on loopback: what they send must not
//! cost the person wearing the pendant an acknowledgement.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::timeout;
use vigil::config::{Band, Pendant};
use vigil::core::{DeviceId, DeviceKind, Input, RadioEventKind};
use vigil::radio::driver::sim::{SimChannel, SimPeer, SimRadio};
use vigil::radio::frame::{Event, Frame, FrameCipher, FrameType, PendantKey};
use vigil::radio::link::{LinkConfig, RadioLink};
use vigil::radio::store::MemoryStore;

const WAIT: Duration = Duration::from_secs(10);

fn pendant(id: DeviceId, key: &PendantKey) -> Pendant {
    Pendant {
        id,
        kind: DeviceKind::Personal,
        key: Some((*key.as_bytes()).into()),
        location: "Anna".into(),
        zone: 1,
    }
}

fn link(pendants: &[Pendant], jamming_after: Duration) -> (RadioLink, SocketAddr) {
    let radio =
        SimRadio::bind(SocketAddr::from(([127, 0, 0, 1], 0)), SimChannel::default()).unwrap();
    let addr = radio.local_addr().unwrap();
    let config = LinkConfig {
        band: Band::Eu869,
        jamming_rssi_dbm: -90,
        jamming_after,
        pairing_min_rssi: -60,
    };
    let link = RadioLink::start(radio, MemoryStore::new(), pendants, config).unwrap();
    (link, addr)
}

fn acks_for(peer: &SimPeer, cipher: &FrameCipher, counter: u32, wait: Duration) -> usize {
    let mut n = 0;
    while let Ok(Some(bytes)) = peer.receive(wait) {
        let ok = Frame::new_checked(&bytes)
            .ok()
            .filter(|f| f.frame_type() == FrameType::Ack)
            .and_then(|f| cipher.open_ack(&f).ok())
            == Some(counter);
        n += usize::from(ok);
    }
    n
}

/// Finding: 80 replays of one help frame drew 60 acknowledgements and spent the whole hourly
/// budget, the alarm reserve included; a later genuine press got no acknowledgement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_help_frames_cannot_spend_the_airtime_budget() {
    let anna_key = PendantKey::new([3; 32]);
    let bob_key = PendantKey::new([4; 32]);
    let anna = DeviceId(0x00A1_B2C3);
    let bob = DeviceId(0x00A1_B2C4);
    let (mut link, addr) = link(
        &[pendant(anna, &anna_key), pendant(bob, &bob_key)],
        Duration::from_secs(30),
    );
    let anna_cipher = FrameCipher::new(&anna_key);
    let help = anna_cipher.seal_event(anna, 7, Event::Help);
    let anna_radio = SimPeer::new(addr, -70).unwrap();
    anna_radio.send(help.as_bytes()).unwrap();
    let e = match timeout(WAIT, link.recv()).await {
        Ok(Some(Input::Radio(e))) => e,
        other => panic!("expected the help press, got {other:?}"),
    };
    assert_eq!((e.device, e.kind), (anna, RadioEventKind::Help));
    link.ack(anna, 7).unwrap();

    // The attacker recorded the frame and plays it back 80 times.
    let attacker = SimPeer::new(addr, -60).unwrap();
    for _ in 0..80 {
        attacker.send(help.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let replayed_acks = tokio::task::block_in_place(|| {
        acks_for(&attacker, &anna_cipher, 7, Duration::from_millis(500))
    });
    assert!(
        replayed_acks <= 3,
        "replays drew {replayed_acks} acknowledgements"
    );

    // Bob presses his button: his alarm gets its acknowledgement.
    let bob_cipher = FrameCipher::new(&bob_key);
    let bob_radio = SimPeer::new(addr, -70).unwrap();
    bob_radio
        .send(bob_cipher.seal_event(bob, 1, Event::Help).as_bytes())
        .unwrap();
    loop {
        match timeout(WAIT, link.recv()).await {
            Ok(Some(Input::Radio(e))) if e.device == bob => break,
            Ok(Some(_)) => {}
            other => panic!("expected Bob's press, got {other:?}"),
        }
    }
    link.ack(bob, 1).unwrap();
    let bob_acks = tokio::task::block_in_place(|| {
        acks_for(&bob_radio, &bob_cipher, 1, Duration::from_secs(2))
    });
    assert_eq!(bob_acks, 1, "the genuine press is acknowledged");
}

/// Finding: carrier on the channel with the last accepted frame replayed every few seconds was
/// never reported as jamming: each replay counted as a valid frame and reset the detector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_under_a_carrier_do_not_hide_jamming() {
    let key = PendantKey::new([5; 32]);
    let anna = DeviceId(0x00A1_B2C3);
    let (mut link, addr) = link(&[pendant(anna, &key)], Duration::from_secs(1));
    let cipher = FrameCipher::new(&key);
    let help = cipher.seal_event(anna, 9, Event::Help);
    let radio = SimPeer::new(addr, -70).unwrap();
    radio.send(help.as_bytes()).unwrap();
    match timeout(WAIT, link.recv()).await {
        Ok(Some(Input::Radio(e))) => assert_eq!(e.counter, 9),
        other => panic!("expected the help press, got {other:?}"),
    }
    link.ack(anna, 9).unwrap();

    let jammer = SimPeer::new(addr, -50).unwrap();
    jammer.carrier(-50, Duration::from_secs(4)).unwrap();
    // The recorded frame, replayed close to the base (strong enough to be heard over the
    // carrier) well within the detection time, all through the carrier.
    let replay = SimPeer::new(addr, -40).unwrap();
    let replayer = tokio::task::spawn_blocking(move || {
        for _ in 0..16 {
            replay.send(help.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let got = timeout(WAIT, async {
        loop {
            match link.recv().await {
                Some(Input::Jamming { active: true }) => return true,
                Some(Input::Radio(e)) => panic!("a replay was raised: {e:?}"),
                Some(_) => {}
                None => return false,
            }
        }
    })
    .await;
    replayer.await.unwrap();
    assert_eq!(got, Ok(true), "jamming under replays is reported");
    assert!(link.status().jamming);
}

/// Lines the unit logged, for tests that bound them.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Finding: every refused frame wrote a WARN line; a flood of forged frames filled the disk
/// with log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forged_frames_writes_a_bounded_log() {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();
    let key = PendantKey::new([6; 32]);
    let anna = DeviceId(0x00A1_B2C3);
    let (link, addr) = link(&[pendant(anna, &key)], Duration::from_secs(30));
    let forger = FrameCipher::new(&PendantKey::new([7; 32]));
    let attacker = SimPeer::new(addr, -60).unwrap();
    for counter in 1..=2_000u32 {
        attacker
            .send(forger.seal_event(anna, counter, Event::Help).as_bytes())
            .unwrap();
        if counter % 100 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Wait until the link has refused a good share of them.
    let deadline = std::time::Instant::now() + WAIT;
    while link.status().rejections.total() < 500 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = link.status().rejections.total();
    assert!(refused >= 500, "only {refused} refused");
    drop(link);
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let lines = text
        .lines()
        .filter(|l| l.contains("refused") || l.contains("rejected"))
        .count();
    assert!(
        lines <= 2,
        "{refused} refused frames wrote {lines} log lines"
    );
}
