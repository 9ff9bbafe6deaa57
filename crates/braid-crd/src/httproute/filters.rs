//! HTTPRoute filters (of a rule and of a backendRef) → model filters.

use braid_model::route::{Filter, HeaderModifier, Mirror, PathModifier, Redirect, Rewrite};
use gateway_api::apis::standard::httproutes::{
    HttpRouteRulesBackendRefsFilters, HttpRouteRulesFilters,
    HttpRouteRulesFiltersRequestHeaderModifier, HttpRouteRulesFiltersRequestMirror,
    HttpRouteRulesFiltersRequestRedirect, HttpRouteRulesFiltersRequestRedirectPathType,
    HttpRouteRulesFiltersRequestRedirectScheme, HttpRouteRulesFiltersType,
    HttpRouteRulesFiltersUrlRewrite, HttpRouteRulesFiltersUrlRewritePathType,
};

use super::{
    PendingRef, RefAt, RouteError,
    convert::{Ctx, port_of, service_ref},
};

/// The redirect status when `statusCode` is not set.
const DEFAULT_REDIRECT_STATUS: u16 = 302;

/// The redirect statuses the specification's schema allows.
const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// A rule's filters; a mirror whose reference cannot resolve is dropped
/// (and reported), the others are kept in order.
pub(super) fn rule_filters(
    ctx: &mut Ctx,
    rule: usize,
    field: &str,
    filters: &[HttpRouteRulesFilters],
) -> Result<Vec<Filter>, RouteError> {
    let mut out = Vec::with_capacity(filters.len());
    for (i, f) in filters.iter().enumerate() {
        let at = format!("{field}.filters[{i}]");
        let place = |filter| RefAt::Mirror {
            rule,
            backend: None,
            filter,
        };
        if let Some(filter) = filter(ctx, &at, f, place(out.len()))? {
            out.push(filter);
        }
    }
    Ok(out)
}

/// A backendRef's filters, which the specification defines with the same
/// shape as a rule's (as separate generated types).
pub(super) fn backend_filters(
    ctx: &mut Ctx,
    rule: usize,
    backend: usize,
    field: &str,
    filters: &[HttpRouteRulesBackendRefsFilters],
) -> Result<Vec<Filter>, RouteError> {
    let mut out = Vec::with_capacity(filters.len());
    for (i, f) in filters.iter().enumerate() {
        let at = format!("{field}.filters[{i}]");
        // Same schema, so the JSON of one is the other: one converter
        // instead of two copies of every filter.
        let f: HttpRouteRulesFilters = serde_json::to_value(f)
            .and_then(serde_json::from_value)
            .map_err(|e| RouteError::unsupported(&at, e.to_string()))?;
        let place = RefAt::Mirror {
            rule,
            backend: Some(backend),
            filter: out.len(),
        };
        if let Some(filter) = filter(ctx, &at, &f, place)? {
            out.push(filter);
        }
    }
    Ok(out)
}

/// One filter; `None` for a mirror that cannot resolve.
fn filter(
    ctx: &mut Ctx,
    field: &str,
    f: &HttpRouteRulesFilters,
    place: RefAt,
) -> Result<Option<Filter>, RouteError> {
    let missing = |name: &str| {
        RouteError::unsupported(
            format!("{field}.{name}"),
            format!("is required when type is {}", type_name(&f.r#type)),
        )
    };
    Ok(Some(match f.r#type {
        HttpRouteRulesFiltersType::RequestHeaderModifier => {
            let m = f
                .request_header_modifier
                .as_ref()
                .ok_or_else(|| missing("requestHeaderModifier"))?;
            Filter::RequestHeaders(headers(&format!("{field}.requestHeaderModifier"), m)?)
        }
        HttpRouteRulesFiltersType::ResponseHeaderModifier => {
            let m = f
                .response_header_modifier
                .as_ref()
                .ok_or_else(|| missing("responseHeaderModifier"))?;
            // Same shape again (set, add, remove of name/value pairs).
            let m: HttpRouteRulesFiltersRequestHeaderModifier = serde_json::to_value(m)
                .and_then(serde_json::from_value)
                .map_err(|e| RouteError::unsupported(field, e.to_string()))?;
            Filter::ResponseHeaders(headers(&format!("{field}.responseHeaderModifier"), &m)?)
        }
        HttpRouteRulesFiltersType::RequestRedirect => {
            let r = f
                .request_redirect
                .as_ref()
                .ok_or_else(|| missing("requestRedirect"))?;
            Filter::Redirect(redirect(&format!("{field}.requestRedirect"), r)?)
        }
        HttpRouteRulesFiltersType::UrlRewrite => {
            let r = f
                .url_rewrite
                .as_ref()
                .ok_or_else(|| missing("urlRewrite"))?;
            Filter::Rewrite(rewrite(r))
        }
        HttpRouteRulesFiltersType::RequestMirror => {
            let m = f
                .request_mirror
                .as_ref()
                .ok_or_else(|| missing("requestMirror"))?;
            match mirror(ctx, &format!("{field}.requestMirror"), m, place)? {
                Some(m) => Filter::Mirror(m),
                None => return Ok(None),
            }
        }
        HttpRouteRulesFiltersType::ExtensionRef | HttpRouteRulesFiltersType::Cors => {
            return Err(RouteError::unsupported(
                format!("{field}.type"),
                format!(
                    "filters of type {} are not supported by Braid; remove the filter (supported: RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror)",
                    type_name(&f.r#type)
                ),
            ));
        }
    }))
}

fn type_name(t: &HttpRouteRulesFiltersType) -> String {
    match serde_json::to_value(t) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{t:?}"),
    }
}

/// A header name, checked and lower-cased (the model compares lower case).
pub(super) fn header_name(field: &str, name: &str) -> Result<String, RouteError> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map(|n| n.as_str().to_string())
        .map_err(|_| {
            RouteError::unsupported(
                field,
                format!("{name:?} is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"),
            )
        })
}

