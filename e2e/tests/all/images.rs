//! The refresher, One-Frame emulator and runtime-shim images as `make
//! images` builds them: static musl binaries in images `FROM scratch`, pushed
//! to a local `docker-registry` on loopback, inspected there with `skopeo`,
//! then pulled into a fresh buildah storage and run with `buildah run
//! --isolation chroot`: the refresher's image, against the emulator's, lands
//! a snapshot in a test Valkey, and runtime-shim's reaches the registry to
//! pull an app (e2e/tests/all/executor.rs runs the same binary through a whole
//! pull and serve).
//!
//! Needs `buildah`, `skopeo`, `docker-registry` and `tar` on PATH and the Rust
//! target `x86_64-unknown-linux-musl`; without one of them the test says so
//! in one line and passes. It runs `make images`, which compiles the three
//! binaries for musl in release mode (minutes the first time; afterwards
//! cargo has nothing to do). buildah keeps everything in scratch directories
//! removed at the end.

use e2e::{
    DEFAULT_CURRENCIES, Proc, Registry, TempDir, Valkey, eventually, free_port, on_path, repo_root,
    stored_snapshot,
};
use serde_json::Value;
use shared::Currency;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MUSL: &str = "x86_64-unknown-linux-musl";
/// The user both images run as (uid:gid), as the manifests expect.
const USER: &str = "65532:65532";

/// Whether everything the test needs is installed; prints why not.
fn tools() -> bool {
    for (bin, package) in [
        ("buildah", "buildah"),
        ("skopeo", "skopeo"),
        ("docker-registry", "docker-registry"),
        ("tar", "tar"),
        ("timeout", "coreutils"),
    ] {
        if !on_path(bin) {
            eprintln!("images: no {bin} on PATH (Debian package {package}): skipped");
            return false;
        }
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if !sysroot.is_some_and(|s| s.join("lib/rustlib").join(MUSL).join("lib").is_dir()) {
        eprintln!("images: the Rust target {MUSL} is not installed (rustup target add {MUSL}): skipped");
        return false;
    }
    true
}

/// Runs `cmd`; its stdout, or a panic showing both streams.
#[track_caller]
fn output(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// What cargo knows about the workspace (`cargo metadata --no-deps`).
fn cargo_metadata() -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    json(&output(
        Command::new(cargo)
            .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
            .current_dir(repo_root()),
    ))
}

/// The commit as `make images` labels it: `-dirty` when tracked files differ.
fn git_revision() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(repo_root())
            .env("GIT_OPTIONAL_LOCKS", "0")
            .output()
            .ok()
    };
    match git(&["rev-parse", "HEAD"]).filter(|o| o.status.success()) {
        None => "unknown".into(),
        Some(o) => {
            let head = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let clean = git(&["diff", "--quiet", "HEAD", "--"]).is_some_and(|o| o.status.success());
            if clean { head } else { format!("{head}-dirty") }
        }
    }
}

/// One of the three images, and what it must contain.
struct Image {
    name: &'static str,
    package: &'static str,
    entrypoint: &'static [&'static str],
    cmd: &'static [&'static str],
}

const REFRESHER: Image = Image {
    name: "forex-refresher",
    package: "refresher",
    entrypoint: &["/refresher"],
    cmd: &["once"],
};

const ONE_FRAME: Image = Image {
    name: "one-frame",
    package: "one-frame",
    entrypoint: &["/one-frame"],
    cmd: &["--listen", "0.0.0.0:8080"],
};

const RUNTIME_SHIM: Image = Image {
    name: "runtime-shim",
    package: "runtime-shim",
    entrypoint: &["/runtime-shim"],
    cmd: &["up", "--listen", "0.0.0.0:80"],
};

/// `skopeo inspect` with `flags` of `docker://<reference>` (plain HTTP).
fn skopeo_inspect(reference: &str, flags: &[&str]) -> Value {
    json(&output(
        Command::new("skopeo")
            .arg("inspect")
            .args(flags)
            .arg("--tls-verify=false")
            .arg(format!("docker://{reference}")),
    ))
}

