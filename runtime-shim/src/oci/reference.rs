//! OCI references (`[registry/]repository[:tag][@sha256:<hex>]`), parsed by
//! oci-client as container runtimes read them, and what a pull asks of one.

pub use oci_client::Reference;

/// `text` as a reference; the error says what is wrong with it.
pub fn parse(text: &str) -> Result<Reference, String> {
    text.parse::<Reference>().map_err(|e| {
        // The parser calls an upper-case repository an invalid format.
        let name = text.split(['@', ':']).next().unwrap_or(text);
        let path = text.split_once('/').map_or(name, |(_, rest)| rest);
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            format!("{e}: a repository name is lowercase")
        } else {
            e.to_string()
        }
    })
}

/// `sha256:` and 64 lowercase hex digits: the only digests a pull uses.
pub fn parse_digest(d: &str) -> Result<&str, String> {
    match d.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => Ok(d),
        _ => Err(format!(
            "digest {d:?}: expected sha256: and 64 lowercase hex digits"
        )),
    }
}

/// Whether the registry is `localhost` or `127.x.x.x`, any port. (The
/// reference grammar has no IPv6 literals.)
pub fn is_loopback(reference: &Reference) -> bool {
    let host = reference.registry().split(':').next().unwrap_or("");
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_and_lowercase_repositories() {
        let r = parse("127.0.0.1:5000/forex/edge:v1").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("127.0.0.1:5000", "forex/edge", Some("v1"))
        );
        assert!(is_loopback(&r));
        assert!(is_loopback(&parse("localhost:5000/a").unwrap()));
        assert!(parse("[::1]:5000/a").is_err(), "no IPv6 literals in references");
        assert!(!is_loopback(&parse("ghcr.io/org/forex-edge:0.1.0").unwrap()));
        let e = parse("127.0.0.1:5000/Forex/edge:v1").unwrap_err();
        assert!(e.contains("lowercase"), "{e}");
    }
}
