//! Shadow dispatch: the exchange task of a request with a copy to send. It waits for the
//! client's body, sends each sampled mirror the finalised request (as router.cc copies the
//! shadow's headers after `finalizeRequestHeaders`), with the route's timeout, beside the
//! wait for the primary, then publishes the exchange.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Uri};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::capture::{
    ShadowOutcome, ShadowRecord, SkipReason, UpstreamErrorKind, UpstreamFailure, UpstreamOutcome,
    owned_headers,
};
use crate::routing::MirrorPolicy;

use super::Shared;
use super::body::{BodyCapture, ChunkBody, RequestBodyCopy, ResponseHead, UpstreamBody};
use super::error::classify;
use super::finalize::shadow_host;
use super::join::{ExchangeRecord, Half, PrimaryOutcome, skipped};
use super::pool::{EndpointPool, SendOptions};

/// Everything the exchange task needs to finish one request's record.
pub(super) struct PendingExchange {
    pub record: ExchangeRecord,
    /// The finalised request target, shared with the primary's URI (a `Bytes` clone).
    pub path_and_query: PathAndQuery,
    /// Which mirrors drew a copy.
    pub sampled: Vec<bool>,
    /// The finalised request headers, the sidecar's own included, as the primary got them
    /// before its endpoint's Host: each copy starts from them.
    pub headers: HeaderMap,
    /// The route's timeout: each shadow's too (`None`: the lab's safety bound).
    pub timeout: Option<Duration>,
    pub body: oneshot::Receiver<RequestBodyCopy>,
    pub primary: oneshot::Receiver<PrimaryOutcome>,
}

/// A shadow that was sent, or why it was not.
#[allow(
    clippy::large_enum_variant,
    reason = "legs live briefly in one Vec per request; boxing would add an allocation each"
)]
enum ShadowLeg {
    Done(ShadowRecord),
    Running {
        target: Arc<str>,
        endpoint: Arc<str>,
        call: ShadowCall,
    },
}

/// One shadow copy, ready to send: run inside the exchange task, beside the wait for the
/// primary, rather than spawned (a task per copy cost more than the copy's own work).
struct ShadowCall {
    method: http::Method,
    uri: Result<Uri, String>,
    headers: HeaderMap,
    body: ChunkBody,
    pool: Arc<EndpointPool>,
    timeout: ShadowTimeout,
    /// The mirror's destination, when its DestinationRule limits it (its own circuit
    /// breakers), and its connect timeout.
    cluster: Option<Arc<crate::routing::Upstream>>,
    connect_timeout: Duration,
    /// Sent as HTTP/2.
    http2: bool,
    /// Held until the shadow has answered (or failed): bounds shadows in flight.
    permit: OwnedSemaphorePermit,
}

/// How long a shadow may take, and whose limit it is.
#[derive(Debug, Clone, Copy)]
struct ShadowTimeout {
    limit: Duration,
    /// The route's own timeout (Envoy's), or the lab's safety bound where Envoy would wait.
    from_route: bool,
}

impl ShadowTimeout {
    fn detail(self) -> String {
        if self.from_route {
            format!(
                "no complete answer within the route timeout of {:?}",
                self.limit
            )
        } else {
            format!(
                "no complete answer within the lab's shadow safety bound of {:?} (the route has no timeout, so Envoy would have waited)",
                self.limit
            )
        }
    }
}

/// A shadow leg once its copy, if any, is under way: the record, or what the record of the
/// copy being awaited will say besides its outcome.
#[allow(
    clippy::large_enum_variant,
    reason = "lives briefly in one Vec per request, as ShadowLeg; boxing would add an allocation"
)]
enum LegRecord {
    Done(ShadowRecord),
    Awaited {
        target: Arc<str>,
        endpoint: Arc<str>,
    },
}

