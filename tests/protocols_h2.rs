//! The protocol the sidecar speaks to upstreams, as Istio picks it, and gRPC through the
//! lab: HTTP/2 (h2c) for GRPC and HTTP2 ports, `h2UpgradePolicy`, `useClientProtocol`,
//! `TE: trailers` kept, trailers forwarded to the client and captured for the primary and
//! the shadow. Real servers on 127.0.0.1 (HTTP/1.1 and h2c on one port); bounded.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Version};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mirrorlab::capture::{ShadowOutcome, UpstreamOutcome};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

/// What a server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    version: Version,
    authority: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

/// A server that speaks HTTP/1.1 and h2c (prior knowledge) on one port, and answers every
/// request `200` with `body` and, when `grpc_status` is set, the trailers a gRPC server
/// ends a response with.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _stop: tokio_util::sync::DropGuard,
}

impl Server {
    async fn start(body: &'static str, grpc_status: Option<&'static str>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (record, cancel) = (Arc::clone(&seen), stop.clone());
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = cancel.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => return,
                    },
                };
                let record = Arc::clone(&record);
                let service = service_fn(move |request: Request<Incoming>| {
                    let record = Arc::clone(&record);
                    async move { Ok::<_, Infallible>(answer(request, &record, body, grpc_status).await) }
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server {
            addr,
            seen,
            _stop: stop.drop_guard(),
        }
    }

    async fn wait_for(&self, n: usize) -> Vec<Seen> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let seen = self.seen.lock().expect("seen").clone();
            if seen.len() >= n || tokio::time::Instant::now() >= deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

type AnswerBody =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

async fn answer(
    request: Request<Incoming>,
    record: &Mutex<Vec<Seen>>,
    body: &'static str,
    grpc_status: Option<&'static str>,
) -> Response<AnswerBody> {
    let version = request.version();
    let authority = request.uri().authority().map(ToString::to_string);
    let (parts, incoming) = request.into_parts();
    let (received, trailers) = match incoming.collect().await {
        Ok(collected) => {
            let trailers = collected.trailers().cloned();
            (collected.to_bytes(), trailers)
        }
        Err(_) => (Bytes::new(), None),
    };
    record.lock().expect("seen").push(Seen {
        version,
        authority,
        headers: parts.headers,
        body: received,
        trailers,
    });
    let mut frames = vec![Ok(Frame::data(Bytes::from_static(body.as_bytes())))];
    if let Some(status) = grpc_status {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static(status));
        if status != "0" {
            trailers.insert("grpc-message", HeaderValue::from_static("no such review"));
        }
        frames.push(Ok(Frame::trailers(trailers)));
    }
    let mut response = Response::new(StreamBody::new(futures_util::stream::iter(frames)));
    if grpc_status.is_some() {
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
    }
    response
}

/// `reviews` (v1) and `reviews-v2` on a port named `grpc` with `protocol` (`, protocol:
/// GRPC`, or none), every request to v1 mirrored to v2, with `http_policy` as the
/// DestinationRules' `connectionPool.http`.
fn config(v1: SocketAddr, v2: SocketAddr, protocol: &str, http_policy: &str) -> String {
    let policy = if http_policy.is_empty() {
        String::new()
    } else {
        format!("  trafficPolicy:\n    connectionPool:\n      http: {http_policy}\n")
    };
    common::mirrored_pair_yaml(v1, v2, "grpc", protocol, &policy)
}

/// A unary gRPC call's request message: a length-prefixed frame.
const GRPC_REQUEST: &[u8] = b"\x00\x00\x00\x00\x03\x08\x96\x01";

/// Sends a gRPC-shaped POST to the lab over h2c and reads the whole answer: status,
/// body and trailers.
async fn grpc_call(lab: SocketAddr) -> (u16, Bytes, Option<HeaderMap>) {
    let stream = tokio::net::TcpStream::connect(lab).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
        .await
        .expect("h2c handshake");
    tokio::spawn(connection);
    let request = Request::post("http://reviews:9080/reviews.Reviews/Get")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "5S")
        .body(Full::new(Bytes::from_static(GRPC_REQUEST)))
        .expect("request");
    let response = tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .expect("answered in time")
        .expect("answered");
    let status = response.status().as_u16();
    let collected = tokio::time::timeout(WAIT, response.into_body().collect())
        .await
        .expect("body in time")
        .expect("body");
    let trailers = collected.trailers().cloned();
    (status, collected.to_bytes(), trailers)
}

