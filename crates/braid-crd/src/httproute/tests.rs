use std::time::Duration;

use braid_model::{
    ServiceRef,
    route::{Filter, PathMatch, PathModifier, RouteParent, StringMatch},
};

use super::*;

/// Converts an HTTPRoute written as YAML (metadata + spec).
fn convert(yaml: &str) -> Result<ConvertedRoute, RouteError> {
    #[derive(serde::Deserialize)]
    struct Object {
        metadata: ObjectMeta,
        spec: serde_json::Value,
    }
    let object: Object = serde_yaml_ng::from_str(yaml).expect("test YAML parses");
    http_route(&object.metadata, &spec_from_json(object.spec)?)
}

fn ok(yaml: &str) -> ConvertedRoute {
    convert(yaml).unwrap_or_else(|e| panic!("route rejected: {e}"))
}

fn err(yaml: &str) -> RouteError {
    match convert(yaml) {
        Ok(route) => panic!("route accepted: {route:?}"),
        Err(e) => e,
    }
}

const MINIMAL: &str = r#"
metadata: {name: web, namespace: shop, creationTimestamp: "2024-01-02T03:04:05Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules:
  - backendRefs: [{name: web-v1, port: 80}]
"#;

#[test]
fn defaults_of_a_minimal_route() {
    let c = ok(MINIMAL);
    let route = &c.route;
    assert_eq!(
        (route.namespace.as_str(), route.name.as_str()),
        ("shop", "web")
    );
    assert_eq!(route.created, Some(1_704_164_645));
    assert_eq!(
        route.parents,
        [RouteParent::Service {
            service: ServiceRef::new("shop", "web"),
            port: None
        }]
    );
    let rule = &route.rules[0];
    // No matches: one match of path prefix `/`.
    assert_eq!(rule.matches.len(), 1);
    assert_eq!(rule.matches[0].path, PathMatch::Prefix("/".into()));
    assert!(rule.matches[0].headers.is_empty() && rule.matches[0].method.is_none());
    let backend = &rule.backends[0];
    assert_eq!(backend.service, ServiceRef::new("shop", "web-v1"));
    assert_eq!(
        (backend.port, backend.weight, &backend.invalid),
        (80, 1, &None)
    );
    assert_eq!(rule.timeouts, Default::default());
    assert!(c.problems.is_empty());
    assert_eq!(
        c.refs,
        [PendingRef {
            at: RefAt::Backend {
                rule: 0,
                backend: 0
            },
            field: "spec.rules[0].backendRefs[0]".into()
        }]
    );
}

#[test]
fn a_route_without_namespace_or_rules_is_in_default_and_empty() {
    let c = ok("metadata: {name: web}\nspec: {}\n");
    assert_eq!(c.route.namespace, "default");
    assert!(c.route.rules.is_empty() && c.route.parents.is_empty());
    assert_eq!(c.route.created, None);
}

#[test]
fn parent_kinds_and_namespaces() {
    let c = ok(r#"
metadata: {name: web, namespace: shop}
spec:
  parentRefs:
  - {group: "", kind: Service, name: api, namespace: other, port: 8080}
  - {name: waypoint, sectionName: http}
  - {group: gateway.networking.k8s.io, kind: Gateway, name: wp, namespace: infra}
  - {group: example.com, kind: Mesh, name: foreign}
"#);
    assert_eq!(
        c.route.parents,
        [
            RouteParent::Service {
                service: ServiceRef::new("other", "api"),
                port: Some(8080)
            },
            // Group and kind default to a Gateway, the namespace to the route's.
            RouteParent::Gateway {
                namespace: "shop".into(),
                name: "waypoint".into(),
                section: Some("http".into())
            },
            RouteParent::Gateway {
                namespace: "infra".into(),
                name: "wp".into(),
                section: None
            },
        ]
    );
}

#[test]
fn matches_with_their_defaults() {
    let c = ok(r#"
metadata: {name: web, namespace: shop}
spec:
  rules:
  - matches:
    - path: {type: Exact, value: /login}
      headers: [{name: X-User, value: alice}, {name: x-tier, type: RegularExpression, value: "gold|silver"}]
      queryParams: [{name: Debug, value: "1"}]
      method: POST
    - path: {type: RegularExpression, value: "/v[0-9]+/.*"}
    - path: {value: /api}
    - headers: [{name: x-a, value: b}]
"#);
    let m = &c.route.rules[0].matches;
    assert_eq!(m[0].path, PathMatch::Exact("/login".into()));
    // Header names lower case, type Exact by default; query names as written.
    assert_eq!(m[0].headers[0].name, "x-user");
    assert_eq!(m[0].headers[0].value, StringMatch::Exact("alice".into()));
    assert!(matches!(&m[0].headers[1].value, StringMatch::Regex(p) if p.matches("gold")));
    assert_eq!(m[0].query[0].name, "Debug");
    assert_eq!(m[0].method.as_deref(), Some("POST"));
    assert!(matches!(&m[1].path, PathMatch::Regex(p) if p.matches("/v2/x")));
    // Path type defaults to PathPrefix, and value to `/`.
    assert_eq!(m[2].path, PathMatch::Prefix("/api".into()));
    assert_eq!(m[3].path, PathMatch::Prefix("/".into()));
}

#[test]
fn filters_with_their_defaults() {
    let c = ok(r#"
metadata: {name: web, namespace: shop}
spec:
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Set, value: "1"}], add: [{name: x-add, value: "2"}], remove: [X-Gone]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: x-served-by, value: braid}]}
    - type: URLRewrite
      urlRewrite: {hostname: api.internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, port: 8080}, percent: 25}
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, port: 8080}, fraction: {numerator: 1, denominator: 3}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, port: 8080}, fraction: {numerator: 5}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, port: 8080}}
  - filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, port: 8443, path: {type: ReplaceFullPath, replaceFullPath: /login}}
    - type: RequestRedirect
      requestRedirect: {statusCode: 301}
