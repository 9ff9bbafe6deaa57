use std::time::Duration;

use super::*;

fn svc(name: &str) -> ServiceRef {
    ServiceRef::new("shop", name)
}

/// A route with every variant of every field set at least once.
fn route() -> model::HttpRoute {
    let headers = r::HeaderModifier {
        set: vec![("x-set".into(), "1".into())],
        add: vec![("x-add".into(), "2".into())],
        remove: vec!["x-remove".into()],
    };
    model::HttpRoute {
        namespace: "shop".into(),
        name: "web".into(),
        created: Some(1_700_000_000),
        parents: vec![
            r::RouteParent::Service {
                service: svc("web"),
                port: Some(80),
            },
            r::RouteParent::Service {
                service: ServiceRef::new("other", "api"),
                port: None,
            },
            r::RouteParent::Gateway {
                namespace: "shop".into(),
                name: "waypoint".into(),
                section: Some("http".into()),
            },
        ],
        hostnames: vec!["web.example.com".into()],
        rules: vec![
            r::RouteRule {
                name: Some("canary".into()),
                matches: vec![
                    r::RouteMatch {
                        path: r::PathMatch::Prefix("/api".into()),
                        headers: vec![
                            r::ValueMatch {
                                name: "x-user".into(),
                                value: r::StringMatch::Exact("alice".into()),
                            },
                            r::ValueMatch {
                                name: "x-tier".into(),
                                value: r::StringMatch::Regex(
                                    r::Pattern::new("gold|silver").unwrap(),
                                ),
                            },
                        ],
                        query: vec![r::ValueMatch {
                            name: "debug".into(),
                            value: r::StringMatch::Exact("1".into()),
                        }],
                        method: Some("GET".into()),
                    },
                    r::RouteMatch {
                        path: r::PathMatch::Exact("/".into()),
                        headers: vec![],
                        query: vec![],
                        method: None,
                    },
                    r::RouteMatch {
                        path: r::PathMatch::Regex(r::Pattern::new("/v[0-9]+/.*").unwrap()),
                        headers: vec![],
                        query: vec![],
                        method: None,
                    },
                ],
                filters: vec![
                    r::Filter::RequestHeaders(headers.clone()),
                    r::Filter::ResponseHeaders(headers.clone()),
                    r::Filter::Rewrite(r::Rewrite {
                        hostname: Some("api.internal".into()),
                        path: Some(r::PathModifier::Prefix("/v2".into())),
                    }),
                    r::Filter::Mirror(r::Mirror {
                        service: svc("shadow"),
                        port: 8080,
                        parts_per_million: 250_000,
                    }),
                ],
                backends: vec![
                    r::Backend {
                        service: svc("web-v1"),
                        port: 80,
                        weight: 80,
                        filters: vec![r::Filter::RequestHeaders(headers)],
                        invalid: None,
                    },
                    r::Backend {
                        service: svc("web-v2"),
                        port: 80,
                        weight: 0,
                        filters: vec![],
                        invalid: Some("BackendNotFound: no Service shop/web-v2".into()),
                    },
                ],
                timeouts: r::Timeouts {
                    request: Some(Duration::from_secs(10)),
                    backend_request: Some(Duration::from_millis(500)),
                },
            },
            r::RouteRule {
                name: None,
                matches: vec![r::RouteMatch {
                    path: r::PathMatch::Prefix("/".into()),
                    headers: vec![],
                    query: vec![],
                    method: None,
                }],
                filters: vec![
                    r::Filter::Redirect(r::Redirect {
                        scheme: Some("https".into()),
                        hostname: Some("secure.example.com".into()),
                        path: Some(r::PathModifier::Full("/login".into())),
                        port: Some(8443),
                        status: 301,
                    }),
                    r::Filter::Redirect(r::Redirect {
                        status: 302,
                        ..Default::default()
                    }),
                ],
                backends: vec![],
                timeouts: r::Timeouts::default(),
            },
        ],
    }
}

