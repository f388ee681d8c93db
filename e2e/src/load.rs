//! A small HTTP/1.1 load generator for the benchmark and the soak test:
//! keep-alive connections on loopback, one blocking thread each (simple, and
//! `std::thread::sleep` keeps open-loop send times within ~0.1 ms, where a
//! 1 ms async timer would add its own latency), in two modes.
//!
//! - [`saturate`]: closed loop, every connection sends its next request as
//!   soon as the previous answer is read (→ requests per second);
//! - [`fixed_rate`]: open loop at a set rate; latency is measured from each
//!   request's *intended* send time, so a slow answer also counts against the
//!   requests queued behind it (no coordinated omission).
//!
//! And two measurements on top: [`compare`], two servers in alternating
//! one-second slices, and [`footprint`], what a server costs at a steady
//! load.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What to send and what counts as success.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
    pub expect_status: u16,
    pub expect_body_len: Option<usize>,
    /// Header lines sent with every request (`name: value`).
    pub headers: Vec<String>,
}

impl Target {
    fn request(&self) -> Vec<u8> {
        let mut req = format!("GET {} HTTP/1.1\r\nhost: {}\r\n", self.path, self.addr);
        for h in &self.headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        req.into_bytes()
    }
}

/// Results of one run.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Microseconds, one per completed request.
    pub latencies_us: Vec<u32>,
}

impl Stats {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub fn success_ratio(&self) -> f64 {
        let total = self.ok + self.failed;
        if total == 0 {
            0.0
        } else {
            self.ok as f64 / total as f64
        }
    }

    /// The `q` quantile (0..=1) in milliseconds.
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }

    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.latencies_us.extend(other.latencies_us);
    }

    /// Adds a later run of the same load (counts, latencies and time).
    pub fn add(&mut self, other: Stats) {
        self.elapsed += other.elapsed;
        self.merge(other);
    }
}

/// One keep-alive connection that reads whole responses.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends `req` and reads the answer: its status and body length.
    fn roundtrip(&mut self, req: &[u8]) -> io::Result<(u16, usize)> {
        self.stream.write_all(req)?;
        self.buf.clear();
        let header_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill()?;
        };
        let head = std::str::from_utf8(&self.buf[..header_end]).map_err(|_| bad("non-UTF-8 head"))?;
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let lower = head.to_ascii_lowercase();
        if let Some(len) = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            while self.buf.len() < header_end + len {
                self.fill()?;
            }
            return Ok((status, len));
        }
        if lower.contains("transfer-encoding: chunked") {
            let mut at = header_end;
            let mut body = 0;
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf[at..], b"\r\n") {
                        break at + i;
                    }
                    self.fill()?;
                };
                let size_text =
                    std::str::from_utf8(&self.buf[at..line_end]).map_err(|_| bad("chunk size"))?;
                let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| bad("chunk size"))?;
                let next = line_end + 2 + size + 2;
                while self.buf.len() < next {
                    self.fill()?;
                }
                body += size;
                at = next;
                if size == 0 {
                    return Ok((status, body));
                }
            }
        }
        Ok((status, 0))
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(m: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m.to_string())
}

fn is_ok(target: &Target, answer: io::Result<(u16, usize)>) -> bool {
    matches!(answer, Ok((s, len)) if s == target.expect_status && target.expect_body_len.is_none_or(|l| l == len))
}

/// Runs `work` on `n` threads and adds up their stats.
fn on_threads(n: usize, work: impl Fn(usize) -> Stats + Sync) -> Stats {
    let mut total = Stats::default();
    std::thread::scope(|s| {
        let work = &work;
        let handles: Vec<_> = (0..n).map(|k| s.spawn(move || work(k))).collect();
        for h in handles {
            total.merge(h.join().expect("load thread"));
        }
    });
    total
}

/// Sends one request on `conn` (reconnecting if needed) and records it.
fn one(target: &Target, req: &[u8], conn: &mut Option<Conn>, since: Instant, stats: &mut Stats) {
    if conn.is_none() {
        *conn = Conn::open(target.addr).ok();
    }
    let answer = match conn.as_mut() {
        Some(c) => c.roundtrip(req),
        None => Err(io::ErrorKind::ConnectionRefused.into()),
    };
    let failed_io = answer.is_err();
    if is_ok(target, answer) {
        stats.ok += 1;
        stats.latencies_us.push(since.elapsed().as_micros() as u32);
    } else {
        stats.failed += 1;
        if failed_io {
            *conn = None;
        }
    }
}

