//! The app, from where it is declared to what the triggers run: `spin.toml`
//! ([`manifest`]) or an app pulled from a registry (Spin's locked app,
//! [`locked`], through [`crate::oci`]) read into one [`declared`] shape,
//! then validated with its variables ([`variables`], `.env` included) into an
//! [`App`] ([`resolve`], [`routes`]); and the runtime config spin-operator
//! writes ([`runtime_config`]).

pub mod declared;
pub mod locked;
pub mod manifest;
pub mod resolve;
pub mod routes;
pub mod runtime_config;
pub mod variables;

pub use declared::{Declared, Source};
pub use resolve::{App, ComponentConfig, HttpRoute, RedisSubscription};
pub use routes::RoutePattern;

use crate::oci;
use std::path::PathBuf;
use wasmtime::Result;
use wasmtime::error::Context;

/// Where the app comes from.
#[derive(Debug, Clone)]
pub enum AppSource {
    /// A `spin.toml`; component sources are relative to it.
    Manifest(PathBuf),
    /// An app `spin registry push` stored.
    Registry(oci::Reference),
}

impl AppSource {
    /// `-f`'s argument as `spin up` reads it: an existing file, a directory
    /// holding `spin.toml`, else an OCI reference.
    pub fn from_arg(arg: &str) -> Result<AppSource> {
        let path = std::path::Path::new(arg);
        if path.is_dir() {
            return Ok(AppSource::Manifest(path.join("spin.toml")));
        }
        if path.exists() || arg.ends_with(".toml") {
            return Ok(AppSource::Manifest(path.to_path_buf()));
        }
        oci::parse_reference(arg)
            .map(AppSource::Registry)
            .map_err(|e| wasmtime::format_err!("-f {arg}: no such file, and not an OCI reference: {e}"))
    }
}

/// What loading needs besides the source.
pub struct LoadOptions<'a> {
    /// `--component-id`: run only these components; empty runs all.
    pub component_ids: &'a [String],
    pub variables: &'a variables::Provided,
    /// Plain HTTP to the registry (loopback registries always get it).
    pub insecure: bool,
    /// Where pulled blobs are kept; `None` keeps nothing.
    pub cache_dir: Option<PathBuf>,
}

/// The app of `source`, only the components `--component-id` keeps,
/// variables resolved.
pub async fn load(source: &AppSource, opts: LoadOptions<'_>) -> Result<App> {
    match source {
        AppSource::Manifest(path) => {
            let mut declared = Declared::load(path)?;
            declared.retain_components(opts.component_ids)?;
            App::resolve(declared, opts.variables)
                .with_context(|| format!("invalid manifest {}", path.display()))
        }
        AppSource::Registry(reference) => {
            let mut pull = oci::Pull::new(
                reference.clone(),
                oci::PullOptions {
                    insecure: opts.insecure,
                    cache_dir: opts.cache_dir,
                },
            );
            let (digest, json) = pull.locked_app().await?;
            let mut declared = locked::parse(&json)
                .map_err(|e| wasmtime::format_err!("{reference}: the locked app: {e:#}"))?;
            declared.retain_components(opts.component_ids)?;
            for (id, c) in declared.components.iter_mut() {
                if let Source::Layer { digest, bytes } = &mut c.source {
                    *bytes = pull.wasm_layer(digest, &format!("component {id:?}")).await?;
                }
            }
            tracing::info!(
                "pulled {reference} ({digest}): {} blob(s) fetched, {} from the cache",
                pull.fetched,
                pull.from_cache
            );
            App::resolve(declared, opts.variables).with_context(|| format!("{reference}"))
        }
    }
}
