//! Valkey restarting, or stalling without closing anything, while the edge
//! runs: no update is lost for long, and a stalled Valkey holds back at most
//! one read per instance group while everyone else is answered from the
//! cache.

use e2e::{Edge, Host, OneFrame, Valkey, eventually, refresh, stored_snapshot};
use std::time::{Duration, Instant};

/// Refreshes until Valkey's `rates:seq` has reached `seq`.
fn refresh_to_seq(valkey: &Valkey, one_frame: &OneFrame, seq: u64) {
    while stored_snapshot(valkey).map(|s| s.seq).unwrap_or(0) < seq {
        assert_eq!(refresh(valkey, one_frame, &[]).code, Some(0));
    }
}

/// Waits until runtime-shim's trigger has subscribed `times` times.
fn wait_subscriptions(edge: &Edge, times: usize) {
    eventually(Duration::from_secs(15), || {
        (edge.log().matches("redis trigger subscribed").count() >= times).then_some(())
    })
    .unwrap_or_else(|| panic!("not subscribed {times} times:\n{}", edge.log()));
}

#[test]
fn the_first_snapshot_after_a_valkey_restart_reaches_every_instance_within_a_second() {
    let mut valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    refresh_to_seq(&valkey, &one_frame, 3);
    let edges: Vec<Edge> = (0..3).map(|_| Edge::start_app(&valkey)).collect();
    for e in &edges {
        e.wait_subscribed();
        assert_eq!(e.seq_served(), Some(3));
    }
    // Valkey comes back empty on the same port: rates:seq starts again at 1,
    // and every pooled outbound connection died with the old server.
    valkey.restart();
    for e in &edges {
        wait_subscriptions(e, 2);
    }
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let published = Instant::now();
    assert_eq!(stored_snapshot(&valkey).unwrap().seq, 1);
    for (i, e) in edges.iter().enumerate() {
        eventually(Duration::from_secs(1), || {
            (e.seq_served() == Some(1)).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "instance {i} missed the first snapshot after the restart:\n{}",
                e.log()
            )
        });
    }
    println!(
        "after a Valkey restart, 3 instances served the first new snapshot within {:?} of its publish",
        published.elapsed()
    );
}

#[test]
fn a_snapshot_published_while_the_trigger_reconnects_is_served_within_seconds() {
    let mut valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    refresh_to_seq(&valkey, &one_frame, 2);
    let edge = Edge::start_app(&valkey);
    edge.wait_subscribed();
    assert_eq!(edge.seq_served(), Some(2));
    // The publish must land while the trigger is away; should the trigger
    // win the race and resubscribe first, Valkey goes away again.
    let mut published = None;
    for round in 1..=3 {
        let lost = edge.log().matches("redis trigger lost its connection").count();
        valkey.stop();
        eventually(Duration::from_secs(5), || {
            (edge.log().matches("redis trigger lost its connection").count() > lost).then_some(())
        })
        .unwrap_or_else(|| panic!("the trigger never noticed:\n{}", edge.log()));
        // Let the reconnect backoff grow past the time a refresh takes.
        std::thread::sleep(Duration::from_millis(1500));
        valkey.start_again();
        assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
        let at = Instant::now();
        let subscribers: i64 = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("rates_updated")
            .query::<(String, i64)>(&mut valkey.conn())
            .unwrap()
            .1;
        if subscribers == 0 {
            published = Some(at);
            break;
        }
        println!("round {round}: the trigger resubscribed before the publish; again");
        wait_subscriptions(&edge, round + 1);
    }
    let published = published.expect("a publish while the trigger was away, within 3 rounds");
    // Every refresh stamps its quotes anew: the served rate tells which.
    let stamp = stored_snapshot(&valkey).unwrap().quotes[0]
        .time_stamp
        .to_rfc3339();
    let pair = format!(
        "/rates?from=USD&to={}",
        stored_snapshot(&valkey).unwrap().quotes[0].pair.to.code()
    );
    eventually(Duration::from_secs(7), || {
        let r = edge.get(&pair);
        (r.status == 200 && r.json()["timestamp"] == stamp.as_str()).then_some(())
    })
    .unwrap_or_else(|| panic!("the snapshot published meanwhile was not served:\n{}", edge.log()));
    let took = published.elapsed();
    println!("a snapshot published while the trigger reconnected was served {took:?} later");
    assert!(took < Duration::from_secs(6), "{took:?}");
}

/// An answer slower than this waited on Valkey (one from the cache takes a
/// millisecond or two; the held read at least 4 s).
const SLOW: Duration = Duration::from_secs(2);

/// Requests on their own threads while Valkey is paused: how long each took
/// and its status (0: no answer within the client's timeout).
fn burst(edge: &Edge, count: usize, every: Duration) -> Vec<(Duration, u16)> {
    std::thread::scope(|scope| {
        let requests: Vec<_> = (0..count)
            .map(|i| {
                let addr = edge.addr();
                let handle = scope.spawn(move || {
                    let sent = Instant::now();
                    let status = e2e::http::request(addr, "GET", "/rates?from=USD&to=JPY", &[], b"")
                        .map(|r| r.status)
                        .unwrap_or(0);
                    (sent.elapsed(), status)
                });
                if i + 1 < count {
                    std::thread::sleep(every);
                }
                handle
            })
            .collect();
        requests.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Every request finds the cache due (`revalidate_age=0`) while Valkey is
/// paused: one read is held up (runtime-shim gives up after its timeouts;
/// Spin has none, so it hangs until Valkey answers), the others are served
/// from the cache at once.
fn a_paused_valkey_holds_back_one_read_and_the_cache_answers_the_rest(host: &Host) {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    refresh_to_seq(&valkey, &one_frame, 1);
    let edge = Edge::app_on_with(host, &valkey, &valkey.url(), &["--variable", "revalidate_age=0"]);
    edge.wait_subscribed();
    assert_eq!(edge.seq_served(), Some(1));
    valkey.pause();
    // Within the 5 s one read may hold the others back.
    let answers = burst(&edge, 30, Duration::from_millis(100));
    valkey.resume();
    let slow: Vec<_> = answers
        .iter()
        .filter(|(took, status)| *status != 200 || *took > SLOW)
        .collect();
    let mut prompt: Vec<Duration> = answers
        .iter()
        .filter(|(took, status)| *status == 200 && *took <= SLOW)
        .map(|(took, _)| *took)
        .collect();
    prompt.sort();
    println!(
        "{}: Valkey paused, 30 due requests over 3 s: {} answered from the cache (median {:?}, max {:?}), held back: {slow:?}",
        host.name(),
        prompt.len(),
        prompt.get(prompt.len() / 2),
        prompt.last()
    );
    assert!(
        slow.len() <= 1,
        "more than one request waited on Valkey: {slow:?}"
    );
    // Once Valkey answers again the edge reads it as before.
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    eventually(Duration::from_secs(15), || {
        (edge.seq_served() == Some(2)).then_some(())
    })
    .unwrap_or_else(|| panic!("serving again after the pause:\n{}", edge.log()));
}

e2e::on_both_hosts!(a_paused_valkey_holds_back_one_read_and_the_cache_answers_the_rest);
