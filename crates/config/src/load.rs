//! Reading `config.toml` into [`Config`], reporting every mistake at once.
//!
//! The file is parsed into a spanned TOML tree (`toml::de::DeTable`), then walked table by
//! table. Each problem becomes a [`Problem`] that names the file, line, column and key, says what
//! is wrong and what is allowed. Nothing here panics on any input.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::model::*;
use crate::core::{DeviceId, DeviceKind};

/// One mistake in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted key path, e.g. `pendant[2].key`.
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.key,
            self.message
        )
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The path is not a regular file (a directory, FIFO, device…); it is never read.
    #[error("{}: not a regular file; give the path of the configuration file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is larger than any configuration; it is not read to the end.
    #[error("{}: larger than {} bytes: this is not a configuration file", path.display(), MAX_CONFIG_BYTES)]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not UTF-8 text.
    #[error("{}:{line}:{column}: the file is not UTF-8 text (a byte that is not UTF-8 here); save it as UTF-8", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
        /// Line of the first byte that is not UTF-8, from 1.
        line: usize,
        /// Its column in bytes, from 1.
        column: usize,
    },
    /// The file has mistakes; all of them are listed.
    #[error("{}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

/// Reads and validates the configuration at `path`, with its secrets from
/// [`secrets_path`](super::secrets_path) when that file exists.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read_text(path)?;
    let secrets_file = super::secrets_path(path);
    let secrets = match std::fs::symlink_metadata(&secrets_file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        _ => Some((read_text(&secrets_file)?, secrets_file)),
    };
    // Only the service's group should read a file with secrets in it.
    let others_read = std::fs::metadata(path)
        .map(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.permissions().mode() & 0o004 != 0
        })
        .unwrap_or(false);
    parse_files(
        &text,
        path,
        secrets.as_ref().map(|(t, p)| (t.as_str(), p.as_path())),
        others_read,
    )
}

/// No configuration comes near this size; a larger file is refused before it is read.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads the configuration file as text: only a regular file (never blocks on a FIFO or reads
/// a device without end), at most [`MAX_CONFIG_BYTES`], UTF-8 with the first bad byte located.
fn read_text(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if !meta.is_file() {
        return Err(ConfigError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read_error)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = e
            .as_bytes()
            .get(..e.utf8_error().valid_up_to())
            .unwrap_or(&[]);
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        ConfigError::NotText {
            path: path.to_path_buf(),
            line: good.iter().filter(|&&b| b == b'\n').count() + 1,
            column: good.len() - line_start + 1,
        }
    })
}

/// Validates configuration `text`, naming `file` in problems.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    parse_files(text, file, None, false)
}

/// Validates configuration `text` with the secrets file's `secrets` text, naming `file` or
/// `secrets_file` in each problem, as its place is in one or the other.
pub fn parse_with_secrets(
    text: &str,
    file: &Path,
    secrets: &str,
    secrets_file: &Path,
) -> Result<Config, ConfigError> {
    parse_files(text, file, Some((secrets, secrets_file)), false)
}

/// The configuration, merged with its secrets if any. `others_read`: the configuration file
/// can be read by every user, so secrets in it are a warning.
fn parse_files(
    text: &str,
    file: &Path,
    secrets: Option<(&str, &Path)>,
    others_read: bool,
) -> Result<Config, ConfigError> {
    let mut cx = Cx {
        config: Source {
            text,
            file,
            start: 0,
        },
        secrets: None,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let (mut root, parse_errors) = DeTable::parse_recoverable(text);
    let mut syntax_ok = parse_errors.is_empty();
    for e in &parse_errors {
        let span = e.span().unwrap_or(0..0);
        cx.problem(&span, "(syntax)", e.message().trim().to_string());
    }
    let held = super::secrets::held_in(root.get_ref());
    if let Some((secrets_text, secrets_file)) = secrets {
        // The secrets file's offsets follow the configuration's: one span names either.
        let start = text.len() + 1;
        cx.secrets = Some(Source {
            text: secrets_text,
            file: secrets_file,
            start,
        });
        let (secret_root, errors) = DeTable::parse_recoverable(secrets_text);
        for e in &errors {
            let span = e.span().unwrap_or(0..0);
            cx.problem(
                &(span.start + start..span.end + start),
                "(syntax)",
                e.message().trim().to_string(),
            );
        }
        syntax_ok &= errors.is_empty();
        if syntax_ok {
            let secret_root = super::secrets::shift_table(secret_root.into_inner(), start);
            let config_at = |span: &Range<usize>| {
                let p = cx.at(span, "", "");
                format!("{}:{}:{}", p.file.display(), p.line, p.column)
            };
            let found = super::secrets::merge(root.get_mut(), secret_root, &config_at);
            for f in found {
                cx.problem(&f.span, &f.key, f.message);
            }
        }
    }
    if others_read && !held.is_empty() {
        let keys: Vec<&str> = held.iter().map(|h| h.key.as_str()).collect();
        cx.warning(
            &held[0].span,
            &held[0].key,
            format!(
                "{} can be read by every user and holds secrets ({}); move them to {} \
                 (mode 0600) or make this file unreadable to others (`chmod o-r`)",
                file.display(),
                keys.join(", "),
                super::secrets_path(file).display()
            ),
        );
    }
    let config = if syntax_ok {
        read_config(&mut cx, &root)
    } else {
        None
    };
    match config {
        Some(mut c) if cx.problems.is_empty() => {
            c.warnings = cx.warnings;
            Ok(c)
        }
        _ => {
            let mut problems = cx.problems;
            // The configuration's problems first, then the secrets file's, each in file order.
            problems.sort_by_key(|p| (p.file != file, p.line, p.column));
            problems.dedup();
            if problems.is_empty() {
                problems.push(Problem {
                    file: file.to_path_buf(),
                    line: 1,
                    column: 1,
                    key: "(file)".into(),
                    message: "the configuration is incomplete".into(),
                });
            }
            Err(ConfigError::Invalid { problems })
        }
    }
}

/// SHA-256 fingerprints (of the lower-cased text) of every key and secret published in this
/// repository: the example `config.toml`'s, the simulated site's and the demo's. A unit that
/// uses one is open to anyone who reads the repository. Only fingerprints are kept here.
const PUBLISHED: &[&str] = &[
    "79051a17619e09e529088eeca09738b7c21d4ca77fdae624786cb631a66cf2c1",
    "b755ed18185d0448746c865d67220151f3a451b5e0cb6aa149aa2cac9448a426",
    "d65df89f702eec58ca3c7bf2001c9ffc7cd80553ae01d42a799ba26756142d96",
    "a7b5cbe8465995444036d61fb5ea6813730e35e775b4dff97df721503a9d99e4",
    "675749653680d3470b5981974b382a04702bc68950e3aadfbfd1429e16c95b7b",
    "22a995dae038a5daec6eca44b12fb7059816761c92b33bbe95cf756c2c3d39d2",
    "41bd876b085d6031cb0e04de35b88d77f83a4ba39f879fee40805ac19e356023",
    "cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf",
    "c4246ccb9687896438cafce4e4544f912512a7d8d1d0b9b4b1a0cdbebe6adb99",
    "e6f9b3f29c555b87050b8449e26d8998b850c91e630088c3af8656eea4b1c816",
    "7e5785c0f43e40f836ffcd62e986ba2ef5b301ab956d26bb9b4ac861c664e7e3",
];

/// Warns when `value`, a key or secret, is one published in the repository, or still the
/// example's `change-me` placeholder.
fn published(cx: &mut Cx<'_>, span: &Range<usize>, key: &str, value: &str) {
    let digest = ring::digest::digest(&ring::digest::SHA256, value.to_lowercase().as_bytes());
    if PUBLISHED.contains(&hex::encode(digest.as_ref()).as_str()) {
        cx.warning(
            span,
            key,
            "published in the Vigil repository (an example or the demo): anyone can read it; \
             generate your own (`openssl rand -hex 32` for a pendant key, `openssl rand -hex 16` \
             for a secret)",
        );
    } else if value.starts_with("change-me") {
        cx.warning(
            span,
            key,
            "still the example's placeholder; set the real value",
        );
    }
}

/// One file of the configuration, and where its offsets start in the spans of the merged
/// tree.
struct Source<'a> {
    text: &'a str,
    file: &'a Path,
    start: usize,
}

