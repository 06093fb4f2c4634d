//! `vigil status` must never claim a pendant was heard when it was not: the core tells a
//! pendant never heard since start from one heard a moment ago.

mod common;

use std::time::Duration;

use common::*;
use vigil::core::*;

#[test]
fn a_pendant_is_never_heard_until_a_frame_comes_from_it() {
    let mut h = Harness::new(settings());
    let devices = h.core.devices();
    assert!(!devices.is_empty());
    assert!(
        devices.iter().all(|d| !d.heard),
        "nothing heard yet: {devices:#?}"
    );
    h.advance(Duration::from_secs(2));
    h.radio(
        1,
        RadioEventKind::Heartbeat {
            battery_mv: 3000,
            alarms_sent: None,
        },
    );
    let devices = h.core.devices();
    let heard: Vec<_> = devices.iter().filter(|d| d.heard).collect();
    assert_eq!(heard.len(), 1, "{devices:#?}");
    assert_eq!(heard[0].device.id, DeviceId(0xA001));
    assert_eq!(heard[0].last_heard, h.now);
}
