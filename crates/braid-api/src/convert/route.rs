//! `braid_model::HttpRoute` ⇄ `braid.route.v1alpha1.HttpRoute`.
//!
//! The way in checks what the wire cannot: ports fit in 16 bits, every
//! oneof is set, and regular expressions compile (once, here, so a proxy
//! never compiles one per request and a bad one is a NACK, not a 500).

use std::time::Duration;

use braid_model::route as r;
use braid_model::{self as model, ServiceRef};

use super::{ConvertError, port_from_u32};
use crate::braid::route::v1alpha1 as wire;

// === out ===

/// The wire form of an HTTP route.
pub fn http_route_to_proto(route: &model::HttpRoute) -> wire::HttpRoute {
    wire::HttpRoute {
        namespace: route.namespace.clone(),
        name: route.name.clone(),
        created: route.created,
        parents: route.parents.iter().map(parent_to_proto).collect(),
        hostnames: route.hostnames.clone(),
        rules: route.rules.iter().map(rule_to_proto).collect(),
    }
}

fn service_to_proto(s: &ServiceRef) -> wire::ServiceRef {
    wire::ServiceRef {
        namespace: s.namespace.clone(),
        name: s.name.clone(),
    }
}

fn parent_to_proto(parent: &r::RouteParent) -> wire::RouteParent {
    use wire::route_parent::Kind;
    let kind = match parent {
        r::RouteParent::Service { service, port } => Kind::Service(wire::ServiceParent {
            service: Some(service_to_proto(service)),
            port: port.map(u32::from),
        }),
        r::RouteParent::Gateway {
            namespace,
            name,
            section,
        } => Kind::Gateway(wire::GatewayParent {
            namespace: namespace.clone(),
            name: name.clone(),
            section: section.clone(),
        }),
    };
    wire::RouteParent { kind: Some(kind) }
}

fn rule_to_proto(rule: &r::RouteRule) -> wire::RouteRule {
    wire::RouteRule {
        name: rule.name.clone(),
        matches: rule.matches.iter().map(match_to_proto).collect(),
        filters: rule.filters.iter().map(filter_to_proto).collect(),
        backends: rule
            .backends
            .iter()
            .map(|b| wire::Backend {
                service: Some(service_to_proto(&b.service)),
                port: u32::from(b.port),
                weight: b.weight,
                filters: b.filters.iter().map(filter_to_proto).collect(),
                invalid: b.invalid.clone(),
            })
            .collect(),
        timeouts: Some(wire::Timeouts {
            request: rule.timeouts.request.map(duration_to_proto),
            backend_request: rule.timeouts.backend_request.map(duration_to_proto),
        }),
    }
}

fn match_to_proto(m: &r::RouteMatch) -> wire::RouteMatch {
    use wire::path_match::Kind;
    let path = match &m.path {
        r::PathMatch::Exact(p) => Kind::Exact(p.clone()),
        r::PathMatch::Prefix(p) => Kind::Prefix(p.clone()),
        r::PathMatch::Regex(p) => Kind::Regex(p.as_str().to_string()),
    };
    wire::RouteMatch {
        path: Some(wire::PathMatch { kind: Some(path) }),
        headers: m.headers.iter().map(value_match_to_proto).collect(),
        query: m.query.iter().map(value_match_to_proto).collect(),
        method: m.method.clone(),
    }
}

fn value_match_to_proto(v: &r::ValueMatch) -> wire::ValueMatch {
    use wire::string_match::Kind;
    let kind = match &v.value {
        r::StringMatch::Exact(s) => Kind::Exact(s.clone()),
        r::StringMatch::Regex(p) => Kind::Regex(p.as_str().to_string()),
    };
    wire::ValueMatch {
        name: v.name.clone(),
        value: Some(wire::StringMatch { kind: Some(kind) }),
    }
}

fn filter_to_proto(filter: &r::Filter) -> wire::Filter {
    use wire::filter::Kind;
    let kind = match filter {
        r::Filter::RequestHeaders(m) => Kind::RequestHeaders(headers_to_proto(m)),
        r::Filter::ResponseHeaders(m) => Kind::ResponseHeaders(headers_to_proto(m)),
        r::Filter::Redirect(redirect) => Kind::Redirect(wire::Redirect {
            scheme: redirect.scheme.clone(),
            hostname: redirect.hostname.clone(),
            path: redirect.path.as_ref().map(path_modifier_to_proto),
            port: redirect.port.map(u32::from),
            status: u32::from(redirect.status),
        }),
        r::Filter::Rewrite(rewrite) => Kind::Rewrite(wire::Rewrite {
            hostname: rewrite.hostname.clone(),
            path: rewrite.path.as_ref().map(path_modifier_to_proto),
        }),
        r::Filter::Mirror(mirror) => Kind::Mirror(wire::Mirror {
            service: Some(service_to_proto(&mirror.service)),
            port: u32::from(mirror.port),
            parts_per_million: mirror.parts_per_million,
        }),
    };
    wire::Filter { kind: Some(kind) }
}

