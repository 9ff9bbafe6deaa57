//! The walk-through: seven announced steps spaced over `--duration`, each
//! ending with a summary of what the live traffic saw during it, and a
//! closing verdict on what the demo set out to show.

use std::{
    fmt::Write as _,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::bail;

use super::{
    canary::{self, Canary, Tally},
    mesh::{Mesh, WaypointStep},
    metrics::Identities,
    state::Owned,
    topology::{self, APPS, Mode},
    traffic::{self, Traffic},
    view::{self, LIVE_WINDOW, Row, Screen},
    waypoint,
};

/// The DENY policy's file in the configuration directory.
const DENY_FILE: &str = "policy-deny-shop.yaml";
/// After its action, a step observes at least this long.
const MIN_OBSERVE: Duration = Duration::from_secs(3);
/// How often plain output prints the live table.
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// Application indexes in [`APPS`].
const SHOP: usize = 0;
const INVENTORY: usize = 1;
const LEGACY: usize = 2;
/// The edge the DENY policy hits (shop → inventory) in [`topology::EDGES`].
const DENIED_EDGE: usize = 1;

/// The steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Baseline,
    Deny,
    Allow,
    LegacyToAmbient,
    ShopToAmbient,
    AllMeshed,
    Waypoint,
}

const STEPS: [Step; 7] = [
    Step::Baseline,
    Step::Deny,
    Step::Allow,
    Step::LegacyToAmbient,
    Step::ShopToAmbient,
    Step::AllMeshed,
    Step::Waypoint,
];

/// The walk-through's settings.
#[derive(Debug)]
pub(crate) struct Walk {
    duration: Duration,
    keep: bool,
    screen: Screen,
}

/// What a step's summary found, for the verdict.
#[derive(Debug)]
struct Outcome {
    step: Step,
    rows: Vec<Row>,
    /// The waypoint's split and header match (without, with the header),
    /// once that step started them.
    canary: Option<(Tally, Tally)>,
}

/// The waypoint step's pods and its traffic, once started.
type Live = Option<(WaypointStep, Canary)>;

// === impl Step ===

impl Step {
    fn title(self) -> &'static str {
        match self {
            Step::Baseline => "three namespaces, three modes",
            Step::Deny => "apply a DENY AuthorizationPolicy: inventory refuses shop",
            Step::Allow => "remove the DENY policy",
            Step::LegacyToAmbient => "switch namespace legacy to ambient",
            Step::ShopToAmbient => "switch namespace shop from sidecar to ambient",
            Step::AllMeshed => "everything meshed",
            Step::Waypoint => "a waypoint: canary split and header match for catalog",
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Step::Baseline => {
                "shop runs a braid-proxy sidecar per pod, inventory is captured by its node's ztunnel (ambient),\nlegacy is not meshed: its requests reach shop in plaintext, the mesh's own hops are mutual TLS."
            }
            Step::Deny => {
                "writes policy-deny-shop.yaml (action DENY, from namespaces [shop]) into namespace inventory;\ninventory's ztunnel checks the caller's SPIFFE identity and refuses shop's connections."
            }
            Step::Allow => {
                "deletes the policy file; the ztunnels drop the rule and shop → inventory recovers."
            }
            Step::LegacyToAmbient => {
                "labels legacy braid.dev/mode=ambient: the node agent captures the running pod in place (no restart),\nso legacy's new connections leave over mutual TLS; requests must not fail meanwhile."
            }
            Step::ShopToAmbient => {
                "labels shop braid.dev/mode=ambient (the running sidecar keeps serving), then rolls its pod:\nthe new pod has no sidecar and is captured by the ztunnel; requests must not fail meanwhile."
            }
            Step::AllMeshed => {
                "every edge is mutual TLS between SPIFFE identities, with no sidecar left."
            }
            Step::Waypoint => {
                "writes waypoint.yaml: Service catalog (v1 on node-a, v2 on node-b) opts in to waypoint inventory/waypoint\n(braid.dev/waypoint label); its HTTPRoute sends x-canary: yes to v2, the rest 80/20 to v1/v2.\ninventory/stock calls catalog: its ztunnel only carries bytes to the waypoint, which picks the version per request."
            }
        }
    }
}

// === impl Walk ===

impl Walk {
    /// A walk-through taking about `duration` once traffic flows.
    pub(crate) fn new(duration: Duration, plain: bool, keep: bool) -> Walk {
        Walk {
            duration,
            keep,
            screen: Screen::new(plain),
        }
    }

