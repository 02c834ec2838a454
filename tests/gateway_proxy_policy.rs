//! More VirtualService behaviours through Gateway API routes, with real upstreams on
//! 127.0.0.1 and ephemeral ports: a rule's `retry` and `timeouts.backendRequest` as the retry
//! policy Istio makes of them, method and query parameter matches, several RequestMirror
//! filters drawn on their own, a GRPCRoute's service and method matches, and a v1beta1
//! HTTPRoute. Each test cites the rule it checks.

mod common;

use std::time::{Duration, Instant};

use common::{Mesh, Reply, TestUpstream, route_table, start_proxy};
use mirrorlab::proxy::{Proxy, ProxySettings};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

/// A ServiceEntry for `name.default.svc.cluster.local` on port 9080 with one endpoint per
/// address, and a ROUND_ROBIN DestinationRule so that the endpoints take turns.
fn service(name: &str, endpoints: &[&TestUpstream]) -> String {
    let endpoints: String = endpoints
        .iter()
        .map(|u| {
            format!(
                "  - {{address: 127.0.0.1, ports: {{http: {}}}}}\n",
                u.addr.port()
            )
        })
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}}}
spec:
  hosts: [{name}.default.svc.cluster.local]
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints:
{endpoints}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}}}
spec:
  host: {name}
  trafficPolicy: {{loadBalancer: {{simple: ROUND_ROBIN}}}}
---
"
    )
}

/// ServiceEntries for the reviews Service (the parent) and reviews-v1..v3 on the mesh.
fn mesh_services(mesh: &Mesh) -> String {
    [
        ("reviews", &mesh.v1),
        ("reviews-v1", &mesh.v1),
        ("reviews-v2", &mesh.v2),
        ("reviews-v3", &mesh.v3),
    ]
    .iter()
    .map(|(name, upstream)| service(name, &[upstream]))
    .collect()
}

/// A route of `kind` (`HTTPRoute` or `GRPCRoute`, at `api_version`) bound to the reviews
/// Service, whose rules are `rules`.
fn route(api_version: &str, kind: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/{api_version}
kind: {kind}
metadata: {{name: reviews}}
spec:
  parentRefs: [{{group: '', kind: Service, name: reviews, port: 9080}}]
  rules:
{rules}"
    )
}

fn serve(yaml: &str) -> (Proxy, CancellationToken) {
    start_proxy(route_table(yaml), ProxySettings::default())
}

