//! Captured exchanges: what the proxy saw of one client request, its primary answer and
//! every mirror's fate. The proxy produces them; analysis, export and the UI read them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::routing::RouteTrace;

pub mod store;

pub use store::{CaptureHub, CaptureStore, StoreBounds};

/// A body as captured: the first bytes up to the capture cap, and how long it really was.
#[derive(Debug, Clone, Default)]
pub struct CapturedBody {
    /// The captured prefix of the body (the whole body when `truncated` is false).
    pub bytes: Bytes,
    /// Total body length seen on the wire.
    pub total_len: u64,
    /// True when `bytes` is shorter than the body because of the capture cap.
    pub truncated: bool,
}

/// The client's request as the proxy received it.
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    /// Request method.
    pub method: http::Method,
    /// Request target as sent upstream (origin form: path and query).
    pub uri: String,
    /// Host the request was routed by (authority without port).
    pub authority: String,
    /// HTTP version of the client's request.
    pub version: http::Version,
    /// Request headers as the client sent them (hop-by-hop removed, x-request-id set); see
    /// [`Exchange::forwarded`] for what the primary got after the route's header operations.
    pub headers: http::HeaderMap,
    /// Request body.
    pub body: CapturedBody,
}

/// A response as captured from one upstream.
#[derive(Debug, Clone)]
pub struct CapturedResponse {
    /// Status code.
    pub status: http::StatusCode,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// Response body.
    pub body: CapturedBody,
    /// Time from sending the request to receiving the response head.
    pub ttfb: Duration,
    /// Time from sending the request to the end of the response body.
    pub total: Duration,
    /// The HTTP version the upstream answered in (HTTP/1.1 or HTTP/2, as the cluster's
    /// protocol says; an HTTP/1.0 server answers in 1.0).
    pub version: http::Version,
    /// The trailers that ended the body (gRPC's `grpc-status` and `grpc-message`), if any;
    /// boxed, as most answers have none and a response is moved several times.
    pub trailers: Option<Box<http::HeaderMap>>,
}

/// Why an upstream exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamErrorKind {
    /// The connection was refused (nothing listening).
    Refused,
    /// The connection was reset or closed before a full response.
    Reset,
    /// An HTTP/2 upstream reset the request's stream (RST_STREAM), with a reason other
    /// than REFUSED_STREAM: Envoy's `RemoteReset`.
    RemoteReset,
    /// An HTTP/2 upstream refused the request's stream (RST_STREAM with REFUSED_STREAM: it
    /// did not process the request): Envoy's `RemoteRefusedStreamReset`.
    RefusedStream,
    /// No (complete) answer within the timeout.
    Timeout,
    /// The upstream answered with something that is not valid HTTP.
    Protocol,
    /// The host name could not be resolved.
    Dns,
    /// No connection within the connect timeout.
    ConnectTimeout,
    /// The destination has no endpoint to send to (a subset that selects none), or every
    /// endpoint is ejected.
    NoEndpoint,
    /// A circuit breaker turned the request away (connection pool limits).
    Overflow,
    /// The TLS handshake with the upstream failed (an unknown CA, a name mismatch, no
    /// common protocol): a connection failure to Envoy.
    Tls,
    /// Anything else (I/O error, ...).
    Other,
}

impl UpstreamErrorKind {
    /// Stable lowercase name used in reports and the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::Refused => "refused",
            UpstreamErrorKind::Reset => "reset",
            UpstreamErrorKind::RemoteReset => "remote_reset",
            UpstreamErrorKind::RefusedStream => "refused_stream",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Protocol => "protocol",
            UpstreamErrorKind::Dns => "dns",
            UpstreamErrorKind::ConnectTimeout => "connect_timeout",
            UpstreamErrorKind::NoEndpoint => "no_endpoint",
            UpstreamErrorKind::Overflow => "overflow",
            UpstreamErrorKind::Tls => "tls",
            UpstreamErrorKind::Other => "other",
        }
    }

    /// Envoy's response flag for this failure (`%RESPONSE_FLAGS%`), if it has one.
    pub fn response_flag(self) -> ResponseFlags {
        match self {
            UpstreamErrorKind::Refused
            | UpstreamErrorKind::ConnectTimeout
            | UpstreamErrorKind::Tls => ResponseFlags::UF,
            UpstreamErrorKind::Reset => ResponseFlags::UC,
            // router.cc `streamResetReasonToResponseFlag`: both remote resets are UR.
            UpstreamErrorKind::RemoteReset | UpstreamErrorKind::RefusedStream => ResponseFlags::UR,
            UpstreamErrorKind::Timeout => ResponseFlags::UT,
            UpstreamErrorKind::Protocol => ResponseFlags::UPE,
            // A DNS name that resolves to nothing is a cluster without hosts to Envoy.
            UpstreamErrorKind::Dns | UpstreamErrorKind::NoEndpoint => ResponseFlags::UH,
            UpstreamErrorKind::Overflow => ResponseFlags::UO,
            UpstreamErrorKind::Other => ResponseFlags::NONE,
        }
    }
}

