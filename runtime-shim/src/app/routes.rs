//! HTTP routes as Spin writes them: exact (`/rates`) or a prefix ending in
//! `/...`; the most specific route wins.

use wasmtime::{Result, bail};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutePattern {
    Exact(String),
    /// `/api/...` matches `/api` and everything below it.
    Prefix(String),
}

impl RoutePattern {
    pub fn parse(route: &str) -> Result<RoutePattern> {
        if !route.starts_with('/') {
            bail!("route {route:?} must start with '/'");
        }
        if let Some(prefix) = route.strip_suffix("/...") {
            if prefix.contains("...") {
                bail!("route {route:?}: '...' may only end a route");
            }
            return Ok(RoutePattern::Prefix(prefix.to_string()));
        }
        if route.contains("...") || route.contains(':') {
            bail!("route {route:?}: only exact routes and prefixes ending in '/...' are supported");
        }
        let trimmed = route.trim_end_matches('/');
        Ok(RoutePattern::Exact(if trimmed.is_empty() {
            "/".into()
        } else {
            trimmed.into()
        }))
    }

    /// Whether `path` is served by this route.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            RoutePattern::Exact(r) => {
                let p = path.trim_end_matches('/');
                r == if p.is_empty() { "/" } else { p }
            }
            RoutePattern::Prefix(prefix) => path
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }

    /// Exact routes beat prefixes; longer prefixes beat shorter ones.
    pub(super) fn specificity(&self) -> (u8, usize) {
        match self {
            RoutePattern::Exact(r) => (1, r.len()),
            RoutePattern::Prefix(p) => (0, p.len()),
        }
    }
}
