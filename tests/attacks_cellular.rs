//! Attacks from the phone network and from a centre's replies against the cellular side,
//! carried out against the simulated module on a pty: nothing from outside reaches the
//! modem as a command, and look-alike numbers count for nothing.

use std::time::Duration;

use vigil::centre::contact_id::ContactIdCall;
use vigil::centre::sms::{Sms, MAX_WRONG_CODES};
use vigil::config::{ContactIdRoute, Credentials, SmsRoute, Unit};
use vigil::core::{
    Alarm, AlarmCause, AlarmId, AlarmRef, Delivery, DeliveryResult, RouteId, Timestamp,
};
use vigil::modem::device::Settings;
use vigil::modem::network::{CidCentre, Party, Record, Reply, Responder};
use vigil::modem::sim::{SimConfig, SimWorld};
use vigil::modem::RemoteRefusal;
use vigil::modem::{auth, Modem, ModemEvent, NumberError};

const UNIT_NO: &str = "+46700000001";
const PERSON: &str = "+46700000020";
/// Same last nine digits as [`PERSON`], different subscriber.
const LOOK_ALIKE: &str = "999700000020";
const CENTRE_SMS: &str = "+46700000010";
/// Same last nine digits as [`CENTRE_SMS`], different subscriber.
const CENTRE_LOOK_ALIKE: &str = "999700000010";
const SECRET: &str = "route-secret-0123456789abcdef";
const CONTROLLER: &str = "4711";

fn sms_route(m: &Modem, reply_timeout: Duration) -> Sms {
    Sms::new(
        m.clone(),
        &SmsRoute {
            number: CENTRE_SMS.into(),
            credentials: "sms".into(),
            reply_timeout,
        },
        &Credentials {
            username: None,
            secret: SECRET.into(),
            realm: None,
        },
        &Unit {
            controller_id: CONTROLLER.into(),
            contact_id_account: "1234".into(),
            sia_account: "1234".into(),
            subscriber: "Anna Svensson".into(),
            address: "Storgatan 1, Uppsala".into(),
            language: "en".into(),
            volume: 80,
            quiet_hours: None,
        },
    )
}

fn delivery(attempt: u32) -> Delivery {
    let raised_at = Timestamp::from_secs(1_764_100_000);
    let id = AlarmId(7);
    Delivery {
        alarm: Alarm {
            id,
            reference: AlarmRef::new(id, raised_at),
            cause: AlarmCause::Help,
            device: None,
            raised_at,
            evidence: None,
        },
        route: RouteId(0),
        attempt,
    }
}

fn alarm_sms_count(w: &SimWorld) -> usize {
    w.network
        .records()
        .iter()
        .filter(|r| matches!(r, Record::SmsDelivered { to, .. } if to == CENTRE_SMS))
        .count()
}

