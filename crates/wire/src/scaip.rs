//! SCAIP bodies (SS 91100:2014): `<mrq>` from the device, `<mrs>` from the receiver, carried
//! as `application/scaip+xml` in SIP MESSAGE requests.
//!
//! Both are flat: one root element whose children hold text. The reader here accepts exactly
//! that (plus an XML declaration, comments, attributes and the five predefined entities) and
//! refuses anything else with the SCAIP error number the receiver would answer.

/// A SCAIP body that breaks SS 91100; `snu` is the status a receiver answers with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid SCAIP body (snu {snu}): {what}")]
pub struct InvalidBody {
    /// The SCAIP status number for this error.
    pub snu: u16,
    /// What is wrong.
    pub what: String,
}

/// The content type of every SCAIP body.
pub const CONTENT_TYPE: &str = "application/scaip+xml";

/// Longest body we read; SCAIP messages are a few hundred bytes.
pub const MAX_BODY: usize = 4096;

/// SCAIP message type (`mty`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// `ME`: an alarm or report.
    Message,
    /// `RE`: reset, the device gives up this session.
    Reset,
    /// `IN`: information.
    Info,
    /// `PI`: heartbeat.
    Ping,
}

impl MessageType {
    /// The code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Message => "ME",
            MessageType::Reset => "RE",
            MessageType::Info => "IN",
            MessageType::Ping => "PI",
        }
    }

    /// Parses the code on the wire.
    pub fn parse(s: &str) -> Option<MessageType> {
        match s {
            "ME" => Some(MessageType::Message),
            "RE" => Some(MessageType::Reset),
            "IN" => Some(MessageType::Info),
            "PI" => Some(MessageType::Ping),
            _ => None,
        }
    }
}

/// A SCAIP request (`<mrq>`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mrq {
    /// `ref`: session reference, 1–16 of A–Z a–z 0–9.
    pub reference: String,
    /// `cid`: controller id, 1–32 digits.
    pub cid: String,
    /// `dty`: device type (3 personal trigger, 4 fixed trigger, 5 fall detector).
    pub dty: u16,
    /// `mty`: message type.
    pub mty: Option<MessageType>,
    /// `stc`: status code (10 manual alarm, 9 automatic alarm, …).
    pub stc: Option<u16>,
    /// `stt`: status text, 1–32 characters (SS 91100 Table 1).
    pub stt: Option<String>,
    /// `ite`: information text, 1–128 characters (SS 91100 Table 1): a fall's evidence.
    pub ite: Option<String>,
    /// `pri`: priority.
    pub pri: Option<u16>,
    /// `lco`: location code, 1–3 digits from Annex D (sent as three).
    pub lco: Option<u16>,
    /// `lva`: location value, 1–2 printable ASCII characters (a value, not a name).
    pub lva: Option<String>,
    /// `lte`: location text, 1–32 characters.
    pub lte: Option<String>,
    /// `crd`: caller (the number or URI the centre calls back).
    pub crd: Option<String>,
    /// `did`: device id.
    pub did: Option<String>,
}

/// A SCAIP response (`<mrs>`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mrs {
    /// `ref`: the reference of the request answered.
    pub reference: String,
    /// `snu`: status number (0 OK, 4 hold, 5 not treated, 6 busy, others errors).
    pub snu: u16,
    /// `mre`: ≥ 1 asks the device to start a voice call.
    pub mre: Option<u16>,
    /// `cre`: where to call (1–60 call-back window, 61 predefined receiver, 62 `tnu`).
    pub cre: Option<u16>,
    /// `tnu`: number or URI to call (`gsm:+46…`, `sip:…`).
    pub tnu: Option<String>,
    /// `hbi`: heartbeat interval the centre wants, minutes.
    pub hbi: Option<u32>,
}

/// What `snu` means, for logs and the journal.
pub fn snu_meaning(snu: u16) -> &'static str {
    match snu {
        0 => "OK",
        1 => "message too long",
        2 => "invalid format",
        3 => "wrong content",
        4 => "hold: resend later",
        5 => "not treated",
        6 => "busy",
        7 => "mandatory tag missing",
        10 => "ref missing",
        _ => "error",
    }
}

