//! One unit per data directory: a second `vigil run` on the same `data_dir` refuses to start,
//! names the process that holds it, and leaves the first unit's control socket alone.

mod site_support;

use std::time::Duration;

use site_support::*;
use vigil::runtime::simsite::{SimSite, SiteOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_unit_on_the_same_data_dir_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .unwrap();
    let log = dir.path().join("vigil.log");
    let first = VigilProcess::start(&site, &log).await;
    let socket = vigil::runtime::control::socket_path(&site.config.data_dir);

    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("run")
        .arg("--config")
        .arg(&site.config_path)
        .arg("--no-audio")
        .arg("--fast-modem")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("vigil starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut second = loop {
        match second.try_wait().expect("wait") {
            Some(_) => break second,
            None if std::time::Instant::now() >= deadline => {
                let _ = second.kill();
                let _ = second.wait();
                panic!("a second unit runs on the same data_dir");
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let mut said = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut said)
        .expect("stderr");
    assert!(!second.wait().expect("status").success(), "{said}");
    assert!(
        said.contains("already running") && said.contains(&first.pid().to_string()),
        "{said}"
    );
    // The first unit still answers on its socket.
    assert!(std::os::unix::net::UnixStream::connect(&socket).is_ok());
    let status = first.terminate(Duration::from_secs(15)).await;
    assert!(status.success());
}