/// The walk's context: the sources for line numbers and the problems found so far.
struct Cx<'a> {
    /// `config.toml`.
    config: Source<'a>,
    /// `secrets.toml`, if there is one.
    secrets: Option<Source<'a>>,
    problems: Vec<Problem>,
    /// Settings that work but that an installer should change (they do not stop the unit).
    warnings: Vec<Problem>,
}

impl Cx<'_> {
    fn at(&self, span: &Range<usize>, key: &str, message: impl Into<String>) -> Problem {
        let source = match &self.secrets {
            Some(s) if span.start >= s.start => s,
            _ => &self.config,
        };
        let start = (span.start - source.start).min(source.text.len());
        let before = source.text.get(..start).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Problem {
            file: source.file.to_path_buf(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn problem(&mut self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        let p = self.at(span, key, message);
        self.problems.push(p);
    }

    fn warning(&mut self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        let p = self.at(span, key, message);
        self.warnings.push(p);
    }
}

/// A table being read, with its dotted path and span, and the keys it allows.
struct Table<'a, 'i> {
    map: &'a DeTable<'i>,
    path: String,
    span: Range<usize>,
}

impl<'a, 'i> Table<'a, 'i> {
    fn key(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.path, name)
        }
    }

    fn value(&self, name: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.map
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == name)
            .map(|(_, v)| v)
    }

    /// Reports every key not in `allowed`.
    fn check_keys(&self, cx: &mut Cx<'_>, allowed: &[&str]) {
        for (k, _) in self.map.iter() {
            let name: &str = k.get_ref().as_ref();
            if !allowed.contains(&name) {
                cx.problem(
                    &k.span(),
                    &self.key(name),
                    format!("unknown key; allowed here: {}", allowed.join(", ")),
                );
            }
        }
    }

    fn sub(&self, cx: &mut Cx<'_>, name: &str) -> Option<Table<'a, 'i>> {
        let v = self.value(name)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Table {
                map: t,
                path: self.key(name),
                span: v.span(),
            }),
            other => {
                cx.problem(
                    &v.span(),
                    &self.key(name),
                    format!("expected a table, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn string(&self, cx: &mut Cx<'_>, name: &str) -> Option<(String, Range<usize>)> {
        let v = self.value(name)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span())),
            other => {
                cx.problem(
                    &v.span(),
                    &self.key(name),
                    format!("expected a string, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn required_string(
        &self,
        cx: &mut Cx<'_>,
        name: &str,
        what: &str,
    ) -> Option<(String, Range<usize>)> {
        if self.value(name).is_none() {
            cx.problem(&self.span, &self.key(name), format!("missing; {what}"));
            return None;
        }
        self.string(cx, name)
    }

    /// A required string that must pass `valid`; otherwise a problem worded by `wrong`.
    fn required_valid(
        &self,
        cx: &mut Cx<'_>,
        name: &str,
        what: &str,
        valid: impl Fn(&str) -> bool,
        wrong: impl Fn(&str) -> String,
    ) -> Option<String> {
        let (s, span) = self.required_string(cx, name, what)?;
        if valid(&s) {
            Some(s)
        } else {
            cx.problem(&span, &self.key(name), wrong(&s));
            None
        }
    }

    fn integer(
        &self,
        cx: &mut Cx<'_>,
        name: &str,
        range: Range<i64>,
    ) -> Option<(i64, Range<usize>)> {
        let v = self.value(name)?;
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => {
                let digits = i.as_str().replace('_', "");
                i64::from_str_radix(&digits, i.radix()).ok()
            }
            other => {
                cx.problem(
                    &v.span(),
                    &self.key(name),
                    format!("expected an integer, found {}", other.type_str()),
                );
                return None;
            }
        };
        match parsed {
            Some(n) if range.contains(&n) => Some((n, v.span())),
            _ => {
                cx.problem(
                    &v.span(),
                    &self.key(name),
                    format!(
                        "out of range; allowed: {} to {}",
                        range.start,
                        range.end - 1
                    ),
                );
                None
            }
        }
    }

    /// A duration such as "30s", "10m", "1h30m"; `None` if absent or wrong (reported).
    fn duration(
        &self,
        cx: &mut Cx<'_>,
        name: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let (text, span) = self.string_or_number_hint(cx, name)?;
        match parse_duration(&text) {
            Some(d) if d >= min && d <= max => Some(d),
            Some(_) => {
                cx.problem(
                    &span,
                    &self.key(name),
                    format!(
                        "`{text}` is out of range; allowed: {} to {}",
                        format_duration(min),
                        format_duration(max)
                    ),
                );
                None
            }
            None => {
                cx.problem(
                    &span,
                    &self.key(name),
                    format!("`{text}` is not a duration; write it like \"30s\", \"10m\", \"24h\" or \"1h30m\""),
                );
                None
            }
        }
    }

    fn string_or_number_hint(&self, cx: &mut Cx<'_>, name: &str) -> Option<(String, Range<usize>)> {
        let v = self.value(name)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span())),
            DeValue::Integer(i) => {
                cx.problem(
                    &v.span(),
                    &self.key(name),
                    format!(
                        "a duration needs a unit; write \"{}s\" for seconds or \"{}m\" for minutes",
                        i.as_str(),
                        i.as_str()
                    ),
                );
                None
            }
            other => {
                cx.problem(
                    &v.span(),
                    &self.key(name),
                    format!(
                        "expected a duration string like \"30s\", found {}",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    /// The items of the array `name` with their key paths (`name[1]`, …), or a problem if
    /// `name` is not an array; `what` names what the array should hold.
    fn items(
        &self,
        cx: &mut Cx<'_>,
        name: &str,
        what: &str,
    ) -> Vec<(String, &'a Spanned<DeValue<'i>>)> {
        let Some(v) = self.value(name) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            cx.problem(
                &v.span(),
                &self.key(name),
                format!("expected {what}, found {}", v.get_ref().type_str()),
            );
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("{}[{}]", self.key(name), i + 1), item))
            .collect()
    }

    /// Array of tables, e.g. `[[pendant]]`.
    fn tables(&self, cx: &mut Cx<'_>, name: &str) -> Vec<Table<'a, 'i>> {
        let mut out = Vec::new();
        for (path, item) in self.items(cx, name, &format!("[[{name}]] tables")) {
            match item.get_ref() {
                DeValue::Table(t) => out.push(Table {
                    map: t,
                    path,
                    span: item.span(),
                }),
                other => cx.problem(
                    &item.span(),
                    &path,
                    format!("expected a table, found {}", other.type_str()),
                ),
            }
        }
        out
    }

    fn strings(&self, cx: &mut Cx<'_>, name: &str) -> Vec<(String, Range<usize>)> {
        let mut out = Vec::new();
        for (path, item) in self.items(cx, name, "a list of strings") {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span())),
                other => cx.problem(
                    &item.span(),
                    &path,
                    format!("expected a string, found {}", other.type_str()),
                ),
            }
        }
        out
    }
}

/// Parses "30s", "10m", "2h", "1h30m", "500ms", "1d".
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest.get(..unit_len)?;
        rest = rest.get(unit_len..)?;
        let factor = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        total_ms = total_ms.checked_add(n.checked_mul(factor)?)?;
    }
    Some(Duration::from_millis(total_ms))
}

pub use crate::core::format_duration;

/// Whether `s` is an E.164 number: `+`, then 8 to 15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
}

