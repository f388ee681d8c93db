//! What makes instances run: the HTTP trigger ([`http`], with its accept
//! loop and access log) and the Redis trigger ([`redis`]), each making a
//! fresh instance of a component per request or message. [`build`] makes
//! them from the app and its compiled components; [`Running::drain`] ends
//! them at shutdown.

pub mod access_log;
pub mod http;
pub mod redis;

use crate::app::App;
use crate::engine::Compiled;
use crate::host::{self, AppServices};
use crate::metrics::{self, Metrics};
use http::{HttpComponent, HttpTrigger, Route};
use redis::{RedisComponent, Subscriber};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use wasmtime::Result;
use wasmtime::error::Context;

/// What every trigger shares.
pub struct Shared {
    pub services: Arc<AppServices>,
    /// Bounds live instances so the pooling allocator is never exhausted.
    pub instances: Arc<Semaphore>,
    pub metrics: Option<Arc<Metrics>>,
}

/// How the triggers run instances and log.
pub struct Settings {
    pub request_timeout: Duration,
    pub message_timeout: Duration,
    pub access_log: bool,
    pub log_format: log_format::LogFormat,
    /// The path the host fails itself while the instance is leaving.
    pub readiness_path: Option<String>,
}

/// The app's triggers, built, not yet running.
pub struct Triggers {
    pub http: Arc<HttpTrigger>,
    subscribers: Vec<Subscriber>,
}

/// The HTTP trigger's routes and one subscriber per Redis address, each
/// component checked to export the handler its trigger calls.
pub fn build(app: &App, compiled: &Compiled, shared: &Shared, settings: &Settings) -> Result<Triggers> {
    let observe = shared.metrics.as_ref();
    let mut routes = Vec::new();
    let mut http_components: HashMap<String, Arc<HttpComponent>> = HashMap::new();
    for r in &app.http_routes {
        let component = match http_components.get(&r.component) {
            Some(c) => c.clone(),
            None => {
                let (pre, env) = &compiled.components[&r.component];
                let proxy = wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre.clone()).with_context(|| {
                    format!("component {:?} is routed by [[trigger.http]] but does not export wasi:http/incoming-handler", r.component)
                })?;
                let c = Arc::new(HttpComponent {
                    pre: proxy,
                    env: env.clone(),
                    metrics: observe.map(|m| {
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
        let (pre, env) = &compiled.components[&s.component];
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
                app: shared.services.clone(),
                handler_timeout: settings.message_timeout,
                instances: shared.instances.clone(),
                metrics: observe.map(|m| m.subscription(&metrics::address_label(&s.address))),
            });
        sub.channels
            .entry(s.channel.clone())
            .or_default()
            .push(Arc::new(RedisComponent {
                pre: handler,
                env: env.clone(),
                metrics: observe.map(|m| {
                    (
                        m.messages(&s.component, &s.channel),
                        m.guest(&s.component, metrics::Trigger::Redis),
                    )
                }),
            }));
    }

    let http = Arc::new(HttpTrigger {
        routes,
        host_metrics: observe.map(|m| m.http(metrics::HOST_COMPONENT)),
        app: shared.services.clone(),
        request_timeout: settings.request_timeout,
        instances: shared.instances.clone(),
        log: access_log::AccessLog::stderr(settings.access_log, settings.log_format),
        app_info: http::app_info(&app.name, app.version.as_deref()),
        readiness_path: settings.readiness_path.clone(),
        leaving: Default::default(),
    });
    Ok(Triggers {
        http,
        subscribers: subscribers.into_values().collect(),
    })
}

impl Triggers {
    /// Starts the Redis subscriptions; they run until `stop` turns true.
    pub fn start(self, stopping: watch::Receiver<bool>, stop: watch::Sender<bool>) -> Running {
        let subscribers = (self.subscribers.into_iter())
            .map(|sub| {
                (
                    ops::redis_url::redact(&sub.address),
                    tokio::spawn(sub.run(stopping.clone())),
                )
            })
            .collect();
        Running {
            http: self.http,
            subscribers,
            stop,
        }
    }
}

/// The triggers at work.
pub struct Running {
    pub http: Arc<HttpTrigger>,
    /// Each subscription's address (without credentials) and task.
    subscribers: Vec<(String, tokio::task::JoinHandle<()>)>,
    /// Told at shutdown; each subscriber finishes the message in hand first.
    stop: watch::Sender<bool>,
}

impl Running {
    /// Shutdown, within `limit` in all: the Redis triggers take no new message
    /// and requests still waiting for an instance are refused (503
    /// `shutting_down`); requests and messages in flight are finished, and any
    /// still running at the limit are given up, with a line saying so.
    pub async fn drain(self, graceful: hyper_util::server::graceful::GracefulShutdown, limit: Duration) {
        let Running {
            http: trigger,
            subscribers,
            stop,
        } = self;
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
}
