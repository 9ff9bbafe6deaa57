use std::collections::BTreeMap;

use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo};

use super::*;

fn status(username: &str, pod: Option<&str>, node: Option<&str>) -> TokenReviewStatus {
    let mut extra = BTreeMap::new();
    if let Some(pod) = pod {
        extra.insert(POD_NAME.to_string(), vec![pod.to_string()]);
    }
    if let Some(node) = node {
        extra.insert(NODE_NAME.to_string(), vec![node.to_string()]);
    }
    TokenReviewStatus {
        authenticated: Some(true),
        user: Some(UserInfo {
            username: Some(username.into()),
            extra: Some(extra),
            ..Default::default()
        }),
        ..Default::default()
    }
}

const NODE_ACCOUNT: (&str, &str) = ("braid-system", "braid-node");

fn no_pods(_: &str, _: &str) -> Option<String> {
    None
}

#[test]
fn a_pod_bound_token_is_that_pod() {
    let claims = claims(
        Some(&status(
            "system:serviceaccount:shop:web",
            Some("web-0"),
            Some("node-a"),
        )),
        "braid",
    )
    .expect("authenticated");
    assert_eq!(claims.namespace, "shop");
    assert_eq!(claims.service_account, "web");
    assert_eq!(
        claims.principal(NODE_ACCOUNT, no_pods),
        Ok(Principal::Pod {
            namespace: "shop".into(),
            name: "web-0".into()
        })
    );
}

#[test]
fn the_node_account_is_scoped_to_its_node() {
    let with_claim = claims(
        Some(&status(
            "system:serviceaccount:braid-system:braid-node",
            Some("braid-node-x1"),
            Some("node-a"),
        )),
        "braid",
    )
    .expect("authenticated");
    assert_eq!(
        with_claim.principal(NODE_ACCOUNT, no_pods),
        Ok(Principal::Node("node-a".into()))
    );

    // Without a node claim the bound pod's nodeName decides.
    let without = Claims {
        node: None,
        ..with_claim
    };
    let lookup = |ns: &str, pod: &str| {
        (ns == "braid-system" && pod == "braid-node-x1").then(|| "node-b".to_string())
    };
    assert_eq!(
        without.principal(NODE_ACCOUNT, lookup),
        Ok(Principal::Node("node-b".into()))
    );
    let err = without
        .principal(NODE_ACCOUNT, no_pods)
        .expect_err("unknown pod");
    assert!(err.contains("not scheduled"), "{err}");
}

#[test]
fn an_unbound_token_is_refused_with_the_fix() {
    let claims = claims(
        Some(&status("system:serviceaccount:shop:web", None, None)),
        "braid",
    )
    .expect("authenticated");
    let err = claims
        .principal(NODE_ACCOUNT, no_pods)
        .expect_err("unbound");
    assert!(err.contains("projected ServiceAccount token"), "{err}");
}

#[test]
fn unauthenticated_and_non_service_account_users_are_refused() {
    let rejected = TokenReviewStatus {
        authenticated: Some(false),
        error: Some("token has expired".into()),
        ..Default::default()
    };
    let err = claims(Some(&rejected), "braid").expect_err("rejected");
    assert!(err.contains("token has expired"), "{err}");

    let silent = TokenReviewStatus::default();
    let err = claims(Some(&silent), "braid").expect_err("not authenticated");
    assert!(err.contains("audience \"braid\""), "{err}");

    let err = claims(Some(&status("alice", None, None)), "braid").expect_err("a person");
    assert!(err.contains("not a ServiceAccount"), "{err}");
}