/// A parsed SCAIP body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScaipBody {
    /// A request.
    Request(Mrq),
    /// A response.
    Response(Mrs),
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn tag(out: &mut String, name: &str, value: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&escape(value));
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

impl Mrq {
    /// Checks every element against SS 91100:2014 Table 1 (lengths, characters) before it is
    /// sent, so a field added later cannot go out malformed. Errors carry the `snu` a strict
    /// receiver would answer.
    pub fn validate(&self) -> Result<(), InvalidBody> {
        fn len(name: &str, v: &str, max: usize) -> Result<(), InvalidBody> {
            let n = v.chars().count();
            if n > max {
                return Err(invalid(
                    1,
                    format!("<{name}> has {n} characters, Table 1 allows {max}"),
                ));
            }
            if n == 0 {
                return Err(invalid(2, format!("<{name}> is empty")));
            }
            Ok(())
        }
        fn printable(name: &str, v: &str) -> Result<(), InvalidBody> {
            if v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                Ok(())
            } else {
                Err(invalid(2, format!("<{name}> must be printable ASCII")))
            }
        }
        fn max_code(name: &str, v: u16, max: u16) -> Result<(), InvalidBody> {
            if v > max {
                return Err(invalid(1, format!("<{name}> {v} exceeds {max}")));
            }
            Ok(())
        }
        if !valid_ref(&self.reference) {
            return Err(invalid(2, "<ref> must be 1-16 of A-Z a-z 0-9"));
        }
        len("cid", &self.cid, 32)?;
        if !self.cid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(2, "<cid> must be digits"));
        }
        max_code("dty", self.dty, 9999)?;
        if let Some(v) = self.stc {
            max_code("stc", v, 9999)?;
        }
        if let Some(v) = self.pri {
            max_code("pri", v, 9)?;
        }
        if let Some(v) = self.lco {
            max_code("lco", v, 999)?;
        }
        if let Some(v) = &self.did {
            len("did", v, 16)?;
            printable("did", v)?;
        }
        if let Some(v) = &self.lva {
            len("lva", v, 2)?;
            printable("lva", v)?;
        }
        if let Some(v) = &self.lte {
            len("lte", v, 32)?;
        }
        if let Some(v) = &self.stt {
            len("stt", v, 32)?;
        }
        if let Some(v) = &self.ite {
            len("ite", v, 128)?;
        }
        if let Some(v) = &self.crd {
            len("crd", v, 256)?;
            if !["no-voice:", "gsm:", "sip:", "sip-pp:"]
                .iter()
                .any(|scheme| v.starts_with(scheme))
            {
                return Err(invalid(
                    3,
                    "<crd> must start with no-voice:, gsm:, sip: or sip-pp:",
                ));
            }
        }
        Ok(())
    }

    /// The body as sent.
    pub fn emit(&self) -> String {
        let mut s = String::from(DECL);
        s.push_str("<mrq>");
        tag(&mut s, "ref", &self.reference);
        if let Some(m) = self.mty {
            tag(&mut s, "mty", m.as_str());
        }
        tag(&mut s, "cid", &self.cid);
        tag(&mut s, "dty", &format!("{:04}", self.dty));
        if let Some(v) = &self.did {
            tag(&mut s, "did", v);
        }
        if let Some(v) = self.lco {
            tag(&mut s, "lco", &format!("{v:03}"));
        }
        if let Some(v) = &self.lva {
            tag(&mut s, "lva", v);
        }
        if let Some(v) = &self.lte {
            tag(&mut s, "lte", v);
        }
        if let Some(v) = self.stc {
            tag(&mut s, "stc", &format!("{v:04}"));
        }
        if let Some(v) = &self.stt {
            tag(&mut s, "stt", v);
        }
        if let Some(v) = &self.ite {
            tag(&mut s, "ite", v);
        }
        if let Some(v) = self.pri {
            tag(&mut s, "pri", &v.to_string());
        }
        if let Some(v) = &self.crd {
            tag(&mut s, "crd", v);
        }
        s.push_str("</mrq>");
        s
    }
}

