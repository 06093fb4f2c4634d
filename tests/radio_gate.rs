//! One million forged, corrupted, replayed and foreign frames against the frame gate: not one
//! may become an event, and each must be refused for the right reason.

use vigil::config::Pendant;
use vigil::core::{DeviceId, DeviceKind};
use vigil::radio::frame::{Event, FrameCipher, PendantKey, MAX_FRAME_LEN};
use vigil::radio::gate::{FrameGate, Rejection, Verdict};
use vigil::radio::store::MemoryStore;

const FRAMES: u64 = 1_000_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn pendants() -> Vec<Pendant> {
    (0..4u8)
        .map(|i| Pendant {
            id: DeviceId(0x00A1_B2C0 + u32::from(i)),
            kind: DeviceKind::Personal,
            key: Some([0x10 + i; 32].into()),
            location: format!("pendant {i}"),
            zone: u16::from(i) + 1,
        })
        .collect()
}

const EVENTS: [Event; 4] = [
    Event::Help,
    Event::Fall(vigil::core::FallEvidence::typical(3100)),
    Event::Heartbeat {
        battery_mv: 2950,
        alarms_sent: None,
    },
    Event::Cancel,
];

#[test]
fn a_million_bad_frames_raise_no_event() {
    let pendants = pendants();
    let ciphers: Vec<FrameCipher> = pendants
        .iter()
        .map(|p| FrameCipher::new(&PendantKey::new(*p.key.as_deref().unwrap())))
        .collect();
    let mut gate = FrameGate::new(MemoryStore::new(), &pendants).unwrap();

    // Genuine traffic first: 50 frames from each pendant, all accepted. They become the
    // replay pool; the last one per pendant is what a retransmission would repeat.
    let mut replay_pool: Vec<Vec<u8>> = Vec::new();
    let mut last_frames: Vec<Vec<u8>> = Vec::new();
    for (p, c) in pendants.iter().zip(&ciphers) {
        for counter in 1..=50u32 {
            let f = c.seal_event(p.id, counter, EVENTS[counter as usize % 4]);
            assert!(matches!(
                gate.check(f.as_bytes(), Some(-70)),
                Verdict::Fresh { .. }
            ));
            if counter < 50 {
                replay_pool.push(f.as_bytes().to_vec());
            } else {
                last_frames.push(f.as_bytes().to_vec());
            }
        }
    }
    // Frames with fresh counters sealed under wrong keys (another pendant's, or random).
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut wrong_key_pool: Vec<Vec<u8>> = Vec::new();
    for i in 0..512u32 {
        let p = &pendants[i as usize % 4];
        let mut key = [0u8; 32];
        key.iter_mut().for_each(|b| *b = rng.next() as u8);
        if i % 2 == 0 {
            key = *pendants[(i as usize + 1) % 4].key.as_deref().unwrap();
        }
        let f = FrameCipher::new(&PendantKey::new(key)).seal_event(
            p.id,
            1000 + i,
            EVENTS[i as usize % 4],
        );
        wrong_key_pool.push(f.as_bytes().to_vec());
    }
    // Templates with fresh counters under the right keys, to corrupt and re-address.
    let fresh: Vec<Vec<u8>> = pendants
        .iter()
        .zip(&ciphers)
        .flat_map(|(p, c)| EVENTS.map(|e| c.seal_event(p.id, 100_000, e).as_bytes().to_vec()))
        .collect();
    let before = gate.rejections();

    let mut expected = [0u64; 4]; // replayed, wrong key, unknown pendant, retransmission
    let mut buf = [0u8; 80];
    for i in 0..FRAMES {
        let (len, category) = match i % 8 {
            // An old genuine frame replayed.
            0 => {
                let f = &replay_pool[rng.below(replay_pool.len() as u64) as usize];
                buf[..f.len()].copy_from_slice(f);
                (f.len(), Some(0))
            }
            // Sealed with the wrong key.
            1 => {
                let f = &wrong_key_pool[rng.below(wrong_key_pool.len() as u64) as usize];
                buf[..f.len()].copy_from_slice(f);
                (f.len(), Some(1))
            }
            // A genuine fresh frame with 1–3 random bits flipped (anywhere).
            2 | 3 => {
                let f = &fresh[rng.below(fresh.len() as u64) as usize];
                buf[..f.len()].copy_from_slice(f);
                for _ in 0..=rng.below(3) {
                    let bit = rng.below(f.len() as u64 * 8) as usize;
                    buf[bit / 8] ^= 1 << (bit % 8);
                }
                if buf[..f.len()] == f[..] {
                    // The same bit flipped twice: corrupt it for real.
                    buf[f.len() - 1] ^= 0x80;
                }
                (f.len(), None)
            }
            // A genuine frame re-addressed to a pendant nobody paired.
            4 => {
                let f = &fresh[rng.below(fresh.len() as u64) as usize];
                buf[..f.len()].copy_from_slice(f);
                let id = 0xF000_0000 | (rng.next() as u32 & 0x0FFF_FFFF);
                buf[1..5].copy_from_slice(&id.to_be_bytes());
                (f.len(), Some(2))
            }
            // A forged frame: valid header for a known pendant, random body and tag.
            5 => {
                let f = &fresh[rng.below(fresh.len() as u64) as usize];
                buf[..9].copy_from_slice(&f[..9]);
                buf[5..9].copy_from_slice(&(200_000 + i as u32).to_be_bytes());
                for b in &mut buf[9..f.len()] {
                    *b = rng.next() as u8;
                }
                (f.len(), Some(1))
            }
            // Noise: random bytes of random length, or a genuine frame truncated/extended.
            6 => {
                let len = rng.below(MAX_FRAME_LEN as u64 + 16) as usize;
                for b in &mut buf[..len] {
                    *b = rng.next() as u8;
                }
                (len, None)
            }
            // The exact last genuine frame again: a retransmission, never a second event.
            _ => {
                let f = &last_frames[rng.below(last_frames.len() as u64) as usize];
                buf[..f.len()].copy_from_slice(f);
                if rng.below(2) == 0 {
                    (f.len(), Some(3))
                } else {
                    let cut = rng.below(f.len() as u64) as usize;
                    (cut, None)
                }
            }
        };
        if let Some(c) = category {
            expected[c] += 1;
        }
        match gate.check(&buf[..len], Some(-90)) {
            Verdict::Fresh { event, .. } => panic!("frame {i} raised {event:?}"),
            Verdict::Retransmission { .. } => assert_eq!(category, Some(3), "frame {i}"),
            Verdict::Rejected { .. } => assert_ne!(category, Some(3), "frame {i}"),
        }
    }

    let r = gate.rejections();
    let delta = |reason| r.get(reason) - before.get(reason);
    assert_eq!(delta(Rejection::Replayed), expected[0]);
    assert!(delta(Rejection::AuthenticationFailed) >= expected[1]);
    assert!(delta(Rejection::UnknownPendant) >= expected[2]);
    assert_eq!(r.total() - before.total(), FRAMES - expected[3]);
    println!("refused by reason: {r}");

    // The gate still works for the genuine pendants afterwards.
    for (p, c) in pendants.iter().zip(&ciphers) {
        let f = c.seal_event(p.id, 51, Event::Help);
        assert!(matches!(
            gate.check(f.as_bytes(), None),
            Verdict::Fresh { .. }
        ));
    }
}
