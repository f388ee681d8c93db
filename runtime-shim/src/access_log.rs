//! One line per request on stderr: method, path, status, duration. Lines go
//! through a channel to a writer thread that batches them, so a busy server
//! does not make one write system call per request.

use hyper::{Method, StatusCode};
use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

#[derive(Clone)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<String>>,
}

impl AccessLog {
    /// A log writing to stderr (`enabled`), or one that drops every line.
    pub fn stderr(enabled: bool) -> AccessLog {
        if !enabled {
            return AccessLog { tx: None };
        }
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr());
                while let Ok(line) = rx.recv() {
                    let _ = out.write_all(line.as_bytes());
                    while let Ok(line) = rx.try_recv() {
                        let _ = out.write_all(line.as_bytes());
                    }
                    let _ = out.flush();
                }
            })
            .expect("access-log thread");
        AccessLog { tx: Some(tx) }
    }

    pub fn request(&self, method: &Method, path: &str, status: StatusCode, took: Duration) {
        if let Some(tx) = &self.tx {
            let path: String = path.chars().take(200).collect();
            let _ = tx.send(format!(
                "runtime-shim: {method} {path} {} {:.3}ms\n",
                status.as_u16(),
                took.as_secs_f64() * 1000.0
            ));
        }
    }
}
