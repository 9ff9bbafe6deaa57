use std::{path::Path, sync::Arc};

use braid_model::k8s::FieldError;

use super::*;
use crate::source::{Change, ConfigErrors, Kind, KubeObject, ObjectKey, document};

fn key(kind: Kind, name: &str) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: if kind == Kind::Namespace {
            String::new()
        } else {
            "shop".into()
        },
        name: name.into(),
    }
}

fn namespace(name: &str, mode: &str) -> Arc<KubeObject> {
    let yaml = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{braid.dev/mode: {mode}}}}}\n"
    );
    let objects = document::parse(&yaml, &Default::default()).expect("valid namespace");
    objects[0].1.clone()
}

fn ok(kind: Kind, name: &str, object: Arc<KubeObject>) -> Observed {
    Observed {
        key: key(kind, name),
        generation: Some(1),
        object: Ok(Some(object)),
    }
}

fn bad(kind: Kind, name: &str, generation: i64) -> Observed {
    Observed {
        key: key(kind, name),
        generation: Some(generation),
        object: Err(FieldError::new(
            "spec.rules[0].to.ports[0]",
            "must be 1-65535",
        )),
    }
}

fn summary(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| match c {
            Change::Apply(k, _) => format!("apply {k}"),
            Change::Delete(k) => format!("delete {k}"),
        })
        .collect()
}

fn state() -> (SourceState, ConfigErrors) {
    let errors = ConfigErrors::default();
    let kinds = [Kind::Namespace, Kind::AuthorizationPolicy];
    (SourceState::new(&kinds, errors.clone()), errors)
}

#[test]
fn a_kind_is_synced_after_its_first_list() {
    let (mut state, _) = state();
    let mut changes = Vec::new();
    state.handle(Kind::Namespace, WatchEvent::Init, &mut changes);
    state.handle(
        Kind::Namespace,
        WatchEvent::InitApply(ok(Kind::Namespace, "shop", namespace("shop", "ambient"))),
        &mut changes,
    );
    assert!(changes.is_empty(), "nothing before the list completes");
    assert_eq!(
        state.unsynced(),
        [Kind::Namespace, Kind::AuthorizationPolicy]
    );
    state.handle(Kind::Namespace, WatchEvent::InitDone, &mut changes);
    assert_eq!(summary(&changes), ["apply Namespace shop"]);
    assert_eq!(state.unsynced(), [Kind::AuthorizationPolicy]);
}

#[test]
fn a_relist_deletes_what_vanished_while_disconnected() {
    let (mut state, _) = state();
    let mut changes = Vec::new();
    let ns = Kind::Namespace;
    state.handle(ns, WatchEvent::Init, &mut changes);
    for name in ["a", "b"] {
        state.handle(
            ns,
            WatchEvent::InitApply(ok(ns, name, namespace(name, "ambient"))),
            &mut changes,
        );
    }
    state.handle(ns, WatchEvent::InitDone, &mut changes);
    changes.clear();
    // The watch restarts: "b" is gone, "a" changed, "c" is new.
    state.handle(ns, WatchEvent::Init, &mut changes);
    state.handle(
        ns,
        WatchEvent::InitApply(ok(ns, "a", namespace("a", "sidecar"))),
        &mut changes,
    );
    state.handle(
        ns,
        WatchEvent::InitApply(ok(ns, "c", namespace("c", "ambient"))),
        &mut changes,
    );
    state.handle(ns, WatchEvent::InitDone, &mut changes);
    assert_eq!(
        summary(&changes),
        [
            "delete Namespace b",
            "apply Namespace a",
            "apply Namespace c"
        ]
    );
}

#[test]
fn an_unchanged_object_is_not_reapplied() {
    let (mut state, _) = state();
    let mut changes = Vec::new();
    let ns = Kind::Namespace;
    let object = namespace("a", "ambient");
    state.handle(
        ns,
        WatchEvent::Apply(ok(ns, "a", object.clone())),
        &mut changes,
    );
    state.handle(ns, WatchEvent::Apply(ok(ns, "a", object)), &mut changes);
    assert_eq!(summary(&changes), ["apply Namespace a"]);
}

#[test]
fn a_bad_version_keeps_the_last_good_one_and_reports_it() {
    let (mut state, errors) = state();
    let mut changes = Vec::new();
    let kind = Kind::AuthorizationPolicy;
    // Any valid object stands in for the policy: the state does not look inside.
    state.handle(
        kind,
        WatchEvent::Apply(ok(kind, "p", namespace("x", "ambient"))),
        &mut changes,
    );
    state.handle(kind, WatchEvent::Apply(bad(kind, "p", 2)), &mut changes);
    assert_eq!(
        summary(&changes),
        ["apply AuthorizationPolicy shop/p"],
        "no delete"
    );
    let reported = errors.get(Path::new("AuthorizationPolicy shop/p"));
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].field, "spec.rules[0].to.ports[0]");
    let verdict = &state.verdicts()[&key(kind, "p")];
    assert_eq!(verdict.generation, Some(2));
    assert_eq!(
        verdict.error.as_deref(),
        Some("spec.rules[0].to.ports[0]: must be 1-65535")
    );

    // Fixed: accepted again, the error is gone.
    changes.clear();
    state.handle(
        kind,
        WatchEvent::Apply(ok(kind, "p", namespace("y", "ambient"))),
        &mut changes,
    );
    assert_eq!(summary(&changes), ["apply AuthorizationPolicy shop/p"]);
    assert!(errors.list().is_empty());
    assert_eq!(state.verdicts()[&key(kind, "p")].error, None);
}

#[test]
fn deleting_a_rejected_object_clears_its_error_and_verdict() {
    let (mut state, errors) = state();
    let mut changes = Vec::new();
    let kind = Kind::AuthorizationPolicy;
    state.handle(kind, WatchEvent::Apply(bad(kind, "p", 1)), &mut changes);
    assert_eq!(errors.list().len(), 1);
    state.handle(kind, WatchEvent::Delete(key(kind, "p")), &mut changes);
    assert!(changes.is_empty(), "it never reached the index");
    assert!(errors.list().is_empty());
    assert!(state.verdicts().is_empty());
}

#[test]
fn a_relist_without_a_rejected_object_clears_its_error() {
    let (mut state, errors) = state();
    let mut changes = Vec::new();
    let kind = Kind::AuthorizationPolicy;
    state.handle(kind, WatchEvent::Apply(bad(kind, "p", 1)), &mut changes);
    state.handle(kind, WatchEvent::Init, &mut changes);
    state.handle(kind, WatchEvent::InitDone, &mut changes);
    assert!(errors.list().is_empty());
    assert!(state.verdicts().is_empty());
}

#[test]
fn an_object_leaving_the_mesh_is_deleted() {
    let (mut state, _) = state();
    let mut changes = Vec::new();
    let ns = Kind::Namespace;
    state.handle(
        ns,
        WatchEvent::Apply(ok(ns, "a", namespace("a", "ambient"))),
        &mut changes,
    );
    let finished = Observed {
        key: key(ns, "a"),
        generation: None,
        object: Ok(None),
    };
    state.handle(ns, WatchEvent::Apply(finished), &mut changes);
    assert_eq!(
        summary(&changes),
        ["apply Namespace a", "delete Namespace a"]
    );
}
