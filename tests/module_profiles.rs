//! The whole unit (`vigil run`) on a site whose cellular module is a SIMCom SIM7600, with a
//! Contact ID route in its plan. That module's detector cannot hear the receiver's handshake
//! and kissoff tones. With its voice port in the configuration the unit hears them itself in
//! the call's audio, and the route works. Without it the route can never be acknowledged: the
//! unit says so at init, as a technical alarm to the centre and a line in `vigil status`, and
//! leaves the route out of the plan instead of calling the receiver for nothing on every alarm.

mod site_support;

use std::time::{Duration, Instant};

use site_support::*;
use vigil::modem::sim::Model;
use vigil::radio::frame::Event as Frame;
use vigil::runtime::simsite::{numbers, SimSite, SiteOptions};

fn status(site: &SimSite) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["status", "--config"])
        .arg(&site.config_path)
        .output()
        .expect("vigil status runs");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The site with a SIMCom module and a Contact ID route, its voice port in the configuration
/// or not, and the real binary running on it.
async fn simcom_site(
    dir: &std::path::Path,
    wire_voice_port: bool,
) -> (SimSite, std::path::PathBuf, VigilProcess) {
    let site = SimSite::start(
        dir,
        SiteOptions {
            modem: Model::SimcomSim7600,
            contact_id_route: true,
            wire_voice_port,
            ..SiteOptions::default()
        },
    )
    .await
    .unwrap();
    let log = dir.join("vigil.log");
    let unit = VigilProcess::start(&site, &log).await;
    (site, log, unit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_simcom_module_without_its_voice_port_a_contact_id_route_is_reported_and_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let (site, log, _unit) = simcom_site(dir.path(), false).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let said = loop {
        let s = status(&site);
        if s.contains("arc-contact-id: CANNOT WORK") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "vigil status never said the route cannot work:\n{s}\n{}",
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        said.contains("1400/2300 Hz") && said.contains("modem.voice_port"),
        "{said}"
    );
    assert!(
        said.contains(
            "module:      SIMCom: speaks into calls yes, hears DTMF yes, hears Contact ID tones NO"
        ),
        "{said}"
    );
    assert!(
        !said.contains("daughter: CANNOT WORK"),
        "the voice route works on this module: {said}"
    );

    // The technical alarm reaches the centre.
    let journal = site.config.data_dir.join("journal.sqlite");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (alarms, _) = read_journal(&journal);
        if alarms
            .iter()
            .any(|a| a.cause == "route-failing" && a.state == "acknowledged")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no route fault reached the centre: {alarms:?}\n{}",
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A press with every IP route down and the SMS gateway silent goes to the daughter's
    // phone, and the Contact ID line is never called.
    every_route_down(&site);
    let p = press(site.radio, 0, 1, Frame::Help).await.unwrap();
    assert!(p.acked_at.is_some(), "{}", log_tail(&log));
    // The daughter's phone is the last route before the Contact ID line: once it has been
    // called and has failed, a Contact ID call would follow at once.
    let daughter = format!("ATD{};", numbers::DAUGHTER);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !site.cellular.module.commands().contains(&daughter) {
        assert!(
            Instant::now() < deadline,
            "the round never reached the daughter:\n{}",
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nobody answers there within a second (the simulated network's no-answer time); give
    // the next route as long again to begin.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cmds = site.cellular.module.commands();
    assert!(
        !cmds
            .iter()
            .any(|c| c == &format!("ATD{};", numbers::CONTACT_ID)),
        "the receiver's line was called: {cmds:?}"
    );
}

/// With the module's voice port configured, the same site takes an alarm over Contact ID when
/// every other route is down: the real binary streams the call, hears the handshake and the
/// kissoff, and sends the digits in the audio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_simcom_module_with_its_voice_port_contact_id_takes_the_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let (site, log, _unit) = simcom_site(dir.path(), true).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = status(&site);
        if s.contains(
            "hears Contact ID tones yes (the unit, in the call's audio on the voice port)",
        ) {
            assert!(!s.contains("CANNOT WORK"), "{s}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the module never showed it hears the tones through its voice port:\n{s}\n{}",
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    every_route_down(&site);
    let p = press(site.radio, 0, 1, Frame::Help).await.unwrap();
    assert!(p.acked_at.is_some(), "{}", log_tail(&log));
    let journal = site.config.data_dir.join("journal.sqlite");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (alarms, _) = read_journal(&journal);
        if let Some(a) = alarms.iter().find(|a| a.cause == "help") {
            if a.state == "acknowledged" {
                let by = a.closed_by.clone().unwrap_or_default();
                assert!(by.contains("Contact ID"), "acknowledged by {by}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the alarm was not acknowledged over Contact ID: {alarms:?}\n{}",
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cmds = site.cellular.module.commands();
    assert!(cmds.iter().any(|c| c == "AT+CPCMREG=1"), "{cmds:?}");
}

/// A SIMCom site wired by USB audio (its voice port configured), `prepare`d before the real
/// binary starts with its simulated loudspeaker recording calls to `sound/call-<n>.wav`; a
/// press raised and acknowledged. The site, the unit's log, the sound folder and the unit.
async fn simcom_speakerphone_site(
    dir: &std::path::Path,
    prepare: impl FnOnce(&SimSite),
) -> (
    SimSite,
    std::path::PathBuf,
    std::path::PathBuf,
    VigilProcess,
) {
    let site = SimSite::start(
        dir,
        SiteOptions {
            modem: Model::SimcomSim7600,
            wire_voice_port: true,
            ..SiteOptions::default()
        },
    )
    .await
    .unwrap();
    prepare(&site);
    let log = dir.join("vigil.log");
    let sound = dir.join("sound");
    std::fs::create_dir_all(&sound).unwrap();
    let unit = VigilProcess::start_with_sound(&site, &log, &sound).await;
    let p = press(site.radio, 0, 1, Frame::Help).await.unwrap();
    assert!(p.acked_at.is_some(), "{}", log_tail(&log));
    (site, log, sound, unit)
}

/// Waits until the module streams a call on its voice port, then the operator talks for 14 s
/// there (the unit's prompts, alarm raised and help is coming, hold the call's loudspeaker
/// audio for the first seconds). What they say.
async fn operator_talks_on_the_voice_port(site: &SimSite, log: &std::path::Path) -> Vec<i16> {
    let streaming = Instant::now() + Duration::from_secs(30);
    while !site
        .cellular
        .module
        .commands()
        .iter()
        .any(|c| c == "AT+CPCMREG=1")
    {
        assert!(
            Instant::now() < streaming,
            "the call was never streamed\n{}",
            log_tail(log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut x = 17u32;
    let says: Vec<i16> = (0..8000 * 14)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 16) as i16) / 4
        })
        .collect();
    site.cellular.module.far_end_says(&says);
    says
}

/// Once the call's speech ended (its recording written): the operator's words reached the
/// unit's loudspeaker, and streaming was stopped.
async fn the_person_heard(
    site: &SimSite,
    log: &std::path::Path,
    sound: &std::path::Path,
    says: &[i16],
) {
    let recording = sound.join("call-1.wav");
    let give_up = Instant::now() + Duration::from_secs(30);
    while !recording.exists() {
        assert!(
            Instant::now() < give_up,
            "the call's speech never ended\n{}",
            log_tail(log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let played: Vec<i16> = vigil::voice::pcm::read_wav(&recording)
        .unwrap()
        .samples
        .iter()
        .map(|&s| vigil::voice::pcm::to_i16(s))
        .collect();
    // The bridge keeps at most 100 ms queued each way and drops the rest, so a machine that
    // stalls the unit for a moment loses a frame there: one whole second of the last four,
    // heard intact, is what proves the speech crossed. The search over the whole recording is
    // done once; the other seconds are looked for within 100 ms of where that one puts them.
    let second = |s: usize| &says[s * 8000..(s + 1) * 8000];
    let (lag12, c12) = vigil::voice::pcm::align(second(12), &played, played.len());
    let (second, lag, c) = (9..12)
        .filter_map(|s| {
            let from = (lag12 + s * 8000).checked_sub(12 * 8000 + 800)?;
            let (l, c) = vigil::voice::pcm::align(second(s), played.get(from..)?, 1600);
            Some((s, from + l, c))
        })
        .fold(
            (12, lag12, c12),
            |best, x| if x.2 > best.2 { x } else { best },
        );
    assert!(
        c >= 0.9,
        "operator to person: best correlation {c} (second {second}, lag {lag})\n{}",
        log_tail(log)
    );
    let cmds = site.cellular.module.commands();
    let on = cmds.iter().rposition(|c| c == "AT+CPCMREG=1");
    let off = cmds.iter().rposition(|c| c == "AT+CPCMREG=0");
    assert!(
        off > on,
        "streaming was not stopped after the call: {cmds:?}"
    );
}

/// On a SIMCom module wired by USB audio (its voice port configured), the centre's call back
/// after an alarm is answered and carried through the unit's speakerphone: the real binary
/// streams the call on the voice port, the operator's words reach the unit's loudspeaker, and
/// streaming stops when the centre hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_simcom_module_the_centres_call_back_goes_through_the_speakerphone() {
    let dir = tempfile::tempdir().unwrap();
    let (site, log, sound, unit) = simcom_speakerphone_site(dir.path(), |_| {}).await;
    // The alarm opens the auto-answer window: the centre calls back from its number.
    let network = &site.cellular.network;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        network.call_modem(numbers::UNIT, numbers::SMS_GATEWAY, Duration::from_secs(3));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let answered = network.records().iter().any(|r| {
            matches!(r, vigil::modem::network::Record::ModemAnswered { from } if from == numbers::SMS_GATEWAY)
        });
        if answered {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the centre's call was never answered\n{}",
            log_tail(&log)
        );
    }
    let says = operator_talks_on_the_voice_port(&site, &log).await;
    tokio::time::sleep(Duration::from_millis(14_500)).await;
    network.caller_hangs_up(numbers::UNIT, numbers::SMS_GATEWAY);
    the_person_heard(&site, &log, &sound, &says).await;
    assert!(unit.terminate(Duration::from_secs(15)).await.success());
}

/// `vigil call-test` to a phone number: the running unit dials an echo test line through a
/// SIMCom module wired by USB audio, says its test prompt on the voice port, and reports the
/// round trip of what came back; without the voice port it says why it cannot measure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installers_test_call_to_a_number_measures_the_round_trip() {
    // The centre's echo test line, at a number on the unit's allow-list.
    const ECHO: &str = numbers::SMS_GATEWAY;
    for wired in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (site, log, unit) = simcom_site(dir.path(), wired).await;
        site.cellular
            .network
            .add(ECHO, vigil::modem::network::Party::EchoLine);
        // Once the module is recognised.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !status(&site).contains("module:") {
            assert!(Instant::now() < deadline, "{}", log_tail(&log));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let out = tokio::task::spawn_blocking({
            let config = site.config_path.clone();
            move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
                    .args(["call-test", ECHO, "--config"])
                    .arg(&config)
                    .output()
                    .expect("vigil call-test runs")
            }
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if wired {
            assert!(out.status.success(), "{text}\n{}", log_tail(&log));
            assert!(text.contains(&format!("calling {ECHO}")), "{text}");
            let report = text
                .lines()
                .find(|l| l.starts_with("OK:"))
                .unwrap_or_default();
            assert!(report.contains("round trip"), "{text}");
            eprintln!("{report}");
        } else {
            assert!(!out.status.success(), "{text}");
            assert!(text.contains("modem.voice_port"), "{text}");
        }
        assert!(unit.terminate(Duration::from_secs(15)).await.success());
    }
}

/// The centre's answer asks for a call back to its number (`mre` 1, `tnu` a phone number):
/// on a SIMCom module wired by USB audio the unit places it and carries the speech through its
/// speakerphone, so the operator's words reach the person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_simcom_module_the_call_back_the_centre_asks_for_goes_through_the_speakerphone() {
    use vigil::centre::receiver::scaip::ScaipAnswer;
    use vigil::modem::network::{Party, Person, Pickup};
    let dir = tempfile::tempdir().unwrap();
    let (site, log, sound, unit) = simcom_speakerphone_site(dir.path(), |site| {
        // The centre's operator line (on the unit's allow-list) answers and hangs up after 16 s.
        site.cellular.network.add(
            numbers::SMS_GATEWAY,
            Party::Person(Person {
                pickup: Pickup::Answers,
                key: None,
                drop_after: Some(Duration::from_secs(16)),
            }),
        );
        site.scaip.script(vec![ScaipAnswer {
            snu: Some(0),
            mre: Some(1),
            cre: None,
            tnu: Some(numbers::SMS_GATEWAY.into()),
            hbi: None,
        }]);
    })
    .await;
    let says = operator_talks_on_the_voice_port(&site, &log).await;
    the_person_heard(&site, &log, &sound, &says).await;
    assert!(unit.terminate(Duration::from_secs(15)).await.success());
}

/// Contact ID on a SIMCom module wired by USB audio, when every other route is down: after the
/// kissoff the real binary keeps the call and carries the operator's speech through the unit's
/// speakerphone on the stream that carried the digits, until the receiver hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_simcom_module_contact_ids_call_goes_on_through_the_speakerphone() {
    use vigil::modem::network::{CidCentre, Party, Record};
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(
        dir.path(),
        SiteOptions {
            modem: Model::SimcomSim7600,
            contact_id_route: true,
            wire_voice_port: true,
            ..SiteOptions::default()
        },
    )
    .await
    .unwrap();
    // The receiver's operator stays on the line for 25 s after answering.
    site.cellular.network.add(
        numbers::CONTACT_ID,
        Party::Centre(CidCentre {
            drop_after: Some(Duration::from_secs(25)),
            ..CidCentre::working()
        }),
    );
    let log = dir.path().join("vigil.log");
    let sound = dir.path().join("sound");
    std::fs::create_dir_all(&sound).unwrap();
    let unit = VigilProcess::start_with_sound(&site, &log, &sound).await;
    every_route_down(&site);
    let p = press(site.radio, 0, 1, Frame::Help).await.unwrap();
    assert!(p.acked_at.is_some(), "{}", log_tail(&log));
    let deadline = Instant::now() + Duration::from_secs(90);
    while !site
        .cellular
        .network
        .records()
        .iter()
        .any(|r| matches!(r, Record::Kissoff { .. }))
    {
        assert!(Instant::now() < deadline, "no kissoff\n{}", log_tail(&log));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let says = operator_talks_on_the_voice_port(&site, &log).await;
    the_person_heard(&site, &log, &sound, &says).await;
    let streaming = site
        .cellular
        .module
        .commands()
        .iter()
        .filter(|c| c.as_str() == "AT+CPCMREG=1")
        .count();
    assert_eq!(streaming, 1, "the stream was started again for the speech");
    assert!(unit.terminate(Duration::from_secs(15)).await.success());
}

/// Waits until `vigil status` has a line containing `wanted`, and returns the status.
async fn status_with(site: &SimSite, log: &std::path::Path, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = status(site);
        if s.contains(wanted) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "vigil status never said {wanted:?}:\n{s}\n{}",
            log_tail(log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Quectel site with its USB audio card named (`audio.call_device`): `vigil status` says
/// where a cellular call's speech goes (or, in a build without audio devices, that it cannot);
/// when the module refuses `AT+QPCMV=1,2` after a restart, it says DEGRADED and the unit runs
/// on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_quectel_module_its_usb_audio_card_and_a_refusal_show_in_status() {
    use vigil::modem::sim::Fault;
    const CARD: &str = "plughw:CARD=EC25,DEV=0";
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(
        dir.path(),
        SiteOptions {
            modem: Model::QuectelEc25,
            call_device: Some(CARD.into()),
            ..SiteOptions::default()
        },
    )
    .await
    .unwrap();
    let log = dir.path().join("vigil.log");
    let _unit = VigilProcess::start(&site, &log).await;

    let wanted = if cfg!(feature = "alsa") {
        format!("call port:   the module's USB audio card {CARD} (AT+QPCMV=1,2)")
    } else {
        "call port:   DEGRADED: audio.call_device is set, but this build has no audio device support (feature `alsa`)".to_string()
    };
    let said = status_with(&site, &log, &wanted).await;
    assert!(said.contains("module:      Quectel"), "{said}");
    let sent = |site: &SimSite| {
        site.cellular
            .module
            .commands()
            .iter()
            .filter(|c| c.as_str() == "AT+QPCMV=1,2")
            .count()
    };
    assert_eq!(sent(&site), 1);

    // The module comes back from a restart without its USB audio function.
    site.cellular.module.inject(Fault::NoUsbAudio);
    site.cellular.module.reboot();
    let said = status_with(
        &site,
        &log,
        "call port:   DEGRADED: the module refused AT+QPCMV=1,2 (see the log)",
    )
    .await;
    assert_eq!(sent(&site), 2, "asked again at the module's restart");
    let said = if said.contains("modem:       ready") {
        said
    } else {
        status_with(&site, &log, "modem:       ready").await
    };
    assert!(said.contains("modem:       ready"), "{said}");
}
