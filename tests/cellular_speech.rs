//! A module wired by USB audio (SIMCom with `modem.voice_port`) has no loudspeaker of its own:
//! the centre's call, answered in the window after an alarm, is carried through the unit's
//! speakerphone on the module's voice port, speech both ways, and streaming stops when the
//! call does. So are a voice route's call after the person's accept key and Contact ID's call
//! after the kissoff.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use vigil::centre::contact_id::ContactIdCall;
use vigil::centre::voice_call::VoiceCall;
use vigil::config::{ContactIdRoute, Unit, VoiceRoute};
use vigil::core::{
    Alarm, AlarmCause, AlarmId, AlarmRef, Delivery, DeliveryResult, Device, DeviceId, DeviceKind,
    RouteId, Timestamp,
};
use vigil::modem::device::Settings;
use vigil::modem::network::{CidCentre, Party, Person, Record};
use vigil::modem::sim::{Model, SimConfig, SimWorld};
use vigil::modem::voice_port::BridgeEnd;
use vigil::modem::ModemEvent;
use vigil::voice::pcm::align;
use vigil::voice::sim_call::SimCallPort;

const UNIT_NO: &str = "+46700000001";
const CENTRE: &str = "+46812345678";
/// The person a voice route calls.
const PERSON: &str = "+46700000020";
/// The Contact ID receiver.
const CID: &str = "+46700000030";

