//! Service ports: numbers, target ports, transport and application protocols.

use k8s_openapi::{
    api::core::v1::ServicePort as KubeServicePort, apimachinery::pkg::util::intstr::IntOrString,
};

use super::{FieldError, syntax};
use crate::{PortProtocol, ServicePort};

/// Port-name prefixes that declare an application protocol, following
/// Istio's `<protocol>[-<suffix>]` naming convention.
const NAMED_PROTOCOLS: &[&str] = &[
    "http", "http2", "grpc", "https", "tls", "tcp", "mongo", "redis", "mysql",
];

/// Translates `spec.ports`.
pub(super) fn service_ports(ports: &[KubeServicePort]) -> Result<Vec<ServicePort>, FieldError> {
    let mut out: Vec<ServicePort> = Vec::with_capacity(ports.len());
    for (i, port) in ports.iter().enumerate() {
        let port = service_port(i, port)?;
        // EndpointSlices refer to service ports by name, so with several
        // ports each needs a name of its own.
        let problem = if ports.len() > 1 && port.name.is_empty() {
            Some("missing: a Service with several ports must name each of them".to_string())
        } else if out.iter().any(|p| p.name == port.name) {
            Some(format!(
                "duplicate port name {:?}: give each port its own name",
                port.name
            ))
        } else {
            None
        };
        if let Some(message) = problem {
            return Err(FieldError::new(format!("spec.ports[{i}].name"), message));
        }
        out.push(port);
    }
    Ok(out)
}

fn service_port(i: usize, port: &KubeServicePort) -> Result<ServicePort, FieldError> {
    let field = |name: &str| format!("spec.ports[{i}].{name}");
    let name = port.name.clone().unwrap_or_default();
    if !name.is_empty() {
        syntax::dns_label(&name).map_err(|msg| FieldError::new(field("name"), msg))?;
    }
    let number = syntax::port_number(port.port, || field("port"))?;
    let protocol = protocol(port.protocol.as_deref())
        .map_err(|msg| FieldError::new(field("protocol"), msg))?;
    let (target_port, target_port_name) = target(number, port.target_port.as_ref())
        .map_err(|msg| FieldError::new(field("targetPort"), msg))?;
    let app_protocol = match port.app_protocol.as_deref() {
        Some(declared) if !declared.is_empty() => Some(declared.to_string()),
        _ => inferred_app_protocol(&name).map(str::to_string),
    };
    Ok(ServicePort {
        name,
        port: number,
        target_port,
        target_port_name,
        app_protocol,
        protocol,
    })
}

/// Parses a Kubernetes transport protocol; absent or empty means TCP.
pub(super) fn protocol(value: Option<&str>) -> Result<PortProtocol, String> {
    match value.unwrap_or_default() {
        "" | "TCP" => Ok(PortProtocol::Tcp),
        "UDP" => Ok(PortProtocol::Udp),
        "SCTP" => Ok(PortProtocol::Sctp),
        other => Err(format!(
            "unknown protocol {other:?}: use \"TCP\", \"UDP\" or \"SCTP\" (upper case)"
        )),
    }
}

/// `targetPort` as (number, name). Absent, `0` and `""` default to the
/// service port, as the API server's defaulting does.
fn target(
    port: u16,
    target: Option<&IntOrString>,
) -> Result<(Option<u16>, Option<String>), String> {
    match target {
        None => Ok((Some(port), None)),
        Some(IntOrString::Int(0)) => Ok((Some(port), None)),
        Some(IntOrString::Int(n)) => match u16::try_from(*n) {
            Ok(n) => Ok((Some(n), None)),
            Err(_) => Err(format!(
                "port {n} is out of range: use a number from 1 to 65535 or a container port name"
            )),
        },
        Some(IntOrString::String(name)) if name.is_empty() => Ok((Some(port), None)),
        Some(IntOrString::String(name)) if name.bytes().all(|b| b.is_ascii_digit()) => {
            Err(format!(
                "{name:?} is a quoted number, which Kubernetes rejects as a port name: \
             write targetPort: {name} without quotes"
            ))
        }
        Some(IntOrString::String(name)) => {
            syntax::port_name(name)?;
            Ok((None, Some(name.clone())))
        }
    }
}

/// The application protocol a port name declares: `http`, `http-web` and
/// `grpc-api` declare `http`, `http` and `grpc`.
fn inferred_app_protocol(name: &str) -> Option<&'static str> {
    let prefix = name.split('-').next().unwrap_or_default();
    NAMED_PROTOCOLS.iter().copied().find(|p| *p == prefix)
}
