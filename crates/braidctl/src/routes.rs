//! `braidctl routes`: the HTTP routes the control plane serves to proxies,
//! and which rule a given request to a Service would take. Routes come over
//! xDS exactly as a proxy gets them, and the answer comes from the matcher
//! every proxy runs (`braid_model::route`), so what this prints is what
//! the mesh does: a Service behind a waypoint has its routes applied
//! there, and where none of its own attaches, the routes attached to the
//! waypoint's Gateway that admit its hostname.

use std::{fmt::Write as _, process::ExitCode, sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use braid_model::{
    HttpRoute, Service, ServiceRef, WaypointRef,
    route::{Filter, Request, RouteParent, ServiceRoutes},
    text,
};
use braid_xds::{Client, NodeInfo, Subscription};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::ControlPlane;

/// How long to wait for the control plane's first answer.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `braidctl routes`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    control_plane: ControlPlane,
    /// Show which rule a request to this Service (`<namespace>/<name>`)
    /// takes, instead of listing every route.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    service: Option<String>,
    /// The Service port the request is sent to.
    #[arg(long, default_value = "80", requires = "service")]
    port: u16,
    /// The caller's namespace (consumer routes apply only there); the
    /// Service's own namespace when omitted.
    #[arg(long = "from", value_name = "NAMESPACE", requires = "service")]
    from: Option<String>,
    /// The request's method.
    #[arg(long, default_value = "GET", requires = "service")]
    method: String,
    /// The request's path, with its query if any.
    #[arg(long, default_value = "/", requires = "service")]
    path: String,
    /// A request header as `name:value`; repeat for more.
    #[arg(
        long = "header",
        short = 'H',
        value_name = "NAME:VALUE",
        requires = "service"
    )]
    headers: Vec<String>,
}

