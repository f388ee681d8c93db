//! The probe fixture components (`runtime-shim/fixtures/probe-http` and
//! `probe-redis`) in manifests the tests write, served by runtime-shim or a
//! real Spin: what the host tests of `e2e/tests/shim*.rs` drive.

use crate::edge::{Edge, Host, Shim};
use crate::http::Response;
use crate::procs::{TempDir, repo_root};
use crate::valkey::Valkey;
use std::path::PathBuf;

/// A built fixture's Wasm file.
pub fn wasm(name: &str) -> String {
    let p: PathBuf = repo_root()
        .join("target/wasm32-wasip1/release")
        .join(format!("{name}.wasm"));
    assert!(p.is_file(), "{} is missing: run `make build` first", p.display());
    p.display().to_string()
}

/// A manifest in a scratch directory; `{http}` and `{redis}` stand for the
/// probe components' Wasm files.
pub fn manifest(dir: &TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("spin.toml");
    let text = text
        .replace("{http}", &wasm("probe_http"))
        .replace("{redis}", &wasm("probe_redis"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The probe on `/...` and nothing else.
pub const PROBE_ONLY: &str = r#"
spin_manifest_version = 2
[application]
name = "probe-only"
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "{http}"
"#;

/// `--variable k=v` flags.
pub fn vars(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| ["--variable".to_string(), format!("{k}={v}")])
        .collect()
}

/// The probe app: HTTP on `/...`, the Redis probe on `events`, both sharing
/// the key-value store and allowed to reach `allowed`.
pub fn probe_app(allowed: &str) -> String {
    format!(
        r#"
spin_manifest_version = 2
[application]
name = "probe"
[application.trigger.redis]
address = "{{{{ redis_url }}}}"
[variables]
redis_url = {{ required = true }}
[[trigger.http]]
route = "/..."
component = "probe"
[[trigger.redis]]
channel = "events"
component = "listener"
[component.probe]
source = "{{http}}"
allowed_outbound_hosts = ["{allowed}"]
key_value_stores = ["default"]
[component.probe.variables]
redis_url = "{{{{ redis_url }}}}"
[component.listener]
source = "{{redis}}"
key_value_stores = ["default"]
"#
    )
}

/// The probe app on runtime-shim, allowed to reach `valkey`.
pub fn start_probe(valkey: &Valkey, dir: &TempDir) -> Shim {
    start_probe_on(&Host::Shim, valkey, dir)
}

/// The probe app on `host`, allowed to reach `valkey`.
pub fn start_probe_on(host: &Host, valkey: &Valkey, dir: &TempDir) -> Edge {
    let m = manifest(dir, &probe_app(&format!("redis://{}", valkey.host())));
    Edge::start_on(host, &m, &vars(&[("redis_url", &valkey.url())])).unwrap_or_else(|l| panic!("{l}"))
}

/// The body of a 200 (panics on another status).
pub fn body_of(r: &Response) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

/// Valkey's count of connections accepted so far.
pub fn connections_received(valkey: &Valkey) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(&mut valkey.conn()).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_connections_received")
}
