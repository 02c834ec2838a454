//! What the mesh sets up between the sidecar and an upstream, through the proxy with real
//! servers on 127.0.0.1: retries (Istio's default policy, `retries`), load balancing,
//! circuit breaking and outlier detection. Each test cites the rule it checks; bounded in
//! requests and time.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mirrorlab::capture::{AttemptOutcome, UpstreamErrorKind};
use mirrorlab::proxy::{Proxy, ProxySettings};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

/// What a test server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
    body: Bytes,
}

/// A server on 127.0.0.1 that answers by a rule on the request's number (from 0), after a
/// delay; it counts connections and records what it got.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    _stop: CancellationToken,
}

impl Server {
    async fn start(delay: Duration, status: fn(usize) -> u16) -> Server {
        Server::start_with_headers(delay, status, |_| Vec::new()).await
    }

    /// [`Server::start`] with the headers `headers(n)` on the answer after `n` served.
    async fn start_with_headers(
        delay: Duration,
        status: fn(usize) -> u16,
        headers: fn(usize) -> Vec<(&'static str, &'static str)>,
    ) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let (rec, conns, cancel) = (Arc::clone(&seen), Arc::clone(&connections), stop.clone());
        let count = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    () = cancel.cancelled() => break,
                    s = listener.accept() => match s { Ok((s, _)) => s, Err(_) => continue },
                };
                conns.fetch_add(1, Ordering::SeqCst);
                let (rec, count) = (Arc::clone(&rec), Arc::clone(&count));
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (rec, count) = (Arc::clone(&rec), Arc::clone(&count));
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let n = count.fetch_add(1, Ordering::SeqCst);
                            rec.lock().expect("lock").push(Seen {
                                headers: parts.headers,
                                body,
                            });
                            tokio::time::sleep(delay).await;
                            let mut response =
                                Response::new(Full::new(Bytes::from(format!("answer {n}"))));
                            *response.status_mut() =
                                StatusCode::from_u16(status(n)).expect("status");
                            for (name, value) in headers(n) {
                                response
                                    .headers_mut()
                                    .insert(name, value.parse().expect("value"));
                            }
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server {
            addr,
            seen,
            connections,
            _stop: stop,
        }
    }

    async fn ok() -> Server {
        Server::start(Duration::ZERO, |_| 200).await
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

/// `reviews` on port 9080 with these endpoints (all `version: v1`), a DestinationRule with
/// `policy` (YAML under `trafficPolicy:`, or empty), and a VirtualService route with
/// `route_extra` (YAML under the route).
fn config(endpoints: &[SocketAddr], policy: &str, route_extra: &str) -> String {
    let endpoints: String = endpoints
        .iter()
        .map(|a| {
            format!(
                "  - {{address: 127.0.0.1, ports: {{http: {}}}, labels: {{version: v1}}}}\n",
                a.port()
            )
        })
        .collect();
    let policy = if policy.is_empty() {
        String::new()
    } else {
        format!("  trafficPolicy:\n{policy}")
    };
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints:
{endpoints}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
{policy}  subsets:
  - {{name: v1, labels: {{version: v1}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - route: [{{destination: {{host: reviews, subset: v1}}}}]
{route_extra}"
    )
}

fn serve(yaml: &str) -> (Proxy, CancellationToken) {
    common::start_proxy(common::route_table(yaml), ProxySettings::default())
}

async fn get(proxy: &Proxy, path: &str) -> (u16, HeaderMap, String) {
    let response = common::client()
        .get(format!("http://{}{path}", proxy.local_addr()))
        .header("host", "reviews")
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn the_default_policy_retries_a_refused_connection_on_the_other_endpoint() {
    // retry.go DefaultPolicy: 2 retries on connect-failure with the previous-hosts
    // predicate: a subset with one refusing endpoint answers every request.
    let good = Server::ok().await;
    let refusing = common::refusing_addr();
    let (proxy, _c) = serve(&config(&[refusing, good.addr], "", ""));
    for i in 0..20 {
        let (status, _, body) = get(&proxy, &format!("/r/{i}")).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(good.seen().len(), 20);
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 20, WAIT).await;
    let retried: Vec<_> = exchanges
        .iter()
        .filter_map(|e| e.primary.as_ref())
        .filter(|p| p.attempt_count() == 2)
        .collect();
    assert!(
        !retried.is_empty(),
        "some requests picked the refusing endpoint first"
    );
    for p in &retried {
        assert_eq!(
            p.attempts[0].outcome,
            AttemptOutcome::Failed(UpstreamErrorKind::Refused)
        );
        assert_eq!(&*p.attempts[0].endpoint, refusing.to_string());
        assert_eq!(&*p.endpoint, good.addr.to_string());
    }
    assert!(proxy.counters().retries >= retried.len() as u64);
}

#[tokio::test]
async fn the_default_policy_retries_a_grpc_request_answered_unavailable() {
    // retry.go DefaultPolicy names `unavailable`; retry_state_impl.cc wouldRetryFromHeaders
    // reads grpc-status from a trailers-only answer (the status in the response head): the
    // first answer, UNAVAILABLE (14), is retried, and the client gets the second's OK.
    let server = Server::start_with_headers(
        Duration::ZERO,
        |_| 200,
        |n| {
            let status = if n == 0 { "14" } else { "0" };
            vec![
                ("content-type", "application/grpc"),
                ("grpc-status", status),
            ]
        },
    )
    .await;
    let (proxy, _c) = serve(&config(&[server.addr], "", ""));
    let response = common::client()
        .post(format!("http://{}/reviews.Reviews/Get", proxy.local_addr()))
        .header("host", "reviews")
        .header("content-type", "application/grpc")
        .body(vec![0u8, 0, 0, 0, 2, 8, 1])
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "0");
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "tried twice");
    assert_eq!(
        seen[1].body, seen[0].body,
        "the retry sends the same message"
    );
    assert_eq!(seen[1].headers["x-envoy-attempt-count"], "2");
}

#[tokio::test]
async fn when_every_attempt_fails_the_client_gets_envoys_retried_answer_with_urx() {
    // router.cc onUpstreamReset: after retries the body says "retried and the latest
    // reset reason"; the limit adds URX to UF.
    let (proxy, _c) = serve(&config(
        &[common::refusing_addr(), common::refusing_addr()],
        "",
        "",
    ));
    let (status, _, body) = get(&proxy, "/").await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure"
    );
    let e = &common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await[0];
    assert_eq!(
        e.primary.as_ref().expect("primary").attempt_count(),
        3,
        "1 + 2 retries"
    );
    assert_eq!(e.flags.to_string(), "UF,URX");
}

#[tokio::test]
async fn the_default_policy_does_not_retry_a_503() {
    // Istio 1.24 removed 503 from the default retriable codes.
    let failing = Server::start(Duration::ZERO, |_| 503).await;
    let (proxy, _c) = serve(&config(&[failing.addr], "", ""));
    assert_eq!(get(&proxy, "/").await.0, 503);
    assert_eq!(failing.seen().len(), 1);
}

#[tokio::test]
async fn attempts_zero_turns_retries_off() {
    // retry.go ConvertPolicy: attempts <= 0 gives no retry policy.
    let (proxy, _c) = serve(&config(
        &[common::refusing_addr()],
        "",
        "    retries: {attempts: 0}\n",
    ));
    let (status, _, body) = get(&proxy, "/").await;
    assert_eq!(status, 503);
    assert!(
        body.ends_with("reset reason: remote connection failure"),
        "no retried: {body}"
    );
    let e = &common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await[0];
    assert_eq!(e.primary.as_ref().expect("primary").attempt_count(), 1);
}

#[tokio::test]
async fn a_shadow_is_sent_once_whatever_the_route_retries() {
    // router.cc: the shadow goes through the async client with the route's timeout and
    // no retry policy; the primary retries on its own.
    let flaky = Server::start(Duration::ZERO, |n| if n == 0 { 503 } else { 200 }).await;
    let shadow = Server::start(Duration::ZERO, |_| 503).await;
    let mirror = format!(
        "    retries: {{attempts: 3, retryOn: 5xx}}
    mirror: {{host: shadow}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: shadow}}
spec:
  hosts: [shadow]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]
",
        shadow.addr.port()
    );
    let (proxy, _c) = serve(&config(&[flaky.addr], "", &mirror));
    assert_eq!(get(&proxy, "/").await.0, 200);
    let e = &common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await[0];
    assert_eq!(e.primary.as_ref().expect("primary").attempt_count(), 2);
    assert_eq!(flaky.seen().len(), 2);
    assert_eq!(shadow.seen().len(), 1, "the shadow's 503 is not retried");
}

