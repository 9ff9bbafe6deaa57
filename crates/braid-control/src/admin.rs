//! The admin HTTP endpoint (default 127.0.0.1:15014): health, readiness,
//! Prometheus metrics, and JSON debug views.
//!
//! | path | what |
//! |---|---|
//! | `/healthz`, `/ready` | 200 once the initial configuration is loaded |
//! | `/metrics` | Prometheus text |
//! | `/debug/config` | the effective configuration (flags, env, defaults) |
//! | `/debug/config-errors` | rejected documents (file, document, field, message) |
//! | `/debug/proxy-status` | connected proxies and their ACK state per type |
//! | `/debug/mode-status` | workloads' effective and actual modes (`?namespace=NS` filters) |
//!
//! `/debug/*` answers only loopback peers unless `--admin-debug-remote`:
//! the install manifests listen on the pod's address so that the kubelet can
//! probe and Prometheus can scrape, and the debug views (proxies' addresses,
//! NACK reasons, file paths) must not go with them.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use braid_listen::Gate;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::watch};

use crate::{
    config::HTTP_HEADER_TIMEOUT, debug::DebugState, metrics::Metrics,
    runtime::connections::is_loopback,
};

/// What the admin endpoint serves, and to whom.
#[derive(Clone, Debug)]
pub struct Admin {
    /// The debug views' data.
    pub debug: DebugState,
    /// Counters and gauges for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Serve `/debug/*` to peers off loopback too (`--admin-debug-remote`).
    pub debug_remote: bool,
    /// Most connections open at once (`--admin-max-connections`).
    pub max_connections: usize,
}

/// Serves the admin endpoint on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, admin: Admin, mut shutdown: watch::Receiver<bool>) {
    let mut gate = Gate::new("admin").with_limit(admin.max_connections);
    let admin = Arc::new(admin);
    loop {
        let ((stream, peer), permit) = tokio::select! {
            accepted = gate.accept(|| listener.accept()) => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let admin = admin.clone();
        let service = hyper::service::service_fn(move |req| {
            let response = route(&req, peer, &admin);
            async move { Ok::<_, Infallible>(response) }
        });
        // The header timeout also bounds an idle kept-alive connection.
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HTTP_HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
    }
}

fn route<B>(req: &Request<B>, peer: SocketAddr, admin: &Admin) -> Response<Full<Bytes>> {
    let (debug, metrics) = (&admin.debug, &admin.metrics);
    if req.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is supported\n".into(),
        );
    }
    let path = req.uri().path();
    if path.starts_with("/debug/") && !admin.debug_remote && !is_loopback(peer) {
        return text(
            StatusCode::FORBIDDEN,
            "the debug views answer only loopback: use `kubectl port-forward` (or braidctl), or start braid-control with --admin-debug-remote\n".into(),
        );
    }
    match path {
        "/healthz" | "/ready" => text(StatusCode::OK, "ok\n".into()),
        "/metrics" => text(StatusCode::OK, metrics.render(debug.errors.list().len())),
        "/debug/config" => json(debug.config.as_ref()),
        "/debug/config-errors" => json(&debug.errors.list()),
        "/debug/proxy-status" => json(&debug.proxy_status()),
        "/debug/mode-status" => json(&debug.mode_status(namespace_query(req.uri().query()))),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /healthz, /metrics, /debug/config, /debug/config-errors, /debug/proxy-status, /debug/mode-status\n".into(),
        ),
    }
}

/// The `namespace=` parameter of a query string (namespace names need no
/// percent-decoding).
fn namespace_query(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("namespace="))
        .filter(|ns| !ns.is_empty())
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render JSON: {e}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use clap::Parser as _;
    use http::StatusCode;
    use tokio::sync::watch;

    use super::{Admin, route};
    use crate::{Config, debug::DebugState, source::ConfigErrors, xds::Registry};

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    fn admin(debug_remote: bool) -> Admin {
        let config = Config::for_tests("/nonexistent");
        Admin {
            debug: DebugState {
                registry: Arc::new(Registry::default()),
                snapshots: watch::channel(Arc::default()).1,
                errors: ConfigErrors::default(),
                config: Arc::new(config),
            },
            metrics: Arc::default(),
            debug_remote,
            max_connections: 1,
        }
    }

    fn get(admin: &Admin, peer: &str, path: &str) -> StatusCode {
        let req = http::Request::get(path).body(()).expect("request");
        route(&req, peer.parse().expect("address"), admin).status()
    }

    #[test]
    fn admin_debug_views_answer_only_loopback_by_default() {
        let defaults = Cli::try_parse_from(["braid-control", "--config-dir", "/etc/braid"])
            .expect("defaults parse")
            .config;
        assert!(!defaults.admin_debug_remote, "off by default");
        let admin = admin(defaults.admin_debug_remote);
        for path in [
            "/debug/config",
            "/debug/proxy-status",
            "/debug/config-errors",
            "/debug/mode-status",
        ] {
            assert_eq!(
                get(&admin, "10.0.0.9:5000", path),
                StatusCode::FORBIDDEN,
                "{path}"
            );
            assert_eq!(
                get(&admin, "127.0.0.1:5000", path),
                StatusCode::OK,
                "{path}"
            );
        }
        // Probes and Prometheus reach the pod's address.
        for path in ["/healthz", "/ready", "/metrics"] {
            assert_eq!(get(&admin, "10.0.0.9:5000", path), StatusCode::OK, "{path}");
        }
    }

    #[test]
    fn admin_debug_remote_opens_the_debug_views() {
        let admin = admin(true);
        assert_eq!(
            get(&admin, "10.0.0.9:5000", "/debug/proxy-status"),
            StatusCode::OK
        );
    }
}
