//! How every process of the project logs (refresher, runtime-shim, the
//! One-Frame emulator): `--log-format text` (the default: one readable line
//! per event) or `--log-format json` (one JSON object per line, for a
//! cluster's log pipeline), also set by the environment variable
//! `LOG_FORMAT`. Events go to stderr through `tracing`; their fields never
//! carry credentials (each caller shows a Valkey URL through
//! `ops::redis_url::redact` before logging it).

use std::fmt;
use std::str::FromStr;

/// The environment variable that sets the format when the flag is absent.
pub const ENV: &str = "LOG_FORMAT";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `2026-11-30T17:00:00.123456Z  INFO message`
    #[default]
    Text,
    /// `{"timestamp":"…","level":"INFO","message":"…","key":"value",…}`
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format {other:?}: use text or json")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Installs the process's logger (once, at start-up), at level INFO.
pub fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false);
    match format {
        // The message says it all for a reader; the fields are for machines.
        LogFormat::Text => builder
            .with_target(false)
            .fmt_fields(tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
                if field.name() == "message" {
                    write!(w, "{value:?}")
                } else {
                    Ok(())
                }
            }))
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// One line of an already-formatted log stream (e.g. an access log written
/// in batches) in `format`: `text` as it is, or a JSON object with the same
/// keys [`init`]'s JSON events have.
pub fn line(format: LogFormat, level: &str, message: &str, fields: &[(&str, serde_json::Value)]) -> String {
    match format {
        LogFormat::Text => {
            let mut out = message.to_string();
            for (k, v) in fields {
                match v {
                    serde_json::Value::String(s) => out.push_str(&format!(" {k}={s}")),
                    other => out.push_str(&format!(" {k}={other}")),
                }
            }
            out
        }
        LogFormat::Json => {
            let mut object = serde_json::Map::new();
            object.insert("timestamp".into(), now_rfc3339().into());
            object.insert("level".into(), level.into());
            object.insert("message".into(), message.into());
            for (k, v) in fields {
                object.insert((*k).into(), v.clone());
            }
            serde_json::Value::Object(object).to_string()
        }
    }
}

/// UTC now, formatted by the same timer as [`init`]'s events.
fn now_rfc3339() -> String {
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
    let mut out = String::new();
    let _ = SystemTime.format_time(&mut Writer::new(&mut out));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_lines_take_either_shape() {
        assert_eq!("JSON".parse(), Ok(LogFormat::Json));
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().is_err());
        let fields = [
            ("status", serde_json::json!(200)),
            ("path", serde_json::json!("/rates")),
        ];
        assert_eq!(
            line(LogFormat::Text, "INFO", "request", &fields),
            "request status=200 path=/rates"
        );
        let v: serde_json::Value =
            serde_json::from_str(&line(LogFormat::Json, "INFO", "request", &fields)).unwrap();
        assert_eq!(
            (v["level"].as_str(), v["message"].as_str()),
            (Some("INFO"), Some("request"))
        );
        assert_eq!(
            (v["status"].as_u64(), v["path"].as_str()),
            (Some(200), Some("/rates"))
        );
        let ts = v["timestamp"].as_str().unwrap();
        assert_eq!(
            (ts.len(), &ts[4..5], &ts[10..11], &ts[26..]),
            (27, "-", "T", "Z"),
            "{ts}"
        );
    }
}

/// Words in runtime-shim's log that tell a watching process (the e2e
/// harness, a script) it has reached a state; runtime-shim writes them from
/// these constants, so the two sides cannot drift apart.
pub mod milestones {
    /// The HTTP trigger listens: `app "<name>" ready on http://<address> in …`.
    pub const READY: &str = " ready on http://";
    /// A Redis trigger has subscribed: `redis trigger subscribed to [...] at …`.
    pub const SUBSCRIBED: &str = "redis trigger subscribed to ";
}
