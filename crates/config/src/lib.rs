//! The installer's `config.toml` and its `secrets.toml`: typed model, loading and validation.
//!
//! Below the adapters and the runtime, above the alarm core: the configuration names the core's
//! types (devices, routes) and builds the core's [`Settings`](vigil_core::Settings).

// Bad input and broken invariants are handled, not panicked on. Tests may still unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

/// The core's types, under the name the rest of the unit uses for them.
use vigil_core as core;

mod core_settings;

mod load;
mod locate;
mod model;
mod secrets;

pub use load::{
    format_duration, is_e164, load, parse, parse_duration, parse_with_secrets, ConfigError, Problem,
};
pub use locate::{locate, NotFound, CONFIG_ENV, CONFIG_RULE, SYSTEM_CONFIG};
pub use model::*;
pub use secrets::{secrets_path, CREDENTIALS_ENV, SECRETS_FILE};
