//! `braidctl install`: applies the install manifests (embedded at build
//! time, the same files as `kubectl apply -k manifests/install`) with
//! server-side apply, field manager `braidctl`, and creates the mesh's CA
//! when the cluster has none yet.
//!
//! Re-running it is safe: objects are configured to match the manifests,
//! and an existing CA is kept.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use kube::{
    Api, Client,
    api::{DynamicObject, PostParams, TypeMeta},
};

mod apply;
mod ca;
mod manifests;

pub(crate) use apply::hint;
use apply::{Applier, Outcome};

/// The namespace the manifests install into.
const NAMESPACE: &str = "braid-system";

/// Arguments of `braidctl install`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Ask the API server to check every object (server-side dry run)
    /// without changing anything.
    #[arg(long)]
    dry_run: bool,

    /// Trust domain of the CA created for a new install.
    #[arg(long, env = "BRAID_TRUST_DOMAIN", default_value = braid_model::DEFAULT_TRUST_DOMAIN)]
    trust_domain: String,

    #[command(flatten)]
    kube: KubeArgs,
}

/// How to reach the API server; shared by the commands that talk to it.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct KubeArgs {
    /// The kubeconfig to use instead of `KUBECONFIG` or `~/.kube/config`.
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeconfig: Option<PathBuf>,
}

// === impl KubeArgs ===

impl KubeArgs {
    /// A client for the kubeconfig's current context.
    pub(crate) async fn client(&self) -> anyhow::Result<Client> {
        let config = match &self.kubeconfig {
            Some(path) => from_file(path).await?,
            None => kube::Config::infer()
                .await
                .context("cannot find a kubeconfig: set KUBECONFIG or pass --kubeconfig FILE")?,
        };
        Client::try_from(config).context("cannot build a Kubernetes client from the kubeconfig")
    }
}

async fn from_file(path: &Path) -> anyhow::Result<kube::Config> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("cannot read --kubeconfig {}", path.display()))?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .with_context(|| format!("--kubeconfig {}", path.display()))
}

/// Runs `braidctl install`.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.kube.client().await?;
    let objects = manifests::objects()?;
    let mut applier = Applier::new(client.clone(), args.dry_run);
    // Namespaces a dry run would create: the server cannot check what
    // would go into them.
    let mut pending = BTreeSet::new();
    for object in &objects {
        let outcome = applier.apply(object, &pending).await?;
        println!("{}", applier.line(object, outcome));
        if manifests::kind_of(object) == "Namespace" {
            if outcome == Outcome::Created && args.dry_run {
                pending.extend(object.metadata.name.clone());
            }
            if object.metadata.name.as_deref() == Some(NAMESPACE) {
                ensure_ca(&client, &args, pending.contains(NAMESPACE)).await?;
            }
        }
    }
    if args.dry_run {
        println!("\nDry run: nothing was changed. Run `braidctl install` to install.");
    } else {
        println!(
            "\nBraid is installed. Next:\n  \
             kubectl -n {NAMESPACE} rollout status deployment/braid-control\n  \
             braidctl mode <namespace> ambient    # or sidecar: put a namespace in the mesh"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates the CA Secret unless it exists, then applies the root ConfigMap
/// from whichever Secret is there.
async fn ensure_ca(client: &Client, args: &Args, namespace_pending: bool) -> anyhow::Result<()> {
    let suffix = if args.dry_run { " (dry run)" } else { "" };
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), NAMESPACE);
    let existing = if namespace_pending {
        None
    } else {
        secrets
            .get_opt(ca::SECRET)
            .await
            .with_context(|| format!("cannot read Secret {NAMESPACE}/{}", ca::SECRET))?
    };
    let root = match existing {
        Some(secret) => {
            println!(
                "Secret {NAMESPACE}/{} unchanged (the existing CA is kept)",
                ca::SECRET
            );
            ca::root_of(&secret)?
        }
        None => {
            let generated = ca::generate(&args.trust_domain)?;
            if !namespace_pending {
                let params = PostParams {
                    dry_run: args.dry_run,
                    ..Default::default()
                };
                secrets
                    .create(&params, &generated.secret(NAMESPACE))
                    .await
                    .with_context(|| format!("cannot create Secret {NAMESPACE}/{}", ca::SECRET))?;
            }
            println!(
                "Secret {NAMESPACE}/{} created (a new CA for trust domain {}){suffix}",
                ca::SECRET,
                args.trust_domain
            );
            generated.root_pem
        }
    };
    let configmap = ca::root_configmap(NAMESPACE, &root);
    let mut object: DynamicObject = serde_json::from_value(serde_json::to_value(&configmap)?)?;
    object.types = Some(TypeMeta {
        api_version: "v1".to_string(),
        kind: "ConfigMap".to_string(),
    });
    let pending = if namespace_pending {
        BTreeSet::from([NAMESPACE.to_string()])
    } else {
        BTreeSet::new()
    };
    let mut applier = Applier::new(client.clone(), args.dry_run);
    let outcome = applier.apply(&object, &pending).await?;
    println!("{}", applier.line(&object, outcome));
    Ok(())
}