const E164_HELP: &str = "write phone numbers in E.164 form: + then country code and number, 8 to 15 digits, e.g. \"+46701234567\"";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn read_config(cx: &mut Cx<'_>, root: &Spanned<DeTable<'_>>) -> Option<Config> {
    let root = Table {
        map: root.get_ref(),
        path: String::new(),
        span: 0..0,
    };
    root.check_keys(
        cx,
        &[
            "unit",
            "pendant",
            "alarm",
            "escalation",
            "route",
            "credentials",
            "supervision",
            "radio",
            "modem",
            "remote",
            "gpio",
            "audio",
            "fall",
            "data_dir",
        ],
    );

    let unit = read_unit(cx, &root);
    let pendants = read_pendants(cx, &root);
    let alarm = read_alarm(cx, &root);
    let retry = read_retry(cx, &root);
    let credentials = read_credentials(cx, &root);
    let routes = read_routes(cx, &root, &credentials);
    let supervision = read_supervision(cx, &root, unit.as_ref());
    let radio = read_radio(cx, &root);
    let modem = read_modem(cx, &root);
    let remote = read_remote(cx, &root, &credentials);
    let gpio = read_gpio(cx, &root);
    let audio = read_audio(cx, &root);
    let fall = read_fall(cx, &root);
    let data_dir = match root.string(cx, "data_dir") {
        None => PathBuf::from("/var/lib/vigil"),
        Some((s, span)) if s.trim().is_empty() => {
            cx.problem(
                &span,
                "data_dir",
                "empty; the folder for the journal, such as \"/var/lib/vigil\"",
            );
            PathBuf::new()
        }
        Some((s, _)) => PathBuf::from(s),
    };
    if let (Some(u), Some(a)) = (&unit, &audio) {
        check_prompts(cx, &root, &u.language, &a.sounds_dir);
    }
    if let (Some(m), Some(a)) = (&modem, &audio) {
        check_call_ports(cx, &root, m, a);
    }

    if routes.is_empty() && cx.problems.is_empty() {
        cx.problem(
            &(0..0),
            "route",
            "no route configured; add at least one [[route]] so alarms can reach a receiver",
        );
    }

    Some(Config {
        unit: unit?,
        pendants,
        alarm: alarm?,
        retry: retry?,
        routes,
        credentials: credentials.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        supervision: supervision?,
        radio: radio?,
        modem: modem?,
        remote: remote?,
        gpio: gpio?,
        audio: audio?,
        fall: fall?,
        data_dir,
        warnings: Vec::new(),
    })
}

fn missing_table(cx: &mut Cx<'_>, name: &str, what: &str) {
    cx.problem(&(0..0), name, format!("missing table [{name}]; {what}"));
}

fn read_unit(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Option<Unit> {
    let Some(t) = root.sub(cx, "unit") else {
        missing_table(cx, "unit", "it names the unit and the person it protects");
        return None;
    };
    t.check_keys(
        cx,
        &[
            "controller_id",
            "contact_id_account",
            "sia_account",
            "subscriber",
            "address",
            "language",
            "volume",
            "quiet_hours",
        ],
    );
    let mut ok = true;
    let controller_id = t.required_valid(
        cx,
        "controller_id",
        "the SCAIP controller id, 1 to 32 digits",
        |s| (1..=32).contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit()),
        |s| format!("`{s}` is not 1 to 32 digits"),
    );
    let account = t.required_valid(
        cx,
        "contact_id_account",
        "the Contact ID account, 4 characters of 0-9 and B-F",
        |s| s.len() == 4 && s.chars().all(|c| c.is_ascii_digit() || ('B'..='F').contains(&c)),
        |s| format!("`{s}` is not a Contact ID account; allowed: exactly 4 of 0-9, B-F (upper case; A is not allowed)"),
    );
    let sia = t.required_valid(
        cx,
        "sia_account",
        "the SIA DC-09 account, 3 to 16 hex digits",
        |s| (3..=16).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit()),
        |s| format!("`{s}` is not 3 to 16 hex digits"),
    );
    let subscriber =
        t.required_string(cx, "subscriber", "the name of the person the unit protects");
    if let Some((s, span)) = &subscriber {
        if s.chars().count() > MAX_NAME {
            cx.problem(
                span,
                &t.key("subscriber"),
                format!(
                    "{} characters; at most {MAX_NAME}: the name goes into SMS texts and spoken \
                     announcements",
                    s.chars().count()
                ),
            );
        }
    }
    let address = t.string(cx, "address").map(|(s, _)| s).unwrap_or_default();
    let language = t.string(cx, "language");
    let language = match language {
        Some((l, span)) => {
            let valid = (2..=8).contains(&l.len())
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-' || c == '_');
            if !valid {
                cx.problem(
                    &span,
                    &t.key("language"),
                    format!("`{l}` is not a language code such as \"en\", \"de\" or \"sv\""),
                );
                ok = false;
            }
            l
        }
        None => "en".to_string(),
    };
    let volume = t.integer(cx, "volume", 0..101).map_or(80, |(v, _)| v as u8);
    let quiet_hours = match t.value("quiet_hours") {
        None => None,
        Some(_) => read_quiet_hours(cx, &t),
    };
    if !ok {
        return None;
    }
    Some(Unit {
        controller_id: controller_id?,
        contact_id_account: account?,
        sia_account: sia?.to_ascii_uppercase(),
        subscriber: subscriber?.0,
        address,
        language,
        volume,
        quiet_hours,
    })
}

