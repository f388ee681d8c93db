//! `runtime-shim up -f <reference>`: a Spin app pulled from an OCI registry,
//! as `spin registry push` stores it: an OCI image manifest whose layers are
//! the locked app (JSON, `application/vnd.fermyon.spin.application.v1+config`)
//! and one layer per component's Wasm, which the locked app names by digest.
//!
//! Every manifest and blob is checked against its digest (and size) before
//! use. Verified blobs are kept by digest under `<cache>/oci/sha256/`, so a
//! restart fetches only what it lacks, and a reference pinned by digest
//! starts with no network at all. A reference by tag asks the registry what
//! the tag names each time, like Spin does.

mod client;
mod reference;

pub use client::stand_in_trust_anchor;
pub use reference::{Reference, is_loopback, parse as parse_reference};

use crate::cache_files::{sha256_digest as sha256, write_atomically};
use client::{Client, Refusal, Transport};
use oci_client::manifest::OciDescriptor;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::{Result, bail, format_err};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const LOCKED_APP: &str = "application/vnd.fermyon.spin.application.v1+config";
const WASM_LAYERS: [&str; 2] = ["application/vnd.wasm.content.layer.v1+wasm", "application/wasm"];
const MAX_MANIFEST: usize = 4 << 20;
const MAX_LOCKED_APP: usize = 16 << 20;
const MAX_LAYER: u64 = 512 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
}

/// How to reach the registry.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Plain HTTP to any registry (one on loopback gets it when it does not
    /// speak HTTPS).
    pub insecure: bool,
    /// The cache's root (blobs go to `<dir>/oci/sha256/`); `None` keeps
    /// nothing on disk.
    pub cache_dir: Option<PathBuf>,
}

/// A pull in two steps: [`Pull::locked_app`], then, for the components that
/// will run, [`Pull::wasm_layer`]. What the locked app means is the app
/// layer's to read; this module only fetches and verifies.
pub struct Pull {
    reference: Reference,
    client: Option<Client>,
    options: PullOptions,
    cache: BlobCache,
    layers: Vec<Descriptor>,
    /// Wasm layers already fetched, by digest (components may share one).
    wasm: HashMap<String, Arc<[u8]>>,
    pub fetched: usize,
    pub from_cache: usize,
}

impl Pull {
    pub fn new(reference: Reference, options: PullOptions) -> Pull {
        Pull {
            cache: BlobCache {
                dir: options.cache_dir.as_ref().map(|d| d.join("oci").join("sha256")),
            },
            reference,
            client: None,
            options,
            layers: Vec::new(),
            wasm: HashMap::new(),
            fetched: 0,
            from_cache: 0,
        }
    }

