//! The router's forwarding path: the finalised request to the primary (its body streamed,
//! a bounded copy kept for the shadows), the copies handed to the exchange task, the route
//! timeout from the end of the client's request, and Envoy's answers when the primary fails.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::header::SERVER;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use tokio::sync::oneshot;

use crate::capture::{
    CapturedBody, CapturedRequest, ResponseFlags, UpstreamErrorKind, UpstreamFailure,
    UpstreamOutcome, owned_headers,
};
use crate::config::headers::HeaderOps;
use crate::routing::WeightedUpstream;
use crate::routing::action::Forward;
use crate::routing::balancer::{HashInput, PickInput};

use super::Shared;
use super::arrival::{Arrival, Routed};
use super::body::{ProxyBody, Replay, RequestBodyCopy, TeeBody, UpstreamBody};
use super::cors::CorsHeaders;
use super::error::ProxyError;
use super::finalize::{self, Finalized};
use super::join::{Deliver, ExchangeJoin, ExchangeRecord, PrimaryOutcome};
use super::local::{ENVOY, LocalReply};
use super::shadow::PendingExchange;

const X_ENVOY_OVERLOADED: HeaderName = HeaderName::from_static("x-envoy-overloaded");
const X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");

/// What the filters before the router left for it: draws, flags, trace lines, CORS headers.
pub(super) struct Filtered {
    pub rng: fastrand::Rng,
    pub flags: ResponseFlags,
    pub steps: Vec<String>,
    pub cors: Option<CorsHeaders>,
}

/// The endpoint a request's first attempt goes to, and what its pick saw.
pub(super) struct FirstPick {
    pub index: usize,
    pub target: super::target::UpstreamTarget,
    pub skipped_ejected: usize,
}

/// What goes on every answer the client gets for this route: the response header
/// operations of the picked destination and the route, and the CORS headers.
pub(super) struct ResponseEdits<'a> {
    ops: &'a [HeaderOps],
    cors: Option<CorsHeaders>,
    /// The cookie a consistent hash generated, set on the upstream's answer.
    pub(super) set_cookie: Option<HeaderValue>,
}

impl ResponseEdits<'_> {
    pub(super) fn apply(&self, headers: &mut HeaderMap) {
        for ops in self.ops {
            ops.apply(headers);
        }
        if let Some(cors) = &self.cors {
            cors.apply(headers);
        }
        headers.insert(SERVER, ENVOY);
    }
}

/// `x-envoy-upstream-service-time`: the upstream's time to its answer's head, in whole
/// milliseconds. The values a lab on loopback nearly always sees are shared, not formatted.
fn service_time(ttfb: Duration) -> HeaderValue {
    const SMALL: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    let ms = u64::try_from(ttfb.as_millis()).unwrap_or(u64::MAX);
    match usize::try_from(ms).ok().and_then(|i| SMALL.get(i)) {
        Some(text) => HeaderValue::from_static(text),
        None => HeaderValue::from(ms),
    }
}

/// Sets `x-envoy-upstream-service-time` on an upstream's answer.
pub(super) fn set_service_time(headers: &mut HeaderMap, ttfb: Duration) {
    headers.insert(X_ENVOY_UPSTREAM_SERVICE_TIME, service_time(ttfb));
}

