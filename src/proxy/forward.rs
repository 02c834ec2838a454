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
        forward: &Forward,
    ) -> Response<ProxyBody> {
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
            let err =
                ProxyError::upstream(UpstreamErrorKind::NoEndpoint, host, "", "no destination");
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
        let request = CapturedRequest {
            method: parts.method.clone(),
            uri: path_and_query.as_str().to_owned(),
            authority: host,
            version: parts.version,
            headers: owned_headers(&parts.headers),
            body: CapturedBody::default(),
        };
        let finalized = finalize::finalize(
            &mut parts.headers,
            &path_and_query,
            forward,
            destination,
            routed.resolution.matched,
        )
        .unwrap_or_else(|detail| Finalized {
            // A rewrite result that is not a request target: the primary fails below as a
            // target the lab cannot send, and the trace says why.
            path_and_query: path_and_query.clone(),
            forwarded: None,
            steps: vec![detail],
        });
        steps.extend(finalized.steps);
        let mut trace = routed.resolution.trace;
        trace.steps = steps;
        let upstream = &destination.upstream;
        let target = upstream
            .next_endpoint()
            .map(|endpoint| self.upstream_target(endpoint));
        let record = ExchangeRecord {
            id,
            request_id,
            started_at,
            trace,
            request,
            primary_target: Arc::from(upstream.label.as_str()),
            primary_endpoint: target
                .as_ref()
                .map_or_else(String::new, |t| String::from(&*t.text)),
            mirrors: Arc::clone(&forward.mirrors),
            forwarded: finalized.forwarded,
            flags,
        };
        let Some(target) = target else {
            return self.no_healthy_upstream(record, destination, &edits);
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

    /// No endpoint for the primary: Envoy finds no connection pool and answers 503 "no
    /// healthy upstream" before it starts any shadow, so the exchange has no mirror record.
    fn no_healthy_upstream(
        self: &Arc<Self>,
        mut record: ExchangeRecord,
        destination: &WeightedUpstream,
        edits: &ResponseEdits<'_>,
    ) -> Response<ProxyBody> {
        let label = destination.upstream.label.as_str();
        let err = ProxyError::upstream(
            UpstreamErrorKind::NoEndpoint,
            label,
            "",
            format!("{label} has no endpoints: check the ServiceEntry and the subset's labels"),
        );
        self.counters.primary_error();
        record.mirrors = Arc::new([]);
        let join = ExchangeJoin::new(Arc::clone(self), record, Vec::new(), false);
        Deliver::join(&join).send(RequestBodyCopy::empty());
        Deliver::join(&join).send(failure(&err, Duration::ZERO));
        self.error_response(&err, edits)
    }

    /// Where the request's two halves (its body, the primary's answer) go: the exchange task
    /// when a copy is to be sent, else a join that publishes without a task. Returns them
    /// and how much of the body to keep.
    fn exchange_halves(
        self: &Arc<Self>,
        record: ExchangeRecord,
        sampled: Vec<bool>,
        send: &PrimarySend<'_>,
    ) -> (Deliver<RequestBodyCopy>, Deliver<UpstreamOutcome>, usize) {
        // Every shadow slot taken (a shadow slow enough to hold them all): the copies are
        // skipped here, as they would be once the body is in, without an exchange task per
        // request just to record the skip.
        let no_slot = self.shadow_slots.available_permits() == 0;
        if no_slot || !sampled.iter().any(|s| *s) {
            let join = ExchangeJoin::new(Arc::clone(self), record, sampled, no_slot);
            return (
                Deliver::join(&join),
                Deliver::join(&join),
                self.settings.capture_body_cap,
            );
        }
        // A copy to send: the exchange task waits for the body, sends the copies and waits
        // for them and the primary.
        let (body_done, body_copy) = oneshot::channel();
        let (primary_done, primary_outcome) = oneshot::channel();
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(Arc::clone(self).finish_exchange(PendingExchange {
            record,
            path_and_query: send.finalized_path.clone(),
            sampled,
            timeout: send.forward.timeout,
            body: body_copy,
            primary: primary_outcome,
        }));
        (
            Deliver::channel(body_done),
            Deliver::channel(primary_done),
            self.settings.mirror_body_limit,
        )
    }

    /// Streams the request to the primary within the route timeout and answers the client.
    async fn send_primary(
        self: Arc<Self>,
        mut parts: http::request::Parts,
        body: hyper::body::Incoming,
        record: ExchangeRecord,
        sampled: Vec<bool>,
        send: PrimarySend<'_>,
    ) -> Response<ProxyBody> {
        let cap = self.settings.capture_body_cap;
        let (body_done, primary_done, buffer_limit) = self.exchange_halves(record, sampled, &send);
        let mirror_waits_for_body = buffer_limit > cap;
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
        let label = send.destination.upstream.label.as_str();
        let uri = match target.uri(&send.finalized_path) {
            Ok(uri) => uri,
            Err(detail) => {
                let err =
                    ProxyError::upstream(UpstreamErrorKind::Other, label, &*target.text, detail);
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
        let (response, connection) = match result {
            Ok(answer) => answer,
            Err((kind, detail)) => {
                let err = ProxyError::upstream(kind, label, &*target.text, detail);
                self.counters.primary_error();
                primary_done.send(failure(&err, sent_at.elapsed()));
                if mirror_waits_for_body && !body_ended {
                    // The primary never read the body; answering now would make hyper close
                    // the connection before the shadows' copy is read. A mirror does not
                    // depend on its primary, so finish reading first (bounded).
                    let _ =
                        tokio::time::timeout(self.settings.shadow_timeout, body_read_wait).await;
                }
                return self.error_response(&err, &send.edits);
            }
        };
        let ttfb = sent_at.elapsed();
        let (mut head, body) = response.into_parts();
        strip_hop_by_hop(&mut head.headers);
        let deadline = send.forward.timeout.map(|limit| {
            // The timer starts when the client's request is complete; an answer that came
            // before the end of the upload starts it now.
            Deadline::new(timer_started.unwrap_or_else(Instant::now), limit)
        });
        let response_head = ResponseHead {
            status: head.status,
            headers: owned_headers(&head.headers),
            sent_at,
            ttfb,
            version: head.version,
        };
        let capture =
            CaptureBody::new(body, response_head, cap, primary_done, connection, deadline);
        send.edits.apply(&mut head.headers);
        head.headers.insert(
            X_ENVOY_UPSTREAM_SERVICE_TIME,
            HeaderValue::from(u64::try_from(ttfb.as_millis()).unwrap_or(u64::MAX)),
        );
        Response::from_parts(head, ProxyBody::upstream(capture))
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
