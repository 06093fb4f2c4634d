//! The installer's `config.toml`: typed model, loading and validation.

mod model;
pub use model::*;
