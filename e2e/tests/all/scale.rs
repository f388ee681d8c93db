//! A scale event that loses nothing, over real processes: edge instances
//! behind a real load balancer (haproxy, health-checking `/readyz` as a
//! readiness probe does), one Valkey and an open-loop load through the
//! balancer. While the load runs, two instances are added (each taking
//! traffic once its `/readyz` is 200), a refresh is published, and two are
//! taken away as Kubernetes does it: SIGTERM, and out of the balancer 2 s
//! later, when the balancer learns of it.
//!
//! Required: no request fails, none is answered with a stale rate, no
//! instance serves the previous snapshot later than 100 ms after the new
//! one's PUBLISH, and Valkey's reads follow the instances (one each per
//! refresh), not the requests.
//!
//! runtime-shim keeps the 2 s loss-free by itself (`--shutdown-delay`, as its
//! image sets it): no balancer retries. Spin aborts at SIGTERM, requests in
//! flight included; its run lets the balancer retry idempotent requests on
//! another instance (as Traefik's retry middleware would) and reports how
//! many it had to.

use e2e::{
    Balancer, Edge, Host, OneFrame, Valkey, eventually, http, refresh, snapshot_stamped, stored_snapshot,
};
use shared::Timestamp;
use std::time::{Duration, Instant};

const RATE: u32 = 200;
const LOAD_FOR: Duration = Duration::from_secs(12);
const SENDERS: u32 = 8;
const TARGET: &str = "/rates?from=USD&to=JPY";

/// One request of the load: when it was meant to be sent, and its status
/// and the rate's timestamp (or why it failed).
struct Sent {
    at: Instant,
    answer: Result<(u16, String), String>,
}

/// Open loop at [`RATE`] through `addr` for [`LOAD_FOR`], one connection
/// per request, from [`SENDERS`] threads.
fn load(addr: std::net::SocketAddr, start: Instant) -> Vec<std::thread::JoinHandle<Vec<Sent>>> {
    let every = Duration::from_secs(1) / RATE;
    let total = RATE as u64 * LOAD_FOR.as_secs();
    (0..SENDERS)
        .map(|k| {
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let mut i = k as u64;
                while i < total {
                    let at = start + every * i as u32;
                    std::thread::sleep(at.saturating_duration_since(Instant::now()));
                    let answer = match http::request(addr, "GET", TARGET, &[], b"") {
                        Ok(r) if r.status == 200 => Ok((
                            200,
                            r.json()["timestamp"].as_str().unwrap_or_default().to_string(),
                        )),
                        Ok(r) => Ok((r.status, r.text())),
                        Err(e) => Err(e.to_string()),
                    };
                    out.push(Sent { at, answer });
                    i += SENDERS as u64;
                }
                out
            })
        })
        .collect()
}

/// Calls of GET Valkey has served (`INFO commandstats`).
fn gets(valkey: &Valkey) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut valkey.conn())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

fn start_instance(host: &Host, valkey: &Valkey) -> Edge {
    match host {
        // As the runtime-shim image runs it.
        Host::Shim => Edge::start_app_with(
            valkey,
            &valkey.url(),
            &["--shutdown-delay", "5s", "--readiness-path", "/readyz", "--quiet"],
        ),
        Host::Spin(_) => Edge::app_on(host, valkey),
    }
}

