//! The router's finalised request, as the primary and every shadow receive it: `rewrite`
//! (uri per match kind, uriRegexRewrite, authority), `headers` at route and destination
//! level, the sidecar's own headers; the route timeout (from the end of the upload, and as
//! each shadow's timeout); destinations without endpoints. Real upstreams on 127.0.0.1.

mod common;

use std::io::Write as _;
use std::time::{Duration, Instant};

use common::{
    Mesh, MeshPorts, Reply, TestUpstream, client, mesh_yaml, reviews_vs, route_table, start_proxy,
};
use mirrorlab::capture::{ShadowOutcome, UpstreamErrorKind, UpstreamOutcome};
use mirrorlab::proxy::{Proxy, ProxySettings};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

fn serve_yaml(yaml: &str, settings: ProxySettings) -> (Proxy, CancellationToken) {
    start_proxy(route_table(yaml), settings)
}

async fn get(proxy: &Proxy, path: &str) -> reqwest::Response {
    client()
        .get(format!("http://{}{path}", proxy.local_addr()))
        .header("host", "reviews")
        .send()
        .await
        .expect("answered")
}

/// What the primary (v1) and the mirror (v2) received for one request.
async fn both_received(mesh: &Mesh) -> (common::Recorded, common::Recorded) {
    let primary = mesh.v1.wait_for(1, WAIT).await;
    let shadow = mesh.v2.wait_for(1, WAIT).await;
    (
        primary.first().expect("the primary got it").clone(),
        shadow.first().expect("the mirror got it").clone(),
    )
}

#[tokio::test]
async fn a_prefix_rewrite_replaces_the_matched_prefix_for_the_primary_and_the_shadow() {
    // route.go: rewrite.uri → prefix_rewrite; config_impl.cc replaces the matched prefix and
    // keeps the rest, query included, and sets x-envoy-original-path. router.cc copies the
    // shadow's headers after finalizeRequestHeaders: the shadow sees the rewritten path.
    let mesh = Mesh::start().await;
    let (proxy, _c) = serve_yaml(
        &mesh.yaml(&reviews_vs(
            "  - match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /}
    route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews-v2, subset: v2}
",
        )),
        ProxySettings::default(),
    );
    assert_eq!(get(&proxy, "/api/reviews/1?x=1").await.status(), 200);
    let (primary, shadow) = both_received(&mesh).await;
    for (side, r) in [("primary", &primary), ("shadow", &shadow)] {
        assert_eq!(r.uri, "/reviews/1?x=1", "{side}");
        assert_eq!(
            r.headers["x-envoy-original-path"], "/api/reviews/1?x=1",
            "{side}"
        );
    }
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await;
    let e = &exchanges[0];
    assert_eq!(
        e.request.uri, "/api/reviews/1?x=1",
        "the capture keeps what the client sent"
    );
    assert_eq!(
        e.forwarded.as_ref().expect("what was forwarded").uri,
        "/reviews/1?x=1"
    );
    let steps = &e.trace.as_ref().expect("routed").steps;
    assert!(
        steps
            .iter()
            .any(|s| s == "rewrite /api/reviews/1?x=1 → /reviews/1?x=1"),
        "{steps:?}"
    );
}

#[tokio::test]
async fn a_rewrite_without_a_uri_match_replaces_only_the_leading_slash() {
    // route.go TranslateRouteMatch: no uri match is prefix "/", so rewrite.uri /v2 turns
    // /reviews into /v2reviews, as it does in the mesh.
    let mesh = Mesh::start().await;
    let (proxy, _c) = serve_yaml(
        &mesh.yaml(&reviews_vs(
            "  - rewrite: {uri: /v2}
    route: [{destination: {host: reviews, subset: v1}}]
",
        )),
        ProxySettings::default(),
    );
    get(&proxy, "/reviews").await;
    assert_eq!(mesh.v1.wait_for(1, WAIT).await[0].uri, "/v2reviews");
}

#[tokio::test]
async fn an_exact_match_rewrite_replaces_the_whole_path_and_keeps_the_query() {
    let mesh = Mesh::start().await;
    let (proxy, _c) = serve_yaml(
        &mesh.yaml(&reviews_vs(
            "  - match: [{uri: {exact: /login}}]
    rewrite: {uri: /auth/signin}
    route: [{destination: {host: reviews, subset: v1}}]
",
        )),
        ProxySettings::default(),
    );
    get(&proxy, "/login?next=%2F").await;
    assert_eq!(
        mesh.v1.wait_for(1, WAIT).await[0].uri,
        "/auth/signin?next=%2F"
    );
}

