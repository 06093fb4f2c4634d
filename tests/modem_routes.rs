//! The cellular routes end to end: real `serialport` on a pty, the simulated module, the
//! simulated network and its parties.

use std::time::Duration;

use vigil::centre::contact_id::{ContactIdCall, Message};
use vigil::centre::sms::{Sms, SmsMode};
use vigil::centre::voice_call::VoiceCall;
use vigil::config::{ContactIdRoute, Credentials, SmsRoute, Unit, VoiceRoute};
use vigil::core::{
    Alarm, AlarmCause, AlarmId, AlarmRef, Delivery, DeliveryResult, Device, DeviceId, DeviceKind,
    RouteId, Timestamp,
};
use vigil::modem::device::Settings;
use vigil::modem::network::{CidCentre, Party, Person, Record, Reply, Responder};
use vigil::modem::sim::{SimConfig, SimWorld};
use vigil::modem::RemoteRefusal;
use vigil::modem::{auth, Command, Modem, ModemEvent, RemoteCommand};

const UNIT_NO: &str = "+46700000001";
const CENTRE_SMS: &str = "+46700000010";
const PERSON: &str = "+46700000020";
const CID: &str = "+46700000030";
const SECRET: &str = "route-secret";

fn unit(subscriber: &str) -> Unit {
    Unit {
        controller_id: "4711".into(),
        contact_id_account: "1234".into(),
        sia_account: "1234".into(),
        subscriber: subscriber.into(),
        address: "Storgatan 1, Uppsala".into(),
        language: "en".into(),
        volume: 80,
        quiet_hours: None,
    }
}

