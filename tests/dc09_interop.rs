//! DC-09 against a receiver this project did not write: pysiaalarm (PyPI), the SIA DC-09
//! library behind Home Assistant's SIA integration, run by `tests/interop/dc09_receiver.py`
//! on loopback. Plain and encrypted (AES-128/192/256), over TCP and UDP: each alarm must be
//! acknowledged, reach the receiver exactly once, and decode to the right account and event.
//!
//! pysiaalarm takes the key's characters as the key bytes (16, 24 or 32 hex characters give
//! AES-128/192/256): the unit's `key_format = "ascii"`. Without python3 and pysiaalarm the
//! tests are ignored (build.rs finds the library), except under CI (`CI=true`), where they run
//! and a missing library is a failure.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use vigil::centre::dc09::{key_bytes, Dc09Link, Dc09Payload};
use vigil::config::{Dc09Protocol, Dc09Route, KeyFormat};
use vigil::core::{
    Alarm, AlarmCause, AlarmId, AlarmRef, Delivery, DeliveryResult, Device, DeviceId, DeviceKind,
    RouteId, Timestamp,
};

/// Whether python3 can import pysiaalarm; panics under CI when it cannot.
fn pysiaalarm_or_skip() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import pysiaalarm"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("pysiaalarm is not installed; CI must `pip install pysiaalarm` (.ci/run)");
        }
        eprintln!("SKIPPED: pysiaalarm not installed (pip install pysiaalarm==3.2.2)");
    }
    ok
}

/// The receiver process and the events it printed, one JSON object a line.
struct Receiver {
    child: Child,
    events: mpsc::Receiver<String>,
    port: u16,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port(protocol: Dc09Protocol) -> u16 {
    match protocol {
        Dc09Protocol::Tcp => std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
        Dc09Protocol::Udp => std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
    }
}

fn start_receiver(protocol: Dc09Protocol, key: Option<&str>) -> Receiver {
    let port = free_port(protocol);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/dc09_receiver.py"
    );
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg(port.to_string())
        .arg("1234")
        .arg(key.unwrap_or("-"))
        .arg(protocol_arg(protocol));
    spawn_receiver(command, port)
}

fn protocol_arg(protocol: Dc09Protocol) -> &'static str {
    match protocol {
        Dc09Protocol::Tcp => "tcp",
        Dc09Protocol::Udp => "udp",
    }
}

/// Starts a receiver process that prints one JSON line when it listens and one per message.
fn spawn_receiver(mut command: Command, port: u16) -> Receiver {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the receiver starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the receiver starts");
    assert!(first.contains("listening"), "{first}");
    Receiver {
        child,
        events: rx,
        port,
    }
}

/// The unit's DC-09 link to a receiver on loopback `port`, account 1234, ADM-CID.
async fn link_to(port: u16, protocol: Dc09Protocol, key: Option<Vec<u8>>) -> Dc09Link {
    let route = Dc09Route {
        receiver: format!("127.0.0.1:{port}"),
        protocol,
        receiver_number: "1".into(),
        line_prefix: "1".into(),
        key: key.map(Into::into),
        answer_timeout: Duration::from_secs(5),
        link_test: Duration::ZERO,
        payload: Dc09Payload::AdmCid,
    };
    Dc09Link::start("dc09", &route, "1234", Dc09Payload::AdmCid)
        .await
        .expect("link starts")
}

fn delivery() -> Delivery {
    let raised_at = Timestamp::now();
    Delivery {
        alarm: Alarm {
            id: AlarmId(7),
            reference: AlarmRef::new(AlarmId(7), raised_at),
            cause: AlarmCause::Help,
            device: Some(Device {
                id: DeviceId(0x00A1_B2C3),
                kind: DeviceKind::Personal,
                zone: 3,
                location: "Bedroom".into(),
            }),
            raised_at,
            evidence: None,
        },
        route: RouteId(0),
        attempt: 1,
    }
}