/// Checks `image` as the registry holds it at `reference`: manifest, config,
/// labels and the files of its only layer. Returns the config.
fn check_pushed(image: &Image, reference: &str, package: &Value, binary: &Path, revision: &str) -> Value {
    let version = package["version"].as_str().expect("version");

    // The manifest: OCI, one layer.
    let manifest = skopeo_inspect(reference, &["--raw"]);
    assert_eq!(
        manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{manifest}"
    );
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "one layer, the binary: {manifest}");
    let layer_size = layers[0]["size"].as_u64().expect("layer size");
    let config_size = manifest["config"]["size"].as_u64().expect("config size");

    let inspect = skopeo_inspect(reference, &[]);
    assert_eq!(inspect["Os"], "linux", "{inspect}");
    assert_eq!(inspect["Architecture"], "amd64", "{inspect}");
    let digest = inspect["Digest"].as_str().expect("digest").to_string();

    // The config: user, entrypoint, default arguments, labels.
    let config = skopeo_inspect(reference, &["--config"]);
    let c = &config["config"];
    assert_eq!(c["User"], USER, "{config}");
    assert_eq!(c["Entrypoint"], serde_json::json!(image.entrypoint), "{config}");
    assert_eq!(c["Cmd"], serde_json::json!(image.cmd), "{config}");
    let label = |key: &str| {
        c["Labels"][format!("org.opencontainers.image.{key}")]
            .as_str()
            .unwrap_or_else(|| panic!("no label org.opencontainers.image.{key}: {config}"))
            .to_string()
    };
    assert_eq!(label("title"), image.name);
    assert_eq!(label("version"), version);
    assert_eq!(label("revision"), revision);
    assert_eq!(
        label("description"),
        package["description"].as_str().expect("description")
    );
    assert_eq!(label("licenses"), package["license"].as_str().expect("license"));
    label("source"); // set, possibly empty where git knows no remote
    assert_eq!(inspect["Labels"], c["Labels"], "inspect and config agree");

    // The layer's files: the binary, byte for byte the size of the one cargo
    // built, read-only, owned by root; nothing else (no shell, no libc).
    let dir = TempDir::new("image-copy");
    let copy = dir.path().join(image.name);
    output(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("dir:{}", copy.display())),
    );
    let blob = layers[0]["digest"]
        .as_str()
        .and_then(|d| d.strip_prefix("sha256:"))
        .expect("sha256 layer digest");
    let listing = output(Command::new("tar").arg("-tvzf").arg(copy.join(blob)));
    let entries: Vec<Vec<&str>> = listing.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(entries.len(), 1, "only the binary in the layer:\n{listing}");
    let e = &entries[0];
    let binary_size = std::fs::metadata(binary).expect("the built binary").len();
    assert_eq!(
        e.last().map(|n| n.trim_start_matches("./")),
        Some(image.package),
        "{listing}"
    );
    assert_eq!(e[0], "-r-xr-xr-x", "read-only executable:\n{listing}");
    assert_eq!(e[1], "0/0", "owned by root:\n{listing}");
    assert_eq!(e[2].parse::<u64>().ok(), Some(binary_size), "{listing}");

    eprintln!(
        "{reference}@{digest}: {} B compressed (layer {layer_size} B + config {config_size} B), \
         {binary_size} B binary, user {USER}, entrypoint {:?}, revision {revision}",
        layer_size + config_size,
        image.entrypoint
    );
    config
}

/// buildah with a storage of its own (vfs, in a scratch directory).
struct Buildah {
    dir: TempDir,
}

impl Buildah {
    fn new(label: &str) -> Buildah {
        Buildah {
            dir: TempDir::new(label),
        }
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new("buildah");
        self.global_args(&mut cmd);
        cmd
    }

    fn global_args(&self, cmd: &mut Command) {
        cmd.args(["--storage-driver", "vfs", "--root"])
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("runroot"));
    }

    /// `buildah from` the image at `reference` (pulled over plain HTTP);
    /// the working container's name.
    fn from(&self, reference: &str, name: &str) -> String {
        output(
            self.cmd()
                .args(["from", "--quiet", "--tls-verify=false", "--name", name])
                .arg(format!("docker://{reference}")),
        )
        .trim()
        .to_string()
    }

    /// `buildah run --isolation chroot --network host <container> -- <argv>`
    /// in a process group of its own, ended by `timeout` after `limit` even
    /// if this test is killed first.
    fn run(&self, container: &str, argv: &[String], limit: Duration, log: PathBuf) -> Running {
        let mut cmd = Command::new("timeout");
        cmd.args(["--kill-after=5", &limit.as_secs().to_string(), "buildah"]);
        self.global_args(&mut cmd);
        cmd.args([
            "run",
            "--isolation",
            "chroot",
            "--network",
            "host",
            container,
            "--",
        ])
        .args(argv);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let proc = Proc::spawn_group(&mut cmd, log, true);
        Running {
            group: proc.pid(),
            proc,
        }
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        // The working containers, then (TempDir) the whole storage.
        let _ = self.cmd().args(["rm", "--all"]).output();
    }
}

