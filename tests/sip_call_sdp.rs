//! SDP offer/answer for voice calls: codec choice in the offerer's order, 488 when no G.711
//! is offered, hold directions, and untrusted offers refused rather than guessed at.

use vigil::voice::g711::Law;
use vigil::voice::sdp::{negotiate, parse_offer, write_answer, Direction, SdpError, MAX_SDP};

/// An offer as baresip sends it: Opus first, then both laws and telephone-events.
const BARESIP_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 40000 RTP/AVP 96 8 0 101\r\na=rtpmap:96 opus/48000/2\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\na=sendrecv\r\n";

#[test]
fn picks_the_offerers_first_g711_and_telephone_events() {
    let offer = parse_offer(BARESIP_OFFER).unwrap();
    assert_eq!(offer.remote, "127.0.0.1:40000".parse().unwrap());
    let agreed = negotiate(&offer, &[Law::Ulaw, Law::Alaw]).unwrap();
    assert_eq!(agreed.law, Law::Alaw);
    assert_eq!(agreed.telephone_event, Some(101));
    let agreed = negotiate(&offer, &[Law::Ulaw]).unwrap();
    assert_eq!(agreed.law, Law::Ulaw);
    let answer = write_answer(&agreed, "127.0.0.1:5004".parse().unwrap(), 7, 1);
    // The answer is itself a valid offer-shaped SDP naming only what was agreed.
    let back = parse_offer(&answer).unwrap();
    assert_eq!(back.formats, vec![0, 101]);
    assert_eq!(back.remote, "127.0.0.1:5004".parse().unwrap());
    assert!(answer.contains("a=rtpmap:0 PCMU/8000\r\n"));
}

#[test]
fn no_common_codec_is_488() {
    let offer = BARESIP_OFFER.replace("96 8 0 101", "96 101");
    let err = negotiate(&parse_offer(&offer).unwrap(), &[Law::Ulaw, Law::Alaw]).unwrap_err();
    assert_eq!(err, SdpError::NoCommonCodec);
    assert_eq!(err.sip_status(), 488);
    let srtp = BARESIP_OFFER.replace("RTP/AVP", "RTP/SAVP");
    assert_eq!(parse_offer(&srtp).unwrap_err(), SdpError::NoAudio);
}

#[test]
fn hold_offers_get_the_matching_direction() {
    let hold = BARESIP_OFFER.replace("a=sendrecv", "a=sendonly");
    let agreed = negotiate(&parse_offer(&hold).unwrap(), &[Law::Alaw]).unwrap();
    assert_eq!(agreed.direction, Direction::RecvOnly);
    let answer = write_answer(&agreed, "127.0.0.1:5004".parse().unwrap(), 7, 2);
    assert!(answer.contains("a=recvonly\r\n"));
}

#[test]
fn untrusted_offers_are_refused() {
    assert_eq!(
        parse_offer(&"a".repeat(MAX_SDP + 1)).unwrap_err(),
        SdpError::TooLarge(MAX_SDP + 1)
    );
    assert_eq!(parse_offer("v=1\r\n").unwrap_err(), SdpError::Version);
    let bad_port = BARESIP_OFFER.replace("40000", "99999");
    assert!(matches!(
        parse_offer(&bad_port),
        Err(SdpError::Malformed { line: 6 })
    ));
    let bad_pt = BARESIP_OFFER.replace("96 8 0 101", "8 300");
    assert!(matches!(
        parse_offer(&bad_pt),
        Err(SdpError::Malformed { .. })
    ));
    let no_addr = BARESIP_OFFER.replace("c=IN IP4 127.0.0.1\r\n", "");
    assert_eq!(parse_offer(&no_addr).unwrap_err(), SdpError::NoAudio);
}

/// The unit's offer for a call it places reads back, and the far end's answer picks one of
/// the offered laws; an answer with a law never offered is no call.
#[test]
fn the_offer_reads_back_and_an_answer_picks_one_of_its_laws() {
    use vigil::voice::g711::Law;
    use vigil::voice::sdp::{parse_offer, read_answer, write_offer, Direction, SdpError};
    let local: std::net::SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let offer = write_offer(&[Law::Alaw, Law::Ulaw], local, 9, 1);
    let parsed = parse_offer(&offer).unwrap();
    assert_eq!(parsed.remote, local);
    assert_eq!(parsed.formats, [8, 0, 101]);
    assert_eq!(parsed.telephone_event, Some(101));
    // A phone answering with µ-law only, receiving only (the operator muted).
    let answer = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
                  m=audio 5004 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=recvonly\r\n";
    let agreed = read_answer(answer, &[Law::Alaw, Law::Ulaw]).unwrap();
    assert_eq!(agreed.law, Law::Ulaw);
    assert_eq!(agreed.remote, "192.0.2.9:5004".parse().unwrap());
    assert_eq!(agreed.telephone_event, Some(101));
    assert_eq!(agreed.direction, Direction::SendOnly);
    let g729 = answer.replace("RTP/AVP 0 101", "RTP/AVP 18");
    assert_eq!(
        read_answer(&g729, &[Law::Alaw, Law::Ulaw]),
        Err(SdpError::NoCommonCodec)
    );
}

#[test]
fn rtcp_goes_to_the_next_port_unless_the_offer_says_where() {
    let offer = parse_offer(BARESIP_OFFER).unwrap();
    let agreed = negotiate(&offer, &[Law::Alaw]).unwrap();
    assert_eq!(agreed.rtcp_to(), "127.0.0.1:40001".parse().unwrap());
    // RFC 3605: a port alone, or a port and an address.
    let port_only = BARESIP_OFFER.replace("a=sendrecv", "a=rtcp:40011\r\na=sendrecv");
    let agreed = negotiate(&parse_offer(&port_only).unwrap(), &[Law::Alaw]).unwrap();
    assert_eq!(agreed.rtcp_to(), "127.0.0.1:40011".parse().unwrap());
    let elsewhere =
        BARESIP_OFFER.replace("a=sendrecv", "a=rtcp:53020 IN IP4 192.0.2.7\r\na=sendrecv");
    let agreed = negotiate(&parse_offer(&elsewhere).unwrap(), &[Law::Alaw]).unwrap();
    assert_eq!(agreed.rtcp_to(), "192.0.2.7:53020".parse().unwrap());
    for broken in [
        "a=rtcp:x",
        "a=rtcp:70000",
        "a=rtcp:5 IN IP4",
        "a=rtcp:5 IN IP4 nowhere",
    ] {
        let offer = BARESIP_OFFER.replace("a=sendrecv", &format!("{broken}\r\na=sendrecv"));
        assert!(
            matches!(parse_offer(&offer), Err(SdpError::Malformed { .. })),
            "{broken} was taken"
        );
    }
}
