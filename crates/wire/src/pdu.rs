//! SMS transfer-layer PDUs (3GPP TS 23.040) as `AT+CMGS` / `AT+CMGR` carry them in PDU mode
//! (TS 27.005 §3): SMS-SUBMIT out, SMS-DELIVER in, GSM 7-bit default alphabet (TS 23.038 §6.2.1)
//! with its extension table, UCS-2, and concatenation with an 8-bit reference (TS 23.040
//! §9.2.3.24.1).
//!
//! Every decoder here is total: bytes from a modem or a network never panic it.

/// A PDU that could not be encoded or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("PDU: {0}")]
pub struct PduError(pub &'static str);

/// The GSM 7-bit default alphabet, TS 23.038 §6.2.1, indexed by septet. 0x1B is the escape.
const GSM7_BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The default extension table (TS 23.038 §6.2.1.1): septet after the escape, and its character.
const GSM7_EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0c}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

const ESC: u8 = 0x1B;

/// Most septets in one SMS (TS 23.040 §9.2.3.16).
pub const MAX_SEPTETS: usize = 160;
/// Most septets of text in one part of a concatenated message (7 septets go to the header).
pub const MAX_SEPTETS_CONCAT: usize = 153;
/// Most UCS-2 code units in one SMS (140 octets).
pub const MAX_UCS2: usize = 70;
/// Most UCS-2 code units in one part of a concatenated message (6 octets go to the header).
pub const MAX_UCS2_CONCAT: usize = 67;

/// The septets of `c` in the default alphabet: one, two (escape + extension) or none.
fn gsm7_septets(c: char) -> Option<(u8, Option<u8>)> {
    if c == '\u{1b}' {
        return None;
    }
    if let Some(i) = GSM7_BASIC.iter().position(|&b| b == c) {
        return Some((i as u8, None));
    }
    GSM7_EXTENSION
        .iter()
        .find(|&&(_, e)| e == c)
        .map(|&(s, _)| (ESC, Some(s)))
}

/// Whether every character of `text` is in the GSM 7-bit default alphabet or its extension.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm7_septets(c).is_some())
}

/// `text` as unpacked septets (escapes included), or None if a character is not GSM 7-bit.
pub fn to_septets(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let (a, b) = gsm7_septets(c)?;
        out.push(a);
        if let Some(b) = b {
            out.push(b);
        }
    }
    Some(out)
}

/// Unpacked septets back to text; unknown escapes read as a space (TS 23.038 §6.2.1.1 note).
pub fn from_septets(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    let mut it = septets.iter();
    while let Some(&s) = it.next() {
        if s == ESC {
            match it.next() {
                Some(&e) => {
                    let c = GSM7_EXTENSION
                        .iter()
                        .find(|&&(x, _)| x == e)
                        .map_or(' ', |&(_, c)| c);
                    out.push(c);
                }
                None => break,
            }
        } else {
            out.push(
                GSM7_BASIC
                    .get(usize::from(s & 0x7F))
                    .copied()
                    .unwrap_or(' '),
            );
        }
    }
    out
}

/// Packs septets into octets, LSB first, after `fill` fill bits (TS 23.040 §9.2.3.24).
pub fn pack_septets(septets: &[u8], fill: u32) -> Vec<u8> {
    let total_bits = fill as usize + septets.len() * 7;
    let mut out = vec![0u8; total_bits.div_ceil(8)];
    let mut bit = fill as usize;
    for &s in septets {
        for i in 0..7 {
            if s & (1 << i) != 0 {
                if let Some(o) = out.get_mut(bit / 8) {
                    *o |= 1 << (bit % 8);
                }
            }
            bit += 1;
        }
    }
    out
}

/// Unpacks `count` septets from `octets`, skipping `fill` leading bits.
pub fn unpack_septets(octets: &[u8], fill: u32, count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(count);
    let mut bit = fill as usize;
    for _ in 0..count {
        let mut s = 0u8;
        for i in 0..7 {
            let Some(o) = octets.get(bit / 8) else {
                return out;
            };
            if o & (1 << (bit % 8)) != 0 {
                s |= 1 << i;
            }
            bit += 1;
        }
        out.push(s);
    }
    out
}

/// Text encoding of a message (TP-DCS, TS 23.038 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 7-bit default alphabet (DCS 0x00).
    Gsm7,
    /// UCS-2 / UTF-16BE (DCS 0x08).
    Ucs2,
}

