//! Configuration: one set of properties per environment (`dev`, `prod`, …).
//!
//! BigFlow's `Config` rules, made strict:
//! - the master environment's properties are inherited by every other one;
//! - the default environment is used when neither `--config` nor `bf_env`
//!   names one;
//! - a property whose value is `None`/absent in code comes from the OS
//!   environment variable `bf_<name>` (prefix configurable, e.g. `bamboo_bf_`);
//! - string values may refer to other properties as `{name}`; `{env}` is the
//!   environment's name. References resolve recursively; a cycle or a missing
//!   name is an error naming it.
//!
//! [`ResolvedConfig::deserialize`] turns the result into a user `struct`
//! (BigFlow's typed "Konfig"). The same type reads the `[deployment]` table of
//! `bigflow.toml`.

use std::fmt::Write as _;

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::interpolate::{InterpolationError, try_interpolate};

/// The properties of one environment, in declaration order.
pub type Properties = IndexMap<String, Value>;

/// The default prefix of configuration environment variables.
pub const DEFAULT_ENV_VAR_PREFIX: &str = "bf_";

/// Keys of a `[deployment]`-style TOML table that are settings, not environments.
const TOML_SETTINGS: &[&str] = &["master", "default", "env_prefix"];

/// A configuration error; every message names the environment and property.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No environment named and none is default.
    #[error(
        "no configuration environment chosen and none is the default; pass --config ENV or set {var} (known: {known})"
    )]
    NoEnvChosen {
        /// The environment variable that could have named it.
        var: String,
        /// Known environments.
        known: String,
    },
    /// The named environment does not exist.
    #[error("unknown config environment '{name}'; known environments: {known}")]
    UnknownEnv {
        /// The name asked for.
        name: String,
        /// Known environments.
        known: String,
    },
    /// A property without a value whose environment variable is unset.
    #[error(
        "property '{key}' of config '{env}' has no value and the environment variable '{var}' is not set; set it or give the property a value"
    )]
    MissingEnvVar {
        /// The environment.
        env: String,
        /// The property.
        key: String,
        /// The variable looked up.
        var: String,
    },
    /// A property refers to itself through other properties.
    #[error("cyclic reference in config '{env}': {cycle}")]
    Cycle {
        /// The environment.
        env: String,
        /// `a -> b -> a`.
        cycle: String,
    },
    /// A `{name}` in a property could not be filled.
    #[error("property '{key}' of config '{env}': {source}")]
    Interpolation {
        /// The environment.
        env: String,
        /// The property holding the template.
        key: String,
        /// What went wrong.
        source: InterpolationError,
    },
    /// A property asked for does not exist.
    #[error(
        "config '{env}' has no property '{key}' and the environment variable '{var}' is not set"
    )]
    MissingKey {
        /// The environment.
        env: String,
        /// The property.
        key: String,
        /// The variable looked up.
        var: String,
    },
    /// A property has the wrong type.
    #[error("property '{key}' of config '{env}' is {found}, expected {expected}")]
    WrongType {
        /// The environment.
        env: String,
        /// The property.
        key: String,
        /// What it is.
        found: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The resolved properties do not fit the user's struct.
    #[error("config '{env}' does not match the expected structure: {message}")]
    Deserialize {
        /// The environment.
        env: String,
        /// serde's message.
        message: String,
    },
    /// A configuration file is malformed.
    #[error("{location}: {message}")]
    Invalid {
        /// Where (file and table).
        location: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Per-environment properties with BigFlow's master/default rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    envs: IndexMap<String, Properties>,
    master: Option<String>,
    default: Option<String>,
    prefix: Option<String>,
}

fn to_properties<K: Into<String>, V: Into<Value>>(
    props: impl IntoIterator<Item = (K, V)>,
) -> Properties {
    props
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

impl Config {
    /// The first environment; like BigFlow's `Config(name, props)` it is both
    /// master and default.
    pub fn new<K: Into<String>, V: Into<Value>>(
        name: &str,
        props: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self::with_flags(name, props, true, true)
    }

    /// The first environment with explicit master/default flags.
    pub fn with_flags<K: Into<String>, V: Into<Value>>(
        name: &str,
        props: impl IntoIterator<Item = (K, V)>,
        is_master: bool,
        is_default: bool,
    ) -> Self {
        let mut c = Config::default();
        c.envs.insert(name.to_string(), to_properties(props));
        c.master = is_master.then(|| name.to_string());
        c.default = is_default.then(|| name.to_string());
        c
    }

    /// Adds another environment (inherits the master's properties).
    pub fn add_configuration<K: Into<String>, V: Into<Value>>(
        mut self,
        name: &str,
        props: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.envs.insert(name.to_string(), to_properties(props));
        self
    }

    /// Makes `name` the default environment.
    pub fn default_env(mut self, name: &str) -> Self {
        self.default = Some(name.to_string());
        self
    }

    /// Sets the prefix of environment variables (default `bf_`).
    pub fn env_var_prefix(mut self, prefix: &str) -> Self {
        self.prefix = Some(prefix.to_string());
        self
    }

    /// The prefix of environment variables.
    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(DEFAULT_ENV_VAR_PREFIX)
    }

    /// Environment names in declaration order.
    pub fn env_names(&self) -> impl Iterator<Item = &str> {
        self.envs.keys().map(String::as_str)
    }

    /// The default environment, if any.
    pub fn default_env_name(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// Reads a TOML table: `master`, `default`, `env_prefix` settings and one
    /// sub-table per environment; without `master`/`default` the first
    /// environment is both. `location` names the table in errors.
    pub fn from_toml(table: &toml::Table, location: &str) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            location: location.to_string(),
            message,
        };
        let mut c = Config::default();
        for (key, value) in table {
            match (key.as_str(), value) {
                (setting, toml::Value::String(s)) if TOML_SETTINGS.contains(&setting) => {
                    match setting {
                        "master" => c.master = Some(s.clone()),
                        "default" => c.default = Some(s.clone()),
                        _ => c.prefix = Some(s.clone()),
                    }
                }
                (setting, _) if TOML_SETTINGS.contains(&setting) => {
                    return Err(invalid(format!(
                        "'{setting}' must be a string naming an environment"
                    )));
                }
                (env, toml::Value::Table(props)) => {
                    let json = serde_json::to_value(props)
                        .map_err(|e| invalid(format!("environment '{env}': {e}")))?;
                    let Value::Object(map) = json else {
                        unreachable!("a TOML table is a JSON object")
                    };
                    c.envs.insert(env.to_string(), map.into_iter().collect());
                }
                (other, _) => {
                    return Err(invalid(format!(
                        "'{other}' is neither a setting ({}) nor an environment table like [{location}.{other}]",
                        TOML_SETTINGS.join(", ")
                    )));
                }
            }
        }
        // Like `Config::new`: the first environment is master and default unless named.
        let first = c.envs.keys().next().cloned();
        if c.master.is_none() {
            c.master = first.clone();
        }
        if c.default.is_none() {
            c.default = first;
        }
        for (what, name) in [("master", &c.master), ("default", &c.default)] {
            if let Some(name) = name
                && !c.envs.contains_key(name)
            {
                return Err(invalid(format!(
                    "{what} = '{name}' names no environment; known: {}",
                    c.known()
                )));
            }
        }
        Ok(c)
    }

    fn known(&self) -> String {
        if self.envs.is_empty() {
            "none".to_string()
        } else {
            self.envs.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    }

    /// Chooses the environment: `explicit`, else `<prefix>env`, else the default.
    pub fn choose_env(
        &self,
        explicit: Option<&str>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, ConfigError> {
        let var = format!("{}env", self.prefix());
        let name = explicit
            .map(str::to_string)
            .or_else(|| lookup(&var))
            .or_else(|| self.default.clone())
            .ok_or_else(|| ConfigError::NoEnvChosen {
                var,
                known: self.known(),
            })?;
        if self.envs.contains_key(&name) {
            Ok(name)
        } else {
            Err(ConfigError::UnknownEnv {
                name,
                known: self.known(),
            })
        }
    }

    /// Resolves an environment using the process environment.
    pub fn resolve(&self, env: Option<&str>) -> Result<ResolvedConfig, ConfigError> {
        self.resolve_with(env, &|var| std::env::var(var).ok())
    }

    /// Resolves an environment, reading variables through `lookup`.
    pub fn resolve_with(
        &self,
        env: Option<&str>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ResolvedConfig, ConfigError> {
        let name = self.choose_env(env, lookup)?;
        let mut merged = Properties::new();
        if let Some(master) = &self.master
            && master != &name
        {
            merged.extend(self.envs[master].clone());
        }
        merged.extend(self.envs[&name].clone());
        merged.insert("env".to_string(), Value::String(name.clone()));
        for (key, value) in merged.iter_mut() {
            if value.is_null() {
                let var = format!("{}{key}", self.prefix());
                *value = Value::String(lookup(&var).ok_or_else(|| ConfigError::MissingEnvVar {
                    env: name.clone(),
                    key: key.clone(),
                    var,
                })?);
            }
        }
        let mut resolver = Resolver {
            env: &name,
            raw: &merged,
            done: IndexMap::new(),
            stack: Vec::new(),
        };
        let keys: Vec<String> = merged.keys().cloned().collect();
        for key in &keys {
            resolver.resolve(key)?;
        }
        let properties = keys.into_iter().map(|k| {
            let v = resolver.done[&k].clone();
            (k, v)
        });
        Ok(ResolvedConfig {
            env: name.clone(),
            prefix: self.prefix().to_string(),
            properties: properties.collect(),
        })
    }

    /// Every environment's resolved properties, for people to read. Values of
    /// properties whose names suggest secrets are masked.
    pub fn pretty_print(&self) -> String {
        self.pretty_print_with(&|var| std::env::var(var).ok())
    }

    /// [`Config::pretty_print`] reading variables through `lookup`.
    pub fn pretty_print_with(&self, lookup: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for name in self.envs.keys() {
            let marks: Vec<&str> = [("master", &self.master), ("default", &self.default)]
                .into_iter()
                .filter(|(_, n)| n.as_deref() == Some(name))
                .map(|(m, _)| m)
                .collect();
            let marks = if marks.is_empty() {
                String::new()
            } else {
                format!(" ({})", marks.join(", "))
            };
            let _ = writeln!(out, "{name} config{marks}:");
            match self.resolve_with(Some(name), lookup) {
                Ok(resolved) => out.push_str(&resolved.pretty_print()),
                Err(e) => {
                    let _ = writeln!(out, "    error: {e}");
                }
            }
        }
        out
    }
}

struct Resolver<'a> {
    env: &'a str,
    raw: &'a Properties,
    done: IndexMap<String, Value>,
    stack: Vec<String>,
}

impl Resolver<'_> {
    fn resolve(&mut self, key: &str) -> Result<Value, ConfigError> {
        if let Some(v) = self.done.get(key) {
            return Ok(v.clone());
        }
        if let Some(pos) = self.stack.iter().position(|k| k == key) {
            let mut cycle: Vec<&str> = self.stack[pos..].iter().map(String::as_str).collect();
            cycle.push(key);
            return Err(ConfigError::Cycle {
                env: self.env.to_string(),
                cycle: cycle.join(" -> "),
            });
        }
        let raw = self.raw.get(key).cloned().unwrap_or(Value::Null);
        self.stack.push(key.to_string());
        let resolved = self.resolve_value(key, &raw)?;
        self.stack.pop();
        self.done.insert(key.to_string(), resolved.clone());
        Ok(resolved)
    }

    fn resolve_value(&mut self, key: &str, value: &Value) -> Result<Value, ConfigError> {
        Ok(match value {
            Value::String(template) => Value::String(
                try_interpolate(template, |name| {
                    if !self.raw.contains_key(name) {
                        return Err(ConfigError::Interpolation {
                            env: self.env.to_string(),
                            key: key.to_string(),
                            source: InterpolationError::Unknown {
                                name: name.to_string(),
                                hint: format!(
                                    "; config '{}' defines: {}",
                                    self.env,
                                    self.raw.keys().cloned().collect::<Vec<_>>().join(", ")
                                ),
                            },
                        });
                    }
                    Ok(scalar_text(&self.resolve(name)?))
                })
                .map_err(|e| match e {
                    ConfigError::Interpolation { source, key: k, .. } if k.is_empty() => {
                        ConfigError::Interpolation {
                            env: self.env.to_string(),
                            key: key.to_string(),
                            source,
                        }
                    }
                    other => other,
                })?,
            ),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.resolve_value(key, v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.resolve_value(key, v)?)))
                    .collect::<Result<_, ConfigError>>()?,
            ),
            other => other.clone(),
        })
    }
}

