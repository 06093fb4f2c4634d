//! G.711 against the recommendation's tables: the decoded values of the segment ends, every
//! code surviving a decode/encode round trip, and the quantisation error staying within half
//! a step of the sample's segment.

use vigil::voice::call_port::{CallAudioPort, FRAME};
use vigil::voice::g711::{alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear, Law};
use vigil::voice::sim_call::SimCallPort;

#[test]
fn alaw_decodes_the_table_values() {
    // G.711 Table 1 (A-law): smallest and largest magnitudes, both signs; 16-bit scale.
    assert_eq!(alaw_to_linear(0xD5), 8);
    assert_eq!(alaw_to_linear(0x55), -8);
    assert_eq!(alaw_to_linear(0xAA), 32256);
    assert_eq!(alaw_to_linear(0x2A), -32256);
    // First codes of segments 1 and 2 (13-bit outputs 33 and 66, times 8).
    assert_eq!(alaw_to_linear(0x10 ^ 0xD5), 264);
    assert_eq!(alaw_to_linear(0x20 ^ 0xD5), 528);
}

#[test]
fn ulaw_decodes_the_table_values() {
    // G.711 Table 2 (µ-law): both zeros, the smallest step and the largest magnitudes.
    assert_eq!(ulaw_to_linear(0xFF), 0);
    assert_eq!(ulaw_to_linear(0x7F), 0);
    assert_eq!(ulaw_to_linear(0xFE), 8);
    assert_eq!(ulaw_to_linear(0x80), 32124);
    assert_eq!(ulaw_to_linear(0x00), -32124);
}

#[test]
fn encoders_pick_the_table_codes() {
    assert_eq!(linear_to_alaw(0), 0xD5);
    assert_eq!(linear_to_alaw(-1), 0x55);
    assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
    assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    assert_eq!(linear_to_ulaw(0), 0xFF);
    assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
    assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
}

#[test]
fn every_code_round_trips() {
    for code in 0..=255u8 {
        assert_eq!(
            linear_to_alaw(alaw_to_linear(code)),
            code,
            "A-law {code:#04x}"
        );
        // µ-law's negative zero (0x7F) decodes to 0, which encodes as the positive zero.
        let expect = if code == 0x7F { 0xFF } else { code };
        assert_eq!(
            linear_to_ulaw(ulaw_to_linear(code)),
            expect,
            "µ-law {code:#04x}"
        );
    }
}

#[test]
fn quantisation_error_is_within_half_a_step() {
    for x in (i16::MIN..=i16::MAX).step_by(7) {
        let a = alaw_to_linear(linear_to_alaw(x));
        let u = ulaw_to_linear(linear_to_ulaw(x));
        // Largest step: 1024 (A-law segment 7, µ-law segment 7), so half a step is 512,
        // plus µ-law's clip at 32635.
        let mag = i32::from(x).abs();
        let a_step = if mag < 512 {
            16
        } else {
            16 << (31 - (mag as u32).leading_zeros() - 8)
        };
        assert!(
            (i32::from(a) - i32::from(x)).abs() <= a_step,
            "A-law {x} -> {a}"
        );
        let u_err = (i32::from(u) - i32::from(x).clamp(-32635, 32635)).abs();
        assert!(u_err <= 1024, "µ-law {x} -> {u}");
    }
}

#[test]
fn law_payload_types_and_frames() {
    assert_eq!(Law::from_payload_type(0), Some(Law::Ulaw));
    assert_eq!(Law::from_payload_type(8), Some(Law::Alaw));
    assert_eq!(Law::from_payload_type(18), None);
    let samples: Vec<i16> = (0..FRAME)
        .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
        .collect();
    for law in [Law::Ulaw, Law::Alaw] {
        let mut codes = Vec::new();
        law.encode(&samples, &mut codes);
        assert_eq!(codes.len(), FRAME);
        let mut back = Vec::new();
        law.decode(&codes, &mut back);
        for (a, b) in samples.iter().zip(&back) {
            assert!(
                (i32::from(*a) - i32::from(*b)).abs() <= 256,
                "{law:?}: {a} -> {b}"
            );
        }
    }
}

#[test]
fn sim_port_records_play_and_captures_its_recording() {
    let mic: Vec<i16> = (0..(FRAME as i16 + 10)).collect();
    let (mut port, played) = SimCallPort::new(mic.clone());
    let first = port.capture();
    assert_eq!(&first[..], &mic[..FRAME]);
    let second = port.capture();
    assert_eq!(&second[..10], &mic[FRAME..]);
    assert!(second[10..].iter().all(|&s| s == 0));
    port.play(&[5; FRAME]);
    assert_eq!(played.lock().unwrap().len(), FRAME);
}

