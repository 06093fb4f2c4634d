//! `vigil centre-demo`: the IP routes against the simulated centre on loopback, printed the
//! way an operator and an installer would follow them.

use std::net::SocketAddr;
use std::time::Duration;

use super::dc09::{Dc09Receiver, Dc09ReceiverConfig};
use super::scaip::{ScaipAnswer, ScaipReceiver, ScaipReceiverConfig};
use super::ReceiverError;
use crate::centre::dc09::{Dc09Link, Dc09Payload};
use crate::centre::scaip::ScaipLink;
use crate::config::{Credentials, Dc09Protocol, Dc09Route, ScaipRoute, SipTransport, Unit};
use crate::core::{
    Alarm, AlarmCause, AlarmId, AlarmRef, Delivery, DeliveryResult, Device, DeviceId, DeviceKind,
    RouteId, Timestamp,
};

/// Options of `vigil centre-demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct CentreDemoArgs {
    /// Print every SIP message and DC-09 frame as it goes over the wire.
    #[arg(long)]
    pub wire: bool,
}

fn unit() -> Unit {
    Unit {
        controller_id: "4612345".into(),
        contact_id_account: "1234".into(),
        sia_account: "1234".into(),
        subscriber: "Anna Svensson".into(),
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
            id: AlarmId(1),
            reference: AlarmRef::new(AlarmId(1), raised_at),
            cause,
            device: Some(Device {
                id: DeviceId(0x00C0FFEE),
                kind: DeviceKind::Personal,
                zone: 1,
                location: "Anna's pendant".into(),
            }),
            raised_at,
            evidence: None,
        },
        route: RouteId(0),
        attempt,
    }
}

fn show(route: &str, result: &DeliveryResult) {
    let text = match result {
        DeliveryResult::Acked { by, callback } => match callback {
            Some(c) => format!("ACKNOWLEDGED by {by}; centre asks for a voice call to {c}"),
            None => format!("ACKNOWLEDGED by {by}"),
        },
        DeliveryResult::Hold { retry_after } => format!("ON HOLD, resend in {retry_after:?}"),
        DeliveryResult::Declined { reason } => format!("DECLINED ({reason}): next route"),
        DeliveryResult::Failed { reason } => format!("FAILED ({reason}): next route"),
    };
    println!("  unit   | {route}: {text}");
}

fn escape(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .replace('\n', "<LF>")
        .replace('\r', "<CR>")
}

/// Runs the demonstration; returns an error only if a simulator cannot start.
pub fn run(args: &CentreDemoArgs) -> Result<(), ReceiverError> {
    if args.wire {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "vigil::centre::scaip::sip=debug",
            ))
            .without_time()
            .with_target(false)
            .try_init();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ReceiverError::Io(e.to_string()))?;
    runtime.block_on(demo(args))
}

async fn demo(args: &CentreDemoArgs) -> Result<(), ReceiverError> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let creds = Credentials {
        username: Some("4612345".into()),
        secret: "demo-password".into(),
        realm: None,
    };
    let start = |e: crate::centre::scaip::ScaipError| ReceiverError::Io(e.to_string());

    println!("== SCAIP over SIP (UDP): help button, centre acknowledges and asks for a call ==");
    let centre = ScaipReceiver::start(ScaipReceiverConfig {
        transport: SipTransport::Udp,
        realm: "centre.test".into(),
        users: vec![("4612345".into(), creds.secret.to_string())],
        receiver_user: "arc".into(),
        challenge_messages: true,
        outbound_proxy: None,
        print: true,
    })
    .await?;
    centre.script(vec![ScaipAnswer {
        mre: Some(1),
        cre: Some(62),
        tnu: Some("gsm:+46701234567".into()),
        ..ScaipAnswer::snu(0)
    }]);
    let route = ScaipRoute {
        receiver_uri: centre.uri().to_string(),
        proxy: centre.addr().to_string(),
        transport: SipTransport::Udp,
        local_uri: "sip:4612345@centre.test".into(),
        bind: loopback,
        credentials: "scaip".into(),
        answer_timeout: Duration::from_secs(3),
        hold_limit: Duration::from_secs(180),
        heartbeat: Duration::from_secs(3600),
        register_expiry: Duration::from_secs(600),
        keepalive: Duration::from_secs(30),
        tls_ca: None,
    };
    let link = ScaipLink::start("scaip", &route, &unit(), &creds)
        .await
        .map_err(start)?;
    link.wait_registered(Duration::from_secs(5)).await;
    show("scaip", &link.deliver(&delivery(AlarmCause::Help, 1)).await);

    println!("\n== SIA DC-09 over TCP, plain ADM-CID: fall ==");
    let plain = Dc09Receiver::start(Dc09ReceiverConfig {
        protocol: Dc09Protocol::Tcp,
        key: None,
        receiver_number: "1".into(),
        accounts: vec!["1234".into()],
        print: true,
    })
    .await?;
    let dc09 = |addr: SocketAddr, protocol, key: Option<&[u8]>| Dc09Route {
        receiver: addr.to_string(),
        protocol,
        receiver_number: "1".into(),
        line_prefix: "1".into(),
        key: key.map(|k| k.to_vec().into()),
        answer_timeout: Duration::from_secs(2),
        link_test: Duration::ZERO,
        payload: crate::centre::dc09::Dc09Payload::AdmCid,
    };
    let dc09_err = |e: crate::centre::dc09::Dc09Error| ReceiverError::Io(e.to_string());
    let l = Dc09Link::start(
        "dc09",
        &dc09(plain.addr(), Dc09Protocol::Tcp, None),
        "1234",
        Dc09Payload::AdmCid,
    )
    .await
    .map_err(dc09_err)?;
    show("dc09", &l.deliver(&delivery(AlarmCause::Fall, 2)).await);
    if args.wire {
        for r in plain.received() {
            println!("  wire → | {}", escape(&r.raw));
            if let Some(reply) = &r.reply {
                println!("  wire ← | {}", escape(reply));
            }
        }
    }

    println!(
        "\n== SIA DC-09 over UDP, AES-128 encrypted, unit clock 1 h fast: NAK, resync, ACK =="
    );
    let key = b"0123456789ABCDEF";
    let enc = Dc09Receiver::start(Dc09ReceiverConfig {
        protocol: Dc09Protocol::Udp,
        key: Some(key.to_vec()),
        receiver_number: "1".into(),
        accounts: vec!["1234".into()],
        print: true,
    })
    .await?;
    let l = Dc09Link::start(
        "dc09-aes",
        &dc09(enc.addr(), Dc09Protocol::Udp, Some(key)),
        "1234",
        Dc09Payload::SiaDcs,
    )
    .await
    .map_err(dc09_err)?;
    l.skew_clock(3_600_000).await;
    show("dc09-aes", &l.deliver(&delivery(AlarmCause::Help, 3)).await);
    if args.wire {
        for r in enc.received() {
            println!("  wire → | {}", escape(&r.raw));
            if let Some(reply) = &r.reply {
                println!("  wire ← | {}", escape(reply));
            }
        }
    }

    println!("\n== SCAIP centre does not answer: mty=RE, then the next route ==");
    centre.script(vec![ScaipAnswer::silent()]);
    let result = link.deliver(&delivery(AlarmCause::Help, 4)).await;
    show("scaip", &result);
    if !matches!(result, DeliveryResult::Acked { .. }) {
        println!("  unit   | the escalation plan continues on the cellular routes (SMS, Contact ID call)");
    }
    // Let the reset reach the centre's screen before the demo ends.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}
