use super::*;

fn problem(input: &str) -> Problem {
    match input.parse::<SpiffeId>() {
        Ok(id) => panic!("{input:?} parsed as {id}"),
        Err(e) => e.problem().clone(),
    }
}

#[test]
fn parses_and_prints_a_workload_identity() {
    let id: SpiffeId = "spiffe://cluster.local/ns/shop/sa/checkout"
        .parse()
        .unwrap();
    assert_eq!(id.trust_domain(), "cluster.local");
    assert_eq!(id.namespace(), "shop");
    assert_eq!(id.service_account(), "checkout");
    assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/checkout");
    assert_eq!(id.as_str(), id.to_string());
    assert_eq!(
        SpiffeId::new("cluster.local", "shop", "checkout").unwrap(),
        id
    );
    assert!(id.is_in(&"cluster.local".parse().unwrap()));
    assert!(!id.is_in(&"example.org".parse().unwrap()));
}

#[test]
fn accepts_what_spiffe_and_kubernetes_allow() {
    for input in [
        "spiffe://td/ns/a/sa/b",
        "spiffe://my_td-1.example.org/ns/a-1/sa/b",
        "spiffe://td/ns/0/sa/9",
        // Service accounts are DNS subdomains: dots are fine.
        "spiffe://td/ns/default/sa/my.service.account",
    ] {
        let id: SpiffeId = input.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.as_str(), input);
    }
    let long_ns = "n".repeat(63);
    let long_sa = [
        "s".repeat(63),
        "s".repeat(63),
        "s".repeat(63),
        "s".repeat(61),
    ]
    .join(".");
    assert_eq!(long_sa.len(), 253);
    let id = SpiffeId::new("td", &long_ns, &long_sa).unwrap();
    assert_eq!(id.namespace(), long_ns);
    assert_eq!(id.service_account(), long_sa);
}

#[test]
fn refuses_other_schemes_and_uri_parts() {
    assert_eq!(problem("http://td/ns/a/sa/b"), Problem::Scheme);
    assert_eq!(problem("SPIFFE://td/ns/a/sa/b"), Problem::Scheme);
    assert_eq!(problem("spiffe:/td/ns/a/sa/b"), Problem::Scheme);
    assert_eq!(problem(""), Problem::Scheme);
    assert_eq!(problem("spiffe://td:443/ns/a/sa/b"), Problem::Port);
    assert_eq!(problem("spiffe://me@td/ns/a/sa/b"), Problem::UserInfo);
    assert_eq!(problem("spiffe://td/ns/a/sa/b?x=1"), Problem::Query);
    assert_eq!(problem("spiffe://td/ns/a/sa/b#frag"), Problem::Fragment);
    assert_eq!(
        problem("spiffe://td/ns/a/sa/b%41"),
        Problem::PercentEncoding
    );
    assert_eq!(problem("spiffe://t%64/ns/a/sa/b"), Problem::PercentEncoding);
}

#[test]
fn refuses_bad_trust_domains() {
    assert_eq!(problem("spiffe:///ns/a/sa/b"), Problem::EmptyTrustDomain);
    assert_eq!(
        problem("spiffe://Cluster.local/ns/a/sa/b"),
        Problem::TrustDomainChar('C')
    );
    assert_eq!(
        problem("spiffe://td!/ns/a/sa/b"),
        Problem::TrustDomainChar('!')
    );
    assert_eq!(
        problem("spiffe://tð/ns/a/sa/b"),
        Problem::TrustDomainChar('ð')
    );
    let long = format!("spiffe://{}/ns/a/sa/b", "t".repeat(256));
    assert_eq!(problem(&long), Problem::TooLong { len: 256, max: 255 });
}

