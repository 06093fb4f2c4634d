//! SCAIP route against the simulated receiving centre: every `snu` outcome, hold, callback
//! requests, lost MESSAGEs and answers, wrong credentials, proxy challenges, heartbeats.

use std::net::SocketAddr;
use std::time::Duration;

use vigil::centre::receiver::scaip::{ScaipAnswer, ScaipReceiver, ScaipReceiverConfig};
use vigil::centre::scaip::sip::SipNode;
use vigil::centre::scaip::{self, MessageType, Registration, ScaipLink};
use vigil::config::{Credentials, ScaipRoute, SipTransport, Unit};
use vigil::core::{
    Alarm, AlarmCause, AlarmId, AlarmRef, Delivery, DeliveryResult, Device, DeviceId, DeviceKind,
    RouteId, Timestamp,
};

const USER: &str = "4612345";
const PASSWORD: &str = "s3cret-pw";

fn unit() -> Unit {
    Unit {
        controller_id: "4612345".into(),
        contact_id_account: "1234".into(),
        sia_account: "1234".into(),
        subscriber: "Anna".into(),
        address: "Storgatan 1".into(),
        language: "en".into(),
        volume: 80,
        quiet_hours: None,
    }
}

fn delivery(cause: AlarmCause, attempt: u32) -> Delivery {
    let raised_at = Timestamp::now();
    Delivery {
        alarm: Alarm {
            id: AlarmId(9),
            reference: AlarmRef::new(AlarmId(9), raised_at),
            cause,
            device: Some(Device {
                id: DeviceId(0x00C0FFEE),
                kind: DeviceKind::Personal,
                zone: 3,
                location: "Bedroom".into(),
            }),
            raised_at,
            evidence: None,
        },
        route: RouteId(0),
        attempt,
    }
}

async fn centre(transport: SipTransport, challenge_messages: bool) -> ScaipReceiver {
    ScaipReceiver::start(ScaipReceiverConfig {
        transport,
        realm: "centre.test".into(),
        users: vec![(USER.into(), PASSWORD.into())],
        receiver_user: "arc".into(),
        challenge_messages,
        outbound_proxy: None,
        print: true,
    })
    .await
    .expect("receiver starts")
}

fn route(r: &ScaipReceiver, transport: SipTransport) -> ScaipRoute {
    ScaipRoute {
        receiver_uri: r.uri().to_string(),
        proxy: r.addr().to_string(),
        transport,
        local_uri: format!("sip:{USER}@centre.test"),
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        credentials: "scaip".into(),
        answer_timeout: Duration::from_secs(3),
        hold_limit: Duration::from_secs(180),
        heartbeat: Duration::from_secs(3600),
        register_expiry: Duration::from_secs(600),
        keepalive: Duration::from_secs(30),
        tls_ca: None,
    }
}

fn creds(secret: &str) -> Credentials {
    Credentials {
        username: Some(USER.into()),
        secret: secret.into(),
        realm: None,
    }
}

async fn link_with(cfg: &ScaipRoute, secret: &str) -> ScaipLink {
    let l = ScaipLink::start("scaip", cfg, &unit(), &creds(secret))
        .await
        .expect("link starts");
    l.wait_registered(Duration::from_secs(10)).await;
    l
}

async fn setup(transport: SipTransport) -> (ScaipReceiver, ScaipLink) {
    let r = centre(transport, false).await;
    let l = link_with(&route(&r, transport), PASSWORD).await;
    assert!(
        matches!(l.registration(), Registration::Registered(_)),
        "{:?}",
        l.registration()
    );
    (r, l)
}

