//! The pure part of status writing: which `status` a verdict asks for, given
//! the status the object carries now. No I/O; the clock is a parameter.

use braid_crd::condition;
use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use serde::{Deserialize, Serialize};

use super::Verdict;

/// The condition message of an accepted object.
pub const ACCEPTED_MESSAGE: &str = "the object is valid and served to the proxies";

/// The API server refuses condition messages longer than this (bytes).
const MAX_MESSAGE: usize = 32 * 1024;

/// The `status` of a Braid CRD (every kind has this shape).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrdStatus {
    /// The `metadata.generation` last judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The conditions; the writer owns only `Accepted`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// The status `verdict` asks for: `observedGeneration` and one `Accepted`
/// condition. The condition keeps `current`'s `lastTransitionTime` when its
/// status (True/False) does not change, so a new generation that is still
/// invalid, or a message that changes, is not a transition; otherwise the
/// transition happens `now`.
pub fn desired_status(verdict: &Verdict, current: Option<&CrdStatus>, now: Timestamp) -> CrdStatus {
    let (status, reason, message) = match &verdict.error {
        None => ("True", condition::ACCEPTED, ACCEPTED_MESSAGE.to_string()),
        Some(error) => ("False", condition::INVALID, truncated(error)),
    };
    let last_transition_time = accepted(current)
        .filter(|previous| previous.status == status)
        .map_or(Time(now), |previous| previous.last_transition_time.clone());
    CrdStatus {
        observed_generation: verdict.generation,
        conditions: vec![Condition {
            type_: condition::TYPE_ACCEPTED.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message,
            observed_generation: verdict.generation,
            last_transition_time,
        }],
    }
}

/// Whether `current` already says what `desired` says: the same
/// `observedGeneration` and each desired condition present as is.
/// Conditions of other types (someone else's) do not matter.
pub fn is_up_to_date(current: Option<&CrdStatus>, desired: &CrdStatus) -> bool {
    let Some(current) = current else {
        return false;
    };
    current.observed_generation == desired.observed_generation
        && desired
            .conditions
            .iter()
            .all(|wanted| current.conditions.contains(wanted))
}

/// The `Accepted` condition of `status`, if any.
fn accepted(status: Option<&CrdStatus>) -> Option<&Condition> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == condition::TYPE_ACCEPTED)
}

/// `message`, cut to what the API server takes (on a character boundary).
pub(super) fn truncated(message: &str) -> String {
    if message.len() <= MAX_MESSAGE {
        return message.to_string();
    }
    let mut end = MAX_MESSAGE - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}