/// Waits (on the simulated network's record, bounded) until `n` alarm SMS reached the centre.
async fn sms_reached_centre(w: &SimWorld, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while alarm_sms_count(w) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no alarm SMS reached the centre"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn world() -> (SimWorld, Modem) {
    let w = SimWorld::start(SimConfig::new(UNIT_NO)).expect("pty");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn centre_call_back_cannot_inject_commands_or_call_anyone() {
    let (w, m) = world().await;
    // A `tnu` XML-decoded from `&#13;`: a second command after the number.
    let injected = m.check_call_back("gsm:+46700000020;\rAT+CFUN=0;");
    assert_eq!(injected, Err(NumberError::Character(';')));
    // Well formed, but not a number the household allowed.
    let stranger = m.check_call_back("gsm:+46709999999");
    assert!(
        matches!(stranger, Err(NumberError::NotAllowed(_))),
        "{stranger:?}"
    );
    let sip = m.check_call_back("sip:attacker@example.org");
    assert!(matches!(sip, Err(NumberError::Scheme(_))), "{sip:?}");
    // The allowed number is dialled, and only as a number.
    let ok = m.check_call_back("gsm:+46700000020").expect("allowed");
    let _ = m.start_call(&ok).await;
    let commands = w.module.commands();
    assert!(
        !commands
            .iter()
            .any(|c| c.contains("CFUN=0") || c.contains("09999")),
        "{commands:?}"
    );
    let dials: Vec<_> = commands.iter().filter(|c| c.starts_with("ATD")).collect();
    assert_eq!(dials, vec!["ATD+46700000020;"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_caller_is_not_auto_answered() {
    let (w, m) = world().await;
    let mut ev = m.events();
    m.auto_answer_for(Duration::from_secs(60));
    w.network
        .call_modem(UNIT_NO, LOOK_ALIKE, Duration::from_millis(300));
    let (from, answered) = loop {
        match tokio::time::timeout(Duration::from_secs(3), ev.recv()).await {
            Ok(Ok(ModemEvent::IncomingCall { from, answered })) => break (from, answered),
            Ok(Ok(_)) => {}
            other => panic!("no call event: {other:?}"),
        }
    };
    assert_eq!(from, LOOK_ALIKE);
    assert!(!answered);
    assert!(
        !w.module.commands().iter().any(|c| c == "ATA"),
        "{:?}",
        w.module.commands()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_sender_cannot_send_remote_commands() {
    let (w, m) = world().await;
    let mut ev = m.events();
    let code = auth::code("remote-secret", "TEST 7");
    w.network
        .sms_to_modem(UNIT_NO, LOOK_ALIKE, &format!("TEST 7 {code}"));
    loop {
        match tokio::time::timeout(Duration::from_secs(3), ev.recv()).await {
            Ok(Ok(ModemEvent::Ignored { from, why })) => {
                assert_eq!(from, LOOK_ALIKE);
                assert_eq!(why, RemoteRefusal::NotAllowed);
                break;
            }
            Ok(Ok(ModemEvent::Remote { from, .. })) => panic!("command accepted from {from}"),
            Ok(Ok(_)) => {}
            other => panic!("no SMS event: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_codes_close_the_sms_route_for_the_alarm() {
    let (w, m) = world().await;
    w.network.add(
        CENTRE_SMS,
        Party::Responder(Responder {
            secret: SECRET.into(),
            reply: Reply::Silent,
        }),
    );
    let route = std::sync::Arc::new(sms_route(&m, Duration::from_secs(20)));
    let d = delivery(1);
    let reference = d.alarm.reference.to_string();
    let task = {
        let (route, d) = (route.clone(), d.clone());
        tokio::spawn(async move { route.deliver(&d).await })
    };
    sms_reached_centre(&w, 1).await;
    for guess in 0..MAX_WRONG_CODES {
        let text = format!("ACK {reference} {guess:010}");
        w.network.sms_to_modem(UNIT_NO, CENTRE_SMS, &text);
    }
    let right = auth::ack_text(SECRET, CONTROLLER, &reference, 1);
    w.network.sms_to_modem(UNIT_NO, CENTRE_SMS, &right);
    let result = task.await.unwrap();
    assert!(
        matches!(&result, DeliveryResult::Failed { reason } if reason.contains("wrong")),
        "{result:?}"
    );
    // The next attempt on this route takes no more codes and sends nothing: the alarm goes
    // on by the other routes.
    let again = route.deliver(&delivery(2)).await;
    assert!(matches!(again, DeliveryResult::Failed { .. }), "{again:?}");
    assert_eq!(alarm_sms_count(&w), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_reply_from_a_look_alike_number_does_not_acknowledge() {
    let (w, m) = world().await;
    w.network.add(
        CENTRE_SMS,
        Party::Responder(Responder {
            secret: SECRET.into(),
            reply: Reply::FromNumber(CENTRE_LOOK_ALIKE.into()),
        }),
    );
    let route = sms_route(&m, Duration::from_millis(1500));
    let result = route.deliver(&delivery(1)).await;
    assert!(
        matches!(result, DeliveryResult::Failed { .. }),
        "{result:?}"
    );
    assert!(w
        .network
        .records()
        .iter()
        .any(|r| matches!(r, Record::SmsReplied { from, .. } if from == CENTRE_LOOK_ALIKE)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_of_an_earlier_attempt_does_not_acknowledge_a_later_one() {
    let (w, m) = world().await;
    w.network.add(
        CENTRE_SMS,
        Party::Responder(Responder {
            secret: SECRET.into(),
            reply: Reply::Silent,
        }),
    );
    let route = std::sync::Arc::new(sms_route(&m, Duration::from_millis(1500)));
    let d = delivery(2);
    let reference = d.alarm.reference.to_string();
    let task = {
        let route = route.clone();
        tokio::spawn(async move { route.deliver(&d).await })
    };
    sms_reached_centre(&w, 1).await;
    let captured = auth::ack_text(SECRET, CONTROLLER, &reference, 1);
    w.network.sms_to_modem(UNIT_NO, CENTRE_SMS, &captured);
    let result = task.await.unwrap();
    assert!(
        matches!(result, DeliveryResult::Failed { .. }),
        "{result:?}"
    );
}

/// A line that answers the Contact ID call and plays 1400 Hz after the digits, but not for a
/// kissoff's 750–1000 ms (a handshake sent again, a tone generator that never stops), does not
/// acknowledge the alarm: every attempt goes unanswered and the route fails, so the next route
/// carries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1400_hz_tone_of_the_wrong_length_is_no_kissoff() {
    const CID: &str = "+46700000030";
    let (w, m) = world().await;
    let unit = Unit {
        controller_id: CONTROLLER.into(),
        contact_id_account: "1234".into(),
        sia_account: "1234".into(),
        subscriber: "Anna".into(),
        address: "Storgatan 1".into(),
        language: "en".into(),
        volume: 80,
        quiet_hours: None,
    };
    let route = ContactIdCall::new(m.clone(), &ContactIdRoute { number: CID.into() }, &unit);
    for (ms, acked) in [(120, false), (3000, false), (900, true)] {
        w.network.add(
            CID,
            Party::Centre(CidCentre {
                kissoff_ms: ms,
                ..CidCentre::working()
            }),
        );
        let r = route.deliver(&delivery(1)).await;
        assert_eq!(
            matches!(r, DeliveryResult::Acked { .. }),
            acked,
            "a {ms} ms tone: {r:?}"
        );
        m.hang_up().await;
    }
}
