//! Loading a binary's configuration: a TOML file, then `FREYA_*` environment overrides, then
//! validation — once, at start, with errors that name the key — so the rest of the code takes
//! plain values and never looks anything up.
//!
//! An environment variable names a key path with `__` between levels:
//! `FREYA_DATABASE__URL=postgres://...` sets `database.url`, `FREYA_REGION=eu` sets `region`.
//! Its value is read as a TOML value when it parses as one (`42`, `true`, `"quoted"`), else as a
//! plain string. Variables whose first segment is not a key of the configuration are left alone
//! (other programs' settings, like `FREYA_LLM_BASE_URL`, share the prefix); below a known key,
//! a misspelt one is an error like in the file.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use thiserror::Error;

/// Why a configuration could not be loaded; each variant names the file, variable or key.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - `{}`: {}", p.key, p.message)).collect::<Vec<_>>().join("\n"))]
    Problems(Vec<ConfigProblem>),
}

/// One thing wrong with one key, found by a [`Validate`] implementation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

impl ConfigProblem {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Checks that go beyond types (ports, ranges, files that must exist), reported all at once.
pub trait Validate {
    /// Every problem found; empty when the configuration is usable.
    fn validate(&self) -> Vec<ConfigProblem>;
}

/// Reads `path` (when given), applies overrides from `env` (pairs of name and value, usually
/// `std::env::vars()`) whose names start with `prefix`, and validates the result.
pub fn load<T, I>(path: Option<&Path>, prefix: &str, env: I) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Validate,
    I: IntoIterator<Item = (String, String)>,
{
    let mut root = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            text.parse::<toml::Table>()
                .map_err(|e| ConfigError::Syntax {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
        }
        None => toml::Table::new(),
    };
    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix) && name.len() > prefix.len())
        .collect();
    overrides.sort();
    let known = top_level_keys::<T>();
    for (var, raw) in overrides {
        let first = var[prefix.len()..]
            .split("__")
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !known.contains(&first.as_str()) {
            tracing::debug!(%var, "environment variable names no configuration key; ignored");
            continue;
        }
        apply_override(&mut root, &var, &var[prefix.len()..], &raw)?;
    }
    let config: T = from_table(root)?;
    let problems = config.validate();
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Problems(problems))
    }
}

/// The field names of the struct `T`, read from its `Deserialize` implementation.
fn top_level_keys<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut probe = FieldProbe(None);
    let _ = T::deserialize(&mut probe);
    probe.0.unwrap_or(&[])
}

/// A deserializer that only records the fields a struct asks for, then stops.
struct FieldProbe(Option<&'static [&'static str]>);

impl<'de> serde::Deserializer<'de> for &mut FieldProbe {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("field probe"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = Some(fields);
        Err(serde::de::Error::custom("field probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Deserializes a TOML table, reporting the dotted path of the key that does not fit.
fn from_table<T: DeserializeOwned>(table: toml::Table) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // serde reports a missing key at its parent; name the key itself.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let key = match (path.as_str(), missing) {
            (".", Some(name)) => name.to_owned(),
            (".", None) => "(top level)".to_owned(),
            (parent, Some(name)) => format!("{parent}.{name}"),
            (parent, None) => parent.to_owned(),
        };
        ConfigError::Invalid { key, message }
    })
}

fn apply_override(
    root: &mut toml::Table,
    var: &str,
    path: &str,
    raw: &str,
) -> Result<(), ConfigError> {
    let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(ConfigError::Env {
            var: var.into(),
            message: "empty key segment (use `__` only between key names)".into(),
        });
    }
    let value = parse_env_value(raw);
    let (last, parents) = keys.split_last().ok_or_else(|| ConfigError::Env {
        var: var.into(),
        message: "names no key".into(),
    })?;
    let mut table = root;
    for key in parents {
        let entry = table
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| ConfigError::Env {
            var: var.into(),
            message: format!("`{key}` is not a table in the config file"),
        })?;
    }
    table.insert(last.clone(), value);
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

