//! One outbound HTTP request: route it (HTTPRoutes attached to the Service
//! it was sent to), resolve its destination (a service VIP picks
//! an endpoint per request), strip hop-by-hop headers, send it over a pooled
//! upstream connection, and count it when its response has ended.

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use braid_model::route::apply_header_modifier;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;

use super::{
    body::RequestBody,
    error::{HttpError, ProxyBody, respond},
    mirror,
    pool::Senders,
    routing::{self, Step},
};
use crate::{
    detect::Protocol,
    state::Waypoints,
    telemetry::{Labels, Metrics, Peer, RequestRecord},
    upstream::{PodContext, Route, UpstreamError},
};

/// What every request on one client connection shares.
pub(crate) struct Outbound {
    pub(crate) pod: Arc<PodContext>,
    pub(crate) senders: Senders,
    /// The connection's original destination (a VIP or a pod address).
    pub(crate) original: SocketAddr,
    pub(crate) client: SocketAddr,
    /// The client's HTTP version, kept upstream.
    pub(crate) version: Protocol,
    /// Who sends the requests when that is not the pod itself: at a
    /// waypoint, the tunnel's peer.
    pub(crate) caller: Option<Caller>,
}

/// The sender of requests a waypoint serves.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// Its namespace, for consumer routes.
    pub(crate) namespace: String,
    /// Its identity, as telemetry labels.
    pub(crate) peer: Peer,
}

// === impl Outbound ===

impl Outbound {
    /// The caller's namespace: consumer routes of that namespace apply.
    fn caller_namespace(&self) -> &str {
        match &self.caller {
            Some(caller) => &caller.namespace,
            None => self.pod.workload.split('/').next().unwrap_or_default(),
        }
    }

    /// Request labels to `route` (`None`: unresolved), from the caller.
    fn labels(&self, route: Option<&Route>) -> Labels {
        let mut labels = match route {
            Some(route) => route.labels(&self.pod),
            None => Route::unresolved_labels(&self.pod),
        };
        if let Some(caller) = &self.caller {
            labels.source = caller.peer.clone();
        }
        labels
    }

    /// Whether this proxy leaves routing to a waypoint: the destination
    /// has one and this is not it. Its routes apply there, for every
    /// caller, and only there.
    fn routes_at_waypoint(&self) -> bool {
        self.pod.waypoints() == Waypoints::Honour
            && self.pod.state.waypoint_of(self.original).is_some()
    }
}

/// The request fields the access log shows.
struct RequestInfo {
    method: String,
    authority: String,
    path: String,
    protocol: &'static str,
}

/// Counts the request when the response body ends or is dropped (the
/// client went away), so the duration covers the whole response.
struct Recorded {
    inner: Incoming,
    done: Option<Done>,
}

struct Done {
    metrics: Metrics,
    labels: Labels,
    status: u16,
    started: Instant,
    info: RequestInfo,
    client: String,
    upstream: String,
    route: String,
}

