//! The SpinApp image the way SpinKube consumes it: `make push` puts the app
//! into an OCI registry (a local `docker-registry` on loopback, plain HTTP),
//! and a real Spin runs it from the registry reference, as
//! containerd-shim-spin does with the SpinApp's `image`.
//!
//! Needs a real Spin (`SPIN` or `spin` on PATH) and `docker-registry` on
//! PATH; without either, each test says so in one line and passes. The
//! Wasm must be built (`make wasm`): the push here does not rebuild it.

use e2e::{
    Edge, Host, OneFrame, Proc, Registry, SPIN_READY, TempDir, Valkey, assert_serves, eventually, free_port,
    refresh, seq_served, stored_snapshot,
};
use shared::Snapshot;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The real Spin, when it and `docker-registry` are both found.
fn tools(test: &str) -> Option<(Host, PathBuf)> {
    let spin = e2e::spin_and_registry(test)?;
    Some((Host::Spin(spin.clone()), spin))
}

/// `make push` (see [`Registry::push_app`]); how long it took.
fn make_push(registry: &Registry, spin: &Path, reference: &str) -> Duration {
    let pushed = registry.push_app(spin, reference);
    // Loopback: the Makefile adds --insecure (plain HTTP) by itself.
    assert!(pushed.log.contains("registry push --insecure "), "{}", pushed.log);
    pushed.took
}

/// A Valkey holding a refresher snapshot, and the emulator it came from.
struct Upstream {
    valkey: Valkey,
    one_frame: OneFrame,
}

impl Upstream {
    fn start() -> Upstream {
        let valkey = Valkey::start();
        let one_frame = OneFrame::start(&[]);
        let up = Upstream { valkey, one_frame };
        up.refresh();
        up
    }

    /// One refresher run (SET + PUBLISH); the snapshot it stored.
    fn refresh(&self) -> Snapshot {
        let run = refresh(&self.valkey, &self.one_frame, &[]);
        assert_eq!(run.code, Some(0), "{}", run.log);
        stored_snapshot(&self.valkey).expect("a snapshot in Valkey")
    }

    fn variables(&self) -> Vec<String> {
        vec![
            "--variable".into(),
            format!("valkey_url={}", self.valkey.url()),
            "--variable".into(),
            format!("valkey_host={}", self.valkey.host()),
        ]
    }
}

fn files_under(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() { files_under(&p) } else { 1 }
            })
            .sum()
    })
}