/// A `buildah run`: timeout, buildah, its chroot helpers and the program,
/// all in one process group.
struct Running {
    proc: Proc,
    /// The group's id: `timeout`'s pid, kept after the `Proc` has ended.
    group: u32,
}

impl Running {
    /// Live (not zombie) members of the group: pid, command name, uid.
    fn members(&self) -> Vec<(u32, String, String)> {
        let group = self.group.to_string();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp ...
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            if rest.len() < 3 || rest[0] == "Z" || rest[2] != group {
                continue;
            }
            let uid = std::fs::read_to_string(entry.path().join("status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .and_then(|v| v.split_whitespace().next().map(str::to_string))
                })
                .unwrap_or_default();
            found.push((pid, stat[open + 1..close].to_string(), uid));
        }
        found
    }

    /// Waits for the exit; the exit code, or `None` after `limit`.
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        eventually(limit, || self.proc.has_exited()).and_then(|s| s.code())
    }

    fn log(&self) -> String {
        self.proc.log()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // SIGTERM to `timeout`, which passes it to the whole group: each
        // process exits and is reaped by its parent. SIGKILL to the group
        // for whatever is left, then wait until every member is gone.
        if self.proc.has_exited().is_none() {
            self.proc.signal_and_wait("TERM", Duration::from_secs(5));
        }
        self.proc.kill();
        if eventually(Duration::from_secs(10), || {
            self.members().is_empty().then_some(())
        })
        .is_none()
        {
            eprintln!("images: still running after SIGKILL: {:?}", self.members());
        }
    }
}