/// Serves one request: the route step decides where it goes, then it is
/// resolved to an endpoint and sent; every failure becomes an answer in
/// [`super::error`].
pub(crate) async fn forward(
    ctx: Arc<Outbound>,
    mut request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let info = RequestInfo::of(&request);
    let done = |labels: Labels, status: StatusCode, upstream: String, route: String| Done {
        metrics: ctx.pod.metrics.clone(),
        labels,
        status: status.as_u16(),
        started,
        info,
        client: ctx.client.to_string(),
        upstream,
        route,
    };
    let step = match ctx.routes_at_waypoint() {
        true => Ok(Step::Original),
        false => routing::route(
            &ctx.pod.state,
            ctx.caller_namespace(),
            ctx.original,
            ctx.pod.this_waypoint.as_ref(),
            &mut request,
        ),
    };
    let routed = match step {
        Ok(Step::Original) => None,
        Ok(Step::Backend(routed)) => Some(routed),
        Ok(Step::Redirect { route, answer }) => {
            let labels = ctx.labels(None);
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::FOUND);
            return Ok(redirect(
                done(labels, status, String::new(), route),
                &answer.location,
            ));
        }
        Err(error) => {
            let labels = ctx.labels(None);
            let route = error.route().to_string();
            return Ok(fail(
                done(labels, error.status(), String::new(), route),
                &error,
            ));
        }
    };
    let route_name = routed.as_ref().map(|r| r.route.clone()).unwrap_or_default();
    let destination = routed.as_ref().map_or(ctx.original, |r| r.target);
    let route = match Route::resolve(&ctx.pod, destination) {
        Ok(route) => route,
        Err(error) => {
            let labels = ctx.labels(None);
            let error = HttpError::Upstream(error);
            return Ok(fail(
                done(labels, error.status(), String::new(), route_name),
                &error,
            ));
        }
    };
    let labels = ctx.labels(Some(&route));
    let upstream = route.target.to_string();
    let upgrade = ctx.version == Protocol::Http1 && wants_upgrade(request.headers());
    strip_hop_by_hop(request.headers_mut(), upgrade);
    let mirrors = routed
        .as_ref()
        .map(|r| r.mirrors.as_slice())
        .unwrap_or_default();
    let request = if mirrors.is_empty() || upgrade {
        request.map(RequestBody::Client)
    } else {
        let (request, copies) = with_copies(request, mirrors);
        mirror::send(&ctx.pod, &ctx.senders, ctx.version, copies);
        request
    };
    let send = async {
        let sent = if upgrade {
            send_upgrade(&ctx.pod, &route, request).await
        } else {
            ctx.senders
                .send(&ctx.pod, &route, ctx.version, request)
                .await
        };
        sent.map_err(HttpError::Upstream)
    };
    let sent = match routed.as_ref().and_then(|r| r.timeout) {
        Some(after) => tokio::time::timeout(after, send).await.unwrap_or_else(|_| {
            Err(HttpError::Timeout {
                route: route_name.clone(),
                after,
            })
        }),
        None => send.await,
    };
    Ok(match sent {
        Ok(mut response) => {
            let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
            strip_hop_by_hop(response.headers_mut(), switching);
            for modifier in routed.iter().flat_map(|r| &r.response) {
                apply_header_modifier(modifier, response.headers_mut());
            }
            let done = done(labels, response.status(), upstream, route_name);
            response.map(|inner| {
                Recorded {
                    inner,
                    done: Some(done),
                }
                .boxed_unsync()
            })
        }
        Err(error) => fail(done(labels, error.status(), upstream, route_name), &error),
    })
}

/// Sends an HTTP/1.1 `Upgrade` request on a connection of its own and, on
/// `101`, joins the two upgraded connections byte for byte.
async fn send_upgrade(
    pod: &PodContext,
    route: &Route,
    mut request: Request<RequestBody>,
) -> Result<Response<Incoming>, UpstreamError> {
    let downstream = hyper::upgrade::on(&mut request);
    let mut sender = Senders::upgradable(pod, route).await?;
    let mut response =
        sender
            .send_request(request)
            .await
            .map_err(|source| UpstreamError::Http {
                target: route.target,
                source,
            })?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream = hyper::upgrade::on(&mut response);
        let target = route.target;
        tokio::spawn(async move {
            match tokio::try_join!(downstream, upstream) {
                Ok((client, server)) => {
                    let (mut client, mut server) = (TokioIo::new(client), TokioIo::new(server));
                    if let Err(error) =
                        tokio::io::copy_bidirectional(&mut client, &mut server).await
                    {
                        tracing::debug!(%target, %error, "upgraded connection ended");
                    }
                }
                Err(error) => tracing::debug!(%target, %error, "upgrade failed"),
            }
        });
    }
    Ok(response)
}

