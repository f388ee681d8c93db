//! `allowed_outbound_hosts`: which addresses a component may connect to.
//! Entries look like `redis://host:port` (`*` allowed for scheme, host or
//! port; a missing port means the scheme's well-known one). As in Spin, the
//! scheme is matched exactly (`redis://` does not allow `rediss://`), and
//! `rediss` has no well-known port: its entries name one (or `*`).

use ops::redis_url::RedisUrl;
use wasmtime::{Result, bail};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: Option<String>,
    port: Option<u16>,
}

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "redis" => Some(6379),
        "http" => Some(80),
        "https" => Some(443),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "mqtt" => Some(1883),
        _ => None,
    }
}

impl AllowedHost {
    pub fn parse(entry: &str) -> Result<AllowedHost> {
        let Some((scheme, rest)) = entry.trim().split_once("://") else {
            bail!("allowed host {entry:?} needs a scheme, e.g. redis://valkey:6379");
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('@') {
            bail!("allowed host {entry:?} must be scheme://host[:port], without credentials or path");
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        if host.is_empty() {
            bail!("allowed host {entry:?} has no host");
        }
        let port =
            match port {
                Some("*") => None,
                Some(p) => Some(p.parse::<u16>().map_err(|_| {
                    wasmtime::format_err!("allowed host {entry:?}: port {p:?} is not a number")
                })?),
                None => match well_known_port(scheme) {
                    Some(p) => Some(p),
                    None if scheme == "*" => None,
                    None => bail!("allowed host {entry:?} needs a port: {scheme:?} has no well-known one"),
                },
            };
        Ok(AllowedHost {
            scheme: (scheme != "*").then(|| scheme.to_ascii_lowercase()),
            host: (host != "*").then(|| host.to_ascii_lowercase()),
            port,
        })
    }

    /// `port` is `None` for a URL without one whose scheme has no
    /// well-known port: only a `*` port allows it.
    fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        self.scheme.as_deref().is_none_or(|s| s == scheme)
            && self.host.as_deref().is_none_or(|h| h == host)
            && self.port.is_none_or(|p| Some(p) == port)
    }
}

/// A component's permissions, checked before any connection is made.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(Vec<AllowedHost>);

impl AllowedHosts {
    pub fn parse(entries: &[String]) -> Result<AllowedHosts> {
        entries
            .iter()
            .map(|e| AllowedHost::parse(e))
            .collect::<Result<_>>()
            .map(AllowedHosts)
    }

    /// Whether `url` (e.g. `redis://user:pw@valkey:6379/0`) may be reached:
    /// its scheme, host and port as redis-rs will connect to them
    /// (`ops::redis_url`).
    pub fn allows_url(&self, url: &str) -> bool {
        let Ok(url) = RedisUrl::parse(url) else {
            return false;
        };
        let port = url.port().or_else(|| well_known_port(url.scheme()));
        self.0.iter().any(|a| a.allows(url.scheme(), &url.host(), port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(e: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&e.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn allows_only_listed_addresses() {
        let h = hosts(&["redis://valkey:6379"]);
        assert!(h.allows_url("redis://valkey:6379"));
        assert!(h.allows_url("redis://edge:secret@valkey:6379/0"));
        assert!(h.allows_url("redis://valkey"), "well-known port");
        assert!(!h.allows_url("redis://valkey:6380"));
        assert!(!h.allows_url("redis://other:6379"));
        assert!(!h.allows_url("http://valkey:6379"));
        assert!(!h.allows_url("valkey:6379"));
        // The fragment is cut before the user information is looked for.
        assert!(h.allows_url("redis://valkey:6379/0#a@other"));
        assert!(!h.allows_url("redis://other:6379/0#a@valkey:6379"));
        assert!(!hosts(&[]).allows_url("redis://valkey:6379"));
        assert!(hosts(&["*://*:*"]).allows_url("redis://anything:1"));
        assert!(hosts(&["redis://127.0.0.1:*"]).allows_url("redis://127.0.0.1:4242"));
    }

    #[test]
    fn rediss_is_its_own_scheme_without_a_default_port() {
        let h = hosts(&["rediss://valkey:6380"]);
        assert!(h.allows_url("rediss://edge:pw@valkey:6380"));
        assert!(
            !h.allows_url("redis://valkey:6380"),
            "no plain text by a TLS entry"
        );
        assert!(!h.allows_url("rediss://valkey"), "no default port for rediss");
        assert!(!hosts(&["redis://valkey:6380"]).allows_url("rediss://valkey:6380"));
        assert!(hosts(&["rediss://valkey:*"]).allows_url("rediss://valkey"));
        assert!(
            AllowedHost::parse("rediss://valkey").is_err(),
            "an entry names the port"
        );
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in [
            "valkey:6379",
            "redis://",
            "redis://u:p@valkey:6379",
            "redis://valkey:x",
            "foo://valkey",
            "redis://valkey:6379/0",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
    }
}
