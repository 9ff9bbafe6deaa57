use std::{net::SocketAddr, sync::Arc, time::Duration};

use braid_model::{
    HttpRoute, PortProtocol, Service, ServicePort, ServiceRef,
    route::{
        Backend, Filter, HeaderModifier, PathMatch, PathModifier, Redirect, Rewrite, RouteMatch,
        RouteParent, RouteRule, Timeouts,
    },
};
use braid_xds::{Delta, Updated};
use http::{Request, StatusCode};

use super::*;

fn delta<T>(name: &str, value: T) -> Delta<T> {
    Delta {
        system_version_info: String::new(),
        updated: vec![Updated {
            name: name.into(),
            version: "1".into(),
            value: Arc::new(value),
        }],
        removed: Vec::new(),
    }
}

fn service(name: &str, vip: &str) -> Service {
    Service {
        reference: ServiceRef::new("shop", name),
        hostname: format!("{name}.shop.svc.cluster.local"),
        vips: vec![vip.parse().expect("test address")],
        ports: vec![ServicePort {
            name: "http".into(),
            port: 80,
            target_port: Some(8080),
            target_port_name: None,
            app_protocol: None,
            protocol: PortProtocol::Tcp,
        }],
        endpoints: Vec::new(),
        waypoint: None,
        headless: false,
    }
}

fn backend(name: &str, weight: u32) -> Backend {
    Backend {
        service: ServiceRef::new("shop", name),
        port: 80,
        weight,
        filters: Vec::new(),
        invalid: None,
    }
}

fn rule(path: PathMatch, backends: Vec<Backend>, filters: Vec<Filter>) -> RouteRule {
    RouteRule {
        name: None,
        matches: vec![RouteMatch {
            path,
            headers: Vec::new(),
            query: Vec::new(),
            method: None,
        }],
        filters,
        backends,
        timeouts: Timeouts::default(),
    }
}

/// A mesh with Services web (198.19.0.1), web-v2 (198.19.0.2) and one
/// route on web.
fn state(rules: Vec<RouteRule>) -> ProxyState {
    let state = ProxyState::new();
    for (name, vip) in [("web", "198.19.0.1"), ("web-v2", "198.19.0.2")] {
        state.apply_services(delta(&format!("shop/{name}"), service(name, vip)));
    }
    let route = HttpRoute {
        namespace: "shop".into(),
        name: "web".into(),
        created: None,
        parents: vec![RouteParent::Service {
            service: ServiceRef::new("shop", "web"),
            port: None,
        }],
        hostnames: Vec::new(),
        rules,
    };
    state.apply_http_routes(delta("shop/web", route));
    state
}

const WEB: &str = "198.19.0.1:80";

fn request(uri: &str) -> Request<()> {
    Request::builder()
        .uri(uri)
        .header("host", "web.shop:80")
        .body(())
        .expect("test request")
}

fn routed(step: Result<Step, HttpError>) -> Routed {
    match step {
        Ok(Step::Backend(routed)) => routed,
        other => panic!("not routed to a backend: {other:?}"),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

#[test]
fn a_matching_rule_sends_to_its_backend_with_its_filters() {
    let set = HeaderModifier {
        set: vec![("x-canary".into(), "yes".into())],
        ..HeaderModifier::default()
    };
    let rewrite = Rewrite {
        hostname: Some("web-v2.shop".into()),
        path: Some(PathModifier::Prefix("/v2".into())),
    };
    let mut rule = rule(
        PathMatch::Prefix("/v1".into()),
        vec![backend("web-v2", 1)],
        vec![
            Filter::RequestHeaders(set.clone()),
            Filter::ResponseHeaders(set),
            Filter::Rewrite(rewrite),
        ],
    );
    rule.timeouts = Timeouts {
        request: Some(Duration::from_secs(2)),
        backend_request: Some(Duration::from_millis(300)),
    };
    let state = state(vec![rule]);
    let mut req = request("/v1/items?page=2");
    let routed = routed(route(&state, "shop", addr(WEB), None, &mut req));
    assert_eq!(routed.target, addr("198.19.0.2:80"));
    assert_eq!(routed.route, "shop/web");
    assert_eq!(routed.response.len(), 1);
    assert_eq!(routed.timeout, Some(Duration::from_millis(300)));
    assert_eq!(req.uri().to_string(), "/v2/items?page=2");
    assert_eq!(req.headers()["x-canary"], "yes");
    assert_eq!(req.headers()["host"], "web-v2.shop");
}

#[test]
fn unrouted_services_and_addresses_go_where_they_were_sent() {
    let state = state(vec![rule(
        PathMatch::Prefix("/".into()),
        vec![backend("web-v2", 1)],
        vec![],
    )]);
    let mut req = request("/");
    assert!(matches!(
        route(&state, "shop", addr("198.19.0.2:80"), None, &mut req),
        Ok(Step::Original)
    ));
    assert!(matches!(
        route(&state, "shop", addr("198.18.0.9:80"), None, &mut req),
        Ok(Step::Original)
    ));
}

#[test]
fn refusals_carry_their_status() {
    let state = state(vec![
        rule(
            PathMatch::Exact("/zero".into()),
            vec![backend("web-v2", 0)],
            vec![],
        ),
        rule(
            PathMatch::Exact("/missing".into()),
            vec![backend("gone", 1)],
            vec![],
        ),
        rule(
            PathMatch::Exact("/bad".into()),
            vec![Backend {
                invalid: Some("BackendNotFound: no Service shop/nope".into()),
                ..backend("nope", 1)
            }],
            vec![],
        ),
    ]);
    let status = |uri: &str| {
        let mut req = request(uri);
        match route(&state, "shop", addr(WEB), None, &mut req) {
            Err(e) => (e.status(), e.to_string()),
            Ok(step) => panic!("{uri} was not refused: {step:?}"),
        }
    };
    let (code, reason) = status("/other");
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(reason.contains("shop/web port 80"), "{reason}");
    assert_eq!(status("/zero").0, StatusCode::INTERNAL_SERVER_ERROR);
    let (code, reason) = status("/missing");
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reason.contains("shop/gone"), "{reason}");
    let (code, reason) = status("/bad");
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reason.contains("BackendNotFound"), "{reason}");
}

