#![no_main]
//! Modem output and SMS PDUs are bytes from outside: the pdu parser must never panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vigil::modem::pdu::fuzz_pdu(data);
});
