//! Costs of the voice side's signal processing, per second of audio: the VAD and tone
//! detectors run on every captured block, resampling on every prompt load.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use vigil::voice::pcm::resample;
use vigil::voice::{ContactIdDetector, DtmfDetector, Vad};

fn noisy_tone(rate: u32, seconds: u32) -> Vec<f32> {
    let mut x = 1u32;
    (0..rate * seconds)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let noise = (x as f32 / u32::MAX as f32 - 0.5) * 0.02;
            0.2 * (std::f32::consts::TAU * 1400.0 * i as f32 / rate as f32).sin() + noise
        })
        .collect()
}

fn detectors(c: &mut Criterion) {
    let mut g = c.benchmark_group("per second of audio");
    let call = noisy_tone(8000, 1);
    let mic = noisy_tone(48_000, 1);
    g.throughput(Throughput::Elements(1));
    g.bench_function("vad 48 kHz", |b| {
        b.iter(|| {
            let mut vad = Vad::new(48_000);
            for block in mic.chunks(480) {
                vad.push(black_box(block));
            }
            vad.verdict()
        })
    });
    g.bench_function("dtmf 8 kHz", |b| {
        b.iter(|| {
            let mut d = DtmfDetector::new(8000);
            let mut n = 0;
            d.push(black_box(&call), |_| n += 1);
            n
        })
    });
    g.bench_function("contact id tones 8 kHz", |b| {
        b.iter(|| {
            let mut d = ContactIdDetector::new(8000);
            let mut n = 0;
            d.push(black_box(&call), |_| n += 1);
            n
        })
    });
    let prompt = noisy_tone(16_000, 1);
    g.bench_function("resample 16 to 48 kHz", |b| {
        b.iter(|| resample(black_box(&prompt), 16_000, 48_000))
    });
    g.bench_function("resample 16 to 44.1 kHz", |b| {
        b.iter(|| resample(black_box(&prompt), 16_000, 44_100))
    });
    g.finish();
}

criterion_group!(benches, detectors);
criterion_main!(benches);
