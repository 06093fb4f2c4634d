//! `secrets.toml`: the configuration's secrets, kept apart from `config.toml`.
//!
//! `config.toml` must be readable by the service's group and is often copied around; the
//! pendant keys, the DC-09 key, the credentials' secrets and the SIM PIN can live instead in
//! a file only root reads, which systemd hands to the service (`LoadCredential=`). The file
//! has the shape of `config.toml` restricted to those keys; each secret is merged into the
//! configuration tree where it belongs, keeping the span of the line it was written on, so
//! every problem with it is reported against `secrets.toml`. The file is optional: without
//! it every secret is in `config.toml`, as before.

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The secrets file's name, beside the configuration or in the service's credentials.
pub const SECRETS_FILE: &str = "secrets.toml";

/// The variable systemd sets to the folder of the credentials it loaded for the service.
pub const CREDENTIALS_ENV: &str = "CREDENTIALS_DIRECTORY";

/// Where the secrets for the configuration at `config` are read from: the service's
/// credentials folder when systemd gave one, else `secrets.toml` beside the configuration.
pub fn secrets_path(config: &Path) -> PathBuf {
    secrets_path_with(config, std::env::var_os(CREDENTIALS_ENV).map(PathBuf::from))
}

fn secrets_path_with(config: &Path, credentials: Option<PathBuf>) -> PathBuf {
    match credentials.filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.join(SECRETS_FILE),
        None => config.parent().unwrap_or(Path::new("")).join(SECRETS_FILE),
    }
}

/// What secrets.toml may hold, as its check says it.
const ALLOWED: &str = "[[pendant]] id and key, [[route]] name and key, [credentials.NAME] \
                       secret, [modem] sim_pin";

/// Where a problem found while merging is, and what it is.
pub(super) struct Found {
    pub span: Range<usize>,
    pub key: String,
    pub message: String,
}

/// A secret written in `config.toml`: its dotted key and where.
pub(super) struct Held {
    pub key: String,
    pub span: Range<usize>,
}

/// Every secret written in the configuration tree `root`.
pub(super) fn held_in(root: &DeTable<'_>) -> Vec<Held> {
    let mut out = Vec::new();
    for (array, secret) in [("pendant", "key"), ("route", "key")] {
        for (i, t) in tables_of(root, array).enumerate() {
            if let Some(v) = value(t, secret) {
                out.push(Held {
                    key: format!("{array}[{}].{secret}", i + 1),
                    span: v.span(),
                });
            }
        }
    }
    if let Some(DeValue::Table(creds)) = value(root, "credentials").map(Spanned::get_ref) {
        for (name, v) in creds.iter() {
            if let DeValue::Table(c) = v.get_ref() {
                if let Some(s) = value(c, "secret") {
                    out.push(Held {
                        key: format!("credentials.{}.secret", name.get_ref()),
                        span: s.span(),
                    });
                }
            }
        }
    }
    if let Some(DeValue::Table(m)) = value(root, "modem").map(Spanned::get_ref) {
        if let Some(pin) = value(m, "sim_pin") {
            out.push(Held {
                key: "modem.sim_pin".into(),
                span: pin.span(),
            });
        }
    }
    out
}

