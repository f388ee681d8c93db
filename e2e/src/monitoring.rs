//! What watches the service: the exporter (`refresher exporter`), a real
//! Prometheus (Debian's `prometheus`) scraping it and runtime-shim, a real
//! Alertmanager (Debian's `prometheus-alertmanager`) it sends its alerts
//! to, and the metrics catalogue `manifests/components/monitoring/metrics.yaml`;
//! for what a test cannot run, loopback servers of the test's own: a
//! [`Webhook`] receiving Alertmanager's notifications and a
//! [`StaticMetrics`] endpoint standing in for another exporter.

use crate::http;
use crate::procs::{Proc, TempDir, bin, eventually, free_port, on_path, repo_root, wait_for_port};
use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One sample of an exposition: the series as written (name and labels)
/// and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub series: String,
    pub value: f64,
}

/// The samples of a Prometheus or OpenMetrics text exposition.
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {l:?}"));
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")),
            };
            Sample {
                series: series.to_string(),
                value,
            }
        })
        .collect()
}

/// The metric families an exposition declares (`# TYPE <name> ...`), with
/// counters named as scraped (`_total`).
pub fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next().unwrap_or_default();
            match words.next() {
                Some("counter") => format!("{name}_total"),
                _ => name.to_string(),
            }
        })
        .collect()
}

/// The value of exactly `series` (e.g. `forex_valkey_up` or
/// `x{a="b"}`), if the exposition has it.
pub fn value_of(text: &str, series: &str) -> Option<f64> {
    parse_exposition(text)
        .into_iter()
        .find(|s| s.series == series)
        .map(|s| s.value)
}

/// The families `metrics.yaml` lists for `exporter` (`forex-exporter`,
/// `runtime-shim`, `traefik`), counters with their `_total`.
pub fn catalogue(exporter: &str) -> BTreeSet<String> {
    let path = repo_root().join("manifests/components/monitoring/metrics.yaml");
    let text = std::fs::read_to_string(&path).expect("metrics.yaml");
    let doc: serde_json::Value = serde_norway::from_str(&text).expect("metrics.yaml is YAML");
    doc[exporter]
        .as_object()
        .unwrap_or_else(|| panic!("metrics.yaml has no {exporter}"))
        .keys()
        .cloned()
        .collect()
}

/// `refresher exporter` on a free loopback port.
pub struct Exporter {
    pub port: u16,
    proc: Proc,
    _dir: TempDir,
}

impl Exporter {
    /// Against `valkey_url`, with extra flags and nothing of the test's
    /// environment.
    pub fn start(valkey_url: &str, extra: &[&str]) -> Exporter {
        Exporter::start_with_env(valkey_url, extra, &[])
    }

    /// As [`Exporter::start`], with `env` (e.g. a TLS Valkey's [`crate::Valkey::client_env`]).
    pub fn start_with_env(valkey_url: &str, extra: &[&str], env: &[(String, String)]) -> Exporter {
        let port = free_port();
        let dir = TempDir::new("exporter");
        let mut cmd = Command::new(bin("refresher"));
        cmd.arg("exporter")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--valkey-url", valkey_url])
            .args(extra)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)));
        let proc = Proc::spawn(&mut cmd, dir.path().join("exporter.log"));
        assert!(
            wait_for_port(port, Duration::from_secs(10)),
            "the exporter did not start:\n{}",
            proc.log()
        );
        Exporter {
            port,
            proc,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `GET /metrics`: its status and body.
    pub fn scrape(&self) -> (u16, String) {
        let r = http::get(self.addr(), "/metrics");
        (r.status, r.text())
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }
}

/// A scrape job for [`Prometheus`].
pub struct Job {
    pub name: &'static str,
    pub target: SocketAddr,
}

/// A real Prometheus on a free loopback port, scraping `jobs` every second
/// and evaluating a rule file (each group at its own `interval`; 1 s for a
/// group without one), optionally sending its alerts to an Alertmanager.
pub struct Prometheus {
    pub port: u16,
    proc: Proc,
    _dir: TempDir,
}

/// The plain rule file, the same rules as the PrometheusRule.
pub fn rule_file() -> PathBuf {
    repo_root().join("manifests/components/monitoring/rules/forex.rules.yaml")
}

/// The plain Alertmanager file, the same route as the AlertmanagerConfig.
pub fn alertmanager_routes_file() -> PathBuf {
    repo_root().join("manifests/components/monitoring/alertmanager/forex.routes.yaml")
}

impl Prometheus {
    /// With the project's rule file and no Alertmanager.
    pub fn start(jobs: &[Job]) -> Prometheus {
        Prometheus::start_with(jobs, &rule_file(), None)
    }

