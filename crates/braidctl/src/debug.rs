//! `proxy-status` and `config-errors`: read-only views served by the control
//! plane's debug gRPC API on its xDS port.
//!
//! Node ids, NACK reasons and names come from proxies through the control
//! plane, so every field printed goes through [`cell`] (tables, lines) or
//! [`print_json`]: a control character shows as an escape and never reaches
//! the operator's terminal.

use std::{fmt::Write as _, process::ExitCode};

use anyhow::Context as _;
use braid_api::{
    braid::admin::v1alpha1::{
        ConfigErrorsRequest, ProxyStatusRequest, ProxyStatusResponse,
        control_plane_debug_client::ControlPlaneDebugClient,
    },
    type_url,
};
use braid_model::text;

use crate::{ControlPlane, DebugClient};

/// Arguments of `braidctl proxy-status`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProxyStatusArgs {
    #[command(flatten)]
    control_plane: ControlPlane,
    /// Print the raw status as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Arguments of `braidctl config-errors`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConfigErrorsArgs {
    #[command(flatten)]
    control_plane: ControlPlane,
}

/// A debug client; with `--token-file`/`BRAID_TOKEN`, every call presents
/// the token (the control plane requires one off loopback).
pub(crate) async fn connect(cp: &ControlPlane) -> anyhow::Result<DebugClient> {
    let tls = cp.tls()?;
    let bearer = cp.bearer()?;
    let channel = braid_xds::channel::connect(&cp.uri(), tls.as_ref()).await;
    let client = |channel| ControlPlaneDebugClient::with_interceptor(channel, bearer);
    channel.map(client).with_context(|| {
        let hint = cp.tls_hint();
        format!(
            "cannot reach the control plane at {}; is braid-control running? (set --control-plane){hint}",
            cp.address
        )
    })
}

