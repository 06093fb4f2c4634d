//! The attacks on the alarm path, carried out against the real `vigil` binary on loopback,
//! as an attacker on the home network or on the cellular side would: the unit runs as
//! systemd runs it, against the simulated site (SCAIP and DC-09 receivers, the cellular
//! network with its parties, the radio), and each attack must leave the alarm open until a
//! genuine receiver acknowledges it. The route-level versions of these attacks, which also
//! cover what cannot be reached from outside the process (a relabelled DC-09 ACK inside the
//! unit's own TCP connection), are in `attacks_scaip.rs`, `attacks_cellular.rs`,
//! `attacks_radio.rs` and `dc09_routes.rs`.

mod site_support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use site_support::*;
use vigil::centre::receiver::dc09::Dc09Answer;
use vigil::centre::receiver::scaip::ScaipAnswer;
use vigil::core::DeviceId;
use vigil::modem::network::Record as Net;
use vigil::radio::driver::sim::SimPeer;
use vigil::radio::frame::{Event as Frame, FrameCipher, PendantKey};
use vigil::runtime::simsite::{
    numbers, SimSite, SiteOptions, DC09_KEY_HEX, PENDANTS, REMOTE_SECRET, SIP_PASSWORD, SMS_SECRET,
};

const LIMIT: Duration = Duration::from_secs(40);

/// A site whose every route is down: the IP centre answers nothing, the SMS gateway is
/// silent, nobody picks up the phone. Each test brings back the route it needs.
async fn quiet_site(dir: &Path) -> SimSite {
    let site = SimSite::start(dir, SiteOptions::default()).await.unwrap();
    every_route_down(&site);
    site
}