"#);
    let f = &c.route.rules[0].filters;
    let Filter::RequestHeaders(h) = &f[0] else {
        panic!("{f:?}")
    };
    assert_eq!(h.set, [("x-set".to_string(), "1".to_string())]);
    assert_eq!(h.add, [("x-add".to_string(), "2".to_string())]);
    assert_eq!(h.remove, ["x-gone"]);
    assert!(matches!(&f[1], Filter::ResponseHeaders(h) if h.add.len() == 1));
    let Filter::Rewrite(r) = &f[2] else {
        panic!("{f:?}")
    };
    assert_eq!(r.hostname.as_deref(), Some("api.internal"));
    assert_eq!(r.path, Some(PathModifier::Prefix("/v2".into())));
    let ppm: Vec<u32> = f[3..]
        .iter()
        .map(|f| match f {
            Filter::Mirror(m) => m.parts_per_million,
            other => panic!("{other:?}"),
        })
        .collect();
    // 25 %, 1/3, 5/100 (denominator 100 by default), everything.
    assert_eq!(ppm, [250_000, 333_333, 50_000, 1_000_000]);
    let Filter::Mirror(m) = &f[3] else { panic!() };
    assert_eq!(
        (m.service.clone(), m.port),
        (ServiceRef::new("shop", "shadow"), 8080)
    );
    assert_eq!(c.refs.len(), 4, "each mirror is looked up: {:?}", c.refs);
    assert_eq!(
        c.refs[0],
        PendingRef {
            at: RefAt::Mirror {
                rule: 0,
                backend: None,
                filter: 3
            },
            field: "spec.rules[0].filters[3].requestMirror.backendRef".into()
        }
    );

    let f = &c.route.rules[1].filters;
    let Filter::Redirect(r) = &f[0] else {
        panic!("{f:?}")
    };
    assert_eq!(
        (r.scheme.as_deref(), r.port, r.status),
        (Some("https"), Some(8443), 302)
    );
    assert_eq!(r.path, Some(PathModifier::Full("/login".into())));
    assert!(matches!(&f[1], Filter::Redirect(r) if r.status == 301 && r.scheme.is_none()));
}

