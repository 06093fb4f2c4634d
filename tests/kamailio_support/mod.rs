//! Kamailio, the SIP proxy this project did not write, for the interoperability tests: a
//! registrar with digest authentication, a proxy for the unit's alarm MESSAGEs to the centre
//! (with a 407 challenge), and for calls from the centre to the unit, record-routed so every
//! request in the call passes through the proxy, as the unit's trust rules want.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vigil::centre::scaip::ScaipLink;
use vigil::config::{Credentials, ScaipRoute, SipTransport, Unit};

/// The unit's SIP user at the registrar.
pub const USER: &str = "4612345";
/// Its password.
pub const PASSWORD: &str = "kam-s3cret";

pub fn kamailio_binary() -> Option<PathBuf> {
    ["/usr/sbin/kamailio", "/usr/local/sbin/kamailio"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A Kamailio process that is stopped (SIGTERM, so it takes its children along) on drop.
pub struct Kamailio {
    pub child: Child,
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
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A port free for both UDP and TCP, for Kamailio to listen on both.
pub fn free_port() -> u16 {
    loop {
        let port = free_udp_port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn config(port: u16, centre: SocketAddr) -> String {
    config_with_tls(port, centre, None)
}

/// The configuration, with a TLS listener on `tls.0` serving the centre's certificate
/// (`tls.1`, `tls.2`: certificate and key files) when given.
pub fn config_with_tls(port: u16, centre: SocketAddr, tls: Option<(u16, &Path, &Path)>) -> String {
    let tls = match tls {
        None => String::new(),
        Some((tls_port, cert, key)) => format!(
            "enable_tls=yes\nlisten=tls:127.0.0.1:{tls_port}\nloadmodule \"tls.so\"\n\
             modparam(\"tls\", \"certificate\", \"{}\")\n\
             modparam(\"tls\", \"private_key\", \"{}\")\n\
             modparam(\"tls\", \"tls_method\", \"TLSv1.2+\")\n",
            cert.display(),
            key.display()
        ),
    };
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
alias="centre.test"
{tls}
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "rr.so"
loadmodule "siputils.so"

modparam("usrloc", "db_mode", 0)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    # Requests inside a call follow the route the INVITE recorded.
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not Here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("INVITE")) {{
        # A unit's call to an operator is authenticated, as its MESSAGEs are; the centre's
        # own operators (arc) call units without.
        if ($fU != "arc") {{
            if (!pv_proxy_authenticate("$fd", "{PASSWORD}", "0")) {{
                proxy_challenge("$fd", "0");
                exit;
            }}
            consume_credentials();
        }}
        record_route();
        # The centre's echo test line, at the centre's address.
        if ($rU == "echo") {{
            $du = "sip:{centre}";
            t_relay();
            exit;
        }}
        # A call to the contact the callee registered, through this proxy.
        if (!lookup("location")) {{
            sl_send_reply("404", "Not Found");
            exit;
        }}
        t_relay();
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

pub fn start_kamailio(binary: &Path, centre: SocketAddr) -> (Kamailio, SocketAddr) {
    start_kamailio_on(binary, centre, free_port())
}

pub fn start_kamailio_on(binary: &Path, centre: SocketAddr, port: u16) -> (Kamailio, SocketAddr) {
    start_kamailio_with(binary, centre, port, None)
}

/// Kamailio with a TLS listener on `tls_port` besides UDP and TCP, serving the centre's test
/// certificate (`tests/data/tls_centre.pem`, for centre.test and 127.0.0.1).
pub fn start_kamailio_tls(
    binary: &Path,
    centre: SocketAddr,
    tls_port: u16,
) -> (Kamailio, SocketAddr) {
    start_kamailio_with(binary, centre, free_port(), Some(tls_port))
}

fn start_kamailio_with(
    binary: &Path,
    centre: SocketAddr,
    port: u16,
    tls_port: Option<u16>,
) -> (Kamailio, SocketAddr) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("kamailio.cfg");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let (cert, key) = (data.join("tls_centre.pem"), data.join("tls_centre.key"));
    let tls = tls_port.map(|p| (p, cert.as_path(), key.as_path()));
    std::fs::write(&cfg, config_with_tls(port, centre, tls)).expect("write config");
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

pub fn kamailio_or_skip() -> Option<PathBuf> {
    let found = kamailio_binary();
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("kamailio is not installed; CI must install the `kamailio` package");
        }
        eprintln!("SKIPPED: kamailio not installed (apt-get install kamailio)");
    }
    found
}

/// The unit behind the proxy.
pub fn unit() -> Unit {
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

/// The unit's SCAIP route through the proxy at `proxy`.
pub fn route(proxy: SocketAddr, transport: SipTransport) -> ScaipRoute {
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

/// Registers until Kamailio (still starting) answers.
pub async fn registered_link(
    proxy: SocketAddr,
    transport: SipTransport,
    secret: &str,
) -> ScaipLink {
    let creds = Credentials {
        username: Some(USER.into()),
        secret: secret.into(),
        realm: None,
    };
    let route = route(proxy, transport);
    #[cfg(feature = "tls")]
    if transport == SipTransport::Tls {
        // The unit trusts the test CA that signed the centre's certificate.
        let ca = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls_ca.pem"))
            .expect("the test CA");
        return ScaipLink::start_tls("scaip-kamailio", &route, &unit(), &creds, &ca)
            .await
            .expect("link starts");
    }
    ScaipLink::start("scaip-kamailio", &route, &unit(), &creds)
        .await
        .expect("link starts")
}

/// Kamailio up, relaying the centre's traffic to `centre`, and the unit's SCAIP link (UDP)
/// registered at it.
pub async fn kamailio_and_unit(centre: SocketAddr) -> (Kamailio, SocketAddr, ScaipLink) {
    let binary = kamailio_binary().expect("kamailio (apt-get install kamailio)");
    let (mut kamailio, proxy) = start_kamailio(&binary, centre);
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Ok(Some(status)) = kamailio.child.try_wait() {
        panic!("kamailio exited: {status}\n{}", kamailio.log());
    }
    let link = registered_link(proxy, SipTransport::Udp, PASSWORD).await;
    let reg = link.wait_registered(Duration::from_secs(10)).await;
    assert!(
        matches!(reg, vigil::centre::scaip::Registration::Registered(_)),
        "{reg:?}\n{}",
        kamailio.log()
    );
    (kamailio, proxy, link)
}
