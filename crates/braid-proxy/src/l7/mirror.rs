//! `RequestMirror`: a copy of a request sent to another Service, its answer
//! read and dropped. Mirrors never delay or fail the client's request: they
//! run on their own tasks, bounded in number per pod and in time.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use http::Request;
use http_body_util::BodyExt as _;

use super::{body::RequestBody, pool::Senders};
use crate::{
    detect::Protocol,
    upstream::{PodContext, Route},
};

/// Mirrored requests in flight per pod, at most; more are not sent.
pub(crate) const MAX_IN_FLIGHT: usize = 256;

/// A mirrored exchange gets this long, body included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The copy of one request for each mirror target.
pub(crate) struct Copies {
    /// The copies, each with the Service VIP and port it goes to.
    pub(crate) requests: Vec<(SocketAddr, Request<RequestBody>)>,
}

/// Sends each copy on its own task, if the pod has room for it.
pub(crate) fn send(pod: &Arc<PodContext>, senders: &Senders, version: Protocol, copies: Copies) {
    let limit = senders.mirror_limit();
    for (target, request) in copies.requests {
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::debug!(pod = %pod.workload, %target, "mirror skipped: {MAX_IN_FLIGHT} mirrored requests in flight");
            continue;
        };
        let (pod, senders) = (pod.clone(), senders.clone());
        tokio::spawn(async move {
            let exchange = async {
                let route = Route::resolve(&pod, target)?;
                let response = senders.send(&pod, &route, version, request).await?;
                // Read to the end so the connection can be reused.
                let _ = response.into_body().collect().await;
                Ok::<_, crate::upstream::UpstreamError>(())
            };
            match tokio::time::timeout(TIMEOUT, exchange).await {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    tracing::debug!(pod = %pod.workload, %target, %reason, "mirrored request failed")
                }
                Err(_) => {
                    tracing::debug!(pod = %pod.workload, %target, "mirrored request timed out")
                }
            }
            drop(permit);
        });
    }
}
