//! What the sidecar answers itself, before or instead of forwarding: a fault abort or
//! delay (Envoy's fault filter, which Istio runs first), a CORS preflight (the CORS filter,
//! next), a redirect and a direct response (the router). Each test asserts what the client
//! got, that the primary and the mirror got nothing (or the request, for a delay), and how
//! the exchange was captured. Real upstreams on 127.0.0.1, ephemeral ports.

mod common;

use std::time::{Duration, Instant};

use common::{Mesh, reviews_vs, route_table, start_proxy};
use mirrorlab::proxy::{Proxy, ProxySettings};
use mirrorlab::routing::ActionKind;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

/// A proxy serving the test mesh and a `reviews` VirtualService whose routes are `route`.
async fn serve(mesh: &Mesh, route: &str) -> (Proxy, CancellationToken) {
    start_proxy(
        route_table(&mesh.yaml(&reviews_vs(route))),
        ProxySettings::default(),
    )
}

/// A client that does not follow redirects (the test looks at them).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("test client")
}

/// Sends `method path` to `host` through the proxy, with `headers`.
async fn send(
    proxy: &Proxy,
    method: reqwest::Method,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client()
        .request(method, format!("http://{}{path}", proxy.local_addr()))
        .header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("answered")
}

/// The one exchange the proxy captured.
async fn only_exchange(proxy: &Proxy) -> std::sync::Arc<mirrorlab::capture::Exchange> {
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await;
    assert_eq!(exchanges.len(), 1, "one exchange captured");
    exchanges[0].clone()
}

/// Neither the primary nor the mirror was sent anything.
async fn nothing_upstream(mesh: &Mesh) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(mesh.v1.received().is_empty(), "the primary got the request");
    assert!(mesh.v2.received().is_empty(), "the mirror got the request");
}

const FORWARD_AND_MIRROR: &str = "    route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews-v2, subset: v2}
";

#[tokio::test]
async fn a_fault_abort_answers_before_the_router_so_neither_primary_nor_mirror_sees_it() {
    // fault_filter.cc abortWithStatus: sendLocalReply(code, "fault filter abort"), flag FI.
    let mesh = Mesh::start().await;
    let route = format!(
        "  - fault: {{abort: {{httpStatus: 418, percentage: {{value: 100}}}}}}\n{FORWARD_AND_MIRROR}"
    );
    let (proxy, _cancel) = serve(&mesh, &route).await;
    let response = send(&proxy, reqwest::Method::GET, "reviews", "/reviews/1", &[]).await;
    assert_eq!(response.status(), 418);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(response.text().await.expect("body"), "fault filter abort");
    nothing_upstream(&mesh).await;
    let exchange = only_exchange(&proxy).await;
    let trace = exchange.trace.as_ref().expect("routed");
    assert_eq!(trace.action, ActionKind::FaultAbort);
    assert_eq!(exchange.flags.to_string(), "FI");
    assert!(
        exchange.shadows.is_empty(),
        "the router never saw it: no mirror record"
    );
    assert_eq!(proxy.counters().local_answers, 1);
}