#[test]
fn make_images_builds_pushes_and_runs_scratch_images() {
    if !tools() {
        return;
    }
    let started = Instant::now();
    let metadata = cargo_metadata();
    let package = |name: &str| {
        metadata["packages"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .unwrap_or_else(|| panic!("no package {name} in cargo metadata"))
            .clone()
    };
    let release_dir = PathBuf::from(metadata["target_directory"].as_str().expect("target_directory"))
        .join(MUSL)
        .join("release");

    let registry = Registry::start();
    let prefix = registry.reference("forex");
    let build_storage = Buildah::new("buildah-build");

    // `make images` as a user runs it, but with buildah's storage in a
    // scratch directory.
    let (log, took) = e2e::make(
        &[
            "images".into(),
            format!("REGISTRY={prefix}"),
            format!("BUILDAH_ROOT={}", build_storage.dir.path().display()),
        ],
        &[],
    );
    let compiled = log
        .lines()
        .filter(|l| l.trim_start().starts_with("Compiling "))
        .count();
    eprintln!("make images REGISTRY={prefix} took {took:.1?} (cargo compiled {compiled} crates)");
    // Loopback: pushed over plain HTTP without being asked.
    assert!(log.contains(" push --tls-verify=false "), "{log}");
    // The commit as it is now: the labels were made moments ago.
    let revision = git_revision();

    let mut configs = Vec::new();
    for image in [&REFRESHER, &ONE_FRAME, &RUNTIME_SHIM] {
        let p = package(image.package);
        let version = p["version"].as_str().expect("version");
        let reference = format!("{prefix}/{}:{version}", image.name);
        assert!(log.contains(&format!("pushed {reference}@sha256:")), "{log}");
        let binary = release_dir.join(image.package);
        configs.push((
            reference.clone(),
            check_pushed(image, &reference, &p, &binary, &revision),
        ));
    }
    let argv = |config: &Value, key: &str| -> Vec<String> {
        config["config"][key]
            .as_array()
            .expect("an array")
            .iter()
            .map(|v| v.as_str().expect("a string").to_string())
            .collect()
    };

    // Run them as a runtime would, from the registry: a fresh storage pulls
    // them. The emulator listens on a free loopback port instead of its
    // default 0.0.0.0:8080 (arguments replace the image's CMD, as a Pod's
    // `args` do); the refresher keeps its CMD `once` and adds flags.
    let run_storage = Buildah::new("buildah-run");
    let logs = TempDir::new("images-run");
    let tag = std::process::id();
    let (refresher_ref, refresher_config) = &configs[0];
    let (one_frame_ref, one_frame_config) = &configs[1];
    let one_frame_ctr = run_storage.from(one_frame_ref, &format!("forex-e2e-one-frame-{tag}"));
    let refresher_ctr = run_storage.from(refresher_ref, &format!("forex-e2e-refresher-{tag}"));

    let valkey = Valkey::start();
    let port = free_port();
    let mut emulator_argv = argv(one_frame_config, "Entrypoint");
    emulator_argv.extend(["--listen".to_string(), format!("127.0.0.1:{port}")]);
    let mut emulator = run_storage.run(
        &one_frame_ctr,
        &emulator_argv,
        Duration::from_secs(300),
        logs.path().join("one-frame.log"),
    );
    eventually(Duration::from_secs(30), || {
        assert_eq!(
            emulator.proc.has_exited(),
            None,
            "one-frame exited:\n{}",
            emulator.log()
        );
        TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .unwrap_or_else(|| panic!("one-frame's image did not listen on {port}:\n{}", emulator.log()));
    let emulator_addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let calls = || e2e::http::get(emulator_addr, "/__admin/calls").json()["calls"].as_u64();
    assert_eq!(calls(), Some(0));
    // The program itself runs as the image's user.
    let members = emulator.members();
    let program = members
        .iter()
        .find(|(_, comm, _)| comm == "one-frame")
        .unwrap_or_else(|| panic!("no one-frame process in {members:?}"));
    assert_eq!(program.2, USER.split(':').next().unwrap(), "{members:?}");

    let mut refresher_argv = argv(refresher_config, "Entrypoint");
    refresher_argv.extend(argv(refresher_config, "Cmd"));
    refresher_argv.extend([
        "--valkey-url".to_string(),
        valkey.url(),
        "--one-frame-url".into(),
        format!("http://127.0.0.1:{port}"),
    ]);
    let ran = Instant::now();
    let mut refresher = run_storage.run(
        &refresher_ctr,
        &refresher_argv,
        Duration::from_secs(120),
        logs.path().join("refresher.log"),
    );
    let code = refresher.wait(Duration::from_secs(120));
    assert_eq!(code, Some(0), "refresher's image:\n{}", refresher.log());
    eprintln!("refresher once from its image took {:.1?}", ran.elapsed());

    let snapshot = stored_snapshot(&valkey).expect("a snapshot in Valkey");
    for c in DEFAULT_CURRENCIES.iter().filter(|c| **c != "USD") {
        assert!(
            snapshot.usd_leg(Currency::parse(c).unwrap()).is_some(),
            "USD{c} missing: {snapshot:?}"
        );
    }
    assert_eq!(calls(), Some(1), "one call to the emulator's image");
    eprintln!(
        "snapshot seq {} from the emulator's image stored by the refresher's image",
        snapshot.seq
    );

    // runtime-shim's image, started as spin-operator starts it but for an app
    // that is not there: its static binary runs, reaches the registry from
    // the container and says what is missing. Its cache lives where the
    // image's ENV says (the executor overlay mounts an emptyDir there).
    let (shim_ref, shim_config) = &configs[2];
    assert!(
        argv(shim_config, "Env").contains(&"RUNTIME_SHIM_CACHE_DIR=/var/cache/runtime-shim".to_string()),
        "{shim_config}"
    );
    let shim_ctr = run_storage.from(shim_ref, &format!("forex-e2e-runtime-shim-{tag}"));
    let absent = format!("{prefix}/forex-edge:absent");
    let mut shim_argv = argv(shim_config, "Entrypoint");
    shim_argv.extend(
        [
            "up",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "-f",
            &absent,
        ]
        .map(String::from),
    );
    let mut shim = run_storage.run(
        &shim_ctr,
        &shim_argv,
        Duration::from_secs(60),
        logs.path().join("runtime-shim.log"),
    );
    assert_eq!(shim.wait(Duration::from_secs(60)), Some(1), "{}", shim.log());
    assert!(
        shim.log().contains(&format!(
            "{absent} does not exist in the registry (MANIFEST_UNKNOWN"
        )),
        "{}",
        shim.log()
    );
    drop(shim);

    // Nothing outlives the test: the containers' processes, then buildah's
    // storage (no mount of it is left behind either).
    drop(refresher);
    drop(emulator);
    assert!(
        TcpStream::connect(emulator_addr).is_err(),
        "one-frame's container still listens"
    );
    let storages = [
        run_storage.dir.path().to_path_buf(),
        build_storage.dir.path().to_path_buf(),
    ];
    drop(run_storage);
    drop(build_storage);
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for dir in &storages {
        assert!(!dir.exists(), "{} not removed", dir.display());
        assert!(
            !mounts.contains(&*dir.to_string_lossy()),
            "{} still mounted:\n{mounts}",
            dir.display()
        );
    }
    eprintln!("images test took {:.1?}", started.elapsed());
}
