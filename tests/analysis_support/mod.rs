//! Builders of `Exchange` values for the analysis and export tests: analysis is pure, so
//! these tests feed it exchanges directly.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use mirrorlab::capture::{
    CapturedBody, CapturedRequest, CapturedResponse, Exchange, PrimaryRecord, ShadowOutcome,
    ShadowRecord, SkipReason, UpstreamErrorKind, UpstreamFailure, UpstreamOutcome,
};
use mirrorlab::routing::RouteTrace;

/// A fixed start time: 2026-01-01T00:00:00Z.
pub const T0: u64 = 1_767_225_600;

pub fn at(second: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(second)
}

pub fn body(bytes: impl Into<Bytes>) -> CapturedBody {
    let bytes = bytes.into();
    CapturedBody {
        total_len: bytes.len() as u64,
        bytes,
        truncated: false,
    }
}

pub fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            h.append(k, v);
        }
    }
    h
}

pub fn response(status: u16, body_bytes: impl Into<Bytes>, ms: u64) -> CapturedResponse {
    response_with(
        status,
        &[("content-type", "application/json")],
        body(body_bytes),
        ms,
    )
}

pub fn response_with(
    status: u16,
    hdrs: &[(&str, &str)],
    body: CapturedBody,
    ms: u64,
) -> CapturedResponse {
    CapturedResponse {
        trailers: None,
        status: http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK),
        headers: headers(hdrs),
        body,
        ttfb: Duration::from_millis(ms / 2),
        total: Duration::from_millis(ms),
        version: http::Version::HTTP_11,
    }
}

pub fn failure(kind: UpstreamErrorKind, ms: u64) -> UpstreamOutcome {
    UpstreamOutcome::Failed(UpstreamFailure {
        kind,
        detail: format!("{} from test", kind.as_str()),
        elapsed: Duration::from_millis(ms),
        partial: None,
    })
}

pub fn trace(vs: &str, index: usize) -> RouteTrace {
    RouteTrace {
        virtual_service: vs.into(),
        route_index: index,
        route_name: None,
        match_index: None,
        match_summary: "".into(),
        ..Default::default()
    }
}

pub fn sent(target: &str, r: CapturedResponse) -> ShadowRecord {
    ShadowRecord {
        target: Arc::from(target),
        endpoint: Some("127.0.0.1:9".into()),
        outcome: ShadowOutcome::Sent(UpstreamOutcome::Response(r)),
    }
}

pub fn sent_failed(target: &str, kind: UpstreamErrorKind) -> ShadowRecord {
    ShadowRecord {
        target: Arc::from(target),
        endpoint: Some("127.0.0.1:9".into()),
        outcome: ShadowOutcome::Sent(failure(kind, 1000)),
    }
}

pub fn skipped(target: &str, reason: SkipReason) -> ShadowRecord {
    ShadowRecord {
        target: Arc::from(target),
        endpoint: None,
        outcome: ShadowOutcome::Skipped(reason),
    }
}

/// An exchange on route `default/reviews` http[0] with primary `reviews/v1`.
pub fn exchange(
    id: u64,
    second: u64,
    uri: &str,
    primary: UpstreamOutcome,
    shadows: Vec<ShadowRecord>,
) -> Exchange {
    Exchange {
        tunnel: None,
        id,
        request_id: format!("req-{id}"),
        started_at: at(second),
        trace: Some(trace("default/reviews", 0)),
        request: CapturedRequest {
            method: http::Method::GET,
            uri: uri.to_owned(),
            authority: "reviews".to_owned(),
            version: http::Version::HTTP_11,
            headers: headers(&[
                ("accept", "application/json"),
                ("authorization", "Bearer secret-token"),
                ("cookie", "session=abc123; theme=dark"),
                ("x-request-id", &format!("req-{id}")),
            ]),
            body: body(Bytes::new()),
        },
        primary: Some(PrimaryRecord {
            target: Arc::from("reviews/v1"),
            endpoint: "127.0.0.1:9081".into(),
            attempts: Vec::new(),
            outcome: primary,
        }),
        shadows,
        forwarded: None,
        flags: Default::default(),
    }
}

pub fn ok(r: CapturedResponse) -> UpstreamOutcome {
    UpstreamOutcome::Response(r)
}
