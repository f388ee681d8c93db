//! `fermyon:spin/key-value@2.0.0`: the `default` store, in memory, one per
//! app, shared by every component that lists it in `key_value_stores` (Spin's
//! per-instance cache). Components that do not list it get `access-denied`.

use super::bindings::key_value::{self, Error, HostStore};
use super::state::InstanceState;
use crate::capabilities::DEFAULT_STORE;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use wasmtime::component::Resource;

/// The resource behind a guest's `store` (there is only one store).
pub struct KvStoreHandle;

/// The app's `default` store. Values are `Arc`ed so a read holds the lock
/// only for a pointer copy.
#[derive(Default)]
pub struct KvStore {
    map: RwLock<HashMap<String, Arc<[u8]>>>,
}

impl KvStore {
    pub fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        self.map.read().expect("kv lock").get(key).cloned()
    }

    pub fn set(&self, key: String, value: &[u8]) {
        self.map.write().expect("kv lock").insert(key, Arc::from(value));
    }
}

impl key_value::Host for InstanceState {}

impl HostStore for InstanceState {
    async fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<KvStoreHandle>, Error>> {
        if !self.env.key_value_stores.contains(&label) {
            return Ok(Err(if label == DEFAULT_STORE {
                Error::AccessDenied
            } else {
                Error::NoSuchStore
            }));
        }
        Ok(Ok(self.table.push(KvStoreHandle)?))
    }

    async fn get(
        &mut self,
        _: Resource<KvStoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        Ok(Ok(self.app.kv.get(&key).map(|v| v.to_vec())))
    }

    async fn set(
        &mut self,
        _: Resource<KvStoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.app.kv.set(key, &value);
        Ok(Ok(()))
    }

    async fn delete(
        &mut self,
        _: Resource<KvStoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.app.kv.map.write().expect("kv lock").remove(&key);
        Ok(Ok(()))
    }

    async fn exists(
        &mut self,
        _: Resource<KvStoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        Ok(Ok(self.app.kv.map.read().expect("kv lock").contains_key(&key)))
    }

    async fn get_keys(&mut self, _: Resource<KvStoreHandle>) -> wasmtime::Result<Result<Vec<String>, Error>> {
        Ok(Ok(self
            .app
            .kv
            .map
            .read()
            .expect("kv lock")
            .keys()
            .cloned()
            .collect()))
    }

    async fn drop(&mut self, s: Resource<KvStoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(s)?;
        Ok(())
    }
}
