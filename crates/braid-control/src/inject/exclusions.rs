//! The `braid.dev/exclude-*` pod annotations: traffic the init step leaves
//! uncaptured. Validated here, so a typo becomes a warning at admission
//! rather than a `braid-init` container that fails and keeps the pod from
//! starting.

use std::{collections::BTreeMap, net::IpAddr};

use super::{EXCLUDE_INBOUND_PORTS, EXCLUDE_OUTBOUND_CIDRS, EXCLUDE_OUTBOUND_PORTS};

/// A `braid.dev/exclude-*` annotation whose value is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("annotation {annotation}: {entry:?} {reason}")]
pub struct AnnotationError {
    /// The annotation key.
    pub annotation: &'static str,
    /// The offending comma-separated entry.
    pub entry: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Valid exclusions, in the order the annotations list them; each becomes a
/// `braid-proxy init` flag when not empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Exclusions {
    pub(super) inbound_ports: Vec<u16>,
    pub(super) outbound_ports: Vec<u16>,
    pub(super) outbound_cidrs: Vec<String>,
}

// === impl Exclusions ===

impl Exclusions {
    /// Reads the annotations; the first bad entry is the error.
    pub(super) fn from_annotations(
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Result<Self, AnnotationError> {
        let get = |key: &str| annotations.and_then(|a| a.get(key)).map(String::as_str);
        Ok(Self {
            inbound_ports: ports(EXCLUDE_INBOUND_PORTS, get(EXCLUDE_INBOUND_PORTS))?,
            outbound_ports: ports(EXCLUDE_OUTBOUND_PORTS, get(EXCLUDE_OUTBOUND_PORTS))?,
            outbound_cidrs: cidrs(EXCLUDE_OUTBOUND_CIDRS, get(EXCLUDE_OUTBOUND_CIDRS))?,
        })
    }

    /// The `braid-proxy init` flags.
    pub(super) fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut flag = |name: &str, values: Vec<String>| {
            if !values.is_empty() {
                args.push(name.to_string());
                args.push(values.join(","));
            }
        };
        let strings = |ports: &[u16]| ports.iter().map(u16::to_string).collect();
        flag("--exclude-inbound-ports", strings(&self.inbound_ports));
        flag("--exclude-outbound-ports", strings(&self.outbound_ports));
        flag("--exclude-outbound-cidrs", self.outbound_cidrs.clone());
        args
    }
}

/// The non-empty, trimmed entries of a comma-separated value.
fn entries(value: Option<&str>) -> impl Iterator<Item = &str> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
}

fn ports(annotation: &'static str, value: Option<&str>) -> Result<Vec<u16>, AnnotationError> {
    entries(value)
        .map(|entry| {
            let error = |reason| AnnotationError {
                annotation,
                entry: entry.to_string(),
                reason,
            };
            // u16::from_str would accept "+80"; insist on plain digits.
            if !entry.bytes().all(|b| b.is_ascii_digit()) {
                return Err(error("is not a port number (1-65535)"));
            }
            match entry.parse::<u16>() {
                Ok(0) | Err(_) => Err(error("is not a port number (1-65535)")),
                Ok(port) => Ok(port),
            }
        })
        .collect()
}

/// CIDRs as `braid-proxy init` accepts them: `address/length`, the length
/// within the family, no host bits set.
fn cidrs(annotation: &'static str, value: Option<&str>) -> Result<Vec<String>, AnnotationError> {
    entries(value)
        .map(|entry| {
            check_cidr(entry)
                .map(|()| entry.to_string())
                .map_err(|reason| AnnotationError {
                    annotation,
                    entry: entry.to_string(),
                    reason,
                })
        })
        .collect()
}

fn check_cidr(entry: &str) -> Result<(), &'static str> {
    let (addr, len) = entry
        .split_once('/')
        .ok_or("has no /prefix-length (e.g. 169.254.169.254/32)")?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| "does not start with an IPv4 or IPv6 address")?;
    let bits: u32 = if addr.is_ipv4() { 32 } else { 128 };
    let out_of_range = "has a prefix length that is not a number within the address family's range";
    // u32::from_str would accept "+8"; insist on plain digits.
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(out_of_range);
    }
    let len: u32 = match len.parse() {
        Ok(len) if len <= bits => len,
        _ => return Err(out_of_range),
    };
    let value = match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    let host_bits = bits - len;
    let host_mask = if host_bits == 0 {
        0
    } else {
        u128::MAX >> (128 - host_bits)
    };
    if value & host_mask != 0 {
        return Err("has host bits set; use the network address (e.g. 10.0.0.0/8)");
    }
    Ok(())
}
