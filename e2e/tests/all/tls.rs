//! Valkey over TLS only (`port 0`, `tls-port`), with a CA the test makes:
//! the edge serves and follows refreshes from it on runtime-shim and on a
//! real Spin, a certificate rotated under a running edge keeps it serving,
//! and every way TLS can be misconfigured gives an error that names it, in
//! bounded time, without losing what the edge serves.

use e2e::{
    CertFiles, Edge, Exporter, Host, OneFrame, TestCa, Tls, Valkey, ValkeyOptions, eventually, refresh,
    refresher_command, seq_served, stored_snapshot, value_of,
};
use std::time::{Duration, Instant};

fn test_ca() -> TestCa {
    TestCa::new("forex test CA")
}

/// A TLS-only Valkey serving `cert`, its clients told to trust `ca`.
fn tls_valkey(ca: &TestCa, cert: CertFiles, password: Option<&str>) -> Valkey {
    Valkey::start_with(ValkeyOptions {
        password: password.map(str::to_string),
        tls: Some(Tls {
            cert,
            ca: ca.cert.clone(),
        }),
        ..Default::default()
    })
}

/// Waits until `edge` serves snapshot `seq`.
#[track_caller]
fn wait_served(edge: &Edge, seq: u64, limit: Duration) {
    let served = eventually(limit, || (seq_served(edge.addr()) == Some(seq)).then_some(()));
    assert!(
        served.is_some(),
        "seq {seq} not served within {limit:?}:\n{}",
        edge.log()
    );
}

fn serves_and_follows_refreshes_from_a_tls_only_valkey(host: &Host) {
    let ca = test_ca();
    let valkey = tls_valkey(&ca, ca.issue(&["127.0.0.1"], 1), Some("adm-7c1d2e"));
    assert!(valkey.url().starts_with("rediss://"));
    let one_frame = OneFrame::start(&[]);
    let run = refresh(&valkey, &one_frame, &[]);
    assert_eq!(run.code, Some(0), "{}", run.log);
    let first = stored_snapshot(&valkey).unwrap();
    // A cold cache reads Valkey over TLS (outbound Redis).
    let edge = Edge::app_on(host, &valkey);
    e2e::assert_serves(edge.addr(), &first, "EURJPY");
    // A refresh reaches the edge through the Redis trigger over TLS.
    edge.wait_subscribed();
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let second = stored_snapshot(&valkey).unwrap();
    assert!(second.seq > first.seq);
    wait_served(&edge, second.seq, Duration::from_secs(5));
    e2e::assert_serves(edge.addr(), &second, "USDJPY");
    assert!(!edge.log().contains("adm-7c1d2e"), "{}", edge.log());
}

fn a_certificate_rotated_under_a_running_edge_keeps_it_serving(host: &Host) {
    let ca = test_ca();
    let mut valkey = tls_valkey(&ca, ca.issue(&["127.0.0.1"], 1), None);
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let edge = Edge::app_on(host, &valkey);
    edge.wait_subscribed();
    e2e::assert_serves(edge.addr(), &stored_snapshot(&valkey).unwrap(), "EURGBP");

    // The new certificate (same CA, as cert-manager renews it) is served to
    // every new connection; open ones keep their session.
    valkey.rotate_certificate(&ca.issue(&["127.0.0.1"], 1));
    if !host.is_spin() {
        // runtime-shim keeps its connections: drop them so that the next
        // read and the subscription meet the new certificate. (Spin opens a
        // connection per read, and ends when its subscription drops.)
        valkey.drop_clients();
    }
    for _ in 0..2 {
        assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
        let stored = stored_snapshot(&valkey).unwrap();
        wait_served(&edge, stored.seq, Duration::from_secs(10));
        e2e::assert_serves(edge.addr(), &stored, "USDCHF");
    }
    assert_eq!(edge.get("/healthz").status, 200);
}

e2e::on_both_hosts!(
    serves_and_follows_refreshes_from_a_tls_only_valkey,
    a_certificate_rotated_under_a_running_edge_keeps_it_serving,
);

