//! runtime-shim through Valkey's restarts and stalls and its own shutdown:
//! the rows of runtime-shim/README.md's table "Where it is better than `spin
//! up`" about Valkey dropping, connections and the key-value store across
//! restarts (on both hosts), reads retried and writes not after a restart, a
//! paused Valkey noticed, and SIGTERM draining requests and messages.

use e2e::http;
use e2e::probe::{body_of, connections_received, manifest, probe_app, start_probe, start_probe_on, vars};
use e2e::{Edge, Host, Shim, TempDir, Valkey, eventually};
use std::time::{Duration, Instant};

/// runtime-shim/README.md, "Valkey drops": runtime-shim keeps serving HTTP and resubscribes;
/// Spin ends the whole app.
fn a_valkey_restart_is_survived_by_runtime_shim_and_ends_spin(host: &Host) {
    let mut valkey = Valkey::start();
    let dir = TempDir::new("reconnect");
    let mut edge = start_probe_on(host, &valkey, &dir);
    edge.wait_subscribed();
    valkey.stop();
    if host.is_spin() {
        let status = eventually(Duration::from_secs(10), || edge.has_exited())
            .unwrap_or_else(|| panic!("spin up kept running without Valkey:\n{}", edge.log()));
        assert!(!status.success(), "{status}");
        edge.assert_logged("A trigger exited unexpectedly");
        assert!(
            http::request(edge.addr(), "GET", "/kv/get?key=probe:last", &[], b"").is_err(),
            "nothing answers HTTP any more"
        );
        return;
    }
    // HTTP keeps answering while Valkey is away and the trigger retries.
    let noticed = eventually(Duration::from_secs(5), || {
        assert_eq!(edge.get("/kv/get?key=probe:last").status, 200);
        std::thread::sleep(Duration::from_millis(20));
        edge.log()
            .contains("redis trigger lost its connection")
            .then_some(())
    });
    assert!(noticed.is_some(), "{}", edge.log());
    for _ in 0..10 {
        assert_eq!(edge.get("/kv/get?key=probe:last").status, 200);
        std::thread::sleep(Duration::from_millis(50));
    }
    valkey.start_again();
    let resubscribed = eventually(Duration::from_secs(15), || {
        (edge.log().matches("subscribed to").count() >= 2).then_some(())
    });
    assert!(resubscribed.is_some(), "{}", edge.log());
    assert_eq!(valkey.publish("events", "after-restart"), 1);
    let seen = eventually(Duration::from_secs(5), || {
        (edge.get("/kv/get?key=probe:last").text() == "Some(\"after-restart\")").then_some(())
    });
    assert!(seen.is_some(), "{}", edge.log());
    // Outbound Redis reconnects too.
    let set = eventually(Duration::from_secs(5), || {
        (edge.get("/redis/set?key=r&value=1").status == 200).then_some(())
    });
    assert!(set.is_some(), "{}", edge.log());
}

/// runtime-shim/README.md, "outbound Redis": one multiplexed connection on runtime-shim, a
/// new connection per `Connection::open` on Spin.
fn outbound_redis_connections_per_instance(host: &Host) {
    let valkey = Valkey::start();
    let dir = TempDir::new("reuse");
    let edge = start_probe_on(host, &valkey, &dir);
    edge.wait_subscribed();
    let before = connections_received(&valkey);
    let requests = 50;
    for i in 0..requests {
        assert_eq!(body_of(&edge.get(&format!("/redis/set?key=k{i}&value=v"))), "()");
    }
    // Minus our own INFO call.
    let opened = connections_received(&valkey) - before - 1;
    println!(
        "outbound Redis on {}: {requests} instances, each opening a connection, made {opened} TCP connection(s)",
        host.name()
    );
    let expected = if host.is_spin() { requests } else { 1 };
    assert_eq!(opened, expected);
}

/// Spin keeps the default key-value store in SQLite under its state
/// directory, so a restarted app finds what it stored; runtime-shim keeps
/// it in memory, so a restart starts empty.
fn the_key_value_store_outlives_a_restart_on_spin_only(host: &Host) {
    let valkey = Valkey::start();
    let dir = TempDir::new("kv-restart");
    let edge = start_probe_on(host, &valkey, &dir);
    assert_eq!(body_of(&edge.get("/kv/set?key=kept&value=yes")), "()");
    let edge = edge.restart().unwrap_or_else(|l| panic!("{l}"));
    let expected = if host.is_spin() { "Some(\"yes\")" } else { "None" };
    assert_eq!(body_of(&edge.get("/kv/get?key=kept")), expected);
    if host.is_spin() {
        assert!(edge.state_dir().join("sqlite_key_value.db").is_file());
    }
}

