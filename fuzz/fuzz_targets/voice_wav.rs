//! Prompt files and captured audio come from outside: parsing them must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vigil::voice::catalogue::check_prompt_wav(data);
});
