//! runtime-shim as spin-operator's `spinImage` executor
//! (manifests/overlays/runtime-shim): the real Spin pushes the app to a local
//! registry (`make push`), then runtime-shim starts with the arguments,
//! environment and runtime config that spin-operator v0.6.1 gives the
//! container for the SpinApp of manifests/base/forex-edge.yaml, pulls the app
//! and serves it. Start-up failures of the pull are checked one by one, and a
//! pull over HTTPS trusts only the CA it is given.
//!
//! The container is derived from the manifests here, the way the operator's
//! controller derives it; the only substitutions are the ones a test on
//! loopback needs, each named where it is made.
//!
//! Needs a real Spin (`SPIN` or `spin` on PATH) and `docker-registry`;
//! without one, each test says so in one line and passes. The Wasm must be built (`make wasm`).

use e2e::manifests::{Value, find, yaml_docs};
use e2e::{
    OneFrame, Proc, Registry, SHIM_READY, TempDir, Valkey, assert_serves, bin, eventually, free_port,
    refresh, repo_root, seq_served, stored_snapshot,
};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;

/// Where an environment variable's value comes from.
#[derive(Debug, PartialEq)]
enum EnvValue {
    Value(String),
    /// `valueFrom.secretKeyRef`: (Secret, key).
    Secret(String, String),
}

/// What spin-operator v0.6.1 makes of a SpinApp for a `spinImage` executor:
/// the container's args and env, and the runtime config it mounts at
/// /runtime-config.toml.
struct Container {
    args: Vec<String>,
    env: Vec<(String, EnvValue)>,
    runtime_config: String,
}

/// A port of the controller, for the fields this SpinApp uses (each other
/// field the controller reads is asserted absent, so a manifest change that
/// would need more of the port fails here):
/// - args: `internal/controller/spinapp_controller.go`, `constructDeployment`,
///   the `config.SpinImage != nil` branch: `up --listen 0.0.0.0:<DefaultHTTPPort
///   = 80> -f <spec.image> --runtime-config-file /runtime-config.toml`, then
///   `--component-id <c>` per `spec.components`;
/// - env: `internal/controller/deployment.go`, `ConstructEnvForApp`:
///   `SPIN_VARIABLE_<NAME upper-cased>` per `spec.variables` (value or
///   valueFrom), then `SPIN_HTTP_LISTEN_ADDR=0.0.0.0:80`; OpenTelemetry
///   variables from the executor's `otel`, `SPIN_MAX_INSTANCE_MEMORY` from
///   `invocationLimits.memory`; `constructDeployment` adds
///   `SPIN_COMPONENTS_TO_RETAIN` when `spec.components` is set;
/// - runtime config: `internal/runtimeconfig/runtime_config.go`, `Build`:
///   always `[[config_provider]] type = "env", prefix = "SPIN_VARIABLE_"`, then
///   `[key_value_store.<name>]` with `type` and each option per
///   `runtimeConfig.keyValueStores` (rendered by go-toml, `types.go`).
fn operator_container(app: &Value, executor: &Value) -> Container {
    let spec = &app["spec"];
    for absent in ["components", "invocationLimits"] {
        assert!(spec[absent].is_null(), "spec.{absent} is set: extend the port");
    }
    let runtime = &spec["runtimeConfig"];
    for absent in ["loadFromSecret", "sqliteDatabases", "llmCompute"] {
        assert!(
            runtime[absent].is_null(),
            "runtimeConfig.{absent} is set: extend the port"
        );
    }
    let deployment = &executor["spec"]["deploymentConfig"];
    assert!(
        deployment["otel"].is_null(),
        "the executor sets otel: extend the port"
    );
    assert!(
        deployment["spinImage"].is_string(),
        "not a spinImage executor: {executor:?}"
    );

    let image = spec["image"].as_str().expect("spec.image");
    let args = [
        "up",
        "--listen",
        "0.0.0.0:80",
        "-f",
        image,
        "--runtime-config-file",
        "/runtime-config.toml",
    ]
    .map(String::from)
    .to_vec();

    let mut env = Vec::new();
    for v in spec["variables"].as_sequence().expect("spec.variables") {
        let name = format!(
            "SPIN_VARIABLE_{}",
            v["name"].as_str().expect("name").to_uppercase()
        );
        let value = match (v["value"].as_str(), &v["valueFrom"]["secretKeyRef"]) {
            (Some(value), Value::Null) => EnvValue::Value(value.into()),
            (None, secret) => EnvValue::Secret(
                secret["name"].as_str().expect("secretKeyRef.name").into(),
                secret["key"].as_str().expect("secretKeyRef.key").into(),
            ),
            _ => panic!("variable {v:?}: both value and valueFrom"),
        };
        env.push((name, value));
    }
    env.push((
        "SPIN_HTTP_LISTEN_ADDR".into(),
        EnvValue::Value("0.0.0.0:80".into()),
    ));

    let mut runtime_config =
        String::from("[[config_provider]]\ntype = \"env\"\nprefix = \"SPIN_VARIABLE_\"\n");
    for store in runtime["keyValueStores"].as_sequence().into_iter().flatten() {
        let name = store["name"].as_str().expect("store name");
        runtime_config += &format!("\n[key_value_store.{name}]\n");
        runtime_config += &format!("type = {:?}\n", store["type"].as_str().expect("store type"));
        for o in store["options"].as_sequence().into_iter().flatten() {
            let value = o["value"].as_str().expect("an inline option value");
            runtime_config += &format!("{} = {value:?}\n", o["name"].as_str().expect("option name"));
        }
    }
    Container {
        args,
        env,
        runtime_config,
    }
}

