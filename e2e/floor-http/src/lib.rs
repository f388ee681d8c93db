//! Benchmark fixture: the floor a Spin host sets for any HTTP component. It
//! answers a constant body of the edge's size through spin-sdk's usual
//! `Request`/`Response` API, touching no store, variable or network, so
//! `make bench` can say how much of the edge's cost is its own.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

const BODY: &str =
    r#"{"from":"USD","to":"JPY","price":0.7973236441245859,"timestamp":"2026-11-24T10:00:24.230Z"}"#;

#[http_component]
fn handle(_req: Request) -> Response {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(BODY)
        .build()
}