impl Shared {
    /// Prepares a routed request for its primary and the sampled mirrors: the finalised
    /// request and its exchange record, or the answer when there is nothing to send to. Not
    /// async: what it builds goes into [`Shared::send_primary`]'s future once, instead of
    /// being held in one future and copied into the next.
    pub(super) fn prepare_forward<'a>(
        self: &Arc<Self>,
        arrival: Arrival,
        routed: Routed,
        filtered: Filtered,
        forward: &'a Forward,
    ) -> Prepared<'a> {
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
            client: arrival_client,
            ..
        } = arrival;
        let request_id = finalize::prepare(&mut parts.headers, parts.uri.authority());
        let Some(destination) = forward.pick(rng.f64()) else {
            // A compiled forwarding route always has a destination.
            let err =
                ProxyError::upstream(UpstreamErrorKind::NoEndpoint, host, "", "no destination");
            return Prepared::Answered(LocalReply::for_error(&err).into_response());
        };
        let sampled: Vec<bool> = forward
            .mirrors
            .iter()
            .map(|mirror| rng.f64() < mirror.fraction)
            .collect();
        let upstream = &destination.upstream;
        let (hash, set_cookie) = self.request_hash(upstream, &parts, arrival_client);
        let edits = ResponseEdits {
            ops: &destination.response_headers,
            cors,
            set_cookie: None,
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
        let first = self.first_pick(upstream, hash, &mut rng);
        let record = ExchangeRecord {
            id,
            request_id,
            started_at,
            trace,
            request,
            primary_target: Arc::clone(&upstream.label),
            primary_endpoint: first
                .as_ref()
                .map_or_else(|| Arc::from(""), |f| Arc::clone(&f.target.text)),
            mirrors: Arc::clone(&forward.mirrors),
            forwarded: finalized.forwarded,
            flags,
        };
        let Some(first) = first else {
            return Prepared::Answered(self.no_healthy_upstream(record, destination, &edits));
        };
        let http2 = upstream.policy.protocol.speaks_http2(parts.version);
        let replays = (forward.retry.as_ref()).is_some_and(|p| {
            super::retry::retries_after_sending(p, http2, || super::fault::is_grpc(&parts.headers))
        });
        let send = PrimarySend {
            forward,
            destination,
            replays,
            finalized_path: finalized.path_and_query,
            edits: ResponseEdits {
                set_cookie,
                ..edits
            },
            rng,
            hash,
            http2,
        };
        self.start_primary(parts, body, record, sampled, send, first)
    }

    /// No endpoint for the primary: Envoy finds no connection pool and answers 503 "no
    /// healthy upstream" before it starts any shadow, so the exchange has no mirror record.
    fn no_healthy_upstream(
        self: &Arc<Self>,
        mut record: ExchangeRecord,
        destination: &WeightedUpstream,
        edits: &ResponseEdits<'_>,
    ) -> Response<ProxyBody> {
        let label = &*destination.upstream.label;
        let err = ProxyError::upstream(
            UpstreamErrorKind::NoEndpoint,
            label,
            "",
            format!(
                "{label} has no endpoint to send to: none selected (check the ServiceEntry and the subset's labels), or every one ejected by outlier detection"
            ),
        );
        self.counters.primary_error();
        record.mirrors = Arc::new([]);
        let join = ExchangeJoin::new(Arc::clone(self), record, Vec::new(), false);
        Deliver::join(&join).send(RequestBodyCopy::empty());
        Deliver::join(&join).send(PrimaryOutcome::from(failure(&err, Duration::ZERO)));
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
        finalized_headers: &http::HeaderMap,
    ) -> (Deliver<RequestBodyCopy>, Deliver<PrimaryOutcome>, usize) {
        // Every shadow slot taken (a shadow slow enough to hold them all): the copies are
        // skipped here, as they would be once the body is in, without an exchange task per
        // request just to record the skip.
        let no_slot = self.shadow_slots.available_permits() == 0;
        if no_slot || !sampled.iter().any(|s| *s) {
            let join = ExchangeJoin::new(Arc::clone(self), record, sampled, no_slot);
            // A retry that sends the body again needs it kept, up to the buffer limit.
            let keep = if send.replays_body() {
                self.settings.mirror_body_limit
            } else {
                self.settings.capture_body_cap
            };
            return (Deliver::join(&join), Deliver::join(&join), keep);
        }
        // A copy to send: the exchange task waits for the body, sends the copies and waits
        // for them and the primary.
        let (body_done, body_copy) = oneshot::channel();
        let (primary_done, primary_outcome) = oneshot::channel();
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        // Boxed: tokio moves a task's future by value several times as it spawns it, and
        // writes its whole stage again when it finishes; a box makes each of those a pointer.
        tokio::spawn(Box::pin(Arc::clone(self).finish_exchange(
            PendingExchange {
                record,
                path_and_query: send.finalized_path.clone(),
                sampled,
                headers: finalized_headers.clone(),
                timeout: send.forward.timeout,
                body: body_copy,
                primary: primary_outcome,
            },
        )));
        (
            Deliver::channel(body_done),
            Deliver::channel(primary_done),
            self.settings.mirror_body_limit,
        )
    }

    /// The balancer's pick for the first attempt; `None` when no endpoint can be picked.
    fn first_pick(
        &self,
        upstream: &crate::routing::Upstream,
        hash: Option<u64>,
        rng: &mut fastrand::Rng,
    ) -> Option<FirstPick> {
        let picked = upstream.pick(PickInput {
            hash,
            avoid: &[],
            attempts: 1,
            rng,
            now: Instant::now(),
        });
        picked.ok().map(|(pick, endpoint)| FirstPick {
            index: pick.index,
            target: self.upstream_target(endpoint, upstream),
            skipped_ejected: pick.ejected_skipped,
        })
    }

    /// The request's consistent hash when the destination hashes, and the cookie to set on
    /// the answer when the hash cookie was missing and has a ttl.
    fn request_hash(
        &self,
        upstream: &crate::routing::Upstream,
        parts: &http::request::Parts,
        client: Option<std::net::SocketAddr>,
    ) -> (Option<u64>, Option<HeaderValue>) {
        let hashed = upstream.policy.hash.as_ref().map(|key| {
            key.hash_of(&HashInput {
                headers: &parts.headers,
                query: parts.uri.query(),
                client,
                local: self.local_addr,
            })
        });
        match hashed {
            Some(h) => (
                h.hash,
                h.set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()),
            ),
            None => (None, None),
        }
    }

    /// Sets up the exchange's halves and builds the request for the primary.
    fn start_primary<'a>(
        self: &Arc<Self>,
        mut parts: http::request::Parts,
        body: hyper::body::Incoming,
        record: ExchangeRecord,
        sampled: Vec<bool>,
        send: PrimarySend<'a>,
        first: FirstPick,
    ) -> Prepared<'a> {
        let cap = self.settings.capture_body_cap;
        let (body_done, primary_done, buffer_limit) =
            self.exchange_halves(record, sampled, &send, &parts.headers);
        let (body_read, body_read_wait) = oneshot::channel::<()>();
        let mut body_ended = false;
        let mut replay = None;
        let upstream_body = if http_body::Body::is_end_stream(&body) {
            body_done.send(RequestBodyCopy::empty());
            // Nothing to read: a failed primary must not wait for the body to be read.
            drop(body_read);
            body_ended = true;
            UpstreamBody::Empty
        } else {
            let tee = TeeBody::new(body, buffer_limit, cap, body_done, body_read);
            if send.replays_body() {
                let (tx, rx) = oneshot::channel();
                replay = Some(rx);
                UpstreamBody::Tee(Box::new(tee.with_replay(tx)))
            } else {
                UpstreamBody::Tee(Box::new(tee))
            }
        };
        let uri = match first.target.uri(&send.finalized_path) {
            Ok(uri) => uri,
            Err(detail) => {
                let label = &*send.destination.upstream.label;
                let err = ProxyError::upstream(
                    UpstreamErrorKind::Other,
                    label,
                    &*first.target.text,
                    detail,
                );
                self.counters.primary_error();
                primary_done.send(PrimaryOutcome::from(failure(&err, Duration::ZERO)));
                return Prepared::Answered(self.error_response(&err, &send.edits));
            }
        };
        first.target.ensure_host(&mut parts.headers);
        // A retry after the request went out sends it again: keep its head.
        let template = send.replays().then(|| RequestTemplate {
            method: parts.method.clone(),
            uri: uri.clone(),
            headers: parts.headers.clone(),
        });
        let mut request = Request::new(upstream_body);
        *request.method_mut() = parts.method;
        *request.uri_mut() = uri;
        *request.headers_mut() = parts.headers;
        Prepared::Send(PrimaryJob {
            request,
            send,
            first,
            primary_done,
            body_read_wait,
            body_ended,
            mirror_waits_for_body: buffer_limit > cap,
            template,
            replay,
        })
    }

    /// Envoy's answer for a failed primary, with the route's response edits.
    pub(super) fn error_response(
        &self,
        err: &ProxyError,
        edits: &ResponseEdits<'_>,
    ) -> Response<ProxyBody> {
        let mut reply = LocalReply::for_error(err);
        edits.apply(&mut reply.headers);
        if matches!(
            err,
            ProxyError::Upstream {
                kind: UpstreamErrorKind::Overflow,
                ..
            }
        ) {
            reply
                .headers
                .insert(X_ENVOY_OVERLOADED, HeaderValue::from_static("true"));
        }
        reply.into_response()
    }
}