/// One misconfiguration: what the refresher, `status`, the exporter and
/// runtime-shim each say, and that each says it in bounded time.
struct Misconfigured {
    /// The URL the clients are given.
    url: String,
    /// The environment they get (`SSL_CERT_FILE`, or nothing).
    env: Vec<(String, String)>,
    /// Words each error must contain.
    cause: &'static str,
}

impl Misconfigured {
    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    /// The refresher stops at once with the configuration exit code, and
    /// `status` too; the exporter reports Valkey down with the cause in its
    /// log; runtime-shim serves, answers 503 without rates, and its trigger
    /// and a component's read name the cause; every answer comes within
    /// the limits.
    #[track_caller]
    fn check_clients(&self, one_frame: &OneFrame) {
        let args = vec![
            "--valkey-url".to_string(),
            self.url.clone(),
            "--one-frame-url".into(),
            one_frame.url(),
            "--connect-timeout".into(),
            "1s".into(),
        ];
        let calls = one_frame.calls();
        let run = refresher_command("once", &args, &self.env(), Duration::from_secs(30));
        assert_eq!(run.code, Some(2), "{}", run.log);
        assert!(run.log.contains(self.cause), "{}", run.log);
        assert!(run.took < Duration::from_secs(10), "took {:?}", run.took);
        assert_eq!(
            one_frame.calls(),
            calls,
            "no One-Frame call without a place to store it"
        );

        let status = refresher_command("status", &args[..2], &self.env(), Duration::from_secs(30));
        assert_eq!(status.code, Some(2), "{}", status.log);
        assert!(status.log.contains(self.cause), "{}", status.log);

        let exporter = Exporter::start_with_env(&self.url, &["--connect-timeout", "1s"], &self.env);
        let started = Instant::now();
        let (code, text) = exporter.scrape();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            (code, value_of(&text, "forex_valkey_up")),
            (200, Some(0.0)),
            "{text}"
        );
        assert!(exporter.log().contains(self.cause), "{}", exporter.log());

        let host = self.url.split_once("://").unwrap().1.trim_end_matches('/');
        let edge = Edge::app_with_env(&Host::Shim, &self.url, host, &[], &self.env)
            .unwrap_or_else(|log| panic!("runtime-shim did not start:\n{log}"));
        let started = Instant::now();
        let r = edge.get("/rates?from=USD&to=JPY");
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{:?}",
            started.elapsed()
        );
        edge.wait_logged(
            &format!("redis trigger cannot subscribe at {}", self.url),
            Duration::from_secs(10),
        );
        let log = edge.log();
        let trigger = log
            .lines()
            .find(|l| l.contains("redis trigger cannot subscribe"))
            .unwrap();
        assert!(trigger.contains(self.cause), "{log}");
        let read = log
            .lines()
            .filter(|l| !l.contains("redis trigger"))
            .any(|l| l.contains(self.cause));
        assert!(read, "a component's read does not say why:\n{log}");
    }
}

/// A URL for `valkey` with another scheme.
fn with_scheme(valkey: &Valkey, scheme: &str) -> String {
    format!("{scheme}://{}", valkey.host())
}