impl Encoding {
    /// GSM 7-bit when every character fits, UCS-2 otherwise (names with ł, ő, ş…).
    pub fn for_text(text: &str) -> Encoding {
        if is_gsm7(text) {
            Encoding::Gsm7
        } else {
            Encoding::Ucs2
        }
    }

    fn dcs(self) -> u8 {
        match self {
            Encoding::Gsm7 => 0x00,
            Encoding::Ucs2 => 0x08,
        }
    }
}

/// A concatenation header (IEI 0x00, 8-bit reference).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Concat {
    /// Reference shared by all parts of one message.
    pub reference: u8,
    /// Number of parts.
    pub total: u8,
    /// This part, from 1.
    pub seq: u8,
}

/// A telephone number as TP-DA / TP-OA carry it (TS 23.040 §9.1.2.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// Digits, with a leading `+` for international numbers, or the alphanumeric sender.
    pub number: String,
}

fn encode_address(number: &str) -> Result<Vec<u8>, PduError> {
    let (toa, digits) = match number.strip_prefix('+') {
        Some(d) => (0x91u8, d),
        None => (0x81u8, number),
    };
    if digits.is_empty() || digits.len() > 20 {
        return Err(PduError("address must have 1 to 20 digits"));
    }
    let mut out = vec![digits.len() as u8, toa];
    out.extend(encode_semi_octets(digits)?);
    Ok(out)
}

fn semi_octet(c: u8) -> Result<u8, PduError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'*' => Ok(0xA),
        b'#' => Ok(0xB),
        _ => Err(PduError("address digit is not 0-9, * or #")),
    }
}

fn encode_semi_octets(digits: &str) -> Result<Vec<u8>, PduError> {
    let b = digits.as_bytes();
    b.chunks(2)
        .map(|pair| {
            let lo = semi_octet(pair.first().copied().unwrap_or(b'0'))?;
            let hi = match pair.get(1) {
                Some(&c) => semi_octet(c)?,
                None => 0xF,
            };
            Ok(hi << 4 | lo)
        })
        .collect()
}

fn decode_semi_octets(octets: &[u8], digits: usize) -> String {
    let mut s = String::with_capacity(digits);
    for o in octets {
        for n in [o & 0x0F, o >> 4] {
            if s.len() >= digits {
                break;
            }
            s.push(match n {
                0..=9 => char::from(b'0' + n),
                0xA => '*',
                0xB => '#',
                0xC => 'a',
                0xD => 'b',
                0xE => 'c',
                _ => '?',
            });
        }
    }
    s
}

/// An SMS-SUBMIT (TS 23.040 §9.2.2.2) ready for `AT+CMGS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmitPdu {
    /// The PDU as hex, starting with the SMSC field `00` (use the SIM's SMSC).
    pub hex: String,
    /// TPDU length in octets: what `AT+CMGS=<length>` takes (the SMSC field not counted).
    pub tpdu_len: usize,
}

/// Relative validity period 0xA7: 24 hours (TS 23.040 §9.2.3.12.1). An alarm older is stale.
const VP_24H: u8 = 0xA7;

/// Encodes one SMS-SUBMIT. `text` must fit one message (or one part when `concat` is set).
pub fn encode_submit(
    to: &str,
    text: &str,
    encoding: Encoding,
    concat: Option<Concat>,
    message_reference: u8,
) -> Result<SubmitPdu, PduError> {
    let mut tpdu = Vec::with_capacity(160);
    // First octet: MTI=01 SMS-SUBMIT, VPF=10 relative, UDHI if there is a header.
    let mut first = 0x11u8;
    if concat.is_some() {
        first |= 0x40;
    }
    tpdu.push(first);
    tpdu.push(message_reference);
    tpdu.extend(encode_address(to)?);
    tpdu.push(0x00); // TP-PID: plain SME-to-SME
    tpdu.push(encoding.dcs());
    tpdu.push(VP_24H);
    let udh: Vec<u8> = match concat {
        Some(c) => vec![0x05, 0x00, 0x03, c.reference, c.total, c.seq],
        None => Vec::new(),
    };
    match encoding {
        Encoding::Gsm7 => {
            let septets = to_septets(text).ok_or(PduError("text is not GSM 7-bit encodable"))?;
            let udh_bits = udh.len() * 8;
            let fill = ((7 - udh_bits % 7) % 7) as u32;
            let header_septets = (udh_bits + fill as usize) / 7;
            let udl = header_septets + septets.len();
            if udl > MAX_SEPTETS {
                return Err(PduError("text longer than 160 septets"));
            }
            tpdu.push(udl as u8);
            tpdu.extend(&udh);
            tpdu.extend(pack_septets(&septets, fill));
        }
        Encoding::Ucs2 => {
            let mut ud = udh.clone();
            for u in text.encode_utf16() {
                ud.extend(u.to_be_bytes());
            }
            if ud.len() > 140 {
                return Err(PduError("text longer than 140 octets"));
            }
            tpdu.push(ud.len() as u8);
            tpdu.extend(ud);
        }
    }
    let hex = format!("00{}", hex::encode_upper(&tpdu));
    Ok(SubmitPdu {
        hex,
        tpdu_len: tpdu.len(),
    })
}

