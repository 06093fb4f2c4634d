//! The installer's test call (`vigil call-test`): the unit calls a test line that sends back
//! what it hears (an echo service), says its test prompt into the call, and measures what
//! comes back: how long the round trip takes and at what level, as the operator's end of a
//! real call would hear the person.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::call_port::{CallAudioPort, FRAME, RATE};
use super::pcm::align;

/// The call's audio for a test: the microphone says `said` once, then silence; what the far
/// end sends back is kept.
pub struct ProbePort {
    said: Arc<Vec<i16>>,
    pos: usize,
    heard: Arc<Mutex<Vec<i16>>>,
}

impl ProbePort {
    /// A port saying `said`, and a handle on what it heard.
    pub fn new(said: impl Into<Arc<Vec<i16>>>) -> (ProbePort, Arc<Mutex<Vec<i16>>>) {
        let heard = Arc::new(Mutex::new(Vec::new()));
        (ProbePort::hearing_into(said, Arc::clone(&heard)), heard)
    }

    /// A port saying `said` and adding what it hears to `heard`.
    pub fn hearing_into(said: impl Into<Arc<Vec<i16>>>, heard: Arc<Mutex<Vec<i16>>>) -> ProbePort {
        ProbePort {
            said: said.into(),
            pos: 0,
            heard,
        }
    }
}

impl CallAudioPort for ProbePort {
    fn play(&mut self, frame: &[i16; FRAME]) {
        let mut heard = crate::sync::lock(&self.heard);
        // A minute at most.
        if heard.len() < RATE as usize * 60 {
            heard.extend_from_slice(frame);
        }
    }

    fn capture(&mut self) -> [i16; FRAME] {
        let mut frame = [0i16; FRAME];
        let end = (self.pos + FRAME).min(self.said.len());
        if self.pos < end {
            frame[..end - self.pos].copy_from_slice(&self.said[self.pos..end]);
        }
        self.pos = end;
        frame
    }
}

/// What a test call measured.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundTrip {
    /// From the prompt leaving the unit to its echo coming back, the unit's own buffers
    /// included.
    pub latency: Duration,
    /// The prompt's level as sent, dBFS.
    pub sent_dbfs: f32,
    /// Its level as it came back, dBFS.
    pub returned_dbfs: f32,
    /// How alike the two are, 0–1: under about 0.8 the line distorts or adds noise.
    pub likeness: f32,
}

impl RoundTrip {
    /// The installer's line.
    pub fn describe(&self) -> String {
        format!(
            "round trip {} ms; sent at {:.1} dBFS, back at {:.1} dBFS ({:+.1} dB); likeness {:.2}",
            self.latency.as_millis(),
            self.sent_dbfs,
            self.returned_dbfs,
            self.returned_dbfs - self.sent_dbfs,
            self.likeness
        )
    }
}

/// How long a test call stays up: the prompt, then 2.5 s for its echo to come back.
pub fn listen_time(said: &[i16]) -> Duration {
    Duration::from_millis(said.len() as u64 * 1000 / u64::from(RATE)) + Duration::from_millis(2_500)
}

/// A test call whose prompt was not found in what came back: the line does not echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the call was answered, but the test prompt did not come back: call an echo test line")]
pub struct NoEcho;

/// The installer's answer: the round trip measured, or why the prompt was not found in what
/// came back.
pub fn report(said: &[i16], heard: &[i16]) -> Result<String, NoEcho> {
    measure(said, heard).map(|rt| rt.describe()).ok_or(NoEcho)
}

/// The most round trip looked for: two seconds.
const MAX_LAG: usize = 2 * RATE as usize;

fn dbfs(x: &[i16]) -> f32 {
    if x.is_empty() {
        return f32::NEG_INFINITY;
    }
    let mean = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64;
    (10.0 * (mean.max(1e-9) / (32768.0f64 * 32768.0)).log10()) as f32
}

/// Finds `said` in `heard`; None when nothing like it came back (no echo on the line).
pub fn measure(said: &[i16], heard: &[i16]) -> Option<RoundTrip> {
    let (lag, likeness) = align(said, heard, MAX_LAG);
    if likeness < 0.3 {
        return None;
    }
    let back = heard.get(lag..lag + said.len())?;
    Some(RoundTrip {
        latency: Duration::from_micros(lag as u64 * 1_000_000 / u64::from(RATE)),
        sent_dbfs: dbfs(said),
        returned_dbfs: dbfs(back),
        likeness,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u32) -> Vec<i16> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((x >> 16) as i16) / 8
            })
            .collect()
    }

    #[test]
    fn an_echo_is_found_with_its_delay_and_level() {
        let said = noise(2_000, 3);
        // Back 240 ms later, 6 dB down.
        let mut heard = vec![0i16; 1_920];
        heard.extend(said.iter().map(|&v| v / 2));
        heard.extend(vec![0; 4_000]);
        let rt = measure(&said, &heard).expect("the echo is there");
        assert_eq!(rt.latency, Duration::from_millis(240));
        assert!(
            ((rt.returned_dbfs - rt.sent_dbfs) + 6.0).abs() < 0.2,
            "{rt:?}"
        );
        assert!(rt.likeness > 0.99);
        assert!(rt.describe().contains("round trip 240 ms"));
    }

    #[test]
    fn a_line_that_sends_nothing_back_has_no_round_trip() {
        let said = noise(2_000, 3);
        assert_eq!(measure(&said, &vec![0; 20_000]), None);
        assert_eq!(measure(&said, &noise(20_000, 9)), None);
    }

    #[test]
    fn the_probe_says_its_prompt_once_and_keeps_what_it_hears() {
        let said: Vec<i16> = (0..400).map(|i| i as i16).collect();
        let (mut port, heard) = ProbePort::new(Arc::new(said.clone()));
        let mut out = Vec::new();
        for _ in 0..4 {
            out.extend_from_slice(&port.capture());
            port.play(&[7; FRAME]);
        }
        assert_eq!(&out[..400], &said[..]);
        assert!(out[400..].iter().all(|&v| v == 0));
        assert_eq!(heard.lock().unwrap().len(), 4 * FRAME);
    }
}
