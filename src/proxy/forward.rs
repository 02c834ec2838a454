//! The router's forwarding path: the finalised request to the primary (its body streamed,
//! a bounded copy kept for the shadows), the copies handed to the exchange task, the route
//! timeout from the end of the client's request, and Envoy's answers when the primary fails.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::header::SERVER;
use http::{HeaderMap, HeaderValue, Request, Response};
use tokio::sync::oneshot;

use crate::capture::{
    CapturedBody, CapturedRequest, ResponseFlags, UpstreamErrorKind, UpstreamFailure,
    UpstreamOutcome, owned_headers,
};
use crate::config::headers::HeaderOps;
use crate::routing::WeightedUpstream;
use crate::routing::action::Forward;

use super::Shared;
use super::arrival::{Arrival, Routed};
use super::body::{
    CaptureBody, Deadline, ProxyBody, RequestBodyCopy, ResponseHead, TeeBody, UpstreamBody,
};
use super::cors::CorsHeaders;
use super::error::ProxyError;
use super::finalize::{self, Finalized};
use super::hop::strip_hop_by_hop;
use super::join::{Deliver, ExchangeJoin, ExchangeRecord};
use super::local::{ENVOY, LocalReply};
use super::shadow::PendingExchange;

const X_ENVOY_UPSTREAM_SERVICE_TIME: &str = "x-envoy-upstream-service-time";

/// What the filters before the router left for it: draws, flags, trace lines, CORS headers.
pub(super) struct Filtered {
    pub rng: fastrand::Rng,
    pub flags: ResponseFlags,
    pub steps: Vec<String>,
    pub cors: Option<CorsHeaders>,
}

/// What goes on every answer the client gets for this route: the response header
/// operations of the picked destination and the route, and the CORS headers.
struct ResponseEdits<'a> {
    ops: &'a [HeaderOps],
    cors: Option<CorsHeaders>,
}

impl ResponseEdits<'_> {
    fn apply(&self, headers: &mut HeaderMap) {
        for ops in self.ops {
            ops.apply(headers);
        }
        if let Some(cors) = &self.cors {
            cors.apply(headers);
        }
        headers.insert(SERVER, ENVOY);
    }
}

impl Shared {
    /// Forwards a routed request to its primary and copies it to the sampled mirrors.
    pub(super) async fn forward(
        self: Arc<Self>,
        arrival: Arrival,
        routed: Routed,
        filtered: Filtered,
    ) -> Response<ProxyBody> {
        let route = Arc::clone(&routed.resolution.route);
        let crate::routing::RouteAction::Forward(forward) = &route.action else {
            // The pipeline sends only forwarding routes here.
            return LocalReply::new(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "not a forwarding route\n",
            )
            .into_response();
        };
        let Filtered {
            mut rng,
            flags,
            mut steps,
            cors,
        } = filtered;
        let Arrival {
            id,
            started_at,
            mut parts,
            body,
            host,
            path_and_query,
            ..
        } = arrival;
        let request_id = finalize::prepare(&mut parts.headers, parts.uri.authority());
        let Some(destination) = forward.pick(rng.f64()) else {
            // A compiled forwarding route always has a destination.
            let err = ProxyError::upstream(
                UpstreamErrorKind::NoEndpoint,
                routed.host.clone(),
                "",
                "the route has no destination",
            );
            return LocalReply::for_error(&err).into_response();
        };
        let sampled: Vec<bool> = forward
            .mirrors
            .iter()
            .map(|mirror| rng.f64() < mirror.fraction)
            .collect();
        let edits = ResponseEdits {
            ops: &destination.response_headers,
            cors,
        };
        let captured_request = CapturedRequest {
            method: parts.method.clone(),
            uri: path_and_query.as_str().to_owned(),
            authority: host,
            version: parts.version,
            headers: owned_headers(&parts.headers),
            body: CapturedBody::default(),
        };
        let finalized = match finalize::finalize(
            &mut parts.headers,
            &path_and_query,
            forward,
            destination,
            routed.resolution.matched,
        ) {
            Ok(f) => f,
            Err(detail) => Finalized {
                // An unusable rewrite result: Envoy would send it as it is; the lab cannot
                // build the request, so it fails below as a bad target.
                path_and_query: path_and_query.clone(),
                forwarded: None,
                steps: vec![detail],
            },
        };
        steps.extend(finalized.steps);
        let mut trace = routed.resolution.trace;
        trace.steps = steps;
        let upstream = &destination.upstream;
        let endpoint = upstream.next_endpoint().cloned();
        let target = endpoint.as_ref().map(|e| self.upstream_target(e));
        let record = ExchangeRecord {
            id,
            request_id,
            started_at,
            trace,
            request: captured_request,
            primary_target: Arc::from(upstream.label.as_str()),
            primary_endpoint: target
                .as_ref()
                .map_or_else(String::new, |t| String::from(&*t.text)),
            mirrors: Arc::clone(&forward.mirrors),
            forwarded: finalized.forwarded,
            flags,
        };
        let Some(target) = target else {
            // No endpoint for the primary: Envoy finds no connection pool and answers 503
            // "no healthy upstream" before it starts any shadow.
            let err = ProxyError::upstream(
                UpstreamErrorKind::NoEndpoint,
                upstream.label.as_str(),
                "",
                format!(
                    "{} has no endpoints: check the ServiceEntry and the subset's labels",
                    upstream.label
                ),
            );
            self.counters.primary_error();
            let join =
                ExchangeJoin::new(Arc::clone(&self), record, vec![false; sampled.len()], false);
            Deliver::join(&join).send(RequestBodyCopy::empty());
            Deliver::join(&join).send(failure(&err, Duration::ZERO));
            return self.error_response(&err, &edits);
        };
        let send = PrimarySend {
            forward,
            destination,
            target,
            finalized_path: finalized.path_and_query,
            edits,
        };
        self.send_primary(parts, body, record, sampled, send).await
    }

