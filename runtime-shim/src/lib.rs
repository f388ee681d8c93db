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
//!
//! Each layer uses only those below it: `app` → `oci`; `engine` → `app` and
//! `host`; `triggers` → `engine` (and what it hands out). `app` and `host`
//! never reach into each other: the rules both need live in
//! `capabilities`, and `oci` and `engine` keep files through `cache_files`.
//! The test at the end of this file holds every module to that.

pub mod app;
mod cache_files;
mod capabilities;
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
            request_timeout: o.request_timeout,
            message_timeout: o.message_timeout,
            access_log: !o.quiet,
            log_format: o.log_format,
            readiness_path: o.readiness_path.clone(),
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
            header_read_timeout: o.header_read_timeout,
        };
        // At the signal, first the grace period: still serving, but failing
        // the readiness path, so balancers stop sending before the listener
        // closes (Kubernetes removes the pod from its Service as it signals
        // it, and balancers learn of that seconds later).
        let leaving = running.http.leaving.clone();
        let (delay, readiness) = (o.shutdown_delay, o.readiness_path.clone());
        let shutdown = async move {
            shutdown.await;
            if !delay.is_zero() {
                leaving.store(true, std::sync::atomic::Ordering::Relaxed);
                let path = readiness.as_deref().unwrap_or("(no --readiness-path)");
                tracing::info!(
                    "shutting down: serving for another {} while {path} answers 503, then draining",
                    ops::duration::format(delay)
                );
                tokio::time::sleep(delay).await;
            }
        };
        let graceful = triggers::http::serve(listener, running.http.clone(), &limits, shutdown).await?;

        // Drain.
        running.drain(graceful, o.drain_timeout).await;
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

#[cfg(test)]
mod layers {
    use std::collections::BTreeMap;
    use std::path::Path;

    /// The modules each module may use (`crate::<module>`); a module not
    /// listed may use none. The leaves (`capabilities`, `cache_files`,
    /// `metrics`) depend on nothing of the crate.
    const MAY_USE: &[(&str, &[&str])] = &[
        ("oci", &["cache_files"]),
        ("app", &["oci", "capabilities"]),
        ("host", &["capabilities", "metrics"]),
        ("engine", &["app", "host", "cache_files"]),
        ("triggers", &["engine", "app", "host", "metrics"]),
        ("options", &["engine", "app", "metrics"]),
    ];

    /// The crate's top-level module a source file belongs to.
    fn module_of(file: &Path, src: &Path) -> String {
        let rel = file.strip_prefix(src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    }

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_layer_uses_only_those_below_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let allowed: BTreeMap<&str, &[&str]> = MAY_USE.iter().copied().collect();
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut wrong = Vec::new();
        let mut seen = 0;
        for file in &files {
            let module = module_of(file, &src);
            if matches!(module.as_str(), "lib" | "main") {
                continue;
            }
            let may = allowed.get(module.as_str()).copied().unwrap_or(&[]);
            let text = std::fs::read_to_string(file).unwrap();
            // Code only: a doc comment may name any module.
            let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
            for line in code {
                for (at, _) in line.match_indices("crate::") {
                    let used: String = line[at + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    seen += 1;
                    if used != module && !may.contains(&used.as_str()) {
                        wrong.push(format!(
                            "{} uses crate::{used}",
                            file.strip_prefix(&src).unwrap().display()
                        ));
                    }
                }
            }
            // `super::super` would climb out of a layer unseen.
            if text.contains("super::super") {
                wrong.push(format!("{} climbs with super::super", file.display()));
            }
        }
        assert!(seen > 10, "the scan found the crate's paths");
        assert!(
            wrong.is_empty(),
            "a layer reaches up or sideways:\n{}",
            wrong.join("\n")
        );
    }
}