/// Prints every connected proxy; exits 1 when one is out of sync or NACKed,
/// so scripts can wait for convergence.
pub(crate) async fn proxy_status(args: ProxyStatusArgs) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.control_plane).await?;
    let status = client
        .proxy_status(ProxyStatusRequest {})
        .await
        .with_context(|| {
            format!(
                "proxy-status request failed{}",
                args.control_plane.tls_hint()
            )
        })?
        .into_inner();
    let all_synced = status
        .proxies
        .iter()
        .all(|p| p.types.iter().all(|t| t.in_sync));
    if args.json {
        print_json(&json_view(&status))?;
    } else {
        print!("{}", table(&status));
    }
    Ok(if all_synced {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Renders the status as an aligned table, one row per proxy and type.
fn table(status: &ProxyStatusResponse) -> String {
    let mut rows = vec![
        [
            "NODE",
            "PEER",
            "TYPE",
            "SENT",
            "ACKED",
            "STATE",
            "RESOURCES",
            "LAST NACK",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for p in &status.proxies {
        for t in &p.types {
            let state = if t.in_sync {
                "SYNCED"
            } else if t
                .last_nack
                .as_ref()
                .is_some_and(|n| n.version == t.sent_version)
            {
                "NACKED"
            } else {
                "STALE"
            };
            let nack = t.last_nack.as_ref().map_or_else(
                || "-".to_string(),
                |n| format!("v{}: {}", cell(&n.version), cell(&n.reason)),
            );
            rows.push(vec![
                cell(&p.node_id),
                cell(&p.peer),
                cell(type_url::short_name(&t.type_url).unwrap_or(&t.type_url)),
                dash(&t.sent_version),
                dash(&t.acked_version),
                state.to_string(),
                t.resources.to_string(),
                nack,
            ]);
        }
    }
    let mut out = format!(
        "control plane version {} · {} proxies\n",
        cell(&status.current_version),
        status.proxies.len()
    );
    write_aligned(&mut out, &rows);
    out
}

/// Appends `rows` (the first is the header) as columns padded to their
/// widest cell, two spaces apart; the last column is not padded.
pub(crate) fn write_aligned(out: &mut String, rows: &[Vec<String>]) {
    let Some(header) = rows.first() else {
        return;
    };
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let last = row.len() - 1;
        for (i, cell) in row.iter().enumerate() {
            if i == last {
                let _ = writeln!(out, "{cell}");
            } else {
                let _ = write!(out, "{cell:<width$}  ", width = widths[i]);
            }
        }
    }
}

fn dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { cell(s) }
}

/// A field from the control plane as it may be printed: control characters
/// (ESC, newlines, C1, bidirectional overrides) escaped.
pub(crate) fn cell(s: &str) -> String {
    text::escaped(s).to_string()
}

/// Prints `value` as pretty JSON. `serde_json` escapes C0 controls; the
/// rest that could drive a terminal (DEL, C1, bidi overrides) is escaped too,
/// and the document still reads back the same.
pub(crate) fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(value)?;
    println!("{}", text::json_terminal_safe(&json));
    Ok(())
}

fn json_view(status: &ProxyStatusResponse) -> serde_json::Value {
    serde_json::json!({
        "current_version": status.current_version,
        "proxies": status.proxies.iter().map(|p| serde_json::json!({
            "node_id": p.node_id,
            "peer": p.peer,
            "user_agent": p.user_agent,
            "types": p.types.iter().map(|t| serde_json::json!({
                "type_url": t.type_url,
                "sent_version": t.sent_version,
                "acked_version": t.acked_version,
                "in_sync": t.in_sync,
                "resources": t.resources,
                "wildcard": t.wildcard,
                "last_nack": t.last_nack.as_ref().map(|n| serde_json::json!({
                    "nonce": n.nonce, "version": n.version, "reason": n.reason,
                })),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Prints rejected documents; exits 1 when there are any.
pub(crate) async fn config_errors(args: ConfigErrorsArgs) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.control_plane).await?;
    let errors = client
        .config_errors(ConfigErrorsRequest {})
        .await
        .with_context(|| {
            format!(
                "config-errors request failed{}",
                args.control_plane.tls_hint()
            )
        })?
        .into_inner()
        .errors;
    if errors.is_empty() {
        println!("no configuration errors");
        return Ok(ExitCode::SUCCESS);
    }
    for e in &errors {
        print!("{}", config_error_line(e));
    }
    Ok(ExitCode::from(1))
}

/// One configuration error as a line: `file: document N: field F: message`.
fn config_error_line(e: &braid_api::braid::admin::v1alpha1::ConfigError) -> String {
    let mut line = cell(&e.file);
    if e.document >= 0 {
        let _ = write!(line, ": document {}", e.document);
    }
    if !e.field.is_empty() {
        let _ = write!(line, ": field {}", cell(&e.field));
    }
    let _ = writeln!(line, ": {}", cell(&e.message));
    line
}

#[cfg(test)]
mod tests {
    use braid_api::braid::admin::v1alpha1::{Nack, ProxyStatus, TypeStatus};

    use super::*;

    #[test]
    fn table_marks_nacked_and_synced_types() {
        let status = ProxyStatusResponse {
            current_version: "7".into(),
            proxies: vec![ProxyStatus {
                node_id: "ztunnel~node-a".into(),
                peer: "127.0.0.1:4000".into(),
                types: vec![
                    TypeStatus {
                        type_url: type_url::WORKLOAD.into(),
                        sent_version: "7".into(),
                        acked_version: "7".into(),
                        in_sync: true,
                        resources: 3,
                        ..Default::default()
                    },
                    TypeStatus {
                        type_url: type_url::SERVICE.into(),
                        sent_version: "7".into(),
                        acked_version: "6".into(),
                        last_nack: Some(Nack {
                            nonce: "9".into(),
                            version: "7".into(),
                            reason: "bad port".into(),
                            at: None,
                        }),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
        };
        let out = table(&status);
        assert!(
            out.starts_with("control plane version 7 · 1 proxies\n"),
            "{out}"
        );
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[2].contains("workload") && lines[2].contains("SYNCED"),
            "{out}"
        );
        assert!(
            lines[3].contains("service")
                && lines[3].contains("NACKED")
                && lines[3].ends_with("v7: bad port"),
            "{out}"
        );
    }
}

#[cfg(test)]
mod escape_tests {
    use braid_api::braid::admin::v1alpha1::{ConfigError, Nack, ProxyStatus, TypeStatus};

    use super::*;

    fn hostile() -> ProxyStatusResponse {
        ProxyStatusResponse {
            current_version: "3".into(),
            proxies: vec![ProxyStatus {
                node_id: "evil\x1b[2J\nforged".into(),
                peer: "127.0.0.1:1".into(),
                types: vec![TypeStatus {
                    type_url: "x\u{9b}31m".into(),
                    sent_version: "3".into(),
                    last_nack: Some(Nack {
                        nonce: "1".into(),
                        version: "3".into(),
                        reason: "bad\x1b]0;title\x07\u{202e}".into(),
                        at: None,
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn proxy_status_escapes_terminal_controls() {
        let out = table(&hostile());
        assert!(
            !out.chars().any(|c| text::is_unsafe(c) && c != '\n'),
            "{out:?}"
        );
        assert_eq!(out.lines().count(), 3, "no forged line: {out}");
        assert!(out.contains("evil\\u{1b}[2J\\nforged"), "{out}");
        assert!(out.contains("bad\\u{1b}]0;title\\u{7}\\u{202e}"), "{out}");
        let json = serde_json::to_string_pretty(&json_view(&hostile())).expect("json");
        let safe = text::json_terminal_safe(&json);
        assert!(
            !safe.chars().any(|c| text::is_unsafe(c) && c != '\n'),
            "{safe}"
        );
    }

    #[test]
    fn config_errors_escape_terminal_controls() {
        let line = config_error_line(&ConfigError {
            file: "a\x1b[2J.yaml".into(),
            document: 1,
            field: "spec\r".into(),
            message: "bad\nforged".into(),
        });
        assert_eq!(
            line,
            "a\\u{1b}[2J.yaml: document 1: field spec\\r: bad\\nforged\n"
        );
    }
}
