use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use tokio::sync::watch;
use tonic::{Code, transport::server::TcpConnectInfo};
use tower::ServiceExt as _;

use super::DebugGuard;
use crate::{
    auth::Authenticator,
    identities::Identities,
    source::token::{Principal, ProxyToken},
};

const TOKEN: &str = "0123456789abcdef0123456789abcdef-node-a";

/// A stand-in for the debug service: 200 with an empty body.
#[derive(Clone)]
struct Answer;

impl tower::Service<http::Request<()>> for Answer {
    type Response = http::Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<()>) -> Self::Future {
        std::future::ready(Ok(http::Response::new("debug data".into())))
    }
}

fn guard() -> DebugGuard<Answer> {
    let token = ProxyToken {
        namespace: "braid-system".into(),
        name: "ztunnel-node-a".into(),
        token: TOKEN.into(),
        principal: Principal::Node("node-a".into()),
    };
    let identities = Identities::new(std::iter::empty(), [&token].into_iter());
    let (_tx, rx) = watch::channel(Arc::new(identities));
    DebugGuard::new(Answer, Authenticator::new(rx))
}

/// The gRPC status of calling the guarded service from `remote` with
/// `token`; `None` when the call went through.
async fn call(remote: &str, token: Option<&str>) -> Option<Code> {
    let remote: SocketAddr = remote.parse().expect("address");
    let mut req = http::Request::new(());
    req.extensions_mut().insert(TcpConnectInfo {
        local_addr: None,
        remote_addr: Some(remote),
    });
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("header value");
        req.headers_mut().insert(http::header::AUTHORIZATION, value);
    }
    let response = guard().oneshot(req).await.expect("infallible");
    let status = tonic::Status::from_header_map(response.headers())?;
    Some(status.code())
}

#[tokio::test]
async fn debug_api_requires_credential_off_loopback() {
    assert_eq!(
        call("10.1.2.3:40000", None).await,
        Some(Code::Unauthenticated)
    );
    assert_eq!(
        call("10.1.2.3:40000", Some("not-a-known-token")).await,
        Some(Code::Unauthenticated)
    );
    assert_eq!(
        call("[2001:db8::1]:40000", None).await,
        Some(Code::Unauthenticated)
    );
    assert_eq!(
        call("10.1.2.3:40000", Some(TOKEN)).await,
        None,
        "a proxy token is a credential"
    );
}

#[tokio::test]
async fn debug_api_on_loopback_needs_no_credential() {
    assert_eq!(call("127.0.0.1:40000", None).await, None);
    assert_eq!(call("[::1]:40000", None).await, None);
    assert_eq!(call("[::ffff:127.0.0.1]:40000", None).await, None);
}