/// Prints the routes, or the rule a request takes (exit 1 when none does).
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (routes, services) = fetch(&args.control_plane).await?;
    let Some(service) = &args.service else {
        print!("{}", list(&routes));
        return Ok(ExitCode::SUCCESS);
    };
    let service = parse_service(service)?;
    let headers = parse_headers(&args.headers)?;
    let from = args.from.as_deref().unwrap_or(&service.namespace);
    let known = services.iter().find(|s| s.reference == service);
    let (table, at) = table_for(&routes, &service, known.map(Arc::as_ref), args.port, from);
    let (path, query) = match args.path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (args.path.as_str(), None),
    };
    let request = Request {
        method: &args.method,
        path,
        query,
        headers: &headers,
    };
    let (mut text, found) = explain(&table, &service, args.port, &request);
    if let Some(at) = at {
        text.insert_str(0, &at);
    }
    print!("{text}");
    Ok(if found {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The routes that apply to a request for `service` (`known`: what the
/// control plane serves of it, if anything) on `port` from `from`, as the
/// proxies choose them, and a line saying where they apply when that is a
/// waypoint.
fn table_for(
    routes: &[Arc<HttpRoute>],
    service: &ServiceRef,
    known: Option<&Service>,
    port: u16,
    from: &str,
) -> (ServiceRoutes, Option<String>) {
    let own = ServiceRoutes::for_service(routes, service, port, from);
    let Some((known, waypoint)) = known.and_then(|k| Some((k, k.waypoint.as_ref()?))) else {
        return (own, None);
    };
    let at = |what: &str| {
        format!(
            "applied at waypoint {} ({what})\n",
            text::escaped(&waypoint_name(waypoint))
        )
    };
    if !own.is_empty() {
        return (own, Some(at("the Service's own routes")));
    }
    let attached =
        ServiceRoutes::for_waypoint(routes, &waypoint.namespace, &waypoint.name, &known.hostname);
    (
        attached,
        Some(at(
            "routes attached to its Gateway that admit the Service's hostname",
        )),
    )
}

/// `<namespace>/<name>` of a waypoint.
fn waypoint_name(waypoint: &WaypointRef) -> String {
    format!("{}/{}", waypoint.namespace, waypoint.name)
}

/// Every HTTP route and Service the control plane serves, once the stream
/// has synced.
async fn fetch(cp: &ControlPlane) -> anyhow::Result<(Vec<Arc<HttpRoute>>, Vec<Arc<Service>>)> {
    let mut node = NodeInfo::new("braidctl~routes");
    node.user_agent_name = "braidctl".into();
    let mut builder = Client::builder(cp.uri(), node);
    if let Some(tls) = cp.tls()? {
        builder = builder.control_plane_tls(tls);
    }
    let client = builder
        .watch::<HttpRoute>(Subscription::Wildcard, |_| {})
        .watch::<Service>(Subscription::Wildcard, |_| {})
        .build()
        .context("invalid control-plane address")?;
    let (handle, task) = client.spawn();
    let mut status = handle.status_changes();
    // Reduced to a bool at once: the `Ref` `wait_for` returns holds the
    // status lock, which the client task needs to shut down.
    let synced = matches!(
        tokio::time::timeout(SYNC_TIMEOUT, status.wait_for(|s| s.is_synced())).await,
        Ok(Ok(_))
    );
    let routes = handle
        .store::<HttpRoute>()
        .map(|store| store.snapshot().into_values().map(|c| c.value).collect())
        .unwrap_or_default();
    let services = handle
        .store::<Service>()
        .map(|store| store.snapshot().into_values().map(|c| c.value).collect())
        .unwrap_or_default();
    handle.shutdown();
    let _ = task.await;
    if !synced {
        bail!(
            "the control plane at {} sent no routes within {}s; is braid-control running? (set --control-plane){}",
            cp.address,
            SYNC_TIMEOUT.as_secs(),
            cp.tls_hint()
        );
    }
    Ok((routes, services))
}

fn parse_service(raw: &str) -> anyhow::Result<ServiceRef> {
    match raw.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok(ServiceRef::new(ns, name)),
        _ => bail!("--service {raw:?}: write it as <namespace>/<name>"),
    }
}

fn parse_headers(raw: &[String]) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for header in raw {
        let Some((name, value)) = header.split_once(':') else {
            bail!("--header {header:?}: write it as name:value");
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("--header {header:?}: not a header name"))?;
        let value = HeaderValue::from_str(value.trim())
            .with_context(|| format!("--header {header:?}: not a header value"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// One line per route: name, parents, and each rule's backends.
fn list(routes: &[Arc<HttpRoute>]) -> String {
    if routes.is_empty() {
        return "no HTTP routes\n".into();
    }
    let mut out = String::new();
    for route in routes {
        let parents: Vec<String> = route.parents.iter().map(parent).collect();
        let _ = writeln!(
            out,
            "{}  parents: {}",
            text::escaped(&route.key()),
            text::escaped(&parents.join(", "))
        );
        for (i, rule) in route.rules.iter().enumerate() {
            let name = rule.name.clone().unwrap_or_else(|| i.to_string());
            let backends: Vec<String> = rule
                .backends
                .iter()
                .map(|b| format!("{}:{} ({})", b.service, b.port, b.weight))
                .collect();
            let _ = writeln!(
                out,
                "  rule {}: {} match(es), {} filter(s) -> {}",
                text::escaped(&name),
                rule.matches.len(),
                rule.filters.len(),
                text::escaped(&backends.join(", "))
            );
        }
    }
    out
}

fn parent(parent: &RouteParent) -> String {
    match parent {
        RouteParent::Service { service, port } => match port {
            Some(port) => format!("Service {service}:{port}"),
            None => format!("Service {service}"),
        },
        RouteParent::Gateway {
            namespace, name, ..
        } => format!("Gateway {namespace}/{name}"),
    }
}

/// What happens to `request`; `false` when it is answered 404.
fn explain(
    table: &ServiceRoutes,
    service: &ServiceRef,
    port: u16,
    request: &Request<'_>,
) -> (String, bool) {
    if table.is_empty() {
        let text = format!(
            "no HTTP route attaches to {service} port {port}: the request goes to the Service's own endpoints\n"
        );
        return (text, true);
    }
    let Some(selected) = table.select(request) else {
        let text = format!(
            "no rule of the HTTP routes for {service} port {port} matches {} {}: the request is answered 404\n",
            request.method, request.path
        );
        return (text, false);
    };
    let rule = selected.rule;
    let name = rule
        .name
        .clone()
        .unwrap_or_else(|| selected.rule_index.to_string());
    let mut out = format!(
        "route {} rule {} (match {:?})\n",
        text::escaped(&selected.route.key()),
        text::escaped(&name),
        selected.matched.path
    );
    for filter in &rule.filters {
        let _ = writeln!(out, "  filter: {}", text::escaped(&format!("{filter:?}")));
    }
    if let Some(redirect) = rule.redirect() {
        let _ = writeln!(out, "  answered with a {} redirect", redirect.status);
        return (out, true);
    }
    let total: u64 = rule.backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        let _ = writeln!(out, "  no backend has a weight above 0: answered 500");
    }
    for backend in &rule.backends {
        let share = if total == 0 {
            0.0
        } else {
            f64::from(backend.weight) * 100.0 / total as f64
        };
        let state = match &backend.invalid {
            Some(reason) => format!(" — answered 500: {}", text::escaped(reason)),
            None => String::new(),
        };
        let extra = backend
            .filters
            .iter()
            .filter(|f| !matches!(f, Filter::Redirect(_)))
            .count();
        let _ = writeln!(
            out,
            "  -> {}:{} {share:.1}% ({} backend filter(s)){state}",
            backend.service, backend.port, extra
        );
    }
    (out, true)
}

#[cfg(test)]
mod tests;