fn headers_to_proto(m: &r::HeaderModifier) -> wire::HeaderModifier {
    let pairs = |pairs: &[(String, String)]| {
        pairs
            .iter()
            .map(|(name, value)| wire::Header {
                name: name.clone(),
                value: value.clone(),
            })
            .collect()
    };
    wire::HeaderModifier {
        set: pairs(&m.set),
        add: pairs(&m.add),
        remove: m.remove.clone(),
    }
}

fn path_modifier_to_proto(p: &r::PathModifier) -> wire::PathModifier {
    use wire::path_modifier::Kind;
    let kind = match p {
        r::PathModifier::Full(s) => Kind::Full(s.clone()),
        r::PathModifier::Prefix(s) => Kind::Prefix(s.clone()),
    };
    wire::PathModifier { kind: Some(kind) }
}

fn duration_to_proto(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        // Route timeouts are hours at most (GEP-2257 allows 4 × 99999h);
        // saturate rather than wrap should a caller ever pass more.
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

// === in ===

/// Names the failing field of the route being converted.
struct At<'a> {
    name: &'a str,
}

impl At<'_> {
    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> ConvertError {
        ConvertError {
            kind: "HttpRoute",
            name: self.name.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }

    fn port(&self, field: &str, port: u32) -> Result<u16, ConvertError> {
        port_from_u32(port).map_err(|m| self.err(field, m))
    }

    fn pattern(&self, field: &str, source: &str) -> Result<r::Pattern, ConvertError> {
        r::Pattern::new(source).map_err(|e| self.err(field, e.to_string()))
    }

    fn service(
        &self,
        field: &str,
        s: Option<wire::ServiceRef>,
    ) -> Result<ServiceRef, ConvertError> {
        let s = s.ok_or_else(|| self.err(field, "is unset; a Service is required"))?;
        Ok(ServiceRef::new(s.namespace, s.name))
    }
}

impl TryFrom<wire::HttpRoute> for model::HttpRoute {
    type Error = ConvertError;

    fn try_from(route: wire::HttpRoute) -> Result<Self, Self::Error> {
        let name = format!("{}/{}", route.namespace, route.name);
        let at = At { name: &name };
        let parents = route
            .parents
            .into_iter()
            .enumerate()
            .map(|(i, p)| parent_from_proto(&at, &format!("parents[{i}]"), p))
            .collect::<Result<_, _>>()?;
        let rules = route
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| rule_from_proto(&at, &format!("rules[{i}]"), rule))
            .collect::<Result<_, _>>()?;
        Ok(model::HttpRoute {
            namespace: route.namespace,
            name: route.name,
            created: route.created,
            parents,
            hostnames: route.hostnames,
            rules,
        })
    }
}

fn parent_from_proto(
    at: &At<'_>,
    field: &str,
    parent: wire::RouteParent,
) -> Result<r::RouteParent, ConvertError> {
    use wire::route_parent::Kind;
    match parent.kind {
        Some(Kind::Service(s)) => Ok(r::RouteParent::Service {
            service: at.service(&format!("{field}.service.service"), s.service)?,
            port: s
                .port
                .map(|p| at.port(&format!("{field}.service.port"), p))
                .transpose()?,
        }),
        Some(Kind::Gateway(g)) => Ok(r::RouteParent::Gateway {
            namespace: g.namespace,
            name: g.name,
            section: g.section,
        }),
        None => Err(at.err(field, "is unset; must be a Service or a Gateway")),
    }
}

fn rule_from_proto(
    at: &At<'_>,
    field: &str,
    rule: wire::RouteRule,
) -> Result<r::RouteRule, ConvertError> {
    let matches = rule
        .matches
        .into_iter()
        .enumerate()
        .map(|(i, m)| match_from_proto(at, &format!("{field}.matches[{i}]"), m))
        .collect::<Result<_, _>>()?;
    let filters = filters_from_proto(at, &format!("{field}.filters"), rule.filters)?;
    let backends = rule
        .backends
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let field = format!("{field}.backends[{i}]");
            Ok(r::Backend {
                service: at.service(&format!("{field}.service"), b.service)?,
                port: at.port(&format!("{field}.port"), b.port)?,
                weight: b.weight,
                filters: filters_from_proto(at, &format!("{field}.filters"), b.filters)?,
                invalid: b.invalid,
            })
        })
        .collect::<Result<_, _>>()?;
    let timeouts = rule.timeouts.unwrap_or_default();
    Ok(r::RouteRule {
        name: rule.name,
        matches,
        filters,
        backends,
        timeouts: r::Timeouts {
            request: duration_from_proto(
                at,
                &format!("{field}.timeouts.request"),
                timeouts.request,
            )?,
            backend_request: duration_from_proto(
                at,
                &format!("{field}.timeouts.backend_request"),
                timeouts.backend_request,
            )?,
        },
    })
}