/// The container for the repository's SpinApp on the runtime-shim executor.
fn forex_edge_container() -> Container {
    let app = yaml_docs("manifests/base/forex-edge.yaml");
    let executors = yaml_docs("manifests/cluster/spinappexecutor.yaml");
    let overlay =
        std::fs::read_to_string(repo_root().join("manifests/overlays/runtime-shim/kustomization.yaml"))
            .expect("the runtime-shim overlay");
    assert!(
        overlay.contains("value: runtime-shim"),
        "the overlay selects the runtime-shim executor"
    );
    operator_container(
        find(&app, "SpinApp", "forex-edge"),
        find(&executors, "SpinAppExecutor", "runtime-shim"),
    )
}

/// runtime-shim started as the container: `args` and exactly `env` (nothing
/// of the test's own environment), in a directory of its own as the
/// container's `/`.
struct Started {
    proc: Proc,
    /// Removed when the process is done with it.
    _dir: TempDir,
}

fn start(args: &[String], env: &[(String, String)]) -> Started {
    let dir = TempDir::new("executor");
    let mut cmd = Command::new(bin("runtime-shim"));
    cmd.args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .current_dir(dir.path());
    let proc = Proc::spawn(&mut cmd, dir.path().join("runtime-shim.log"));
    Started { proc, _dir: dir }
}

/// runtime-shim pulling `image` with only what it needs besides: the two
/// Valkey variables, `cache` as its cache, and `paths` as more variables of
/// its environment.
fn start_pulling(image: &str, valkey: &Valkey, cache: &Path, paths: &[(&str, &Path)]) -> Started {
    let args = [
        "up",
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "-f",
        image,
    ]
    .map(String::from);
    let mut env = vec![
        ("SPIN_VARIABLE_VALKEY_URL".to_string(), valkey.url()),
        ("SPIN_VARIABLE_VALKEY_HOST".to_string(), valkey.host()),
        ("RUNTIME_SHIM_CACHE_DIR".to_string(), cache.display().to_string()),
    ];
    env.extend(
        paths
            .iter()
            .map(|(k, p)| (k.to_string(), p.display().to_string())),
    );
    start(&args, &env)
}

impl Started {
    /// Until it serves (`Ok`) or exits (`Err` with its status), 60 s at most.
    fn outcome(&mut self) -> Result<(), Option<ExitStatus>> {
        let r = eventually(Duration::from_secs(60), || {
            if let Some(status) = self.proc.has_exited() {
                return Some(Err(Some(status)));
            }
            self.proc.log().contains(SHIM_READY).then_some(Ok(()))
        });
        r.unwrap_or(Err(None))
    }

    fn failure(&mut self) -> String {
        match self.outcome() {
            Err(Some(status)) => {
                assert!(!status.success(), "{}", self.proc.log());
                self.proc.log()
            }
            other => panic!("expected start-up to fail, got {other:?}:\n{}", self.proc.log()),
        }
    }
}

/// The container's environment with every secret resolved and the
/// substitutions loopback needs.
fn environment(c: &Container, valkey: &Valkey, listen: &str, cache: &Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = c
        .env
        .iter()
        .map(|(name, value)| {
            let value = match value {
                // The Secret `valkey` (manifests/secrets.example.yaml) holds
                // the edge's URL; here, the test Valkey's.
                EnvValue::Secret(secret, key) => {
                    assert_eq!((secret.as_str(), key.as_str()), ("valkey", "edge-url"));
                    valkey.url()
                }
                // The in-cluster read Service (any Valkey pod) becomes the
                // test Valkey.
                EnvValue::Value(v) if name == "SPIN_VARIABLE_VALKEY_HOST" => {
                    assert_eq!(v, "valkey-read.forex.svc.cluster.local:6379");
                    valkey.host()
                }
                // Port 80 on every interface becomes a free loopback port.
                EnvValue::Value(v) if v == "0.0.0.0:80" => listen.to_string(),
                EnvValue::Value(v) => v.clone(),
            };
            (name.clone(), value)
        })
        .collect();
    // The image's own ENV (docker/runtime-shim.scratch.Dockerfile), on the
    // overlay's emptyDir.
    let dockerfile =
        std::fs::read_to_string(repo_root().join("docker/runtime-shim.scratch.Dockerfile")).unwrap();
    assert!(dockerfile.contains("ENV RUNTIME_SHIM_CACHE_DIR=/var/cache/runtime-shim"));
    env.push(("RUNTIME_SHIM_CACHE_DIR".into(), cache.display().to_string()));
    env
}

