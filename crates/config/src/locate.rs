//! Where every command finds the configuration, the one rule for all of them: the path given
//! with `--config`, else `$VIGIL_CONFIG`, else `/etc/vigil/config.toml` if it exists, else
//! `./config.toml` in the current folder.

use std::path::{Path, PathBuf};

/// The environment variable that names the configuration when `--config` is not given.
pub const CONFIG_ENV: &str = "VIGIL_CONFIG";

/// The installed unit's configuration.
pub const SYSTEM_CONFIG: &str = "/etc/vigil/config.toml";

/// The rule, as `vigil --help` states it.
pub const CONFIG_RULE: &str =
    "Each command reads its configuration from --config FILE, else $VIGIL_CONFIG, \
else /etc/vigil/config.toml if it exists, else ./config.toml; the journal, the control socket \
and the sounds are found through it.";

/// No configuration could be found by the rule.
#[derive(Debug, thiserror::Error)]
#[error(
    "no configuration found: neither {SYSTEM_CONFIG} nor ./config.toml exists; \
     pass --config FILE or set VIGIL_CONFIG"
)]
pub struct NotFound;

/// The configuration file to read: `explicit` (from `--config`) if given, else the rule.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, NotFound> {
    locate_with(
        explicit,
        std::env::var_os(CONFIG_ENV).map(PathBuf::from),
        Path::new(SYSTEM_CONFIG),
    )
}

fn locate_with(
    explicit: Option<&Path>,
    env: Option<PathBuf>,
    system: &Path,
) -> Result<PathBuf, NotFound> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = env.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(p);
    }
    if system.exists() {
        return Ok(system.to_path_buf());
    }
    let local = PathBuf::from("config.toml");
    if local.exists() {
        return Ok(local);
    }
    Err(NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_then_environment_then_system_then_local() {
        let dir = tempfile::tempdir().unwrap();
        let system = dir.path().join("etc-config.toml");
        let given = Path::new("/given.toml");
        let env = Some(PathBuf::from("/from-env.toml"));
        assert_eq!(
            locate_with(Some(given), env.clone(), &system).unwrap(),
            given
        );
        assert_eq!(
            locate_with(None, env, &system).unwrap(),
            Path::new("/from-env.toml")
        );
        std::fs::write(&system, "").unwrap();
        assert_eq!(
            locate_with(None, Some(PathBuf::new()), &system).unwrap(),
            system
        );
    }
}