/// What preparing a forwarded request came to.
#[allow(
    clippy::large_enum_variant,
    reason = "returned once per request and taken apart at once; boxing the job would cost an allocation per request"
)]
pub(super) enum Prepared<'a> {
    /// Ready for [`Shared::send_primary`].
    Send(PrimaryJob<'a>),
    /// Answered already (no endpoint, a target the lab cannot send).
    Answered(Response<ProxyBody>),
}

/// A request ready for its primary: what [`Shared::prepare_forward`] hands to
/// [`Shared::send_primary`].
pub(super) struct PrimaryJob<'a> {
    pub(super) request: Request<UpstreamBody>,
    pub(super) send: PrimarySend<'a>,
    pub(super) first: FirstPick,
    pub(super) primary_done: Deliver<PrimaryOutcome>,
    /// Closed once the client's body has been read to its end.
    pub(super) body_read_wait: oneshot::Receiver<()>,
    pub(super) body_ended: bool,
    /// A shadow waits for the body: a failed primary finishes reading it first.
    pub(super) mirror_waits_for_body: bool,
    /// The request's head, kept when a retry may send it again after it went out.
    pub(super) template: Option<RequestTemplate>,
    /// The whole body for such a retry, once the client has sent it.
    pub(super) replay: Option<oneshot::Receiver<Replay>>,
}

