//! One request's journey: route, forward to the primary, copy to the mirrors, capture.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{EXPECT, HOST};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::capture::{
    CapturedBody, CapturedRequest, Exchange, ShadowOutcome, ShadowRecord, SkipReason,
    UpstreamErrorKind, UpstreamFailure, UpstreamOutcome, owned_headers,
};
use crate::routing::{EndpointAddr, MirrorPolicy, NoRoute, RequestHead};

use super::Shared;
use super::body::{
    BodyCapture, CaptureBody, ChunkBody, Deadline, ProxyBody, RequestBodyCopy, ResponseHead,
    TeeBody, UpstreamBody,
};
use super::error::{ProxyError, classify};
use super::hop::strip_hop_by_hop;
use super::join::{Deliver, ExchangeJoin, ExchangeRecord, Half, skipped};
use super::listener::worker_index;
use super::pool::EndpointPool;

const X_REQUEST_ID: &str = "x-request-id";

/// Everything the exchange task needs to finish one request's record.
struct PendingExchange {
    record: ExchangeRecord,
    /// The request target, shared with the primary's URI (a `Bytes` clone, no copy).
    path_and_query: PathAndQuery,
    sampled: Vec<bool>,
    body: oneshot::Receiver<RequestBodyCopy>,
    primary: oneshot::Receiver<UpstreamOutcome>,
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
        endpoint: String,
        call: ShadowCall,
    },
}

/// One shadow copy, ready to send: run inside the exchange task, beside the wait for the
/// primary, rather than spawned (a task per copy cost more than the copy's own work).
struct ShadowCall {
    method: http::Method,
    uri: Result<Uri, String>,
    headers: HeaderMap,
    chunks: Arc<[Bytes]>,
    pool: Arc<EndpointPool>,
    /// Held until the shadow has answered (or failed): bounds shadows in flight.
    permit: OwnedSemaphorePermit,
}

/// A shadow leg once its copy, if any, is under way: the record, or what the record of the
/// copy being awaited will say besides its outcome.
#[allow(
    clippy::large_enum_variant,
    reason = "lives briefly in one Vec per request, as ShadowLeg; boxing would add an allocation"
)]
enum LegRecord {
    Done(ShadowRecord),
    Awaited { target: Arc<str>, endpoint: String },
}

impl Shared {
    /// Handles one client request; never fails (errors become 4xx/5xx answers).
    pub(super) async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<ProxyBody> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let started_at = SystemTime::now();
        self.counters.request();
        let (mut parts, body) = request.into_parts();

