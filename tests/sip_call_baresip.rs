//! The centre's call-back with a SIP phone this project did not write: baresip (Debian) calls
//! the unit through Kamailio, where the unit registered its SCAIP route. The unit answers (in
//! its auto-answer window), and speech crosses both ways: baresip plays a known recording,
//! which must reach the unit's loudspeaker; the unit's microphone hears another, which must
//! reach baresip. Each is compared with what was sent by normalised correlation (≥ 0.9).
//!
//! Needs Debian's `kamailio` and `baresip-core`. Reported as ignored when one is missing
//! (build.rs looks for them), except under CI (`CI=true`), where a missing tool fails.

mod kamailio_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kamailio_support::*;
use vigil::voice::call_port::CallAudioPort;
use vigil::voice::pcm::{align, read_wav, to_i16, write_wav, Clip};
use vigil::voice::sim_call::SimCallPort;

/// What the unit's loudspeaker played, filled as the call goes.
type Recording = Arc<Mutex<Vec<i16>>>;

/// A noise-like recording (no two stretches alike), `seconds` long at 8 kHz.
fn recording(seed: u32, seconds: usize) -> Vec<i16> {
    let mut x = seed;
    (0..8_000 * seconds)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 16) as i16) / 4
        })
        .collect()
}

fn as_clip(samples: &[i16]) -> Clip {
    Clip::new(
        8000,
        samples.iter().map(|&s| f32::from(s) / 32768.0).collect(),
    )
}

/// baresip's configuration: one account that calls through the proxy, G.711 only, the
/// recording as its microphone and every stream written to `dir` (sndfile).
fn baresip_config(dir: &Path, proxy: SocketAddr, mic: &Path, console: u16) {
    baresip_config_as(
        dir,
        mic,
        console,
        &format!(
            "<sip:arc@centre.test>;regint=0;outbound=\"sip:{proxy};lr\";audio_codecs=PCMA,PCMU;answermode=manual"
        ),
    );
}

/// baresip's configuration with its one `account` line.
fn baresip_config_as(dir: &Path, mic: &Path, console: u16, account: &str) {
    let sip_port = free_udp_port();
    std::fs::write(
        dir.join("config"),
        format!(
            "poll_method epoll\n\
             sip_listen 127.0.0.1:{sip_port}\n\
             audio_player alsa,null\n\
             audio_alert alsa,null\n\
             audio_source aufile,{mic}\n\
             snd_path {dir}\n\
             cons_listen 127.0.0.1:{console}\n\
             jitter_buffer_delay 1-5\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module aufile.so\n\
             module alsa.so\n\
             module sndfile.so\n\
             module cons.so\n\
             module_tmp account.so\n\
             module_app menu.so\n",
            mic = mic.display(),
            dir = dir.display(),
        ),
    )
    .unwrap();
    std::fs::write(dir.join("accounts"), format!("{account}\n")).unwrap();
    std::fs::write(dir.join("contacts"), "").unwrap();
}

/// The operator's microphone in `dir`: a WAV file saying `says`, for baresip's `aufile`.
fn operator_mic(dir: &Path, says: &[i16]) -> PathBuf {
    let mic = dir.join("operator.wav");
    write_wav(&mic, &as_clip(says)).unwrap();
    mic
}

/// baresip's configuration in `dir` gains `lines`.
fn add_to_config(dir: &Path, lines: &str) {
    let mut config = std::fs::read_to_string(dir.join("config")).unwrap();
    config.push_str(lines);
    std::fs::write(dir.join("config"), config).unwrap();
}

/// Runs baresip from its configuration in `dir`: it dials the unit and quits after `seconds`.
/// Its log.
async fn dial_the_unit(dir: &Path, seconds: u32) -> String {
    let log = dir.join("baresip.log");
    let status = tokio::task::spawn_blocking({
        let (dir, log) = (dir.to_path_buf(), log.clone());
        move || {
            Command::new("baresip")
                .arg("-f")
                .arg(&dir)
                .args([
                    "-n",
                    "127.0.0.1",
                    "-e",
                    "/dial sip:4612345@centre.test",
                    "-t",
                ])
                .arg(seconds.to_string())
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&log).unwrap())
                .stderr(Stdio::null())
                .status()
                .expect("baresip runs (apt-get install baresip-core)")
        }
    })
    .await
    .unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{status}\n{text}");
    text
}