impl Mrs {
    /// The body as sent.
    pub fn emit(&self) -> String {
        let mut s = String::from(DECL);
        s.push_str("<mrs>");
        tag(&mut s, "ref", &self.reference);
        tag(&mut s, "snu", &self.snu.to_string());
        if let Some(v) = self.mre {
            tag(&mut s, "mre", &v.to_string());
        }
        if let Some(v) = self.cre {
            tag(&mut s, "cre", &format!("{v:02}"));
        }
        if let Some(v) = &self.tnu {
            tag(&mut s, "tnu", v);
        }
        if let Some(v) = self.hbi {
            tag(&mut s, "hbi", &v.to_string());
        }
        s.push_str("</mrs>");
        s
    }
}

/// Whether `r` is a valid SCAIP `ref`: 1–16 of A–Z a–z 0–9.
pub fn valid_ref(r: &str) -> bool {
    (1..=16).contains(&r.len()) && r.chars().all(|c| c.is_ascii_alphanumeric())
}

fn invalid(snu: u16, what: impl Into<String>) -> InvalidBody {
    InvalidBody {
        snu,
        what: what.into(),
    }
}

/// A code of 1–4 digits, compared numerically (`10` = `0010`).
fn code(name: &str, v: &str) -> Result<u16, InvalidBody> {
    if v.is_empty() || v.len() > 4 || !v.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(
            2,
            format!("<{name}> must be 1-4 digits, not `{v}`"),
        ));
    }
    v.parse().map_err(|_| invalid(2, format!("<{name}> `{v}`")))
}

/// Parses a SCAIP body from untrusted bytes. Errors carry the `snu` a receiver answers with.
pub fn parse(bytes: &[u8]) -> Result<ScaipBody, InvalidBody> {
    if bytes.len() > MAX_BODY {
        return Err(invalid(1, format!("body of {} bytes", bytes.len())));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| invalid(2, "body is not UTF-8"))?;
    let (root, fields) = flat_xml(text)?;
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim().to_string())
    };
    let reference = get("ref").ok_or_else(|| invalid(10, "<ref> missing"))?;
    if !valid_ref(&reference) {
        return Err(invalid(2, "<ref> must be 1-16 letters or digits"));
    }
    match root.as_str() {
        "mrq" => {
            let cid = get("cid").ok_or_else(|| invalid(7, "<cid> missing"))?;
            if cid.is_empty() || cid.len() > 32 || !cid.chars().all(|c| c.is_ascii_digit()) {
                return Err(invalid(2, "<cid> must be 1-32 digits"));
            }
            let dty = code(
                "dty",
                &get("dty").ok_or_else(|| invalid(7, "<dty> missing"))?,
            )?;
            let mty = get("mty")
                .map(|m| MessageType::parse(&m).ok_or_else(|| invalid(3, format!("<mty> `{m}`"))))
                .transpose()?;
            let opt_code = |name: &str| get(name).map(|v| code(name, &v)).transpose();
            Ok(ScaipBody::Request(Mrq {
                reference,
                cid,
                dty,
                mty,
                stc: opt_code("stc")?,
                stt: get("stt"),
                ite: get("ite"),
                pri: opt_code("pri")?,
                lco: opt_code("lco")?,
                lva: get("lva"),
                lte: get("lte"),
                crd: get("crd"),
                did: get("did"),
            }))
        }
        "mrs" => {
            let snu = code(
                "snu",
                &get("snu").ok_or_else(|| invalid(7, "<snu> missing"))?,
            )?;
            let opt_code = |name: &str| get(name).map(|v| code(name, &v)).transpose();
            let hbi = get("hbi")
                .map(|v| {
                    v.parse::<u32>()
                        .ok()
                        .filter(|m| (1..=1440).contains(m))
                        .ok_or_else(|| invalid(3, format!("<hbi> `{v}` is not 1-1440 minutes")))
                })
                .transpose()?;
            Ok(ScaipBody::Response(Mrs {
                reference,
                snu,
                mre: opt_code("mre")?,
                cre: opt_code("cre")?,
                tnu: get("tnu").filter(|t| !t.is_empty()),
                hbi,
            }))
        }
        other => Err(invalid(
            3,
            format!("root element <{other}> is neither mrq nor mrs"),
        )),
    }
}

