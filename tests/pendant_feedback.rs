//! The pendant's feedback in two steps, through the real `vigil run` and `vigil pendant`: the
//! radio acknowledgement lights "alarm received" (the base has it); "help is coming" only once
//! the base says a receiving centre acknowledged it. With every route down the pendant never
//! promises help; when the centre comes back and takes the alarm, the pendant hears so.

mod site_support;

use site_support::*;
use vigil::runtime::simsite::{SimSite, SiteOptions};

fn press(site: &SimSite, state: &std::path::Path, help_wait_ms: u64) -> String {
    let wait = help_wait_ms.to_string();
    let out = pendant_cli(
        "press",
        &site.radio.to_string(),
        state,
        &["--help-wait-ms", &wait],
    );
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_is_coming_only_once_a_centre_has_the_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    let log = dir.path().join("vigil.log");
    let _unit = VigilProcess::start(&site, &log).await;
    let state = dir.path().join("pendant.state");

    every_route_down(&site);
    let said = tokio::task::block_in_place(|| press(&site, &state, 4000));
    assert!(said.contains("alarm received"), "{said}");
    assert!(
        !said.contains("help is coming"),
        "help promised with every route down: {said}\n{}",
        log_tail(&log)
    );
    assert!(said.contains("no word from the base"), "{said}");

    // The IP centre is back; the person presses again and the alarm goes through.
    site.ip_centre_down(false);
    let said = tokio::task::block_in_place(|| press(&site, &state, 60_000));
    assert!(said.contains("alarm received"), "{said}");
    assert!(
        said.contains("help is coming"),
        "the centre acknowledged, the pendant never heard: {said}\n{}",
        log_tail(&log)
    );
}