    /// Runs every step; `Ok(false)` if the traffic did not show what the
    /// demo is meant to show (a verdict line says what).
    pub(crate) async fn run(mut self, mesh: &mut Mesh, owned: &mut Owned) -> anyhow::Result<bool> {
        let traffic = Traffic::start(&mesh.endpoints);
        let mut ids = Identities::default();
        let slot = self.duration / STEPS.len() as u32;
        let started = Instant::now();
        self.screen.say(&format!(
            "demo: traffic: {} requests/s on each edge, one connection per request; {} steps of ~{}s",
            traffic::RATE,
            STEPS.len(),
            slot.as_secs()
        ));
        let mut outcomes = Vec::new();
        let mut live: Live = None;
        for (n, step) in STEPS.into_iter().enumerate() {
            let header = format!("step {}/{}: {}", n + 1, STEPS.len(), step.title());
            self.screen
                .say(&format!("\n== {header}\n{}", indent(step.explain())));
            let t0 = Instant::now();
            let sources = mesh.metric_sources();
            let endpoints = Arc::clone(&mesh.endpoints);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let acted = {
                // The view keeps going while the step changes the mesh.
                let action = Self::act(step, mesh, owned);
                tokio::pin!(action);
                loop {
                    tokio::select! {
                        done = &mut action => break done?,
                        _ = tick.tick() => {
                            ids.scrape(&sources).await;
                            let now = Instant::now();
                            let from = now - LIVE_WINDOW.min(now - started);
                            let rows = view::rows(&traffic, &ids, &endpoints, from, now);
                            self.screen.live(&header, &rows, &canary_block(&live, from, now), PLAIN_EVERY);
                        }
                    }
                }
            };
            if let Some(note) = &acted.note {
                self.screen.say(&indent(note));
            }
            if let Some(started) = acted.started {
                live = Some(started);
            }
            let window_start = acted.effective.unwrap_or(t0);
            let end = (t0 + slot).max(Instant::now() + MIN_OBSERVE);
            let sources = mesh.metric_sources();
            while Instant::now() < end {
                tick.tick().await;
                owned.check_running()?;
                ids.scrape(&sources).await;
                let now = Instant::now();
                let from = now - LIVE_WINDOW.min(now - started);
                let rows = view::rows(&traffic, &ids, &mesh.endpoints, from, now);
                let extra = canary_block(&live, from, now);
                self.screen.live(&header, &rows, &extra, PLAIN_EVERY);
            }
            let now = Instant::now();
            let rows = view::rows(&traffic, &ids, &mesh.endpoints, window_start, now);
            let what = if acted.effective.is_some() {
                "since it took effect"
            } else {
                "whole step"
            };
            let tallies = live.as_ref().map(|(_, c)| c.window(window_start, now));
            self.screen.say(&format!(
                "-- summary of step {}/{} ({what}, {:.1}s):\n{}",
                n + 1,
                STEPS.len(),
                now.duration_since(window_start).as_secs_f64(),
                (view::table(&rows) + &canary_block(&live, window_start, now)).trim_end()
            ));
            outcomes.push(Outcome {
                step,
                rows,
                canary: tallies,
            });
        }
        let (ok, verdict) = verdict(&outcomes);
        self.screen.say(&format!("\n== verdict\n{verdict}"));
        if !self.screen.plain() {
            // The log scrolled off the redrawn screen: print it whole.
            println!("\x1b[H\x1b[2J");
        }
        if !self.screen.plain() {
            for (n, o) in outcomes.iter().enumerate() {
                let extra = o
                    .canary
                    .map_or_else(String::new, |(p, c)| canary::table(&p, &c));
                println!(
                    "step {}/{}: {}\n{}",
                    n + 1,
                    STEPS.len(),
                    o.step.title(),
                    (view::table(&o.rows) + &extra).trim_end()
                );
            }
            println!("\n{verdict}");
        }
        if self.keep {
            self.keep_running(mesh, &traffic, &mut ids, &live).await?;
        }
        Ok(ok)
    }

