//! The route, its parents, rules, matches, backends and timeouts; filters
//! are in `filters.rs`.

use std::{str::FromStr as _, time::Duration};

use braid_model::{
    HttpRoute, ServiceRef,
    route::{
        Backend, PathMatch, Pattern, RouteMatch, RouteParent, RouteRule, StringMatch, Timeouts,
        ValueMatch,
    },
};
use gateway_api::apis::standard::httproutes::{
    HttpRouteParentRefs, HttpRouteRules, HttpRouteRulesBackendRefs, HttpRouteRulesMatches,
    HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesPathType,
    HttpRouteRulesMatchesQueryParamsType, HttpRouteRulesTimeouts, HttpRouteSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{
    BackendProblem, ConvertedRoute, GATEWAY_GROUP, PendingRef, RefAt, RouteError, Unresolved,
    filters,
};

/// The state of one conversion: the route's namespace (the default of
/// every reference) and what it found along the way.
pub(super) struct Ctx {
    pub(super) namespace: String,
    pub(super) problems: Vec<BackendProblem>,
    pub(super) refs: Vec<PendingRef>,
}

/// The largest backendRef weight the specification allows.
const MAX_WEIGHT: i32 = 1_000_000;

pub(super) fn route(meta: &ObjectMeta, spec: &HttpRouteSpec) -> Result<ConvertedRoute, RouteError> {
    let name = match meta.name.as_deref() {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => return Err(RouteError::unsupported("metadata.name", "is required")),
    };
    let namespace = match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => ns.to_string(),
        _ => crate::DEFAULT_NAMESPACE.to_string(),
    };
    let mut ctx = Ctx {
        namespace: namespace.clone(),
        problems: Vec::new(),
        refs: Vec::new(),
    };
    let parents = spec
        .parent_refs
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, p)| parent(&ctx, &format!("spec.parentRefs[{i}]"), p))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    let rules = spec
        .rules
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| rule(&mut ctx, i, r))
        .collect::<Result<_, _>>()?;
    Ok(ConvertedRoute {
        route: HttpRoute {
            namespace,
            name,
            created: meta.creation_timestamp.as_ref().map(|t| t.0.as_second()),
            parents,
            hostnames: spec.hostnames.clone().unwrap_or_default(),
            rules,
        },
        problems: ctx.problems,
        refs: ctx.refs,
    })
}

/// A parentRef Braid implements, or `None` for one of another kind (some
/// other implementation's parent, which this control plane leaves alone).
fn parent(
    ctx: &Ctx,
    field: &str,
    p: &HttpRouteParentRefs,
) -> Result<Option<RouteParent>, RouteError> {
    let group = p.group.as_deref().unwrap_or(GATEWAY_GROUP);
    let kind = p.kind.as_deref().unwrap_or("Gateway");
    let namespace = p.namespace.clone().unwrap_or_else(|| ctx.namespace.clone());
    Ok(match (group, kind) {
        ("", "Service") => Some(RouteParent::Service {
            service: ServiceRef::new(namespace, p.name.clone()),
            port: p
                .port
                .map(|port| port_of(&format!("{field}.port"), port))
                .transpose()?,
        }),
        (GATEWAY_GROUP, "Gateway") => Some(RouteParent::Gateway {
            namespace,
            name: p.name.clone(),
            section: p.section_name.clone(),
        }),
        _ => None,
    })
}

fn rule(ctx: &mut Ctx, index: usize, r: &HttpRouteRules) -> Result<RouteRule, RouteError> {
    let field = format!("spec.rules[{index}]");
    let matches = match r.matches.as_deref() {
        // The specification: no matches is one match of path prefix `/`.
        None | Some([]) => vec![match_all()],
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, m)| route_match(&format!("{field}.matches[{i}]"), m))
            .collect::<Result<_, _>>()?,
    };
    let filters = filters::rule_filters(ctx, index, &field, r.filters.as_deref().unwrap_or(&[]))?;
    let backends = r
        .backend_refs
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, b)| backend(ctx, index, i, &format!("{field}.backendRefs[{i}]"), b))
        .collect::<Result<_, _>>()?;
    Ok(RouteRule {
        name: r.name.clone(),
        matches,
        filters,
        backends,
        timeouts: timeouts(&format!("{field}.timeouts"), r.timeouts.as_ref())?,
    })
}

