//! runtime-shim's own metrics, served by `--metrics-listen` (env
//! `RUNTIME_SHIM_METRICS_LISTEN`) on a listener of their own: requests by
//! component and status class and their durations, live instances against
//! the limit, guest traps and timeouts, Redis-trigger messages by outcome,
//! subscriptions and their reconnects, outbound Redis errors by kind.
//!
//! Every label set is known at start-up (components, channels and addresses
//! come from the manifest), so each series is made once then and handed to
//! the code that counts it: a request touches a few atomic integers and no
//! lock. Off (no `--metrics-listen`), nothing is counted at all.

use hyper::StatusCode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The `component` label of answers the host gives itself (well-known
/// paths, no route, a URL too long).
pub const HOST_COMPONENT: &str = "_host";

/// Upper bounds of the request-duration buckets, in seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of atomic buckets (prometheus-client's own takes a lock on
/// every observation). The sum is kept in whole microseconds.
#[derive(Clone, Debug, Default)]
pub struct DurationHistogram(Arc<HistogramCells>);

#[derive(Debug, Default)]
struct HistogramCells {
    /// Per bucket, observations at most its bound (not cumulative); the
    /// last cell counts the ones above every bound.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl DurationHistogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = DURATION_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.0
            .sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // The encoder sums the buckets up itself.
        let buckets: Vec<(f64, u64)> = self
            .0
            .buckets
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let bound = DURATION_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
                (bound, cell.load(Ordering::Relaxed))
            })
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.0.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(
            sum,
            count,
            &buckets,
            None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Which trigger ran an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    Http,
    Redis,
}

/// What became of a Redis-trigger message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageOutcome {
    Handled,
    /// The handler returned an error.
    Failed,
    Trapped,
    TimedOut,
    /// Not handed to the component (shutting down).
    Dropped,
}

impl MessageOutcome {
    const ALL: [MessageOutcome; 5] = [
        MessageOutcome::Handled,
        MessageOutcome::Failed,
        MessageOutcome::Trapped,
        MessageOutcome::TimedOut,
        MessageOutcome::Dropped,
    ];

    fn name(self) -> &'static str {
        match self {
            MessageOutcome::Handled => "handled",
            MessageOutcome::Failed => "failed",
            MessageOutcome::Trapped => "trapped",
            MessageOutcome::TimedOut => "timed_out",
            MessageOutcome::Dropped => "dropped",
        }
    }
}

/// Why an outbound Redis open or command failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedisErrorKind {
    /// The address is not in `allowed_outbound_hosts`.
    Denied,
    Connect,
    Timeout,
    ConnectionLost,
    /// Credentials refused.
    Auth,
    Tls,
    /// Any other error answered by the server (NOPERM, WRONGTYPE, ...).
    Server,
    /// The answer did not have the type the interface returns.
    Type,
}

impl RedisErrorKind {
    const ALL: [RedisErrorKind; 8] = [
        RedisErrorKind::Denied,
        RedisErrorKind::Connect,
        RedisErrorKind::Timeout,
        RedisErrorKind::ConnectionLost,
        RedisErrorKind::Auth,
        RedisErrorKind::Tls,
        RedisErrorKind::Server,
        RedisErrorKind::Type,
    ];

