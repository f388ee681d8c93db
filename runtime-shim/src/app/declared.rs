//! What an app declares, templates unresolved: the one shape `spin.toml`
//! ([`super::manifest`]) and a pulled app (Spin's locked app,
//! [`super::locked`]) both become, so that one [`super::App::resolve`]
//! validates and resolves either.

use super::variables::VariableDecl;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::error::Context;
use wasmtime::{Result, bail};

/// An app as its source declares it, templates unresolved.
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

impl Declared {
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
