#![no_main]
//! Modem output and SMS PDUs are bytes from outside: the engine parser must never panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vigil::modem::engine::fuzz_feed(data);
});