    /// Performs a step's change to the mesh.
    async fn act(step: Step, mesh: &mut Mesh, owned: &mut Owned) -> anyhow::Result<Acted> {
        match step {
            Step::Waypoint => {
                let started = Instant::now();
                let wp = mesh.start_waypoint(owned).await?;
                // The split's numbers start once the route is live, so
                // the summary shows the route, not the waypoint starting.
                let canary = Canary::start(wp.client.clone(), wp.vip);
                Ok(Acted {
                    effective: Some(Instant::now()),
                    note: Some(format!(
                        "waypoint up and routing after {:.1}s: {} requests/s to catalog ({} of them with x-canary: yes)",
                        started.elapsed().as_secs_f64(),
                        canary::SPLIT_RATE + canary::CANARY_RATE,
                        canary::CANARY_RATE
                    )),
                    started: Some((wp, canary)),
                })
            }
            Step::Baseline | Step::AllMeshed => Ok(Acted::default()),
            Step::Deny => {
                let started = Instant::now();
                let policy = topology::deny_yaml(
                    "deny-shop",
                    APPS[INVENTORY].namespace,
                    APPS[SHOP].namespace,
                );
                mesh.write_config(DENY_FILE, &policy)?;
                let effective = until_edge(mesh, false).await?;
                Ok(Acted::effective(started, effective, "refusing shop"))
            }
            Step::Allow => {
                let started = Instant::now();
                mesh.remove_config(DENY_FILE)?;
                let effective = until_edge(mesh, true).await?;
                Ok(Acted::effective(started, effective, "answering shop again"))
            }
            Step::LegacyToAmbient => Self::capture_in_place(mesh, LEGACY).await,
            Step::ShopToAmbient => Self::switch(mesh, owned, SHOP, Mode::Ambient).await,
        }
    }

    /// A switch from `none` to ambient: the label only. The node agent
    /// captures the running pod; nothing restarts.
    async fn capture_in_place(mesh: &mut Mesh, app: usize) -> anyhow::Result<Acted> {
        let started = Instant::now();
        mesh.set_mode(app, Mode::Ambient).await?;
        let labelled = started.elapsed();
        let pod = mesh.wait_captured(app).await?;
        Ok(Acted {
            effective: None,
            started: None,
            note: Some(format!(
                "namespace {} labelled ambient (proxies saw it after {:.1}s); its running pod {pod} captured by the ztunnel after {:.1}s, without a restart",
                APPS[app].namespace,
                labelled.as_secs_f64(),
                started.elapsed().as_secs_f64()
            )),
        })
    }

    /// A namespace mode switch: the label, then a rolling restart.
    async fn switch(
        mesh: &mut Mesh,
        owned: &mut Owned,
        app: usize,
        mode: Mode,
    ) -> anyhow::Result<Acted> {
        let started = Instant::now();
        let old = mesh.current(app)?.pod;
        mesh.set_mode(app, mode).await?;
        let labelled = started.elapsed();
        let new = mesh.rollout(owned, app).await?;
        Ok(Acted {
            effective: None,
            started: None,
            note: Some(format!(
                "namespace {} labelled {mode} (proxies saw it after {:.1}s); pod {old} replaced by {new} in {:.1}s",
                APPS[app].namespace,
                labelled.as_secs_f64(),
                started.elapsed().as_secs_f64()
            )),
        })
    }

    /// `--keep`: keeps the traffic and the view going, with instructions,
    /// until Ctrl-C (which the caller watches).
    async fn keep_running(
        &mut self,
        mesh: &Mesh,
        traffic: &Traffic,
        ids: &mut Identities,
        live: &Live,
    ) -> anyhow::Result<()> {
        let mut help = String::from(
            "\n== the mesh keeps running (--keep); Ctrl-C stops it and cleans up\npods:\n",
        );
        for (netns, addr, app) in mesh.current_pods() {
            let _ = writeln!(
                help,
                "  {:<16} {addr:<20} netns {netns}  ({})",
                APPS[app].label(),
                mesh.mode(app)
            );
        }
        if let (Some((netns, _, _)), Some((_, addr, _))) = (
            mesh.current_pods().get(LEGACY).cloned(),
            mesh.current_pods().get(SHOP).cloned(),
        ) {
            let _ = writeln!(
                help,
                "enter a pod and call a service (through the mesh):\n  sudo ip netns exec {netns} curl -s http://{addr}/\n  sudo ip netns exec {netns} bash"
            );
        }
        if let (Some((wp, _)), Some((netns, _, _))) =
            (live, mesh.current_pods().get(INVENTORY).cloned())
        {
            let _ = writeln!(
                help,
                "call catalog through the waypoint (its route is in {}):\n  sudo ip netns exec {netns} curl -s -H 'x-canary: yes' http://{}/",
                waypoint::FILE,
                wp.vip
            );
        }
        let _ = write!(
            help,
            "change the mesh by editing YAML in {} (the control plane watches it)",
            mesh.config_dir().display()
        );
        self.screen.say(&help);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            ids.scrape(&mesh.metric_sources()).await;
            let now = Instant::now();
            let from = now - LIVE_WINDOW;
            let rows = view::rows(traffic, ids, &mesh.endpoints, from, now);
            let extra = canary_block(live, from, now);
            self.screen
                .live("running (--keep)", &rows, &extra, Duration::from_secs(30));
        }
    }
}

