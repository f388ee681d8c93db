//! runtime-shim with the probe fixture components and a real Valkey: routes,
//! outbound Redis and its permissions, the key-value store, variables,
//! manifest mistakes, traps and well-known paths. What runtime-shim does as
//! Spin does runs on both hosts and asserts what each one does; the rows of
//! runtime-shim/README.md's table "Where it is better than `spin up`" about
//! Valkey and restarts are in shim_lifecycle.rs.

use e2e::http;
use e2e::probe::{PROBE_ONLY, body_of, connections_received, manifest, probe_app, start_probe, vars, wasm};
use e2e::{Edge, Host, Shim, TempDir, Valkey, eventually};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

#[test]
fn routes_exact_and_prefix_paths_and_404s_the_rest() {
    let dir = TempDir::new("routes");
    let m = manifest(
        &dir,
        r#"
spin_manifest_version = 2
[application]
name = "routes"
[[trigger.http]]
route = "/exact"
component = "a"
[[trigger.http]]
route = "/api/..."
component = "a"
[component.a]
source = "{http}"
"#,
    );
    let shim = Shim::start(&m, &[]).unwrap_or_else(|l| panic!("{l}"));
    assert_eq!(body_of(&shim.get("/exact")), "GET /exact path-info=");
    assert_eq!(body_of(&shim.get("/api")), "GET /api path-info=");
    assert_eq!(
        body_of(&shim.get("/api/v1/x?y=1")),
        "GET /api/v1/x path-info=/v1/x"
    );
    for miss in ["/exact/more", "/apix", "/", "/other"] {
        let r = shim.get(miss);
        assert_eq!(r.status, 404, "{miss}");
        assert_eq!(r.error_code(), "not_found");
    }
    // Access log lines are written in batches, within 50 ms.
    shim.wait_logged("GET /api/v1/x 200", Duration::from_secs(2));
}

#[test]
fn outbound_redis_get_set_incr_publish() {
    let valkey = Valkey::start();
    let dir = TempDir::new("outbound");
    let shim = start_probe(&valkey, &dir);
    assert_eq!(body_of(&shim.get("/redis/set?key=k1&value=v1")), "()");
    assert_eq!(valkey.get("k1").as_deref(), Some(&b"v1"[..]));
    valkey.set("k2", b"from-valkey");
    assert_eq!(body_of(&shim.get("/redis/get?key=k2")), "Some(\"from-valkey\")");
    assert_eq!(body_of(&shim.get("/redis/get?key=absent")), "None");
    assert_eq!(body_of(&shim.get("/redis/incr?key=n")), "1");
    assert_eq!(body_of(&shim.get("/redis/incr?key=n")), "2");
    let r = shim.get("/redis/incr?key=k1");
    assert_eq!(r.status, 500);

    let mut conn = valkey.conn();
    let mut sub = conn.as_pubsub();
    sub.subscribe("news").unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(body_of(&shim.get("/redis/publish?channel=news&message=hi")), "()");
    assert_eq!(sub.get_message().unwrap().get_payload::<String>().unwrap(), "hi");
}

#[test]
fn a_component_cannot_reach_an_address_it_is_not_allowed() {
    let valkey = Valkey::start();
    let dir = TempDir::new("denied");
    // Allowed: another port only.
    let m = manifest(&dir, &probe_app("redis://127.0.0.1:1"));
    let shim = Shim::start(&m, &vars(&[("redis_url", &valkey.url())])).unwrap_or_else(|l| panic!("{l}"));
    // The trigger subscribed (one connection); count from here.
    shim.wait_subscribed();
    let before = connections_received(&valkey);
    let r = shim.get(&format!("/redis/open?address={}", valkey.url()));
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), "Error::InvalidAddress");
    let r = shim.get("/redis/set?key=x&value=y");
    assert!(r.text().contains("InvalidAddress"), "{}", r.text());
    // Our own INFO call is the only new connection: the shim never connected.
    assert_eq!(connections_received(&valkey), before + 1);
    assert_eq!(valkey.get("x"), None);
    shim.assert_logged("not in allowed_outbound_hosts");
}

