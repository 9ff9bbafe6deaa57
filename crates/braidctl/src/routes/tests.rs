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
