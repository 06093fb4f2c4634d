//! Digest authentication (RFC 7616 / RFC 8760, as RFC 3261 §22 uses it): reading a 401/407
//! challenge and picking among several, answering it (SHA-256 when offered, MD5 only when it
//! is the only choice), and checking a client's answer against our own nonce.

use std::collections::HashMap;

use subtle::ConstantTimeEq;

use super::message::random_token;
use super::SipError;

/// A digest challenge from `WWW-Authenticate` or `Proxy-Authenticate`.
#[derive(Clone, Debug, Default)]
pub struct Challenge {
    /// Realm.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque value to echo.
    pub opaque: Option<String>,
    /// Whether the server offers `qop=auth`.
    pub qop_auth: bool,
    /// Algorithm named by the server (MD5 if absent).
    pub algorithm: Option<String>,
    /// Whether the nonce was stale (credentials were right).
    pub stale: bool,
}

/// `key=value, key="value"` pairs of an auth header after its scheme.
pub fn auth_params(value: &str) -> (String, HashMap<String, String>) {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    let mut map = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.trim().is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut escaped = false;
            for c in chars.by_ref() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => break,
                    (_, c) => {
                        escaped = false;
                        val.push(c);
                    }
                }
            }
        } else {
            val = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        map.insert(key.trim().to_ascii_lowercase(), val.trim().to_string());
    }
    (scheme.to_string(), map)
}

impl Challenge {
    /// The digest algorithm this challenge asks for, if the unit supports it: SHA-256
    /// (RFC 8760) or MD5 (also when none is named, RFC 7616 §3.3).
    fn digest_algorithm(&self) -> Result<(rsip::headers::auth::Algorithm, &'static str), SipError> {
        match self.algorithm.as_deref() {
            None => Ok((rsip::headers::auth::Algorithm::Md5, "MD5")),
            Some(a) if a.eq_ignore_ascii_case("md5") => {
                Ok((rsip::headers::auth::Algorithm::Md5, "MD5"))
            }
            Some(a) if a.eq_ignore_ascii_case("sha-256") => {
                Ok((rsip::headers::auth::Algorithm::Sha256, "SHA-256"))
            }
            Some(a) => Err(SipError::Auth(format!(
                "digest algorithm {a} is not supported (SHA-256 or MD5)"
            ))),
        }
    }