    /// Sets up the exchange's halves, streams the request to the primary and answers.
    async fn send_primary(
        self: Arc<Self>,
        mut parts: http::request::Parts,
        body: hyper::body::Incoming,
        record: ExchangeRecord,
        sampled: Vec<bool>,
        send: PrimarySend<'_>,
    ) -> Response<ProxyBody> {
        let cap = self.settings.capture_body_cap;
        // Every shadow slot taken (a shadow slow enough to hold them all): the copies are
        // skipped here, as they would be once the body is in, without an exchange task per
        // request just to record the skip.
        let no_slot = self.shadow_slots.available_permits() == 0;
        let any_sampled = !no_slot && sampled.iter().any(|s| *s);
        let buffer_limit = if any_sampled {
            self.settings.mirror_body_limit
        } else {
            cap
        };
        let mirror_waits_for_body = buffer_limit > cap;
        let (body_done, primary_done) = if any_sampled {
            // A copy to send: the exchange task waits for the body, sends the copies and
            // waits for them and the primary.
            let (body_done, body_copy) = oneshot::channel();
            let (primary_done, primary_outcome) = oneshot::channel();
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(Arc::clone(&self).finish_exchange(PendingExchange {
                record,
                path_and_query: send.finalized_path.clone(),
                sampled,
                timeout: send.forward.timeout,
                body: body_copy,
                primary: primary_outcome,
            }));
            (Deliver::channel(body_done), Deliver::channel(primary_done))
        } else {
            // Nothing to copy: the exchange is published by whichever half ends last.
            let join = ExchangeJoin::new(Arc::clone(&self), record, sampled, no_slot);
            (Deliver::join(&join), Deliver::join(&join))
        };
        let (body_read, mut body_read_wait) = oneshot::channel::<()>();
        let mut body_ended = false;
        let upstream_body = if http_body::Body::is_end_stream(&body) {
            body_done.send(RequestBodyCopy::empty());
            // Nothing to read: a failed primary must not wait for the body to be read.
            drop(body_read);
            body_ended = true;
            UpstreamBody::Empty
        } else {
            UpstreamBody::Tee(TeeBody::new(body, buffer_limit, cap, body_done, body_read))
        };
        let target = &send.target;
        let uri = match target.uri(&send.finalized_path) {
            Ok(uri) => uri,
            Err(detail) => {
                let err = ProxyError::upstream(
                    UpstreamErrorKind::Other,
                    send.destination.upstream.label.as_str(),
                    String::from(&*target.text),
                    detail,
                );
                self.counters.primary_error();
                primary_done.send(failure(&err, Duration::ZERO));
                return self.error_response(&err, &send.edits);
            }
        };
        target.ensure_host(&mut parts.headers);
        let mut forward = Request::new(upstream_body);
        *forward.method_mut() = parts.method;
        *forward.uri_mut() = uri;
        *forward.headers_mut() = parts.headers;

        let sent_at = Instant::now();
        let sent = target
            .pool()
            .send(forward, self.settings.connect_timeout, sent_at, false);
        let (result, timer_started) = match send.forward.timeout {
            Some(limit) => {
                within_route_timeout(limit, &mut body_read_wait, &mut body_ended, sent).await
            }
            None => (sent.await, None),
        };
        match result {
            Ok((response, connection)) => {
                let ttfb = sent_at.elapsed();
                let (mut head, body) = response.into_parts();
                strip_hop_by_hop(&mut head.headers);
                let deadline = send.forward.timeout.map(|limit| {
                    // The timer starts when the client's request is complete; an answer that
                    // came before the end of the upload starts it now.
                    Deadline::new(timer_started.unwrap_or_else(Instant::now), limit)
                });
                let capture = CaptureBody::new(
                    body,
                    ResponseHead {
                        status: head.status,
                        headers: owned_headers(&head.headers),
                        sent_at,
                        ttfb,
                    },
                    cap,
                    primary_done,
                    connection,
                    deadline,
                );
                send.edits.apply(&mut head.headers);
                head.headers.insert(
                    X_ENVOY_UPSTREAM_SERVICE_TIME,
                    HeaderValue::from(u64::try_from(ttfb.as_millis()).unwrap_or(u64::MAX)),
                );
                Response::from_parts(head, ProxyBody::upstream(capture))
            }
            Err((kind, detail)) => {
                let err = ProxyError::upstream(
                    kind,
                    send.destination.upstream.label.as_str(),
                    String::from(&*target.text),
                    detail,
                );
                self.counters.primary_error();
                primary_done.send(failure(&err, sent_at.elapsed()));
                if mirror_waits_for_body && !body_ended {
                    // The primary never read the body; answering now would make hyper close
                    // the connection before the shadows' copy is read. A mirror does not
                    // depend on its primary, so finish reading first (bounded).
                    let _ =
                        tokio::time::timeout(self.settings.shadow_timeout, body_read_wait).await;
                }
                self.error_response(&err, &send.edits)
            }
        }
    }

