//! Spin's locked app: the JSON `spin registry push` stores as the layer of
//! media type `application/vnd.fermyon.spin.application.v1+config`, read
//! strictly into the same [`Declared`] shape `spin.toml` becomes.
//!
//! Component sources name layers by digest; they are fetched afterwards
//! (`crate::oci`), only for the components that run. Anything of the format this
//! host does not implement (files, environment, dependencies, host
//! requirements, other triggers or stores) fails here, naming it, instead of
//! being silently dropped.

use super::declared::{Declared, DeclaredComponent, DeclaredHttp, DeclaredRedis, Source};
use super::variables::VariableDecl;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::{Result, bail, format_err};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockedApp {
    spin_lock_version: u32,
    #[serde(default)]
    must_understand: Vec<String>,
    #[serde(default)]
    metadata: Map<String, Value>,
    #[serde(default)]
    host_requirements: Map<String, Value>,
    #[serde(default)]
    variables: BTreeMap<String, LockedVariable>,
    triggers: Vec<LockedTrigger>,
    components: Vec<LockedComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockedVariable {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    secret: bool,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockedTrigger {
    id: String,
    trigger_type: String,
    trigger_config: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpConfig {
    component: String,
    route: String,
    /// Only Spin's own executor (`{"type": "spin"}`, the default) runs here.
    #[serde(default)]
    executor: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisConfig {
    component: String,
    channel: String,
    #[serde(default)]
    address: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockedComponent {
    id: String,
    #[serde(default)]
    metadata: ComponentMetadata,
    source: LockedSource,
    #[serde(default)]
    env: Map<String, Value>,
    #[serde(default)]
    files: Vec<Value>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    dependencies: Map<String, Value>,
    #[serde(default)]
    host_requirements: Map<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ComponentMetadata {
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    /// Informational: how the component was built and what it is.
    #[serde(default, rename = "build")]
    _build: Option<Value>,
    #[serde(default, rename = "description")]
    _description: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockedSource {
    content_type: String,
    #[serde(default)]
    digest: Option<String>,
    /// A local file (an app locked by `spin up`, never a pushed one).
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    inline: Option<Value>,
}

/// The `must_understand` entries this host honours: it refuses any host
/// requirement or component dependency below, which is what understanding
/// them asks of a host that implements neither.
const UNDERSTOOD: [&str; 2] = ["host_requirements", "component_dependencies"];

/// Reads a locked app. Every component's source is a [`Source::Layer`] with
/// its digest and, as yet, no bytes.
pub fn parse(json: &[u8]) -> Result<Declared> {
    let app: LockedApp = serde_json::from_slice(json).map_err(|e| format_err!("{e}"))?;
    if app.spin_lock_version > 1 {
        bail!(
            "spin_lock_version {} is newer than this host reads (0 or 1)",
            app.spin_lock_version
        );
    }
    if let Some(m) = app
        .must_understand
        .iter()
        .find(|m| !UNDERSTOOD.contains(&m.as_str()))
    {
        bail!("the app requires a host that understands {m:?}, which runtime-shim does not");
    }
    if let Some(k) = app.host_requirements.keys().next() {
        bail!("the app requires the host feature {k:?}, which runtime-shim does not have");
    }

    let text = |key: &str| -> Result<Option<String>> {
        match app.metadata.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => bail!("metadata.{key} must be a string, not {other}"),
        }
    };
    let name = text("name")?.unwrap_or_default();
    let version = text("version")?;
    let mut redis_address = None;
    if let Some(triggers) = app.metadata.get("triggers") {
        let Some(triggers) = triggers.as_object() else {
            bail!("metadata.triggers must be an object");
        };
        for (kind, settings) in triggers {
            match (kind.as_str(), settings) {
                ("redis", Value::Object(s)) => {
                    redis_address = match s.get("address") {
                        Some(Value::String(a)) => Some(a.clone()),
                        None => None,
                        _ => bail!("metadata.triggers.redis.address must be a string"),
                    };
                    if let Some(k) = s.keys().find(|k| *k != "address") {
                        bail!("metadata.triggers.redis.{k} is not supported");
                    }
                }
                // `[application.trigger.http] base`: only the root is served.
                ("http", Value::Object(s)) => {
                    for (k, v) in s {
                        if !(k == "base" && v.as_str() == Some("/")) {
                            bail!("metadata.triggers.http.{k} = {v} is not supported");
                        }
                    }
                }
                _ => bail!("metadata.triggers.{kind}: only http and redis triggers are supported"),
            }
        }
    }

    let variables = app
        .variables
        .into_iter()
        .map(|(name, v)| {
            let decl = VariableDecl {
                required: v.default.is_none(),
                default: v.default,
                secret: v.secret,
                description: v.description,
            };
            (name, decl)
        })
        .collect();

    let mut http_triggers = Vec::new();
    let mut redis_triggers = Vec::new();
    for t in app.triggers {
        let ctx = |e: serde_json::Error| format_err!("trigger {:?}: {e}", t.id);
        match t.trigger_type.as_str() {
            "http" => {
                let c: HttpConfig = serde_json::from_value(t.trigger_config.clone()).map_err(ctx)?;
                if let Some(executor) = c.executor.filter(|e| *e != serde_json::json!({"type": "spin"})) {
                    bail!(
                        "trigger {:?}: the HTTP executor {executor} is not supported",
                        t.id
                    );
                }
                http_triggers.push(DeclaredHttp {
                    route: c.route,
                    component: c.component,
                });
            }
            "redis" => {
                let c: RedisConfig = serde_json::from_value(t.trigger_config.clone()).map_err(ctx)?;
                redis_triggers.push(DeclaredRedis {
                    channel: c.channel,
                    address: c.address,
                    component: c.component,
                });
            }
            other => bail!(
                "trigger {:?}: {other:?} triggers are not supported (only http and redis)",
                t.id
            ),
        }
    }

    let mut components = BTreeMap::new();
    for c in app.components {
        let id = c.id;
        for (present, what) in [
            (!c.files.is_empty(), "files"),
            (!c.env.is_empty(), "environment variables"),
            (!c.dependencies.is_empty(), "component dependencies"),
            (!c.host_requirements.is_empty(), "host requirements"),
        ] {
            if present {
                bail!("component {id:?} has {what}, which runtime-shim does not support");
            }
        }
        if c.source.content_type != "application/wasm" {
            bail!(
                "component {id:?}: source of type {:?} (only application/wasm)",
                c.source.content_type
            );
        }
        let digest = match (c.source.digest, c.source.source, c.source.inline) {
            (Some(d), None, None) => d,
            (_, Some(s), _) => {
                bail!("component {id:?}: its source is the local file {s:?}, not a pushed layer")
            }
            (_, _, Some(_)) => bail!("component {id:?}: inline sources are not supported"),
            (None, None, None) => bail!("component {id:?}: its source names no digest"),
        };
        let component = DeclaredComponent {
            source: Source::Layer {
                digest,
                bytes: Arc::from([]),
            },
            allowed_outbound_hosts: c.metadata.allowed_outbound_hosts,
            key_value_stores: c.metadata.key_value_stores,
            variables: c.config,
        };
        if components.insert(id.clone(), component).is_some() {
            bail!("component {id:?} is listed twice");
        }
    }
    Ok(Declared {
        name,
        version,
        variables,
        redis_address,
        http_triggers,
        redis_triggers,
        components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape `spin registry push` (Spin 3.6) stores, trimmed to the parts
    /// that matter here.
    const PUSHED: &str = r#"{
      "spin_lock_version": 0,
      "metadata": {"name": "app", "version": "1.0.0", "description": "d",
                   "triggers": {"redis": {"address": "{{ url }}"}}},
      "variables": {"url": {"secret": true}, "key": {"default": "rates"}},
      "triggers": [
        {"id": "h", "trigger_type": "http", "trigger_config": {"component": "web", "route": "/..."}},
        {"id": "r", "trigger_type": "redis", "trigger_config": {"component": "sync", "channel": "ch"}}
      ],
      "components": [
        {"id": "web", "metadata": {"allowed_outbound_hosts": ["redis://x:1"], "key_value_stores": ["default"],
                                   "build": {"command": "cargo build"}, "description": "w"},
         "source": {"content_type": "application/wasm", "digest": "sha256:aa"},
         "config": {"key": "{{ key }}"}},
        {"id": "sync", "source": {"content_type": "application/wasm", "digest": "sha256:bb"}}
      ]
    }"#;

    #[test]
    fn a_pushed_app_becomes_the_declared_shape() {
        let d = parse(PUSHED.as_bytes()).unwrap();
        assert_eq!((d.name.as_str(), d.version.as_deref()), ("app", Some("1.0.0")));
        assert_eq!(d.redis_address.as_deref(), Some("{{ url }}"));
        assert!(d.variables["url"].required && d.variables["url"].secret);
        assert!(!d.variables["key"].required);
        assert_eq!(d.http_triggers[0].route, "/...");
        assert_eq!(d.redis_triggers[0].channel, "ch");
        let web = &d.components["web"];
        assert!(matches!(&web.source, Source::Layer { digest, .. } if digest == "sha256:aa"));
        assert_eq!(web.variables["key"], "{{ key }}");
        assert_eq!(web.key_value_stores, ["default"]);
    }

    fn refused(edit: impl FnOnce(&mut Value)) -> String {
        let mut v: Value = serde_json::from_str(PUSHED).unwrap();
        edit(&mut v);
        format!("{:#}", parse(&serde_json::to_vec(&v).unwrap()).unwrap_err())
    }

    #[test]
    fn what_this_host_does_not_implement_is_refused_by_name() {
        let e = refused(|v| {
            v["components"][0]["files"] = serde_json::json!([{"path": "a", "digest": "sha256:cc"}])
        });
        assert!(e.contains("\"web\" has files"), "{e}");
        let e = refused(|v| v["components"][0]["metadata"]["ai_models"] = serde_json::json!(["llama"]));
        assert!(e.contains("ai_models"), "{e}");
        let e = refused(|v| v["triggers"][0]["trigger_type"] = "cron".into());
        assert!(e.contains("\"cron\" triggers"), "{e}");
        let e = refused(|v| v["must_understand"] = serde_json::json!(["something_new"]));
        assert!(e.contains("something_new"), "{e}");
        let e = refused(|v| {
            v["components"][1]["source"] =
                serde_json::json!({"content_type": "application/wasm", "source": "file:///x.wasm"})
        });
        assert!(e.contains("local file"), "{e}");
        let e = refused(|v| v["spin_lock_version"] = 2.into());
        assert!(e.contains("spin_lock_version 2"), "{e}");
        let e = refused(|v| v["metadata"]["triggers"]["http"] = serde_json::json!({"base": "/api"}));
        assert!(e.contains("base"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn the_parser_never_panics_on_mutated_locked_apps(
            at in proptest::sample::select((0..PUSHED.len()).collect::<Vec<_>>()),
            insert in "[\\PC]{0,8}",
            cut in 0usize..16,
        ) {
            let mut text = PUSHED.to_string();
            let end = (at + cut).min(text.len());
            if text.is_char_boundary(at) && text.is_char_boundary(end) {
                text.replace_range(at..end, &insert);
            }
            let _ = parse(text.as_bytes());
        }
    }
}
