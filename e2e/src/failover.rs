//! The failover of Valkey's primary under load, over real processes: what
//! `e2e/tests/all/failover.rs` asserts and `make failover` reports. Two edge
//! instances on one host read through the read Service, an open loop of
//! requests runs against each, a refresh is in flight (One-Frame answering
//! slowly), and the primary is killed (SIGKILL). Sentinel promotes a
//! replica, the refresher writes to it, and every instance must come to
//! serve that snapshot.
//!
//! On Spin an instance whose Redis trigger loses its node ends (the whole
//! app, as Spin does): it is started again on the same port at once, as
//! the kubelet restarts a container, and its downtime is counted in the
//! requests that failed. Its key-value store survives the restart (as the
//! SpinApp's emptyDir survives a container restart): an instance whose
//! trigger subscribed again only after the new snapshot's PUBLISH serves
//! the previous one, still fresh, until its `revalidate_age` (250 s) has it
//! read Valkey again. Such instances are counted, not waited for.

use crate::edge::{Edge, Host};
use crate::http;
use crate::one_frame::OneFrame;
use crate::procs::eventually;
use crate::refresher::{Run, refresher_once};
use crate::sentinel::{Cluster, PRIMARY_NAME, ReadService};
use shared::Timestamp;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests per second sent to each instance.
const RATE: u32 = 100;
/// How slowly One-Frame answers the refresh that is in flight at the kill.
const SLOW_ONE_FRAME: Duration = Duration::from_millis(1_500);

/// What one failover did.
#[derive(Debug)]
pub struct Figures {
    pub host: &'static str,
    /// From the SIGKILL to every instance serving the refresh written after it.
    pub failover: Duration,
    /// From the SIGKILL to Sentinel naming the new primary.
    pub promotion: Duration,
    pub requests: usize,
    pub failed: usize,
    /// Answers with a rate older than 300 s.
    pub stale: usize,
    /// Instances that ended and were started again.
    pub restarts: usize,
    /// Instances restarted after the kill that missed the new snapshot's
    /// PUBLISH and serve the previous snapshot until they revalidate (Spin).
    pub missed_publish: usize,
    /// The day's One-Frame calls before the kill and after the failover.
    pub calls_before: u64,
    pub calls_after: u64,
    /// The refresher run that was in flight, and the seq it stored.
    pub refresh: Run,
    pub stored_seq: u64,
}

/// `refresher once` against `cluster` through its Sentinels.
pub fn refresh_via_sentinels(cluster: &Cluster, one_frame: &OneFrame, extra: &[&str]) -> Run {
    let (args, env) = sentinel_run(cluster, one_frame, extra);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    refresher_once(&args, &env, Duration::from_secs(90))
}

/// As [`refresh_via_sentinels`], on a thread of its own: a run in flight.
pub fn refresh_in_background(cluster: &Cluster, one_frame: &OneFrame) -> std::thread::JoinHandle<Run> {
    let (args, env) = sentinel_run(cluster, one_frame, &[]);
    std::thread::spawn(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        refresher_once(&args, &env, Duration::from_secs(90))
    })
}

