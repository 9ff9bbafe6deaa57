use braid_model::route::{Backend, PathMatch, RouteMatch, RouteRule, Timeouts};

use super::*;

fn route() -> Arc<HttpRoute> {
    let rule = |path: &str, backends: Vec<(&str, u32)>| RouteRule {
        name: None,
        matches: vec![RouteMatch {
            path: PathMatch::Prefix(path.into()),
            headers: Vec::new(),
            query: Vec::new(),
            method: None,
        }],
        filters: Vec::new(),
        backends: backends
            .into_iter()
            .map(|(name, weight)| Backend {
                service: ServiceRef::new("shop", name),
                port: 80,
                weight,
                filters: Vec::new(),
                invalid: None,
            })
            .collect(),
        timeouts: Timeouts::default(),
    };
    Arc::new(HttpRoute {
        namespace: "shop".into(),
        name: "web".into(),
        created: None,
        parents: vec![RouteParent::Service {
            service: ServiceRef::new("shop", "web"),
            port: None,
        }],
        hostnames: Vec::new(),
        rules: vec![
            rule("/api", vec![("web-v1", 80), ("web-v2", 20)]),
            rule("/off", vec![("web-v1", 0)]),
        ],
    })
}

fn ask(path: &str) -> (String, bool) {
    let routes = [route()];
    let service = ServiceRef::new("shop", "web");
    let table = ServiceRoutes::for_service(&routes, &service, 80, "shop");
    let headers = HeaderMap::new();
    let request = Request {
        method: "GET",
        path,
        query: None,
        headers: &headers,
    };
    explain(&table, &service, 80, &request)
}

#[test]
fn explains_the_rule_a_request_takes_and_its_split() {
    let (text, found) = ask("/api/items");
    assert!(found);
    assert!(text.contains("route shop/web rule 0"), "{text}");
    assert!(text.contains("-> shop/web-v1:80 80.0%"), "{text}");
    assert!(text.contains("-> shop/web-v2:80 20.0%"), "{text}");
    let (text, found) = ask("/other");
    assert!(!found);
    assert!(text.contains("answered 404"), "{text}");
    let (text, _) = ask("/off");
    assert!(text.contains("answered 500"), "{text}");
}

#[test]
fn lists_routes_and_parses_arguments() {
    let text = list(&[route()]);
    assert!(
        text.contains("shop/web  parents: Service shop/web"),
        "{text}"
    );
    assert!(
        text.contains("rule 1: 1 match(es), 0 filter(s) -> shop/web-v1:80 (0)"),
        "{text}"
    );
    assert!(parse_service("shop").is_err());
    assert_eq!(
        parse_service("shop/web").expect("valid"),
        ServiceRef::new("shop", "web")
    );
    let headers = parse_headers(&["x-canary: yes".into()]).expect("valid");
    assert_eq!(headers["x-canary"], "yes");
    assert!(parse_headers(&["no-colon".into()]).is_err());
}

/// Service `shop/<name>`, behind waypoint `shop/wp` when `behind`.
fn service(name: &str, behind: bool) -> Service {
    Service {
        reference: ServiceRef::new("shop", name),
        hostname: format!("{name}.shop.svc.cluster.local"),
        vips: Vec::new(),
        ports: Vec::new(),
        endpoints: Vec::new(),
        waypoint: behind.then(|| WaypointRef {
            name: "wp".into(),
            namespace: "shop".into(),
        }),
        headless: false,
    }
}

/// `route()` attached to Gateway shop/wp for `hostname` instead.
fn at_gateway(hostname: &str) -> Arc<HttpRoute> {
    let mut route = (*route()).clone();
    route.name = "via-wp".into();
    route.parents = vec![RouteParent::Gateway {
        namespace: "shop".into(),
        name: "wp".into(),
        section: None,
    }];
    route.hostnames = vec![hostname.into()];
    Arc::new(route)
}

#[test]
fn routes_behind_a_waypoint_are_said_to_apply_there() {
    let web = service("web", true);
    let request = |headers: &HeaderMap| -> (String, bool) {
        let routes = [at_gateway("web.shop.svc.cluster.local")];
        let (table, at) = table_for(&routes, &web.reference, Some(&web), 80, "shop");
        let request = Request {
            method: "GET",
            path: "/api/x",
            query: None,
            headers,
        };
        let (text, found) = explain(&table, &web.reference, 80, &request);
        (format!("{}{text}", at.unwrap_or_default()), found)
    };
    // No route of its own: the Gateway's route that admits its hostname.
    let (text, found) = request(&HeaderMap::new());
    assert!(found, "{text}");
    assert!(
        text.starts_with("applied at waypoint shop/wp (routes attached to its Gateway"),
        "{text}"
    );
    assert!(text.contains("route shop/via-wp rule 0"), "{text}");

    // Its own route wins, and still applies at the waypoint.
    let routes = [route(), at_gateway("web.shop.svc.cluster.local")];
    let (table, at) = table_for(&routes, &web.reference, Some(&web), 80, "shop");
    assert_eq!(
        at.as_deref(),
        Some("applied at waypoint shop/wp (the Service's own routes)\n")
    );
    assert!(table.routes().iter().all(|r| r.name == "web"));

    // Another hostname, or no waypoint: nothing from the Gateway.
    let routes = [at_gateway("api.shop.svc.cluster.local")];
    let (table, _) = table_for(&routes, &web.reference, Some(&web), 80, "shop");
    assert!(table.is_empty());
    let plain = service("web", false);
    let routes = [at_gateway("web.shop.svc.cluster.local")];
    let (table, at) = table_for(&routes, &plain.reference, Some(&plain), 80, "shop");
    assert!(table.is_empty() && at.is_none());
    let (table, at) = table_for(&routes, &plain.reference, None, 80, "shop");
    assert!(table.is_empty() && at.is_none());
}
