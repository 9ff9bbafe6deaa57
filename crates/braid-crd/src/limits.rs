//! Limits and patterns that both the CRD schema (checked by the API server)
//! and the conversion into the model (the complete check, and the only one
//! the file source gets) enforce. One definition, so that the API server
//! never accepts what the control plane then rejects for the same reason,
//! and never rejects what the file source would accept.
//!
//! The limits bound the work per policy (the proxies evaluate every rule of
//! every applicable policy per connection) and keep the API server's CEL cost
//! estimates finite; they are generous for hand-written policies.

/// Most rules one AuthorizationPolicy may have.
pub(crate) const MAX_RULES: usize = 64;

/// Most entries of each list in a rule (`principals`, `namespaces`, `ports`).
pub(crate) const MAX_RULE_ENTRIES: usize = 64;

/// Longest principal, in bytes: the SPIFFE specification's limit on IDs.
pub(crate) const MAX_PRINCIPAL_LENGTH: usize = 2048;

/// Longest namespace name (an RFC 1123 label).
pub(crate) const MAX_NAMESPACE_LENGTH: usize = 63;

/// The principals the converter accepts, as one regular expression in the
/// syntax both the API server (RE2) and the `regex` crate read: exactly `*`;
/// `*` and a suffix; `spiffe://`, a prefix and `*`; or a complete
/// `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`. No other
/// `*`, no whitespace.
pub(crate) const PRINCIPAL_PATTERN: &str =
    r"^(\*|\*[^*\s]+|spiffe://[^*\s]*\*|spiffe://[^/*\s]+/ns/[^/*\s]+/sa/[^/*\s]+)$";

/// An RFC 1123 label, as Kubernetes requires of namespace names (the length
/// is checked separately, by [`MAX_NAMESPACE_LENGTH`]).
pub(crate) const NAMESPACE_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// CEL rule on a rule's `from`: it must name some source. Because the API
/// server drops unknown fields from clients that do not ask for strict field
/// validation, a typo (`principal:`) would otherwise leave an empty `from`
/// that silently matches every source.
pub(crate) const FROM_NOT_EMPTY_RULE: &str = "(has(self.principals) && size(self.principals) > 0) || (has(self.namespaces) && size(self.namespaces) > 0)";

/// The message of [`FROM_NOT_EMPTY_RULE`] (and of the converter's check).
pub(crate) const FROM_NOT_EMPTY_MESSAGE: &str =
    "must list principals or namespaces; leave from out to match connections from anywhere";

/// CEL rule on a rule's `to`: it must list ports, for the reason
/// [`FROM_NOT_EMPTY_RULE`] gives.
pub(crate) const TO_NOT_EMPTY_RULE: &str = "has(self.ports) && size(self.ports) > 0";

/// The message of [`TO_NOT_EMPTY_RULE`] (and of the converter's check).
pub(crate) const TO_NOT_EMPTY_MESSAGE: &str = "must list ports; leave to out to match any port";

/// The message for a list longer than its limit.
pub(crate) fn too_many(len: usize, max: usize, hint: &str) -> String {
    format!("has {len} entries, more than the {max} allowed; {hint}")
}