fn read_quiet_hours(cx: &mut Cx<'_>, unit: &Table<'_, '_>) -> Option<QuietHours> {
    let (text, span) = unit.string(cx, "quiet_hours")?;
    let parse_hm = |s: &str| -> Option<u16> {
        let (h, m) = s.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let parsed = text
        .split_once('-')
        .and_then(|(a, b)| Some((parse_hm(a)?, parse_hm(b)?)));
    match parsed {
        Some((start_min, end_min)) if start_min != end_min => {
            Some(QuietHours { start_min, end_min })
        }
        _ => {
            cx.problem(
                &span,
                &unit.key("quiet_hours"),
                format!("`{text}` is not a span of local time; write it like \"22:00-07:00\""),
            );
            None
        }
    }
}

fn read_pendants(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Vec<Pendant> {
    let mut out: Vec<Pendant> = Vec::new();
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    let mut zones: BTreeSet<u16> = BTreeSet::new();
    for (i, t) in root.tables(cx, "pendant").into_iter().enumerate() {
        t.check_keys(cx, &["id", "kind", "key", "location", "zone"]);
        let id = t.required_string(
            cx,
            "id",
            "the pendant's radio id, 8 hex digits as printed on its label",
        );
        let id = id.and_then(|(s, span)| match s.parse::<DeviceId>() {
            Ok(id) => {
                if let Some(first) = seen.insert(id.0, i + 1) {
                    cx.problem(
                        &span,
                        &t.key("id"),
                        format!("duplicate pendant id {id}; pendant[{first}] has it already"),
                    );
                    None
                } else {
                    Some(id)
                }
            }
            Err(e) => {
                cx.problem(&span, &t.key("id"), e);
                None
            }
        });
        let kind = match t.string(cx, "kind") {
            None => Some(DeviceKind::Personal),
            Some((s, span)) => {
                let k = DeviceKind::parse(&s);
                if k.is_none() {
                    cx.problem(
                        &span,
                        &t.key("kind"),
                        format!("`{s}` is not a trigger kind; allowed: personal, fall, fixed"),
                    );
                }
                k
            }
        };
        let key = match t.string(cx, "key") {
            None => Some(None),
            Some((s, span)) => match hex::decode(&s).map(Zeroizing::new) {
                Ok(bytes) if bytes.len() == 32 => {
                    published(cx, &span, &t.key("key"), &s);
                    let mut k = Zeroizing::new([0u8; 32]);
                    k.copy_from_slice(&bytes);
                    Some(Some(k))
                }
                _ => {
                    // Never echo the key text: it is a secret even when malformed.
                    cx.problem(&span, &t.key("key"), "not an AES-256 key; allowed: exactly 64 hex digits (or leave it out and pair the pendant with `vigil pair`)");
                    None
                }
            },
        };
        let location = t
            .string(cx, "location")
            .map_or_else(|| format!("pendant {}", i + 1), |(s, _)| s);
        let zone = match t.integer(cx, "zone", 1..1000) {
            Some((z, span)) => {
                let z = z as u16;
                if !zones.insert(z) {
                    cx.problem(
                        &span,
                        &t.key("zone"),
                        format!("zone {z} is used by another pendant; zones must be unique"),
                    );
                }
                Some(z)
            }
            None if t.value("zone").is_some() => None,
            None => {
                // First free zone from 1 up: the order of pendants in the file.
                let z = (1..1000).find(|z| !zones.contains(z)).unwrap_or(999);
                zones.insert(z);
                Some(z)
            }
        };
        if let (Some(id), Some(kind), Some(key), Some(zone)) = (id, kind, key, zone) {
            out.push(Pendant {
                id,
                kind,
                key,
                location,
                zone,
            });
        }
    }
    out
}

fn read_alarm(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Option<AlarmBehaviour> {
    let defaults = AlarmBehaviour {
        personal_cancel_window: secs(0),
        fixed_cancel_window: secs(0),
        fall_confirm_window: secs(30),
        prompt_repeat: secs(10),
    };
    let Some(t) = root.sub(cx, "alarm") else {
        return root.value("alarm").is_none().then_some(defaults);
    };
    t.check_keys(cx, &["personal", "fixed", "fall", "prompt_repeat"]);
    let mut ok = true;
    let mut window =
        |cx: &mut Cx<'_>, name: &str, key: &str, max: u64, default: Duration| -> Duration {
            let Some(sub) = t.sub(cx, name) else {
                return default;
            };
            sub.check_keys(cx, &[key]);
            if sub.value(key).is_none() {
                return default;
            }
            match sub.duration(cx, key, secs(0), secs(max)) {
                Some(d) => d,
                None => {
                    ok = false;
                    default
                }
            }
        };
    let personal = window(
        cx,
        "personal",
        "cancel_window",
        60,
        defaults.personal_cancel_window,
    );
    let fixed = window(
        cx,
        "fixed",
        "cancel_window",
        60,
        defaults.fixed_cancel_window,
    );
    let fall = window(
        cx,
        "fall",
        "confirm_window",
        120,
        defaults.fall_confirm_window,
    );
    let repeat = match t.value("prompt_repeat") {
        None => defaults.prompt_repeat,
        Some(_) => t
            .duration(cx, "prompt_repeat", secs(3), secs(60))
            .unwrap_or_else(|| {
                ok = false;
                defaults.prompt_repeat
            }),
    };
    if fall.is_zero() {
        // Zero is allowed, but a fall then escalates without asking; keep it explicit.
        tracing::debug!("fall confirmation window is zero: falls escalate at once");
    }
    ok.then_some(AlarmBehaviour {
        personal_cancel_window: personal,
        fixed_cancel_window: fixed,
        fall_confirm_window: fall,
        prompt_repeat: repeat,
    })
}

fn read_retry(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Option<RetrySchedule> {
    let mut r = RetrySchedule {
        fast_rounds: 16,
        fast_interval: secs(30),
        slow_interval: secs(600),
    };
    let Some(t) = root.sub(cx, "escalation") else {
        return root.value("escalation").is_none().then_some(r);
    };
    t.check_keys(cx, &["fast_rounds", "fast_interval", "slow_interval"]);
    let before = cx.problems.len();
    if let Some((n, _)) = t.integer(cx, "fast_rounds", 0..1001) {
        r.fast_rounds = n as u32;
    }
    if t.value("fast_interval").is_some() {
        r.fast_interval = t
            .duration(cx, "fast_interval", secs(5), secs(3600))
            .unwrap_or(r.fast_interval);
    }
    if t.value("slow_interval").is_some() {
        r.slow_interval = t
            .duration(cx, "slow_interval", secs(30), secs(6 * 3600))
            .unwrap_or(r.slow_interval);
    }
    (cx.problems.len() == before).then_some(r)
}

/// Credentials by name, with where each one's `secret` is written.
type CredentialMap = BTreeMap<String, (Credentials, Range<usize>)>;

/// Shortest secret that keys an HMAC (SMS acknowledgements, remote commands): 16 random
/// bytes written as hex, so a code cannot be found by guessing the secret instead.
const MIN_HMAC_SECRET: usize = 32;

fn read_credentials(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> CredentialMap {
    let mut out = BTreeMap::new();
    let Some(t) = root.sub(cx, "credentials") else {
        return out;
    };
    for (k, v) in t.map.iter() {
        let name = k.get_ref().to_string();
        let DeValue::Table(map) = v.get_ref() else {
            cx.problem(
                &v.span(),
                &t.key(&name),
                format!("expected a table [credentials.{name}] with `secret` (and `username`)"),
            );
            continue;
        };
        let c = Table {
            map,
            path: t.key(&name),
            span: v.span(),
        };
        c.check_keys(cx, &["username", "secret", "realm"]);
        let username = c.string(cx, "username").map(|(s, _)| s);
        let realm = c.string(cx, "realm").map(|(s, _)| s);
        if let Some((secret, span)) =
            c.required_string(cx, "secret", "the password or shared secret")
        {
            published(cx, &span, &c.key("secret"), &secret);
            if secret.len() < 8 {
                // Still defined, so the routes that name it are not reported as well.
                cx.problem(
                    &span,
                    &c.key("secret"),
                    "too short; use at least 8 characters",
                );
            }
            out.insert(
                name,
                (
                    Credentials {
                        username,
                        secret: secret.into(),
                        realm,
                    },
                    span,
                ),
            );
        }
    }
    out
}

/// Longest subscriber name: it goes into every SMS and announcement.
const MAX_NAME: usize = 64;

/// Warns when the unit would beep instead of speaking: no sounds folder, or no prompts in it
/// for the configured language.
fn check_prompts(cx: &mut Cx<'_>, root: &Table<'_, '_>, language: &str, sounds: &Path) {
    let span_of = |table: &str, key: &str| {
        root.value(table)
            .and_then(|t| match t.get_ref() {
                DeValue::Table(m) => m
                    .iter()
                    .find(|(k, _)| k.get_ref().as_ref() == key)
                    .map(|(_, v)| v.span()),
                _ => None,
            })
            .unwrap_or(0..0)
    };
    if !sounds.is_dir() {
        let span = span_of("audio", "sounds_dir");
        cx.warning(
            &span,
            "audio.sounds_dir",
            format!(
                "{} does not exist: the unit beeps instead of speaking",
                sounds.display()
            ),
        );
        return;
    }
    if !sounds.join(language).is_dir() {
        let have: Vec<String> = std::fs::read_dir(sounds)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir() && e.file_name() != "catalogue")
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let span = span_of("unit", "language");
        cx.warning(
            &span,
            "unit.language",
            format!(
                "no prompts for `{language}` in {}: the unit beeps instead of speaking; there: {}",
                sounds.display(),
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ),
        );
    }
}

fn carries(cx: &mut Cx<'_>, t: &Table<'_, '_>, default: Carries) -> Carries {
    if t.value("carries").is_none() {
        return default;
    }
    let mut c = Carries {
        personal: false,
        technical: false,
        test: false,
    };
    let listed = t.strings(cx, "carries");
    for (s, span) in &listed {
        match s.as_str() {
            "personal" => c.personal = true,
            "technical" => c.technical = true,
            "test" => c.test = true,
            _ => cx.problem(
                span,
                &t.key("carries"),
                format!("`{s}` is not an alarm class; allowed: personal, technical, test"),
            ),
        }
    }
    if listed.is_empty() {
        let span = t.value("carries").map_or(t.span.clone(), |v| v.span());
        cx.problem(
            &span,
            &t.key("carries"),
            "empty: this route would carry no alarm; list personal, technical or test, or leave \
             the key out",
        );
    }
    c
}

fn reference_credentials(
    cx: &mut Cx<'_>,
    t: &Table<'_, '_>,
    credentials: &CredentialMap,
    needs_username: bool,
) -> Option<String> {
    let (name, span) =
        t.required_string(cx, "credentials", "the name of a [credentials.NAME] table")?;
    match credentials.get(&name) {
        None => {
            let known: Vec<&str> = credentials.keys().map(String::as_str).collect();
            cx.problem(
                &span,
                &t.key("credentials"),
                format!(
                    "no [credentials.{name}] table; defined: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
            None
        }
        Some((c, _)) if needs_username && c.username.is_none() => {
            cx.problem(
                &span,
                &t.key("credentials"),
                format!(
                    "[credentials.{name}] has no `username`, which SIP digest authentication needs"
                ),
            );
            None
        }
        Some(_) => Some(name),
    }
}

/// Reports the secret of `[credentials.NAME]` if it is too short to key an HMAC.
fn hmac_secret(cx: &mut Cx<'_>, credentials: &CredentialMap, name: &str) {
    if let Some((c, span)) = credentials.get(name) {
        // Shorter than 8 is reported already where the secret is read.
        if (8..MIN_HMAC_SECRET).contains(&c.secret.chars().count()) {
            cx.problem(
                span,
                &format!("credentials.{name}.secret"),
                format!(
                    "too short to sign codes; use at least {MIN_HMAC_SECRET} characters \
                     (16 random bytes as hex, e.g. from `openssl rand -hex 16`)"
                ),
            );
        }
    }
}

fn phone_number(cx: &mut Cx<'_>, t: &Table<'_, '_>, key: &str) -> Option<String> {
    t.required_valid(cx, key, E164_HELP, is_e164, |n| {
        format!("`{n}` is not an E.164 number; {E164_HELP}")
    })
}

fn socket_addr(cx: &mut Cx<'_>, t: &Table<'_, '_>, key: &str, default: &str) -> Option<SocketAddr> {
    let (s, span) = t
        .string(cx, key)
        .unwrap_or((default.to_string(), t.span.clone()));
    match s.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            cx.problem(
                &span,
                &t.key(key),
                format!("`{s}` is not an IP address and port such as \"127.0.0.1:5060\""),
            );
            None
        }
    }
}

fn host_port(cx: &mut Cx<'_>, t: &Table<'_, '_>, key: &str, what: &str) -> Option<String> {
    let (s, span) = t.required_string(cx, key, what)?;
    let valid = s
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if valid {
        Some(s)
    } else {
        cx.problem(
            &span,
            &t.key(key),
            format!("`{s}` is not a host and port such as \"arc.example.net:5060\""),
        );
        None
    }
}

fn hex_field(cx: &mut Cx<'_>, t: &Table<'_, '_>, key: &str, default: &str) -> Option<String> {
    match t.string(cx, key) {
        None => Some(default.to_string()),
        Some((s, span)) => {
            if (1..=6).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit()) {
                Some(s.to_ascii_uppercase())
            } else {
                cx.problem(
                    &span,
                    &t.key(key),
                    format!("`{s}` is not 1 to 6 hex digits"),
                );
                None
            }
        }
    }
}

fn read_routes(cx: &mut Cx<'_>, root: &Table<'_, '_>, credentials: &CredentialMap) -> Vec<Route> {
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for (i, t) in root.tables(cx, "route").into_iter().enumerate() {
        let before = cx.problems.len();
        let Some((kind, kind_span)) =
            t.required_string(cx, "kind", "one of scaip, dc09, contact-id, sms, voice")
        else {
            continue;
        };
        let common = ["kind", "name", "carries", "attempt_timeout"];
        let specific: &[&str] = match kind.as_str() {
            "scaip" => &[
                "receiver_uri",
                "proxy",
                "transport",
                "local_uri",
                "bind",
                "credentials",
                "answer_timeout",
                "hold_limit",
                "heartbeat",
                "register_expiry",
                "keepalive",
                "tls_ca",
            ],
            "dc09" => &[
                "receiver",
                "protocol",
                "receiver_number",
                "line_prefix",
                "key",
                "key_format",
                "payload",
                "answer_timeout",
                "link_test",
            ],
            "contact-id" => &["number"],
            "sms" => &["number", "credentials", "reply_timeout"],
            "voice" => &["number", "accept_key"],
            _ => {
                cx.problem(&kind_span, &t.key("kind"), format!("`{kind}` is not a route kind; allowed: scaip, dc09, contact-id, sms, voice"));
                continue;
            }
        };
        let allowed: Vec<&str> = common.iter().chain(specific).copied().collect();
        t.check_keys(cx, &allowed);
        let name = t
            .string(cx, "name")
            .map_or_else(|| format!("{kind}-{}", i + 1), |(s, _)| s);
        if !names.insert(name.clone()) {
            cx.problem(
                &t.span,
                &t.key("name"),
                format!("route name `{name}` is used twice; names must be unique"),
            );
        }
        let all = Carries {
            personal: true,
            technical: true,
            test: true,
        };
        let default_carries = if kind == "voice" {
            Carries {
                personal: true,
                technical: false,
                test: false,
            }
        } else {
            all
        };
        let carries = carries(cx, &t, default_carries);
        let default_timeout = match kind.as_str() {
            "scaip" | "dc09" => 90,
            "sms" => 300,
            _ => 180,
        };
        let attempt_timeout = if t.value("attempt_timeout").is_some() {
            t.duration(cx, "attempt_timeout", secs(10), secs(1800))
        } else {
            Some(secs(default_timeout))
        };
        let transport = match kind.as_str() {
            "scaip" => read_scaip(cx, &t, credentials).map(Transport::Scaip),
            "dc09" => read_dc09(cx, &t).map(Transport::Dc09),
            "contact-id" => phone_number(cx, &t, "number")
                .map(|number| Transport::ContactId(ContactIdRoute { number })),
            "sms" => {
                let number = phone_number(cx, &t, "number");
                let creds = reference_credentials(cx, &t, credentials, false);
                if let Some(name) = &creds {
                    hmac_secret(cx, credentials, name);
                }
                let reply_timeout = if t.value("reply_timeout").is_some() {
                    t.duration(cx, "reply_timeout", secs(10), secs(1800))
                } else {
                    Some(secs(240))
                };
                match (number, creds, reply_timeout) {
                    (Some(number), Some(credentials), Some(reply_timeout)) => {
                        Some(Transport::Sms(SmsRoute {
                            number,
                            credentials,
                            reply_timeout,
                        }))
                    }
                    _ => None,
                }
            }
            _ => {
                let number = phone_number(cx, &t, "number");
                let accept_key = match t.string(cx, "accept_key") {
                    None => Some('1'),
                    Some((s, span)) => {
                        let mut chars = s.chars();
                        match (chars.next(), chars.next()) {
                            (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => {
                                Some(c)
                            }
                            _ => {
                                cx.problem(
                                    &span,
                                    &t.key("accept_key"),
                                    format!("`{s}` is not one DTMF key; allowed: 0-9, * or #"),
                                );
                                None
                            }
                        }
                    }
                };
                match (number, accept_key) {
                    (Some(number), Some(accept_key)) => {
                        Some(Transport::Voice(VoiceRoute { number, accept_key }))
                    }
                    _ => None,
                }
            }
        };
        if let (Some(transport), Some(attempt_timeout), true) =
            (transport, attempt_timeout, cx.problems.len() == before)
        {
            out.push(Route {
                name,
                carries,
                attempt_timeout,
                transport,
            });
        }
    }
    if !out.is_empty() && !out.iter().any(|r| r.carries.personal) {
        cx.problem(&root.span, "route", "no route carries personal alarms; at least one [[route]] must have \"personal\" in `carries`");
    }
    out
}

fn read_scaip(
    cx: &mut Cx<'_>,
    t: &Table<'_, '_>,
    credentials: &CredentialMap,
) -> Option<ScaipRoute> {
    let uri = |cx: &mut Cx<'_>, key: &str, what: &str| -> Option<String> {
        let (s, span) = t.required_string(cx, key, what)?;
        let valid = (s.starts_with("sip:") || s.starts_with("sips:")) && s.contains('@');
        if valid {
            Some(s)
        } else {
            cx.problem(
                &span,
                &t.key(key),
                format!("`{s}` is not a SIP URI such as \"sip:alarm@arc.example.net\""),
            );
            None
        }
    };
    let receiver_uri = uri(cx, "receiver_uri", "the receiving centre's SIP URI");
    let local_uri = uri(cx, "local_uri", "this unit's SIP address of record");
    let proxy = host_port(cx, t, "proxy", "the registrar/proxy host and port");
    let transport = match t.string(cx, "transport") {
        None => Some(SipTransport::Udp),
        Some((s, span)) => match s.as_str() {
            "udp" => Some(SipTransport::Udp),
            "tcp" => Some(SipTransport::Tcp),
            "tls" if cfg!(feature = "tls") => Some(SipTransport::Tls),
            "tls" => {
                cx.problem(
                    &span,
                    &t.key("transport"),
                    "\"tls\" is not built into this binary; build with `--features tls`",
                );
                None
            }
            _ => {
                cx.problem(
                    &span,
                    &t.key("transport"),
                    format!("`{s}` is not a SIP transport; allowed: udp, tcp, tls"),
                );
                None
            }
        },
    };
    if let (Some(tr), Some(p)) = (transport, &proxy) {
        let host = p.rsplit_once(':').map_or(p.as_str(), |(h, _)| h);
        let loopback =
            matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]") || host.starts_with("127.");
        if tr != SipTransport::Tls && !loopback {
            let span = t
                .value("transport")
                .or_else(|| t.value("proxy"))
                .map_or(t.span.clone(), |v| v.span());
            cx.warning(
                &span,
                &t.key("transport"),
                format!(
                    "SIP over {} to {p}, a proxy that is not on this machine: anyone on the path \
                     can read the alarms and answer for the centre; use transport = \"tls\" \
                     (with tls_ca)",
                    if tr == SipTransport::Udp {
                        "UDP"
                    } else {
                        "TCP"
                    }
                ),
            );
        }
    }
    let bind = socket_addr(cx, t, "bind", "0.0.0.0:0");
    let creds = reference_credentials(cx, t, credentials, true);
    let opt = |cx: &mut Cx<'_>, key: &str, min: u64, max: u64, default: u64| {
        if t.value(key).is_some() {
            t.duration(cx, key, secs(min), secs(max))
        } else {
            Some(secs(default))
        }
    };
    let answer_timeout = opt(cx, "answer_timeout", 2, 120, 30);
    let hold_limit = opt(cx, "hold_limit", 180, 1800, 600);
    let heartbeat = opt(cx, "heartbeat", 60, 1440 * 60, 3600);
    let register_expiry = opt(cx, "register_expiry", 60, 86_400, 3600);
    // NAT bindings for UDP last about 30 s; RFC 5626 suggests 95–120 s for connections.
    let keepalive_default = if transport == Some(SipTransport::Udp) {
        25
    } else {
        90
    };
    let keepalive = opt(cx, "keepalive", 5, 3600, keepalive_default);
    let tls_ca = t.string(cx, "tls_ca").map(|(s, _)| PathBuf::from(s));
    if let (Some(SipTransport::Tls), None) = (transport, &tls_ca) {
        cx.problem(
            &t.span,
            &t.key("tls_ca"),
            "missing; transport \"tls\" needs the PEM file of the centre's certificate authority",
        );
    }
    Some(ScaipRoute {
        receiver_uri: receiver_uri?,
        proxy: proxy?,
        transport: transport?,
        local_uri: local_uri?,
        bind: bind?,
        credentials: creds?,
        answer_timeout: answer_timeout?,
        hold_limit: hold_limit?,
        heartbeat: heartbeat?,
        register_expiry: register_expiry?,
        keepalive: keepalive?,
        tls_ca,
    })
}

