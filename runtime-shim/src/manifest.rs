//! `spin.toml` (manifest version 2): the subset this app uses, read strictly.
//!
//! Every table denies unknown keys, so a misspelled or unsupported key fails
//! at start-up with its name instead of being silently ignored. Templates
//! (`{{ name }}`) are resolved here once, against the app's variables.

use crate::allowed_hosts::AllowedHosts;
use crate::variables::{Resolver, VariableDecl};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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

/// The key-value store every Spin host provides.
pub const DEFAULT_STORE: &str = "default";

/// An app as its source declares it, templates unresolved: what `spin.toml`
/// and a pulled app (Spin's locked app, see `locked.rs`) both become, so that
/// one [`App::resolve`] validates and resolves either.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    pub name: String,
    pub version: Option<String>,
    pub variables: BTreeMap<String, VariableDecl>,
    /// `[application.trigger.redis] address`: the Redis triggers' default.
    pub redis_address: Option<String>,
    pub http_triggers: Vec<DeclaredHttp>,
    pub redis_triggers: Vec<DeclaredRedis>,
    pub components: BTreeMap<String, DeclaredComponent>,
}

#[derive(Debug, Clone)]
pub struct DeclaredHttp {
    pub route: String,
    pub component: String,
}

#[derive(Debug, Clone)]
pub struct DeclaredRedis {
    pub channel: String,
    /// Overrides [`Declared::redis_address`].
    pub address: Option<String>,
    pub component: String,
}

#[derive(Debug, Clone)]
pub struct DeclaredComponent {
    pub source: Source,
    pub allowed_outbound_hosts: Vec<String>,
    pub key_value_stores: Vec<String>,
    pub variables: BTreeMap<String, String>,
}

/// Where a component's Wasm comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file named by `spin.toml`, relative to it.
    File(PathBuf),
    /// A layer of a pulled app, its digest already verified.
    Layer { digest: String, bytes: Arc<[u8]> },
}

impl Source {
    pub fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>> {
        match self {
            Source::File(path) => Ok(std::fs::read(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .into()),
            Source::Layer { bytes, .. } => Ok(bytes[..].into()),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Layer { digest, .. } => write!(f, "layer {digest}"),
        }
    }
}

/// A loaded, validated application with every template resolved.
#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    /// `[application] version`, shown by `/.well-known/spin/info`.
    pub version: Option<String>,
    pub components: BTreeMap<String, ComponentConfig>,
    pub http_routes: Vec<HttpRoute>,
    pub redis_subscriptions: Vec<RedisSubscription>,
}

#[derive(Debug, Clone)]
pub struct ComponentConfig {
    pub id: String,
    pub source: Source,
    pub allowed_outbound_hosts: AllowedHosts,
    pub key_value_stores: Vec<String>,
    pub variables: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutePattern {
    Exact(String),
    /// `/api/...` matches `/api` and everything below it.
    Prefix(String),
}

#[derive(Debug, Clone)]
pub struct HttpRoute {
    pub pattern: RoutePattern,
    pub raw: String,
    pub component: String,
}

#[derive(Debug, Clone)]
pub struct RedisSubscription {
    pub address: String,
    pub channel: String,
    pub component: String,
}

impl RoutePattern {
    pub fn parse(route: &str) -> Result<RoutePattern> {
        if !route.starts_with('/') {
            bail!("route {route:?} must start with '/'");
        }
        if let Some(prefix) = route.strip_suffix("/...") {
            if prefix.contains("...") {
                bail!("route {route:?}: '...' may only end a route");
            }
            return Ok(RoutePattern::Prefix(prefix.to_string()));
        }
        if route.contains("...") || route.contains(':') {
            bail!("route {route:?}: only exact routes and prefixes ending in '/...' are supported");
        }
        let trimmed = route.trim_end_matches('/');
        Ok(RoutePattern::Exact(if trimmed.is_empty() {
            "/".into()
        } else {
            trimmed.into()
        }))
    }

