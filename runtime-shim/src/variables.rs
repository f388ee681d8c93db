//! Application variables: declared in `[variables]`, given by `--variable`
//! flags, `SPIN_VARIABLE_<NAME>` environment variables or defaults (in that
//! order, as `spin up` does), and used through `{{ name }}` templates.

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use wasmtime::{Result, bail};

/// One `[variables]` entry.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    /// Never printed; the shim logs no variable values at all.
    #[serde(default)]
    #[allow(dead_code)]
    pub secret: bool,
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
}

/// Values supplied from outside the manifest.
#[derive(Debug, Clone, Default)]
pub struct Provided {
    /// `--variable KEY=VALUE`, highest precedence.
    pub flags: BTreeMap<String, String>,
    /// The process environment (only `SPIN_VARIABLE_*` is consulted).
    pub env: HashMap<String, String>,
}

impl Provided {
    /// Parses `KEY=VALUE` flags; the environment is captured as is.
    pub fn from_flags_and_env(
        flags: &[String],
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Provided> {
        let mut map = BTreeMap::new();
        for f in flags {
            let Some((k, v)) = f.split_once('=') else {
                bail!("--variable {f:?} must look like NAME=VALUE");
            };
            let k = k.trim().to_ascii_lowercase();
            check_name(&k)?;
            map.insert(k, v.to_string());
        }
        Ok(Provided {
            flags: map,
            env: env.filter(|(k, _)| k.starts_with("SPIN_VARIABLE_")).collect(),
        })
    }
}

/// Spin's rule: lower-case letters, digits and single underscores, starting with a letter.
pub fn check_name(name: &str) -> Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.contains("__")
        && !name.ends_with('_');
    if !ok {
        bail!("{name:?} is not a valid variable name: use lower-case letters, digits and single underscores");
    }
    Ok(())
}

/// Resolved application variables.
pub struct Resolver {
    values: BTreeMap<String, String>,
}

impl Resolver {
    pub fn new(decls: &BTreeMap<String, VariableDecl>, provided: &Provided) -> Result<Resolver> {
        for name in provided.flags.keys() {
            if !decls.contains_key(name) {
                bail!("--variable {name}: there is no such variable in [variables]");
            }
        }
        let mut values = BTreeMap::new();
        for (name, decl) in decls {
            check_name(name)?;
            if decl.required && decl.default.is_some() {
                bail!("variable {name:?} is both required and has a default: choose one");
            }
            let env_key = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            let value = provided
                .flags
                .get(name)
                .or_else(|| provided.env.get(&env_key))
                .or(decl.default.as_ref());
            match value {
                Some(v) => {
                    values.insert(name.clone(), v.clone());
                }
                None if decl.required => {
                    bail!("variable {name:?} is required: pass --variable {name}=VALUE or set {env_key}")
                }
                None => bail!("variable {name:?} has neither a default nor `required = true`"),
            }
        }
        Ok(Resolver { values })
    }

    /// Expands every `{{ name }}` in `template`.
    pub fn resolve(&self, template: &str) -> Result<String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                bail!("template {template:?} has an unclosed '{{{{'");
            };
            let name = after[..end].trim();
            match self.values.get(name) {
                Some(v) => out.push_str(v),
                None => bail!("template {template:?} uses {name:?}, which is not declared in [variables]"),
            }
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            bail!("template {template:?} has a '}}}}' without '{{{{'");
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// `fermyon:spin/variables@2.0.0`: a component reads its own
/// `[component.<id>.variables]`, resolved at start-up.
impl crate::bindings::variables::Host for crate::state::InstanceState {
    async fn get(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<String, crate::bindings::variables::Error>> {
        use crate::bindings::variables::Error;
        if crate::variables::check_name(&name).is_err() {
            return Ok(Err(Error::InvalidName(name)));
        }
        Ok(self
            .env
            .variables
            .get(&name)
            .cloned()
            .ok_or(Error::Undefined(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decls(toml_text: &str) -> BTreeMap<String, VariableDecl> {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn flags_beat_env_beat_defaults() {
        let d = decls("a = { default = \"da\" }\nb = { default = \"db\" }\nc = { required = true }");
        let provided = Provided::from_flags_and_env(
            &["a=flag".into()],
            [
                ("SPIN_VARIABLE_A".to_string(), "env".to_string()),
                ("SPIN_VARIABLE_C".into(), "envc".into()),
            ]
            .into_iter(),
        )
        .unwrap();
        let r = Resolver::new(&d, &provided).unwrap();
        assert_eq!(r.resolve("{{a}}-{{ b }}-{{  c }}").unwrap(), "flag-db-envc");
    }

    #[test]
    fn missing_required_and_unknown_names_are_errors() {
        let d = decls("c = { required = true }");
        let e = Resolver::new(&d, &Provided::default()).err().unwrap().to_string();
        assert!(e.contains("\"c\"") && e.contains("SPIN_VARIABLE_C"), "{e}");
        let p = Provided::from_flags_and_env(&["zz=1".into(), "c=1".into()], std::iter::empty()).unwrap();
        assert!(Resolver::new(&d, &p).err().unwrap().to_string().contains("zz"));
        let p = Provided::from_flags_and_env(&["c=1".into()], std::iter::empty()).unwrap();
        let r = Resolver::new(&d, &p).unwrap();
        assert!(r.resolve("{{ nope }}").unwrap_err().to_string().contains("nope"));
        assert!(r.resolve("{{ c ").is_err());
        assert!(Provided::from_flags_and_env(&["novalue".into()], std::iter::empty()).is_err());
        assert!(check_name("Bad").is_err() && check_name("a__b").is_err() && check_name("ok_1").is_ok());
    }
}
