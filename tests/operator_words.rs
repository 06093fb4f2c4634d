//! What a person reads: `vigil log`, the demo's timeline and the simulated centre's operator
//! display say what happened in words, with no internal labels (`mains-lost`, `Silence`,
//! `window-expired`, `+CMGS [1, 2]`), the device as the operator knows it and the unit's
//! alarm reference as the centre sees it. Golden lines: a change of wording shows here.

use std::time::Duration;

use vigil::core::{
    Alarm, AlarmCause, AlarmId, AlarmRef, BaseButton, CallEvent, Device, DeviceId, DeviceKind,
    EscalationReason, Heard, Input, Record, RouteId, Timestamp,
};
use vigil::journal::Journal;
use vigil::runtime::timeline::Timeline;
use vigil::runtime::Event;

const T0: Timestamp = Timestamp(1_764_000_000_000);

fn alarm(id: u64, cause: AlarmCause, device: Option<Device>) -> Alarm {
    Alarm {
        id: AlarmId(id),
        reference: AlarmRef::new(AlarmId(id), T0),
        cause,
        device,
        raised_at: T0,
        evidence: None,
    }
}

fn neck_pendant() -> Device {
    Device {
        id: DeviceId(0x00A1_B2C3),
        kind: DeviceKind::Fall,
        zone: 1,
        location: "Anna's neck pendant".into(),
    }
}

#[test]
fn the_journal_reads_as_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&dir.path().join("journal.sqlite")).unwrap();
    j.set_route_names(vec!["arc-scaip".into(), "arc-sms".into()]);
    let help = alarm(1, AlarmCause::Help, Some(neck_pendant()));
    let mains = alarm(2, AlarmCause::MainsLost, None);
    let at = |s: u64| T0 + Duration::from_secs(s);
    for r in [
        Record::Raised {
            alarm: help.clone(),
            window_until: Some(at(30)),
            frame: Some(1),
        },
        Record::Escalated {
            alarm: help.id,
            at: at(30),
            reason: EscalationReason::WindowExpired,
        },
        Record::AttemptStarted {
            alarm: help.id,
            attempt: 1,
            route: RouteId(1),
            at: at(30),
        },
        Record::AttemptFailed {
            alarm: help.id,
            attempt: 1,
            route: RouteId(1),
            at: at(40),
            reason: "the SMS went out (2 parts) but no acknowledgement came back within 10 s"
                .into(),
        },
        Record::Acknowledged {
            alarm: help.id,
            attempt: 2,
            route: RouteId(0),
            at: at(41),
            by: "SCAIP sip:alarm@arc.test".into(),
        },
        Record::CallBackRefused {
            alarm: help.id,
            at: at(41),
            reason: "+46709999999 is not on remote.allowed_numbers".into(),
        },
        Record::Raised {
            alarm: mains.clone(),
            window_until: None,
            frame: None,
        },
        Record::Escalated {
            alarm: mains.id,
            at: at(50),
            reason: EscalationReason::Immediate,
        },
    ] {
        j.append(&r).unwrap();
    }
    let lines: Vec<String> = j
        .timeline(50)
        .unwrap()
        .into_iter()
        .map(|e| e.text)
        .collect();
    assert_eq!(
        lines,
        vec![
            "RAISED from Anna's neck pendant: help button pressed; window 30 s",
            "escalating: nobody cancelled it in time",
            "attempt 1 via arc-sms",
            "attempt 1 via arc-sms failed: the SMS went out (2 parts) but no acknowledgement came back within 10 s",
            "ACKNOWLEDGED via arc-scaip (attempt 2) by SCAIP sip:alarm@arc.test",
            "the centre's call-back was REFUSED: +46709999999 is not on remote.allowed_numbers",
            "RAISED at the base unit: mains power lost",
            "escalating: no cancel window for this alarm",
        ]
    );
}

