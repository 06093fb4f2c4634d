//! The shipped detector on a handful of real SisFall trials (see tests/data/sisfall/README.md):
//! the falls must be detected, the activities must not raise an alarm.

use std::path::Path;

use vigil::fall::eval::score_trial;
use vigil::fall::{replay, sisfall, FallParams};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sisfall/adxl345");

#[test]
fn committed_falls_are_detected_and_activities_are_not() {
    let trials = sisfall::load_dir(Path::new(DATA)).unwrap();
    assert_eq!(trials.len(), 12);
    for t in &trials {
        let s = score_trial(t, 200, FallParams::SHIPPED).unwrap();
        if t.kind.is_fall() {
            assert!(s.falls >= 1, "{} missed (score {})", t.id(), s.score);
        } else {
            assert_eq!(s.falls, 0, "{} false alarm (score {})", t.id(), s.score);
        }
    }
}

#[test]
fn replay_reports_each_fall_once_with_evidence_at_pendant_rates() {
    let trials = sisfall::load_dir(Path::new(DATA)).unwrap();
    for rate in [50u16, 100, 200] {
        for t in trials.iter().filter(|t| t.kind.is_fall()) {
            let events = replay(t, rate).unwrap();
            assert_eq!(events.len(), 1, "{} at {rate} Hz: {events:?}", t.id());
            let (index, e) = events[0];
            let seconds = index as f64 / f64::from(rate);
            let impact = e.impact_sample as f64 / f64::from(rate);
            // Judged 3 s after the impact, within the trial.
            assert!(
                (seconds - impact - 3.0).abs() < 0.15,
                "{} {seconds} {impact}",
                t.id()
            );
            assert!(seconds <= t.duration_s());
            assert!(
                e.evidence.peak_g > 1.4 && e.evidence.posture_change_deg > 20.0,
                "{e:?}"
            );
            assert!(e.evidence.motion_after_g < 0.3, "{e:?}");
        }
    }
}

#[test]
fn fall_eval_writes_outcomes_anyone_can_recompute_and_a_roc_curve() {
    let dir = tempfile::tempdir().unwrap();
    let args = vigil::fall::eval::EvalArgs {
        outcomes: Some(dir.path().join("outcomes.csv")),
        roc: Some(dir.path().join("roc.svg")),
        ..vigil::fall::eval::EvalArgs::new(Path::new(DATA).to_path_buf())
    };
    vigil::fall::eval::run(&args).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("outcomes.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("trial,fired,score"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 12);
    for row in &rows {
        let (trial, fired, score) = (row[0], row[1], row[2]);
        let is_fall = trial.split('/').nth(1).is_some_and(|f| f.starts_with('F'));
        assert_eq!(fired == "1", is_fall, "{row:?}");
        let score: f32 = score.parse().unwrap();
        assert_eq!(score >= FallParams::SHIPPED.threshold, is_fall, "{row:?}");
    }
    let svg = std::fs::read_to_string(dir.path().join("roc.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("Vigil detector") && svg.contains("C8"));
}
