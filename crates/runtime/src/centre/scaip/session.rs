//! One alarm's SCAIP session, decided without IO: what an exchange's `<mrs>` (or its absence)
//! means for the alarm and for the session the centre may still hold.
//!
//! The route ([`super::ScaipLink`]) sends the `<mrq>` and waits; [`after_exchange`] says what
//! comes of it, and the route carries that out: record a hold, end the session, send
//! `mty=RE`, report the delivery.

use std::time::{Duration, Instant};

use vigil_wire::scaip::{snu_meaning, Mrs};

/// Why an `<mrq>` got no `<mrs>`: what the route does next depends on which.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The MESSAGE carrying it was not sent, or the proxy or centre did not accept it.
    #[error("{0}")]
    NotDelivered(String),
    /// The centre accepted the MESSAGE but sent no `<mrs>` in time, so it may hold a session
    /// the unit has given up on: the unit resets it (mty=RE).
    #[error("no <mrs> from {receiver} within {within:?}")]
    NoMrs {
        /// The centre's URI.
        receiver: String,
        /// How long the unit waited.
        within: Duration,
    },
}

/// Where the centre wants the voice call it asks for with `mre`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallBack {
    /// The address in `tnu` (with `cre` 62, or no `cre`).
    Requested(String),
    /// The predefined receiver (`cre` 61, a call-back window, or no `tnu`).
    Predefined,
}

/// Why an attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No `<mrs>` came.
    Exchange(ExchangeError),
    /// The centre kept the session on hold (`snu=4`) longer than the route allows.
    HeldTooLong(Duration),
    /// The centre answered with an error status.
    ReceiverError(u16),
}

impl Failure {
    /// The reason the journal and `vigil status` show, for the session `reference`; `reset`
    /// says whether the centre was told to drop it.
    pub fn reason(&self, reference: &str, reset: bool) -> String {
        let text = match self {
            Failure::Exchange(e) => e.to_string(),
            Failure::HeldTooLong(limit) => {
                format!("SCAIP receiver kept ref {reference} on hold (snu=4) longer than {limit:?}")
            }
            Failure::ReceiverError(snu) => {
                format!("SCAIP receiver error snu={snu}: {}", snu_meaning(*snu))
            }
        };
        match (self, reset) {
            (Failure::Exchange(_), true) => format!("{text}; sent mty=RE for ref {reference}"),
            (_, true) => format!("{text}; sent mty=RE"),
            (_, false) => text,
        }
    }
}

/// What the route does once an exchange about an alarm has ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `snu=0`: delivered; the session ends, and the centre may ask for a call.
    Acked {
        /// The call the centre asks for, if it does (`mre` ≥ 1).
        call_back: Option<CallBack>,
    },
    /// `snu=4`: the centre holds the alarm; resend with the same ref later. `since` is when
    /// the hold began (kept across resends).
    Hold {
        /// When the centre first put the session on hold.
        since: Instant,
    },
    /// `snu` 5 or 6: the centre did not treat it or is busy; the session ends and the core
    /// moves on.
    Declined {
        /// The status.
        snu: u16,
    },
    /// The attempt failed and the session ends.
    Failed {
        /// Why.
        failure: Failure,
        /// Whether the centre must be told to drop the session (`mty=RE`) first: it may be
        /// holding one the unit has given up on.
        reset: bool,
    },
}