fn a_scale_event_under_load_loses_nothing(host: &Host) {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let first = stored_snapshot(&valkey).unwrap();
    let Some(balancer) = Balancer::start(4, host.is_spin()) else {
        return;
    };
    let up = |slot: usize| {
        eventually(Duration::from_secs(10), || {
            (balancer.status(slot) == "UP").then_some(())
        })
        .unwrap_or_else(|| panic!("slot {slot} never came up: {:?}", balancer.stats()))
    };
    let mut instances: Vec<Edge> = (0..2).map(|_| start_instance(host, &valkey)).collect();
    for (slot, e) in instances.iter().enumerate() {
        balancer.add(slot, e.addr());
        up(slot);
    }

    let t0 = Instant::now() + Duration::from_millis(200);
    let senders = load(balancer.addr(), t0);
    let at = |d: Duration| std::thread::sleep((t0 + d).saturating_duration_since(Instant::now()));

    // Two more instances, each in the balancer only once /readyz is 200.
    at(Duration::from_secs(1));
    for slot in 2..4 {
        let e = start_instance(host, &valkey);
        balancer.add(slot, e.addr());
        instances.push(e);
    }
    up(2);
    up(3);

    // A quiet stretch: requests, and no Valkey read for them.
    std::thread::sleep(Duration::from_millis(500));
    let quiet_from = (Instant::now(), gets(&valkey));
    at(Duration::from_millis(3_500));
    let quiet = (quiet_from.0.elapsed(), gets(&valkey) - quiet_from.1);

    // A refresh: a newer snapshot, and its PUBLISH.
    let now = Timestamp::now();
    let second = snapshot_stamped(first.seq + 1, now, now);
    let gets_before = gets(&valkey);
    valkey.set("rates", &second.encode());
    let receivers = valkey.publish("rates_updated", &second.seq.to_string());
    let published = Instant::now();
    assert_eq!(receivers, 4, "every instance subscribes");
    std::thread::sleep(Duration::from_millis(1_500));
    let refresh_gets = gets(&valkey) - gets_before;

    // Two taken away as Kubernetes does: SIGTERM now, out of the balancer
    // 2 s later.
    at(Duration::from_secs(6));
    let signalled = Instant::now();
    for e in &instances[..2] {
        e.signal("TERM");
    }
    // Whether (and when) each leaves before the balancer takes it out.
    let mut left = [None, None];
    while Instant::now() < t0 + Duration::from_secs(8) {
        for (i, e) in instances[..2].iter_mut().enumerate() {
            if left[i].is_none() && e.has_exited().is_some() {
                left[i] = Some(signalled.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    balancer.remove(0);
    balancer.remove(1);
    let removed_sessions: Vec<u64> = balancer.stats()[..2].iter().map(|s| s.sessions).collect();

    let sent: Vec<Sent> = senders.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let exits: Vec<_> = instances[..2]
        .iter_mut()
        .map(|e| {
            e.terminate(Duration::from_secs(20))
                .map(|s| (s, signalled.elapsed()))
        })
        .collect();
    let stats = balancer.stats();

    // What the load got.
    let old_stamp = first
        .quotes
        .iter()
        .map(|q| q.time_stamp)
        .min()
        .unwrap()
        .to_string();
    let (mut failed, mut stale, mut late_old, mut new) = (Vec::new(), 0, 0, 0);
    for s in &sent {
        match &s.answer {
            Ok((200, stamp)) => {
                let t = Timestamp::parse(stamp).expect("a rate's timestamp");
                if shared::freshness::age(t, Timestamp::now()) > Duration::from_secs(300) {
                    stale += 1;
                }
                if *stamp == old_stamp && s.at > published + Duration::from_millis(100) {
                    late_old += 1;
                }
                new += usize::from(*stamp != old_stamp);
            }
            other => failed.push(format!("{:?}: {other:?}", s.at - t0)),
        }
    }
    let (retries, redispatches): (u64, u64) = (
        stats.iter().map(|s| s.retries).sum(),
        stats.iter().map(|s| s.redispatches).sum(),
    );
    eprintln!(
        "scale ({}): {} requests, {} failed, {stale} stale, {late_old} of the old snapshot after \
         publish + 100 ms, {new} of the new; Valkey GETs: {refresh_gets} for the refresh to 4 instances, \
         {} in a quiet {:?}; the balancer retried {retries} and redispatched {redispatches}; \
         after SIGTERM the two left after {left:?} (None: still serving when taken out at +2 s), exits {:?}",
        host.name(),
        sent.len(),
        failed.len(),
        quiet.1,
        quiet.0,
        exits
            .iter()
            .map(|e| e.as_ref().map(|(s, t)| (s.code(), *t)))
            .collect::<Vec<_>>(),
    );
    assert!(sent.len() as u64 >= (RATE as u64 * LOAD_FOR.as_secs()) * 95 / 100);
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(10)]
    );
    assert_eq!(stale, 0, "stale answers");
    assert_eq!(late_old, 0, "the previous snapshot served after publish + 100 ms");
    assert!(
        new > 100 && sent.len() - new > 100,
        "both snapshots were served: {new} new"
    );
    // Reads follow instances: one GET each per refresh, none per request.
    assert!(
        (1..=4).contains(&refresh_gets),
        "{refresh_gets} GETs for one refresh"
    );
    assert_eq!(
        quiet.1, 0,
        "no Valkey read for the requests of a quiet {:?}",
        quiet.0
    );
    // The added instances took traffic, the removed ones none after removal.
    assert!(stats[2].sessions > 0 && stats[3].sessions > 0, "{stats:?}");
    assert_eq!(
        stats[..2].iter().map(|s| s.sessions).collect::<Vec<_>>(),
        removed_sessions,
        "nothing sent to a removed instance"
    );
    if !host.is_spin() {
        assert_eq!(
            retries + redispatches,
            0,
            "no request needed the balancer's retry: {stats:?}"
        );
        assert_eq!(
            left,
            [None, None],
            "still serving when the balancer took them out"
        );
        for e in &exits {
            let (status, took) = e.as_ref().expect("a terminated instance exits");
            assert!(status.success(), "{status:?}");
            assert!(
                *took >= Duration::from_secs(5),
                "served its shutdown delay: {took:?}"
            );
        }
    }
}

e2e::on_both_hosts!(a_scale_event_under_load_loses_nothing);