/// Moves every span in `v` by `by` bytes: the secrets file's offsets come after the
/// configuration's, so one span says which file and where.
pub(super) fn shift(v: Spanned<DeValue<'_>>, by: usize) -> Spanned<DeValue<'_>> {
    let span = v.span();
    let moved = match v.into_inner() {
        DeValue::Table(t) => DeValue::Table(shift_table(t, by)),
        DeValue::Array(a) => DeValue::Array(a.into_iter().map(|x| shift(x, by)).collect()),
        other => other,
    };
    Spanned::new(span.start + by..span.end + by, moved)
}

pub(super) fn shift_table(t: DeTable<'_>, by: usize) -> DeTable<'_> {
    let mut out = DeTable::new();
    for (k, v) in t {
        let ks = k.span();
        out.insert(
            Spanned::new(ks.start + by..ks.end + by, k.into_inner()),
            shift(v, by),
        );
    }
    out
}

/// Merges the secrets tree into the configuration tree. `config_at` names a place in
/// `config.toml` as `file:line:column` for the "given in both files" problem.
pub(super) fn merge<'i>(
    config: &mut DeTable<'i>,
    secrets: DeTable<'i>,
    config_at: &dyn Fn(&Range<usize>) -> String,
) -> Vec<Found> {
    let mut found = Vec::new();
    for (k, v) in secrets {
        let name = k.get_ref().to_string();
        match name.as_str() {
            "pendant" => merge_items(config, v, "pendant", "id", config_at, &mut found),
            "route" => merge_items(config, v, "route", "name", config_at, &mut found),
            "credentials" => merge_credentials(config, v, config_at, &mut found),
            "modem" => {
                let Some(secret) = table_of(&name, v, &mut found) else {
                    continue;
                };
                let target = table_in(config, "modem", k.span());
                merge_keys(
                    target,
                    secret,
                    &name,
                    &["sim_pin"],
                    "",
                    config_at,
                    &mut found,
                );
            }
            _ => found.push(Found {
                span: k.span(),
                key: name.clone(),
                message: if CONFIG_ROOT.contains(&name.as_str()) {
                    "not a secret; it belongs in config.toml. secrets.toml holds only: ".to_string()
                        + ALLOWED
                } else {
                    format!("unknown key; secrets.toml holds only: {ALLOWED}")
                },
            }),
        }
    }
    found
}

/// Top-level keys of config.toml, to tell "belongs in config.toml" from "unknown".
const CONFIG_ROOT: &[&str] = &[
    "unit",
    "alarm",
    "escalation",
    "supervision",
    "radio",
    "remote",
    "gpio",
    "audio",
    "fall",
    "data_dir",
];

/// `[[pendant]]` or `[[route]]` items, each naming the config.toml item by `ident`.
fn merge_items<'i>(
    config: &mut DeTable<'i>,
    v: Spanned<DeValue<'i>>,
    array: &str,
    ident: &str,
    config_at: &dyn Fn(&Range<usize>) -> String,
    found: &mut Vec<Found>,
) {
    let span = v.span();
    let DeValue::Array(items) = v.into_inner() else {
        found.push(Found {
            span,
            key: array.into(),
            message: format!("expected [[{array}]] tables"),
        });
        return;
    };
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("{array}[{}]", i + 1);
        let item_span = item.span();
        let Some(secret) = table_of(&path, item, found) else {
            continue;
        };
        let Some(wanted) = value(&secret, ident).map(|v| (v.get_ref().clone(), v.span())) else {
            found.push(Found {
                span: item_span,
                key: format!("{path}.{ident}"),
                message: format!(
                    "missing; the {ident} of the [[{array}]] in config.toml this secret belongs to"
                ),
            });
            continue;
        };
        let (DeValue::String(wanted), ident_span) = wanted else {
            found.push(Found {
                span: wanted.1,
                key: format!("{path}.{ident}"),
                message: format!("expected a string, the {ident} of a [[{array}]] in config.toml"),
            });
            continue;
        };
        let target = config_items(config, array)
            .enumerate()
            .find(|(i, t)| identity(t, array, *i).eq_ignore_ascii_case(&wanted));
        let Some((at, target)) = target else {
            let known: Vec<String> = config_items(config, array)
                .enumerate()
                .map(|(i, t)| identity(t, array, i))
                .collect();
            found.push(Found {
                span: ident_span,
                key: format!("{path}.{ident}"),
                message: format!(
                    "no [[{array}]] with {ident} `{wanted}` in config.toml; there: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            });
            continue;
        };
        let config_path = format!("{array}[{}]", at + 1);
        merge_keys(
            Some(target),
            secret,
            &config_path,
            &["key"],
            ident,
            config_at,
            found,
        );
    }
}

/// How secrets.toml names an item of config.toml: a pendant by its id, a route by its name
/// (or the name it gets when it has none, `kind-N`).
fn identity(t: &DeTable<'_>, array: &str, index: usize) -> String {
    let text = |key| match value(t, key).map(Spanned::get_ref) {
        Some(DeValue::String(s)) => Some(s.to_string()),
        _ => None,
    };
    match array {
        "route" => text("name")
            .unwrap_or_else(|| format!("{}-{}", text("kind").unwrap_or_default(), index + 1)),
        _ => text("id").unwrap_or_default(),
    }
}

fn merge_credentials<'i>(
    config: &mut DeTable<'i>,
    v: Spanned<DeValue<'i>>,
    config_at: &dyn Fn(&Range<usize>) -> String,
    found: &mut Vec<Found>,
) {
    let key_span = v.span();
    let Some(secret) = table_of("credentials", v, found) else {
        return;
    };
    let Some(creds) = table_in(config, "credentials", key_span) else {
        return;
    };
    for (name, v) in secret {
        let path = format!("credentials.{}", name.get_ref());
        let span = name.span();
        let Some(one) = table_of(&path, v, found) else {
            continue;
        };
        let target = table_in(creds, name.get_ref(), span);
        merge_keys(target, one, &path, &["secret"], "", config_at, found);
    }
}

/// Moves the `secrets` keys of one table into `target`. `ident` is the key that only names
/// the target; any other key is refused.
fn merge_keys<'i>(
    target: Option<&mut DeTable<'i>>,
    secret: DeTable<'i>,
    path: &str,
    secrets: &[&str],
    ident: &str,
    config_at: &dyn Fn(&Range<usize>) -> String,
    found: &mut Vec<Found>,
) {
    let Some(target) = target else {
        // config.toml has something else there; its own check reports it.
        return;
    };
    for (k, v) in secret {
        let name = k.get_ref().to_string();
        let key = format!("{path}.{name}");
        if name == ident {
            continue;
        }
        if !secrets.contains(&name.as_str()) {
            let others: &[&str] = match path.split(['[', '.']).next().unwrap_or("") {
                "pendant" => &["kind", "location", "zone"],
                "route" => &[
                    "kind",
                    "carries",
                    "attempt_timeout",
                    "receiver",
                    "protocol",
                    "receiver_number",
                    "line_prefix",
                    "key_format",
                    "payload",
                    "answer_timeout",
                    "link_test",
                ],
                "credentials" => &["username", "realm"],
                _ => &["port", "baud", "apn", "power_key_pin", "voice_port"],
            };
            let mut allowed: Vec<&str> = secrets.to_vec();
            if !ident.is_empty() {
                allowed.insert(0, ident);
            }
            found.push(Found {
                span: k.span(),
                key,
                message: if others.contains(&name.as_str()) {
                    format!(
                        "not a secret; it belongs in config.toml. Allowed here: {}",
                        allowed.join(", ")
                    )
                } else {
                    format!("unknown key; allowed here: {}", allowed.join(", "))
                },
            });
            continue;
        }
        if let Some(there) = value(target, &name) {
            found.push(Found {
                span: v.span(),
                key,
                message: format!(
                    "given in both files: also at {}; keep it in secrets.toml only",
                    config_at(&there.span())
                ),
            });
            continue;
        }
        target.insert(k, v);
    }
}

