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

use std::{convert::Infallible, sync::Arc};

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::watch};

use crate::{debug::DebugState, metrics::Metrics};

/// Serves the admin endpoint on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    debug: DebugState,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "admin endpoint accept failed");
                    continue;
                }
            },
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let debug = debug.clone();
        let metrics = metrics.clone();
        let service = hyper::service::service_fn(move |req| {
            let response = route(&req, &debug, &metrics);
            async move { Ok::<_, Infallible>(response) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
    }
}

fn route(req: &Request<Incoming>, debug: &DebugState, metrics: &Metrics) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is supported\n".into(),
        );
    }
    match req.uri().path() {
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