/// A request's head, to build a retry from.
pub(super) struct RequestTemplate {
    pub(super) method: http::Method,
    pub(super) uri: http::Uri,
    pub(super) headers: HeaderMap,
}

/// What `send_primary` needs of the route.
pub(super) struct PrimarySend<'a> {
    pub(super) forward: &'a Forward,
    pub(super) destination: &'a WeightedUpstream,
    pub(super) finalized_path: http::uri::PathAndQuery,
    pub(super) edits: ResponseEdits<'a>,
    /// The request's own draws (back-off, retry picks).
    pub(super) rng: fastrand::Rng,
    /// The request's consistent hash, if the destination hashes.
    pub(super) hash: Option<u64>,
    /// A retry may send the request again after it went out (`retries_after_sending`).
    pub(super) replays: bool,
    /// Every attempt goes out as HTTP/2 (the cluster's protocol, or the client's).
    pub(super) http2: bool,
}

impl PrimarySend<'_> {
    /// Whether a retry may send the request again after it went out: the policy retries
    /// on answers or resets (not only on connections that could not be made).
    pub(super) fn replays(&self) -> bool {
        self.replays
    }

    /// Whether such a retry needs the body kept.
    pub(super) fn replays_body(&self) -> bool {
        self.replays()
    }
}

/// The primary's outcome for an error before its response head.
pub(super) fn failure(err: &ProxyError, elapsed: Duration) -> UpstreamOutcome {
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