/// The unit's call audio for the test: its microphone says `says`; the handle keeps what
/// reached its loudspeaker, call after call.
fn unit_audio(link: &vigil::centre::scaip::ScaipLink, says: &[i16]) -> Recording {
    let heard = Recording::default();
    let (mic, kept) = (Arc::new(says.to_vec()), Arc::clone(&heard));
    link.set_call_audio(Arc::new(move || {
        let port = SimCallPort::hearing_into(Arc::clone(&mic), Arc::clone(&kept));
        Ok(Box::new(port) as Box<dyn CallAudioPort>)
    }));
    heard
}

/// What baresip heard in the call, at 8 kHz.
fn heard_by_phone(dir: &Path) -> Vec<i16> {
    let received = dump(dir, "dec").expect("baresip wrote what it heard");
    read_wav(&received)
        .unwrap()
        .resampled(8000)
        .samples
        .iter()
        .map(|&s| to_i16(s))
        .collect()
}

/// The file sndfile wrote for one direction (`dec`: what baresip heard; `enc`: what it sent).
fn dump(dir: &Path, which: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("dump-") && n.ends_with(&format!("-{which}.wav")))
        })
}

#[cfg_attr(
    not(all(vigil_has_kamailio, vigil_has_baresip)),
    ignore = "needs kamailio and baresip: apt-get install kamailio baresip-core"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_phone_calls_the_unit_and_speech_crosses_both_ways() {
    let (kamailio, proxy, link) =
        kamailio_and_unit(SocketAddr::from(([127, 0, 0, 1], free_udp_port()))).await;

    // The unit: its microphone hears `unit_says`; its loudspeaker is recorded.
    let unit_says = recording(7, 4);
    let heard_by_unit = unit_audio(&link, &unit_says);
    link.answer_calls_until(tokio::time::Instant::now() + Duration::from_secs(60));

    // baresip: the centre's operator, saying `centre_says`.
    let dir = tempfile::tempdir().unwrap();
    let centre_says = recording(11, 4);
    let console = free_udp_port();
    baresip_config(
        dir.path(),
        proxy,
        &operator_mic(dir.path(), &centre_says),
        console,
    );
    // Once the call is up, the operator presses 5 on the phone's keypad (baresip's network
    // console takes key presses over UDP).
    let mut calls = link.calls();
    let keypad = tokio::spawn(async move {
        if tokio::time::timeout(Duration::from_secs(5), calls.wait_for(|c| c.active))
            .await
            .is_err()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let _ = socket.send_to(b"5", ("127.0.0.1", console)).await;
    });
    let baresip_log = dial_the_unit(dir.path(), 7).await;

    keypad.await.unwrap();
    let calls = link.calls().borrow().clone();
    assert_eq!(
        calls.answered,
        1,
        "{calls:?}\n{baresip_log}\n{}",
        kamailio.log()
    );
    assert_eq!(
        calls.keys, "5",
        "the operator's key as an RFC 4733 event: {calls:?}"
    );
    assert!(!calls.active, "baresip hung up when it quit: {calls:?}");

    // RTCP both ways: the phone's reports (RFC 3550, from its own stack) were read as valid,
    // and the jitter on loopback is small although the key was held for seconds.
    let stats = ended_call_media(&link)
        .await
        .unwrap_or_else(|| panic!("the call's media never ended: {calls:?}"));
    assert!(
        stats.rtcp_received >= 1 && stats.rtcp_dropped == 0 && stats.jitter_ms < 60,
        "the phone's RTCP: {stats:?}\n{baresip_log}"
    );
    assert!(stats.rtcp_sent >= 1, "{stats:?}");

    // Speech both ways. The second second of the operator's: the key press (an RFC 4733
    // event, sent in place of audio) falls in the first.
    let played = heard_by_unit.lock().unwrap().clone();
    assert!(!played.is_empty(), "no call was answered");
    speech_crossed(
        &centre_says,
        2,
        &played,
        &unit_says,
        dir.path(),
        &baresip_log,
    );
}

