//! Contact ID (SIA DC-05): the message, its checksum and DTMF digits, and the kissoff's timing.
//!
//! A message is `ACCT MT Q EEE GG CCC S`: 4-digit account, message type 18, qualifier
//! (1 new event, 3 restore, 6 status), 3-digit event code, 2-digit group/partition, 3-digit
//! zone or user, and a checksum digit so that the sum of all 16 digit values is a multiple
//! of 15, where digit 0 counts as 10 and pseudo-hex B–F count 11–15 (a checksum of 10 is
//! sent as `0`, of 15 as `F`). B–F go out on the line as DTMF `*`, `#`, `A`, `B`, `C`.
//!

use vigil_core::Alarm;

/// Attempts per call before giving up (DC-05).
pub const ATTEMPTS: u32 = 4;

/// The length of a kissoff (DC-05), ms.
pub const KISSOFF_MS: std::ops::RangeInclusive<u32> = 750..=1000;

/// How far a measured kissoff may lie outside [`KISSOFF_MS`]: two frames of a 20 ms detector.
pub const KISSOFF_SLACK_MS: u32 = 40;

/// Whether a tone of `hz` that lasted `ms` (if known) is a Contact ID kissoff.
pub fn is_kissoff(hz: u16, ms: Option<u32>) -> bool {
    let lo = KISSOFF_MS.start().saturating_sub(KISSOFF_SLACK_MS);
    let hi = KISSOFF_MS.end().saturating_add(KISSOFF_SLACK_MS);
    hz == 1400 && ms.is_some_and(|ms| (lo..=hi).contains(&ms))
}

/// A Contact ID message that cannot be built or was heard wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidError {
    /// Not 16 digits.
    #[error("a Contact ID message has 16 digits, not {0}")]
    Length(usize),
    /// A character that is not a Contact ID digit.
    #[error("`{0}` is not a Contact ID digit")]
    Digit(char),
    /// Message type other than 18 (or 98).
    #[error("message type {0} is not Contact ID (18/98)")]
    MessageType(String),
    /// The checksum does not make the sum a multiple of 15.
    #[error("checksum wrong (digit sum {0} is not a multiple of 15)")]
    Checksum(u32),
    /// A field out of range.
    #[error("field out of range: {0}")]
    Field(&'static str),
}

/// One Contact ID event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Account, 4 digits or pseudo-hex B–F.
    pub account: String,
    /// Event qualifier: 1 new event / opening, 3 restore / closing, 6 status.
    pub qualifier: u8,
    /// Event code, 0–999.
    pub event: u16,
    /// Group or partition, 0–99.
    pub group: u8,
    /// Zone or user, 0–999.
    pub zone: u16,
}

/// The value of a pseudo-hex digit (0 counts as 10).
pub fn value(c: char) -> Option<u32> {
    match c {
        '0' => Some(10),
        '1'..='9' => c.to_digit(10),
        'B'..='F' => c.to_digit(16),
        _ => None,
    }
}

fn to_dtmf(c: char) -> char {
    match c {
        'B' => '*',
        'C' => '#',
        'D' => 'A',
        'E' => 'B',
        'F' => 'C',
        other => other,
    }
}

fn from_dtmf(c: char) -> Option<char> {
    Some(match c {
        '0'..='9' => c,
        '*' => 'B',
        '#' => 'C',
        'A' => 'D',
        'B' => 'E',
        'C' => 'F',
        _ => return None,
    })
}

impl Message {
    /// The message for `alarm` from the unit with Contact ID account `account`.
    pub fn for_alarm(account: &str, alarm: &Alarm) -> Result<Message, CidError> {
        let (qualifier, event) = alarm.cause.contact_id();
        Message::new(account, qualifier, event, 1, alarm.zone())
    }

    /// A message, checking every field.
    pub fn new(
        account: &str,
        qualifier: u8,
        event: u16,
        group: u8,
        zone: u16,
    ) -> Result<Message, CidError> {
        if account.chars().count() != 4 {
            return Err(CidError::Field("account must have 4 digits"));
        }
        if let Some(c) = account.chars().find(|&c| value(c).is_none()) {
            return Err(CidError::Digit(c));
        }
        if !matches!(qualifier, 1 | 3 | 6) {
            return Err(CidError::Field("qualifier must be 1, 3 or 6"));
        }
        if event > 999 || group > 99 || zone > 999 {
            return Err(CidError::Field("event ≤ 999, group ≤ 99, zone ≤ 999"));
        }
        Ok(Message {
            account: account.to_string(),
            qualifier,
            event,
            group,
            zone,
        })
    }

    /// The 16 digits, checksum included, in pseudo-hex (`0`–`9`, `B`–`F`).
    pub fn digits(&self) -> String {
        let body = format!(
            "{}18{}{:03}{:02}{:03}",
            self.account, self.qualifier, self.event, self.group, self.zone
        );
        let sum: u32 = body.chars().filter_map(value).sum();
        let check = 15 - sum % 15; // 1..=15
        let c = match check {
            10 => '0',
            n => char::from_digit(n, 16)
                .map(|c| c.to_ascii_uppercase())
                .unwrap_or('F'),
        };
        format!("{body}{c}")
    }

    /// The 16 DTMF symbols to send (`AT+VTS`).
    pub fn dtmf(&self) -> String {
        self.digits().chars().map(to_dtmf).collect()
    }

    /// Decodes 16 DTMF symbols as heard by a receiver, checking type and checksum.
    pub fn from_dtmf(dtmf: &str) -> Result<Message, CidError> {
        let n = dtmf.chars().count();
        if n != 16 {
            return Err(CidError::Length(n));
        }
        let digits: String = dtmf
            .chars()
            .map(|c| from_dtmf(c).ok_or(CidError::Digit(c)))
            .collect::<Result<_, _>>()?;
        let sum: u32 = digits.chars().filter_map(value).sum();
        if !sum.is_multiple_of(15) {
            return Err(CidError::Checksum(sum));
        }
        let field = |a: usize, b: usize| digits.get(a..b).unwrap_or("");
        let mt = field(4, 6);
        if mt != "18" && mt != "98" {
            return Err(CidError::MessageType(mt.to_string()));
        }
        let num = |a, b| -> Result<u16, CidError> {
            field(a, b)
                .parse()
                .map_err(|_| CidError::Field("non-decimal digit in a decimal field"))
        };
        Message::new(
            field(0, 4),
            num(6, 7)? as u8,
            num(7, 10)?,
            num(10, 12)? as u8,
            num(12, 15)?,
        )
    }
}
