//! Untrusted radio bytes through the frame parser, the gate, the event parser, the pairing
//! window and the simulated-air parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vigil::radio::inspect_untrusted_frame(data);
});
