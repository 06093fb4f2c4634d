//! Loading SisFall trials in both file forms.

use std::path::Path;

use vigil::fall::sisfall::{self, TrialKind};
use vigil::fall::FallError;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sisfall");

#[test]
fn both_forms_of_the_same_trial_load_to_the_same_samples() {
    let original =
        sisfall::load_trial(&Path::new(DATA).join("original/SA01/F01_SA01_R01.txt")).unwrap();
    let reduced =
        sisfall::load_trial(&Path::new(DATA).join("adxl345/SA01/F01_SA01_R01.txt")).unwrap();
    assert_eq!(original.samples.len(), 3000);
    assert_eq!(original.samples, reduced.samples);
    assert_eq!(original.subject, "SA01");
    assert_eq!(original.kind, TrialKind::Fall(1));
    // First line: -9,-257,-25 counts at 256 counts per g.
    assert_eq!(
        original.samples[0],
        [-9.0 / 256.0, -257.0 / 256.0, -25.0 / 256.0]
    );
    // Standing still at the start: about 1 g.
    let [x, y, z] = original.samples[0];
    assert!(((x * x + y * y + z * z).sqrt() - 1.0).abs() < 0.1);
}

#[test]
fn loads_every_original_file_with_its_subject_and_kind() {
    let trials = sisfall::load_dir(&Path::new(DATA).join("original")).unwrap();
    let ids: Vec<String> = trials.iter().map(|t| t.id()).collect();
    assert_eq!(
        ids,
        [
            "SA01/D07_SA01_R01.txt",
            "SA01/F01_SA01_R01.txt",
            "SE01/D10_SE01_R01.txt",
            "SE06/F05_SE06_R01.txt"
        ]
    );
    assert!(trials
        .iter()
        .all(|t| t.rate_hz == 200 && t.samples.len() > 2000));
    assert_eq!(trials[2].kind, TrialKind::Activity(10));
}

#[test]
fn subject_comes_from_the_folder_not_the_file_name() {
    // SisFall's SA15 folder holds D17 files named after SE15: they are SA15's trials.
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("SA15");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("D17_SE15_R01.txt"), "1,256,2\n3,255,4\n").unwrap();
    std::fs::write(folder.join("Readme.txt"), "not a trial").unwrap();
    let trials = sisfall::load_dir(dir.path()).unwrap();
    assert_eq!(trials.len(), 1);
    assert_eq!(trials[0].subject, "SA15");
    assert_eq!(trials[0].id(), "SA15/D17_SE15_R01.txt");
    assert_eq!(trials[0].kind, TrialKind::Activity(17));
}

#[test]
fn a_broken_file_is_a_clear_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("SA01");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("F01_SA01_R01.txt"), "1,2,3\n4,five,6\n").unwrap();
    let err = sisfall::load_dir(dir.path()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("F01_SA01_R01.txt") && text.contains("line 2"),
        "{text}"
    );
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        sisfall::load_dir(empty.path()),
        Err(FallError::NoTrials { .. })
    ));
    assert!(matches!(
        sisfall::load_dir(&empty.path().join("missing")),
        Err(FallError::Read { .. })
    ));
}
