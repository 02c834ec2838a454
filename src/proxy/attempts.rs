//! The primary's attempts, as Envoy's router makes them: the first on the endpoint the
//! balancer picked, then retries by the route's policy (`router.cc` `onUpstreamHeaders`,
//! `maybeRetryReset`; `retry_state_impl.cc` `wouldRetryFromHeaders`, `wouldRetryFromReset`),
//! each after a jittered back-off on another endpoint when there is one, all within the
//! route timeout; outlier detection told how each ended; the answer streamed to the client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::SET_COOKIE;
use http::{HeaderName, HeaderValue, Request, Response};
use tokio::sync::oneshot;

use crate::capture::{Attempt, AttemptOutcome, ResponseFlags, UpstreamErrorKind, owned_headers};
use crate::routing::Upstream;
use crate::routing::balancer::{AttemptResult, Breakers, PickInput};
use crate::routing::policy::{RetryOn, RetryPolicy};

use super::Shared;
use super::body::{CaptureBody, ChunkBody, Deadline, ProxyBody, ResponseHead, UpstreamBody};
use super::error::ProxyError;
use super::forward::{PrimaryJob, failure};
use super::hop::strip_hop_by_hop;
use super::join::{PrimaryOutcome, Retried};
use super::pool::{Pooled, SendError, SendOptions};
use super::target::UpstreamTarget;

const X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");
const X_ENVOY_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-envoy-attempt-count");
const X_ENVOY_RATELIMITED: HeaderName = HeaderName::from_static("x-envoy-ratelimited");

/// Whether `policy` can retry a request that went out (on an answer or a reset), so the
/// request must be kept to send again; a policy that retries only connections that could
/// not be made sends the unsent request as it is.
pub(super) fn retries_after_sending(policy: &RetryPolicy) -> bool {
    let after = [
        RetryOn::FIVE_XX,
        RetryOn::GATEWAY_ERROR,
        RetryOn::RESET,
        RetryOn::RETRIABLE_4XX,
        RetryOn::REFUSED_STREAM,
        RetryOn::ENVOY_RATELIMITED,
        RetryOn::GRPC_CANCELLED,
        RetryOn::GRPC_DEADLINE_EXCEEDED,
        RetryOn::GRPC_INTERNAL,
        RetryOn::GRPC_RESOURCE_EXHAUSTED,
        RetryOn::GRPC_UNAVAILABLE,
    ];
    policy.num_retries > 0
        && (after.iter().any(|c| policy.on.contains(*c))
            || (policy.on.contains(RetryOn::RETRIABLE_STATUS_CODES)
                && !policy.status_codes.is_empty()))
}

/// `wouldRetryFromHeaders`: whether an answer with `status` (and these headers) is retried.
fn retry_on_answer(policy: &RetryPolicy, status: u16, headers: &http::HeaderMap) -> bool {
    let on = policy.on;
    if headers.contains_key(X_ENVOY_RATELIMITED) {
        return on.contains(RetryOn::ENVOY_RATELIMITED);
    }
    if on.contains(RetryOn::FIVE_XX) && (500..600).contains(&status) {
        return true;
    }
    if on.contains(RetryOn::GATEWAY_ERROR) && matches!(status, 502..=504) {
        return true;
    }
    if on.contains(RetryOn::RETRIABLE_4XX) && status == 409 {
        return true;
    }
    if on.contains(RetryOn::RETRIABLE_STATUS_CODES) && policy.status_codes.contains(&status) {
        return true;
    }
    // gRPC: only a grpc-status in the response head (a trailers-only answer).
    let grpc = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok());
    match grpc {
        Some(1) => on.contains(RetryOn::GRPC_CANCELLED),
        Some(4) => on.contains(RetryOn::GRPC_DEADLINE_EXCEEDED),
        Some(8) => on.contains(RetryOn::GRPC_RESOURCE_EXHAUSTED),
        Some(13) => on.contains(RetryOn::GRPC_INTERNAL),
        Some(14) => on.contains(RetryOn::GRPC_UNAVAILABLE),
        _ => false,
    }
}

