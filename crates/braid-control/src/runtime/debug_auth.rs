//! Who may read the debug API (`ControlPlaneDebug`: proxies' node ids and
//! addresses, NACK reasons, config-error paths, mode status). It shares the
//! xDS port, which listens on the network, so a caller that is not on
//! loopback must present a bearer token the [`Authenticator`] accepts: a
//! proxy token, or with `--source kube` a pod-bound ServiceAccount token
//! (TokenReview, audience `braid`). `braidctl` sends one with `--token-file`
//! (`BRAID_TOKEN_FILE`) or `BRAID_TOKEN`. Callers on loopback (the pod itself,
//! `kubectl port-forward`) need none.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
};

use tonic::{Status, server::NamedService, transport::server::TcpConnectInfo};

use super::connections::is_loopback;
use crate::auth::Authenticator;

/// Wraps the debug service; refuses callers off loopback without a valid token.
#[derive(Clone, Debug)]
pub(crate) struct DebugGuard<S> {
    inner: S,
    auth: Authenticator,
}

// === impl DebugGuard ===

impl<S> DebugGuard<S> {
    /// Guards `inner` with `auth`.
    pub(crate) fn new(inner: S, auth: Authenticator) -> Self {
        Self { inner, auth }
    }
}

impl<S: NamedService> NamedService for DebugGuard<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> tower::Service<http::Request<B>> for DebugGuard<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The clone is the one that is ready; keep it for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let caller = caller(&req);
        Box::pin(async move {
            match check(caller, &auth).await {
                Ok(()) => inner.call(req).await,
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

/// Who calls, as far as the request says.
#[derive(Debug)]
enum Caller {
    /// On loopback: trusted.
    Local,
    /// Elsewhere (or unknown), with the bearer token it presented.
    Remote {
        remote: Option<SocketAddr>,
        token: Option<String>,
    },
}

fn caller<B>(req: &http::Request<B>) -> Caller {
    let remote = req
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(|info| info.remote_addr);
    if remote.is_some_and(is_loopback) {
        return Caller::Local;
    }
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    Caller::Remote { remote, token }
}

/// `Ok` when the caller may read debug data.
async fn check(caller: Caller, auth: &Authenticator) -> Result<(), Status> {
    let Caller::Remote { remote, token } = caller else {
        return Ok(());
    };
    let Some(token) = token else {
        return Err(Status::unauthenticated(
            "the debug API needs a credential off loopback: pass braidctl --token-file FILE (a proxy token, or a pod's ServiceAccount token with audience braid), or connect from the control plane's host (kubectl port-forward)",
        ));
    };
    match auth.principal(&token).await {
        Ok(principal) => {
            tracing::debug!(?remote, ?principal, "debug API caller authenticated");
            Ok(())
        }
        Err(refusal) => {
            tracing::debug!(?remote, %refusal, "debug API call refused");
            Err(Status::unauthenticated(format!(
                "debug API: token refused: {refusal}"
            )))
        }
    }
}

#[cfg(test)]
#[path = "debug_auth/tests.rs"]
mod tests;
