//! Interoperability: the unit registers with Kamailio (registrar with digest auth), sends its
//! alarm MESSAGE through Kamailio (proxy with 407 challenge) to the simulated centre, and the
//! centre's `<mrs>` comes back through Kamailio's location lookup to the unit's contact.
//!
//! Needs the Debian `kamailio` package. Reported as ignored when it is missing (build.rs looks
//! for it), except under CI (`CI=true`), where the tests run and a missing Kamailio fails.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vigil::centre::receiver::scaip::{ScaipAnswer, ScaipReceiver, ScaipReceiverConfig};
use vigil::centre::scaip::{MessageType, Registration, ScaipLink};
use vigil::config::{Credentials, ScaipRoute, SipTransport, Unit};
use vigil::core::{
    Alarm, AlarmCause, AlarmId, AlarmRef, Delivery, DeliveryResult, Device, DeviceId, DeviceKind,
    RouteId, Timestamp,
};

const USER: &str = "4612345";
const PASSWORD: &str = "kam-s3cret";

fn kamailio_binary() -> Option<PathBuf> {
    ["/usr/sbin/kamailio", "/usr/local/sbin/kamailio"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A Kamailio process that is stopped (SIGTERM, so it takes its children along) on drop.
struct Kamailio {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Kamailio {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A port free for both UDP and TCP, for Kamailio to listen on both.
fn free_port() -> u16 {
    loop {
        let port = free_udp_port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn config(port: u16, centre: SocketAddr) -> String {
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
alias="centre.test"

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "xlog.so"
loadmodule "textops.so"

modparam("usrloc", "db_mode", 0)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (is_method("REGISTER")) {{
        if (!pv_www_authenticate("$td", "{PASSWORD}", "0")) {{
            www_challenge("$td", "0");
            exit;
        }}
        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}
    if (is_method("MESSAGE")) {{
        if ($rU == "arc") {{
            # From a unit to the alarm centre: authenticate the sender as a proxy does.
            if (!pv_proxy_authenticate("$fd", "{PASSWORD}", "0")) {{
                proxy_challenge("$fd", "0");
                exit;
            }}
            consume_credentials();
            $du = "sip:{centre}";
            t_relay();
            exit;
        }}
        # From the centre to a unit: to the contact it registered.
        if (!lookup("location")) {{
            sl_send_reply("404", "Not Found");
            exit;
        }}
        t_relay();
        exit;
    }}
    sl_send_reply("405", "Method Not Allowed");
}}
"#
    )
}

fn start_kamailio(binary: &Path, centre: SocketAddr) -> (Kamailio, SocketAddr) {
    start_kamailio_on(binary, centre, free_port())
}

fn start_kamailio_on(binary: &Path, centre: SocketAddr, port: u16) -> (Kamailio, SocketAddr) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("kamailio.cfg");
    std::fs::write(&cfg, config(port, centre)).expect("write config");
    let log = dir.path().join("kamailio.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(binary)
        .arg("-f")
        .arg(&cfg)
        .args(["-DD", "-E", "-m", "32", "-M", "8"])
        .arg("-Y")
        .arg(dir.path())
        .arg("-w")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("kamailio starts");
    (
        Kamailio {
            child,
            log,
            _dir: dir,
        },
        SocketAddr::from(([127, 0, 0, 1], port)),
    )
}

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

fn route(proxy: SocketAddr, transport: SipTransport) -> ScaipRoute {
    ScaipRoute {
        receiver_uri: "sip:arc@centre.test".into(),
        proxy: proxy.to_string(),
        transport,
        local_uri: format!("sip:{USER}@centre.test"),
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        credentials: "scaip".into(),
        answer_timeout: Duration::from_secs(5),
        hold_limit: Duration::from_secs(180),
        heartbeat: Duration::from_secs(3600),
        register_expiry: Duration::from_secs(300),
        keepalive: Duration::from_secs(30),
        tls_ca: None,
    }
}

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

fn kamailio_or_skip() -> Option<PathBuf> {
    let found = kamailio_binary();
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("kamailio is not installed; CI must install the `kamailio` package");
        }
        eprintln!("SKIPPED: kamailio not installed (apt-get install kamailio)");
    }
    found
}

/// Registers until Kamailio (still starting) answers.
async fn registered_link(proxy: SocketAddr, transport: SipTransport, secret: &str) -> ScaipLink {
    let creds = Credentials {
        username: Some(USER.into()),
        secret: secret.into(),
        realm: None,
    };
    ScaipLink::start("scaip-kamailio", &route(proxy, transport), &unit(), &creds)
        .await
        .expect("link starts")
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
