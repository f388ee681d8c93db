//! Runs of the `refresher` binary: one subcommand to its end (or a time
//! limit), with only the arguments and environment a test gives it.

use crate::one_frame::OneFrame;
use crate::procs::{Proc, TempDir, bin};
use crate::valkey::Valkey;
use std::process::Command;
use std::time::{Duration, Instant};

/// The outcome of a finished process.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub log: String,
    pub took: Duration,
}

/// Runs `refresher once` with `args` (plus env), killing it after `limit`.
pub fn refresher_once(args: &[String], env: &[(&str, &str)], limit: Duration) -> Run {
    refresher_command("once", args, env, limit)
}

/// Runs `refresher <subcommand>` with `args` (plus env), killing it after `limit`.
pub fn refresher_command(subcommand: &str, args: &[String], env: &[(&str, &str)], limit: Duration) -> Run {
    let dir = TempDir::new("refresher");
    let started = Instant::now();
    let mut cmd = Command::new(bin("refresher"));
    cmd.arg(subcommand).args(args);
    // Isolate from the caller's environment (the refresher reads settings
    // from it): only what the test gives.
    cmd.env_clear();
    cmd.envs(env.iter().copied());
    let mut proc = Proc::spawn(&mut cmd, dir.path().join("refresher.log"));
    let status = proc.wait(limit);
    let took = started.elapsed();
    if status.is_none() {
        proc.kill();
    }
    Run {
        code: status.and_then(|s| s.code()),
        log: proc.log(),
        took,
    }
}

/// `refresher once` against `valkey` and `one_frame`, with extra flags.
pub fn refresh(valkey: &Valkey, one_frame: &OneFrame, extra: &[&str]) -> Run {
    let mut args = vec![
        "--valkey-url".to_string(),
        valkey.url(),
        "--one-frame-url".into(),
        one_frame.url(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let env = valkey.client_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    refresher_once(&args, &env, Duration::from_secs(60))
}
