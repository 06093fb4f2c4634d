//! SCAIP over SIP over TLS (feature `tls`): the unit checks the centre's certificate,
//! registers over the TLS connection and gets its `<mrs>` back on it.
#![cfg(feature = "tls")]

use std::net::SocketAddr;
use std::time::Duration;

use vigil::centre::receiver::scaip::{ScaipReceiver, ScaipReceiverConfig};
use vigil::centre::scaip::{Registration, ScaipLink};
use vigil::config::{Credentials, ScaipRoute, SipTransport, Unit};
use vigil::core::{
    Alarm, AlarmCause, AlarmId, AlarmRef, Delivery, DeliveryResult, Device, DeviceId, DeviceKind,
    RouteId, Timestamp,
};

const CA: &[u8] = include_bytes!("data/tls_ca.pem");
const OTHER_CA: &[u8] = include_bytes!("data/tls_other_ca.pem");
const CERT: &[u8] = include_bytes!("data/tls_centre.pem");
const KEY: &[u8] = include_bytes!("data/tls_centre.key");

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

fn creds() -> Credentials {
    Credentials {
        username: Some("4612345".into()),
        secret: "tls-pw".into(),
        realm: None,
    }
}

async fn centre() -> ScaipReceiver {
    ScaipReceiver::start_tls(
        ScaipReceiverConfig {
            transport: SipTransport::Tls,
            realm: "centre.test".into(),
            users: vec![("4612345".into(), "tls-pw".into())],
            receiver_user: "arc".into(),
            challenge_messages: true,
            outbound_proxy: None,
            print: true,
        },
        CERT,
        KEY,
    )
    .await
    .expect("centre starts")
}

fn route(r: &ScaipReceiver) -> ScaipRoute {
    ScaipRoute {
        receiver_uri: r.uri().to_string(),
        proxy: r.addr().to_string(),
        transport: SipTransport::Tls,
        local_uri: "sip:4612345@centre.test".into(),
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

fn delivery() -> Delivery {
    let raised_at = Timestamp::now();
    Delivery {
        alarm: Alarm {
            id: AlarmId(3),
            reference: AlarmRef::new(AlarmId(3), raised_at),
            cause: AlarmCause::Help,
            device: Some(Device {
                id: DeviceId(0x00C0FFEE),
                kind: DeviceKind::Personal,
                zone: 1,
                location: "Hall".into(),
            }),
            raised_at,
            evidence: None,
        },
        route: RouteId(0),
        attempt: 1,
    }
}

#[tokio::test]
async fn alarm_acknowledged_over_tls() {
    let r = centre().await;
    let l = ScaipLink::start_tls("scaip-tls", &route(&r), &unit(), &creds(), CA)
        .await
        .expect("link starts");
    let state = l.wait_registered(Duration::from_secs(10)).await;
    assert!(matches!(state, Registration::Registered(_)), "{state:?}");
    assert!(l.contact().ends_with(";transport=tls"));
    let result = l.deliver(&delivery()).await;
    assert!(matches!(result, DeliveryResult::Acked { .. }), "{result:?}");
    assert_eq!(r.received().len(), 1);
    assert_eq!(r.received()[0].mrq.as_ref().and_then(|m| m.stc), Some(10));
}

#[tokio::test]
async fn untrusted_centre_certificate_is_refused() {
    let r = centre().await;
    let started = ScaipLink::start_tls("scaip-tls", &route(&r), &unit(), &creds(), OTHER_CA).await;
    let err = started.err().expect("the handshake must fail");
    assert!(err.to_string().contains("TLS"), "{err}");
    assert!(r.registrations().is_empty());
}
