//! The Redis trigger: SUBSCRIBE each channel at its address and, per
//! message, call the component's `fermyon:spin/inbound-redis` handler in a
//! fresh instance. Handler errors are logged, never fatal. When the
//! connection drops, or the server stops answering the PING sent every
//! [`PING_EVERY`] (a paused or partitioned server keeps the TCP connection
//! open), the subscriber reconnects with capped exponential backoff while
//! HTTP keeps serving (Spin's own trigger ends the process instead).
//!
//! Messages published while the subscriber was away are lost to it, as
//! pub/sub has no memory. So after every *re*subscription each component
//! gets one message with an empty payload on each of its channels: the hint
//! to catch up that Spin cannot give (its trigger never resubscribes).

use crate::host::RedisHandlerPre;
use crate::host::{AppServices, ComponentEnv, InstanceState, new_store};
use crate::metrics::{GuestMetrics, MessageMetrics, MessageOutcome, SubscriptionMetrics};
use futures_util::StreamExt;
use ops::backoff::Backoff;
use ops::redis_url::redact;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often an idle subscription is checked, and how long the answer may take.
const PING_EVERY: Duration = Duration::from_secs(2);
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// Connecting and subscribing, together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a subscription ended.
enum Ended {
    /// Shutdown.
    Stopped,
    /// The connection was lost: why.
    Lost(String),
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

pub struct RedisComponent {
    pub pre: RedisHandlerPre<InstanceState>,
    pub env: Arc<ComponentEnv>,
    /// Its messages on the channel, and its instances' traps and timeouts,
    /// when metrics are on.
    pub metrics: Option<(MessageMetrics, GuestMetrics)>,
}

/// All subscriptions on one Redis address.
pub struct Subscriber {
    pub address: String,
    /// channel → components to call, in manifest order.
    pub channels: HashMap<String, Vec<Arc<RedisComponent>>>,
    pub app: Arc<AppServices>,
    pub handler_timeout: Duration,
    pub instances: Arc<Semaphore>,
    /// Up/down and reconnects of this address, when metrics are on.
    pub metrics: Option<SubscriptionMetrics>,
}

impl Subscriber {
    /// Runs until `stop` turns true; a message being handled then is
    /// finished first.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let backoff = Backoff {
            initial: BACKOFF_INITIAL,
            max: BACKOFF_MAX,
        };
        let mut attempt = 0;
        let mut resubscribing = false;
        loop {
            let address = redact(&self.address);
            let ended = self.subscribe_and_serve(resubscribing, &mut stop).await;
            if let Some(m) = &self.metrics {
                m.up.set(0);
            }
            match ended {
                Ok(Ended::Stopped) => return,
                // It was subscribed: start over with short delays.
                Ok(Ended::Lost(lost)) => {
                    tracing::warn!(
                        address,
                        reason = lost,
                        "redis trigger lost its connection to {address}: {lost}"
                    );
                    attempt = 0;
                    resubscribing = true;
                }
                Err(e) => tracing::warn!(address, "redis trigger cannot subscribe at {address}: {e}"),
            }
            attempt += 1;
            let delay = backoff.delay(attempt, &mut rand::rng());
            tokio::select! {
                _ = stopped(&mut stop) => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Subscribes and handles messages until the connection is lost or
    /// `stop` turns true. `Err` when it could not subscribe at all.
    async fn subscribe_and_serve(
        &self,
        resubscribing: bool,
        stop: &mut watch::Receiver<bool>,
    ) -> wasmtime::Result<Ended> {
        let client = ops::valkey::client(&self.address).map_err(|e| wasmtime::format_err!("{e}"))?;
        let subscribe = async {
            let mut pubsub = client.get_async_pubsub().await?;
            for channel in self.channels.keys() {
                pubsub.subscribe(channel).await?;
            }
            Ok::<_, redis::RedisError>(pubsub)
        };
        let subscribed = tokio::select! {
            _ = stopped(stop) => return Ok(Ended::Stopped),
            subscribed = tokio::time::timeout(CONNECT_TIMEOUT, subscribe) => subscribed,
        };
        let failed = match subscribed {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(e)) => Err(Some(e)),
            Err(_) => Err(None),
        };
        let pubsub = match failed {
            Ok(pubsub) => pubsub,
            // TLS set up wrong on one side, named; else what failed.
            Err(e) => match ops::valkey::connect_cause(&self.address, e.as_ref(), PING_TIMEOUT).await {
                Some(cause) => wasmtime::bail!("{}", ops::redis_url::scrub(&cause, &self.address)),
                None => match e {
                    Some(e) if !e.is_timeout() => {
                        wasmtime::bail!("{}", ops::valkey::describe(&e, &self.address))
                    }
                    _ => wasmtime::bail!("no answer within {CONNECT_TIMEOUT:?}"),
                },
            },
        };
        let names: Vec<&str> = self.channels.keys().map(String::as_str).collect();
        let address = redact(&self.address);
        let subscribed = log_format::milestones::SUBSCRIBED;
        tracing::info!(address, channels = ?names, "{subscribed}{names:?} at {address}");
        if let Some(m) = &self.metrics {
            m.up.set(1);
            if resubscribing {
                m.reconnects.inc();
            }
        }
        if resubscribing {
            for (channel, components) in &self.channels {
                for component in components {
                    self.deliver(component.clone(), channel, Vec::new()).await;
                }
            }
        }
        let (mut sink, mut messages) = pubsub.split();
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A message is handled outside the select: `stop` is seen only
            // between messages, so the one in hand is always finished.
            tokio::select! {
                _ = stopped(stop) => return Ok(Ended::Stopped),
                msg = messages.next() => {
                    let Some(msg) = msg else {
                        return Ok(Ended::Lost("the connection closed".into()));
                    };
                    let channel = msg.get_channel_name().to_string();
                    let payload = msg.get_payload_bytes().to_vec();
                    for component in self.channels.get(&channel).into_iter().flatten() {
                        self.deliver(component.clone(), &channel, payload.clone()).await;
                    }
                }
                _ = ping.tick() => {
                    match tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Ok(Ended::Lost(format!("PING failed: {e}"))),
                        Err(_) => return Ok(Ended::Lost(format!("no answer to PING within {PING_TIMEOUT:?}"))),
                    }
                }
            }
        }
    }

    /// One message to one component, in a fresh instance. Messages are
    /// handled in arrival order; a slow handler is cut off by the timeout.
    async fn deliver(&self, component: Arc<RedisComponent>, channel: &str, payload: Vec<u8>) {
        let count = |outcome| {
            if let Some((messages, _)) = &component.metrics {
                messages.count(outcome);
            }
        };
        let Ok(_permit) = self.instances.acquire().await else {
            count(MessageOutcome::Dropped);
            let id = &component.env.id;
            tracing::warn!(
                component = id,
                channel,
                "shutting down: a message on {channel:?} was not handed to component {id:?}"
            );
            return;
        };
        let mut store = new_store(component.pre.engine(), component.env.clone(), self.app.clone());
        let id = &component.env.id;
        let call = async {
            let handler = component.pre.instantiate_async(&mut store).await?;
            handler
                .fermyon_spin_inbound_redis()
                .call_handle_message(&mut store, &payload)
                .await
        };
        let result = tokio::time::timeout(self.handler_timeout, call).await;
        let guest = component.metrics.as_ref().map(|(_, guest)| guest);
        match (&result, guest) {
            (Ok(Err(_)), Some(g)) => g.traps.inc(),
            (Err(_), Some(g)) => g.timeouts.inc(),
            _ => 0,
        };
        count(match &result {
            Ok(Ok(Ok(()))) => MessageOutcome::Handled,
            Ok(Ok(Err(_))) => MessageOutcome::Failed,
            Ok(Err(_)) => MessageOutcome::Trapped,
            Err(_) => MessageOutcome::TimedOut,
        });
        match result {
            Ok(Ok(Ok(()))) => {}
            // The interface's error carries no message: the component's own
            // log says why.
            Ok(Ok(Err(e))) => tracing::warn!(
                component = id,
                channel,
                "component {id:?} returned {e:?} for a message on {channel:?} (the cause is in its own log)"
            ),
            Ok(Err(trap)) => {
                tracing::error!(
                    component = id,
                    channel,
                    "component {id:?} trapped on a message on {channel:?}: {trap:?}"
                )
            }
            Err(_) => tracing::error!(
                component = id,
                channel,
                "component {id:?} did not handle a message on {channel:?} within {:?}",
                self.handler_timeout
            ),
        }
    }
}