#[test]
fn after_a_valkey_restart_reads_are_retried_once_and_writes_are_not() {
    let mut valkey = Valkey::start();
    let dir = TempDir::new("retry");
    let shim = start_probe(&valkey, &dir);
    // Each kind of command meets a pooled connection that died with the
    // Valkey it was opened to.
    let after_restart = |valkey: &mut Valkey, target: &str| {
        assert_eq!(body_of(&shim.get("/redis/set?key=warm&value=1")), "()");
        valkey.restart();
        shim.get(target)
    };
    let read = after_restart(&mut valkey, "/redis/get?key=warm");
    assert_eq!(
        (read.status, read.text().as_str()),
        (200, "None"),
        "a read is retried"
    );
    for (target, command) in [
        ("/redis/publish?channel=c&message=m", "PUBLISH"),
        ("/redis/set?key=k&value=v", "SET"),
        ("/redis/incr?key=n", "INCR"),
    ] {
        let r = after_restart(&mut valkey, target);
        assert_eq!(r.status, 500, "{command}: {}", r.text());
        let text = r.text();
        for part in [
            format!("Redis at redis://127.0.0.1:{}", valkey.port),
            "connection lost".to_string(),
            format!("{command} was not retried"),
        ] {
            assert!(text.contains(&part), "{command}: {part:?} missing from {text}");
        }
        // The next call has a fresh connection and succeeds.
        assert_eq!(shim.get(target).status, 200, "{command} afterwards");
    }
    assert_eq!(
        valkey.get("n").as_deref(),
        Some(&b"1"[..]),
        "INCR ran once, by the later call"
    );
}

#[test]
fn a_paused_valkey_is_noticed_by_the_trigger_and_bounds_outbound_calls() {
    let valkey = Valkey::start();
    let dir = TempDir::new("paused");
    let shim = start_probe(&valkey, &dir);
    shim.wait_subscribed();
    assert_eq!(body_of(&shim.get("/redis/set?key=warm&value=1")), "()");
    valkey.pause();
    let paused = Instant::now();
    // A read: the command times out, the retry cannot connect in time.
    let r = shim.get("/redis/get?key=warm");
    let read_took = paused.elapsed();
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("no answer within"), "{}", r.text());
    assert!(read_took < Duration::from_secs(7), "a read took {read_took:?}");
    // The subscription's PING goes unanswered.
    shim.wait_logged("no answer to PING", Duration::from_secs(6));
    let noticed = paused.elapsed();
    println!("paused Valkey: outbound read failed after {read_took:?}, trigger noticed after {noticed:?}");
    valkey.resume();
    eventually(Duration::from_secs(10), || {
        (shim.log().matches("subscribed to").count() >= 2).then_some(())
    })
    .unwrap_or_else(|| panic!("resubscribed after the pause:\n{}", shim.log()));
    assert_eq!(valkey.publish("events", "after-pause"), 1);
    eventually(Duration::from_secs(5), || {
        (shim.get("/kv/get?key=probe:last").text() == "Some(\"after-pause\")").then_some(())
    })
    .unwrap_or_else(|| panic!("delivered after the pause:\n{}", shim.log()));
    assert_eq!(body_of(&shim.get("/redis/get?key=warm")), "Some(\"1\")");
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let valkey = Valkey::start();
    let dir = TempDir::new("term");
    let mut shim = start_probe(&valkey, &dir);
    assert_eq!(shim.get("/x").status, 200);
    // A request in flight when SIGTERM arrives is finished, not cut off.
    let addr = shim.addr();
    let in_flight = std::thread::spawn(move || http::get(addr, "/sleep?ms=1500"));
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    let status = shim
        .terminate(Duration::from_secs(15))
        .expect("exits after SIGTERM");
    let r = in_flight.join().unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "slept 1500 ms"),
        "{}",
        shim.log()
    );
    assert!(
        signalled.elapsed() >= Duration::from_millis(1000),
        "exited before the request ended"
    );
    assert!(status.success(), "{status:?}\n{}", shim.log());
    shim.assert_logged("shutting down");
}

