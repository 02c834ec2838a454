//! HTTP/2 to upstreams: h2c with prior knowledge, as Envoy speaks it to a cluster whose
//! port is HTTP2 or GRPC (or upgraded by the DestinationRule). Requests to an endpoint share
//! one multiplexed connection, opened by the first and replaced when it closes; hyper's
//! HTTP/2 client keeps the streams apart and carries trailers both ways.

use std::sync::Arc;
use std::time::Instant;

use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::body::UpstreamBody;
use super::error::classify;
use super::pool::{
    EndpointPool, Pooled, RequestSlot, SendError, SendFailure, SendOptions, release_connection,
    spawn_connection, within_per_try,
};
use crate::routing::balancer::Breakers;

impl EndpointPool {
    /// Sends `request` as a stream on the endpoint's HTTP/2 connection, opening it first if
    /// there is none, and waits for the response head. The destination's limits count the
    /// request (`http2MaxRequests`) and the connection (`maxConnections`) as for HTTP/1.1.
    pub(super) async fn send_h2(
        self: &Arc<Self>,
        mut request: Request<UpstreamBody>,
        opts: &SendOptions<'_>,
        now: Instant,
    ) -> Result<(Response<Incoming>, Pooled), SendError> {
        let slot = match opts.cluster.map(RequestSlot::take).transpose() {
            Ok(slot) => slot,
            Err(failure) => {
                return Err(SendError {
                    failure,
                    unsent: Some(request),
                });
            }
        };
        let mut sender = match self.h2_connection(opts, now).await {
            Ok(sender) => sender,
            Err(failure) => {
                return Err(SendError {
                    failure,
                    unsent: Some(request),
                });
            }
        };
        as_h2(&mut request);
        match within_per_try(opts.per_try_timeout, sender.send_request(request)).await {
            Ok(Ok(response)) => Ok((response, self.pooled_stream(slot))),
            Ok(Err(err)) => Err(classify(&err).into()),
            Err(timeout) => Err(timeout.into()),
        }
    }

    /// The shared connection, if it is open, else a new one (which becomes the shared one).
    async fn h2_connection(
        &self,
        opts: &SendOptions<'_>,
        now: Instant,
    ) -> Result<SendRequest<UpstreamBody>, SendFailure> {
        if let Some(sender) = self.h2.lock().as_ref().filter(|s| !s.is_closed()) {
            return Ok(sender.clone());
        }
        // No connection to share: one is opened now, counted against `maxConnections`
        // when there is room, and opened anyway when there is none. Envoy's pool, too,
        // creates a connection for streams that have none (and a waiting request would
        // wait for good: the shared connection is never handed back).
        let counted = opts.cluster.and_then(|cluster| {
            let limits = cluster.policy.limits;
            let breakers = &cluster.state.breakers;
            (limits.max_connections != u32::MAX
                && Breakers::try_take(&breakers.connections, limits.max_connections))
            .then(|| Arc::clone(cluster))
        });
        let stream = self.open_stream(opts, now, counted.as_ref()).await?;
        let io = match super::tls::secure(stream, self.tls.as_ref(), opts.connect_timeout).await {
            Ok(io) => io,
            Err(failure) => {
                release_connection(counted.as_ref());
                return Err(failure);
            }
        };
        let handshake = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(io))
            .await;
        match handshake {
            Ok((sender, connection)) => {
                spawn_connection(connection, counted);
                *self.h2.lock() = Some(sender.clone());
                Ok(sender)
            }
            Err(err) => {
                release_connection(counted.as_ref());
                Err(classify(&err))
            }
        }
    }
}

/// An HTTP/1.1-shaped request as an HTTP/2 stream: Envoy's HTTP/2 codec sends the Host as
/// `:authority` (and no `host` field), with the `http` scheme of a plaintext cluster.
fn as_h2(request: &mut Request<UpstreamBody>) {
    *request.version_mut() = Version::HTTP_2;
    let Some(host) = request.headers_mut().remove(HOST) else {
        return;
    };
    let Ok(authority) = Authority::try_from(host.as_bytes()) else {
        // Not an authority: leave it as a field rather than lose it.
        request.headers_mut().insert(HOST, host);
        return;
    };
    let mut parts = request.uri().clone().into_parts();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn the_host_becomes_the_authority_of_an_http2_request() {
        let mut request = Request::new(UpstreamBody::Empty);
        *request.uri_mut() = Uri::from_static("/reviews/1?x=1");
        request
            .headers_mut()
            .insert(HOST, HeaderValue::from_static("reviews:9080"));
        as_h2(&mut request);
        assert_eq!(request.version(), Version::HTTP_2);
        assert_eq!(request.uri(), "http://reviews:9080/reviews/1?x=1");
        assert!(request.headers().get(HOST).is_none());
    }
}
