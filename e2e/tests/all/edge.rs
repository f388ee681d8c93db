//! The product end to end: Valkey, the One-Frame emulator, the refresher and
//! the real `spin.toml` and Wasm components, served by runtime-shim and, when
//! one is found, by a real Spin (`spin up`, as in production); every test
//! twice more with Valkey serving TLS only.

use e2e::http;
use e2e::{Edge, Host, OneFrame, Valkey, assert_rate, eventually, refresh, stored_snapshot};
use shared::{Currency, Snapshot, Timestamp};
use std::time::{Duration, Instant};

/// A snapshot taken now whose quotes are all `age` old.
fn aged_snapshot(seq: u64, age: Duration) -> Snapshot {
    let now = Timestamp::now();
    e2e::snapshot_stamped(seq, now, now.minus(age))
}

fn serves_direct_inverse_cross_and_same_currency_rates(host: &Host) {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let snapshot = stored_snapshot(&valkey).unwrap();
    let edge = Edge::app_on(host, &valkey);

    for p in ["USDJPY", "JPYUSD", "EURJPY", "GBPCHF", "USDUSD", "JPYJPY"] {
        let r = edge.get(&format!("/rates?from={}&to={}", &p[..3], &p[3..]));
        assert_eq!(r.status, 200, "{p}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_rate(&r.json(), &snapshot, p);
    }
    // Case-insensitive in, upper-case out.
    assert_rate(&edge.get("/rates?from=eur&to=Jpy").json(), &snapshot, "EURJPY");
    // The cross is USD→JPY / USD→EUR of the stored snapshot.
    let jpy = snapshot.usd_leg(Currency::parse("JPY").unwrap()).unwrap().price;
    let eur = snapshot.usd_leg(Currency::parse("EUR").unwrap()).unwrap().price;
    assert_eq!(
        edge.get("/rates?from=EUR&to=JPY").json()["price"].as_f64(),
        Some(jpy / eur)
    );
}

fn batch_head_methods_routes_and_every_client_error(host: &Host) {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let snapshot = stored_snapshot(&valkey).unwrap();
    let edge = Edge::app_on(host, &valkey);

    let batch = edge.get("/rates?pair=USDJPY&pair=EURGBP&pair=CADCAD");
    assert_eq!(batch.status, 200, "{}", batch.text());
    let items = batch.json();
    let items = items.as_array().expect("a JSON array");
    assert_eq!(items.len(), 3);
    for (v, p) in items.iter().zip(["USDJPY", "EURGBP", "CADCAD"]) {
        assert_rate(v, &snapshot, p);
    }
    assert_eq!(
        edge.get("/rates?pair=USDJPY&pair=EURQQQ").error_code(),
        "unknown_currency"
    );

    let get = edge.get("/rates?from=USD&to=JPY");
    let head = http::request(edge.addr(), "HEAD", "/rates?from=USD&to=JPY", &[], b"").unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-type"), get.header("content-type"));
    assert!(
        head.header("cache-control")
            .is_some_and(|c| c.starts_with("max-age="))
    );
    let head_404 = http::request(edge.addr(), "HEAD", "/nowhere", &[], b"").unwrap();
    assert_eq!(head_404.status, 404);

    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for path in ["/rates?from=USD&to=JPY", "/healthz", "/openapi.json"] {
            let r = http::request(edge.addr(), method, path, &[], b"").unwrap();
            assert_eq!(r.status, 405, "{method} {path}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"));
            assert_eq!(r.error_code(), "method_not_allowed");
        }
    }

    let r = edge.get("/rate?from=USD&to=JPY");
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    assert_eq!(edge.get("/healthz").status, 200);
    // The contract, as the edge serves it.
    let doc = edge.get("/openapi.json");
    assert_eq!(doc.status, 200);
    assert_eq!(doc.header("content-type"), Some("application/json"));
    assert_eq!(doc.text(), shared::contract::OPENAPI_JSON);

    for q in [
        "",
        "?from=USD",
        "?to=JPY",
        "?from=&to=JPY",
        "?from=USD&from=EUR&to=JPY",
        "?from=USD&to=JPY&pair=USDJPY",
        "?pair=USDJP",
        "?pair=",
        "?from=USD&to=JPY&foo=bar",
        "?from=U%ZZ&to=JPY",
    ] {
        let r = edge.get(&format!("/rates{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_request", "{q}");
        assert!(!r.json()["error"]["message"].as_str().unwrap().is_empty());
    }
    for q in [
        "?from=USD&to=QQQ",
        "?from=XYZ&to=JPY",
        "?from=US&to=JPY",
        "?pair=QQQJPY",
    ] {
        let r = edge.get(&format!("/rates{q}"));
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "unknown_currency"),
            "{q}"
        );
    }
    // Valid codes the snapshot has no data for.
    let r = edge.get("/rates?from=USD&to=XAU");
    assert_eq!((r.status, r.error_code().as_str()), (404, "pair_not_found"));
}