    fn name(self) -> &'static str {
        match self {
            RedisErrorKind::Denied => "denied",
            RedisErrorKind::Connect => "connect",
            RedisErrorKind::Timeout => "timeout",
            RedisErrorKind::ConnectionLost => "connection_lost",
            RedisErrorKind::Auth => "auth",
            RedisErrorKind::Tls => "tls",
            RedisErrorKind::Server => "server",
            RedisErrorKind::Type => "type",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    component: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabel {
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GuestLabels {
    component: String,
    trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    component: String,
    channel: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AddressLabel {
    address: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// One component's HTTP series.
#[derive(Debug)]
pub struct HttpMetrics {
    by_class: [Counter; 5],
    duration: DurationHistogram,
}

impl HttpMetrics {
    pub fn observe(&self, status: StatusCode, elapsed: Duration) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].inc();
        self.duration.observe(elapsed);
    }
}

/// One component's traps and timeouts under one trigger.
#[derive(Debug)]
pub struct GuestMetrics {
    pub traps: Counter,
    pub timeouts: Counter,
}

/// One component's messages on one channel.
#[derive(Debug)]
pub struct MessageMetrics {
    by_outcome: [Counter; 5],
}

impl MessageMetrics {
    pub fn count(&self, outcome: MessageOutcome) {
        let i = MessageOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .expect("listed");
        self.by_outcome[i].inc();
    }
}

/// One subscription address.
#[derive(Debug)]
pub struct SubscriptionMetrics {
    pub up: Gauge,
    pub reconnects: Counter,
}

/// Every series, registered once.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<ComponentLabel, DurationHistogram>,
    traps: Family<GuestLabels, Counter>,
    timeouts: Family<GuestLabels, Counter>,
    messages: Family<MessageLabels, Counter>,
    subscription_up: Family<AddressLabel, Gauge>,
    reconnects: Family<AddressLabel, Counter>,
    redis_errors: [Counter; 8],
    instances: Arc<Semaphore>,
    instances_live: Gauge,
    max_instances: usize,
}

impl Metrics {
    /// The registry, with the instance gauges read from `instances` (a
    /// semaphore of `max_instances` permits) at each scrape.
    pub fn new(instances: Arc<Semaphore>, max_instances: usize) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "runtime_shim_http_requests",
            "HTTP requests answered, by component and status class",
            requests.clone(),
        );
        let durations = Family::<ComponentLabel, DurationHistogram>::default();
        registry.register(
            "runtime_shim_http_request_duration_seconds",
            "time from a request's arrival to its response head",
            durations.clone(),
        );
        let instances_live = Gauge::default();
        registry.register(
            "runtime_shim_instances_live",
            "component instances alive now (requests in flight and messages being handled)",
            instances_live.clone(),
        );
        let max = Gauge::<i64>::default();
        max.set(max_instances as i64);
        registry.register(
            "runtime_shim_instances_max",
            "most instances alive at once (--max-instances); more wait for one",
            max,
        );
        let traps = Family::<GuestLabels, Counter>::default();
        registry.register(
            "runtime_shim_guest_traps",
            "instances that trapped",
            traps.clone(),
        );
        let timeouts = Family::<GuestLabels, Counter>::default();
        registry.register(
            "runtime_shim_guest_timeouts",
            "instances stopped at their time limit",
            timeouts.clone(),
        );
        let messages = Family::<MessageLabels, Counter>::default();
        registry.register(
            "runtime_shim_redis_messages",
            "Redis-trigger messages, by component, channel and outcome",
            messages.clone(),
        );
        let subscription_up = Family::<AddressLabel, Gauge>::default();
        registry.register(
            "runtime_shim_redis_subscription_up",
            "1 while the Redis trigger is subscribed at the address",
            subscription_up.clone(),
        );
        let reconnects = Family::<AddressLabel, Counter>::default();
        registry.register(
            "runtime_shim_redis_subscription_reconnects",
            "subscriptions made again after a lost connection",
            reconnects.clone(),
        );
        let errors = Family::<KindLabel, Counter>::default();
        let redis_errors =
            RedisErrorKind::ALL.map(|k| errors.get_or_create(&KindLabel { kind: k.name() }).clone());
        registry.register(
            "runtime_shim_outbound_redis_errors",
            "outbound Redis opens and commands that failed, by kind",
            errors,
        );
        Metrics {
            registry,
            requests,
            durations,
            traps,
            timeouts,
            messages,
            subscription_up,
            reconnects,
            redis_errors,
            instances,
            instances_live,
            max_instances,
        }
    }

