//! Valkey without a single point of failure, over real processes: three
//! servers and three Sentinels on loopback with TLS on every link
//! (e2e::sentinel), the One-Frame emulator, the refresher asking the
//! Sentinels for the primary, and edge instances reading through the read
//! Service.

use e2e::failover::{kill_the_primary_under_load, refresh_via_sentinels};
use e2e::sentinel::Cluster;
use e2e::{Host, OneFrame};
use std::time::Duration;

#[test]
fn the_refresher_writes_to_whichever_node_the_sentinels_name() {
    let mut cluster = Cluster::start();
    let one_frame = OneFrame::start(&[]);
    let run = refresh_via_sentinels(&cluster, &one_frame, &[]);
    assert_eq!(run.code, Some(0), "{}", run.log);
    e2e::eventually(Duration::from_secs(5), || cluster.get(1, "rates")).expect("replicated");
    cluster.kill(0);
    let primary = cluster.wait_for_failover(0, Duration::from_secs(30));
    let run = refresh_via_sentinels(&cluster, &one_frame, &[]);
    assert_eq!(run.code, Some(0), "{}", run.log);
    let seq = shared::Snapshot::decode(&cluster.get(primary, "rates").unwrap())
        .unwrap()
        .seq;
    assert_eq!(seq, 2, "the second run wrote to the new primary");
}

/// The primary killed (SIGKILL) under load and with a refresh in flight:
/// Sentinel promotes a replica, the refresher's run in flight writes to it,
/// every instance serves that snapshot, and the day's call count did not go
/// backwards. runtime-shim fails no request on the way; Spin's instances
/// that were subscribed on the lost node end and are started again, and
/// what that costs is reported. No answer is stale on either host.
fn killing_the_primary_under_load_loses_nothing(host: &Host) {
    let Some(f) = kill_the_primary_under_load(host) else {
        return;
    };
    eprintln!(
        "failover ({}): promoted in {:?}, every instance serving seq {} after {:?}; {} of {} requests failed, \
         {} stale, {} restart(s), {} serving the previous snapshot after missing the PUBLISH; calls {} before, {} after",
        f.host,
        f.promotion,
        f.stored_seq,
        f.failover,
        f.failed,
        f.requests,
        f.stale,
        f.restarts,
        f.missed_publish,
        f.calls_before,
        f.calls_after
    );
    assert_eq!(
        f.refresh.code,
        Some(0),
        "the refresh in flight stored its snapshot:\n{}",
        f.refresh.log
    );
    assert!(
        f.refresh.log.contains(&format!("seq={}", f.stored_seq)),
        "{}",
        f.refresh.log
    );
    assert!(
        f.calls_after >= f.calls_before,
        "the call count went back: {} -> {}",
        f.calls_before,
        f.calls_after
    );
    assert_eq!(f.stale, 0, "stale answers");
    assert!(f.requests > 200, "the load ran: {}", f.requests);
    if !host.is_spin() {
        assert_eq!(
            (f.failed, f.restarts, f.missed_publish),
            (0, 0, 0),
            "runtime-shim fails no request, never restarts and misses no PUBLISH"
        );
    }
}

e2e::on_both_hosts!(killing_the_primary_under_load_loses_nothing);