/// Envoy's response flags (`%RESPONSE_FLAGS%`, `source/common/stream_info/utility.h`): why
/// the lab, playing the sidecar, answered as it did. A set; written as `DI,UF`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResponseFlags(u16);

impl ResponseFlags {
    /// No flag.
    pub const NONE: Self = Self(0);
    /// Upstream connection failure.
    pub const UF: Self = Self(1);
    /// Upstream connection termination (closed before the response head).
    pub const UC: Self = Self(1 << 1);
    /// Upstream request timeout (the route timeout).
    pub const UT: Self = Self(1 << 2);
    /// No healthy upstream.
    pub const UH: Self = Self(1 << 3);
    /// Upstream protocol error.
    pub const UPE: Self = Self(1 << 4);
    /// Upstream overflow (circuit breaking).
    pub const UO: Self = Self(1 << 5);
    /// No route.
    pub const NR: Self = Self(1 << 6);
    /// Fault injected (abort).
    pub const FI: Self = Self(1 << 7);
    /// Delay injected.
    pub const DI: Self = Self(1 << 8);
    /// Upstream retry limit exceeded.
    pub const URX: Self = Self(1 << 9);
    /// Upstream remote reset (an HTTP/2 stream the upstream reset or refused).
    pub const UR: Self = Self(1 << 10);

    const NAMES: [(Self, &'static str); 11] = [
        (Self::UF, "UF"),
        (Self::UC, "UC"),
        (Self::UR, "UR"),
        (Self::UT, "UT"),
        (Self::UH, "UH"),
        (Self::UPE, "UPE"),
        (Self::UO, "UO"),
        (Self::NR, "NR"),
        (Self::FI, "FI"),
        (Self::DI, "DI"),
        (Self::URX, "URX"),
    ];

    /// Both sets.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Every flag's short name, in Envoy's order (the Traffic filter's choices).
    pub fn all_names() -> impl Iterator<Item = &'static str> {
        Self::NAMES.iter().map(|(_, n)| *n)
    }

    /// The flag named `name` (`UF`), if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(f, _)| *f)
    }

    /// The short names of the flags set, in Envoy's order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
    }
}

impl std::fmt::Display for ResponseFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let names: Vec<&str> = self.names().collect();
        f.write_str(&names.join(","))
    }
}

impl serde::Serialize for ResponseFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A failed upstream exchange.
#[derive(Debug, Clone)]
pub struct UpstreamFailure {
    /// What kind of failure.
    pub kind: UpstreamErrorKind,
    /// Human detail, e.g. `connection refused by 127.0.0.1:9081`.
    pub detail: String,
    /// Time from sending the request to the failure.
    pub elapsed: Duration,
    /// Response head, when the failure happened mid-body (status already received).
    pub partial: Option<CapturedResponse>,
}

/// The result of talking to one upstream.
#[derive(Debug, Clone)]
pub enum UpstreamOutcome {
    /// A full response.
    Response(CapturedResponse),
    /// No (complete) response.
    Failed(UpstreamFailure),
}

/// Why a mirror policy sent no copy for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The `mirrorPercentage` draw said no.
    NotSampled,
    /// The request body was above the mirror buffer limit.
    BodyTooLarge,
    /// Too many shadow requests were already in flight.
    NoSlot,
    /// The client's request body never arrived in full (the client aborted the upload, or
    /// the primary answered and stopped reading it), so there was no verbatim copy to send.
    RequestIncomplete,
}

impl SkipReason {
    /// Stable lowercase name used in reports and the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotSampled => "not_sampled",
            SkipReason::BodyTooLarge => "body_too_large",
            SkipReason::NoSlot => "no_slot",
            SkipReason::RequestIncomplete => "request_incomplete",
        }
    }
}

/// What happened to one mirror policy of the matched route for one request.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "records already live in a Vec on the heap; boxing would add an allocation per shadow"
)]
pub enum ShadowOutcome {
    /// No copy was sent.
    Skipped(SkipReason),
    /// A copy was sent; this is how the shadow answered.
    Sent(UpstreamOutcome),
}

/// One mirror policy's record in an exchange.
#[derive(Debug, Clone)]
pub struct ShadowRecord {
    /// Label of the mirror destination (`reviews-v2/v2`).
    pub target: Arc<str>,
    /// Endpoint the copy went to, when one was sent (shared with the proxy's rendering of it).
    pub endpoint: Option<Arc<str>>,
    /// What happened.
    pub outcome: ShadowOutcome,
}

