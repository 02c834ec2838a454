//! `_exchange`: one captured exchange in a session, whole, so the analysis can be rebuilt
//! from it exactly (the HAR fields beside it are for other tools, and lose what HAR has no
//! place for: raw bodies, the route trace, nanosecond timings).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::names::{error_kind_in, flags_in, skip_in, version_in};
use crate::capture::{
    Attempt, AttemptOutcome, CapturedBody, CapturedRequest, CapturedResponse, Exchange,
    ForwardedRequest, PrimaryRecord, ShadowOutcome, ShadowRecord, Tunnel, UpstreamFailure,
    UpstreamOutcome,
};
use crate::export::har::{REDACTED, is_credential_header};
use crate::routing::{ActionKind, RouteOrigin, RouteTrace};

/// How credential values are written: kept, or replaced by a salted digest that keeps
/// equal values equal (so a diff of Set-Cookie reads the same after reopening) without
/// saying what they were.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Credentials {
    /// As captured.
    Keep,
    /// `[redacted:DIGEST]`, with this file's random salt.
    Digest(u64),
}

/// One header; `b64` instead of `value` for a value that is not UTF-8.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HeaderRecord {
    n: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    b64: Option<String>,
}

/// A captured body; `b64` for bytes that are not UTF-8.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BodyRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    b64: Option<String>,
    total_len: u64,
    truncated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RequestRecord {
    method: String,
    uri: String,
    authority: String,
    version: String,
    headers: Vec<HeaderRecord>,
    body: BodyRecord,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ResponseRecord {
    status: u16,
    headers: Vec<HeaderRecord>,
    body: BodyRecord,
    ttfb_ns: u64,
    total_ns: u64,
    version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trailers: Option<Vec<HeaderRecord>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OutcomeRecord {
    Response(ResponseRecord),
    Failed {
        kind: String,
        detail: String,
        elapsed_ns: u64,
        partial: Option<ResponseRecord>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AttemptRecord {
    endpoint: String,
    /// A status code, or how it failed.
    outcome: String,
    started_ns: u64,
    took_ns: u64,
    ejected: bool,
    skipped_ejected: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PrimaryRecordR {
    target: String,
    endpoint: String,
    outcome: OutcomeRecord,
    attempts: Vec<AttemptRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ShadowOutcomeRecord {
    Skipped(String),
    Sent(OutcomeRecord),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ShadowRecordR {
    target: String,
    endpoint: Option<String>,
    outcome: ShadowOutcomeRecord,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OriginRecord {
    VirtualService,
    Delegate {
        virtual_service: String,
        route_index: usize,
    },
    GatewayRoute {
        kind: String,
        route: String,
    },
    DefaultRoute {
        service_entry: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TraceRecord {
    virtual_service: String,
    route_index: usize,
    route_name: Option<String>,
    match_index: Option<usize>,
    match_summary: String,
    origin: OriginRecord,
    action: String,
    steps: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ForwardedRecord {
    uri: String,
    authority: String,
    headers: Vec<HeaderRecord>,
}

/// `_exchange`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ExchangeRecord {
    id: u64,
    request_id: String,
    started_at_unix_ns: u64,
    trace: Option<TraceRecord>,
    request: RequestRecord,
    primary: Option<PrimaryRecordR>,
    forwarded: Option<ForwardedRecord>,
    shadows: Vec<ShadowRecordR>,
    flags: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tunnel: Option<TunnelRecord>,
}

/// A connection passed through after the request (an upgrade, a CONNECT tunnel).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TunnelRecord {
    protocol: String,
    duration_ns: u64,
    bytes_up: u64,
    bytes_down: u64,
    error: Option<String>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn headers_out(map: &http::HeaderMap, credentials: Credentials) -> Vec<HeaderRecord> {
    map.iter()
        .map(|(name, value)| {
            let n = name.as_str().to_owned();
            match credentials {
                Credentials::Digest(salt) if is_credential_header(name.as_str()) => {
                    let mut hash = sha2::Sha256::new();
                    hash.update(salt.to_le_bytes());
                    hash.update(value.as_bytes());
                    let digest = hash.finalize();
                    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                    let mut v = REDACTED.trim_end_matches(']').to_owned();
                    v.push(':');
                    v.push_str(&hex);
                    v.push(']');
                    HeaderRecord {
                        n,
                        v: Some(v),
                        b64: None,
                    }
                }
                _ => match value.to_str() {
                    Ok(v) => HeaderRecord {
                        n,
                        v: Some(v.to_owned()),
                        b64: None,
                    },
                    Err(_) => HeaderRecord {
                        n,
                        v: None,
                        b64: Some(
                            base64::engine::general_purpose::STANDARD.encode(value.as_bytes()),
                        ),
                    },
                },
            }
        })
        .collect()
}

fn body_out(body: &CapturedBody) -> BodyRecord {
    let (text, b64) = match std::str::from_utf8(&body.bytes) {
        Ok(t) => (Some(t.to_owned()), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(&body.bytes)),
        ),
    };
    BodyRecord {
        text,
        b64,
        total_len: body.total_len,
        truncated: body.truncated,
    }
}

fn response_out(r: &CapturedResponse, c: Credentials) -> ResponseRecord {
    ResponseRecord {
        status: r.status.as_u16(),
        headers: headers_out(&r.headers, c),
        body: body_out(&r.body),
        ttfb_ns: nanos(r.ttfb),
        total_ns: nanos(r.total),
        version: format!("{:?}", r.version),
        trailers: r.trailers.as_ref().map(|t| headers_out(t, c)),
    }
}

fn outcome_out(o: &UpstreamOutcome, c: Credentials) -> OutcomeRecord {
    match o {
        UpstreamOutcome::Response(r) => OutcomeRecord::Response(response_out(r, c)),
        UpstreamOutcome::Failed(f) => OutcomeRecord::Failed {
            kind: f.kind.as_str().to_owned(),
            detail: f.detail.clone(),
            elapsed_ns: nanos(f.elapsed),
            partial: f.partial.as_ref().map(|p| response_out(p, c)),
        },
    }
}

fn trace_out(t: &RouteTrace) -> TraceRecord {
    TraceRecord {
        virtual_service: t.virtual_service.to_string(),
        route_index: t.route_index,
        route_name: t.route_name.as_deref().map(str::to_owned),
        match_index: t.match_index,
        match_summary: t.match_summary.to_string(),
        origin: match &t.origin {
            RouteOrigin::VirtualService => OriginRecord::VirtualService,
            RouteOrigin::Delegate {
                virtual_service,
                route_index,
            } => OriginRecord::Delegate {
                virtual_service: virtual_service.clone(),
                route_index: *route_index,
            },
            RouteOrigin::GatewayRoute { kind, route } => OriginRecord::GatewayRoute {
                kind: (*kind).to_owned(),
                route: route.clone(),
            },
            RouteOrigin::DefaultRoute { service_entry } => OriginRecord::DefaultRoute {
                service_entry: service_entry.clone(),
            },
        },
        action: t.action.as_str().to_owned(),
        steps: t.steps.clone(),
    }
}

impl ExchangeRecord {
    /// The whole of `e`, credentials as `credentials` says.
    pub(crate) fn of(e: &Exchange, credentials: Credentials) -> Self {
        let c = credentials;
        Self {
            id: e.id,
            request_id: e.request_id.clone(),
            started_at_unix_ns: e.started_at.duration_since(UNIX_EPOCH).map_or(0, nanos),
            trace: e.trace.as_ref().map(trace_out),
            request: RequestRecord {
                method: e.request.method.as_str().to_owned(),
                uri: e.request.uri.clone(),
                authority: e.request.authority.clone(),
                version: format!("{:?}", e.request.version),
                headers: headers_out(&e.request.headers, c),
                body: body_out(&e.request.body),
            },
            primary: e.primary.as_ref().map(|p| PrimaryRecordR {
                target: p.target.to_string(),
                endpoint: p.endpoint.to_string(),
                outcome: outcome_out(&p.outcome, c),
                attempts: p
                    .attempts
                    .iter()
                    .map(|a| AttemptRecord {
                        endpoint: a.endpoint.to_string(),
                        outcome: a.outcome.to_string(),
                        started_ns: nanos(a.started),
                        took_ns: nanos(a.took),
                        ejected: a.ejected,
                        skipped_ejected: a.skipped_ejected,
                    })
                    .collect(),
            }),
            forwarded: e.forwarded.as_ref().map(|f| ForwardedRecord {
                uri: f.uri.clone(),
                authority: f.authority.clone(),
                headers: headers_out(&f.headers, c),
            }),
            shadows: e
                .shadows
                .iter()
                .map(|s| ShadowRecordR {
                    target: s.target.to_string(),
                    endpoint: s.endpoint.as_deref().map(str::to_owned),
                    outcome: match &s.outcome {
                        ShadowOutcome::Skipped(r) => {
                            ShadowOutcomeRecord::Skipped(r.as_str().to_owned())
                        }
                        ShadowOutcome::Sent(o) => ShadowOutcomeRecord::Sent(outcome_out(o, c)),
                    },
                })
                .collect(),
            flags: e.flags.to_string(),
            tunnel: e.tunnel.as_ref().map(|t| TunnelRecord {
                protocol: t.protocol.clone(),
                duration_ns: nanos(t.duration),
                bytes_up: t.bytes_up,
                bytes_down: t.bytes_down,
                error: t.error.clone(),
            }),
        }
    }

    /// The exchange again; an error says which field is wrong.
    pub(crate) fn into_exchange(self) -> Result<Exchange, String> {
        Ok(Exchange {
            id: self.id,
            request_id: self.request_id,
            started_at: UNIX_EPOCH + Duration::from_nanos(self.started_at_unix_ns),
            trace: self.trace.map(trace_in).transpose()?,
            request: CapturedRequest {
                method: http::Method::from_bytes(self.request.method.as_bytes()).map_err(|_| {
                    format!("request.method {:?} is not a method", self.request.method)
                })?,
                uri: self.request.uri,
                authority: self.request.authority,
                version: version_in(&self.request.version)?,
                headers: headers_in(self.request.headers)?,
                body: body_in(self.request.body)?,
            },
            primary: self
                .primary
                .map(|p| -> Result<PrimaryRecord, String> {
                    Ok(PrimaryRecord {
                        target: Arc::from(p.target),
                        endpoint: Arc::from(p.endpoint),
                        outcome: outcome_in(p.outcome)?,
                        attempts: p
                            .attempts
                            .into_iter()
                            .map(attempt_in)
                            .collect::<Result<_, _>>()?,
                    })
                })
                .transpose()?,
            forwarded: self
                .forwarded
                .map(|f| -> Result<_, String> {
                    Ok(Arc::new(ForwardedRequest {
                        uri: f.uri,
                        authority: f.authority,
                        headers: headers_in(f.headers)?,
                    }))
                })
                .transpose()?,
            shadows: self
                .shadows
                .into_iter()
                .map(|s| -> Result<ShadowRecord, String> {
                    Ok(ShadowRecord {
                        target: Arc::from(s.target),
                        endpoint: s.endpoint.map(Arc::from),
                        outcome: match s.outcome {
                            ShadowOutcomeRecord::Skipped(r) => ShadowOutcome::Skipped(skip_in(&r)?),
                            ShadowOutcomeRecord::Sent(o) => ShadowOutcome::Sent(outcome_in(o)?),
                        },
                    })
                })
                .collect::<Result<_, _>>()?,
            flags: flags_in(&self.flags)?,
            tunnel: self.tunnel.map(|t| {
                Box::new(Tunnel {
                    protocol: t.protocol,
                    duration: Duration::from_nanos(t.duration_ns),
                    bytes_up: t.bytes_up,
                    bytes_down: t.bytes_down,
                    error: t.error,
                })
            }),
        })
    }
}

fn headers_in(records: Vec<HeaderRecord>) -> Result<http::HeaderMap, String> {
    let mut map = http::HeaderMap::with_capacity(records.len());
    for h in records {
        let name = http::header::HeaderName::from_bytes(h.n.as_bytes())
            .map_err(|_| format!("header name {:?} is not valid", h.n))?;
        let bytes = match (h.v, h.b64) {
            (Some(v), _) => v.into_bytes(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| format!("header {:?}: b64 is not base64 ({e})", h.n))?,
            (None, None) => Vec::new(),
        };
        let value = http::HeaderValue::from_bytes(&bytes)
            .map_err(|_| format!("the value of header {:?} is not valid", h.n))?;
        map.append(name, value);
    }
    Ok(map)
}

fn body_in(b: BodyRecord) -> Result<CapturedBody, String> {
    let bytes = match (b.text, b.b64) {
        (Some(t), _) => bytes::Bytes::from(t),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("a body's b64 is not base64 ({e})"))?
            .into(),
        (None, None) => bytes::Bytes::new(),
    };
    Ok(CapturedBody {
        bytes,
        total_len: b.total_len,
        truncated: b.truncated,
    })
}

fn response_in(r: ResponseRecord) -> Result<CapturedResponse, String> {
    Ok(CapturedResponse {
        status: http::StatusCode::from_u16(r.status)
            .map_err(|_| format!("status {} is not an HTTP status", r.status))?,
        headers: headers_in(r.headers)?,
        body: body_in(r.body)?,
        ttfb: Duration::from_nanos(r.ttfb_ns),
        total: Duration::from_nanos(r.total_ns),
        version: version_in(&r.version)?,
        trailers: r.trailers.map(headers_in).transpose()?.map(Box::new),
    })
}

fn outcome_in(o: OutcomeRecord) -> Result<UpstreamOutcome, String> {
    Ok(match o {
        OutcomeRecord::Response(r) => UpstreamOutcome::Response(response_in(r)?),
        OutcomeRecord::Failed {
            kind,
            detail,
            elapsed_ns,
            partial,
        } => UpstreamOutcome::Failed(UpstreamFailure {
            kind: error_kind_in(&kind)?,
            detail,
            elapsed: Duration::from_nanos(elapsed_ns),
            partial: partial.map(response_in).transpose()?,
        }),
    })
}

fn attempt_in(a: AttemptRecord) -> Result<Attempt, String> {
    let outcome = match a.outcome.parse::<u16>() {
        Ok(code) => AttemptOutcome::Status(
            http::StatusCode::from_u16(code)
                .map_err(|_| format!("attempt status {code} is not valid"))?,
        ),
        Err(_) => AttemptOutcome::Failed(error_kind_in(&a.outcome)?),
    };
    Ok(Attempt {
        endpoint: Arc::from(a.endpoint),
        outcome,
        started: Duration::from_nanos(a.started_ns),
        took: Duration::from_nanos(a.took_ns),
        ejected: a.ejected,
        skipped_ejected: a.skipped_ejected,
    })
}

fn trace_in(t: TraceRecord) -> Result<RouteTrace, String> {
    let action = ActionKind::ALL
        .into_iter()
        .find(|a| a.as_str() == t.action)
        .ok_or_else(|| format!("{:?} is not a route action", t.action))?;
    let origin = match t.origin {
        OriginRecord::VirtualService => RouteOrigin::VirtualService,
        OriginRecord::Delegate {
            virtual_service,
            route_index,
        } => RouteOrigin::Delegate {
            virtual_service,
            route_index,
        },
        OriginRecord::GatewayRoute { kind, route } => RouteOrigin::GatewayRoute {
            kind: match kind.as_str() {
                "HTTPRoute" => "HTTPRoute",
                "GRPCRoute" => "GRPCRoute",
                other => return Err(format!("{other:?} is not a Gateway API route kind")),
            },
            route,
        },
        OriginRecord::DefaultRoute { service_entry } => RouteOrigin::DefaultRoute { service_entry },
    };
    Ok(RouteTrace {
        virtual_service: Arc::from(t.virtual_service),
        route_index: t.route_index,
        route_name: t.route_name.map(Arc::from),
        match_index: t.match_index,
        match_summary: Arc::from(t.match_summary),
        origin,
        action,
        steps: t.steps,
    })
}