/// The root's name and its children's names and (unescaped) text, exactly as written, for a
/// receiver that checks each element against SS 91100 Table 1 itself.
pub fn elements(bytes: &[u8]) -> Result<(String, Vec<(String, String)>), InvalidBody> {
    if bytes.len() > MAX_BODY {
        return Err(invalid(1, format!("body of {} bytes", bytes.len())));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| invalid(2, "body is not UTF-8"))?;
    flat_xml(text)
}

/// Reads `<root><a>text</a><b/>…</root>` into the root's name and its children.
fn flat_xml(text: &str) -> Result<(String, Vec<(String, String)>), InvalidBody> {
    let mut rest = skip_misc(text.trim_start_matches('\u{feff}'))?;
    let (root, after) = open_tag(rest)?;
    let (root_name, self_closed) = root;
    if self_closed {
        return Err(invalid(7, format!("<{root_name}/> is empty")));
    }
    rest = after;
    let mut fields = Vec::new();
    loop {
        rest = skip_misc(rest)?;
        if let Some(r) = rest.strip_prefix("</") {
            let end = r
                .find('>')
                .ok_or_else(|| invalid(2, "unterminated end tag"))?;
            if r.get(..end).map(str::trim) != Some(root_name.as_str()) {
                return Err(invalid(2, "mismatched end tag of the root"));
            }
            let trailing = skip_misc(r.get(end + 1..).unwrap_or(""))?;
            if !trailing.trim().is_empty() {
                return Err(invalid(2, "text after the root element"));
            }
            return Ok((root_name, fields));
        }
        let ((name, self_closed), after) = open_tag(rest)?;
        if fields.len() >= 32 {
            return Err(invalid(1, "more than 32 elements"));
        }
        if self_closed {
            fields.push((name, String::new()));
            rest = after;
            continue;
        }
        let close = format!("</{name}");
        let end = after
            .find(&close)
            .ok_or_else(|| invalid(2, format!("<{name}> is not closed")))?;
        let raw = after.get(..end).unwrap_or("");
        if raw.contains('<') {
            return Err(invalid(2, format!("<{name}> holds markup")));
        }
        fields.push((name, unescape(raw)?));
        let r = after.get(end + close.len()..).unwrap_or("");
        let gt = r
            .find('>')
            .ok_or_else(|| invalid(2, "unterminated end tag"))?;
        if !r.get(..gt).unwrap_or("").trim().is_empty() {
            return Err(invalid(2, "mismatched end tag"));
        }
        rest = r.get(gt + 1..).unwrap_or("");
    }
}

/// Skips whitespace, the XML declaration, processing instructions and comments.
fn skip_misc(mut s: &str) -> Result<&str, InvalidBody> {
    loop {
        s = s.trim_start();
        if let Some(r) = s.strip_prefix("<?") {
            let end = r
                .find("?>")
                .ok_or_else(|| invalid(2, "unterminated declaration"))?;
            s = r.get(end + 2..).unwrap_or("");
        } else if let Some(r) = s.strip_prefix("<!--") {
            let end = r
                .find("-->")
                .ok_or_else(|| invalid(2, "unterminated comment"))?;
            s = r.get(end + 3..).unwrap_or("");
        } else {
            return Ok(s);
        }
    }
}

/// Reads `<name attr="…">` or `<name/>`; returns the name, whether it closed itself, and
/// what follows.
fn open_tag(s: &str) -> Result<((String, bool), &str), InvalidBody> {
    let r = s
        .strip_prefix('<')
        .ok_or_else(|| invalid(2, "expected an element"))?;
    let gt = r.find('>').ok_or_else(|| invalid(2, "unterminated tag"))?;
    let inside = r.get(..gt).unwrap_or("");
    let (inside, self_closed) = match inside.strip_suffix('/') {
        Some(i) => (i, true),
        None => (inside, false),
    };
    let name: String = inside
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap_or("")
        .to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ':')
    {
        return Err(invalid(2, "bad element name"));
    }
    // Namespace prefixes (`s:ref`) are dropped: SCAIP element names are unique.
    let local = name.rsplit(':').next().unwrap_or(&name).to_string();
    Ok(((local, self_closed), r.get(gt + 1..).unwrap_or("")))
}