/// `wouldRetryFromReset`: whether a failure before the response head is retried. A route
/// timeout never is; a circuit breaker's overflow never is; `unsent`: no byte went out.
fn retry_on_failure(policy: &RetryPolicy, kind: UpstreamErrorKind, unsent: bool) -> bool {
    let on = policy.on;
    match kind {
        UpstreamErrorKind::Overflow | UpstreamErrorKind::NoEndpoint => false,
        UpstreamErrorKind::Refused | UpstreamErrorKind::ConnectTimeout | UpstreamErrorKind::Dns
            if on.contains(RetryOn::CONNECT_FAILURE) =>
        {
            true
        }
        _ => {
            on.contains(RetryOn::RESET)
                || on.contains(RetryOn::FIVE_XX)
                || on.contains(RetryOn::GATEWAY_ERROR)
                || (unsent && on.contains(RetryOn::RESET_BEFORE_REQUEST))
        }
    }
}

/// What outlier detection is told of a failure before the response head.
fn outlier_result(kind: UpstreamErrorKind, per_try: bool) -> Option<AttemptResult> {
    match kind {
        // An overflow is not the endpoint's fault (Envoy skips it).
        UpstreamErrorKind::Overflow | UpstreamErrorKind::NoEndpoint => None,
        UpstreamErrorKind::Timeout if per_try => Some(AttemptResult::Timeout),
        UpstreamErrorKind::Timeout => Some(AttemptResult::Timeout),
        _ => Some(AttemptResult::ConnectFailed),
    }
}

/// The attempts so far: what the exchange records when there were retries.
struct AttemptLog {
    first_started: Instant,
    attempts: Vec<Attempt>,
    /// A pick passed over an ejected endpoint, or there was a retry: keep the log.
    keep: bool,
    flags: ResponseFlags,
}

impl AttemptLog {
    fn push(
        &mut self,
        target: &UpstreamTarget,
        outcome: AttemptOutcome,
        started: Instant,
        ejected: bool,
        skipped: usize,
    ) {
        self.attempts.push(Attempt {
            endpoint: String::from(&*target.text),
            outcome,
            started: started.saturating_duration_since(self.first_started),
            took: started.elapsed(),
            ejected,
            skipped_ejected: skipped,
        });
    }

    /// What retries changed, for the record; `None` for a plain single attempt.
    fn retried(self, target: &UpstreamTarget) -> Option<Box<Retried>> {
        (self.keep || !self.flags.is_empty()).then(|| {
            Box::new(Retried {
                endpoint: String::from(&*target.text),
                attempts: self.attempts,
                flags: self.flags,
            })
        })
    }
}

/// Where the route timeout stands: it starts once the client's request is complete.
struct RouteClock {
    limit: Option<Duration>,
    started: Option<Instant>,
}

impl RouteClock {
    fn deadline(&self) -> Option<tokio::time::Instant> {
        Some(tokio::time::Instant::from_std(self.started? + self.limit?))
    }
}