/// A subscriber on a replica never hears of a snapshot before that replica
/// holds it: the refresher's write and its PUBLISH reach the replica in the
/// order the primary ran them (one script, replicated as one), and a
/// subscriber there reads its own node. 200 writes through the refresher's
/// own code, each checked on the replica as its message arrives.
#[test]
fn a_replica_never_announces_a_snapshot_it_does_not_hold() {
    let cluster = Cluster::start();
    let store = refresher::store::SnapshotStore::new("rates".into(), "rates_updated".into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut primary = runtime
        .block_on(
            cluster
                .client(&cluster.server_url(0))
                .get_multiplexed_async_connection(),
        )
        .unwrap();
    let mut subscriber = cluster.conn(1).expect("a replica");
    let mut reader = cluster.conn(1).expect("a replica");
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe("rates_updated").unwrap();
    pubsub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let rounds = 200;
    for seq in 1..=rounds {
        let now = shared::Timestamp::now();
        let snapshot = e2e::snapshot_stamped(seq, now, now);
        let written = runtime
            .block_on(store.write_if_newer(&mut primary, &snapshot))
            .unwrap();
        assert_eq!(written, refresher::store::WriteOutcome::Written);
        let message = pubsub.get_message().expect("the replica relays the PUBLISH");
        let announced: u64 = message.get_payload::<String>().unwrap().parse().unwrap();
        assert_eq!(announced, seq);
        let held: Vec<u8> = redis::cmd("GET").arg("rates").query(&mut reader).unwrap();
        let held = shared::Snapshot::decode(&held).unwrap();
        assert!(
            held.seq >= announced,
            "round {seq}: seq {announced} announced, the replica holds {}",
            held.seq
        );
    }
}

/// The node an instance's Redis trigger is subscribed on is lost: the
/// instance keeps answering from its cache, its trigger subscribes again
/// through the read Service on another node, and the next refresh reaches
/// it. (runtime-shim; Spin ends instead, which the failover test shows.)
#[test]
fn an_instance_whose_node_is_lost_serves_on_and_resubscribes_elsewhere() {
    let mut cluster = Cluster::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh_via_sentinels(&cluster, &one_frame, &[]).code, Some(0));
    // The read Service over the replicas: the node lost is a replica.
    let Some(read) = e2e::sentinel::ReadService::start(&cluster, &[1, 2]) else {
        return;
    };
    let edge = e2e::failover::start_instance(&Host::Shim, &cluster, &read);
    edge.wait_subscribed();
    // Which replica holds the subscription?
    let subscribed_on = [1, 2]
        .into_iter()
        .find(|&i| {
            let (_, n): (String, u64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg("rates_updated")
                .query(&mut cluster.conn(i).unwrap())
                .unwrap();
            n > 0
        })
        .expect("the trigger is subscribed on a replica");
    // The replica it reads from may lag the one that acknowledged the write.
    let seq = e2e::eventually(Duration::from_secs(5), || edge.seq_served()).expect("a snapshot");
    cluster.kill(subscribed_on);
    let resubscribed = e2e::eventually(Duration::from_secs(15), || {
        assert_eq!(
            edge.get("/rates?from=USD&to=JPY").status,
            200,
            "served from the cache"
        );
        std::thread::sleep(Duration::from_millis(50));
        (edge.log().matches(log_format::milestones::SUBSCRIBED).count() == 2).then_some(())
    });
    assert!(resubscribed.is_some(), "{}", edge.log());
    let run = refresh_via_sentinels(&cluster, &one_frame, &[]);
    assert_eq!(run.code, Some(0), "{}", run.log);
    e2e::eventually(Duration::from_secs(5), || {
        (edge.seq_served()? > seq).then_some(())
    })
    .expect("the next refresh reaches it through the other replica");
}

/// The primary is cut off (SIGSTOP) while a refresh is in flight, until a
/// replica is promoted, then comes back (SIGCONT) still believing it is the
/// primary and runs what it was sent meanwhile. Nothing written to it is
/// believed: the run, which asks the Sentinels again after each failure,
/// reports the snapshot it stored on the new primary, and once Sentinel has
/// turned the old primary into a replica every node holds that snapshot.
#[test]
fn a_partitioned_primary_is_never_believed() {
    let cluster = Cluster::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh_via_sentinels(&cluster, &one_frame, &[]).code, Some(0));
    one_frame.fault(r#"{"mode":"none","latency_ms":1500,"times":1}"#);
    let in_flight = e2e::failover::refresh_in_background(&cluster, &one_frame);
    e2e::eventually(Duration::from_secs(5), || {
        (e2e::failover::calls_today(&cluster, 0) >= 2).then_some(())
    })
    .expect("the run in flight took its call");
    let calls_before = e2e::failover::calls_today(&cluster, 0);
    cluster.pause(0);
    let new = cluster.wait_for_failover(0, Duration::from_secs(30));
    cluster.resume(0);
    let run = in_flight.join().unwrap();
    assert_eq!(run.code, Some(0), "{}", run.log);
    let stored = shared::Snapshot::decode(&cluster.get(new, "rates").unwrap())
        .unwrap()
        .seq;
    assert!(
        run.log.contains(&format!("stored snapshot seq={stored} ")),
        "the run believed a write the new primary does not hold (it holds seq {stored}):\n{}",
        run.log
    );
    assert!(
        e2e::failover::calls_today(&cluster, new) >= calls_before,
        "the call count went back"
    );
    e2e::eventually(Duration::from_secs(30), || {
        (cluster.role(0).as_deref() == Some("slave")
            && cluster
                .get(0, "rates")
                .and_then(|b| shared::Snapshot::decode(&b).ok())
                .map(|s| s.seq)
                == Some(stored))
        .then_some(())
    })
    .unwrap_or_else(|| panic!("the old primary did not follow the new one:\n{}", cluster.logs()));
}

/// `refresher status` and the exporter say where the data is: the primary
/// the Sentinels name, its replicas in sync and their lag; after a
/// failover, the new primary.
#[test]
fn status_and_the_exporter_show_the_topology() {
    let mut cluster = Cluster::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh_via_sentinels(&cluster, &one_frame, &[]).code, Some(0));
    let sentinels = cluster.sentinels_url();
    let with_sentinels = ["--valkey-sentinels", sentinels.as_str()];
    let status = |cluster: &Cluster| {
        let args: Vec<String> = [
            "--valkey-url",
            &cluster.server_url(0),
            "--valkey-sentinels",
            &sentinels,
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let env = cluster.client_env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let run = e2e::refresher_command("status", &args, &env, Duration::from_secs(30));
        let json: serde_json::Value = serde_json::from_str(run.log.lines().last().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{e}: {}", run.log));
        json["valkey"].clone()
    };
    let v = status(&cluster);
    let primary = format!("127.0.0.1:{}", cluster.server_port(0));
    assert_eq!(
        (
            v["node"].as_str(),
            v["via_sentinel"].as_bool(),
            v["role"].as_str(),
            v["replicas"].as_u64()
        ),
        (Some(primary.as_str()), Some(true), Some("master"), Some(2)),
        "{v}"
    );
    let exporter =
        e2e::Exporter::start_with_env(&cluster.server_url(0), &with_sentinels, &cluster.client_env());
    let scraped = || exporter.scrape().1;
    let text = scraped();
    assert_eq!(e2e::value_of(&text, "forex_valkey_replicas"), Some(2.0), "{text}");
    assert_eq!(
        e2e::value_of(&text, &format!(r#"forex_valkey_primary{{address="{primary}"}}"#)),
        Some(1.0),
        "{text}"
    );
    assert!(
        e2e::value_of(&text, "forex_valkey_replication_lag_seconds").is_some(),
        "{text}"
    );

    cluster.kill(0);
    let new = cluster.wait_for_failover(0, Duration::from_secs(30));
    let moved = format!("127.0.0.1:{}", cluster.server_port(new));
    // One replica is left, once Sentinel has pointed it at the new primary.
    let v = e2e::eventually(Duration::from_secs(20), || {
        Some(status(&cluster)).filter(|v| v["replicas"].as_u64() == Some(1))
    })
    .expect("status follows the failover");
    assert_eq!(v["node"].as_str(), Some(moved.as_str()), "{v}");
    let text = e2e::eventually(Duration::from_secs(20), || {
        Some(scraped()).filter(|t| {
            e2e::value_of(t, &format!(r#"forex_valkey_primary{{address="{moved}"}}"#)) == Some(1.0)
        })
    })
    .expect("the exporter follows the failover");
    assert_eq!(e2e::value_of(&text, "forex_valkey_up"), Some(1.0), "{text}");
}
