//! What a rule's filters do to a request, as pure functions on its parts:
//! header changes, path rewrites and redirect targets.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{HeaderModifier, PathModifier, Redirect};

/// A redirect answer: its status and `Location`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirected {
    /// A 3xx status (301, 302, 303, 307 or 308; 302 by default).
    pub status: u16,
    /// Where the client is sent.
    pub location: String,
}

/// Applies `modifier` to `headers`: `set` replaces, `add` appends,
/// `remove` deletes. Names and values were checked when the route was
/// converted; one that still is not a valid header is skipped.
pub fn apply_header_modifier(modifier: &HeaderModifier, headers: &mut HeaderMap) {
    let pair = |(name, value): &(String, String)| {
        Some((
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            HeaderValue::from_str(value).ok()?,
        ))
    };
    for (name, value) in modifier.set.iter().filter_map(pair) {
        headers.insert(name, value);
    }
    for (name, value) in modifier.add.iter().filter_map(pair) {
        headers.append(name, value);
    }
    for name in &modifier.remove {
        headers.remove(name.as_str());
    }
}

/// The path `modifier` makes of `path`; `prefix` is what the rule's path
/// match was (needed by a prefix replacement, which otherwise keeps `path`).
pub fn rewrite_path(modifier: &PathModifier, prefix: Option<&str>, path: &str) -> String {
    match modifier {
        PathModifier::Full(full) => full.clone(),
        PathModifier::Prefix(replacement) => {
            let Some(prefix) = prefix else {
                return path.to_string();
            };
            let Some(rest) = path.strip_prefix(prefix.trim_end_matches('/')) else {
                return path.to_string();
            };
            let replacement = replacement.trim_end_matches('/');
            let joined = format!("{replacement}{rest}");
            if joined.is_empty() {
                "/".to_string()
            } else if joined.starts_with('/') {
                joined
            } else {
                format!("/{joined}")
            }
        }
    }
}

// === impl Redirect ===

impl Redirect {
    /// The answer to a request for `scheme://host[:port]path[?query]` whose
    /// rule matched path `prefix`. A port is written only where it is not
    /// the scheme's own (80 for http, 443 for https); with a new scheme and
    /// no port set, the scheme's own port is meant.
    pub fn answer(
        &self,
        scheme: &str,
        host: &str,
        port: Option<u16>,
        path: &str,
        query: Option<&str>,
        prefix: Option<&str>,
    ) -> Redirected {
        let scheme = self.scheme.as_deref().unwrap_or(scheme);
        let host = self.hostname.as_deref().unwrap_or(host);
        let port = match (self.port, &self.scheme) {
            (Some(port), _) => Some(port),
            (None, Some(_)) => None,
            (None, None) => port,
        };
        let default_port = match scheme {
            "https" => 443,
            _ => 80,
        };
        let port = port
            .filter(|p| *p != default_port)
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let path = match &self.path {
            Some(modifier) => rewrite_path(modifier, prefix, path),
            None => path.to_string(),
        };
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        Redirected {
            status: self.status,
            location: format!("{scheme}://{host}{port}{path}{query}"),
        }
    }
}