#[tokio::test]
async fn a_regex_rewrite_replaces_every_match_in_the_path_with_re2_groups() {
    // route.go: uriRegexRewrite → regex_rewrite; Envoy replaces all matches in the path
    // (not the query), `\1` naming a group.
    let mesh = Mesh::start().await;
    let (proxy, _c) = serve_yaml(
        &mesh.yaml(&reviews_vs(r"  - rewrite: {uriRegexRewrite: {match: '^/service/([^/]+)(/.*)$', rewrite: '\2/instance/\1'}}
    route: [{destination: {host: reviews, subset: v1}}]
")),
        ProxySettings::default(),
    );
    get(&proxy, "/service/foo/v1/api?q=1").await;
    assert_eq!(
        mesh.v1.wait_for(1, WAIT).await[0].uri,
        "/v1/api/instance/foo?q=1"
    );
}

#[tokio::test]
async fn an_authority_rewrite_is_the_host_the_primary_and_the_shadow_get() {
    // route.go: rewrite.authority → host_rewrite_literal, applied before the shadows copy.
    let mesh = Mesh::start().await;
    let (proxy, _c) = serve_yaml(
        &mesh.yaml(&reviews_vs(
            "  - rewrite: {authority: reviews.internal:8080}
    route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews-v2, subset: v2}
",
        )),
        ProxySettings::default(),
    );
    get(&proxy, "/").await;
    let (primary, shadow) = both_received(&mesh).await;
    assert_eq!(primary.headers["host"], "reviews.internal:8080");
    assert_eq!(shadow.headers["host"], "reviews.internal:8080");
}

#[tokio::test]
async fn header_operations_reach_the_primary_and_the_shadow_and_the_client_gets_the_response_ones()
{
    // route.go TranslateHeadersOperations; header_parser.cc: removes, then sets, then adds;
    // a lone destination's operations follow the route's in one parser (its set wins).
    let mesh = Mesh::start().await;
    let (proxy, _c) = serve_yaml(
        &mesh.yaml(&reviews_vs(
            "  - headers:
      request:
        set: {x-env: lab, x-who: route}
        add: {x-tag: route}
        remove: [x-secret]
      response:
        set: {x-frame-options: DENY}
        remove: [x-served-by]
    route:
    - destination: {host: reviews, subset: v1}
      headers:
        request: {set: {x-who: destination}}
    mirror: {host: reviews-v2, subset: v2}
",
        )),
        ProxySettings::default(),
    );
    let response = client()
        .get(format!("http://{}/", proxy.local_addr()))
        .header("host", "reviews")
        .header("x-secret", "s3cr3t")
        .header("x-tag", "client")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert!(
        !response.headers().contains_key("x-served-by"),
        "removed from the response"
    );
    let (primary, shadow) = both_received(&mesh).await;
    for (side, r) in [("primary", &primary), ("shadow", &shadow)] {
        assert_eq!(r.headers["x-env"], "lab", "{side}");
        assert_eq!(
            r.headers["x-who"], "destination",
            "{side}: the lone destination's set wins"
        );
        let tags: Vec<_> = r.headers.get_all("x-tag").iter().collect();
        assert_eq!(tags, ["client", "route"], "{side}: add appends");
        assert!(!r.headers.contains_key("x-secret"), "{side}");
        assert_eq!(r.headers["x-envoy-attempt-count"], "1", "{side}");
        assert_eq!(r.headers["x-forwarded-proto"], "http", "{side}");
    }
}

#[tokio::test]
async fn with_weighted_destinations_the_routes_set_wins_over_the_destinations() {
    // weighted_cluster_specifier.cc: the cluster weight's parser runs before the route's.
    let mesh = Mesh::start().await;
    let (proxy, _c) = serve_yaml(
        &mesh.yaml(&reviews_vs(
            "  - headers: {request: {set: {x-who: route}}}
    route:
    - destination: {host: reviews, subset: v1}
      weight: 100
      headers: {request: {set: {x-who: destination}}}
    - destination: {host: reviews, subset: v3}
      weight: 0
",
        )),
        ProxySettings::default(),
    );
    get(&proxy, "/").await;
    assert_eq!(mesh.v1.wait_for(1, WAIT).await[0].headers["x-who"], "route");
}

#[tokio::test]
async fn every_forwarded_request_carries_the_sidecars_headers_and_the_client_sees_envoy() {
    let mesh = Mesh::start().await;
    let (proxy, _c) = serve_yaml(
        &mesh.yaml(&reviews_vs(
            "  - timeout: 3s
    route: [{destination: {host: reviews, subset: v1}}]
",
        )),
        ProxySettings::default(),
    );
    let response = get(&proxy, "/").await;
    assert_eq!(response.headers()["server"], "envoy");
    assert!(
        response
            .headers()
            .contains_key("x-envoy-upstream-service-time")
    );
    let r = &mesh.v1.wait_for(1, WAIT).await[0];
    assert_eq!(r.headers["x-forwarded-proto"], "http");
    assert_eq!(r.headers["x-envoy-attempt-count"], "1");
    assert_eq!(r.headers["x-envoy-expected-rq-timeout-ms"], "3000");
    assert!(r.headers.contains_key("x-request-id"));
}

/// `x-envoy-upstream-service-time` in whole milliseconds, on the answer the client got.
fn service_time(response: &reqwest::Response) -> u64 {
    response.headers()["x-envoy-upstream-service-time"]
        .to_str()
        .expect("text")
        .parse()
        .expect("whole milliseconds")
}

#[tokio::test]
async fn the_upstream_service_time_counts_the_primarys_milliseconds() {
    // router.cc onUpstreamHeaders: x-envoy-upstream-service-time is the time from the
    // request's start upstream to the response head, in milliseconds.
    let v1 = TestUpstream::start("v1", Reply::ok("v1").delay(Duration::from_millis(150))).await;
    let v2 = TestUpstream::start("v2", Reply::ok("v2")).await;
    let ports = MeshPorts {
        v1: v1.addr.port(),
        v2: v2.addr.port(),
        v3: common::refusing_addr().port(),
    };
    let yaml = mesh_yaml(
        ports,
        &reviews_vs("  - route: [{destination: {host: reviews, subset: v1}}]\n"),
    );
    let (proxy, _c) = serve_yaml(&yaml, ProxySettings::default());
    let slow = service_time(&get(&proxy, "/").await);
    assert!((150..5_000).contains(&slow), "{slow} ms");
    let fast_mesh = Mesh::start().await;
    let (fast, _c2) = serve_yaml(
        &fast_mesh.yaml(&reviews_vs(
            "  - route: [{destination: {host: reviews, subset: v1}}]\n",
        )),
        ProxySettings::default(),
    );
    let quick = service_time(&get(&fast, "/").await);
    assert!(quick < 150, "{quick} ms for an upstream on loopback");
}

/// The test mesh with its v2 (the mirror) answering after `shadow_delay`.
async fn slow_shadow_mesh(shadow_delay: Duration) -> (TestUpstream, TestUpstream, MeshPorts) {
    let v1 = TestUpstream::start("v1", Reply::ok("v1")).await;
    let v2 = TestUpstream::start("v2", Reply::ok("v2").delay(shadow_delay)).await;
    let ports = MeshPorts {
        v1: v1.addr.port(),
        v2: v2.addr.port(),
        v3: common::refusing_addr().port(),
    };
    (v1, v2, ports)
}

async fn shadow_failure(proxy: &Proxy) -> mirrorlab::capture::UpstreamFailure {
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await;
    match &exchanges[0].shadows[0].outcome {
        ShadowOutcome::Sent(UpstreamOutcome::Failed(f)) => f.clone(),
        other => panic!("expected a failed shadow, got {other:?}"),
    }
}

#[tokio::test]
async fn the_route_timeout_is_each_shadows_timeout() {
    // router.cc: shadows are started with setTimeout(timeout_.global_timeout_).
    let (_v1, _v2, ports) = slow_shadow_mesh(Duration::from_secs(3)).await;
    let yaml = mesh_yaml(
        ports,
        &reviews_vs(
            "  - timeout: 500ms
    route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews-v2, subset: v2}
",
        ),
    );
    let (proxy, _c) = serve_yaml(&yaml, ProxySettings::default());
    let started = Instant::now();
    assert_eq!(get(&proxy, "/").await.status(), 200);
    let failure = shadow_failure(&proxy).await;
    assert_eq!(failure.kind, UpstreamErrorKind::Timeout);
    assert!(
        failure.detail.contains("route timeout of 500ms"),
        "{}",
        failure.detail
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut at the route timeout"
    );
}

