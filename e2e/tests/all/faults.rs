//! Faults and hostile input over real processes: the promises hold when
//! Valkey restarts under traffic, when the refresher dies mid-write, and when
//! clients send malformed, huge, slow or idle requests. What concerns the
//! components (the ACL user, secrets in logs) runs on both hosts; the HTTP
//! limits are runtime-shim's own.

use e2e::http;
use e2e::{
    Edge, Host, OneFrame, Shim, Valkey, ValkeyOptions, eventually, refresh, refresher_once, stored_snapshot,
};
use shared::{Snapshot, Timestamp};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Asks for `/rates?from=USD&to=JPY` and classifies the answer; panics on
/// anything the promises forbid: a 5xx other than a JSON 503, or a rate
/// older than 300 s when the request was sent.
fn ask_and_check(shim: &Shim) -> &'static str {
    let sent = Timestamp::now();
    let r = shim.get("/rates?from=USD&to=JPY");
    match r.status {
        200 => {
            let ts = Timestamp::parse(r.json()["timestamp"].as_str().unwrap()).unwrap();
            let age = sent.since(ts);
            assert!(age <= Duration::from_secs(300), "served a rate {age:?} old");
            "200"
        }
        503 => {
            let code = r.error_code();
            assert!(
                code == "rates_stale" || code == "rates_unavailable",
                "{}",
                r.text()
            );
            assert!(r.header("retry-after").is_some());
            "503"
        }
        s => panic!("unexpected status {s}: {}", r.text()),
    }
}

#[test]
fn valkey_restart_under_steady_traffic_fails_no_request() {
    let mut valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    // Quotes 293 s old: they turn stale a few seconds into the outage.
    let now = Timestamp::now();
    let old = e2e::snapshot_stamped(1, now, now.minus(Duration::from_secs(293)));
    valkey.set("rates", &old.encode());
    let shim = Shim::start_app(&valkey);
    assert_eq!(shim.get("/rates?from=USD&to=JPY").status, 200);

    let stop = AtomicBool::new(false);
    let (mut ok, mut unavailable) = (0u32, 0u32);
    std::thread::scope(|s| {
        let traffic = s.spawn(|| {
            let mut seen = std::collections::BTreeMap::<&str, u32>::new();
            while !stop.load(Ordering::Relaxed) {
                *seen.entry(ask_and_check(&shim)).or_default() += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            seen
        });
        valkey.stop();
        std::thread::sleep(Duration::from_secs(9)); // past the 300 s mark
        valkey.restart();
        assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
        let fresh = eventually(Duration::from_secs(15), || {
            (shim.get("/rates?from=USD&to=JPY").status == 200).then_some(())
        });
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        let seen = traffic.join().unwrap();
        ok = seen.get("200").copied().unwrap_or(0);
        unavailable = seen.get("503").copied().unwrap_or(0);
        assert!(
            fresh.is_some(),
            "fresh again after Valkey came back:\n{}",
            shim.log()
        );
    });
    println!("during the restart: {ok} answers 200, {unavailable} JSON 503, nothing else");
    assert!(ok > 0 && unavailable > 0, "both phases were observed");
}

#[test]
fn a_refresher_killed_mid_write_leaves_a_whole_snapshot() {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    // Every ISO code: the largest snapshot the refresher can write.
    let all: Vec<&str> = shared::Currency::all().map(|c| c.code()).collect();
    let currencies = all.join(",");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "--valkey-url".to_string(),
            valkey.url(),
            "--one-frame-url".into(),
            one_frame.url(),
            "--currencies".into(),
            currencies.clone(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    assert_eq!(
        refresher_once(&args(&[]), &[], Duration::from_secs(30)).code,
        Some(0)
    );
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut reads = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let bytes = valkey.get("rates").expect("a snapshot is always there");
                Snapshot::decode(&bytes).expect("never a partial snapshot");
                reads += 1;
            }
            reads
        });
        for i in 0..20u64 {
            let mut cmd = std::process::Command::new(e2e::bin("refresher"));
            cmd.arg("once")
                .args(args(&[]))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            let mut child = cmd.spawn().unwrap();
            std::thread::sleep(Duration::from_millis(2 + (i * 7) % 40));
            let _ = child.kill();
            let _ = child.wait();
        }
        stop.store(true, Ordering::Relaxed);
        let reads = reader.join().unwrap();
        assert!(reads > 10, "the reader kept checking ({reads} reads)");
    });
    assert_eq!(stored_snapshot(&valkey).unwrap().quotes.len(), all.len() - 1);
}

fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[test]
fn hostile_requests_get_clear_answers_and_bounded_resources() {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let shim = Shim::start_app_with(
        &valkey,
        &valkey.url(),
        &["--header-read-timeout", "500ms", "--max-connections", "8"],
    );
    let addr = shim.addr();

    for q in [
        "?from=%00&to=JPY",
        "?&&&",
        "?from=USD&to=JPY&to",
        "?=USD",
        "?from=%E2%82%AC&to=JPY",
        "?pair=USDJPY%26pair%3DEURGBP",
    ] {
        let r = shim.get(&format!("/rates{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        r.json();
    }
    // A 20 KB URL: a JSON 414 from the shim; past 64 KB the HTTP layer
    // itself answers 414 before any routing.
    let long = format!("/rates?from=USD&to=JPY&pad={}", "x".repeat(20_000));
    let r = shim.get(&long);
    assert_eq!(r.status, 414, "{}", r.text());
    assert_eq!(r.error_code(), "uri_too_long");
    let longer = format!("/rates?pad={}", "x".repeat(100_000));
    assert_eq!(shim.get(&longer).status, 414);
    // Too many headers, or one huge header: 431 from the HTTP layer.
    let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    let (status, _) = raw(
        addr,
        format!("GET /healthz HTTP/1.1\r\nhost: a\r\n{many}\r\n").as_bytes(),
    );
    assert_eq!(status, 431);
    // The shim buffers about 64 KiB of request head (a last read may take
    // it to twice that), where the HTTP layer's default would take 400 KiB:
    // past it, 431 and the connection closes. A client still sending may
    // see the reset before that answer (status 0 here); it is never served.
    for size in [200 << 10, 1 << 20] {
        let big = format!(
            "GET /healthz HTTP/1.1\r\nhost: a\r\nx-big: {}\r\n\r\n",
            "y".repeat(size)
        );
        let (status, _) = raw(addr, big.as_bytes());
        assert!(
            status == 431 || status == 0,
            "a {} KiB header is refused (got {status})",
            size >> 10
        );
    }

    // A slow client is cut off after the header read timeout.
    let started = Instant::now();
    let (status, _) = raw(addr, b"GET /healthz HTTP/1.1\r\nhost:");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "slow client held {:?}",
        started.elapsed()
    );
    assert!(status == 408 || status == 0, "{status}");

    // More idle connections than the limit: they are closed after the
    // timeout and real requests get through.
    let idle: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let started = Instant::now();
    let r = eventually(Duration::from_secs(5), || {
        http::request(addr, "GET", "/healthz", &[], b"").ok()
    });
    assert_eq!(r.expect("served despite idle connections").status, 200);
    println!("served past 16 idle connections after {:?}", started.elapsed());
    drop(idle);
    assert_eq!(
        shim.get("/rates?from=USD&to=JPY").status,
        200,
        "still healthy:\n{}",
        shim.log()
    );
}

fn the_edge_runs_with_a_read_only_acl_user_and_secrets_stay_out_of_logs(host: &Host) {
    let (admin_pw, edge_pw, token) = ("adm-9f1c2e7d", "edg-4b8a6c0e", "tok-1a2b3c4d5e");
    let valkey = Valkey::start_with(ValkeyOptions {
        password: Some(admin_pw.into()),
        users: vec![e2e::acl_rule("edge", edge_pw)],
        ..Default::default()
    });
    let one_frame = OneFrame::start(&["--token", token]);
    let edge_url = format!("redis://edge:{edge_pw}@{}", valkey.host());

    // The edge user may read the snapshot and nothing else.
    let edge = redis::Client::open(edge_url.as_str()).unwrap();
    let mut c = edge.get_connection_with_timeout(Duration::from_secs(5)).unwrap();
    let denied: redis::RedisResult<()> = redis::cmd("SET").arg("rates").arg("x").query(&mut c);
    assert!(denied.is_err(), "the edge user must not write");
    let denied: redis::RedisResult<Option<String>> = redis::cmd("GET").arg("oneframe:calls:x").query(&mut c);
    assert!(denied.is_err(), "the edge user reads only the snapshot key");
    let denied: redis::RedisResult<i64> = redis::cmd("PUBLISH").arg("rates_updated").arg("1").query(&mut c);
    assert!(denied.is_err(), "the edge user must not publish");

    let shim = Edge::app_on_with(host, &valkey, &edge_url, &[]);
    let refresher_args = vec!["--one-frame-url".to_string(), one_frame.url()];
    let env = [("ONE_FRAME_TOKEN", token), ("VALKEY_URL", &valkey.url() as &str)];
    let first = refresher_once(&refresher_args, &env, Duration::from_secs(30));
    assert_eq!(first.code, Some(0), "{}", first.log);
    let seq = stored_snapshot(&valkey).unwrap().seq;
    eventually(Duration::from_secs(5), || {
        (shim.seq_served() == Some(seq)).then_some(())
    })
    .unwrap_or_else(|| panic!("the edge serves with its ACL user:\n{}", shim.log()));
    // A second refresh reaches it through rates_updated (SUBSCRIBE allowed).
    let second = refresher_once(&refresher_args, &env, Duration::from_secs(30));
    assert_eq!(second.code, Some(0));
    let seq2 = stored_snapshot(&valkey).unwrap().seq;
    shim.wait_logged(&format!("cached snapshot seq {seq2}"), Duration::from_secs(5));

    // A failing refresher and a bad token, then grep every log.
    let failing = refresher_once(
        &refresher_args,
        &[("ONE_FRAME_TOKEN", "wrong"), env[1]],
        Duration::from_secs(30),
    );
    assert_eq!(failing.code, Some(3));
    let logs = [first.log, second.log, failing.log, shim.log(), one_frame.log()];
    for log in &logs {
        for secret in [admin_pw, edge_pw, token] {
            assert!(!log.contains(secret), "a secret leaked into a log:\n{log}");
        }
    }
}

e2e::on_both_hosts!(the_edge_runs_with_a_read_only_acl_user_and_secrets_stay_out_of_logs);

/// Every line of `log` as a JSON object with a timestamp, a level and a message.
fn json_lines(name: &str, log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{name}: not a JSON line ({e}): {l}\n{log}"));
            for key in ["timestamp", "level", "message"] {
                assert!(v[key].is_string(), "{name}: no {key:?} in {l}");
            }
            v
        })
        .collect()
}

