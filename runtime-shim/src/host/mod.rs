//! The host side of a Wasm instance: the bindings generated from Spin's
//! WIT, what each instance's store holds ([`InstanceState`]) and what
//! instances share ([`AppServices`], [`ComponentEnv`]), the Spin interfaces
//! this host implements (key-value, outbound Redis, variables), enforcing
//! the rules of `crate::capabilities`, stubs for those it does not, and the
//! one way to make an instance's store ([`new_store`]) and link a component
//! ([`instance_pre`]). The engine links with these and the triggers make
//! stores with them; this module knows nothing of how the app was loaded.

mod bindings;
mod guest_log;
mod kv;
mod redis;
mod state;
mod unsupported;
mod variables;

pub use bindings::redis_handler::RedisHandlerPre;
pub use state::{AppServices, ComponentEnv, InstanceState, MAX_INSTANCE_MEMORY};

use std::sync::Arc;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
use wasmtime::error::Context;
use wasmtime::{Engine, Result, Store};

/// A fresh store for one instance of a component: its state, the memory
/// limits, and an epoch deadline that yields to tokio every tick so the
/// triggers' time limits can fire even while the guest computes.
pub fn new_store(engine: &Engine, env: Arc<ComponentEnv>, app: Arc<AppServices>) -> Store<InstanceState> {
    let mut store = Store::new(engine, InstanceState::new(env, app));
    store.limiter(|s| &mut s.limits);
    store.epoch_deadline_async_yield_and_update(1);
    store
}

/// A linker with WASI, WASI HTTP, the Spin interfaces this host implements,
/// and stubs for the ones it does not.
pub fn linker_for(engine: &Engine, component: &Component) -> Result<(Linker<InstanceState>, Vec<String>)> {
    let mut linker = Linker::<InstanceState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::Host_::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    bindings::redis_handler::RedisHandler::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    let stubbed = unsupported::link(&mut linker, engine, component)?;
    Ok((linker, stubbed))
}

pub fn instance_pre(engine: &Engine, component: &Component, id: &str) -> Result<InstancePre<InstanceState>> {
    let (linker, stubbed) = linker_for(engine, component)?;
    if !stubbed.is_empty() {
        tracing::warn!(
            "component {id:?} imports unsupported interfaces (calls will fail): {}",
            stubbed.join(", ")
        );
    }
    linker
        .instantiate_pre(component)
        .with_context(|| format!("component {id:?} cannot be linked"))
}