    /// The manifest's digest and the locked app it carries (JSON), its
    /// Wasm layers not yet fetched.
    pub async fn locked_app(&mut self) -> Result<(String, Vec<u8>)> {
        let (digest, bytes) = self.manifest().await?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| format_err!("{}: not an OCI image manifest: {e}", self.reference))?;
        if manifest.schema_version != 2 || manifest.media_type.as_deref().is_some_and(|m| m != OCI_MANIFEST) {
            bail!(
                "{}: a manifest of type {:?}, schema {}; a Spin app is an OCI image manifest ({OCI_MANIFEST})",
                self.reference,
                manifest.media_type.as_deref().unwrap_or("unset"),
                manifest.schema_version
            );
        }
        // Spin before 2.0 stored the locked app as the config blob.
        let locked = (manifest.layers.iter().rev())
            .find(|l| l.media_type == LOCKED_APP)
            .or(Some(&manifest.config).filter(|c| c.media_type == LOCKED_APP))
            .cloned()
            .ok_or_else(|| {
                format_err!(
                    "{} is not a Spin app: no layer of type {LOCKED_APP} (push it with `spin registry push`)",
                    self.reference
                )
            })?;
        if locked.size > MAX_LOCKED_APP as u64 {
            bail!(
                "{}: the locked app is {} bytes, more than {MAX_LOCKED_APP}",
                self.reference,
                locked.size
            );
        }
        let json = self.blob(&locked, "the locked app").await?;
        self.layers = manifest.layers;
        Ok((digest, json))
    }

    /// The Wasm layer `digest` of the manifest, from the cache or the
    /// registry, for `whose` (named in errors).
    pub async fn wasm_layer(&mut self, digest: &str, whose: &str) -> Result<Arc<[u8]>> {
        if let Some(b) = self.wasm.get(digest) {
            return Ok(b.clone());
        }
        let layer = (self.layers.iter())
            .find(|l| l.digest == digest)
            .cloned()
            .ok_or_else(|| {
                format_err!(
                    "{}: {whose}'s Wasm {digest} is not among its layers",
                    self.reference
                )
            })?;
        if !WASM_LAYERS.contains(&layer.media_type.as_str()) {
            bail!(
                "{}: {whose}'s layer {digest} is of type {:?}, not Wasm",
                self.reference,
                layer.media_type
            );
        }
        let b: Arc<[u8]> = self.blob(&layer, whose).await?.into();
        self.wasm.insert(digest.to_string(), b.clone());
        Ok(b)
    }

    /// The manifest, by digest from the cache when the reference pins one.
    async fn manifest(&mut self) -> Result<(String, Vec<u8>)> {
        if let Some(digest) = self.reference.digest()
            && let Some(bytes) = self.cache.get(digest)
        {
            self.from_cache += 1;
            return Ok((digest.to_string(), bytes));
        }
        let reference = self.reference.clone();
        let body = match self
            .client()?
            .manifest(&reference, OCI_MANIFEST, MAX_MANIFEST)
            .await?
        {
            Ok(body) => body,
            Err(Refusal::Status { code, detail }) if code == http::StatusCode::NOT_FOUND => {
                bail!("{reference} does not exist in the registry ({detail})")
            }
            Err(Refusal::Status { code, detail }) => {
                bail!("{reference}: the registry answered {code} ({detail})")
            }
            Err(Refusal::TooLarge) => bail!("{reference}: the manifest is larger than {MAX_MANIFEST} bytes"),
            Err(Refusal::Mismatch(_)) => {
                bail!("{reference}: the registry sent a manifest that does not match its digest")
            }
        };
        let digest = sha256(&body);
        if let Some(expected) = reference.digest()
            && expected != digest
        {
            bail!("{reference}: the registry sent a manifest whose digest is {digest}");
        }
        self.fetched += 1;
        self.cache.put(&digest, &body);
        Ok((digest, body.to_vec()))
    }

    async fn blob(&mut self, d: &Descriptor, what: &str) -> Result<Vec<u8>> {
        reference::parse_digest(&d.digest).map_err(|e| format_err!("{}: {what}: {e}", self.reference))?;
        if let Some(bytes) = self.cache.get(&d.digest) {
            self.from_cache += 1;
            return Ok(bytes);
        }
        if d.size > MAX_LAYER {
            bail!(
                "{}: {what} is {} bytes, more than {MAX_LAYER}",
                self.reference,
                d.size
            );
        }
        let reference = self.reference.clone();
        let layer = OciDescriptor {
            media_type: d.media_type.clone(),
            digest: d.digest.clone(),
            size: d.size as i64,
            ..OciDescriptor::default()
        };
        // A little over the size, so that too many bytes show as a mismatch.
        let max = d.size as usize + 1;
        let body = match self.client()?.blob(&reference, &layer, max).await? {
            Ok(body) | Err(Refusal::Mismatch(body)) => body,
            Err(Refusal::Status { code, detail }) if code == http::StatusCode::NOT_FOUND => {
                bail!(
                    "{reference}: {what} (layer {}) is missing from the registry ({detail})",
                    d.digest
                )
            }
            Err(Refusal::Status { code, detail }) => {
                bail!(
                    "{reference}: {what} (layer {}): the registry answered {code} ({detail})",
                    d.digest
                )
            }
            Err(Refusal::TooLarge) => {
                bail!(
                    "{reference}: {what} (layer {}) is larger than its manifest says ({} bytes)",
                    d.digest,
                    d.size
                )
            }
        };
        let digest = sha256(&body);
        if digest != d.digest || body.len() as u64 != d.size {
            bail!(
                "{reference}: {what} (layer {}) does not match its manifest: the registry sent {} bytes with digest {digest}",
                d.digest,
                body.len()
            );
        }
        self.fetched += 1;
        self.cache.put(&digest, &body);
        Ok(body.to_vec())
    }

    fn client(&mut self) -> Result<&mut Client> {
        if self.client.is_none() {
            let transport = if self.options.insecure {
                Transport::Http
            } else if is_loopback(&self.reference) {
                Transport::HttpsThenHttp
            } else {
                Transport::Https
            };
            self.client = Some(Client::new(self.reference.registry(), transport)?);
        }
        Ok(self.client.as_mut().expect("set above"))
    }
}

/// Verified blobs by digest. A file that no longer matches its name is
/// removed and fetched again; a cache that cannot be written is only a
/// warning, since the pull itself succeeded.
struct BlobCache {
    dir: Option<PathBuf>,
}

impl BlobCache {
    fn path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        Some(self.dir.as_ref()?.join(hex))
    }

    fn get(&self, digest: &str) -> Option<Vec<u8>> {
        let path = self.path(digest)?;
        let bytes = std::fs::read(&path).ok()?;
        if sha256(&bytes) == digest {
            return Some(bytes);
        }
        tracing::warn!("{} does not match its digest: fetching it again", path.display());
        let _ = std::fs::remove_file(&path);
        None
    }

    fn put(&self, digest: &str, bytes: &[u8]) {
        if let Some(path) = self.path(digest)
            && let Err(e) = write_atomically(&path, bytes)
        {
            tracing::warn!("cannot keep {digest} in {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_serves_only_bytes_that_match_their_digest() {
        let dir = std::env::temp_dir().join(format!("runtime-shim-blobs-{}", std::process::id()));
        let cache = BlobCache {
            dir: Some(dir.clone()),
        };
        let digest = sha256(b"layer");
        assert_eq!(cache.get(&digest), None);
        cache.put(&digest, b"layer");
        assert_eq!(cache.get(&digest).as_deref(), Some(&b"layer"[..]));
        std::fs::write(cache.path(&digest).unwrap(), b"tampered").unwrap();
        assert_eq!(cache.get(&digest), None);
        assert!(
            !cache.path(&digest).unwrap().exists(),
            "a mismatching file is removed"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