/// Checks that `value` parses as a socket address, for [`Validate`] implementations.
pub fn check_socket_addr(key: &str, value: &str, problems: &mut Vec<ConfigProblem>) {
    if value.parse::<std::net::SocketAddr>().is_err() {
        problems.push(ConfigProblem::new(
            key,
            format!("`{value}` is not an address of the form IP:PORT"),
        ));
    }
}

/// Checks that `value` is at least `min`, for [`Validate`] implementations: counts, timeouts
/// and limits below which a setting cannot work.
pub fn check_at_least(key: &str, value: u64, min: u64, problems: &mut Vec<ConfigProblem>) {
    if value < min {
        problems.push(ConfigProblem::new(key, format!("must be at least {min}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: String,
        #[serde(default)]
        port: u16,
        #[serde(default)]
        database: Db,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Db {
        #[serde(default)]
        url: String,
        #[serde(default)]
        max_connections: u32,
    }

    impl Validate for Sample {
        fn validate(&self) -> Vec<ConfigProblem> {
            if self.port == 1 {
                vec![ConfigProblem::new("port", "must not be 1")]
            } else {
                vec![]
            }
        }
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), text).expect("write temp file");
        file
    }

    /// Why a file holding `text` fails to load, with no environment.
    fn load_error(text: &str) -> String {
        let file = write(text);
        load::<Sample, _>(Some(file.path()), "FREYA_", vec![])
            .unwrap_err()
            .to_string()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn environment_overrides_file_values_at_any_depth() {
        let file = write("name = \"a\"\nport = 5\n[database]\nurl = \"sqlite://x\"\n");
        let cfg: Sample = load(
            Some(file.path()),
            "FREYA_",
            env(&[
                ("FREYA_PORT", "7"),
                ("FREYA_DATABASE__MAX_CONNECTIONS", "12"),
                ("OTHER_NAME", "ignored"),
                ("FREYA_SOMETHING_ELSE", "not ours"),
            ]),
        )
        .expect("loads");
        assert_eq!(cfg.name, "a");
        assert_eq!(cfg.port, 7);
        assert_eq!(cfg.database.url, "sqlite://x");
        assert_eq!(cfg.database.max_connections, 12);
    }

    #[test]
    fn a_misspelt_key_below_a_known_one_is_refused() {
        let file = write("name = \"a\"\n");
        let text = load::<Sample, _>(
            Some(file.path()),
            "FREYA_",
            env(&[("FREYA_DATABASE__URLL", "x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(text.contains("urll"), "{text}");
    }

    #[test]
    fn a_wrongly_typed_key_is_named_with_its_path() {
        let file = write("name = \"a\"\n[database]\nmax_connections = \"lots\"\n");
        let err = load::<Sample, _>(Some(file.path()), "FREYA_", vec![]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("database.max_connections"), "{text}");
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let text = load_error("name = \"a\"\n[database]\nurll = \"x\"\n");
        assert!(text.contains("database") && text.contains("urll"), "{text}");
    }

    #[test]
    fn a_missing_required_key_is_named() {
        let text = load_error("port = 3\n");
        assert!(text.contains("config key `name`"), "{text}");
    }

    #[test]
    fn a_toml_syntax_error_names_the_file_and_line() {
        let text = load_error("name = \"a\"\nport = = 3\n");
        assert!(
            text.contains("not valid TOML") && text.contains("line 2"),
            "{text}"
        );
    }

    #[test]
    fn validation_problems_name_the_key() {
        let text = load_error("name = \"a\"\nport = 1\n");
        assert!(text.contains("`port`: must not be 1"), "{text}");
    }

    #[test]
    fn a_missing_file_is_reported_with_its_path() {
        let err = load::<Sample, _>(Some(Path::new("/nonexistent/freya.toml")), "FREYA_", vec![])
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/freya.toml"));
    }
}