impl Shared {
    /// Sends the request to the primary, retrying as the route's policy says, and answers
    /// the client. What it holds across its waits is kept small: this future is moved whole
    /// for every request.
    pub(super) async fn send_primary(self: Arc<Self>, job: PrimaryJob<'_>) -> Response<ProxyBody> {
        let PrimaryJob {
            request,
            mut send,
            first,
            primary_done,
            mut body_read_wait,
            mut body_ended,
            mirror_waits_for_body,
            template,
            replay,
        } = job;
        let mut replay = ReplayState::from(replay);
        let upstream: &Arc<Upstream> = &send.destination.upstream;
        let policy = send.forward.retry.as_ref();
        let mut clock = RouteClock {
            limit: send.forward.timeout,
            started: body_ended.then(Instant::now),
        };
        let mut log = AttemptLog {
            first_started: Instant::now(),
            attempts: Vec::new(),
            keep: first.skipped_ejected > 0,
            flags: ResponseFlags::NONE,
        };
        let mut next = Some(request);
        let mut target = first.target;
        let mut index = first.index;
        let mut skipped = first.skipped_ejected;
        let mut tried: Vec<usize> = Vec::new();
        let mut retries = 0u32;
        let limited = upstream.policy.limits != Default::default();
        loop {
            let Some(request) = next.take() else {
                // A retry needed the body again and it was not all kept (above the buffer
                // limit): Envoy abandons the retry and answers as the attempt ended.
                break;
            };
            let started = Instant::now();
            let _active = upstream.state.start(index);
            let opts = SendOptions {
                connect_timeout: upstream.policy.connect_timeout,
                per_try_timeout: policy.and_then(|p| p.per_try_timeout),
                shadow: false,
                cluster: limited.then_some(upstream),
            };
            let pool = Arc::clone(target.pool());
            let mut sent = std::pin::pin!(pool.send(request, &opts, started));
            let result = within_route_clock(
                &mut clock,
                &mut body_read_wait,
                &mut body_ended,
                sent.as_mut(),
            )
            .await;
            let now = Instant::now();
            match result {
                Ok((response, pooled)) => {
                    let status = response.status().as_u16();
                    let ejected = upstream
                        .state
                        .report(index, AttemptResult::Status(status), now);
                    let wants_retry =
                        policy.is_some_and(|p| retry_on_answer(p, status, response.headers()));
                    if wants_retry && let Some(p) = policy {
                        match self.retry_slot(p, upstream, retries) {
                            Ok(()) => {
                                let again =
                                    rebuild(template.as_ref(), &mut replay, retries + 2).await;
                                if let Some(again) = again {
                                    log.keep = true;
                                    log.push(
                                        &target,
                                        AttemptOutcome::Status(response.status()),
                                        started,
                                        ejected,
                                        skipped,
                                    );
                                    drop((response, pooled));
                                    next = Some(again);
                                    retries += 1;
                                    tried.push(index);
                                    match self
                                        .next_attempt(
                                            p, upstream, &mut send, &tried, &clock, retries,
                                        )
                                        .await
                                    {
                                        Ok(n) => {
                                            (index, target, skipped) = n;
                                            continue;
                                        }
                                        Err(err) => {
                                            Breakers::give_back(&upstream.state.breakers.retries);
                                            return self.fail(
                                                err.retried(),
                                                primary_done,
                                                &send,
                                                log,
                                                &target,
                                            );
                                        }
                                    }
                                }
                                // The body could not be kept: Envoy abandons the retry.
                                Breakers::give_back(&upstream.state.breakers.retries);
                            }
                            Err(flag) => log.flags = log.flags.union(flag),
                        }
                    }
                    if retries > 0 {
                        Breakers::give_back(&upstream.state.breakers.retries);
                    }
                    // An ejection is worth a record even of a single attempt.
                    if log.keep || ejected {
                        log.keep = true;
                        log.push(
                            &target,
                            AttemptOutcome::Status(response.status()),
                            started,
                            ejected,
                            skipped,
                        );
                    }
                    return self.answer(
                        response,
                        pooled,
                        &send,
                        primary_done,
                        log,
                        &target,
                        &clock,
                        started,
                    );
                }
                Err(SendError {
                    failure: (kind, detail),
                    mut unsent,
                }) => {
                    let per_try = policy.is_some_and(|p| p.per_try_timeout.is_some())
                        && kind == UpstreamErrorKind::Timeout
                        && !detail.contains("route timeout");
                    let route_timeout = kind == UpstreamErrorKind::Timeout && !per_try;
                    let ejected = outlier_result(kind, per_try)
                        .is_some_and(|r| upstream.state.report(index, r, now));
                    let label = send.destination.upstream.label.as_str();
                    let err = ProxyError::upstream(kind, label, &*target.text, detail);
                    if !route_timeout
                        && let Some(p) = policy
                        && retry_on_failure(p, kind, unsent.is_some())
                    {
                        match self.retry_slot(p, upstream, retries) {
                            Ok(()) => {
                                let again = match unsent.take() {
                                    Some(mut request) => {
                                        set_attempt_count(&mut request, retries + 2);
                                        Some(request)
                                    }
                                    None => {
                                        rebuild(template.as_ref(), &mut replay, retries + 2).await
                                    }
                                };
                                if let Some(again) = again {
                                    log.keep = true;
                                    log.push(
                                        &target,
                                        AttemptOutcome::Failed(kind),
                                        started,
                                        ejected,
                                        skipped,
                                    );
                                    next = Some(again);
                                    retries += 1;
                                    tried.push(index);
                                    match self
                                        .next_attempt(
                                            p, upstream, &mut send, &tried, &clock, retries,
                                        )
                                        .await
                                    {
                                        Ok(n) => {
                                            (index, target, skipped) = n;
                                            continue;
                                        }
                                        Err(err) => {
                                            Breakers::give_back(&upstream.state.breakers.retries);
                                            return self.fail(
                                                err.retried(),
                                                primary_done,
                                                &send,
                                                log,
                                                &target,
                                            );
                                        }
                                    }
                                }
                                Breakers::give_back(&upstream.state.breakers.retries);
                            }
                            Err(flag) => log.flags = log.flags.union(flag),
                        }
                    }
                    if retries > 0 {
                        Breakers::give_back(&upstream.state.breakers.retries);
                    }
                    // An ejection is worth a record even of a single attempt.
                    if log.keep || ejected {
                        log.keep = true;
                        log.push(
                            &target,
                            AttemptOutcome::Failed(kind),
                            started,
                            ejected,
                            skipped,
                        );
                    }
                    let err = if retries > 0 { err.retried() } else { err };
                    // An unsent request still holds the client's body: dropped, the body is
                    // read to its end for the shadows.
                    drop(unsent);
                    if mirror_waits_for_body && !body_ended {
                        // The primary never read the body; answering now would make hyper
                        // close the connection before the shadows' copy is read. A mirror
                        // does not depend on its primary, so finish reading first (bounded).
                        let _ =
                            tokio::time::timeout(self.settings.shadow_timeout, &mut body_read_wait)
                                .await;
                    }
                    return self.fail(err, primary_done, &send, log, &target);
                }
            }
        }
        let err = ProxyError::upstream(
            UpstreamErrorKind::Other,
            send.destination.upstream.label.as_str(),
            &*target.text,
            "the retry needed the whole request body again, and it was above the buffer limit",
        );
        self.fail(err, primary_done, &send, log, &target)
    }