#[test]
fn backend_weights_filters_and_timeouts() {
    let c = ok(r#"
metadata: {name: web, namespace: shop}
spec:
  rules:
  - backendRefs:
    - {name: v1, port: 80, weight: 80}
    - name: v2
      port: 80
      weight: 0
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-canary, value: "yes"}]}}]
    timeouts: {request: 1h2m, backendRequest: 500ms}
  - timeouts: {request: 0s}
"#);
    let rule = &c.route.rules[0];
    assert_eq!(rule.backends[0].weight, 80);
    assert_eq!(rule.backends[1].weight, 0);
    assert!(
        matches!(&rule.backends[1].filters[..], [Filter::RequestHeaders(h)] if h.set[0].0 == "x-canary")
    );
    assert_eq!(rule.timeouts.request, Some(Duration::from_secs(3720)));
    assert_eq!(
        rule.timeouts.backend_request,
        Some(Duration::from_millis(500))
    );
    // `0s` disables the timeout.
    assert_eq!(c.route.rules[1].timeouts.request, None);
}

#[test]
fn unresolvable_backends_are_kept_invalid_and_reported() {
    let c = ok(r#"
metadata: {name: web, namespace: shop}
spec:
  rules:
  - backendRefs:
    - {name: v1, port: 80}
    - {group: example.com, kind: Bucket, name: files}
    - {name: api, namespace: other, port: 80}
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, namespace: other, port: 80}}
"#);
    let rule = &c.route.rules[0];
    assert_eq!(rule.backends.len(), 3, "a bad backend keeps its share");
    assert_eq!(rule.backends[0].invalid, None);
    let reasons: Vec<(&str, Unresolved)> = c
        .problems
        .iter()
        .map(|p| (p.field.as_str(), p.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            (
                "spec.rules[0].filters[0].requestMirror.backendRef",
                Unresolved::RefNotPermitted
            ),
            ("spec.rules[0].backendRefs[1]", Unresolved::InvalidKind),
            ("spec.rules[0].backendRefs[2]", Unresolved::RefNotPermitted),
        ]
    );
    let invalid = rule.backends[1].invalid.as_deref().unwrap_or_default();
    assert!(
        invalid.starts_with("InvalidKind: Bucket.example.com \"files\""),
        "{invalid}"
    );
    let invalid = rule.backends[2].invalid.as_deref().unwrap_or_default();
    assert!(invalid.contains("ReferenceGrant"), "{invalid}");
    // The mirror has nowhere to send copies: dropped.
    assert!(rule.filters.is_empty());
    // Only the good backend is left for the index to look up.
    assert_eq!(c.refs.len(), 1);
}