fn delivery(cause: AlarmCause) -> Delivery {
    let raised_at = Timestamp::from_secs(1_764_100_000);
    let id = AlarmId(7);
    Delivery {
        alarm: Alarm {
            id,
            reference: AlarmRef::new(id, raised_at),
            cause,
            device: Some(Device {
                id: DeviceId(0xA1B2C3D4),
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

async fn world(config: SimConfig) -> (SimWorld, Modem) {
    let w = SimWorld::start(config).expect("pty");
    let m = w
        .open_modem(Settings {
            sim_pin: Some("1234".into()),
            allowed_numbers: vec![PERSON.into()],
            remote_secret: Some("remote-secret".into()),
            voice_port: None,
            call_device: None,
            call_audio: None,
        })
        .expect("open");
    m.wait_usable(Duration::from_secs(5)).await.expect("usable");
    (w, m)
}

/// A modem on the world's module with `timing` (and the simulated power key), its voice
/// port wired where the module has one.
fn modem_with(w: &SimWorld, timing: vigil::modem::Timing) -> Modem {
    let at = vigil::modem::engine::open(w.module.path(), 115_200).expect("pty opens");
    Modem::start(
        at,
        Settings {
            sim_pin: Some("1234".into()),
            allowed_numbers: vec![PERSON.into()],
            remote_secret: None,
            voice_port: w.module.voice_port().map(str::to_string),
            call_device: None,
            call_audio: None,
        },
        timing,
        Some(Box::new(w.module.power_key())),
    )
}

fn sms_route(m: &Modem, subscriber: &str) -> Sms {
    Sms::new(
        m.clone(),
        &SmsRoute {
            number: CENTRE_SMS.into(),
            credentials: "sms".into(),
            reply_timeout: Duration::from_millis(700),
        },
        &Credentials {
            username: None,
            secret: SECRET.into(),
            realm: None,
        },
        &unit(subscriber),
    )
}

/// The voice route to the person, who accepts with 1, announcing Anna's alarms.
fn voice_to_person(m: &Modem) -> VoiceCall {
    VoiceCall::new(
        m.clone(),
        &VoiceRoute {
            number: PERSON.into(),
            accept_key: '1',
        },
        &unit("Anna"),
    )
}

/// The Contact ID route to the receiving centre's line, for Anna's unit.
fn contact_id_to_centre(m: &Modem) -> ContactIdCall {
    ContactIdCall::new(
        m.clone(),
        &ContactIdRoute { number: CID.into() },
        &unit("Anna"),
    )
}

fn responder(reply: Reply) -> Party {
    Party::Responder(Responder {
        secret: SECRET.into(),
        reply,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_unlocks_the_pin_and_turns_echo_off() {
    let mut cfg = SimConfig::new(UNIT_NO);
    cfg.pin = Some("1234".into());
    let (w, m) = world(cfg).await;
    let cmds = w.module.commands();
    for c in [
        "ATE0",
        "AT+CMEE=2",
        "AT+CPIN?",
        "AT+CPIN=<pin>",
        "AT+CREG=1",
        "AT+CLIP=1",
        "AT+CNMI=2,1,0,0,0",
        "AT+QTONEDET=1",
    ] {
        assert!(cmds.iter().any(|x| x == c), "{c} missing from {cmds:?}");
    }
    let h = m.health().await.unwrap();
    assert_eq!(h.signal_dbm, Some(-71));
    assert!(h.registration.is_registered());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_outside_a_call_is_refused_by_the_module() {
    let (_w, m) = world(SimConfig::new(UNIT_NO)).await;
    let e = m
        .at()
        .send(Command::new("AT+VTS=\"1\"", Duration::from_millis(500)))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("+CME ERROR: operation not allowed"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_acknowledged_by_an_authenticated_reply() {
    let (w, m) = world(SimConfig::new(UNIT_NO)).await;
    w.network.add(CENTRE_SMS, responder(Reply::Valid));
    let d = delivery(AlarmCause::Fall);
    let r = sms_route(&m, "Anna Öberg").deliver(&d).await;
    assert_eq!(
        r,
        DeliveryResult::Acked {
            by: CENTRE_SMS.into(),
            callback: None
        }
    );
    let text = w
        .network
        .records()
        .into_iter()
        .find_map(|r| match r {
            Record::SmsDelivered { to, text, .. } if to == CENTRE_SMS => Some(text),
            _ => None,
        })
        .unwrap();
    assert!(text.contains("Who: Anna Öberg"), "{text}");
    assert!(text.contains("fall detected"));
    assert!(text.contains(&format!("REF={}", d.alarm.reference)));
    assert!(text.contains("EV=1100 Z=003"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ucs2_names_go_as_concatenated_pdus() {
    let (w, m) = world(SimConfig::new(UNIT_NO)).await;
    w.network.add(CENTRE_SMS, responder(Reply::Valid));
    let r = sms_route(&m, "Łucja Wąs-Żółkiewska")
        .deliver(&delivery(AlarmCause::Help))
        .await;
    assert!(matches!(r, DeliveryResult::Acked { .. }), "{r:?}");
    let cmgs = w
        .module
        .commands()
        .iter()
        .filter(|c| c.starts_with("AT+CMGS="))
        .count();
    assert!(
        cmgs >= 3,
        "a UCS-2 alarm text needs several parts, sent {cmgs}"
    );
    let delivered = w.network.records().into_iter().any(
        |r| matches!(r, Record::SmsDelivered { text, .. } if text.contains("Łucja Wąs-Żółkiewska")),
    );
    assert!(delivered, "parts reassembled with the name intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_in_text_mode() {
    let (w, m) = world(SimConfig::new(UNIT_NO)).await;
    w.network.add(CENTRE_SMS, responder(Reply::Valid));
    let mut u = unit("Bo");
    u.address = "X".into();
    let route = Sms::new(
        m.clone(),
        &SmsRoute {
            number: CENTRE_SMS.into(),
            credentials: "sms".into(),
            reply_timeout: Duration::from_millis(700),
        },
        &Credentials {
            username: None,
            secret: SECRET.into(),
            realm: None,
        },
        &u,
    )
    .with_mode(SmsMode::Text);
    let mut d = delivery(AlarmCause::Help);
    d.alarm.device = None;
    let r = route.deliver(&d).await;
    assert!(matches!(r, DeliveryResult::Acked { .. }), "{r:?}");
    let cmds = w.module.commands();
    assert!(cmds.iter().any(|c| c == "AT+CMGF=1"));
    assert!(
        cmds.iter()
            .any(|c| c == &format!("AT+CMGS=\"{CENTRE_SMS}\"")),
        "{cmds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_call_accepted_by_key() {
    let (w, m) = world(SimConfig::new(UNIT_NO)).await;
    w.network.add(PERSON, Party::Person(Person::accepting('1')));
    let route = voice_to_person(&m);
    let r = route.deliver(&delivery(AlarmCause::Help)).await;
    assert_eq!(
        r,
        DeliveryResult::Acked {
            by: PERSON.into(),
            callback: None
        }
    );
    let heard = w.network.records().into_iter().find_map(|r| match r {
        Record::Heard { text, .. } => Some(text),
        _ => None,
    });
    assert!(heard.unwrap().contains("emergency alarm of Anna"));
    let cmds = w.module.commands();
    assert!(cmds.iter().any(|c| c == &format!("ATD{PERSON};")));
    assert!(cmds.iter().any(|c| c == "AT+CLCC"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_id_kissoff_and_line_stays_open() {
    let (w, m) = world(SimConfig::new(UNIT_NO)).await;
    w.network.add(CID, Party::Centre(CidCentre::working()));
    let route = contact_id_to_centre(&m);
    let d = delivery(AlarmCause::Fall);
    let r = route.deliver(&d).await;
    assert_eq!(
        r,
        DeliveryResult::Acked {
            by: format!("Contact ID {CID}"),
            callback: None
        }
    );
    let msg = w.network.records().into_iter().find_map(|r| match r {
        Record::CidMessage { dtmf, valid, .. } => Some((dtmf, valid)),
        _ => None,
    });
    let (dtmf, valid) = msg.unwrap();
    assert!(valid);
    let m2 = Message::from_dtmf(&dtmf).unwrap();
    assert_eq!(
        (m2.account.as_str(), m2.qualifier, m2.event, m2.zone),
        ("1234", 1, 100, 3)
    );
    // Still in the call for speech: the module lists an active call.
    let clcc = m
        .at()
        .send(Command::new("AT+CLCC", Duration::from_millis(500)).expect("+CLCC:"))
        .await
        .unwrap();
    assert!(
        clcc.lines.iter().any(|l| l.starts_with("+CLCC: 1,0,0,")),
        "{clcc:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_commands_need_an_allowed_number_and_a_valid_code() {
    let (w, m) = world(SimConfig::new(UNIT_NO)).await;
    let mut ev = m.events();
    let code = |msg: &str| auth::code("remote-secret", msg);
    w.network.sms_to_modem(
        UNIT_NO,
        "+46799999999",
        &format!("TEST 5 {}", code("TEST 5")),
    );
    w.network.sms_to_modem(UNIT_NO, PERSON, "TEST 6 000000");
    w.network
        .sms_to_modem(UNIT_NO, PERSON, &format!("TEST 7 {}", code("TEST 7")));
    w.network
        .sms_to_modem(UNIT_NO, PERSON, &format!("TEST 7 {}", code("TEST 7")));
    w.network
        .sms_to_modem(UNIT_NO, PERSON, &format!("SILENCE 8 {}", code("SILENCE 8")));
    let mut seen = Vec::new();
    while seen.len() < 5 {
        match tokio::time::timeout(Duration::from_secs(3), ev.recv()).await {
            Ok(Ok(e @ (ModemEvent::Remote { .. } | ModemEvent::Ignored { .. }))) => seen.push(e),
            Ok(Ok(_)) => {}
            other => panic!("events stopped: {other:?} after {seen:?}"),
        }
    }
    assert!(matches!(
        &seen[0],
        ModemEvent::Ignored {
            why: RemoteRefusal::NotAllowed,
            ..
        }
    ));
    assert!(matches!(
        &seen[1],
        ModemEvent::Ignored {
            why: RemoteRefusal::WrongCode,
            ..
        }
    ));
    assert_eq!(
        seen[2],
        ModemEvent::Remote {
            from: PERSON.into(),
            command: RemoteCommand::Test
        }
    );
    assert!(matches!(
        &seen[3],
        ModemEvent::Ignored {
            why: RemoteRefusal::Replayed,
            ..
        }
    ));
    assert_eq!(
        seen[4].to_input(),
        Some(vigil::core::Input::SilenceWarnings)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_answer_only_inside_the_window_and_only_allowed_numbers() {
    let (w, m) = world(SimConfig::new(UNIT_NO)).await;
    let mut ev = m.events();
    let next_call = |ev: &mut tokio::sync::broadcast::Receiver<ModemEvent>| {
        let mut ev = ev.resubscribe();
        async move {
            loop {
                match tokio::time::timeout(Duration::from_secs(3), ev.recv()).await {
                    Ok(Ok(ModemEvent::IncomingCall { from, answered })) => return (from, answered),
                    Ok(Ok(_)) => {}
                    other => panic!("no call event: {other:?}"),
                }
            }
        }
    };
    // Window closed: not answered.
    let f = next_call(&mut ev);
    w.network
        .call_modem(UNIT_NO, PERSON, Duration::from_millis(300));
    assert_eq!(f.await, (PERSON.to_string(), false));
    tokio::time::sleep(Duration::from_millis(400)).await;
    m.auto_answer_for(Duration::from_secs(60));
    // Unknown caller inside the window: not answered.
    let f = next_call(&mut ev);
    w.network
        .call_modem(UNIT_NO, "+46711111111", Duration::from_millis(300));
    assert_eq!(f.await, ("+46711111111".to_string(), false));
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Centre number inside the window: answered.
    let f = next_call(&mut ev);
    w.network
        .call_modem(UNIT_NO, PERSON, Duration::from_secs(2));
    assert_eq!(f.await, (PERSON.to_string(), true));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(w.network.records().contains(&Record::ModemAnswered {
        from: PERSON.into()
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborting_a_voice_delivery_hangs_the_call_up() {
    let (w, m) = world(SimConfig::new(UNIT_NO)).await;
    w.network.add(
        PERSON,
        Party::Person(Person {
            pickup: vigil::modem::network::Pickup::Voicemail,
            key: None,
            drop_after: None,
        }),
    );
    let route = voice_to_person(&m);
    let d = delivery(AlarmCause::Help);
    // The runtime drops the future (a personal alarm needs the line).
    let r = tokio::time::timeout(Duration::from_millis(250), route.deliver(&d)).await;
    assert!(r.is_err(), "the voicemail never accepts: {r:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(w.module.commands().iter().any(|c| c == "ATH"));
    let clcc = m
        .at()
        .send(Command::new("AT+CLCC", Duration::from_millis(500)).expect("+CLCC:"))
        .await
        .unwrap();
    assert!(clcc.lines.is_empty(), "a call is still up: {clcc:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_call_stays_up_until_the_far_end_hangs_up() {
    let (w, m) = world(SimConfig::new(UNIT_NO)).await;
    w.network.add(
        PERSON,
        Party::Person(Person {
            pickup: vigil::modem::network::Pickup::Answers,
            key: None,
            drop_after: Some(Duration::from_millis(150)),
        }),
    );
    let mut ev = m.events();
    m.start_call(&vigil::modem::DialNumber::parse(PERSON).unwrap())
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Ok(ModemEvent::CallEnded { reason }) = ev.recv().await {
                return reason;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ended, "no carrier");
    assert!(!w.module.commands().iter().any(|c| c == "ATH"));
}

/// A call asked for while the module is being recovered fails at once, and says so in a
/// form the caller can tell apart from a number that did not answer: the modem's state, not
/// the far end's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_while_the_modem_recovers_fails_at_once_as_unusable() {
    use vigil::modem::{CallError, Unusable};
    let (w, m) = world(SimConfig::new(UNIT_NO)).await;
    w.network.add(PERSON, Party::Person(Person::accepting('1')));
    let number = vigil::modem::DialNumber::parse(PERSON).unwrap();
    // A command that timed out: the modem is unusable from now until it is recovered.
    m.report_fault("a command timed out");
    let placed = m.place_call(&number).await;
    let Err(e) = placed else {
        panic!("a call was placed on a recovering modem");
    };
    assert!(
        matches!(&e, CallError::Unusable(Unusable::Recovering(r)) if r == "a command timed out"),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "modem recovering: a command timed out");
    assert!(!w.module.commands().iter().any(|c| c.starts_with("ATD")));
}

/// A number that is busy is told apart from a modem that cannot call: the dialled number and
/// the network's answer, in the words the journal keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_number_fails_the_call_with_the_dial_failure() {
    use vigil::modem::{CallError, DialFailure};
    let (w, m) = world(SimConfig::new(UNIT_NO)).await;
    w.network.add(
        PERSON,
        Party::Person(Person {
            pickup: vigil::modem::network::Pickup::Busy,
            key: None,
            drop_after: None,
        }),
    );
    let number = vigil::modem::DialNumber::parse(PERSON).unwrap();
    let Err(e) = m.place_call(&number).await else {
        panic!("a busy number answered");
    };
    assert!(
        matches!(&e, CallError::Dial { number: n, reason: DialFailure::Busy } if *n == number),
        "{e:?}"
    );
    assert_eq!(e.to_string(), format!("call to {PERSON}: busy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdu_length_counts_the_tpdu_only() {
    let (w, m) = world(SimConfig::new(UNIT_NO)).await;
    w.network.add(CENTRE_SMS, responder(Reply::Silent));
    let p = vigil::modem::pdu::encode_submit(
        CENTRE_SMS,
        "hello",
        vigil::modem::pdu::Encoding::Gsm7,
        None,
        0,
    )
    .unwrap();
    // Counting the SMSC octet too is the classic mistake: the module refuses it.
    let wrong = Command::new(
        format!("AT+CMGS={}", p.tpdu_len + 1),
        Duration::from_secs(1),
    )
    .expect("+CMGS:")
    .with_body(p.hex.clone());
    let e = m.at().send(wrong).await.unwrap_err();
    assert!(e.to_string().contains("invalid PDU mode parameter"), "{e}");
    let right = Command::new(format!("AT+CMGS={}", p.tpdu_len), Duration::from_secs(1))
        .expect("+CMGS:")
        .with_body(p.hex);
    let r = m.at().send(right).await.unwrap();
    assert!(r.line("+CMGS:").is_some());
    assert!(w
        .network
        .records()
        .iter()
        .any(|r| matches!(r, Record::SmsDelivered { text, .. } if text == "hello")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_and_regaining_coverage_reaches_the_core_as_network_inputs() {
    let (w, m) = world(SimConfig::new(UNIT_NO)).await;
    let mut ev = m.events();
    let next_network = || {
        let mut ev = ev.resubscribe();
        async move {
            loop {
                match tokio::time::timeout(Duration::from_secs(3), ev.recv()).await {
                    Ok(Ok(e)) => {
                        if let Some(i @ vigil::core::Input::Network { .. }) = e.to_input() {
                            return i;
                        }
                    }
                    other => panic!("no registration event: {other:?}"),
                }
            }
        }
    };
    let lost = next_network();
    w.module.inject(vigil::modem::sim::Fault::NoNetwork);
    assert_eq!(
        lost.await,
        vigil::core::Input::Network { registered: false }
    );
    // While out of coverage a route fails at once, with the reason.
    w.network.add(CENTRE_SMS, responder(Reply::Valid));
    let r = sms_route(&m, "Anna")
        .deliver(&delivery(AlarmCause::Help))
        .await;
    assert!(
        matches!(&r, DeliveryResult::Failed { reason } if reason.contains("no network")),
        "{r:?}"
    );
    let back = next_network();
    w.module.clear_faults();
    assert_eq!(back.await, vigil::core::Input::Network { registered: true });
    let r = sms_route(&m, "Anna")
        .deliver(&delivery(AlarmCause::Help))
        .await;
    assert!(matches!(r, DeliveryResult::Acked { .. }), "{r:?}");
    let _ = ev.try_recv();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_re_enumerates_is_reopened_by_its_path() {
    // A USB module's tty vanishes on a power cycle and comes back under the same udev
    // name; here a symlink plays /dev/modem and points at a new pty afterwards.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("modem");
    let w1 = SimWorld::start(SimConfig::new(UNIT_NO)).unwrap();
    std::os::unix::fs::symlink(w1.module.path(), &link).unwrap();
    let at = vigil::modem::engine::open(link.to_str().unwrap(), 115_200).unwrap();
    let m = Modem::start(at, Settings::default(), vigil::modem::Timing::fast(), None);
    m.wait_usable(Duration::from_secs(5)).await.unwrap();
    let network = w1.network.clone();
    drop(w1);
    let w2 = vigil::modem::sim::SimModem::spawn(&network, SimConfig::new(UNIT_NO)).unwrap();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(w2.path(), &link).unwrap();
    network.add(CENTRE_SMS, responder(Reply::Valid));
    // The supervisor notices the dead module, and the engine finds the new device.
    tokio::time::sleep(Duration::from_millis(300)).await;
    m.wait_usable(Duration::from_secs(8)).await.unwrap();
    let r = sms_route(&m, "Anna")
        .deliver(&delivery(AlarmCause::Help))
        .await;
    assert!(matches!(r, DeliveryResult::Acked { .. }), "{r:?}");
    assert!(
        w2.commands().iter().any(|c| c == "ATE0"),
        "re-initialised on the new device"
    );
}

/// A receiver that sends its handshake right after answering, before the unit's next `+CLCC`
/// poll (500 ms, as on a real module) sees the call answered: the tones used to be read and
/// dropped inside the dial loop, and every Contact ID alarm failed at production timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_before_the_call_is_seen_answered_is_not_lost() {
    let mut config = SimConfig::new(UNIT_NO);
    config.network.handshake_delay = Duration::ZERO;
    let w = SimWorld::start(config).expect("pty");
    let m = modem_with(
        &w,
        vigil::modem::Timing {
            poll: vigil::modem::Timing::real().poll,
            ..vigil::modem::Timing::fast()
        },
    );
    m.wait_usable(Duration::from_secs(5)).await.expect("usable");
    w.network.add(CID, Party::Centre(CidCentre::working()));
    let route = contact_id_to_centre(&m);
    for n in 1..=3 {
        let r = route.deliver(&delivery(AlarmCause::Help)).await;
        // The line stays open for speech after each kissoff; the next alarm must not collide
        // with it.
        assert!(
            matches!(r, DeliveryResult::Acked { .. }),
            "alarm {n}: {r:?}"
        );
    }
}

/// A module busy for a moment (longer than one command's timeout) used to be reset with
/// `AT+CFUN=1,1`, abandoning whatever it was doing and taking the cellular routes down for a
/// minute. Now the unit resets it only if it does not answer a synchronising `AT` either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_busy_for_a_moment_is_not_reset() {
    let (w, m) = world(SimConfig::new(UNIT_NO)).await;
    w.network.add(CENTRE_SMS, responder(Reply::Valid));
    w.module
        .inject(vigil::modem::sim::Fault::busy_for(Duration::from_millis(
            1500,
        )));
    let first = sms_route(&m, "Anna")
        .deliver(&delivery(AlarmCause::Help))
        .await;
    assert!(matches!(first, DeliveryResult::Failed { .. }), "{first:?}");
    m.wait_usable(Duration::from_secs(10))
        .await
        .expect("usable again without a reset");
    assert!(
        !w.module
            .commands()
            .iter()
            .any(|c| c.starts_with("AT+CFUN=1,1")),
        "reset: {:?}",
        w.module.commands()
    );
    let next = sms_route(&m, "Anna")
        .deliver(&delivery(AlarmCause::Help))
        .await;
    assert!(matches!(next, DeliveryResult::Acked { .. }), "{next:?}");
}

/// A SIM still starting after boot answers "SIM busy" to `AT+CPIN?`. The unit used to take
/// that as a SIM fault: the modem went down and init waited its retry time (30 s on a real
/// module). Now it asks again every half second and comes up as soon as the SIM answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_sim_at_boot_is_asked_again_not_failed() {
    let mut config = SimConfig::new(UNIT_NO);
    config.faults = vec![vigil::modem::sim::Fault::SimBusy(3)];
    let w = SimWorld::start(config).expect("pty");
    let m = modem_with(
        &w,
        vigil::modem::Timing {
            // As a real module: a SIM fault is tried again only after this long.
            retry: Duration::from_secs(30),
            ..vigil::modem::Timing::fast()
        },
    );
    let mut events = m.events();
    m.wait_usable(Duration::from_secs(5))
        .await
        .expect("usable once the SIM answers");
    let asked = w
        .module
        .commands()
        .iter()
        .filter(|c| c.as_str() == "AT+CPIN?")
        .count();
    assert!(asked >= 4, "asked {asked} times");
    while let Ok(e) = events.try_recv() {
        assert!(!matches!(e, ModemEvent::Down { .. }), "{e:?}");
    }
}

/// A network that takes longer to take an SMS than the other network commands' timeout (a
/// real one can take over a minute; the manuals allow 120 s): every part of a concatenated
/// alarm text still goes out, since `AT+CMGS` has its own timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sms_submission_loses_no_part() {
    let mut config = SimConfig::new(UNIT_NO);
    config.timing.cmgs = Duration::from_millis(1200);
    let w = SimWorld::start(config).expect("pty");
    let m = modem_with(
        &w,
        vigil::modem::Timing {
            network: Duration::from_millis(800),
            sms_submit: Duration::from_millis(3000),
            ..vigil::modem::Timing::fast()
        },
    );
    m.wait_usable(Duration::from_secs(5)).await.expect("usable");
    w.network.add(CENTRE_SMS, responder(Reply::Valid));
    let r = sms_route(&m, "Łucja Wąs-Żółkiewska")
        .deliver(&delivery(AlarmCause::Help))
        .await;
    let delivered = w.network.records().into_iter().any(
        |r| matches!(r, Record::SmsDelivered { text, .. } if text.contains("Łucja Wąs-Żółkiewska")),
    );
    assert!(delivered, "every part arrived: {r:?}");
}

/// A `model` module on its network, and the unit's modem on it, everything at production
/// timing (the unit's, the module's and the network's); once the modem is usable.
async fn at_production_timing(model: vigil::modem::sim::Model) -> (SimWorld, Modem) {
    let mut config = SimConfig::new(UNIT_NO);
    config.model = model;
    config.timing = vigil::modem::sim::SimTiming::real();
    config.network = vigil::modem::network::NetTiming::real();
    let w = SimWorld::start(config).expect("pty");
    let m = modem_with(&w, vigil::modem::Timing::real());
    m.wait_usable(Duration::from_secs(60))
        .await
        .expect("usable");
    (w, m)
}

/// A voice alarm to a person who accepts, on `model`, at production timing (the unit's, the
/// module's and the network's): acknowledged, and the announcement heard. The world, for
/// what the module was sent.
async fn voice_alarm_at_production_timing(
    model: vigil::modem::sim::Model,
    profile: vigil::modem::Profile,
) -> SimWorld {
    let (w, m) = at_production_timing(model).await;
    let caps = m.capabilities().expect("init has recognised the module");
    assert_eq!(caps.profile, profile);
    assert!(caps.hears_dtmf && caps.speaks, "{caps:?}");
    assert_eq!(caps.voice_call_blocker(), None);

    w.network.add(PERSON, Party::Person(Person::accepting('1')));
    let route = voice_to_person(&m);
    let r = route.deliver(&delivery(AlarmCause::Help)).await;
    assert_eq!(
        r,
        DeliveryResult::Acked {
            by: PERSON.into(),
            callback: None
        }
    );
    let heard = w.network.records().into_iter().find_map(|r| match r {
        Record::Heard { text, .. } => Some(text),
        _ => None,
    });
    assert!(heard
        .expect("the person heard it")
        .contains("emergency alarm of Anna"));
    w
}

/// A SIMCom SIM7600 in place of the Quectel module: the unit recognises it, speaks with its
/// `AT+CTTS` (sent to the far end with `AT+CDTAM=1`), hears the accept key as `+RXDTMF`, and
/// the voice route is acknowledged. Before, the unit sent Quectel's `AT+QTTS` and
/// `AT+QTONEDET` to every module: on a SIMCom both failed and the route could never be
/// acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simcom_module_takes_a_voice_alarm_at_production_timing() {
    let w = voice_alarm_at_production_timing(
        vigil::modem::sim::Model::SimcomSim7600,
        vigil::modem::Profile::Simcom,
    )
    .await;
    let cmds = w.module.commands();
    for expected in ["AT+DDET=1", "AT+CDTAM=1"] {
        assert!(cmds.iter().any(|c| c == expected), "{expected} in {cmds:?}");
    }
    assert!(cmds.iter().any(|c| c.starts_with("AT+CTTS=2,")), "{cmds:?}");
    assert!(
        !cmds.iter().any(|c| c.starts_with("AT+QT")),
        "no Quectel commands to a SIMCom module: {cmds:?}"
    );
}

/// The same on the Quectel EC25, with its `AT+QTTS` and `+QTONEDET` reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quectel_module_takes_a_voice_alarm_at_production_timing() {
    let w = voice_alarm_at_production_timing(
        vigil::modem::sim::Model::QuectelEc25,
        vigil::modem::Profile::Quectel,
    )
    .await;
    let cmds = w.module.commands();
    assert!(cmds.iter().any(|c| c == "AT+QTONEDET=1"), "{cmds:?}");
    assert!(cmds.iter().any(|c| c.starts_with("AT+QTTS=2,")), "{cmds:?}");
    assert!(
        !cmds
            .iter()
            .any(|c| c.starts_with("AT+CTTS") || c.starts_with("AT+CPCMREG")),
        "no SIMCom commands to a Quectel module: {cmds:?}"
    );
}

/// The Quectel module is recognised too, and both call routes can work on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quectel_module_is_recognised_with_tone_detection() {
    let (_w, m) = world(SimConfig::new(UNIT_NO)).await;
    let caps = m.capabilities().expect("init has recognised the module");
    assert_eq!(caps.profile, vigil::modem::Profile::Quectel);
    assert!(
        caps.hears_dtmf && caps.hears_tones && caps.speaks,
        "{caps:?}"
    );
    assert_eq!(caps.contact_id_blocker(), None);
    assert_eq!(caps.voice_call_blocker(), None);
}

/// The simulated SIM7600 takes `AT+VTS` in its manual's form only: digits quoted and
/// separated by commas, at most 29 characters. The unit's SIMCom profile sends that form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simcom_module_takes_dtmf_only_comma_separated() {
    let mut config = SimConfig::new(UNIT_NO);
    config.model = vigil::modem::sim::Model::SimcomSim7600;
    let (w, m) = world(config).await;
    w.network.add(PERSON, Party::Person(Person::accepting('1')));
    let number = vigil::modem::DialNumber::parse(PERSON).unwrap();
    let (line, _urcs) = m.place_call(&number).await.expect("the call is answered");
    let vts = |line: &str| Command::new(line, Duration::from_secs(2));
    assert!(m.at().send(vts("AT+VTS=\"1234\"")).await.is_err());
    let too_long = format!("AT+VTS=\"{}\"", vec!["1"; 16].join(","));
    assert!(m.at().send(vts(&too_long)).await.is_err());
    for c in vigil::modem::Profile::Simcom.dtmf_commands("1234181101003015") {
        m.at()
            .send(vts(&c))
            .await
            .expect("the profile's form is taken");
    }
    line.hang_up().await;
}

/// Contact ID on the Quectel module with everything at production timing: the unit's
/// timeouts and `+CLCC` poll, the module's boot, digits and tone reports, the network's
/// ringing and the receiver's handshake and kissoff. Two alarms in a row both get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_id_at_production_timing_twice_in_a_row() {
    let (w, m) = at_production_timing(vigil::modem::sim::Model::QuectelEc25).await;
    w.network.add(CID, Party::Centre(CidCentre::working()));
    let route = contact_id_to_centre(&m);
    for n in 1..=2 {
        let r = route.deliver(&delivery(AlarmCause::Fall)).await;
        assert!(
            matches!(r, DeliveryResult::Acked { .. }),
            "alarm {n}: {r:?}"
        );
    }
    let valid = w
        .network
        .records()
        .into_iter()
        .filter(|r| matches!(r, Record::CidMessage { valid: true, .. }))
        .count();
    assert_eq!(valid, 2);
}

/// A SIMCom module hears no single tones. Without its voice port wired the unit knows at init
/// that Contact ID cannot work on it, and says what to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simcom_module_without_its_voice_port_cannot_take_contact_id() {
    let mut config = SimConfig::new(UNIT_NO);
    config.model = vigil::modem::sim::Model::SimcomSim7600;
    let (_w, m) = world(config).await;
    let caps = m.capabilities().expect("init has recognised the module");
    assert!(!caps.hears_tones && !caps.pcm, "{caps:?}");
    let why = caps.contact_id_blocker().expect("Contact ID cannot work");
    assert!(why.contains("modem.voice_port"), "{why}");
}

/// Contact ID on the SIMCom module through its voice port, everything at production timing:
/// the unit streams the call (`AT+CPCMREG=1`), hears the receiver's handshake in the audio,
/// sends the 16 digits as DTMF in the audio at DC-05's 55 ms, which the receiver decodes, and
/// hears and times the kissoff; it stops the stream before the next call. Two alarms in a row
/// both get through. Before, the route was left out on SIMCom: its detector hears DTMF only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_id_on_simcom_through_its_voice_port_twice_in_a_row() {
    let (w, m) = at_production_timing(vigil::modem::sim::Model::SimcomSim7600).await;
    let caps = m.capabilities().expect("init has recognised the module");
    assert!(caps.pcm && caps.hears_tones, "{caps:?}");
    assert_eq!(caps.contact_id_blocker(), None);
    w.network.add(CID, Party::Centre(CidCentre::working()));
    let route = contact_id_to_centre(&m);
    for n in 1..=2 {
        let r = route.deliver(&delivery(AlarmCause::Fall)).await;
        assert!(
            matches!(r, DeliveryResult::Acked { .. }),
            "alarm {n}: {r:?}"
        );
    }
    let messages: Vec<_> = w
        .network
        .records()
        .into_iter()
        .filter_map(|r| match r {
            Record::CidMessage { dtmf, valid, .. } => Some((dtmf, valid)),
            _ => None,
        })
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages.iter().all(|(_, valid)| *valid), "{messages:?}");
    let cmds = w.module.commands();
    let streams = cmds.iter().filter(|c| *c == "AT+CPCMREG=1").count();
    let stops = cmds.iter().filter(|c| *c == "AT+CPCMREG=0").count();
    assert_eq!((streams, stops), (2, 2), "{cmds:?}");
    // The digits went in the audio, not by the module's generator.
    assert!(!cmds.iter().any(|c| c.starts_with("AT+VTS")), "{cmds:?}");
}