#[test]
fn the_live_timeline_has_no_internal_labels() {
    let mut t = Timeline::new(vec!["arc-scaip".into()]);
    let line = |t: &mut Timeline, input: Input| t.line(&Event::Input(T0, input)).unwrap();
    let heard = |heard| Input::Heard {
        alarm: AlarmId(2),
        heard,
    };
    assert!(
        line(&mut t, heard(Heard::Silence)).ends_with("voice    alarm #2: no answer, only silence")
    );
    assert!(line(&mut t, heard(Heard::Unclear))
        .ends_with("voice    alarm #2: the microphone could not tell"));
    assert!(line(&mut t, heard(Heard::Speech)).ends_with("voice    alarm #2: the person spoke"));
    let escalated = t
        .line(&Event::Output(
            T0,
            vigil::core::Output::Persist(Record::Escalated {
                alarm: AlarmId(2),
                at: T0,
                reason: EscalationReason::WindowExpired,
            }),
        ))
        .unwrap();
    assert!(
        escalated.ends_with("journal  alarm #2: escalating (nobody cancelled it in time)"),
        "{escalated}"
    );
    let refused = line(
        &mut t,
        Input::Call {
            alarm: AlarmId(2),
            event: CallEvent::Refused {
                reason: "not allowed".into(),
            },
        },
    );
    assert!(!refused.contains("Refused {"), "{refused}");
    // Once an alarm is cancelled, the microphone's verdict on it is not shown.
    let cancelled = t.line(&Event::Output(
        T0,
        vigil::core::Output::Persist(Record::Cancelled {
            alarm: AlarmId(3),
            at: T0,
            by: vigil::core::CancelSource::BaseButton,
        }),
    ));
    assert!(cancelled.is_some_and(|l| l.contains("CANCELLED")));
    assert_eq!(
        t.line(&Event::Input(
            T0,
            Input::Heard {
                alarm: AlarmId(3),
                heard: Heard::Unclear
            }
        )),
        None
    );
    // Routes by the names the installer gave them; states as sentences, not `true`/`false`.
    let golden = [
        (
            Input::RouteUp { route: RouteId(0) },
            "route    arc-scaip works again",
        ),
        (
            Input::RouteUnusable {
                route: RouteId(0),
                why: Some("the module has no tone detection".into()),
            },
            "route    arc-scaip cannot work here: the module has no tone detection",
        ),
        (
            Input::Network { registered: true },
            "modem    registered on the mobile network",
        ),
        (
            Input::Network { registered: false },
            "modem    not registered on any mobile network",
        ),
        (
            Input::Button(BaseButton::Help),
            "button   help button pressed on the base unit",
        ),
        (
            Input::Jamming { active: true },
            "radio    jamming detected: the radio channel is blocked",
        ),
        (
            Input::BaseBattery { low: true },
            "power    the base unit's backup battery is low",
        ),
    ];
    for (input, want) in golden {
        let got = line(&mut t, input);
        assert!(got.ends_with(want), "{got:?} should end {want:?}");
    }
}

/// The simulated centre's operator line names the event, the device type and id, where it is
/// and the unit's own alarm reference (`stt`), as a receiving centre's screen does.
#[tokio::test]
async fn the_operator_sees_the_device_the_place_and_the_alarm_reference() {
    use vigil::centre::receiver::scaip::{ScaipReceiver, ScaipReceiverConfig};
    use vigil::centre::scaip::ScaipLink;
    use vigil::config::{Credentials, ScaipRoute, SipTransport, Unit};
    use vigil::core::Delivery;

    let r = ScaipReceiver::start(ScaipReceiverConfig {
        transport: SipTransport::Udp,
        realm: "arc.test".into(),
        users: vec![("4600123456".into(), "pw-0123456789".into())],
        receiver_user: "alarm".into(),
        challenge_messages: false,
        outbound_proxy: None,
        print: false,
    })
    .await
    .unwrap();
    let route = ScaipRoute {
        receiver_uri: r.uri().to_string(),
        proxy: r.addr().to_string(),
        transport: SipTransport::Udp,
        local_uri: "sip:4600123456@arc.test".into(),
        bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        credentials: "arc".into(),
        answer_timeout: Duration::from_secs(3),
        hold_limit: Duration::from_secs(180),
        heartbeat: Duration::from_secs(3600),
        register_expiry: Duration::from_secs(600),
        keepalive: Duration::from_secs(30),
        tls_ca: None,
    };
    let creds = Credentials {
        username: None,
        secret: "pw-0123456789".into(),
        realm: None,
    };
    let unit = Unit {
        controller_id: "4600123456".into(),
        contact_id_account: "1234".into(),
        sia_account: "1234".into(),
        subscriber: "Anna Svensson".into(),
        address: "Storgatan 1".into(),
        language: "en".into(),
        volume: 80,
        quiet_hours: None,
    };
    let link = ScaipLink::start("arc-scaip", &route, &unit, &creds)
        .await
        .unwrap();
    link.wait_registered(Duration::from_secs(5)).await;
    let mut bathroom = neck_pendant();
    bathroom.kind = DeviceKind::Fixed;
    bathroom.location = "Bathroom".into();
    let help = alarm(7, AlarmCause::Help, Some(bathroom));
    let d = Delivery {
        alarm: help.clone(),
        route: RouteId(0),
        attempt: 1,
    };
    link.deliver(&d).await;
    let got = r.received();
    let line = &got.last().expect("the centre got the alarm").display;
    assert!(
        line.contains(
            "ME 0010 manual alarm from fixed trigger 00A1B2C3 at \"Bathroom\" (bathroom, location code 011)"
        ) && line.contains(&format!("alarm {}", help.reference)),
        "{line}"
    );
}
