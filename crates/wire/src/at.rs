//! What a modem writes, parsed: final result codes (TS 27.007 §4.1, §9.2; TS 27.005 §3.2.5),
//! unsolicited result codes, and the information lines the routes need (`+CSQ`, `+CREG`,
//! `+CLCC`, `+CMGR`, `+CPIN`).
//!
//! Every parser is total: any text gives a value or an error, never a panic.

use std::fmt;

/// A line from the modem that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse `{line}`: {why}")]
pub struct ParseError {
    /// The offending text (cut to a loggable length).
    pub line: String,
    /// What was wrong.
    pub why: &'static str,
}

impl ParseError {
    /// A parse error with the offending text cut to a loggable length.
    pub fn new(line: &str, why: &'static str) -> ParseError {
        ParseError {
            line: line.chars().take(80).collect(),
            why,
        }
    }
}

/// An error code as `+CME ERROR:` / `+CMS ERROR:` carry it, per the `AT+CMEE` mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// `AT+CMEE=1`: a number.
    Numeric(u16),
    /// `AT+CMEE=2`: the modem's words.
    Verbose(String),
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Numeric(n) => write!(f, "{n}"),
            ErrorCode::Verbose(s) => f.write_str(s),
        }
    }
}

impl ErrorCode {
    fn parse(s: &str) -> ErrorCode {
        let s = s.trim();
        match s.parse::<u16>() {
            Ok(n) => ErrorCode::Numeric(n),
            Err(_) => ErrorCode::Verbose(s.to_string()),
        }
    }
}

/// A final result code: the end of a command's response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinalResult {
    /// `OK`.
    Ok,
    /// `ERROR` (CMEE off, or a syntax error).
    Error,
    /// `+CME ERROR: <err>` (TS 27.007 §9.2).
    Cme(ErrorCode),
    /// `+CMS ERROR: <err>` (TS 27.005 §3.2.5).
    Cms(ErrorCode),
    /// `NO CARRIER`.
    NoCarrier,
    /// `BUSY`.
    Busy,
    /// `NO ANSWER`.
    NoAnswer,
    /// `NO DIALTONE`.
    NoDialtone,
}

impl fmt::Display for FinalResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FinalResult::Ok => f.write_str("OK"),
            FinalResult::Error => f.write_str("ERROR"),
            FinalResult::Cme(c) => write!(f, "+CME ERROR: {c}"),
            FinalResult::Cms(c) => write!(f, "+CMS ERROR: {c}"),
            FinalResult::NoCarrier => f.write_str("NO CARRIER"),
            FinalResult::Busy => f.write_str("BUSY"),
            FinalResult::NoAnswer => f.write_str("NO ANSWER"),
            FinalResult::NoDialtone => f.write_str("NO DIALTONE"),
        }
    }
}

impl FinalResult {
    /// Whether this ends a voice-call set-up rather than any command (`NO CARRIER`, `BUSY`…);
    /// outside `ATD`/`ATA` these arrive as unsolicited codes.
    pub fn is_call_progress(&self) -> bool {
        matches!(
            self,
            FinalResult::NoCarrier
                | FinalResult::Busy
                | FinalResult::NoAnswer
                | FinalResult::NoDialtone
        )
    }
}

/// Parses a final result code, or None if the line is not one.
pub fn parse_final(line: &str) -> Option<FinalResult> {
    let l = line.trim();
    Some(match l {
        "OK" => FinalResult::Ok,
        "ERROR" => FinalResult::Error,
        "NO CARRIER" => FinalResult::NoCarrier,
        "BUSY" => FinalResult::Busy,
        "NO ANSWER" => FinalResult::NoAnswer,
        "NO DIALTONE" => FinalResult::NoDialtone,
        _ => {
            if let Some(rest) = l.strip_prefix("+CME ERROR:") {
                FinalResult::Cme(ErrorCode::parse(rest))
            } else if let Some(rest) = l.strip_prefix("+CMS ERROR:") {
                FinalResult::Cms(ErrorCode::parse(rest))
            } else {
                return None;
            }
        }
    })
}

/// Network registration status, `<stat>` of `+CREG` / `+CEREG` (TS 27.007 §7.2, §10.1.22).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegStatus {
    /// 0: not registered, not searching.
    NotSearching,
    /// 1: registered, home network.
    Home,
    /// 2: not registered, searching.
    Searching,
    /// 3: registration denied.
    Denied,
    /// 4: unknown.
    Unknown,
    /// 5: registered, roaming.
    Roaming,
}

