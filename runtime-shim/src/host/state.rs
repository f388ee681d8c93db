//! What each Wasm instance's store holds, and what instances share.
//!
//! A fresh [`InstanceState`] is made per HTTP request and per Redis message
//! (Spin's model). Things that must outlive an instance live in
//! [`AppServices`] (one per app: the Redis connection pool, the key-value
//! store) or [`ComponentEnv`] (one per component: its permissions and
//! variables), both behind `Arc`s so making a store costs a few pointer copies.

use super::guest_log::GuestLog;
use super::kv::KvStore;
use super::redis::RedisPool;
use crate::capabilities::AllowedHosts;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Largest linear memory one instance may grow to.
pub const MAX_INSTANCE_MEMORY: usize = 64 << 20;

/// Shared by every instance of the app.
pub struct AppServices {
    pub redis: RedisPool,
    pub kv: KvStore,
    /// JSON logs: guests' output becomes events ([`GuestLog`]).
    pub json_logs: bool,
    /// Counts outbound Redis errors when metrics are on.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// Shared by every instance of one component.
pub struct ComponentEnv {
    pub id: String,
    pub allowed_hosts: AllowedHosts,
    /// Key-value stores the component lists in `key_value_stores`.
    pub key_value_stores: Vec<String>,
    pub variables: BTreeMap<String, String>,
}

pub struct InstanceState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub table: ResourceTable,
    hooks: OutboundHttp,
    pub env: Arc<ComponentEnv>,
    pub app: Arc<AppServices>,
    pub limits: StoreLimits,
}

impl InstanceState {
    pub fn new(env: Arc<ComponentEnv>, app: Arc<AppServices>) -> InstanceState {
        // Guests share the host's stdout/stderr (their logs) and nothing
        // else: no environment, no files, no sockets.
        let mut wasi = WasiCtx::builder();
        if app.json_logs {
            let component: Arc<str> = env.id.as_str().into();
            wasi.stdout(GuestLog {
                component: component.clone(),
                stream: "stdout",
            })
            .stderr(GuestLog {
                component,
                stream: "stderr",
            });
        } else {
            wasi.inherit_stdout().inherit_stderr();
        }
        InstanceState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundHttp,
            env,
            app,
            limits: StoreLimitsBuilder::new()
                .memory_size(MAX_INSTANCE_MEMORY)
                .instances(64)
                .build(),
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Outbound HTTP is denied: this app's components may reach only Valkey,
/// and through the Redis interface.
struct OutboundHttp;

impl wasmtime_wasi_http::WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}
