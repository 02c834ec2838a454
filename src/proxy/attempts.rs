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
use crate::routing::balancer::{AttemptResult, PickInput};
use crate::routing::retry::RetryPolicy;

use super::Shared;
use super::body::{CaptureBody, Deadline, ProxyBody, ResponseHead, UpstreamBody};
use super::error::ProxyError;
use super::forward::{PrimaryJob, PrimarySend, RequestTemplate, failure};
use super::hop::strip_hop_by_hop;
use super::join::{Deliver, PrimaryOutcome, Retried};
use super::pool::{Pooled, SendError, SendOptions};
use super::retry::{
    ReplayState, RetrySlot, outlier_result, rebuild, retry_on_answer, retry_on_failure,
    set_attempt_count,
};
use super::target::UpstreamTarget;

const X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");

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

/// Where the primary's attempts stand.
struct Attempts<'r> {
    policy: Option<&'r RetryPolicy>,
    upstream: &'r Arc<Upstream>,
    log: AttemptLog,
    /// The endpoint of the attempt under way: its index, its target, and how many ejected
    /// endpoints its pick passed over.
    index: usize,
    target: UpstreamTarget,
    skipped: usize,
    tried: Vec<usize>,
    retries: u32,
    slot: RetrySlot<'r>,
    template: Option<RequestTemplate>,
    replay: ReplayState,
    /// Every attempt goes out as HTTP/2 (the cluster's protocol, or the client's).
    http2: bool,
}

impl<'r> Attempts<'r> {
    /// The first attempt's state, on the endpoint the balancer picked.
    fn new(
        send: &PrimarySend<'r>,
        first: super::forward::FirstPick,
        template: Option<RequestTemplate>,
        replay: Option<oneshot::Receiver<super::body::Replay>>,
    ) -> Self {
        let upstream = &send.destination.upstream;
        Attempts {
            policy: send.forward.retry.as_ref(),
            upstream,
            log: AttemptLog {
                first_started: Instant::now(),
                attempts: Vec::new(),
                keep: first.skipped_ejected > 0,
                flags: ResponseFlags::NONE,
            },
            index: first.index,
            target: first.target,
            skipped: first.skipped_ejected,
            tried: Vec::new(),
            retries: 0,
            slot: RetrySlot::new(upstream),
            template,
            replay: ReplayState::from(replay),
            http2: send.http2,
        }
    }

    /// How the next attempt is sent: the destination's timeouts and breakers.
    fn send_options(&self) -> SendOptions<'r> {
        let upstream = self.upstream;
        let limited = upstream.policy.limits != Default::default();
        SendOptions {
            connect_timeout: upstream.policy.connect_timeout,
            per_try_timeout: self.policy.and_then(|p| p.per_try_timeout),
            shadow: false,
            cluster: limited.then_some(upstream),
            http2: self.http2,
        }
    }

    /// An attempt that got no answer: the client's error, whether outlier detection
    /// ejected the endpoint for it, and whether the policy retries it (a route timeout ends
    /// the request; a per-try timeout is a failure like any other).
    fn failed(
        &self,
        kind: UpstreamErrorKind,
        detail: String,
        unsent: bool,
        now: Instant,
    ) -> (ProxyError, bool, bool) {
        let upstream = self.upstream;
        let per_try = self.policy.is_some_and(|p| p.per_try_timeout.is_some())
            && kind == UpstreamErrorKind::Timeout
            && !detail.contains("route timeout");
        let route_timeout = kind == UpstreamErrorKind::Timeout && !per_try;
        let ejected = outlier_result(kind, per_try)
            .is_some_and(|r| upstream.state.report(self.index, r, now));
        let err = ProxyError::upstream(kind, upstream.label.as_str(), &*self.target.text, detail);
        let wants_retry = !route_timeout
            && self
                .policy
                .is_some_and(|p| retry_on_failure(p, kind, unsent));
        (err, ejected, wants_retry)
    }

    /// Logs the attempt that ended the request when the log is kept; an ejection is worth a
    /// record even of a single attempt.
    fn record_last(&mut self, outcome: AttemptOutcome, started: Instant, ejected: bool) {
        if self.log.keep || ejected {
            self.log.keep = true;
            self.log
                .push(&self.target, outcome, started, ejected, self.skipped);
        }
    }
}

