//! Finds the outside tools some tests run against (Kamailio, pysiaalarm, iobroker.sia, gammu,
//! python-gsmmodem-new, espeak-ng, sox, libfaketime, multimon-ng, baresip and SIPp),
//! so a test whose tool is missing is reported as ignored, with the command that installs it,
//! instead of passing. Under CI (`CI=true`) every such test runs, and fails if its tool is
//! missing: CI must not pass by skipping.

use std::process::{Command, Stdio};

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether node can load ioBroker's SIA receiver from npm's global packages.
fn iobroker_sia() -> bool {
    let Some(root) = Command::new("npm")
        .args(["root", "-g"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
    else {
        return false;
    };
    Command::new("node")
        .args(["-e", "require('iobroker.sia/build/lib/sia.js')"])
        .env("NODE_PATH", String::from_utf8_lossy(&root.stdout).trim())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let kamailio = ["/usr/sbin/kamailio", "/usr/local/sbin/kamailio"]
        .iter()
        .any(|p| std::path::Path::new(p).exists())
        || runs("kamailio", &["-v"]);
    let tools = [
        ("vigil_has_kamailio", kamailio),
        (
            "vigil_has_pysiaalarm",
            runs("python3", &["-c", "import pysiaalarm"]),
        ),
        ("vigil_has_gammu", runs("gammu", &["--version"])),
        ("vigil_has_iobroker_sia", iobroker_sia()),
        // Mounting a small tmpfs (a disk that really fills) needs root.
        (
            "vigil_is_root",
            std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
            }),
        ),
        // Wall-clock steps for the real binary (tests/crash_harness.rs).
        (
            "vigil_has_faketime",
            ["x86_64-linux-gnu", "aarch64-linux-gnu", ""]
                .iter()
                .any(|d| {
                    std::path::Path::new("/usr/lib")
                        .join(d)
                        .join("faketime/libfaketime.so.1")
                        .exists()
                }),
        ),
        // The speakerphone's echo canceller, loaded at run time (tests/voice_echo.rs).
        (
            "vigil_has_speexdsp",
            [
                "x86_64-linux-gnu",
                "aarch64-linux-gnu",
                "arm-linux-gnueabihf",
            ]
            .iter()
            .any(|d| {
                std::path::Path::new("/usr/lib")
                    .join(d)
                    .join("libspeexdsp.so.1")
                    .exists()
            }),
        ),
        // A SIP phone that calls the unit (tests/sip_call_baresip.rs).
        (
            "vigil_has_baresip",
            ["aufile.so", "sndfile.so", "g711.so"].iter().all(|m| {
                std::path::Path::new("/usr/lib/baresip/modules")
                    .join(m)
                    .exists()
            }),
        ),
        // An outside DTMF decoder for the digits the unit plays into a call itself.
        (
            "vigil_has_multimon",
            runs(
                "multimon-ng",
                &["-q", "-c", "-a", "DTMF", "-t", "raw", "/dev/null"],
            ) && runs("sox", &["--version"]),
        ),
        // An echo test line for the installer's test call (SIPp's RTP echo).
        (
            "vigil_has_sipp",
            std::path::Path::new("/usr/bin/sipp").exists(),
        ),
        // Wireshark's dissector, reading the unit's RTCP (tests/sip_call_rtcp.rs).
        (
            "vigil_has_tshark",
            std::path::Path::new("/usr/bin/tshark").exists(),
        ),
        (
            "vigil_has_gsmmodem",
            runs("python3", &["-c", "import gsmmodem"]),
        ),
        (
            "vigil_has_speech_tools",
            runs("espeak-ng", &["--version"]) && runs("sox", &["--version"]),
        ),
    ];
    for (cfg, present) in tools {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if present || ci {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
