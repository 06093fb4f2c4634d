//! Numbers the modem may dial: the only thing `ATD` takes.
//!
//! 3GPP TS 27.007 §6.2 (`ATD<n>;`) allows `0-9 * # + A B C D` and a few modifiers in the
//! dial string; anything else (CR, `;`, `AT…`) would let whoever chose the number run
//! commands on the module. A [`DialNumber`] holds only `+` (first), digits, `*` and `#`, at
//! most [`DialNumber::MAX_LEN`] characters, so a number from a centre, a config file or an
//! SMS cannot carry a second command.

use std::fmt;

/// Why a string is not a number the modem may dial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Nothing to dial.
    #[error("empty number")]
    Empty,
    /// Longer than a dial string may be.
    #[error("number longer than {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// A character outside `+`, digits, `*`, `#` (or `+` not first).
    #[error("character {0:?} not allowed in a number to dial")]
    Character(char),
    /// Not the call-back scheme this unit dials (`gsm:`, `tel:` or a bare number).
    #[error("scheme {0:?} cannot be dialled by the modem")]
    Scheme(String),
    /// A call-back number not on `remote.allowed_numbers`.
    #[error("call-back number {0} is not an allowed number")]
    NotAllowed(DialNumber),
}

/// A checked dial string: `+` (first only), `0-9`, `*`, `#`; 1 to 20 characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DialNumber(String);

impl DialNumber {
    /// Longest dial string accepted (E.164 is at most 15 digits plus `+`; room for codes).
    pub const MAX_LEN: usize = 20;

    /// Checks `s` as a number to dial; nothing is trimmed or dropped.
    pub fn parse(s: &str) -> Result<Self, NumberError> {
        if s.is_empty() {
            return Err(NumberError::Empty);
        }
        for (i, c) in s.chars().enumerate() {
            let ok = c.is_ascii_digit() || c == '*' || c == '#' || (c == '+' && i == 0);
            if !ok {
                return Err(NumberError::Character(c));
            }
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err(NumberError::TooLong { max: Self::MAX_LEN });
        }
        if s == "+" {
            return Err(NumberError::Empty);
        }
        Ok(Self(s.to_string()))
    }

    /// Checks a call-back address from a centre (SCAIP `tnu`/`crd`: `gsm:` or `tel:` scheme,
    /// or a bare number); `sip:` and others are not numbers the modem can dial.
    pub fn parse_callback(s: &str) -> Result<Self, NumberError> {
        let bare = match s.split_once(':') {
            Some((scheme, rest))
                if scheme.eq_ignore_ascii_case("gsm") || scheme.eq_ignore_ascii_case("tel") =>
            {
                rest
            }
            Some((scheme, _)) => return Err(NumberError::Scheme(scheme.to_string())),
            None => s,
        };
        Self::parse(bare)
    }

    /// The dial string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DialNumber({})", self.0)
    }
}

/// Whether two subscriber numbers are the same: exact equality after removing spaces,
/// with both in international `+` form. A national or truncated form never matches an
/// international one, so `999701111111` or `X701111111` is not `+46701111111`.
pub fn same_number(a: &str, b: &str) -> bool {
    let clean = |s: &str| s.chars().filter(|c| *c != ' ').collect::<String>();
    let (a, b) = (clean(a), clean(b));
    let e164 = |s: &str| {
        s.strip_prefix('+').is_some_and(|d| {
            !d.is_empty() && d.len() <= 15 && d.chars().all(|c| c.is_ascii_digit())
        })
    };
    e164(&a) && e164(&b) && a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers_and_codes_are_accepted() {
        for s in ["+46700000020", "112", "*31#0701234567", "0701234567"] {
            assert_eq!(DialNumber::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn injected_commands_are_refused() {
        assert_eq!(
            DialNumber::parse("+46700000020;\rAT+CFUN=0;"),
            Err(NumberError::Character(';'))
        );
        assert_eq!(
            DialNumber::parse("+4670\n"),
            Err(NumberError::Character('\n'))
        );
        assert_eq!(DialNumber::parse("46+70"), Err(NumberError::Character('+')));
        assert_eq!(DialNumber::parse(""), Err(NumberError::Empty));
        assert_eq!(DialNumber::parse("+"), Err(NumberError::Empty));
        assert_eq!(
            DialNumber::parse("+123456789012345678901"),
            Err(NumberError::TooLong { max: 20 })
        );
    }

    #[test]
    fn callback_schemes() {
        assert_eq!(
            DialNumber::parse_callback("gsm:+46701234567")
                .unwrap()
                .as_str(),
            "+46701234567"
        );
        assert_eq!(
            DialNumber::parse_callback("sip:alice@example.org"),
            Err(NumberError::Scheme("sip".into()))
        );
        assert!(DialNumber::parse_callback("gsm:+4670;ATH").is_err());
    }

    #[test]
    fn numbers_match_exactly() {
        assert!(same_number("+46701111111", "+46701111111"));
        assert!(same_number("+46 70 111 11 11", "+46701111111"));
        assert!(!same_number("999701111111", "+46701111111"));
        assert!(!same_number("X701111111", "+46701111111"));
        assert!(!same_number("0701111111", "+46701111111"));
        assert!(!same_number("+146701111111", "+46701111111"));
        assert!(!same_number("", ""));
    }
}