fn match_from_proto(
    at: &At<'_>,
    field: &str,
    m: wire::RouteMatch,
) -> Result<r::RouteMatch, ConvertError> {
    use wire::path_match::Kind;
    let path = match m.path.and_then(|p| p.kind) {
        Some(Kind::Exact(p)) => r::PathMatch::Exact(p),
        Some(Kind::Prefix(p)) => r::PathMatch::Prefix(p),
        Some(Kind::Regex(p)) => {
            r::PathMatch::Regex(at.pattern(&format!("{field}.path.regex"), &p)?)
        }
        None => {
            return Err(at.err(
                format!("{field}.path"),
                "is unset; a path match is required",
            ));
        }
    };
    let values = |list: Vec<wire::ValueMatch>, what: &str| {
        list.into_iter()
            .enumerate()
            .map(|(i, v)| value_match_from_proto(at, &format!("{field}.{what}[{i}]"), v))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(r::RouteMatch {
        path,
        headers: values(m.headers, "headers")?,
        query: values(m.query, "query")?,
        method: m.method,
    })
}

fn value_match_from_proto(
    at: &At<'_>,
    field: &str,
    v: wire::ValueMatch,
) -> Result<r::ValueMatch, ConvertError> {
    use wire::string_match::Kind;
    let value = match v.value.and_then(|v| v.kind) {
        Some(Kind::Exact(s)) => r::StringMatch::Exact(s),
        Some(Kind::Regex(s)) => {
            r::StringMatch::Regex(at.pattern(&format!("{field}.value.regex"), &s)?)
        }
        None => {
            return Err(at.err(
                format!("{field}.value"),
                "is unset; exact or regex is required",
            ));
        }
    };
    Ok(r::ValueMatch {
        name: v.name,
        value,
    })
}

fn filters_from_proto(
    at: &At<'_>,
    field: &str,
    filters: Vec<wire::Filter>,
) -> Result<Vec<r::Filter>, ConvertError> {
    filters
        .into_iter()
        .enumerate()
        .map(|(i, f)| filter_from_proto(at, &format!("{field}[{i}]"), f))
        .collect()
}

fn filter_from_proto(at: &At<'_>, field: &str, f: wire::Filter) -> Result<r::Filter, ConvertError> {
    use wire::filter::Kind;
    let path = |p: Option<wire::PathModifier>, what: &str| -> Result<_, ConvertError> {
        use wire::path_modifier::Kind;
        match p {
            None => Ok(None),
            Some(wire::PathModifier { kind: None }) => Err(at.err(
                format!("{field}.{what}.path"),
                "is set but empty; must be full or prefix",
            )),
            Some(wire::PathModifier {
                kind: Some(Kind::Full(s)),
            }) => Ok(Some(r::PathModifier::Full(s))),
            Some(wire::PathModifier {
                kind: Some(Kind::Prefix(s)),
            }) => Ok(Some(r::PathModifier::Prefix(s))),
        }
    };
    Ok(match f.kind {
        Some(Kind::RequestHeaders(m)) => r::Filter::RequestHeaders(headers_from_proto(m)),
        Some(Kind::ResponseHeaders(m)) => r::Filter::ResponseHeaders(headers_from_proto(m)),
        Some(Kind::Redirect(redirect)) => r::Filter::Redirect(r::Redirect {
            scheme: redirect.scheme,
            hostname: redirect.hostname,
            path: path(redirect.path, "redirect")?,
            port: redirect
                .port
                .map(|p| at.port(&format!("{field}.redirect.port"), p))
                .transpose()?,
            status: u16::try_from(redirect.status)
                .ok()
                .filter(|s| (300..400).contains(s))
                .ok_or_else(|| {
                    at.err(
                        format!("{field}.redirect.status"),
                        format!("{} is not a redirect status (3xx)", redirect.status),
                    )
                })?,
        }),
        Some(Kind::Rewrite(rewrite)) => r::Filter::Rewrite(r::Rewrite {
            hostname: rewrite.hostname,
            path: path(rewrite.path, "rewrite")?,
        }),
        Some(Kind::Mirror(mirror)) => r::Filter::Mirror(r::Mirror {
            service: at.service(&format!("{field}.mirror.service"), mirror.service)?,
            port: at.port(&format!("{field}.mirror.port"), mirror.port)?,
            parts_per_million: mirror.parts_per_million.min(1_000_000),
        }),
        None => return Err(at.err(field, "is unset; the filter has no kind")),
    })
}

fn headers_from_proto(m: wire::HeaderModifier) -> r::HeaderModifier {
    let pairs = |list: Vec<wire::Header>| list.into_iter().map(|h| (h.name, h.value)).collect();
    r::HeaderModifier {
        set: pairs(m.set),
        add: pairs(m.add),
        remove: m.remove,
    }
}

fn duration_from_proto(
    at: &At<'_>,
    field: &str,
    d: Option<prost_types::Duration>,
) -> Result<Option<Duration>, ConvertError> {
    let Some(d) = d else { return Ok(None) };
    match (u64::try_from(d.seconds), u32::try_from(d.nanos)) {
        (Ok(secs), Ok(nanos)) if nanos < 1_000_000_000 => Ok(Some(Duration::new(secs, nanos))),
        _ => Err(at.err(
            field,
            format!("{}s {}ns is not a valid duration", d.seconds, d.nanos),
        )),
    }
}

#[cfg(test)]
mod tests;
