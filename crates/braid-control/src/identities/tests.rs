use std::str::FromStr as _;

use braid_identity::TrustDomain;
use braid_model::k8s::MeshSettings;

use super::*;
use crate::{
    index::Index,
    source::{Change, document},
};

/// The view the index builds from `yaml`.
fn view(yaml: &str) -> Identities {
    let mut index = Index::new(MeshSettings::default());
    for (key, object) in document::parse(yaml, &MeshSettings::default()).expect("valid test YAML") {
        index.apply(Change::Apply(key, object));
    }
    index.identities().expect("objects changed")
}

fn namespace(name: &str, mode: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{braid.dev/mode: {mode}}}}}\n"
    )
}

/// A pod of `sa` on `node`; `mode` is its own label ("" for none),
/// `sidecar` whether it runs braid-proxy.
fn pod(ns: &str, name: &str, sa: &str, node: &str, mode: &str, sidecar: bool) -> String {
    let labels = if mode.is_empty() {
        "{app: x}".to_string()
    } else {
        format!("{{app: x, braid.dev/mode: {mode}}}")
    };
    let proxy = if sidecar {
        ", {name: braid-proxy, image: braid/proxy}"
    } else {
        ""
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {labels}}}\nspec: {{nodeName: {node}, serviceAccountName: {sa}, containers: [{{name: app, image: app}}{proxy}]}}\nstatus: {{podIP: 198.18.0.1}}\n"
    )
}

fn docs(all: &[String]) -> String {
    all.join("---\n")
}

fn id(ns: &str, sa: &str) -> SpiffeId {
    SpiffeId::new("cluster.local", ns, sa).expect("valid test identity")
}

fn node(name: &str) -> Principal {
    Principal::Node(name.to_string())
}

fn sidecar(ns: &str, name: &str) -> Principal {
    Principal::Pod {
        namespace: ns.to_string(),
        name: name.to_string(),
    }
}

/// The control plane's identity is the one `SpiffeId::control_plane` names
/// (what every client expects), in every trust domain.
#[test]
fn reserved_accounts_include_the_control_plane_identity() {
    for td in ["cluster.local", "corp.example"] {
        let td = TrustDomain::from_str(td).expect("valid trust domain");
        let reserved = reserved(&SpiffeId::control_plane(&td)).expect("reserved");
        assert_eq!(reserved.component, "the control plane");
    }
    assert_eq!(reserved(&id("shop", "web")), None);
    assert_eq!(
        reserved(&id("braid-system", "default")),
        None,
        "only the components' accounts"
    );
}

/// Issue 14: a Pod of `braid-system/braid-control` on node-a let node-a's
/// token get the control plane's identity. Refused even when that pod is
/// labelled into the mesh, to the node and to a token bound to the pod.
#[test]
fn sign_refuses_control_plane_identity_to_node_token() {
    let ids = view(&docs(&[
        namespace("braid-system", "none"),
        pod(
            "braid-system",
            "braid-control-0",
            "braid-control",
            "node-a",
            "",
            false,
        ),
        pod(
            "braid-system",
            "meshed-0",
            "braid-control",
            "node-a",
            "ambient",
            false,
        ),
        pod(
            "braid-system",
            "braid-node-a",
            "braid-node",
            "node-a",
            "ambient",
            false,
        ),
    ]));
    let control = SpiffeId::control_plane(&TrustDomain::from_str("cluster.local").expect("td"));
    for principal in [
        node("node-a"),
        node("node-b"),
        sidecar("braid-system", "meshed-0"),
        sidecar("braid-system", "braid-control-0"),
    ] {
        let refused = ids
            .authorize_principal(&principal, &control)
            .expect_err("never the control plane's identity");
        assert!(
            matches!(refused, Refusal::Reserved { .. }),
            "{principal}: {refused}"
        );
        assert!(
            refused
                .to_string()
                .contains("is reserved for the control plane"),
            "{refused}"
        );
    }
    let refused = ids
        .authorize_principal(&node("node-a"), &id("braid-system", "braid-node"))
        .expect_err("the node DaemonSet's identity is reserved too");
    assert!(
        refused
            .to_string()
            .contains("reserved for the node agent and ztunnel"),
        "{refused}"
    );
}

