//! A proxy's HTTP endpoints: the admin port (config dump, localhost only by
//! default), the Prometheus port and the readiness port. One server, three
//! listeners, each answering only its own paths, so the config dump never
//! leaks through the metrics port.
//!
//! | role | default | paths |
//! |---|---|---|
//! | admin | `127.0.0.1:15000` | `/config_dump`, `/metrics`, `/healthz/ready` |
//! | metrics | `0.0.0.0:15020` | `/metrics` |
//! | readiness | `0.0.0.0:15021` | `/healthz/ready` |

use std::{convert::Infallible, sync::Arc, time::Duration};

use braid_listen::Gate;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// Default `--endpoint-max-connections`: probes, a scraper, an operator.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// A client that sends no request headers for this long (a new connection,
/// or between requests) is disconnected.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the endpoints show; implemented by each composition.
pub trait AdminView: Send + Sync + 'static {
    /// Everything the proxy holds, as JSON.
    fn config_dump(&self) -> serde_json::Value;
    /// Prometheus text.
    fn metrics(&self) -> String;
    /// `Ok` once the proxy can serve traffic; otherwise why not.
    fn ready(&self) -> Result<(), String>;
}

/// Which paths a listener answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything, including the config dump.
    Admin,
    /// `/metrics` only.
    Metrics,
    /// `/healthz/ready` only.
    Readiness,
}

impl Role {
    /// The listener's name in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Metrics => "metrics",
            Self::Readiness => "readiness",
        }
    }
}

/// Serves `role`'s paths on `listener`, admitting connections through
/// `gate` (its cap and accept backoff), until the task is dropped.
pub async fn serve(listener: TcpListener, mut gate: Gate, role: Role, view: Arc<dyn AdminView>) {
    loop {
        let ((stream, _), permit) = gate.accept(|| listener.accept()).await;
        let view = view.clone();
        let service = hyper::service::service_fn(move |req| {
            let response = route(&req, role, view.as_ref());
            async move { Ok::<_, Infallible>(response) }
        });
        // The header timeout also bounds an idle kept-alive connection.
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(error) = conn.await {
                tracing::debug!(%error, "admin connection ended");
            }
        });
    }
}

fn route(req: &Request<Incoming>, role: Role, view: &dyn AdminView) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is supported\n".into(),
        );
    }
    let path = req.uri().path();
    let allowed = match role {
        Role::Admin => true,
        Role::Metrics => path == "/metrics",
        Role::Readiness => path == "/healthz/ready",
    };
    match path {
        _ if !allowed => not_found(role),
        "/metrics" => text(StatusCode::OK, view.metrics()),
        "/healthz/ready" => match view.ready() {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
        },
        "/config_dump" => {
            let body = serde_json::to_string_pretty(&view.config_dump())
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
            let mut response = text(StatusCode::OK, body);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            response
        }
        _ => not_found(role),
    }
}

fn not_found(role: Role) -> Response<Full<Bytes>> {
    let paths = match role {
        Role::Admin => "/config_dump, /metrics, /healthz/ready",
        Role::Metrics => "/metrics",
        Role::Readiness => "/healthz/ready",
    };
    text(
        StatusCode::NOT_FOUND,
        format!("not found; this port serves {paths}\n"),
    )
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
