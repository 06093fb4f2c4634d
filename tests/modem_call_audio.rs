//! A module whose analog codec carries the call gets the installer's loudness and echo
//! settings at every start: the speakerphone route with its echo canceller, the volume and the
//! microphone gain as shares of the ranges the module itself reports (`=?`), then the
//! installer's tuning. A setting the module refuses is reported, never a reason not to run.
//! A Quectel module whose USB audio card carries calls (`audio.call_device`) gets
//! `AT+QPCMV=1,2` at every start the same way.

use std::time::Duration;

use vigil::config::ModuleCallAudio;
use vigil::modem::at::FinalResult;
use vigil::modem::audio_port::{AudioPort, NoAudioPort};
use vigil::modem::device::Settings;
use vigil::modem::sim::Fault;
use vigil::modem::sim::{Model, SimConfig, SimWorld};
use vigil::modem::{Command, Modem, ModemError};

const CARD: &str = "plughw:CARD=EC25,DEV=0";

fn settings(audio: Option<ModuleCallAudio>) -> Settings {
    Settings {
        sim_pin: None,
        allowed_numbers: vec![],
        remote_secret: None,
        voice_port: None,
        call_device: None,
        call_audio: audio,
    }
}

async fn started(model: Model, audio: Option<ModuleCallAudio>) -> (SimWorld, Modem) {
    started_with(model, settings(audio), Vec::new()).await
}