async fn one_alarm(protocol: Dc09Protocol, key: Option<&str>) {
    let r = start_receiver(protocol, key);
    // The key's characters are its bytes: key_format = "ascii".
    let link = link_to(r.port, protocol, key.map(|k| k.as_bytes().to_vec())).await;
    let result = link.deliver(&delivery()).await;
    assert!(
        matches!(result, DeliveryResult::Acked { .. }),
        "{protocol:?} key {key:?}: {result:?}"
    );
    let mut events = Vec::new();
    while let Ok(line) = r.events.recv_timeout(Duration::from_millis(800)) {
        events.push(line);
    }
    assert_eq!(events.len(), 1, "copies at the receiver: {events:#?}");
    let e = &events[0];
    for expected in [
        "\"account\": \"1234\"",
        "\"event_qualifier\": \"1\"",
        "\"event_type\": \"101\"",
        "\"response\": \"ACK\"",
    ] {
        assert!(e.contains(expected), "{expected} in {e}");
    }
    assert!(
        e.contains(&format!("\"encrypted\": {}", key.is_some())),
        "{e}"
    );
}

#[cfg_attr(
    not(vigil_has_pysiaalarm),
    ignore = "pysiaalarm is not installed: pip install pysiaalarm==3.2.2"
)]
#[tokio::test]
async fn plain_tcp() {
    if pysiaalarm_or_skip() {
        one_alarm(Dc09Protocol::Tcp, None).await;
    }
}

#[cfg_attr(
    not(vigil_has_pysiaalarm),
    ignore = "pysiaalarm is not installed: pip install pysiaalarm==3.2.2"
)]
#[tokio::test]
async fn plain_udp() {
    if pysiaalarm_or_skip() {
        one_alarm(Dc09Protocol::Udp, None).await;
    }
}

#[cfg_attr(
    not(vigil_has_pysiaalarm),
    ignore = "pysiaalarm is not installed: pip install pysiaalarm==3.2.2"
)]
#[tokio::test]
async fn aes128_tcp() {
    if pysiaalarm_or_skip() {
        one_alarm(Dc09Protocol::Tcp, Some("0123456789ABCDEF")).await;
    }
}

#[cfg_attr(
    not(vigil_has_pysiaalarm),
    ignore = "pysiaalarm is not installed: pip install pysiaalarm==3.2.2"
)]
#[tokio::test]
async fn aes192_tcp() {
    if pysiaalarm_or_skip() {
        one_alarm(Dc09Protocol::Tcp, Some("0123456789ABCDEF01234567")).await;
    }
}

#[cfg_attr(
    not(vigil_has_pysiaalarm),
    ignore = "pysiaalarm is not installed: pip install pysiaalarm==3.2.2"
)]
#[tokio::test]
async fn aes256_tcp() {
    if pysiaalarm_or_skip() {
        one_alarm(Dc09Protocol::Tcp, Some("0123456789ABCDEF0123456789ABCDEF")).await;
    }
}