#[test]
fn redirects_answer_with_a_location() {
    let redirect = Redirect {
        hostname: Some("example.org".into()),
        status: 301,
        ..Redirect::default()
    };
    let state = state(vec![rule(
        PathMatch::Prefix("/".into()),
        Vec::new(),
        vec![Filter::Redirect(redirect)],
    )]);
    let mut req = request("/a?b=c");
    match route(&state, "shop", addr(WEB), None, &mut req) {
        Ok(Step::Redirect { answer, route }) => {
            assert_eq!(answer.status, 301);
            assert_eq!(answer.location, "http://example.org/a?b=c");
            assert_eq!(route, "shop/web");
        }
        other => panic!("no redirect: {other:?}"),
    }
}

#[test]
fn a_route_change_reorders_the_next_request() {
    let state = state(vec![rule(
        PathMatch::Prefix("/".into()),
        vec![backend("web-v2", 1)],
        vec![],
    )]);
    let mut req = request("/");
    assert_eq!(
        routed(route(&state, "shop", addr(WEB), None, &mut req)).target,
        addr("198.19.0.2:80")
    );
    state.apply_http_routes(Delta {
        system_version_info: String::new(),
        updated: Vec::new(),
        removed: vec!["shop/web".into()],
    });
    assert!(matches!(
        route(&state, "shop", addr(WEB), None, &mut req),
        Ok(Step::Original)
    ));
}

#[test]
fn at_a_waypoint_its_gateway_routes_serve_services_without_routes_of_their_own() {
    // Attached to the waypoint's Gateway: sends everything to web.
    let at_gateway = HttpRoute {
        namespace: "shop".into(),
        name: "everything".into(),
        created: None,
        parents: vec![RouteParent::Gateway {
            namespace: "shop".into(),
            name: "wp".into(),
            section: None,
        }],
        hostnames: vec!["web-v2.shop.svc.cluster.local".into()],
        rules: vec![rule(
            PathMatch::Prefix("/".into()),
            vec![backend("web", 1)],
            vec![],
        )],
    };
    // A proxy is a waypoint or not for its whole life: one state each.
    let mesh = || {
        let state = state(vec![rule(
            PathMatch::Prefix("/".into()),
            vec![backend("web-v2", 1)],
            vec![],
        )]);
        state.apply_http_routes(delta("shop/everything", at_gateway.clone()));
        state
    };
    let waypoint = |name: &str| braid_model::WaypointRef {
        namespace: "shop".into(),
        name: name.into(),
    };
    let v2 = addr("198.19.0.2:80");
    let mut req = request("/");
    // At wp, web-v2 (no route of its own, its hostname admitted) takes the
    // Gateway's route; web keeps its own route.
    let (state, wp) = (mesh(), waypoint("wp"));
    let routed_v2 = routed(route(&state, "shop", v2, Some(&wp), &mut req));
    assert_eq!(
        (routed_v2.route.as_str(), routed_v2.target),
        ("shop/everything", addr(WEB))
    );
    let routed_web = routed(route(&state, "shop", addr(WEB), Some(&wp), &mut req));
    assert_eq!(routed_web.route, "shop/web");
    // Not at a waypoint, or at another one: the Gateway's route does not apply.
    assert!(matches!(
        route(&mesh(), "shop", v2, None, &mut req),
        Ok(Step::Original)
    ));
    assert!(matches!(
        route(&mesh(), "shop", v2, Some(&waypoint("other")), &mut req),
        Ok(Step::Original)
    ));
}
