//! Core input-to-output time and journal commit time.
//!
//! `cargo bench --bench core` prints criterion's figures; the README quotes them with the
//! machine they came from.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use vigil::config::{AlarmBehaviour, Carries, RetrySchedule, Supervision};
use vigil::core::*;

fn settings() -> Settings {
    let route = |name: &str, kind| RouteSettings {
        name: name.into(),
        kind,
        carries: Carries {
            personal: true,
            technical: true,
            test: true,
        },
        attempt_timeout: Duration::from_secs(60),
        hold_limit: Duration::from_secs(600),
    };
    Settings {
        alarm: AlarmBehaviour {
            personal_cancel_window: Duration::ZERO,
            fixed_cancel_window: Duration::ZERO,
            fall_confirm_window: Duration::from_secs(30),
            prompt_repeat: Duration::from_secs(10),
        },
        retry: RetrySchedule {
            fast_rounds: 16,
            fast_interval: Duration::from_secs(30),
            slow_interval: Duration::from_secs(600),
        },
        routes: vec![
            route("scaip", RouteKind::Scaip),
            route("sms", RouteKind::Sms),
        ],
        supervision: Supervision {
            heartbeat_interval: Duration::from_secs(3600),
            missing_after: Duration::from_secs(4 * 3600),
            mains_report_delay: Duration::from_secs(120),
            test_interval: Duration::from_secs(86_400),
            test_offset: Duration::ZERO,
            auto_answer_window: Duration::from_secs(900),
        },
        devices: (0..8)
            .map(|i| Device {
                id: DeviceId(i),
                kind: DeviceKind::Personal,
                zone: i as u16 + 1,
                location: format!("room {i}"),
            })
            .collect(),
    }
}

fn press(counter: u32) -> Input {
    Input::Radio(RadioEvent {
        device: DeviceId(1),
        counter,
        kind: RadioEventKind::Help,
        rssi_dbm: Some(-60),
    })
}

fn bench_core(c: &mut Criterion) {
    let t0 = Timestamp(1_790_000_000_000);
    c.bench_function("core: help press to first Deliver output", |b| {
        b.iter_batched(
            || Core::new(settings(), t0, 1),
            |mut core| {
                core.handle(t0, press(1));
                let mut n = 0;
                while let Some(o) = core.poll_output() {
                    n += 1;
                    if matches!(o, Output::Deliver(_)) {
                        break;
                    }
                }
                n
            },
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("core: delivery result to next route", |b| {
        let mut core = Core::new(settings(), t0, 1);
        core.handle(t0, press(1));
        let mut current = None;
        while let Some(o) = core.poll_output() {
            if let Output::Deliver(d) = o {
                current = Some(d);
            }
        }
        let mut d = current.expect("a delivery");
        let mut now = t0;
        b.iter(|| {
            now = now + Duration::from_millis(1);
            core.handle(
                now,
                Input::Delivery {
                    alarm: d.alarm.id,
                    attempt: d.attempt,
                    result: DeliveryResult::Failed { reason: "x".into() },
                },
            );
            while let Some(o) = core.poll_output() {
                if let Output::Deliver(next) = o {
                    d = next;
                }
            }
            // A round ended: let the pause pass.
            if core.poll_timeout().is_some_and(|t| t > now) {
                now = core.poll_timeout().unwrap_or(now);
                core.handle_timeout(now);
                while let Some(o) = core.poll_output() {
                    if let Output::Deliver(next) = o {
                        d = next;
                    }
                }
            }
        })
    });
}

fn bench_journal(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut journal =
        vigil::journal::Journal::open(&dir.path().join("bench.sqlite")).expect("journal");
    let t0 = Timestamp(1_790_000_000_000);
    let mut id = 0u64;
    c.bench_function("journal: commit one raised alarm (fsync)", |b| {
        b.iter(|| {
            id += 1;
            let alarm = Alarm {
                id: AlarmId(id),
                reference: AlarmRef::new(AlarmId(id), t0),
                cause: AlarmCause::Help,
                device: None,
                raised_at: t0,
                evidence: None,
            };
            journal
                .append(&Record::Raised {
                    alarm,
                    window_until: None,
                    frame: None,
                })
                .expect("append")
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_core, bench_journal
}
criterion_main!(benches);
