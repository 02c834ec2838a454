//! Whether and how the primary is tried again, as Envoy's retry state decides it
//! (`retry_state_impl.cc` `wouldRetryFromHeaders`, `wouldRetryFromReset`, `shouldRetry`):
//! the route's conditions, the destination's `maxRetries` breaker, and the request built
//! again from its kept head and body.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Request};
use tokio::sync::oneshot;

use crate::capture::{ResponseFlags, UpstreamErrorKind};
use crate::routing::Upstream;
use crate::routing::balancer::{AttemptResult, Breakers};
use crate::routing::retry::{RetryOn, RetryPolicy};

use super::body::{ChunkBody, UpstreamBody};
use super::forward::RequestTemplate;

const X_ENVOY_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-envoy-attempt-count");
const X_ENVOY_RATELIMITED: HeaderName = HeaderName::from_static("x-envoy-ratelimited");

/// Whether `policy` can retry this request after it went out (on an answer or a reset), so
/// the request must be kept to send again; a policy that retries only connections that
/// could not be made sends the unsent request as it is. Conditions that cannot fire for this
/// request cost it nothing: `refused-stream` is an HTTP/2 stream refusal, which only a
/// request sent as HTTP/2 (`http2`) can get; the gRPC conditions read `grpc-status` in a
/// trailers-only answer, which only a gRPC request (`grpc()`, asked only when it matters)
/// gets. Istio's default policy names both, so without this every request would keep a
/// copy of its head and body for a retry that cannot come.
pub(super) fn retries_after_sending(
    policy: &RetryPolicy,
    http2: bool,
    grpc: impl FnOnce() -> bool,
) -> bool {
    let http = [
        RetryOn::FIVE_XX,
        RetryOn::GATEWAY_ERROR,
        RetryOn::RESET,
        RetryOn::RETRIABLE_4XX,
        RetryOn::ENVOY_RATELIMITED,
    ];
    let grpc_only = [
        RetryOn::GRPC_CANCELLED,
        RetryOn::GRPC_DEADLINE_EXCEEDED,
        RetryOn::GRPC_INTERNAL,
        RetryOn::GRPC_RESOURCE_EXHAUSTED,
        RetryOn::GRPC_UNAVAILABLE,
    ];
    policy.num_retries > 0
        && (http.iter().any(|c| policy.on.contains(*c))
            || (http2 && policy.on.contains(RetryOn::REFUSED_STREAM))
            || (grpc_only.iter().any(|c| policy.on.contains(*c)) && grpc())
            || (policy.on.contains(RetryOn::RETRIABLE_STATUS_CODES)
                && !policy.status_codes.is_empty()))
}

/// `wouldRetryFromHeaders`: whether an answer with `status` (and these headers) is retried.
pub(super) fn retry_on_answer(
    policy: &RetryPolicy,
    status: u16,
    headers: &http::HeaderMap,
) -> bool {
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
pub(super) fn retry_on_failure(
    policy: &RetryPolicy,
    kind: UpstreamErrorKind,
    unsent: bool,
) -> bool {
    let on = policy.on;
    match kind {
        UpstreamErrorKind::Overflow | UpstreamErrorKind::NoEndpoint => false,
        UpstreamErrorKind::Refused
        | UpstreamErrorKind::ConnectTimeout
        | UpstreamErrorKind::Dns
        | UpstreamErrorKind::Tls
            if on.contains(RetryOn::CONNECT_FAILURE) =>
        {
            true
        }
        // `wouldRetryFromReset`: refused-stream retries a RemoteRefusedStreamReset only.
        UpstreamErrorKind::RefusedStream if on.contains(RetryOn::REFUSED_STREAM) => true,
        _ => {
            on.contains(RetryOn::RESET)
                || on.contains(RetryOn::FIVE_XX)
                || on.contains(RetryOn::GATEWAY_ERROR)
                || (unsent && on.contains(RetryOn::RESET_BEFORE_REQUEST))
        }
    }
}

/// What outlier detection is told of a failure before the response head.
pub(super) fn outlier_result(kind: UpstreamErrorKind, per_try: bool) -> Option<AttemptResult> {
    match kind {
        // An overflow is not the endpoint's fault (Envoy skips it).
        UpstreamErrorKind::Overflow | UpstreamErrorKind::NoEndpoint => None,
        UpstreamErrorKind::Timeout if per_try => Some(AttemptResult::Timeout),
        UpstreamErrorKind::Timeout => Some(AttemptResult::Timeout),
        _ => Some(AttemptResult::ConnectFailed),
    }
}

/// The destination's `maxRetries` breaker slot a request holds: taken when a retry is
/// decided, given back at the next decision (`shouldRetry` calls `resetRetry` first) and when
/// the request is done, however it ends.
pub(super) struct RetrySlot<'a> {
    upstream: &'a Upstream,
    held: bool,
}

