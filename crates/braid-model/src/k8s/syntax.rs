//! Syntax of the values the translation reads: object names, IP addresses,
//! port numbers and port names.
//!
//! A real API server enforces these rules before we see an object, but the
//! file source hands us YAML nobody has validated. The names end up in SPIFFE
//! IDs (`.../ns/<ns>/sa/<sa>`), workload uids (`<ns>/<name>`) and DNS host
//! names, so a `/` or `.` in the wrong place could impersonate another
//! identity or host: we check them here instead of trusting the input.

use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::FieldError;

/// Namespace used when `metadata.namespace` is absent, as `kubectl apply` does.
const DEFAULT_NAMESPACE: &str = "default";

/// IP family of an address, or of a Service's `spec.ipFamilies` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum IpFamily {
    V4,
    V6,
}

// === impl IpFamily ===

impl IpFamily {
    /// The family of `addr`.
    pub(super) fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// Parses the Kubernetes spelling (`IPv4`, `IPv6`), also used by
    /// `EndpointSlice.addressType`.
    pub(super) fn parse(value: &str) -> Option<Self> {
        match value {
            "IPv4" => Some(Self::V4),
            "IPv6" => Some(Self::V6),
            _ => None,
        }
    }
}

/// `metadata.namespace`, or `default` when absent, without checking it.
///
/// Used to filter related objects, where an invalid namespace simply matches
/// nothing.
pub(super) fn namespace_or_default(meta: &ObjectMeta) -> &str {
    match meta.namespace.as_deref() {
        // Kubernetes treats an empty string like an absent field.
        Some(ns) if !ns.is_empty() => ns,
        _ => DEFAULT_NAMESPACE,
    }
}

/// `metadata.namespace` (defaulted), checked to be a DNS label.
pub(super) fn object_namespace(meta: &ObjectMeta) -> Result<&str, FieldError> {
    let ns = namespace_or_default(meta);
    dns_label(ns).map_err(|msg| FieldError::new("metadata.namespace", msg))?;
    Ok(ns)
}

/// `metadata.name`, which must be present and a DNS label (Services).
///
/// Kubernetes 1.34 still asks Services for an RFC 1035 label (no leading
/// digit) but is relaxing that to RFC 1123; we accept the relaxed form since
/// both are safe as the first part of a host name.
pub(super) fn object_name_label(meta: &ObjectMeta) -> Result<&str, FieldError> {
    let name = required_name(meta)?;
    dns_label(name).map_err(|msg| FieldError::new("metadata.name", msg))?;
    Ok(name)
}

/// `metadata.name`, which must be present and a DNS subdomain (pods).
pub(super) fn object_name_subdomain(meta: &ObjectMeta) -> Result<&str, FieldError> {
    let name = required_name(meta)?;
    dns_subdomain(name).map_err(|msg| FieldError::new("metadata.name", msg))?;
    Ok(name)
}

fn required_name(meta: &ObjectMeta) -> Result<&str, FieldError> {
    match meta.name.as_deref() {
        Some(name) if !name.is_empty() => Ok(name),
        // `generateName` only works through an API server, which picks the
        // name; a YAML file must spell it out.
        _ => Err(FieldError::new(
            "metadata.name",
            "missing: set metadata.name (metadata.generateName only works through an API server)",
        )),
    }
}

/// Checks an RFC 1123 label: at most 63 lowercase letters, digits and `-`,
/// starting and ending with a letter or digit.
pub(super) fn dns_label(value: &str) -> Result<(), String> {
    if crate::names::is_dns1123_label(value) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid name: use at most 63 lowercase letters, digits and '-', \
             starting and ending with a letter or digit"
        ))
    }
}

/// Checks an RFC 1123 subdomain: dot-separated labels, at most 253 bytes.
pub(super) fn dns_subdomain(value: &str) -> Result<(), String> {
    if crate::names::is_dns1123_subdomain(value) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid name: use at most 253 lowercase letters, digits, '-' and \
             '.', each dot-separated part starting and ending with a letter or digit"
        ))
    }
}

/// Checks a port name (IANA service name syntax, as Kubernetes requires for
/// container ports and named target ports).
pub(super) fn port_name(value: &str) -> Result<(), String> {
    let ok = value.len() <= 15
        && crate::names::is_dns1123_label(value)
        && !value.contains("--")
        && value.bytes().any(|b| b.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid port name: use at most 15 lowercase letters, digits and \
             '-', with at least one letter, no \"--\", starting and ending with a letter or digit"
        ))
    }
}

/// Parses an IP address found at `field`.
pub(super) fn ip(value: &str, field: impl FnOnce() -> String) -> Result<IpAddr, FieldError> {
    value.parse().map_err(|_| {
        FieldError::new(
            field(),
            format!(
                "{value:?} is not an IP address: write an IPv4 address like \"10.0.0.5\" or an \
                 IPv6 address like \"fd00::5\""
            ),
        )
    })
}

/// Checks a port number (1 to 65535) found at `field`.
pub(super) fn port_number(value: i32, field: impl FnOnce() -> String) -> Result<u16, FieldError> {
    match u16::try_from(value) {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(FieldError::new(
            field(),
            format!("port {value} is out of range: use a number from 1 to 65535"),
        )),
    }
}
