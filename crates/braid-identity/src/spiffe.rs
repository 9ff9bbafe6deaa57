//! Workload identities: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
//!
//! Parsing is strict on purpose. An identity is compared byte for byte when a
//! peer is authorized, so two spellings of one identity (upper case, `%2F`,
//! a trailing slash, a port) must not both exist: everything the SPIFFE spec
//! forbids, and everything Kubernetes would not accept as a namespace or
//! service-account name, is refused here with a message saying what is wrong.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod syntax;

use syntax::{check_trust_domain, is_dns_label, is_dns_subdomain};

const SCHEME: &str = "spiffe://";

/// The form every identity has, quoted in error messages.
const EXPECTED_FORM: &str = "spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>";

/// The SPIFFE spec's limit on the length of a whole SPIFFE ID, in bytes.
const MAX_ID_LEN: usize = 2048;

/// A workload identity: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
///
/// Always valid: the trust domain follows the SPIFFE spec (lowercase letters,
/// digits, `.`, `-`, `_`), the namespace is a Kubernetes DNS label and the
/// service account a DNS subdomain. Two `SpiffeId`s are the same identity
/// exactly when they are equal. Serialized as its string form.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    uri: String,
    /// End of the trust domain in `uri`.
    td_end: usize,
    /// End of the namespace in `uri`.
    ns_end: usize,
}

/// A SPIFFE trust domain, like `cluster.local`: the authority part of every
/// SPIFFE ID it issues.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrustDomain(String);

/// Why a string is not a valid [`SpiffeId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid SPIFFE ID {input:?}: {problem}; expected {EXPECTED_FORM}")]
pub struct SpiffeIdError {
    input: String,
    problem: Problem,
}

/// Why a string is not a valid [`TrustDomain`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid trust domain {input:?}: {problem}; use lowercase letters, digits, '.', '-' and '_', \
     like \"cluster.local\""
)]
pub struct TrustDomainError {
    input: String,
    problem: Problem,
}

/// What exactly is wrong with a SPIFFE ID or trust domain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// It does not start with `spiffe://`.
    #[error("it must start with \"spiffe://\" (lowercase)")]
    Scheme,
    /// Longer than the SPIFFE spec allows.
    #[error("it is {len} bytes long, more than the {max} allowed")]
    TooLong {
        /// Actual length in bytes.
        len: usize,
        /// Allowed length in bytes.
        max: usize,
    },
    /// A `?query`.
    #[error("a query ('?') is not allowed")]
    Query,
    /// A `#fragment`.
    #[error("a fragment ('#') is not allowed")]
    Fragment,
    /// A `%xx` escape.
    #[error("percent-encoding ('%') is not allowed")]
    PercentEncoding,
    /// `user@` before the trust domain.
    #[error("user info ('@') is not allowed")]
    UserInfo,
    /// `:port` after the trust domain.
    #[error("a port (':') is not allowed")]
    Port,
    /// Nothing between `spiffe://` and the path.
    #[error("the trust domain is empty")]
    EmptyTrustDomain,
    /// A character outside `[a-z0-9._-]` in the trust domain.
    #[error("the trust domain contains {0:?}")]
    TrustDomainChar(char),
    /// No path after the trust domain.
    #[error("the path /ns/<namespace>/sa/<service-account> is missing")]
    MissingPath,
    /// The path ends with `/`.
    #[error("a trailing '/' is not allowed")]
    TrailingSlash,
    /// `//` in the path.
    #[error("empty path segments ('//') are not allowed")]
    EmptySegment,
    /// The path is not `/ns/<namespace>/sa/<service-account>`.
    #[error("the path must be /ns/<namespace>/sa/<service-account>")]
    Path,
    /// The namespace is not a DNS label.
    #[error(
        "namespace {0:?} is not a DNS label (at most 63 lowercase letters, digits and '-', \
         starting and ending with a letter or digit)"
    )]
    Namespace(String),
    /// The service account is not a DNS subdomain.
    #[error(
        "service account {0:?} is not a DNS subdomain (at most 253 lowercase letters, digits, \
         '-' and '.', each dot-separated part starting and ending with a letter or digit)"
    )]
    ServiceAccount(String),
}

