//! One line per request on stderr: method, path, status, duration, as text
//! or, with `--log-format json`, as a JSON object shaped like the other
//! events (`log_format::line`).
//!
//! Requests append to a shared buffer and a writer thread flushes it every
//! [`FLUSH_EVERY`]: one write per interval instead of one write (and one
//! thread wake-up) per request. The buffer is bounded; if stderr stalls,
//! lines are dropped and the drop is reported.

use hyper::{Method, StatusCode};
use log_format::LogFormat;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FLUSH_EVERY: Duration = Duration::from_millis(50);
const MAX_BUFFERED: usize = 4 << 20;

#[derive(Default)]
struct Buffer {
    text: Vec<u8>,
    dropped: u64,
}

#[derive(Clone)]
pub struct AccessLog {
    buffer: Option<Arc<Mutex<Buffer>>>,
    format: LogFormat,
}

impl AccessLog {
    /// A log writing to stderr (`enabled`), or one that drops every line.
    pub fn stderr(enabled: bool, format: LogFormat) -> AccessLog {
        if !enabled {
            return AccessLog { buffer: None, format };
        }
        let buffer = Arc::new(Mutex::new(Buffer::default()));
        let weak = Arc::downgrade(&buffer);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut out = Vec::new();
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    let Some(buffer) = weak.upgrade() else { return };
                    let dropped = {
                        let mut b = buffer.lock().expect("access log");
                        std::mem::swap(&mut out, &mut b.text);
                        std::mem::take(&mut b.dropped)
                    };
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(&out);
                    drop(err);
                    if dropped > 0 {
                        tracing::warn!(dropped, "{dropped} access log lines dropped (stderr too slow)");
                    }
                    out.clear();
                }
            })
            .expect("access-log thread");
        AccessLog {
            buffer: Some(buffer),
            format,
        }
    }

    /// Writes what is buffered now (at shutdown).
    pub fn flush(&self) {
        if let Some(buffer) = &self.buffer {
            let text = std::mem::take(&mut buffer.lock().expect("access log").text);
            let _ = std::io::stderr().lock().write_all(&text);
        }
    }

    pub fn request(&self, method: &Method, path: &str, status: StatusCode, took: Duration) {
        let Some(buffer) = &self.buffer else { return };
        let path = &path[..path.floor_char_boundary(200)];
        let mut b = buffer.lock().expect("access log");
        if b.text.len() > MAX_BUFFERED {
            b.dropped += 1;
            return;
        }
        let ms = took.as_secs_f64() * 1000.0;
        // Text goes straight into the buffer: no line allocated per request.
        let _ = match self.format {
            LogFormat::Text => writeln!(b.text, "{method} {path} {} {ms:.3}ms", status.as_u16()),
            LogFormat::Json => writeln!(
                b.text,
                "{}",
                log_format::line(
                    LogFormat::Json,
                    "INFO",
                    "request",
                    &[
                        ("method", method.as_str().into()),
                        ("path", path.into()),
                        ("status", status.as_u16().into()),
                        ("ms", ((ms * 1000.0).round() / 1000.0).into()),
                    ],
                )
            ),
        };
    }
}