/// Noise-like speech stand-in, `seconds` long at 8 kHz (no two stretches alike).
fn recording(seed: u32, seconds: usize) -> Vec<i16> {
    let mut x = seed;
    (0..8000 * seconds)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 16) as i16) / 4
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_centres_call_is_carried_through_the_speakerphone_on_the_voice_port() {
    let mut cfg = SimConfig::new(UNIT_NO);
    cfg.model = Model::SimcomSim7600;
    let w = SimWorld::start(cfg).unwrap();
    let m = w
        .open_modem(Settings {
            sim_pin: None,
            allowed_numbers: vec![CENTRE.into()],
            remote_secret: None,
            voice_port: w.module.voice_port().map(str::to_string),
            call_device: None,
            call_audio: None,
        })
        .unwrap();
    m.wait_usable(Duration::from_secs(10)).await.unwrap();
    assert!(
        m.capabilities().is_some_and(|c| c.pcm),
        "{:?}",
        m.capabilities()
    );
    m.auto_answer_for(Duration::from_secs(60));
    let mut events = m.events();
    w.network
        .call_modem(UNIT_NO, CENTRE, Duration::from_secs(5));
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(ModemEvent::IncomingCall { answered, .. }) = events.recv().await {
                return answered;
            }
        }
    })
    .await;
    assert_eq!(answered, Ok(true), "the centre's call was not answered");

    // The unit's speakerphone: its microphone hears the person, its loudspeaker is recorded.
    let person_says = recording(5, 4);
    let (speakerphone, heard_by_person) = SimCallPort::new(person_says.clone());
    let (stop_tx, stop) = watch::channel(false);
    let bridge = tokio::spawn({
        let m = m.clone();
        async move { m.speak_in_call(Box::new(speakerphone), stop).await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !w.module.commands().iter().any(|c| c == "AT+CPCMREG=1") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call was never streamed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let operator_says = recording(9, 3);
    w.module.far_end_says(&operator_says);
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    stop_tx.send_replace(true);
    let end = bridge.await.unwrap();
    assert!(matches!(end, Ok(BridgeEnd::Stopped)), "{end:?}");
    let cmds = w.module.commands();
    // The last streaming command is the stop (a health check may follow it).
    let last = cmds.iter().rev().find(|c| c.starts_with("AT+CPCMREG="));
    assert_eq!(last.map(String::as_str), Some("AT+CPCMREG=0"), "{cmds:?}");

    // The operator reached the person's loudspeaker, and the person the operator.
    let played = heard_by_person.lock().unwrap().clone();
    let (lag, c) = align(&operator_says[8_000..16_000], &played, 16_000);
    assert!(c >= 0.9, "operator to person: correlation {c} at lag {lag}");
    let sent = w.module.voice_port_audio();
    let (lag, c) = align(&person_says[..8_000], &sent, 16_000);
    assert!(c >= 0.9, "person to operator: correlation {c} at lag {lag}");
}

/// The unit's speakerphone for the routes' calls: each opening gets a port whose microphone
/// says `says` and whose loudspeaker records into the shared buffer; how often it was opened.
fn speakerphone(
    says: Vec<i16>,
) -> (
    vigil::voice::call_port::CallAudio,
    Arc<Mutex<Vec<i16>>>,
    Arc<AtomicU32>,
) {
    let says = Arc::new(says);
    let heard: Arc<Mutex<Vec<i16>>> = Arc::default();
    let opened = Arc::new(AtomicU32::new(0));
    let audio: vigil::voice::call_port::CallAudio = {
        let (heard, opened) = (Arc::clone(&heard), Arc::clone(&opened));
        Arc::new(move || {
            opened.fetch_add(1, Ordering::SeqCst);
            let port = SimCallPort::hearing_into(Arc::clone(&says), Arc::clone(&heard));
            Ok(Box::new(port) as Box<dyn vigil::voice::call_port::CallAudioPort>)
        })
    };
    (audio, heard, opened)
}

/// A SIMCom module with its voice port wired, and a modem on it that may call `numbers`.
async fn simcom_world(numbers: &[&str]) -> (SimWorld, vigil::modem::Modem) {
    let mut cfg = SimConfig::new(UNIT_NO);
    cfg.model = Model::SimcomSim7600;
    let w = SimWorld::start(cfg).unwrap();
    let m = w
        .open_modem(Settings {
            sim_pin: None,
            allowed_numbers: numbers.iter().map(|n| n.to_string()).collect(),
            remote_secret: None,
            voice_port: w.module.voice_port().map(str::to_string),
            call_device: None,
            call_audio: None,
        })
        .unwrap();
    m.wait_usable(Duration::from_secs(10)).await.unwrap();
    assert!(m.capabilities().is_some_and(|c| c.pcm));
    (w, m)
}

fn unit() -> Unit {
    Unit {
        controller_id: "4711".into(),
        contact_id_account: "1234".into(),
        sia_account: "1234".into(),
        subscriber: "Anna".into(),
        address: "Storgatan 1, Uppsala".into(),
        language: "en".into(),
        volume: 80,
        quiet_hours: None,
    }
}

fn fall() -> Delivery {
    let raised_at = Timestamp::from_secs(1_764_100_000);
    let id = AlarmId(7);
    Delivery {
        alarm: Alarm {
            id,
            reference: AlarmRef::new(id, raised_at),
            cause: AlarmCause::Fall,
            device: Some(Device {
                id: DeviceId(0xA1B2_C3D4),
                kind: DeviceKind::Fall,
                zone: 3,
                location: "Bedroom".into(),
            }),
            raised_at,
            evidence: None,
        },
        route: RouteId(0),
        attempt: 1,
    }
}

/// Waits until the module has been told `command`, up to `limit`.
async fn until_sent(w: &SimWorld, command: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while !w.module.commands().iter().any(|c| c == command) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{command} never sent: {:?}",
            w.module.commands()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The person answers the voice route's call, presses the accept key 1, and hangs up
/// `drop_after` after answering.
fn person_hangs_up_after(w: &SimWorld, drop_after: Duration) {
    w.network.add(
        PERSON,
        Party::Person(Person {
            drop_after: Some(drop_after),
            ..Person::accepting('1')
        }),
    );
}

/// The voice route to the person, accept key 1.
fn voice_route(m: &vigil::modem::Modem) -> VoiceCall {
    VoiceCall::new(
        m.clone(),
        &VoiceRoute {
            number: PERSON.into(),
            accept_key: '1',
        },
        &unit(),
    )
}

/// A working Contact ID receiver that hangs up `drop_after` after answering.
fn receiver_hangs_up_after(w: &SimWorld, drop_after: Duration) {
    w.network.add(
        CID,
        Party::Centre(CidCentre {
            drop_after: Some(drop_after),
            ..CidCentre::working()
        }),
    );
}

/// The Contact ID route to the receiver.
fn contact_id_route(m: &vigil::modem::Modem) -> ContactIdCall {
    ContactIdCall::new(m.clone(), &ContactIdRoute { number: CID.into() }, &unit())
}

/// The receiver sent its kissoff.
fn kissoff_heard(w: &SimWorld) -> bool {
    w.network
        .records()
        .iter()
        .any(|r| matches!(r, Record::Kissoff { .. }))
}

/// The far end's `far_says` reached the unit's loudspeaker (`heard`) and the person's
/// `person_says` the far end, each with correlation ≥ 0.9, through a speakerphone opened once.
fn speech_crossed(
    w: &SimWorld,
    far_says: &[i16],
    person_says: &[i16],
    heard: &Mutex<Vec<i16>>,
    opened: &AtomicU32,
) {
    assert_eq!(opened.load(Ordering::SeqCst), 1);
    let played = heard.lock().unwrap().clone();
    let (lag, c) = align(&far_says[8_000..16_000], &played, played.len());
    assert!(c >= 0.9, "far end to person: correlation {c} at lag {lag}");
    let sent = w.module.voice_port_audio();
    let (lag, c) = align(&person_says[..8_000], &sent, sent.len());
    assert!(c >= 0.9, "person to far end: correlation {c} at lag {lag}");
}

/// After the acknowledgement, the far end talks for 3 s on the voice port while the person in
/// the home talks into the unit's microphone; once the far end has hung up: the far end's words
/// reached the unit's loudspeaker, the person's reached the far end, the speakerphone was
/// opened once, and the stream was stopped.
async fn the_call_went_on_as_speech(
    w: &SimWorld,
    person_says: &[i16],
    heard: &Mutex<Vec<i16>>,
    opened: &AtomicU32,
) {
    until_sent(w, "AT+CPCMREG=1", Duration::from_secs(3)).await;
    let far_says = recording(9, 3);
    w.module.far_end_says(&far_says);
    // The far end hangs up (6 s after answering): the speech ends and streaming stops.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let cmds = w.module.commands();
        let on = cmds.iter().rposition(|c| c == "AT+CPCMREG=1");
        let off = cmds.iter().rposition(|c| c == "AT+CPCMREG=0");
        if off > on {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "streaming never stopped after the call: {cmds:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    speech_crossed(w, &far_says, person_says, heard, opened);
}

/// A voice route's call to a person, on a SIMCom module wired by USB audio: once the person
/// has pressed the accept key, the call goes on as speech through the unit's speakerphone on
/// the module's voice port, as the centre's call does, until the person hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_routes_call_goes_on_through_the_speakerphone_after_the_accept_key() {
    let (w, m) = simcom_world(&[PERSON]).await;
    person_hangs_up_after(&w, Duration::from_secs(6));
    let person_says = recording(5, 6);
    let (audio, heard, opened) = speakerphone(person_says.clone());
    let r = voice_route(&m)
        .with_speakerphone(audio)
        .deliver(&fall())
        .await;
    assert!(matches!(r, DeliveryResult::Acked { .. }), "{r:?}");
    the_call_went_on_as_speech(&w, &person_says, &heard, &opened).await;
}

/// Contact ID on a SIMCom module wired by USB audio streams the call on the voice port for its
/// tones and digits; after the kissoff the same stream goes on as the operator's speech
/// through the unit's speakerphone (never stopped and started again) until the receiver
/// hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_ids_call_goes_on_through_the_speakerphone_after_the_kissoff() {
    let (w, m) = simcom_world(&[CID]).await;
    receiver_hangs_up_after(&w, Duration::from_secs(6));
    let person_says = recording(5, 6);
    let (audio, heard, opened) = speakerphone(person_says.clone());
    let r = contact_id_route(&m)
        .with_speakerphone(audio)
        .deliver(&fall())
        .await;
    assert!(matches!(r, DeliveryResult::Acked { .. }), "{r:?}");
    assert!(kissoff_heard(&w), "no kissoff");
    the_call_went_on_as_speech(&w, &person_says, &heard, &opened).await;
    let streaming: Vec<String> = w
        .module
        .commands()
        .into_iter()
        .filter(|c| c == "AT+CPCMREG=1" || c == "AT+CPCMREG=0")
        .collect();
    assert_eq!(
        streaming,
        ["AT+CPCMREG=1", "AT+CPCMREG=0"],
        "one stream from the handshake to the call's end"
    );
}

/// On a module that keeps calls on its own audio path (Quectel, no USB audio card named), a
/// voice route's accepted call stays there: the speakerphone is not opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_audio_port_an_accepted_call_stays_on_the_modules_own_audio() {
    let w = SimWorld::start(SimConfig::new(UNIT_NO)).unwrap();
    let m = w
        .open_modem(Settings {
            allowed_numbers: vec![PERSON.into()],
            ..Settings::default()
        })
        .unwrap();
    m.wait_usable(Duration::from_secs(10)).await.unwrap();
    w.network.add(PERSON, Party::Person(Person::accepting('1')));
    let (audio, _heard, opened) = speakerphone(recording(5, 1));
    let r = voice_route(&m)
        .with_speakerphone(audio)
        .deliver(&fall())
        .await;
    assert!(matches!(r, DeliveryResult::Acked { .. }), "{r:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(opened.load(Ordering::SeqCst), 0);
}

/// A Quectel module with its USB audio card named (`audio.call_device`; in the simulation the
/// stream that stands in for the card), and a modem on it that may call `numbers`.
async fn quectel_world(numbers: &[&str]) -> (SimWorld, vigil::modem::Modem) {
    let w = SimWorld::start(SimConfig::new(UNIT_NO)).unwrap();
    assert_eq!(
        w.module.voice_port(),
        None,
        "Quectel has no SIMCom voice port"
    );
    let m = w
        .open_modem(Settings {
            sim_pin: None,
            allowed_numbers: numbers.iter().map(|n| n.to_string()).collect(),
            remote_secret: None,
            voice_port: None,
            call_device: w.module.sound_card(),
            call_audio: None,
        })
        .unwrap();
    m.wait_usable(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        m.capabilities().and_then(|c| c.usb_audio),
        Some(true),
        "AT+QPCMV=1,2 taken: {:?}",
        w.module.commands()
    );
    (w, m)
}

/// After the acknowledgement on a Quectel module: once the speakerphone is opened for the
/// call, the far end talks for 3 s on the USB audio card while the person talks into the
/// unit's microphone; the far end's words reach the unit's loudspeaker and the person's the
/// far end, the speakerphone was opened once, and the card was all it took: no SIMCom
/// streaming command went to the module.
async fn the_call_went_on_as_speech_on_the_card(
    w: &SimWorld,
    person_says: &[i16],
    heard: &Mutex<Vec<i16>>,
    opened: &AtomicU32,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while opened.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the speakerphone was never opened for the call"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let far_says = recording(9, 3);
    w.module.far_end_says(&far_says);
    // Until the far end has said it all (and a second more), or the far end hung up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while heard.lock().unwrap().len() < 8_000 * 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call's speech stopped early: {} samples",
            heard.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    speech_crossed(w, &far_says, person_says, heard, opened);
    let cmds = w.module.commands();
    assert!(cmds.iter().any(|c| c == "AT+QPCMV=1,2"), "{cmds:?}");
    assert!(
        !cmds.iter().any(|c| c.starts_with("AT+CPCMREG")),
        "{cmds:?}"
    );
}

/// A voice route's call on a Quectel module wired by its USB audio card: after the accept key
/// the call goes on as speech through the speakerphone on the card, as on SIMCom's voice port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_quectel_a_voice_routes_call_goes_on_through_the_speakerphone_on_its_sound_card() {
    let (w, m) = quectel_world(&[PERSON]).await;
    person_hangs_up_after(&w, Duration::from_secs(8));
    let person_says = recording(5, 6);
    let (audio, heard, opened) = speakerphone(person_says.clone());
    let r = voice_route(&m)
        .with_speakerphone(audio)
        .deliver(&fall())
        .await;
    assert!(matches!(r, DeliveryResult::Acked { .. }), "{r:?}");
    the_call_went_on_as_speech_on_the_card(&w, &person_says, &heard, &opened).await;
}

/// Contact ID on a Quectel module wired by its USB audio card: the module's own tone detector
/// hears the handshake and kissoff and `AT+VTS` sends the digits; after the kissoff the call
/// goes on as the operator's speech through the speakerphone on the card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_quectel_contact_ids_call_goes_on_through_the_speakerphone_on_its_sound_card() {
    let (w, m) = quectel_world(&[CID]).await;
    receiver_hangs_up_after(&w, Duration::from_secs(8));
    let person_says = recording(5, 6);
    let (audio, heard, opened) = speakerphone(person_says.clone());
    let r = contact_id_route(&m)
        .with_speakerphone(audio)
        .deliver(&fall())
        .await;
    assert!(matches!(r, DeliveryResult::Acked { .. }), "{r:?}");
    assert!(kissoff_heard(&w), "no kissoff");
    the_call_went_on_as_speech_on_the_card(&w, &person_says, &heard, &opened).await;
}

