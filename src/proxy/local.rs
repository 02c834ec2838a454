//! Answers the lab gives itself, as the sidecar does: a fault abort, a CORS preflight, a
//! redirect, a direct response, no route, and Envoy's replies when the primary fails. Each
//! is captured as an exchange like a forwarded one, with what answered and its flags.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION, SERVER};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use crate::capture::{
    CapturedBody, CapturedRequest, CapturedResponse, Exchange, PrimaryRecord, ResponseFlags,
    UpstreamOutcome, owned_headers,
};
use crate::routing::action::{DirectResponse, Redirect, RequestUrl};
use crate::routing::{ActionKind, RouteTrace};

use super::Shared;
use super::arrival::{Arrival, Routed};
use super::body::ProxyBody;
use super::error::ProxyError;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What Envoy puts in `server` on every response a sidecar sends its app.
pub(super) const ENVOY: HeaderValue = HeaderValue::from_static("envoy");

/// A response the lab writes itself.
#[derive(Debug)]
pub(super) struct LocalReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl LocalReply {
    /// Envoy's `prepareLocalReply`: a non-empty body is `text/plain`; an empty one has no
    /// content type.
    pub(super) fn new(status: StatusCode, body: impl Into<Bytes>) -> Self {
        let body = body.into();
        let mut headers = HeaderMap::new();
        if !body.is_empty() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        Self {
            status,
            headers,
            body,
        }
    }

    /// The reply for a failure the router answers (no route, an upstream failure).
    pub(super) fn for_error(err: &ProxyError) -> Self {
        Self::new(err.status(), err.body())
    }

    /// A redirect: no body, the Location.
    pub(super) fn redirect(redirect: &Redirect, url: &RequestUrl<'_>, matched: usize) -> Self {
        let mut reply = Self::new(redirect.status, Bytes::new());
        if let Ok(location) = HeaderValue::from_str(&redirect.location(url, matched)) {
            reply.headers.insert(LOCATION, location);
        }
        reply
    }

    /// A direct response: its body, and for a 201 or 3xx the request's own URL as Location.
    pub(super) fn direct(direct: &DirectResponse, url: &RequestUrl<'_>) -> Self {
        let mut reply = Self::new(direct.status, direct.body.clone());
        if let Some(location) = direct
            .location(url)
            .and_then(|l| HeaderValue::from_str(&l).ok())
        {
            reply.headers.insert(LOCATION, location);
        }
        reply
    }

    /// The response the client gets.
    pub(super) fn into_response(mut self) -> Response<ProxyBody> {
        self.headers.insert(SERVER, ENVOY);
        let mut response = Response::new(ProxyBody::text(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

/// Who answered, as the exchange's primary target shows it.
fn answered_by(action: ActionKind) -> &'static str {
    match action {
        ActionKind::Forward => "lab",
        ActionKind::Redirect => "redirect",
        ActionKind::DirectResponse => "direct response",
        ActionKind::FaultAbort => "fault abort",
        ActionKind::CorsPreflight => "CORS preflight",
    }
}

impl Shared {
    /// Answers a routed request itself (`action` says what answered) and records it.
    pub(super) fn answer_locally(
        &self,
        arrival: Arrival,
        routed: Routed,
        action: ActionKind,
        reply: LocalReply,
        flags: ResponseFlags,
        steps: Vec<String>,
    ) -> Response<ProxyBody> {
        self.counters.local_answer();
        let mut trace = routed.resolution.trace;
        trace.action = action;
        trace.steps = steps;
        let exchange = local_exchange(
            self,
            arrival,
            Some(trace),
            &reply,
            flags,
            Some(answered_by(action)),
        );
        self.hub.publish(exchange);
        reply.into_response()
    }

    /// Answers a request no route takes: 404 (Envoy's flag NR).
    pub(super) fn answer_no_route(
        &self,
        arrival: Arrival,
        err: &ProxyError,
    ) -> Response<ProxyBody> {
        self.counters.no_route();
        let reply = LocalReply::for_error(err);
        let exchange = local_exchange(self, arrival, None, &reply, err.flags(), None);
        self.hub.publish(exchange);
        reply.into_response()
    }
}

/// The exchange of a request the lab answered itself; its body is not read (nothing
/// upstream wants it), only its length noted.
fn local_exchange(
    shared: &Shared,
    arrival: Arrival,
    trace: Option<RouteTrace>,
    reply: &LocalReply,
    flags: ResponseFlags,
    target: Option<&'static str>,
) -> Exchange {
    let Arrival {
        id,
        started_at,
        parts,
        body,
        host,
        path_and_query,
        ..
    } = arrival;
    let total_len = http_body::Body::size_hint(&body).exact().unwrap_or(0);
    let cap = shared.settings.capture_body_cap;
    let primary = target.map(|target| PrimaryRecord {
        target: Arc::from(target),
        endpoint: Arc::from(""),
        attempts: Vec::new(),
        outcome: UpstreamOutcome::Response(CapturedResponse {
            trailers: None,
            status: reply.status,
            headers: reply.headers.clone(),
            body: CapturedBody {
                bytes: reply.body.slice(..reply.body.len().min(cap)),
                total_len: reply.body.len() as u64,
                truncated: reply.body.len() > cap,
            },
            // Answered on arrival: no upstream time.
            ttfb: std::time::Duration::ZERO,
            total: std::time::Duration::ZERO,
            // The lab answers in the client's own protocol.
            version: parts.version,
        }),
    });
    Exchange {
        tunnel: None,
        id,
        request_id: parts
            .headers
            .get(X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        started_at,
        trace,
        request: CapturedRequest {
            method: parts.method.clone(),
            uri: path_and_query.as_str().to_owned(),
            authority: host,
            version: parts.version,
            headers: owned_headers(&parts.headers),
            body: CapturedBody {
                bytes: Bytes::new(),
                total_len,
                truncated: total_len > 0,
            },
        },
        primary,
        forwarded: None,
        shadows: Vec::new(),
        flags,
    }
}
