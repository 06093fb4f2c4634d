//! Interoperability: the unit registers with Kamailio (registrar with digest auth), sends its
//! alarm MESSAGE through Kamailio (proxy with 407 challenge) to the simulated centre, and the
//! centre's `<mrs>` comes back through Kamailio's location lookup to the unit's contact.
//!
//! Needs the Debian `kamailio` package. Reported as ignored when it is missing (build.rs looks
//! for it), except under CI (`CI=true`), where the tests run and a missing Kamailio fails.

mod kamailio_support;

use std::net::SocketAddr;
use std::time::Duration;

use kamailio_support::*;

use vigil::centre::receiver::scaip::{ScaipAnswer, ScaipReceiver, ScaipReceiverConfig};
use vigil::centre::scaip::{MessageType, Registration, ScaipLink};
use vigil::config::{Credentials, SipTransport};
use vigil::core::{
    Alarm, AlarmCause, AlarmId, AlarmRef, Delivery, DeliveryResult, Device, DeviceId, DeviceKind,
    RouteId, Timestamp,
};

const USER: &str = kamailio_support::USER;
const PASSWORD: &str = kamailio_support::PASSWORD;

fn delivery() -> Delivery {
    let raised_at = Timestamp::now();
    Delivery {
        alarm: Alarm {
            id: AlarmId(1),
            reference: AlarmRef::new(AlarmId(1), raised_at),
            cause: AlarmCause::Help,
            device: Some(Device {
                id: DeviceId(0x00C0FFEE),
                kind: DeviceKind::Personal,
                zone: 1,
                location: "Living room".into(),
            }),
            raised_at,
            evidence: None,
        },
        route: RouteId(0),
        attempt: 1,
    }
}

/// The receiving centre at `at`, reached through Kamailio at `proxy`.
async fn centre_behind(proxy: SocketAddr, at: SocketAddr) -> ScaipReceiver {
    ScaipReceiver::start_at(
        ScaipReceiverConfig {
            transport: SipTransport::Udp,
            realm: "centre.test".into(),
            users: vec![],
            receiver_user: "arc".into(),
            challenge_messages: false,
            outbound_proxy: Some(proxy),
            print: true,
        },
        at,
    )
    .await
    .expect("centre starts")
}

#[cfg_attr(
    not(vigil_has_kamailio),
    ignore = "Kamailio is not installed: apt-get install kamailio"
)]
#[tokio::test]
async fn alarm_through_kamailio_over_udp() {
    alarm_through_kamailio(SipTransport::Udp).await;
}

#[cfg_attr(
    not(vigil_has_kamailio),
    ignore = "Kamailio is not installed: apt-get install kamailio"
)]
#[tokio::test]
async fn alarm_through_kamailio_over_tcp() {
    alarm_through_kamailio(SipTransport::Tcp).await;
}

async fn alarm_through_kamailio(transport: SipTransport) {
    let Some(binary) = kamailio_or_skip() else {
        return;
    };
    // Kamailio must know the centre's address and the centre Kamailio's: reserve the
    // centre's port, start Kamailio, then start the centre on that port.
    let centre_addr = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let (mut kamailio, proxy) = start_kamailio(&binary, centre_addr);
    let centre = centre_behind(proxy, centre_addr).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Ok(Some(status)) = kamailio.child.try_wait() {
        panic!("kamailio exited: {status}\n{}", kamailio.log());
    }
    centre.set_default(ScaipAnswer::snu(0));

    let link = registered_link(proxy, transport, PASSWORD).await;
    let state = link.wait_registered(Duration::from_secs(10)).await;
    assert!(
        matches!(state, Registration::Registered(_)),
        "{state:?}\n--- kamailio log ---\n{}",
        kamailio.log()
    );
    let result = link.deliver(&delivery()).await;
    assert!(
        matches!(result, DeliveryResult::Acked { .. }),
        "{result:?}\n--- kamailio log ---\n{}",
        kamailio.log()
    );
    let got = centre.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].via_hops, 2, "the MESSAGE went through Kamailio");
    let m = got[0].mrq.as_ref().expect("valid mrq");
    assert_eq!(
        (m.stc, m.dty, m.mty),
        (Some(10), 3, Some(MessageType::Message))
    );
    assert_eq!(got[0].from, format!("sip:{USER}@centre.test"));
    assert!(
        centre
            .wait_until(Duration::from_secs(5), |g, _| g[0].mrs_delivered
                == Some(true))
            .await
    );

    // Wrong credentials are refused by Kamailio's registrar.
    let bad = registered_link(proxy, transport, "wrong").await;
    let state = bad.wait_registered(Duration::from_secs(10)).await;
    assert!(
        matches!(state, Registration::Failed(ref why) if why.contains("wrong user name or password")),
        "{state:?}"
    );
}

/// Kamailio restarted (its location table is in memory, so every binding is lost; over TCP the
/// unit's connection drops too). The unit notices by itself, from the dropped flow or from the
/// keep-alive's binding query, and registers again, so the next alarm is acknowledged over
/// SCAIP at the first attempt, without a reset and without a duplicate.
async fn kamailio_restart(transport: SipTransport) {
    let Some(binary) = kamailio_or_skip() else {
        return;
    };
    let centre_addr = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let (kamailio, proxy) = start_kamailio(&binary, centre_addr);
    let centre = centre_behind(proxy, centre_addr).await;
    centre.set_default(ScaipAnswer::snu(0));
    let creds = Credentials {
        username: Some(USER.into()),
        secret: PASSWORD.into(),
        realm: None,
    };
    let mut cfg = route(proxy, transport);
    cfg.keepalive = Duration::from_secs(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let link = loop {
        let l = ScaipLink::start("scaip-kamailio", &cfg, &unit(), &creds).await;
        if let Ok(l) = l {
            if matches!(
                l.wait_registered(Duration::from_secs(3)).await,
                Registration::Registered(_)
            ) {
                break l;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not registered with Kamailio:\n{}",
            kamailio.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let first = kamailio.log();
    drop(kamailio);
    // The old processes may hold the port a moment longer: start again until it binds.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let kamailio = loop {
        let (mut k, _) = start_kamailio_on(&binary, centre_addr, proxy.port());
        tokio::time::sleep(Duration::from_millis(500)).await;
        match k.child.try_wait() {
            Ok(None) => break k,
            _ if std::time::Instant::now() < deadline => continue,
            _ => panic!("kamailio did not start again:\n{}", k.log()),
        }
    };
    // The binding query (UDP) runs every second; a dropped flow (TCP) is noticed at once.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let result = link.deliver(&delivery()).await;
    assert!(
        matches!(result, DeliveryResult::Acked { .. }),
        "{transport:?}: {result:?}\n--- kamailio log ---\n{}\n--- before the restart ---\n{first}",
        kamailio.log()
    );
    let alarms: Vec<_> = centre
        .received()
        .into_iter()
        .filter_map(|g| g.mrq)
        .collect();
    assert_eq!(alarms.len(), 1, "one alarm, no duplicate: {alarms:#?}");
    assert!(alarms.iter().all(|m| m.mty != Some(MessageType::Reset)));
}

#[cfg_attr(
    not(vigil_has_kamailio),
    ignore = "Kamailio is not installed: apt-get install kamailio"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_restart_over_udp_is_noticed_and_registered_again() {
    kamailio_restart(SipTransport::Udp).await;
}

#[cfg_attr(
    not(vigil_has_kamailio),
    ignore = "Kamailio is not installed: apt-get install kamailio"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_restart_over_tcp_is_noticed_and_registered_again() {
    kamailio_restart(SipTransport::Tcp).await;
}
