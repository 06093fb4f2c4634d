//! Attacks on the SCAIP route from the home network, carried out on loopback against the
//! unit's SCAIP link and the simulated centre: each must have no effect.

use std::net::SocketAddr;
use std::time::Duration;

use vigil::centre::receiver::scaip::{ScaipAnswer, ScaipReceiver, ScaipReceiverConfig};
use vigil::centre::scaip::{Registration, ScaipLink};
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

fn delivery(attempt: u32) -> Delivery {
    let raised_at = Timestamp::now();
    Delivery {
        alarm: Alarm {
            id: AlarmId(9),
            reference: AlarmRef::new(AlarmId(9), raised_at),
            cause: AlarmCause::Help,
            device: Some(Device {
                id: DeviceId(0x00C0_FFEE),
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

async fn setup(transport: SipTransport) -> (ScaipReceiver, ScaipLink) {
    let r = ScaipReceiver::start(ScaipReceiverConfig {
        transport,
        realm: "centre.test".into(),
        users: vec![(USER.into(), PASSWORD.into())],
        receiver_user: "arc".into(),
        challenge_messages: false,
        outbound_proxy: None,
        print: false,
    })
    .await
    .expect("receiver starts");
    let route = ScaipRoute {
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
    };
    let creds = Credentials {
        username: Some(USER.into()),
        secret: PASSWORD.into(),
        realm: None,
    };
    let l = ScaipLink::start("scaip", &route, &unit(), &creds)
        .await
        .expect("link starts");
    l.wait_registered(Duration::from_secs(10)).await;
    assert!(matches!(l.registration(), Registration::Registered(_)));
    (r, l)
}

/// `host:port` of a contact URI.
fn contact_addr(contact: &str) -> SocketAddr {
    let hostport = contact
        .trim_start_matches("sip:")
        .split(';')
        .next()
        .and_then(|s| s.rsplit_once('@').map(|(_, h)| h))
        .expect("contact host");
    hostport.parse().expect("contact address")
}

fn forged_mrs(contact: &str, reference: &str, snu: u16) -> String {
    let body = format!("<mrs><ref>{reference}</ref><snu>{snu}</snu><hbi>1</hbi></mrs>");
    format!(
        "MESSAGE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKforged{snu}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:arc@centre.test>;tag=f1\r\nTo: <sip:{USER}@centre.test>\r\n\
         Call-ID: forged-{snu}@attacker\r\nCSeq: 1 MESSAGE\r\n\
         Content-Type: application/scaip+xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Finding: a `<mrs><snu>0</snu>` sent straight to the unit's SIP port from a socket that is
/// not the proxy closed the alarm. Now it gets 403, the heartbeat interval does not change and
/// the alarm is acknowledged only by the centre's own answer.
#[tokio::test]
async fn forged_acknowledgement_from_outside_the_proxy_is_refused() {
    let (r, l) = setup(SipTransport::Udp).await;
    r.set_default(ScaipAnswer::silent());
    let heartbeat = l.heartbeat_interval();
    let d = delivery(1);
    let deliver = l.deliver(&d);
    tokio::pin!(deliver);
    let attack = async {
        assert!(
            r.wait_until(Duration::from_secs(5), |got, _| got
                .iter()
                .any(|g| g.mrq.is_some()))
                .await
        );
        let sent = r.received();
        let reference = sent
            .iter()
            .find_map(|g| g.mrq.as_ref())
            .map(|m| m.reference.clone())
            .expect("the centre got the alarm");
        let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = contact_addr(&l.contact());
        let mut statuses = Vec::new();
        for snu in [0u16, 4] {
            attacker
                .send_to(forged_mrs(&l.contact(), &reference, snu).as_bytes(), to)
                .await
                .unwrap();
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(3), attacker.recv(&mut buf))
                .await
                .expect("the unit answers")
                .unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            assert!(!text.contains("Vigil"), "product banner sent: {text}");
            statuses.push(text.lines().next().unwrap_or("").to_string());
        }
        statuses
    };
    let (result, statuses) = tokio::join!(&mut deliver, attack);
    for s in &statuses {
        assert!(s.starts_with("SIP/2.0 403"), "forged mrs answered {s}");
    }
    assert!(
        !matches!(result, DeliveryResult::Acked { .. }),
        "a forged mrs acknowledged the alarm: {result:?}"
    );
    assert_eq!(l.heartbeat_interval(), heartbeat, "a forged hbi changed it");
    // The genuine centre still acknowledges the next attempt.
    r.set_default(ScaipAnswer::snu(0));
    let result = l.deliver(&delivery(2)).await;
    assert!(matches!(result, DeliveryResult::Acked { .. }), "{result:?}");
}

/// Collects everything the unit logs, at every level.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Finding: debug logs printed the whole `Authorization` header of REGISTER and MESSAGE.
/// Now no level of the log holds a digest answer.
#[tokio::test(flavor = "current_thread")]
async fn no_authorization_value_in_the_logs() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (r, l) = setup(SipTransport::Udp).await;
    r.set_default(ScaipAnswer::snu(0));
    let result = l.deliver(&delivery(1)).await;
    assert!(matches!(result, DeliveryResult::Acked { .. }), "{result:?}");
    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(log.contains("REGISTER"), "the log was captured");
    for line in log.lines() {
        let lower = line.to_ascii_lowercase();
        assert!(
            !lower.contains("response=") && !lower.contains("digest username"),
            "a digest answer in the log: {line}"
        );
    }
}

/// Finding: 1,100 idle TCP connections to the SIP listener used up the unit's descriptors
/// ("Too many open files") and every IP route failed. Now connections beyond the cap are
/// closed as they arrive and the route keeps working.
#[tokio::test]
async fn a_flood_of_idle_connections_leaves_the_route_working() {
    use tokio::io::AsyncReadExt;
    let (r, l) = setup(SipTransport::Tcp).await;
    // The unit's TCP listener: the contact names the flow, the listener is on the same host.
    let listener = l.local_listener().expect("a TCP listener");
    let mut flood = Vec::new();
    for _ in 0..1100 {
        match tokio::net::TcpStream::connect(listener).await {
            Ok(s) => flood.push(s),
            Err(e) => panic!("connect {}: {e}", flood.len()),
        }
    }
    // Every connection the unit has no room for is closed by it (EOF), not left open.
    let mut set = tokio::task::JoinSet::new();
    for mut s in flood {
        set.spawn(async move {
            let mut b = [0u8; 16];
            let closed = matches!(
                tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await,
                Ok(Ok(0)) | Ok(Err(_))
            );
            (closed, s)
        });
    }
    let mut closed = 0;
    let mut held = Vec::new();
    while let Some(Ok((c, s))) = set.join_next().await {
        closed += usize::from(c);
        held.push(s);
    }
    assert!(
        closed >= 1100 - vigil::centre::scaip::sip::MAX_ACCEPTED,
        "only {closed} of 1100 idle connections closed"
    );
    // The route still delivers while the flood's survivors stay connected.
    r.set_default(ScaipAnswer::snu(0));
    let result = l.deliver(&delivery(1)).await;
    assert!(matches!(result, DeliveryResult::Acked { .. }), "{result:?}");
    drop(held);
}

/// An INVITE sent straight to the unit's SIP port from someone on the home network, while
/// the unit answers the centre's calls after an alarm: refused (403), never answered, so nobody
/// but the centre through its proxy can open the home's microphone.
#[tokio::test]
async fn a_call_from_outside_the_proxy_is_never_answered() {
    let (_r, l) = setup(SipTransport::Udp).await;
    l.set_call_audio(std::sync::Arc::new(|| {
        Ok(
            Box::new(vigil::voice::sim_call::SimCallPort::new(Vec::new()).0)
                as Box<dyn vigil::voice::call_port::CallAudioPort>,
        )
    }));
    l.answer_calls_until(tokio::time::Instant::now() + Duration::from_secs(60));
    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = attacker.local_addr().unwrap();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 8 0\r\n",
        me.port()
    );
    let invite = format!(
        "INVITE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKspy1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:arc@centre.test>;tag=spy\r\nTo: <sip:{USER}@centre.test>\r\n\
         Call-ID: spy@attacker\r\nCSeq: 1 INVITE\r\nContact: <sip:spy@{me}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len(),
        contact = l.contact(),
    );
    attacker
        .send_to(invite.as_bytes(), contact_addr(&l.contact()))
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), attacker.recv(&mut buf))
        .await
        .expect("the unit answers")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(text.starts_with("SIP/2.0 403"), "{text}");
    assert!(!text.contains("m=audio"), "no media offered: {text}");
    let calls = l.calls().borrow().clone();
    assert_eq!((calls.answered, calls.active), (0, false), "{calls:?}");
}

/// The centre names whom the unit calls back (`mre` with a `tnu`), but a call opens the home's
/// microphone: the unit calls only plain `sip:` addresses in the centre's own domain, and a
/// URI carrying a line break (a header smuggled into the INVITE) or another scheme is refused.
#[tokio::test]
async fn a_call_back_goes_only_to_the_centres_own_domain() {
    let (_r, l) = setup(SipTransport::Udp).await;
    assert_eq!(l.may_call("sip:operator@centre.test"), Ok(()));
    assert_eq!(l.may_call("sip:operator@CENTRE.test;transport=udp"), Ok(()));
    use vigil::centre::scaip::CallRefused;
    let kind = |r: &Result<(), CallRefused>| match r {
        Ok(()) => "allowed",
        Err(CallRefused::NotSip(_)) => "not sip",
        Err(CallRefused::Characters) => "characters",
        Err(CallRefused::OutsideDomain { .. }) => "outside the domain",
    };
    for (bad, why) in [
        ("sip:eavesdropper@attacker.example", "outside the domain"),
        (
            "sip:operator@centre.test.attacker.example",
            "outside the domain",
        ),
        ("sip:centre.test", "outside the domain"),
        ("sips:operator@attacker.example", "not sip"),
        ("tel:+46700000000", "not sip"),
        (
            "sip:operator@centre.test\r\nContact: <sip:x@attacker.example>",
            "characters",
        ),
        ("sip:op <sip:x@attacker.example>@centre.test", "characters"),
    ] {
        let refused = l.may_call(bad);
        assert_eq!(kind(&refused), why, "{bad:?}: {refused:?}");
        // Placing the call checks the same, before anything is sent.
        let placed = l.place_call(bad).await;
        assert!(
            matches!(&placed, Err(vigil::centre::scaip::ScaipError::Refused(_))),
            "{bad:?}: {placed:?}"
        );
    }
}
