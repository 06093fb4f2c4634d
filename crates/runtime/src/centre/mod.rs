//! Routes to whoever must hear the alarm. The simulated receivers live in the `vigil-sim` crate.
//!
//! IP routes: SCAIP over SIP and SIA DC-09. Cellular routes (SMS, Contact ID over a voice
//! call, voice call to a person) drive the modem from [`crate::modem`].

pub mod contact_id;
pub mod dc09;
pub mod scaip;
pub mod sms;
pub mod voice_call;
