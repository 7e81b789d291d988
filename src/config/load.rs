//! Layering: the built-in defaults, then a file, then `SENTRYK8S_*`
//! environment variables, then command-line flags, merged with figment; and
//! the wording of every problem, naming the key and the layer it came from.

use std::path::PathBuf;

use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::types::Config;
use super::validate::validate;

/// The built-in defaults, also the reference documentation of every key.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// Environment variable prefix of every configuration key.
pub const ENV_PREFIX: &str = "SENTRYK8S_";

/// Values given on the command line; `None` means "not given".
///
/// Each field is named after its key path so that one table maps flags to
/// keys, and error messages can name the flag back.
#[derive(Debug, Default, Clone)]
pub struct FlagValues {
    values: Vec<(&'static str, &'static str, Value)>,
}

impl FlagValues {
    /// Records `--flag` as the value of `key` (a dotted path) when given.
    pub fn set<V: Into<Value>>(&mut self, key: &'static str, flag: &'static str, value: Option<V>) {
        if let Some(v) = value {
            self.values.push((key, flag, v.into()));
        }
    }

    fn flag_for(&self, key: &str) -> Option<&'static str> {
        self.values.iter().find(|(k, _, _)| *k == key).map(|(_, f, _)| *f)
    }
}

impl Provider for FlagValues {
    fn metadata(&self) -> Metadata {
        Metadata::named(FLAGS_SOURCE)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut root = Dict::new();
        for (key, _, value) in &self.values {
            insert_path(&mut root, key, value.clone());
        }
        Ok(Profile::Default.collect(root))
    }
}

const DEFAULTS_SOURCE: &str = "built-in defaults";
const FLAGS_SOURCE: &str = "command-line flags";

/// One configuration problem, already phrased for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `scheduler.lease_ttl`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// Where the value came from: a file, an environment variable or a flag.
    pub source: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (from {})", self.key, self.message, self.source)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<Problem>);

/// Loads the configuration from every layer, validates it, and returns it or
/// every problem found.
pub fn load(file: Option<&PathBuf>, flags: &FlagValues) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG));
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError(vec![Problem {
                key: "config".into(),
                message: format!("config file {} does not exist or is not a file", path.display()),
                source: "--config or SENTRYK8S_CONFIG".into(),
            }]));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let figment = figment.merge(environment()).merge(flags.clone());
    extract_all(&figment, flags)
}

/// Keys that are never configuration even though they carry our prefix.
///
/// Kubernetes injects `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT`, … for every
/// Service in the namespace; a Service called `sentryk8s-…` would otherwise
/// turn into "unknown key" errors and a crash loop. `CONFIG` names the file.
fn is_ignored_env_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "config"
        || key == "port"
        || key.starts_with("port_")
        || key.contains("_service_")
        || key.ends_with("_service_host")
        || key.ends_with("_port")
        || key.contains("_port_")
}

/// `SENTRYK8S_*` variables, renamed so errors can name the real variable
/// (Env's own metadata interpolates `A.B`, not `SENTRYK8S_A__B`).
fn environment() -> impl Provider {
    let env = Env::prefixed(ENV_PREFIX).split("__").filter(|key| !is_ignored_env_key(key.as_str()));
    struct Named(Env);
    impl Provider for Named {
        fn metadata(&self) -> Metadata {
            Metadata::named("environment")
        }
        fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
            self.0.data()
        }
    }
    Named(env)
}