fn unavailable_before_the_first_refresh_then_new_snapshots_propagate(host: &Host) {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    let edge = Edge::app_on(host, &valkey);
    let r = edge.get("/rates?from=USD&to=JPY");
    assert_eq!((r.status, r.error_code().as_str()), (503, "rates_unavailable"));
    assert!(r.header("retry-after").is_some());
    assert_eq!(edge.get("/readyz").status, 503);
    // Client mistakes stay 400 even with no data.
    assert_eq!(edge.get("/rates?from=USD").status, 400);

    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let first = stored_snapshot(&valkey).unwrap().seq;
    eventually(Duration::from_secs(5), || {
        (edge.seq_served() == Some(first)).then_some(())
    })
    .expect("first seq served");

    let run = refresh(&valkey, &one_frame, &[]);
    assert_eq!(run.code, Some(0));
    let exited = Instant::now();
    let second = stored_snapshot(&valkey).unwrap();
    assert!(second.seq > first);
    eventually(Duration::from_secs(1), || {
        (edge.seq_served() == Some(second.seq)).then_some(())
    })
    .expect("the new seq is served within a second, without a restart");
    println!(
        "propagation: seq {} served {:?} after the refresher exited",
        second.seq,
        exited.elapsed()
    );
    assert_rate(&edge.get("/rates?from=USD&to=JPY").json(), &second, "USDJPY");
}

