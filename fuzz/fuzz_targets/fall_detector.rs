#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(vigil::fall::fuzz_detector(data).is_some(), "non-finite evidence");
});
