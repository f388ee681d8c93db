//! Host bindings generated from the vendored Spin WIT (`runtime-shim/wit/`).

wasmtime::component::bindgen!({
    path: "wit",
    world: "forex:runtime-shim/host",
    imports: { default: async | trappable },
    with: {
        "fermyon:spin/redis@2.0.0.connection": crate::host::redis::RedisConnection,
        "fermyon:spin/key-value@2.0.0.store": crate::host::kv::KvStoreHandle,
    },
});

/// The Redis trigger's guest export.
pub mod redis_handler {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "forex:runtime-shim/redis-handler",
        exports: { default: async },
    });
}

pub use fermyon::spin2_0_0::{key_value, redis, variables};

impl redis_handler::fermyon::spin::redis_types::Host for super::InstanceState {}