#[test]
fn the_pushed_app_serves_rates_from_the_registry_and_follows_refreshes() {
    let Some((host, spin)) = tools("registry") else {
        return;
    };
    let registry = Registry::start();
    let reference = registry.reference("forex-edge:test");
    let took = make_push(&registry, &spin, &reference);
    eprintln!("make push (spin registry push, Wasm already built) took {took:?}");

    // What containerd-shim-spin pulls: an OCI image manifest whose layers are
    // the two components and Spin's locked app config.
    let manifest = registry
        .get(
            "/v2/forex-edge/manifests/test",
            &[("accept", "application/vnd.oci.image.manifest.v1+json")],
        )
        .expect("registry answers");
    assert_eq!(manifest.status, 200, "{}", manifest.text());
    let manifest = manifest.json();
    let mut layers: Vec<&str> = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["mediaType"].as_str().expect("mediaType"))
        .collect();
    layers.sort_unstable();
    assert_eq!(
        layers,
        [
            "application/vnd.fermyon.spin.application.v1+config",
            "application/vnd.wasm.content.layer.v1+wasm",
            "application/vnd.wasm.content.layer.v1+wasm",
        ],
        "{manifest}"
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.title"],
        "forex-edge"
    );

    let upstream = Upstream::start();
    let snapshot = stored_snapshot(&upstream.valkey).unwrap();
    let cache = TempDir::new("spin-oci-cache");
    let mut args: Vec<String> = vec![
        "--insecure".into(),
        "--cache-dir".into(),
        cache.path().display().to_string(),
    ];
    args.extend(upstream.variables());
    let started = Instant::now();
    // Edge gives Spin a --state-dir of its own: both trigger processes then
    // share one SQLite key-value store, as the SpinApp's runtimeConfig does
    // in production (without it they do not share: see the test below).
    let edge = Edge::start_from(&host, OsStr::new(&reference), &args)
        .unwrap_or_else(|log| panic!("spin up -f {reference} did not start:\n{log}"));
    eprintln!("spin up -f {reference}: serving after {:?}", started.elapsed());
    assert!(
        files_under(cache.path()) > 0,
        "nothing pulled into --cache-dir {}",
        cache.path().display()
    );
    edge.assert_logged(&format!(
        "Storing default key-value data to {:?}",
        edge.state_dir().join("sqlite_key_value.db")
    ));

    for p in ["USDJPY", "JPYUSD", "EURJPY"] {
        assert_serves(edge.addr(), &snapshot, p);
    }
    assert_eq!(edge.seq_served(), Some(snapshot.seq));

    // A refresh published afterwards reaches the HTTP trigger through
    // rates-sync and the shared store (long before revalidate_age).
    edge.wait_subscribed();
    let newer = upstream.refresh();
    assert!(newer.seq > snapshot.seq);
    eventually(Duration::from_secs(5), || {
        (edge.seq_served() == Some(newer.seq)).then_some(())
    })
    .unwrap_or_else(|| panic!("seq {} never served:\n{}", newer.seq, edge.log()));
    assert_serves(edge.addr(), &newer, "USDJPY");
    edge.assert_logged(&format!("rates-sync: cached snapshot seq {}", newer.seq));
}

/// What Spin does with an app pulled from a registry and no `--state-dir`:
/// it has no state directory, so each trigger process (`spin up` runs one
/// per trigger type) keeps `default` in a temporary in-memory store of its
/// own. rates-sync caches a new snapshot that rates-http never sees; HTTP
/// keeps what it read from Valkey until `revalidate_age`.
#[test]
fn without_a_state_dir_the_pulled_apps_triggers_do_not_share_the_cache() {
    let Some((host, spin)) = tools("registry") else {
        return;
    };
    let registry = Registry::start();
    let reference = registry.reference("forex-edge:test");
    make_push(&registry, &spin, &reference);
    let upstream = Upstream::start();
    let first = stored_snapshot(&upstream.valkey).unwrap();

    let dir = TempDir::new("spin-no-state");
    let port = free_port();
    let mut cmd = Command::new(&spin);
    cmd.args(["up", "-f", &reference, "--insecure", "--cache-dir"])
        .arg(dir.path().join("cache"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(upstream.variables())
        .current_dir(dir.path());
    // Its trigger processes are stopped with it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut spin_up = Proc::spawn_group(&mut cmd, dir.path().join("spin.log"), true);
    let ready = eventually(Duration::from_secs(120), || {
        if spin_up.has_exited().is_some() {
            return Some(false);
        }
        let log = spin_up.log();
        (log.contains(SPIN_READY) && host.has_subscribed(&log)).then_some(true)
    });
    assert_eq!(ready, Some(true), "spin up did not start:\n{}", spin_up.log());
    let log = spin_up.log();
    assert_eq!(
        log.matches("Storing default key-value data to a temporary in-memory store.")
            .count(),
        2,
        "one in-memory store per trigger process:\n{log}"
    );

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // rates-http fills its own store from Valkey.
    assert_eq!(seq_served(addr), Some(first.seq), "{}", spin_up.log());

    let newer = upstream.refresh();
    let synced = format!("rates-sync: cached snapshot seq {}", newer.seq);
    eventually(Duration::from_secs(5), || {
        spin_up.log().contains(&synced).then_some(())
    })
    .unwrap_or_else(|| panic!("{synced:?} not logged:\n{}", spin_up.log()));
    // rates-sync has stored it, in a store rates-http does not read.
    assert_eq!(seq_served(addr), Some(first.seq), "{}", spin_up.log());
    assert_serves(addr, &first, "USDJPY");
}