/// The arguments and environment of a run through `cluster`'s Sentinels.
fn sentinel_run(
    cluster: &Cluster,
    one_frame: &OneFrame,
    extra: &[&str],
) -> (Vec<String>, Vec<(String, String)>) {
    let mut args: Vec<String> = [
        "--valkey-url",
        &cluster.server_url(0),
        "--valkey-sentinels",
        &cluster.sentinels_url(),
        "--valkey-primary-name",
        PRIMARY_NAME,
        "--one-frame-url",
        &one_frame.url(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    (args, cluster.client_env())
}

/// The day's One-Frame call count on server `i`.
pub fn calls_today(cluster: &Cluster, i: usize) -> u64 {
    cluster
        .get(i, &format!("oneframe:calls:{}", Timestamp::now().utc_day()))
        .and_then(|b| String::from_utf8(b).ok()?.parse().ok())
        .unwrap_or(0)
}

/// The seq an instance serves (`/readyz`), `None` when it does not answer.
fn seq_at(addr: SocketAddr) -> Option<u64> {
    let r = http::request(addr, "GET", "/readyz", &[], b"").ok()?;
    (r.status == 200).then(|| r.json()["seq"].as_u64()).flatten()
}

/// An instance on `host` reading through `read`.
pub fn start_instance(host: &Host, cluster: &Cluster, read: &ReadService) -> Edge {
    let quiet: &[&str] = if host.is_spin() { &[] } else { &["--quiet"] };
    Edge::app_with_env(host, &read.url(), &read.host(), quiet, &cluster.client_env())
        .unwrap_or_else(|log| panic!("the edge did not start:\n{log}"))
}

/// One answer of the load: failed, stale, or fine.
enum Answer {
    Fine,
    Stale,
    Failed,
}

/// Kills the primary under load and a refresh; `None` without haproxy.
pub fn kill_the_primary_under_load(host: &Host) -> Option<Figures> {
    let mut cluster = Cluster::start();
    let one_frame = OneFrame::start(&[]);
    let first = refresh_via_sentinels(&cluster, &one_frame, &[]);
    assert_eq!(first.code, Some(0), "{}", first.log);
    let first_seq = 1;
    assert!(first.log.contains("stored snapshot seq=1 "), "{}", first.log);
    let read = ReadService::start(&cluster, &[0, 1, 2])?;
    let instances: Vec<Arc<Mutex<Option<Edge>>>> = (0..2)
        .map(|_| Arc::new(Mutex::new(Some(start_instance(host, &cluster, &read)))))
        .collect();
    let addrs: Vec<SocketAddr> = instances
        .iter()
        .map(|e| e.lock().unwrap().as_ref().unwrap().addr())
        .collect();
    for a in &addrs {
        eventually(Duration::from_secs(10), || seq_at(*a)).expect("an instance serves");
    }

    // The load, and for Spin the kubelet's part: an instance that ends is
    // started again on its port.
    let stop = Arc::new(AtomicBool::new(false));
    let restarts = Arc::new(AtomicUsize::new(0));
    // Which instances were started again (Spin), by slot.
    let restarted: Arc<Vec<AtomicBool>> =
        Arc::new(instances.iter().map(|_| AtomicBool::new(false)).collect());
    let supervisor = {
        let (stop, restarts, instances, restarted) = (
            stop.clone(),
            restarts.clone(),
            instances.clone(),
            restarted.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (i, slot) in instances.iter().enumerate() {
                    let mut slot = slot.lock().unwrap();
                    if slot.as_mut().is_some_and(|e| e.has_exited().is_some()) {
                        let edge = slot.take().unwrap();
                        *slot = Some(edge.restart().unwrap_or_else(|log| panic!("restart:\n{log}")));
                        restarts.fetch_add(1, Ordering::Relaxed);
                        restarted[i].store(true, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let loads: Vec<_> = addrs
        .iter()
        .map(|&addr| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let every = Duration::from_secs(1) / RATE;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    next += every;
                    let answer = match http::request(addr, "GET", "/rates?from=USD&to=JPY", &[], b"") {
                        Ok(r) if r.status == 200 => {
                            let stamp = r.json()["timestamp"]
                                .as_str()
                                .and_then(|s| Timestamp::parse(s).ok());
                            let age = stamp.map(|t| shared::freshness::age(t, Timestamp::now()));
                            if age.is_some_and(|a| a <= Duration::from_secs(300)) {
                                Answer::Fine
                            } else {
                                Answer::Stale
                            }
                        }
                        _ => Answer::Failed,
                    };
                    out.push(answer);
                }
                out
            })
        })
        .collect();

    // A refresh in flight: One-Frame answers slowly, so the kill comes after
    // its call count is taken and before its snapshot is written.
    std::thread::sleep(Duration::from_secs(1));
    one_frame.fault(&format!(
        r#"{{"mode":"none","latency_ms":{},"times":1}}"#,
        SLOW_ONE_FRAME.as_millis()
    ));
    let refresher = refresh_in_background(&cluster, &one_frame);
    let old = cluster.primary().expect("a primary");
    let counted = eventually(Duration::from_secs(5), || {
        let n = calls_today(&cluster, old);
        (n >= 2).then_some(n)
    })
    .expect("the refresh in flight took its call");
    let calls_before = counted;
    let killed = Instant::now();
    cluster.kill(old);
    let new = cluster.wait_for_failover(old, Duration::from_secs(30));
    let promotion = killed.elapsed();
    let refresh = refresher.join().unwrap();
    let stored_seq =
        shared::Snapshot::decode(&cluster.get(new, "rates").expect("a snapshot on the new primary"))
            .expect("a valid snapshot")
            .seq;
    // Every instance serves the new snapshot; on Spin, one started again
    // since the kill may serve the previous one (above), never another.
    let missed_publish = eventually(Duration::from_secs(30), || {
        let mut missed = 0;
        for (i, a) in addrs.iter().enumerate() {
            match seq_at(*a) {
                Some(seq) if seq == stored_seq => {}
                Some(seq) if seq == first_seq && restarted[i].load(Ordering::Relaxed) => missed += 1,
                _ => return None,
            }
        }
        Some(missed)
    })
    .unwrap_or_else(|| panic!("not every instance serves seq {stored_seq}:\n{}", refresh.log));
    let failover = killed.elapsed();
    let calls_after = calls_today(&cluster, new);
    // The load goes on a moment past the failover, then stops.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let answers: Vec<Answer> = loads.into_iter().flat_map(|l| l.join().unwrap()).collect();
    supervisor.join().unwrap();
    Some(Figures {
        host: host.name(),
        failover,
        promotion,
        requests: answers.len(),
        failed: answers.iter().filter(|a| matches!(a, Answer::Failed)).count(),
        stale: answers.iter().filter(|a| matches!(a, Answer::Stale)).count(),
        restarts: restarts.load(Ordering::Relaxed),
        missed_publish,
        calls_before,
        calls_after,
        refresh,
        stored_seq,
    })
}
