use braid_model::DataPlaneMode::{self, Ambient, None as Off, Sidecar};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::*;

fn facts(label: Option<&str>, has_sidecar: bool, phase: Phase) -> PodFacts {
    PodFacts {
        name: "web-1".to_string(),
        label: label.map(str::to_string),
        has_sidecar,
        phase,
        owner: Owner::Other,
    }
}

/// (pod label, sidecar container, phase, old namespace label, new namespace
/// label, data plane now, effect).
type Row = (
    Option<&'static str>,
    bool,
    Phase,
    Option<DataPlaneMode>,
    DataPlaneMode,
    DataPlaneMode,
    Effect,
);

#[test]
fn decisions() {
    use Phase::{Finished, NotStarted, Running};
    #[rustfmt::skip]
    let table: &[Row] = &[
        // Into ambient.
        (None, false, Running, None, Ambient, Off, Effect::CapturedInPlace),
        (None, false, NotStarted, Some(Off), Ambient, Off, Effect::CapturedAtStart),
        (None, true, Running, Some(Sidecar), Ambient, Sidecar, Effect::KeepsSidecar { then: Ambient }),
        (None, false, Running, Some(Ambient), Ambient, Ambient, Effect::Stays(Ambient)),
        // Into sidecar.
        (None, false, Running, None, Sidecar, Off, Effect::RestartToGetSidecar { released: false }),
        (None, false, Running, Some(Ambient), Sidecar, Ambient, Effect::RestartToGetSidecar { released: true }),
        (None, true, Running, Some(Sidecar), Sidecar, Sidecar, Effect::Stays(Sidecar)),
        // A sidecar injected while the namespace said none (pod label since removed).
        (None, true, Running, Some(Off), Sidecar, Sidecar, Effect::Stays(Sidecar)),
        // Out of the mesh.
        (None, false, Running, Some(Ambient), Off, Ambient, Effect::Released),
        (None, true, Running, Some(Sidecar), Off, Sidecar, Effect::KeepsSidecar { then: Off }),
        (None, false, Running, Some(Off), Off, Off, Effect::Stays(Off)),
        // The pod's own label wins over the namespace.
        (Some("none"), false, Running, Some(Off), Ambient, Off, Effect::PinnedByLabel(Off)),
        (Some("ambient"), false, Running, Some(Sidecar), Sidecar, Ambient, Effect::PinnedByLabel(Ambient)),
        (Some("sidecar"), true, Running, None, Off, Sidecar, Effect::PinnedByLabel(Sidecar)),
        (Some("mesh"), false, Running, Some(Ambient), Sidecar, Ambient, Effect::InvalidLabel("mesh".to_string())),
        // Finished pods are left alone.
        (None, false, Finished, None, Ambient, Off, Effect::Finished),
    ];
    for (i, (label, sidecar, phase, old, new, now, effect)) in table.iter().enumerate() {
        let plan = facts(*label, *sidecar, *phase).plan(*old, *new);
        assert_eq!(
            (plan.now, &plan.effect),
            (*now, effect),
            "row {i}: label {label:?}, sidecar {sidecar}, {phase:?}, namespace {old:?} → {new}"
        );
    }
}

#[test]
fn restarts_are_needed_exactly_where_the_data_plane_must_change() {
    assert!(Effect::RestartToGetSidecar { released: true }.needs_restart());
    assert!(Effect::KeepsSidecar { then: Off }.needs_restart());
    for effect in [
        Effect::Released,
        Effect::CapturedAtStart,
        Effect::CapturedInPlace,
        Effect::Stays(Ambient),
        Effect::PinnedByLabel(Sidecar),
        Effect::Finished,
    ] {
        assert!(!effect.needs_restart(), "{effect:?}");
    }
}

#[test]
fn messages_say_what_happens() {
    assert_eq!(
        Effect::RestartToGetSidecar { released: false }.to_string(),
        "needs a restart to get a sidecar"
    );
    assert_eq!(
        Effect::CapturedInPlace.to_string(),
        "captured in place by the node's agent within seconds (no restart needed)"
    );
    assert!(
        Effect::KeepsSidecar { then: Ambient }
            .to_string()
            .starts_with("keeps its sidecar until restarted")
    );
    assert!(
        Effect::InvalidLabel("x".into())
            .to_string()
            .contains("braid.dev/mode=\"x\"")
    );
}

fn pod(yaml: &str) -> Pod {
    serde_yaml_ng::from_str(yaml).expect("pod yaml")
}

#[test]
fn facts_from_a_deployment_pod_with_an_injected_sidecar() {
    let pod = pod(r#"
metadata:
  name: web-5d8f7c9b4-x2x7q
  labels: {app: web, pod-template-hash: 5d8f7c9b4}
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: web-5d8f7c9b4, uid: u1, controller: true}
spec:
  initContainers:
  - {name: braid-proxy, image: braid/braid-proxy:0.1.0, restartPolicy: Always}
  containers:
  - {name: app, image: app:1}
status: {phase: Running}
"#);
    let facts = PodFacts::from_pod(&pod);
    assert!(facts.has_sidecar);
    assert_eq!(facts.phase, Phase::Running);
    assert_eq!(facts.label, None);
    assert_eq!(
        facts.restart_command("shop"),
        "kubectl rollout restart deployment/web -n shop"
    );
}

#[test]
fn restart_commands_by_owner() {
    let owned = |kind: &str, name: &str, labels: &str| {
        let mut pod = pod(&format!(
            "metadata: {{name: p, labels: {labels}}}\nspec: {{containers: [{{name: app}}]}}\n"
        ));
        pod.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: "u".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        PodFacts::from_pod(&pod).restart_command("ns")
    };
    assert_eq!(
        owned("StatefulSet", "db", "{}"),
        "kubectl rollout restart statefulset/db -n ns"
    );
    assert_eq!(
        owned("DaemonSet", "agent", "{}"),
        "kubectl rollout restart daemonset/agent -n ns"
    );
    // A ReplicaSet without the Deployment's hash is not restartable by rollout.
    assert!(
        owned("ReplicaSet", "web-abc", "{pod-template-hash: zzz}")
            .starts_with("kubectl delete pod p -n ns")
    );
    assert!(owned("Job", "once", "{}").starts_with("kubectl delete pod p -n ns"));
    let bare =
        pod("metadata: {name: lone, labels: {braid.dev/mode: none}}\nstatus: {phase: Pending}\n");
    let facts = PodFacts::from_pod(&bare);
    assert_eq!(facts.label.as_deref(), Some("none"));
    assert_eq!(facts.phase, Phase::NotStarted);
    assert!(!facts.has_sidecar);
}
