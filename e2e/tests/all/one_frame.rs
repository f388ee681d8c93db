//! The One-Frame emulator answers like the real service (errors, quota, format).

use e2e::OneFrame;
use e2e::http::{self, Response};
use std::io::Read;
use std::time::Duration;

const TOKEN: &str = shared::one_frame::PUBLIC_TOKEN;

fn rates(of: &OneFrame, query: &str, token: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = token.map(|t| ("token", t)).into_iter().collect();
    http::request(of.addr(), "GET", &format!("/rates{query}"), &headers, b"").unwrap()
}

#[test]
fn errors_are_http_200_bodies() {
    let of = OneFrame::start(&[]);
    for (query, token, error) in [
        ("?pair=USDJPY", None, "Forbidden"),
        ("?pair=USDJPY", Some("wrong"), "Forbidden"),
        ("", Some(TOKEN), "No currency pair provided"),
        ("?pair=USDQQQ", Some(TOKEN), "Invalid Currency Pair"),
        ("?pair=USDJPY&pair=USDJP", Some(TOKEN), "Invalid Currency Pair"),
    ] {
        let r = rates(&of, query, token);
        assert_eq!(r.status, 200, "{query}");
        assert_eq!(r.json(), serde_json::json!({ "error": error }), "{query}");
    }
    assert_eq!(http::get(of.addr(), "/").status, 404);
}

#[test]
fn quotes_follow_the_observed_format() {
    let of = OneFrame::start(&[]);
    let r = rates(&of, "?pair=USDJPY&pair=USDUSD&pair=EURGBP", Some(TOKEN));
    let arr = r.json();
    let arr = arr.as_array().unwrap();
    assert_eq!(arr.len(), 2, "same-currency pairs are dropped: {arr:?}");
    assert_eq!(
        (arr[0]["from"].as_str(), arr[0]["to"].as_str()),
        (Some("USD"), Some("JPY"))
    );
    assert_eq!(
        (arr[1]["from"].as_str(), arr[1]["to"].as_str()),
        (Some("EUR"), Some("GBP"))
    );
    for q in arr {
        let (bid, ask, price) = (
            q["bid"].as_f64().unwrap(),
            q["ask"].as_f64().unwrap(),
            q["price"].as_f64().unwrap(),
        );
        assert!((0.0..1.0).contains(&bid) && (0.0..1.0).contains(&ask));
        assert_eq!(price, (bid + ask) / 2.0);
        let ts = q["time_stamp"].as_str().unwrap();
        assert!(
            ts.ends_with('Z') && !ts.ends_with("0Z"),
            "milliseconds, trailing zeros dropped: {ts}"
        );
        shared::Timestamp::parse(ts).unwrap();
    }
    assert_eq!(
        arr[0]["time_stamp"], arr[1]["time_stamp"],
        "one time for the whole answer"
    );
    assert_eq!(
        rates(&of, "?pair=USDUSD", Some(TOKEN)).json(),
        serde_json::json!([])
    );
}

#[test]
fn the_same_seed_gives_the_same_prices() {
    let (a, b, c) = (
        OneFrame::start(&["--seed", "7"]),
        OneFrame::start(&["--seed", "7"]),
        OneFrame::start(&["--seed", "8"]),
    );
    let prices = |of: &OneFrame| -> Vec<f64> {
        let r = rates(of, "?pair=USDJPY&pair=USDEUR", Some(TOKEN)).json();
        r.as_array()
            .unwrap()
            .iter()
            .map(|q| q["price"].as_f64().unwrap())
            .collect()
    };
    let pa = prices(&a);
    assert_eq!(pa, prices(&b));
    assert_ne!(pa, prices(&c));
}

#[test]
fn quota_counts_calls_per_token_and_admin_routes_work() {
    let of = OneFrame::start(&["--daily-quota", "2", "--token", TOKEN, "--token", "other"]);
    for _ in 0..2 {
        assert!(
            rates(&of, "?pair=USDJPY&pair=USDEUR", Some(TOKEN))
                .json()
                .is_array()
        );
    }
    assert_eq!(
        rates(&of, "?pair=USDJPY", Some(TOKEN)).json(),
        serde_json::json!({"error": "Quota reached"})
    );
    assert_eq!(of.calls(), 2, "one call counts once, whatever its pairs");
    assert!(
        rates(&of, "?pair=USDJPY", Some("other")).json().is_array(),
        "quota is per token"
    );
    let other = http::get(of.addr(), "/__admin/calls?token=other").json();
    assert_eq!(other["calls"], 1);
    of.reset();
    assert_eq!(of.calls(), 0);
    assert!(rates(&of, "?pair=USDJPY", Some(TOKEN)).json().is_array());

    of.fault(r#"{"mode":"http500","times":1}"#);
    assert_eq!(rates(&of, "?pair=USDJPY", Some(TOKEN)).status, 500);
    assert_eq!(
        rates(&of, "?pair=USDJPY", Some(TOKEN)).status,
        200,
        "`times` limits the fault"
    );
    let bad = http::request(
        of.addr(),
        "POST",
        "/__admin/fault",
        &[],
        br#"{"mode":"nonsense"}"#,
    )
    .unwrap();
    assert_eq!(bad.status, 400);
}

#[test]
fn streaming_sends_arrays_back_to_back() {
    let of = OneFrame::start(&[]);
    let mut s = std::net::TcpStream::connect(of.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    use std::io::Write;
    write!(
        s,
        "GET /streaming/rates?pair=USDJPY HTTP/1.1\r\nhost: x\r\ntoken: {TOKEN}\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let started = std::time::Instant::now();
    while String::from_utf8_lossy(&got).matches("\"time_stamp\"").count() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}",
            String::from_utf8_lossy(&got)
        );
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}