fn unescape(s: &str) -> Result<String, InvalidBody> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or(""));
        let r = rest.get(amp + 1..).unwrap_or("");
        let semi = r.find(';').ok_or_else(|| invalid(2, "bad entity"))?;
        let entity = r.get(..semi).unwrap_or("");
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            e if e.starts_with("#x") => u32::from_str_radix(e.get(2..).unwrap_or(""), 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| invalid(2, "bad character reference"))?,
            e if e.starts_with('#') => e
                .get(1..)
                .and_then(|d| d.parse::<u32>().ok())
                .and_then(char::from_u32)
                .ok_or_else(|| invalid(2, "bad character reference"))?,
            _ => return Err(invalid(2, "unknown entity")),
        };
        out.push(c);
        rest = r.get(semi + 1..).unwrap_or("");
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses untrusted bytes as a SCAIP body and checks that what parses survives a round trip;
/// never panics. The entry point of the `scaip_xml` fuzz target.
pub fn parse_untrusted(bytes: &[u8]) -> Result<ScaipBody, InvalidBody> {
    let body = parse(bytes)?;
    let again = match &body {
        ScaipBody::Request(m) => m.emit(),
        ScaipBody::Response(m) => m.emit(),
    };
    let back = parse(again.as_bytes())?;
    if back != body {
        return Err(invalid(3, "body does not survive a round trip"));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrq_round_trip() {
        let m = Mrq {
            reference: "AB12".into(),
            cid: "4670123".into(),
            dty: 3,
            mty: Some(MessageType::Message),
            stc: Some(10),
            stt: Some("6756ABCD0001".into()),
            ite: Some("fall detector: impact 4.9 g, free fall 160 ms, turned 95 deg".into()),
            pri: Some(1),
            lco: Some(12),
            lva: None,
            lte: Some("Anna's <bed> & room".into()),
            crd: Some("gsm:+46701234567".into()),
            did: Some("00C0FFEE".into()),
        };
        let text = m.emit();
        assert!(text.contains("<stc>0010</stc>"));
        assert!(text.contains("<dty>0003</dty>"));
        assert!(text.contains("&lt;bed&gt; &amp;"));
        assert_eq!(parse(text.as_bytes()).unwrap(), ScaipBody::Request(m));
    }

    #[test]
    fn codes_compare_numerically() {
        let body = b"<mrs><ref>X1</ref><snu>00</snu><mre>1</mre><cre>62</cre><tnu>gsm:+4612</tnu><hbi>30</hbi></mrs>";
        let ScaipBody::Response(m) = parse(body).unwrap() else {
            panic!("not a response")
        };
        assert_eq!(
            (m.snu, m.mre, m.cre, m.hbi),
            (0, Some(1), Some(62), Some(30))
        );
        let body = b"<?xml version='1.0'?>\n<!-- c --><mrq xmlns=\"x\"><ref>A</ref><cid>1</cid><dty>5</dty><stc>10</stc></mrq>\n";
        let ScaipBody::Request(m) = parse(body).unwrap() else {
            panic!("not a request")
        };
        assert_eq!((m.dty, m.stc), (5, Some(10)));
    }

    #[test]
    fn errors_carry_the_receivers_snu() {
        let snu = |b: &[u8]| match parse(b) {
            Err(InvalidBody { snu, .. }) => snu,
            other => panic!("{other:?}"),
        };
        assert_eq!(snu(b"<mrq><cid>1</cid><dty>3</dty></mrq>"), 10);
        assert_eq!(snu(b"<mrq><ref>A</ref><dty>3</dty></mrq>"), 7);
        assert_eq!(snu(b"<mrq><ref>A</ref><cid>x</cid><dty>3</dty></mrq>"), 2);
        assert_eq!(snu(b"<mrq><ref>A-B</ref><cid>1</cid><dty>3</dty></mrq>"), 2);
        assert_eq!(snu(&[b' '; MAX_BODY + 1]), 1);
        assert_eq!(snu(b"<mrq><ref>A</ref><cid>1</cid><dty>3</dty>"), 2);
    }
}
