//! `--runtime-config-file`: the parts of Spin's runtime config that
//! spin-operator writes for an app like this one, read strictly.
//!
//! spin-operator v0.6.1 renders a SpinApp's `runtimeConfig` into
//! `/runtime-config.toml` (`internal/runtimeconfig`): always
//!
//! ```toml
//! [[config_provider]]
//! type = "env"
//! prefix = "SPIN_VARIABLE_"
//! ```
//!
//! and a `[key_value_store.<name>]` per declared store. Accepted here:
//! - env variable providers with no prefix or Spin's own (`SPIN_VARIABLE`,
//!   with or without the trailing `_`). Spin joins a prefix to the name with
//!   `_`, so the operator's provider looks up `SPIN_VARIABLE__NAME`, which
//!   nothing sets; the operator's `SPIN_VARIABLE_NAME`s reach the app through
//!   Spin's built-in environment provider, which runtime-shim implements.
//! - `key_value_store.default` of type `spin`, with or without a `path`.
//!   runtime-shim keeps the store in memory, shared by every component of
//!   the process, so the path is not used (the store starts empty after a
//!   restart, as on an emptyDir in a new pod).
//!
//! Anything else fails start-up naming the key, rather than being ignored.

use crate::capabilities::DEFAULT_STORE;
use std::path::{Path, PathBuf};
use toml::{Table, Value};
use wasmtime::{Result, bail, format_err};

/// What a runtime config file asked for that changes anything.
#[derive(Debug, Default, PartialEq)]
pub struct RuntimeConfig {
    /// `key_value_store.default.path`, accepted and not used.
    pub unused_store_path: Option<PathBuf>,
}

pub fn load(path: &Path) -> Result<RuntimeConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format_err!("cannot read the runtime config {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format_err!("runtime config {}: {e:#}", path.display()))
}

pub fn parse(text: &str) -> Result<RuntimeConfig> {
    let table: Table = toml::from_str(text).map_err(|e| format_err!("{}", e.to_string().trim_end()))?;
    let mut config = RuntimeConfig::default();
    for (key, value) in &table {
        match key.as_str() {
            "config_provider" | "variables_provider" => {
                let Value::Array(providers) = value else {
                    bail!("{key} must be an array of tables ([[{key}]])");
                };
                for p in providers {
                    check_env_provider(key, p)?;
                }
            }
            "key_value_store" => {
                let Value::Table(stores) = value else {
                    bail!("key_value_store must be a table of stores");
                };
                for (name, store) in stores {
                    let path = check_store(name, store)?;
                    config.unused_store_path = path.map(PathBuf::from);
                }
            }
            other => bail!(
                "{other:?} is not supported by runtime-shim (it reads [[config_provider]] of type \"env\" \
                 and [key_value_store.default] of type \"spin\")"
            ),
        }
    }
    Ok(config)
}

fn check_env_provider(key: &str, provider: &Value) -> Result<()> {
    let Value::Table(p) = provider else {
        bail!("each {key} must be a table");
    };
    match p.get("type").and_then(Value::as_str) {
        Some("env") => {}
        Some(other) => bail!("{key} of type {other:?} is not supported (only \"env\")"),
        None => bail!("a {key} without a type"),
    }
    for (k, v) in p {
        match (k.as_str(), v.as_str()) {
            ("type", _) => {}
            ("prefix", Some("SPIN_VARIABLE" | "SPIN_VARIABLE_")) => {}
            ("prefix", _) => bail!(
                "{key} prefix = {v}: runtime-shim reads variables only as SPIN_VARIABLE_<NAME> (the prefix \"SPIN_VARIABLE\")"
            ),
            (other, _) => bail!("{key}.{other} is not supported"),
        }
    }
    Ok(())
}

/// The store's `path`, if it has one.
fn check_store<'a>(name: &str, store: &'a Value) -> Result<Option<&'a str>> {
    let Value::Table(s) = store else {
        bail!("key_value_store.{name} must be a table");
    };
    if name != DEFAULT_STORE {
        bail!("key_value_store.{name}: runtime-shim provides only the store {DEFAULT_STORE:?}");
    }
    match s.get("type").and_then(Value::as_str) {
        Some("spin") => {}
        Some(other) => bail!("key_value_store.{name} of type {other:?} is not supported (only \"spin\")"),
        None => bail!("key_value_store.{name} has no type"),
    }
    let mut path = None;
    for (k, v) in s {
        match (k.as_str(), v) {
            ("type", _) => {}
            ("path", Value::String(p)) => path = Some(p.as_str()),
            (other, _) => bail!("key_value_store.{name}.{other} is not supported"),
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What spin-operator v0.6.1 renders for manifests/base/forex-edge.yaml.
    const OPERATOR: &str = r#"
[[config_provider]]
type = "env"
prefix = "SPIN_VARIABLE_"

[key_value_store]
[key_value_store.default]
path = "/var/lib/forex-edge/kv/default.db"
type = "spin"
"#;

    #[test]
    fn what_spin_operator_writes_is_accepted() {
        assert_eq!(
            parse(OPERATOR).unwrap(),
            RuntimeConfig {
                unused_store_path: Some("/var/lib/forex-edge/kv/default.db".into())
            }
        );
        assert_eq!(
            parse("[key_value_store.default]\ntype = \"spin\"\n").unwrap(),
            RuntimeConfig::default()
        );
        assert_eq!(parse("").unwrap(), RuntimeConfig::default());
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        for (text, says) in [
            (
                "[sqlite_database.default]\ntype = \"spin\"",
                "\"sqlite_database\" is not supported",
            ),
            ("[llm_compute]\ntype = \"spin\"", "\"llm_compute\""),
            (
                "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://x\"",
                "type \"redis\"",
            ),
            (
                "[key_value_store.cache]\ntype = \"spin\"",
                "only the store \"default\"",
            ),
            (
                "[key_value_store.default]\ntype = \"spin\"\nsize = 1",
                "key_value_store.default.size",
            ),
            ("[[config_provider]]\ntype = \"vault\"", "type \"vault\""),
            ("[[config_provider]]\ntype = \"env\"\nprefix = \"APP\"", "prefix"),
            (
                "[[config_provider]]\ntype = \"env\"\ndotenv_path = \".env\"",
                "config_provider.dotenv_path",
            ),
            ("key_value_store = 1", "must be a table"),
            ("not toml", "key"),
        ] {
            let e = format!("{:#}", parse(text).unwrap_err());
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }
}
