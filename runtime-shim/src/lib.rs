//! `runtime-shim`: a small Spin-compatible host on wasmtime that runs this
//! repository's `spin.toml` and its Wasm components without the Spin CLI, or
//! the same app as `spin registry push` stored it in an OCI registry.
//!
//! Start-up ([`up`]) reads the manifest (or pulls the app) strictly, compiles each component
//! once (with an on-disk cache), links the host interfaces and prepares an
//! `InstancePre`; then the HTTP trigger serves requests and the Redis trigger
//! delivers messages, each in a fresh instance.

mod access_log;
pub mod allowed_hosts;
mod engine;
mod host;
mod http_trigger;
mod locked;
pub mod manifest;
pub mod metrics;
pub mod oci;
mod redis_trigger;
pub mod runtime_config;
pub mod variables;

use host::{AppServices, ComponentEnv};
use http_trigger::{HttpComponent, HttpTrigger, Route};
use redis_trigger::{RedisComponent, Subscriber};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
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
        oci::Reference::parse(arg)
            .map(AppSource::Registry)
            .map_err(|e| wasmtime::format_err!("-f {arg}: no such file, and not an OCI reference: {e}"))
    }
}

/// Settings of `runtime-shim up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub source: AppSource,
    /// Plain HTTP to the registry (loopback registries always get it).
    pub insecure: bool,
    /// `--runtime-config-file`.
    pub runtime_config: Option<PathBuf>,
    /// `--component-id`: run only these components; empty runs all.
    pub component_ids: Vec<String>,
    pub listen: SocketAddr,
    pub variables: variables::Provided,
    /// Limit of one HTTP request's guest work (504 after it).
    pub request_timeout: Duration,
    /// Limit of one Redis message's handler.
    pub message_timeout: Duration,
    /// Compiled-component cache; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Longest wait for in-flight requests at shutdown.
    pub drain_timeout: Duration,
    /// Most client connections served at once; more wait in the backlog.
    pub max_connections: usize,
    /// Most instances alive at once (requests plus Redis messages); more
    /// wait. At most [`MAX_LIVE_INSTANCES`].
    pub max_instances: usize,
    /// An idle or slow client must send its request headers within this time.
    pub header_read_timeout: Duration,
    pub access_log: bool,
    /// Where to serve the metrics (`--metrics-listen`); `None` counts nothing.
    pub metrics_listen: Option<SocketAddr>,
    /// How the process logs (its events are set up by `main`; this shapes
    /// the access log and components' output).
    pub log_format: log_format::LogFormat,
}

pub use engine::{CompileCache, MAX_LIVE_INSTANCES};
pub use host::MAX_INSTANCE_MEMORY;

