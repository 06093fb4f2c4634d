//! How fast the frame gate refuses bad frames and accepts good ones (a jammer replaying or
//! forging at full channel rate must not starve the base), and how long sealing takes on a
//! pendant-class workload.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use vigil::config::Pendant;
use vigil::core::{DeviceId, DeviceKind};
use vigil::radio::frame::{Event, FrameCipher, PendantKey};
use vigil::radio::gate::{FrameGate, Verdict};
use vigil::radio::store::MemoryStore;

const ID: DeviceId = DeviceId(0x00A1B2C3);

fn gate() -> FrameGate<MemoryStore> {
    let p = Pendant {
        id: ID,
        kind: DeviceKind::Personal,
        key: Some([1; 32].into()),
        location: String::new(),
        zone: 1,
    };
    FrameGate::new(MemoryStore::new(), &[p]).unwrap()
}

fn bench(c: &mut Criterion) {
    let good = FrameCipher::new(&PendantKey::new([1; 32]));
    let evil = FrameCipher::new(&PendantKey::new([2; 32]));

    c.bench_function("seal help frame", |b| {
        let mut n = 0u32;
        b.iter(|| {
            n = n.wrapping_add(1);
            black_box(good.seal_event(ID, n, Event::Help))
        })
    });

    let forged = evil.seal_event(ID, 1_000_000, Event::Help);
    c.bench_function("gate refuses forged frame", |b| {
        let mut g = gate();
        b.iter(|| {
            assert!(matches!(
                g.check(black_box(forged.as_bytes()), None),
                Verdict::Rejected { .. }
            ))
        })
    });

    let old = good.seal_event(ID, 1, Event::Help);
    c.bench_function("gate refuses replayed frame", |b| {
        let mut g = gate();
        let _ = g.check(good.seal_event(ID, 2, Event::Help).as_bytes(), None);
        b.iter(|| {
            assert!(matches!(
                g.check(black_box(old.as_bytes()), None),
                Verdict::Rejected { .. }
            ))
        })
    });

    c.bench_function("gate accepts fresh frame", |b| {
        let mut g = gate();
        let mut n = 0u32;
        b.iter_batched(
            || {
                n += 1;
                good.seal_event(
                    ID,
                    n,
                    Event::Heartbeat {
                        battery_mv: 3000,
                        alarms_sent: None,
                    },
                )
            },
            |f| assert!(matches!(g.check(f.as_bytes(), None), Verdict::Fresh { .. })),
            criterion::BatchSize::SmallInput,
        )
    });

    c.bench_function("one million bad frames", |b| {
        b.iter_custom(|iters| {
            let mut g = gate();
            let _ = g.check(good.seal_event(ID, 2, Event::Help).as_bytes(), None);
            let start = std::time::Instant::now();
            for _ in 0..iters {
                for i in 0..1_000_000u32 {
                    let f = if i % 2 == 0 { &forged } else { &old };
                    let _ = g.check(f.as_bytes(), None);
                }
            }
            start.elapsed()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
