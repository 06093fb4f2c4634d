#![no_main]
//! Any bytes as a configuration file: a list of problems or a config, never a panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vigil::config::parse(text, std::path::Path::new("fuzz.toml"));
    }
});