    /// With `rules` as its rule file, sending alerts to `alertmanager`.
    pub fn start_with(jobs: &[Job], rules: &Path, alertmanager: Option<SocketAddr>) -> Prometheus {
        let port = free_port();
        let dir = TempDir::new("prometheus");
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\nrule_files:\n  - {}\n",
            rules.display()
        );
        if let Some(am) = alertmanager {
            config.push_str(&format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am}']\n"
            ));
        }
        config.push_str("scrape_configs:\n");
        for job in jobs {
            config.push_str(&format!(
                "  - job_name: {}\n    static_configs:\n      - targets: ['{}']\n",
                job.name, job.target
            ));
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let proc = Proc::spawn(
            Command::new("prometheus")
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                // Rules are evaluated from the first second; no wait for a
                // 'for' restored from a previous run.
                .arg("--rules.alert.for-grace-period=1s"),
            dir.path().join("prometheus.log"),
        );
        let p = Prometheus {
            port,
            proc,
            _dir: dir,
        };
        let ready = eventually(Duration::from_secs(30), || {
            let r = http::request(p.addr(), "GET", "/-/ready", &[], b"").ok()?;
            (r.status == 200).then_some(())
        });
        assert!(ready.is_some(), "Prometheus did not start:\n{}", p.log());
        p
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// `POST /api/v1/query`: the whole answer, whatever its status.
    pub fn query_raw(&self, expr: &str) -> serde_json::Value {
        let body = format!("query={}", form_encode(expr));
        let r = http::request(
            self.addr(),
            "POST",
            "/api/v1/query",
            &[("content-type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("query {expr}: {e}"));
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("query {expr}: {e}: {}", r.text()))
    }

    /// An instant query's vector: each series' labels and value.
    pub fn query(&self, expr: &str) -> Vec<(serde_json::Value, f64)> {
        let answer = self.query_raw(expr);
        assert_eq!(answer["status"], "success", "query {expr}: {answer}");
        answer["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("query {expr}: no vector in {answer}"))
            .iter()
            .map(|s| {
                let value = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (s["metric"].clone(), value)
            })
            .collect()
    }

    /// The value of a query that yields one series, if it yields one.
    pub fn scalar(&self, expr: &str) -> Option<f64> {
        match self.query(expr).as_slice() {
            [(_, v)] => Some(*v),
            _ => None,
        }
    }

    /// Waits until `expr` yields one series whose value satisfies `ok`; the
    /// value, or a panic naming what was seen.
    #[track_caller]
    pub fn wait_for(&self, expr: &str, limit: Duration, ok: impl Fn(f64) -> bool) -> f64 {
        let mut last = None;
        let got = eventually(limit, || {
            last = self.scalar(expr);
            last.filter(|v| ok(*v))
        });
        got.unwrap_or_else(|| panic!("{expr}: last {last:?} after {limit:?}\n{}", self.log()))
    }

    /// The state of alert `name` (`pending`, `firing`), or `None` when inactive.
    pub fn alert_state(&self, name: &str) -> Option<String> {
        let r = http::get(self.addr(), "/api/v1/alerts");
        let answer = r.json();
        let states: Vec<String> = answer["data"]["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .filter_map(|a| a["state"].as_str().map(str::to_string))
            .collect();
        ["firing", "pending"]
            .into_iter()
            .find(|s| states.iter().any(|x| x == s))
            .map(str::to_string)
    }

    /// Waits until alert `name` is in `state` (`None`: inactive).
    #[track_caller]
    pub fn wait_for_alert(&self, name: &str, state: Option<&str>, limit: Duration) {
        let mut last = None;
        let reached = eventually(limit, || {
            last = self.alert_state(name);
            (last.as_deref() == state).then_some(())
        });
        assert!(
            reached.is_some(),
            "alert {name}: {last:?}, not {state:?}, after {limit:?}\n{}",
            self.log()
        );
    }
}

/// `application/x-www-form-urlencoded` for a value.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A real Alertmanager (Debian's `prometheus-alertmanager`, else
/// `alertmanager` on PATH) on a free loopback port: no cluster (no gossip
/// port), its storage in a scratch directory, stopped when dropped.
pub struct Alertmanager {
    pub port: u16,
    proc: Proc,
    _dir: TempDir,
}

impl Alertmanager {
    /// With `config` (the YAML of its configuration file).
    pub fn start(config: &str) -> Alertmanager {
        let program = ["prometheus-alertmanager", "alertmanager"]
            .into_iter()
            .find(|p| on_path(p))
            .expect("no prometheus-alertmanager (Debian's package) or alertmanager on PATH");
        let port = free_port();
        let dir = TempDir::new("alertmanager");
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).expect("write alertmanager.yml");
        let proc = Proc::spawn(
            Command::new(program)
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!("--storage.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                // Empty: a single Alertmanager, no gossip port.
                .arg("--cluster.listen-address="),
            dir.path().join("alertmanager.log"),
        );
        let am = Alertmanager {
            port,
            proc,
            _dir: dir,
        };
        let ready = eventually(Duration::from_secs(30), || {
            let r = http::request(am.addr(), "GET", "/-/ready", &[], b"").ok()?;
            (r.status == 200).then_some(())
        });
        assert!(ready.is_some(), "Alertmanager did not start:\n{}", am.log());
        am
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }
}

/// A request a [`LoopbackServer`] answered.
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    body: &'a [u8],
}

type Handler = dyn Fn(&Request) -> (u16, &'static str, Vec<u8>) + Send + Sync;

/// A tiny HTTP/1.1 server of the test's own on a free loopback port: one
/// request per connection, each answered by `handler` on the server's
/// thread, which stops (and is joined) when the server is dropped.
struct LoopbackServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LoopbackServer {
    fn start(handler: Arc<Handler>) -> LoopbackServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = serve(stream, &*handler);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        LoopbackServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (headers, then `content-length` bytes of body) and
/// writes the handler's answer, closing the connection.
fn serve(mut stream: TcpStream, handler: &Handler) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while raw.len() < head_end + length {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let body = &raw[head_end..(head_end + length).min(raw.len())];
    let (status, content_type, answer) = handler(&Request { method, path, body });
    write!(
        stream,
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        if status == 200 { "OK" } else { "Error" },
        answer.len()
    )?;
    stream.write_all(&answer)?;
    stream.flush()
}

/// A notification the [`Webhook`] received: when its body had fully
/// arrived, and the body (Alertmanager's webhook JSON).
#[derive(Debug, Clone)]
pub struct Notification {
    pub at: shared::Timestamp,
    pub body: serde_json::Value,
}

impl Notification {
    /// Whether it tells of alert `name` firing.
    pub fn fires(&self, name: &str) -> bool {
        self.body["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["labels"]["alertname"] == name && a["status"] == "firing")
    }
}

/// An Alertmanager webhook receiver of the test's own: it records every
/// POSTed notification with the time it arrived, and answers 200.
pub struct Webhook {
    received: Arc<Mutex<Vec<Notification>>>,
    server: LoopbackServer,
}

impl Webhook {
    pub fn start() -> Webhook {
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let server = LoopbackServer::start(Arc::new(move |r: &Request| {
            if r.method != "POST" {
                return (405, "text/plain", Vec::new());
            }
            let at = shared::Timestamp::now();
            match serde_json::from_slice(r.body) {
                Ok(body) => {
                    log.lock().unwrap().push(Notification { at, body });
                    (200, "text/plain", Vec::new())
                }
                Err(_) => (400, "text/plain", Vec::new()),
            }
        }));
        Webhook { received, server }
    }

    /// The URL to give Alertmanager's `webhook_configs`.
    pub fn url(&self) -> String {
        format!("http://{}/notify", self.server.addr)
    }

    /// Every notification so far, in order of arrival.
    pub fn received(&self) -> Vec<Notification> {
        self.received.lock().unwrap().clone()
    }

    /// The first notification that satisfies `ok`, waiting up to `limit`.
    pub fn wait_for(&self, limit: Duration, ok: impl Fn(&Notification) -> bool) -> Option<Notification> {
        eventually(limit, || self.received().into_iter().find(|n| ok(n)))
    }
}

/// A loopback `/metrics` endpoint serving a fixed exposition, for
/// Prometheus to scrape series of an exporter the test cannot run (e.g.
/// kube-state-metrics' HPA series).
pub struct StaticMetrics {
    server: LoopbackServer,
}

impl StaticMetrics {
    pub fn start(exposition: &str) -> StaticMetrics {
        let text = exposition.as_bytes().to_vec();
        let server = LoopbackServer::start(Arc::new(move |r: &Request| match (r.method, r.path) {
            ("GET", "/metrics") => (200, "text/plain; version=0.0.4", text.clone()),
            _ => (404, "text/plain", Vec::new()),
        }));
        StaticMetrics { server }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }
}

/// Scrapes `addr`'s `/metrics` every second, as Prometheus would, until dropped.
pub struct Scraper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u32>>,
}

impl Scraper {
    pub fn start(addr: std::net::SocketAddr) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut scrapes = 0;
            while !flag.load(Ordering::Relaxed) {
                let r = crate::http::get(addr, "/metrics");
                assert_eq!(r.status, 200, "metrics scrape");
                scrapes += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            scrapes
        });
        Scraper {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let scrapes = t.join().expect("scraper");
            eprintln!("bench: {scrapes} metrics scrapes during the load");
        }
    }
}