#[test]
fn key_value_store_is_shared_by_components_that_list_it_only() {
    let valkey = Valkey::start();
    let dir = TempDir::new("kv");
    let mut text = probe_app(&format!("redis://{}", valkey.host()));
    text.push_str(
        r#"
[[trigger.http]]
route = "/nokv/..."
component = "nokv"
[component.nokv]
source = "{http}"
"#,
    );
    let m = manifest(&dir, &text);
    let shim = Shim::start(&m, &vars(&[("redis_url", &valkey.url())])).unwrap_or_else(|l| panic!("{l}"));
    assert_eq!(body_of(&shim.get("/kv/set?key=a&value=1")), "()");
    assert_eq!(body_of(&shim.get("/kv/get?key=a")), "Some(\"1\")");
    let denied = shim.get("/nokv/kv/get?key=a");
    assert_eq!(denied.status, 500);
    assert_eq!(denied.text(), "Error::AccessDenied");
    assert_eq!(shim.get("/kv/open?label=other").text(), "Error::NoSuchStore");

    // The Redis-trigger component writes, the HTTP component reads.
    shim.wait_subscribed();
    assert_eq!(valkey.publish("events", "hello"), 1);
    let last = eventually(Duration::from_secs(5), || {
        let r = shim.get("/kv/get?key=probe:last");
        (r.text() == "Some(\"hello\")").then_some(())
    });
    assert!(last.is_some(), "message not delivered:\n{}", shim.log());

    // A failing or trapping handler is logged; the next message is delivered.
    valkey.publish("events", "fail");
    valkey.publish("events", "trap");
    valkey.publish("events", "after");
    let after = eventually(Duration::from_secs(5), || {
        (shim.get("/kv/get?key=probe:last").text() == "Some(\"after\")").then_some(())
    });
    assert!(after.is_some(), "{}", shim.log());
    assert_eq!(shim.get("/kv/get?key=probe:count").text(), "Some(\"2\")");
    shim.assert_logged("for a message on \"events\" (the cause is in its own log)");
    shim.assert_logged("trapped on a message");
}

/// Declares one variable per source; the probe's `all` joins them.
const VARS_APP: &str = r#"
spin_manifest_version = 2
[application]
name = "vars"
[variables]
from_default = { default = "d" }
from_flag = { required = true }
from_file = { required = true }
from_json = { required = true }
from_toml = { required = true }
from_env = { required = true, secret = true }
from_dotenv = { default = "d" }
env_beats_dotenv = { default = "d" }
flag_beats_env = { default = "d" }
lower = { default = "d" }
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "{http}"
[component.probe.variables]
all = "{{ from_default }}|{{ from_flag }}|{{ from_file }}|{{ from_json }}|{{ from_toml }}|{{ from_env }}|{{ from_dotenv }}|{{ env_beats_dotenv }}|{{ flag_beats_env }}|{{ lower }}"
"#;