/// Polls `what` until it gives a value; panics with the log's tail after `LIMIT`.
async fn eventually<T>(log: &Path, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {LIMIT:?}; log tail:\n{}",
            log_tail(log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One row of the journal's event table: alarm, route, attempt, detail.
type EventRow = (i64, Option<String>, Option<i64>, Option<String>);

/// The journal's events of `kind`.
fn events(journal: &Path, kind: &str) -> Vec<EventRow> {
    if !journal.exists() {
        return Vec::new();
    }
    let conn = rusqlite::Connection::open(journal).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut stmt = conn
        .prepare("SELECT alarm, route, attempt, detail FROM event WHERE kind = ?1 ORDER BY seq")
        .unwrap();
    stmt.query_map([kind], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// `host:port` of a registered contact URI.
fn contact_addr(contact: &str) -> SocketAddr {
    contact
        .trim_start_matches('<')
        .trim_start_matches("sip:")
        .split([';', '>'])
        .next()
        .and_then(|s| s.rsplit_once('@').map(|(_, h)| h))
        .expect("contact host")
        .parse()
        .expect("contact address")
}

fn forged_mrs(contact: &str, reference: &str, snu: u16, n: u32) -> String {
    let body = format!("<mrs><ref>{reference}</ref><snu>{snu}</snu><hbi>1</hbi></mrs>");
    format!(
        "MESSAGE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKforged{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alarm@arc.test>;tag=f{n}\r\n\
         To: <sip:4600123456@arc.test>\r\nCall-ID: forged-{n}@attacker\r\nCSeq: 1 MESSAGE\r\n\
         Content-Type: application/scaip+xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Finding 1, against the binary: the attacker knows the alarm's session reference (the
/// strongest case: it is random, so in practice it cannot) and sends `<mrs>` with snu 0 and
/// snu 4 straight to the unit's SIP port. Both get 403 and no product banner; the alarm stays
/// open and is acknowledged by the SMS gateway when it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_scaip_answers_from_outside_the_proxy_leave_the_alarm_open() {
    let dir = tempfile::tempdir().unwrap();
    let site = quiet_site(dir.path()).await;
    let log = dir.path().join("vigil.log");
    let journal = site.config.data_dir.join("journal.sqlite");
    let unit = VigilProcess::start(&site, &log).await;
    let p = press(site.radio, 0, 1, Frame::Help).await.unwrap();
    assert!(p.acked_at.is_some(), "the pendant heard 'help is coming'");

    let reference = eventually(&log, "the SCAIP alarm message", || {
        site.scaip
            .received()
            .into_iter()
            .find_map(|r| r.mrq.map(|m| m.reference))
    })
    .await;
    let contact = eventually(&log, "the unit's registration", || {
        site.scaip
            .registrations()
            .first()
            .map(|b| b.contact.clone())
    })
    .await;
    let to = contact_addr(&contact);
    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for (n, snu) in [0u16, 4, 0].into_iter().enumerate() {
        attacker
            .send_to(
                forged_mrs(&contact, &reference, snu, n as u32).as_bytes(),
                to,
            )
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let len = tokio::time::timeout(Duration::from_secs(5), attacker.recv(&mut buf))
            .await
            .expect("the unit answers the forged request")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..len]).to_string();
        assert!(
            text.starts_with("SIP/2.0 403"),
            "forged mrs (snu {snu}) answered: {text}"
        );
        assert!(!text.contains("Vigil"), "product banner sent: {text}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (alarms, _) = read_journal(&journal);
    assert_eq!(alarms.len(), 1, "{alarms:#?}");
    assert_eq!(alarms[0].state, "open", "a forged answer closed the alarm");
    assert!(events(&journal, "acknowledged").is_empty());

    // The genuine gateway answers: only now is the alarm acknowledged, by SMS.
    site.sms_gateway_silent(false);
    let closed = wait_all_closed(&journal, 1, LIMIT, &log).await;
    assert_eq!(closed[0].state, "acknowledged");
    let acks = events(&journal, "acknowledged");
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_eq!(acks[0].1.as_deref(), Some("arc-sms"), "{acks:?}");
    let status = unit.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{}", log_tail(&log));
}

/// Finding 2, against the binary: the centre's answer asks for a call-back to a number with
/// an AT command after it, then to a number that is well formed but not the household's.
/// Neither reaches the modem; both are journalled against the alarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_back_requests_never_put_commands_or_strangers_on_the_modem() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    let log = dir.path().join("vigil.log");
    let journal = site.config.data_dir.join("journal.sqlite");
    let call_back = |tnu: &str| ScaipAnswer {
        snu: Some(0),
        mre: Some(1),
        cre: None,
        tnu: Some(tnu.into()),
        hbi: None,
    };
    site.scaip.script(vec![
        call_back("+46700000020;AT+CFUN=0;"),
        call_back("+46709999999"),
        call_back("sip:eavesdropper@attacker.example"),
    ]);
    let unit = VigilProcess::start(&site, &log).await;
    for counter in [1, 2, 3] {
        let p = press(site.radio, 0, counter, Frame::Help).await.unwrap();
        assert!(p.acked_at.is_some());
        wait_all_closed(&journal, counter as usize, LIMIT, &log).await;
    }
    let refused = eventually(&log, "three refused call-backs in the journal", || {
        let r = events(&journal, "call-back-refused");
        (r.len() == 3).then_some(r)
    })
    .await;
    let details: Vec<String> = refused.iter().filter_map(|r| r.3.clone()).collect();
    assert!(details[0].contains(';'), "{details:?}");
    assert!(details[1].contains("+46709999999"), "{details:?}");
    assert!(
        details[2].contains("outside the centre's domain"),
        "{details:?}"
    );
    let commands = site.cellular.module.commands();
    assert!(
        !commands
            .iter()
            .any(|c| c.contains("CFUN=0") || c.contains("9999999") || c.starts_with("ATD")),
        "the modem was asked to: {commands:?}"
    );
    // `vigil log` shows the household what happened.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["log", "--config"])
        .arg(&site.config_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.matches("call-back was REFUSED").count() == 3,
        "vigil log:\n{text}"
    );
    // The installer's test call goes nowhere else either, and says why.
    for (target, why) in [
        ("sip:echo@attacker.example", "outside the centre's domain"),
        // A number that is not the centre's (not on the allow-list) is never dialled.
        ("+46700000020", "not an allowed number"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["call-test", target, "--config"])
            .arg(&site.config_path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{target}: {text}");
        assert!(
            text.contains("FAILED") && text.contains(why),
            "{target}: {text}"
        );
    }
    unit.terminate(Duration::from_secs(15)).await;
}

/// The alarm's SMS as the gateway got it: (reference, unit).
fn alarm_sms(site: &SimSite) -> Option<(String, String)> {
    site.cellular
        .network
        .records()
        .into_iter()
        .find_map(|r| match r {
            Net::SmsDelivered { to, text, .. } if to == numbers::SMS_GATEWAY => {
                let field = |name: &str| {
                    text.split_whitespace()
                        .find_map(|w| w.strip_prefix(name))
                        .map(str::to_string)
                };
                Some((field("REF=")?, field("UNIT=")?))
            }
            _ => None,
        })
}

/// Finding 4, against the binary: a valid acknowledgement sent from a number that only ends
/// like the gateway's, then guessing from the gateway's own (spoofed) number. Neither closes
/// the alarm; after 5 wrong codes even the right one is no longer taken for this alarm, and
/// the alarm goes on until the IP centre acknowledges it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_acknowledgements_from_look_alikes_or_guesses_do_not_close_the_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let site = quiet_site(dir.path()).await;
    let log = dir.path().join("vigil.log");
    let journal = site.config.data_dir.join("journal.sqlite");
    let unit = VigilProcess::start(&site, &log).await;
    press(site.radio, 0, 1, Frame::Help).await.unwrap();
    let (reference, unit_id) = eventually(&log, "the alarm SMS", || alarm_sms(&site)).await;
    let attempt = eventually(&log, "the SMS attempt in the journal", || {
        events(&journal, "attempt")
            .into_iter()
            .rev()
            .find(|e| e.1.as_deref() == Some("arc-sms"))
            .and_then(|e| e.2)
    })
    .await as u32;
    let right = vigil::modem::auth::ack_code(SMS_SECRET, &unit_id, &reference, attempt);
    let look_alike = format!("999{}", numbers::SMS_GATEWAY.trim_start_matches('+'));
    let sms = |from: &str, text: String| {
        site.cellular
            .network
            .sms_to_modem(numbers::UNIT, from, &text)
    };
    sms(&look_alike, format!("ACK {reference} {right}"));
    for guess in [
        "0000000000",
        "ABCDEFGHJK",
        "1111111111",
        "ZZZZZZZZZZ",
        "2222222222",
    ] {
        sms(numbers::SMS_GATEWAY, format!("ACK {reference} {guess}"));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    sms(numbers::SMS_GATEWAY, format!("ACK {reference} {right}"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (alarms, _) = read_journal(&journal);
    assert_eq!(alarms[0].state, "open", "{alarms:#?}\n{}", log_tail(&log));

    site.ip_centre_down(false);
    let closed = wait_all_closed(&journal, 1, LIMIT, &log).await;
    assert_eq!(closed[0].state, "acknowledged");
    let acks = events(&journal, "acknowledged");
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_ne!(acks[0].1.as_deref(), Some("arc-sms"), "{acks:?}");
    unit.terminate(Duration::from_secs(15)).await;
}

/// Finding 5, against the binary: 200,000 forged radio frames and a pile of idle control
/// connections. The log stays bounded, the unit closes the idle connections itself, `vigil
/// status` answers, and a genuine press still gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_leave_the_unit_answering_with_a_bounded_log() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    let log = dir.path().join("vigil.log");
    let journal = site.config.data_dir.join("journal.sqlite");
    let unit = VigilProcess::start(&site, &log).await;
    let before = std::fs::metadata(&log).unwrap().len();

    // Frames for the real pendant's id, sealed with a key the attacker made up.
    let radio = site.radio;
    tokio::task::spawn_blocking(move || {
        let (id, _, _, _) = PENDANTS[0];
        let cipher = FrameCipher::new(&PendantKey::from_hex(&"ab".repeat(32)).unwrap());
        let peer = SimPeer::new(radio, -60).unwrap();
        for counter in 0..200_000u32 {
            let frame = cipher.seal_event(DeviceId(id), counter + 10, Frame::Help);
            let _ = peer.send(frame.as_bytes());
        }
    })
    .await
    .unwrap();

    // Idle connections to the control socket, more than it serves at once.
    let socket = vigil::runtime::control::socket_path(&site.config.data_dir);
    let idle: Vec<_> = (0..24)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(&socket).ok())
        .collect();
    assert!(!idle.is_empty());
    // The unit hangs up on each of them by itself.
    let closed = tokio::task::spawn_blocking(move || {
        idle.into_iter()
            .map(|mut s| {
                use std::io::Read;
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut b = [0u8; 64];
                matches!(s.read(&mut b), Ok(0) | Err(_)) && s.read(&mut b).is_ok_and(|n| n == 0)
            })
            .filter(|closed| *closed)
            .count()
    });
    let status = eventually(&log, "vigil status answering", || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["status", "--config"])
            .arg(&site.config_path)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    })
    .await;
    assert!(status.contains("radio:"), "{status}");
    let n = closed.await.unwrap();
    assert_eq!(n, 24, "idle control connections left open by the unit");

    // A genuine press is still heard and delivered.
    let p = press(site.radio, 0, 1, Frame::Help).await.unwrap();
    assert!(p.acked_at.is_some(), "{}", log_tail(&log));
    let alarms = wait_all_closed(&journal, 1, LIMIT, &log).await;
    assert_eq!(alarms.len(), 1, "forged frames raised alarms: {alarms:#?}");
    let grown = std::fs::metadata(&log).unwrap().len() - before;
    assert!(
        grown < 64 * 1024,
        "200,000 forged frames wrote {grown} bytes of log:\n{}",
        log_tail(&log)
    );
    unit.terminate(Duration::from_secs(15)).await;
}

/// Finding 7 and "secrets never reach logs", against the binary at its most verbose level:
/// a full alarm over SCAIP (with digest authentication), DC-09 (encrypted) and SMS leaves no
/// password, key, secret or digest answer in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    // Every route gets its turn: SCAIP and DC-09 fail on the first round, SMS acknowledges.
    site.scaip.script(vec![ScaipAnswer::snu(1)]);
    site.dc09.script(&[Dc09Answer::Duh]);
    let log = dir.path().join("vigil.log");
    let journal = site.config.data_dir.join("journal.sqlite");
    let unit = VigilProcess::start_logging(&site, &log, "trace").await;
    press(site.radio, 0, 1, Frame::Help).await.unwrap();
    wait_all_closed(&journal, 1, LIMIT, &log).await;
    unit.terminate(Duration::from_secs(15)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("REGISTER"), "trace level logs SIP traffic");
    let mut secrets = vec![
        SIP_PASSWORD.to_string(),
        SMS_SECRET.to_string(),
        REMOTE_SECRET.to_string(),
        DC09_KEY_HEX.to_string(),
        DC09_KEY_HEX.to_lowercase(),
    ];
    secrets.extend(PENDANTS.iter().map(|p| p.3.to_string()));
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "the log holds a secret");
    }
    for header in ["Authorization: Digest", "response=\""] {
        assert!(
            !text.contains(header),
            "the log holds a digest answer ({header})"
        );
    }
}
