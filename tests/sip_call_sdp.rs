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
    assert_eq!(offer.first().remote, "127.0.0.1:40000".parse().unwrap());
    let agreed = negotiate(&offer, &[Law::Ulaw, Law::Alaw]).unwrap();
    assert_eq!(agreed.law, Law::Alaw);
    assert_eq!(agreed.telephone_event, Some(101));
    let agreed = negotiate(&offer, &[Law::Ulaw]).unwrap();
    assert_eq!(agreed.law, Law::Ulaw);
    let answer = write_answer(&agreed, "127.0.0.1:5004".parse().unwrap(), 7, 1);
    // The answer is itself a valid offer-shaped SDP naming only what was agreed.
    let back = parse_offer(&answer).unwrap();
    assert_eq!(back.first().formats, vec![0, 101]);
    assert_eq!(back.first().remote, "127.0.0.1:5004".parse().unwrap());
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
    assert_eq!(parsed.first().remote, local);
    assert_eq!(parsed.first().formats, [8, 0, 101]);
    assert_eq!(parsed.first().telephone_event, Some(101));
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

/// An offer of the same audio as SRTP and as plain RTP (an `RTP/SAVP` line, then an `RTP/AVP`
/// line, as phones that offer SRTP optionally send it), and a video line. RFC 3264 §6: one
/// usable stream carries the call and the answer refuses every other line with port 0, in the
/// offer's order. Over UDP or TCP the keys were readable on the way: the plain line, and no
/// key of the unit's in the answer. Over TLS: the SRTP line.
#[test]
fn an_offer_of_srtp_and_plain_rtp_is_answered_on_the_line_the_signalling_allows() {
    use vigil::voice::sdp::negotiate_over;
    use vigil::voice::srtp::{Key, Suite};
    let theirs = Key::random();
    let offer = format!(
        "v=0\r\no=- 1 2 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
         m=audio 40000 RTP/SAVP 8 0 101\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k}\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n\
         m=audio 40002 RTP/AVP 0 8 101\r\nc=IN IP4 192.0.2.10\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n\
         m=video 40004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n",
        k = &*theirs.inline()
    );
    let parsed = parse_offer(&offer).unwrap();
    assert_eq!(parsed.streams().count(), 2);
    assert_eq!(parsed.lines().len(), 3);
    let local = "192.0.2.7:5004".parse().unwrap();

    // Plain signalling: the RTP/AVP line, with its own address, law order and direction.
    let plain = negotiate_over(&parsed, &[Law::Alaw, Law::Ulaw], false).unwrap();
    assert_eq!(plain.srtp, None);
    assert_eq!(plain.remote, "192.0.2.10:40002".parse().unwrap());
    assert_eq!(plain.law, Law::Ulaw);
    assert_eq!(plain.direction, Direction::RecvOnly);
    let answer = write_answer(&plain, local, 7, 1);
    let m: Vec<&str> = answer.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(
        m,
        [
            "m=audio 0 RTP/SAVP 8 0 101",
            "m=audio 5004 RTP/AVP 0 101",
            "m=video 0 RTP/AVP 96"
        ],
        "{answer}"
    );
    assert!(!answer.contains("a=crypto"), "{answer}");
    assert!(answer.contains("a=recvonly\r\n"), "{answer}");
    // The answer reads back as SDP: its one live stream is the plain one.
    let back = parse_offer(&answer).unwrap();
    let live: Vec<u16> = back
        .streams()
        .map(|s| s.remote.port())
        .filter(|&p| p != 0)
        .collect();
    assert_eq!(live, [5004]);

    // Encrypted signalling: the SRTP line, keyed, the plain line refused.
    let secure = negotiate_over(&parsed, &[Law::Alaw, Law::Ulaw], true).unwrap();
    let keys = secure.srtp.clone().expect("SRTP agreed");
    assert_eq!((keys.tag, keys.suite), (1, Suite::AesCm128HmacSha1_80));
    assert_eq!(secure.remote, "192.0.2.9:40000".parse().unwrap());
    assert_eq!(secure.law, Law::Alaw);
    let answer = write_answer(&secure, local, 7, 1);
    let m: Vec<&str> = answer.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(
        m,
        [
            "m=audio 5004 RTP/SAVP 8 101",
            "m=audio 0 RTP/AVP 0 8 101",
            "m=video 0 RTP/AVP 96"
        ],
        "{answer}"
    );

    // The plain line listed first changes nothing over TLS: SRTP is preferred.
    let swapped = offer
        .replace("m=audio 40000 RTP/SAVP", "m=audio 40000 RTP/XXXX")
        .replace("m=audio 40002 RTP/AVP", "m=audio 40002 RTP/SAVP")
        .replace("m=audio 40000 RTP/XXXX", "m=audio 40000 RTP/AVP");
    let agreed = negotiate_over(&parse_offer(&swapped).unwrap(), &[Law::Alaw], true).unwrap();
    // The second line is SRTP now but carries no crypto line: no usable SRTP, so plain RTP.
    assert_eq!(agreed.srtp, None);
    assert_eq!(agreed.remote.port(), 40000);

    // Only SRTP offered over plain signalling is still refused, with the reason.
    let only_srtp = offer.split("m=audio 40002").next().unwrap().to_string();
    assert_eq!(
        negotiate_over(&parse_offer(&only_srtp).unwrap(), &[Law::Alaw], false).unwrap_err(),
        SdpError::KeysInClear
    );
}

/// RFC 5761: an offer with `a=rtcp-mux` is answered with it, and RTCP then goes to the RTP
/// address; without it the answer does not name it. The unit's own offers keep RTCP on its
/// own port, so an answer to them cannot turn multiplexing on.
#[test]
fn rtcp_mux_is_answered_when_offered() {
    use vigil::voice::sdp::{read_answer, write_offer};
    let muxed = BARESIP_OFFER.replace("a=sendrecv", "a=rtcp-mux\r\na=sendrecv");
    let agreed = negotiate(&parse_offer(&muxed).unwrap(), &[Law::Alaw]).unwrap();
    assert!(agreed.rtcp_mux);
    assert_eq!(agreed.rtcp_to(), "127.0.0.1:40000".parse().unwrap());
    let answer = write_answer(&agreed, "127.0.0.1:5004".parse().unwrap(), 7, 1);
    assert!(answer.contains("a=rtcp-mux\r\n"), "{answer}");
    assert!(parse_offer(&answer).unwrap().first().rtcp_mux);

    let plain = negotiate(&parse_offer(BARESIP_OFFER).unwrap(), &[Law::Alaw]).unwrap();
    assert!(!plain.rtcp_mux);
    let answer = write_answer(&plain, "127.0.0.1:5004".parse().unwrap(), 7, 1);
    assert!(!answer.contains("rtcp-mux"), "{answer}");

    let local: std::net::SocketAddr = "192.0.2.7:40000".parse().unwrap();
    assert!(!write_offer(&[Law::Alaw], local, 9, 1, None).contains("rtcp-mux"));
    let answer = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
                  m=audio 5004 RTP/AVP 8\r\na=rtcp-mux\r\na=sendrecv\r\n";
    let agreed = read_answer(answer, &[Law::Alaw], None).unwrap();
    assert!(!agreed.rtcp_mux);
    assert_eq!(agreed.rtcp_to(), "192.0.2.9:5005".parse().unwrap());
}