/// Deserializes, collecting every problem instead of stopping at the first.
///
/// serde stops at the first error, so after each one the offending key is
/// put back to its default (or removed, when unknown) and extraction runs
/// again. `figment` keeps the original layering to say where each value
/// came from.
fn extract_all(figment: &Figment, flags: &FlagValues) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let mut data: Dict = match figment.data() {
        Ok(map) => map.get(&Profile::Default).cloned().unwrap_or_default(),
        Err(err) => {
            // A file that is not valid TOML, or unreadable.
            return Err(ConfigError(
                err.into_iter()
                    .map(|e| Problem {
                        key: if e.path.is_empty() { "config".into() } else { e.path.join(".") },
                        message: e.kind.to_string(),
                        source: e
                            .metadata
                            .as_ref()
                            .map(|m| describe_metadata(m, ""))
                            .unwrap_or_else(|| "config file".into()),
                    })
                    .collect(),
            ));
        }
    };
    let defaults: Dict = Figment::from(Toml::string(DEFAULT_CONFIG))
        .data()
        .ok()
        .and_then(|m| m.get(&Profile::Default).cloned())
        .unwrap_or_default();

    // Each round removes at least one key, so this ends; the bound is a guard.
    for _ in 0..256 {
        let candidate = Figment::from(figment::providers::Serialized::defaults(&data));
        match candidate.extract::<Config>() {
            Ok(config) => {
                problems.extend(validate(&config).into_iter().map(|(key, message)| Problem {
                    source: describe_source(figment, flags, &key),
                    key,
                    message,
                }));
                if problems.is_empty() {
                    return Ok(config);
                }
                return Err(ConfigError(problems));
            }
            Err(errors) => {
                let mut progressed = false;
                for error in errors {
                    let (key, message) = describe_error(&error);
                    problems.push(Problem {
                        source: describe_source(figment, flags, &key),
                        key: key.clone(),
                        message,
                    });
                    progressed |= reset_key(&mut data, &defaults, &key);
                }
                if !progressed {
                    break;
                }
            }
        }
    }
    Err(ConfigError(problems))
}

/// Puts `key` back to its default value, or removes it when it has none.
/// Returns whether anything changed.
fn reset_key(data: &mut Dict, defaults: &Dict, key: &str) -> bool {
    match lookup_path(defaults, key) {
        Some(default) if lookup_path(data, key) != Some(default) => {
            insert_path(data, key, default.clone());
            true
        }
        Some(_) => false,
        None => remove_path(data, key),
    }
}

fn lookup_path<'a>(dict: &'a Dict, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let mut current = dict.get(parts.next()?)?;
    for part in parts {
        current = current.as_dict()?.get(part)?;
    }
    Some(current)
}