/// Without `AT+QPCMV=1,2` the simulated module puts no call on its card, as the real one
/// keeps calls on its own audio path: a stream opened anyway carries nothing either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_card_carries_a_call_only_while_voice_over_usb_is_set() {
    let w = SimWorld::start(SimConfig::new(UNIT_NO)).unwrap();
    let m = w
        .open_modem(Settings {
            sim_pin: None,
            allowed_numbers: vec![PERSON.into()],
            remote_secret: None,
            voice_port: None,
            call_device: None,
            call_audio: None,
        })
        .unwrap();
    m.wait_usable(Duration::from_secs(10)).await.unwrap();
    person_hangs_up_after(&w, Duration::from_secs(8));
    let r = voice_route(&m).deliver(&fall()).await;
    assert!(matches!(r, DeliveryResult::Acked { .. }), "{r:?}");
    assert!(!w
        .module
        .commands()
        .iter()
        .any(|c| c.starts_with("AT+QPCMV")));
    let card = w
        .module
        .sound_card()
        .expect("the simulated EC25 has its card");
    let path = card
        .strip_prefix(vigil::modem::audio_port::SIM_CARD_PREFIX)
        .unwrap();
    let mut stream = vigil::modem::voice_port::VoicePort::open(path).unwrap();
    let (mut port, heard) = SimCallPort::new(recording(5, 2));
    w.module.far_end_says(&recording(9, 2));
    let (stop_tx, mut stop) = watch::channel(false);
    let stopping = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        stop_tx.send_replace(true);
    });
    let end = vigil::voice::call_port::bridge(&mut stream, &mut port, &mut stop).await;
    stopping.await.unwrap();
    assert!(matches!(end, BridgeEnd::Stopped), "{end:?}");
    let played = heard.lock().unwrap().clone();
    assert!(played.len() >= 8_000, "the bridge ran: {}", played.len());
    assert!(
        played.iter().all(|&s| s == 0),
        "the far end reached the card without voice over USB"
    );
    assert!(
        w.module.voice_port_audio().is_empty(),
        "the person reached the call without voice over USB"
    );
}