async fn http1_get(lab: SocketAddr) -> u16 {
    common::client()
        .get(format!("http://{lab}/reviews/1"))
        .header("host", "reviews:9080")
        .send()
        .await
        .expect("answered")
        .status()
        .as_u16()
}

fn shadow_answer(exchange: &mirrorlab::capture::Exchange) -> &mirrorlab::capture::CapturedResponse {
    match &exchange.shadows[0].outcome {
        ShadowOutcome::Sent(UpstreamOutcome::Response(response)) => response,
        other => panic!("the shadow answered: {other:?}"),
    }
}

fn primary_answer(
    exchange: &mirrorlab::capture::Exchange,
) -> &mirrorlab::capture::CapturedResponse {
    match &exchange.primary.as_ref().expect("primary").outcome {
        UpstreamOutcome::Response(response) => response,
        other => panic!("the primary answered: {other:?}"),
    }
}

#[tokio::test]
async fn a_grpc_call_goes_out_as_http2_with_its_trailers_to_the_client_and_the_capture() {
    // Istio's setUpstreamProtocol: a GRPC port's cluster speaks HTTP/2; Envoy's
    // sanitizeTEHeader keeps `TE: trailers`; the router shadows the finalised headers.
    let v1 = Server::start("\x00\x00\x00\x00\x02\x08\x01", Some("0")).await;
    let v2 = Server::start("\x00\x00\x00\x00\x02\x08\x02", Some("5")).await;
    let lab = common::start_lab(&config(v1.addr, v2.addr, ", protocol: GRPC", ""), Some(1));
    let (status, body, trailers) = grpc_call(lab.local_addr()).await;
    assert_eq!(status, 200);
    assert_eq!(
        &body[..],
        b"\x00\x00\x00\x00\x02\x08\x01",
        "the primary's message"
    );
    let trailers = trailers.expect("the primary's trailers reach the client");
    assert_eq!(trailers["grpc-status"], "0");

    for (server, name) in [(&v1, "primary"), (&v2, "shadow")] {
        let seen = server.wait_for(1).await;
        assert_eq!(seen.len(), 1, "the {name} got the call");
        let seen = &seen[0];
        assert_eq!(
            seen.version,
            Version::HTTP_2,
            "the {name} is spoken to in HTTP/2"
        );
        assert_eq!(
            seen.headers["te"], "trailers",
            "the {name} gets TE: trailers"
        );
        assert_eq!(
            seen.body.as_ref(),
            GRPC_REQUEST,
            "the {name} gets the message"
        );
        let authority = seen.authority.as_deref().unwrap_or_default();
        assert!(
            authority.starts_with("reviews"),
            "the {name} sees the host as :authority, got {authority:?}"
        );
    }
    let exchanges = common::wait_for_exchanges(lab.captures(), 1, WAIT).await;
    let exchange = &exchanges[0];
    let steps = &exchange.trace.as_ref().expect("trace").steps;
    assert!(
        steps.iter().any(|s| s.contains("HTTP/2 (h2c)")),
        "the trace says how the upstream is spoken to: {steps:?}"
    );
    let primary = primary_answer(exchange);
    assert_eq!(primary.version, Version::HTTP_2);
    let primary_trailers = primary
        .trailers
        .as_ref()
        .expect("primary trailers captured");
    assert_eq!(primary_trailers["grpc-status"], "0");
    let shadow = shadow_answer(exchange);
    assert_eq!(shadow.version, Version::HTTP_2);
    let shadow_trailers = shadow.trailers.as_ref().expect("shadow trailers captured");
    assert_eq!(shadow_trailers["grpc-status"], "5");
    assert_eq!(shadow_trailers["grpc-message"], "no such review");
    // A gRPC error in a 200 is an error; the diff compares the trailers as fields.
    assert_eq!(
        (primary.grpc_status(), shadow.grpc_status()),
        (Some(0), Some(5))
    );
    assert!(!primary.is_error() && shadow.is_error());
    let diff = mirrorlab::analysis::diff::diff_exchange(exchange, 0, &Default::default())
        .expect("both answered");
    let fields: Vec<(&str, &[String], &[String])> = diff
        .headers
        .iter()
        .map(|h| (h.name.as_str(), &h.primary[..], &h.shadow[..]))
        .collect();
    assert!(
        fields.contains(&("grpc-status", &["0".to_owned()][..], &["5".to_owned()][..])),
        "grpc-status differs: {fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|(name, p, _)| *name == "grpc-message" && p.is_empty()),
        "the shadow's grpc-message is an added field: {fields:?}"
    );
}

