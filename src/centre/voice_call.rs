//! The voice-call route: call a person, announce the alarm, accept on a key press.
