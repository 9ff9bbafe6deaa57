use super::*;

const GOOD: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    braid.dev/mode: sidecar
---
apiVersion: v1
kind: Pod
metadata:
  name: web-0
  labels: {app: web}
spec:
  serviceAccountName: web
  containers:
  - name: app
    image: app
    ports: [{name: http, containerPort: 8080}]
status:
  podIPs: [{ip: 198.18.0.1}, {ip: 'fd00::1'}]
  conditions: [{type: Ready, status: 'True'}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 198.19.0.1
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: braid.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: deny-legacy, namespace: shop}
spec:
  action: DENY
  rules:
  - from: {namespaces: [legacy]}
---
apiVersion: braid.dev/v1alpha1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  mtls: {mode: STRICT}
";

fn settings() -> MeshSettings {
    MeshSettings::default()
}

#[test]
fn parses_every_supported_kind_and_defaults_the_namespace() {
    let objects = parse(GOOD, &settings()).expect("valid");
    let keys: Vec<String> = objects.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(
        keys,
        vec![
            "Namespace shop",
            "Pod default/web-0",
            "Service shop/web",
            "AuthorizationPolicy shop/deny-legacy",
            "PeerAuthentication shop/strict"
        ]
    );
}

#[test]
fn peer_authentication_errors_name_the_field() {
    let doc = |spec: &str| {
        format!(
            "apiVersion: braid.dev/v1alpha1\nkind: PeerAuthentication\nmetadata: {{name: p, namespace: shop}}\nspec: {spec}\n"
        )
    };
    let cases = [
        ("{mtls: {mode: strict}}", "spec.mtls.mode", "STRICT"),
        ("{mtls: {mode: DISABLE}}", "spec.mtls.mode", "PERMISSIVE"),
        ("{mtls: {}}", "spec.mtls", "missing field `mode`"),
        ("{}", "spec", "missing field `mtls`"),
        (
            "{mtls: {mode: STRICT}, selector: {matchExpressions: [{key: a, operator: Exists}]}}",
            "spec.selector.matchExpressions",
            "matchLabels",
        ),
    ];
    for (spec, field, hint) in cases {
        let errors = parse(&format!("{GOOD}---\n{}", doc(spec)), &settings()).expect_err(spec);
        assert_eq!(errors.len(), 1, "{spec}: {errors:?}");
        assert_eq!(errors[0].document, Some(5), "{spec}");
        assert_eq!(errors[0].field, field, "{spec}: {:?}", errors[0]);
        assert!(errors[0].message.contains(hint), "{spec}: {:?}", errors[0]);
    }
    let objects = parse(&doc("{mtls: {mode: PERMISSIVE}}"), &settings()).expect("valid");
    let policy = objects[0]
        .1
        .as_peer_authentication()
        .expect("a PeerAuthentication");
    assert_eq!(policy.mode, braid_model::MtlsMode::Permissive);
    assert_eq!(policy.selector, None);
}

#[test]
fn lists_are_flattened_and_errors_point_into_items() {
    let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata: {name: a}\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata: {name: 7}\n";
    let errors = parse(list, &settings()).expect_err("second item has a numeric name");
    assert_eq!(errors[0].document, Some(0));
    assert_eq!(errors[0].field, "items[1].metadata.name");
}

#[test]
fn every_bad_document_is_reported_with_its_index() {
    let text = format!(
        "{GOOD}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: x}}\nspec: {{containers: 5}}\n---\nkind: Pod\n"
    );
    let errors = parse(&text, &settings()).expect_err("two bad documents");
    assert_eq!(errors.len(), 2);
    assert_eq!(
        (errors[0].document, errors[0].field.as_str()),
        (Some(5), "spec.containers")
    );
    assert_eq!(
        (errors[1].document, errors[1].field.as_str()),
        (Some(6), "apiVersion")
    );
}

