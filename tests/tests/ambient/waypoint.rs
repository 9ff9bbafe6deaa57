//! Step 3e of the ambient test: a waypoint in front of ambient pods.
//!
//! ```text
//! mall (ambient):  buyer (node-a)   shelf-v1 (node-b)   shelf-v2 (node-a)
//!                  mwp-0 (node-b): braid-proxy waypoint for Gateway mall/mwp
//! Services shelf, shelf-v1, shelf-v2: braid.dev/waypoint: mwp
//! HTTPRoute on shelf: x-canary: yes -> shelf-v2, else 80/20 shelf-v1/shelf-v2
//! ```
//!
//! ambient → waypoint → ambient: buyer's ztunnel (L4 only) sends the
//! Service's traffic to the waypoint, which applies the route and forwards
//! to the chosen pod's ztunnel. sidecar → waypoint → ambient: the sidecar
//! pod `orders` leaves the route to the waypoint, with the same outcome. A
//! direct call to a shelf pod bypassing the waypoint is refused by that
//! pod's ztunnel. A route attached to the waypoint's Gateway (`via`, for
//! shelf-v1's hostname) applies to shelf-v1, which has no route of its own.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use crate::{
    http_app::{self, APP_PORT, canary_and_split, get, send},
    support::{Cluster, PodDef, eventually, sidecar_token_yaml},
};

const FILE: &str = "mall.yaml";
const GATEWAY_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// The pods of `mall` (no TCP echo ports: they serve HTTP on APP_PORT).
const PODS: [PodDef; 4] = [
    pod(
        "buyer",
        "node-a",
        Ipv4Addr::new(198, 18, 0, 50),
        "0b7e4a2c-0000-4000-8000-0000000b0b00",
    ),
    pod(
        "shelf-v1",
        "node-b",
        Ipv4Addr::new(198, 18, 1, 50),
        "0b7e4a2c-0000-4000-8000-0000000b05f1",
    ),
    pod(
        "shelf-v2",
        "node-a",
        Ipv4Addr::new(198, 18, 0, 51),
        "0b7e4a2c-0000-4000-8000-0000000b05f2",
    ),
    pod(
        "mwp-0",
        "node-b",
        Ipv4Addr::new(198, 18, 1, 51),
        "0b7e4a2c-0000-4000-8000-0000000b0a00",
    ),
];
/// (Service, selector, VIP).
const SERVICES: [(&str, &str, Ipv4Addr); 3] = [
    ("shelf", "app: shelf", Ipv4Addr::new(198, 19, 0, 50)),
    ("shelf-v1", "version: v1", Ipv4Addr::new(198, 19, 0, 51)),
    ("shelf-v2", "version: v2", Ipv4Addr::new(198, 19, 0, 52)),
];

const fn pod(name: &'static str, node: &'static str, ip: Ipv4Addr, uid: &'static str) -> PodDef {
    PodDef {
        name,
        namespace: "mall",
        service_account: name,
        node,
        ip,
        port: None,
        ambient: true,
        sidecar: false,
        uid,
    }
}

/// The namespace, pods, Services, Gateway, route and the waypoint pod's
/// token, in one file.
fn mall_yaml() -> String {
    let mut docs = vec![
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: mall\n  labels:\n    braid.dev/mode: ambient\n".to_string(),
    ];
    for p in &PODS {
        let (app, version) = p.name.split_once('-').unwrap_or((p.name, ""));
        let (app, version, proxy) = match p.name {
            "mwp-0" => (
                "mwp",
                "",
                "  - name: braid-proxy\n    image: braid/proxy:dev\n",
            ),
            _ => (app, version, ""),
        };
        docs.push(format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: mall\n  labels:\n    app: {app}\n    version: '{version}'\n    {GATEWAY_LABEL}: '{gateway}'\nspec:\n  nodeName: {node}\n  serviceAccountName: {name}\n  containers:\n  - name: app\n    image: example/{name}:1\n{proxy}status:\n  phase: Running\n  podIP: {ip}\n  podIPs:\n  - ip: {ip}\n  conditions:\n  - type: Ready\n    status: \"True\"\n",
            name = p.name,
            node = p.node,
            ip = p.ip,
            gateway = if app == "mwp" { "mwp" } else { "" },
        ));
    }
    for (name, selector, vip) in SERVICES {
        docs.push(format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: mall\n  labels: {{braid.dev/waypoint: mwp}}\nspec:\n  clusterIP: {vip}\n  selector: {{{selector}}}\n  ports:\n  - name: http\n    port: 80\n    targetPort: {APP_PORT}\n"
        ));
    }
    docs.push(sidecar_token_yaml(&PODS[3]));
    docs.push(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: mwp, namespace: mall}