impl Shared {
    /// Sends the request to the primary, retrying as the route's policy says, and answers
    /// the client. What it holds across its waits is kept small: this future is moved whole
    /// for every request.
    pub(super) async fn send_primary(self: Arc<Self>, job: PrimaryJob<'_>) -> Response<ProxyBody> {
        let PrimaryJob {
            mut request,
            mut send,
            first,
            primary_done,
            mut body_read_wait,
            mut body_ended,
            mirror_waits_for_body,
            template,
            replay,
        } = job;
        let destination = send.destination;
        let upstream = &destination.upstream;
        let mut clock = RouteClock {
            limit: send.forward.timeout,
            started: body_ended.then(Instant::now),
        };
        let mut a = Attempts::new(&send, first, template, replay);
        loop {
            let started = Instant::now();
            let _active = upstream.state.start(a.index);
            let opts = a.send_options();
            let pool = Arc::clone(a.target.pool());
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
                    let status = response.status();
                    let ejected =
                        upstream
                            .state
                            .report(a.index, AttemptResult::Status(status.as_u16()), now);
                    let outcome = AttemptOutcome::Status(status);
                    // An answer is retried only with the request kept to send again.
                    let wants_retry = send.replays()
                        && a.policy.is_some_and(|p| {
                            retry_on_answer(p, status.as_u16(), response.headers())
                        });
                    if wants_retry
                        && let Some(again) = self
                            .retry_request(&mut a, None, outcome, started, ejected)
                            .await
                    {
                        drop((response, pooled));
                        if let Err(err) = self.advance(&mut a, &mut send, &clock).await {
                            return self.fail(err, primary_done, &send, a.log, &a.target);
                        }
                        request = again;
                        continue;
                    }
                    a.record_last(outcome, started, ejected);
                    return self.answer(
                        response,
                        pooled,
                        &send,
                        primary_done,
                        a.log,
                        &a.target,
                        &clock,
                        started,
                    );
                }
                Err(SendError {
                    failure: (kind, detail),
                    mut unsent,
                }) => {
                    let (err, ejected, wants_retry) = a.failed(kind, detail, unsent.is_some(), now);
                    let outcome = AttemptOutcome::Failed(kind);
                    if wants_retry
                        && let Some(again) = self
                            .retry_request(&mut a, unsent.take(), outcome, started, ejected)
                            .await
                    {
                        if let Err(err) = self.advance(&mut a, &mut send, &clock).await {
                            return self.fail(err, primary_done, &send, a.log, &a.target);
                        }
                        request = again;
                        continue;
                    }
                    a.record_last(outcome, started, ejected);
                    let err = if a.retries > 0 { err.retried() } else { err };
                    // An unsent request still holds the client's body: dropped, the body is
                    // read to its end for the shadows.
                    drop(unsent);
                    if mirror_waits_for_body && !body_ended {
                        self.finish_reading_body(&mut body_read_wait).await;
                    }
                    return self.fail(err, primary_done, &send, a.log, &a.target);
                }
            }
        }
    }

    /// The primary never read the body; answering now would make hyper close the
    /// connection before the shadows' copy is read. A mirror does not depend on its
    /// primary, so the body is read to its end first (bounded by the shadow timeout).
    async fn finish_reading_body(&self, body_read: &mut oneshot::Receiver<()>) {
        let _ = tokio::time::timeout(self.settings.shadow_timeout, body_read).await;
    }

    /// `shouldRetry` for an attempt that would be retried, then the request to send again
    /// (the unsent one, or one rebuilt from the kept head and body); the attempt is logged.
    /// `None`: no retry (the count or a breaker said no, or the body was not all kept, when
    /// Envoy abandons the retry), so the client gets this attempt's answer.
    async fn retry_request(
        &self,
        a: &mut Attempts<'_>,
        unsent: Option<Request<UpstreamBody>>,
        outcome: AttemptOutcome,
        started: Instant,
        ejected: bool,
    ) -> Option<Request<UpstreamBody>> {
        let policy = a.policy?;
        if let Err(flag) = a.slot.take(policy, a.retries) {
            a.log.flags = a.log.flags.union(flag);
            return None;
        }
        let attempt = a.retries + 2;
        let again = match unsent {
            Some(mut request) => {
                set_attempt_count(&mut request, attempt);
                Some(request)
            }
            None => rebuild(a.template.as_ref(), &mut a.replay, attempt).await,
        };
        let Some(again) = again else {
            a.slot.release();
            return None;
        };
        self.counters.retry();
        a.log.keep = true;
        a.log.push(&a.target, outcome, started, ejected, a.skipped);
        a.retries += 1;
        a.tried.push(a.index);
        Some(again)
    }

    /// Moves to the retry's endpoint after the back-off; else what to answer with.
    async fn advance(
        &self,
        a: &mut Attempts<'_>,
        send: &mut PrimarySend<'_>,
        clock: &RouteClock,
    ) -> Result<(), ProxyError> {
        let Some(policy) = a.policy else {
            return Ok(()); // a retry was decided, so there is a policy
        };
        let (index, target, skipped) = self
            .next_attempt(policy, a.upstream, send, &a.tried, clock, a.retries)
            .await
            .map_err(ProxyError::retried)?;
        (a.index, a.target, a.skipped) = (index, target, skipped);
        Ok(())
    }

    /// Waits the back-off (within the route timeout) and picks the next attempt's endpoint,
    /// avoiding those tried when the policy says so.
    async fn next_attempt(
        &self,
        policy: &RetryPolicy,
        upstream: &Upstream,
        send: &mut PrimarySend<'_>,
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
                self.upstream_target(endpoint, upstream),
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
        primary_done: Deliver<PrimaryOutcome>,
        send: &PrimarySend<'_>,
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
        send: &PrimarySend<'_>,
        primary_done: Deliver<PrimaryOutcome>,
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
            trailers: None,
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