impl RegStatus {
    /// From the numeric `<stat>`.
    pub fn from_code(n: u8) -> Option<RegStatus> {
        Some(match n {
            0 => RegStatus::NotSearching,
            1 => RegStatus::Home,
            2 => RegStatus::Searching,
            3 => RegStatus::Denied,
            4 => RegStatus::Unknown,
            5 => RegStatus::Roaming,
            _ => return None,
        })
    }

    /// The numeric `<stat>`.
    pub fn code(self) -> u8 {
        match self {
            RegStatus::NotSearching => 0,
            RegStatus::Home => 1,
            RegStatus::Searching => 2,
            RegStatus::Denied => 3,
            RegStatus::Unknown => 4,
            RegStatus::Roaming => 5,
        }
    }

    /// Registered, at home or roaming: calls and SMS can go.
    pub fn is_registered(self) -> bool {
        matches!(self, RegStatus::Home | RegStatus::Roaming)
    }

    /// Words for logs and failure reasons.
    pub fn describe(self) -> &'static str {
        match self {
            RegStatus::NotSearching => "not registered, not searching",
            RegStatus::Home => "registered (home)",
            RegStatus::Searching => "searching for a network",
            RegStatus::Denied => "registration denied",
            RegStatus::Unknown => "registration unknown",
            RegStatus::Roaming => "registered (roaming)",
        }
    }
}

/// An unsolicited result code: something the modem says without being asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Urc {
    /// `RING`: an incoming call alerts.
    Ring,
    /// `+CLIP: "<number>",<type>`: the caller's number (TS 27.007 §7.18).
    Clip {
        /// Caller's number as presented.
        number: String,
    },
    /// `NO CARRIER`: the call ended.
    NoCarrier,
    /// `BUSY`: the called party is busy.
    Busy,
    /// `NO ANSWER`: the called party did not answer.
    NoAnswer,
    /// `+CMTI: "<mem>",<index>`: a new SMS is stored (TS 27.005 §3.4.1).
    Cmti {
        /// Storage.
        mem: String,
        /// Index in storage.
        index: u16,
    },
    /// `+CREG: <stat>[,…]` (circuit-switched registration changed).
    Creg(RegStatus),
    /// `+CEREG: <stat>[,…]` (EPS registration changed).
    Cereg(RegStatus),
    /// `RDY`: the module has (re)booted.
    Rdy,
    /// `+CPIN: <code>`: SIM state after boot or change.
    Cpin(String),
    /// A DTMF digit heard from the far end (Quectel `+QTONEDET: <ascii>`, SIMCom `+RXDTMF:`).
    Dtmf(char),
    /// A single tone heard from the far end (Quectel `+QTONEDET: 69[,<ms>]` for 1400 Hz and
    /// `70[,<ms>]` for 2300 Hz): the Contact ID handshake and kissoff, with how long it lasted
    /// when the module says.
    Tone {
        /// Frequency, Hz.
        hz: u16,
        /// Persistence time, ms.
        ms: Option<u32>,
    },
    /// `+QTTS: 0`: the text-to-speech announcement finished playing.
    TtsDone,
    /// Anything else: boot chatter, vendor codes, noise.
    Other(String),
}

