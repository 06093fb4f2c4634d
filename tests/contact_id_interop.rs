//! The Contact ID digits the unit plays into a call itself, checked by a DTMF decoder this
//! project did not write: multimon-ng (Debian). On a SIMCom module the unit streams the call on
//! the module's voice port and sends the 16 digits as DTMF in the audio, 55 ms on and 55 ms
//! off (DC-05: 50–60 ms). The simulated module records what the far end heard; multimon-ng
//! must read the same digits from that audio as the simulated receiver did, and they must be
//! the alarm's Contact ID message.
//!
//! Without multimon-ng and sox the test is ignored (build.rs looks for them), except under CI
//! (`CI=true`), where it runs and a missing tool is a failure.

use std::process::Command;
use std::time::Duration;

use vigil::centre::contact_id::{ContactIdCall, Message};
use vigil::config::{ContactIdRoute, Unit};
use vigil::core::{
    Alarm, AlarmCause, AlarmId, AlarmRef, Delivery, DeliveryResult, Device, DeviceId, DeviceKind,
    RouteId, Timestamp,
};
use vigil::modem::device::Settings;
use vigil::modem::network::{CidCentre, Party, Record};
use vigil::modem::sim::{Model, SimConfig, SimWorld};

const UNIT_NO: &str = "+46700000001";
const CID: &str = "+46700000030";

fn unit() -> Unit {
    Unit {
        controller_id: "4711".into(),
        contact_id_account: "1234".into(),
        sia_account: "1234".into(),
        subscriber: "Anna".into(),
        address: "Storgatan 1, Uppsala".into(),
        language: "en".into(),
        volume: 80,
        quiet_hours: None,
    }
}

fn fall() -> Delivery {
    let raised_at = Timestamp::from_secs(1_764_100_000);
    let id = AlarmId(7);
    Delivery {
        alarm: Alarm {
            id,
            reference: AlarmRef::new(id, raised_at),
            cause: AlarmCause::Fall,
            device: Some(Device {
                id: DeviceId(0xA1B2C3D4),
                kind: DeviceKind::Fall,
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

/// The DTMF keys multimon-ng hears in 8 kHz 16-bit `samples` (resampled by sox to the
/// 22,050 Hz raw input multimon-ng reads).
fn multimon_dtmf(dir: &std::path::Path, samples: &[i16]) -> String {
    let raw8k = dir.join("heard-8k.raw");
    let raw = dir.join("heard-22k.raw");
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&raw8k, bytes).unwrap();
    let sox = Command::new("sox")
        .args([
            "-t", "raw", "-r", "8000", "-e", "signed", "-b", "16", "-c", "1",
        ])
        .arg(&raw8k)
        .args([
            "-t", "raw", "-r", "22050", "-e", "signed", "-b", "16", "-c", "1",
        ])
        .arg(&raw)
        .status()
        .expect("sox runs (apt-get install sox)");
    assert!(sox.success());
    let out = Command::new("multimon-ng")
        .args(["-q", "-c", "-a", "DTMF", "-t", "raw"])
        .arg(&raw)
        .output()
        .expect("multimon-ng runs (apt-get install multimon-ng)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("DTMF: "))
        .collect()
}

#[cfg_attr(
    not(vigil_has_multimon),
    ignore = "needs multimon-ng and sox: apt-get install multimon-ng sox"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digits_played_into_a_simcom_call_decode_in_multimon_ng() {
    let dir = tempfile::tempdir().unwrap();
    let w = SimWorld::start(SimConfig {
        model: Model::SimcomSim7600,
        ..SimConfig::new(UNIT_NO)
    })
    .expect("pty");
    w.network.add(CID, Party::Centre(CidCentre::working()));
    let m = w
        .open_modem(Settings {
            voice_port: w.module.voice_port().map(str::to_string),
            ..Settings::default()
        })
        .expect("open");
    m.wait_usable(Duration::from_secs(10))
        .await
        .expect("usable");
    assert!(m.capabilities().is_some_and(|c| c.pcm));

    let route = ContactIdCall::new(m.clone(), &ContactIdRoute { number: CID.into() }, &unit());
    let d = fall();
    let r = route.deliver(&d).await;
    assert!(matches!(r, DeliveryResult::Acked { .. }), "{r:?}");

    let expected = Message::for_alarm("1234", &d.alarm).unwrap().dtmf();
    let received: Vec<String> = w
        .network
        .records()
        .into_iter()
        .filter_map(|r| match r {
            Record::CidMessage { dtmf, .. } => Some(dtmf),
            _ => None,
        })
        .collect();
    assert_eq!(received, vec![expected.clone()]);
    let heard = multimon_dtmf(dir.path(), &w.module.voice_port_audio());
    assert_eq!(heard, expected, "multimon-ng heard {heard:?}");
}
