//! SCAIP (SS 91100) over SIP: REGISTER, MESSAGE with `<mrq>`, `<mrs>` answers.
