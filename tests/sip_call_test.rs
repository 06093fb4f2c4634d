//! The installer's test call against an echo test line the project did not write: SIPp
//! (Debian `sip-tester`) answers as the centre's echo line behind Kamailio and sends every RTP
//! packet back. The unit calls it through the proxy (answering Kamailio's challenge), says
//! its test prompt into the call, hangs up, and finds the prompt in what came back: the round
//! trip and the level are measured, not assumed.

mod kamailio_support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kamailio_support::*;
use vigil::core::Prompt;
use vigil::voice::call_port::CallAudioPort;
use vigil::voice::call_test::{measure, ProbePort};
use vigil::voice::catalogue::PromptSet;
use vigil::voice::pcm::to_i16;

/// SIPp's own UAS scenario with RTP echo, for one call; killed when dropped.
struct EchoLine(Child);

impl Drop for EchoLine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn echo_line(sip: SocketAddr, media_port: u16, dir: &Path) -> EchoLine {
    let child = Command::new("sipp")
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-rtp_echo",
        ])
        .args([
            "-p",
            &sip.port().to_string(),
            "-mp",
            &media_port.to_string(),
        ])
        .args(["-m", "1", "-nostdin", "-trace_err"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp runs (apt-get install sip-tester)");
    EchoLine(child)
}

#[cfg_attr(
    not(all(vigil_has_kamailio, vigil_has_sipp)),
    ignore = "needs kamailio and sipp: apt-get install kamailio sip-tester"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_call_measures_the_round_trip_through_an_echo_line() {
    let dir = tempfile::tempdir().unwrap();
    let sipp_at = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let _echo = echo_line(sipp_at, free_udp_port(), dir.path());
    let (kamailio, _proxy, link) = kamailio_and_unit(sipp_at).await;

    // The unit's test prompt, as the call says it.
    let sounds = Path::new(env!("CARGO_MANIFEST_DIR")).join("sounds");
    let (prompts, _) = PromptSet::load(&sounds, "en", 8000);
    let said: Arc<Vec<i16>> = Arc::new(
        prompts
            .get(Prompt::TestCall)
            .expect("the test prompt")
            .samples
            .iter()
            .map(|&s| to_i16(s))
            .collect(),
    );
    let heard: Arc<Mutex<Vec<i16>>> = Arc::default();
    let audio = {
        let (said, heard) = (Arc::clone(&said), Arc::clone(&heard));
        Arc::new(move || {
            let port = ProbePort::hearing_into(Arc::clone(&said), Arc::clone(&heard));
            Ok(Box::new(port) as Box<dyn CallAudioPort>)
        })
    };
    let placed = link.place_call_with("sip:echo@centre.test", audio).await;
    assert!(placed.is_ok(), "{placed:?}\n{}", kamailio.log());
    let length = Duration::from_millis(said.len() as u64 / 8);
    tokio::time::sleep(length + Duration::from_millis(1_500)).await;
    assert!(link.hang_up().await, "the echo line hung up first");
    let heard = heard.lock().unwrap().clone();

    let rt = measure(&said, &heard).expect("the test prompt came back");
    eprintln!("test call through SIPp's echo: {}", rt.describe());
    assert!(
        rt.latency < Duration::from_millis(500),
        "loopback round trip {rt:?}"
    );
    assert!(rt.likeness > 0.9, "{rt:?}");
    // G.711 both ways keeps the level.
    assert!((rt.returned_dbfs - rt.sent_dbfs).abs() < 1.0, "{rt:?}");
}
