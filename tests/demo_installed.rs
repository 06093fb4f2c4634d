//! `vigil demo`, installed: the program copied to `<prefix>/bin` with its prompts in
//! `<prefix>/share/vigil/sounds`, run from a folder with nothing else in it. Scene 2 used to
//! read its fall recording from the build tree and failed anywhere else; the recording is
//! now built into the program. This is also the README's main job, run end to end.

#[test]
fn an_installed_demo_runs_every_scene() {
    let prefix = tempfile::tempdir().unwrap();
    let bin = prefix.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_vigil"), bin.join("vigil")).unwrap();
    let sounds = prefix.path().join("share/vigil/sounds");
    std::fs::create_dir_all(sounds.parent().unwrap()).unwrap();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/sounds"))
        .arg(&sounds)
        .status()
        .unwrap();
    assert!(status.success());
    let cwd = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin.join("vigil"))
        .arg("demo")
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("== 2. Anna falls") && said.contains("fall detected by the pendant: impact"),
        "{said}"
    );
    assert!(said.contains("open alarms left: 0"), "{said}");
}
