//! A module whose analog codec carries the call gets the installer's loudness and echo
//! settings at every start: the speakerphone route with its echo canceller, the volume and the
//! microphone gain as shares of the ranges the module itself reports (`=?`), then the
//! installer's tuning. A setting the module refuses is reported, never a reason not to run.

use std::time::Duration;

use vigil::config::ModuleCallAudio;
use vigil::modem::device::Settings;
use vigil::modem::sim::{Model, SimConfig, SimWorld};
use vigil::modem::Modem;

fn settings(audio: Option<ModuleCallAudio>) -> Settings {
    Settings {
        sim_pin: None,
        allowed_numbers: vec![],
        remote_secret: None,
        voice_port: None,
        call_audio: audio,
    }
}

async fn started(model: Model, audio: Option<ModuleCallAudio>) -> (SimWorld, Modem) {
    let mut cfg = SimConfig::new("+46700000001");
    cfg.model = model;
    let w = SimWorld::start(cfg).unwrap();
    let m = w.open_modem(settings(audio)).unwrap();
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
