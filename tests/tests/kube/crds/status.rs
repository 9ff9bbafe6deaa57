//! The status writer (`braid_control::status`) against the real API server:
//! of two replicas exactly one holds the Lease, a released Lease is taken
//! over at once and one a crashed replica left behind once it expires, and the leader's
//! conditions follow the verdicts without rewriting what is already right.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use braid_control::status::{self, CrdKind, StatusConfig, Verdict, Verdicts};
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{
    Api,
    api::PostParams,
    config::{KubeConfigOptions, Kubeconfig},
};
use tokio::{sync::watch, task::JoinHandle};

use crate::support::{self, Cluster};

/// One running status writer.
struct Replica {
    config: StatusConfig,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Replica {
    /// Starts a writer named `identity` with the Lease `braid-control` in `ns`.
    async fn start(
        cluster: &Cluster,
        ns: &str,
        identity: &str,
        lease_duration: Duration,
        verdicts: &watch::Sender<Arc<Verdicts>>,
    ) -> anyhow::Result<Self> {
        let mut config = StatusConfig::new(identity, ns);
        config.lease_duration = lease_duration;
        config.renew_every = Duration::from_millis(250);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(status::run(
            client(cluster).await?,
            config.clone(),
            verdicts.subscribe(),
            shutdown_rx,
        ));
        Ok(Self {
            config,
            shutdown,
            task,
        })
    }

    fn leading(&self) -> bool {
        self.config.leading()
    }

    /// Shuts down as the control plane would (releasing the Lease).
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .context("the status writer did not stop within 10 s")??;
        Ok(())
    }
}

async fn client(cluster: &Cluster) -> anyhow::Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(&cluster.kubeconfig)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// kubectl from async code (it blocks this worker while it runs).
fn kubectl(cluster: &Cluster, args: &[&str]) -> anyhow::Result<String> {
    tokio::task::block_in_place(|| cluster.kubectl(args))
}

/// `kubectl get <what> -o jsonpath=<path>` in `ns`.
fn jsonpath(cluster: &Cluster, ns: &str, what: &str, path: &str) -> anyhow::Result<String> {
    let (kind, name) = what.split_once('/').context("kind/name")?;
    kubectl(
        cluster,
        &[
            "get",
            kind,
            name,
            "-n",
            ns,
            "-o",
            &format!("jsonpath={path}"),
        ],
    )
}

