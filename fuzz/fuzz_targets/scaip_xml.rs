#![no_main]
//! Any bytes from a SIP MESSAGE body through the SCAIP `<mrq>`/`<mrs>` parser.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vigil::centre::scaip::xml::parse_untrusted(data);
});