/// Every way a route is refused: the field path and the reason.
#[test]
fn errors_name_the_field() {
    let cases = [
        (
            "rules: [{backendRefs: [{name: v1, port: 70000}]}]",
            "spec.rules[0].backendRefs[0].port",
            "out of range",
        ),
        (
            "rules: [{backendRefs: [{name: v1}]}]",
            "spec.rules[0].backendRefs[0].port",
            "is required",
        ),
        (
            "rules: [{}, {backendRefs: [{name: v1, port: 80, weight: -1}]}]",
            "spec.rules[1].backendRefs[0].weight",
            "out of range",
        ),
        (
            "parentRefs: [{group: '', kind: Service, name: web, port: 0}]",
            "spec.parentRefs[0].port",
            "out of range",
        ),
        (
            "rules: [{filters: [{type: CORS, cors: {}}]}]",
            "spec.rules[0].filters[0].type",
            "filters of type CORS are not supported",
        ),
        (
            "rules: [{filters: [{type: ExtensionRef, extensionRef: {group: x, kind: y, name: z}}]}]",
            "spec.rules[0].filters[0].type",
            "ExtensionRef",
        ),
        (
            "rules: [{filters: [{type: Teleport}]}]",
            "spec.rules[0].filters[0].type",
            "unknown variant",
        ),
        (
            "rules: [{filters: [{type: RequestRedirect}]}]",
            "spec.rules[0].filters[0].requestRedirect",
            "is required when type is RequestRedirect",
        ),
        (
            "rules: [{matches: [{path: {type: RegularExpression, value: '(unclosed'}}]}]",
            "spec.rules[0].matches[0].path.value",
            "not valid",
        ),
        (
            "rules: [{matches: [{path: {type: Exact, value: 'no-slash'}}]}]",
            "spec.rules[0].matches[0].path.value",
            "must start with '/'",
        ),
        (
            "rules: [{matches: [{headers: [{name: 'bad header', value: x}]}]}]",
            "spec.rules[0].matches[0].headers[0].name",
            "not a valid HTTP header name",
        ),
        (
            "rules: [{matches: [{headers: [{name: x, type: RegularExpression, value: '['}]}]}]",
            "spec.rules[0].matches[0].headers[0].value",
            "not valid",
        ),
        (
            "rules: [{matches: [{queryParams: [{name: q, type: RegularExpression, value: '*'}]}]}]",
            "spec.rules[0].matches[0].queryParams[0].value",
            "not valid",
        ),
        (
            "rules: [{matches: [{method: BREW}]}]",
            "spec.rules[0].matches[0].method",
            "unknown variant",
        ),
        (
            "rules: [{filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: 'x y', value: v}]}}]}]",
            "spec.rules[0].filters[0].requestHeaderModifier.set[0].name",
            "header name",
        ),
        (
            "rules: [{filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x, value: \"a\\nb\"}]}}]}]",
            "spec.rules[0].filters[0].requestHeaderModifier.add[0].value",
            "header value",
        ),
        (
            "rules: [{filters: [{type: RequestRedirect, requestRedirect: {statusCode: 200}}]}]",
            "spec.rules[0].filters[0].requestRedirect.statusCode",
            "not a redirect status",
        ),
        (
            "rules: [{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: s, port: 80}, percent: 101}}]}]",
            "spec.rules[0].filters[0].requestMirror.percent",
            "out of range",
        ),
        (
            "rules: [{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: s, port: 80}, fraction: {numerator: 3, denominator: 2}}}]}]",
            "spec.rules[0].filters[0].requestMirror.fraction",
            "not a fraction",
        ),
        (
            "rules: [{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: s, port: 80}, percent: 5, fraction: {numerator: 1}}}]}]",
            "spec.rules[0].filters[0].requestMirror",
            "set one of them",
        ),
        (
            "rules: [{timeouts: {request: 10 seconds}}]",
            "spec.rules[0].timeouts.request",
            "not a Gateway API duration",
        ),
        (
            "rules: [{timeouts: {request: 1s, backendRequest: 2s}}]",
            "spec.rules[0].timeouts.backendRequest",
            "longer than timeouts.request",
        ),
        (
            "rules: [{backendRefs: [{name: v, port: 80, filters: [{type: CORS}]}]}]",
            "spec.rules[0].backendRefs[0].filters[0].type",
            "not supported",
        ),
    ];
    for (spec, field, message) in cases {
        let e = err(&format!(
            "metadata: {{name: web, namespace: shop}}\nspec:\n  {spec}\n"
        ));
        assert_eq!(e.field, field, "{spec}: {e}");
        assert_eq!(e.reason, NotAccepted::UnsupportedValue, "{spec}");
        assert!(e.message.contains(message), "{spec}: {e}");
        assert!(
            e.message.chars().next().is_some_and(|c| !c.is_uppercase()),
            "lower case: {e}"
        );
    }
    let e = err("metadata: {namespace: shop}\nspec: {}\n");
    assert_eq!(e.field, "metadata.name");
}

#[test]
fn a_route_error_becomes_a_field_error_with_its_reason() {
    let e = err("metadata: {name: w}\nspec: {rules: [{filters: [{type: CORS}]}]}\n");
    let f = braid_model::k8s::FieldError::from(e);
    assert_eq!(f.field, "spec.rules[0].filters[0].type");
    assert!(f.message.starts_with("UnsupportedValue: "), "{f}");
}
