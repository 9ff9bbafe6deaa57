//! `braidctl x watch`: subscribe to one resource type exactly as a proxy
//! does (through braid-xds) and print every delta as JSON lines.

use std::{io::Write as _, process::ExitCode};

use anyhow::{Context as _, bail};
use braid_xds::{Client, Delta, NodeInfo, Resource, Subscription};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::ControlPlane;

/// Arguments of `braidctl x watch`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    control_plane: ControlPlane,
    /// Resource type to watch.
    #[arg(
        long = "type",
        value_parser = ["workload", "service", "authorization", "peerauthentication", "httproute"]
    )]
    kind: String,
    /// Watch only these resource names (`<namespace>/<name>`); all when omitted.
    #[arg(long = "name", value_name = "NAME")]
    names: Vec<String>,
    /// Exit after this many deltas (0 = run until Ctrl-C).
    #[arg(long, default_value = "0")]
    count: u64,
    /// Node id to present to the control plane (shows in proxy-status).
    #[arg(long, default_value = "braidctl~watch")]
    node_id: String,
}

/// One printed line.
#[derive(Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Line<'a, T> {
    Update {
        r#type: &'a str,
        name: &'a str,
        version: &'a str,
        system_version: &'a str,
        resource: &'a T,
    },
    Remove {
        r#type: &'a str,
        name: &'a str,
        system_version: &'a str,
    },
}

/// Runs until Ctrl-C or `--count` deltas.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.kind.as_str() {
        "workload" => watch::<braid_model::Workload>(args).await,
        "service" => watch::<braid_model::Service>(args).await,
        "authorization" => watch::<braid_model::AuthorizationPolicy>(args).await,
        "peerauthentication" => watch::<braid_model::PeerAuthentication>(args).await,
        "httproute" => watch::<braid_model::HttpRoute>(args).await,
        other => bail!(
            "unknown type {other:?}; use workload, service, authorization, peerauthentication or httproute"
        ),
    }
}

async fn watch<T: Resource + Serialize>(args: Args) -> anyhow::Result<ExitCode> {
    let short = braid_api::type_url::short_name(T::TYPE_URL).unwrap_or("resource");
    let subscription = if args.names.is_empty() {
        Subscription::Wildcard
    } else {
        Subscription::names(args.names.iter().cloned())
    };
    let (deltas, mut received) = mpsc::unbounded_channel();
    let mut node = NodeInfo::new(args.node_id.clone());
    node.user_agent_name = "braidctl".into();
    let mut builder = Client::builder(args.control_plane.uri(), node);
    if let Some(tls) = args.control_plane.tls()? {
        builder = builder.control_plane_tls(tls);
    }
    let client = builder
        .watch::<T>(subscription, move |delta: Delta<T>| {
            print_delta(short, &delta);
            let _ = deltas.send(());
        })
        .build()
        .context("invalid control-plane address")?;
    let (handle, task) = client.spawn();
    eprintln!(
        "watching {short} resources at {} (Ctrl-C to stop)",
        args.control_plane.address
    );
    let mut seen = 0;
    loop {
        tokio::select! {
            delta = received.recv() => {
                if delta.is_none() {
                    break;
                }
                seen += 1;
                if args.count > 0 && seen >= args.count {
                    break;
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    handle.shutdown();
    let _ = task.await;
    Ok(ExitCode::SUCCESS)
}

fn print_delta<T: Serialize>(short: &str, delta: &Delta<T>) {
    let mut out = std::io::stdout().lock();
    let system_version = delta.system_version_info.as_str();
    for u in &delta.updated {
        let line = Line::Update {
            r#type: short,
            name: &u.name,
            version: &u.version,
            system_version,
            resource: u.value.as_ref(),
        };
        write_line(&mut out, &line);
    }
    for name in &delta.removed {
        let line: Line<'_, T> = Line::Remove {
            r#type: short,
            name,
            system_version,
        };
        write_line(&mut out, &line);
    }
    let _ = out.flush();
}

/// Writes one JSON line. Names and resources come from the control plane:
/// what `serde_json` leaves raw that could drive a terminal (DEL, C1, bidi
/// overrides) is escaped as well.
fn write_line(out: &mut impl std::io::Write, line: &impl Serialize) {
    match serde_json::to_string(line) {
        Ok(json) => {
            let _ = writeln!(out, "{}", braid_model::text::json_terminal_safe(&json));
        }
        Err(e) => eprintln!("cannot print resource: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_lines_escape_terminal_controls() {
        let line: Line<'_, String> = Line::Remove {
            r#type: "workload",
            name: "ns/a\x1b[2J\u{9b}\u{202e}",
            system_version: "1",
        };
        let mut out = Vec::new();
        write_line(&mut out, &line);
        let out = String::from_utf8(out).expect("utf-8");
        assert!(
            !out.trim_end().chars().any(braid_model::text::is_unsafe),
            "{out:?}"
        );
        let back: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
        assert_eq!(back["name"], "ns/a\x1b[2J\u{9b}\u{202e}");
    }
}
