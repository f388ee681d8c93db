//! `runtime-shim`: a small Spin-compatible host on wasmtime that runs this
//! repository's `spin.toml` and its Wasm components without the Spin CLI, or
//! the same app as `spin registry push` stored it in an OCI registry.
//!
//! The layers, in the order [`Up::run`] goes through them:
//! - [`app`]: load the app (`spin.toml` or a pulled one, [`oci`]) and
//!   resolve it with its variables;
//! - `engine`: compile each component once (with an on-disk cache) and link
//!   it to the host (`host`: the Spin interfaces an instance sees);
//! - `triggers`: build the HTTP and Redis triggers, which make a fresh
//!   instance per request or message;
//! - serve until shutdown, then drain; [`metrics`] counts it all when asked.

pub mod app;
mod engine;
mod host;
pub mod metrics;
pub mod oci;
mod options;
mod triggers;

pub use engine::{CompileCache, MAX_LIVE_INSTANCES};
pub use host::MAX_INSTANCE_MEMORY;
pub use options::UpOptions;

use app::{AppSource, variables::Provided};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use wasmtime::Result;

/// `runtime-shim up`, its flags checked: what to run and with which
/// variables.
pub struct Up {
    options: UpOptions,
    source: AppSource,
    variables: Provided,
}

impl Up {
    /// Reads what the flags name (the app's source, the variables and the
    /// files they point at); an error here is the caller's to fix.
    pub fn new(options: UpOptions) -> Result<Up> {
        if !(1..=MAX_LIVE_INSTANCES).contains(&options.max_instances) {
            wasmtime::bail!("--max-instances must be from 1 to {MAX_LIVE_INSTANCES}");
        }
        let source = AppSource::from_arg(&options.from)?;
        let variables = Provided {
            // Spin reads `.env` in the current directory, not the manifest's.
            dotenv: Some(PathBuf::from(".env")),
            ..Provided::from_flags_and_env(&options.variables, std::env::vars())?
        };
        Ok(Up {
            options,
            source,
            variables,
        })
    }

    /// Loads the app, compiles it, builds its triggers and serves them until
    /// `shutdown` resolves, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let started = Instant::now();
        let o = &self.options;

        // Load.
        self.note_runtime_config()?;
        let load = app::LoadOptions {
            component_ids: &o.component_ids,
            variables: &self.variables,
            insecure: o.insecure,
            cache_dir: o.cache_dir(),
        };
        let app = app::load(&self.source, load).await?;

        // Compile.
        let engine = engine::new_engine()?;
        let compiled = engine::compile(&app, &engine, &CompileCache::new(o.cache_dir()))?;

        // Build the triggers.
        let instances = Arc::new(Semaphore::new(o.max_instances));
        let metrics = o
            .metrics_listen
            .map(|_| Arc::new(metrics::Metrics::new(instances.clone(), o.max_instances)));
        let shared = triggers::Shared {
            services: Arc::new(host::AppServices {
                redis: Default::default(),
                kv: Default::default(),
                json_logs: o.json_logs(),
                metrics: metrics.clone(),
            }),
            instances,
            metrics: metrics.clone(),
        };
        let settings = triggers::Settings {
            request_timeout: o.request_timeout(),
            message_timeout: o.message_timeout(),
            access_log: !o.quiet,
            log_format: o.log_format,
        };
        let triggers = triggers::build(&app, &compiled, &shared, &settings)?;

        // Serve.
        let listener = tokio::net::TcpListener::bind(o.listen).await.map_err(|e| {
            wasmtime::format_err!(
                "cannot listen on {}: {e} (is another server using the port? choose one with --listen)",
                o.listen
            )
        })?;
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let metrics_task = match (o.metrics_listen, metrics) {
            (Some(address), Some(m)) => {
                let metrics_listener = ops::metrics::bind(address, "--metrics-listen")
                    .await
                    .map_err(|e| wasmtime::format_err!("{e}"))?;
                let address = metrics_listener.local_addr()?;
                tracing::info!(address = %address, "serving metrics at http://{address}/metrics");
                let mut stopping = stopping.clone();
                Some(tokio::spawn(ops::metrics::serve(
                    metrics_listener,
                    m,
                    async move {
                        let _ = stopping.wait_for(|s| *s).await;
                    },
                )))
            }
            _ => None,
        };
        let running = triggers.start(stopping, stop);
        let local = listener.local_addr()?;
        tracing::info!(
            app = app.name,
            address = %local,
            "app {:?}{}{local} in {} ms ({} component(s) compiled, {} from cache)",
            app.name,
            log_format::milestones::READY,
            started.elapsed().as_millis(),
            compiled.compiled,
            compiled.cached
        );
        if app.http_routes.is_empty() {
            tracing::info!("no HTTP routes; only Redis triggers run");
        }
        let limits = triggers::http::ConnectionLimits {
            max_connections: o.max_connections,
            header_read_timeout: o.header_read_timeout(),
        };
        let graceful = triggers::http::serve(listener, running.http.clone(), &limits, shutdown).await?;

        // Drain.
        running.drain(graceful, o.drain_timeout()).await;
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        Ok(())
    }

    /// Checks the runtime config spin-operator writes, and says what of it
    /// is not used.
    fn note_runtime_config(&self) -> Result<()> {
        if let Some(path) = &self.options.runtime_config_file {
            let config = app::runtime_config::load(path)?;
            if let Some(store) = config.unused_store_path {
                tracing::info!(
                    "runtime config {}: the key-value store \"default\" is kept in memory, not in {}",
                    path.display(),
                    store.display()
                );
            }
        }
        Ok(())
    }
}