#[test]
fn every_process_logs_json_lines_with_fields_and_no_secrets() {
    let (admin_pw, token) = ("adm-3c4d5e6f", "tok-9a8b7c6d");
    let valkey = Valkey::start_with(ValkeyOptions {
        password: Some(admin_pw.into()),
        users: vec![],
        ..Default::default()
    });
    let one_frame = OneFrame::start(&["--token", token, "--log-format", "json"]);
    one_frame.fault(r#"{"mode":"none"}"#);
    let shim = Shim::start_app_with(&valkey, &valkey.url(), &["--log-format", "json"]);
    shim.wait_subscribed();
    let args = vec!["--one-frame-url".to_string(), one_frame.url()];
    let env = [
        ("ONE_FRAME_TOKEN", token),
        ("VALKEY_URL", &valkey.url() as &str),
        ("LOG_FORMAT", "json"),
    ];
    let ok = refresher_once(&args, &env, Duration::from_secs(30));
    assert_eq!(ok.code, Some(0), "{}", ok.log);
    let seq = stored_snapshot(&valkey).unwrap().seq;
    shim.wait_logged(&format!("cached snapshot seq {seq}"), Duration::from_secs(5));
    assert_eq!(shim.get("/rates?from=USD&to=JPY").status, 200);
    let refused = refresher_once(
        &args,
        &[("ONE_FRAME_TOKEN", "wrong-7e8f"), env[1], env[2]],
        Duration::from_secs(30),
    );
    assert_eq!(refused.code, Some(3));
    // The access log is written in batches.
    std::thread::sleep(Duration::from_millis(200));

    let refresher = json_lines("refresher", &ok.log);
    assert!(
        refresher
            .iter()
            .any(|v| v["level"] == "INFO" && v["seq"].as_u64() == Some(seq) && v["calls_today"].is_u64()),
        "{}",
        ok.log
    );
    let failed = json_lines("refresher", &refused.log);
    assert!(
        failed
            .iter()
            .any(|v| v["level"] == "ERROR" && v["exit_code"] == 3),
        "{}",
        refused.log
    );
    let emulator = json_lines("one-frame", &one_frame.log());
    assert!(
        emulator.iter().any(|v| v["fault"].is_string()),
        "{}",
        one_frame.log()
    );
    let edge = json_lines("runtime-shim", &shim.log());
    let has = |pred: &dyn Fn(&serde_json::Value) -> bool| edge.iter().any(pred);
    assert!(
        has(&|v| v["address"].is_string() && v["app"] == "forex-edge"),
        "the ready event"
    );
    assert!(has(&|v| v["channels"].is_string()), "the subscription");
    assert!(
        has(&|v| v["component"] == "rates-sync" && v["stream"] == "stderr"),
        "a component's own line"
    );
    assert!(
        has(&|v| v["message"] == "request" && v["status"] == 200 && v["path"] == "/rates"),
        "an access log line"
    );

    for log in [&ok.log, &refused.log, &one_frame.log(), &shim.log()] {
        for secret in [admin_pw, token, "wrong-7e8f"] {
            assert!(!log.contains(secret), "a secret in a JSON log:\n{log}");
        }
    }
}