/// A phone that offers RTCP multiplexing (RFC 5761; baresip's `rtcp_mux yes`) gets it: its
/// reports arrive on the unit's RTP port and are read, and the unit's reports reach the phone
/// there too, which the round trip in the phone's receiver reports shows (their LSR and DLSR
/// echo the unit's sender report). Speech still crosses both ways.
#[cfg_attr(
    not(all(vigil_has_kamailio, vigil_has_baresip)),
    ignore = "needs kamailio and baresip: apt-get install kamailio baresip-core"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_multiplexes_rtcp_gets_its_reports_read_on_the_rtp_port() {
    let (kamailio, proxy, link) =
        kamailio_and_unit(SocketAddr::from(([127, 0, 0, 1], free_udp_port()))).await;
    let unit_says = recording(13, 4);
    let heard_by_unit = unit_audio(&link, &unit_says);
    link.answer_calls_until(tokio::time::Instant::now() + Duration::from_secs(60));

    let dir = tempfile::tempdir().unwrap();
    // Longer than the others: baresip hangs up when its recording ends, and it reports about
    // every 5 s; the round trip needs a report sent after one of the unit's sender reports
    // reached it (the unit's first comes 1.25-3.75 s in), which under load can miss the first.
    let centre_says = recording(17, 16);
    let mic = operator_mic(dir.path(), &centre_says);
    baresip_config(dir.path(), proxy, &mic, free_udp_port());
    add_to_config(dir.path(), "rtcp_mux yes\n");
    let baresip_log = dial_the_unit(dir.path(), 15).await;

    let calls = link.calls().borrow().clone();
    assert_eq!(
        calls.answered,
        1,
        "{calls:?}\n{baresip_log}\n{}",
        kamailio.log()
    );
    let stats = ended_call_media(&link)
        .await
        .unwrap_or_else(|| panic!("the call's media never ended: {calls:?}"));
    assert!(stats.rtcp_mux, "the unit agreed to multiplex: {stats:?}");
    assert!(
        stats.rtcp_received >= 1 && stats.rtcp_dropped == 0,
        "the phone's reports on the RTP port: {stats:?}\n{baresip_log}"
    );
    assert!(
        stats.rtcp_sent >= 1 && stats.round_trip.is_some(),
        "the phone got the unit's reports on the RTP port: {stats:?}\n{baresip_log}"
    );
    assert_eq!(stats.dropped, 0, "no report taken for audio: {stats:?}");

    let played = heard_by_unit.lock().unwrap().clone();
    speech_crossed(
        &centre_says,
        1,
        &played,
        &unit_says,
        dir.path(),
        &baresip_log,
    );
}

/// Outside the auto-answer window (no alarm just raised) the same call is refused with 480:
/// the unit does not pick up calls at any time of day.
#[cfg_attr(
    not(all(vigil_has_kamailio, vigil_has_baresip)),
    ignore = "needs kamailio and baresip: apt-get install kamailio baresip-core"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_answer_window_the_call_is_refused() {
    let (_kamailio, proxy, link) =
        kamailio_and_unit(SocketAddr::from(([127, 0, 0, 1], free_udp_port()))).await;
    link.set_call_audio(Arc::new(|| {
        Ok(Box::new(SimCallPort::new(Vec::new()).0) as Box<dyn CallAudioPort>)
    }));
    // The window of an earlier alarm has closed.
    link.answer_calls_until(tokio::time::Instant::now());

    let dir = tempfile::tempdir().unwrap();
    let mic = operator_mic(dir.path(), &recording(11, 1));
    baresip_config(dir.path(), proxy, &mic, free_udp_port());
    let baresip_log = dial_the_unit(dir.path(), 3).await;
    let calls = link.calls().borrow().clone();
    assert_eq!(
        (calls.answered, calls.refused),
        (0, 1),
        "{calls:?}\n{baresip_log}"
    );
    assert!(baresip_log.contains("480"), "{baresip_log}");
}

/// baresip as an operator's phone registered at `proxy`, saying `says`, answering calls
/// itself or not (`answermode`), quitting after `seconds`. Its exit status and log.
fn operator_phone(
    dir: &Path,
    proxy: SocketAddr,
    says: &[i16],
    answermode: &str,
    seconds: u32,
) -> tokio::task::JoinHandle<(std::process::ExitStatus, String)> {
    operator_phone_on(dir, &Outbound::Udp(proxy), says, answermode, seconds)
}

/// How a baresip phone reaches Kamailio.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
enum Outbound {
    /// Over UDP.
    Udp(SocketAddr),
    /// Over TLS to this port, trusting the test CA; SRTP offered and required when `srtp`.
    Tls { port: u16, srtp: bool },
}