    /// Picks the challenge to answer among those a 401/407 carries (RFC 8760 §2.4): SHA-256
    /// when the server offers it, MD5 only when it is the only choice.
    pub fn pick<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
        let usable: Vec<Challenge> = values
            .into_iter()
            .filter_map(Challenge::parse)
            .filter(|c| c.digest_algorithm().is_ok())
            .collect();
        let sha256 = usable
            .iter()
            .position(|c| c.digest_algorithm().is_ok_and(|(_, n)| n == "SHA-256"));
        let i = sha256.unwrap_or(0);
        usable.into_iter().nth(i)
    }

    /// Parses a Digest challenge.
    pub fn parse(value: &str) -> Option<Challenge> {
        let (scheme, p) = auth_params(value);
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        Some(Challenge {
            realm: p.get("realm")?.clone(),
            nonce: p.get("nonce")?.clone(),
            opaque: p.get("opaque").cloned(),
            qop_auth: p
                .get("qop")
                .is_some_and(|q| q.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth"))),
            algorithm: p.get("algorithm").cloned(),
            stale: p
                .get("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The `Authorization` / `Proxy-Authorization` value for `method` on `uri`.
    pub fn answer(
        &self,
        method: &str,
        uri: &str,
        user: &str,
        password: &str,
        nc: u32,
    ) -> Result<String, SipError> {
        let (algorithm, algorithm_name) = self.digest_algorithm()?;
        let parsed_uri = rsip::Uri::try_from(uri)
            .map_err(|e| SipError::Message(format!("bad URI {uri}: {e}")))?;
        let method_r: rsip::Method = method
            .parse()
            .map_err(|_| SipError::Message(format!("unknown method {method}")))?;
        let cnonce = random_token(16);
        let qop = self.qop_auth.then(|| rsip::headers::auth::AuthQop::Auth {
            cnonce: cnonce.clone(),
            nc: u8::try_from(nc.min(99)).unwrap_or(1),
        });
        let response = rsip::services::DigestGenerator {
            username: user,
            password,
            nonce: &self.nonce,
            uri: &parsed_uri,
            realm: &self.realm,
            method: &method_r,
            qop: qop.as_ref(),
            algorithm,
        }
        .compute();
        let mut s = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{parsed_uri}\", response=\"{response}\", algorithm={algorithm_name}",
            self.realm, self.nonce
        );
        if qop.is_some() {
            s.push_str(&format!(
                ", qop=auth, nc={:08}, cnonce=\"{cnonce}\"",
                nc.min(99)
            ));
        }
        if let Some(o) = &self.opaque {
            s.push_str(&format!(", opaque=\"{o}\""));
        }
        Ok(s)
    }
}

/// Checks a client's `Authorization` value against our nonce and the user's password.
pub fn verify_authorization(
    value: &str,
    method: &str,
    realm: &str,
    nonce: &str,
    user: &str,
    password: &str,
) -> bool {
    let (scheme, p) = auth_params(value);
    if !scheme.eq_ignore_ascii_case("digest")
        || p.get("username").map(String::as_str) != Some(user)
        || p.get("realm").map(String::as_str) != Some(realm)
        || p.get("nonce").map(String::as_str) != Some(nonce)
    {
        return false;
    }
    let (Some(uri), Some(response)) = (p.get("uri"), p.get("response")) else {
        return false;
    };
    let Ok(uri) = rsip::Uri::try_from(uri.as_str()) else {
        return false;
    };
    let Ok(method) = method.parse::<rsip::Method>() else {
        return false;
    };
    let qop = match p.get("qop").map(String::as_str) {
        Some("auth") => {
            let nc = p.get("nc").and_then(|n| n.parse::<u8>().ok()).unwrap_or(0);
            Some(rsip::headers::auth::AuthQop::Auth {
                cnonce: p.get("cnonce").cloned().unwrap_or_default(),
                nc,
            })
        }
        None => None,
        Some(_) => return false,
    };
    let algorithm = match p
        .get("algorithm")
        .map(|a| a.to_ascii_uppercase())
        .as_deref()
    {
        None | Some("MD5") => rsip::headers::auth::Algorithm::Md5,
        Some("SHA-256") => rsip::headers::auth::Algorithm::Sha256,
        Some(_) => return false,
    };
    let expected = rsip::services::DigestGenerator {
        username: user,
        password,
        nonce,
        uri: &uri,
        realm,
        method: &method,
        qop: qop.as_ref(),
        algorithm,
    }
    .compute();
    // Not rsip's `verify`, which compares with `==`: how soon a wrong answer is refused must
    // not tell a client how much of it was right.
    expected.as_bytes().ct_eq(response.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_answer_verifies() {
        let c = Challenge::parse(
            "Digest realm=\"centre\", nonce=\"abc\", qop=\"auth,auth-int\", opaque=\"o\"",
        )
        .unwrap();
        assert!(c.qop_auth);
        let a = c
            .answer("REGISTER", "sip:centre.test", "unit", "pw", 1)
            .unwrap();
        assert!(verify_authorization(
            &a, "REGISTER", "centre", "abc", "unit", "pw"
        ));
        assert!(!verify_authorization(
            &a, "REGISTER", "centre", "abc", "unit", "wrong"
        ));
        let c = Challenge::parse("Digest realm=\"r\", nonce=\"n\"").unwrap();
        let a = c.answer("MESSAGE", "sip:arc@r", "u", "p", 1).unwrap();
        assert!(verify_authorization(&a, "MESSAGE", "r", "n", "u", "p"));
        assert!(!a.contains("qop"));
    }

    #[test]
    fn a_digest_answer_wrong_only_in_its_last_digit_is_refused() {
        let c = Challenge::parse("Digest realm=\"r\", nonce=\"n\"").unwrap();
        let a = c.answer("MESSAGE", "sip:arc@r", "u", "p", 1).unwrap();
        let response = auth_params(&a).1["response"].clone();
        let last = response.chars().last().unwrap();
        let mut wrong = response[..response.len() - 1].to_string();
        wrong.push(if last == '0' { '1' } else { '0' });
        let forged = a.replace(&response, &wrong);
        assert_ne!(forged, a);
        assert!(!verify_authorization(
            &forged, "MESSAGE", "r", "n", "u", "p"
        ));
    }

    #[test]
    fn sha256_is_preferred_and_verifies() {
        let md5 = r#"Digest realm="centre.test", nonce="abc", qop="auth", algorithm=MD5"#;
        let sha = r#"Digest realm="centre.test", nonce="abc", qop="auth", algorithm=SHA-256"#;
        let c = Challenge::pick([md5, sha]).unwrap();
        assert_eq!(c.algorithm.as_deref(), Some("SHA-256"));
        let answer = c
            .answer("REGISTER", "sip:centre.test", "u", "pw", 1)
            .unwrap();
        assert!(answer.contains("algorithm=SHA-256"), "{answer}");
        let response = auth_params(&answer).1["response"].clone();
        assert_eq!(response.len(), 64, "a SHA-256 digest: {answer}");
        assert!(verify_authorization(
            &answer,
            "REGISTER",
            "centre.test",
            "abc",
            "u",
            "pw"
        ));
        assert!(!verify_authorization(
            &answer,
            "REGISTER",
            "centre.test",
            "abc",
            "u",
            "px"
        ));
        // MD5 only when it is the only choice.
        let only = Challenge::pick([md5]).unwrap();
        assert!(only
            .answer("REGISTER", "sip:centre.test", "u", "pw", 1)
            .unwrap()
            .contains("algorithm=MD5"));
        let odd = r#"Digest realm="x", nonce="n", algorithm=SHA-512-256"#;
        assert!(Challenge::pick([odd]).is_none());
    }

    /// MD5 digest without qop (RFC 2617 §3.2.2.1), value computed independently with Python.
    #[test]
    fn digest_known_answer() {
        let c = Challenge {
            realm: "centre.test".into(),
            nonce: "4a1b2c3d".into(),
            ..Challenge::default()
        };
        let a = c
            .answer("REGISTER", "sip:centre.test", "unit", "secret", 1)
            .unwrap();
        let (_, p) = auth_params(&a);
        assert_eq!(
            p.get("response").map(String::as_str),
            Some("c8c5c413c02297bf097426b25e551f08")
        );
    }
}
