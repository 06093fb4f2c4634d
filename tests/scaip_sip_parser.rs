//! The SIP message reader on hostile input: whatever arrives on the socket, no panic.

use proptest::prelude::*;
use vigil::centre::scaip::sip::{self, SipMsg};

const SAMPLE: &str = "MESSAGE sip:arc@centre.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1;rport\r\nFrom: <sip:1@centre.test>;tag=1\r\nTo: <sip:arc@centre.test>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Type: application/scaip+xml\r\nContent-Length: 5\r\n\r\n<mrq>";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = sip::parse_untrusted(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(cuts in proptest::collection::vec((0usize..400, any::<u8>()), 0..8), len in 0usize..400) {
        let mut bytes = SAMPLE.as_bytes().to_vec();
        for (at, b) in cuts {
            if let Some(slot) = bytes.get_mut(at) {
                *slot = b;
            }
        }
        bytes.truncate(len);
        let _ = sip::parse_untrusted(&bytes);
    }
}

#[test]
fn sample_parses() {
    let m = SipMsg::parse(SAMPLE.as_bytes()).expect("valid message");
    assert_eq!(m.method().as_deref(), Some("MESSAGE"));
    assert_eq!(m.branch().as_deref(), Some("z9hG4bK1"));
    assert_eq!(m.cseq_method().as_deref(), Some("MESSAGE"));
    assert_eq!(m.body(), b"<mrq>");
}