#[tokio::test]
async fn without_a_route_timeout_a_shadow_keeps_the_labs_safety_bound_and_says_so() {
    let (_v1, _v2, ports) = slow_shadow_mesh(Duration::from_secs(3)).await;
    let yaml = mesh_yaml(
        ports,
        &reviews_vs(
            "  - route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews-v2, subset: v2}
",
        ),
    );
    let settings = ProxySettings {
        shadow_timeout: Duration::from_millis(400),
        ..ProxySettings::default()
    };
    let (proxy, _c) = serve_yaml(&yaml, settings);
    get(&proxy, "/").await;
    let failure = shadow_failure(&proxy).await;
    assert_eq!(failure.kind, UpstreamErrorKind::Timeout);
    assert!(
        failure.detail.contains("safety bound"),
        "{}",
        failure.detail
    );
}

#[tokio::test]
async fn the_route_timeout_starts_when_the_upload_is_complete() {
    // router.cc arms the global timer in onRequestComplete: an upload slower than the
    // timeout is not a 504. The client sends its body in three parts 400 ms apart (1.2 s in
    // all) against a 600 ms timeout; the primary answers as soon as the body is in.
    let mesh = Mesh::start().await;
    let (proxy, _c) = serve_yaml(
        &mesh.yaml(&reviews_vs(
            "  - timeout: 600ms
    route: [{destination: {host: reviews, subset: v1}}]
",
        )),
        ProxySettings::default(),
    );
    let addr = proxy.local_addr();
    let status = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            stream,
            "POST /upload HTTP/1.1\r\nHost: reviews\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
        )
        .expect("head");
        for part in ["abc", "def", "ghi"] {
            std::thread::sleep(Duration::from_millis(400));
            stream.write_all(part.as_bytes()).expect("body part");
        }
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).expect("answer");
        answer.lines().next().unwrap_or_default().to_owned()
    })
    .await
    .expect("client thread");
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(&mesh.v1.wait_for(1, WAIT).await[0].body[..], b"abcdefghi");
}