    /// Envoy's answer for a failed primary, with the route's response edits.
    fn error_response(&self, err: &ProxyError, edits: &ResponseEdits<'_>) -> Response<ProxyBody> {
        let mut reply = LocalReply::for_error(err);
        edits.apply(&mut reply.headers);
        reply.into_response()
    }
}

/// What `send_primary` needs of the route.
struct PrimarySend<'a> {
    forward: &'a Forward,
    destination: &'a WeightedUpstream,
    target: super::target::UpstreamTarget,
    finalized_path: http::uri::PathAndQuery,
    edits: ResponseEdits<'a>,
}

/// The primary's outcome for an error before its response head.
fn failure(err: &ProxyError, elapsed: Duration) -> UpstreamOutcome {
    let (kind, detail) = match err {
        ProxyError::Upstream { kind, detail, .. } => (*kind, detail.clone()),
        other => (UpstreamErrorKind::Other, other.to_string()),
    };
    UpstreamOutcome::Failed(UpstreamFailure {
        kind,
        detail,
        elapsed,
        partial: None,
    })
}

type Sent =
    Result<(Response<hyper::body::Incoming>, super::pool::Pooled), (UpstreamErrorKind, String)>;

/// Waits for the primary's response head within the route timeout, which starts once the
/// client's request is complete (Envoy arms its timer in `onRequestComplete`), so a slow
/// upload is not a timeout. Returns the result and when the timer started, if it did.
async fn within_route_timeout(
    limit: Duration,
    body_read: &mut oneshot::Receiver<()>,
    body_ended: &mut bool,
    sent: impl std::future::Future<Output = Sent>,
) -> (Sent, Option<Instant>) {
    tokio::pin!(sent);
    let started = if *body_ended {
        Instant::now()
    } else {
        tokio::select! {
            result = &mut sent => return (result, None),
            _ = &mut *body_read => {
                *body_ended = true;
                Instant::now()
            }
        }
    };
    let deadline = tokio::time::Instant::from_std(started + limit);
    match tokio::time::timeout_at(deadline, sent).await {
        Ok(result) => (result, Some(started)),
        Err(_) => (
            Err((
                UpstreamErrorKind::Timeout,
                format!("no response within the route timeout of {limit:?}"),
            )),
            Some(started),
        ),
    }
}