#[cfg_attr(
    not(vigil_has_pysiaalarm),
    ignore = "pysiaalarm is not installed: pip install pysiaalarm==3.2.2"
)]
#[tokio::test]
async fn aes128_udp() {
    if pysiaalarm_or_skip() {
        one_alarm(Dc09Protocol::Udp, Some("FEDCBA9876543210")).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The second receiver: ioBroker's SIA adapter (npm `iobroker.sia`), run by
// `tests/interop/dc09_iobroker.js`. It reads the AES key either way (its "password in hex"
// option), so it checks both of the unit's `key_format`s, and it answers in its own way: NUL
// pad bytes, a `|` after them, and PKCS#7 padding after the timestamp.

/// Where `npm install -g` put its packages, when node can load `iobroker.sia` from there;
/// panics under CI when it cannot.
fn iobroker_sia_or_skip() -> Option<String> {
    let root = Command::new("npm")
        .args(["root", "-g"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let loads = root.as_ref().is_some_and(|root| {
        Command::new("node")
            .args(["-e", "require('iobroker.sia/build/lib/sia.js')"])
            .env("NODE_PATH", root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !loads {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "iobroker.sia is not installed; CI must `npm install -g iobroker.sia` (.ci/run)"
            );
        }
        eprintln!("SKIPPED: iobroker.sia not installed (npm install -g iobroker.sia@2.0.4)");
        return None;
    }
    root
}

fn start_iobroker(
    node_path: &str,
    protocol: Dc09Protocol,
    key: Option<(&str, KeyFormat)>,
) -> Receiver {
    let port = free_port(protocol);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/dc09_iobroker.js"
    );
    let mut command = Command::new("node");
    command
        .arg(script)
        .arg(port.to_string())
        .arg("1234")
        .arg(key.map_or("-", |(k, _)| k))
        .arg(match key {
            Some((_, KeyFormat::HexBytes)) => "hex",
            _ => "ascii",
        })
        .arg(protocol_arg(protocol))
        .env("NODE_PATH", node_path);
    spawn_receiver(command, port)
}

/// One alarm to ioBroker's receiver: acknowledged at the first attempt, one copy received,
/// decoded to the unit's account and Contact ID event (new help alarm, 101).
async fn one_alarm_iobroker(protocol: Dc09Protocol, key: Option<(&str, KeyFormat)>) {
    let Some(node_path) = iobroker_sia_or_skip() else {
        return;
    };
    let r = start_iobroker(&node_path, protocol, key);
    let link = link_to(
        r.port,
        protocol,
        key.map(|(text, format)| key_bytes(text, format).expect("a valid key")),
    )
    .await;
    let result = link.deliver(&delivery()).await;
    let mut events = Vec::new();
    while let Ok(line) = r.events.recv_timeout(Duration::from_millis(800)) {
        events.push(line);
    }
    assert!(
        matches!(result, DeliveryResult::Acked { .. }),
        "{protocol:?} key {key:?}: {result:?}; the receiver saw {events:#?}"
    );
    assert_eq!(events.len(), 1, "copies at the receiver: {events:#?}");
    let e = &events[0];
    let expected_id = if key.is_some() { "*ADM-CID" } else { "ADM-CID" };
    for expected in [
        "\"account\":\"1234\"".to_string(),
        format!("\"id\":\"{expected_id}\""),
        "\"line\":\"1\"".to_string(),
        "1101 ".to_string(),
    ] {
        assert!(e.contains(&expected), "{expected} in {e}");
    }
}

#[cfg_attr(
    not(vigil_has_iobroker_sia),
    ignore = "iobroker.sia is not installed: npm install -g iobroker.sia@2.0.4"
)]
#[tokio::test]
async fn iobroker_plain_tcp() {
    one_alarm_iobroker(Dc09Protocol::Tcp, None).await;
}

#[cfg_attr(
    not(vigil_has_iobroker_sia),
    ignore = "iobroker.sia is not installed: npm install -g iobroker.sia@2.0.4"
)]
#[tokio::test]
async fn iobroker_aes128_hex_key_tcp() {
    one_alarm_iobroker(
        Dc09Protocol::Tcp,
        Some(("00112233445566778899AABBCCDDEEFF", KeyFormat::HexBytes)),
    )
    .await;
}

#[cfg_attr(
    not(vigil_has_iobroker_sia),
    ignore = "iobroker.sia is not installed: npm install -g iobroker.sia@2.0.4"
)]
#[tokio::test]
async fn iobroker_aes256_hex_key_udp() {
    one_alarm_iobroker(
        Dc09Protocol::Udp,
        Some((
            "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
            KeyFormat::HexBytes,
        )),
    )
    .await;
}