/// Issue 14: `legacy/default` (mode none) was issued to node-a's token.
#[test]
fn sign_refuses_identity_of_unmeshed_pod() {
    let ids = view(&docs(&[
        namespace("legacy", "none"),
        namespace("shop", "ambient"),
        pod("legacy", "old-0", "default", "node-a", "", false),
        pod("plain", "bare-0", "default", "node-a", "", false),
        pod("shop", "opted-out-0", "batch", "node-a", "none", false),
        pod("shop", "web-0", "web", "node-a", "", false),
    ]));
    for (ns, sa, pod_name) in [
        ("legacy", "default", "old-0"),
        ("plain", "default", "bare-0"),
        ("shop", "batch", "opted-out-0"),
    ] {
        let wanted = id(ns, sa);
        let refused = ids
            .authorize_principal(&node("node-a"), &wanted)
            .expect_err("not meshed");
        assert!(matches!(refused, Refusal::NotMeshed { .. }), "{refused}");
        assert!(refused.to_string().contains("braid.dev/mode"), "{refused}");
        let refused = ids
            .authorize_principal(&sidecar(ns, pod_name), &wanted)
            .expect_err("not meshed");
        assert!(
            refused
                .to_string()
                .contains(&format!("pod {ns}/{pod_name} is not in the mesh")),
            "{refused}"
        );
    }
    ids.authorize_principal(&node("node-a"), &id("shop", "web"))
        .expect("an ambient pod on node-a");
    // The node proxies' own pods are never meshed, yet their node still
    // scopes a TokenReview principal.
    assert_eq!(ids.pod_node("legacy", "old-0").as_deref(), Some("node-a"));
}

/// One meshed pod of an account on the node is enough for the node.
#[test]
fn a_meshed_pod_of_the_account_on_the_node_suffices() {
    let ids = view(&docs(&[
        pod("shop", "opted-out-0", "web", "node-a", "none", false),
        pod("shop", "web-0", "web", "node-a", "ambient", false),
    ]));
    ids.authorize_principal(&node("node-a"), &id("shop", "web"))
        .expect("web-0 is ambient");
}

/// A namespace switched from sidecar to none: its pods keep their sidecars
/// (actual mode sidecar) until re-created, and must keep renewing; a pod
/// labelled ambient in an unmeshed namespace is meshed; a pod waiting for
/// its injection (effective sidecar) too.
#[test]
fn pods_still_running_a_sidecar_keep_their_identity() {
    let ids = view(&docs(&[
        namespace("shop", "none"),
        namespace("next", "sidecar"),
        pod("shop", "web-0", "web", "node-a", "", true),
        pod("shop", "cart-0", "cart", "node-a", "ambient", false),
        pod("next", "api-0", "api", "node-b", "", false),
    ]));
    ids.authorize_principal(&sidecar("shop", "web-0"), &id("shop", "web"))
        .expect("its sidecar still runs");
    ids.authorize_principal(&node("node-a"), &id("shop", "cart"))
        .expect("the pod's label wins");
    ids.authorize_principal(&node("node-b"), &id("next", "api"))
        .expect("effective sidecar");
}

/// The namespace's label feeds the view: switching it rebuilds it.
#[test]
fn identities_follow_namespace_mode_changes() {
    let mut index = Index::new(MeshSettings::default());
    let load = |index: &mut Index, yaml: &str| {
        for (key, object) in document::parse(yaml, &MeshSettings::default()).expect("valid YAML") {
            index.apply(Change::Apply(key, object));
        }
    };
    load(
        &mut index,
        &docs(&[
            namespace("legacy", "none"),
            pod("legacy", "old-0", "default", "node-a", "", false),
        ]),
    );
    let ids = index.identities().expect("pods changed");
    assert!(
        ids.authorize_principal(&node("node-a"), &id("legacy", "default"))
            .is_err()
    );
    assert!(index.identities().is_none(), "nothing changed");

    load(&mut index, &namespace("legacy", "ambient"));
    let ids = index.identities().expect("the namespace's mode changed");
    ids.authorize_principal(&node("node-a"), &id("legacy", "default"))
        .expect("now ambient");
}
