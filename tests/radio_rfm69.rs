//! The radio link on the RFM69 driver, with the register-level mock chip in place of the
//! module: a frame on air becomes an event, the core's ack goes out through the FIFO, and the
//! driver never breaks the datasheet's sequence while doing so.

use std::time::Duration;

use vigil::config::{Band, Pendant};
use vigil::core::{DeviceId, DeviceKind, Input, RadioEventKind};
use vigil::radio::driver::rfm69::mock::MockChip;
use vigil::radio::driver::rfm69::Rfm69;
use vigil::radio::frame::{Event, Frame, FrameCipher, FrameType, PendantKey};
use vigil::radio::link::{LinkConfig, RadioLink};
use vigil::radio::store::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_over_the_rfm69_driver() {
    let chip = MockChip::new();
    let (bus, reset, irq, delay) = chip.parts();
    let radio = Rfm69::new(bus, reset, irq, delay, Band::Eu869).unwrap();
    let id = DeviceId(0x00A1B2C3);
    let key = PendantKey::new([0x42; 32]);
    let pendant = Pendant {
        id,
        kind: DeviceKind::Fall,
        key: Some((*key.as_bytes()).into()),
        location: "Anna".into(),
        zone: 1,
    };
    let config = LinkConfig {
        band: Band::Eu869,
        jamming_rssi_dbm: -90,
        jamming_after: Duration::from_secs(30),
        pairing_min_rssi: -60,
    };
    let mut link = RadioLink::start(radio, MemoryStore::new(), &[pendant], config).unwrap();
    let cipher = FrameCipher::new(&key);

    chip.on_air(
        FrameCipher::new(&PendantKey::new([1; 32]))
            .seal_event(id, 1, Event::Help)
            .as_bytes()
            .to_vec(),
        -70,
    );
    chip.on_air(
        cipher
            .seal_event(id, 1, Event::Fall(vigil::core::FallEvidence::typical(2900)))
            .as_bytes()
            .to_vec(),
        -64,
    );
    let e = match tokio::time::timeout(Duration::from_secs(10), link.recv()).await {
        Ok(Some(Input::Radio(e))) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (e.device, e.counter, e.kind, e.rssi_dbm),
        (
            id,
            1,
            RadioEventKind::Fall {
                evidence: Some(vigil::core::FallEvidence::typical(2900))
            },
            Some(-64)
        )
    );
    link.ack(id, 1).unwrap();
    let mut sent = Vec::new();
    for _ in 0..500 {
        sent = chip.transmitted();
        if !sent.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sent.len(), 1, "one ack on air");
    let f = Frame::new_checked(&sent[0][..]).unwrap();
    assert_eq!(f.frame_type(), FrameType::Ack);
    assert_eq!(cipher.open_ack(&f).unwrap(), 1);
    let status = link.status();
    assert_eq!(status.rejections.total(), 1, "the wrong-key frame");
    assert_eq!(status.channel_rssi_dbm, Some(-110));
    link.stop().unwrap();
    assert!(chip.violations().is_empty(), "{:?}", chip.violations());
}