/// Splits a parameter list on commas outside double quotes and unquotes each field.
pub fn fields(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

fn reg_from(rest: &str) -> Option<RegStatus> {
    let f = fields(rest);
    // Unsolicited form: `<stat>[,<lac>,<ci>…]` (the response to `?` starts with `<n>`).
    f.first()
        .and_then(|s| s.parse::<u8>().ok())
        .and_then(RegStatus::from_code)
}

/// Parses a line that is always unsolicited, or None if it is not one of those.
pub fn parse_urc(line: &str) -> Option<Urc> {
    let l = line.trim();
    let after = |p: &str| l.strip_prefix(p).map(str::trim);
    if l == "RING" {
        return Some(Urc::Ring);
    }
    if l == "RDY" {
        return Some(Urc::Rdy);
    }
    if let Some(rest) = after("+CLIP:") {
        let number = fields(rest).into_iter().next().unwrap_or_default();
        return Some(Urc::Clip { number });
    }
    if let Some(rest) = after("+CMTI:") {
        let f = fields(rest);
        let index = f.get(1)?.parse().ok()?;
        return Some(Urc::Cmti {
            mem: f.first().cloned().unwrap_or_default(),
            index,
        });
    }
    if let Some(rest) = after("+CREG:") {
        return reg_from(rest).map(Urc::Creg);
    }
    if let Some(rest) = after("+CEREG:") {
        return reg_from(rest).map(Urc::Cereg);
    }
    if let Some(rest) = after("+CPIN:") {
        return Some(Urc::Cpin(rest.to_string()));
    }
    if let Some(rest) = after("+QTONEDET:") {
        let f = fields(rest);
        let code: u8 = f.first()?.parse().ok()?;
        let ms = match f.get(1) {
            Some(t) => Some(t.parse::<u32>().ok()?),
            None => None,
        };
        return match code {
            69 => Some(Urc::Tone { hz: 1400, ms }),
            70 => Some(Urc::Tone { hz: 2300, ms }),
            _ => dtmf_char(code).map(Urc::Dtmf),
        };
    }
    if let Some(rest) = after("+RXDTMF:") {
        let c = rest.chars().next()?;
        return dtmf_char(u8::try_from(c).ok()?).map(Urc::Dtmf);
    }
    // Quectel `+QTTS: 0`, SIMCom `+CTTS: 0`: the announcement finished playing.
    if let Some(rest) = after("+QTTS:").or_else(|| after("+CTTS:")) {
        return (rest == "0").then_some(Urc::TtsDone);
    }
    None
}

fn dtmf_char(b: u8) -> Option<char> {
    let c = char::from(b);
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

/// Whether a `+CREG:`/`+CEREG:` line is the unsolicited form (`<stat>` alone, as `AT+CREG=1`
/// asks for) rather than the answer to a query (`<n>,<stat>`), which can arrive mid-query.
pub fn is_unsolicited_registration(line: &str) -> bool {
    let l = line.trim();
    l.strip_prefix("+CREG:")
        .or_else(|| l.strip_prefix("+CEREG:"))
        .is_some_and(|rest| fields(rest).len() == 1)
}

/// Parses the response to `AT+CREG?` / `AT+CEREG?`: `+CREG: <n>,<stat>[,…]`.
pub fn parse_reg_response(line: &str) -> Result<RegStatus, ParseError> {
    let rest = line
        .trim()
        .strip_prefix("+CREG:")
        .or_else(|| line.trim().strip_prefix("+CEREG:"))
        .ok_or_else(|| ParseError::new(line, "not a +CREG/+CEREG line"))?;
    let f = fields(rest);
    f.get(1)
        .and_then(|s| s.parse::<u8>().ok())
        .and_then(RegStatus::from_code)
        .ok_or_else(|| ParseError::new(line, "bad <stat>"))
}

/// Parses `+CSQ: <rssi>,<ber>` into dBm (TS 27.007 §8.5): None when the modem says 99 (unknown).
pub fn parse_csq(line: &str) -> Result<Option<i16>, ParseError> {
    let rest = line
        .trim()
        .strip_prefix("+CSQ:")
        .ok_or_else(|| ParseError::new(line, "not a +CSQ line"))?;
    let rssi: u8 = fields(rest)
        .first()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ParseError::new(line, "bad <rssi>"))?;
    match rssi {
        0..=31 => Ok(Some(-113 + 2 * i16::from(rssi))),
        99 => Ok(None),
        _ => Err(ParseError::new(line, "<rssi> out of range")),
    }
}

/// State of a call in `+CLCC` (TS 27.007 §7.18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    /// 0 active.
    Active,
    /// 1 held.
    Held,
    /// 2 dialling (MO).
    Dialing,
    /// 3 alerting (MO).
    Alerting,
    /// 4 incoming (MT).
    Incoming,
    /// 5 waiting (MT).
    Waiting,
}

impl CallState {
    /// From the numeric `<stat>`.
    pub fn from_code(n: u8) -> Option<CallState> {
        Some(match n {
            0 => CallState::Active,
            1 => CallState::Held,
            2 => CallState::Dialing,
            3 => CallState::Alerting,
            4 => CallState::Incoming,
            5 => CallState::Waiting,
            _ => return None,
        })
    }