fn read_dc09(cx: &mut Cx<'_>, t: &Table<'_, '_>) -> Option<Dc09Route> {
    let receiver = host_port(cx, t, "receiver", "the DC-09 receiver's host and port");
    let protocol = match t.string(cx, "protocol") {
        None => Some(Dc09Protocol::Tcp),
        Some((s, span)) => match s.as_str() {
            "tcp" => Some(Dc09Protocol::Tcp),
            "udp" => Some(Dc09Protocol::Udp),
            _ => {
                cx.problem(
                    &span,
                    &t.key("protocol"),
                    format!("`{s}` is not a DC-09 transport; allowed: tcp, udp"),
                );
                None
            }
        },
    };
    let receiver_number = hex_field(cx, t, "receiver_number", "0");
    let line_prefix = hex_field(cx, t, "line_prefix", "0");
    let key_format = match t.string(cx, "key_format") {
        None => Some(KeyFormat::HexBytes),
        Some((s, span)) => match s.as_str() {
            "hex" => Some(KeyFormat::HexBytes),
            "ascii" => Some(KeyFormat::Ascii),
            _ => {
                cx.problem(&span, &t.key("key_format"), format!("`{s}` is not a key format; allowed: hex (the hex text decodes to the key bytes), ascii (the characters are the key)"));
                None
            }
        },
    };
    let key = match (t.string(cx, "key"), key_format) {
        (None, _) => Some(None),
        (Some(_), None) => None,
        (Some((s, span)), Some(format)) => {
            let bytes = match format {
                KeyFormat::HexBytes => hex::decode(&s)
                    .ok()
                    .filter(|b| matches!(b.len(), 16 | 24 | 32)),
                KeyFormat::Ascii => {
                    Some(s.clone().into_bytes()).filter(|b| matches!(b.len(), 16 | 24 | 32))
                }
            };
            match bytes {
                Some(b) => {
                    published(cx, &span, &t.key("key"), &s);
                    Some(Some(Zeroizing::new(b)))
                }
                None => {
                    let allowed = match format {
                        KeyFormat::HexBytes => "32, 48 or 64 hex digits (AES-128/192/256)",
                        KeyFormat::Ascii => "16, 24 or 32 characters (AES-128/192/256)",
                    };
                    cx.problem(
                        &span,
                        &t.key("key"),
                        format!(
                            "not an AES key in the `{}` format; allowed: {allowed}",
                            if format == KeyFormat::Ascii {
                                "ascii"
                            } else {
                                "hex"
                            }
                        ),
                    );
                    None
                }
            }
        }
    };
    let payload = match t.string(cx, "payload") {
        None => Some(Dc09Payload::AdmCid),
        Some((s, span)) => match s.as_str() {
            "adm-cid" => Some(Dc09Payload::AdmCid),
            "sia-dcs" => Some(Dc09Payload::SiaDcs),
            _ => {
                cx.problem(
                    &span,
                    &t.key("payload"),
                    format!("`{s}` is not a DC-09 payload; allowed: adm-cid (Contact ID), sia-dcs (SIA event codes)"),
                );
                None
            }
        },
    };
    let answer_timeout = if t.value("answer_timeout").is_some() {
        t.duration(cx, "answer_timeout", secs(2), secs(120))
    } else {
        Some(secs(20))
    };
    let link_test = if t.value("link_test").is_some() {
        t.duration(cx, "link_test", secs(0), secs(86_400))
    } else {
        Some(secs(0))
    };
    Some(Dc09Route {
        receiver: receiver?,
        protocol: protocol?,
        receiver_number: receiver_number?,
        line_prefix: line_prefix?,
        key: key?,
        payload: payload?,
        answer_timeout: answer_timeout?,
        link_test: link_test?,
    })
}

