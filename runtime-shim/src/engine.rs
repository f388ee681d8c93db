//! Everything expensive, done once at start-up: the wasmtime engine with a
//! pooling allocator and epoch interruption, turning `wasm32-wasip1` modules
//! into components, compiling them (or loading the compiled code from the
//! on-disk cache) and linking them to the host ([`compile`]).

use crate::app::{App, Source};
use crate::cache_files::{hex, write_atomically};
use crate::host::{self, ComponentEnv, InstanceState, MAX_INSTANCE_MEMORY};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::Result;
use wasmtime::component::Component;
use wasmtime::component::InstancePre;
use wasmtime::error::Context;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A running guest yields to tokio at every
/// tick, so the triggers' time limits (tokio timeouts) can fire while it
/// computes; the limits are not counted in ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bytes of each memory and table kept resident between instances.
const KEEP_RESIDENT: usize = 4 << 20;

/// Instances the pooling allocator has room for.
pub const MAX_INSTANCES: u32 = 256;
/// Most instances the triggers keep alive at once (requests in flight plus
/// Redis messages): the pool less a margin, so it is never exhausted.
pub const MAX_LIVE_INSTANCES: usize = MAX_INSTANCES as usize - 16;

pub fn new_engine() -> Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(MAX_INSTANCES)
        .total_core_instances(MAX_INSTANCES * 8)
        .total_memories(MAX_INSTANCES * 4)
        .total_tables(MAX_INSTANCES * 4)
        .total_stacks(MAX_INSTANCES)
        .max_memories_per_component(8)
        .max_tables_per_component(8)
        .max_core_instances_per_component(16)
        .max_memory_size(MAX_INSTANCE_MEMORY)
        // Instances are short-lived and many: reset the pages a request
        // touched with memset instead of handing them back to the kernel,
        // which costs page faults on the next request and TLB shootdowns
        // across cores on every reset.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)?;
    let weak = engine.weak();
    std::thread::Builder::new().name("epoch".into()).spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(EPOCH_TICK);
        }
    })?;
    Ok(engine)
}

/// A core module (what `cargo build --target wasm32-wasip1` makes) becomes a
/// component through the WASI preview1 reactor adapter; a component is kept.
pub fn componentize(bytes: &[u8]) -> Result<Vec<u8>> {
    if wasmparser::Parser::is_component(bytes) {
        return Ok(bytes.to_vec());
    }
    if !wasmparser::Parser::is_core_wasm(bytes) {
        wasmtime::bail!("not a WebAssembly module or component");
    }
    let encode = || -> anyhow::Result<Vec<u8>> {
        use anyhow::Context as _;
        wit_component::ComponentEncoder::default()
            .module(bytes)
            .context(
                "the module carries no component type information (build it with spin-sdk / wit-bindgen)",
            )?
            .adapter(
                "wasi_snapshot_preview1",
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )?
            .validate(true)
            .encode()
    };
    encode().map_err(wasmtime::Error::from_anyhow)
}

/// Compiled components on disk, keyed by the hash of the Wasm file and the
/// engine's settings, so a restart skips componentizing and compiling.
pub struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    pub fn new(dir: Option<PathBuf>) -> CompileCache {
        CompileCache { dir }
    }

    /// `$XDG_CACHE_HOME/runtime-shim`, or `~/.cache/runtime-shim`.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("runtime-shim"))
    }

    pub fn load(&self, engine: &Engine, source: &Source) -> Result<(Component, bool)> {
        let bytes = source.bytes()?;
        let key = {
            let mut h = Sha256::new();
            h.update(&bytes);
            std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut HashWriter(&mut h));
            hex(&h.finalize())
        };
        let cached = self.dir.as_ref().map(|d| d.join(format!("{key}.cwasm")));
        if let Some(file) = cached.as_ref().filter(|f| f.is_file()) {
            // SAFETY: the file was written by `Component::serialize` of an engine
            // with the same compatibility hash, into a directory of our own; the
            // key covers the source bytes. A corrupt file fails to deserialize
            // (wasmtime checks its header) and is then rebuilt.
            match unsafe { Component::deserialize_file(engine, file) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => tracing::warn!("ignoring cached {}: {e}", file.display()),
            }
        }
        let component_bytes = componentize(&bytes).with_context(|| format!("{source}"))?;
        let component =
            Component::new(engine, &component_bytes).with_context(|| format!("cannot compile {source}"))?;
        if let Some(file) = cached
            && let Err(e) = write_atomically(&file, &component.serialize()?)
        {
            tracing::warn!("cannot write the compile cache {}: {e}", file.display());
        }
        Ok((component, false))
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::hash::Hasher for HashWriter<'_> {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Every component of an app, compiled and linked, with what its instances
/// may do: what the triggers instantiate per request or message.
pub struct Compiled {
    pub components: HashMap<String, (InstancePre<InstanceState>, Arc<ComponentEnv>)>,
    /// Components compiled now, and loaded from the cache.
    pub compiled: usize,
    pub cached: usize,
}

/// Compiles (or loads from `cache`) and links every component of `app`.
pub fn compile(app: &App, engine: &Engine, cache: &CompileCache) -> Result<Compiled> {
    let mut out = Compiled {
        components: HashMap::new(),
        compiled: 0,
        cached: 0,
    };
    for (id, c) in &app.components {
        let (component, from_cache) = cache
            .load(engine, &c.source)
            .with_context(|| format!("component {id:?}"))?;
        if from_cache {
            out.cached += 1
        } else {
            out.compiled += 1
        }
        let pre = host::instance_pre(engine, &component, id)?;
        let env = Arc::new(ComponentEnv {
            id: id.clone(),
            allowed_hosts: c.allowed_outbound_hosts.clone(),
            key_value_stores: c.key_value_stores.clone(),
            variables: c.variables.clone(),
        });
        out.components.insert(id.clone(), (pre, env));
    }
    Ok(out)
}