#[tokio::test]
async fn retries_on_5xx_let_no_failure_of_a_flaky_upstream_through() {
    // retry_state_impl.cc wouldRetryFromHeaders: 5xx retries any 5xx answer; each retry
    // carries x-envoy-attempt-count.
    let flaky = Server::start(Duration::ZERO, |n| if n % 2 == 0 { 503 } else { 200 }).await;
    let (proxy, _c) = serve(&config(
        &[flaky.addr],
        "",
        "    retries: {attempts: 2, retryOn: 5xx}\n",
    ));
    for _ in 0..10 {
        assert_eq!(get(&proxy, "/").await.0, 200);
    }
    let seen = flaky.seen();
    assert_eq!(seen.len(), 20, "every request needed one retry");
    let counts: Vec<_> = seen
        .iter()
        .map(|s| s.headers["x-envoy-attempt-count"].clone())
        .collect();
    assert_eq!(counts[0], "1");
    assert_eq!(counts[1], "2");
}

#[tokio::test]
async fn a_retried_post_sends_the_same_body_again() {
    let flaky = Server::start(Duration::ZERO, |n| if n == 0 { 502 } else { 200 }).await;
    let (proxy, _c) = serve(&config(
        &[flaky.addr],
        "",
        "    retries: {attempts: 1, retryOn: gateway-error}\n",
    ));
    let response = common::client()
        .post(format!("http://{}/orders", proxy.local_addr()))
        .header("host", "reviews")
        .body("order=42")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    let seen = flaky.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].body, "order=42");
}