fn read_supervision(
    cx: &mut Cx<'_>,
    root: &Table<'_, '_>,
    unit: Option<&Unit>,
) -> Option<Supervision> {
    // Per-unit test offset: spread a fleet over the interval by the controller id.
    let auto_offset = |interval: Duration| -> Duration {
        let seed = unit.map_or(0u64, |u| {
            u.controller_id
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
                })
        });
        Duration::from_secs(seed % interval.as_secs().max(1))
    };
    let mut s = Supervision {
        heartbeat_interval: secs(3600),
        missing_after: secs(4 * 3600),
        mains_report_delay: secs(120),
        test_interval: secs(24 * 3600),
        test_offset: Duration::ZERO,
        auto_answer_window: secs(15 * 60),
    };
    let Some(t) = root.sub(cx, "supervision") else {
        if root.value("supervision").is_some() {
            return None;
        }
        s.test_offset = auto_offset(s.test_interval);
        return Some(s);
    };
    t.check_keys(
        cx,
        &[
            "heartbeat_interval",
            "missing_after",
            "mains_report_delay",
            "test_interval",
            "test_offset",
            "auto_answer_window",
        ],
    );
    let before = cx.problems.len();
    let set = |cx: &mut Cx<'_>, key: &str, min: u64, max: u64, field: &mut Duration| {
        if t.value(key).is_some() {
            if let Some(d) = t.duration(cx, key, secs(min), secs(max)) {
                *field = d;
            }
        }
    };
    set(
        cx,
        "heartbeat_interval",
        60,
        24 * 3600,
        &mut s.heartbeat_interval,
    );
    set(
        cx,
        "missing_after",
        600,
        7 * 24 * 3600,
        &mut s.missing_after,
    );
    set(cx, "mains_report_delay", 0, 180, &mut s.mains_report_delay);
    set(cx, "test_interval", 3600, 24 * 3600, &mut s.test_interval);
    set(cx, "auto_answer_window", 0, 3600, &mut s.auto_answer_window);
    if s.missing_after < s.heartbeat_interval * 2 && cx.problems.len() == before {
        if let Some(v) = t.value("missing_after").or(t.value("heartbeat_interval")) {
            cx.problem(
                &v.span(),
                &t.key("missing_after"),
                format!(
                    "must be at least twice the heartbeat interval ({}), or one lost heartbeat raises a false alarm",
                    format_duration(s.heartbeat_interval)
                ),
            );
        }
    }
    match t.string(cx, "test_offset") {
        None => s.test_offset = auto_offset(s.test_interval),
        Some((text, _)) if text == "auto" => s.test_offset = auto_offset(s.test_interval),
        Some(_) => {
            if let Some(d) = t.duration(
                cx,
                "test_offset",
                Duration::ZERO,
                s.test_interval.saturating_sub(secs(1)),
            ) {
                s.test_offset = d;
            }
        }
    }
    (cx.problems.len() == before).then_some(s)
}