/// The table `name` in `parent`, made if absent (with `span`, where secrets.toml made it);
/// `None` if config.toml has something other than a table there.
fn table_in<'t, 'i>(
    parent: &'t mut DeTable<'i>,
    name: &str,
    span: Range<usize>,
) -> Option<&'t mut DeTable<'i>> {
    if value(parent, name).is_none() {
        parent.insert(
            Spanned::new(span.clone(), Cow::Owned(name.to_string())),
            Spanned::new(span, DeValue::Table(DeTable::new())),
        );
    }
    match parent.get_mut(name).map(Spanned::get_mut) {
        Some(DeValue::Table(t)) => Some(t),
        _ => None,
    }
}

/// `v` as a table, or a problem at `path`.
fn table_of<'i>(
    path: &str,
    v: Spanned<DeValue<'i>>,
    found: &mut Vec<Found>,
) -> Option<DeTable<'i>> {
    let span = v.span();
    match v.into_inner() {
        DeValue::Table(t) => Some(t),
        other => {
            found.push(Found {
                span,
                key: path.to_string(),
                message: format!("expected a table, found {}", other.type_str()),
            });
            None
        }
    }
}

fn value<'a, 'i>(t: &'a DeTable<'i>, name: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    t.get(name)
}

fn tables_of<'a, 'i>(root: &'a DeTable<'i>, array: &str) -> impl Iterator<Item = &'a DeTable<'i>> {
    let items: &[Spanned<DeValue<'i>>] = match value(root, array).map(Spanned::get_ref) {
        Some(DeValue::Array(a)) => a,
        _ => &[],
    };
    items.iter().filter_map(|i| match i.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => None,
    })
}

fn config_items<'a, 'i>(
    root: &'a mut DeTable<'i>,
    array: &str,
) -> impl Iterator<Item = &'a mut DeTable<'i>> {
    let items: &mut [Spanned<DeValue<'i>>] = match root.get_mut(array).map(Spanned::get_mut) {
        Some(DeValue::Array(a)) => a,
        _ => &mut [],
    };
    items.iter_mut().filter_map(|i| match i.get_mut() {
        DeValue::Table(t) => Some(t),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_folder_first_then_beside_the_configuration() {
        let config = Path::new("/etc/vigil/config.toml");
        assert_eq!(
            secrets_path_with(
                config,
                Some(PathBuf::from("/run/credentials/vigil.service"))
            ),
            Path::new("/run/credentials/vigil.service/secrets.toml")
        );
        assert_eq!(
            secrets_path_with(config, None),
            Path::new("/etc/vigil/secrets.toml")
        );
        assert_eq!(
            secrets_path_with(Path::new("config.toml"), Some(PathBuf::new())),
            Path::new("secrets.toml")
        );
    }
}