    /// Whether `path` is served by this route.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            RoutePattern::Exact(r) => {
                let p = path.trim_end_matches('/');
                r == if p.is_empty() { "/" } else { p }
            }
            RoutePattern::Prefix(prefix) => path
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }

    /// Exact routes beat prefixes; longer prefixes beat shorter ones.
    fn specificity(&self) -> (u8, usize) {
        match self {
            RoutePattern::Exact(r) => (1, r.len()),
            RoutePattern::Prefix(p) => (0, p.len()),
        }
    }
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

    /// Keeps only `ids` and the triggers that run them, as `spin up
    /// --component-id` does; an id the app lacks is an error. Empty keeps all.
    pub fn retain_components(&mut self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        if let Some(id) = ids.iter().find(|id| !self.components.contains_key(*id)) {
            let known: Vec<_> = self.components.keys().collect();
            bail!("--component-id {id:?}: the app has no such component (it has {known:?})");
        }
        let keep = |c: &String| ids.contains(c);
        self.components.retain(|id, _| keep(id));
        self.http_triggers.retain(|t| keep(&t.component));
        self.redis_triggers.retain(|t| keep(&t.component));
        Ok(())
    }
}

impl App {
    #[cfg(test)]
    pub fn parse(text: &str, base: &Path, provided: &crate::variables::Provided) -> Result<App> {
        App::resolve(Declared::from_toml(text, base)?, provided)
    }

    /// Validates a declared app and resolves its templates against its
    /// variables and `provided`.
    pub fn resolve(declared: Declared, provided: &crate::variables::Provided) -> Result<App> {
        let resolver = Resolver::new(&declared.variables, provided)?;

        let mut components = BTreeMap::new();
        for (id, c) in declared.components {
            let ctx = |what: &str| format!("component {id:?}: {what}");
            if let Some(s) = c.key_value_stores.iter().find(|s| *s != DEFAULT_STORE) {
                bail!("component {id:?}: key-value store {s:?} is not supported (only {DEFAULT_STORE:?})");
            }
            let allowed_outbound_hosts = c
                .allowed_outbound_hosts
                .iter()
                .map(|h| resolver.resolve(h))
                .collect::<Result<Vec<_>>>()
                .and_then(|hosts| AllowedHosts::parse(&hosts))
                .with_context(|| ctx("in allowed_outbound_hosts"))?;
            let mut variables = BTreeMap::new();
            for (k, v) in &c.variables {
                crate::variables::check_name(k).with_context(|| ctx("in [component.variables]"))?;
                let value = resolver
                    .resolve(v)
                    .with_context(|| ctx(&format!("variable {k:?}")))?;
                variables.insert(k.clone(), value);
            }
            components.insert(
                id.clone(),
                ComponentConfig {
                    id,
                    source: c.source,
                    allowed_outbound_hosts,
                    key_value_stores: c.key_value_stores,
                    variables,
                },
            );
        }

        let known = |id: &str, trigger: &str| -> Result<()> {
            if components.contains_key(id) {
                Ok(())
            } else {
                bail!("{trigger} trigger names component {id:?}, but there is no [component.{id}]")
            }
        };

        let mut http_routes = Vec::new();
        for t in &declared.http_triggers {
            known(&t.component, "http")?;
            let pattern = RoutePattern::parse(&t.route)?;
            if let Some(dup) = http_routes.iter().find(|r: &&HttpRoute| r.pattern == pattern) {
                bail!(
                    "route {:?} is given twice (components {:?} and {:?})",
                    t.route,
                    dup.component,
                    t.component
                );
            }
            http_routes.push(HttpRoute {
                pattern,
                raw: t.route.clone(),
                component: t.component.clone(),
            });
        }
        http_routes.sort_by_key(|r| std::cmp::Reverse(r.pattern.specificity()));

        let mut redis_subscriptions = Vec::new();
        for t in &declared.redis_triggers {
            known(&t.component, "redis")?;
            let Some(address) = t.address.as_ref().or(declared.redis_address.as_ref()) else {
                bail!(
                    "redis trigger for component {:?} has no address: set [application.trigger.redis] address or the trigger's address",
                    t.component
                );
            };
            let address = resolver.resolve(address).context("redis trigger address")?;
            let channel = resolver.resolve(&t.channel).context("redis trigger channel")?;
            if channel.is_empty() {
                bail!(
                    "redis trigger for component {:?} has an empty channel",
                    t.component
                );
            }
            redis_subscriptions.push(RedisSubscription {
                address,
                channel,
                component: t.component.clone(),
            });
        }
        if http_routes.is_empty() && redis_subscriptions.is_empty() {
            bail!("the manifest has no [[trigger.http]] or [[trigger.redis]]: nothing to run");
        }
        Ok(App {
            name: declared.name,
            version: declared.version,
            components,
            http_routes,
            redis_subscriptions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
