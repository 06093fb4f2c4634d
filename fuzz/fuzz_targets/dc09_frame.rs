#![no_main]
//! Any bytes from the network through the DC-09 frame parser (plain and encrypted).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vigil::centre::dc09::frame::parse_untrusted(data);
});