impl From<InterpolationError> for ConfigError {
    fn from(source: InterpolationError) -> Self {
        // Filled in with env and key by the resolver.
        ConfigError::Interpolation {
            env: String::new(),
            key: String::new(),
            source,
        }
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["secret", "password", "token", "credential", "private_key"]
        .iter()
        .any(|s| k.contains(s))
}

/// One environment's properties after inheritance, variables and interpolation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvedConfig {
    env: String,
    prefix: String,
    properties: Properties,
}

impl ResolvedConfig {
    /// An empty configuration for an environment (workflows without a `Config`).
    pub fn empty(env: &str) -> Self {
        let mut properties = Properties::new();
        properties.insert("env".into(), Value::String(env.to_string()));
        ResolvedConfig {
            env: env.to_string(),
            prefix: DEFAULT_ENV_VAR_PREFIX.to_string(),
            properties,
        }
    }

    /// The environment's name.
    pub fn env(&self) -> &str {
        &self.env
    }

    /// The prefix of the environment variables this config reads (`bf_`).
    pub fn env_var_prefix(&self) -> &str {
        &self.prefix
    }

    /// All properties.
    pub fn properties(&self) -> &Properties {
        &self.properties
    }

    /// A property as declared (after resolution), if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.properties.get(key)
    }

    /// A property as text; a missing property falls back to the environment
    /// variable `<prefix><key>` like BigFlow's `resolve_property`.
    pub fn get_str(&self, key: &str) -> Result<String, ConfigError> {
        match self.properties.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other @ (Value::Number(_) | Value::Bool(_))) => Ok(other.to_string()),
            Some(other) => Err(ConfigError::WrongType {
                env: self.env.clone(),
                key: key.to_string(),
                found: type_name(other).to_string(),
                expected: "a string",
            }),
            None => {
                let var = format!("{}{key}", self.prefix);
                std::env::var(&var).map_err(|_| ConfigError::MissingKey {
                    env: self.env.clone(),
                    key: key.to_string(),
                    var,
                })
            }
        }
    }

    /// The properties as a user struct (serde); unknown properties are ignored
    /// unless the struct denies them.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let object: serde_json::Map<String, Value> = self.properties.clone().into_iter().collect();
        serde_json::from_value(Value::Object(object)).map_err(|e| ConfigError::Deserialize {
            env: self.env.clone(),
            message: e.to_string(),
        })
    }

    /// `    key = value` lines, secrets masked.
    pub fn pretty_print(&self) -> String {
        let width = self.properties.keys().map(String::len).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in &self.properties {
            let shown = if looks_secret(k) {
                "\"***\"".to_string()
            } else {
                v.to_string()
            };
            let _ = writeln!(out, "    {k:width$} = {shown}");
        }
        out
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_vars(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn references_that_double_at_each_level_are_an_error_not_an_abort() {
        // a40 would be 8 TiB of text.
        let mut props = vec![("a0".to_string(), Value::from("xxxxxxxx"))];
        for n in 1..=40 {
            props.push((
                format!("a{n}"),
                Value::from(format!("{{a{0}}}{{a{0}}}", n - 1)),
            ));
        }
        let e = Config::new("dev", props)
            .resolve_with(None, &no_vars)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "property 'a22' of config 'dev': filling in the placeholders makes more than 16777216 bytes of text; look for properties that refer to each other repeatedly"
        );
    }

    fn sample() -> Config {
        Config::new(
            "dev",
            [
                ("project", Value::from("p-{env}")),
                ("bucket", Value::from("{project}-bucket")),
                ("path", Value::from("gs://{bucket}/x")),
                ("workers", Value::from(2)),
            ],
        )
        .add_configuration("prod", [("project", "p-production")])
    }

    #[test]
    fn master_inheritance_and_recursive_interpolation() {
        let dev = sample().resolve_with(None, &no_vars).unwrap();
        assert_eq!(dev.get_str("path").unwrap(), "gs://p-dev-bucket/x");
        assert_eq!(dev.get_str("env").unwrap(), "dev");
        let prod = sample().resolve_with(Some("prod"), &no_vars).unwrap();
        assert_eq!(prod.get_str("path").unwrap(), "gs://p-production-bucket/x");
        assert_eq!(prod.get("workers"), Some(&Value::from(2)));
    }

    #[test]
    fn env_from_variable_and_none_values() {
        let c = sample().add_configuration("ci", [("token", Value::Null)]);
        let vars = |v: &str| match v {
            "bf_env" => Some("ci".to_string()),
            "bf_token" => Some("s3cret".to_string()),
            _ => None,
        };
        let r = c.resolve_with(None, &vars).unwrap();
        assert_eq!(r.env(), "ci");
        assert_eq!(r.get_str("token").unwrap(), "s3cret");
        assert!(!r.pretty_print().contains("s3cret"));
        let e = c.resolve_with(Some("ci"), &no_vars).unwrap_err();
        assert_eq!(
            e.to_string(),
            "property 'token' of config 'ci' has no value and the environment variable 'bf_token' is not set; set it or give the property a value"
        );
        let custom = c.clone().env_var_prefix("bamboo_bf_");
        let vars = |v: &str| (v == "bamboo_bf_token").then(|| "x".to_string());
        assert_eq!(
            custom
                .resolve_with(Some("ci"), &vars)
                .unwrap()
                .get_str("token")
                .unwrap(),
            "x"
        );
    }

    #[test]
    fn errors_name_the_culprit() {
        let e = sample().resolve_with(Some("stage"), &no_vars).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown config environment 'stage'; known environments: dev, prod"
        );

        let cyclic = Config::new("dev", [("a", "{b}"), ("b", "x{c}"), ("c", "{a}")]);
        let e = cyclic.resolve_with(None, &no_vars).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cyclic reference in config 'dev': a -> b -> c -> a"
        );

        let missing = Config::new("dev", [("a", "{nope}")]);
        let e = missing
            .resolve_with(None, &no_vars)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("property 'a' of config 'dev': unknown placeholder '{nope}'"),
            "{e}"
        );

        let unclosed = Config::new("dev", [("a", "{oops")]);
        let e = unclosed
            .resolve_with(None, &no_vars)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("property 'a' of config 'dev': '{' at byte 0"),
            "{e}"
        );

        let no_default = Config::with_flags("dev", [("a", "b")], true, false);
        let e = no_default
            .resolve_with(None, &no_vars)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pass --config ENV or set bf_env"), "{e}");

        let r = sample().resolve_with(None, &no_vars).unwrap();
        assert!(
            r.get_str("definitely_missing_key_xyz")
                .unwrap_err()
                .to_string()
                .contains("bf_definitely_missing_key_xyz")
        );
    }

    #[test]
    fn typed_config() {
        #[derive(serde::Deserialize)]
        struct Typed {
            path: String,
            workers: u32,
        }
        let t: Typed = sample()
            .resolve_with(None, &no_vars)
            .unwrap()
            .deserialize()
            .unwrap();
        assert_eq!((t.path.as_str(), t.workers), ("gs://p-dev-bucket/x", 2));
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Wrong {
            workers: String,
        }
        let e = sample()
            .resolve_with(None, &no_vars)
            .unwrap()
            .deserialize::<Wrong>()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("config 'dev' does not match the expected structure: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn from_toml_table() {
        let t: toml::Table = toml::from_str(
            r#"
            master = "dev"
            default = "dev"
            [dev]
            gcp_project_id = "p-dev"
            dags_bucket = "{gcp_project_id}-dags"
            [prod]
            gcp_project_id = "p-prod"
            "#,
        )
        .unwrap();
        let c = Config::from_toml(&t, "bigflow.toml [deployment]").unwrap();
        let r = c.resolve_with(Some("prod"), &no_vars).unwrap();
        assert_eq!(r.get_str("dags_bucket").unwrap(), "p-prod-dags");
        let implicit: toml::Table = toml::from_str("[dev]\na = \"x\"\n[prod]\nb = \"y\"").unwrap();
        let r = Config::from_toml(&implicit, "t")
            .unwrap()
            .resolve_with(None, &no_vars)
            .unwrap();
        assert_eq!((r.env(), r.get_str("a").unwrap().as_str()), ("dev", "x"));
        let r = Config::from_toml(&implicit, "t")
            .unwrap()
            .resolve_with(Some("prod"), &no_vars)
            .unwrap();
        assert_eq!(
            r.get_str("a").unwrap(),
            "x",
            "prod inherits the first (master) environment"
        );
        let bad: toml::Table = toml::from_str("default = \"stage\"\n[dev]\na = 1").unwrap();
        assert_eq!(
            Config::from_toml(&bad, "bigflow.toml [deployment]")
                .unwrap_err()
                .to_string(),
            "bigflow.toml [deployment]: default = 'stage' names no environment; known: dev"
        );
    }

    #[test]
    fn pretty_print_shows_every_env() {
        let text = sample().pretty_print_with(&no_vars);
        assert!(
            text.starts_with("dev config (master, default):\n    project = \"p-dev\"\n"),
            "{text}"
        );
        assert!(
            text.contains("prod config:\n    project = \"p-production\""),
            "{text}"
        );
    }
}
