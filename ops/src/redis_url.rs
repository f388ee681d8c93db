//! Valkey (Redis) URLs, taken apart once and by the same rules redis-rs
//! connects by: the WHATWG URL grammar of the `url` crate. Everything that
//! needs a part of a Valkey URL asks here: what a log line shows
//! ([`redact`]), what a metric is labelled ([`RedisUrl::address`]), which
//! address `allowed_outbound_hosts` is checked against, whether a URL asks
//! for TLS. One grammar means one answer: a fragment is cut before the user
//! information is looked for, so `redis://v:6379/0#a@b` is `v:6379`
//! wherever it is read.
//!
//! The test vectors in `ops/testdata/redis-urls.json` pin these answers;
//! the manifest checker (Python) is held to the same file.

use std::fmt;
use url::Url;

/// What a log line shows instead of a password.
pub const HIDDEN: &str = "***";

/// A Valkey URL: `redis://`, `valkey://` (clear) or `rediss://`,
/// `valkeys://` (TLS), with a host.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    url: Url,
}

/// Why a text is not a Valkey URL. Never quotes the text: it may hold a
/// password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// Not a URL at all.
    NotAUrl,
    /// A URL of another scheme (named).
    Scheme(String),
    /// A URL without a host.
    NoHost,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::NotAUrl => f.write_str("not a URL"),
            UrlError::Scheme(s) => write!(f, "{s}:// is not a Valkey URL scheme (redis:// or rediss://)"),
            UrlError::NoHost => f.write_str("the URL names no host"),
        }
    }
}

impl std::error::Error for UrlError {}

impl RedisUrl {
    pub fn parse(text: &str) -> Result<RedisUrl, UrlError> {
        let url = Url::parse(text.trim()).map_err(|_| UrlError::NotAUrl)?;
        if !matches!(url.scheme(), "redis" | "rediss" | "valkey" | "valkeys") {
            return Err(UrlError::Scheme(url.scheme().to_string()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::NoHost);
        }
        Ok(RedisUrl { url })
    }

    /// `redis`, `rediss`, `valkey` or `valkeys`, lower-case.
    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }

    /// Whether the connection is TLS (`rediss://`, `valkeys://`).
    pub fn is_tls(&self) -> bool {
        matches!(self.scheme(), "rediss" | "valkeys")
    }

    /// The host as written, lower-case; an IPv6 address in brackets.
    pub fn host(&self) -> String {
        self.url.host_str().unwrap_or_default().to_ascii_lowercase()
    }

    /// The port, when the URL names one.
    pub fn port(&self) -> Option<u16> {
        self.url.port()
    }

    /// `host[:port]`, as written (without credentials, path or fragment):
    /// what a metric label or a log line names the server by.
    pub fn address(&self) -> String {
        match self.port() {
            Some(p) => format!("{}:{p}", self.host()),
            None => self.host(),
        }
    }

    /// The fragment, if any (`insecure` asks redis-rs to skip verification).
    pub fn fragment(&self) -> Option<&str> {
        self.url.fragment()
    }

    /// The password as the server receives it (percent-decoded), if any.
    pub fn password(&self) -> Option<String> {
        let raw = self.url.password().filter(|p| !p.is_empty())?;
        Some(
            percent_encoding::percent_decode_str(raw)
                .decode_utf8_lossy()
                .into_owned(),
        )
    }

    /// The same URL to another `host` and `port` (its credentials, TLS,
    /// database and fragment kept): where a Sentinel says the primary is.
    pub fn with_address(&self, host: &str, port: u16) -> Result<RedisUrl, UrlError> {
        let mut url = self.url.clone();
        url.set_host(Some(host)).map_err(|_| UrlError::NoHost)?;
        url.set_port(Some(port)).map_err(|_| UrlError::NoHost)?;
        RedisUrl::parse(url.as_str())
    }

    /// The URL as written (with its password: for a client, never a log).
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The URL with its secrets hidden: the password, or a user name given
    /// without one (which may be a password written without its colon).
    pub fn redacted(&self) -> String {
        let mut shown = self.url.clone();
        let has_password = self.url.password().is_some_and(|p| !p.is_empty());
        if has_password {
            let _ = shown.set_password(Some(HIDDEN));
        } else if !self.url.username().is_empty() {
            let _ = shown.set_username(HIDDEN);
            let _ = shown.set_password(None);
        }
        shown.to_string()
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `text` for a log line: a Valkey URL without its secrets, or `<not a
/// Valkey URL>` for anything else (which could be a secret given by
/// mistake).
pub fn redact(text: &str) -> String {
    match RedisUrl::parse(text) {
        Ok(u) => u.redacted(),
        Err(_) => "<not a Valkey URL>".to_string(),
    }
}

/// `message` with the password of `url` (as written, and as sent) hidden,
/// in case a library's error quoted it.
pub fn scrub(message: &str, url: &str) -> String {
    let Ok(parsed) = RedisUrl::parse(url) else {
        return message.to_string();
    };
    let mut out = message.to_string();
    if let Some(raw) = parsed.url.password().filter(|p| !p.is_empty()) {
        out = out.replace(raw, HIDDEN);
    }
    if let Some(decoded) = parsed.password() {
        out = out.replace(&decoded, HIDDEN);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Every vector of `testdata/redis-urls.json`, which the manifest
    /// checker's tests read too.
    #[test]
    fn every_vector_reads_as_written() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/redis-urls.json"))
            .unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let vectors = doc["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 10);
        for v in vectors {
            let url = v["url"].as_str().unwrap();
            let parsed = RedisUrl::parse(url);
            assert_eq!(redact(url), v["redacted"].as_str().unwrap(), "redacted {url}");
            if v["valid"].as_bool().unwrap() {
                let u = parsed.unwrap_or_else(|e| panic!("{url}: {e}"));
                assert_eq!(u.address(), v["address"].as_str().unwrap(), "address of {url}");
                assert_eq!(u.host(), v["host"].as_str().unwrap(), "host of {url}");
                assert_eq!(u.port(), v["port"].as_u64().map(|p| p as u16), "port of {url}");
                assert_eq!(u.is_tls(), v["tls"].as_bool().unwrap(), "tls of {url}");
                assert!(!u.redacted().contains("s3cret"), "{url}");
            } else {
                assert!(parsed.is_err(), "{url} should not parse");
            }
        }
    }

    #[test]
    fn errors_never_quote_the_text() {
        for bad in ["s3cret", "http://u:s3cret@v:1", "redis://u:s3cret@/0"] {
            let e = RedisUrl::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("s3cret"), "{e}");
        }
        assert_eq!(
            RedisUrl::parse("http://v:1").unwrap_err(),
            UrlError::Scheme("http".into())
        );
    }

    #[test]
    fn scrub_hides_the_password_as_written_and_as_sent() {
        let url = "redis://edge:s3cr%40t@v:1";
        assert_eq!(scrub("AUTH s3cr@t refused", url), "AUTH *** refused");
        assert_eq!(
            scrub("url redis://edge:s3cr%40t@v:1", url),
            "url redis://edge:***@v:1"
        );
        assert_eq!(scrub("nothing here", "not a url"), "nothing here");
    }
}
