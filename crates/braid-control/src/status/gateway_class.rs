//! The GatewayClass `braid-waypoint`: the leader makes sure it exists,
//! naming Braid as its controller, and says it is `Accepted`, so
//! `kubectl get gatewayclass` shows who runs waypoint Gateways and Gateway
//! API tooling finds the class its Gateways name.
//!
//! A class of that name that names another controller is left alone (its
//! `controllerName` cannot change): Braid then says so in its log, and
//! still runs the Gateways of class `braid-waypoint`, which is what the
//! Gateways themselves ask for.

use braid_crd::{gateway::WAYPOINT_CLASS, httproute::GATEWAY_GROUP};
use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::{
    Client,
    api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams},
};

use super::{FIELD_MANAGER, route::CONTROLLER_NAME};

/// `spec.description` of the class Braid creates.
const DESCRIPTION: &str = "Braid waypoints: shared L7 proxies reached over HBONE";

/// What ensuring the class came to.
#[derive(Debug)]
pub(super) enum ClassOutcome {
    /// It exists, names Braid and says `Accepted`.
    Ready,
    /// The Gateway API CRDs are not installed (try again later, quietly).
    NoCrd,
    /// It names another controller; nothing was written.
    Foreign(String),
}

/// The `GatewayClass` resource (cluster scoped).
fn resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk(GATEWAY_GROUP, "v1", "GatewayClass");
    ApiResource::from_gvk_with_plural(&gvk, "gatewayclasses")
}

/// Creates the class when absent and writes its `Accepted` condition when
/// it does not say so already.
pub(super) async fn ensure(client: &Client) -> Result<ClassOutcome, kube::Error> {
    let resource = resource();
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let params = PatchParams::apply(FIELD_MANAGER);
    let existing = match api.get_opt(WAYPOINT_CLASS).await {
        Ok(found) => found,
        Err(e) if super::lease::is_status(&e, 404) => return Ok(ClassOutcome::NoCrd),
        Err(e) => return Err(e),
    };
    let object = match existing {
        Some(object) => object,
        None => {
            let class = serde_json::json!({
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "metadata": {"name": WAYPOINT_CLASS},
                "spec": {
                    "controllerName": CONTROLLER_NAME,
                    // At most 64 bytes (the CRD's schema).
                    "description": DESCRIPTION,
                },
            });
            api.patch(WAYPOINT_CLASS, &params, &Patch::Apply(&class))
                .await?
        }
    };
    let controller = object
        .data
        .pointer("/spec/controllerName")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if controller != CONTROLLER_NAME {
        return Ok(ClassOutcome::Foreign(controller.to_string()));
    }
    let current = object.data.pointer("/status/conditions").cloned();
    let current: Vec<Condition> = current
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default();
    let Some(accepted) = desired_accepted(object.metadata.generation, &current, Timestamp::now())
    else {
        return Ok(ClassOutcome::Ready);
    };
    let status = serde_json::json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {"name": WAYPOINT_CLASS},
        "status": {"conditions": [accepted]},
    });
    api.patch_status(WAYPOINT_CLASS, &params.force(), &Patch::Apply(&status))
        .await?;
    Ok(ClassOutcome::Ready)
}

/// The `Accepted` condition for a class at `generation`, or `None` when
/// `current` already holds it.
fn desired_accepted(
    generation: Option<i64>,
    current: &[Condition],
    now: Timestamp,
) -> Option<Condition> {
    let previous = current.iter().find(|c| c.type_ == "Accepted");
    let wanted = Condition {
        type_: "Accepted".to_string(),
        status: "True".to_string(),
        reason: "Accepted".to_string(),
        message: "braid-control runs the Gateways of this class as waypoints".to_string(),
        observed_generation: generation,
        last_transition_time: previous
            .filter(|c| c.status == "True")
            .map_or(Time(now), |c| c.last_transition_time.clone()),
    };
    (previous != Some(&wanted)).then_some(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("valid time")
    }

    #[test]
    fn the_description_fits_the_schema() {
        assert!(DESCRIPTION.len() <= 64, "{}", DESCRIPTION.len());
    }

    #[test]
    fn accepted_is_written_once_per_generation() {
        let first = desired_accepted(Some(1), &[], at(0)).expect("nothing there yet");
        assert_eq!(
            (first.status.as_str(), first.reason.as_str()),
            ("True", "Accepted")
        );
        assert_eq!(first.observed_generation, Some(1));
        assert_eq!(
            desired_accepted(Some(1), std::slice::from_ref(&first), at(5)),
            None
        );
        // A new generation: written again, the transition time kept.
        let next =
            desired_accepted(Some(2), std::slice::from_ref(&first), at(9)).expect("new generation");
        assert_eq!(next.observed_generation, Some(2));
        assert_eq!(next.last_transition_time.0, at(0));
        // The initial `Pending` condition of the CRD's defaults is replaced.
        let pending = Condition {
            status: "Unknown".into(),
            reason: "Pending".into(),
            ..first
        };
        let from_pending = desired_accepted(Some(1), &[pending], at(7)).expect("was pending");
        assert_eq!(from_pending.last_transition_time.0, at(7));
    }
}
