//! `baseline`: the benchmark's native reference. A hyper server on the same
//! tokio runtime shape as runtime-shim that answers every request with fixed
//! bytes from memory (the edge's own answer, captured by `bench`), so the
//! difference between the two is the cost of running the edge in Wasm.
//!
//! `baseline --listen ADDR --status 200 --header 'name: value'... --body-file FILE`

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

struct Fixed {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
}

fn arg_values(args: &[String], flag: &str) -> Vec<String> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].clone())
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let one = |flag: &str| {
        arg_values(&args, flag)
            .pop()
            .unwrap_or_else(|| panic!("baseline: {flag} is required"))
    };
    let listen: SocketAddr = one("--listen").parse().expect("--listen ADDR");
    let fixed = Arc::new(Fixed {
        status: one("--status").parse().expect("--status N"),
        headers: arg_values(&args, "--header")
            .iter()
            .map(|h| {
                let (k, v) = h.split_once(':').expect("--header 'name: value'");
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect(),
        body: Bytes::from(std::fs::read(one("--body-file")).expect("--body-file")),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
        eprintln!("baseline: listening on http://{listen}");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let fixed = fixed.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let fixed = fixed.clone();
                    async move {
                        let mut r = Response::builder().status(fixed.status);
                        for (k, v) in &fixed.headers {
                            r = r.header(k, v);
                        }
                        Ok::<_, Infallible>(r.body(Full::new(fixed.body.clone())).expect("response"))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