#[tokio::test]
async fn a_fault_without_a_percentage_never_fires() {
    // Istio leaves the percentage unset and Envoy reads 0% (virtual_service.proto: "If not
    // specified, no request will be aborted"; istio/istio#36303).
    let mesh = Mesh::start().await;
    let route = format!("  - fault: {{abort: {{httpStatus: 503}}}}\n{FORWARD_AND_MIRROR}");
    let (proxy, _cancel) = serve(&mesh, &route).await;
    let response = send(&proxy, reqwest::Method::GET, "reviews", "/reviews/1", &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(mesh.v1.wait_for(1, WAIT).await.len(), 1);
}

#[tokio::test]
async fn a_fault_delay_holds_the_request_then_forwards_and_mirrors_it() {
    // fault_filter.cc maybeSetupDelay: the request is held, flag DI, then continues to the
    // router, which sends the primary and the shadow.
    let mesh = Mesh::start().await;
    let route = format!(
        "  - fault: {{delay: {{fixedDelay: 400ms, percentage: {{value: 100}}}}}}\n{FORWARD_AND_MIRROR}"
    );
    let (proxy, _cancel) = serve(&mesh, &route).await;
    let started = Instant::now();
    let response = send(&proxy, reqwest::Method::GET, "reviews", "/reviews/1", &[]).await;
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(mesh.v1.wait_for(1, WAIT).await.len(), 1);
    assert_eq!(
        mesh.v2.wait_for(1, WAIT).await.len(),
        1,
        "a delayed request is mirrored"
    );
    let exchange = only_exchange(&proxy).await;
    assert_eq!(exchange.flags.to_string(), "DI");
    let steps = &exchange.trace.as_ref().expect("routed").steps;
    assert!(steps.iter().any(|s| s.contains("delayed")), "{steps:?}");
}

const CORS: &str = "    corsPolicy:
      allowOrigins: [{exact: 'https://app.example'}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      exposeHeaders: [x-total]
      maxAge: 24h
      allowCredentials: true
";

#[tokio::test]
async fn a_cors_preflight_from_an_allowed_origin_is_answered_by_the_lab() {
    // cors_filter.cc decodeHeaders: OPTIONS + Origin + Access-Control-Request-Method from an
    // allowed origin is answered 200 with the origin echoed; never routed, never mirrored.
    let mesh = Mesh::start().await;
    let (proxy, _cancel) = serve(&mesh, &format!("  - route: [{{destination: {{host: reviews, subset: v1}}}}]\n    mirror: {{host: reviews-v2, subset: v2}}\n{CORS}")).await;
    let response = send(
        &proxy,
        reqwest::Method::OPTIONS,
        "reviews",
        "/reviews/1",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-allow-methods"], "GET,POST");
    assert_eq!(h["access-control-allow-headers"], "x-custom");
    assert_eq!(h["access-control-max-age"], "86400");
    assert_eq!(h["access-control-allow-credentials"], "true");
    nothing_upstream(&mesh).await;
    let exchange = only_exchange(&proxy).await;
    assert_eq!(
        exchange.trace.as_ref().expect("routed").action,
        ActionKind::CorsPreflight
    );
}

#[tokio::test]
async fn cors_requests_get_the_allow_headers_and_other_origins_pass_untouched() {
    // cors_filter.cc encodeHeaders: an allowed origin's answer gets allow-origin (echoed),
    // allow-credentials and expose-headers; a preflight from another origin goes upstream
    // (Istio's default unmatchedPreflights: FORWARD).
    let mesh = Mesh::start().await;
    let (proxy, _cancel) = serve(
        &mesh,
        &format!("  - route: [{{destination: {{host: reviews, subset: v1}}}}]\n{CORS}"),
    )
    .await;
    let response = send(
        &proxy,
        reqwest::Method::GET,
        "reviews",
        "/reviews/1",
        &[("origin", "https://app.example")],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(
        response.headers()["access-control-expose-headers"],
        "x-total"
    );
    let other = send(
        &proxy,
        reqwest::Method::OPTIONS,
        "reviews",
        "/reviews/1",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    let received = mesh.v1.wait_for(2, WAIT).await;
    assert_eq!(received.len(), 2, "the unmatched preflight went upstream");
    assert_eq!(received[1].method, reqwest::Method::OPTIONS);
}

#[tokio::test]
async fn a_redirect_is_answered_with_envoys_location_and_nothing_goes_upstream() {
    // route.go ApplyRedirect + utility.cc newUri: path replaced, the request's query kept
    // (the new path has none), Host kept with its port, redirectCode 302.
    let mesh = Mesh::start().await;
    let (proxy, _cancel) = serve(
        &mesh,
        "  - match: [{uri: {prefix: /old}}]\n    redirect: {uri: /new/reviews, redirectCode: 302}\n",
    )
    .await;
    let response = send(
        &proxy,
        reqwest::Method::GET,
        "reviews:9080",
        "/old/reviews?page=2",
        &[],
    )
    .await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        "http://reviews:9080/new/reviews?page=2"
    );
    assert_eq!(
        response.text().await.expect("body"),
        "",
        "a redirect has no body"
    );
    nothing_upstream(&mesh).await;
    let exchange = only_exchange(&proxy).await;
    assert_eq!(
        exchange.trace.as_ref().expect("routed").action,
        ActionKind::Redirect
    );
    let primary = exchange
        .primary
        .as_ref()
        .expect("the lab's answer is captured");
    assert_eq!(primary.outcome.status().map(|s| s.as_u16()), Some(302));
}

#[tokio::test]
async fn a_redirect_defaults_to_301_and_can_change_scheme_authority_and_port() {
    // ApplyRedirect: redirectCode absent → MOVED_PERMANENTLY; scheme, authority and port.
    let mesh = Mesh::start().await;
    let (proxy, _cancel) = serve(
        &mesh,
        "  - redirect: {uri: /x, authority: api.example.com, scheme: https, port: 8443}\n",
    )
    .await;
    let response = send(&proxy, reqwest::Method::GET, "reviews", "/", &[]).await;
    assert_eq!(response.status(), 301);
    assert_eq!(
        response.headers()["location"],
        "https://api.example.com:8443/x"
    );
}

#[tokio::test]
async fn a_direct_response_answers_with_its_status_and_body() {
    // route.go ApplyDirectResponse; Envoy's prepareLocalReply makes a body text/plain.
    let mesh = Mesh::start().await;
    let (proxy, _cancel) = serve(
        &mesh,
        "  - match: [{uri: {exact: /maintenance}}]\n    directResponse: {status: 503, body: {string: down for maintenance}}\n  - directResponse: {status: 200, body: {bytes: aGVsbG8=}}\n",
    )
    .await;
    let response = send(&proxy, reqwest::Method::GET, "reviews", "/maintenance", &[]).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(response.text().await.expect("body"), "down for maintenance");
    let bytes = send(&proxy, reqwest::Method::GET, "reviews", "/other", &[]).await;
    assert_eq!(bytes.status(), 200);
    assert_eq!(
        bytes.text().await.expect("body"),
        "hello",
        "body.bytes is base64"
    );
    nothing_upstream(&mesh).await;
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 2, WAIT).await;
    assert!(exchanges.iter().all(|e| {
        e.trace
            .as_ref()
            .is_some_and(|t| t.action == ActionKind::DirectResponse)
    }));
}

#[tokio::test]
async fn route_response_headers_apply_to_the_labs_own_answers() {
    // Envoy applies route response header rules to local replies (envoy#13204): the direct
    // response carries `x-served-by-lab`.
    let mesh = Mesh::start().await;
    let (proxy, _cancel) = serve(
        &mesh,
        "  - directResponse: {status: 204}\n    headers: {response: {set: {x-served-by-lab: 'yes'}}}\n",
    )
    .await;
    let response = send(&proxy, reqwest::Method::GET, "reviews", "/", &[]).await;
    assert_eq!(response.status(), 204);
    assert_eq!(response.headers()["x-served-by-lab"], "yes");
    assert_eq!(response.headers()["server"], "envoy");
}
