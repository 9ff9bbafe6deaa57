//! The waypoint step's pods, brought up the way a cluster brings them up:
//! the versions are ambient pods (namespace, server, Pod document, CNI
//! ADD); the waypoint's pod gets no CNI ADD (it is addressed, never
//! captured) and runs `braid-proxy waypoint` in its namespace with its own
//! proxy token.

use std::{
    ffi::OsString,
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use braid_capture::NetNs;

use super::{Mesh, START_LIMIT, pods::CniPod, random_token};
use crate::demo::{
    canary::{self, Answer},
    http, net,
    state::Owned,
    traffic::Endpoint,
    waypoint::{self, PODS, SERVICE_PORT, SERVICES},
};

/// The application whose pod calls the Service (inventory's, ambient).
const CLIENT_APP: usize = 1;
/// Successive header-matched answers from v2 that make the route "live".
const READY_STREAK: u32 = 5;

/// The running step: where its traffic comes from and goes, and the
/// versions' servers (stopped when this is dropped; the namespaces and the
/// waypoint process go with the demo's cleanup, which recorded them).
#[derive(Debug)]
pub(crate) struct WaypointStep {
    /// Where the traffic comes from.
    pub(crate) client: Endpoint,
    /// `catalog`'s VIP and port.
    pub(crate) vip: SocketAddr,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for WaypointStep {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

// === impl Mesh ===

impl Mesh {
    /// Creates the step's pods, writes its configuration, starts the
    /// waypoint and waits until requests with the canary header reach v2
    /// through it.
    pub(crate) async fn start_waypoint(
        &mut self,
        owned: &mut Owned,
    ) -> anyhow::Result<WaypointStep> {
        let ns = waypoint::namespace();
        let mut nets = Vec::new();
        let mut servers = Vec::new();
        for p in &PODS {
            let net = net::add_pod(owned, p.name, p.ip).await?;
            if p.version.is_some() {
                let netns = NetNs::open(&net.path)
                    .with_context(|| format!("cannot open pod {}'s namespace", p.name))?;
                servers.push(http::serve(&netns, waypoint::APP_PORT, waypoint::body(p))?);
            }
            nets.push(net);
        }
        let wp = &PODS[2];
        let token = random_token()?;
        let token_file = self.dir.join(format!("{}.token", wp.name));
        std::fs::write(&token_file, &token)
            .with_context(|| format!("cannot write {}", token_file.display()))?;
        self.write_config(waypoint::FILE, &waypoint::yaml(&token))?;
        for (p, net) in PODS.iter().zip(&nets).filter(|(p, _)| p.version.is_some()) {
            let target = CniPod {
                node: p.node,
                namespace: ns,
                name: p.name.to_owned(),
                uid: p.uid.to_owned(),
                ip: p.ip,
            };
            self.cni_for(&target, net, "ADD").await?;
        }
        let args: Vec<OsString> = vec![
            "netns".into(),
            "exec".into(),
            nets[2].netns.clone().into(),
            self.bins.proxy.clone().into(),
            "waypoint".into(),
            "--pod".into(),
            format!("{ns}/{}", wp.name).into(),
            "--waypoint".into(),
            format!("{ns}/{}", waypoint::GATEWAY).into(),
            "--control-plane".into(),
            format!("http://{}", self.xds).into(),
            "--ca-root".into(),
            self.ca_root.clone().into(),
            "--token-file".into(),
            token_file.into(),
        ];
        owned.spawn(
            &format!("waypoint {}", wp.name),
            Path::new("ip"),
            &self.bins.proxy,
            &args,
        )?;
        let step = WaypointStep {
            client: self.current(CLIENT_APP)?,
            vip: SocketAddr::from((SERVICES[0].2, SERVICE_PORT)),
            servers,
        };
        until_routed(owned, &step).await?;
        Ok(step)
    }
}

/// Waits until [`READY_STREAK`] requests in a row with the canary header
/// are answered by v2: the waypoint has the route, and both hops work.
async fn until_routed(owned: &mut Owned, step: &WaypointStep) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_LIMIT;
    let mut streak = 0;
    while streak < READY_STREAK {
        owned.check_running()?;
        let answer = canary::request(&step.client, step.vip, true).await;
        if answer == Answer::V2 {
            streak += 1;
            continue;
        }
        streak = 0;
        if Instant::now() > deadline {
            bail!(
                "{} → {} with the canary header was not answered by v2 within {START_LIMIT:?} (last: {answer:?}); see the waypoint's log",
                step.client.pod,
                step.vip
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