/// At SIGTERM a request still waiting for an instance is answered at once
/// with the JSON 503 `shutting_down`, while the one holding the instance
/// finishes.
#[test]
fn at_sigterm_a_request_waiting_for_an_instance_gets_shutting_down() {
    let valkey = Valkey::start();
    let dir = TempDir::new("term-waiting");
    let m = manifest(&dir, &probe_app(&format!("redis://{}", valkey.host())));
    let mut args = vars(&[("redis_url", &valkey.url())]);
    args.extend(["--max-instances".to_string(), "1".to_string()]);
    let mut shim = Edge::start_on(&Host::Shim, &m, &args).unwrap_or_else(|l| panic!("{l}"));
    let addr = shim.addr();
    let holder = std::thread::spawn(move || http::get(addr, "/sleep?ms=2000"));
    std::thread::sleep(Duration::from_millis(300));
    let waiter = std::thread::spawn(move || http::get(addr, "/x"));
    std::thread::sleep(Duration::from_millis(300));
    let status = shim
        .terminate(Duration::from_secs(15))
        .expect("exits after SIGTERM");

    let waited = waiter.join().unwrap();
    assert_eq!(waited.status, 503, "{}", waited.text());
    assert_eq!(
        waited.json()["error"]["code"],
        "shutting_down",
        "{}",
        waited.text()
    );
    let held = holder.join().unwrap();
    assert_eq!(
        (held.status, held.text().as_str()),
        (200, "slept 2000 ms"),
        "{}",
        shim.log()
    );
    assert!(status.success(), "{status:?}\n{}", shim.log());
}

/// With `--shutdown-delay` (as the runtime-shim image sets it), SIGTERM
/// fails the readiness path at once while every other request is still
/// served for the delay; then the listener closes and the process exits 0.
/// A balancer that learns of the leaving pod late loses nothing.
#[test]
fn with_a_shutdown_delay_sigterm_fails_readiness_at_once_and_serves_on() {
    let valkey = Valkey::start();
    let one_frame = e2e::OneFrame::start(&[]);
    assert_eq!(e2e::refresh(&valkey, &one_frame, &[]).code, Some(0));
    let extra = ["--shutdown-delay", "2s", "--readiness-path", "/readyz"];
    let mut edge = Edge::start_app_with(&valkey, &valkey.url(), &extra);
    assert_eq!(edge.get("/readyz").status, 200);
    edge.signal("TERM");
    let signalled = Instant::now();
    let not_ready = eventually(Duration::from_millis(500), || {
        Some(edge.get("/readyz")).filter(|r| r.status == 503)
    })
    .expect("the readiness path fails at once");
    assert_eq!(not_ready.error_code(), "shutting_down");
    let mut served = 0;
    while signalled.elapsed() < Duration::from_millis(1700) {
        let r = edge.get("/rates?from=USD&to=JPY");
        assert_eq!(r.status, 200, "served during the delay: {}", r.text());
        served += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(served > 20, "{served}");
    let status = edge
        .terminate(Duration::from_secs(10))
        .expect("exits after the delay");
    assert!(status.success(), "{status:?}\n{}", edge.log());
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "left before the delay ended"
    );
    edge.assert_logged("/readyz answers 503, then draining");
    assert!(
        http::request(edge.addr(), "GET", "/healthz", &[], b"").is_err(),
        "nothing listens once it has left"
    );
}

/// At SIGTERM the Redis trigger takes no new message but finishes the one in
/// hand; one that outlasts `--drain-timeout` is given up, with a line
/// saying so, and the process still exits 0.
#[test]
fn sigterm_finishes_the_redis_message_in_hand_and_reports_one_it_gives_up() {
    let valkey = Valkey::start();
    let send_then_terminate = |shim: &mut Shim, message: &str| {
        shim.wait_subscribed();
        assert_eq!(valkey.publish("events", message), 1);
        // The handler is running (it sleeps first) when the signal comes.
        std::thread::sleep(Duration::from_millis(300));
        let signalled = Instant::now();
        let status = shim
            .terminate(Duration::from_secs(15))
            .expect("exits after SIGTERM");
        assert!(status.success(), "{status:?}\n{}", shim.log());
        signalled.elapsed()
    };

    let dir = TempDir::new("term-redis");
    let mut shim = start_probe(&valkey, &dir);
    let took = send_then_terminate(&mut shim, "sleep:1500");
    shim.assert_logged("probe-redis: handled \"sleep:1500\"");
    assert!(
        took >= Duration::from_millis(1000),
        "exited after {took:?}, before the message was handled"
    );

    let dir = TempDir::new("term-redis-lost");
    let m = manifest(&dir, &probe_app(&format!("redis://{}", valkey.host())));
    let mut args = vars(&[("redis_url", &valkey.url())]);
    args.extend(["--drain-timeout".to_string(), "400ms".to_string()]);
    let mut shim = Edge::start_on(&Host::Shim, &m, &args).unwrap_or_else(|l| panic!("{l}"));
    let took = send_then_terminate(&mut shim, "sleep:5000");
    shim.assert_logged("a message was still being handled after 400ms; it is lost");
    assert!(!shim.log().contains("handled \"sleep:5000\""), "{}", shim.log());
    assert!(
        took < Duration::from_secs(3),
        "the drain limit was not kept: {took:?}"
    );
}