async fn send(
    proxy: &Proxy,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut request = common::client()
        .request(method, format!("http://{}{path}", proxy.local_addr()))
        .header("host", "reviews");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// The backend of a reviews-v1 Service whose two endpoints take turns: one answers 503.
async fn half_failing() -> (TestUpstream, TestUpstream, String) {
    let failing = TestUpstream::start("failing", Reply::ok("down").status(503)).await;
    let healthy = TestUpstream::start("healthy", Reply::ok("up")).await;
    let yaml = format!(
        "{}{}",
        service("reviews", &[&healthy]),
        service("reviews-v1", &[&failing, &healthy])
    );
    (failing, healthy, yaml)
}

#[tokio::test]
async fn a_retry_with_codes_retries_those_answers_on_another_endpoint() {
    // conversion.go: a `retry` becomes retryOn "connect-failure,refused-stream,unavailable,
    // cancelled" plus each of `codes`, attempts default 2; Istio's retry policy adds
    // previous_hosts, so the retry of a 503 goes to the other endpoint.
    let (failing, healthy, services) = half_failing().await;
    let rule = "  - retry: {codes: [503]}\n    backendRefs: [{name: reviews-v1, port: 9080}]\n";
    let (proxy, _c) = serve(&format!("{services}{}", route("v1", "HTTPRoute", rule)));
    for _ in 0..10 {
        assert_eq!(
            send(&proxy, reqwest::Method::GET, "/", &[]).await,
            (200, "up".into())
        );
    }
    // Every answer of the failing endpoint was retried once, as attempt 2, on the healthy
    // one (the retry takes a round-robin turn too, so most first tries meet the failing one).
    let failed = failing.received().len();
    assert!(failed > 0, "the failing endpoint was tried");
    assert_eq!(healthy.received().len(), 10);
    let retried = healthy
        .received()
        .iter()
        .filter(|r| r.headers["x-envoy-attempt-count"] == "2")
        .count();
    assert_eq!(retried, failed, "each 503 retried once, as attempt 2");
}

#[tokio::test]
async fn without_a_retry_a_503_reaches_the_client_as_istios_default_policy_says() {
    // No `retry`: Istio's default policy (retriable-status-codes with no codes), which does
    // not retry a 503 answer; the counterpart of the test above.
    let (failing, _healthy, services) = half_failing().await;
    let rule = "  - backendRefs: [{name: reviews-v1, port: 9080}]\n";
    let (proxy, _c) = serve(&format!("{services}{}", route("v1", "HTTPRoute", rule)));
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(send(&proxy, reqwest::Method::GET, "/", &[]).await.0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 5);
    assert_eq!(failing.received().len(), 5);
}

#[tokio::test]
async fn backend_request_under_a_retry_is_the_per_try_timeout() {
    // conversion.go: with a `retry`, timeouts.backendRequest becomes the retry policy's
    // perTryTimeout (without one it would replace the route timeout). Envoy retries a per-try
    // timeout only under 5xx, gateway-error or reset (retry_state_impl.cc
    // wouldRetryFromReset with a timeout), none of which Istio's retryOn for a `retry` has:
    // the client gets the per-try 504 at once, not after `request`, and nothing is retried.
    let slow = TestUpstream::start("slow", Reply::ok("late").delay(Duration::from_secs(2))).await;
    let services = format!(
        "{}{}",
        service("reviews", &[&slow]),
        service("reviews-v1", &[&slow])
    );
    let rule = "  - retry: {attempts: 2}
    timeouts: {request: 10s, backendRequest: 200ms}
    backendRefs: [{name: reviews-v1, port: 9080}]
";
    let (proxy, _c) = serve(&format!("{services}{}", route("v1", "HTTPRoute", rule)));
    let started = Instant::now();
    let (status, body) = send(&proxy, reqwest::Method::GET, "/", &[]).await;
    let took = started.elapsed();
    assert_eq!((status, body.as_str()), (504, "upstream request timeout"));
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await;
    let primary = exchanges[0].primary.as_ref().expect("primary");
    assert_eq!(
        primary.attempt_count(),
        1,
        "a per-try timeout is not retried"
    );
    assert_eq!(slow.received().len(), 1);
}

#[tokio::test]
async fn method_and_query_parameter_matches_pick_the_rule() {
    // HTTPRouteMatch: method and queryParams (Exact) AND'd with the path; the rule with
    // them outranks the bare rule (precedence: method, then the query matches).
    let mesh = Mesh::start().await;
    let rules = "  - backendRefs: [{name: reviews-v1, port: 9080}]
  - matches: [{method: POST, queryParams: [{name: debug, value: '1'}]}]
    backendRefs: [{name: reviews-v2, port: 9080}]
";
    let (proxy, _c) = serve(&format!(
        "{}{}",
        mesh_services(&mesh),
        route("v1", "HTTPRoute", rules)
    ));
    let cases = [
        (reqwest::Method::POST, "/r?debug=1", "v2"),
        (reqwest::Method::GET, "/r?debug=1", "v1"),
        (reqwest::Method::POST, "/r?debug=2", "v1"),
        (reqwest::Method::POST, "/r", "v1"),
    ];
    for (method, path, version) in cases {
        let (status, body) = send(&proxy, method.clone(), path, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            format!(r#"{{"version":"{version}"}}"#),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn several_request_mirrors_are_drawn_on_their_own() {
    // conversion.go createMirrorFilter: one mirror policy per RequestMirror filter, each
    // with its own percentage; absent is 100%, `percent: 0` never.
    let mesh = Mesh::start().await;
    let rules = "  - filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: reviews-v2, port: 9080}}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: reviews-v3, port: 9080}, percent: 0}}
    backendRefs: [{name: reviews-v1, port: 9080}]
";
    let (proxy, _c) = serve(&format!(
        "{}{}",
        mesh_services(&mesh),
        route("v1", "HTTPRoute", rules)
    ));
    for _ in 0..5 {
        assert_eq!(send(&proxy, reqwest::Method::GET, "/", &[]).await.0, 200);
    }
    mesh.v2.wait_for(5, WAIT).await;
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 5, WAIT).await;
    assert!(
        exchanges.iter().all(|e| e.shadows.len() == 2),
        "two policies"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mesh.v3.received().len(), 0, "percent 0: never mirrored");
}

#[tokio::test]
async fn a_grpc_route_matches_service_and_method_through_the_proxy() {
    // conversion.go createGRPCURIMatch: service and method Exact is the path
    // /service/method; service alone a prefix /service/. HTTP/1.1 here (the lab's upstream
    // side): the match is on the path and headers, as Envoy's route match is.
    let mesh = Mesh::start().await;
    let rules = "  - matches: [{method: {service: reviews.Reviews, method: Get}}]
    backendRefs: [{name: reviews-v2, port: 9080}]
  - matches: [{method: {service: reviews.Reviews}}]
    filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: reviews-v3, port: 9080}}}
    backendRefs: [{name: reviews-v1, port: 9080}]
";
    let (proxy, _c) = serve(&format!(
        "{}{}",
        mesh_services(&mesh),
        route("v1", "GRPCRoute", rules)
    ));
    let grpc = [("content-type", "application/grpc")];
    let (status, body) = send(&proxy, reqwest::Method::POST, "/reviews.Reviews/Get", &grpc).await;
    assert_eq!((status, body.as_str()), (200, r#"{"version":"v2"}"#));
    let (status, body) = send(
        &proxy,
        reqwest::Method::POST,
        "/reviews.Reviews/List",
        &grpc,
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"version":"v1"}"#));
    let shadow = mesh.v3.wait_for(1, WAIT).await;
    assert_eq!(shadow[0].uri, "/reviews.Reviews/List");
    // Another service matches no rule of the route: Istio's route has no catch-all.
    let (status, _) = send(&proxy, reqwest::Method::POST, "/other.Svc/Get", &grpc).await;
    assert_eq!(status, 404);
    assert_eq!(mesh.v2.received().len(), 1);
}

#[tokio::test]
async fn a_v1beta1_httproute_runs_as_v1_does() {
    // gateway.networking.k8s.io v1beta1 serves the same HTTPRoute schema as v1.
    let mesh = Mesh::start().await;
    let rules = "  - filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: reviews-v2, port: 9080}}}
    backendRefs: [{name: reviews-v1, port: 9080}]
";
    let (proxy, _c) = serve(&format!(
        "{}{}",
        mesh_services(&mesh),
        route("v1beta1", "HTTPRoute", rules)
    ));
    let (status, body) = send(&proxy, reqwest::Method::GET, "/", &[]).await;
    assert_eq!((status, body.as_str()), (200, r#"{"version":"v1"}"#));
    assert_eq!(mesh.v2.wait_for(1, WAIT).await.len(), 1);
}
