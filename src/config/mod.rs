//! The installer's `config.toml`: typed model, loading and validation.

mod load;
mod locate;
mod model;

pub use load::{format_duration, is_e164, load, parse, parse_duration, ConfigError, Problem};
pub use locate::{locate, NotFound, CONFIG_ENV, CONFIG_RULE, SYSTEM_CONFIG};
pub use model::*;