/// The primary leg of an exchange.
#[derive(Debug, Clone)]
pub struct PrimaryRecord {
    /// Label of the picked destination (`reviews/v1`).
    pub target: Arc<str>,
    /// Endpoint the request went to (the last attempt's; shared with the proxy's rendering
    /// of it). Empty when none was picked.
    pub endpoint: Arc<str>,
    /// How it answered (the last attempt).
    pub outcome: UpstreamOutcome,
    /// Every attempt, when there was more than one or a pick passed over an ejected
    /// endpoint; empty for the common single attempt, which `endpoint` and `outcome` tell.
    pub attempts: Vec<Attempt>,
}

impl PrimaryRecord {
    /// Attempts made: one, or as many as were recorded.
    pub fn attempt_count(&self) -> usize {
        self.attempts.len().max(1)
    }
}

/// One attempt of the primary (one of Envoy's upstream requests for a client request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The endpoint tried.
    pub endpoint: Arc<str>,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// When it started, from the first attempt's start.
    pub started: Duration,
    /// How long it took to its response head or its failure.
    pub took: Duration,
    /// Outlier detection ejected the endpoint after this attempt.
    pub ejected: bool,
    /// Ejected endpoints the pick passed over.
    pub skipped_ejected: usize,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A response head with this status (retried unless it is the last attempt).
    Status(http::StatusCode),
    /// No response head.
    Failed(UpstreamErrorKind),
}

impl std::fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptOutcome::Status(s) => write!(f, "{}", s.as_u16()),
            AttemptOutcome::Failed(kind) => f.write_str(kind.as_str()),
        }
    }
}

/// Everything the lab saw of one client request.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Lab-local sequence number, unique per run.
    pub id: u64,
    /// The `x-request-id` shared by the primary and every shadow.
    pub request_id: String,
    /// When the request arrived.
    pub started_at: SystemTime,
    /// Where it went in the config; `None` when no route matched (the client got a 404).
    pub trace: Option<RouteTrace>,
    /// The client's request.
    pub request: CapturedRequest,
    /// The client's answer: the primary's, or the lab's own for a route that answers
    /// locally (redirect, direct response, fault abort, CORS preflight; its target names
    /// the action and its endpoint is empty). `None` when no route matched.
    pub primary: Option<PrimaryRecord>,
    /// What the primary was sent when it differs from the client's request (a rewrite, a
    /// header operation); the shadows got the same. `None`: the client's request as it is.
    pub forwarded: Option<Arc<ForwardedRequest>>,
    /// One record per mirror policy of the matched route, in config order.
    pub shadows: Vec<ShadowRecord>,
    /// Envoy's response flags for the client's answer (`UF`, `UT`, `FI`, `DI`, ...).
    pub flags: ResponseFlags,
    /// The connection passed through after the request: a WebSocket (or other) upgrade, or
    /// a CONNECT tunnel. `None` for an ordinary exchange.
    pub tunnel: Option<Box<Tunnel>>,
}

/// What went through a connection the lab passed on after its request was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    /// `websocket` (the `Upgrade` value) or `CONNECT`.
    pub protocol: String,
    /// From the upgrade (or the tunnel's 200) to the close of the first side.
    pub duration: Duration,
    /// Bytes from the client to the upstream.
    pub bytes_up: u64,
    /// Bytes from the upstream to the client.
    pub bytes_down: u64,
    /// Why the tunnel ended other than by a clean close, if it did.
    pub error: Option<String>,
}

/// The request as the router finalised it for the primary (and the shadows): Envoy's
/// `finalizeRequestHeaders`, then the host and path rewrites.
#[derive(Debug, Clone)]
pub struct ForwardedRequest {
    /// Path and query sent upstream.
    pub uri: String,
    /// The Host sent upstream.
    pub authority: String,
    /// Headers sent upstream (before the lab's own mirror header edits).
    pub headers: http::HeaderMap,
}

/// A copy of `headers` whose values live in one buffer of their own.
///
/// hyper parses header values as slices of the connection's read buffer, and holding any
/// one of them keeps that whole buffer (8 KiB or more) alive: hyper then allocates a fresh
/// one for the next read. A capture that kept the parsed values would pin one such buffer
/// per message for as long as the exchange is kept (hundreds of MB over a full store).
pub fn owned_headers(headers: &http::HeaderMap) -> http::HeaderMap {
    let mut copy = headers.clone();
    let total: usize = headers.values().map(http::HeaderValue::len).sum();
    let mut buffer = bytes::BytesMut::with_capacity(total);
    for value in headers.values() {
        buffer.extend_from_slice(value.as_bytes());
    }
    let buffer = buffer.freeze();
    let mut at = 0;
    // `values_mut` walks the same entries in the same order as `values` above.
    for value in copy.values_mut() {
        let len = value.len();
        if let Ok(mut owned) = http::HeaderValue::from_maybe_shared(buffer.slice(at..at + len)) {
            owned.set_sensitive(value.is_sensitive());
            *value = owned;
        }
        at += len;
    }
    copy
}