#[tokio::test]
async fn a_subset_without_endpoints_is_answered_503_uh_and_captured() {
    // router.cc: no connection pool for the cluster → sendNoHealthyUpstreamResponse, 503
    // "no healthy upstream", flag UH; the shadows are not started.
    let mesh = Mesh::start().await;
    let yaml = mesh.yaml(&reviews_vs(
        "  - route: [{destination: {host: reviews, subset: v9}}]
    mirror: {host: reviews-v2, subset: v2}
",
    )) + "
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-v9}
spec:
  host: reviews
  subsets:
  - name: v9
    labels: {version: v9}
";
    let set = mirrorlab::config::ConfigSet::load_str("test.yaml", &yaml);
    let table = mirrorlab::routing::RouteTable::compile(&set).expect("compiles");
    let (proxy, _c) = start_proxy(table, ProxySettings::default());
    let response = get(&proxy, "/").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.text().await.expect("body"), "no healthy upstream");
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await;
    assert_eq!(exchanges[0].flags.to_string(), "UH");
    assert_eq!(proxy.counters().primary_errors, 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(mesh.v2.received().is_empty());
}

#[tokio::test]
async fn a_mirror_without_endpoints_is_counted_and_captured_as_a_failed_copy() {
    let mesh = Mesh::start().await;
    let yaml = mesh.yaml(&reviews_vs(
        "  - route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews, subset: v9}
",
    )) + "
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-v9}
spec:
  host: reviews
  subsets:
  - name: v9
    labels: {version: v9}
";
    let set = mirrorlab::config::ConfigSet::load_str("test.yaml", &yaml);
    let table = mirrorlab::routing::RouteTable::compile(&set).expect("compiles");
    let (proxy, _c) = start_proxy(table, ProxySettings::default());
    assert_eq!(get(&proxy, "/").await.status(), 200);
    let failure = shadow_failure(&proxy).await;
    assert_eq!(failure.kind, UpstreamErrorKind::NoEndpoint);
    let counters = proxy.counters();
    assert_eq!((counters.mirrored, counters.shadow_errors), (1, 1));
}
