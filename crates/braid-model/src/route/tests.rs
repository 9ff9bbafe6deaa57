use std::sync::Arc;

use http::HeaderMap;

use super::*;

fn service(name: &str) -> ServiceRef {
    ServiceRef::new("shop", name)
}

fn backend(name: &str, weight: u32) -> Backend {
    Backend {
        service: service(name),
        port: 80,
        weight,
        filters: Vec::new(),
        invalid: None,
    }
}

fn on_path(path: PathMatch) -> RouteMatch {
    RouteMatch {
        path,
        headers: Vec::new(),
        query: Vec::new(),
        method: None,
    }
}

fn rule(matches: Vec<RouteMatch>, to: &str) -> RouteRule {
    RouteRule {
        name: None,
        matches,
        filters: Vec::new(),
        backends: vec![backend(to, 1)],
        timeouts: Timeouts::default(),
    }
}

fn route(namespace: &str, name: &str, rules: Vec<RouteRule>) -> Arc<HttpRoute> {
    Arc::new(HttpRoute {
        namespace: namespace.into(),
        name: name.into(),
        created: None,
        parents: vec![RouteParent::Service {
            service: service("web"),
            port: None,
        }],
        hostnames: Vec::new(),
        rules,
    })
}

fn prefix(p: &str) -> PathMatch {
    PathMatch::Prefix(p.into())
}

/// The backend the request `method path?query` with `headers` goes to.
fn pick(routes: &ServiceRoutes, method: &str, uri: &str, headers: &[(&str, &str)]) -> String {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("test header"),
            value.parse().expect("test value"),
        );
    }
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    };
    let request = Request {
        method,
        path,
        query,
        headers: &map,
    };
    routes
        .select(&request)
        .map(|s| s.rule.backends[0].service.name.clone())
        .unwrap_or_else(|| "404".into())
}

#[test]
fn prefixes_match_whole_segments() {
    let p = prefix("/foo");
    assert!(p.matches("/foo"));
    assert!(p.matches("/foo/"));
    assert!(p.matches("/foo/bar"));
    assert!(!p.matches("/foobar"));
    let slash = prefix("/foo/");
    assert!(slash.matches("/foo"));
    assert!(slash.matches("/foo/bar"));
    assert!(prefix("/").matches("/anything"));
    assert!(prefix("/").matches("/"));
}

#[test]
fn the_most_specific_match_wins_across_routes() {
    let a = route(
        "shop",
        "a",
        vec![
            rule(vec![on_path(prefix("/"))], "catch-all"),
            rule(vec![on_path(prefix("/api"))], "api"),
        ],
    );
    let b = route(
        "shop",
        "b",
        vec![
            rule(vec![on_path(prefix("/api/v2"))], "v2"),
            rule(
                vec![on_path(PathMatch::Exact("/api/v2/health".into()))],
                "health",
            ),
            rule(
                vec![on_path(PathMatch::Regex(
                    Pattern::new("/api/v[0-9]+/items").expect("pattern"),
                ))],
                "items",
            ),
        ],
    );
    let routes = ServiceRoutes::new(vec![a, b]);
    assert_eq!(pick(&routes, "GET", "/", &[]), "catch-all");
    assert_eq!(pick(&routes, "GET", "/api", &[]), "api");
    assert_eq!(pick(&routes, "GET", "/api/v1", &[]), "api");
    assert_eq!(pick(&routes, "GET", "/api/v2/x", &[]), "v2");
    assert_eq!(pick(&routes, "GET", "/api/v2/health", &[]), "health");
    assert_eq!(pick(&routes, "GET", "/api/v2/items", &[]), "items");
    assert_eq!(pick(&routes, "GET", "/api/v2/items?x=1", &[]), "items");
}