/// Variables, the same on both hosts: `--variable` (`name=value`,
/// `name=@file`, `@file.json`, `@file.toml`; of a name given twice the last
/// wins), else `SPIN_VARIABLE_<NAME>` in the environment, else in `.env` of
/// the current directory (not the manifest's), else the default.
fn variables_come_from_flags_files_environment_dotenv_and_defaults(host: &Host) {
    let dir = TempDir::new("vars");
    let (app, cwd) = (dir.path().join("app"), dir.path().join("cwd"));
    let write = |path: PathBuf, text: &str| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        app.join("spin.toml"),
        &VARS_APP.replace("{http}", &wasm("probe_http")),
    );
    write(app.join(".env"), "SPIN_VARIABLE_FROM_DEFAULT=manifest-dir\n");
    write(
        cwd.join(".env"),
        "SPIN_VARIABLE_FROM_DOTENV=dot\nSPIN_VARIABLE_ENV_BEATS_DOTENV=dot\nSPIN_VARIABLE_lower=dot\n",
    );
    write(cwd.join("value.txt"), "line1\nline2\n");
    write(
        cwd.join("vars.json"),
        r#"{"from_json": "j", "from_toml": "json"}"#,
    );
    write(cwd.join("vars.toml"), "from_toml = \"t\"\n");

    // Started as `Edge::start_on` starts a host, but in `cwd` and with
    // `SPIN_VARIABLE_*` set.
    let port = e2e::free_port();
    let mut cmd = match host {
        Host::Shim => Command::new(e2e::bin("runtime-shim")),
        Host::Spin(spin) => Command::new(spin),
    };
    cmd.current_dir(&cwd)
        .args(["up", "-f"])
        .arg(app.join("spin.toml"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"));
    match host {
        Host::Shim => {
            cmd.env("RUNTIME_SHIM_CACHE_DIR", e2e::shim_cache_dir());
        }
        Host::Spin(_) => {
            cmd.arg("--state-dir").arg(dir.path().join("state"));
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
    }
    cmd.args(vars(&[
        ("from_flag", "first"),
        ("from_flag", "f"),
        ("from_file", "@value.txt"),
        ("flag_beats_env", "flag"),
    ]))
    .args(["--variable", "@vars.json", "--variable", "@vars.toml"]);
    cmd.env("SPIN_VARIABLE_FROM_ENV", "e")
        .env("SPIN_VARIABLE_ENV_BEATS_DOTENV", "env")
        .env("SPIN_VARIABLE_FLAG_BEATS_ENV", "env")
        .env("SPIN_VARIABLE_lower", "env");
    let mut proc = e2e::Proc::spawn_group(&mut cmd, dir.path().join("host.log"), host.is_spin());
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let r = eventually(Duration::from_secs(120), || {
        if let Some(status) = proc.has_exited() {
            panic!("{} exited ({status}):\n{}", host.name(), proc.log());
        }
        http::request(addr, "GET", "/var?name=all", &[], b"").ok()
    })
    .unwrap_or_else(|| panic!("{}", proc.log()));
    assert_eq!(
        r.text(),
        r#""d|f|line1\nline2\n|j|t|e|dot|env|flag|d""#,
        "{}",
        proc.log()
    );
    if !host.is_spin() {
        assert_eq!(
            http::get(addr, "/var?name=nope").text(),
            "Error::Undefined(\"nope\")"
        );
        assert_eq!(
            http::get(addr, "/var?name=Bad-Name").text(),
            "Error::InvalidName(\"Bad-Name\")"
        );
    }

    // Malformed flags stop both at start-up, with the same words.
    for (flag, says) in [
        ("@vars.txt", "variable files must end in .json or .toml"),
        ("novalue", "variables must be in the form 'key=value' or '@file'"),
    ] {
        let err = Edge::start_on(host, &app.join("spin.toml"), &["--variable".into(), flag.into()])
            .err()
            .unwrap_or_else(|| panic!("--variable {flag} was accepted"));
        assert!(err.contains(says), "{err}");
    }
}

/// runtime-shim/README.md, "manifest mistakes": each case with what runtime-shim's error
/// names, and what Spin's names (`None`: Spin starts with it).
fn manifest_mistakes_fail_at_start_up(host: &Host) {
    let dir = TempDir::new("bad");
    let good = r#"
spin_manifest_version = 2
[application]
name = "bad"
[variables]
needed = { required = true }
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "{http}"
key_value_stores = ["default"]
"#;
    let cases: Vec<(String, &str, Option<&str>)> = vec![
        (
            good.replace("route = \"/...\"", "rout = \"/...\""),
            "rout",
            Some("rout"),
        ),
        (
            good.replace("key_value_stores", "key_value_store"),
            "key_value_store",
            Some("key_value_store"),
        ),
        (
            good.replace("component = \"probe\"", "component = \"ghost\""),
            "ghost",
            Some("ghost"),
        ),
        (
            good.replace("{http}", "/nonexistent/missing.wasm"),
            "missing.wasm",
            Some("missing.wasm"),
        ),
        (
            good.replace("[\"default\"]", "[\"shared\"]"),
            "shared",
            Some("shared"),
        ),
        (
            good.replace("spin_manifest_version = 2", "spin_manifest_version = 1"),
            "spin_manifest_version",
            Some("manifest version"),
        ),
        // Spin 3 routes may capture segments; runtime-shim refuses them by name.
        (
            good.replace("route = \"/...\"", "route = \"/users/:id\""),
            "/users/:id",
            None,
        ),
        (
            format!("{good}\n[[trigger.cron]]\ncomponent = \"probe\"\n"),
            "cron",
            Some("cron"),
        ),
        (
            format!("{good}\n[component.probe.variables]\nx = \"{{{{ undeclared }}}}\"\n"),
            "undeclared",
            Some("undeclared"),
        ),
    ];
    for (i, (text, shim_names, spin_names)) in cases.iter().enumerate() {
        let sub = dir.path().join(i.to_string());
        std::fs::create_dir_all(&sub).unwrap();
        let path = sub.join("spin.toml");
        std::fs::write(&path, text.replace("{http}", &wasm("probe_http"))).unwrap();
        let expected = if host.is_spin() {
            *spin_names
        } else {
            Some(*shim_names)
        };
        let started = Edge::start_on(host, &path, &vars(&[("needed", "1")]));
        match (expected, started) {
            (Some(needle), Err(err)) => assert!(
                err.contains(needle),
                "case {shim_names}: the error does not name {needle:?}:\n{err}"
            ),
            (Some(_), Ok(_)) => panic!("case {shim_names} started on {}", host.name()),
            (None, Err(err)) => panic!("case {shim_names}: {} refused it:\n{err}", host.name()),
            (None, Ok(_)) => {}
        }
    }
    // A required variable that nobody sets: both refuse; runtime-shim also
    // says how to set it.
    let path = manifest(&dir, good);
    let err = Edge::start_on(host, &path, &[])
        .err()
        .expect("missing variable must fail");
    assert!(err.contains("needed"), "{err}");
    if !host.is_spin() {
        assert!(err.contains("SPIN_VARIABLE_NEEDED"), "{err}");
    }
    // Names are case-sensitive: `NEEDED` does not set `needed`, so Spin
    // lacks `needed`; runtime-shim refuses `NEEDED`, naming `needed`.
    let err = Edge::start_on(host, &path, &vars(&[("NEEDED", "1")]))
        .err()
        .expect("NEEDED must not set needed");
    assert!(err.contains("needed"), "{err}");
    if !host.is_spin() {
        assert!(
            err.contains("did you mean `needed`? variable names are case-sensitive"),
            "{err}"
        );
    }
    // A --variable the manifest does not declare: runtime-shim refuses it,
    // Spin ignores it.
    let typo = Edge::start_on(host, &path, &vars(&[("needed", "1"), ("typo", "2")]));
    match typo {
        Err(err) => {
            assert!(!host.is_spin(), "{err}");
            assert!(err.contains("typo"), "{err}");
        }
        Ok(_) => assert!(host.is_spin(), "an undeclared variable was accepted"),
    }
}

#[test]
fn a_trapping_or_runaway_guest_gets_json_500_or_504_and_the_next_request_is_fine() {
    let dir = TempDir::new("trap");
    let m = manifest(&dir, PROBE_ONLY);
    let shim =
        Shim::start(&m, &["--request-timeout".into(), "500ms".into()]).unwrap_or_else(|l| panic!("{l}"));
    let trap = shim.get("/trap");
    assert_eq!(trap.status, 500);
    assert_eq!(trap.error_code(), "internal_error");
    assert_eq!(body_of(&shim.get("/ok")), "GET /ok path-info=/ok");

    let started = std::time::Instant::now();
    let slow = shim.get("/loop");
    assert_eq!(slow.status, 504);
    assert_eq!(slow.error_code(), "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(body_of(&shim.get("/ok")), "GET /ok path-info=/ok");

    let greedy = shim.get("/grow");
    assert_eq!(
        greedy.status,
        500,
        "an instance may not grow past its memory limit: {}",
        greedy.text()
    );
    assert_eq!(body_of(&shim.get("/ok")), "GET /ok path-info=/ok");
}

/// Sends `request` as it is and reads until the host closes the connection.
fn raw_exchange(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(http::TIMEOUT)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    // A reset still leaves what was read.
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Both hosts answer `/.well-known/spin/health` and `/info` themselves,
/// before routing. A request that reaches a component must carry a `Host`
/// header: runtime-shim answers 400, Spin closes the connection.
fn well_known_paths_are_the_hosts_own_and_components_need_a_host_header(host: &Host) {
    let dir = TempDir::new("well-known");
    let m = manifest(
        &dir,
        &PROBE_ONLY.replace("\"probe-only\"", "\"probe-only\"\nversion = \"1.2.3\""),
    );
    let edge = Edge::start_on(host, &m, &[]).unwrap_or_else(|l| panic!("{l}"));
    let health = edge.get("/.well-known/spin/health");
    assert_eq!((health.status, health.text().as_str()), (200, "OK"));
    let info = edge.get("/.well-known/spin/info");
    assert_eq!(info.status, 200);
    assert_eq!(info.header("content-type"), Some("application/json"));
    assert_eq!(
        info.text(),
        "{\n  \"name\": \"probe-only\",\n  \"version\": \"1.2.3\"\n}"
    );
    for other in [
        "/.well-known/spin/",
        "/.well-known/spin/nope",
        "/.well-known/spin/health/",
    ] {
        assert_eq!(edge.get(other).status, 404, "{other}");
    }
    // Only what is below `/.well-known/spin/` is the host's.
    assert_eq!(
        body_of(&edge.get("/.well-known/spin")),
        "GET /.well-known/spin path-info=/.well-known/spin"
    );

    let without_host = |target: &str| {
        raw_exchange(
            edge.addr(),
            &format!("GET {target} HTTP/1.1\r\nconnection: close\r\n\r\n"),
        )
    };
    let health = without_host("/.well-known/spin/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let answer = without_host("/ok");
    if host.is_spin() {
        assert_eq!(answer, "", "Spin closes the connection");
    } else {
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains(r#"{"error":{"code":"bad_request","#), "{answer}");
    }
}

/// runtime-shim/README.md: a trapping component gets a JSON 500 from runtime-shim, an empty
/// 500 from Spin.
fn a_trapping_component_answers_500(host: &Host) {
    let dir = TempDir::new("trap-500");
    let edge = Edge::start_on(host, &manifest(&dir, PROBE_ONLY), &[]).unwrap_or_else(|l| panic!("{l}"));
    let r = edge.get("/trap");
    assert_eq!(r.status, 500);
    if host.is_spin() {
        assert_eq!((r.text().as_str(), r.header("content-type")), ("", None));
    } else {
        assert_eq!(r.error_code(), "internal_error");
    }
}

#[test]
fn unsupported_spin_interfaces_load_and_return_their_error() {
    let dir = TempDir::new("unsupported");
    let m = manifest(&dir, PROBE_ONLY);
    let shim = Shim::start(&m, &[]).unwrap_or_else(|l| panic!("{l}"));
    let r = shim.get("/sqlite");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("not supported by runtime-shim"), "{}", r.text());
    shim.assert_logged("imports unsupported interfaces");
}

e2e::on_both_hosts!(
    manifest_mistakes_fail_at_start_up,
    variables_come_from_flags_files_environment_dotenv_and_defaults,
    well_known_paths_are_the_hosts_own_and_components_need_a_host_header,
    a_trapping_component_answers_500,
);
