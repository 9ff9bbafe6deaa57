//! `braidctl waypoint apply|list|delete`: waypoints as the Gateway API
//! Gateways (class `braid-waypoint`) the control plane runs.
//!
//! * `apply` writes the Gateway with server-side apply (field manager
//!   `braidctl`), optionally labels the namespace `braid.dev/waypoint` so
//!   its traffic goes through it (`--enroll-namespace`), and with `--wait`
//!   waits for `Programmed`. `--print` writes the Gateway's YAML instead,
//!   for a YAML configuration directory.
//! * `list` shows each waypoint, whether it is programmed, and what sends
//!   traffic through it (the namespace's and Services' labels).
//! * `delete` deletes the Gateway (its Deployment, Service and account go
//!   with it) and warns about what still names it: that traffic is refused
//!   until the label goes, because traffic never bypasses a waypoint.
//!
//! What to write and print is pure ([`view`]); this module talks to the
//! API server.

use std::{process::ExitCode, time::Duration};

use anyhow::{Context as _, bail};
use braid_model::WAYPOINT_LABEL;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::{
    Api,
    api::{
        ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    },
};

use crate::install::{KubeArgs, hint};

mod view;

/// The field manager of braidctl's writes.
const FIELD_MANAGER: &str = "braidctl";

/// Arguments of `braidctl waypoint`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create or update a waypoint (a Gateway of class braid-waypoint).
    Apply(ApplyArgs),
    /// List waypoints: programmed or not, and what goes through each.
    List(ListArgs),
    /// Delete a waypoint; warns about namespaces and Services that still name it.
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
struct ApplyArgs {
    /// The waypoint's namespace.
    #[arg(long, short = 'n', default_value = "default")]
    namespace: String,
    /// The waypoint's name (its Gateway, Deployment and Service).
    #[arg(long, default_value = "waypoint")]
    name: String,
    /// Also label the namespace braid.dev/waypoint=<name>, so traffic to
    /// all its workloads and Services goes through the waypoint.
    #[arg(long)]
    enroll_namespace: bool,
    /// Wait until the waypoint is Programmed (a waypoint pod is ready).
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long = "timeout", default_value_t = 120, value_name = "SECONDS")]
    timeout_seconds: u64,
    /// Print the Gateway as YAML instead of applying it (for a YAML
    /// configuration directory).
    #[arg(long)]
    print: bool,
    #[command(flatten)]
    kube: KubeArgs,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only this namespace's waypoints (default: every namespace).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    #[command(flatten)]
    kube: KubeArgs,
}

#[derive(Debug, clap::Args)]
struct DeleteArgs {
    /// The waypoint's name.
    name: String,
    /// The waypoint's namespace.
    #[arg(long, short = 'n', default_value = "default")]
    namespace: String,
    #[command(flatten)]
    kube: KubeArgs,
}

/// Runs `braidctl waypoint`.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Apply(args) => apply(args).await,
        Command::List(args) => list(args).await,
        Command::Delete(args) => delete(args).await,
    }
}

/// The Gateway API's `gateways` resource.
fn gateways(client: kube::Client, namespace: Option<&str>) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "Gateway");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "gateways");
    match namespace {
        Some(ns) => Api::namespaced_with(client, ns, &resource),
        None => Api::all_with(client, &resource),
    }
}

/// A hint for a missing Gateway CRD, else the usual ones.
fn gateway_hint(error: kube::Error) -> anyhow::Error {
    match &error {
        kube::Error::Api(status) if status.code == 404 && status.reason == "NotFound" => {
            anyhow::anyhow!(
                "{} (HTTP 404); if the Gateway API CRDs are not installed, install their standard channel first",
                status.message
            )
        }
        _ => hint(error),
    }
}

async fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    view::check_name(&args.name)?;
    let gateway = view::gateway(&args.namespace, &args.name);
    if args.print {
        print!("{}", serde_yaml_ng::to_string(&gateway)?);
        return Ok(ExitCode::SUCCESS);
    }
    let client = args.kube.client().await?;
    let (ns, name) = (&args.namespace, &args.name);
    let params = PatchParams::apply(FIELD_MANAGER);
    gateways(client.clone(), Some(ns))
        .patch(name, &params, &Patch::Apply(&gateway))
        .await
        .map_err(gateway_hint)
        .with_context(|| format!("cannot apply waypoint Gateway {ns}/{name}"))?;
    println!("waypoint {ns}/{name} applied (Gateway, class braid-waypoint)");
    if args.enroll_namespace {
        let patch = serde_json::json!({"metadata": {"labels": {WAYPOINT_LABEL: name}}});
        Api::<Namespace>::all(client.clone())
            .patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(hint)
            .with_context(|| format!("cannot label namespace {ns} {WAYPOINT_LABEL}={name}"))?;
        println!(
            "namespace {ns} labelled {WAYPOINT_LABEL}={name}: its traffic goes through the waypoint"
        );
    }
    if args.wait {
        wait_programmed(&client, ns, name, Duration::from_secs(args.timeout_seconds)).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Polls the Gateway until `Programmed=True` or `timeout`.
async fn wait_programmed(
    client: &kube::Client,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let api = gateways(client.clone(), Some(ns));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let gateway = api.get(name).await.map_err(gateway_hint)?;
        let state = view::State::of(&gateway);
        if state.programmed == Some(true) {
            println!("waypoint {ns}/{name} is programmed: {}", state.message);
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "waypoint {ns}/{name} is not programmed after {timeout:?}: {}; see `kubectl get deployment {name} -n {ns}` and the control plane's log",
                state.describe()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = args.kube.client().await?;
    let ns = args.namespace.as_deref();
    let found = gateways(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(gateway_hint)
        .context("cannot list Gateways")?;
    let namespaces = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default().labels(WAYPOINT_LABEL))
        .await
        .map_err(hint)
        .context("cannot list namespaces")?;
    let services = match ns {
        Some(ns) => Api::<Service>::namespaced(client, ns),
        None => Api::<Service>::all(client),
    }
    .list(&ListParams::default().labels(WAYPOINT_LABEL))
    .await
    .map_err(hint)
    .context("cannot list Services")?;
    let users = view::users(&namespaces.items, &services.items);
    print!("{}", view::table(&found.items, &users));
    Ok(ExitCode::SUCCESS)
}

async fn delete(args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let client = args.kube.client().await?;
    let (ns, name) = (&args.namespace, &args.name);
    let api = gateways(client.clone(), Some(ns));
    let gateway = api
        .get_opt(name)
        .await
        .map_err(gateway_hint)
        .with_context(|| format!("cannot read Gateway {ns}/{name}"))?
        .with_context(|| format!("no Gateway {ns}/{name}: see `braidctl waypoint list`"))?;
    if !view::is_waypoint(&gateway) {
        bail!(
            "Gateway {ns}/{name} is not a waypoint (its class is not braid-waypoint); delete it with kubectl if you mean to"
        );
    }
    api.delete(name, &DeleteParams::default())
        .await
        .map_err(gateway_hint)
        .with_context(|| format!("cannot delete Gateway {ns}/{name}"))?;
    println!("waypoint {ns}/{name} deleted (its Deployment, Service and ServiceAccount follow)");
    let namespaces = Api::<Namespace>::all(client.clone())
        .get_opt(ns)
        .await
        .map_err(hint)?
        .into_iter()
        .collect::<Vec<_>>();
    let services = Api::<Service>::namespaced(client, ns)
        .list(&ListParams::default().labels(WAYPOINT_LABEL))
        .await
        .map_err(hint)?;
    let users = view::users(&namespaces, &services.items);
    if let Some(warning) = view::still_named(&users, ns, name) {
        eprintln!("{warning}");
    }
    Ok(ExitCode::SUCCESS)
}