/// Every code's linear value as CPython's `audioop` (an independent G.711 implementation)
/// decodes it, for the full 256-code tables of both laws.
const ULAW_REFERENCE: [i16; 256] = [
    -32124, -31100, -30076, -29052, -28028, -27004, -25980, -24956, -23932, -22908, -21884, -20860,
    -19836, -18812, -17788, -16764, -15996, -15484, -14972, -14460, -13948, -13436, -12924, -12412,
    -11900, -11388, -10876, -10364, -9852, -9340, -8828, -8316, -7932, -7676, -7420, -7164, -6908,
    -6652, -6396, -6140, -5884, -5628, -5372, -5116, -4860, -4604, -4348, -4092, -3900, -3772,
    -3644, -3516, -3388, -3260, -3132, -3004, -2876, -2748, -2620, -2492, -2364, -2236, -2108,
    -1980, -1884, -1820, -1756, -1692, -1628, -1564, -1500, -1436, -1372, -1308, -1244, -1180,
    -1116, -1052, -988, -924, -876, -844, -812, -780, -748, -716, -684, -652, -620, -588, -556,
    -524, -492, -460, -428, -396, -372, -356, -340, -324, -308, -292, -276, -260, -244, -228, -212,
    -196, -180, -164, -148, -132, -120, -112, -104, -96, -88, -80, -72, -64, -56, -48, -40, -32,
    -24, -16, -8, 0, 32124, 31100, 30076, 29052, 28028, 27004, 25980, 24956, 23932, 22908, 21884,
    20860, 19836, 18812, 17788, 16764, 15996, 15484, 14972, 14460, 13948, 13436, 12924, 12412,
    11900, 11388, 10876, 10364, 9852, 9340, 8828, 8316, 7932, 7676, 7420, 7164, 6908, 6652, 6396,
    6140, 5884, 5628, 5372, 5116, 4860, 4604, 4348, 4092, 3900, 3772, 3644, 3516, 3388, 3260, 3132,
    3004, 2876, 2748, 2620, 2492, 2364, 2236, 2108, 1980, 1884, 1820, 1756, 1692, 1628, 1564, 1500,
    1436, 1372, 1308, 1244, 1180, 1116, 1052, 988, 924, 876, 844, 812, 780, 748, 716, 684, 652,
    620, 588, 556, 524, 492, 460, 428, 396, 372, 356, 340, 324, 308, 292, 276, 260, 244, 228, 212,
    196, 180, 164, 148, 132, 120, 112, 104, 96, 88, 80, 72, 64, 56, 48, 40, 32, 24, 16, 8, 0,
];
const ALAW_REFERENCE: [i16; 256] = [
    -5504, -5248, -6016, -5760, -4480, -4224, -4992, -4736, -7552, -7296, -8064, -7808, -6528,
    -6272, -7040, -6784, -2752, -2624, -3008, -2880, -2240, -2112, -2496, -2368, -3776, -3648,
    -4032, -3904, -3264, -3136, -3520, -3392, -22016, -20992, -24064, -23040, -17920, -16896,
    -19968, -18944, -30208, -29184, -32256, -31232, -26112, -25088, -28160, -27136, -11008, -10496,
    -12032, -11520, -8960, -8448, -9984, -9472, -15104, -14592, -16128, -15616, -13056, -12544,
    -14080, -13568, -344, -328, -376, -360, -280, -264, -312, -296, -472, -456, -504, -488, -408,
    -392, -440, -424, -88, -72, -120, -104, -24, -8, -56, -40, -216, -200, -248, -232, -152, -136,
    -184, -168, -1376, -1312, -1504, -1440, -1120, -1056, -1248, -1184, -1888, -1824, -2016, -1952,
    -1632, -1568, -1760, -1696, -688, -656, -752, -720, -560, -528, -624, -592, -944, -912, -1008,
    -976, -816, -784, -880, -848, 5504, 5248, 6016, 5760, 4480, 4224, 4992, 4736, 7552, 7296, 8064,
    7808, 6528, 6272, 7040, 6784, 2752, 2624, 3008, 2880, 2240, 2112, 2496, 2368, 3776, 3648, 4032,
    3904, 3264, 3136, 3520, 3392, 22016, 20992, 24064, 23040, 17920, 16896, 19968, 18944, 30208,
    29184, 32256, 31232, 26112, 25088, 28160, 27136, 11008, 10496, 12032, 11520, 8960, 8448, 9984,
    9472, 15104, 14592, 16128, 15616, 13056, 12544, 14080, 13568, 344, 328, 376, 360, 280, 264,
    312, 296, 472, 456, 504, 488, 408, 392, 440, 424, 88, 72, 120, 104, 24, 8, 56, 40, 216, 200,
    248, 232, 152, 136, 184, 168, 1376, 1312, 1504, 1440, 1120, 1056, 1248, 1184, 1888, 1824, 2016,
    1952, 1632, 1568, 1760, 1696, 688, 656, 752, 720, 560, 528, 624, 592, 944, 912, 1008, 976, 816,
    784, 880, 848,
];

#[test]
fn full_tables_match_an_independent_implementation() {
    for code in 0..=255u8 {
        assert_eq!(
            ulaw_to_linear(code),
            ULAW_REFERENCE[code as usize],
            "µ-law {code:#04x}"
        );
        assert_eq!(
            alaw_to_linear(code),
            ALAW_REFERENCE[code as usize],
            "A-law {code:#04x}"
        );
    }
}
