//! Attacks from the phone network and from a centre's replies against the cellular side,
//! carried out against the simulated module on a pty: nothing from outside reaches the
//! modem as a command, and look-alike numbers count for nothing.

use std::time::Duration;

use vigil::core::Timestamp;
use vigil::modem::device::Settings;
use vigil::modem::sim::{SimConfig, SimWorld};
use vigil::modem::{auth, Modem, ModemEvent, NumberError};

const UNIT_NO: &str = "+46700000001";
const PERSON: &str = "+46700000020";
/// Same last nine digits as [`PERSON`], different subscriber.
const LOOK_ALIKE: &str = "999700000020";

async fn world() -> (SimWorld, Modem) {
    let w = SimWorld::start(SimConfig::new(UNIT_NO)).expect("pty");
    let m = w
        .open_modem(Settings {
            sim_pin: Some("1234".into()),
            allowed_numbers: vec![PERSON.into()],
            remote_secret: Some("remote-secret".into()),
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
    m.auto_answer_until(Timestamp(Timestamp::now().0 + 60_000));
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
                assert!(why.contains("not an allowed"), "{why}");
                break;
            }
            Ok(Ok(ModemEvent::Remote { from, .. })) => panic!("command accepted from {from}"),
            Ok(Ok(_)) => {}
            other => panic!("no SMS event: {other:?}"),
        }
    }
}
