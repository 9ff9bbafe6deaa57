//! `braidctl mode NAMESPACE ambient|sidecar|none`: sets the namespace's
//! `braid.dev/mode` label (a merge patch) and says, pod by pod, what the
//! switch does now and what still needs a restart ([`plan`] decides; this
//! module only reads and writes the API server).

use std::{collections::BTreeSet, process::ExitCode};

use anyhow::Context as _;
use braid_model::{DataPlaneMode, MODE_LABEL};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};

use crate::install::KubeArgs;

mod plan;

use plan::PodFacts;

/// Arguments of `braidctl mode`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The namespace to switch.
    namespace: String,

    /// The new mode: ambient (the node's ztunnel), sidecar (a proxy in each
    /// pod) or none (out of the mesh).
    #[arg(value_parser = parse_mode)]
    mode: DataPlaneMode,

    /// Report what would happen without changing the label (server-side
    /// dry run).
    #[arg(long)]
    dry_run: bool,

    #[command(flatten)]
    kube: KubeArgs,
}

fn parse_mode(s: &str) -> Result<DataPlaneMode, String> {
    s.parse::<DataPlaneMode>().map_err(|e| e.to_string())
}

/// Runs `braidctl mode`.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.kube.client().await?;
    let ns = &args.namespace;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = namespaces
        .get_opt(ns)
        .await
        .map_err(crate::install::hint)
        .with_context(|| format!("cannot read namespace {ns}"))?
        .with_context(|| {
            format!("namespace {ns} does not exist (check the name and the kubeconfig's current context)")
        })?;
    let old_label = namespace
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MODE_LABEL))
        .cloned();
    let old = old_label.as_deref().and_then(|v| v.parse().ok());

    let pods: Api<Pod> = Api::namespaced(client, ns);
    let pods = pods
        .list(&ListParams::default())
        .await
        .map_err(crate::install::hint)
        .with_context(|| format!("cannot list the pods of namespace {ns}"))?;

    let patch = serde_json::json!({"metadata": {"labels": {MODE_LABEL: args.mode.as_str()}}});
    let params = PatchParams {
        dry_run: args.dry_run,
        ..Default::default()
    };
    namespaces
        .patch(ns, &params, &Patch::Merge(&patch))
        .await
        .map_err(crate::install::hint)
        .with_context(|| format!("cannot label namespace {ns} {MODE_LABEL}={}", args.mode))?;

    let facts: Vec<PodFacts> = pods.items.iter().map(PodFacts::from_pod).collect();
    print!("{}", report(&args, old_label.as_deref(), old, &facts));
    Ok(ExitCode::SUCCESS)
}

/// The text printed: the label change, a line per pod, the restarts.
fn report(
    args: &Args,
    old_label: Option<&str>,
    old: Option<DataPlaneMode>,
    pods: &[PodFacts],
) -> String {
    let ns = &args.namespace;
    let verb = if args.dry_run {
        "would change"
    } else {
        "changed"
    };
    let mut out = match old_label {
        Some(old) if old == args.mode.as_str() => {
            format!("namespace {ns}: {MODE_LABEL} is already {old}\n")
        }
        Some(old) => format!(
            "namespace {ns}: {MODE_LABEL} {verb} from {old} to {}\n",
            args.mode
        ),
        None => format!(
            "namespace {ns}: {MODE_LABEL} {verb} from unset (none) to {}\n",
            args.mode
        ),
    };
    if pods.is_empty() {
        out.push_str("no pods: new pods follow the new mode\n");
        return out;
    }
    let mut restarts = BTreeSet::new();
    for pod in pods {
        let plan = pod.plan(old, args.mode);
        out.push_str(&format!(
            "  pod {} ({} now): {}\n",
            pod.name, plan.now, plan.effect
        ));
        if plan.effect.needs_restart() {
            restarts.insert(pod.restart_command(ns));
        }
    }
    if !restarts.is_empty() {
        out.push_str("to finish the switch, restart:\n");
        for command in restarts {
            out.push_str(&format!("  {command}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan::{Owner, Phase};

    fn args(mode: DataPlaneMode, dry_run: bool) -> Args {
        Args {
            namespace: "shop".to_string(),
            mode,
            dry_run,
            kube: KubeArgs { kubeconfig: None },
        }
    }

    fn pod(name: &str, owner: Owner) -> PodFacts {
        PodFacts {
            name: name.to_string(),
            label: None,
            has_sidecar: false,
            phase: Phase::Running,
            owner,
        }
    }

    #[test]
    fn the_report_lists_each_pod_and_each_restart_once() {
        let web = Owner::Rollout("deployment", "web".to_string());
        let pods = [
            pod("web-1", web.clone()),
            pod("web-2", web),
            pod("lone", Owner::Other),
        ];
        let text = report(&args(DataPlaneMode::Sidecar, false), None, None, &pods);
        assert_eq!(
            text,
            "namespace shop: braid.dev/mode changed from unset (none) to sidecar\n\
             \x20 pod web-1 (none now): needs a restart to get a sidecar\n\
             \x20 pod web-2 (none now): needs a restart to get a sidecar\n\
             \x20 pod lone (none now): needs a restart to get a sidecar\n\
             to finish the switch, restart:\n\
             \x20 kubectl delete pod lone -n shop   # then create it again\n\
             \x20 kubectl rollout restart deployment/web -n shop\n"
        );
    }

    #[test]
    fn running_pods_turning_ambient_need_no_restart() {
        let web = Owner::Rollout("deployment", "web".to_string());
        let pods = [pod("web-1", web), pod("lone", Owner::Other)];
        let text = report(
            &args(DataPlaneMode::Ambient, false),
            Some("none"),
            Some(DataPlaneMode::None),
            &pods,
        );
        assert_eq!(
            text,
            "namespace shop: braid.dev/mode changed from none to ambient\n\
             \x20 pod web-1 (none now): captured in place by the node's agent within seconds (no restart needed)\n\
             \x20 pod lone (none now): captured in place by the node's agent within seconds (no restart needed)\n"
        );
    }

    #[test]
    fn a_dry_run_says_would_and_an_empty_namespace_says_so() {
        let text = report(
            &args(DataPlaneMode::Ambient, true),
            Some("sidecar"),
            Some(DataPlaneMode::Sidecar),
            &[],
        );
        assert_eq!(
            text,
            "namespace shop: braid.dev/mode would change from sidecar to ambient\n\
             no pods: new pods follow the new mode\n"
        );
        let same = report(
            &args(DataPlaneMode::Ambient, false),
            Some("ambient"),
            Some(DataPlaneMode::Ambient),
            &[],
        );
        assert!(
            same.starts_with("namespace shop: braid.dev/mode is already ambient\n"),
            "{same}"
        );
    }

    #[test]
    fn modes_parse_with_a_clear_error() {
        assert_eq!(parse_mode("ambient"), Ok(DataPlaneMode::Ambient));
        let error = parse_mode("mesh").expect_err("not a mode");
        assert!(error.contains("\"sidecar\""), "{error}");
    }
}