    /// The numeric `<stat>`.
    pub fn code(self) -> u8 {
        match self {
            CallState::Active => 0,
            CallState::Held => 1,
            CallState::Dialing => 2,
            CallState::Alerting => 3,
            CallState::Incoming => 4,
            CallState::Waiting => 5,
        }
    }
}

/// One `+CLCC: <idx>,<dir>,<stat>,<mode>,<mpty>[,<number>,<type>]` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallEntry {
    /// Call index.
    pub index: u8,
    /// Mobile-terminated (incoming).
    pub incoming: bool,
    /// State.
    pub state: CallState,
    /// Voice (mode 0).
    pub voice: bool,
    /// The other party's number, if shown.
    pub number: Option<String>,
}

/// Parses one `+CLCC:` line.
pub fn parse_clcc(line: &str) -> Result<CallEntry, ParseError> {
    let rest = line
        .trim()
        .strip_prefix("+CLCC:")
        .ok_or_else(|| ParseError::new(line, "not a +CLCC line"))?;
    let f = fields(rest);
    let num = |i: usize| -> Result<u8, ParseError> {
        f.get(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ParseError::new(line, "bad +CLCC field"))
    };
    Ok(CallEntry {
        index: num(0)?,
        incoming: num(1)? == 1,
        state: CallState::from_code(num(2)?)
            .ok_or_else(|| ParseError::new(line, "bad +CLCC <stat>"))?,
        voice: num(3)? == 0,
        number: f.get(5).filter(|s| !s.is_empty()).cloned(),
    })
}

/// Whether a final result is `+CME ERROR: 14` / `SIM busy` (TS 27.007 §9.2.1): the SIM is
/// still starting or busy with the network, and answers in a few seconds.
pub fn is_sim_busy(result: &FinalResult) -> bool {
    match result {
        FinalResult::Cme(ErrorCode::Numeric(14)) => true,
        FinalResult::Cme(ErrorCode::Verbose(w)) => w.eq_ignore_ascii_case("SIM busy"),
        _ => false,
    }
}

/// Parses `+CMS ERROR`/`+CME ERROR` meaning into words a person can act on, for known codes.
pub fn explain(result: &FinalResult) -> Option<&'static str> {
    let n = match result {
        FinalResult::Cme(ErrorCode::Numeric(n)) | FinalResult::Cms(ErrorCode::Numeric(n)) => *n,
        _ => return None,
    };
    Some(match (matches!(result, FinalResult::Cms(_)), n) {
        (false, 3) => "operation not allowed",
        (false, 10) => "SIM not inserted",
        (false, 11) => "SIM PIN required",
        (false, 12) => "SIM PUK required",
        (false, 14) => "SIM busy",
        (false, 16) => "incorrect password",
        (false, 30) => "no network service",
        (true, 38) => "network out of order",
        (true, 304) => "invalid PDU mode parameter",
        (true, 310) => "SIM not inserted",
        (true, 330) => "SMSC address unknown",
        (true, 331) => "no network service",
        (true, 332) => "network timeout",
        (true, 500) => "unknown error",
        _ => return None,
    })
}

/// Fuzz entry: every line parser over arbitrary bytes must return, never panic.
pub fn fuzz_lines(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.split(['\r', '\n']) {
        let _ = parse_final(line);
        let _ = parse_urc(line);
        let _ = parse_reg_response(line);
        let _ = parse_csq(line);
        let _ = parse_clcc(line);
        let _ = fields(line);
    }
}