fn match_all() -> RouteMatch {
    RouteMatch {
        path: PathMatch::Prefix("/".to_string()),
        headers: Vec::new(),
        query: Vec::new(),
        method: None,
    }
}

fn route_match(field: &str, m: &HttpRouteRulesMatches) -> Result<RouteMatch, RouteError> {
    let path = m.path.as_ref();
    let value = path
        .and_then(|p| p.value.clone())
        .unwrap_or_else(|| "/".to_string());
    let path_field = format!("{field}.path.value");
    let path = match path.and_then(|p| p.r#type.as_ref()) {
        None | Some(HttpRouteRulesMatchesPathType::PathPrefix) => {
            PathMatch::Prefix(absolute_path(&path_field, value)?)
        }
        Some(HttpRouteRulesMatchesPathType::Exact) => {
            PathMatch::Exact(absolute_path(&path_field, value)?)
        }
        Some(HttpRouteRulesMatchesPathType::RegularExpression) => {
            PathMatch::Regex(pattern(&path_field, &value)?)
        }
    };
    let mut headers = Vec::new();
    for (i, h) in m.headers.iter().flatten().enumerate() {
        let at = format!("{field}.headers[{i}]");
        let regex = matches!(
            h.r#type,
            Some(HttpRouteRulesMatchesHeadersType::RegularExpression)
        );
        headers.push(ValueMatch {
            name: filters::header_name(&format!("{at}.name"), &h.name)?,
            value: string_match(&format!("{at}.value"), &h.value, regex)?,
        });
    }
    let mut query = Vec::new();
    for (i, q) in m.query_params.iter().flatten().enumerate() {
        let at = format!("{field}.queryParams[{i}]");
        if q.name.is_empty() {
            return Err(RouteError::unsupported(
                format!("{at}.name"),
                "must not be empty",
            ));
        }
        let regex = matches!(
            q.r#type,
            Some(HttpRouteRulesMatchesQueryParamsType::RegularExpression)
        );
        query.push(ValueMatch {
            name: q.name.clone(),
            value: string_match(&format!("{at}.value"), &q.value, regex)?,
        });
    }
    let method = match &m.method {
        None => None,
        // The enum's serde names are the methods, upper case.
        Some(method) => match serde_json::to_value(method) {
            Ok(serde_json::Value::String(s)) => Some(s),
            _ => {
                return Err(RouteError::unsupported(
                    format!("{field}.method"),
                    "is not a method",
                ));
            }
        },
    };
    Ok(RouteMatch {
        path,
        headers,
        query,
        method,
    })
}

fn absolute_path(field: &str, value: String) -> Result<String, RouteError> {
    match value.starts_with('/') {
        true => Ok(value),
        false => Err(RouteError::unsupported(
            field,
            format!("{value:?} must start with '/'"),
        )),
    }
}

fn string_match(field: &str, value: &str, regex: bool) -> Result<StringMatch, RouteError> {
    match regex {
        true => Ok(StringMatch::Regex(pattern(field, value)?)),
        false => Ok(StringMatch::Exact(value.to_string())),
    }
}

fn pattern(field: &str, value: &str) -> Result<Pattern, RouteError> {
    Pattern::new(value).map_err(|e| {
        RouteError::unsupported(
            field,
            format!(
                "{e}; Braid uses Rust regex syntax (RE2-like, no look-around or backreferences)"
            ),
        )
    })
}

fn backend(
    ctx: &mut Ctx,
    rule: usize,
    index: usize,
    field: &str,
    b: &HttpRouteRulesBackendRefs,
) -> Result<Backend, RouteError> {
    let weight = match b.weight {
        None => 1,
        Some(w @ 0..=MAX_WEIGHT) => w.unsigned_abs(),
        Some(w) => {
            return Err(RouteError::unsupported(
                format!("{field}.weight"),
                format!("{w} is out of range 0-{MAX_WEIGHT}"),
            ));
        }
    };
    let target = service_ref(
        ctx,
        field,
        b.group.as_deref(),
        b.kind.as_deref(),
        &b.name,
        b.namespace.as_deref(),
        b.port,
    )?;
    let filters =
        filters::backend_filters(ctx, rule, index, field, b.filters.as_deref().unwrap_or(&[]))?;
    let invalid = match target.problem {
        Some(problem) => Some(problem),
        None => {
            ctx.refs.push(PendingRef {
                at: RefAt::Backend {
                    rule,
                    backend: index,
                },
                field: field.to_string(),
            });
            None
        }
    };
    Ok(Backend {
        service: target.service,
        port: target.port,
        weight,
        filters,
        invalid,
    })
}