        let (host, port) = target_authority(&parts);
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));

        let resolution = {
            let routes = self.routes.load();
            let route_host = if self.is_own_address(&host, port) {
                self.settings
                    .default_host
                    .clone()
                    .or_else(|| routes.default_host())
            } else {
                Some(host.clone())
            };
            match route_host {
                Some(route_host) => routes.resolve(&RequestHead {
                    method: parts.method.as_str(),
                    scheme: "http",
                    authority: &route_host,
                    path_and_query: path_and_query.as_str(),
                    headers: &parts.headers,
                    port: port.unwrap_or(80),
                }),
                None => Err(NoRoute::UnknownHost {
                    host: host.clone(),
                    configured: routes.hosts(),
                }),
            }
        };
        let resolution = match resolution {
            Ok(resolution) => resolution,
            Err(no_route) => {
                self.counters.no_route();
                let uri = path_and_query.as_str().to_owned();
                self.publish_unrouted(id, started_at, &parts, host, uri, &body);
                return error_response(&ProxyError::NoRoute(no_route));
            }
        };

        strip_hop_by_hop(&mut parts.headers);
        // The proxy answers `Expect: 100-continue` itself (hyper does, when the body is
        // read), as Envoy does by default; the upstream gets the body without waiting.
        parts.headers.remove(EXPECT);
        let request_id = ensure_request_id(&mut parts.headers);
        if !parts.headers.contains_key(HOST) {
            // HTTP/2 clients send `:authority` instead of Host; HTTP/1.1 upstreams need Host.
            if let Some(authority) = parts.uri.authority()
                && let Ok(value) = HeaderValue::from_str(authority.as_str())
            {
                parts.headers.insert(HOST, value);
            }
        }

        // One generator per request, seeded from the run seed and the request's sequence
        // number, so a seed repeats the same draws whatever the interleaving of requests.
        let mut rng = fastrand::Rng::with_seed(splitmix64(self.seed ^ splitmix64(id)));
        let Some(upstream) = resolution.pick_destination(rng.f64()).cloned() else {
            // A compiled table never has a route without destinations; count it if it does.
            self.counters.primary_error();
            return error_response(&ProxyError::NoEndpoint {
                upstream: resolution.trace.virtual_service.clone(),
            });
        };
        let sampled: Vec<bool> = resolution
            .mirrors
            .iter()
            .map(|mirror| rng.f64() < mirror.fraction)
            .collect();
        let Some(endpoint) = upstream.next_endpoint().cloned() else {
            self.counters.primary_error();
            return error_response(&ProxyError::NoEndpoint {
                upstream: upstream.label.clone(),
            });
        };
        let target = self.upstream_target(&endpoint);

        let cap = self.settings.capture_body_cap;
        // Every shadow slot taken (a shadow slow enough to hold them all): the copies are
        // skipped here, as they would be once the body is in, without an exchange task per
        // request just to record the skip.
        let no_slot = self.shadow_slots.available_permits() == 0;
        let any_sampled = !no_slot && sampled.iter().any(|s| *s);
        let buffer_limit = if any_sampled {
            self.settings.mirror_body_limit
        } else {
            cap
        };
        let mirror_waits_for_body = buffer_limit > cap;
        let captured_request = CapturedRequest {
            method: parts.method.clone(),
            uri: path_and_query.as_str().to_owned(),
            authority: host,
            version: parts.version,
            headers: owned_headers(&parts.headers),
            body: CapturedBody::default(),
        };
        let primary_target: Arc<str> = Arc::from(upstream.label.as_str());
        let record = ExchangeRecord {
            id,
            request_id,
            started_at,
            trace: resolution.trace,
            request: captured_request,
            primary_target,
            primary_endpoint: String::from(&*target.text),
            mirrors: Arc::clone(&resolution.mirrors),
        };
        let (body_done, primary_done) = if any_sampled {
            // A copy to send: the exchange task waits for the body, sends the copies and
            // waits for them and the primary.
            let (body_done, body_copy) = oneshot::channel();
            let (primary_done, primary_outcome) = oneshot::channel();
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(Arc::clone(&self).finish_exchange(PendingExchange {
                record,
                path_and_query: path_and_query.clone(),
                sampled,
                body: body_copy,
                primary: primary_outcome,
            }));
            (Deliver::channel(body_done), Deliver::channel(primary_done))
        } else {
            // Nothing to copy: the exchange is published by whichever half ends last.
            let join = ExchangeJoin::new(Arc::clone(&self), record, sampled, no_slot);
            (Deliver::join(&join), Deliver::join(&join))
        };
        let (body_read, body_read_wait) = oneshot::channel::<()>();
        let upstream_body = if http_body::Body::is_end_stream(&body) {
            body_done.send(RequestBodyCopy::empty());
            // Nothing to read: a failed primary must not wait for the body to be read.
            drop(body_read);
            UpstreamBody::Empty
        } else {
            UpstreamBody::Tee(TeeBody::new(body, buffer_limit, cap, body_done, body_read))
        };

        let uri = match upstream_uri(&target, &path_and_query) {
            Ok(uri) => uri,
            Err(detail) => {
                let err = ProxyError::BadRequest {
                    upstream: upstream.label.clone(),
                    detail,
                };
                self.fail_primary(
                    primary_done,
                    UpstreamErrorKind::Other,
                    err.to_string(),
                    Instant::now(),
                );
                return error_response(&err);
            }
        };
        ensure_host(&mut parts.headers, &target);
        let mut forward = Request::new(upstream_body);
        *forward.method_mut() = parts.method;
        *forward.uri_mut() = uri;
        *forward.headers_mut() = parts.headers;

        let sent_at = Instant::now();
        let connect_timeout = self.settings.connect_timeout;
        let sent = target.pool().send(forward, connect_timeout, sent_at, false);
        let result = match resolution.timeout {
            Some(limit) => match tokio::time::timeout(limit, sent).await {
                Ok(result) => result,
                Err(_) => Err((
                    UpstreamErrorKind::Timeout,
                    format!("no response within the route timeout of {limit:?}"),
                )),
            },
            None => sent.await,
        };
        match result {
            Ok((response, connection)) => {
                let ttfb = sent_at.elapsed();
                let (mut head, body) = response.into_parts();
                strip_hop_by_hop(&mut head.headers);
                let capture = CaptureBody::new(
                    body,
                    ResponseHead {
                        status: head.status,
                        headers: owned_headers(&head.headers),
                        sent_at,
                        ttfb,
                        version: head.version,
                    },
                    cap,
                    primary_done,
                    connection,
                    resolution
                        .timeout
                        .map(|limit| Deadline::new(sent_at, limit)),
                );
                Response::from_parts(head, ProxyBody::upstream(capture))
            }
            Err((kind, detail)) => {
                let err = ProxyError::upstream(
                    kind,
                    upstream.label.as_str(),
                    String::from(&*target.text),
                    detail,
                );
                self.fail_primary(primary_done, kind, err.to_string(), sent_at);
                if mirror_waits_for_body {
                    // The primary never read the body; answering now would make hyper close
                    // the connection before the shadows' copy is read. A mirror does not
                    // depend on its primary, so finish reading first (bounded).
                    let _ =
                        tokio::time::timeout(self.settings.shadow_timeout, body_read_wait).await;
                }
                error_response(&err)
            }
        }
    }

    fn fail_primary(
        &self,
        done: Deliver<UpstreamOutcome>,
        kind: UpstreamErrorKind,
        detail: String,
        sent_at: Instant,
    ) {
        self.counters.primary_error();
        done.send(UpstreamOutcome::Failed(UpstreamFailure {
            kind,
            detail,
            elapsed: sent_at.elapsed(),
            partial: None,
        }));
    }

    /// True when the request is addressed to the proxy itself rather than to a service.
    fn is_own_address(&self, host: &str, port: Option<u16>) -> bool {
        if host.is_empty() {
            return true;
        }
        if port != Some(self.local_addr.port()) {
            return false;
        }
        if host == "localhost" {
            return true;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                let own = self.local_addr.ip();
                ip == own || own.is_unspecified() || (ip.is_loopback() && own.is_loopback())
            }
            Err(_) => false,
        }
    }

    /// Records a request that got a 404 (its body is not read).
    fn publish_unrouted(
        &self,
        id: u64,
        started_at: SystemTime,
        parts: &Parts,
        host: String,
        uri: String,
        body: &Incoming,
    ) {
        let total_len = http_body::Body::size_hint(body).exact().unwrap_or(0);
        self.hub.publish(Exchange {
            id,
            request_id: parts
                .headers
                .get(X_REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            started_at,
            trace: None,
            request: CapturedRequest {
                method: parts.method.clone(),
                uri,
                authority: host,
                version: parts.version,
                headers: owned_headers(&parts.headers),
                body: CapturedBody {
                    bytes: Bytes::new(),
                    total_len,
                    truncated: total_len > 0,
                },
            },
            primary: None,
            shadows: Vec::new(),
        });
    }

    /// Waits for the request body, sends the shadows, waits for the primary and every
    /// shadow, then publishes the exchange.
    async fn finish_exchange(self: Arc<Self>, pending: PendingExchange) {
        let PendingExchange {
            mut record,
            path_and_query,
            sampled,
            body,
            primary,
        } = pending;
        let started_at = record.started_at;
        let mirrors = Arc::clone(&record.mirrors);

        // A dropped sender means the body was abandoned before it was read at all.
        let body = body.await.unwrap_or_default();
        record.request.body = body.captured(self.settings.capture_body_cap);
        let shadow_body = body.for_shadows();

        let mut legs = Vec::with_capacity(mirrors.len());
        for (policy, sampled) in mirrors.iter().zip(sampled) {
            let target: Arc<str> = Arc::from(policy.upstream.label.as_str());
            let skip = |reason| ShadowLeg::Done(skipped(Arc::clone(&target), reason));
            let leg = if !sampled {
                skip(SkipReason::NotSampled)
            } else if !body.is_complete() {
                skip(SkipReason::RequestIncomplete)
            } else if body.is_over_limit() {
                skip(SkipReason::BodyTooLarge)
            } else {
                match (
                    Arc::clone(&self.shadow_slots).try_acquire_owned(),
                    &shadow_body,
                ) {
                    (Ok(permit), Some(chunks)) => self.prepare_shadow(
                        policy,
                        &record.request,
                        &path_and_query,
                        chunks,
                        permit,
                        target,
                    ),
                    _ => skip(SkipReason::NoSlot),
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

        let primary = async {
            primary
                .await
                .unwrap_or_else(|_| UpstreamOutcome::missing(started_at))
        };
        // The copies go out now, concurrently with the wait for the primary; each has its
        // own timeout, so none can hold the exchange longer than the shadow timeout.
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

        self.publish(record.finish(primary_outcome, shadows));
    }

    /// Publishes a routed exchange that was counted in flight.
    pub(super) fn publish(&self, exchange: Exchange) {
        self.hub.publish(exchange);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Prepares one shadow request: a verbatim copy of the client's request.
    fn prepare_shadow(
        &self,
        policy: &MirrorPolicy,
        request: &CapturedRequest,
        path_and_query: &PathAndQuery,
        chunks: &Arc<[Bytes]>,
        permit: OwnedSemaphorePermit,
        target: Arc<str>,
    ) -> ShadowLeg {
        let Some(endpoint) = policy.upstream.next_endpoint().cloned() else {
            return ShadowLeg::Done(ShadowRecord {
                target,
                endpoint: None,
                outcome: ShadowOutcome::Sent(UpstreamOutcome::Failed(UpstreamFailure {
                    kind: UpstreamErrorKind::Other,
                    detail: format!("mirror {} has no endpoints", policy.upstream.label),
                    elapsed: std::time::Duration::ZERO,
                    partial: None,
                })),
            });
        };
        self.counters.mirrored();
        let mut headers = request.headers.clone();
        self.settings.mirror_headers.apply(&mut headers);
        policy.headers.apply(&mut headers);
        if self.settings.shadow_host_suffix {
            shadow_host(&mut headers);
        }
        let upstream = self.upstream_target(&endpoint);
        ensure_host(&mut headers, &upstream);
        ShadowLeg::Running {
            target,
            endpoint: String::from(&*upstream.text),
            call: ShadowCall {
                method: request.method.clone(),
                uri: upstream_uri(&upstream, path_and_query),
                headers,
                chunks: Arc::clone(chunks),
                pool: Arc::clone(upstream.pool()),
                permit,
            },
        }
    }

    /// Sends one prepared shadow copy; its slot is freed when it is done.
    async fn run_shadow(&self, call: ShadowCall) -> UpstreamOutcome {
        let outcome = match call.uri {
            Ok(uri) => {
                self.shadow_exchange(&call.pool, call.method, uri, call.headers, call.chunks)
                    .await
            }
            Err(detail) => UpstreamOutcome::Failed(UpstreamFailure {
                kind: UpstreamErrorKind::Other,
                detail,
                elapsed: std::time::Duration::ZERO,
                partial: None,
            }),
        };
        drop(call.permit);
        outcome
    }

    /// Sends a shadow copy and reads its whole answer, within the shadow timeout.
    async fn shadow_exchange(
        &self,
        pool: &Arc<EndpointPool>,
        method: http::Method,
        uri: Uri,
        headers: HeaderMap,
        chunks: Arc<[Bytes]>,
    ) -> UpstreamOutcome {
        let mut request = Request::new(UpstreamBody::Chunks(ChunkBody::new(chunks)));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let connect_timeout = self.settings.connect_timeout;
        let limit = self.settings.shadow_timeout;
        let cap = self.settings.capture_body_cap;
        let sent_at = Instant::now();
        let mut head = None;
        let mut capture = BodyCapture::new(cap);
        let exchange = async {
            let (response, connection) = pool.send(request, connect_timeout, sent_at, true).await?;
            let ttfb = sent_at.elapsed();
            let (parts, mut body) = response.into_parts();
            head = Some(ResponseHead {
                status: parts.status,
                headers: owned_headers(&parts.headers),
                sent_at,
                ttfb,
                version: parts.version,
            });
            while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
                let frame = frame.map_err(|e| classify(&e))?;
                if let Some(data) = frame.data_ref() {
                    capture.record(data);
                }
            }
            connection.release();
            Ok::<(), (UpstreamErrorKind, String)>(())
        };
        let result = match tokio::time::timeout(limit, exchange).await {
            Ok(result) => result,
            Err(_) => Err((
                UpstreamErrorKind::Timeout,
                format!("no complete answer within the shadow timeout of {limit:?}"),
            )),
        };
        match (result, head) {
            (Ok(()), Some(head)) => UpstreamOutcome::Response(head.into_response(capture.take())),
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

/// The host (lowercase, without port) and port a request is addressed to: the absolute-form
/// target or `:authority` when present (the lab used as `HTTP_PROXY`, HTTP/2), else Host.
fn target_authority(parts: &Parts) -> (String, Option<u16>) {
    if let Some(authority) = parts.uri.authority() {
        return (authority.host().to_ascii_lowercase(), authority.port_u16());
    }
    let Some(host) = parts.headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return (String::new(), None);
    };
    if let Some((name, port)) = plain_host_port(host) {
        return (name.to_ascii_lowercase(), port);
    }
    match host.parse::<http::uri::Authority>() {
        Ok(authority) => (authority.host().to_ascii_lowercase(), authority.port_u16()),
        Err(_) => (host.to_ascii_lowercase(), None),
    }
}

/// `name` or `name:port` made only of letters, digits, dots and dashes: what nearly every
/// Host header holds. Splitting it by hand spares a copy and a parse per request; anything
/// else (IPv6 literals, odd characters) is left to the full authority parser.
fn plain_host_port(host: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (name, Some(port.parse::<u16>().ok()?))
        }
        None => (host, None),
    };
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    plain.then_some((name, port))
}

/// Keeps the client's `x-request-id`, or adds a fresh one, and returns it.
fn ensure_request_id(headers: &mut HeaderMap) -> String {
    if let Some(id) = headers.get(X_REQUEST_ID).and_then(|v| v.to_str().ok()) {
        return id.to_owned();
    }
    // A v4 UUID from the thread's fast generator, as Envoy draws its request ids from a
    // non-cryptographic one: the OS generator would cost a system call per request.
    let uuid = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id: &str = uuid.hyphenated().encode_lower(&mut text);
    if let Ok(value) = HeaderValue::from_str(id) {
        headers.insert(X_REQUEST_ID, value);
    }
    id.to_owned()
}

/// Appends `-shadow` to the Host's name, before any port, as Envoy does.
fn shadow_host(headers: &mut HeaderMap) {
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let shadowed = match host.parse::<http::uri::Authority>() {
        Ok(authority) => match authority.port_u16() {
            Some(port) => format!("{}-shadow:{port}", authority.host()),
            None => format!("{}-shadow", authority.host()),
        },
        Err(_) => format!("{host}-shadow"),
    };
    if let Ok(value) = HeaderValue::from_str(&shadowed) {
        headers.insert(HOST, value);
    }
}

/// The origin-form target (`/path?query`) an upstream request is sent with: the client's
/// own, shared (a `Bytes` clone), after checking the endpoint can be addressed at all.
fn upstream_uri(target: &UpstreamTarget, path_and_query: &PathAndQuery) -> Result<Uri, String> {
    if let Some(invalid) = &target.invalid {
        return Err(invalid.clone());
    }
    if path_and_query.as_str().starts_with('/') {
        Ok(Uri::from(path_and_query.clone()))
    } else {
        // `OPTIONS *` and similar: forward to the root rather than build an invalid URI.
        Ok(Uri::from_static("/"))
    }
}

/// Adds `Host: endpoint` to an upstream request that has none (an HTTP/1.0 client's), as
/// HTTP/1.1 requires.
fn ensure_host(headers: &mut HeaderMap, target: &UpstreamTarget) {
    if !headers.contains_key(HOST)
        && let Ok(value) = HeaderValue::from_str(&target.text)
    {
        headers.insert(HOST, value);
    }
}

/// An endpoint as the proxy addresses it, rendered once, with its connection pools.
#[derive(Debug, Clone)]
pub(super) struct UpstreamTarget {
    /// Why `host:port` is not a valid URI authority, if it is not (the endpoint cannot
    /// be addressed).
    invalid: Option<String>,
    /// `host:port` as captures show it.
    pub(super) text: Arc<str>,
    /// Keep-alive connections to the endpoint, one pool per worker thread: a connection
    /// is only ever used by the thread whose runtime drives it.
    pools: Arc<[Arc<EndpointPool>]>,
}

impl UpstreamTarget {
    /// Renders `endpoint`, with a pool for each of `workers` threads.
    pub(super) fn new(endpoint: &EndpointAddr, workers: usize) -> Self {
        let text: Arc<str> = Arc::from(endpoint.to_string());
        let invalid = text
            .parse::<Authority>()
            .err()
            .map(|e| format!("invalid upstream target http://{text}: {e}"));
        Self {
            invalid,
            text,
            pools: (0..workers.max(1))
                .map(|_| Arc::new(EndpointPool::new(endpoint.clone())))
                .collect(),
        }
    }

    /// The current worker thread's pool.
    pub(super) fn pool(&self) -> &Arc<EndpointPool> {
        &self.pools[worker_index() % self.pools.len()]
    }
}

/// The proxy's own answer for an error: its status and a one-line text body.
fn error_response(err: &ProxyError) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::text(format!("{err}\n")));
    *response.status_mut() = err.status();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// SplitMix64: spreads consecutive request numbers into unrelated seeds.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_host_goes_before_the_port() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("reviews:9080"));
        shadow_host(&mut headers);
        assert_eq!(headers[HOST], "reviews-shadow:9080");
        headers.insert(HOST, HeaderValue::from_static("reviews"));
        shadow_host(&mut headers);
        assert_eq!(headers[HOST], "reviews-shadow");
    }

    #[test]
    fn a_client_request_id_is_kept_and_a_missing_one_is_added() {
        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("abc"));
        assert_eq!(ensure_request_id(&mut headers), "abc");
        let mut headers = HeaderMap::new();
        let id = ensure_request_id(&mut headers);
        assert_eq!(id.len(), 36);
        assert_eq!(headers[X_REQUEST_ID], id.as_str());
    }

    #[test]
    fn plain_host_headers_split_like_the_authority_parser() {
        for host in [
            "reviews",
            "Reviews.Default:9080",
            "127.0.0.1:15001",
            "a-b.c",
        ] {
            let authority: http::uri::Authority = host.parse().expect("valid test authority");
            assert_eq!(
                plain_host_port(host),
                Some((authority.host(), authority.port_u16())),
                "{host}"
            );
        }
        for host in [
            "[::1]:80", "host:", "host:x1", "ho st", "", ":80", "h:99999",
        ] {
            assert_eq!(plain_host_port(host), None, "{host}");
        }
    }

    #[test]
    fn authority_prefers_the_absolute_form_target() {
        let request = Request::builder()
            .uri("http://Reviews:9080/reviews/1")
            .header(HOST, "other")
            .body(())
            .expect("valid test request");
        let (parts, ()) = request.into_parts();
        assert_eq!(target_authority(&parts), ("reviews".to_owned(), Some(9080)));
        let request = Request::builder()
            .uri("/reviews/1")
            .header(HOST, "127.0.0.1:15001")
            .body(())
            .expect("valid test request");
        let (parts, ()) = request.into_parts();
        assert_eq!(
            target_authority(&parts),
            ("127.0.0.1".to_owned(), Some(15001))
        );
    }
}
