//! `braidctl status`: every workload's effective mode (from labels), the data
//! plane that actually serves it, the connected proxy, and what a mode
//! switch still waits for. Served by `ControlPlaneDebug/ModeStatus`.

use std::process::ExitCode;

use anyhow::Context as _;
use braid_api::braid::{
    admin::v1alpha1::{
        ModeStatusRequest, ModeStatusResponse, PendingRestart, ProxyKind, WorkloadModeStatus,
    },
    workload::v1alpha1::DataPlaneMode,
};

use crate::{ControlPlane, debug};

/// Arguments of `braidctl status`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    control_plane: ControlPlane,
    /// Only workloads of this namespace.
    #[arg(long, short = 'n', value_name = "NS")]
    namespace: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// How to print the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    /// An aligned table and a summary line.
    Table,
    /// One JSON document, for scripts.
    Json,
}

/// Prints the mode status of every workload (or one namespace's). Always
/// exits 0: a pending restart is a state to show, not an error.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut client = debug::connect(&args.control_plane).await?;
    let status = client
        .mode_status(ModeStatusRequest {
            namespace: args.namespace.clone().unwrap_or_default(),
        })
        .await
        .with_context(|| format!("status request failed{}", args.control_plane.tls_hint()))?
        .into_inner();
    match args.output {
        Output::Table => print!("{}", table(&status, args.namespace.as_deref())),
        Output::Json => debug::print_json(&json_view(&status))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The table, then a summary line.
fn table(status: &ModeStatusResponse, namespace: Option<&str>) -> String {
    let mut out = String::new();
    if status.workloads.is_empty() {
        out.push_str("no workloads");
        if let Some(ns) = namespace {
            out.push_str(&format!(" in namespace {ns}"));
        }
        out.push('\n');
        return out;
    }
    let mut rows = vec![
        [
            "NAMESPACE",
            "NAME",
            "NODE",
            "EFFECTIVE",
            "ACTUAL",
            "PROXY",
            "STATUS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    // Every cell from the control plane is escaped: node ids come from proxies.
    for w in &status.workloads {
        rows.push(vec![
            debug::cell(&w.namespace),
            debug::cell(&w.name),
            if w.node.is_empty() {
                "-".into()
            } else {
                debug::cell(&w.node)
            },
            mode(w.effective_mode).into(),
            mode(w.actual_mode).into(),
            proxy(w),
            pending(w).into(),
        ]);
    }
    debug::write_aligned(&mut out, &rows);
    out.push_str(&summary(status));
    out.push('\n');
    out
}

/// "3 workloads, 1 waits for a restart".
fn summary(status: &ModeStatusResponse) -> String {
    let total = status.workloads.len();
    let waiting = status.workloads.iter().filter(|w| waits(w)).count();
    let noun = if total == 1 { "workload" } else { "workloads" };
    match waiting {
        0 => format!("{total} {noun}, none waits for a restart"),
        1 => format!("{total} {noun}, 1 waits for a restart"),
        n => format!("{total} {noun}, {n} wait for a restart"),
    }
}

fn waits(w: &WorkloadModeStatus) -> bool {
    !matches!(
        PendingRestart::try_from(w.pending),
        Ok(PendingRestart::None | PendingRestart::Unspecified)
    )
}

/// A mode as its label value.
fn mode(value: i32) -> &'static str {
    match DataPlaneMode::try_from(value) {
        Ok(DataPlaneMode::Sidecar) => "sidecar",
        Ok(DataPlaneMode::Ambient) => "ambient",
        Ok(DataPlaneMode::None | DataPlaneMode::Unspecified) => "none",
        Err(_) => "unknown",
    }
}

/// What a switch still waits for, in words.
fn pending(w: &WorkloadModeStatus) -> &'static str {
    match PendingRestart::try_from(w.pending) {
        Ok(PendingRestart::None | PendingRestart::Unspecified) => "ok",
        Ok(PendingRestart::ToGetSidecar) => "restart to get a sidecar",
        Ok(PendingRestart::ToLeaveSidecar) => "restart to leave its sidecar",
        Ok(PendingRestart::ToJoinAmbient) => "restart to join ambient",
        Err(_) => "unknown",
    }
}

/// The connected proxy that serves the workload, or `-`.
fn proxy(w: &WorkloadModeStatus) -> String {
    let Some(p) = &w.proxy else {
        return "-".into();
    };
    match ProxyKind::try_from(p.kind) {
        Ok(ProxyKind::Sidecar) => "sidecar connected".into(),
        Ok(ProxyKind::Ztunnel) => format!("ztunnel {} connected", debug::cell(&w.node)),
        _ => format!("{} connected", debug::cell(&p.node_id)),
    }
}

fn json_view(status: &ModeStatusResponse) -> serde_json::Value {
    let waiting = status.workloads.iter().filter(|w| waits(w)).count();
    serde_json::json!({
        "current_version": status.current_version,
        "workloads": status.workloads.iter().map(|w| serde_json::json!({
            "namespace": w.namespace,
            "name": w.name,
            "node": w.node,
            "effective": mode(w.effective_mode),
            "actual": mode(w.actual_mode),
            "proxy": w.proxy.as_ref().map(|p| serde_json::json!({
                "kind": match ProxyKind::try_from(p.kind) {
                    Ok(ProxyKind::Sidecar) => "sidecar",
                    Ok(ProxyKind::Ztunnel) => "ztunnel",
                    _ => "unknown",
                },
                "node_id": p.node_id,
            })),
            "status": pending(w),
            "waits_for_restart": waits(w),
        })).collect::<Vec<_>>(),
        "total": status.workloads.len(),
        "waiting_for_restart": waiting,
    })
}

#[cfg(test)]
mod tests {
    use braid_api::braid::admin::v1alpha1::ServingProxy;

    use super::*;

    fn row(
        name: &str,
        effective: DataPlaneMode,
        actual: DataPlaneMode,
        pending: PendingRestart,
        proxy: Option<(ProxyKind, &str)>,
    ) -> WorkloadModeStatus {
        WorkloadModeStatus {
            namespace: "shop".into(),
            name: name.into(),
            node: "node-a".into(),
            effective_mode: effective.into(),
            actual_mode: actual.into(),
            pending: pending.into(),
            proxy: proxy.map(|(kind, node_id)| ServingProxy {
                kind: kind.into(),
                node_id: node_id.into(),
            }),
        }
    }

    fn example() -> ModeStatusResponse {
        ModeStatusResponse {
            current_version: "4".into(),
            workloads: vec![
                row(
                    "a-0",
                    DataPlaneMode::Ambient,
                    DataPlaneMode::Ambient,
                    PendingRestart::None,
                    Some((ProxyKind::Ztunnel, "ztunnel~node-a")),
                ),
                row(
                    "b-0",
                    DataPlaneMode::Ambient,
                    DataPlaneMode::Sidecar,
                    PendingRestart::ToJoinAmbient,
                    Some((ProxyKind::Sidecar, "sidecar~shop/b-0")),
                ),
                row(
                    "c-0",
                    DataPlaneMode::Sidecar,
                    DataPlaneMode::None,
                    PendingRestart::ToGetSidecar,
                    None,
                ),
                row(
                    "d-0",
                    DataPlaneMode::None,
                    DataPlaneMode::Sidecar,
                    PendingRestart::ToLeaveSidecar,
                    None,
                ),
            ],
        }
    }

    #[test]
    fn table_shows_modes_proxies_and_what_each_waits_for() {
        let out = table(&example(), None);
        let lines: Vec<&str> = out.lines().collect();
        let cells = |i: usize| -> Vec<&str> {
            lines[i]
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        };
        assert_eq!(
            cells(0),
            [
                "NAMESPACE",
                "NAME",
                "NODE",
                "EFFECTIVE",
                "ACTUAL",
                "PROXY",
                "STATUS"
            ]
        );
        assert_eq!(
            cells(1),
            [
                "shop",
                "a-0",
                "node-a",
                "ambient",
                "ambient",
                "ztunnel node-a connected",
                "ok"
            ]
        );
        assert_eq!(
            cells(2),
            [
                "shop",
                "b-0",
                "node-a",
                "ambient",
                "sidecar",
                "sidecar connected",
                "restart to join ambient"
            ]
        );
        assert_eq!(
            cells(3),
            [
                "shop",
                "c-0",
                "node-a",
                "sidecar",
                "none",
                "-",
                "restart to get a sidecar"
            ]
        );
        assert_eq!(
            cells(4),
            [
                "shop",
                "d-0",
                "node-a",
                "none",
                "sidecar",
                "-",
                "restart to leave its sidecar"
            ]
        );
        assert_eq!(lines[5], "4 workloads, 3 wait for a restart");
        assert_eq!(lines.len(), 6);
    }

    #[test]
    fn status_escapes_terminal_controls() {
        let mut status = example();
        status.workloads[0].name = "a\x1b[2J\nforged".into();
        status.workloads[0].node = "n\u{9b}".into();
        status.workloads[0].proxy = Some(ServingProxy {
            kind: 0,
            node_id: "evil\x1b]0;x\x07".into(),
        });
        let out = table(&status, None);
        assert!(
            !out.chars()
                .any(|c| braid_model::text::is_unsafe(c) && c != '\n'),
            "{out:?}"
        );
        assert_eq!(out.lines().count(), 6, "no forged line: {out}");
        assert!(out.contains("a\\u{1b}[2J\\nforged"), "{out}");
        assert!(out.contains("evil\\u{1b}]0;x\\u{7} connected"), "{out}");
    }

    #[test]
    fn summary_counts_in_words() {
        let mut status = example();
        status.workloads.truncate(2);
        assert_eq!(summary(&status), "2 workloads, 1 waits for a restart");
        status.workloads.truncate(1);
        assert_eq!(summary(&status), "1 workload, none waits for a restart");
        status.workloads.clear();
        assert_eq!(
            table(&status, Some("shop")),
            "no workloads in namespace shop\n"
        );
    }

    #[test]
    fn json_has_every_field_for_scripts() {
        let json = json_view(&example());
        assert_eq!(json["total"], 4);
        assert_eq!(json["waiting_for_restart"], 3);
        let b = &json["workloads"][1];
        assert_eq!(b["effective"], "ambient");
        assert_eq!(b["actual"], "sidecar");
        assert_eq!(b["status"], "restart to join ambient");
        assert_eq!(b["waits_for_restart"], true);
        assert_eq!(b["proxy"]["kind"], "sidecar");
        assert_eq!(b["proxy"]["node_id"], "sidecar~shop/b-0");
        assert!(json["workloads"][2]["proxy"].is_null());
    }
}