/// Polls `check` every 50 ms until it holds or `timeout` passes.
async fn eventually(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut last = None;
    loop {
        match check() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last = Some(e),
        }
        if start.elapsed() > timeout {
            bail!("not within {timeout:?}: {what} (last error: {last:?})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn lease_holder(cluster: &Cluster, ns: &str) -> anyhow::Result<String> {
    jsonpath(cluster, ns, "lease/braid-control", "{.spec.holderIdentity}")
}

fn no_verdicts() -> watch::Sender<Arc<Verdicts>> {
    watch::channel(Arc::new(Verdicts::new())).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_and_a_released_lease_is_taken_over_at_once() -> anyhow::Result<()> {
    let Some(cluster) = support::cluster() else {
        return Ok(());
    };
    let ns = cluster.namespace("crds-lease", &[])?;
    let ns = ns.name();
    let verdicts = no_verdicts();
    // A long lease: a takeover within seconds can only come from the release.
    let long = Duration::from_secs(60);
    let a = Replica::start(cluster, ns, "replica-a", long, &verdicts).await?;
    let b = Replica::start(cluster, ns, "replica-b", long, &verdicts).await?;
    eventually(Duration::from_secs(10), "a leader is elected", || {
        Ok(a.leading() || b.leading())
    })
    .await?;
    // Exactly one, for several renewal periods.
    let watch_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < watch_until {
        assert!(a.leading() != b.leading(), "exactly one leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (leader, follower) = if a.leading() { (a, b) } else { (b, a) };
    assert_eq!(lease_holder(cluster, ns)?, leader.config.identity);

    let stopped = Instant::now();
    leader.stop().await?;
    eventually(Duration::from_secs(3), "the follower takes over", || {
        Ok(follower.leading() && lease_holder(cluster, ns)? == follower.config.identity)
    })
    .await?;
    eprintln!("takeover after release: {:?}", stopped.elapsed());
    let transitions = jsonpath(
        cluster,
        ns,
        "lease/braid-control",
        "{.spec.leaseTransitions}",
    )?;
    assert_eq!(transitions, "1");

    follower.stop().await?;
    assert_eq!(lease_holder(cluster, ns)?, "", "released on shutdown");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_lease_is_taken_over_once_it_expires() -> anyhow::Result<()> {
    let Some(cluster) = support::cluster() else {
        return Ok(());
    };
    let ns = cluster.namespace("crds-expiry", &[])?;
    let ns = ns.name();
    // A replica that renewed just now and then crashed (never released).
    let leases: Api<Lease> = Api::namespaced(client(cluster).await?, ns);
    let now = MicroTime(Timestamp::now());
    let abandoned = Lease {
        metadata: ObjectMeta {
            name: Some("braid-control".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("crashed".into()),
            lease_duration_seconds: Some(2),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    };
    leases.create(&PostParams::default(), &abandoned).await?;
    let created = Instant::now();
    let verdicts = no_verdicts();
    let b = Replica::start(cluster, ns, "replica-b", Duration::from_secs(15), &verdicts).await?;
    eventually(
        Duration::from_secs(6),
        "b takes over the expired Lease",
        || Ok(b.leading() && lease_holder(cluster, ns)? == "replica-b"),
    )
    .await?;
    let took = created.elapsed();
    eprintln!("takeover after expiry: {took:?}");
    assert!(
        took >= Duration::from_millis(1500),
        "b took a live Lease after {took:?}"
    );
    let transitions = jsonpath(
        cluster,
        ns,
        "lease/braid-control",
        "{.spec.leaseTransitions}",
    )?;
    assert_eq!(transitions, "1");
    b.stop().await
}

/// A verdict on the object `kind/name` of `ns` at its current generation.
fn verdict(
    cluster: &Cluster,
    ns: &str,
    kind: CrdKind,
    name: &str,
    error: Option<&str>,
) -> anyhow::Result<Verdict> {
    let short = match kind {
        CrdKind::AuthorizationPolicy => "bap",
        CrdKind::PeerAuthentication => "bpa",
        CrdKind::HttpRoute => "httproute",
        CrdKind::Gateway => "gateway",
    };
    let generation = jsonpath(
        cluster,
        ns,
        &format!("{short}/{name}"),
        "{.metadata.generation}",
    )?;
    Ok(Verdict {
        kind,
        namespace: ns.to_string(),
        name: name.to_string(),
        generation: Some(generation.parse()?),
        error: error.map(str::to_string),
        unresolved: None,
        waypoint: None,
        waypoint_parents: Vec::new(),
    })
}

/// The jsonpath of `field` of the Accepted condition.
fn accepted(field: &str) -> String {
    format!(r#"{{.status.conditions[?(@.type=="Accepted")].{field}}}"#)
}

fn publish(sender: &watch::Sender<Arc<Verdicts>>, verdicts: &[&Verdict]) {
    let map: BTreeMap<_, _> = verdicts
        .iter()
        .map(|v| ((v.kind, v.namespace.clone(), v.name.clone()), (*v).clone()))
        .collect();
    sender.send_replace(Arc::new(map));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_follow_the_verdicts() -> anyhow::Result<()> {
    let Some(cluster) = support::cluster() else {
        return Ok(());
    };
    cluster.install_crds()?;
    let ns = cluster.namespace("crds-status", &[])?;
    let ns = ns.name();
    let selector = |app: &str| {
        format!(
            "apiVersion: braid.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  selector:\n    matchExpressions: [{{key: app, operator: In, values: [{app}]}}]\n"
        )
    };
    cluster.apply(&selector("web"))?;
    cluster.apply(&format!(
        "apiVersion: braid.dev/v1alpha1\nkind: PeerAuthentication\nmetadata: {{name: strict, namespace: {ns}}}\nspec: {{mtls: {{mode: STRICT}}}}\n---\napiVersion: braid.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {{name: late, namespace: {ns}}}\nspec: {{}}\n"
    ))?;

    let invalid =
        "spec.selector.matchExpressions: is not supported yet; select workloads with matchLabels";
    let web = verdict(
        cluster,
        ns,
        CrdKind::AuthorizationPolicy,
        "web",
        Some(invalid),
    )?;
    let strict = verdict(cluster, ns, CrdKind::PeerAuthentication, "strict", None)?;
    let ghost = Verdict {
        name: "deleted-meanwhile".into(),
        ..strict.clone()
    };
    let (sender, _) = watch::channel(Arc::new(Verdicts::new()));
    publish(&sender, &[&web, &strict, &ghost]);
    let writer = Replica::start(cluster, ns, "writer", Duration::from_secs(15), &sender).await?;

    eventually(Duration::from_secs(10), "web is reported Invalid", || {
        Ok(jsonpath(cluster, ns, "bap/web", &accepted("reason"))? == "Invalid")
    })
    .await?;
    let message = jsonpath(cluster, ns, "bap/web", &accepted("message"))?;
    assert_eq!(message, invalid);
    let observed = jsonpath(cluster, ns, "bap/web", "{.status.observedGeneration}")?;
    assert_eq!(
        observed,
        jsonpath(cluster, ns, "bap/web", "{.metadata.generation}")?
    );
    eventually(Duration::from_secs(5), "strict is Accepted", || {
        Ok(jsonpath(cluster, ns, "bpa/strict", &accepted("status"))? == "True")
    })
    .await?;
    let rows = kubectl(cluster, &["get", "bap", "web", "-n", ns, "--no-headers"])?;
    assert_eq!(rows.split_whitespace().nth(2), Some("False"), "{rows}");
    let transition = jsonpath(cluster, ns, "bap/web", &accepted("lastTransitionTime"))?;

    // Unchanged verdicts cost nothing, not even a read: a status changed
    // behind the writer's back stays until the verdict (or the leader)
    // changes, while `late`, published along with them, gets its status.
    tamper(cluster, ns, "web")?;
    let late = verdict(cluster, ns, CrdKind::AuthorizationPolicy, "late", None)?;
    publish(&sender, &[&web, &strict, &ghost, &late]);
    eventually(Duration::from_secs(5), "late is Accepted", || {
        Ok(jsonpath(cluster, ns, "bap/late", &accepted("status"))? == "True")
    })
    .await?;
    let message = jsonpath(cluster, ns, "bap/web", &accepted("message"))?;
    assert_eq!(
        message, "tampered",
        "an unchanged verdict was written again"
    );

    // A new generation, still invalid for another reason: observedGeneration
    // and message follow, the transition time stays.
    cluster.apply(&selector("api"))?;
    let other = "spec.selector.matchExpressions[0]: still not supported";
    let web2 = verdict(
        cluster,
        ns,
        CrdKind::AuthorizationPolicy,
        "web",
        Some(other),
    )?;
    let generation = web2.generation.context("web has a generation")?;
    // Let the clock pass the transition's second, so a rewritten
    // lastTransitionTime would show.
    eventually(Duration::from_secs(2), "a second passes", || {
        let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        Ok(now > transition)
    })
    .await?;
    assert_eq!(Some(generation), web.generation.map(|g| g + 1));
    publish(&sender, &[&web2, &strict, &late]);
    eventually(
        Duration::from_secs(5),
        "web's new generation is judged",
        || {
            let observed = jsonpath(cluster, ns, "bap/web", "{.status.observedGeneration}")?;
            Ok(observed == generation.to_string())
        },
    )
    .await?;
    assert_eq!(
        jsonpath(cluster, ns, "bap/web", &accepted("message"))?,
        other
    );
    let kept = jsonpath(cluster, ns, "bap/web", &accepted("lastTransitionTime"))?;
    assert_eq!(kept, transition);
    let spec = jsonpath(
        cluster,
        ns,
        "bap/web",
        "{.spec.selector.matchExpressions[0].values[0]}",
    )?;
    assert_eq!(spec, "api", "the writer never touches spec");

    // A new leader re-checks every object once.
    writer.stop().await?;
    tamper(cluster, ns, "web")?;
    let writer = Replica::start(cluster, ns, "writer-2", Duration::from_secs(15), &sender).await?;
    eventually(Duration::from_secs(5), "the new leader repairs web", || {
        Ok(jsonpath(cluster, ns, "bap/web", &accepted("message"))? == other)
    })
    .await?;
    writer.stop().await
}

/// Changes the message of `name`'s first condition, as another client might.
fn tamper(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<()> {
    let patch =
        r#"[{"op": "replace", "path": "/status/conditions/0/message", "value": "tampered"}]"#;
    kubectl(
        cluster,
        &[
            "patch",
            "bap",
            name,
            "-n",
            ns,
            "--subresource=status",
            "--type=json",
            "-p",
            patch,
        ],
    )?;
    Ok(())
}