fn concurrent_first_requests_to_a_new_instance_are_all_answered(host: &Host) {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    // The snapshot predates each edge: its cache is empty until a request
    // reads Valkey, and every request racing that first read is answered.
    for round in 0..3 {
        let edge = Edge::app_on(host, &valkey);
        let statuses: Vec<(u16, String)> = std::thread::scope(|scope| {
            let requests: Vec<_> = (0..16)
                .map(|_| {
                    scope.spawn(|| {
                        let r = edge.get("/rates?from=EUR&to=JPY");
                        (r.status, r.text())
                    })
                })
                .collect();
            requests.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (status, body) in &statuses {
            assert_eq!(*status, 200, "round {round}: {body}");
        }
    }
}

fn a_malformed_age_variable_fails_loudly_not_on_a_default(host: &Host) {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let edge = Edge::app_on_with(host, &valkey, &valkey.url(), &["--variable", "max_rate_age=5m"]);
    for target in ["/rates?from=USD&to=JPY", "/readyz"] {
        let r = edge.get(target);
        assert_eq!(r.status, 500, "{target}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    edge.assert_logged("variable max_rate_age must be a whole number of seconds");
}

fn one_publish_reaches_three_instances_and_a_late_one_reads_through(host: &Host) {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let edges: Vec<Edge> = (0..3).map(|_| Edge::app_on(host, &valkey)).collect();
    for s in &edges {
        eventually(Duration::from_secs(5), || s.seq_served()).expect("serving");
        s.wait_subscribed();
    }
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let published = Instant::now();
    let seq = stored_snapshot(&valkey).unwrap().seq;
    for (i, s) in edges.iter().enumerate() {
        eventually(Duration::from_secs(2), || {
            (s.seq_served() == Some(seq)).then_some(())
        })
        .unwrap_or_else(|| panic!("edge {i} did not serve seq {seq}:\n{}", s.log()));
    }
    println!(
        "propagation: all 3 edges served seq {seq} within {:?}",
        published.elapsed()
    );
    for s in &edges {
        s.assert_logged(&format!("cached snapshot seq {seq}"));
    }

    // Started after the publish: nothing to receive, it reads Valkey on its first miss.
    let late = Edge::app_on(host, &valkey);
    assert_eq!(late.seq_served(), Some(seq));
    late.assert_logged("refilled from Valkey");
}

fn a_snapshot_older_than_five_minutes_is_never_served(host: &Host) {
    let valkey = Valkey::start();
    valkey.set("rates", &aged_snapshot(7, Duration::from_secs(301)).encode());
    let edge = Edge::app_on(host, &valkey);
    let r = edge.get("/rates?from=USD&to=JPY");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (503, "rates_stale"),
        "{}",
        r.text()
    );
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(edge.get("/readyz").status, 503);
    assert_eq!(
        edge.get("/rates?pair=EURGBP&pair=USDJPY").error_code(),
        "rates_stale"
    );

    // 100 s old: served, and caches may keep it only for the time left.
    let fresh = aged_snapshot(8, Duration::from_secs(100));
    valkey.set("rates", &fresh.encode());
    valkey.publish("rates_updated", "8");
    let r = eventually(Duration::from_secs(5), || {
        Some(edge.get("/rates?from=EUR&to=JPY")).filter(|r| r.status == 200)
    })
    .expect("the fresh snapshot is served");
    let max_age: u64 = r
        .header("cache-control")
        .unwrap()
        .trim_start_matches("max-age=")
        .parse()
        .unwrap();
    assert!((195..=200).contains(&max_age), "max-age={max_age}");
    assert_rate(&r.json(), &fresh, "EURJPY");
}

fn survives_valkey_going_away_and_recovers_without_restarts(host: &Host) {
    let mut valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    // Quotes 296 s old: fresh for four more seconds.
    valkey.set("rates", &aged_snapshot(1, Duration::from_secs(296)).encode());
    let mut edge = Edge::app_on(host, &valkey);
    assert_eq!(edge.get("/rates?from=USD&to=JPY").status, 200);
    edge.wait_subscribed();
    valkey.stop();
    if host.is_spin() {
        // Spin's Redis trigger ends the whole app when its connection drops;
        // under SpinKube the pod restarts. With Valkey back, a restarted
        // `spin up` serves again.
        let status = eventually(Duration::from_secs(10), || edge.has_exited())
            .unwrap_or_else(|| panic!("spin up kept running without Valkey:\n{}", edge.log()));
        assert!(!status.success(), "{status}");
        edge.assert_logged(&format!("disconnected from {}", valkey.host()));
        edge.assert_logged("A trigger exited unexpectedly");
        valkey.start_again();
        assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
        let seq = stored_snapshot(&valkey).unwrap().seq;
        let edge = edge
            .restart()
            .unwrap_or_else(|log| panic!("spin up again:\n{log}"));
        assert_eq!(edge.seq_served(), Some(seq), "{}", edge.log());
        return;
    }

    // Cached rates keep being served while fresh...
    let r = edge.get("/rates?from=USD&to=JPY");
    assert_eq!(r.status, 200, "{}", r.text());
    // ...and, though every request finds them due for a refill (Valkey's
    // snapshot was no fresher), the failing Valkey is read at most once per 2 s.
    let burst = Instant::now();
    for _ in 0..50 {
        assert_eq!(edge.get("/rates?from=USD&to=JPY").status, 200);
    }
    let secs = burst.elapsed().as_secs_f64();
    let reads = edge.log().matches("could not refill the cache").count();
    assert!(
        reads <= 2 + (secs / 2.0) as usize,
        "{reads} Valkey reads in {secs:.2} s while it was down"
    );
    // ...then the edge says they are stale, never older rates, never a non-JSON 5xx.
    let stale = eventually(Duration::from_secs(10), || {
        let r = edge.get("/rates?from=USD&to=JPY");
        assert!(
            r.status == 200 || r.error_code() == "rates_stale",
            "{} {}",
            r.status,
            r.text()
        );
        (r.status == 503).then_some(r)
    })
    .expect("turns stale");
    assert!(stale.header("retry-after").is_some());

    valkey.restart();
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let seq = stored_snapshot(&valkey).unwrap().seq;
    eventually(Duration::from_secs(15), || {
        (edge.seq_served() == Some(seq)).then_some(())
    })
    .unwrap_or_else(|| panic!("fresh again without a restart:\n{}", edge.log()));
    assert_eq!(edge.get("/rates?from=USD&to=JPY").status, 200);
}

fn invalid_data_in_valkey_never_replaces_the_cache(host: &Host) {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let good = stored_snapshot(&valkey).unwrap();
    let edge = Edge::app_on(host, &valkey);
    assert_eq!(edge.seq_served(), Some(good.seq));
    edge.wait_subscribed();
    for bad in [&b"not json"[..], br#"{"schema":2,"seq":99}"#] {
        valkey.set("rates", bad);
        valkey.publish("rates_updated", "99");
    }
    edge.wait_logged("invalid", Duration::from_secs(5));
    assert_eq!(edge.seq_served(), Some(good.seq));
    assert_rate(&edge.get("/rates?from=USD&to=JPY").json(), &good, "USDJPY");
}

/// `ETag` and `If-None-Match` through the cache, a refresh and a stale
/// snapshot (docs/api.md, "Conditional GET").
fn conditional_get_through_the_cache_a_refresh_and_a_stale_snapshot(host: &Host) {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let edge = Edge::app_on(host, &valkey);
    let conditional = |method: &str, target: &str, tag: &str| {
        http::request(edge.addr(), method, target, &[("if-none-match", tag)], b"").unwrap()
    };
    let single = "/rates?from=USD&to=JPY";
    let first = edge.get(single);
    assert_eq!(first.status, 200, "{}", first.text());
    let tag = first
        .header("etag")
        .expect("a 200 of /rates has an ETag")
        .to_string();
    assert!(tag.starts_with('"') && tag.ends_with('"'), "a strong tag: {tag}");

    // The same rates give the same tag: again, by HEAD, and on another instance.
    assert_eq!(edge.get(single).header("etag"), Some(tag.as_str()));
    let head = http::request(edge.addr(), "HEAD", single, &[], b"").unwrap();
    assert_eq!((head.status, head.header("etag")), (200, Some(tag.as_str())));
    let other = Edge::app_on(host, &valkey);
    assert_eq!(other.get(single).header("etag"), Some(tag.as_str()));
    drop(other);

    // Revalidated: a 304 without a body, the same tag, max-age from now.
    let weak = format!("W/{tag}");
    let listed = format!("\"r1-0000000000000000\", {weak}");
    for (method, value) in [
        ("GET", tag.as_str()),
        ("HEAD", tag.as_str()),
        ("GET", "*"),
        ("GET", listed.as_str()),
    ] {
        let r = conditional(method, single, value);
        assert_eq!(r.status, 304, "{method} with If-None-Match {value}: {}", r.text());
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(tag.as_str()));
        assert!(
            r.header("cache-control")
                .is_some_and(|c| c.starts_with("max-age="))
        );
        assert_eq!(r.header("content-length"), None);
    }
    for value in ["\"r1-0000000000000000\"", "garbage", ""] {
        let r = conditional("GET", single, value);
        assert_eq!(r.status, 200, "If-None-Match {value:?}");
        assert_eq!(r.header("etag"), Some(tag.as_str()));
    }
    // Each form and each list of pairs is its own answer, with its own tag.
    let tags: Vec<String> = [
        "/rates?pair=USDJPY",
        "/rates?pair=USDJPY&pair=EURGBP",
        "/rates?pair=EURGBP&pair=USDJPY",
    ]
    .iter()
    .map(|t| edge.get(t).header("etag").unwrap().to_string())
    .collect();
    assert!(
        !tags.contains(&tag) && tags[0] != tags[1] && tags[1] != tags[2],
        "{tags:?}"
    );
    let batch = conditional("GET", "/rates?pair=USDJPY&pair=EURGBP", &tags[1]);
    assert_eq!(batch.status, 304);
    // An error is not revalidated, and carries no tag.
    let r = conditional("GET", "/rates?from=USD&to=QQQ", "*");
    assert_eq!((r.status, r.header("etag")), (400, None));

    // A refresh brings new rates: the old tag no longer matches.
    let seq = edge.seq_served().expect("a snapshot is served");
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    eventually(Duration::from_secs(10), || edge.seq_served().filter(|s| *s > seq))
        .expect("the refresh is served");
    let r = conditional("GET", single, &tag);
    assert_eq!(r.status, 200, "the new snapshot changed USDJPY");
    let new_tag = r.header("etag").unwrap().to_string();
    assert_ne!(new_tag, tag);
    assert_eq!(conditional("GET", single, &new_tag).status, 304);

    // A snapshot about to turn stale: revalidated while fresh, never after.
    let aged = aged_snapshot(seq + 100, Duration::from_secs(290));
    let stale_at = Instant::now() + Duration::from_secs(11);
    valkey.set("rates", &aged.encode());
    valkey.publish("rates_updated", &aged.seq.to_string());
    let r = eventually(Duration::from_secs(3), || {
        Some(edge.get(single)).filter(|r| r.header("etag").is_some_and(|t| t != new_tag))
    })
    .expect("the aged snapshot is served while fresh");
    let aged_tag = r.header("etag").unwrap().to_string();
    assert_eq!(conditional("GET", single, &aged_tag).status, 304);
    std::thread::sleep(stale_at.saturating_duration_since(Instant::now()));
    for value in [aged_tag.as_str(), "*"] {
        let r = conditional("GET", single, value);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (503, "rates_stale"),
            "a stale snapshot is never revalidated ({value})"
        );
        assert_eq!(r.header("etag"), None);
    }
}

e2e::on_both_hosts_in_clear_and_over_tls!(
    conditional_get_through_the_cache_a_refresh_and_a_stale_snapshot,
    serves_direct_inverse_cross_and_same_currency_rates,
    batch_head_methods_routes_and_every_client_error,
    unavailable_before_the_first_refresh_then_new_snapshots_propagate,
    concurrent_first_requests_to_a_new_instance_are_all_answered,
    a_malformed_age_variable_fails_loudly_not_on_a_default,
    one_publish_reaches_three_instances_and_a_late_one_reads_through,
    a_snapshot_older_than_five_minutes_is_never_served,
    survives_valkey_going_away_and_recovers_without_restarts,
    invalid_data_in_valkey_never_replaces_the_cache,
);