#[test]
fn empty_documents_and_comments_are_fine() {
    assert_eq!(parse("", &settings()).expect("empty").len(), 0);
    assert_eq!(
        parse("# just a comment\n---\n---\n", &settings())
            .expect("comments")
            .len(),
        0
    );
}

/// A tiny deterministic generator, so the fuzz cases are reproducible.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn truncated_yaml_never_panics() {
    for end in 0..GOOD.len() {
        if GOOD.is_char_boundary(end) {
            let _ = parse(&GOOD[..end], &settings());
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = Lcg(0x5eed);
    let alphabet = b" \n\t:-[]{}'\"#&*!|>%@`,?0123456789abcxyz";
    for _ in 0..3000 {
        let mut bytes = GOOD.as_bytes().to_vec();
        for _ in 0..(rng.next() % 8 + 1) {
            let at = (rng.next() as usize) % bytes.len();
            match rng.next() % 3 {
                0 => bytes[at] = alphabet[(rng.next() as usize) % alphabet.len()],
                1 => drop(bytes.remove(at)),
                _ => bytes.insert(at, alphabet[(rng.next() as usize) % alphabet.len()]),
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Err(errors) = parse(&text, &settings()) {
            assert!(!errors.is_empty());
            assert!(errors.iter().all(|e| !e.message.is_empty()));
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Lcg(42);
    for len in 0..400 {
        let bytes: Vec<u8> = (0..len).map(|_| (rng.next() % 128) as u8).collect();
        let _ = parse(&String::from_utf8_lossy(&bytes), &settings());
    }
}

#[test]
fn http_routes_parse_and_their_errors_name_the_field_and_reason() {
    let doc = |spec: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\nspec: {spec}\n"
        )
    };
    let objects = parse(
        &doc("{parentRefs: [{group: '', kind: Service, name: web}], rules: [{backendRefs: [{name: web, port: 80}]}]}"),
        &settings(),
    )
    .expect("valid");
    assert_eq!(objects[0].0.to_string(), "HTTPRoute default/r");
    let route = objects[0].1.as_http_route().expect("an HTTPRoute");
    assert_eq!(route.route.namespace, "default");
    assert_eq!(route.route.rules[0].backends[0].weight, 1);
    // No spec at all is an empty route, as `spec: {}` is.
    let objects = parse(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: shop}\n",
        &settings(),
    )
    .expect("valid");
    assert_eq!(objects[0].0.to_string(), "HTTPRoute shop/r");

    let cases = [
        (
            "{rules: [{filters: [{type: CORS}]}]}",
            "spec.rules[0].filters[0].type",
            "UnsupportedValue: filters of type CORS",
        ),
        (
            "{rules: [{filters: [{type: Magic}]}]}",
            "spec.rules[0].filters[0].type",
            "UnsupportedValue: unknown variant `Magic`",
        ),
        (
            "{rules: [{backendRefs: [{name: web, port: 99999}]}]}",
            "spec.rules[0].backendRefs[0].port",
            "UnsupportedValue: 99999 is out of range",
        ),
        ("[]", "spec", "UnsupportedValue: invalid type"),
    ];
    for (spec, field, message) in cases {
        let errors = parse(&format!("{GOOD}---\n{}", doc(spec)), &settings()).expect_err(spec);
        assert_eq!(errors.len(), 1, "{spec}: {errors:?}");
        assert_eq!(errors[0].document, Some(5), "{spec}");
        assert_eq!(errors[0].field, field, "{spec}: {:?}", errors[0]);
        assert!(
            errors[0].message.starts_with(message),
            "{spec}: {:?}",
            errors[0]
        );
    }
    // In a List, the field points into the item.
    let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: gateway.networking.k8s.io/v1\n  kind: HTTPRoute\n  metadata: {name: r}\n  spec: {rules: [{filters: [{type: CORS}]}]}\n";
    let errors = parse(list, &settings()).expect_err("CORS");
    assert_eq!(errors[0].field, "items[0].spec.rules[0].filters[0].type");
}
