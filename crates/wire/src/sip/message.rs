//! SIP messages (RFC 3261 §7): parsing, header values, URIs and their parameters, and the
//! small pieces requests are built from (tokens, CSeq numbers). Messages are parsed with
//! `rsip`; requests are written as text.

use std::sync::atomic::{AtomicU32, Ordering};

use super::digest::Challenge;
use super::SipError;

/// A parsed SIP message and the helpers SCAIP needs.
#[derive(Clone, Debug)]
pub struct SipMsg {
    msg: rsip::SipMessage,
    headers: Vec<(String, String)>,
}

/// Long header names for the compact forms (RFC 3261 §7.3.3).
pub fn canonical(name: &str) -> String {
    let long = match name.to_ascii_lowercase().as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        other => return other.to_string(),
    };
    long.to_string()
}

impl SipMsg {
    /// Parses one complete message.
    pub fn parse(bytes: &[u8]) -> Result<SipMsg, SipError> {
        let msg = rsip::SipMessage::try_from(bytes)
            .map_err(|e| SipError::Message(format!("unreadable SIP message: {e}")))?;
        let list = match &msg {
            rsip::SipMessage::Request(r) => &r.headers,
            rsip::SipMessage::Response(r) => &r.headers,
        };
        let mut headers = Vec::new();
        for h in list.iter() {
            let text = h.to_string();
            if let Some((name, value)) = text.split_once(':') {
                let name = canonical(name.trim());
                // A header line may carry several comma-separated Via values.
                if name == "via" {
                    for v in value.split(',') {
                        headers.push((name.clone(), v.trim().to_string()));
                    }
                } else {
                    headers.push((name, value.trim().to_string()));
                }
            }
        }
        Ok(SipMsg { msg, headers })
    }

    /// The first value of header `name` (case-insensitive, compact forms understood).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = canonical(name);
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        let name = canonical(name);
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Status code of a response.
    pub fn status(&self) -> Option<u16> {
        match &self.msg {
            rsip::SipMessage::Response(r) => Some(r.status_code.code()),
            rsip::SipMessage::Request(_) => None,
        }
    }

    /// Reason phrase of a response.
    pub fn reason(&self) -> String {
        match &self.msg {
            rsip::SipMessage::Response(r) => r.status_code.to_string(),
            rsip::SipMessage::Request(_) => String::new(),
        }
    }

    /// Method of a request.
    pub fn method(&self) -> Option<String> {
        match &self.msg {
            rsip::SipMessage::Request(r) => Some(r.method.to_string()),
            rsip::SipMessage::Response(_) => None,
        }
    }

    /// Request-URI of a request.
    pub fn request_uri(&self) -> Option<String> {
        match &self.msg {
            rsip::SipMessage::Request(r) => Some(r.uri.to_string()),
            rsip::SipMessage::Response(_) => None,
        }
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        self.msg.body()
    }

    /// The top Via's branch.
    pub fn branch(&self) -> Option<String> {
        self.header("via").and_then(|v| param(v, "branch"))
    }

    /// The CSeq method.
    pub fn cseq_method(&self) -> Option<String> {
        self.header("cseq")
            .and_then(|c| c.split_whitespace().nth(1))
            .map(str::to_string)
    }
}

/// Parses untrusted bytes as a SIP message and reads the headers SCAIP uses; never panics.
/// The entry point of the `scaip_sip` fuzz target.
pub fn parse_untrusted(bytes: &[u8]) -> Result<SipMsg, SipError> {
    let m = SipMsg::parse(bytes)?;
    let _ = (
        m.branch(),
        m.status(),
        m.method(),
        m.request_uri(),
        m.cseq_method(),
    );
    for name in [
        "to",
        "from",
        "contact",
        "www-authenticate",
        "proxy-authenticate",
    ] {
        if let Some(v) = m.header(name) {
            let _ = (
                addr_uri(v),
                aor(&addr_uri(v)),
                param(v, "tag"),
                Challenge::parse(v),
            );
        }
    }
    Ok(m)
}

/// The value of `;name=value` in a header value (outside `<…>`).
pub fn param(value: &str, name: &str) -> Option<String> {
    let after_uri = match value.rfind('>') {
        Some(i) => value.get(i + 1..).unwrap_or(""),
        None => value,
    };
    after_uri.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The URI of a name-addr (`"x" <sip:a@b>;tag=1`) or addr-spec (`sip:a@b;tag=1`).
pub fn addr_uri(value: &str) -> String {
    if let (Some(l), Some(r)) = (value.find('<'), value.find('>')) {
        if l < r {
            return value.get(l + 1..r).unwrap_or("").to_string();
        }
    }
    value.split(';').next().unwrap_or("").trim().to_string()
}

/// `user@host` of a SIP URI, without scheme, port and parameters, for comparing identities.
pub fn aor(uri: &str) -> String {
    let u = uri.trim();
    let u = u
        .strip_prefix("sip:")
        .or_else(|| u.strip_prefix("sips:"))
        .unwrap_or(u);
    let u = u.split([';', '?']).next().unwrap_or(u);
    let (user, host) = match u.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, u),
    };
    let host = if host.starts_with('[') {
        host.split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or(host).to_string()
    };
    match user {
        Some(user) => format!("{user}@{}", host.to_ascii_lowercase()),
        None => host.to_ascii_lowercase(),
    }
}

/// A SIP message for the log: `Authorization` and `Proxy-Authorization` values are replaced,
/// at every level, since a digest answer can be cracked offline for the password.
pub fn redacted(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let name = line.split(':').next().unwrap_or("").trim();
        if matches!(
            canonical(name).as_str(),
            "authorization" | "proxy-authorization"
        ) && line.contains(':')
        {
            out.push_str(name);
            out.push_str(": <redacted>\r\n");
        } else {
            out.push_str(line);
        }
    }
    out
}

/// `n` random lower-case hex characters (branches, tags, Call-IDs, nonces).
pub fn random_token(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; n.div_ceil(2)];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    let mut s = hex::encode(bytes);
    s.truncate(n);
    s
}

/// A counter for CSeq numbers.
#[derive(Debug, Default)]
pub struct CSeq(AtomicU32);

impl CSeq {
    /// The next number.
    pub fn next(&self) -> u32 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_values_never_reach_the_log() {
        let msg = b"REGISTER sip:x SIP/2.0\r\nAuthorization: Digest response=\"abc\"\r\n\
                    proxy-authorization: Digest response=\"def\"\r\nTo: <sip:a@b>\r\n\r\n";
        let r = redacted(msg);
        assert!(!r.contains("abc") && !r.contains("def"), "{r}");
        assert!(r.contains("To: <sip:a@b>") && r.contains("Authorization: <redacted>"));
    }

    #[test]
    fn uris_and_params() {
        assert_eq!(
            aor("sip:Unit1@Example.COM:5060;transport=tcp"),
            "Unit1@example.com"
        );
        assert_eq!(addr_uri("\"A\" <sip:a@b>;tag=x"), "sip:a@b");
        assert_eq!(
            param("<sip:a@b;lr>;tag=x;expires=30", "expires").as_deref(),
            Some("30")
        );
        assert_eq!(
            param("SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1;rport", "branch").as_deref(),
            Some("z9hG4bK1")
        );
    }
}
