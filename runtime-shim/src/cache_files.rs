//! Files kept by content: the SHA-256 digests blobs and compiled components
//! are named by, and writes that a crash cannot leave half done. The OCI
//! blob cache ([`crate::oci`]) and the compile cache ([`crate::engine`])
//! both keep their files this way.

use sha2::{Digest, Sha256};
use std::path::Path;

/// Lower-case hex of `digest`.
pub fn hex(digest: &[u8]) -> String {
    use std::fmt::Write;
    digest
        .iter()
        .fold(String::with_capacity(digest.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// `sha256:<hex>` of `bytes`, as OCI names blobs.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// Writes `bytes` to `file` through a temporary file and a rename, so a
/// reader sees the old file or the whole new one, never a part.
pub fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = file.parent().expect("cache files live in a directory");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file.file_name().and_then(|n| n.to_str()).unwrap_or("c"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file)
}
