//! The webhook's HTTPS listener: HTTP/1.1 over TLS, `POST /inject` only.
//! Each handshake uses the current certificate, so a renewal applies to the
//! next connection.

use std::{convert::Infallible, sync::Arc, time::Duration};

use braid_identity::rustls::ServerConfig;
use braid_listen::Gate;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tokio_rustls::TlsAcceptor;

use super::{
    InjectConfig,
    cert::{CertError, WebhookIssuer},
    review::{Outcome, ReviewError, review},
};
use crate::{config::HTTP_HEADER_TIMEOUT, index::NamespaceModes};

/// The path kube-apiserver posts to (the webhook configuration's
/// `clientConfig.service.path`).
pub const PATH: &str = "/inject";

/// The largest body accepted; kube-apiserver caps objects near 3 MiB.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// A handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the webhook needs to answer: its configuration and the namespaces
/// the index knows.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// What to inject.
    pub config: Arc<InjectConfig>,
    /// Namespaces and their mode labels, as last published by the index.
    pub namespaces: watch::Receiver<Arc<NamespaceModes>>,
}

/// Issues the first certificate, then spawns the server and the renewal
/// task; both stop when `shutdown` turns true.
/// `max_connections` caps the connections open at once.
pub fn spawn(
    listener: TcpListener,
    issuer: WebhookIssuer,
    webhook: Webhook,
    max_connections: usize,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, CertError> {
    let (config, expiry) = issuer.issue()?;
    let (tls_tx, tls) = watch::channel(config);
    let gate = Gate::new("injection webhook").with_limit(max_connections);
    Ok(vec![
        tokio::spawn(issuer.renew(expiry, tls_tx, shutdown.clone())),
        tokio::spawn(serve(listener, gate, tls, webhook, shutdown)),
    ])
}

/// Serves the webhook on `listener`, admitting connections through `gate`,
/// with the TLS configuration in `tls` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    mut gate: Gate,
    tls: watch::Receiver<Arc<ServerConfig>>,
    webhook: Webhook,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let ((tcp, peer), permit) = tokio::select! {
            accepted = gate.accept(|| listener.accept()) => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let acceptor = TlsAcceptor::from(tls.borrow().clone());
        let webhook = webhook.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    return tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
                }
                Err(_) => return tracing::debug!(%peer, "webhook TLS handshake timed out"),
            };
            let service = hyper::service::service_fn(move |req| {
                let webhook = webhook.clone();
                async move { Ok::<_, Infallible>(handle(req, &webhook).await) }
            });
            // The header timeout also bounds an idle kept-alive connection.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HTTP_HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "webhook connection ended");
            }
        });
    }
}

async fn handle(req: Request<Incoming>, webhook: &Webhook) -> Response<Full<Bytes>> {
    if req.uri().path() != PATH {
        return text(
            StatusCode::NOT_FOUND,
            format!("not found; the webhook is at {PATH}"),
        );
    }
    if req.method() != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST an AdmissionReview".into(),
        );
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("cannot read the body (at most {MAX_BODY} bytes): {e}"),
            );
        }
    };
    let namespaces = webhook.namespaces.borrow().clone();
    match review(&body, &webhook.config, &namespaces) {
        Ok((body, outcome)) => {
            match outcome {
                Outcome::Injected => tracing::info!("webhook injected a sidecar"),
                Outcome::Skipped(reason) => tracing::debug!(%reason, "webhook left a pod alone"),
            }
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_default()
        }
        Err(e @ ReviewError::Encode(_)) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => {
            tracing::debug!(error = %e, "webhook got a body that is not an AdmissionReview");
            text(StatusCode::BAD_REQUEST, e.to_string())
        }
    }
}

fn text(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(message + "\n")))
        .unwrap_or_default()
}
