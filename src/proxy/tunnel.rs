//! Connections the lab passes on once their request is answered: an HTTP/1.1 upgrade
//! (WebSocket) forwarded to the route's primary, and CONNECT (the lab as `HTTPS_PROXY`).
//!
//! Istio turns WebSocket upgrades on for every HTTP route (`route.go`: `UpgradeConfigs`
//! with `websocket`), so Envoy's router forwards the upgrade request to an endpoint of the
//! route's destination, answers the client with the upstream's `101`, and then copies
//! bytes both ways until one side closes. Neither kind is mirrored: router.cc shadows a
//! request in `onRequestComplete`, once its body has ended, and an upgraded or CONNECT
//! stream does not end while it is open. The exchange records the tunnel: its duration
//! and the bytes each way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONNECTION, UPGRADE};
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::capture::{
    CapturedBody, CapturedRequest, CapturedResponse, Exchange, PrimaryRecord, ResponseFlags,
    Tunnel, UpstreamErrorKind, UpstreamFailure, UpstreamOutcome, owned_headers,
};
use crate::routing::RouteTrace;
use crate::routing::action::Forward;

use super::Shared;
use super::arrival::{Arrival, Routed};
use super::body::{ProxyBody, UpstreamBody};
use super::error::{ProxyError, classify};
use super::finalize;
use super::forward::Filtered;
use super::local::LocalReply;
use super::pool::{SendFailure, SendOptions};
use super::target::UpstreamTarget;

/// How long a CONNECT waits for its TCP connection (Envoy's default connect timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Without a route timeout, how long an upgrade request waits for the upstream's answer.
const UPGRADE_ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// The `Upgrade` value of a WebSocket upgrade request (`Connection` lists `upgrade`), as
/// Envoy's `Utility::isUpgrade` tells one. Istio turns on `websocket` only: an `h2c`
/// upgrade is dropped by Envoy's HTTP/1 codec and the request served as any other, and so
/// is any other upgrade here (Envoy would refuse it, 403 `upgrade_failed`; docs/SEMANTICS.md).
pub(super) fn upgrade_protocol(parts: &Parts) -> Option<HeaderValue> {
    if parts.version != http::Version::HTTP_11 {
        return None;
    }
    let upgrade = parts
        .headers
        .get(UPGRADE)
        .filter(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))?;
    let listed = parts.headers.get_all(CONNECTION).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
    });
    listed.then(|| upgrade.clone())
}

/// An upgrade request, as the router hands it to the tunnel.
pub(super) struct Upgrade<'r> {
    pub arrival: Arrival,
    pub routed: Routed,
    pub filtered: Filtered,
    pub forward: &'r Forward,
    pub protocol: HeaderValue,
}

/// The upstream side of an upgrade: where it went, what it upgrades to, when it was sent.
struct Leg<'a> {
    label: &'a str,
    endpoint: Arc<str>,
    protocol: String,
    sent_at: Instant,
}

/// What is left of the client's request once its head went upstream.
struct Client {
    id: u64,
    started_at: std::time::SystemTime,
    request: CapturedRequest,
    request_id: String,
    upgrade: Option<OnUpgrade>,
}

impl Client {
    fn new(arrival: &mut Arrival, request_id: String) -> Client {
        Client {
            id: arrival.id,
            started_at: arrival.started_at,
            request: CapturedRequest {
                method: arrival.parts.method.clone(),
                uri: arrival.path_and_query.as_str().to_owned(),
                authority: arrival.host.clone(),
                version: arrival.parts.version,
                headers: owned_headers(&arrival.parts.headers),
                body: CapturedBody::default(),
            },
            request_id,
            upgrade: arrival.parts.extensions.remove::<OnUpgrade>(),
        }
    }

    fn exchange(
        self,
        trace: RouteTrace,
        primary: PrimaryRecord,
        flags: ResponseFlags,
        tunnel: Option<Tunnel>,
    ) -> Exchange {
        Exchange {
            id: self.id,
            request_id: self.request_id,
            started_at: self.started_at,
            trace: Some(trace),
            request: self.request,
            primary: Some(primary),
            forwarded: None,
            shadows: Vec::new(),
            flags,
            tunnel: tunnel.map(Box::new),
        }
    }
}