/// Splits `text` into the parts of one message: one part when it fits, otherwise parts of at
/// most 153 septets / 67 UCS-2 units, never splitting an escape pair or a surrogate pair.
pub fn split(text: &str, encoding: Encoding) -> Vec<String> {
    let (single, part) = match encoding {
        Encoding::Gsm7 => (MAX_SEPTETS, MAX_SEPTETS_CONCAT),
        Encoding::Ucs2 => (MAX_UCS2, MAX_UCS2_CONCAT),
    };
    let cost = |c: char| -> usize {
        match encoding {
            Encoding::Gsm7 => match gsm7_septets(c) {
                Some((_, Some(_))) => 2,
                _ => 1,
            },
            Encoding::Ucs2 => c.len_utf16(),
        }
    };
    let total: usize = text.chars().map(cost).sum();
    if total <= single {
        return vec![text.to_string()];
    }
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut used = 0;
    for c in text.chars() {
        let n = cost(c);
        if used + n > part {
            parts.push(std::mem::take(&mut cur));
            used = 0;
        }
        cur.push(c);
        used += n;
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    parts
}

/// Encodes a whole message: one SMS-SUBMIT, or a concatenated series sharing `reference`.
pub fn encode_message(to: &str, text: &str, reference: u8) -> Result<Vec<SubmitPdu>, PduError> {
    let encoding = Encoding::for_text(text);
    let parts = split(text, encoding);
    if parts.len() > 255 {
        return Err(PduError("message needs more than 255 parts"));
    }
    let total = parts.len() as u8;
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let concat = (total > 1).then_some(Concat {
                reference,
                total,
                seq: i as u8 + 1,
            });
            encode_submit(to, p, encoding, concat, 0)
        })
        .collect()
}

/// A cursor over PDU octets whose reads fail instead of panicking.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self, what: &'static str) -> Result<u8, PduError> {
        let v = self.b.get(self.pos).copied().ok_or(PduError(what))?;
        self.pos += 1;
        Ok(v)
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PduError> {
        let end = self.pos.checked_add(n).ok_or(PduError(what))?;
        let v = self.b.get(self.pos..end).ok_or(PduError(what))?;
        self.pos = end;
        Ok(v)
    }
    fn rest(&self) -> &'a [u8] {
        self.b.get(self.pos..).unwrap_or(&[])
    }
}

fn read_address(r: &mut Reader<'_>) -> Result<Address, PduError> {
    let digits = usize::from(r.u8("address length missing")?);
    let toa = r.u8("address type missing")?;
    let octets = r.take(digits.div_ceil(2), "address truncated")?;
    let number = if toa & 0x70 == 0x50 {
        // Alphanumeric (TS 23.040 §9.1.2.5): GSM 7-bit packed; `digits` counts semi-octets.
        from_septets(&unpack_septets(octets, 0, digits * 4 / 7))
    } else {
        let d = decode_semi_octets(octets, digits);
        if toa & 0x70 == 0x10 {
            format!("+{d}")
        } else {
            d
        }
    };
    Ok(Address { number })
}

