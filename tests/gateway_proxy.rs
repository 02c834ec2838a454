//! The VirtualService behaviours, through HTTPRoutes: mirroring (100%, a header match, a
//! share), the URLRewrite filter (ReplacePrefixMatch segment-wise as Istio translates it,
//! ReplaceFullPath, hostname), header modifiers on request and response, RequestRedirect
//! with Gateway API's defaults, `timeouts.request`, a rule with no backend. Real upstreams
//! on 127.0.0.1, ephemeral ports; each test asserts what the primary, the shadow and the
//! client got, and what was captured.

mod common;

use std::time::Duration;

use common::{Mesh, Reply, TestUpstream, client, route_table, start_proxy};
use mirrorlab::proxy::{Proxy, ProxySettings};
use mirrorlab::routing::{ActionKind, RouteOrigin};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

/// ServiceEntries for the reviews Service (the parent) and one service per version.
fn services(mesh: &Mesh) -> String {
    let p = mesh.ports();
    [
        ("reviews", p.v1),
        ("reviews-v1", p.v1),
        ("reviews-v2", p.v2),
        ("reviews-v3", p.v3),
    ]
    .iter()
    .map(|(name, port)| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}}}
spec:
  hosts: [{name}.default.svc.cluster.local]
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]
---
"
        )
    })
    .collect()
}

/// An HTTPRoute for the reviews Service whose rules are `rules`.
fn http_route(rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: reviews}}
spec:
  parentRefs: [{{group: '', kind: Service, name: reviews, port: 9080}}]
  rules:
{rules}"
    )
}

const MIRROR_V2: &str = "    - type: RequestMirror
      requestMirror: {backendRef: {name: reviews-v2, port: 9080}}
";

const TO_V1: &str = "    backendRefs: [{name: reviews-v1, port: 9080}]\n";

fn serve(mesh: &Mesh, rules: &str) -> (Proxy, CancellationToken) {
    let yaml = format!("{}{}", services(mesh), http_route(rules));
    start_proxy(route_table(&yaml), ProxySettings::default())
}

async fn get(proxy: &Proxy, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("test client")
        .get(format!("http://{}{path}", proxy.local_addr()))
        .header("host", "reviews");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("answered")
}

#[tokio::test]
async fn a_request_mirror_copies_every_request_to_the_shadow_and_the_trace_names_the_rule() {
    // HTTPRequestMirrorFilter without percent or fraction: every request (Istio leaves the
    // mirror percentage unset, route.go MirrorPercent then mirrors 100%).
    let mesh = Mesh::start().await;
    let (proxy, _c) = serve(
        &mesh,
        &format!("  - name: mirrored\n    filters:\n{MIRROR_V2}{TO_V1}"),
    );
    let response = get(&proxy, "/reviews/1", &[("x-request-id", "abc")]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), r#"{"version":"v1"}"#);
    let primary = mesh.v1.wait_for(1, WAIT).await;
    let shadow = mesh.v2.wait_for(1, WAIT).await;
    assert_eq!(primary[0].uri, "/reviews/1");
    assert_eq!(shadow[0].uri, "/reviews/1");
    assert_eq!(shadow[0].headers["x-request-id"], "abc");
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await;
    let trace = exchanges[0].trace.as_ref().expect("routed");
    assert_eq!(&*trace.virtual_service, "default/reviews");
    assert_eq!(trace.route_name.as_deref(), Some("mirrored"));
    assert_eq!((trace.route_index, trace.match_index), (0, Some(0)));
    assert_eq!(
        trace.origin,
        RouteOrigin::GatewayRoute {
            kind: "HTTPRoute",
            route: "default/reviews".into()
        }
    );
    assert_eq!(exchanges[0].shadows.len(), 1);
    // HAR names the route object, its rule and its match.
    let har =
        mirrorlab::export::build_har(&exchanges, &mirrorlab::export::HarOptions::default(), None);
    let json = serde_json::to_value(&har).expect("HAR");
    assert_eq!(
        json["log"]["entries"][0]["_route"],
        "HTTPRoute default/reviews:rules[0].matches[0]"
    );
    assert_eq!(
        mirrorlab::ui::traffic::trace_text(&exchanges[0])
            .split(';')
            .next(),
        Some("HTTPRoute default/reviews, rule 0 (mirrored), match 0: path prefix /")
    );
}

#[tokio::test]
async fn a_header_match_mirrors_only_the_requests_it_matches() {
    // The tutorial's second scenario: mirror only user agents matching .*testing.*; the
    // rule with the header match takes precedence over the catch-all (more header matches).
    let mesh = Mesh::start().await;
    let rules = format!(
        "  - {plain}  - matches: [{{headers: [{{type: RegularExpression, name: user-agent, value: '.*testing.*'}}]}}]\n    filters:\n{MIRROR_V2}{TO_V1}",
        plain = TO_V1.trim_start()
    );
    let (proxy, _c) = serve(&mesh, &rules);
    get(&proxy, "/a", &[("user-agent", "curl/8")]).await;
    get(&proxy, "/b", &[("user-agent", "load-testing/1")]).await;
    assert_eq!(mesh.v1.wait_for(2, WAIT).await.len(), 2);
    let shadow = mesh.v2.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(mesh.v2.received().len(), 1);
    assert_eq!(shadow[0].uri, "/b");
}

