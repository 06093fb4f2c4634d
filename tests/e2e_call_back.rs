//! The whole unit, end to end, from a press to the operator talking with the person: the
//! SCAIP centre's answer to the alarm asks for a call to its operator (`mre` 1, `tnu`
//! `sip:operator@arc.test`); the real `vigil` binary, with its simulated loudspeaker and
//! microphone in a simulated room, places the call through the centre's proxy; the operator
//! talks and hangs up. The operator's words reach the unit's loudspeaker, and the operator
//! does not hear their own voice come back from the room: the echo canceller is in the path.
//!
//! Needs Debian's `libspeexdsp1` (reported as ignored without it; under `CI=true` a missing
//! library fails, see build.rs).

mod site_support;
mod speech_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use site_support::*;
use speech_support::{artificial_voice, RATE};
use vigil::centre::receiver::scaip::{Operator, ScaipAnswer};
use vigil::radio::frame::Event as Frame;
use vigil::runtime::simsite::{SimSite, SiteOptions};
use vigil::voice::pcm::{align, read_wav, to_i16};

fn energy(x: &[i16]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

#[cfg_attr(
    not(vigil_has_speexdsp),
    ignore = "needs speexdsp: apt-get install libspeexdsp1"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_centre_asks_for_a_call_and_the_operator_talks_with_the_person() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(
        dir.path(),
        SiteOptions {
            fixed_window: Duration::from_secs(1),
            ..SiteOptions::default()
        },
    )
    .await
    .unwrap();
    // The unit's own prompts (alarm raised, calling the centre, help is coming, connected)
    // hold the call's loudspeaker audio while they play, some 8 s at the start of this call:
    // the operator talks on for 20 s.
    let says: Vec<i16> = artificial_voice(20.0, 0.7, 1)
        .into_iter()
        .map(to_i16)
        .collect();
    let operator = Operator::new(says.clone(), Duration::from_secs(21));
    site.scaip.set_operator(operator.clone());
    site.scaip.script(vec![ScaipAnswer {
        snu: Some(0),
        mre: Some(1),
        cre: None,
        tnu: Some("sip:operator@arc.test".into()),
        hbi: None,
    }]);
    let log = dir.path().join("vigil.log");
    let sound = dir.path().join("sound");
    std::fs::create_dir_all(&sound).unwrap();
    let unit = VigilProcess::start_with_sound(&site, &log, &sound).await;

    let p = press(site.radio, 0, 1, Frame::Help).await.unwrap();
    assert!(p.acked_at.is_some(), "{}", log_tail(&log));
    // The call is recorded when it ends: the operator hangs up after 21 s.
    let recording = sound.join("call-1.wav");
    let give_up = Instant::now() + Duration::from_secs(50);
    while !recording.exists() {
        assert!(
            Instant::now() < give_up,
            "no call ({} answered by the operator)\n{}",
            operator.answered.load(Ordering::Relaxed),
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(operator.answered.load(Ordering::Relaxed), 1);

    // The person heard the operator, once the prompts were over.
    let played: Vec<i16> = read_wav(&recording)
        .unwrap()
        .samples
        .iter()
        .map(|&s| to_i16(s))
        .collect();
    // Both ends' recordings start with the call: a second of the operator's words is looked
    // for around the same time in the unit's.
    let near = played.get(16 * RATE..).unwrap_or(&[]);
    let (lag, c) = align(&says[17 * RATE..18 * RATE], near, 2 * RATE);
    assert!(
        c >= 0.9,
        "operator to person: correlation {c} at lag {lag}\n{}",
        log_tail(&log)
    );

    // The operator does not hear their own voice come back: from 15 s to 19.5 s (the prompts
    // are over by 12 s, and the canceller has had their voice on the loudspeaker since), what
    // came back from the room is far below what they said. Without the canceller it comes
    // back some 5 dB below.
    let heard = operator.heard.lock().unwrap().clone();
    let span = 15 * RATE..39 * RATE / 2;
    let back = heard.get(span.clone()).map(energy).unwrap_or(0.0);
    let below = 10.0 * (energy(&says[span]) / back.max(1.0)).log10();
    eprintln!("the operator's voice came back {below:.1} dB below what they said");
    assert!(
        heard.len() >= 39 * RATE / 2,
        "the operator heard {} samples",
        heard.len()
    );
    assert!(
        below >= 30.0,
        "the operator hears themselves: only {below:.1} dB below"
    );
    assert!(unit.terminate(Duration::from_secs(15)).await.success());
}
