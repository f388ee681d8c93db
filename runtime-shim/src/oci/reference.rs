//! OCI references as `spin registry push` and container runtimes write them:
//! `[registry/]repository[:tag][@sha256:<hex>]`.
//!
//! The registry is the first path segment when it holds a `.` or a `:` or is
//! `localhost`; otherwise it is Docker Hub (`library/` before a bare name).
//! Without a tag or digest the tag is `latest`; with both, the digest
//! decides what is pulled and the tag is only shown.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` as written (`docker.io` for Docker Hub).
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(text: &str) -> Result<Reference, String> {
        let (name_tag, digest) = match text.split_once('@') {
            Some((n, d)) => (n, Some(parse_digest(d)?)),
            None => (text, None),
        };
        // A tag follows the last ':' after the last '/' (a registry port
        // comes before the first '/').
        let (name, tag) = match name_tag.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t)),
            _ => (name_tag, None),
        };
        if let Some(t) = tag {
            let ok = t.len() <= 128
                && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return Err(format!(
                    "tag {t:?}: letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-'"
                ));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            Some(_) => ("docker.io".to_string(), name.to_string()),
            None => ("docker.io".to_string(), format!("library/{name}")),
        };
        if registry.is_empty()
            || !(registry.chars()).all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        {
            return Err(format!("registry {registry:?} is not a host[:port]"));
        }
        for segment in repository.split('/') {
            let ok = !segment.is_empty()
                && segment.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && segment.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && (segment.chars())
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
            if !ok {
                return Err(format!(
                    "repository {repository:?}: each '/'-separated part is lowercase letters and digits, \
                     with '.', '_' or '-' only between them"
                ));
            }
        }
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// What the manifest is fetched by: the digest, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// The host requests go to (Docker Hub's API is not at `docker.io`).
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// `localhost`, `127.x.x.x` or `[::1]`, with any port.
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => self.registry.split(':').next().unwrap_or(""),
        };
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// `sha256:` and 64 lowercase hex digits.
pub fn parse_digest(d: &str) -> Result<String, String> {
    match d.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(d.to_string())
        }
        _ => Err(format!(
            "digest {d:?}: expected sha256: and 64 lowercase hex digits"
        )),
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:916ac9168530657b286597a07b032fb4f8973a87f6d77cae6b51b8e1a387eb6a";

    #[test]
    fn references_parse_as_registries_write_them() {
        let r = Reference::parse("127.0.0.1:5000/forex/edge:v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "forex/edge", Some("v1"))
        );
        assert!(r.is_loopback());
        assert_eq!(r.manifest_ref(), "v1");

        let r = Reference::parse(&format!("ghcr.io/org/forex-edge:0.1.0@{D}")).unwrap();
        assert_eq!(r.manifest_ref(), D);
        assert!(!r.is_loopback());
        assert_eq!(r.to_string(), format!("ghcr.io/org/forex-edge:0.1.0@{D}"));

        let r = Reference::parse("app").unwrap();
        assert_eq!(
            (r.api_host(), r.repository.as_str(), r.manifest_ref()),
            ("registry-1.docker.io", "library/app", "latest")
        );
        assert!(Reference::parse("localhost/a").unwrap().is_loopback());
        assert!(Reference::parse("[::1]:5000/a").unwrap().is_loopback());
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        for (text, says) in [
            ("127.0.0.1:5000/Forex/edge:v1", "lowercase"),
            ("ghcr.io/org/app:", "tag \"\""),
            ("ghcr.io/org/app:-x", "tag"),
            ("ghcr.io/org/app@sha256:abc", "64 lowercase hex"),
            ("ghcr.io/org/app@md5:abc", "sha256"),
            ("ghcr.io//app", "repository"),
            ("ghcr.io/org/app/", "repository"),
            ("host name.io/app", "registry"),
        ] {
            let e = Reference::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_what_parses_prints_back(text in "[a-z0-9./:@_-]{0,40}") {
            if let Ok(r) = Reference::parse(&text) {
                proptest::prop_assert_eq!(Reference::parse(&r.to_string()), Ok(r));
            }
        }
    }
}