fn insert_path(dict: &mut Dict, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            dict.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = dict.entry(head.to_string()).or_insert_with(|| Value::from(Dict::new()));
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

fn remove_path(dict: &mut Dict, key: &str) -> bool {
    match key.split_once('.') {
        None => dict.remove(key).is_some(),
        Some((head, rest)) => match dict.get_mut(head) {
            Some(Value::Dict(_, inner)) => remove_path(inner, rest),
            // The parent is not a table (e.g. `scheduler = 3`): drop it whole.
            Some(_) => dict.remove(head).is_some(),
            None => false,
        },
    }
}

/// Turns a figment error into (key path, message).
fn describe_error(error: &figment::Error) -> (String, String) {
    use figment::error::Kind;
    let mut path: Vec<String> = error.path.clone();
    // Serialized::defaults puts everything under the default profile name.
    if path.first().map(|p| p == "default").unwrap_or(false) {
        path.remove(0);
    }
    match &error.kind {
        Kind::UnknownField(field, _) => {
            if path.last() != Some(field) {
                path.push(field.clone());
            }
            (path.join("."), "unknown key".to_string())
        }
        Kind::MissingField(field) => {
            path.push(field.to_string());
            (path.join("."), "missing".to_string())
        }
        Kind::InvalidType(actual, expected) => {
            (path.join("."), format!("wrong type: found {}, expected {expected}", shown(actual)))
        }
        Kind::InvalidValue(actual, expected) => {
            (path.join("."), format!("invalid value: found {}, expected {expected}", shown(actual)))
        }
        Kind::UnknownVariant(actual, expected) => {
            (path.join("."), format!("unknown value \"{actual}\", expected one of: {}", expected.join(", ")))
        }
        other => (path.join("."), other.to_string()),
    }
}

/// A rejected value as the error shows it. Strings are not echoed: a
/// misspelt key may well hold a URL with a password (`SENTRYK8S_DATABASE=…`).
fn shown(actual: &figment::error::Actual) -> String {
    match actual {
        figment::error::Actual::Str(_) => "a string".to_string(),
        other => other.to_string(),
    }
}

/// Names the layer that supplied `key`: a file, an environment variable, a flag.
fn describe_source(figment: &Figment, flags: &FlagValues, key: &str) -> String {
    // An unknown key's parent may be what figment knows; walk up until found.
    let mut probe = key.to_string();
    loop {
        if let Some(meta) = figment.find_metadata(&probe) {
            if meta.name == FLAGS_SOURCE {
                if let Some(flag) = flags.flag_for(&probe) {
                    return format!("command-line flag {flag}");
                }
            }
            return describe_metadata(meta, key);
        }
        match probe.rsplit_once('.') {
            Some((parent, _)) => probe = parent.to_string(),
            None => return DEFAULTS_SOURCE.to_string(),
        }
    }
}

fn describe_metadata(meta: &Metadata, key: &str) -> String {
    if meta.name == "environment" {
        return format!("environment variable {ENV_PREFIX}{}", key.replace('.', "__").to_ascii_uppercase());
    }
    match &meta.source {
        Some(figment::Source::File(path)) => format!("config file {}", path.display()),
        Some(figment::Source::Code(_)) | None if meta.name.contains("TOML") => DEFAULTS_SOURCE.to_string(),
        _ => meta.name.to_string(),
    }
}

impl Config {
    /// The built-in defaults alone (used by tests and by `config --defaults`).
    pub fn defaults() -> Result<Config, ConfigError> {
        load(None, &FlagValues::default())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn load_toml(text: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("sentryk8s-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.toml", text.len()));
        std::fs::write(&path, text).unwrap();
        let figment = Figment::from(Toml::string(DEFAULT_CONFIG)).merge(Toml::file_exact(&path));
        extract_all(&figment, &FlagValues::default())
    }

    #[test]
    fn defaults_are_valid() {
        let figment = Figment::from(Toml::string(DEFAULT_CONFIG));
        let config = extract_all(&figment, &FlagValues::default()).expect("defaults load");
        assert_eq!(config.scheduler.lease_ttl, Duration::from_secs(15));
        assert_eq!(config.worker.body_limit, 1 << 20);
    }

    #[test]
    fn every_problem_is_reported_with_key_and_file() {
        let err = load_toml(
            "bogus = 1\n[scheduler]\nrenew_interval = \"ten\"\nlease_ttl = 5\n[worker]\nconcurency = 3\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"bogus"), "{err}");
        assert!(keys.contains(&"scheduler.renew_interval"), "{err}");
        assert!(keys.contains(&"scheduler.lease_ttl"), "{err}");
        assert!(keys.contains(&"worker.concurency"), "{err}");
        for p in &err.0 {
            assert!(p.source.starts_with("config file "), "{p}");
        }
    }

    #[test]
    fn range_problems_name_the_key() {
        let err = load_toml("[scheduler]\nlease_ttl = \"2s\"\n").unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].key, "scheduler.renew_interval");
    }

    #[test]
    fn flags_win_and_are_named() {
        let mut flags = FlagValues::default();
        flags.set("scheduler.lease_ttl", "--lease-ttl", Some("ten"));
        let figment = Figment::from(Toml::string(DEFAULT_CONFIG)).merge(flags.clone());
        let err = extract_all(&figment, &flags).unwrap_err();
        assert_eq!(err.0[0].source, "command-line flag --lease-ttl", "{err}");
    }

    #[test]
    fn kubernetes_service_links_are_not_config() {
        assert!(is_ignored_env_key("SCHEDULER_SERVICE_HOST"));
        assert!(is_ignored_env_key("port"));
        assert!(is_ignored_env_key("WORKER_PORT_9090_TCP_ADDR"));
        assert!(!is_ignored_env_key("database_url"));
        assert!(!is_ignored_env_key("scheduler__lease_ttl"));
    }
}
