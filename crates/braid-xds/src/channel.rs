//! gRPC channels to the control plane, plaintext or TLS. With TLS the
//! control plane must present the expected SPIFFE identity, chained to the
//! trust bundle the proxy was given at start-up.

use std::sync::Arc;

use braid_identity::{
    SpiffeId, TrustBundle,
    rustls::{ClientConfig, pki_types::ServerName},
    tls,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::Error;

/// How to verify the control plane.
#[derive(Clone, Debug)]
pub struct ControlPlaneTls {
    /// Roots the control plane's certificate must chain to.
    pub bundle: TrustBundle,
    /// The identity it must present, usually [`SpiffeId::control_plane`].
    pub expected: SpiffeId,
}

/// A channel to `uri` (`http://host:port`; with `tls`, TLS is spoken on that
/// port). Connects lazily, on the first request, and reconnects as needed.
pub fn channel(uri: &str, tls: Option<&ControlPlaneTls>) -> Result<Channel, Error> {
    let endpoint = endpoint(uri)?;
    Ok(match tls {
        None => endpoint.connect_lazy(),
        Some(tls) => endpoint.connect_with_connector_lazy(connector(client_config(tls)?)),
    })
}

/// Connects now; errors when the control plane cannot be reached or is not
/// who it should be.
pub async fn connect(uri: &str, tls: Option<&ControlPlaneTls>) -> Result<Channel, Error> {
    let endpoint = endpoint(uri)?;
    let connected = match tls {
        None => endpoint.connect().await,
        Some(tls) => {
            endpoint
                .connect_with_connector(connector(client_config(tls)?))
                .await
        }
    };
    connected.map_err(|source| Error::Connect {
        uri: uri.to_string(),
        source,
    })
}

pub(crate) fn endpoint(uri: &str) -> Result<Endpoint, Error> {
    Endpoint::from_shared(uri.to_string()).map_err(|source| Error::InvalidUri {
        uri: uri.to_string(),
        source,
    })
}

pub(crate) fn client_config(tls: &ControlPlaneTls) -> Result<Arc<ClientConfig>, Error> {
    tls::client_config_without_cert(&tls.bundle, tls.expected.clone())
        .map_err(|e| Error::Tls(e.to_string()))
}

/// Dials TCP, then TLS; the server name is not checked (SPIFFE certificates
/// carry none), the identity is.
pub(crate) fn connector(
    config: Arc<ClientConfig>,
) -> impl tower_service::Service<
    Uri,
    Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
    Error = std::io::Error,
    Future = impl Future<Output = std::io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>>
             + Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |uri: Uri| {
        let config = config.clone();
        async move {
            let invalid = |what: &str| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what} in {uri}"))
            };
            let host = uri
                .host()
                .ok_or_else(|| invalid("no host"))?
                .trim_matches(['[', ']'])
                .to_string();
            let port = uri.port_u16().ok_or_else(|| invalid("no port"))?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(host).map_err(|_| invalid("a bad host"))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        }
    })
}