/// User data of a received or submitted message, decoded.
fn read_user_data(
    r: &mut Reader<'_>,
    udhi: bool,
    dcs: u8,
) -> Result<(String, Option<Concat>), PduError> {
    let udl = usize::from(r.u8("TP-UDL missing")?);
    let ud = r.rest();
    let (mut udh_len, mut concat) = (0usize, None);
    if udhi {
        let udhl = usize::from(*ud.first().ok_or(PduError("UDH missing"))?);
        udh_len = udhl + 1;
        let h = ud.get(1..udh_len).ok_or(PduError("UDH truncated"))?;
        let mut rest = h;
        while let [iei, len, tail @ ..] = rest {
            let len = usize::from(*len);
            let data = tail.get(..len).ok_or(PduError("IE truncated"))?;
            if let (0x00, [reference, total, seq]) = (*iei, data) {
                concat = Some(Concat {
                    reference: *reference,
                    total: *total,
                    seq: *seq,
                });
            }
            rest = tail.get(len..).unwrap_or(&[]);
        }
    }
    // TS 23.038 §4: general data coding group; bits 3..2 give the alphabet.
    let alphabet = if dcs & 0xC0 == 0x00 || dcs & 0xF0 == 0xF0 {
        (dcs >> 2) & 0x03
    } else {
        0
    };
    let text = match alphabet {
        0 => {
            if udl > MAX_SEPTETS {
                return Err(PduError("TP-UDL above 160 septets"));
            }
            let header_bits = udh_len * 8;
            let fill = ((7 - header_bits % 7) % 7) as u32;
            let header_septets = (header_bits + fill as usize) / 7;
            let count = udl
                .checked_sub(header_septets)
                .ok_or(PduError("TP-UDL shorter than header"))?;
            let need = (udl * 7).div_ceil(8);
            if ud.len() < need {
                return Err(PduError("user data shorter than TP-UDL"));
            }
            let body = ud.get(udh_len..).unwrap_or(&[]);
            from_septets(&unpack_septets(body, fill, count))
        }
        2 => {
            if udl > 140 || ud.len() < udl {
                return Err(PduError("UCS-2 user data length wrong"));
            }
            let body = ud.get(udh_len..udl).ok_or(PduError("UDH longer than UD"))?;
            let units: Vec<u16> = body
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => {
            let body = ud.get(udh_len..udl.min(ud.len())).unwrap_or(&[]);
            hex::encode_upper(body)
        }
    };
    Ok((text, concat))
}

/// An SMS-DELIVER as `AT+CMGR` shows it in PDU mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deliver {
    /// Sender (TP-OA).
    pub from: String,
    /// Service-centre time stamp as `YY-MM-DD hh:mm:ss±zz` (quarter hours).
    pub timestamp: String,
    /// Text.
    pub text: String,
    /// Concatenation header, if a part of a longer message.
    pub concat: Option<Concat>,
}

/// Decodes an SMS-DELIVER PDU given as hex (with its leading SMSC field).
pub fn decode_deliver(hex_pdu: &str) -> Result<Deliver, PduError> {
    let bytes = hex::decode(hex_pdu.trim()).map_err(|_| PduError("PDU is not hex"))?;
    let mut r = Reader { b: &bytes, pos: 0 };
    let smsc_len = usize::from(r.u8("SMSC length missing")?);
    r.take(smsc_len, "SMSC truncated")?;
    let first = r.u8("first octet missing")?;
    if first & 0x03 != 0x00 {
        return Err(PduError("not an SMS-DELIVER"));
    }
    let from = read_address(&mut r)?.number;
    let _pid = r.u8("TP-PID missing")?;
    let dcs = r.u8("TP-DCS missing")?;
    let scts: [u8; 7] = r
        .take(7, "TP-SCTS truncated")?
        .try_into()
        .map_err(|_| PduError("TP-SCTS truncated"))?;
    let sw = |o: u8| (o & 0x0F) * 10 + (o >> 4);
    let tz = scts[6];
    let quarters = (tz & 0x07) * 10 + (tz >> 4);
    let sign = if tz & 0x08 != 0 { '-' } else { '+' };
    let timestamp = format!(
        "{:02}-{:02}-{:02} {:02}:{:02}:{:02}{}{:02}",
        sw(scts[0]),
        sw(scts[1]),
        sw(scts[2]),
        sw(scts[3]),
        sw(scts[4]),
        sw(scts[5]),
        sign,
        quarters
    );
    let (text, concat) = read_user_data(&mut r, first & 0x40 != 0, dcs)?;
    Ok(Deliver {
        from,
        timestamp,
        text,
        concat,
    })
}

/// An SMS-SUBMIT as a network (or the simulated modem) reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submit {
    /// Destination (TP-DA).
    pub to: String,
    /// Text.
    pub text: String,
    /// Concatenation header, if a part of a longer message.
    pub concat: Option<Concat>,
    /// TPDU length in octets (what `AT+CMGS=<length>` must have said).
    pub tpdu_len: usize,
}