#[tokio::test]
async fn a_body_above_the_buffer_limit_is_not_retried() {
    // router.cc decodeData: past the buffer limit the retry state is dropped
    // (retry_or_shadow_abandoned): the client gets the failed attempt's answer.
    let flaky = Server::start(Duration::ZERO, |n| if n == 0 { 503 } else { 200 }).await;
    let (proxy, _c) = serve(&config(
        &[flaky.addr],
        "",
        "    retries: {attempts: 2, retryOn: 5xx}\n",
    ));
    let big = vec![b'x'; 2 * 1024 * 1024];
    let response = common::client()
        .post(format!("http://{}/upload", proxy.local_addr()))
        .header("host", "reviews")
        .body(big)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 503);
    assert_eq!(flaky.seen().len(), 1);
}

#[tokio::test]
async fn a_per_try_timeout_cuts_a_slow_attempt_and_the_retry_goes_elsewhere() {
    // upstream_request.cc onPerTryTimeout: 504 UT per try; retried by 5xx.
    let slow = Server::start(Duration::from_secs(3), |_| 200).await;
    let fast = Server::ok().await;
    let (proxy, _c) = serve(&config(
        &[slow.addr, fast.addr],
        "    loadBalancer: {simple: ROUND_ROBIN}\n",
        "    retries: {attempts: 2, perTryTimeout: 300ms, retryOn: 5xx}\n",
    ));
    for _ in 0..4 {
        assert_eq!(get(&proxy, "/").await.0, 200);
    }
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 4, WAIT).await;
    let cut = exchanges
        .iter()
        .filter_map(|e| e.primary.as_ref())
        .find(|p| p.attempt_count() == 2)
        .expect("a request that tried the slow endpoint first");
    assert_eq!(
        cut.attempts[0].outcome,
        AttemptOutcome::Failed(UpstreamErrorKind::Timeout)
    );
    assert!(
        cut.attempts[0].took < Duration::from_secs(2),
        "{:?}",
        cut.attempts[0].took
    );
}