/// A reference to a Service, as a backend or mirror names it.
pub(super) struct Target {
    pub(super) service: ServiceRef,
    pub(super) port: u16,
    /// Set (and already recorded in the context) when it cannot resolve.
    pub(super) problem: Option<String>,
}

/// Reads a backendRef-shaped reference: group `""` and kind `Service` by
/// default, namespace the route's. A port is required for a Service.
pub(super) fn service_ref(
    ctx: &mut Ctx,
    field: &str,
    group: Option<&str>,
    kind: Option<&str>,
    name: &str,
    namespace: Option<&str>,
    port: Option<i32>,
) -> Result<Target, RouteError> {
    let group = group.unwrap_or("");
    let kind = kind.unwrap_or("Service");
    let namespace = namespace.unwrap_or(&ctx.namespace).to_string();
    let is_service = group.is_empty() && kind == "Service";
    let port = match (port, is_service) {
        (Some(port), _) => port_of(&format!("{field}.port"), port)?,
        (None, true) => {
            return Err(RouteError::unsupported(
                format!("{field}.port"),
                "is required for a Service backend; set the Service port to send to",
            ));
        }
        (None, false) => 0,
    };
    let mut problem = |reason: Unresolved, message: String| {
        let problem = BackendProblem {
            field: field.to_string(),
            reason,
            message,
        };
        let invalid = problem.invalid_reason();
        ctx.problems.push(problem);
        Some(invalid)
    };
    let problem = if !is_service {
        let shown = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        problem(
            Unresolved::InvalidKind,
            format!(
                "{shown} {name:?} is not a Service; Braid sends only to core Services (group \"\", kind Service)"
            ),
        )
    } else if namespace != ctx.namespace {
        problem(
            Unresolved::RefNotPermitted,
            format!(
                "Service {namespace}/{name} is in another namespace than the route ({}); Braid does not support ReferenceGrants yet, so a route may only send to Services of its own namespace",
                ctx.namespace
            ),
        )
    } else {
        None
    };
    Ok(Target {
        service: ServiceRef::new(namespace, name),
        port,
        problem,
    })
}

pub(super) fn port_of(field: &str, port: i32) -> Result<u16, RouteError> {
    match u16::try_from(port) {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(RouteError::unsupported(
            field,
            format!("{port} is out of range 1-65535"),
        )),
    }
}

fn timeouts(field: &str, t: Option<&HttpRouteRulesTimeouts>) -> Result<Timeouts, RouteError> {
    let Some(t) = t else {
        return Ok(Timeouts::default());
    };
    let request = duration(&format!("{field}.request"), t.request.as_deref())?;
    let backend_request = duration(
        &format!("{field}.backendRequest"),
        t.backend_request.as_deref(),
    )?;
    if let (Some(request), Some(backend)) = (request, backend_request)
        && backend > request
    {
        return Err(RouteError::unsupported(
            format!("{field}.backendRequest"),
            format!(
                "{backend:?} is longer than timeouts.request ({request:?}); one attempt cannot outlast the whole request"
            ),
        ));
    }
    Ok(Timeouts {
        request,
        backend_request,
    })
}

/// A GEP-2257 duration (`10s`, `500ms`, `1h2m`); zero means no limit, as
/// the specification says of `0s`.
fn duration(field: &str, value: Option<&str>) -> Result<Option<Duration>, RouteError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let parsed = gateway_api::Duration::from_str(value).map_err(|e| {
        RouteError::unsupported(
            field,
            format!("{value:?} is not a Gateway API duration ({e}); write e.g. 10s, 500ms or 1h2m"),
        )
    })?;
    let parsed = Duration::new(parsed.as_secs(), parsed.subsec_nanos());
    Ok((!parsed.is_zero()).then_some(parsed))
}
