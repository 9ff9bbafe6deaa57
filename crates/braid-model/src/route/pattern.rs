//! Regular expressions in routes, compiled once when the route arrives.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A regular expression that must match a whole value (path, header or
/// query value). Compiled when built, so a bad pattern is an error at the
/// edge (the route is refused) and never a cost per request.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    compiled: regex::Regex,
}

/// A route's regular expression does not compile.
#[derive(Debug, thiserror::Error)]
#[error("regular expression {pattern:?} is not valid: {reason}")]
pub struct PatternError {
    pattern: String,
    reason: String,
}

// === impl Pattern ===

impl Pattern {
    /// Compiles `source` (Rust `regex` syntax, anchored at both ends).
    pub fn new(source: &str) -> Result<Self, PatternError> {
        let compiled = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            // A route's pattern comes from users: bound what it may cost.
            .size_limit(1 << 20)
            .build()
            .map_err(|e| PatternError {
                pattern: source.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            source: source.to_string(),
            compiled,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `value` matches as a whole.
    pub fn matches(&self, value: &str) -> bool {
        self.compiled.is_match(value)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Pattern::new(&source).map_err(serde::de::Error::custom)
    }
}
