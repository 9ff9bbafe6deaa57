//! Character-level checks shared by [`SpiffeId`](super::SpiffeId) and
//! [`TrustDomain`](super::TrustDomain).

use super::Problem;

/// The SPIFFE spec's limit on the length of a trust domain, in bytes.
const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// Checks a trust domain: 1 to 255 of `[a-z0-9._-]`.
pub(super) fn check_trust_domain(value: &str) -> Result<(), Problem> {
    if value.is_empty() {
        return Err(Problem::EmptyTrustDomain);
    }
    if value.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(Problem::TooLong {
            len: value.len(),
            max: MAX_TRUST_DOMAIN_LEN,
        });
    }
    match value.chars().find(|c| !is_trust_domain_char(*c)) {
        None => Ok(()),
        Some('@') => Err(Problem::UserInfo),
        Some(':') => Err(Problem::Port),
        Some('%') => Err(Problem::PercentEncoding),
        Some(c) => Err(Problem::TrustDomainChar(c)),
    }
}

fn is_trust_domain_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')
}

/// Checks an RFC 1123 label, as Kubernetes requires of namespace names.
pub(super) fn is_dns_label(value: &str) -> bool {
    braid_model::names::is_dns1123_label(value)
}

/// Checks an RFC 1123 subdomain, as Kubernetes requires of service-account
/// names.
pub(super) fn is_dns_subdomain(value: &str) -> bool {
    braid_model::names::is_dns1123_subdomain(value)
}