/// Decodes an SMS-SUBMIT PDU given as hex (with its leading SMSC field).
pub fn decode_submit(hex_pdu: &str) -> Result<Submit, PduError> {
    let bytes = hex::decode(hex_pdu.trim()).map_err(|_| PduError("PDU is not hex"))?;
    let mut r = Reader { b: &bytes, pos: 0 };
    let smsc_len = usize::from(r.u8("SMSC length missing")?);
    r.take(smsc_len, "SMSC truncated")?;
    let tpdu_len = bytes.len() - r.pos;
    let first = r.u8("first octet missing")?;
    if first & 0x03 != 0x01 {
        return Err(PduError("not an SMS-SUBMIT"));
    }
    let _mr = r.u8("TP-MR missing")?;
    let to = read_address(&mut r)?.number;
    let _pid = r.u8("TP-PID missing")?;
    let dcs = r.u8("TP-DCS missing")?;
    match (first >> 3) & 0x03 {
        0 => {}
        2 => {
            r.u8("TP-VP missing")?;
        }
        _ => {
            r.take(7, "TP-VP truncated")?;
        }
    }
    let (text, concat) = read_user_data(&mut r, first & 0x40 != 0, dcs)?;
    Ok(Submit {
        to,
        text,
        concat,
        tpdu_len,
    })
}

/// Encodes an SMS-DELIVER (what a network hands a modem) with SMSC `smsc`, for the simulator.
pub fn encode_deliver(
    smsc: &str,
    from: &str,
    text: &str,
    scts: chrono::DateTime<chrono::Utc>,
) -> Result<String, PduError> {
    use chrono::{Datelike, Timelike};
    let mut out = Vec::new();
    let smsc_addr = encode_address(smsc)?;
    // SMSC length counts octets (type + digits), unlike TP addresses.
    out.push((smsc_addr.len() - 1) as u8);
    out.extend(smsc_addr.get(1..).unwrap_or(&[]));
    out.push(0x04); // MTI=00 SMS-DELIVER, TP-MMS (no more messages)
    out.extend(encode_address(from)?);
    out.push(0x00);
    let encoding = Encoding::for_text(text);
    out.push(encoding.dcs());
    let bcd = |v: u32| -> u8 {
        let v = (v % 100) as u8;
        (v % 10) << 4 | (v / 10)
    };
    out.extend([
        bcd(scts.year() as u32),
        bcd(scts.month()),
        bcd(scts.day()),
        bcd(scts.hour()),
        bcd(scts.minute()),
        bcd(scts.second()),
        0x00,
    ]);
    match encoding {
        Encoding::Gsm7 => {
            let s = to_septets(text).ok_or(PduError("not GSM 7-bit"))?;
            if s.len() > MAX_SEPTETS {
                return Err(PduError("text longer than 160 septets"));
            }
            out.push(s.len() as u8);
            out.extend(pack_septets(&s, 0));
        }
        Encoding::Ucs2 => {
            let ud: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
            if ud.len() > 140 {
                return Err(PduError("text longer than 140 octets"));
            }
            out.push(ud.len() as u8);
            out.extend(ud);
        }
    }
    Ok(hex::encode_upper(out))
}

