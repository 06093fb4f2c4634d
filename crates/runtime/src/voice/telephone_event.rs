//! RFC 4733 telephone-events received on a call: each DTMF key press is reported once, though
//! the sender repeats the event's packets while the key is held and sends its end three times.

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Event code: 0-9, 10 = '*', 11 = '#', 12-15 = A-D.
    pub code: u8,
    /// The E bit: the last packets of the event.
    pub end: bool,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl Event {
    /// Parses the first four payload bytes; `None` when shorter.
    pub fn parse(payload: &[u8]) -> Option<Event> {
        let b = payload.get(..4)?;
        Some(Event {
            code: b[0],
            end: b[1] & 0x80 != 0,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// The DTMF key of this event, if it is one.
    pub fn digit(self) -> Option<char> {
        b"0123456789*#ABCD"
            .get(usize::from(self.code))
            .map(|&c| char::from(c))
    }
}

/// Reports each key press once: an event is one RTP timestamp.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    last_timestamp: Option<u32>,
}

impl DtmfReceiver {
    /// One telephone-event packet with its RTP timestamp; the key when it is a new press.
    pub fn receive(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let event = Event::parse(payload)?;
        let digit = event.digit()?;
        if self.last_timestamp == Some(timestamp) {
            return None;
        }
        self.last_timestamp = Some(timestamp);
        Some(digit)
    }
}
