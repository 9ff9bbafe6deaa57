//! Service -> Service: identity, VIPs, ports and waypoint; the endpoints come
//! from `selector` (pods) or `slices` (EndpointSlices).

use std::net::IpAddr;

use k8s_openapi::api::{
    core::v1::{Namespace, Service as KubeService, ServiceSpec},
    discovery::v1::EndpointSlice,
};

use super::{
    FieldError, MeshSettings, PodInfo, labels, ports, selector, slices,
    syntax::{self, IpFamily},
};
use crate::{Service, ServiceRef, WaypointRef};

/// The `clusterIP` value that makes a Service headless.
const HEADLESS: &str = "None";

pub(super) fn service_from_kube(
    service: &KubeService,
    namespace: Option<&Namespace>,
    pods: &[&PodInfo],
    slices: &[&EndpointSlice],
    settings: &MeshSettings,
) -> Result<Service, FieldError> {
    let name = syntax::object_name_label(&service.metadata)?;
    let ns = syntax::object_namespace(&service.metadata)?;
    let spec = service.spec.as_ref();
    let (vips, headless) = cluster_ips(spec)?;
    let families = ip_families(spec)?;
    let ports = ports::service_ports(spec.and_then(|s| s.ports.as_deref()).unwrap_or_default())?;
    let waypoint = waypoint(service, namespace, ns)?;

    // Dual-stack pods get one endpoint, in the family the Service prefers.
    let family = families
        .first()
        .copied()
        .or_else(|| vips.first().map(IpFamily::of));
    let endpoints = match spec
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
    {
        Some(selector) => {
            let scope = selector::Scope {
                namespace: ns,
                family,
            };
            selector::endpoints(&scope, selector, &ports, pods)
        }
        None => slices::endpoints(ns, name, &ports, slices),
    };

    Ok(Service {
        reference: ServiceRef::new(ns, name),
        hostname: format!("{name}.{ns}.svc.{}", settings.cluster_domain),
        vips,
        ports,
        endpoints,
        waypoint,
        headless,
    })
}

/// The VIPs (`spec.clusterIPs`, else `spec.clusterIP`) and whether the
/// Service is headless.
///
/// A Service written without a cluster IP is neither: an API server would
/// allocate one, a YAML directory has nobody to, so it simply has no VIP.
fn cluster_ips(spec: Option<&ServiceSpec>) -> Result<(Vec<IpAddr>, bool), FieldError> {
    let entries = cluster_ip_entries(spec);
    if let Some((i, (field, _))) = entries
        .iter()
        .enumerate()
        .find(|(_, (_, ip))| *ip == HEADLESS)
    {
        if entries.len() > 1 {
            let message = if i == 0 {
                "a headless Service (clusterIP \"None\") has no other cluster IPs: remove them"
            } else {
                "\"None\" (headless) must be the only cluster IP: remove it or the other entries"
            };
            return Err(FieldError::new(field.clone(), message));
        }
        return Ok((Vec::new(), true));
    }

    let mut vips = Vec::with_capacity(entries.len());
    for (field, ip) in &entries {
        vips.push(syntax::ip(ip, || field.clone())?);
    }
    // Kubernetes allows one VIP per family: at most one IPv4 and one IPv6.
    let field_at = |i: usize| entries.get(i).map(|(f, _)| f.clone()).unwrap_or_default();
    if vips.len() > 2 {
        return Err(FieldError::new(
            field_at(2),
            "a Service has at most two cluster IPs, one IPv4 and one IPv6: remove the extra ones",
        ));
    }
    if let [a, b] = vips.as_slice()
        && IpFamily::of(a) == IpFamily::of(b)
    {
        return Err(FieldError::new(
            field_at(1),
            "both cluster IPs are of the same family: a dual-stack Service has one IPv4 and \
             one IPv6 cluster IP",
        ));
    }
    Ok((vips, false))
}

/// The cluster IP strings with their field paths: `spec.clusterIPs` when
/// set (it supersedes `spec.clusterIP` for dual stack), else the single
/// `spec.clusterIP`, where an empty string means "not allocated".
fn cluster_ip_entries(spec: Option<&ServiceSpec>) -> Vec<(String, &str)> {
    let listed = spec
        .and_then(|s| s.cluster_ips.as_deref())
        .unwrap_or_default();
    if listed.is_empty() {
        let single = spec
            .and_then(|s| s.cluster_ip.as_deref())
            .filter(|ip| !ip.is_empty());
        single
            .map(|ip| ("spec.clusterIP".to_string(), ip))
            .into_iter()
            .collect()
    } else {
        listed
            .iter()
            .enumerate()
            .map(|(i, ip)| (format!("spec.clusterIPs[{i}]"), ip.as_str()))
            .collect()
    }
}

/// `spec.ipFamilies`, in order of preference.
fn ip_families(spec: Option<&ServiceSpec>) -> Result<Vec<IpFamily>, FieldError> {
    let listed = spec
        .and_then(|s| s.ip_families.as_deref())
        .unwrap_or_default();
    listed
        .iter()
        .enumerate()
        .map(|(i, value)| {
            IpFamily::parse(value).ok_or_else(|| {
                FieldError::new(
                    format!("spec.ipFamilies[{i}]"),
                    format!("unknown IP family {value:?}: use \"IPv4\" or \"IPv6\""),
                )
            })
        })
        .collect()
}

/// The Service's own `braid.dev/waypoint` label wins (`none` opts out even
/// when the Namespace names a waypoint); otherwise the Namespace's applies.
fn waypoint(
    service: &KubeService,
    namespace: Option<&Namespace>,
    ns: &str,
) -> Result<Option<WaypointRef>, FieldError> {
    let choice = match labels::waypoint(service.metadata.labels.as_ref())? {
        Some(choice) => Some(choice),
        None => labels::namespace_waypoint(namespace),
    };
    Ok(choice.and_then(|w| w.to_ref(ns)))
}

#[cfg(test)]
mod tests;