/// [`operator_phone`] with its way to the proxy.
fn operator_phone_on(
    dir: &Path,
    outbound: &Outbound,
    says: &[i16],
    answermode: &str,
    seconds: u32,
) -> tokio::task::JoinHandle<(std::process::ExitStatus, String)> {
    let mic = operator_mic(dir, says);
    let account = match outbound {
        Outbound::Udp(proxy) => format!(
            "<sip:operator@centre.test>;auth_pass={PASSWORD};outbound=\"sip:{proxy};lr\";regint=60;audio_codecs=PCMA,PCMU;answermode={answermode}"
        ),
        Outbound::Tls { port, srtp } => format!(
            "<sip:operator@centre.test;transport=tls>;auth_pass={PASSWORD};\
             outbound=\"sip:127.0.0.1:{port};transport=tls;lr\";regint=60;\
             audio_codecs=PCMA,PCMU;answermode={answermode}{}",
            if *srtp { ";mediaenc=srtp-mand" } else { "" }
        ),
    };
    baresip_config_as(dir, &mic, free_udp_port(), &account);
    if let Outbound::Tls { .. } = outbound {
        trust_the_test_ca(dir);
    }
    let (dir, log) = (dir.to_path_buf(), dir.join("baresip.log"));
    tokio::task::spawn_blocking(move || {
        let status = Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .args(["-n", "127.0.0.1", "-t"])
            .arg(seconds.to_string())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .status()
            .expect("baresip runs (apt-get install baresip-core)");
        (status, std::fs::read_to_string(&log).unwrap_or_default())
    })
}

/// Speech crossed both ways: second `second` of the operator's words is in what the unit's
/// loudspeaker played (from the same time on), and the unit's first second in what the phone in
/// `phone` received; normalised correlation ≥ 0.9 each.
fn speech_crossed(
    operator_says: &[i16],
    second: usize,
    played: &[i16],
    unit_says: &[i16],
    phone: &Path,
    log: &str,
) {
    let at = second * 8_000;
    let (lag, c) = align(
        &operator_says[at..at + 8_000],
        played.get(at..).unwrap_or(&[]),
        8_000,
    );
    assert!(
        c >= 0.9,
        "operator to unit: correlation {c} at lag {lag}\n{log}"
    );
    let received = heard_by_phone(phone);
    let (lag, c) = align(&unit_says[..8_000], &received, 8_000);
    assert!(
        c >= 0.9,
        "unit to operator: correlation {c} at lag {lag}\n{log}"
    );
}

/// The counters of the unit's last call once it ended and its media reported (within 3 s).
async fn ended_call_media(
    link: &vigil::centre::scaip::ScaipLink,
) -> Option<vigil::voice::media::MediaStats> {
    let mut calls = link.calls();
    let ended = |c: &vigil::centre::scaip::call::CallReport| {
        !c.active && c.last_end.as_ref().is_some_and(|(_, s)| s.sent > 0)
    };
    let report = tokio::time::timeout(Duration::from_secs(3), calls.wait_for(ended))
        .await
        .ok()?
        .ok()?
        .clone();
    report.last_end.map(|(_, stats)| stats)
}

/// baresip's configuration in `dir` gains SRTP, trust in the test CA for TLS, and a
/// certificate of its own for the TLS connections the proxy opens to it.
fn trust_the_test_ca(dir: &Path) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut pem = std::fs::read(data.join("tls_centre.pem")).unwrap();
    pem.extend(std::fs::read(data.join("tls_centre.key")).unwrap());
    std::fs::write(dir.join("phone.pem"), pem).unwrap();
    add_to_config(
        dir,
        &format!(
            "module srtp.so\nsip_cafile {}\nsip_certificate {}\n",
            data.join("tls_ca.pem").display(),
            dir.join("phone.pem").display()
        ),
    );
}

/// Kamailio with a TLS listener, and the unit registered at it over TLS. The TLS port.
#[cfg(feature = "tls")]
async fn kamailio_tls_and_unit() -> (Kamailio, u16, vigil::centre::scaip::ScaipLink) {
    let binary = kamailio_binary().expect("kamailio (apt-get install kamailio)");
    let tls_port = free_port();
    let (kamailio, _) = start_kamailio_tls(
        &binary,
        SocketAddr::from(([127, 0, 0, 1], free_udp_port())),
        tls_port,
    );
    let proxy = SocketAddr::from(([127, 0, 0, 1], tls_port));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let link = registered_link(proxy, vigil::config::SipTransport::Tls, PASSWORD).await;
    let reg = link.wait_registered(Duration::from_secs(10)).await;
    assert!(
        matches!(reg, vigil::centre::scaip::Registration::Registered(_)),
        "{reg:?}\n{}",
        kamailio.log()
    );
    (kamailio, tls_port, link)
}

