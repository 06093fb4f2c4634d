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
    // SRTP without a crypto line the unit can use.
    let srtp = BARESIP_OFFER.replace("RTP/AVP", "RTP/SAVP");
    let err = negotiate(&parse_offer(&srtp).unwrap(), &[Law::Alaw]).unwrap_err();
    assert_eq!(err, SdpError::NoCrypto);
    assert_eq!(err.sip_status(), 488);
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
    let offer = write_offer(&[Law::Alaw, Law::Ulaw], local, 9, 1, None);
    let parsed = parse_offer(&offer).unwrap();
    assert_eq!(parsed.remote, local);
    assert_eq!(parsed.formats, [8, 0, 101]);
    assert_eq!(parsed.telephone_event, Some(101));
    // A phone answering with µ-law only, receiving only (the operator muted).
    let answer = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
                  m=audio 5004 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=recvonly\r\n";
    let agreed = read_answer(answer, &[Law::Alaw, Law::Ulaw], None).unwrap();
    assert_eq!(agreed.law, Law::Ulaw);
    assert_eq!(agreed.remote, "192.0.2.9:5004".parse().unwrap());
    assert_eq!(agreed.telephone_event, Some(101));
    assert_eq!(agreed.direction, Direction::SendOnly);
    let g729 = answer.replace("RTP/AVP 0 101", "RTP/AVP 18");
    assert_eq!(
        read_answer(&g729, &[Law::Alaw, Law::Ulaw], None),
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

/// SDES (RFC 4568): an SRTP offer is taken only over encrypted signalling, on the first
/// crypto line the unit can use, and answered with the unit's own fresh key on that tag.
#[test]
fn srtp_is_negotiated_only_when_its_keys_travelled_encrypted() {
    use vigil::voice::sdp::{negotiate_over, read_answer, write_answer, write_offer};
    use vigil::voice::srtp::{Key, Suite};
    let theirs = Key::random();
    let offer = BARESIP_OFFER.replace("RTP/AVP", "RTP/SAVP").replace(
        "a=sendrecv",
        &format!(
            "a=crypto:1 AES_CM_256_HMAC_SHA1_80 inline:{k}{k}\r\n\
             a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{k}|2^20|1:4\r\n\
             a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:{k} UNENCRYPTED_SRTP\r\n\
             a=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:{k}\r\na=sendrecv",
            k = &*theirs.inline()
        ),
    );
    let parsed = parse_offer(&offer).unwrap();
    // Over UDP or TCP the keys were readable on the way: 488, and no key of the unit's sent.
    let err = negotiate_over(&parsed, &[Law::Alaw], false).unwrap_err();
    assert_eq!(err, SdpError::KeysInClear);
    assert_eq!(err.sip_status(), 488);
    // Over TLS: the only usable line is tag 4 (AES-256, an MKI and UNENCRYPTED_SRTP are not).
    let agreed = negotiate_over(&parsed, &[Law::Alaw], true).unwrap();
    let keys = agreed.srtp.clone().expect("SRTP agreed");
    assert_eq!((keys.tag, keys.suite), (4, Suite::AesCm128HmacSha1_80));
    assert_eq!(keys.theirs, theirs);
    assert_ne!(keys.ours, theirs, "the unit answers with its own key");
    let answer = write_answer(&agreed, "192.0.2.7:40000".parse().unwrap(), 1, 1);
    assert!(
        answer.contains("m=audio 40000 RTP/SAVP 8 101\r\n"),
        "{answer}"
    );
    assert!(answer.contains(&format!(
        "a=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
        &*keys.ours.inline()
    )));
    assert!(
        !format!("{agreed:?}").contains(&*keys.ours.inline()),
        "keys in Debug"
    );

    // The unit's own SRTP offer, and the answers it takes.
    let ours = Key::random();
    let offer = write_offer(
        &[Law::Alaw],
        "192.0.2.7:40000".parse().unwrap(),
        1,
        1,
        Some(&ours),
    );
    assert!(
        offer.contains("RTP/SAVP") && offer.contains(&*ours.inline()),
        "{offer}"
    );
    let answer = |proto: &str, crypto: &str| {
        format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
             m=audio 5004 {proto} 8\r\n{crypto}a=sendrecv\r\n"
        )
    };
    let line = format!(
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
        &*theirs.inline()
    );
    let agreed = read_answer(&answer("RTP/SAVP", &line), &[Law::Alaw], Some(&ours)).unwrap();
    let keys = agreed.srtp.unwrap();
    assert_eq!((keys.ours, keys.theirs), (ours.clone(), theirs.clone()));
    // A plain answer to an SRTP offer, a tag never offered, SRTP never offered: no call.
    for (text, key) in [
        (answer("RTP/AVP", ""), Some(&ours)),
        (
            answer("RTP/SAVP", &line.replace("crypto:1", "crypto:2")),
            Some(&ours),
        ),
        (answer("RTP/SAVP", &line), None),
    ] {
        assert_eq!(
            read_answer(&text, &[Law::Alaw], key),
            Err(SdpError::NoCrypto),
            "{text}"
        );
    }
}
