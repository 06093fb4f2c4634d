//! The next step a person can take after an operating-system error, in one sentence: an
//! installer reading "Address already in use" learns which setting and which service to look
//! at, not only what the kernel said.

use std::fmt::Display;
use std::io::{Error, ErrorKind};

/// What binding `addr` (the value of the configuration key `setting`) failed with, and what
/// to do about it. The OS error itself is the caller's to add (as the error's source).
pub fn bind_failed(addr: &dyn Display, setting: &str, e: &Error) -> String {
    match e.kind() {
        ErrorKind::AddrInUse => format!(
            "cannot listen on {addr} ({setting}): another program already uses it; if it is \
             another vigil, stop it (`systemctl stop vigil`), else choose another address"
        ),
        ErrorKind::AddrNotAvailable => format!(
            "cannot listen on {addr} ({setting}): no network interface of this machine has \
             that address; use 0.0.0.0 or one of its own addresses"
        ),
        ErrorKind::PermissionDenied => format!(
            "cannot listen on {addr} ({setting}): permission denied; ports below 1024 need \
             root or CAP_NET_BIND_SERVICE, so choose a port above 1024"
        ),
        _ => format!("cannot listen on {addr} ({setting})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_in_use_names_the_setting_and_the_service() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = std::net::UdpSocket::bind(addr).unwrap_err();
        let said = bind_failed(&addr, "radio.listen", &e);
        assert!(said.contains("radio.listen"), "{said}");
        assert!(said.contains("systemctl stop vigil"), "{said}");
        assert!(said.contains(&addr.to_string()), "{said}");
    }
}