#[test]
fn refuses_paths_other_than_ns_sa() {
    assert_eq!(problem("spiffe://td"), Problem::MissingPath);
    assert_eq!(problem("spiffe://td/"), Problem::MissingPath);
    assert_eq!(problem("spiffe://td/ns/a/sa/b/"), Problem::TrailingSlash);
    assert_eq!(problem("spiffe://td/ns//sa/b"), Problem::EmptySegment);
    assert_eq!(problem("spiffe://td//ns/a/sa/b"), Problem::EmptySegment);
    assert_eq!(problem("spiffe://td/ns/a/sa"), Problem::Path);
    assert_eq!(problem("spiffe://td/ns/a/sa/b/c"), Problem::Path);
    assert_eq!(problem("spiffe://td/sa/b/ns/a"), Problem::Path);
    assert_eq!(problem("spiffe://td/NS/a/sa/b"), Problem::Path);
    assert_eq!(problem("spiffe://td/workload/x"), Problem::Path);
}

#[test]
fn refuses_names_kubernetes_would_refuse() {
    for ns in ["A", "a.b", "-a", "a-", ".", "..", "a_b", &"n".repeat(64)] {
        let input = format!("spiffe://td/ns/{ns}/sa/b");
        assert_eq!(
            problem(&input),
            Problem::Namespace(ns.to_string()),
            "{input}"
        );
    }
    for sa in ["B", "a..b", ".a", "a.", "-a", "a_b", &"s".repeat(254)] {
        let input = format!("spiffe://td/ns/a/sa/{sa}");
        assert_eq!(
            problem(&input),
            Problem::ServiceAccount(sa.to_string()),
            "{input}"
        );
    }
}

#[test]
fn new_cannot_smuggle_path_segments() {
    // A namespace containing "/sa/..." must not yield someone else's identity.
    let err = SpiffeId::new("td", "a/sa/admin", "x").unwrap_err();
    assert_eq!(err.problem(), &Problem::Path);
    assert!(SpiffeId::new("td/ns/a", "b", "c").is_err());
    assert!(SpiffeId::new("td", "a", "b/").is_err());
}

#[test]
fn refuses_overlong_ids() {
    let input = format!("spiffe://td/ns/a/sa/{}", "s".repeat(2100));
    assert!(matches!(
        problem(&input),
        Problem::TooLong { max: 2048, .. }
    ));
}

#[test]
fn errors_name_the_input_the_problem_and_the_expected_form() {
    let err = "spiffe://td/ns/a/sa/b/".parse::<SpiffeId>().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("\"spiffe://td/ns/a/sa/b/\""), "{msg}");
    assert!(msg.contains("trailing '/'"), "{msg}");
    assert!(
        msg.contains("spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>"),
        "{msg}"
    );
    assert_eq!(err.input(), "spiffe://td/ns/a/sa/b/");
}

#[test]
fn serde_uses_the_string_form_and_validates() {
    let id = SpiffeId::new("td", "a", "b").unwrap();
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(json, "\"spiffe://td/ns/a/sa/b\"");
    assert_eq!(serde_json::from_str::<SpiffeId>(&json).unwrap(), id);
    let err = serde_json::from_str::<SpiffeId>("\"spiffe://td/ns/a/sa/B\"").unwrap_err();
    assert!(err.to_string().contains("service account"), "{err}");

    let td: TrustDomain = serde_json::from_str("\"example.org\"").unwrap();
    assert_eq!(serde_json::to_string(&td).unwrap(), "\"example.org\"");
    assert!(serde_json::from_str::<TrustDomain>("\"Example.org\"").is_err());
}

#[test]
fn trust_domains_are_checked() {
    let td: TrustDomain = "cluster.local".parse().unwrap();
    assert_eq!(td.as_str(), "cluster.local");
    assert_eq!(td.to_string(), "cluster.local");
    let err = "".parse::<TrustDomain>().unwrap_err();
    assert_eq!(err.problem(), &Problem::EmptyTrustDomain);
    let err = "example.org:8443".parse::<TrustDomain>().unwrap_err();
    assert_eq!(err.problem(), &Problem::Port);
    let err = "spiffe://example.org".parse::<TrustDomain>().unwrap_err();
    assert!(err.to_string().contains("like \"cluster.local\""), "{err}");
}

#[test]
fn debug_shows_the_identity() {
    let id = SpiffeId::new("td", "a", "b").unwrap();
    assert_eq!(format!("{id:?}"), "SpiffeId(\"spiffe://td/ns/a/sa/b\")");
}