/// The request header `mirrorlab replay` sets on every request it sends (its value: the
/// request's position in the traffic file). The proxy forwards it like any other header,
/// so upstreams can tell replayed traffic too; the capture keeps it, which is how an
/// exchange is known to be replayed.
pub const REPLAY_HEADER: &str = "x-mirrorlab-replay";

impl Exchange {
    /// The request came from `mirrorlab replay` (or the app's Replay…), not a live client.
    pub fn replayed(&self) -> bool {
        self.request.headers.contains_key(REPLAY_HEADER)
    }
}

/// Rough per-record overhead (structs, `Arc`s, vectors) used when bounding the store in bytes.
const RECORD_OVERHEAD: usize = 512;

fn headers_bytes(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum()
}

impl CapturedResponse {
    fn approx_bytes(&self) -> usize {
        headers_bytes(&self.headers)
            + self.trailers.as_deref().map_or(0, headers_bytes)
            + self.body.bytes.len()
    }

    /// The gRPC status: `grpc-status` in the trailers, or in the headers of a trailers-only
    /// answer; `None` for an answer that is not gRPC.
    pub fn grpc_status(&self) -> Option<u32> {
        // A constant name: a `&str` key would be parsed into a name on every call.
        const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
        let field = self
            .trailers
            .as_ref()
            .and_then(|t| t.get(&GRPC_STATUS))
            .or_else(|| self.headers.get(&GRPC_STATUS))?;
        field.to_str().ok()?.trim().parse().ok()
    }

    /// An error answer: a 5xx, or a gRPC status other than OK (a gRPC error comes in a 200).
    pub fn is_error(&self) -> bool {
        self.status.is_server_error() || self.grpc_status().is_some_and(|code| code != 0)
    }
}

impl UpstreamOutcome {
    /// The status code, when a response head arrived (also for a body that failed midway).
    pub fn status(&self) -> Option<http::StatusCode> {
        match self {
            UpstreamOutcome::Response(response) => Some(response.status),
            UpstreamOutcome::Failed(failure) => failure.partial.as_ref().map(|p| p.status),
        }
    }

    fn approx_bytes(&self) -> usize {
        match self {
            UpstreamOutcome::Response(response) => response.approx_bytes(),
            UpstreamOutcome::Failed(failure) => {
                failure.detail.len() + failure.partial.as_ref().map_or(0, |p| p.approx_bytes())
            }
        }
    }
}

impl Exchange {
    /// Approximate heap size of this record, used to bound the capture store in bytes.
    pub fn approx_bytes(&self) -> usize {
        let request = self.request.uri.len()
            + self.request.authority.len()
            + headers_bytes(&self.request.headers)
            + self.request.body.bytes.len();
        let primary = self
            .primary
            .as_ref()
            .map_or(0, |p| p.endpoint.len() + p.outcome.approx_bytes());
        let shadows: usize = self
            .shadows
            .iter()
            .map(|s| {
                RECORD_OVERHEAD / 2
                    + s.endpoint.as_ref().map_or(0, |e| e.len())
                    + match &s.outcome {
                        ShadowOutcome::Skipped(_) => 0,
                        ShadowOutcome::Sent(outcome) => outcome.approx_bytes(),
                    }
            })
            .sum();
        let forwarded = self.forwarded.as_ref().map_or(0, |f| {
            f.uri.len() + f.authority.len() + headers_bytes(&f.headers)
        });
        RECORD_OVERHEAD + self.request_id.len() + request + primary + shadows + forwarded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_headers_keep_every_value_in_order_without_the_parse_buffer() {
        let wire = bytes::Bytes::from_static(b"text/plain1secret");
        let mut headers = http::HeaderMap::new();
        let slice = |range: std::ops::Range<usize>| {
            http::HeaderValue::from_maybe_shared(wire.slice(range)).expect("valid test value")
        };
        headers.insert("content-type", slice(0..10));
        headers.append("x-n", slice(10..11));
        headers.append("x-n", http::HeaderValue::from_static("2"));
        let mut secret = slice(11..17);
        secret.set_sensitive(true);
        headers.insert("authorization", secret);

        let owned = owned_headers(&headers);
        assert_eq!(owned, headers);
        let all: Vec<_> = owned.get_all("x-n").iter().collect();
        assert_eq!(all, ["1", "2"]);
        assert!(owned["authorization"].is_sensitive());
        let wire_range = wire.as_ptr_range();
        for value in owned.values() {
            assert!(
                !wire_range.contains(&value.as_bytes().as_ptr()),
                "a value still points into the parse buffer"
            );
        }
    }
}