#[tokio::test]
async fn replace_prefix_match_replaces_the_matched_segments_for_the_primary_and_the_shadow() {
    // HTTPPathModifier ReplacePrefixMatch: /api → / on /api/reviews/1 gives /reviews/1
    // (Istio: regex rewrite ^/api(/?)(.*) → /\2); /api → /v2 gives /v2/reviews/1 and /v2
    // for /api itself (Envoy's prefix_rewrite of the path_separated_prefix).
    let mesh = Mesh::start().await;
    let rewrite = |to: &str| {
        format!(
            "    filters:\n    - type: URLRewrite\n      urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: '{to}'}}}}\n{MIRROR_V2}"
        )
    };
    let rules = format!(
        "  - matches: [{{path: {{value: /api}}}}]\n{}{TO_V1}  - matches: [{{path: {{value: /old/}}}}]\n{}{TO_V1}",
        rewrite("/"),
        rewrite("/v2/")
    );
    let (proxy, _c) = serve(&mesh, &rules);
    for (n, (sent, expected)) in [
        ("/api/reviews/1?x=1", "/reviews/1?x=1"),
        ("/api", "/"),
        ("/old/reviews", "/v2/reviews"),
        ("/old", "/v2"),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(get(&proxy, sent, &[]).await.status(), 200, "{sent}");
        let primary = mesh.v1.wait_for(n + 1, WAIT).await;
        let shadow = mesh.v2.wait_for(n + 1, WAIT).await;
        assert_eq!(primary.last().expect("primary").uri, expected, "{sent}");
        assert_eq!(
            shadow.last().expect("shadow").uri,
            expected,
            "{sent}: the shadow gets the rewritten path"
        );
    }
}

#[tokio::test]
async fn replace_full_path_and_hostname_rewrite_what_the_backend_gets() {
    let mesh = Mesh::start().await;
    let rules = format!(
        "  - filters:\n    - type: URLRewrite\n      urlRewrite: {{hostname: reviews.internal, path: {{type: ReplaceFullPath, replaceFullPath: /fixed}}}}\n{TO_V1}"
    );
    let (proxy, _c) = serve(&mesh, &rules);
    get(&proxy, "/any/path?q=1", &[]).await;
    let primary = mesh.v1.wait_for(1, WAIT).await;
    assert_eq!(primary[0].uri, "/fixed?q=1");
    assert_eq!(primary[0].headers["host"], "reviews.internal");
}

#[tokio::test]
async fn header_modifiers_edit_the_request_and_the_response() {
    // HTTPHeaderFilter: set replaces, add appends, remove removes (Istio: the route's
    // headers.request/response, run by Envoy's header parser).
    let mesh = Mesh::start().await;
    let rules = format!(
        "  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{{name: x-env, value: lab}}]
        add: [{{name: x-tag, value: two}}]
        remove: [x-secret]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{{name: x-served-by, value: mirrorlab}}]
{MIRROR_V2}{TO_V1}"
    );
    let (proxy, _c) = serve(&mesh, &rules);
    let response = get(
        &proxy,
        "/",
        &[("x-env", "prod"), ("x-tag", "one"), ("x-secret", "s")],
    )
    .await;
    assert_eq!(response.headers()["x-served-by"], "mirrorlab");
    for (side, r) in [
        ("primary", &mesh.v1.wait_for(1, WAIT).await[0]),
        ("shadow", &mesh.v2.wait_for(1, WAIT).await[0]),
    ] {
        assert_eq!(r.headers["x-env"], "lab", "{side}");
        let tags: Vec<_> = r.headers.get_all("x-tag").iter().collect();
        assert_eq!(tags, ["one", "two"], "{side}");
        assert!(!r.headers.contains_key("x-secret"), "{side}");
    }
}

#[tokio::test]
async fn a_redirect_defaults_to_302_and_the_request_port() {
    // HTTPRequestRedirectFilter.statusCode defaults to 302 (the CRD), where a VirtualService
    // redirect defaults to 301; without a port, Istio derives it from the request
    // (createRedirectFilter: FROM_REQUEST_PORT, the service port 9080).
    let mesh = Mesh::start().await;
    let rules = "  - matches: [{path: {value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
";
    let (proxy, _c) = serve(&mesh, rules);
    let response = get(&proxy, "/old/reviews?page=2", &[]).await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        "http://reviews:9080/new/reviews?page=2"
    );
    let response = get(&proxy, "/old", &[]).await;
    assert_eq!(response.headers()["location"], "http://reviews:9080/new");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(mesh.v1.received().is_empty() && mesh.v2.received().is_empty());
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 2, WAIT).await;
    assert_eq!(
        exchanges[0].trace.as_ref().expect("routed").action,
        ActionKind::Redirect
    );
}

#[tokio::test]
async fn the_request_timeout_answers_504_when_the_backend_is_slower() {
    // HTTPRouteTimeouts.request → the route timeout (Istio: vs.Timeout); Envoy answers
    // 504 upstream request timeout (UT).
    let slow =
        TestUpstream::start("slow", Reply::ok("late").delay(Duration::from_millis(800))).await;
    let yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: slow}}
spec:
  hosts: [slow.default.svc.cluster.local]
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: slow}}
spec:
  parentRefs: [{{group: '', kind: Service, name: slow}}]
  rules:
  - timeouts: {{request: 200ms}}
    backendRefs: [{{name: slow, port: 80}}]
",
        slow.addr.port()
    );
    let (proxy, _c) = start_proxy(route_table(&yaml), ProxySettings::default());
    let response = client()
        .get(format!("http://{}/", proxy.local_addr()))
        .header("host", "slow")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 504);
    assert_eq!(
        response.text().await.expect("body"),
        "upstream request timeout"
    );
}

#[tokio::test]
async fn a_rule_without_backends_is_answered_500_and_nothing_is_mirrored() {
    // Gateway API: no backend with weight > 0 → 500 (Istio: a direct response of 500).
    let mesh = Mesh::start().await;
    let (proxy, _c) = serve(&mesh, &format!("  - filters:\n{MIRROR_V2}"));
    assert_eq!(get(&proxy, "/", &[]).await.status(), 500);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(mesh.v2.received().is_empty());
}