#[test]
fn each_tls_misconfiguration_is_named_and_bounded() {
    let ca = test_ca();
    let one_frame = OneFrame::start(&[]);
    let trust = |ca: &TestCa| vec![("SSL_CERT_FILE".to_string(), ca.cert.display().to_string())];

    // A CA the clients were not told about.
    let valkey = tls_valkey(&ca, ca.issue(&["127.0.0.1"], 1), None);
    let other = TestCa::new("another CA");
    Misconfigured {
        url: valkey.url(),
        env: trust(&other),
        cause: "signed by a CA this process does not trust",
    }
    .check_clients(&one_frame);
    // Nor with the system's CAs alone.
    Misconfigured {
        url: valkey.url(),
        env: Vec::new(),
        cause: "signed by a CA this process does not trust",
    }
    .check_clients(&one_frame);

    // A certificate for another host.
    let elsewhere = tls_valkey(&ca, ca.issue(&["valkey.elsewhere.test"], 1), None);
    Misconfigured {
        url: elsewhere.url(),
        env: trust(&ca),
        cause: "certificate is not valid for \"127.0.0.1\"",
    }
    .check_clients(&one_frame);

    // An expired certificate (valid for the second it was made in).
    let expired = ca.issue(&["127.0.0.1"], 0);
    std::thread::sleep(Duration::from_millis(1100));
    let stale = tls_valkey(&ca, expired, None);
    Misconfigured {
        url: stale.url(),
        env: trust(&ca),
        cause: "certificate has expired",
    }
    .check_clients(&one_frame);

    // TLS to a plain server, and plain to a TLS server.
    let plain = Valkey::start();
    Misconfigured {
        url: with_scheme(&plain, "rediss"),
        env: trust(&ca),
        cause: "does not speak TLS on this port",
    }
    .check_clients(&one_frame);
    Misconfigured {
        url: with_scheme(&valkey, "redis"),
        env: trust(&ca),
        cause: "if it serves TLS only, use rediss://",
    }
    .check_clients(&one_frame);

    // And no option turns verification off.
    let insecure = format!("{}/#insecure", valkey.url());
    let run = refresher_command(
        "once",
        &["--valkey-url".into(), insecure],
        &[],
        Duration::from_secs(10),
    );
    assert_eq!(run.code, Some(2), "{}", run.log);
    assert!(run.log.contains("not supported"), "{}", run.log);
}

#[test]
fn runtime_shim_names_the_tls_cause_and_keeps_serving_its_cache() {
    let ca = test_ca();
    let mut valkey = tls_valkey(&ca, ca.issue(&["127.0.0.1"], 1), None);
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let edge = Edge::start_app(&valkey);
    edge.wait_subscribed();
    let cached = stored_snapshot(&valkey).unwrap();
    e2e::assert_serves(edge.addr(), &cached, "EURJPY");

    // Valkey now presents a certificate for another host and every
    // connection drops: the reconnecting trigger names the cause, and the
    // cached rates are still served.
    valkey.rotate_certificate(&ca.issue(&["valkey.elsewhere.test"], 1));
    valkey.drop_clients();
    edge.wait_logged(
        "certificate is not valid for \"127.0.0.1\"",
        Duration::from_secs(10),
    );
    for _ in 0..20 {
        e2e::assert_serves(edge.addr(), &cached, "EURJPY");
    }
    // A component's own read fails with the cause, and the edge still
    // answers from its cache.
    let direct = Edge::app_on_with(&Host::Shim, &valkey, &with_scheme(&valkey, "redis"), &[]);
    let r = direct.get("/rates?from=USD&to=JPY");
    assert_eq!(r.status, 503, "{}", r.text());
    direct.wait_logged("if it serves TLS only, use rediss://", Duration::from_secs(10));

    // Fixed: the trigger resubscribes (within its backoff) and reads what
    // was refreshed meanwhile.
    valkey.rotate_certificate(&ca.issue(&["127.0.0.1"], 1));
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    wait_served(
        &edge,
        stored_snapshot(&valkey).unwrap().seq,
        Duration::from_secs(15),
    );
}

/// The certificate (DER) a TLS server at `port` presents to a client that
/// trusts `ca`.
fn served_certificate(port: u16, ca: &TestCa) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    ops::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&ca.cert).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).expect("TLS handshake");
    }
    tls.peer_certificates().expect("a server certificate")[0].to_vec()
}

fn file_certificate(cert: &std::path::Path) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(cert).unwrap().to_vec()
}

/// The rotation the manifests rely on, as far as it runs here: Valkey's
/// `tls-reload` sidecar script (only its paths, port and period made
/// local) makes a running Valkey serve a renewed certificate, and an edge
/// connected across the renewal keeps serving and following refreshes. The
/// three Valkeys of manifests/base/valkey.yaml run it, as does the single
/// one of components/valkey-single.
#[test]
fn the_manifests_tls_reload_makes_valkey_serve_a_renewed_certificate() {
    tls_reload_serves_a_renewed_certificate("manifests/base/valkey.yaml", "StatefulSet");
}