fn acked(result: &DeliveryResult) -> Option<Option<String>> {
    match result {
        DeliveryResult::Acked { callback, .. } => Some(callback.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn alarm_acknowledged_over_udp() {
    let (r, l) = setup(SipTransport::Udp).await;
    let d = delivery(AlarmCause::Help, 1);
    let result = l.deliver(&d).await;
    assert_eq!(acked(&result), Some(None), "{result:?}");
    let got = r.received();
    assert_eq!(got.len(), 1);
    let m = got[0].mrq.as_ref().expect("valid mrq");
    assert_eq!(m.reference.len(), scaip::SESSION_REF_LEN);
    assert!(m.reference.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(
        matches!(&result, DeliveryResult::Acked { by, .. } if by.contains(&m.reference)),
        "the acknowledgement names the ref: {result:?}"
    );
    assert_eq!(
        (m.dty, m.stc, m.lco),
        (3, Some(10), Some(12)),
        "Annex D bedroom"
    );
    assert_eq!(m.cid, "4612345");
    assert_eq!(m.lte.as_deref(), Some("Bedroom"));
    assert_eq!(m.lva, None);
    // No call audio: the centre is told not to call back over SIP.
    assert_eq!(m.crd.as_deref(), Some("no-voice:"));
    assert_eq!(m.did.as_deref(), Some("00C0FFEE"));
    assert_eq!(got[0].answered, Some(0));
    assert!(
        r.wait_until(Duration::from_secs(5), |g, _| g[0].mrs_delivered
            == Some(true))
            .await
    );
    assert!(
        got[0].display.contains("manual alarm"),
        "{}",
        got[0].display
    );
    assert_eq!(r.registrations()[0].aor, format!("{USER}@centre.test"));
}

#[tokio::test]
async fn alarm_acknowledged_over_tcp() {
    let (r, l) = setup(SipTransport::Tcp).await;
    let result = l.deliver(&delivery(AlarmCause::Fall, 1)).await;
    assert_eq!(acked(&result), Some(None), "{result:?}");
    let m = r.received()[0].mrq.clone().unwrap();
    assert_eq!((m.dty, m.stc), (5, Some(9)));
    assert!(l.contact().ends_with(";transport=tcp"));
}

#[tokio::test]
async fn technical_reports_carry_their_status_codes() {
    let (r, l) = setup(SipTransport::Udp).await;
    for (cause, stc) in [
        (AlarmCause::MainsLost, 85),
        (AlarmCause::MainsRestored, 86),
        (AlarmCause::PendantBatteryLow, 16),
        (AlarmCause::PendantMissing, 123),
        (AlarmCause::PeriodicTest, 102),
    ] {
        assert!(acked(&l.deliver(&delivery(cause, 1)).await).is_some());
        let last = r.received().last().and_then(|g| g.mrq.clone()).unwrap();
        assert_eq!(last.stc, Some(stc), "{cause:?}");
    }
}

#[tokio::test]
async fn callback_requests_reach_the_core() {
    let (r, l) = setup(SipTransport::Udp).await;
    r.script(vec![
        ScaipAnswer {
            mre: Some(1),
            cre: Some(62),
            tnu: Some("gsm:+46701234567".into()),
            ..ScaipAnswer::snu(0)
        },
        ScaipAnswer {
            mre: Some(1),
            cre: Some(61),
            ..ScaipAnswer::snu(0)
        },
    ]);
    let first = l.deliver(&delivery(AlarmCause::Help, 1)).await;
    assert_eq!(acked(&first), Some(Some("gsm:+46701234567".into())));
    l.set_predefined_callback("gsm:+46800000");
    let second = l.deliver(&delivery(AlarmCause::Help, 2)).await;
    assert_eq!(acked(&second), Some(Some("gsm:+46800000".into())));
}

#[tokio::test]
async fn hold_then_acknowledged_with_the_same_ref() {
    let (r, l) = setup(SipTransport::Udp).await;
    r.script(vec![ScaipAnswer::snu(4), ScaipAnswer::snu(0)]);
    let first = l.deliver(&delivery(AlarmCause::Help, 1)).await;
    match first {
        DeliveryResult::Hold { retry_after } => {
            assert!(
                retry_after >= Duration::from_secs(5) && retry_after <= Duration::from_secs(20)
            );
        }
        other => panic!("expected hold, got {other:?}"),
    }
    let second = l.deliver(&delivery(AlarmCause::Help, 2)).await;
    assert!(acked(&second).is_some(), "{second:?}");
    let got = r.received();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].mrq.as_ref().unwrap().reference,
        got[1].mrq.as_ref().unwrap().reference,
        "a resend after hold keeps its ref"
    );
}

#[tokio::test]
async fn hold_beyond_the_limit_resets_and_fails() {
    let r = centre(SipTransport::Udp, false).await;
    let mut cfg = route(&r, SipTransport::Udp);
    cfg.hold_limit = Duration::from_millis(1);
    let l = link_with(&cfg, PASSWORD).await;
    r.set_default(ScaipAnswer::snu(4));
    assert!(matches!(
        l.deliver(&delivery(AlarmCause::Help, 1)).await,
        DeliveryResult::Hold { .. }
    ));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let result = l.deliver(&delivery(AlarmCause::Help, 2)).await;
    assert!(
        matches!(&result, DeliveryResult::Failed { reason } if reason.contains("hold")),
        "{result:?}"
    );
    assert!(
        r.wait_until(Duration::from_secs(5), |g, _| g.len() == 3)
            .await
    );
    let got = r.received();
    assert_eq!(got[2].mrq.as_ref().unwrap().mty, Some(MessageType::Reset));
    assert_eq!(
        got[2].mrq.as_ref().unwrap().reference,
        got[0].mrq.as_ref().unwrap().reference
    );
}

#[tokio::test]
async fn not_treated_and_busy_go_to_the_next_route() {
    let (r, l) = setup(SipTransport::Udp).await;
    r.script(vec![ScaipAnswer::snu(5), ScaipAnswer::snu(6)]);
    for (attempt, word) in [(1, "not treated"), (2, "busy")] {
        let result = l.deliver(&delivery(AlarmCause::Help, attempt)).await;
        assert!(
            matches!(&result, DeliveryResult::Declined { reason } if reason.contains(word)),
            "{result:?}"
        );
    }
    // Sessions ended by 5 and 6 need no reset.
    assert_eq!(r.received().len(), 2);
}

#[tokio::test]
async fn error_snu_fails_with_its_code_and_resets() {
    let (r, l) = setup(SipTransport::Udp).await;
    // A receiver sends codes with 1-4 digits: 0002 is 2.
    r.script(vec![ScaipAnswer::snu(2)]);
    let result = l.deliver(&delivery(AlarmCause::Help, 1)).await;
    assert!(
        matches!(&result, DeliveryResult::Failed { reason } if reason.contains("snu=2") && reason.contains("invalid format")),
        "{result:?}"
    );
    assert!(
        r.wait_until(Duration::from_secs(5), |g, _| g.len() == 2)
            .await
    );
    assert_eq!(
        r.received()[1].mrq.as_ref().unwrap().mty,
        Some(MessageType::Reset)
    );
}

#[tokio::test]
async fn lost_answer_resets_and_fails() {
    let (r, l) = setup(SipTransport::Udp).await;
    r.script(vec![ScaipAnswer::silent()]);
    let d = delivery(AlarmCause::Help, 1);
    let result = l.deliver(&d).await;
    assert!(
        matches!(&result, DeliveryResult::Failed { reason } if reason.contains("no <mrs>") && reason.contains("mty=RE")),
        "{result:?}"
    );
    assert!(
        r.wait_until(Duration::from_secs(5), |g, _| g.len() == 2)
            .await
    );
    let got = r.received();
    let re = got[1].mrq.as_ref().unwrap();
    assert_eq!(re.mty, Some(MessageType::Reset));
    assert_eq!(
        Some(&re.reference),
        got[0].mrq.as_ref().map(|m| &m.reference)
    );
    // The next attempt is a new session with a new ref, and gets through.
    let again = l.deliver(&delivery(AlarmCause::Help, 2)).await;
    assert!(acked(&again).is_some(), "{again:?}");
}

#[tokio::test]
async fn lost_message_over_udp_is_retransmitted() {
    let (r, l) = setup(SipTransport::Udp).await;
    r.lose_messages(1);
    let result = l.deliver(&delivery(AlarmCause::Help, 1)).await;
    assert!(acked(&result).is_some(), "{result:?}");
    assert_eq!(
        r.received().len(),
        1,
        "the retransmission is one request, not two alarms"
    );
}

#[tokio::test]
async fn lost_message_over_tcp_fails() {
    let (r, l) = setup(SipTransport::Tcp).await;
    r.lose_messages(1);
    let result = l.deliver(&delivery(AlarmCause::Help, 1)).await;
    assert!(
        matches!(&result, DeliveryResult::Failed { reason } if reason.contains("no SIP response")),
        "{result:?}"
    );
    assert!(r.received().is_empty());
}

#[tokio::test]
async fn wrong_credentials_fail_clearly() {
    let r = centre(SipTransport::Udp, false).await;
    let l = link_with(&route(&r, SipTransport::Udp), "not-the-password").await;
    assert!(
        matches!(l.registration(), Registration::Failed(ref why) if why.contains("wrong user name or password")),
        "{:?}",
        l.registration()
    );
    let result = l.deliver(&delivery(AlarmCause::Help, 1)).await;
    assert!(
        matches!(&result, DeliveryResult::Failed { reason } if reason.contains("not registered")),
        "{result:?}"
    );
    assert!(r.auth_failures() >= 1);
    assert!(r.registrations().is_empty());
    assert!(r.received().is_empty());
}

#[tokio::test]
async fn refused_tcp_connection_fails_clearly() {
    let r = centre(SipTransport::Tcp, false).await;
    let mut cfg = route(&r, SipTransport::Tcp);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    cfg.proxy = closed.local_addr().unwrap().to_string();
    drop(closed);
    let l = link_with(&cfg, PASSWORD).await;
    assert!(
        matches!(l.registration(), Registration::Failed(ref why) if why.contains("cannot connect")),
        "{:?}",
        l.registration()
    );
    let result = l.deliver(&delivery(AlarmCause::Help, 1)).await;
    assert!(
        matches!(&result, DeliveryResult::Failed { reason } if reason.contains("not registered")),
        "{result:?}"
    );
}

#[tokio::test]
async fn proxy_challenge_on_message_is_answered() {
    let r = centre(SipTransport::Tcp, true).await;
    let l = link_with(&route(&r, SipTransport::Tcp), PASSWORD).await;
    let result = l.deliver(&delivery(AlarmCause::Help, 1)).await;
    assert!(acked(&result).is_some(), "{result:?}");
    assert_eq!(r.received().len(), 1);
}

#[tokio::test]
async fn message_from_outside_the_proxy_is_refused() {
    let (_r, l) = setup(SipTransport::Udp).await;
    let contact = l.contact().to_string();
    let target: SocketAddr = contact.rsplit('@').next().unwrap().parse().unwrap();
    let (node, _incoming) = SipNode::bind(SipTransport::Udp, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let local = node.local_addr();
    let send = |user: &'static str| {
        let node = node.clone();
        async move {
            let body = "<mrs><ref>X1</ref><snu>0</snu></mrs>";
            let build = move |branch: &str| {
                format!(
                    "MESSAGE sip:{user}@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\n\
                     From: <sip:arc@centre.test>;tag=1\r\nTo: <sip:{user}@centre.test>\r\nCall-ID: c{user}\r\n\
                     CSeq: 1 MESSAGE\r\nContent-Type: application/scaip+xml\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            };
            node.transaction(target, &build, Duration::from_secs(5))
                .await
                .unwrap()
                .status()
        }
    };
    // Only the proxy may send requests to the unit, whoever they name.
    assert_eq!(send("someone-else").await, Some(403));
    assert_eq!(send(USER).await, Some(403));
}

#[tokio::test]
async fn heartbeats_follow_the_centres_interval() {
    let r = centre(SipTransport::Udp, false).await;
    r.set_default(ScaipAnswer {
        hbi: Some(30),
        ..ScaipAnswer::snu(0)
    });
    let mut cfg = route(&r, SipTransport::Udp);
    cfg.heartbeat = Duration::from_millis(200);
    let l = link_with(&cfg, PASSWORD).await;
    assert!(
        r.wait_until(Duration::from_secs(10), |g, _| g.iter().any(|g| g
            .mrq
            .as_ref()
            .is_some_and(|m| m.mty == Some(MessageType::Ping))))
            .await
    );
    // The centre's hbi (30 min) now rules.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while l.heartbeat_interval() != Duration::from_secs(1800)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(l.heartbeat_interval(), Duration::from_secs(1800));
}

#[tokio::test]
async fn registration_is_refreshed() {
    let r = centre(SipTransport::Udp, false).await;
    let mut cfg = route(&r, SipTransport::Udp);
    cfg.register_expiry = Duration::from_secs(2);
    let _l = link_with(&cfg, PASSWORD).await;
    assert!(
        r.wait_until(Duration::from_secs(10), |_, regs| regs.len() >= 2)
            .await
    );
    let regs = r.registrations();
    assert_eq!(regs[0].contact, regs[1].contact);
    assert_eq!(regs[0].expires, 2);
}

/// A registrar that lost its bindings (a restart) answers the next MESSAGE 404: the unit
/// registers again at once and the alarm is acknowledged on SCAIP, once, without RE.
async fn registrar_restart(transport: SipTransport) {
    let (r, l) = setup(transport).await;
    let before = r.registrations().len();
    r.forget_bindings();
    let result = l.deliver(&delivery(AlarmCause::Help, 1)).await;
    assert!(acked(&result).is_some(), "{result:?}");
    assert!(r.registrations().len() > before, "registered again");
    let alarms: Vec<_> = r.received().into_iter().filter_map(|g| g.mrq).collect();
    assert_eq!(alarms.len(), 1, "one alarm, no duplicate: {alarms:#?}");
    assert!(alarms.iter().all(|m| m.mty != Some(MessageType::Reset)));
}

#[tokio::test]
async fn registrar_restart_over_udp_registers_again_at_once() {
    registrar_restart(SipTransport::Udp).await;
}

#[tokio::test]
async fn registrar_restart_over_tcp_registers_again_at_once() {
    registrar_restart(SipTransport::Tcp).await;
}

#[tokio::test]
async fn unregister_removes_the_binding() {
    let (r, l) = setup(SipTransport::Udp).await;
    l.unregister().await.expect("unregistered");
    let regs = r.registrations();
    assert_eq!(regs.last().map(|b| b.expires), Some(0));
    let result = l.deliver(&delivery(AlarmCause::Help, 1)).await;
    assert!(
        matches!(result, DeliveryResult::Failed { ref reason } if reason.contains("unregistered")),
        "{result:?}"
    );
    assert_eq!(r.registrations().len(), 2, "nothing registered again");
}

#[tokio::test]
async fn an_aborted_attempt_leaves_the_route_usable() {
    let (r, l) = setup(SipTransport::Udp).await;
    r.script(vec![ScaipAnswer::silent()]);
    let aborted = tokio::time::timeout(
        Duration::from_millis(300),
        l.deliver(&delivery(AlarmCause::Help, 1)),
    )
    .await;
    assert!(
        aborted.is_err(),
        "the attempt was still waiting for its mrs"
    );
    let result = l.deliver(&delivery(AlarmCause::Help, 2)).await;
    assert!(acked(&result).is_some(), "{result:?}");
}

mod props {
    use super::*;
    use proptest::prelude::*;
    use vigil::centre::scaip::xml::{self, Mrq, Mrs, ScaipBody};

    proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = xml::parse_untrusted(&bytes);
        }

        #[test]
        fn tag_soup_never_panics(s in "(<|>|/|mrq|mrs|ref|snu|cid|dty|&amp;|&#x41;|&|;|[a-z0-9 ]){0,60}") {
            let _ = xml::parse_untrusted(s.as_bytes());
        }

        #[test]
        fn mrq_round_trips(r in "[A-Za-z0-9]{1,16}", cid in "[0-9]{1,32}", dty in 0u16..10000,
                           stc in proptest::option::of(0u16..10000), lte in proptest::option::of("[ -~]{0,40}")) {
            let m = Mrq { reference: r, cid, dty, mty: Some(scaip::MessageType::Message), stc,
                          lte: lte.map(|s| s.trim().to_string()), ..Mrq::default() };
            prop_assert_eq!(xml::parse(m.emit().as_bytes()).unwrap(), ScaipBody::Request(m));
        }

        #[test]
        fn mrs_round_trips(r in "[A-Za-z0-9]{1,16}", snu in 0u16..10000, mre in proptest::option::of(0u16..10),
                           hbi in proptest::option::of(1u32..=1440)) {
            let m = Mrs { reference: r, snu, mre, cre: None, tnu: None, hbi };
            prop_assert_eq!(xml::parse(m.emit().as_bytes()).unwrap(), ScaipBody::Response(m));
        }
    }
}

/// With the credential's realm configured, the password answers only that realm's
/// challenges: a registrar (or anything on the path) challenging for another realm gets no
/// digest answer, and the failure names both realms.
#[tokio::test]
async fn digest_answers_only_the_configured_realm() {
    let r = centre(SipTransport::Udp, false).await;
    let cfg = route(&r, SipTransport::Udp);
    for (realm, registers) in [("elsewhere.test", false), ("centre.test", true)] {
        let creds = Credentials {
            realm: Some(realm.into()),
            ..creds(PASSWORD)
        };
        let l = ScaipLink::start("scaip", &cfg, &unit(), &creds)
            .await
            .expect("link starts");
        let state = l.wait_registered(Duration::from_secs(10)).await;
        if registers {
            assert!(matches!(state, Registration::Registered(_)), "{state:?}");
        } else {
            let Registration::Failed(why) = state else {
                panic!("registered with a password for another realm: {state:?}")
            };
            assert!(
                why.contains("centre.test") && why.contains("elsewhere.test"),
                "{why}"
            );
        }
    }
    // Only the right realm's REGISTER carried an answer, and was bound.
    assert_eq!(r.registrations().len(), 1);
}

fn centre_config(transport: SipTransport) -> ScaipReceiverConfig {
    ScaipReceiverConfig {
        transport,
        realm: "centre.test".into(),
        users: vec![(USER.into(), PASSWORD.into())],
        receiver_user: "arc".into(),
        challenge_messages: false,
        outbound_proxy: None,
        print: true,
    }
}

/// A registrar that restarts closes the unit's TCP flow and forgets its binding. The unit used
/// to notice only at its next refresh (half the expiry) or when an alarm's MESSAGE met a 404;
/// meanwhile the centre could not reach it. Now the dropped flow is opened again and
/// registered at once, under the new connection's address, and the next alarm is acknowledged
/// over SCAIP the first time.
#[tokio::test]
async fn a_dropped_flow_is_opened_and_registered_again_at_once() {
    let (r, l) = setup(SipTransport::Tcp).await;
    let addr = r.addr();
    drop(r);
    let r = restart(SipTransport::Tcp, addr).await;
    assert!(
        r.wait_until(Duration::from_secs(5), |_, regs| !regs.is_empty())
            .await,
        "no REGISTER after the flow dropped"
    );
    // The contact registered is the new flow's address (the system may give the same port).
    let regs = r.registrations();
    assert!(
        regs.iter()
            .any(|b| b.expires > 0 && sip_contact(&b.contact) == l.contact()),
        "{regs:?} {}",
        l.contact()
    );
    let result = l.deliver(&delivery(AlarmCause::Help, 1)).await;
    assert!(acked(&result).is_some(), "{result:?}");
    let alarms: Vec<_> = r.received().into_iter().filter_map(|g| g.mrq).collect();
    assert_eq!(alarms.len(), 1, "{alarms:#?}");
    assert!(alarms.iter().all(|m| m.mty != Some(MessageType::Reset)));
}

/// The centre again on `addr`, once the old one has let go of it.
async fn restart(transport: SipTransport, addr: SocketAddr) -> ScaipReceiver {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match ScaipReceiver::start_at(centre_config(transport), addr).await {
            Ok(r) => return r,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the centre cannot start again on {addr}: {e}"),
        }
    }
}

fn sip_contact(c: &str) -> String {
    c.trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or(c)
        .to_string()
}

/// Keep-alives are answered by a live proxy and cost no registration: CRLF pings on TCP,
/// OPTIONS on UDP.
#[tokio::test]
async fn keep_alives_to_a_live_proxy_keep_the_registration() {
    for transport in [SipTransport::Udp, SipTransport::Tcp] {
        let r = centre(transport, false).await;
        let mut cfg = route(&r, transport);
        cfg.keepalive = Duration::from_millis(300);
        let l = link_with(&cfg, PASSWORD).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            matches!(l.registration(), Registration::Registered(_)),
            "{transport:?}: {:?}",
            l.registration()
        );
        assert_eq!(
            r.registrations().len(),
            1,
            "{transport:?}: a keep-alive failed and forced a REGISTER"
        );
    }
}