/// What comes of an exchange: its `<mrs>` or why there was none, the time the session went
/// on hold if it did, the time now and the route's hold limit.
pub fn after_exchange(
    outcome: Result<&Mrs, &ExchangeError>,
    held_since: Option<Instant>,
    now: Instant,
    hold_limit: Duration,
) -> Step {
    let mrs = match outcome {
        Ok(mrs) => mrs,
        Err(e) => {
            return Step::Failed {
                reset: matches!(e, ExchangeError::NoMrs { .. }),
                failure: Failure::Exchange(e.clone()),
            }
        }
    };
    match mrs.snu {
        0 => Step::Acked {
            call_back: (mrs.mre.unwrap_or(0) >= 1).then(|| match (&mrs.tnu, mrs.cre) {
                (Some(tnu), None | Some(62)) => CallBack::Requested(tnu.clone()),
                _ => CallBack::Predefined,
            }),
        },
        4 => match held_since {
            Some(since) if now.saturating_duration_since(since) >= hold_limit => Step::Failed {
                failure: Failure::HeldTooLong(hold_limit),
                reset: true,
            },
            Some(since) => Step::Hold { since },
            None => Step::Hold { since: now },
        },
        5 | 6 => Step::Declined { snu: mrs.snu },
        n => Step::Failed {
            failure: Failure::ReceiverError(n),
            reset: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(600);

    fn mrs(snu: u16) -> Mrs {
        Mrs {
            reference: "R1".into(),
            snu,
            mre: None,
            cre: None,
            tnu: None,
            hbi: None,
        }
    }

    #[test]
    fn an_ok_ends_the_session_and_says_which_call_the_centre_wants() {
        let t = Instant::now();
        let step = |m: &Mrs| after_exchange(Ok(m), None, t, LIMIT);
        assert_eq!(step(&mrs(0)), Step::Acked { call_back: None });
        let tnu = Mrs {
            mre: Some(1),
            tnu: Some("gsm:+46701234567".into()),
            ..mrs(0)
        };
        assert_eq!(
            step(&tnu),
            Step::Acked {
                call_back: Some(CallBack::Requested("gsm:+46701234567".into()))
            }
        );
        assert_eq!(
            step(&Mrs {
                cre: Some(62),
                ..tnu.clone()
            }),
            step(&tnu)
        );
        for predefined in [
            Mrs {
                cre: Some(61),
                ..tnu.clone()
            },
            Mrs {
                cre: Some(30),
                ..tnu.clone()
            },
            Mrs {
                tnu: None,
                ..tnu.clone()
            },
        ] {
            assert_eq!(
                step(&predefined),
                Step::Acked {
                    call_back: Some(CallBack::Predefined)
                },
                "{predefined:?}"
            );
        }
        // mre 0: no call, whatever tnu says.
        assert_eq!(
            step(&Mrs {
                mre: Some(0),
                ..tnu
            }),
            Step::Acked { call_back: None }
        );
    }

    #[test]
    fn a_hold_keeps_its_start_until_the_limit_then_resets() {
        let t0 = Instant::now();
        assert_eq!(
            after_exchange(Ok(&mrs(4)), None, t0, LIMIT),
            Step::Hold { since: t0 }
        );
        let later = t0 + Duration::from_secs(300);
        assert_eq!(
            after_exchange(Ok(&mrs(4)), Some(t0), later, LIMIT),
            Step::Hold { since: t0 }
        );
        let step = after_exchange(Ok(&mrs(4)), Some(t0), t0 + LIMIT, LIMIT);
        assert_eq!(
            step,
            Step::Failed {
                failure: Failure::HeldTooLong(LIMIT),
                reset: true
            }
        );
        let Step::Failed { failure, reset } = step else {
            unreachable!()
        };
        assert_eq!(
            failure.reason("AB12", reset),
            "SCAIP receiver kept ref AB12 on hold (snu=4) longer than 600s; sent mty=RE"
        );
    }

    #[test]
    fn busy_and_not_treated_are_declined_other_statuses_reset() {
        let t = Instant::now();
        for snu in [5, 6] {
            assert_eq!(
                after_exchange(Ok(&mrs(snu)), None, t, LIMIT),
                Step::Declined { snu }
            );
        }
        for snu in [1, 2, 3, 7, 10, 99] {
            assert_eq!(
                after_exchange(Ok(&mrs(snu)), None, t, LIMIT),
                Step::Failed {
                    failure: Failure::ReceiverError(snu),
                    reset: true
                }
            );
        }
        assert_eq!(
            Failure::ReceiverError(2).reason("X", true),
            "SCAIP receiver error snu=2: invalid format; sent mty=RE"
        );
    }

    #[test]
    fn only_a_missing_mrs_resets_a_session_the_centre_may_hold() {
        let t = Instant::now();
        let no_mrs = ExchangeError::NoMrs {
            receiver: "sip:arc@centre".into(),
            within: Duration::from_secs(10),
        };
        let step = after_exchange(Err(&no_mrs), None, t, LIMIT);
        assert_eq!(
            step,
            Step::Failed {
                failure: Failure::Exchange(no_mrs.clone()),
                reset: true
            }
        );
        assert_eq!(
            Failure::Exchange(no_mrs).reason("R9", true),
            "no <mrs> from sip:arc@centre within 10s; sent mty=RE for ref R9"
        );
        let refused = ExchangeError::NotDelivered(
            "SCAIP MESSAGE to sip:arc@centre refused: 403 Forbidden".into(),
        );
        assert_eq!(
            after_exchange(Err(&refused), None, t, LIMIT),
            Step::Failed {
                failure: Failure::Exchange(refused.clone()),
                reset: false
            }
        );
        assert_eq!(
            Failure::Exchange(refused).reason("R9", false),
            "SCAIP MESSAGE to sip:arc@centre refused: 403 Forbidden"
        );
    }
}
