//! The detector on committed SisFall trials as other pendants' sensors read them: a ±2 g
//! sensor at 50 Hz with jittered timestamps must still catch the falls without alarming on
//! the activities, with the parameters chosen for its range.

use std::path::Path;

use vigil::fall::condition::Condition;
use vigil::fall::eval::score_conditioned;
use vigil::fall::{sisfall, FallParams};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sisfall");

/// Falls that full-range parameters miss at ±2 g, and the committed activities.
fn trials() -> Vec<sisfall::Trial> {
    let mut trials = sisfall::load_dir(&Path::new(DATA).join("small-range")).unwrap();
    assert_eq!(trials.len(), 4);
    let activities = sisfall::load_dir(&Path::new(DATA).join("adxl345")).unwrap();
    trials.extend(activities.into_iter().filter(|t| !t.kind.is_fall()));
    assert!(trials.iter().any(|t| !t.kind.is_fall()));
    trials
}

fn check(condition: &str) {
    let condition: Condition = condition.parse().unwrap();
    let params = FallParams::for_sensor(&condition.sensor());
    for t in &trials() {
        let (s, _) = score_conditioned(t, &condition, params).unwrap();
        if t.kind.is_fall() {
            assert!(
                s.falls >= 1,
                "{condition}: {} missed (score {})",
                t.id(),
                s.score
            );
        } else {
            assert_eq!(
                s.falls,
                0,
                "{condition}: {} false alarm (score {})",
                t.id(),
                s.score
            );
        }
    }
}

#[test]
fn small_range_jittered_sensor_catches_the_committed_falls() {
    check("rate=50,clip=2,jitter=5");
}

#[test]
fn other_small_range_sensors_catch_the_committed_falls() {
    check("rate=100,clip=2,jitter=2,seed=3");
    check("rate=50,clip=4,jitter=5,noise=10");
}

#[test]
fn full_range_sensors_keep_the_shipped_parameters() {
    let c: Condition = "rate=200".parse().unwrap();
    assert_eq!(FallParams::for_sensor(&c.sensor()), FallParams::SHIPPED);
    check("rate=200");
}

#[test]
fn pendant_replay_judges_with_the_parameters_of_its_sensor() {
    let t =
        sisfall::load_trial(&Path::new(DATA).join("small-range/SA11/F04_SA11_R03.txt")).unwrap();
    let small = vigil::fall::SensorConfig {
        range_g: 2,
        rate_hz: 50,
    };
    let falls = vigil::fall::replay_sensor(&t, small).unwrap();
    assert_eq!(falls.len(), 1, "{falls:?}");
    // The impact read by a ±2 g sensor stays within what it can measure (√3 × 2 g).
    assert!(falls[0].1.evidence.peak_g <= 2.0 * 3f32.sqrt() + 0.01);
    // The same clipped samples judged with full-range parameters: the fall is missed.
    let clipped: Condition = "rate=50,clip=2".parse().unwrap();
    let (s, _) = score_conditioned(&t, &clipped, FallParams::SHIPPED).unwrap();
    assert_eq!(s.falls, 0, "score {}", s.score);
}

#[test]
fn fall_eval_prints_and_draws_every_condition() {
    let dir = tempfile::tempdir().unwrap();
    let args = vigil::fall::eval::EvalArgs {
        roc: Some(dir.path().join("roc.svg")),
        conditions: Some("rate=200;rate=50,clip=2,jitter=5;rate=50,stuck=y".into()),
        ..vigil::fall::eval::EvalArgs::new(Path::new(DATA).join("adxl345"))
    };
    vigil::fall::eval::run(&args).unwrap();
    let all = std::fs::read_to_string(dir.path().join("roc.svg")).unwrap();
    for c in ["rate=200", "rate=50,clip=2,jitter=5", "rate=50,stuck=y"] {
        assert!(all.contains(&format!("Vigil detector, {c} (AUC")), "{c}");
        let own = std::fs::read_to_string(dir.path().join(format!("roc-{c}.svg"))).unwrap();
        assert!(own.contains("C8") && own.contains("C9") && own.contains(c));
    }
    let bad = vigil::fall::eval::EvalArgs {
        conditions: Some("rate=20".into()),
        ..vigil::fall::eval::EvalArgs::new(Path::new(DATA).join("adxl345"))
    };
    assert!(matches!(
        vigil::fall::eval::run(&bad),
        Err(vigil::fall::FallError::Rate { rate_hz: 20 })
    ));
}
