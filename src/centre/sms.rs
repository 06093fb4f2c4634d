//! The SMS route: alarm text out, authenticated reply back.