spec:
  gatewayClassName: braid-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shelf, namespace: mall}
spec:
  parentRefs: [{group: '', kind: Service, name: shelf, port: 80}]
  rules:
  - matches:
    - headers: [{name: x-canary, value: 'yes'}]
    backendRefs: [{name: shelf-v2, port: 80}]
  - backendRefs:
    - {name: shelf-v1, port: 80, weight: 80}
    - {name: shelf-v2, port: 80, weight: 20}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: via, namespace: mall}
spec:
  parentRefs: [{name: mwp}]
  hostnames: [shelf-v1.mall.svc.cluster.local]
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {add: [{name: x-via, value: mwp}]}
    backendRefs: [{name: shelf-v1, port: 80}]
"
        .to_string(),
    );
    docs.join("---\n")
}

/// Step 3e (see the module). `orders` must run its sidecar (step 3c).
pub(crate) fn through_a_waypoint(c: &mut Cluster) {
    let mut pods = Vec::new();
    for def in &PODS {
        pods.push(c.add_extra_pod(def));
    }
    for pod in &pods[1..3] {
        http_app::start_app(pod).unwrap_or_else(|e| panic!("app in {}: {e}", pod.name));
    }
    c.write_config(FILE, &mall_yaml());
    // The runtime retries an ADD until the control plane knows the pod;
    // the waypoint's pod is addressed, never captured.
    for def in &PODS[..3] {
        eventually(
            &format!("CNI ADD of {}", def.name),
            Duration::from_secs(15),
            || c.cni_add_extra(def),
        );
    }
    c.start_waypoint_for(&PODS[3], "mall/mwp")
        .unwrap_or_else(|e| panic!("start the waypoint: {e}"));

    let shelf = SocketAddr::from((SERVICES[0].2, 80));
    let buyer = pods[0].clone();
    let (_, took) = eventually(
        "buyer -> shelf through the waypoint",
        Duration::from_secs(25),
        || {
            c.assert_processes();
            match send(&buyer, shelf, &[get("/")]) {
                Ok(replies) if replies[0].status == 200 => Ok(()),
                other => Err(format!("{other:?}; config errors: {}", c.config_errors())),
            }
        },
    );
    eprintln!("ambient e2e:   buyer -> shelf answered through the waypoint after {took:?}");

    // ambient → waypoint → ambient: the route applies although neither
    // ztunnel reads HTTP.
    canary_and_split(&buyer, shelf, ["shelf-v1", "shelf-v2"])
        .unwrap_or_else(|e| panic!("ambient -> waypoint -> ambient: {e:#}"));
    let reply = send(&buyer, shelf, &[get("/")])
        .expect("buyer -> shelf")
        .remove(0);
    assert!(
        reply.header("braid-proxy-error").is_empty(),
        "no proxy error: {reply:?}"
    );

    // sidecar → waypoint → ambient: the sidecar leaves the route to the
    // waypoint, which applies it once.
    let orders = c.pod("orders").clone();
    eventually("orders -> shelf", Duration::from_secs(10), || {
        match send(&orders, shelf, &[get("/")]) {
            Ok(replies) if replies[0].status == 200 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    canary_and_split(&orders, shelf, ["shelf-v1", "shelf-v2"])
        .unwrap_or_else(|e| panic!("sidecar -> waypoint -> ambient: {e:#}"));

    // No way around the waypoint: the pod's ztunnel refuses a direct
    // tunnel (buyer's ztunnel, L4, closes the connection), while the same
    // pod answers through its Service.
    let direct = SocketAddr::from((PODS[1].ip, APP_PORT));
    match send(&buyer, direct, &[get("/")]) {
        Ok(replies) => assert!(
            replies.iter().all(|r| r.status != 200),
            "buyer -> shelf-v1 directly must be refused: {replies:?}"
        ),
        Err(e) => eprintln!("ambient e2e:   buyer -> shelf-v1 directly refused: {e:#}"),
    }
    // Through shelf-v1's Service, the route attached to the waypoint's
    // Gateway applies (shelf-v1 has no route of its own; its hostname is
    // admitted); shelf's own route keeps applying to shelf.
    let v1 = SocketAddr::from((SERVICES[1].2, 80));
    let reply = send(&buyer, v1, &[get("/")])
        .expect("buyer -> shelf-v1 VIP")
        .remove(0);
    assert_eq!(
        (reply.field("pod"), reply.field("x-via")),
        ("shelf-v1", "mwp"),
        "through the waypoint, with its Gateway's route: {reply:?}"
    );
    let reply = send(&buyer, shelf, &[get("/")])
        .expect("buyer -> shelf")
        .remove(0);
    assert_eq!(
        reply.field("x-via"),
        "",
        "shelf's own route applies: {reply:?}"
    );
}