    /// Whether another retry may go (`RetryStateImpl::shouldRetry`): the policy's count,
    /// then the destination's `maxRetries` breaker, whose slot is held until the next
    /// decision; else the flag that says why not (URX, UO).
    fn retry_slot(
        &self,
        policy: &RetryPolicy,
        upstream: &Upstream,
        retries: u32,
    ) -> Result<(), ResponseFlags> {
        if retries >= policy.num_retries {
            return Err(ResponseFlags::URX);
        }
        let breakers = &upstream.state.breakers;
        if retries > 0 {
            Breakers::give_back(&breakers.retries);
        }
        if !Breakers::try_take(&breakers.retries, upstream.policy.limits.max_retries) {
            return Err(ResponseFlags::UO);
        }
        self.counters.retry();
        Ok(())
    }

    /// Waits the back-off (within the route timeout) and picks the next attempt's endpoint,
    /// avoiding those tried when the policy says so.
    async fn next_attempt(
        &self,
        policy: &RetryPolicy,
        upstream: &Upstream,
        send: &mut super::forward::PrimarySend<'_>,
        tried: &[usize],
        clock: &RouteClock,
        retry: u32,
    ) -> Result<(usize, UpstreamTarget, usize), ProxyError> {
        let bound = u64::try_from(policy.backoff_bound(retry).as_millis()).unwrap_or(u64::MAX);
        let wait = Duration::from_millis(send.rng.u64(..bound.max(1)));
        let label = upstream.label.as_str();
        if let Some(deadline) = clock.deadline()
            && tokio::time::Instant::now() + wait >= deadline
        {
            tokio::time::sleep_until(deadline).await;
            return Err(ProxyError::upstream(
                UpstreamErrorKind::Timeout,
                label,
                "",
                "the route timeout passed while waiting to retry",
            ));
        }
        tokio::time::sleep(wait).await;
        let avoid = if policy.previous_hosts { tried } else { &[] };
        let picked = upstream.pick(PickInput {
            hash: send.hash,
            avoid,
            attempts: policy.host_selection_attempts + 1,
            rng: &mut send.rng,
            now: Instant::now(),
        });
        match picked {
            Ok((pick, endpoint)) => Ok((
                pick.index,
                self.upstream_target(endpoint),
                pick.ejected_skipped,
            )),
            Err(_) => Err(ProxyError::upstream(
                UpstreamErrorKind::NoEndpoint,
                label,
                "",
                "no healthy endpoint left to retry on",
            )),
        }
    }

    /// Envoy's answer for a primary that failed, delivered to the exchange.
    fn fail(
        &self,
        err: ProxyError,
        primary_done: super::join::Deliver<PrimaryOutcome>,
        send: &super::forward::PrimarySend<'_>,
        log: AttemptLog,
        target: &UpstreamTarget,
    ) -> Response<ProxyBody> {
        self.counters.primary_error();
        primary_done.send(PrimaryOutcome {
            outcome: failure(&err, log.first_started.elapsed()),
            retried: log.retried(target),
        });
        self.error_response(&err, &send.edits)
    }