#[test]
fn method_then_headers_then_query_break_ties() {
    let header = |name: &str, value: &str| ValueMatch {
        name: name.into(),
        value: StringMatch::Exact(value.into()),
    };
    let plain = on_path(prefix("/"));
    let post = RouteMatch {
        method: Some("POST".into()),
        ..plain.clone()
    };
    let one_header = RouteMatch {
        headers: vec![header("version", "two")],
        ..plain.clone()
    };
    let two_headers = RouteMatch {
        headers: vec![header("version", "two"), header("color", "blue")],
        ..plain.clone()
    };
    let query = RouteMatch {
        query: vec![header("debug", "1")],
        ..plain.clone()
    };
    let routes = ServiceRoutes::new(vec![route(
        "shop",
        "r",
        vec![
            rule(vec![plain], "default"),
            rule(vec![query], "debug"),
            rule(vec![one_header], "v2"),
            rule(vec![two_headers], "v2-blue"),
            rule(vec![post], "writes"),
        ],
    )]);
    assert_eq!(pick(&routes, "GET", "/", &[]), "default");
    assert_eq!(pick(&routes, "GET", "/?debug=1", &[]), "debug");
    assert_eq!(pick(&routes, "GET", "/?debug=2", &[]), "default");
    assert_eq!(pick(&routes, "GET", "/", &[("version", "two")]), "v2");
    assert_eq!(
        pick(
            &routes,
            "GET",
            "/?debug=1",
            &[("Version", "two"), ("color", "blue")]
        ),
        "v2-blue"
    );
    assert_eq!(
        pick(&routes, "POST", "/?debug=1", &[("version", "two")]),
        "writes"
    );
}

#[test]
fn older_routes_then_names_win_ties() {
    let same = || vec![rule(vec![on_path(prefix("/"))], "x")];
    let mut older = Arc::unwrap_or_clone(route("shop", "zeta", same()));
    older.created = Some(100);
    older.rules[0].backends[0].service.name = "older".into();
    let mut newer = Arc::unwrap_or_clone(route("shop", "alpha", same()));
    newer.created = Some(200);
    newer.rules[0].backends[0].service.name = "newer".into();
    let routes = ServiceRoutes::new(vec![Arc::new(newer.clone()), Arc::new(older)]);
    assert_eq!(pick(&routes, "GET", "/", &[]), "older");

    let mut other = newer.clone();
    other.name = "beta".into();
    other.rules[0].backends[0].service.name = "beta".into();
    let routes = ServiceRoutes::new(vec![Arc::new(other), Arc::new(newer)]);
    assert_eq!(pick(&routes, "GET", "/", &[]), "newer");
}

#[test]
fn no_matching_rule_is_a_404_and_no_route_is_empty() {
    let routes = ServiceRoutes::new(vec![route(
        "shop",
        "r",
        vec![rule(
            vec![on_path(PathMatch::Exact("/only".into()))],
            "only",
        )],
    )]);
    assert!(!routes.is_empty());
    assert_eq!(pick(&routes, "GET", "/other", &[]), "404");
    assert!(ServiceRoutes::new(Vec::new()).is_empty());
}

#[test]
fn header_and_query_regexes_match_whole_values() {
    let matched = RouteMatch {
        headers: vec![ValueMatch {
            name: "user".into(),
            value: StringMatch::Regex(Pattern::new("team-[a-z]+").expect("pattern")),
        }],
        ..on_path(prefix("/"))
    };
    let routes = ServiceRoutes::new(vec![route("shop", "r", vec![rule(vec![matched], "team")])]);
    assert_eq!(pick(&routes, "GET", "/", &[("user", "team-red")]), "team");
    assert_eq!(pick(&routes, "GET", "/", &[("user", "xteam-red")]), "404");
    assert_eq!(pick(&routes, "GET", "/", &[("user", "team-red2")]), "404");
    assert!(Pattern::new("(unclosed").is_err());
}

#[test]
fn consumer_routes_apply_to_their_namespace_only_and_override_producers() {
    let producer = route(
        "shop",
        "producer",
        vec![rule(vec![on_path(prefix("/"))], "p")],
    );
    let consumer = route(
        "ledger",
        "consumer",
        vec![rule(vec![on_path(prefix("/"))], "c")],
    );
    let foreign = route(
        "other",
        "foreign",
        vec![rule(vec![on_path(prefix("/"))], "f")],
    );
    let all = [producer, consumer, foreign];
    let web = service("web");
    let from = |ns: &str| ServiceRoutes::for_service(&all, &web, 80, ns);
    assert_eq!(pick(&from("ledger"), "GET", "/", &[]), "c");
    assert_eq!(pick(&from("shop"), "GET", "/", &[]), "p");
    assert_eq!(pick(&from("elsewhere"), "GET", "/", &[]), "p");
    assert!(ServiceRoutes::for_service(&all, &service("api"), 80, "shop").is_empty());
}

#[test]
fn parent_ports_limit_where_a_route_applies() {
    let mut r = Arc::unwrap_or_clone(route(
        "shop",
        "r",
        vec![rule(vec![on_path(prefix("/"))], "x")],
    ));
    r.parents = vec![RouteParent::Service {
        service: service("web"),
        port: Some(8080),
    }];
    let all = [Arc::new(r)];
    assert!(!ServiceRoutes::for_service(&all, &service("web"), 8080, "shop").is_empty());
    assert!(ServiceRoutes::for_service(&all, &service("web"), 80, "shop").is_empty());
}