#[tokio::test]
async fn a_consistent_hash_on_a_header_keeps_a_user_on_one_endpoint() {
    // route.go ConsistentHashToHashPolicy: httpHeaderName → a header hash on a ring.
    let servers = [Server::ok().await, Server::ok().await, Server::ok().await];
    let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();
    let (proxy, _c) = serve(&config(
        &addrs,
        "    loadBalancer: {consistentHash: {httpHeaderName: x-user}}\n",
        "",
    ));
    for _ in 0..10 {
        let response = common::client()
            .get(format!("http://{}/", proxy.local_addr()))
            .header("host", "reviews")
            .header("x-user", "jason")
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 200);
    }
    let counts: Vec<usize> = servers.iter().map(|s| s.seen().len()).collect();
    assert!(
        counts.contains(&10),
        "one endpoint got them all: {counts:?}"
    );
}

#[tokio::test]
async fn a_cookie_hash_with_a_ttl_sets_the_cookie_as_envoy_does() {
    // router.h addDownstreamSetCookie: absent cookie + ttl → generated, quoted, HttpOnly.
    let (a, b) = (Server::ok().await, Server::ok().await);
    let (proxy, _c) = serve(&config(
        &[a.addr, b.addr],
        "    loadBalancer: {consistentHash: {httpCookie: {name: session, ttl: 60s, path: /}}}\n",
        "",
    ));
    let (status, headers, _) = get(&proxy, "/").await;
    assert_eq!(status, 200);
    let cookie = headers["set-cookie"].to_str().expect("text").to_owned();
    assert!(cookie.starts_with("session=\""), "{cookie}");
    assert!(
        cookie.ends_with("; Max-Age=60; Path=/; HttpOnly"),
        "{cookie}"
    );
}

