//! The pure half of `braidctl waypoint`: the Gateway it writes, what it
//! reads back from one, and the text it prints.

use std::collections::BTreeMap;

use braid_model::WAYPOINT_LABEL;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::DynamicObject;
use serde_json::{Value, json};

/// The class of waypoint Gateways.
pub(super) const CLASS: &str = "braid-waypoint";

/// Who names each waypoint, by (namespace, waypoint name): `namespace
/// shop`, `service shop/web`.
pub(super) type Users = BTreeMap<(String, String), Vec<String>>;

/// A waypoint Gateway's conditions as `list` and `--wait` read them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct State {
    /// `Accepted`: `None` until the control plane judged it.
    pub(super) accepted: Option<bool>,
    /// `Programmed`: `None` until the control plane judged it.
    pub(super) programmed: Option<bool>,
    /// The `Programmed` message, or the `Accepted` one when not accepted.
    pub(super) message: String,
    /// `status.addresses`, joined.
    pub(super) addresses: String,
}

/// A waypoint name must be a DNS label: its Service is named after it.
pub(super) fn check_name(name: &str) -> anyhow::Result<()> {
    match braid_model::names::is_dns1035_label(name) {
        true => Ok(()),
        false => anyhow::bail!(
            "--name {name:?}: a waypoint's name must be a DNS label (lowercase letters, digits and '-', starting with a letter, at most 63 characters), since its Service is named after it"
        ),
    }
}

/// The waypoint Gateway `namespace/name`: class `braid-waypoint`, one HBONE
/// listener on 15008.
pub(super) fn gateway(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "gatewayClassName": CLASS,
            "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
        },
    })
}

/// Whether `gateway` is of the waypoint class.
pub(super) fn is_waypoint(gateway: &DynamicObject) -> bool {
    gateway
        .data
        .pointer("/spec/gatewayClassName")
        .and_then(Value::as_str)
        == Some(CLASS)
}

// === impl State ===

impl State {
    /// What `gateway`'s status says.
    pub(super) fn of(gateway: &DynamicObject) -> Self {
        let conditions = gateway
            .data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let find = |type_: &str| {
            conditions
                .iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        };
        let status = |c: Option<&Value>| match c?.get("status")?.as_str()? {
            "True" => Some(true),
            "False" => Some(false),
            _ => None,
        };
        let message = |c: Option<&Value>| {
            c.and_then(|c| c.get("message"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (accepted, programmed) = (find("Accepted"), find("Programmed"));
        let addresses = gateway
            .data
            .pointer("/status/addresses")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|a| a.get("value").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        Self {
            accepted: status(accepted),
            programmed: status(programmed),
            message: match status(accepted) {
                Some(false) => message(accepted),
                _ => message(programmed),
            },
            addresses,
        }
    }

    /// One phrase for an error message.
    pub(super) fn describe(&self) -> String {
        match (self.accepted, self.programmed) {
            (None, _) => {
                "the control plane has not judged it yet (is braid-control running?)".to_string()
            }
            (Some(false), _) => format!("not accepted: {}", self.message),
            (_, _) => format!("not programmed: {}", self.message),
        }
    }

    fn column(&self) -> &'static str {
        match (self.accepted, self.programmed) {
            (None, _) => "Unknown",
            (Some(false), _) => "NotAccepted",
            (_, Some(true)) => "True",
            (_, _) => "False",
        }
    }
}

/// Who names which waypoint: each namespace's and Service's
/// `braid.dev/waypoint` label (`none` names nothing).
pub(super) fn users(namespaces: &[Namespace], services: &[Service]) -> Users {
    let mut users = Users::new();
    let label = |labels: Option<&BTreeMap<String, String>>| {
        labels
            .and_then(|l| l.get(WAYPOINT_LABEL))
            .filter(|v| v.as_str() != "none")
            .cloned()
    };
    for ns in namespaces {
        let name = ns.metadata.name.clone().unwrap_or_default();
        if let Some(waypoint) = label(ns.metadata.labels.as_ref()) {
            users
                .entry((name.clone(), waypoint))
                .or_default()
                .push(format!("namespace {name}"));
        }
    }
    for svc in services {
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        if let Some(waypoint) = label(svc.metadata.labels.as_ref()) {
            users
                .entry((ns.clone(), waypoint))
                .or_default()
                .push(format!("service {ns}/{name}"));
        }
    }
    users
}

/// The `list` table: one line per waypoint Gateway, then any label that
/// names a waypoint that does not exist.
pub(super) fn table(gateways: &[DynamicObject], users: &Users) -> String {
    let mut rows = vec![[
        "NAMESPACE".to_string(),
        "NAME".to_string(),
        "PROGRAMMED".to_string(),
        "ADDRESS".to_string(),
        "USED BY".to_string(),
    ]];
    let mut known = Vec::new();
    for gateway in gateways.iter().filter(|g| is_waypoint(g)) {
        let ns = gateway.metadata.namespace.clone().unwrap_or_default();
        let name = gateway.metadata.name.clone().unwrap_or_default();
        let state = State::of(gateway);
        let used = users
            .get(&(ns.clone(), name.clone()))
            .map_or_else(|| "-".to_string(), |u| u.join(", "));
        known.push((ns.clone(), name.clone()));
        rows.push([
            ns,
            name,
            state.column().to_string(),
            match state.addresses.as_str() {
                "" => "-".to_string(),
                a => a.to_string(),
            },
            used,
        ]);
    }
    let mut out = match rows.len() {
        1 => "no waypoints\n".to_string(),
        _ => render(&rows),
    };
    for ((ns, name), who) in users {
        if !known.contains(&(ns.clone(), name.clone())) {
            out.push_str(&format!(
                "warning: {} name waypoint {ns}/{name}, which does not exist: their traffic is refused (apply it with `braidctl waypoint apply -n {ns} --name {name}`)\n",
                who.join(", ")
            ));
        }
    }
    out
}

/// The warning after deleting `ns/name` while labels still name it.
pub(super) fn still_named(users: &Users, ns: &str, name: &str) -> Option<String> {
    let who = users.get(&(ns.to_string(), name.to_string()))?;
    Some(format!(
        "warning: {} still name waypoint {ns}/{name}: their traffic is refused (never sent around a waypoint) until you remove the {WAYPOINT_LABEL} label or apply the waypoint again",
        who.join(", ")
    ))
}

/// Left-aligned columns, two spaces apart.
fn render(rows: &[[String; 5]]) -> String {
    let mut widths = [0usize; 5];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