/// The unit calls the operator once the phone has registered (404 until then).
async fn call_the_operator(
    link: &vigil::centre::scaip::ScaipLink,
) -> Result<(), vigil::centre::scaip::ScaipError> {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(6);
    loop {
        match link.place_call("sip:operator@centre.test").await {
            Err(vigil::centre::scaip::ScaipError::Rejected { status: 404, .. })
                if tokio::time::Instant::now() < give_up =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// The unit places the call the centre asks for (`mre` with a `sip:` `tnu`, or an installer's
/// test call): baresip, registered at Kamailio as an operator, answers it on its own; the
/// proxy challenges the unit's INVITE and the unit answers with its credentials; speech
/// crosses both ways, and the unit's BYE ends the call at the phone.
#[cfg_attr(
    not(all(vigil_has_kamailio, vigil_has_baresip)),
    ignore = "needs kamailio and baresip: apt-get install kamailio baresip-core"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unit_calls_an_operators_phone_and_speech_crosses_both_ways() {
    let (kamailio, proxy, link) =
        kamailio_and_unit(SocketAddr::from(([127, 0, 0, 1], free_udp_port()))).await;
    let unit_says = recording(7, 6);
    let heard_by_unit = unit_audio(&link, &unit_says);
    // baresip: an operator's phone answering by itself. It says more than the call lasts, so
    // it hangs up only when the unit does.
    let dir = tempfile::tempdir().unwrap();
    let operator_says = recording(13, 20);
    let phone = operator_phone(dir.path(), proxy, &operator_says, "auto", 12);
    let placed = call_the_operator(&link).await;
    assert!(placed.is_ok(), "{placed:?}\n{}", kamailio.log());
    let report = link.calls().borrow().clone();
    assert!(report.active && report.placed == 1, "{report:?}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(link.hang_up().await, "the call was still up");
    let (status, phone_log) = phone.await.unwrap();
    assert!(status.success(), "{status}\n{phone_log}");
    // The call ended at the phone when the unit's BYE reached it (before baresip quit).
    let ended = phone_log.find("terminated");
    let quit = phone_log.find("ua: stop all");
    assert!(
        ended.is_some() && ended < quit,
        "the phone never saw the call end\n{phone_log}"
    );

    // The operator's words reached the unit's loudspeaker, and the person's the operator.
    let played = heard_by_unit.lock().unwrap().clone();
    assert!(!played.is_empty(), "the call had no audio");
    speech_crossed(
        &operator_says,
        1,
        &played,
        &unit_says,
        dir.path(),
        &phone_log,
    );
}

/// A call nobody picks up is cancelled when its ring time is over (RFC 3261 §9.1): the phone
/// stops ringing and the unit says why the call did not happen.
#[cfg_attr(
    not(all(vigil_has_kamailio, vigil_has_baresip)),
    ignore = "needs kamailio and baresip: apt-get install kamailio baresip-core"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_nobody_answers_is_cancelled_at_the_phone() {
    let (kamailio, proxy, link) =
        kamailio_and_unit(SocketAddr::from(([127, 0, 0, 1], free_udp_port()))).await;
    link.set_call_audio(Arc::new(|| {
        Ok(Box::new(SimCallPort::new(Vec::new()).0) as Box<dyn CallAudioPort>)
    }));
    link.set_call_ring(Duration::from_secs(2));
    // An operator's phone that rings and is never picked up.
    let dir = tempfile::tempdir().unwrap();
    let phone = operator_phone(dir.path(), proxy, &recording(3, 1), "manual", 8);
    let placed = call_the_operator(&link).await;
    let (status, phone_log) = phone.await.unwrap();
    assert!(status.success(), "{status}\n{phone_log}");
    assert!(
        matches!(&placed, Err(vigil::centre::scaip::ScaipError::Rejected { status: 487, reason }) if reason.contains("nobody answered")),
        "{placed:?}\n{phone_log}\n{}",
        kamailio.log()
    );
    // The phone rang, and stopped before baresip quit (baresip reports a cancelled incoming
    // call as its session closed).
    let rang = phone_log.find("Incoming call");
    let ended = phone_log.find("session closed");
    let quit = phone_log.find("ua: stop all");
    assert!(
        rang.is_some() && ended.is_some() && ended < quit,
        "{phone_log}"
    );
    assert!(!link.calls().borrow().active);
}

/// Over TLS the centre's phone calls with SRTP (SDES keys in the SDP, RFC 4568), and the unit
/// answers in kind: baresip, registered at Kamailio over TLS with SRTP mandatory, calls the
/// unit (registered over TLS too); speech crosses both ways through baresip's own SRTP (an
/// implementation this project did not write), and its SRTCP reports authenticate at the unit.
#[cfg(feature = "tls")]
#[cfg_attr(
    not(all(vigil_has_kamailio, vigil_has_baresip)),
    ignore = "needs kamailio and baresip: apt-get install kamailio kamailio-tls-modules baresip-core"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_call_is_srtp_and_speech_crosses_both_ways() {
    let (kamailio, tls_port, link) = kamailio_tls_and_unit().await;
    let unit_says = recording(7, 4);
    let heard_by_unit = unit_audio(&link, &unit_says);
    link.answer_calls_until(tokio::time::Instant::now() + Duration::from_secs(60));

    let dir = tempfile::tempdir().unwrap();
    let centre_says = recording(11, 4);
    let mic = operator_mic(dir.path(), &centre_says);
    baresip_config_as(
        dir.path(),
        &mic,
        free_udp_port(),
        &format!(
            "<sip:arc@centre.test;transport=tls>;regint=0;\
             outbound=\"sip:127.0.0.1:{tls_port};transport=tls;lr\";\
             audio_codecs=PCMA,PCMU;answermode=manual;mediaenc=srtp-mand"
        ),
    );
    trust_the_test_ca(dir.path());
    let baresip_log = dial_the_unit(dir.path(), 7).await;

    let ended = ended_call_media(&link).await;
    let report = link.calls().borrow().clone();
    let stats = match ended {
        Some(stats) if report.answered == 1 => stats,
        _ => panic!("{report:?}\n{baresip_log}\n{}", kamailio.log()),
    };
    assert!(
        stats.srtp,
        "the call was not SRTP: {stats:?}\n{baresip_log}"
    );
    // baresip's SRTCP authenticated. (It also sends an APP keepalive before its SRTCP starts
    // and its RTCP BYE after it stops, both in the clear: those are dropped, as anything that
    // does not authenticate is.)
    assert!(stats.rtcp_received >= 1, "baresip's SRTCP: {stats:?}");
    let played = heard_by_unit.lock().unwrap().clone();
    speech_crossed(
        &centre_says,
        1,
        &played,
        &unit_says,
        dir.path(),
        &baresip_log,
    );
}

/// Over TLS the unit offers the calls it places as SRTP: a phone with SRTP takes it and speech
/// crosses encrypted; a phone without refuses the offer (488), and the unit calls again with
/// plain RTP, because the person must be heard.
#[cfg(feature = "tls")]
#[cfg_attr(
    not(all(vigil_has_kamailio, vigil_has_baresip)),
    ignore = "needs kamailio and baresip: apt-get install kamailio kamailio-tls-modules baresip-core"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_unit_calls_with_srtp_and_without_it_for_a_phone_that_has_none() {
    let (kamailio, tls_port, link) = kamailio_tls_and_unit().await;
    let unit_says = recording(7, 6);
    let heard_by_unit = unit_audio(&link, &unit_says);
    for srtp in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let operator_says = recording(13, 20);
        let outbound = Outbound::Tls {
            port: tls_port,
            srtp,
        };
        let phone = operator_phone_on(dir.path(), &outbound, &operator_says, "auto", 9);
        let placed = call_the_operator(&link).await;
        assert!(
            placed.is_ok(),
            "srtp {srtp}: {placed:?}\n{}",
            kamailio.log()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(link.hang_up().await, "srtp {srtp}: the call was not up");
        let (status, phone_log) = phone.await.unwrap();
        assert!(status.success(), "{status}\n{phone_log}");
        let stats = ended_call_media(&link)
            .await
            .unwrap_or_else(|| panic!("srtp {srtp}: the call's media never ended"));
        assert_eq!(stats.srtp, srtp, "{stats:?}\n{phone_log}");
        let played = std::mem::take(&mut *heard_by_unit.lock().unwrap());
        let (lag, c) = align(
            &operator_says[8_000..16_000],
            played.get(8_000..).unwrap_or(&[]),
            8_000,
        );
        assert!(
            c >= 0.9,
            "srtp {srtp}: operator to unit {c} at lag {lag}\n{phone_log}"
        );
    }
}
