#![no_main]
//! Any bytes from the SIP socket through the SIP message reader and header helpers.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vigil::centre::scaip::sip::parse_untrusted(data);
});
