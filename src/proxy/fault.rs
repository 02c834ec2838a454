//! The fault filter stage (Envoy's `envoy.filters.http.fault`, which Istio runs first):
//! a delay holds the request, then an abort answers it before the router, so neither the
//! primary nor a mirror sees it.
//!
//! Envoy (`fault_filter.cc` `decodeHeaders`, `postDelayInjection`) draws the delay first
//! and, once it has passed, the abort: two independent draws.

use std::time::Duration;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::routing::action::{AbortWith, Fault};

use super::local::LocalReply;

/// Envoy's body for an aborted request.
const ABORT_BODY: &str = "fault filter abort";

/// What the fault filter did to one request.
#[derive(Debug, Default)]
pub(super) struct FaultOutcome {
    /// The delay it held the request for.
    pub delayed: Option<Duration>,
    /// The answer it gave instead of the router.
    pub aborted: Option<LocalReply>,
}

/// Draws the delay and the abort with `draw` (uniform in `0.0..1.0`) and waits out the
/// delay; `grpc` says whether the request is gRPC ([`is_grpc`]), for the abort's form.
pub(super) async fn run(fault: &Fault, grpc: bool, mut draw: impl FnMut() -> f64) -> FaultOutcome {
    let mut outcome = FaultOutcome::default();
    if let Some((delay, share)) = fault.delay
        && draw() < share
    {
        tokio::time::sleep(delay).await;
        outcome.delayed = Some(delay);
    }
    if let Some((with, share)) = fault.abort
        && draw() < share
    {
        outcome.aborted = Some(abort_reply(with, grpc));
    }
    outcome
}

/// A gRPC request, as Envoy's `Grpc::Common::isGrpcRequestHeaders` tells one.
pub(super) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// Envoy's abort reply (`abortWithStatus` through `sendLocalReply`): the status and
/// `fault filter abort` as text; for a gRPC request, a trailers-only 200 with `grpc-status`
/// (an HTTP status converted by `httpToGrpcStatus`) and the text as `grpc-message`. A
/// `grpcStatus` abort of a request that is not gRPC is a plain 200.
fn abort_reply(with: AbortWith, grpc: bool) -> LocalReply {
    let grpc_code = match with {
        AbortWith::Grpc(code) => Some(code),
        AbortWith::Http(status) if grpc => Some(http_to_grpc(status)),
        AbortWith::Http(_) => None,
    };
    match (grpc, grpc_code) {
        (true, Some(code)) => {
            let mut reply = LocalReply::new(StatusCode::OK, bytes::Bytes::new());
            reply
                .headers
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            reply.headers.insert("grpc-status", HeaderValue::from(code));
            reply
                .headers
                .insert("grpc-message", HeaderValue::from_static(ABORT_BODY));
            reply
        }
        (false, Some(_)) => LocalReply::new(StatusCode::OK, ABORT_BODY),
        (_, None) => match with {
            AbortWith::Http(status) => LocalReply::new(status, ABORT_BODY),
            AbortWith::Grpc(_) => LocalReply::new(StatusCode::OK, ABORT_BODY),
        },
    }
}

/// Envoy's `Grpc::Utility::httpToGrpcStatus`.
fn http_to_grpc(status: StatusCode) -> u32 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aborts_answer_as_envoys_fault_filter() {
        let http = abort_reply(AbortWith::Http(StatusCode::SERVICE_UNAVAILABLE), false);
        assert_eq!(http.status, 503);
        assert_eq!(&http.body[..], b"fault filter abort");
        assert_eq!(http.headers[CONTENT_TYPE], "text/plain");
        let grpc = abort_reply(AbortWith::Http(StatusCode::SERVICE_UNAVAILABLE), true);
        assert_eq!(grpc.status, 200);
        assert_eq!(grpc.headers["grpc-status"], "14");
        assert!(grpc.body.is_empty());
        let grpc_on_http = abort_reply(AbortWith::Grpc(14), false);
        assert_eq!(
            grpc_on_http.status, 200,
            "a grpcStatus abort of a plain request is a 200"
        );
    }

    #[tokio::test]
    async fn delay_then_abort_with_independent_draws() {
        let fault = Fault {
            delay: Some((Duration::from_millis(1), 0.5)),
            abort: Some((AbortWith::Http(StatusCode::BAD_REQUEST), 0.5)),
        };
        let mut draws = [0.9, 0.1].into_iter();
        let out = run(&fault, false, || draws.next().unwrap_or(1.0)).await;
        assert!(out.delayed.is_none());
        assert!(out.aborted.is_some());
        let mut draws = [0.1, 0.9].into_iter();
        let out = run(&fault, false, || draws.next().unwrap_or(1.0)).await;
        assert_eq!(out.delayed, Some(Duration::from_millis(1)));
        assert!(out.aborted.is_none());
    }
}