#[test]
fn weights_split_by_share_and_zero_gets_none() {
    let mut r = rule(vec![on_path(prefix("/"))], "unused");
    r.backends = vec![
        backend("stable", 80),
        backend("canary", 20),
        backend("off", 0),
    ];
    let mut counts = std::collections::BTreeMap::<String, u32>::new();
    let steps = 10_000u32;
    for i in 0..steps {
        // The middle of each of `steps` equal slices of the roll's range.
        let roll = ((2 * u64::from(i) + 1) << 32) / (2 * u64::from(steps));
        let roll = u32::try_from(roll).expect("below 2^32");
        let picked = r.pick_backend(roll).expect("a backend");
        *counts.entry(picked.service.name.clone()).or_default() += 1;
    }
    assert_eq!(counts.get("stable"), Some(&8_000));
    assert_eq!(counts.get("canary"), Some(&2_000));
    assert_eq!(counts.get("off"), None);
    assert!(r.pick_backend(u32::MAX).is_some());
    r.backends = vec![backend("off", 0)];
    assert!(r.pick_backend(7).is_none());
}

#[test]
fn prefix_rewrites_replace_only_the_matched_part() {
    let to = |r: &str| PathModifier::Prefix(r.into());
    assert_eq!(
        rewrite_path(&to("/one"), Some("/prefix/one"), "/prefix/one/two"),
        "/one/two"
    );
    assert_eq!(
        rewrite_path(&to("/"), Some("/prefix/one"), "/prefix/one/two"),
        "/two"
    );
    assert_eq!(
        rewrite_path(&to("/"), Some("/prefix/one"), "/prefix/one"),
        "/"
    );
    assert_eq!(
        rewrite_path(&to("/v2/"), Some("/v1/"), "/v1/items"),
        "/v2/items"
    );
    assert_eq!(rewrite_path(&to("/x"), None, "/keep"), "/keep");
    assert_eq!(
        rewrite_path(&PathModifier::Full("/new".into()), Some("/a"), "/a/b"),
        "/new"
    );
}

#[test]
fn redirects_keep_what_they_do_not_change() {
    let base = Redirect {
        status: 302,
        ..Redirect::default()
    };
    let host = Redirect {
        hostname: Some("example.org".into()),
        ..base.clone()
    };
    let answer = host.answer("http", "web", Some(80), "/a", Some("q=1"), None);
    assert_eq!(answer.location, "http://example.org/a?q=1");
    assert_eq!(answer.status, 302);
    let https = Redirect {
        scheme: Some("https".into()),
        status: 301,
        ..base.clone()
    };
    let answer = https.answer("http", "web", Some(8080), "/a", None, None);
    assert_eq!(answer.location, "https://web/a");
    let port = Redirect {
        port: Some(8443),
        path: Some(PathModifier::Prefix("/new".into())),
        ..base.clone()
    };
    assert_eq!(
        port.answer("http", "web", None, "/old/x", None, Some("/old"))
            .location,
        "http://web:8443/new/x"
    );
    assert_eq!(
        base.answer("http", "web", Some(8080), "/", None, None)
            .location,
        "http://web:8080/"
    );
}

#[test]
fn header_modifiers_set_then_add_then_remove() {
    let mut headers = HeaderMap::new();
    headers.insert("x-set", "old".parse().expect("value"));
    headers.insert("x-add", "one".parse().expect("value"));
    headers.insert("x-gone", "bye".parse().expect("value"));
    let modifier = HeaderModifier {
        set: vec![("X-Set".into(), "new".into())],
        add: vec![("x-add".into(), "two".into())],
        remove: vec!["X-Gone".into()],
    };
    apply_header_modifier(&modifier, &mut headers);
    assert_eq!(
        headers.get("x-set").map(|v| v.as_bytes()),
        Some(&b"new"[..])
    );
    let added: Vec<_> = headers.get_all("x-add").iter().collect();
    assert_eq!(added, ["one", "two"]);
    assert!(!headers.contains_key("x-gone"));
}

