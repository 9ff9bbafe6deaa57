//! EndpointSlices: their validation, and the endpoints of a Service without
//! a selector.

use std::{
    collections::{BTreeMap, btree_map::Entry},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use k8s_openapi::api::discovery::v1::{
    Endpoint as SliceEndpoint, EndpointConditions, EndpointSlice,
};

use super::{FieldError, SERVICE_NAME_LABEL, labels, ports, syntax};
use crate::{Endpoint, ServicePort, WorkloadStatus, WorkloadUid};

/// See [`super::validate_endpoint_slice`].
pub(super) fn validate(slice: &EndpointSlice) -> Result<(), FieldError> {
    let service = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL));
    match service {
        None => {
            return Err(FieldError::new(
                labels::field(SERVICE_NAME_LABEL),
                "missing: label the slice with the name of the Service it belongs to",
            ));
        }
        Some(name) => syntax::dns_label(name)
            .map_err(|msg| FieldError::new(labels::field(SERVICE_NAME_LABEL), msg))?,
    }

    let address_type = slice.address_type.as_str();
    let parse: fn(&str) -> Result<(), String> = match address_type {
        "IPv4" => |a| check_ip(a.parse::<Ipv4Addr>().is_ok(), a, "IPv4"),
        "IPv6" => |a| check_ip(a.parse::<Ipv6Addr>().is_ok(), a, "IPv6"),
        "FQDN" => syntax::dns_subdomain,
        other => {
            return Err(FieldError::new(
                "addressType",
                format!("unknown address type {other:?}: use \"IPv4\", \"IPv6\" or \"FQDN\""),
            ));
        }
    };
    for (i, endpoint) in slice.endpoints.iter().enumerate() {
        if endpoint.addresses.is_empty() {
            return Err(FieldError::new(
                format!("endpoints[{i}].addresses"),
                "missing: list at least one address of the endpoint",
            ));
        }
        for (j, address) in endpoint.addresses.iter().enumerate() {
            parse(address)
                .map_err(|msg| FieldError::new(format!("endpoints[{i}].addresses[{j}]"), msg))?;
        }
    }

    for (i, port) in slice.ports.iter().flatten().enumerate() {
        // A port without a number is allowed: "all ports" to other consumers.
        if let Some(number) = port.port {
            syntax::port_number(number, || format!("ports[{i}].port"))?;
        }
        ports::protocol(port.protocol.as_deref())
            .map_err(|msg| FieldError::new(format!("ports[{i}].protocol"), msg))?;
    }
    Ok(())
}

fn check_ip(ok: bool, address: &str, family: &str) -> Result<(), String> {
    if ok {
        return Ok(());
    }
    let hint = match address.parse::<IpAddr>() {
        Ok(_) => "put addresses of the other family in their own EndpointSlice",
        Err(_) => "write an IP address",
    };
    Err(format!(
        "{address:?} is not an {family} address (the slice's addressType): {hint}"
    ))
}

/// Endpoints of the Service `name` in `namespace` from its EndpointSlices:
/// one per address, merged across slices, sorted by address.
///
/// Invalid slices are skipped (reported by `validate_endpoint_slice`), as are
/// FQDN slices, which name no address a proxy can connect to.
pub(super) fn endpoints(
    namespace: &str,
    name: &str,
    service_ports: &[ServicePort],
    slices: &[&EndpointSlice],
) -> Vec<Endpoint> {
    let mut ours: Vec<&EndpointSlice> = slices
        .iter()
        .copied()
        .filter(|s| syntax::namespace_or_default(&s.metadata) == namespace)
        .filter(|s| {
            let labels = s.metadata.labels.as_ref();
            labels
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .map(String::as_str)
                == Some(name)
        })
        .filter(|s| s.address_type != "FQDN" && validate(s).is_ok())
        .collect();
    // Merging keeps the first value it sees, so fix the order.
    ours.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

    let mut by_address: BTreeMap<IpAddr, Endpoint> = BTreeMap::new();
    for slice in ours {
        let ports = slice_ports(slice, service_ports);
        for endpoint in &slice.endpoints {
            for address in &endpoint.addresses {
                let Ok(address) = address.parse() else {
                    continue; // unreachable after validation; never panic on input
                };
                let new = Endpoint {
                    workload: workload(endpoint, namespace),
                    address,
                    ports: ports.clone(),
                    status: status(endpoint.conditions.as_ref()),
                };
                match by_address.entry(address) {
                    Entry::Vacant(entry) => {
                        entry.insert(new);
                    }
                    Entry::Occupied(mut entry) => merge(entry.get_mut(), new),
                }
            }
        }
    }
    by_address.into_values().collect()
}

/// Service port -> endpoint port, matching by port name (`""` matches the
/// single unnamed port).
fn slice_ports(slice: &EndpointSlice, service_ports: &[ServicePort]) -> BTreeMap<u16, u16> {
    let slice_ports = slice.ports.as_deref().unwrap_or_default();
    service_ports
        .iter()
        .filter_map(|sp| {
            let port = slice_ports
                .iter()
                .find(|p| p.name.as_deref().unwrap_or_default() == sp.name)?;
            let number = u16::try_from(port.port?).ok().filter(|n| *n != 0)?;
            Some((sp.port, number))
        })
        .collect()
}

/// The pod behind an endpoint, when its `targetRef` names one.
fn workload(endpoint: &SliceEndpoint, namespace: &str) -> Option<WorkloadUid> {
    let target = endpoint.target_ref.as_ref()?;
    if target.kind.as_deref() != Some("Pod") {
        return None;
    }
    let name = target.name.as_deref().filter(|n| !n.is_empty())?;
    let ns = target.namespace.as_deref().filter(|n| !n.is_empty());
    Some(WorkloadUid::new(ns.unwrap_or(namespace), name))
}

/// Terminating wins over readiness (a terminating endpoint may still serve
/// its open connections); an absent `ready` means ready, per the API.
fn status(conditions: Option<&EndpointConditions>) -> WorkloadStatus {
    let terminating = conditions.and_then(|c| c.terminating) == Some(true);
    let not_ready = conditions.and_then(|c| c.ready) == Some(false);
    match (terminating, not_ready) {
        (true, _) => WorkloadStatus::Terminating,
        (false, true) => WorkloadStatus::Unhealthy,
        (false, false) => WorkloadStatus::Healthy,
    }
}

/// The same address in two slices (e.g. while the controller moves it): the
/// ports add up, the first known workload stays, and the most available
/// status wins, so a stale copy cannot take a ready endpoint out.
fn merge(existing: &mut Endpoint, new: Endpoint) {
    for (service_port, port) in new.ports {
        existing.ports.entry(service_port).or_insert(port);
    }
    if existing.workload.is_none() {
        existing.workload = new.workload;
    }
    if availability(new.status) > availability(existing.status) {
        existing.status = new.status;
    }
}

fn availability(status: WorkloadStatus) -> u8 {
    match status {
        WorkloadStatus::Healthy => 2,
        WorkloadStatus::Unhealthy => 1,
        WorkloadStatus::Terminating => 0,
    }
}

#[cfg(test)]
mod tests;