fn read_radio(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Option<Radio> {
    let mut r = Radio {
        band: Band::Eu869,
        driver: RadioDriver::Rfm69 {
            spi: "/dev/spidev0.0".into(),
            gpio_chip: "/dev/gpiochip0".into(),
            irq_line: 25,
            reset_line: 22,
        },
        jamming_rssi_dbm: -90,
        jamming_after: secs(30),
        pairing_window: secs(60),
        pairing_min_rssi: -60,
    };
    let Some(t) = root.sub(cx, "radio") else {
        return root.value("radio").is_none().then_some(r);
    };
    t.check_keys(
        cx,
        &[
            "band",
            "driver",
            "spi",
            "gpio_chip",
            "irq_line",
            "reset_line",
            "listen",
            "jamming_rssi_dbm",
            "jamming_after",
            "pairing_window",
            "pairing_min_rssi",
        ],
    );
    let before = cx.problems.len();
    if let Some((s, span)) = t.string(cx, "band") {
        match s.as_str() {
            "eu869" => r.band = Band::Eu869,
            "eu868" => r.band = Band::Eu868,
            "us915" => r.band = Band::Us915,
            _ => cx.problem(&span, &t.key("band"), format!("`{s}` is not a band; allowed: eu869 (social alarm, 869.2125 MHz), eu868, us915")),
        }
    }
    let driver = t
        .string(cx, "driver")
        .map_or_else(|| "rfm69".to_string(), |(s, _)| s);
    match driver.as_str() {
        "rfm69" => {
            let spi = t
                .string(cx, "spi")
                .map_or_else(|| "/dev/spidev0.0".into(), |(s, _)| PathBuf::from(s));
            let gpio_chip = t
                .string(cx, "gpio_chip")
                .map_or_else(|| "/dev/gpiochip0".into(), |(s, _)| PathBuf::from(s));
            let irq_line = t
                .integer(cx, "irq_line", 0..64)
                .map_or(25, |(v, _)| v as u32);
            let reset_line = t
                .integer(cx, "reset_line", 0..64)
                .map_or(22, |(v, _)| v as u32);
            r.driver = RadioDriver::Rfm69 {
                spi,
                gpio_chip,
                irq_line,
                reset_line,
            };
        }
        "sim" => {
            if let Some(listen) = socket_addr(cx, &t, "listen", "127.0.0.1:47800") {
                r.driver = RadioDriver::Sim { listen };
            }
        }
        other => {
            let span = t.value("driver").map_or(t.span.clone(), |v| v.span());
            cx.problem(
                &span,
                &t.key("driver"),
                format!("`{other}` is not a radio driver; allowed: rfm69, sim"),
            );
        }
    }
    if let Some((v, _)) = t.integer(cx, "jamming_rssi_dbm", -130..-19) {
        r.jamming_rssi_dbm = v as i16;
    }
    if t.value("jamming_after").is_some() {
        r.jamming_after = t
            .duration(cx, "jamming_after", secs(5), secs(600))
            .unwrap_or(r.jamming_after);
    }
    if t.value("pairing_window").is_some() {
        r.pairing_window = t
            .duration(cx, "pairing_window", secs(10), secs(60))
            .unwrap_or(r.pairing_window);
    }
    if let Some((v, _)) = t.integer(cx, "pairing_min_rssi", -100..-19) {
        r.pairing_min_rssi = v as i16;
    }
    (cx.problems.len() == before).then_some(r)
}

fn read_modem(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Option<Modem> {
    let mut m = Modem {
        port: "/dev/vigil-modem".into(),
        baud: 115_200,
        sim_pin: None,
        apn: None,
        power_key_pin: None,
        voice_port: None,
        call_audio: None,
    };
    let Some(t) = root.sub(cx, "modem") else {
        return root.value("modem").is_none().then_some(m);
    };
    t.check_keys(
        cx,
        &[
            "port",
            "baud",
            "sim_pin",
            "apn",
            "power_key_pin",
            "voice_port",
            "call_volume",
            "call_mic_gain",
            "call_tuning",
        ],
    );
    let before = cx.problems.len();
    if let Some((s, _)) = t.string(cx, "port") {
        m.port = s.into();
    }
    if let Some((b, span)) = t.integer(cx, "baud", 1200..4_000_001) {
        const RATES: [i64; 9] = [
            9600, 19200, 38400, 57600, 115_200, 230_400, 460_800, 921_600, 3_000_000,
        ];
        if RATES.contains(&b) {
            m.baud = b as u32;
        } else {
            cx.problem(
                &span,
                &t.key("baud"),
                format!(
                    "{b} is not a standard rate; allowed: {}",
                    RATES.map(|r| r.to_string()).join(", ")
                ),
            );
        }
    }
    if let Some((pin, span)) = t.string(cx, "sim_pin") {
        if (4..=8).contains(&pin.len()) && pin.chars().all(|c| c.is_ascii_digit()) {
            m.sim_pin = Some(pin.into());
        } else {
            cx.problem(
                &span,
                &t.key("sim_pin"),
                "not a SIM PIN; allowed: 4 to 8 digits",
            );
        }
    }
    m.apn = t.string(cx, "apn").map(|(s, _)| s);
    m.power_key_pin = t.integer(cx, "power_key_pin", 0..28).map(|(v, _)| v as u8);
    if let Some((s, span)) = t.string(cx, "voice_port") {
        if s.starts_with('/') {
            m.voice_port = Some(s.into());
        } else {
            cx.problem(
                &span,
                &t.key("voice_port"),
                "not a device path; allowed: an absolute path such as /dev/ttyUSB4",
            );
        }
    }
    let volume = t.integer(cx, "call_volume", 0..101).map(|(v, _)| v as u8);
    let mic_gain = t.integer(cx, "call_mic_gain", 0..101).map(|(v, _)| v as u8);
    let mut tuning = Vec::new();
    for (command, span) in t.strings(cx, "call_tuning") {
        match tuning_command(&command) {
            Ok(()) => tuning.push(command),
            Err(why) => cx.problem(&span, &t.key("call_tuning"), why),
        }
    }
    if volume.is_some() || mic_gain.is_some() || !tuning.is_empty() {
        m.call_audio = Some(ModuleCallAudio {
            volume: volume.unwrap_or(80),
            mic_gain: mic_gain.unwrap_or(50),
            tuning,
        });
    }
    (cx.problems.len() == before).then_some(m)
}

/// Whether `command` is an audio setting an installer may send: `AT+<name>=<numbers>` with a
/// name from [`TUNING_COMMANDS`]; nothing else reaches the modem from here.
fn tuning_command(command: &str) -> Result<(), String> {
    let allowed = TUNING_COMMANDS.join(", ");
    let (name, args) = command
        .strip_prefix("AT+")
        .and_then(|c| c.split_once('='))
        .ok_or_else(|| {
            format!(
                "\"{command}\" is not a setting; allowed: AT+<command>=<numbers>, one of {allowed}"
            )
        })?;
    if !TUNING_COMMANDS.contains(&name) {
        return Err(format!(
            "AT+{name} is not an audio setting; allowed: {allowed}"
        ));
    }
    let numbers = args.split(',').all(|n| match n.strip_prefix("0x") {
        Some(hex) => (1..=8).contains(&hex.len()) && hex.chars().all(|c| c.is_ascii_hexdigit()),
        None => (1..=8).contains(&n.len()) && n.chars().all(|c| c.is_ascii_digit()),
    });
    if !numbers || args.split(',').count() > 4 {
        return Err(format!(
            "\"{command}\": the values must be up to four numbers (decimal or 0x hex), separated by commas"
        ));
    }
    Ok(())
}

fn read_remote(
    cx: &mut Cx<'_>,
    root: &Table<'_, '_>,
    credentials: &CredentialMap,
) -> Option<Remote> {
    let mut r = Remote {
        allowed_numbers: Vec::new(),
        credentials: None,
    };
    let Some(t) = root.sub(cx, "remote") else {
        return root.value("remote").is_none().then_some(r);
    };
    t.check_keys(cx, &["allowed_numbers", "credentials"]);
    let before = cx.problems.len();
    for (n, span) in t.strings(cx, "allowed_numbers") {
        if is_e164(&n) {
            r.allowed_numbers.push(n);
        } else {
            cx.problem(
                &span,
                &t.key("allowed_numbers"),
                format!("`{n}` is not an E.164 number; {E164_HELP}"),
            );
        }
    }
    if t.value("credentials").is_some() {
        r.credentials = reference_credentials(cx, &t, credentials, false);
        if let Some(name) = &r.credentials {
            hmac_secret(cx, credentials, name);
        }
    } else if !r.allowed_numbers.is_empty() {
        cx.problem(&t.span, &t.key("credentials"), "missing; remote commands must be authenticated: name a [credentials.NAME] table whose secret signs them");
    }
    (cx.problems.len() == before).then_some(r)
}

fn read_gpio(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Option<Gpio> {
    let mut g = Gpio {
        cancel_button: None,
        help_button: None,
        mains_present: None,
        led: None,
    };
    let Some(t) = root.sub(cx, "gpio") else {
        return root.value("gpio").is_none().then_some(g);
    };
    let keys = ["cancel_button", "help_button", "mains_present", "led"];
    t.check_keys(cx, &keys);
    let before = cx.problems.len();
    let mut used: BTreeMap<u8, &str> = BTreeMap::new();
    for key in keys {
        if let Some((pin, span)) = t.integer(cx, key, 0..28) {
            let pin = pin as u8;
            if let Some(other) = used.insert(pin, key) {
                cx.problem(
                    &span,
                    &t.key(key),
                    format!("GPIO {pin} is already used by `{other}`"),
                );
            }
            let slot = match key {
                "cancel_button" => &mut g.cancel_button,
                "help_button" => &mut g.help_button,
                "mains_present" => &mut g.mains_present,
                _ => &mut g.led,
            };
            *slot = Some(pin);
        }
    }
    (cx.problems.len() == before).then_some(g)
}

/// `[fall]`: the fall pendants' accelerometer range (2, 4, 8 or 16 g) and rate (50–200 Hz).
fn read_fall(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Option<vigil_fall::SensorConfig> {
    let mut sensor = vigil_fall::SensorConfig {
        range_g: 16,
        rate_hz: 50,
    };
    let Some(t) = root.sub(cx, "fall") else {
        return root.value("fall").is_none().then_some(sensor);
    };
    t.check_keys(cx, &["range_g", "rate_hz"]);
    let mut ok = true;
    if let Some((g, span)) = t.integer(cx, "range_g", 1..17) {
        match u8::try_from(g) {
            Ok(g @ (2 | 4 | 8 | 16)) => sensor.range_g = g,
            _ => {
                cx.problem(
                    &span,
                    &t.key("range_g"),
                    "an accelerometer range is 2, 4, 8 or 16 g",
                );
                ok = false;
            }
        }
    } else if t.value("range_g").is_some() {
        ok = false;
    }
    let rates = i64::from(vigil_fall::detector::MIN_RATE_HZ)
        ..i64::from(vigil_fall::detector::MAX_RATE_HZ) + 1;
    match t.integer(cx, "rate_hz", rates) {
        Some((hz, _)) => sensor.rate_hz = u16::try_from(hz).unwrap_or(sensor.rate_hz),
        None if t.value("rate_hz").is_some() => ok = false,
        None => {}
    }
    ok.then_some(sensor)
}

fn read_audio(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Option<Audio> {
    let mut a = Audio {
        output_device: None,
        input_device: None,
        call_device: None,
        sounds_dir: "sounds".into(),
    };
    let Some(t) = root.sub(cx, "audio") else {
        return root.value("audio").is_none().then_some(a);
    };
    t.check_keys(
        cx,
        &["output_device", "input_device", "call_device", "sounds_dir"],
    );
    let before = cx.problems.len();
    a.output_device = t.string(cx, "output_device").map(|(s, _)| s);
    a.input_device = t.string(cx, "input_device").map(|(s, _)| s);
    if let Some((s, _)) = t.string(cx, "sounds_dir") {
        a.sounds_dir = s.into();
    }
    if let Some((name, span)) = t.string(cx, "call_device") {
        let key = t.key("call_device");
        if name.trim().is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            cx.problem(
                &span,
                &key,
                "not an ALSA device name; allowed: the module's sound card as `aplay -L` lists it, such as \"plughw:CARD=EC25,DEV=0\"",
            );
        } else if [&a.output_device, &a.input_device]
            .into_iter()
            .any(|d| d.as_deref() == Some(name.as_str()))
        {
            cx.problem(
                &span,
                &key,
                format!("{name} is also the unit's loudspeaker or microphone (audio.output_device, audio.input_device); the call device is the cellular module's own sound card"),
            );
        } else {
            if name.starts_with("hw:") {
                cx.warning(
                    &span,
                    &key,
                    format!("{name} converts no sample rate: the unit carries calls at 8 kHz, which a card set to 16 kHz refuses; \"plug{name}\" converts"),
                );
            }
            if !cfg!(feature = "alsa") {
                cx.warning(
                    &span,
                    &key,
                    "this build has no audio device support (feature `alsa`): cellular calls' speech cannot reach the speakerphone",
                );
            }
            a.call_device = Some(name);
        }
    }
    (cx.problems.len() == before).then_some(a)
}

/// One module carries its calls on one port: SIMCom's voice port or Quectel's sound card.
fn check_call_ports(cx: &mut Cx<'_>, root: &Table<'_, '_>, modem: &Modem, audio: &Audio) {
    if modem.voice_port.is_none() || audio.call_device.is_none() {
        return;
    }
    let span = root
        .value("audio")
        .and_then(|t| match t.get_ref() {
            DeValue::Table(m) => m
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == "call_device")
                .map(|(_, v)| v.span()),
            _ => None,
        })
        .unwrap_or(0..0);
    cx.problem(
        &span,
        "audio.call_device",
        "set together with modem.voice_port; a module carries its calls on one of them: modem.voice_port for SIMCom (AT+CPCMREG), audio.call_device for Quectel's USB audio (AT+QPCMV): keep the one of the module fitted",
    );
}
