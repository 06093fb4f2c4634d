//! RFC 4733 DTMF on a call: one report per key press, however many packets carry it.

use vigil::voice::telephone_event::{DtmfReceiver, Event};

fn payload(code: u8, end: bool, duration: u16) -> Vec<u8> {
    let d = duration.to_be_bytes();
    vec![code, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
}

#[test]
fn each_press_is_reported_once() {
    let mut rx = DtmfReceiver::default();
    // '5' held for three packets, then its end sent three times (RFC 4733 §2.5.1.4).
    let mut got = Vec::new();
    for (dur, end) in [
        (160, false),
        (320, false),
        (480, false),
        (640, true),
        (640, true),
        (640, true),
    ] {
        got.extend(rx.receive(1000, &payload(5, end, dur)));
    }
    // '#' then '5' again: new timestamps, new presses.
    got.extend(rx.receive(3000, &payload(11, false, 160)));
    got.extend(rx.receive(3000, &payload(11, true, 800)));
    got.extend(rx.receive(5000, &payload(5, true, 800)));
    assert_eq!(got, vec!['5', '#', '5']);
}

#[test]
fn short_and_unknown_events_are_ignored() {
    let mut rx = DtmfReceiver::default();
    assert_eq!(rx.receive(1, &[5, 0, 0]), None);
    assert_eq!(rx.receive(2, &payload(16, false, 160)), None);
    assert_eq!(
        Event::parse(&payload(12, true, 7)).unwrap().digit(),
        Some('A')
    );
}
