//! Properties of the radio frame codec: arbitrary bytes never panic anything a received frame
//! meets (the `radio_frame` fuzz target's function), sealing round-trips, and no mutation of a
//! sealed frame is accepted.

use proptest::prelude::*;
use vigil::core::DeviceId;
use vigil::radio::frame::{Event, Frame, FrameCipher, PendantKey};

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Help),
        Just(Event::Cancel),
        Just(Event::Tamper),
        (any::<u16>(), any::<u16>(), 0u8..=180, any::<u16>()).prop_map(
            |(peak_mg, free_fall_ms, posture_change_deg, stillness_mg)| Event::Fall(
                vigil::core::FallEvidence {
                    peak_mg,
                    free_fall_ms,
                    posture_change_deg,
                    stillness_mg,
                }
            )
        ),
        (any::<u16>(), any::<Option<u16>>()).prop_map(|(battery_mv, alarms_sent)| {
            Event::Heartbeat {
                battery_mv,
                alarms_sent,
            }
        }),
        any::<u16>().prop_map(|battery_mv| Event::LowBattery { battery_mv }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn untrusted_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        vigil::radio::inspect_untrusted_frame(&bytes);
    }

    #[test]
    fn frames_that_look_right_never_panic(
        control in prop_oneof![Just(0x10u8), Just(0x11), Just(0x12), Just(0x13), any::<u8>()],
        rest in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = vec![control];
        bytes.extend(rest);
        vigil::radio::inspect_untrusted_frame(&bytes);
    }

    #[test]
    fn seal_open_round_trips(key in any::<[u8; 32]>(), id in any::<u32>(), counter in any::<u32>(), e in event()) {
        let c = FrameCipher::new(&PendantKey::new(key));
        let f = c.seal_event(DeviceId(id), counter, e);
        let frame = Frame::new_checked(f.as_bytes()).unwrap();
        prop_assert_eq!(frame.device(), DeviceId(id));
        prop_assert_eq!(frame.counter(), counter);
        prop_assert_eq!(c.open_event(&frame).unwrap(), e);
    }

    #[test]
    fn no_mutation_of_a_sealed_frame_opens(
        key in any::<[u8; 32]>(), counter in any::<u32>(), e in event(),
        at in any::<prop::sample::Index>(), xor in 1u8..,
    ) {
        let c = FrameCipher::new(&PendantKey::new(key));
        let mut bytes = c.seal_event(DeviceId(7), counter, e).as_bytes().to_vec();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        let opened = Frame::new_checked(&bytes[..]).and_then(|f| c.open_event(&f));
        prop_assert!(opened.is_err());
    }
}
