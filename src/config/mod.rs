//! The installer's `config.toml` and its `secrets.toml`: typed model, loading and validation.

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
