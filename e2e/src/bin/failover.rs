//! `failover` (`make failover`): Valkey's primary killed under load and with
//! a refresh in flight, on runtime-shim and on a real Spin when one is found
//! (`SPIN`, else `spin` on `PATH`), as `e2e::failover` runs it; three rounds
//! per host. Prints, per round and host: how long Sentinel took to promote a
//! replica, the failover time (the kill to every instance serving the
//! refresh written after it), and the requests that failed meanwhile.

use e2e::Host;
use e2e::failover::kill_the_primary_under_load;
use std::time::Duration;

const ROUNDS: usize = 3;

fn main() {
    let mut hosts = vec![Host::Shim];
    match Host::spin() {
        Some(spin) => hosts.push(spin),
        None => eprintln!("!!! failover: no real Spin found (SPIN or spin on PATH): runtime-shim only"),
    }
    println!(
        "| host | round | promoted after | every instance serves the new snapshot after | requests failed | restarts | missed the PUBLISH | stale |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut summary = Vec::new();
    for host in &hosts {
        let mut failovers = Vec::new();
        let (mut failed, mut requests) = (0, 0);
        for round in 1..=ROUNDS {
            let f = kill_the_primary_under_load(host).expect("haproxy on PATH (the read Service)");
            assert_eq!(
                f.refresh.code,
                Some(0),
                "the refresh in flight failed:\n{}",
                f.refresh.log
            );
            println!(
                "| {} | {round} | {:.2} s | {:.2} s | {} of {} | {} | {} | {} |",
                f.host,
                f.promotion.as_secs_f64(),
                f.failover.as_secs_f64(),
                f.failed,
                f.requests,
                f.restarts,
                f.missed_publish,
                f.stale
            );
            failovers.push(f.failover);
            failed += f.failed;
            requests += f.requests;
        }
        failovers.sort();
        let median: Duration = failovers[ROUNDS / 2];
        summary.push(format!(
            "{}_failover_s={:.2} {}_failed={failed}/{requests}",
            host.name().replace('-', "_"),
            median.as_secs_f64(),
            host.name().replace('-', "_")
        ));
    }
    println!();
    println!("failover {}", summary.join(" "));
}