/// Loads the app and serves it until `shutdown` resolves, then drains.
pub async fn up(opts: UpOptions, shutdown: impl Future<Output = ()>) -> Result<()> {
    let started = Instant::now();
    if !(1..=MAX_LIVE_INSTANCES).contains(&opts.max_instances) {
        wasmtime::bail!("--max-instances must be from 1 to {MAX_LIVE_INSTANCES}");
    }
    if let Some(path) = &opts.runtime_config {
        let config = runtime_config::load(path)?;
        if let Some(store) = config.unused_store_path {
            tracing::info!(
                "runtime config {}: the key-value store \"default\" is kept in memory, not in {}",
                path.display(),
                store.display()
            );
        }
    }
    let app = load_app(&opts).await?;
    let engine = engine::new_engine()?;
    let cache = engine::CompileCache::new(opts.cache_dir.clone());
    let instances = Arc::new(Semaphore::new(opts.max_instances));
    let metrics = match opts.metrics_listen {
        Some(address) => {
            let listener = ops::metrics::bind(address, "--metrics-listen")
                .await
                .map_err(|e| wasmtime::format_err!("{e}"))?;
            let m = Arc::new(metrics::Metrics::new(instances.clone(), opts.max_instances));
            Some((listener, m))
        }
        None => None,
    };
    let observe = metrics.as_ref().map(|(_, m)| m.clone());
    let services = Arc::new(AppServices {
        redis: Default::default(),
        kv: Default::default(),
        json_logs: opts.log_format == log_format::LogFormat::Json,
        metrics: observe.clone(),
    });

    let mut pres = HashMap::new();
    let (mut compiled, mut cached) = (0, 0);
    for (id, c) in &app.components {
        let (component, from_cache) = cache
            .load(&engine, &c.source)
            .with_context(|| format!("component {id:?}"))?;
        if from_cache {
            cached += 1
        } else {
            compiled += 1
        }
        let pre = host::instance_pre(&engine, &component, id)?;
        let env = Arc::new(ComponentEnv {
            id: id.clone(),
            allowed_hosts: c.allowed_outbound_hosts.clone(),
            key_value_stores: c.key_value_stores.clone(),
            variables: c.variables.clone(),
        });
        pres.insert(id.clone(), (pre, env));
    }

    let mut routes = Vec::new();
    let mut http_components: HashMap<String, Arc<HttpComponent>> = HashMap::new();
    for r in &app.http_routes {
        let component = match http_components.get(&r.component) {
            Some(c) => c.clone(),
            None => {
                let (pre, env) = &pres[&r.component];
                let proxy = wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre.clone()).with_context(|| {
                    format!("component {:?} is routed by [[trigger.http]] but does not export wasi:http/incoming-handler", r.component)
                })?;
                let c = Arc::new(HttpComponent {
                    pre: proxy,
                    env: env.clone(),
                    metrics: observe.as_ref().map(|m| {
                        (
                            m.http(&r.component),
                            m.guest(&r.component, metrics::Trigger::Http),
                        )
                    }),
                });
                http_components.insert(r.component.clone(), c.clone());
                c
            }
        };
        routes.push(Route {
            pattern: r.pattern.clone(),
            raw: r.raw.clone(),
            component,
        });
    }

    let mut subscribers: HashMap<String, Subscriber> = HashMap::new();
    for s in &app.redis_subscriptions {
        let (pre, env) = &pres[&s.component];
        let handler = host::RedisHandlerPre::new(pre.clone()).with_context(|| {
            format!(
                "component {:?} is used by [[trigger.redis]] but does not export fermyon:spin/inbound-redis",
                s.component
            )
        })?;
        let sub = subscribers
            .entry(s.address.clone())
            .or_insert_with(|| Subscriber {
                address: s.address.clone(),
                channels: HashMap::new(),
                app: services.clone(),
                handler_timeout: opts.message_timeout,
                instances: instances.clone(),
                metrics: observe
                    .as_ref()
                    .map(|m| m.subscription(&metrics::address_label(&s.address))),
            });
        sub.channels
            .entry(s.channel.clone())
            .or_default()
            .push(Arc::new(RedisComponent {
                pre: handler,
                env: env.clone(),
                metrics: observe.as_ref().map(|m| {
                    (
                        m.messages(&s.component, &s.channel),
                        m.guest(&s.component, metrics::Trigger::Redis),
                    )
                }),
            }));
    }

    let listener = tokio::net::TcpListener::bind(opts.listen).await.map_err(|e| {
        wasmtime::format_err!(
            "cannot listen on {}: {e} (is another server using the port? choose one with --listen)",
            opts.listen
        )
    })?;
    let local = listener.local_addr()?;
    // Told to stop at shutdown; each finishes the message in hand first.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let subscribers: Vec<_> = subscribers
        .into_values()
        .map(|sub| {
            (
                log_format::redact(&sub.address),
                tokio::spawn(sub.run(stopping.clone())),
            )
        })
        .collect();
    let metrics_task = metrics.map(|(listener, m)| {
        let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(address, "serving metrics at http://{address}/metrics");
        let mut stopping = stopping.clone();
        tokio::spawn(ops::metrics::serve(listener, m, async move {
            let _ = stopping.wait_for(|s| *s).await;
        }))
    });
    let trigger = Arc::new(HttpTrigger {
        routes,
        host_metrics: observe.as_ref().map(|m| m.http(metrics::HOST_COMPONENT)),
        app: services,
        request_timeout: opts.request_timeout,
        instances,
        log: access_log::AccessLog::stderr(opts.access_log, opts.log_format),
        app_info: http_trigger::app_info(&app.name, app.version.as_deref()),
    });
    tracing::info!(
        app = app.name,
        address = %local,
        "app {:?}{}{local} in {} ms ({compiled} component(s) compiled, {cached} from cache)",
        app.name,
        log_format::milestones::READY,
        started.elapsed().as_millis()
    );
    if trigger.routes.is_empty() {
        tracing::info!("no HTTP routes; only Redis triggers run");
    }
    let graceful = serve(listener, trigger.clone(), &opts, shutdown).await?;
    drain(graceful, &trigger, stop, subscribers, opts.drain_timeout).await;
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    Ok(())
}

