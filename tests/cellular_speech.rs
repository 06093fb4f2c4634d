//! A module wired by USB audio (SIMCom with `modem.voice_port`) has no loudspeaker of its own:
//! the centre's call, answered in the window after an alarm, is carried through the unit's
//! speakerphone on the module's voice port, speech both ways, and streaming stops when the
//! call does.

use std::time::Duration;

use tokio::sync::watch;
use vigil::modem::device::Settings;
use vigil::modem::sim::{Model, SimConfig, SimWorld};
use vigil::modem::voice_port::BridgeEnd;
use vigil::modem::ModemEvent;
use vigil::voice::pcm::align;
use vigil::voice::sim_call::SimCallPort;

const UNIT_NO: &str = "+46700000001";
const CENTRE: &str = "+46812345678";

/// Noise-like speech stand-in, `seconds` long at 8 kHz (no two stretches alike).
fn recording(seed: u32, seconds: usize) -> Vec<i16> {
    let mut x = seed;
    (0..8000 * seconds)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 16) as i16) / 4
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_centres_call_is_carried_through_the_speakerphone_on_the_voice_port() {
    let mut cfg = SimConfig::new(UNIT_NO);
    cfg.model = Model::SimcomSim7600;
    let w = SimWorld::start(cfg).unwrap();
    let m = w
        .open_modem(Settings {
            sim_pin: None,
            allowed_numbers: vec![CENTRE.into()],
            remote_secret: None,
            voice_port: w.module.voice_port().map(str::to_string),
            call_device: None,
            call_audio: None,
        })
        .unwrap();
    m.wait_usable(Duration::from_secs(10)).await.unwrap();
    assert!(
        m.capabilities().is_some_and(|c| c.pcm),
        "{:?}",
        m.capabilities()
    );
    m.auto_answer_for(Duration::from_secs(60));
    let mut events = m.events();
    w.network
        .call_modem(UNIT_NO, CENTRE, Duration::from_secs(5));
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(ModemEvent::IncomingCall { answered, .. }) = events.recv().await {
                return answered;
            }
        }
    })
    .await;
    assert_eq!(answered, Ok(true), "the centre's call was not answered");

    // The unit's speakerphone: its microphone hears the person, its loudspeaker is recorded.
    let person_says = recording(5, 4);
    let (speakerphone, heard_by_person) = SimCallPort::new(person_says.clone());
    let (stop_tx, stop) = watch::channel(false);
    let bridge = tokio::spawn({
        let m = m.clone();
        async move { m.speak_in_call(Box::new(speakerphone), stop).await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !w.module.commands().iter().any(|c| c == "AT+CPCMREG=1") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call was never streamed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let operator_says = recording(9, 3);
    w.module.far_end_says(&operator_says);
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    stop_tx.send_replace(true);
    let end = bridge.await.unwrap();
    assert_eq!(end, Ok(BridgeEnd::Stopped));
    let cmds = w.module.commands();
    // The last streaming command is the stop (a health check may follow it).
    let last = cmds.iter().rev().find(|c| c.starts_with("AT+CPCMREG="));
    assert_eq!(last.map(String::as_str), Some("AT+CPCMREG=0"), "{cmds:?}");

    // The operator reached the person's loudspeaker, and the person the operator.
    let played = heard_by_person.lock().unwrap().clone();
    let (lag, c) = align(&operator_says[8_000..16_000], &played, 16_000);
    assert!(c >= 0.9, "operator to person: correlation {c} at lag {lag}");
    let sent = w.module.voice_port_audio();
    let (lag, c) = align(&person_says[..8_000], &sent, 16_000);
    assert!(c >= 0.9, "person to operator: correlation {c} at lag {lag}");
}
