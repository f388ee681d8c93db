//! The refresher's Valkey client and how its URL appears in logs.

/// A client for `url` (checked, not yet connected).
pub fn client(url: &str) -> Result<redis::Client, String> {
    redis::Client::open(url).map_err(|e| format!("--valkey-url {} is not a Redis URL: {e}", redact(url)))
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_string(),
        },
        None => String::from("<invalid url>"),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("redis://:s3cret@valkey:6379/0"),
            "redis://***@valkey:6379/0"
        );
        assert_eq!(redact("redis://edge:p@ss@valkey:6379"), "redis://***@valkey:6379");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("s3cret"), "<invalid url>");
    }
}