/// Fuzz entry: every decoder over arbitrary bytes must return, never panic.
pub fn fuzz_pdu(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = decode_deliver(&text);
    let _ = decode_submit(&text);
    let h = hex::encode(data);
    let _ = decode_deliver(&h);
    let _ = decode_submit(&h);
    let _ = from_septets(&unpack_septets(data, 3, data.len()));
    if let Ok(pdus) = encode_message("+46700000000", &text, 7) {
        for p in pdus {
            let _ = decode_submit(&p.hex);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_hellohello_like_the_published_vector() {
        // The classic example of TS 23.040 tutorials (dreamfabric "SMS and the PDU format").
        let s = to_septets("hellohello").unwrap();
        assert_eq!(hex::encode_upper(pack_septets(&s, 0)), "E8329BFD4697D9EC37");
        assert_eq!(
            hex::encode_upper(pack_septets(&to_septets("Hello").unwrap(), 0)),
            "C8329BFD06"
        );
    }

    #[test]
    fn encodes_the_published_submit_pdu() {
        // Widely published SMS-SUBMIT: to +46708251358, "hellohello", VP relative.
        // The published one uses VP 0xAA (4 days); ours uses 0xA7 (24 h), otherwise identical.
        let p = encode_submit("+46708251358", "hellohello", Encoding::Gsm7, None, 0).unwrap();
        assert_eq!(p.hex, "0011000B916407281553F80000A70AE8329BFD4697D9EC37");
        // AT+CMGS counts the TPDU only: all octets minus the one-octet SMSC field.
        assert_eq!(p.tpdu_len, p.hex.len() / 2 - 1);
        assert_eq!(p.tpdu_len, 23);
    }

    #[test]
    fn decodes_the_published_deliver_pdu() {
        // SMS-DELIVER from the dreamfabric tutorial: SMSC +27381000015, "hellohello".
        let d = decode_deliver(
            "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37",
        )
        .unwrap();
        assert_eq!(d.from, "27838890001");
        assert_eq!(d.text, "hellohello");
        assert_eq!(d.timestamp, "99-03-29 15:16:59+08");
        assert_eq!(d.concat, None);
    }

    #[test]
    fn ucs2_for_names_outside_gsm7() {
        assert_eq!(Encoding::for_text("Anna Öberg"), Encoding::Gsm7);
        assert_eq!(Encoding::for_text("Paweł Łódź"), Encoding::Ucs2);
        let p = encode_submit("+48123", "Łódź", Encoding::Ucs2, None, 0).unwrap();
        // DCS 08, UDL 8 octets, UTF-16BE of Ł ó d ź.
        assert!(p.hex.ends_with("0008A708014100F30064017A"), "{}", p.hex);
        let back = decode_submit(&p.hex).unwrap();
        assert_eq!(back.text, "Łódź");
        assert_eq!(back.to, "+48123");
    }

    #[test]
    fn extension_characters_take_two_septets() {
        assert_eq!(to_septets("€").unwrap(), vec![0x1B, 0x65]);
        assert_eq!(from_septets(&to_septets("a[b]~€|").unwrap()), "a[b]~€|");
        // 159 plain + one euro = 161 septets: does not fit a single message.
        let text = format!("{}€", "a".repeat(159));
        assert_eq!(split(&text, Encoding::Gsm7).len(), 2);
    }

    #[test]
    fn concatenation_never_splits_an_escape_or_surrogate() {
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let parts = split(&text, Encoding::Gsm7);
        assert_eq!(parts[0], "a".repeat(152));
        assert!(parts[1].starts_with('€'));
        let emoji = format!("{}😀{}", "ł".repeat(66), "x".repeat(5));
        let parts = split(&emoji, Encoding::Ucs2);
        assert_eq!(parts[0].chars().count(), 66);
        assert!(parts[1].starts_with('😀'));
    }

    #[test]
    fn concatenated_parts_round_trip_with_header() {
        let text = "x".repeat(400);
        let pdus = encode_message("+4670", &text, 42).unwrap();
        assert_eq!(pdus.len(), 3);
        let mut joined = String::new();
        for (i, p) in pdus.iter().enumerate() {
            let s = decode_submit(&p.hex).unwrap();
            let c = s.concat.unwrap();
            assert_eq!((c.reference, c.total, c.seq), (42, 3, i as u8 + 1));
            assert_eq!(s.tpdu_len, p.tpdu_len);
            joined.push_str(&s.text);
        }
        assert_eq!(joined, text);
        // A full part: UDL 160 septets = 7 header septets (6 octets + 1 fill bit) + 153.
        let first = hex::decode(&pdus[0].hex).unwrap();
        assert_eq!(first[1] & 0x40, 0x40);
        assert!(pdus[0].hex.contains("A0050003"), "{}", pdus[0].hex);
    }

    #[test]
    fn deliver_round_trip_both_alphabets() {
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        for text in ["ACK 7F3A 912044", "Zażółć gęślą jaźń"] {
            let h = encode_deliver("+46700000001", "+46701234567", text, t).unwrap();
            let d = decode_deliver(&h).unwrap();
            assert_eq!(d.text, text);
            assert_eq!(d.from, "+46701234567");
        }
    }

    #[test]
    fn truncated_and_lying_pdus_are_errors() {
        assert!(decode_deliver("07917283010010F5040BC872").is_err());
        assert!(decode_deliver("zz").is_err());
        // TP-UDL says 10 septets, the user data holds only 5 octets.
        assert!(decode_deliver("00040B917283880900F10000993092516195800AC8329BFD06").is_err());
        assert!(decode_submit("").is_err());
    }
}