#[tokio::test]
async fn connection_pool_limits_overflow_as_503_uo() {
    // conn_pool_base.cc: one connection, one pending request; the rest overflow: 503
    // "reset reason: overflow", x-envoy-overloaded: true, flag UO, never retried.
    let slow = Server::start(Duration::from_millis(600), |_| 200).await;
    let (proxy, _c) = serve(&config(
        &[slow.addr],
        "    connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}\n",
        "",
    ));
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let url = format!("http://{}/", proxy.local_addr());
        tasks.push(tokio::spawn(async move {
            let r = common::client()
                .get(url)
                .header("host", "reviews")
                .send()
                .await
                .expect("answered");
            let overloaded = r.headers().get("x-envoy-overloaded").is_some();
            (
                r.status().as_u16(),
                overloaded,
                r.text().await.unwrap_or_default(),
            )
        }));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let mut ok = 0;
    let mut overflow = 0;
    for t in tasks {
        let (status, overloaded, body) = t.await.expect("task");
        match status {
            200 => ok += 1,
            503 => {
                overflow += 1;
                assert!(overloaded);
                assert!(body.ends_with("reset reason: overflow"), "{body}");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        (ok, overflow),
        (2, 3),
        "one on the connection, one pending, three over"
    );
    assert_eq!(slow.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn max_requests_per_connection_one_opens_a_connection_per_request() {
    let server = Server::ok().await;
    let (proxy, _c) = serve(&config(
        &[server.addr],
        "    connectionPool: {http: {maxRequestsPerConnection: 1}}\n",
        "",
    ));
    for _ in 0..4 {
        assert_eq!(get(&proxy, "/").await.0, 200);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn outlier_detection_ejects_an_endpoint_that_keeps_failing() {
    // outlier_detection_impl.cc: ejected at the Nth consecutive 5xx, within
    // maxEjectionPercent; picks pass over it until its ejection time and a sweep.
    let bad = Server::start(Duration::ZERO, |_| 503).await;
    let good = Server::ok().await;
    let (proxy, _c) = serve(&config(
        &[bad.addr, good.addr],
        "    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50}\n",
        "",
    ));
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get(&proxy, "/").await.0);
    }
    let failures = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(
        failures, 2,
        "two 503s eject it, then only the good endpoint answers: {statuses:?}"
    );
    assert_eq!(bad.seen().len(), 2);
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 20, WAIT).await;
    let last = exchanges
        .last()
        .and_then(|e| e.primary.as_ref())
        .expect("primary");
    assert_eq!(
        last.attempts.first().map(|a| a.skipped_ejected),
        Some(1),
        "{last:?}"
    );
    // The single attempt whose 503 ejected the endpoint is kept, marked.
    let ejecting: Vec<_> = exchanges
        .iter()
        .filter_map(|e| e.primary.as_ref())
        .flat_map(|p| &p.attempts)
        .filter(|a| a.ejected)
        .collect();
    assert_eq!(ejecting.len(), 1, "{ejecting:?}");
    assert_eq!(&*ejecting[0].endpoint, bad.addr.to_string());
    assert_eq!(
        ejecting[0].outcome,
        AttemptOutcome::Status(StatusCode::SERVICE_UNAVAILABLE)
    );
}

#[tokio::test]
async fn with_the_default_max_ejection_percent_two_endpoints_are_never_ejected() {
    // Envoy's ejectHost: (ejected + 1) / hosts must stay within 10%.
    let bad = Server::start(Duration::ZERO, |_| 503).await;
    let good = Server::ok().await;
    let (proxy, _c) = serve(&config(
        &[bad.addr, good.addr],
        "    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection: {consecutive5xxErrors: 1}\n",
        "",
    ));
    for _ in 0..10 {
        get(&proxy, "/").await;
    }
    assert_eq!(bad.seen().len(), 5, "round robin still reaches it");
}

#[tokio::test]
async fn the_analysis_counts_attempts_retries_and_ejections_per_endpoint() {
    // What the dashboard and the report show of the same outlier run: the bad endpoint's
    // two failures and its ejection, the good one's attempts, and the retried requests.
    let bad = Server::start(Duration::ZERO, |_| 503).await;
    let good = Server::ok().await;
    let lab = common::start_lab(
        &config(
            &[bad.addr, good.addr],
            "    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50}\n",
            "    retries: {attempts: 1, retryOn: 5xx}\n",
        ),
        Some(1),
    );
    for _ in 0..10 {
        let response = common::client()
            .get(format!("http://{}/", lab.local_addr()))
            .header("host", "reviews")
            .send()
            .await
            .expect("answered");
        assert_eq!(
            response.status(),
            200,
            "a 503 is retried on the good endpoint"
        );
    }
    let exchanges = common::wait_for_exchanges(lab.captures(), 10, WAIT).await;
    let har = serde_json::to_value(mirrorlab::export::build_har(
        &exchanges,
        &mirrorlab::export::HarOptions::default(),
        None,
    ))
    .expect("HAR");
    let attempts: Vec<_> = har["log"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["_attempts"].as_array())
        .flatten()
        .collect();
    assert!(
        attempts
            .iter()
            .any(|a| a["ejected"] == true && a["outcome"] == "503"),
        "{attempts:?}"
    );
    let snapshot = lab.shutdown(WAIT).await;
    let upstream = &snapshot.routes[0].upstream;
    let endpoint = |addr: SocketAddr| {
        upstream
            .endpoints
            .iter()
            .find(|e| e.endpoint == addr.to_string())
            .unwrap_or_else(|| panic!("{addr} in {upstream:?}"))
    };
    let b = endpoint(bad.addr);
    assert_eq!((b.attempts, b.failures, b.ejections), (2, 2, 1));
    assert_eq!(endpoint(good.addr).attempts, 10);
    assert_eq!(upstream.attempts, 12);
    assert_eq!(upstream.retried, 2);
    assert_eq!(b.series.iter().map(|s| s.ejections).sum::<u64>(), 1);

    let report = mirrorlab::export::Report::build(
        &snapshot,
        &mirrorlab::export::RunInfo {
            config: vec![],
            listen: None,
            started_at: std::time::SystemTime::now(),
            ended_at: std::time::SystemTime::now(),
            seed: Some(1),
        },
    );
    let primary = &report.routes[0].primary;
    assert_eq!((primary.attempts, primary.retried), (12, 2));
    assert!(
        primary
            .endpoints
            .iter()
            .any(|e| e.ejections == 1 && e.failures == 2)
    );
}
