//! The call's jitter buffer: reordered frames play in order, late and duplicate frames are
//! dropped, losses are concealed then silenced, and sequence numbers wrap.

use vigil::voice::call_port::FRAME;
use vigil::voice::jitter::{JitterBuffer, Played, DEPTH};

fn frame(v: i16) -> [i16; FRAME] {
    [v; FRAME]
}

#[test]
fn reordered_frames_play_in_sequence() {
    let mut jb = JitterBuffer::new();
    assert_eq!(jb.pop().1, Played::Silence);
    for seq in [101u16, 100, 103, 102] {
        assert!(jb.push(seq, frame(seq as i16)));
    }
    for want in 100..=103 {
        let (f, how) = jb.pop();
        assert_eq!((f[0], how), (want, Played::Frame));
    }
}

#[test]
fn waits_for_its_depth_before_playing() {
    let mut jb = JitterBuffer::new();
    for seq in 0..(DEPTH as u16 - 1) {
        jb.push(seq, frame(1));
        assert_eq!(jb.pop().1, Played::Silence);
    }
}

#[test]
fn late_and_duplicate_frames_are_dropped() {
    let mut jb = JitterBuffer::new();
    for seq in 10..13 {
        jb.push(seq, frame(seq as i16));
    }
    assert_eq!(jb.pop().0[0], 10);
    assert!(!jb.push(10, frame(99)), "late frame kept");
    assert!(!jb.push(11, frame(99)), "duplicate frame kept");
    assert_eq!(jb.pop().0[0], 11);
}

#[test]
fn loss_is_concealed_then_silent() {
    let mut jb = JitterBuffer::new();
    for seq in 0..3 {
        jb.push(seq, frame(1000));
    }
    for _ in 0..3 {
        assert_eq!(jb.pop().1, Played::Frame);
    }
    let levels: Vec<(i16, Played)> = (0..4).map(|_| jb.pop()).map(|(f, p)| (f[0], p)).collect();
    assert_eq!(
        levels,
        vec![
            (500, Played::Concealed),
            (250, Played::Concealed),
            (125, Played::Concealed),
            (0, Played::Silence)
        ]
    );
    // Frame 7 arrives; it plays in its slot.
    assert!(jb.push(7, frame(7)));
    assert_eq!(jb.pop(), (frame(7), Played::Frame));
}

#[test]
fn sequence_numbers_wrap() {
    let mut jb = JitterBuffer::new();
    for seq in [65534u16, 0, 65535, 1] {
        assert!(jb.push(seq, frame(seq as i16)));
    }
    let order: Vec<i16> = (0..4).map(|_| jb.pop().0[0]).collect();
    assert_eq!(order, vec![65534u16 as i16, 65535u16 as i16, 0, 1]);
}