/// Closed loop with `connections` connections for `duration`.
pub fn saturate(target: &Target, connections: usize, duration: Duration) -> Stats {
    let started = Instant::now();
    let deadline = started + duration;
    let req = target.request();
    let mut total = on_threads(connections, |_| {
        let mut stats = Stats::default();
        let mut conn = None;
        while Instant::now() < deadline {
            one(target, &req, &mut conn, Instant::now(), &mut stats);
        }
        stats
    });
    total.elapsed = started.elapsed();
    total
}

/// Open loop: `rate` requests per second for `duration`, spread over
/// `connections` connections (request `i` goes to connection `i % n` at
/// `start + i / rate`); latency counts from that intended time.
pub fn fixed_rate(target: &Target, rate: u32, duration: Duration, connections: usize) -> Stats {
    let started = Instant::now() + Duration::from_millis(50);
    let total_requests = (f64::from(rate) * duration.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let req = target.request();
    let mut total = on_threads(connections, |k| {
        let mut stats = Stats::default();
        let mut conn = Conn::open(target.addr).ok();
        let mut i = k as u64;
        while i < total_requests {
            let intended = started + interval.mul_f64(i as f64);
            if let Some(wait) = intended.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            one(target, &req, &mut conn, intended, &mut stats);
            i += connections as u64;
        }
        stats
    });
    total.elapsed = started.elapsed();
    total
}

/// Throughput of `b` against `a` at 64 connections: `slices` pairs of
/// one-second runs in the order A B, B A, A B, ...; the ratio of the sums,
/// and the lowest and highest ratio of a pair.
pub struct Comparison {
    pub ratio: f64,
    pub low: f64,
    pub high: f64,
}

pub fn compare(a: &Target, b: &Target, slices: usize) -> Comparison {
    let each = Duration::from_secs(1);
    let (mut sum_a, mut sum_b) = (0.0, 0.0);
    let mut pairs = Vec::new();
    // A slice that failed a request would compare errors, not work.
    let run = |t: &Target| {
        let stats = saturate(t, 64, each);
        assert_eq!(
            stats.failed,
            0,
            "{}{}: {} of {} requests failed",
            t.addr,
            t.path,
            stats.failed,
            stats.ok + stats.failed
        );
        stats.rps()
    };
    for i in 0..slices {
        let (ra, rb) = if i % 2 == 0 {
            let ra = run(a);
            (ra, run(b))
        } else {
            let rb = run(b);
            (run(a), rb)
        };
        sum_a += ra;
        sum_b += rb;
        pairs.push(rb / ra);
    }
    Comparison {
        ratio: sum_b / sum_a,
        low: pairs.iter().copied().fold(f64::INFINITY, f64::min),
        high: pairs.iter().copied().fold(0.0, f64::max),
    }
}

/// The open-loop rate [`footprint`] holds every executor at.
pub const STEADY_RATE: u32 = 500;

/// What one server costs at a steady load: CPU time per 1,000 requests,
/// and resident memory of its whole process tree (`spin up` runs its
/// triggers as child processes), the highest of samples taken during it.
pub struct Footprint {
    pub cpu_ms_per_1k: f64,
    pub rss_mib: f64,
}

pub fn footprint(target: &Target, pid: u32, duration: Duration) -> Footprint {
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(crate::tree_rss_kib(pid));
                std::thread::sleep(Duration::from_millis(250));
            }
            peak
        })
    };
    let before = crate::tree_cpu(pid);
    let stats = fixed_rate(target, STEADY_RATE, duration, 32);
    let cpu = crate::tree_cpu(pid) - before;
    stop.store(true, Ordering::Relaxed);
    let rss_kib = sampler.join().unwrap();
    assert_eq!(stats.success_ratio(), 1.0, "the steady load was not served");
    Footprint {
        cpu_ms_per_1k: cpu.as_secs_f64() * 1000.0 / (stats.ok as f64 / 1000.0),
        rss_mib: rss_kib as f64 / 1024.0,
    }
}