#[test]
fn http_route_round_trips() {
    let route = route();
    let back = model::HttpRoute::try_from(http_route_to_proto(&route)).unwrap();
    assert_eq!(back, route);
}

#[test]
fn an_empty_route_round_trips() {
    let route = model::HttpRoute {
        namespace: "shop".into(),
        name: "empty".into(),
        created: None,
        parents: vec![],
        hostnames: vec![],
        rules: vec![],
    };
    let back = model::HttpRoute::try_from(http_route_to_proto(&route)).unwrap();
    assert_eq!(back, route);
}

#[test]
fn a_regex_that_does_not_compile_is_a_nack_naming_the_field() {
    let mut p = http_route_to_proto(&route());
    p.rules[0].matches[0].headers[1].value = Some(wire::StringMatch {
        kind: Some(wire::string_match::Kind::Regex("(unclosed".into())),
    });
    let err = model::HttpRoute::try_from(p).unwrap_err();
    assert_eq!(err.field, "rules[0].matches[0].headers[1].value.regex");
    assert_eq!(err.name, "shop/web");
    assert!(err.to_string().contains("(unclosed"), "{err}");

    let mut p = http_route_to_proto(&route());
    p.rules[0].matches[2].path = Some(wire::PathMatch {
        kind: Some(wire::path_match::Kind::Regex("[".into())),
    });
    let err = model::HttpRoute::try_from(p).unwrap_err();
    assert_eq!(err.field, "rules[0].matches[2].path.regex");
}

#[test]
fn a_port_over_65535_is_a_nack_naming_the_field() {
    let mut p = http_route_to_proto(&route());
    p.rules[0].backends[1].port = 70_000;
    let err = model::HttpRoute::try_from(p).unwrap_err();
    assert_eq!(err.field, "rules[0].backends[1].port");
    assert!(err.message.contains("70000"), "{err}");

    let mut p = http_route_to_proto(&route());
    let Some(wire::route_parent::Kind::Service(parent)) = &mut p.parents[0].kind else {
        panic!("the first parent is a Service");
    };
    parent.port = Some(65_536);
    let err = model::HttpRoute::try_from(p).unwrap_err();
    assert_eq!(err.field, "parents[0].service.port");
}

/// Breaks one field of a valid wire route.
type Breaker = Box<dyn Fn(&mut wire::HttpRoute)>;

#[test]
fn unset_oneofs_and_bad_values_are_nacks() {
    let cases: Vec<(&str, Breaker)> = vec![
        ("parents[2]", Box::new(|p| p.parents[2].kind = None)),
        (
            "rules[0].matches[1].path",
            Box::new(|p| p.rules[0].matches[1].path = None),
        ),
        (
            "rules[0].matches[0].query[0].value",
            Box::new(|p| p.rules[0].matches[0].query[0].value = None),
        ),
        (
            "rules[0].filters[3]",
            Box::new(|p| p.rules[0].filters[3].kind = None),
        ),
        (
            "rules[0].backends[0].service",
            Box::new(|p| p.rules[0].backends[0].service = None),
        ),
        (
            "rules[1].filters[0].redirect.status",
            Box::new(|p| {
                if let Some(wire::filter::Kind::Redirect(r)) = &mut p.rules[1].filters[0].kind {
                    r.status = 200;
                }
            }),
        ),
        (
            "rules[0].timeouts.request",
            Box::new(|p| {
                if let Some(t) = &mut p.rules[0].timeouts {
                    t.request = Some(prost_types::Duration {
                        seconds: -1,
                        nanos: 0,
                    });
                }
            }),
        ),
    ];
    for (field, break_it) in cases {
        let mut p = http_route_to_proto(&route());
        break_it(&mut p);
        let err = model::HttpRoute::try_from(p).unwrap_err();
        assert_eq!(err.field, field, "{err}");
        assert_eq!(err.kind, "HttpRoute");
    }
}