#[test]
fn the_single_valkeys_tls_reload_makes_it_serve_a_renewed_certificate() {
    tls_reload_serves_a_renewed_certificate("manifests/components/valkey-single/valkey.yaml", "Deployment");
}

fn tls_reload_serves_a_renewed_certificate(manifest: &str, kind: &str) {
    let ca = test_ca();
    let docs = e2e::manifests::yaml_docs(manifest);
    let reload = e2e::manifests::container(e2e::manifests::find(&docs, kind, "valkey"), "tls-reload");
    let script = reload["command"][2].as_str().expect("tls-reload's script");

    // The certificate Secret's directory, as cert-manager writes it.
    let dir = e2e::TempDir::new("valkey-tls");
    let tls = dir.path().join("tls");
    let served = dir.path().join("served");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::create_dir_all(&served).unwrap();
    let install = |cert: &CertFiles| {
        std::fs::copy(&cert.cert, tls.join("tls.crt")).unwrap();
        std::fs::copy(&cert.key, tls.join("tls.key")).unwrap();
        std::fs::copy(&ca.cert, tls.join("ca.crt")).unwrap();
    };
    let first = ca.issue(&["127.0.0.1", "localhost"], 1);
    install(&first);
    let password = "adm-4d5e6f";
    let valkey = Valkey::start_with(ValkeyOptions {
        password: Some(password.into()),
        tls: Some(Tls {
            cert: CertFiles {
                cert: tls.join("tls.crt"),
                key: tls.join("tls.key"),
            },
            ca: tls.join("ca.crt"),
        }),
        ..Default::default()
    });
    assert!(served_certificate(valkey.port, &ca) == file_certificate(&first.cert));

    let cli = if e2e::on_path("valkey-cli") {
        "valkey-cli"
    } else {
        "redis-cli"
    };
    let local = script
        .replace("/run/valkey-tls", &served.display().to_string())
        .replace("/tls/", &format!("{}/", tls.display()))
        .replace("sleep 30", "sleep 1")
        .replace("-p 6379", &format!("-p {}", valkey.port))
        .replace("valkey-cli", cli);
    let mut sidecar = e2e::Proc::spawn(
        std::process::Command::new("/bin/sh")
            .args(["-c", &local])
            .env("REDISCLI_AUTH", password)
            // The StatefulSet's pod valkey-1 restarts its Sentinel a minute
            // after a reload: later than this test runs.
            .env("POD_NAME", "valkey-1")
            .env("VALKEY_SENTINEL_PASSWORD", "not-used"),
        dir.path().join("tls-reload.log"),
    );
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let edge = Edge::start_app(&valkey);
    edge.wait_subscribed();
    let loaded = |n: usize| {
        eventually(Duration::from_secs(10), || {
            (sidecar.log().matches("Valkey loaded").count() >= n).then_some(())
        })
        .unwrap_or_else(|| panic!("tls-reload did not reload:\n{}", sidecar.log()))
    };
    loaded(1);

    // cert-manager renews: new files in the directory.
    let renewed = ca.issue(&["127.0.0.1", "localhost"], 1);
    install(&renewed);
    loaded(2);
    assert!(served_certificate(valkey.port, &ca) == file_certificate(&renewed.cert));
    assert!(!sidecar.log().contains("did not load"), "{}", sidecar.log());
    assert!(!sidecar.log().contains(password), "{}", sidecar.log());
    // The edge, connected before, serves on and follows a refresh; new
    // connections (the refresher's) meet the renewed certificate.
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let stored = stored_snapshot(&valkey).unwrap();
    wait_served(&edge, stored.seq, Duration::from_secs(5));
    e2e::assert_serves(edge.addr(), &stored, "EURJPY");
    assert!(
        sidecar.signal_and_wait("TERM", Duration::from_secs(5)).is_some(),
        "tls-reload ends at SIGTERM"
    );
}
