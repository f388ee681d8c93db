//! The contract against real answers, by a tool nobody here wrote:
//! schemathesis (e2e/requirements.txt) reads the edge's own
//! `/openapi.json` and sends it requests it generates, valid and invalid,
//! on every operation: with a fresh snapshot, and again with a stale one.
//! Every answer must have a documented status, a body matching the schema
//! and the documented headers; an invalid request must get a 4xx; any
//! method the document does not list must get a 405 with `Allow`. With a
//! fresh snapshot no answer may be a 5xx; with a stale one only the
//! documented 503 may be, and never for a client's mistake. How it runs is
//! e2e/schemathesis.toml and [`run`].

use e2e::{Edge, Host, OneFrame, TempDir, Valkey, eventually, refresh};
use std::process::Command;
use std::time::{Duration, Instant};

/// What every run checks (schemathesis's names). `positive_data_acceptance`
/// is left out on purpose: a well-formed code can still be unknown (400) or
/// missing from the snapshot (404), as the document says.
const CHECKS: &[&str] = &[
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "unsupported_method",
    "allow_header_conformance",
];
/// Added while the snapshot is fresh: no 5xx at all.
const NO_5XX: &str = "not_a_server_error";
/// Cases per operation and phase, and the run's own time limit.
const MAX_EXAMPLES: &str = "100";
const MAX_TIME: Duration = Duration::from_secs(20);

/// `schemathesis`: `SCHEMATHESIS` (a path), else on `PATH`.
fn schemathesis() -> String {
    if let Some(p) = std::env::var_os("SCHEMATHESIS").filter(|p| !p.is_empty()) {
        return p.to_string_lossy().into_owned();
    }
    assert!(
        e2e::on_path("schemathesis"),
        "no schemathesis on PATH: `bash scripts/setup.sh test` puts it in .venv/bin (make test does)"
    );
    "schemathesis".into()
}

/// Runs schemathesis against `edge` with `checks`; panics with its report
/// unless every generated case passed. Returns how many cases ran.
fn run(edge: &Edge, checks: &[&str], label: &str) -> u64 {
    let dir = TempDir::new("schemathesis");
    let started = Instant::now();
    let config = e2e::repo_root().join("e2e/schemathesis.toml");
    let out = Command::new(schemathesis())
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("http://{}/openapi.json", edge.addr())])
        .args(["--checks", &checks.join(",")])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args([
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            "20261207",
            "--workers",
            "2",
        ])
        .args([
            "--max-time",
            &MAX_TIME.as_secs().to_string(),
            "--request-timeout",
            "5",
        ])
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found answers that break the contract ({label}, {}):\n{report}",
        edge.host.name()
    );
    assert!(started.elapsed() < MAX_TIME + Duration::from_secs(30), "bounded");
    // "Test cases:\n  214 generated, 214 passed"
    let generated = report
        .lines()
        .find_map(|l| l.trim().split_once(" generated, "))
        .and_then(|(n, rest)| Some((n.parse::<u64>().ok()?, rest)))
        .filter(|(n, rest)| rest.starts_with(&format!("{n} passed")))
        .map(|(n, _)| n)
        .unwrap_or_else(|| panic!("no count of passed cases in the report ({label}):\n{report}"));
    eprintln!(
        "contract ({label}, {}): {generated} generated cases passed",
        edge.host.name()
    );
    generated
}

fn the_answers_keep_the_openapi_contract_fresh_and_stale(host: &Host) {
    let valkey = Valkey::start();
    let one_frame = OneFrame::start(&[]);
    assert_eq!(refresh(&valkey, &one_frame, &[]).code, Some(0));
    let edge = Edge::app_on(host, &valkey);
    assert_eq!(edge.get("/readyz").status, 200);
    let fresh = run(&edge, &[CHECKS, &[NO_5XX]].concat(), "fresh snapshot");
    assert!(fresh >= 200, "enough cases: {fresh}");

    // A newer snapshot whose rates are six minutes old: every valid request
    // now gets the documented 503 rates_stale, every invalid one its 4xx.
    let now = shared::Timestamp::now();
    let stale = e2e::snapshot_stamped(1_000, now, now.minus(Duration::from_secs(360)));
    valkey.set("rates", &stale.encode());
    valkey.publish("rates_updated", "1000");
    eventually(Duration::from_secs(10), || {
        let r = edge.get("/rates?from=USD&to=JPY");
        (r.status == 503 && r.error_code() == "rates_stale").then_some(())
    })
    .expect("the stale snapshot is what the edge holds");
    let stale = run(&edge, CHECKS, "stale snapshot");
    assert!(stale >= 200, "enough cases: {stale}");
}

e2e::on_both_hosts!(the_answers_keep_the_openapi_contract_fresh_and_stale);
