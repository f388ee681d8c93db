//! `spin.toml` (manifest version 2): the subset this app uses, read strictly
//! into the [`Declared`] shape a pulled app also takes.
//!
//! Every table denies unknown keys, so a misspelled or unsupported key fails
//! at start-up with its name instead of being silently ignored. Templates
//! (`{{ name }}`) are left for [`super::App::resolve`].

use super::declared::{Declared, DeclaredComponent, DeclaredHttp, DeclaredRedis, Source};
use super::variables::VariableDecl;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use wasmtime::error::Context;
use wasmtime::{Result, bail};

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    /// Must be 2.
    spin_manifest_version: u32,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[expect(
    dead_code,
    reason = "description and authors are accepted as Spin documents them; nothing reads them"
)]
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    authors: Vec<String>,
    #[serde(default)]
    trigger: RawAppTriggers,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawAppTriggers {
    /// `[application.trigger.redis]`: the default address of Redis triggers.
    redis: Option<RawAppRedis>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawAppRedis {
    address: String,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
    #[serde(default)]
    redis: Vec<RawRedisTrigger>,
}

#[expect(dead_code, reason = "a trigger's id is accepted; routes need no name")]
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    /// Exact (`/rates`) or a prefix ending in `/...`.
    route: String,
    /// The id of a `[component.<id>]`.
    component: String,
    #[serde(default)]
    id: Option<String>,
}

#[expect(dead_code, reason = "a trigger's id is accepted; subscriptions need no name")]
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawRedisTrigger {
    channel: String,
    /// Overrides `[application.trigger.redis] address`.
    address: Option<String>,
    component: String,
    #[serde(default)]
    id: Option<String>,
}

#[expect(
    dead_code,
    reason = "description and `spin build` settings are accepted; runtime-shim does not build"
)]
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    /// A path to a `.wasm` file, relative to the manifest.
    source: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    /// `spin build` instructions; the shim does not build, but accepts them.
    #[serde(default)]
    build: Option<RawBuild>,
}

#[expect(dead_code, reason = "`spin build` settings are accepted, not run")]
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    command: toml::Value,
    #[serde(default)]
    workdir: Option<String>,
    #[serde(default)]
    watch: Vec<String>,
}

impl Declared {
    /// Reads the `spin.toml` at `path`.
    pub fn load(path: &Path) -> Result<Declared> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the manifest {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Declared::from_toml(&text, base).with_context(|| format!("invalid manifest {}", path.display()))
    }

    /// Reads `spin.toml` text; sources are relative to `base` and must exist.
    pub fn from_toml(text: &str, base: &Path) -> Result<Declared> {
        let raw: RawManifest =
            toml::from_str(text).map_err(|e| wasmtime::format_err!("{}", e.to_string().trim_end()))?;
        if raw.spin_manifest_version != 2 {
            bail!(
                "spin_manifest_version = {} is not supported: use 2",
                raw.spin_manifest_version
            );
        }
        let mut components = BTreeMap::new();
        for (id, c) in raw.component {
            let source = base.join(&c.source);
            if !source.is_file() {
                bail!(
                    "component {id:?}: source {} does not exist (build it first, e.g. `make build`)",
                    source.display()
                );
            }
            components.insert(
                id,
                DeclaredComponent {
                    source: Source::File(source),
                    allowed_outbound_hosts: c.allowed_outbound_hosts,
                    key_value_stores: c.key_value_stores,
                    variables: c.variables,
                },
            );
        }
        Ok(Declared {
            name: raw.application.name,
            version: raw.application.version,
            variables: raw.variables,
            redis_address: raw.application.trigger.redis.map(|r| r.address),
            http_triggers: (raw.trigger.http.into_iter())
                .map(|t| DeclaredHttp {
                    route: t.route,
                    component: t.component,
                })
                .collect(),
            redis_triggers: (raw.trigger.redis.into_iter())
                .map(|t| DeclaredRedis {
                    channel: t.channel,
                    address: t.address,
                    component: t.component,
                })
                .collect(),
            components,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{App, RoutePattern};

    #[test]
    fn routes_match_exactly_or_by_prefix() {
        let p = |s| RoutePattern::parse(s).unwrap();
        assert!(p("/rates").matches("/rates"));
        assert!(p("/rates").matches("/rates/"));
        assert!(!p("/rates").matches("/rates/x"));
        assert!(!p("/rates").matches("/ratesx"));
        assert!(p("/api/...").matches("/api"));
        assert!(p("/api/...").matches("/api/x/y"));
        assert!(!p("/api/...").matches("/apix"));
        assert!(p("/...").matches("/anything"));
        assert!(p("/...").matches("/"));
        assert!(RoutePattern::parse("rates").is_err());
        assert!(RoutePattern::parse("/a/.../b").is_err());
        assert!(RoutePattern::parse("/users/:id").is_err());
    }

    #[test]
    fn component_ids_keep_their_components_and_triggers_as_spin_does() {
        let mut d = Declared::default();
        for id in ["web", "sync"] {
            d.components.insert(
                id.into(),
                DeclaredComponent {
                    source: Source::File(id.into()),
                    allowed_outbound_hosts: vec![],
                    key_value_stores: vec![],
                    variables: BTreeMap::new(),
                },
            );
        }
        d.http_triggers.push(DeclaredHttp {
            route: "/...".into(),
            component: "web".into(),
        });
        d.redis_triggers.push(DeclaredRedis {
            channel: "ch".into(),
            address: None,
            component: "sync".into(),
        });

        let mut all = d.clone();
        all.retain_components(&[]).unwrap();
        assert_eq!(all.components.len(), 2);

        let mut web = d.clone();
        web.retain_components(&["web".into()]).unwrap();
        assert_eq!(web.components.keys().collect::<Vec<_>>(), ["web"]);
        assert_eq!(web.http_triggers.len(), 1);
        assert!(web.redis_triggers.is_empty());

        let e = d.retain_components(&["web".into(), "nope".into()]).unwrap_err();
        assert!(
            format!("{e}").contains("--component-id \"nope\": the app has no such component"),
            "{e}"
        );
    }

    const SAMPLE: &str = r#"
spin_manifest_version = 2
[application]
name = "x"
[application.trigger.redis]
address = "{{ url }}"
[variables]
url = { default = "redis://127.0.0.1:6379" }
[[trigger.http]]
route = "/..."
component = "c"
[[trigger.redis]]
channel = "ch"
component = "c"
[component.c]
source = "c.wasm"
allowed_outbound_hosts = ["redis://127.0.0.1:6379"]
key_value_stores = ["default"]
[component.c.variables]
v = "{{ url }}"
"#;

    proptest::proptest! {
        #[test]
        fn manifest_parser_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
            let _ = App::parse(&text, Path::new("/nonexistent"), &Default::default());
        }

        #[test]
        fn manifest_parser_never_panics_on_mutated_manifests(
            at in proptest::sample::select((0..SAMPLE.len()).collect::<Vec<_>>()),
            insert in "[\\PC]{0,8}",
            cut in 0usize..16,
        ) {
            let mut text = SAMPLE.to_string();
            let end = (at + cut).min(text.len());
            if text.is_char_boundary(at) && text.is_char_boundary(end) {
                text.replace_range(at..end, &insert);
            }
            let _ = App::parse(&text, Path::new("/nonexistent"), &Default::default());
        }
    }
}