// === impl SpiffeId ===

impl SpiffeId {
    /// The identity of service account `service_account` in `namespace`,
    /// in `trust_domain`; all three parts are checked.
    pub fn new(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<Self, SpiffeIdError> {
        format!("{SCHEME}{trust_domain}/ns/{namespace}/sa/{service_account}").parse()
    }

    /// The control plane's own identity in `trust_domain`:
    /// `spiffe://<trust-domain>/ns/braid-system/sa/braid-control`. Proxies
    /// and braidctl expect exactly this when they connect to it.
    pub fn control_plane(trust_domain: &TrustDomain) -> Self {
        Self::new(trust_domain.as_str(), "braid-system", "braid-control")
            .unwrap_or_else(|_| unreachable!("a valid trust domain with constant valid names"))
    }

    /// The whole identity, `spiffe://...`.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// The trust domain, like `cluster.local`.
    pub fn trust_domain(&self) -> &str {
        &self.uri[SCHEME.len()..self.td_end]
    }

    /// The Kubernetes namespace.
    pub fn namespace(&self) -> &str {
        &self.uri[self.td_end + "/ns/".len()..self.ns_end]
    }

    /// The Kubernetes service account.
    pub fn service_account(&self) -> &str {
        &self.uri[self.ns_end + "/sa/".len()..]
    }

    /// Whether this identity belongs to `trust_domain`.
    pub fn is_in(&self, trust_domain: &TrustDomain) -> bool {
        self.trust_domain() == trust_domain.as_str()
    }

    fn parse(input: &str) -> Result<Self, Problem> {
        if input.len() > MAX_ID_LEN {
            return Err(Problem::TooLong {
                len: input.len(),
                max: MAX_ID_LEN,
            });
        }
        let rest = input.strip_prefix(SCHEME).ok_or(Problem::Scheme)?;
        for (c, problem) in [
            ('?', Problem::Query),
            ('#', Problem::Fragment),
            ('%', Problem::PercentEncoding),
        ] {
            if rest.contains(c) {
                return Err(problem);
            }
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        check_trust_domain(authority)?;
        if path.is_empty() || path == "/" {
            return Err(Problem::MissingPath);
        }
        if path.ends_with('/') {
            return Err(Problem::TrailingSlash);
        }
        let segments: Vec<&str> = path[1..].split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(Problem::EmptySegment);
        }
        let ["ns", namespace, "sa", service_account] = segments[..] else {
            return Err(Problem::Path);
        };
        if !is_dns_label(namespace) {
            return Err(Problem::Namespace(namespace.to_string()));
        }
        if !is_dns_subdomain(service_account) {
            return Err(Problem::ServiceAccount(service_account.to_string()));
        }
        let td_end = SCHEME.len() + authority.len();
        Ok(Self {
            uri: input.to_string(),
            td_end,
            ns_end: td_end + "/ns/".len() + namespace.len(),
        })
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input).map_err(|problem| SpiffeIdError {
            input: input.to_string(),
            problem,
        })
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SpiffeId").field(&self.uri).finish()
    }
}

impl AsRef<str> for SpiffeId {
    fn as_ref(&self) -> &str {
        &self.uri
    }
}

impl Serialize for SpiffeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.uri)
    }
}

impl<'de> Deserialize<'de> for SpiffeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// === impl SpiffeIdError ===

impl SpiffeIdError {
    /// The string that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

// === impl TrustDomain ===

impl TrustDomain {
    /// The trust domain as written, like `cluster.local`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TrustDomain {
    type Err = TrustDomainError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match check_trust_domain(input) {
            Ok(()) => Ok(Self(input.to_string())),
            Err(problem) => Err(TrustDomainError {
                input: input.to_string(),
                problem,
            }),
        }
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for TrustDomain {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TrustDomain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// === impl TrustDomainError ===

impl TrustDomainError {
    /// What is wrong with the trust domain.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

#[cfg(test)]
mod tests;
