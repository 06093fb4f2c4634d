//! Arbitrary sample streams and arbitrary file contents never panic the detector or loader.

use proptest::prelude::*;
use vigil::fall::{fuzz_detector, fuzz_trial_text, FallDetector};

fn any_axis() -> impl Strategy<Value = f32> {
    prop_oneof![
        -20.0f32..20.0,
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(f32::MAX),
        Just(0.0f32),
        any::<f32>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_streams_never_panic_and_evidence_stays_finite(
        rate in 50u16..=200,
        stream in prop::collection::vec((any_axis(), any_axis(), any_axis()), 0..3000),
    ) {
        let mut d = FallDetector::new(rate).unwrap();
        for (x, y, z) in stream {
            if let Some(a) = d.push([x, y, z]) {
                prop_assert!(a.score.is_finite());
                prop_assert!(a.evidence.peak_g.is_finite() && a.evidence.peak_g >= 0.0);
                prop_assert!((0.0..=180.0).contains(&a.evidence.posture_change_deg));
            }
        }
    }

    #[test]
    fn fuzz_entry_points_hold_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..12_000)) {
        prop_assert!(fuzz_detector(&bytes).is_some());
        let _ = fuzz_trial_text(&bytes);
    }

    #[test]
    fn loader_survives_mangled_lines(lines in prop::collection::vec("[-0-9, ;\r]{0,40}", 0..50)) {
        let text = lines.join("\n");
        let _ = fuzz_trial_text(text.as_bytes());
    }
}