/// The container's args with the app image where the registry has it, and
/// the runtime config and listen address moved as in [`environment`].
fn arguments(c: &Container, image: &str, runtime_config: &Path, listen: &str) -> Vec<String> {
    c.args
        .iter()
        .map(|a| match a.as_str() {
            // spec.image is `forex-edge:0.1.0`; each overlay's `images:`
            // names the registry it was pushed to: here, the local one.
            "forex-edge:0.1.0" => image.to_string(),
            "/runtime-config.toml" => runtime_config.display().to_string(),
            "0.0.0.0:80" => listen.to_string(),
            other => other.to_string(),
        })
        .collect()
}

#[test]
fn the_operators_container_pulls_the_app_serves_it_and_restarts_without_the_registry() {
    let Some(spin) = e2e::spin_and_registry("executor") else {
        return;
    };
    let container = forex_edge_container();
    assert_eq!(container.args[..3], ["up", "--listen", "0.0.0.0:80"]);

    let registry = Registry::start();
    let digest = registry
        .push_app(&spin, &registry.reference("forex-edge:0.1.0"))
        .digest;
    // As the production overlay pins it: tag and digest.
    let image = format!("{}@{digest}", registry.reference("forex-edge:0.1.0"));

    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    let first_run = refresh(&valkey, &one_frame, &[]);
    assert_eq!(first_run.code, Some(0), "{}", first_run.log);
    let first = stored_snapshot(&valkey).expect("a snapshot");

    let scratch = TempDir::new("executor-volumes");
    let runtime_config = scratch.path().join("runtime-config.toml");
    std::fs::write(&runtime_config, &container.runtime_config).unwrap();
    let cache = scratch.path().join("cache");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let args = arguments(&container, &image, &runtime_config, &listen);
    let env = environment(&container, &valkey, &listen, &cache);

    let mut shim = start(&args, &env);
    shim.outcome()
        .unwrap_or_else(|status| panic!("did not start ({status:?}):\n{}", shim.proc.log()));
    let log = shim.proc.log();
    assert!(
        log.contains(&format!(
            "pulled {image} ({digest}): 4 blob(s) fetched, 0 from the cache"
        )),
        "{log}"
    );
    assert!(
        log.contains(
            "the key-value store \"default\" is kept in memory, not in /var/lib/forex-edge/kv/default.db"
        ),
        "{log}"
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for p in ["USDJPY", "JPYUSD", "EURJPY"] {
        assert_serves(addr, &first, p);
    }

    // A refresh reaches the HTTP trigger through rates-sync.
    eventually(Duration::from_secs(5), || {
        shim.proc.log().contains(e2e::SHIM_SUBSCRIBED).then_some(())
    })
    .unwrap_or_else(|| panic!("never subscribed:\n{}", shim.proc.log()));
    let second_run = refresh(&valkey, &one_frame, &[]);
    assert_eq!(second_run.code, Some(0), "{}", second_run.log);
    let newer = stored_snapshot(&valkey).unwrap();
    assert!(newer.seq > first.seq);
    eventually(Duration::from_secs(5), || {
        (seq_served(addr) == Some(newer.seq)).then_some(())
    })
    .unwrap_or_else(|| panic!("seq {} never served:\n{}", newer.seq, shim.proc.log()));
    assert_serves(addr, &newer, "USDJPY");

    // The container restarts (same volumes) while the registry is gone: the
    // pinned app comes from the cache, compiled code too.
    assert!(
        shim.proc
            .signal_and_wait("TERM", Duration::from_secs(15))
            .is_some()
    );
    drop(registry);
    let mut again = start(&args, &env);
    again
        .outcome()
        .unwrap_or_else(|status| panic!("did not restart offline ({status:?}):\n{}", again.proc.log()));
    let log = again.proc.log();
    assert!(log.contains("0 blob(s) fetched, 4 from the cache"), "{log}");
    assert!(log.contains("0 component(s) compiled, 2 from cache"), "{log}");
    assert_serves(addr, &newer, "EURJPY");
}

/// Start-up stops with a message naming what went wrong; nothing is served.
#[test]
fn bad_pulls_fail_start_up_clearly() {
    let Some(spin) = e2e::spin_and_registry("executor") else {
        return;
    };
    let registry = Registry::start();
    let good = registry.reference("forex-edge:0.1.0");
    registry.push_app(&spin, &good);
    let valkey = Valkey::start();
    let scratch = TempDir::new("executor-bad");
    // A fresh cache per attempt: a cached layer would hide the registry's.
    let attempt = |image: &str, n: usize| {
        start_pulling(image, &valkey, &scratch.path().join(format!("cache-{n}")), &[]).failure()
    };

    let bad = registry.reference("Forex-Edge:0.1.0");
    let log = attempt(&bad, 0);
    assert!(
        log.contains(&format!("-f {bad}: no such file, and not an OCI reference")),
        "{log}"
    );
    assert!(log.contains("lowercase"), "{log}");

    let log = attempt(&registry.reference("forex-edge:9.9.9"), 1);
    assert!(
        log.contains("forex-edge:9.9.9 does not exist in the registry (MANIFEST_UNKNOWN"),
        "{log}"
    );

    let nowhere = format!("127.0.0.1:{}/forex-edge:0.1.0", free_port());
    let log = attempt(&nowhere, 2);
    assert!(log.contains("cannot reach the registry at 127.0.0.1:"), "{log}");
    assert!(log.contains("onnection refused"), "{log}");

    // The registry's own storage: a layer's bytes replaced, then removed.
    let manifest = registry
        .get(
            "/v2/forex-edge/manifests/0.1.0",
            &[("accept", "application/vnd.oci.image.manifest.v1+json")],
        )
        .expect("the registry answers")
        .json();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_string();
    let hex = layer.strip_prefix("sha256:").unwrap();
    let data = registry
        .storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let original = std::fs::read(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
    let mut tampered = original.clone();
    tampered[original.len() / 2] ^= 0xff;
    std::fs::write(&data, &tampered).unwrap();
    let log = attempt(&good, 3);
    assert!(
        log.contains(&format!("(layer {layer}) does not match its manifest")),
        "{log}"
    );

    std::fs::remove_file(&data).unwrap();
    let log = attempt(&good, 4);
    assert!(
        log.contains(&format!("(layer {layer}) is missing from the registry")),
        "{log}"
    );
    assert!(!log.contains(SHIM_READY), "{log}");
}

/// HTTPS, as production pulls from a public registry: the pushed app served
/// by a second registry over TLS with a certificate from the test's own CA.
/// runtime-shim trusts it through `SSL_CERT_FILE` (in a pod, the bundle
/// spin-operator mounts) and pulls over HTTPS; with only the system's CAs
/// the certificate is refused, and the plain-HTTP retry a loopback registry
/// gets meets a TLS server: both reasons are given.
#[test]
fn pulls_over_https_trusting_only_the_ca_it_is_given() {
    let Some(spin) = e2e::spin_and_registry("executor") else {
        return;
    };
    let pki = e2e::TestCa::new("forex test CA");
    let server = pki.issue(&["127.0.0.1"], 1);
    let (ca, cert, key) = (pki.cert.clone(), server.cert, server.key);
    let plain = Registry::start();
    let digest = plain.push_app(&spin, &plain.reference("forex-edge:0.1.0")).digest;
    let tls = Registry::start_tls_beside(&plain, &cert, &key);
    let image = format!("{}@{digest}", tls.reference("forex-edge:0.1.0"));
    let valkey = Valkey::start();
    let scratch = TempDir::new("executor-tls");
    let attempt = |n: usize, trust: &[(&str, &Path)]| {
        start_pulling(&image, &valkey, &scratch.path().join(format!("cache-{n}")), trust)
    };

    let mut trusted = attempt(0, &[("SSL_CERT_FILE", &ca)]);
    trusted
        .outcome()
        .unwrap_or_else(|status| panic!("did not start ({status:?}):\n{}", trusted.proc.log()));
    let log = trusted.proc.log();
    assert!(
        log.contains(&format!("pulled {image} ({digest}): 4 blob(s) fetched")),
        "{log}"
    );
    assert!(!log.contains("no HTTPS"), "fell back to plain HTTP:\n{log}");

    let log = attempt(1, &[]).failure();
    assert!(
        log.contains("Client sent an HTTP request to an HTTPS server"),
        "{log}"
    );
    assert!(
        log.contains("and over HTTPS: cannot reach the registry at 127.0.0.1:")
            && log.contains("invalid peer certificate: UnknownIssuer"),
        "{log}"
    );
}