fn headers(
    field: &str,
    m: &HttpRouteRulesFiltersRequestHeaderModifier,
) -> Result<HeaderModifier, RouteError> {
    let pair = |at: String, name: &str, value: &str| -> Result<(String, String), RouteError> {
        let name = header_name(&format!("{at}.name"), name)?;
        http::HeaderValue::from_str(value).map_err(|_| {
            RouteError::unsupported(
                format!("{at}.value"),
                format!("{value:?} is not a valid HTTP header value (no control characters)"),
            )
        })?;
        Ok((name, value.to_string()))
    };
    let set = m.set.iter().flatten().enumerate();
    let add = m.add.iter().flatten().enumerate();
    Ok(HeaderModifier {
        set: set
            .map(|(i, h)| pair(format!("{field}.set[{i}]"), &h.name, &h.value))
            .collect::<Result<_, _>>()?,
        add: add
            .map(|(i, h)| pair(format!("{field}.add[{i}]"), &h.name, &h.value))
            .collect::<Result<_, _>>()?,
        remove: m
            .remove
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, name)| header_name(&format!("{field}.remove[{i}]"), name))
            .collect::<Result<_, _>>()?,
    })
}

fn redirect(field: &str, r: &HttpRouteRulesFiltersRequestRedirect) -> Result<Redirect, RouteError> {
    let status = match r.status_code {
        None => DEFAULT_REDIRECT_STATUS,
        Some(code) => u16::try_from(code)
            .ok()
            .filter(|c| REDIRECT_STATUSES.contains(c))
            .ok_or_else(|| {
                RouteError::unsupported(
                    format!("{field}.statusCode"),
                    format!("{code} is not a redirect status; use one of {REDIRECT_STATUSES:?}"),
                )
            })?,
    };
    let path = r.path.as_ref().map(|p| match p.r#type {
        HttpRouteRulesFiltersRequestRedirectPathType::ReplaceFullPath => {
            PathModifier::Full(p.replace_full_path.clone().unwrap_or_default())
        }
        HttpRouteRulesFiltersRequestRedirectPathType::ReplacePrefixMatch => {
            PathModifier::Prefix(p.replace_prefix_match.clone().unwrap_or_default())
        }
    });
    Ok(Redirect {
        scheme: r.scheme.as_ref().map(|s| match s {
            HttpRouteRulesFiltersRequestRedirectScheme::Http => "http".to_string(),
            HttpRouteRulesFiltersRequestRedirectScheme::Https => "https".to_string(),
        }),
        hostname: r.hostname.clone(),
        path,
        port: r
            .port
            .map(|p| port_of(&format!("{field}.port"), p))
            .transpose()?,
        status,
    })
}

fn rewrite(r: &HttpRouteRulesFiltersUrlRewrite) -> Rewrite {
    Rewrite {
        hostname: r.hostname.clone(),
        path: r.path.as_ref().map(|p| match p.r#type {
            HttpRouteRulesFiltersUrlRewritePathType::ReplaceFullPath => {
                PathModifier::Full(p.replace_full_path.clone().unwrap_or_default())
            }
            HttpRouteRulesFiltersUrlRewritePathType::ReplacePrefixMatch => {
                PathModifier::Prefix(p.replace_prefix_match.clone().unwrap_or_default())
            }
        }),
    }
}

/// A mirror; `None` (and a problem recorded) when its reference cannot
/// resolve: there is nowhere to send the copies.
fn mirror(
    ctx: &mut Ctx,
    field: &str,
    m: &HttpRouteRulesFiltersRequestMirror,
    place: RefAt,
) -> Result<Option<Mirror>, RouteError> {
    let parts_per_million = match (m.percent, &m.fraction) {
        (Some(_), Some(_)) => {
            return Err(RouteError::unsupported(
                field,
                "sets both percent and fraction; set one of them",
            ));
        }
        (None, None) => 1_000_000,
        (Some(percent @ 0..=100), None) => percent.unsigned_abs() * 10_000,
        (Some(percent), None) => {
            return Err(RouteError::unsupported(
                format!("{field}.percent"),
                format!("{percent} is out of range 0-100"),
            ));
        }
        (None, Some(f)) => {
            let denominator = f.denominator.unwrap_or(100);
            if denominator < 1 || f.numerator < 0 || f.numerator > denominator {
                return Err(RouteError::unsupported(
                    format!("{field}.fraction"),
                    format!(
                        "{}/{denominator} is not a fraction from 0 to 1; the denominator must be at least 1 and not below the numerator",
                        f.numerator
                    ),
                ));
            }
            let ppm = i64::from(f.numerator) * 1_000_000 / i64::from(denominator);
            u32::try_from(ppm).unwrap_or(1_000_000)
        }
    };
    let at = format!("{field}.backendRef");
    let b = &m.backend_ref;
    let target = service_ref(
        ctx,
        &at,
        b.group.as_deref(),
        b.kind.as_deref(),
        &b.name,
        b.namespace.as_deref(),
        b.port,
    )?;
    if target.problem.is_some() {
        return Ok(None);
    }
    ctx.refs.push(PendingRef {
        at: place,
        field: at,
    });
    Ok(Some(Mirror {
        service: target.service,
        port: target.port,
        parts_per_million,
    }))
}