/// What an action did.
#[derive(Debug, Default)]
struct Acted {
    /// When the change showed in the traffic (the summary starts there).
    effective: Option<Instant>,
    note: Option<String>,
    /// What the waypoint step started, kept running for later views.
    started: Live,
}

impl Acted {
    fn effective(started: Instant, at: Instant, what: &str) -> Acted {
        Acted {
            effective: Some(at),
            note: Some(format!(
                "took effect after {:.2}s: inventory is {what}",
                at.duration_since(started).as_secs_f64()
            )),
            started: None,
        }
    }
}

/// Polls shop → inventory until a request succeeds (`works`) or fails.
async fn until_edge(mesh: &Mesh, works: bool) -> anyhow::Result<Instant> {
    let limit = Duration::from_secs(15);
    let started = Instant::now();
    loop {
        let (from, to) = (mesh.current(SHOP)?, mesh.current(INVENTORY)?);
        if traffic::request(&from, &to).await.is_ok() == works {
            return Ok(Instant::now());
        }
        if started.elapsed() > limit {
            bail!(
                "shop → inventory still {} after {limit:?}; the policy change did not reach the proxies",
                if works { "fails" } else { "works" }
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks what the demo is meant to show; the verdict text.
fn verdict(outcomes: &[Outcome]) -> (bool, String) {
    let find = |s: Step| outcomes.iter().find(|o| o.step == s);
    let mut ok = true;
    let mut out = String::new();
    let mut check = |pass: bool, text: String| {
        ok &= pass;
        let _ = writeln!(out, "  [{}] {text}", if pass { "ok" } else { "FAILED" });
    };
    if let Some(o) = find(Step::Baseline) {
        let mtls = o.rows.iter().filter(|r| r.mtls).count();
        let errors: u64 = o.rows.iter().map(|r| r.window.errors).sum();
        check(
            mtls == 2 && errors == 0,
            format!("baseline: {mtls} of 3 edges mTLS, legacy plaintext, {errors} errors"),
        );
    }
    if let Some(o) = find(Step::Deny) {
        let w = &o.rows[DENIED_EDGE].window;
        check(
            w.errors > 0 && w.errors == w.requests,
            format!(
                "DENY: {} of {} shop → inventory requests refused",
                w.errors, w.requests
            ),
        );
    }
    if let Some(o) = find(Step::Allow) {
        let w = &o.rows[DENIED_EDGE].window;
        check(
            w.errors == 0 && w.requests > 0,
            format!(
                "policy removed: {} errors in {} shop → inventory requests",
                w.errors, w.requests
            ),
        );
    }
    if let Some(o) = find(Step::LegacyToAmbient) {
        let r = &o.rows[0];
        let errors: u64 = o.rows.iter().map(|r| r.window.errors).sum();
        check(
            r.mtls && errors == 0,
            format!(
                "legacy switched to ambient in place: legacy → shop is now {}, {errors} errors during the switch",
                r.identity
            ),
        );
    }
    if let Some(o) = find(Step::ShopToAmbient) {
        let errors: u64 = o.rows.iter().map(|r| r.window.errors).sum();
        let requests: u64 = o.rows.iter().map(|r| r.window.requests).sum();
        check(
            errors == 0,
            format!(
                "shop switched sidecar → ambient: {errors} errors in {requests} requests during the switch"
            ),
        );
    }
    if let Some(o) = find(Step::AllMeshed) {
        let mtls = o
            .rows
            .iter()
            .filter(|r| r.mtls && r.modes == (Mode::Ambient, Mode::Ambient))
            .count();
        check(
            mtls == 3,
            format!("all meshed: {mtls} of 3 edges ambient → ambient over mTLS"),
        );
    }
    if let Some(o) = find(Step::Waypoint) {
        for (pass, text) in canary::checks(&o.canary.unwrap_or_default()) {
            check(pass, text);
        }
    }
    (ok, out.trim_end().to_owned())
}

/// The waypoint step's block of the view over `[from, to)`, once started.
fn canary_block(live: &Live, from: Instant, to: Instant) -> String {
    live.as_ref()
        .map_or_else(String::new, |(_, c)| canary::block(c, from, to))
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("   {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