    /// The HTTP series of `component` ([`HOST_COMPONENT`] for the host's own answers).
    pub fn http(&self, component: &str) -> HttpMetrics {
        let class = |c: &'static str| {
            self.requests
                .get_or_create(&RequestLabels {
                    component: component.to_string(),
                    status_class: c,
                })
                .clone()
        };
        HttpMetrics {
            by_class: STATUS_CLASSES.map(class),
            duration: self
                .durations
                .get_or_create(&ComponentLabel {
                    component: component.to_string(),
                })
                .clone(),
        }
    }

    pub fn guest(&self, component: &str, trigger: Trigger) -> GuestMetrics {
        let labels = GuestLabels {
            component: component.to_string(),
            trigger: match trigger {
                Trigger::Http => "http",
                Trigger::Redis => "redis",
            },
        };
        GuestMetrics {
            traps: self.traps.get_or_create(&labels).clone(),
            timeouts: self.timeouts.get_or_create(&labels).clone(),
        }
    }

    pub fn messages(&self, component: &str, channel: &str) -> MessageMetrics {
        MessageMetrics {
            by_outcome: MessageOutcome::ALL.map(|o| {
                self.messages
                    .get_or_create(&MessageLabels {
                        component: component.to_string(),
                        channel: channel.to_string(),
                        outcome: o.name(),
                    })
                    .clone()
            }),
        }
    }

    /// The series of a subscription at `address` (`host:port`, no credentials).
    pub fn subscription(&self, address: &str) -> SubscriptionMetrics {
        let label = AddressLabel {
            address: address.to_string(),
        };
        SubscriptionMetrics {
            up: self.subscription_up.get_or_create(&label).clone(),
            reconnects: self.reconnects.get_or_create(&label).clone(),
        }
    }

    pub fn redis_error(&self, kind: RedisErrorKind) {
        let i = RedisErrorKind::ALL
            .iter()
            .position(|k| *k == kind)
            .expect("listed");
        self.redis_errors[i].inc();
    }

    /// The exposition, instance gauges read now.
    pub fn render(&self) -> String {
        let free = self.instances.available_permits();
        self.instances_live
            .set(self.max_instances.saturating_sub(free) as i64);
        ops::metrics::encode(&self.registry)
    }
}

impl ops::metrics::Scrape for Metrics {
    async fn scrape(&self) -> String {
        self.render()
    }
}

/// The `host:port` of a Redis URL, for a label (never its credentials).
pub fn address_label(url: &str) -> String {
    ops::redis_url::RedisUrl::parse(url).map_or_else(|_| "invalid".to_string(), |u| u.address())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .map(str::to_string)
    }

    #[test]
    fn counts_by_class_and_buckets_cumulatively() {
        let instances = Arc::new(Semaphore::new(8));
        let m = Metrics::new(instances.clone(), 8);
        let http = m.http("rates-http");
        http.observe(StatusCode::OK, Duration::from_micros(300));
        http.observe(StatusCode::OK, Duration::from_millis(3));
        http.observe(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(20));
        let _held = instances.try_acquire_many(3).unwrap();
        m.redis_error(RedisErrorKind::Timeout);
        let text = m.render();
        let req = |class| {
            format!(r#"runtime_shim_http_requests_total{{component="rates-http",status_class="{class}"}}"#)
        };
        assert_eq!(value(&text, &req("2xx")).as_deref(), Some("2"), "{text}");
        assert_eq!(value(&text, &req("5xx")).as_deref(), Some("1"));
        assert_eq!(value(&text, &req("4xx")).as_deref(), Some("0"));
        let bucket = |le| {
            format!(
                r#"runtime_shim_http_request_duration_seconds_bucket{{le="{le}",component="rates-http"}}"#
            )
        };
        assert_eq!(value(&text, &bucket("0.0005")).as_deref(), Some("1"), "{text}");
        assert_eq!(value(&text, &bucket("0.005")).as_deref(), Some("2"));
        assert_eq!(value(&text, &bucket("10.0")).as_deref(), Some("2"));
        assert_eq!(value(&text, &bucket("+Inf")).as_deref(), Some("3"));
        let sum: f64 = value(
            &text,
            r#"runtime_shim_http_request_duration_seconds_sum{component="rates-http"}"#,
        )
        .unwrap()
        .parse()
        .unwrap();
        assert!((sum - 20.0033).abs() < 1e-9, "{sum}");
        assert_eq!(value(&text, "runtime_shim_instances_live").as_deref(), Some("3"));
        assert_eq!(value(&text, "runtime_shim_instances_max").as_deref(), Some("8"));
        assert_eq!(
            value(
                &text,
                r#"runtime_shim_outbound_redis_errors_total{kind="timeout"}"#
            )
            .as_deref(),
            Some("1")
        );
    }

    #[test]
    fn address_labels_carry_no_credentials() {
        assert_eq!(address_label("redis://edge:s3cret@valkey:6379"), "valkey:6379");
        // The address it connects to, not what follows an `@` in the fragment.
        assert_eq!(address_label("redis://v:6379/0#a@b"), "v:6379");
        assert_eq!(
            address_label("rediss://valkey.forex:6380/0#x"),
            "valkey.forex:6380"
        );
        assert_eq!(address_label("redis://127.0.0.1:6379"), "127.0.0.1:6379");
    }
}
