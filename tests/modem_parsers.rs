//! Parsers over random input: total (no panic), and encoders that round-trip.

use proptest::prelude::*;
use vigil::centre::contact_id::Message;
use vigil::modem::{at, engine, pdu};

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn at_lines_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        at::fuzz_lines(&data);
    }

    #[test]
    fn at_like_lines_never_panic(s in "(\\+C[A-Z]{2,4}: ?[0-9,\"A-Z ]{0,30}|RING|OK|ERROR|\\+QTONEDET: [0-9]{0,6})") {
        at::fuzz_lines(s.as_bytes());
    }

    #[test]
    fn pdu_decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        pdu::fuzz_pdu(&data);
    }

    #[test]
    fn engine_line_discipline_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        engine::fuzz_feed(&data);
    }

    #[test]
    fn any_text_round_trips_through_concatenated_pdus(text in "\\PC{0,400}") {
        let pdus = pdu::encode_message("+46701234567", &text, 9).unwrap();
        let mut joined = String::new();
        for p in &pdus {
            let s = pdu::decode_submit(&p.hex).unwrap();
            prop_assert_eq!(s.tpdu_len, p.tpdu_len);
            prop_assert_eq!(s.to.as_str(), "+46701234567");
            prop_assert!(p.tpdu_len <= 164);
            joined.push_str(&s.text);
        }
        prop_assert_eq!(joined, text);
    }

    #[test]
    fn contact_id_round_trips_and_sums_to_fifteen(
        acct in "[0-9B-F]{4}", q in prop::sample::select(vec![1u8, 3, 6]),
        event in 0u16..1000, group in 0u8..100, zone in 0u16..1000,
    ) {
        let m = Message::new(&acct, q, event, group, zone).unwrap();
        let d = m.dtmf();
        prop_assert_eq!(d.chars().count(), 16);
        prop_assert!(d.chars().all(|c| "0123456789*#ABC".contains(c)));
        prop_assert_eq!(Message::from_dtmf(&d).unwrap(), m);
    }
}