/// A route of `namespace` attached to Gateway `shop/wp`, for `hostnames`.
fn at_waypoint(namespace: &str, name: &str, hostnames: &[&str], to: &str) -> Arc<HttpRoute> {
    let mut r = Arc::unwrap_or_clone(route(
        namespace,
        name,
        vec![rule(vec![on_path(prefix("/"))], to)],
    ));
    r.parents = vec![RouteParent::Gateway {
        namespace: "shop".into(),
        name: "wp".into(),
        section: None,
    }];
    r.hostnames = hostnames.iter().map(|h| h.to_string()).collect();
    Arc::new(r)
}

#[test]
fn waypoint_routes_apply_at_their_gateway_by_hostname() {
    let all = [
        at_waypoint("shop", "every", &[], "every"),
        at_waypoint("shop", "web-only", &["web.shop.svc.cluster.local"], "web"),
        at_waypoint("shop", "wild", &["*.svc.cluster.local"], "wild"),
        // Another namespace may not attach to shop's Gateway by default.
        at_waypoint("other", "foreign", &[], "foreign"),
    ];
    let names = |hostname: &str| {
        let mut names: Vec<String> = ServiceRoutes::for_waypoint(&all, "shop", "wp", hostname)
            .routes()
            .iter()
            .map(|r| r.name.clone())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names("web.shop.svc.cluster.local"),
        ["every", "web-only", "wild"]
    );
    assert_eq!(names("api.shop.svc.cluster.local"), ["every", "wild"]);
    assert_eq!(
        names("svc.cluster.local"),
        ["every"],
        "a wildcard needs a label"
    );
    assert!(ServiceRoutes::for_waypoint(&all, "shop", "other-wp", "x").is_empty());
    // Service routes are not waypoint routes, and the other way round.
    assert!(ServiceRoutes::for_service(&all, &service("web"), 80, "shop").is_empty());
}

#[test]
fn the_path_index_picks_what_a_scan_of_every_match_picks() {
    let pattern = |p: &str| PathMatch::Regex(super::pattern::Pattern::new(p).expect("test regex"));
    let mut routes = Vec::new();
    for i in 0..200 {
        let path = match i % 5 {
            0 => prefix(&format!("/r{i}")),
            1 => prefix(&format!("/a/r{i}/")),
            2 => PathMatch::Exact(format!("/a/r{}", i - 1)),
            3 => pattern(&format!("/x/{i}/.*")),
            _ => prefix("/a"),
        };
        let mut on = on_path(path);
        if i % 7 == 0 {
            on.method = Some("POST".into());
        }
        routes.push(route(
            "shop",
            &format!("r{i}"),
            vec![rule(vec![on], &format!("b{i}"))],
        ));
    }
    routes.push(route(
        "shop",
        "root",
        vec![rule(vec![on_path(prefix("/"))], "root")],
    ));
    let table = ServiceRoutes::new(routes);
    let headers = HeaderMap::new();
    let mut paths: Vec<String> = [
        "", "/", "//", "/a", "/a/", "/ab", "/r", "*", "/x/3/", "/x/8/y",
    ]
    .map(String::from)
    .to_vec();
    for i in 0..200 {
        paths.extend([
            format!("/r{i}"),
            format!("/r{i}/x"),
            format!("/r{i}x"),
            format!("/a/r{i}"),
            format!("/a/r{i}/"),
            format!("/a/r{i}/b/c"),
            format!("/x/{i}/z"),
        ]);
    }
    for path in &paths {
        for method in ["GET", "POST"] {
            let request = Request {
                method,
                path,
                query: None,
                headers: &headers,
            };
            let picked = table.select(&request).map(|s| table.indices(&s));
            assert_eq!(picked, table.select_by_scan(&request), "{method} {path:?}");
        }
    }
}

#[test]
fn a_thousand_prefix_routes_still_fall_through_to_the_catch_all() {
    let mut routes: Vec<Arc<HttpRoute>> = (0..999)
        .map(|i| {
            route(
                "shop",
                &format!("r{i}"),
                vec![rule(
                    vec![on_path(prefix(&format!("/r{i}")))],
                    &format!("b{i}"),
                )],
            )
        })
        .collect();
    routes.push(route(
        "shop",
        "all",
        vec![rule(vec![on_path(prefix("/"))], "all")],
    ));
    let table = ServiceRoutes::new(routes);
    assert_eq!(pick(&table, "GET", "/1k", &[]), "all");
    assert_eq!(pick(&table, "GET", "/r998/x?y=1", &[]), "b998");
    assert_eq!(pick(&table, "GET", "/r99", &[]), "b99");
    assert_eq!(pick(&table, "GET", "/r9999", &[]), "all");
}
