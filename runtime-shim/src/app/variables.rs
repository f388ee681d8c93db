//! Application variables: declared in `[variables]` (names are
//! case-sensitive) and used through `{{ name }}` templates. As in `spin up`,
//! a value comes from `--variable`, else `SPIN_VARIABLE_<NAME>` (the name in
//! ASCII upper case) in the environment, else that key in `.env` in the
//! current directory, else the default.

use crate::capabilities::check_variable_name;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use wasmtime::error::Context;
use wasmtime::{Result, bail, format_err};

/// Prefix of the environment (and `.env`) keys of variables.
const ENV_PREFIX: &str = "SPIN_VARIABLE_";

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
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

/// Values supplied from outside the manifest.
#[derive(Debug, Clone, Default)]
pub struct Provided {
    /// `--variable` values by exact name; of a name given twice, the last.
    pub flags: BTreeMap<String, String>,
    /// The process environment (only `SPIN_VARIABLE_*` is consulted).
    pub env: HashMap<String, String>,
    /// A dotenv file for the `SPIN_VARIABLE_*` keys the environment lacks
    /// (`runtime-shim up` gives `.env`); read only when one is needed, and
    /// empty when it does not exist.
    pub dotenv: Option<PathBuf>,
}

impl Provided {
    /// Reads the `--variable` flags (and the files they name); the
    /// environment is captured as is.
    pub fn from_flags_and_env(
        flags: &[String],
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Provided> {
        let mut map = BTreeMap::new();
        for f in flags {
            read_flag(f, &mut map).with_context(|| format!("--variable {f}"))?;
        }
        Ok(Provided {
            flags: map,
            env: env.filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect(),
            dotenv: None,
        })
    }
}

/// One `--variable`: `name=value`, `name=@file` (the file's whole text), or
/// `@file.json` / `@file.toml` (a flat map of names to strings). Paths are
/// relative to the current directory.
fn read_flag(flag: &str, into: &mut BTreeMap<String, String>) -> Result<()> {
    let read = |path: &str| std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"));
    if let Some(path) = flag.strip_prefix('@') {
        let map: BTreeMap<String, String> = match Path::new(path).extension().and_then(|e| e.to_str()) {
            Some("json") => serde_json::from_str(&read(path)?)
                .with_context(|| format!("{path} is not a JSON object of strings"))?,
            Some("toml") => toml::from_str(&read(path)?)
                .with_context(|| format!("{path} is not a TOML table of strings"))?,
            _ => bail!("variable files must end in .json or .toml"),
        };
        into.extend(map);
    } else if let Some((name, value)) = flag.split_once('=') {
        let value = match value.strip_prefix('@') {
            Some(path) => read(path)?,
            None => value.to_string(),
        };
        into.insert(name.to_string(), value);
    } else {
        bail!("variables must be in the form 'key=value' or '@file'");
    }
    Ok(())
}

/// A dotenv file's entries, read as Spin reads `.env`: by dotenvy, whose
/// `$VAR` substitution and quoting rules are Spin's own; a file that cannot
/// be opened is empty, one that does not parse is an error. The error never
/// quotes the line, which may hold a secret.
fn read_dotenv(path: &Path) -> Result<HashMap<String, String>> {
    let Ok(entries) = dotenvy::from_path_iter(path) else {
        return Ok(HashMap::new());
    };
    entries
        .collect::<Result<HashMap<_, _>, _>>()
        .map_err(|e| match e {
            dotenvy::Error::LineParse(_, at) => {
                format_err!(
                    "{}: a line does not parse as dotenv (at character {at})",
                    path.display()
                )
            }
            other => format_err!("cannot read {}: {other}", path.display()),
        })
}

/// Resolved application variables.
pub struct Resolver {
    values: BTreeMap<String, String>,
}

impl Resolver {
    pub fn new(decls: &BTreeMap<String, VariableDecl>, provided: &Provided) -> Result<Resolver> {
        for name in provided.flags.keys() {
            if decls.contains_key(name) {
                continue;
            }
            match decls.keys().find(|d| d.eq_ignore_ascii_case(name)) {
                Some(d) => bail!(
                    "--variable {name}: there is no such variable in [variables]; did you mean `{d}`? variable names are case-sensitive"
                ),
                None => bail!("--variable {name}: there is no such variable in [variables]"),
            }
        }
        // Read only once a variable needs it, as Spin does.
        let mut dotenv: Option<HashMap<String, String>> = None;
        let mut values = BTreeMap::new();
        for (name, decl) in decls {
            check_variable_name(name)?;
            if decl.required && decl.default.is_some() {
                bail!("variable {name:?} is both required and has a default: choose one");
            }
            let env_key = format!("{ENV_PREFIX}{}", name.to_ascii_uppercase());
            let mut value = provided
                .flags
                .get(name)
                .or_else(|| provided.env.get(&env_key))
                .cloned();
            if let (None, Some(path)) = (&value, &provided.dotenv) {
                if dotenv.is_none() {
                    dotenv = Some(read_dotenv(path)?);
                }
                value = dotenv.as_ref().and_then(|d| d.get(&env_key).cloned());
            }
            match value.or_else(|| decl.default.clone()) {
                Some(v) => {
                    values.insert(name.clone(), v);
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
        assert!(
            check_variable_name("Bad").is_err()
                && check_variable_name("a__b").is_err()
                && check_variable_name("ok_1").is_ok()
        );
    }

    /// A scratch directory of this test process.
    fn scratch(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("runtime-shim-vars-{}-{label}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn flags(f: &[&str]) -> Result<Provided> {
        Provided::from_flags_and_env(
            &f.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            std::iter::empty(),
        )
    }

    fn resolve(d: &str, provided: &Provided, template: &str) -> String {
        Resolver::new(&decls(d), provided)
            .unwrap()
            .resolve(template)
            .unwrap()
    }

    #[test]
    fn names_are_case_sensitive() {
        let d = "needed = { default = \"d\" }";
        let e = Resolver::new(&decls(d), &flags(&["NEEDED=1"]).unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("did you mean `needed`? variable names are case-sensitive"),
            "{e}"
        );
        // The environment key is the name in upper case, exactly.
        let env = |k: &str| {
            let p = Provided::from_flags_and_env(&[], [(k.to_string(), "env".to_string())].into_iter());
            resolve(d, &p.unwrap(), "{{ needed }}")
        };
        assert_eq!(env("SPIN_VARIABLE_NEEDED"), "env");
        assert_eq!(env("SPIN_VARIABLE_needed"), "d");
    }

    #[test]
    fn flags_read_files_and_the_last_of_a_name_wins() {
        let dir = scratch("flags");
        let path = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let text = path("value.txt", "line1\nline2\n");
        let json = path("vars.json", r#"{"a": "json", "b": "json"}"#);
        let toml = path("vars.toml", "b = \"toml\"\nc = \"toml\"\n");
        // `a`: json, then the file's text; `b`: flag, then toml; `c`: toml, then flag.
        let p = flags(&[
            &format!("@{json}"),
            &format!("a=@{text}"),
            "b=flag",
            &format!("@{toml}"),
            "c=x=y",
        ])
        .unwrap();
        let d = "a = { required = true }\nb = { required = true }\nc = { required = true }";
        assert_eq!(
            resolve(d, &p, "{{ a }}|{{ b }}|{{ c }}"),
            "line1\nline2\n|toml|x=y"
        );

        let err = |f: &str| format!("{:#}", flags(&[f]).err().unwrap());
        assert!(err("novalue").contains("variables must be in the form 'key=value' or '@file'"));
        assert!(err(&format!("@{text}")).contains("variable files must end in .json or .toml"));
        assert!(err("@nofile").contains("variable files must end in .json or .toml"));
        assert!(err("a=@/nonexistent/value.txt").contains("cannot read /nonexistent/value.txt"));
        assert!(err(&format!("@{}", path("nested.json", r#"{"a": {"b": "c"}}"#))).contains("nested.json"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dotenv_comes_after_the_environment_and_before_defaults() {
        let dir = scratch("dotenv");
        let dotenv = dir.join(".env");
        std::fs::write(
            &dotenv,
            "# comment\nSPIN_VARIABLE_B=dot\nexport SPIN_VARIABLE_C='dot c' # why\nSPIN_VARIABLE_D=dot-loses\nSPIN_VARIABLE_e=lower\n",
        )
        .unwrap();
        let d = "a = { default = \"da\" }\nb = { default = \"db\" }\nc = { required = true }\nd = { default = \"dd\" }\ne = { default = \"de\" }";
        let p = Provided {
            dotenv: Some(dotenv.clone()),
            ..Provided::from_flags_and_env(
                &["a=flag".into()],
                [("SPIN_VARIABLE_D".to_string(), "env".to_string())].into_iter(),
            )
            .unwrap()
        };
        assert_eq!(
            resolve(d, &p, "{{a}}|{{b}}|{{c}}|{{d}}|{{e}}"),
            "flag|dot|dot c|env|de"
        );

        // A missing file is empty; a malformed one is read only when needed.
        let missing = Provided {
            dotenv: Some(dir.join("absent")),
            ..Default::default()
        };
        assert_eq!(resolve("a = { default = \"da\" }", &missing, "{{ a }}"), "da");
        // dotenvy's rules, as Spin's: `$NAME` is substituted from the
        // environment and earlier lines.
        std::fs::write(&dotenv, "BASE=from-file\nSPIN_VARIABLE_A=${BASE}/x\n").unwrap();
        let substituted = Provided {
            dotenv: Some(dotenv.clone()),
            ..Default::default()
        };
        assert_eq!(
            resolve("a = { default = \"da\" }", &substituted, "{{ a }}"),
            "from-file/x"
        );
        std::fs::write(&dotenv, "SPIN_VARIABLE_B=ok\nSPIN_VARIABLE_A=\"s3cret\n").unwrap();
        let bad = Provided {
            dotenv: Some(dotenv),
            ..flags(&["a=flag"]).unwrap()
        };
        assert_eq!(resolve("a = { default = \"da\" }", &bad, "{{ a }}"), "flag");
        let e = format!(
            "{:#}",
            Resolver::new(&decls("a = {}\nb = { default = \"db\" }"), &bad)
                .err()
                .unwrap()
        );
        assert!(e.contains(".env") && e.contains("does not parse"), "{e}");
        assert!(!e.contains("s3cret"), "the line is not quoted: {e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