/// Shutdown, within `limit` in all: the Redis triggers take no new message
/// and requests still waiting for an instance are refused (503
/// `shutting_down`); requests and messages in flight are finished, and any
/// still running at the limit are given up, with a line saying so.
async fn drain(
    graceful: hyper_util::server::graceful::GracefulShutdown,
    trigger: &HttpTrigger,
    stop: tokio::sync::watch::Sender<bool>,
    subscribers: Vec<(String, tokio::task::JoinHandle<()>)>,
    limit: Duration,
) {
    trigger.log.flush();
    tracing::info!("shutting down; waiting up to {limit:?} for requests and messages in flight");
    let deadline = tokio::time::Instant::now() + limit;
    let _ = stop.send(true);
    trigger.instances.close();
    if tokio::time::timeout_at(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some requests were still running after {limit:?}; stopping anyway");
    }
    for (address, task) in subscribers {
        let abort = task.abort_handle();
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            abort.abort();
            tracing::warn!(
                address,
                "redis trigger at {address}: a message was still being handled after {limit:?}; it is lost"
            );
        }
    }
    trigger.log.flush();
}

/// The app of `opts.source`, only the components `--component-id` keeps,
/// variables resolved.
async fn load_app(opts: &UpOptions) -> Result<manifest::App> {
    match &opts.source {
        AppSource::Manifest(path) => {
            let mut declared = manifest::Declared::load(path)?;
            declared.retain_components(&opts.component_ids)?;
            manifest::App::resolve(declared, &opts.variables)
                .with_context(|| format!("invalid manifest {}", path.display()))
        }
        AppSource::Registry(reference) => {
            let mut pull = oci::Pull::new(
                reference.clone(),
                oci::PullOptions {
                    insecure: opts.insecure,
                    cache_dir: opts.cache_dir.clone(),
                },
            );
            let (digest, mut declared) = pull.locked_app().await?;
            declared.retain_components(&opts.component_ids)?;
            pull.fetch_sources(&mut declared).await?;
            tracing::info!(
                "pulled {reference} ({digest}): {} blob(s) fetched, {} from the cache",
                pull.fetched,
                pull.from_cache
            );
            manifest::App::resolve(declared, &opts.variables).with_context(|| format!("{reference}"))
        }
    }
}

/// Bytes of request head one connection may buffer.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Accepts connections until `shutdown` resolves; the connections still
/// open are then left to drain through the returned handle.
async fn serve(
    listener: tokio::net::TcpListener,
    trigger: Arc<HttpTrigger>,
    opts: &UpOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<hyper_util::server::graceful::GracefulShutdown> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(opts.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .max_headers(100)
        // About the most a connection buffers of a request's head (a last
        // read may take it to twice this): past it, 431 and the connection
        // closes.
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = connections.clone().acquire_owned() => p?,
        };
        let (stream, client) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let trigger = trigger.clone();
        let service = hyper::service::service_fn(move |req| {
            let trigger = trigger.clone();
            async move { Ok::<_, std::convert::Infallible>(trigger.handle(req, client).await) }
        });
        let conn = graceful.watch(builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    Ok(graceful)
}
