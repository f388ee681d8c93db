//! What watches the service: the exporter (`refresher exporter`), a real
//! Prometheus (Debian's `prometheus`) scraping it and runtime-shim, and
//! the metrics catalogue `manifests/components/monitoring/metrics.yaml`.

use crate::http;
use crate::procs::{Proc, TempDir, bin, eventually, free_port, repo_root, wait_for_port};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// A real Prometheus on a free loopback port, scraping `jobs` and
/// evaluating the project's rule file every second.
pub struct Prometheus {
    pub port: u16,
    proc: Proc,
    _dir: TempDir,
}

/// The plain rule file, the same rules as the PrometheusRule.
pub fn rule_file() -> PathBuf {
    repo_root().join("manifests/components/monitoring/rules/forex.rules.yaml")
}

impl Prometheus {
    pub fn start(jobs: &[Job]) -> Prometheus {
        let port = free_port();
        let dir = TempDir::new("prometheus");
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n",
            rule_file().display()
        );
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