/// The request to send upstream, and a copy of it for each of `mirrors`
/// (the body teed as it streams).
fn with_copies(
    request: Request<Incoming>,
    mirrors: &[SocketAddr],
) -> (Request<RequestBody>, mirror::Copies) {
    let (parts, body) = request.into_parts();
    let (body, bodies) = RequestBody::tee(body, mirrors.len());
    let requests = mirrors
        .iter()
        .zip(bodies)
        .map(|(target, body)| {
            let mut copy = Request::new(body);
            *copy.method_mut() = parts.method.clone();
            *copy.uri_mut() = parts.uri.clone();
            *copy.version_mut() = parts.version;
            *copy.headers_mut() = parts.headers.clone();
            (*target, copy)
        })
        .collect();
    (
        Request::from_parts(parts, body),
        mirror::Copies { requests },
    )
}

/// The proxy's own answer to a request it could not send, counted.
fn fail(done: Done, error: &HttpError) -> Response<ProxyBody> {
    let reason = error.to_string();
    done.record(&reason);
    respond(error.status(), &reason)
}

/// A rule's redirect, counted.
fn redirect(done: Done, location: &str) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(done.status).unwrap_or(StatusCode::FOUND);
    done.record("");
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the redirect's location is not a valid header value",
        ),
    }
}

/// Whether an HTTP/1.1 request asks to switch protocols (WebSocket).
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_names(headers).any(|n| n == header::UPGRADE)
}

/// The header names a `Connection` header lists.
fn connection_names(headers: &HeaderMap) -> impl Iterator<Item = HeaderName> + '_ {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
}

/// Removes the headers that describe one hop only (RFC 9110 §7.6.1), so
/// each side's framing and keep-alive are its own. An upgrade keeps
/// `Connection: upgrade` and `Upgrade`; `TE: trailers` (gRPC) stays.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = connection_names(headers).collect();
    for name in named {
        if !(upgrade && name == header::UPGRADE) {
            headers.remove(&name);
        }
    }
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::TRAILER);
    let te_trailers = headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !te_trailers {
        headers.remove(header::TE);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

// === impl RequestInfo ===

impl RequestInfo {
    fn of(request: &Request<Incoming>) -> Self {
        let authority = request
            .uri()
            .authority()
            .map(|a| a.to_string())
            .or_else(|| {
                let host = request.headers().get(header::HOST)?;
                host.to_str().ok().map(str::to_string)
            })
            .unwrap_or_default();
        Self {
            method: request.method().to_string(),
            authority,
            path: request.uri().path().to_string(),
            protocol: match request.version() {
                Version::HTTP_10 => "HTTP/1.0",
                Version::HTTP_2 => "HTTP/2",
                _ => "HTTP/1.1",
            },
        }
    }
}

// === impl Done ===

impl Done {
    fn record(self, error: &str) {
        self.metrics.request(&RequestRecord {
            labels: &self.labels,
            status: self.status,
            duration: self.started.elapsed(),
            method: &self.info.method,
            authority: &self.info.authority,
            path: &self.info.path,
            protocol: self.info.protocol,
            client: &self.client,
            upstream: &self.upstream,
            error,
            route: &self.route,
        });
    }
}

// === impl Recorded ===

impl Body for Recorded {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done.record("");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    HeaderValue::from_str(v).expect("value"),
                )
            })
            .collect()
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn hop_by_hop_headers_stay_on_their_hop() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-hop"),
            ("keep-alive", "timeout=5"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "gzip"),
            ("upgrade", "h2c"),
            ("x-end-to-end", "kept"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(names(&h), ["x-end-to-end"]);
    }

    #[test]
    fn grpc_keeps_te_trailers_and_upgrades_keep_their_headers() {
        let mut h = headers(&[("te", "trailers"), ("content-type", "application/grpc")]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(names(&h), ["content-type", "te"]);

        let mut h = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(wants_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert!(!wants_upgrade(&headers(&[("upgrade", "websocket")])));
    }
}