impl Shared {
    /// Forwards an upgrade request to the route's primary and, on its `101`, joins the two
    /// connections. Any other answer goes to the client as it came.
    pub(super) async fn upgrade(self: Arc<Self>, up: Upgrade<'_>) -> Response<ProxyBody> {
        let Upgrade {
            mut arrival,
            routed,
            filtered,
            forward,
            protocol,
        } = up;
        let mut rng = filtered.rng;
        let authority = arrival.parts.uri.authority().cloned();
        let request_id = finalize::prepare(&mut arrival.parts.headers, authority.as_ref());
        let mut trace = routed.resolution.trace;
        trace.steps = filtered.steps;
        let client = Client::new(&mut arrival, request_id);
        let Some(destination) = forward.pick(rng.f64()) else {
            let detail = "no destination".to_owned();
            return self.tunnel_failed(
                client,
                trace,
                "",
                "",
                UpstreamErrorKind::NoEndpoint,
                detail,
            );
        };
        let mut headers = arrival.parts.headers;
        let path = match finalize::finalize(
            &mut headers,
            &arrival.path_and_query,
            forward,
            destination,
            routed.resolution.matched,
        ) {
            Ok(finalized) => {
                trace.steps.extend(finalized.steps);
                finalized.path_and_query
            }
            Err(detail) => {
                trace.steps.push(detail);
                arrival.path_and_query.clone()
            }
        };
        // The hop-by-hop fields the sidecar removed, put back: this hop is the upgrade.
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, protocol.clone());
        let label = destination.upstream.label.clone();
        trace.steps.push(format!(
            "{} upgrade: passed through to {label}, not mirrored (Envoy shadows a request once it is complete; an upgraded one is not while it is open)",
            protocol.to_str().unwrap_or("an")
        ));
        let Some(endpoint) = destination.upstream.next_endpoint().cloned() else {
            let detail = "no healthy upstream".to_owned();
            return self.tunnel_failed(
                client,
                trace,
                &label,
                "",
                UpstreamErrorKind::NoEndpoint,
                detail,
            );
        };
        let target = self.upstream_target(&endpoint, &destination.upstream);
        target.ensure_host(&mut headers);
        let endpoint_text = Arc::clone(&target.text);
        let opts = SendOptions::plain(destination.upstream.policy.connect_timeout, false);
        let sent_at = Instant::now();
        let mut request = Request::new(UpstreamBody::Empty);
        *request.method_mut() = client.request.method.clone();
        *request.headers_mut() = headers;
        let limit = forward.timeout.unwrap_or(UPGRADE_ANSWER_TIMEOUT);
        let answer = send_upgrade(&target, &opts, request, &path, sent_at);
        let answered = match tokio::time::timeout(limit, answer).await {
            Ok(answered) => answered,
            Err(_) => Err((
                UpstreamErrorKind::Timeout,
                format!("no answer to the upgrade within {limit:?}"),
            )),
        };
        match answered {
            Ok(response) => {
                let protocol = protocol.to_str().unwrap_or("upgrade").to_ascii_lowercase();
                let leg = Leg {
                    label: &label,
                    endpoint: endpoint_text,
                    protocol,
                    sent_at,
                };
                self.upgraded(client, trace, leg, response).await
            }
            Err((kind, detail)) => {
                self.tunnel_failed(client, trace, &label, &endpoint_text, kind, detail)
            }
        }
    }

    /// The upstream's answer to an upgrade: a `101` joins the connections; anything else
    /// is the client's answer (its body read, up to the capture cap, then sent on).
    async fn upgraded(
        self: Arc<Self>,
        client: Client,
        trace: RouteTrace,
        leg: Leg<'_>,
        mut response: Response<hyper::body::Incoming>,
    ) -> Response<ProxyBody> {
        let Leg {
            label,
            endpoint,
            protocol,
            sent_at,
        } = leg;
        let ttfb = sent_at.elapsed();
        let captured = |response: &Response<hyper::body::Incoming>| CapturedResponse {
            status: response.status(),
            headers: owned_headers(response.headers()),
            body: CapturedBody::default(),
            ttfb,
            total: ttfb,
            version: response.version(),
            trailers: None,
        };
        let primary = PrimaryRecord {
            target: Arc::from(label),
            endpoint,
            outcome: UpstreamOutcome::Response(captured(&response)),
            attempts: Vec::new(),
        };
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            // Not upgraded: an ordinary answer (a refusal, most often: small), read whole.
            let (mut parts, body) = response.into_parts();
            // Up to the buffer limit, within the time an upgrade's answer gets.
            let limit = self.settings.mirror_body_limit;
            let read = http_body_util::Limited::new(body, limit).collect();
            let collected = tokio::time::timeout(UPGRADE_ANSWER_TIMEOUT, read)
                .await
                .unwrap_or_else(|_| Err("the answer's body did not arrive in time".into()));
            let body = match collected {
                Ok(collected) => collected.to_bytes(),
                Err(err) => {
                    let detail = format!("the answer to the upgrade: {err}");
                    return self.tunnel_failed(
                        client,
                        trace,
                        label,
                        &primary.endpoint,
                        UpstreamErrorKind::Reset,
                        detail,
                    );
                }
            };
            let mut primary = primary;
            if let UpstreamOutcome::Response(r) = &mut primary.outcome {
                r.body = CapturedBody {
                    bytes: body.clone(),
                    total_len: body.len() as u64,
                    truncated: false,
                };
                r.total = sent_at.elapsed();
            }
            self.hub
                .publish(client.exchange(trace, primary, ResponseFlags::NONE, None));
            super::hop::strip_hop_by_hop(&mut parts.headers);
            return Response::from_parts(parts, ProxyBody::text(body));
        }
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        let mut answer = Response::new(ProxyBody::text(Bytes::new()));
        *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *answer.headers_mut() = response.headers().clone();
        tokio::spawn(async move {
            let mut client = client;
            let from_client = client.upgrade.take();
            let tunnel = join(protocol, from_client, async {
                upstream_upgrade
                    .await
                    .map(TokioIo::new)
                    .map_err(|e| e.to_string())
            })
            .await;
            let mut primary = primary;
            if let UpstreamOutcome::Response(r) = &mut primary.outcome {
                r.total = sent_at.elapsed();
            }
            let exchange = client.exchange(trace, primary, ResponseFlags::NONE, Some(tunnel));
            self.hub.publish(exchange);
        });
        answer
    }

    /// The client's answer when an upgrade or a tunnel could not be set up: Envoy's, as for
    /// any failed primary; the exchange records the failure.
    fn tunnel_failed(
        &self,
        client: Client,
        trace: RouteTrace,
        label: &str,
        endpoint: &str,
        kind: UpstreamErrorKind,
        detail: String,
    ) -> Response<ProxyBody> {
        let err = ProxyError::upstream(kind, label, endpoint, detail.clone());
        let reply = LocalReply::for_error(&err);
        let primary = PrimaryRecord {
            target: Arc::from(label),
            endpoint: Arc::from(endpoint),
            outcome: UpstreamOutcome::Failed(UpstreamFailure {
                kind,
                detail,
                elapsed: Duration::ZERO,
                partial: None,
            }),
            attempts: Vec::new(),
        };
        self.counters.primary_error();
        self.hub
            .publish(client.exchange(trace, primary, err.flags(), None));
        reply.into_response()
    }

    /// CONNECT: a TCP connection to the target, the client answered `200`, then bytes both
    /// ways. The lab's own convenience as an `HTTPS_PROXY`: a sidecar's route table has no
    /// CONNECT route (Istio generates no `connect_matcher`), so the mesh would not tunnel it.
    pub(super) async fn connect_tunnel(
        self: Arc<Self>,
        mut arrival: Arrival,
    ) -> Response<ProxyBody> {
        // Only for this machine: with remote clients allowed, CONNECT would make the lab an
        // open relay to anything it can reach.
        if !arrival.client.is_some_and(|c| c.ip().is_loopback()) {
            let mut reply = Response::new(ProxyBody::text(Bytes::from_static(
                b"CONNECT is served to clients on this machine only\n",
            )));
            *reply.status_mut() = StatusCode::FORBIDDEN;
            return reply;
        }
        let target = arrival
            .parts
            .uri
            .authority()
            .map(ToString::to_string)
            .unwrap_or_default();
        let client = Client::new(&mut arrival, String::new());
        let trace = RouteTrace {
            virtual_service: Arc::from("CONNECT"),
            route_name: Some(Arc::from("tunnel")),
            match_summary: Arc::from(format!("CONNECT {target}")),
            steps: vec![format!(
                "CONNECT: tunnelled to {target}, not mirrored (the lab's own; a sidecar has no CONNECT route)"
            )],
            ..RouteTrace::default()
        };
        let connected = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect(target.as_str()),
        )
        .await
        {
            Ok(connected) => connected.map_err(|e| classify(&e)),
            Err(_) => Err((
                UpstreamErrorKind::ConnectTimeout,
                format!("no connection within {CONNECT_TIMEOUT:?}"),
            )),
        };
        let stream = match connected {
            Ok(stream) => stream,
            Err((kind, detail)) => {
                return self.tunnel_failed(client, trace, "CONNECT", &target, kind, detail);
            }
        };
        let primary = PrimaryRecord {
            target: Arc::from("CONNECT"),
            endpoint: Arc::from(target),
            outcome: UpstreamOutcome::Response(CapturedResponse {
                status: StatusCode::OK,
                headers: http::HeaderMap::new(),
                body: CapturedBody::default(),
                ttfb: Duration::ZERO,
                total: Duration::ZERO,
                version: client.request.version,
                trailers: None,
            }),
            attempts: Vec::new(),
        };
        let shared = Arc::clone(&self);
        tokio::spawn(async move {
            let mut client = client;
            let from_client = client.upgrade.take();
            let started = Instant::now();
            let tunnel = join("CONNECT".to_owned(), from_client, async { Ok(stream) }).await;
            let mut primary = primary;
            if let UpstreamOutcome::Response(r) = &mut primary.outcome {
                r.total = started.elapsed();
            }
            let exchange = client.exchange(trace, primary, ResponseFlags::NONE, Some(tunnel));
            shared.hub.publish(exchange);
        });
        Response::new(ProxyBody::text(Bytes::new()))
    }
}

