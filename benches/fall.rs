//! Cost of the fall detector: nanoseconds per sample here, instructions per sample under
//! callgrind (`scripts/fall-cost.sh` runs it twice with different lengths and takes the
//! difference, so loading and start-up cancel out).
//!
//! `FALL_BENCH_SAMPLES` (default 2 000 000) and `FALL_BENCH_RATE` (default 200 Hz) set the run.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use vigil::fall::{sisfall, FallDetector};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let samples = env_or("FALL_BENCH_SAMPLES", 2_000_000) as usize;
    let rate = u16::try_from(env_or("FALL_BENCH_RATE", 200)).unwrap_or(200);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sisfall/adxl345");
    let trials = match sisfall::load_dir(&dir) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("fall bench: {e}");
            std::process::exit(1);
        }
    };
    // Real falls and activities back to back, looped.
    let trace: Vec<[f32; 3]> = trials
        .iter()
        .flat_map(|t| vigil::fall::resample(&t.samples, t.rate_hz, rate).collect::<Vec<_>>())
        .collect();
    let mut detector = match FallDetector::new(rate) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("fall bench: {e}");
            std::process::exit(1);
        }
    };
    let start = Instant::now();
    let mut judged = 0usize;
    let mut falls = 0usize;
    for s in trace.iter().cycle().take(samples) {
        if let Some(a) = detector.push(black_box(*s)) {
            judged += 1;
            falls += usize::from(a.is_fall);
        }
    }
    let elapsed = start.elapsed();
    println!(
        "fall detector: {samples} samples at {rate} Hz, {:.1} ns/sample, {judged} impacts judged, {falls} falls, state {} bytes",
        elapsed.as_nanos() as f64 / samples.max(1) as f64,
        FallDetector::state_size()
    );
}