e2e::on_both_hosts!(
    a_valkey_restart_is_survived_by_runtime_shim_and_ends_spin,
    outbound_redis_connections_per_instance,
    the_key_value_store_outlives_a_restart_on_spin_only,
);

/// What runtime-shim's metrics count, against what the test made happen:
/// requests by component and status class (the host's own answers apart),
/// traps and timeouts, messages by outcome, the subscription and its
/// reconnect after a Valkey restart, and outbound errors by kind.
#[test]
fn metrics_count_what_happened() {
    let mut valkey = Valkey::start();
    let dir = TempDir::new("metrics");
    let m = manifest(&dir, &probe_app(&format!("redis://{}", valkey.host())));
    let port = e2e::free_port();
    let mut args = vars(&[("redis_url", &valkey.url())]);
    args.extend(["--metrics-listen".into(), format!("127.0.0.1:{port}")]);
    args.extend([
        "--request-timeout".into(),
        "300ms".into(),
        "--message-timeout".into(),
        "300ms".into(),
    ]);
    let shim = Shim::start(&m, &args).unwrap_or_else(|l| panic!("{l}"));
    shim.wait_subscribed();
    let metrics = || e2e::http::get(([127, 0, 0, 1], port).into(), "/metrics").text();
    let value = |series: &str| {
        e2e::value_of(&metrics(), series).unwrap_or_else(|| panic!("no {series}:\n{}", metrics()))
    };
    let sub = format!(r#"{{address="{}"}}"#, valkey.host());
    assert_eq!(value(&format!("runtime_shim_redis_subscription_up{sub}")), 1.0);

    for _ in 0..3 {
        assert_eq!(shim.get("/kv/get?key=nothing").status, 200);
    }
    assert_eq!(shim.get("/trap").status, 500);
    assert_eq!(shim.get("/loop").status, 504);
    assert_eq!(shim.get("/.well-known/spin/health").status, 200);
    let requests = |class: &str| {
        value(&format!(
            r#"runtime_shim_http_requests_total{{component="probe",status_class="{class}"}}"#
        ))
    };
    assert_eq!((requests("2xx"), requests("5xx")), (3.0, 2.0));
    assert_eq!(
        value(r#"runtime_shim_http_requests_total{component="_host",status_class="2xx"}"#),
        1.0
    );
    assert_eq!(
        value(r#"runtime_shim_http_request_duration_seconds_count{component="probe"}"#),
        5.0
    );
    let guest = |what: &str| {
        value(&format!(
            r#"runtime_shim_guest_{what}_total{{component="probe",trigger="http"}}"#
        ))
    };
    assert_eq!((guest("traps"), guest("timeouts")), (1.0, 1.0));

    // An address the component may not reach: refused before any connection.
    assert_eq!(
        shim.get("/redis/open?address=redis://10.255.255.1:6379").status,
        500
    );
    assert_eq!(
        value(r#"runtime_shim_outbound_redis_errors_total{kind="denied"}"#),
        1.0
    );

    for message in ["ok", "fail", "trap", "sleep:2000"] {
        assert_eq!(valkey.publish("events", message), 1);
    }
    let outcome = |o: &str| {
        format!(r#"runtime_shim_redis_messages_total{{component="listener",channel="events",outcome="{o}"}}"#)
    };
    eventually(Duration::from_secs(10), || {
        (e2e::value_of(&metrics(), &outcome("timed_out")) == Some(1.0)).then_some(())
    })
    .unwrap_or_else(|| panic!("the slow message did not time out:\n{}", metrics()));
    for (o, n) in [
        ("handled", 1.0),
        ("failed", 1.0),
        ("trapped", 1.0),
        ("timed_out", 1.0),
        ("dropped", 0.0),
    ] {
        assert_eq!(value(&outcome(o)), n, "{o}");
    }

    valkey.restart();
    eventually(Duration::from_secs(10), || {
        (e2e::value_of(
            &metrics(),
            &format!("runtime_shim_redis_subscription_reconnects_total{sub}"),
        ) == Some(1.0))
        .then_some(())
    })
    .unwrap_or_else(|| panic!("no reconnect counted:\n{}", metrics()));
    assert_eq!(value(&format!("runtime_shim_redis_subscription_up{sub}")), 1.0);
    assert_eq!(value("runtime_shim_instances_live"), 0.0);
}