/// Sends an upgrade request on a connection of its own (one that hyper lets go of once
/// upgraded) and waits for the answer's head.
async fn send_upgrade(
    target: &UpstreamTarget,
    opts: &SendOptions<'_>,
    mut request: Request<UpstreamBody>,
    path: &http::uri::PathAndQuery,
    sent_at: Instant,
) -> Result<Response<hyper::body::Incoming>, SendFailure> {
    *request.uri_mut() = target
        .uri(path)
        .map_err(|e| (UpstreamErrorKind::Other, e))?;
    let pool = target.pool();
    let stream = pool.open_stream(opts, sent_at, None).await?;
    let io = super::tls::secure(stream, pool.tls.as_ref(), opts.connect_timeout).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, UpstreamBody>(TokioIo::new(io))
            .await
            .map_err(|e| classify(&e))?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    sender.send_request(request).await.map_err(|e| classify(&e))
}

/// Waits for both sides of a tunnel and copies bytes both ways until one closes.
async fn join<U>(
    protocol: String,
    client: Option<OnUpgrade>,
    upstream: impl std::future::Future<Output = Result<U, String>>,
) -> Tunnel
where
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let started = Instant::now();
    let tunnel = |bytes_up, bytes_down, error| Tunnel {
        protocol: protocol.clone(),
        duration: started.elapsed(),
        bytes_up,
        bytes_down,
        error,
    };
    let Some(client) = client else {
        return tunnel(
            0,
            0,
            Some("the client connection cannot be upgraded".to_owned()),
        );
    };
    let (client, upstream) = tokio::join!(client, upstream);
    let (client, upstream) = match (client, upstream) {
        (Ok(client), Ok(upstream)) => (client, upstream),
        (Err(err), _) => return tunnel(0, 0, Some(format!("client: {err}"))),
        (_, Err(err)) => return tunnel(0, 0, Some(format!("upstream: {err}"))),
    };
    // Bytes are counted as they are read, so a tunnel that ends in a reset (as WebSockets
    // often do) still says how much went through.
    let mut client = Counted::new(TokioIo::new(client));
    let mut upstream = Counted::new(upstream);
    let error = tokio::io::copy_bidirectional(&mut client, &mut upstream)
        .await
        .err()
        .map(|e| e.to_string());
    tunnel(client.read, upstream.read, error)
}

/// A connection whose reads are counted.
struct Counted<T> {
    inner: T,
    read: u64,
}

impl<T> Counted<T> {
    fn new(inner: T) -> Self {
        Self { inner, read: 0 }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        this.read += (buf.filled().len() - before) as u64;
        polled
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counted<T> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