    /// The primary's answer, streamed to the client through the capture.
    #[allow(
        clippy::too_many_arguments,
        reason = "the parts of one answer, taken apart once"
    )]
    fn answer(
        &self,
        response: Response<hyper::body::Incoming>,
        connection: Pooled,
        send: &super::forward::PrimarySend<'_>,
        primary_done: super::join::Deliver<PrimaryOutcome>,
        log: AttemptLog,
        target: &UpstreamTarget,
        clock: &RouteClock,
        sent_at: Instant,
    ) -> Response<ProxyBody> {
        let ttfb = sent_at.elapsed();
        let (mut head, body) = response.into_parts();
        strip_hop_by_hop(&mut head.headers);
        let deadline = clock.limit.map(|limit| {
            // The timer starts when the client's request is complete; an answer that came
            // before the end of the upload starts it now.
            Deadline::new(clock.started.unwrap_or_else(Instant::now), limit)
        });
        let response_head = ResponseHead {
            status: head.status,
            headers: owned_headers(&head.headers),
            sent_at,
            ttfb,
            version: head.version,
        };
        let cap = self.settings.capture_body_cap;
        let capture =
            CaptureBody::new(body, response_head, cap, primary_done, connection, deadline)
                .with_retried(log.retried(target));
        send.edits.apply(&mut head.headers);
        if let Some(cookie) = &send.edits.set_cookie {
            head.headers.append(SET_COOKIE, cookie.clone());
        }
        head.headers.insert(
            X_ENVOY_UPSTREAM_SERVICE_TIME,
            HeaderValue::from(u64::try_from(ttfb.as_millis()).unwrap_or(u64::MAX)),
        );
        Response::from_parts(head, ProxyBody::upstream(capture))
    }
}

/// The whole body for a retry: still to come from the client, or kept.
enum ReplayState {
    /// The request had no body.
    NoBody,
    /// Delivered once the client's body has ended.
    Pending(oneshot::Receiver<super::body::Replay>),
    /// The kept chunks.
    Ready(Arc<[bytes::Bytes]>),
    /// Not all kept: no retry can send it again.
    Lost,
}

impl From<Option<oneshot::Receiver<super::body::Replay>>> for ReplayState {
    fn from(rx: Option<oneshot::Receiver<super::body::Replay>>) -> Self {
        match rx {
            Some(rx) => ReplayState::Pending(rx),
            None => ReplayState::NoBody,
        }
    }
}

/// The next attempt's request from the kept head and the whole body (waited for), with
/// its attempt count; `None` when the body was not all kept.
async fn rebuild(
    template: Option<&super::forward::RequestTemplate>,
    replay: &mut ReplayState,
    attempt: u32,
) -> Option<Request<UpstreamBody>> {
    let template = template?;
    if let ReplayState::Pending(rx) = replay {
        *replay = match rx.await.ok().flatten() {
            Some(chunks) => ReplayState::Ready(chunks),
            None => ReplayState::Lost,
        };
    }
    let body = match replay {
        ReplayState::NoBody => UpstreamBody::Empty,
        ReplayState::Ready(chunks) => UpstreamBody::Chunks(ChunkBody::new(Arc::clone(chunks))),
        ReplayState::Pending(_) | ReplayState::Lost => return None,
    };
    let mut request = Request::new(body);
    *request.method_mut() = template.method.clone();
    *request.uri_mut() = template.uri.clone();
    *request.headers_mut() = template.headers.clone();
    set_attempt_count(&mut request, attempt);
    Some(request)
}

fn set_attempt_count(request: &mut Request<UpstreamBody>, attempt: u32) {
    request
        .headers_mut()
        .insert(X_ENVOY_ATTEMPT_COUNT, HeaderValue::from(attempt));
}

type Sent = Result<(Response<hyper::body::Incoming>, Pooled), SendError>;

/// Waits for an attempt's response head within the route timeout, which starts once the
/// client's request is complete (Envoy arms its timer in `onRequestComplete`), so a slow
/// upload is not a timeout; the clock keeps when it started, for the next attempts.
async fn within_route_clock(
    clock: &mut RouteClock,
    body_read: &mut oneshot::Receiver<()>,
    body_ended: &mut bool,
    mut sent: std::pin::Pin<&mut impl std::future::Future<Output = Sent>>,
) -> Sent {
    let Some(limit) = clock.limit else {
        return sent.await;
    };
    if clock.started.is_none() {
        if *body_ended {
            clock.started = Some(Instant::now());
        } else {
            tokio::select! {
                result = sent.as_mut() => return result,
                _ = &mut *body_read => {
                    *body_ended = true;
                    clock.started = Some(Instant::now());
                }
            }
        }
    }
    let Some(deadline) = clock.deadline() else {
        return sent.await;
    };
    match tokio::time::timeout_at(deadline, sent).await {
        Ok(result) => result,
        Err(_) => Err(SendError::from((
            UpstreamErrorKind::Timeout,
            format!("no response within the route timeout of {limit:?}"),
        ))),
    }
}
