//! A declared app made runnable: validated, and every template resolved
//! against its variables.

use super::declared::{Declared, Source};
use super::routes::RoutePattern;
use super::variables::{Provided, Resolver};
use crate::capabilities::{AllowedHosts, DEFAULT_STORE, check_variable_name};
use std::collections::BTreeMap;
use wasmtime::error::Context;
use wasmtime::{Result, bail};

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

impl App {
    #[cfg(test)]
    pub fn parse(text: &str, base: &std::path::Path, provided: &Provided) -> Result<App> {
        App::resolve(Declared::from_toml(text, base)?, provided)
    }

    /// Validates a declared app and resolves its templates against its
    /// variables and `provided`.
    pub fn resolve(declared: Declared, provided: &Provided) -> Result<App> {
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
                check_variable_name(k).with_context(|| ctx("in [component.variables]"))?;
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