impl<'a> RetrySlot<'a> {
    pub(super) fn new(upstream: &'a Upstream) -> Self {
        Self {
            upstream,
            held: false,
        }
    }

    /// `shouldRetry` for an attempt that would be retried: the held slot is given back, then
    /// the policy's count (URX) and the breaker (UO) are asked; `retries` made so far.
    pub(super) fn take(&mut self, policy: &RetryPolicy, retries: u32) -> Result<(), ResponseFlags> {
        self.release();
        if retries >= policy.num_retries {
            return Err(ResponseFlags::URX);
        }
        let breaker = &self.upstream.state.breakers.retries;
        if !Breakers::try_take(breaker, self.upstream.policy.limits.max_retries) {
            return Err(ResponseFlags::UO);
        }
        self.held = true;
        Ok(())
    }

    /// Gives the slot back, if one is held.
    pub(super) fn release(&mut self) {
        if std::mem::take(&mut self.held) {
            Breakers::give_back(&self.upstream.state.breakers.retries);
        }
    }
}

impl Drop for RetrySlot<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// The whole body for a retry: still to come from the client, or kept.
pub(super) enum ReplayState {
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
pub(super) async fn rebuild(
    template: Option<&RequestTemplate>,
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

pub(super) fn set_attempt_count(request: &mut Request<UpstreamBody>, attempt: u32) {
    request
        .headers_mut()
        .insert(X_ENVOY_ATTEMPT_COUNT, HeaderValue::from(attempt));
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::routing::policy::ClusterPolicy;

    #[test]
    fn a_retry_slot_is_given_back_once_whatever_the_decisions() {
        // retry_state_impl.cc: resetRetry gives the held slot back before each decision;
        // an overflow after that must not give back another request's slot.
        let mut policy = ClusterPolicy::default();
        policy.limits.max_retries = 1;
        let upstream = Upstream::with_policy(
            "reviews".into(),
            None,
            None,
            "reviews".into(),
            Vec::new(),
            policy,
        );
        let retry = RetryPolicy::istio_default(false);
        let count = || upstream.state.breakers.retries.load(Ordering::SeqCst);
        let mut first = RetrySlot::new(&upstream);
        let mut second = RetrySlot::new(&upstream);
        assert_eq!(first.take(&retry, 0), Ok(()));
        assert_eq!(second.take(&retry, 0), Err(ResponseFlags::UO));
        assert_eq!(second.take(&retry, 1), Err(ResponseFlags::UO));
        drop(second);
        assert_eq!(count(), 1, "the first request still holds its slot");
        assert_eq!(
            first.take(&retry, 1),
            Ok(()),
            "its own slot, given back and taken"
        );
        assert_eq!(first.take(&retry, 2), Err(ResponseFlags::URX));
        assert_eq!(count(), 0, "a decision gives the held slot back");
        assert_eq!(first.take(&retry, 0), Ok(()));
        drop(first);
        assert_eq!(count(), 0);
    }
}
