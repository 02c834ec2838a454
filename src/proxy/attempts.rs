//! The primary's attempts, as Envoy's router makes them: the first on the endpoint the
//! balancer picked, then retries by the route's policy (`router.cc` `onUpstreamHeaders`,
//! `maybeRetryReset`; `retry_state_impl.cc` `wouldRetryFromHeaders`, `wouldRetryFromReset`),
//! each after a jittered back-off on another endpoint when there is one, all within the
//! route timeout; outlier detection told how each ended; the answer streamed to the client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::SET_COOKIE;
use http::{Request, Response};
use tokio::sync::oneshot;

use crate::capture::{Attempt, AttemptOutcome, ResponseFlags, UpstreamErrorKind, owned_headers};
use crate::routing::Upstream;
use crate::routing::balancer::{AttemptResult, PickInput};
use crate::routing::retry::RetryPolicy;

use super::Shared;
use super::body::{CaptureBody, Deadline, ProxyBody, ResponseHead, UpstreamBody};
use super::error::ProxyError;
use super::forward::{PrimaryJob, PrimarySend, RequestTemplate, failure, set_service_time};
use super::hop::strip_hop_by_hop;
use super::join::{Deliver, PrimaryOutcome, Retried};
use super::pool::{Pooled, SendError, SendOptions};
use super::retry::{
    ReplayState, RetrySlot, outlier_result, rebuild, retry_on_answer, retry_on_failure,
    set_attempt_count,
};
use super::target::UpstreamTarget;

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
            endpoint: Arc::clone(&target.text),
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
                endpoint: Arc::clone(&target.text),
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
        let err = ProxyError::upstream(kind, &*upstream.label, &*self.target.text, detail);
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
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its arguments twice in its future (see the body)"
    )]
    pub(super) fn send_primary(
        self: Arc<Self>,
        mut job: PrimaryJob<'_>,
    ) -> impl std::future::Future<Output = Response<ProxyBody>> + '_ {
        // Not an `async fn`: that moves its arguments into locals, so the job would take
        // its room in the future twice. The block uses the job's fields where they are.
        async move {
            let destination = job.send.destination;
            let upstream = &destination.upstream;
            let mut clock = RouteClock {
                limit: job.send.forward.timeout,
                started: job.body_ended.then(Instant::now),
            };
            let mut a = Attempts::new(&job.send, job.first, job.template, job.replay);
            loop {
                let started = Instant::now();
                let _active = upstream.state.start(a.index);
                let result = {
                    // Scoped: the send's future is this future's largest part, and its room
                    // is not kept across the retry's waits below.
                    let opts = a.send_options();
                    let pool = Arc::clone(a.target.pool());
                    let mut sent = std::pin::pin!(pool.send(job.request, &opts, started));
                    within_route_clock(
                        &mut clock,
                        &mut job.body_read_wait,
                        &mut job.body_ended,
                        sent.as_mut(),
                    )
                    .await
                };
                let now = Instant::now();
                // The retries' waits are boxed: a request that is not retried does not carry
                // their room in this future, which is moved whole for every request.
                let settled = match result {
                    Ok((response, pooled)) => {
                        let status = response.status();
                        let ejected = upstream.state.report(
                            a.index,
                            AttemptResult::Status(status.as_u16()),
                            now,
                        );
                        let outcome = AttemptOutcome::Status(status);
                        // An answer is retried only with the request kept to send again.
                        let wants_retry = job.send.replays()
                            && a.policy.is_some_and(|p| {
                                retry_on_answer(p, status.as_u16(), response.headers())
                            });
                        let ended = Ended {
                            outcome,
                            started,
                            ejected,
                        };
                        if !wants_retry {
                            a.record_last(outcome, started, ejected);
                            return self.answer(
                                response,
                                pooled,
                                &job.send,
                                job.primary_done,
                                a.log,
                                &a.target,
                                &clock,
                                started,
                            );
                        }
                        let answered = (response, pooled);
                        Box::pin(self.retry_answer(&mut a, &mut job.send, &clock, answered, ended))
                            .await
                    }
                    Err(SendError {
                        failure: (kind, detail),
                        unsent,
                    }) => {
                        let (err, ejected, wants_retry) =
                            a.failed(kind, detail, unsent.is_some(), now);
                        let failed = Failed {
                            err,
                            unsent,
                            wants_retry,
                            ended: Ended {
                                outcome: AttemptOutcome::Failed(kind),
                                started,
                                ejected,
                            },
                        };
                        // A shadow waits for the body the primary never read.
                        let body_read = (job.mirror_waits_for_body && !job.body_ended)
                            .then_some(&mut job.body_read_wait);
                        Box::pin(self.retry_failure(
                            &mut a,
                            &mut job.send,
                            &clock,
                            failed,
                            body_read,
                        ))
                        .await
                    }
                };
                match settled {
                    Settled::Again(again) => job.request = again,
                    Settled::Answer((response, pooled)) => {
                        return self.answer(
                            response,
                            pooled,
                            &job.send,
                            job.primary_done,
                            a.log,
                            &a.target,
                            &clock,
                            started,
                        );
                    }
                    Settled::Fail(err) => {
                        return self.fail(err, job.primary_done, &job.send, a.log, &a.target);
                    }
                }
            }
        }
    }

    /// An answer the policy retries: the request to send again, once the back-off is over
    /// and the next endpoint picked; else the answer stands (the count, a breaker or the
    /// kept body said no).
    async fn retry_answer(
        &self,
        a: &mut Attempts<'_>,
        send: &mut PrimarySend<'_>,
        clock: &RouteClock,
        answered: (Response<hyper::body::Incoming>, Pooled),
        ended: Ended,
    ) -> Settled {
        let Ended {
            outcome,
            started,
            ejected,
        } = ended;
        let Some(again) = self.retry_request(a, None, outcome, started, ejected).await else {
            a.record_last(outcome, started, ejected);
            return Settled::Answer(answered);
        };
        drop(answered);
        match self.advance(a, send, clock).await {
            Ok(()) => Settled::Again(again),
            Err(err) => Settled::Fail(err),
        }
    }

    /// An attempt that got no answer: the request to send again when the policy retries
    /// it, else the error to answer with (after the body is read for the shadows, when
    /// `body_read` says they wait for it).
    async fn retry_failure(
        &self,
        a: &mut Attempts<'_>,
        send: &mut PrimarySend<'_>,
        clock: &RouteClock,
        failed: Failed,
        body_read: Option<&mut oneshot::Receiver<()>>,
    ) -> Settled {
        let Failed {
            err,
            mut unsent,
            wants_retry,
            ended:
                Ended {
                    outcome,
                    started,
                    ejected,
                },
        } = failed;
        if wants_retry
            && let Some(again) = self
                .retry_request(a, unsent.take(), outcome, started, ejected)
                .await
        {
            return match self.advance(a, send, clock).await {
                Ok(()) => Settled::Again(again),
                Err(err) => Settled::Fail(err),
            };
        }
        a.record_last(outcome, started, ejected);
        let err = if a.retries > 0 { err.retried() } else { err };
        // An unsent request still holds the client's body: dropped, the body is read to its
        // end for the shadows.
        drop(unsent);
        if let Some(body_read) = body_read {
            self.finish_reading_body(body_read).await;
        }
        Settled::Fail(err)
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
        let label = &*upstream.label;
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
        set_service_time(&mut head.headers, ttfb);
        Response::from_parts(head, ProxyBody::upstream(capture))
    }
}

type Sent = Result<(Response<hyper::body::Incoming>, Pooled), SendError>;

/// How an attempt ended, for its log entry.
#[derive(Clone, Copy)]
struct Ended {
    outcome: AttemptOutcome,
    started: Instant,
    ejected: bool,
}

/// An attempt that got no answer, as the retry decision sees it.
struct Failed {
    err: ProxyError,
    /// The request, when it never went out (a connection that could not be made).
    unsent: Option<Request<UpstreamBody>>,
    wants_retry: bool,
    ended: Ended,
}

/// What follows an attempt the policy may retry.
enum Settled {
    /// Send this request to the next attempt's endpoint.
    Again(Request<UpstreamBody>),
    /// The attempt's answer stands.
    Answer((Response<hyper::body::Incoming>, Pooled)),
    /// Answer the client with this error.
    Fail(ProxyError),
}

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