async fn started_with(model: Model, settings: Settings, faults: Vec<Fault>) -> (SimWorld, Modem) {
    let mut cfg = SimConfig::new("+46700000001");
    cfg.model = model;
    cfg.faults = faults;
    let w = SimWorld::start(cfg).unwrap();
    let m = w.open_modem(settings).unwrap();
    let usable = m.wait_usable(Duration::from_secs(10)).await;
    assert!(usable.is_ok(), "the modem never became usable: {usable:?}");
    (w, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simcom_module_gets_the_speakerphone_route_volume_and_microphone_gain() {
    let audio = ModuleCallAudio {
        volume: 80,
        mic_gain: 50,
        tuning: vec!["AT+COUTGAIN=6".into()],
    };
    let (w, m) = started(Model::SimcomSim7600, Some(audio)).await;
    // SIM7600: AT+CLVL (0-5), AT+CMICGAIN (0-8), AT+CSDVC=3 for the speakerphone.
    assert_eq!(w.module.audio_setting("+CSDVC"), Some(vec![3]));
    assert_eq!(w.module.audio_setting("+CLVL"), Some(vec![4]));
    assert_eq!(w.module.audio_setting("+CMICGAIN"), Some(vec![4]));
    assert_eq!(w.module.audio_setting("+COUTGAIN"), Some(vec![6]));
    assert_eq!(m.capabilities().map(|c| c.call_audio), Some(Some(true)));
    // The ranges were asked of the module, not assumed.
    let cmds = w.module.commands();
    assert!(cmds.iter().any(|c| c == "AT+CMICGAIN=?"), "{cmds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quectel_module_gets_its_speaker_mode_gains_and_echo_tuning_again_after_a_restart() {
    let audio = ModuleCallAudio {
        volume: 100,
        mic_gain: 25,
        tuning: vec!["AT+QEEC=5,40".into(), "AT+QEEC=21,26600".into()],
    };
    let (w, m) = started(Model::QuectelEc25, Some(audio)).await;
    let check = |w: &SimWorld| {
        assert_eq!(w.module.audio_setting("+QAUDMOD"), Some(vec![2]));
        assert_eq!(w.module.audio_setting("+CLVL"), Some(vec![5]));
        // AT+QMIC has two gains (analog and digital), each 0-65535.
        assert_eq!(w.module.audio_setting("+QMIC"), Some(vec![16383, 16383]));
        assert_eq!(w.module.audio_setting("+QEEC"), Some(vec![21, 26600]));
    };
    check(&w);
    assert_eq!(m.capabilities().map(|c| c.call_audio), Some(Some(true)));
    // The module restarts and forgets; the unit sets everything again when it re-inits.
    let mut events = m.events();
    w.module.reboot();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(e) = events.recv().await {
            if matches!(e, vigil::modem::ModemEvent::Down { .. }) {
                return;
            }
        }
    })
    .await;
    assert!(m.wait_usable(Duration::from_secs(10)).await.is_ok());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while w.module.audio_setting("+QEEC").is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check(&w);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_setting_is_reported_and_the_modem_still_runs() {
    // 70000 is outside AT+QEEC's value range: the module answers +CME ERROR 50.
    let audio = ModuleCallAudio {
        volume: 60,
        mic_gain: 50,
        tuning: vec!["AT+QEEC=5,70000".into(), "AT+CMICGAIN=3".into()],
    };
    let (w, m) = started(Model::QuectelEc25, Some(audio)).await;
    assert_eq!(m.capabilities().map(|c| c.call_audio), Some(Some(false)));
    // What the module took is set; the refused ones are not.
    assert_eq!(w.module.audio_setting("+CLVL"), Some(vec![3]));
    assert_eq!(w.module.audio_setting("+QEEC"), None);
    // Without settings nothing is sent and nothing is reported.
    let (w, m) = started(Model::QuectelEc25, None).await;
    assert_eq!(m.capabilities().map(|c| c.call_audio), Some(None));
    assert!(!w.module.commands().iter().any(|c| c.starts_with("AT+CLVL")));
}

fn with_card() -> Settings {
    Settings {
        call_device: Some(CARD.into()),
        ..settings(None)
    }
}

fn qpcmv_sent(w: &SimWorld) -> usize {
    w.module
        .commands()
        .iter()
        .filter(|c| c.as_str() == "AT+QPCMV=1,2")
        .count()
}

/// Restarts the module by itself and waits until the unit has it back in use.
async fn module_restarts(w: &SimWorld, m: &Modem) {
    let mut events = m.events();
    w.module.reboot();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(e) = events.recv().await {
            if matches!(e, vigil::modem::ModemEvent::Down { .. }) {
                return;
            }
        }
    })
    .await;
    assert!(m.wait_usable(Duration::from_secs(10)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quectel_module_puts_calls_on_its_usb_audio_card_again_after_a_restart() {
    let (w, m) = started_with(Model::QuectelEc25, with_card(), Vec::new()).await;
    assert_eq!(qpcmv_sent(&w), 1, "{:?}", w.module.commands());
    assert_eq!(w.module.audio_setting("+QPCMV"), Some(vec![1, 2]));
    assert_eq!(m.capabilities().map(|c| c.usb_audio), Some(Some(true)));
    // The card is the call's port where the build can open it; elsewhere the reason says so.
    if cfg!(feature = "alsa") {
        assert_eq!(m.audio_port(), Ok(AudioPort::SoundCard(CARD.into())));
    } else {
        assert_eq!(m.audio_port(), Err(NoAudioPort::NoAudioDevices));
    }
    // The module forgets at its restart; the unit sets it again when it re-inits.
    module_restarts(&w, &m).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while qpcmv_sent(&w) < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(qpcmv_sent(&w), 2, "{:?}", w.module.commands());
    assert_eq!(w.module.audio_setting("+QPCMV"), Some(vec![1, 2]));
    assert_eq!(m.capabilities().map(|c| c.usb_audio), Some(Some(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_usb_audio_card_is_reported_and_the_modem_still_runs() {
    let (w, m) = started_with(Model::QuectelEc25, with_card(), vec![Fault::NoUsbAudio]).await;
    assert_eq!(qpcmv_sent(&w), 1);
    assert_eq!(w.module.audio_setting("+QPCMV"), None);
    assert_eq!(m.capabilities().map(|c| c.usb_audio), Some(Some(false)));
    let why = m.audio_port().unwrap_err();
    assert_eq!(
        why,
        NoAudioPort::Refused {
            command: "AT+QPCMV=1,2"
        }
    );
    assert!(m.usable().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usb_audio_card_is_asked_of_quectel_modules_only_and_only_when_named() {
    // No card named: nothing sent, nothing reported.
    let (w, m) = started_with(Model::QuectelEc25, settings(None), Vec::new()).await;
    assert_eq!(qpcmv_sent(&w), 0);
    assert_eq!(m.capabilities().map(|c| c.usb_audio), Some(None));
    assert_eq!(m.audio_port(), Err(NoAudioPort::NotWired));
    // A SIMCom module has no such command: the card is not used, and the reason names it.
    let (w, m) = started_with(Model::SimcomSim7600, with_card(), Vec::new()).await;
    assert!(!w
        .module
        .commands()
        .iter()
        .any(|c| c.starts_with("AT+QPCMV")));
    assert_eq!(m.capabilities().map(|c| c.usb_audio), Some(None));
    let why = m.audio_port().unwrap_err().to_string();
    assert!(
        why.contains("audio.call_device") && why.contains("Quectel") && why.contains("SIMCom"),
        "{why}"
    );
}

/// The simulated EC25 answers `AT+QPCMV` as its manual has it: the ranges to `=?`, the
/// setting to `?`, +CME ERROR 50 outside the ranges, and off again after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_quectel_module_answers_qpcmv_and_forgets_it_at_a_restart() {
    let (w, m) = started_with(Model::QuectelEc25, settings(None), Vec::new()).await;
    let t = Duration::from_secs(2);
    let ask = |line: &'static str| {
        let m = m.clone();
        async move {
            m.at()
                .send(Command::new(line, t).expect("+QPCMV:"))
                .await
                .map(|r| r.line("+QPCMV:").unwrap_or("").to_string())
        }
    };
    assert_eq!(ask("AT+QPCMV=?").await.unwrap(), "+QPCMV: (0,1),(0-2)");
    assert_eq!(ask("AT+QPCMV?").await.unwrap(), "+QPCMV: 0,0");
    for bad in ["AT+QPCMV=1,3", "AT+QPCMV=2,2", "AT+QPCMV=1,x"] {
        match m.at().send(Command::new(bad, t)).await {
            Err(ModemError::Rejected {
                result: FinalResult::Cme(code),
                ..
            }) => assert!(
                code.to_string().contains("Incorrect parameters"),
                "{bad}: {code}"
            ),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert!(m.at().send(Command::new("AT+QPCMV=1,2", t)).await.is_ok());
    assert_eq!(ask("AT+QPCMV?").await.unwrap(), "+QPCMV: 1,2");
    module_restarts(&w, &m).await;
    assert_eq!(ask("AT+QPCMV?").await.unwrap(), "+QPCMV: 0,0");
    // SIMCom's firmware has no such command.
    let (_w, simcom) = started_with(Model::SimcomSim7600, settings(None), Vec::new()).await;
    assert!(simcom
        .at()
        .send(Command::new("AT+QPCMV=1,2", t))
        .await
        .is_err());
}