#[tokio::test]
async fn an_http_port_is_http1_unless_the_destination_rule_upgrades_it() {
    // shouldH2Upgrade: h2UpgradePolicy UPGRADE upgrades an HTTP port; without it the mesh's
    // default (DO_NOT_UPGRADE) keeps HTTP/1.1, whatever the client spoke.
    let (v1, v2) = (
        Server::start("v1", None).await,
        Server::start("v2", None).await,
    );
    let lab = common::start_lab(&config(v1.addr, v2.addr, ", protocol: HTTP", ""), Some(1));
    assert_eq!(http1_get(lab.local_addr()).await, 200);
    grpc_call(lab.local_addr()).await;
    let seen = v1.wait_for(2).await;
    assert_eq!(
        seen.iter().map(|s| s.version).collect::<Vec<_>>(),
        [Version::HTTP_11, Version::HTTP_11]
    );
    assert_eq!(v2.wait_for(2).await[1].version, Version::HTTP_11);

    let (v1, v2) = (
        Server::start("v1", None).await,
        Server::start("v2", None).await,
    );
    let yaml = config(
        v1.addr,
        v2.addr,
        ", protocol: HTTP",
        "{h2UpgradePolicy: UPGRADE}",
    );
    let lab = common::start_lab(&yaml, Some(1));
    assert_eq!(http1_get(lab.local_addr()).await, 200);
    let seen = v1.wait_for(1).await;
    assert_eq!(seen[0].version, Version::HTTP_2, "upgraded");
    assert_eq!(
        v2.wait_for(1).await[0].version,
        Version::HTTP_2,
        "the mirror too"
    );
}

#[tokio::test]
async fn use_client_protocol_and_a_sniffed_port_speak_what_the_client_spoke() {
    // useClientProtocol (and a port of no known protocol on a sidecar): Envoy's
    // use_downstream_protocol_config, HTTP/1.1 for an HTTP/1.1 client, HTTP/2 for h2c.
    for (protocol, policy) in [(", protocol: HTTP", "{useClientProtocol: true}"), ("", "")] {
        let (v1, v2) = (
            Server::start("v1", None).await,
            Server::start("v2", None).await,
        );
        let lab = common::start_lab(&config(v1.addr, v2.addr, protocol, policy), Some(1));
        assert_eq!(http1_get(lab.local_addr()).await, 200);
        let (status, _, _) = grpc_call(lab.local_addr()).await;
        assert_eq!(status, 200);
        let versions: Vec<Version> = v1.wait_for(2).await.iter().map(|s| s.version).collect();
        assert_eq!(
            versions,
            [Version::HTTP_11, Version::HTTP_2],
            "{protocol} {policy}"
        );
        let versions: Vec<Version> = v2.wait_for(2).await.iter().map(|s| s.version).collect();
        assert_eq!(
            versions,
            [Version::HTTP_11, Version::HTTP_2],
            "{protocol} {policy}"
        );
    }
}

#[tokio::test]
async fn request_trailers_reach_the_primary_and_the_shadow() {
    // router.cc maybeDoShadowing: the shadow's request carries the downstream trailers.
    let v1 = Server::start("\x00\x00\x00\x00\x00", Some("0")).await;
    let v2 = Server::start("\x00\x00\x00\x00\x00", Some("0")).await;
    let lab = common::start_lab(&config(v1.addr, v2.addr, ", protocol: GRPC", ""), Some(1));
    let stream = tokio::net::TcpStream::connect(lab.local_addr())
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, AnswerBody>(TokioIo::new(stream))
        .await
        .expect("h2c handshake");
    tokio::spawn(connection);
    let mut trailers = HeaderMap::new();
    trailers.insert("x-stream-checksum", HeaderValue::from_static("c0ffee"));
    let frames = vec![
        Ok(Frame::data(Bytes::from_static(GRPC_REQUEST))),
        Ok(Frame::trailers(trailers)),
    ];
    let request = Request::post("http://reviews:9080/reviews.Reviews/Upload")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .expect("request");
    let response = tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .expect("in time")
        .expect("answered");
    assert_eq!(response.status(), 200);
    for (server, name) in [(&v1, "primary"), (&v2, "shadow")] {
        let seen = server.wait_for(1).await;
        assert_eq!(seen.len(), 1, "the {name} got the call");
        let trailers = seen[0]
            .trailers
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no trailers"));
        assert_eq!(
            trailers["x-stream-checksum"], "c0ffee",
            "the {name}'s trailers"
        );
        assert_eq!(seen[0].body.as_ref(), GRPC_REQUEST);
    }
}