/// The ranges a test command (`AT+X=?`, TS 27.007 §4.1) reports, one per parameter:
/// `+CLVL: (0-5)` gives `[(0, 5)]`, `+QMIC: (0-65535),(0-65535)` two ranges, and a list such
/// as `(1,3)` its lowest and highest. A parameter that is not numbers is left out.
pub fn parse_ranges(line: &str) -> Vec<(u32, u32)> {
    let body = line.split_once(':').map_or(line, |(_, b)| b);
    let mut out = Vec::new();
    for group in body.split('(').skip(1).take(8) {
        let Some((inner, _)) = group.split_once(')') else {
            continue;
        };
        let mut lo = None;
        let mut hi = None;
        for item in inner.split(',') {
            let (a, b) = item.split_once('-').unwrap_or((item, item));
            let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) else {
                lo = None;
                break;
            };
            lo = Some(lo.map_or(a, |l: u32| l.min(a)));
            hi = Some(hi.map_or(b, |h: u32| h.max(b)));
        }
        if let (Some(lo), Some(hi)) = (lo, hi) {
            if lo <= hi {
                out.push((lo, hi));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn test_command_ranges() {
        use super::parse_ranges;
        assert_eq!(parse_ranges("+CLVL: (0-5)"), [(0, 5)]);
        assert_eq!(
            parse_ranges("+QMIC: (0-65535),(0-65535)"),
            [(0, 65535), (0, 65535)]
        );
        assert_eq!(parse_ranges("+CSDVC: (1,3)"), [(1, 3)]);
        assert_eq!(parse_ranges("+X: (\"a\",\"b\")"), []);
        assert_eq!(parse_ranges("+X: (9-2)"), []);
        assert_eq!(parse_ranges("+X: 5"), []);
    }

    use super::*;

    #[test]
    fn final_results_numeric_and_verbose() {
        assert_eq!(parse_final("OK"), Some(FinalResult::Ok));
        assert_eq!(
            parse_final("+CMS ERROR: 331"),
            Some(FinalResult::Cms(ErrorCode::Numeric(331)))
        );
        assert_eq!(
            parse_final("+CME ERROR: SIM not inserted"),
            Some(FinalResult::Cme(ErrorCode::Verbose(
                "SIM not inserted".into()
            )))
        );
        assert_eq!(parse_final("+CSQ: 20,99"), None);
        assert_eq!(
            explain(&FinalResult::Cms(ErrorCode::Numeric(331))),
            Some("no network service")
        );
    }

    #[test]
    fn urcs() {
        assert_eq!(
            parse_urc("+CLIP: \"+46701234567\",145,\"\",0,\"\",0"),
            Some(Urc::Clip {
                number: "+46701234567".into()
            })
        );
        assert_eq!(
            parse_urc("+CMTI: \"SM\",3"),
            Some(Urc::Cmti {
                mem: "SM".into(),
                index: 3
            })
        );
        assert_eq!(parse_urc("+CREG: 5"), Some(Urc::Creg(RegStatus::Roaming)));
        assert_eq!(parse_urc("+CEREG: 3"), Some(Urc::Cereg(RegStatus::Denied)));
        assert_eq!(parse_urc("+QTONEDET: 49"), Some(Urc::Dtmf('1')));
        assert_eq!(parse_urc("+QTONEDET: 35"), Some(Urc::Dtmf('#')));
        assert_eq!(
            parse_urc("+QTONEDET: 69,850"),
            Some(Urc::Tone {
                hz: 1400,
                ms: Some(850)
            })
        );
        assert_eq!(
            parse_urc("+QTONEDET: 70"),
            Some(Urc::Tone { hz: 2300, ms: None })
        );
        assert_eq!(parse_urc("+QTONEDET: 1400"), None);
        assert_eq!(parse_urc("+QTONEDET: 69,x"), None);
        assert_eq!(parse_urc("+QTONEDET: 7"), None);
        assert_eq!(parse_urc("+RXDTMF: 5"), Some(Urc::Dtmf('5')));
        assert_eq!(parse_urc("+CTTS: 0"), Some(Urc::TtsDone));
        assert_eq!(parse_urc("+CTTS: 1"), None);
        assert_eq!(parse_urc("RDY"), Some(Urc::Rdy));
    }

    #[test]
    fn information_lines() {
        assert_eq!(parse_csq("+CSQ: 21,99").unwrap(), Some(-71));
        assert_eq!(parse_csq("+CSQ: 99,99").unwrap(), None);
        assert!(parse_csq("+CSQ: 64,0").is_err());
        assert_eq!(
            parse_reg_response("+CREG: 1,5").unwrap(),
            RegStatus::Roaming
        );
        let c = parse_clcc("+CLCC: 1,0,3,0,0,\"+46700000002\",145").unwrap();
        assert_eq!(c.state, CallState::Alerting);
        assert!(!c.incoming);
        assert_eq!(c.number.as_deref(), Some("+46700000002"));
        assert!(parse_clcc("+CLCC: 1,0,9,0,0").is_err());
    }

    #[test]
    fn fields_respect_quotes() {
        assert_eq!(fields("\"a,b\",2"), vec!["a,b", "2"]);
    }
}