/// A proxy that stops answering over UDP (its address now a dead port) fails the keep-alive:
/// the unit registers again at once, and says it cannot.
#[tokio::test]
async fn a_failed_keep_alive_registers_again() {
    let r = centre(SipTransport::Udp, false).await;
    let mut cfg = route(&r, SipTransport::Udp);
    cfg.keepalive = Duration::from_millis(300);
    let l = link_with(&cfg, PASSWORD).await;
    let addr = r.addr();
    drop(r);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while matches!(l.registration(), Registration::Registered(_)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still registered with a dead proxy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It comes back: the unit is registered again without waiting for the refresh.
    let r = restart(SipTransport::Udp, addr).await;
    assert!(
        r.wait_until(Duration::from_secs(8), |_, regs| !regs.is_empty())
            .await,
        "not registered again"
    );
}

/// A registrar that restarts over UDP forgets the binding and tells nobody: the centre's
/// `<mrs>` then cannot reach the unit. The keep-alive asks for the bindings and registers again
/// as soon as its own is missing.
#[tokio::test]
async fn a_binding_the_registrar_forgot_over_udp_is_registered_again() {
    let r = centre(SipTransport::Udp, false).await;
    let mut cfg = route(&r, SipTransport::Udp);
    cfg.keepalive = Duration::from_millis(300);
    let l = link_with(&cfg, PASSWORD).await;
    let before = r.registrations().len();
    r.forget_bindings();
    assert!(
        r.wait_until(Duration::from_secs(5), |_, regs| regs.len() > before)
            .await,
        "not registered again"
    );
    let result = l.deliver(&delivery(AlarmCause::Help, 1)).await;
    assert!(acked(&result).is_some(), "{result:?}");
}

/// A centre that stopped answering makes the route unhealthy; heartbeats then probe it every
/// few seconds and report it healthy the moment an `<mrs>` comes back.
#[tokio::test]
async fn an_unanswering_centre_is_probed_and_reported_up_when_it_answers() {
    let (r, l) = setup(SipTransport::Udp).await;
    let mut health = l.health();
    assert!(*health.borrow());
    r.set_default(ScaipAnswer::silent());
    let result = l.deliver(&delivery(AlarmCause::Help, 1)).await;
    assert!(
        matches!(result, DeliveryResult::Failed { .. }),
        "{result:?}"
    );
    let down = tokio::time::timeout(Duration::from_secs(2), health.wait_for(|up| !*up))
        .await
        .is_ok();
    assert!(down, "still healthy after an unanswered alarm");
    r.set_default(ScaipAnswer::snu(0));
    let up = tokio::time::timeout(Duration::from_secs(12), health.wait_for(|up| *up))
        .await
        .is_ok();
    assert!(up, "not reported up again");
    let pings = r
        .received()
        .into_iter()
        .filter_map(|g| g.mrq)
        .filter(|m| m.mty == Some(MessageType::Ping))
        .count();
    assert!(pings >= 1, "the probe is a heartbeat");
}

/// With call audio the unit offers its SIP address for the voice call-back (`crd`), which it
/// answers; without, `no-voice:` (above).
#[tokio::test]
async fn crd_offers_the_sip_voice_path_only_when_the_unit_can_speak() {
    let (r, l) = setup(SipTransport::Udp).await;
    l.set_call_audio(std::sync::Arc::new(|| {
        Ok(
            Box::new(vigil::voice::sim_call::SimCallPort::new(Vec::new()).0)
                as Box<dyn vigil::voice::call_port::CallAudioPort>,
        )
    }));
    let result = l.deliver(&delivery(AlarmCause::Help, 1)).await;
    assert!(matches!(result, DeliveryResult::Acked { .. }), "{result:?}");
    let got = r.received();
    let m = got[0].mrq.as_ref().expect("valid mrq");
    assert_eq!(m.crd.as_deref(), Some("sip:4612345@centre.test"));
}
