//! A real load balancer in front of edge instances: Debian's haproxy,
//! health-checking each instance's `/readyz` the way a readiness probe
//! does (an instance takes traffic only while it answers 200), with its
//! runtime API to add instances and take them away while it runs.

use crate::procs::{Proc, TempDir, free_port, on_path};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// How often haproxy asks `/readyz`; one failure takes an instance out,
/// one success puts it in.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

pub struct Balancer {
    pub port: u16,
    socket: PathBuf,
    _proc: Proc,
    _dir: TempDir,
}

/// One server slot of the backend, as `show stat` reports it.
#[derive(Debug, Clone)]
pub struct ServerStat {
    pub name: String,
    /// `UP`, `DOWN`, `MAINT`, ...
    pub status: String,
    /// Requests it was sent.
    pub sessions: u64,
    /// Requests retried, and redispatched to another server.
    pub retries: u64,
    pub redispatches: u64,
}

impl Balancer {
    /// haproxy with `slots` servers, all in maintenance until [`add`]ed;
    /// `None` (said so) without haproxy on PATH. With `retry`, a request
    /// whose connection fails or is closed without an answer is sent again
    /// to another instance (haproxy's `retry-on`, as Traefik's retry
    /// middleware would); without, every failure reaches the client.
    ///
    /// [`add`]: Balancer::add
    pub fn start(slots: usize, retry: bool) -> Option<Balancer> {
        if !on_path("haproxy") {
            eprintln!("no haproxy on PATH: skipped");
            return None;
        }
        let dir = TempDir::new("haproxy");
        let port = free_port();
        let socket = dir.path().join("admin.sock");
        let retries = if retry {
            "  retries 3\n  option redispatch 1\n  retry-on conn-failure empty-response response-timeout\n"
        } else {
            "  retries 0\n"
        };
        let servers: String = (0..slots)
            .map(|i| format!("  server edge{i} 127.0.0.1:1 check disabled\n"))
            .collect();
        let config = format!(
            "global\n  stats socket {} mode 600 level admin\n  maxconn 4096\n\
             defaults\n  mode http\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n{retries}\
             frontend edge\n  bind 127.0.0.1:{port}\n  default_backend edges\n\
             backend edges\n  balance roundrobin\n  option httpchk\n  http-check send meth GET uri /readyz ver HTTP/1.1 hdr host edge\n  http-check expect status 200\n\
             \x20 default-server inter {}ms fall 1 rise 1\n{servers}",
            socket.display(),
            CHECK_EVERY.as_millis(),
        );
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config).unwrap();
        let proc = Proc::spawn(
            Command::new("haproxy").arg("-db").arg("-f").arg(&cfg),
            dir.path().join("haproxy.log"),
        );
        let b = Balancer {
            port,
            socket,
            _proc: proc,
            _dir: dir,
        };
        crate::eventually(Duration::from_secs(10), || b.try_command("show info").ok())
            .expect("haproxy answers on its admin socket");
        Some(b)
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Points slot `slot` at `instance` and lets it take traffic once its
    /// `/readyz` answers 200: it leaves maintenance as down, and only a
    /// passing check brings it up.
    pub fn add(&self, slot: usize, instance: SocketAddr) {
        self.command(&format!(
            "set server edges/edge{slot} addr {} port {}",
            instance.ip(),
            instance.port()
        ));
        self.command(&format!("set server edges/edge{slot} health down"));
        self.command(&format!("set server edges/edge{slot} state ready"));
    }

    /// Takes slot `slot` out: no new request goes to it.
    pub fn remove(&self, slot: usize) {
        self.command(&format!("set server edges/edge{slot} state maint"));
    }

    /// Every slot's state and counters.
    pub fn stats(&self) -> Vec<ServerStat> {
        let csv = self.command("show stat");
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or("")
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (px, sv, status, stot, wretr, wredis) = (
            col("pxname"),
            col("svname"),
            col("status"),
            col("stot"),
            col("wretr"),
            col("wredis"),
        );
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > wredis && f[px] == "edges" && f[sv].starts_with("edge"))
            .map(|f| ServerStat {
                name: f[sv].to_string(),
                status: f[status].to_string(),
                sessions: f[stot].parse().unwrap_or(0),
                retries: f[wretr].parse().unwrap_or(0),
                redispatches: f[wredis].parse().unwrap_or(0),
            })
            .collect()
    }

    /// The status of slot `slot` (`UP`, `DOWN`, `MAINT`...).
    pub fn status(&self, slot: usize) -> String {
        let name = format!("edge{slot}");
        self.stats()
            .into_iter()
            .find(|s| s.name == name)
            .map(|s| s.status)
            .unwrap_or_default()
    }

    fn command(&self, command: &str) -> String {
        self.try_command(command)
            .unwrap_or_else(|e| panic!("haproxy: {command}: {e}"))
    }

    fn try_command(&self, command: &str) -> std::io::Result<String> {
        let mut s = UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(format!("{command}\n").as_bytes())?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }
}