impl Shared {
    /// Waits for the request body, sends the shadows, waits for the primary and every
    /// shadow, then publishes the exchange.
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its arguments twice in its future (see the body)"
    )]
    pub(super) fn finish_exchange(
        self: Arc<Self>,
        mut pending: PendingExchange,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        // Not an `async fn`: that moves its arguments into locals, so the exchange would
        // take its room in the task twice. The block uses its fields where they are.
        async move {
            let started_at = pending.record.started_at;
            let mirrors = Arc::clone(&pending.record.mirrors);
            let timeout = ShadowTimeout {
                limit: pending.timeout.unwrap_or(self.settings.shadow_timeout),
                from_route: pending.timeout.is_some(),
            };

            // A dropped sender means the body was abandoned before it was read at all.
            let body = (&mut pending.body).await.unwrap_or_default();
            pending.record.request.body = body.captured(self.settings.capture_body_cap);
            let copy = ShadowCopy {
                method: &pending.record.request.method,
                version: pending.record.request.version,
                headers: std::mem::take(&mut pending.headers),
                path_and_query: &pending.path_and_query,
                // Empty when the body cannot be mirrored; no copy is sent then (below).
                chunks: body.for_shadows().unwrap_or_default(),
                trailers: body.trailers().cloned(),
            };
            let sampled = std::mem::take(&mut pending.sampled);
            let legs = self.shadow_legs(&mirrors, sampled, &body, copy, timeout);

            let primary = async {
                (&mut pending.primary)
                    .await
                    .unwrap_or_else(|_| PrimaryOutcome::missing(started_at))
            };
            // The copies go out now, concurrently with the wait for the primary; each has
            // its own timeout, so none can hold the exchange longer than that.
            let mut calls = Vec::new();
            let mut records = Vec::with_capacity(legs.len());
            for leg in legs {
                match leg {
                    ShadowLeg::Done(record) => records.push(LegRecord::Done(record)),
                    ShadowLeg::Running {
                        target,
                        endpoint,
                        call,
                    } => {
                        calls.push(self.run_shadow(call));
                        records.push(LegRecord::Awaited { target, endpoint });
                    }
                }
            }
            let (primary_outcome, outcomes) =
                tokio::join!(primary, futures_util::future::join_all(calls));

            let shadows = self.shadow_records(records, outcomes, started_at);
            self.publish(pending.record.finish(primary_outcome, shadows));
        }
    }

    /// One leg per mirror policy: the copy to send, or why none is sent.
    fn shadow_legs(
        &self,
        mirrors: &[MirrorPolicy],
        sampled: Vec<bool>,
        body: &RequestBodyCopy,
        mut copy: ShadowCopy<'_>,
        timeout: ShadowTimeout,
    ) -> Vec<ShadowLeg> {
        // The last copy to send takes the headers; the ones before it clone them.
        let last = sampled.iter().rposition(|sampled| *sampled);
        let mut legs = Vec::with_capacity(mirrors.len());
        for (index, (policy, sampled)) in mirrors.iter().zip(sampled).enumerate() {
            let target: Arc<str> = Arc::clone(&policy.upstream.label);
            let skip = |reason| ShadowLeg::Done(skipped(Arc::clone(&target), reason));
            let leg = if !sampled {
                skip(SkipReason::NotSampled)
            } else if !body.is_complete() {
                skip(SkipReason::RequestIncomplete)
            } else if body.is_over_limit() {
                skip(SkipReason::BodyTooLarge)
            } else {
                match Arc::clone(&self.shadow_slots).try_acquire_owned() {
                    Ok(permit) => {
                        let headers = if Some(index) == last {
                            std::mem::take(&mut copy.headers)
                        } else {
                            copy.headers.clone()
                        };
                        self.prepare_shadow(policy, &copy, headers, permit, target, timeout)
                    }
                    Err(_) => skip(SkipReason::NoSlot),
                }
            };
            if let ShadowLeg::Done(ShadowRecord {
                outcome: ShadowOutcome::Skipped(reason),
                ..
            }) = &leg
            {
                self.counters.skipped(*reason);
            }
            legs.push(leg);
        }
        legs
    }

    /// The mirror records, the awaited ones filled with their calls' outcomes in order.
    fn shadow_records(
        &self,
        records: Vec<LegRecord>,
        outcomes: Vec<UpstreamOutcome>,
        started_at: std::time::SystemTime,
    ) -> Vec<ShadowRecord> {
        let mut outcomes = outcomes.into_iter();
        let mut shadows = Vec::with_capacity(records.len());
        for record in records {
            shadows.push(match record {
                LegRecord::Done(record) => record,
                LegRecord::Awaited { target, endpoint } => {
                    // `join_all` yields one outcome per call, in order.
                    let outcome = outcomes.next().unwrap_or_else(|| {
                        UpstreamOutcome::Failed(UpstreamFailure {
                            kind: UpstreamErrorKind::Other,
                            detail: "the shadow's outcome went missing".to_owned(),
                            elapsed: started_at.elapsed().unwrap_or_default(),
                            partial: None,
                        })
                    });
                    if matches!(outcome, UpstreamOutcome::Failed(_)) {
                        self.counters.shadow_error();
                    }
                    ShadowRecord {
                        target,
                        endpoint: Some(endpoint),
                        outcome: ShadowOutcome::Sent(outcome),
                    }
                }
            });
        }
        shadows
    }

    /// Publishes a routed exchange that was counted in flight.
    pub(super) fn publish(&self, exchange: crate::capture::Exchange) {
        self.hub.publish(exchange);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Prepares one shadow request: a copy of the finalised request. A mirror without an
    /// endpoint fails as Envoy's async client does for a cluster with no host.
    fn prepare_shadow(
        &self,
        policy: &MirrorPolicy,
        copy: &ShadowCopy<'_>,
        mut headers: HeaderMap,
        permit: OwnedSemaphorePermit,
        target: Arc<str>,
        timeout: ShadowTimeout,
    ) -> ShadowLeg {
        self.counters.mirrored();
        let Some(endpoint) = policy.upstream.next_endpoint().cloned() else {
            self.counters.shadow_error();
            return ShadowLeg::Done(ShadowRecord {
                target,
                endpoint: None,
                outcome: ShadowOutcome::Sent(UpstreamOutcome::Failed(UpstreamFailure {
                    kind: UpstreamErrorKind::NoEndpoint,
                    detail: format!(
                        "mirror {} has no endpoints: no healthy upstream",
                        policy.upstream.label
                    ),
                    elapsed: Duration::ZERO,
                    partial: None,
                })),
            });
        };
        self.settings.mirror_headers.apply(&mut headers);
        policy.headers.apply(&mut headers);
        if self.settings.shadow_host_suffix {
            shadow_host(&mut headers);
        }
        let upstream = self.upstream_target(&endpoint, &policy.upstream);
        upstream.ensure_host(&mut headers);
        ShadowLeg::Running {
            target,
            endpoint: Arc::clone(&upstream.text),
            call: ShadowCall {
                method: copy.method.clone(),
                uri: upstream.uri(copy.path_and_query),
                headers,
                body: ChunkBody::new(Arc::clone(&copy.chunks)).with_trailers(copy.trailers.clone()),
                pool: Arc::clone(upstream.pool()),
                timeout,
                cluster: (policy.upstream.policy.limits != Default::default())
                    .then(|| Arc::clone(&policy.upstream)),
                connect_timeout: policy.upstream.policy.connect_timeout,
                http2: policy.upstream.policy.protocol.speaks_http2(copy.version),
                permit,
            },
        }
    }

    /// Sends one prepared shadow copy; its slot is freed when it is done.
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its arguments twice in its future (see the body)"
    )]
    fn run_shadow(
        &self,
        call: ShadowCall,
    ) -> impl std::future::Future<Output = UpstreamOutcome> + Send + '_ {
        // Not an `async fn`, which would keep the call twice: this future lives in the
        // exchange task of every mirrored request. The call's fields are used in place.
        async move {
            let outcome = match call.uri {
                Ok(uri) => {
                    // Built in a block: the request is moved into the send, and a local
                    // borrowed to fill it would keep its room across the wait.
                    let request = {
                        let mut request = Request::new(UpstreamBody::Chunks(call.body));
                        *request.method_mut() = call.method;
                        *request.uri_mut() = uri;
                        *request.headers_mut() = call.headers;
                        request
                    };
                    let opts = SendOptions {
                        cluster: call.cluster.as_ref(),
                        http2: call.http2,
                        ..SendOptions::plain(call.connect_timeout, true)
                    };
                    self.shadow_exchange(&call.pool, request, call.timeout, &opts)
                        .await
                }
                Err(detail) => UpstreamOutcome::Failed(UpstreamFailure {
                    kind: UpstreamErrorKind::Other,
                    detail,
                    elapsed: Duration::ZERO,
                    partial: None,
                }),
            };
            drop(call.permit);
            outcome
        }
    }

    /// Sends a shadow copy and reads its whole answer, within the shadow's timeout.
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its arguments twice in its future (see the body)"
    )]
    fn shadow_exchange<'a>(
        &'a self,
        pool: &'a Arc<EndpointPool>,
        request: Request<UpstreamBody>,
        timeout: ShadowTimeout,
        opts: &'a SendOptions<'_>,
    ) -> impl std::future::Future<Output = UpstreamOutcome> + Send + 'a {
        // Not an `async fn`, which would keep the request twice.
        async move {
            let cap = self.settings.capture_body_cap;
            let sent_at = Instant::now();
            let mut head = None;
            let mut capture = BodyCapture::new(cap);
            let exchange = async {
                let (response, connection) = pool
                    .send(request, opts, sent_at)
                    .await
                    .map_err(|e| e.failure)?;
                let ttfb = sent_at.elapsed();
                let (parts, mut body) = response.into_parts();
                head = Some(ResponseHead {
                    status: parts.status,
                    headers: owned_headers(&parts.headers),
                    sent_at,
                    ttfb,
                    version: parts.version,
                    trailers: None,
                });
                while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
                    let frame = frame.map_err(|e| classify(&e))?;
                    if let Some(data) = frame.data_ref() {
                        capture.record(data);
                    } else if let (Some(trailers), Some(head)) =
                        (frame.trailers_ref(), head.as_mut())
                    {
                        head.trailers = Some(Box::new(owned_headers(trailers)));
                    }
                }
                connection.release();
                Ok::<(), (UpstreamErrorKind, String)>(())
            };
            let result = match tokio::time::timeout(timeout.limit, exchange).await {
                Ok(result) => result,
                Err(_) => Err((UpstreamErrorKind::Timeout, timeout.detail())),
            };
            match (result, head) {
                (Ok(()), Some(head)) => {
                    UpstreamOutcome::Response(head.into_response(capture.take()))
                }
                (Err((kind, detail)), Some(head)) => {
                    UpstreamOutcome::Failed(head.into_failure(kind, detail, capture.take()))
                }
                (Err((kind, detail)), None) => UpstreamOutcome::Failed(UpstreamFailure {
                    kind,
                    detail,
                    elapsed: sent_at.elapsed(),
                    partial: None,
                }),
                (Ok(()), None) => UpstreamOutcome::Failed(UpstreamFailure {
                    kind: UpstreamErrorKind::Other,
                    detail: "the shadow finished without a response head".to_owned(),
                    elapsed: sent_at.elapsed(),
                    partial: None,
                }),
            }
        }
    }
}

/// What every shadow of a request is copied from.
struct ShadowCopy<'a> {
    method: &'a http::Method,
    /// The protocol the client spoke.
    version: http::Version,
    /// Finalised, with the sidecar's own headers.
    headers: HeaderMap,
    path_and_query: &'a PathAndQuery,
    /// The body for the copies (complete and within the buffer limit, else none is sent).
    chunks: Arc<[Bytes]>,
    /// The request's trailers, which router.cc copies to each shadow too.
    trailers: Option<HeaderMap>,
}
