//! RTP packets per RFC 3550 §5.1, and media from anywhere but the negotiated far end dropped.

use vigil::voice::rtp::{Packet, RtpError, SourceGate};

#[test]
fn packets_round_trip_and_headers_are_checked() {
    let payload = [0xD5u8; 160];
    let p = Packet {
        payload_type: 8,
        marker: true,
        sequence: 65535,
        timestamp: 0xDEAD_BEEF,
        ssrc: 0x1234_5678,
        payload: &payload,
    };
    let mut buf = Vec::new();
    p.write(&mut buf);
    assert_eq!(buf.len(), 172);
    assert_eq!(&buf[..2], &[0x80, 0x88]);
    assert_eq!(Packet::parse(&buf).unwrap(), p);

    // One CSRC, a one-word extension and 4 bytes of padding around a 2-byte payload.
    let mut odd = vec![0xB1, 0x00, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
    odd.extend_from_slice(&[0, 0, 0, 7]); // CSRC
    odd.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4]); // extension
    odd.extend_from_slice(&[0xAA, 0xBB, 0, 0, 0, 4]); // payload + padding
    let parsed = Packet::parse(&odd).unwrap();
    assert_eq!(parsed.payload, &[0xAA, 0xBB]);
    assert_eq!(parsed.payload_type, 0);

    assert_eq!(Packet::parse(&buf[..11]), Err(RtpError::Truncated));
    let mut v1 = buf.clone();
    v1[0] = 0x40;
    assert_eq!(Packet::parse(&v1), Err(RtpError::Version(1)));
    let mut pad = buf.clone();
    pad[0] |= 0x20;
    *pad.last_mut().unwrap() = 200;
    assert_eq!(Packet::parse(&pad), Err(RtpError::Padding));
    let mut ext = buf[..12].to_vec();
    ext[0] |= 0x10;
    assert_eq!(Packet::parse(&ext), Err(RtpError::Truncated));
}

#[test]
fn rtp_from_a_wrong_address_is_dropped() {
    let sdp = "127.0.0.1:40000".parse().unwrap();
    let mut gate = SourceGate::new(sdp);
    assert!(
        !gate.accept("127.0.0.2:40000".parse().unwrap()),
        "other host accepted"
    );
    // Symmetric RTP: the first packet from the SDP's host fixes the port.
    assert!(gate.accept("127.0.0.1:40002".parse().unwrap()));
    assert_eq!(gate.send_to(), "127.0.0.1:40002".parse().unwrap());
    assert!(!gate.accept(sdp), "second source on the same host accepted");
    assert!(!gate.accept("127.0.0.2:40002".parse().unwrap()));
    assert!(gate.accept("127.0.0.1:40002".parse().unwrap()));
}