#[cfg_attr(
    not(vigil_has_iobroker_sia),
    ignore = "iobroker.sia is not installed: npm install -g iobroker.sia@2.0.4"
)]
#[tokio::test]
async fn iobroker_aes192_ascii_key_tcp() {
    one_alarm_iobroker(
        Dc09Protocol::Tcp,
        Some(("abcdefghijklmnopqrstuvwx", KeyFormat::Ascii)),
    )
    .await;
}

/// The unit holds another key than the receiver. The attempt ends on the receiver's answer with
/// a reason an installer can act on, after one transmission, instead of waiting or resending.
#[cfg_attr(
    not(vigil_has_iobroker_sia),
    ignore = "iobroker.sia is not installed: npm install -g iobroker.sia@2.0.4"
)]
#[tokio::test]
async fn iobroker_wrong_key_is_refused_with_a_reason() {
    let Some(node_path) = iobroker_sia_or_skip() else {
        return;
    };
    let r = start_iobroker(
        &node_path,
        Dc09Protocol::Tcp,
        Some(("00112233445566778899AABBCCDDEEFF", KeyFormat::HexBytes)),
    );
    // The same text read the other way: its 32 characters are an AES-256 key.
    let link = link_to(
        r.port,
        Dc09Protocol::Tcp,
        Some(key_bytes("00112233445566778899AABBCCDDEEFF", KeyFormat::Ascii).unwrap()),
    )
    .await;
    let result = link.deliver(&delivery()).await;
    let mut events = Vec::new();
    while let Ok(line) = r.events.recv_timeout(Duration::from_millis(800)) {
        events.push(line);
    }
    let DeliveryResult::Failed { reason } = &result else {
        panic!("a frame the receiver cannot decrypt is not delivered: {result:?}");
    };
    assert!(
        reason.contains("check key and key_format"),
        "the reason says what to check: {reason}"
    );
    // The receiver decrypts with its own key and gets garbage. Its parser then either refuses
    // the frame (a NAK in clear) or, when the garbage happens to hold a `]`, accepts it and
    // acknowledges with its key, which the unit cannot decrypt. Either way the unit ends the
    // attempt on that answer, not on a timeout, and names the key.
    assert!(
        reason.contains("NAK") || reason.contains("another key"),
        "the attempt ends on the receiver's answer: {reason}"
    );
    assert_eq!(events.len(), 1, "one transmission: {events:#?}");
}

/// The unit's clock still at 1970 (a Pi before NTP): ioBroker's receiver refuses the frame as
/// too old with a NAK carrying its own time; on a plain link the unit takes that time and
/// resends, and the alarm is acknowledged in the same attempt. (On an encrypted link only a
/// NAK that decrypts may move the clock, and this receiver NAKs in clear.)
#[cfg_attr(
    not(vigil_has_iobroker_sia),
    ignore = "iobroker.sia is not installed: npm install -g iobroker.sia@2.0.4"
)]
#[tokio::test]
async fn iobroker_sets_a_1970_clock_right_with_its_nak() {
    let Some(node_path) = iobroker_sia_or_skip() else {
        return;
    };
    let r = start_iobroker(&node_path, Dc09Protocol::Tcp, None);
    let link = link_to(r.port, Dc09Protocol::Tcp, None).await;
    let since_1970 = Timestamp::now().as_millis() as i64 - 30_000;
    link.skew_clock(-since_1970).await;
    let result = link.deliver(&delivery()).await;
    let mut events = Vec::new();
    while let Ok(line) = r.events.recv_timeout(Duration::from_millis(800)) {
        events.push(line);
    }
    assert!(
        matches!(result, DeliveryResult::Acked { .. }),
        "{result:?}; the receiver saw {events:#?}"
    );
    assert_eq!(events.len(), 2, "refused once, then taken: {events:#?}");
    assert!(events[0].contains("refused"), "{}", events[0]);
    assert!(events[1].contains("\"account\":\"1234\""), "{}", events[1]);
}
