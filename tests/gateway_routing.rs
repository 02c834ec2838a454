//! Route selection for Gateway API routes, as Istio translates them for a sidecar or a
//! gateway: the precedence the spec gives across every rule bound to one parent and host,
//! segment-wise PathPrefix, the implicit `/` match, weights, mirrors with `percent` and
//! `fraction`, the mesh binding of a Service parent (GAMMA: producer and consumer routes),
//! Gateway parents and host-name intersection, GRPCRoute's service and method. Each rule
//! cites the Gateway API spec (gateway.networking.k8s.io v1, `HTTPRouteRule`, GEP-3171,
//! GEP-1426) or Istio's conversion (pilot/pkg/config/kube/gateway/conversion.go,
//! route_collections.go).

use http::HeaderMap;
use mirrorlab::config::{ConfigSet, Severity};
use mirrorlab::routing::{
    ActionKind, NoRoute, RequestHead, Resolution, RouteOrigin, RouteTable, Workload,
};

const MESH: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: 9081}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-versions}
spec:
  hosts: [reviews-v1.default.svc.cluster.local, reviews-v2.default.svc.cluster.local, reviews-v3.default.svc.cluster.local]
  resolution: DNS
  ports: [{number: 9080, name: http, protocol: HTTP}]
---
";

fn set_of(yaml: &str) -> ConfigSet {
    ConfigSet::load_str("test.yaml", &format!("{MESH}{yaml}"))
}

fn table_for(yaml: &str, workload: &Workload) -> RouteTable {
    let set = set_of(yaml);
    let errors: Vec<String> = set
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    RouteTable::compile_for(&set, workload).expect("compiles")
}

fn table(yaml: &str) -> RouteTable {
    table_for(yaml, &Workload::default())
}

struct Req<'a> {
    host: &'a str,
    method: &'a str,
    path: &'a str,
    headers: HeaderMap,
}

fn req<'a>(host: &'a str, path: &'a str) -> Req<'a> {
    Req {
        host,
        method: "GET",
        path,
        headers: HeaderMap::new(),
    }
}

impl Req<'_> {
    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers
            .insert(name, value.parse().expect("test header"));
        self
    }

    fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }

    fn resolve(&self, table: &RouteTable) -> Result<Resolution, NoRoute> {
        table.resolve(&RequestHead {
            method: self.method,
            scheme: "http",
            host: self.host,
            authority: self.host,
            path_and_query: self.path,
            headers: &self.headers,
            port: 9080,
        })
    }
}

/// The host of the primary the request goes to (`reviews-v1`), or the action's kind.
fn goes_to(t: &RouteTable, r: &Req<'_>) -> String {
    match r.resolve(t) {
        Ok(res) => match res.pick_destination(0.5) {
            Some(d) => d
                .upstream
                .host
                .trim_end_matches(".default.svc.cluster.local")
                .to_owned(),
            None => res.route.action.kind().as_str().to_owned(),
        },
        Err(e) => format!("no route: {e}"),
    }
}

/// An HTTPRoute `name` bound to the reviews Service with `rules` (YAML, indented 2).
fn route(name: &str, extra_meta: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}{extra_meta}}}
spec:
  parentRefs: [{{group: '', kind: Service, name: reviews, port: 9080}}]
  rules:
{rules}---
"
    )
}

fn to(version: &str) -> String {
    format!("    backendRefs: [{{name: reviews-{version}, port: 9080}}]\n")
}

/// A rule that only sends everything to `version`.
fn only(version: &str) -> String {
    format!("  - {}", &to(version)[4..])
}

#[test]
fn path_prefix_is_segment_wise_and_a_trailing_slash_is_ignored() {
    // HTTPPathMatch: "PathPrefix /foo matches /foo and /foo/bar, not /foobar"; "a trailing
    // / is ignored". Istio: path_separated_prefix (route.go TranslateRouteMatch).
    for prefix in ["/foo", "/foo/"] {
        let t = table(&route(
            "reviews",
            "",
            &format!(
                "  - matches: [{{path: {{type: PathPrefix, value: '{prefix}'}}}}]\n{}{}",
                to("v2"),
                only("v1")
            ),
        ));
        assert_eq!(
            goes_to(&t, &req("reviews", "/foo")),
            "reviews-v2",
            "{prefix}"
        );
        assert_eq!(
            goes_to(&t, &req("reviews", "/foo/")),
            "reviews-v2",
            "{prefix}"
        );
        assert_eq!(
            goes_to(&t, &req("reviews", "/foo/bar?x=1")),
            "reviews-v2",
            "{prefix}"
        );
        assert_eq!(
            goes_to(&t, &req("reviews", "/foobar")),
            "reviews-v1",
            "{prefix}"
        );
    }
}

#[test]
fn a_rule_without_matches_matches_every_request() {
    // HTTPRouteRule.matches defaults to [{path: {type: PathPrefix, value: /}}].
    let t = table(&route("reviews", "", &only("v1")));
    assert_eq!(goes_to(&t, &req("reviews", "/anything")), "reviews-v1");
    let r = req("reviews", "/").resolve(&t).expect("routed");
    assert_eq!(&*r.trace.match_summary, "path prefix /");
}

#[test]
fn exact_beats_prefix_and_the_longest_prefix_wins_whatever_the_order() {
    // HTTPRouteRule: precedence to an Exact path match, then the PathPrefix with the most
    // characters, across all rules (Istio: sortHTTPRoutes), not in the order written.
    let rules = format!(
        "  - matches: [{{path: {{value: /api}}}}]\n{}  - matches: [{{path: {{value: /api/v2}}}}]\n{}  - matches: [{{path: {{type: Exact, value: /api/v2/health}}}}]\n{}",
        to("v1"),
        to("v2"),
        to("v3")
    );
    let t = table(&route("reviews", "", &rules));
    assert_eq!(goes_to(&t, &req("reviews", "/api/v2/health")), "reviews-v3");
    assert_eq!(goes_to(&t, &req("reviews", "/api/v2/x")), "reviews-v2");
    assert_eq!(goes_to(&t, &req("reviews", "/api/v1")), "reviews-v1");
}

#[test]
fn then_a_method_then_more_headers_then_more_query_parameters() {
    // HTTPRouteRule: on equal paths, a method match, then the largest number of header
    // matches, then the largest number of query param matches.
    let rules = format!(
        "  - matches: [{{headers: [{{name: x-a, value: '1'}}]}}]\n{}  - matches: [{{headers: [{{name: x-a, value: '1'}}, {{name: x-b, value: '1'}}]}}]\n{}  - matches: [{{method: POST}}]\n{}",
        to("v1"),
        to("v2"),
        to("v3")
    );
    let t = table(&route("reviews", "", &rules));
    let both = || req("reviews", "/").header("x-a", "1").header("x-b", "1");
    assert_eq!(
        goes_to(&t, &both().method("POST")),
        "reviews-v3",
        "the method first"
    );
    assert_eq!(goes_to(&t, &both()), "reviews-v2", "two headers before one");
    assert_eq!(
        goes_to(&t, &req("reviews", "/").header("x-a", "1")),
        "reviews-v1"
    );
    let rules = format!(
        "  - matches: [{{queryParams: [{{name: a, value: '1'}}]}}]\n{}  - matches: [{{queryParams: [{{name: a, value: '1'}}, {{name: b, value: '1'}}]}}]\n{}",
        to("v1"),
        to("v2")
    );
    let t = table(&route("reviews", "", &rules));
    assert_eq!(goes_to(&t, &req("reviews", "/?a=1&b=1")), "reviews-v2");
    assert_eq!(goes_to(&t, &req("reviews", "/?a=1")), "reviews-v1");
}

#[test]
fn ties_across_routes_go_to_the_oldest_then_the_first_by_namespace_and_name() {
    // HTTPRouteRule: "the oldest Route based on creation timestamp", then "alphabetical
    // order by {namespace}/{name}" (Istio: sortRoutesByCreationTime, then a stable sort).
    let rule = |v: &str| format!("  - matches: [{{path: {{value: /same}}}}]\n{}", to(v));
    let older = route(
        "zeta",
        ", creationTimestamp: '2024-01-01T00:00:00Z'",
        &rule("v2"),
    );
    let newer = route(
        "alpha",
        ", creationTimestamp: '2025-01-01T00:00:00Z'",
        &rule("v1"),
    );
    let t = table(&format!("{newer}{older}"));
    assert_eq!(
        goes_to(&t, &req("reviews", "/same")),
        "reviews-v2",
        "the oldest wins"
    );
    let t = table(&format!(
        "{}{}",
        route("zeta", "", &rule("v2")),
        route("alpha", "", &rule("v1"))
    ));
    let r = req("reviews", "/same").resolve(&t).expect("routed");
    assert_eq!(
        goes_to(&t, &req("reviews", "/same")),
        "reviews-v1",
        "alpha before zeta"
    );
    assert_eq!(&*r.trace.virtual_service, "default/alpha");
}

#[test]
fn within_one_route_the_first_rule_of_equal_precedence_wins() {
    let rules = format!(
        "  - matches: [{{path: {{value: /x}}}}]\n{}  - matches: [{{path: {{value: /x}}}}]\n{}",
        to("v1"),
        to("v2")
    );
    assert_eq!(
        goes_to(&table(&route("reviews", "", &rules)), &req("reviews", "/x")),
        "reviews-v1"
    );
}

#[test]
fn the_trace_names_the_route_its_rule_and_its_match() {
    let rules = format!(
        "  - name: api\n    matches: [{{path: {{type: Exact, value: /a}}}}, {{path: {{value: /api}}, headers: [{{name: x-env, value: lab}}]}}]\n{}",
        to("v2")
    );
    let t = table(&route("reviews", ", namespace: default", &rules));
    let r = req("reviews", "/api/1")
        .header("x-env", "lab")
        .resolve(&t)
        .expect("routed");
    assert_eq!(&*r.trace.virtual_service, "default/reviews");
    assert_eq!(r.trace.route_index, 0);
    assert_eq!(r.trace.route_name.as_deref(), Some("api"));
    assert_eq!(r.trace.match_index, Some(1));
    assert_eq!(
        &*r.trace.match_summary,
        "path prefix /api and header x-env = lab"
    );
    assert_eq!(
        r.trace.origin,
        RouteOrigin::GatewayRoute {
            kind: "HTTPRoute",
            route: "default/reviews".into()
        }
    );
    assert_eq!(r.trace.action, ActionKind::Forward);
}

#[test]
fn weights_split_in_proportion_and_a_zero_weight_backend_gets_nothing() {
    // HTTPBackendRef.weight: proportional, default 1; 0 means no traffic (Istio drops it).
    let rules = "  - backendRefs:\n    - {name: reviews-v1, port: 9080, weight: 3}\n    - {name: reviews-v2, port: 9080, weight: 1}\n    - {name: reviews-v3, port: 9080, weight: 0}\n";
    let t = table(&route("reviews", "", rules));
    let r = req("reviews", "/").resolve(&t).expect("routed");
    let at = |u: f64| {
        r.pick_destination(u)
            .expect("a destination")
            .upstream
            .host
            .clone()
    };
    assert_eq!(at(0.1), "reviews-v1");
    assert_eq!(at(0.74), "reviews-v1");
    assert_eq!(at(0.76), "reviews-v2");
    assert_eq!(
        r.forward().expect("forwards").destinations.len(),
        2,
        "the weight-0 backend is gone"
    );
}

#[test]
fn no_backend_with_weight_is_answered_500() {
    // HTTPRouteRule.backendRefs: "If ... no backends have weight > 0, ... 500 status code".
    let rules = "  - backendRefs: [{name: reviews-v1, port: 9080, weight: 0}]\n  - matches: [{path: {value: /none}}]\n";
    let t = table(&route("reviews", "", rules));
    for path in ["/", "/none"] {
        let r = req("reviews", path).resolve(&t).expect("routed");
        match &r.route.action {
            mirrorlab::routing::RouteAction::DirectResponse(d) => {
                assert_eq!(d.status, 500, "{path}")
            }
            other => panic!("{path}: {other:?}"),
        }
    }
}

#[test]
fn mirrors_take_percent_or_fraction_and_absent_is_everything() {
    // HTTPRequestMirrorFilter percent and fraction (GEP-3171); absent: every request
    // (Istio's createMirrorFilter leaves the percentage unset). Several filters, several
    // shadows, each drawn on its own.
    let mirror = |name: &str, share: &str| {
        format!(
            "    - type: RequestMirror\n      requestMirror: {{backendRef: {{name: {name}, port: 9080}}{share}}}\n"
        )
    };
    let rules = format!(
        "  - filters:\n{}{}{}{}",
        mirror("reviews-v2", ""),
        mirror("reviews-v3", ", percent: 25"),
        mirror("reviews", ", fraction: {numerator: 1, denominator: 8}"),
        to("v1")
    );
    let t = table(&route("reviews", "", &rules));
    let r = req("reviews", "/").resolve(&t).expect("routed");
    let shares: Vec<(String, f64)> = r
        .mirrors()
        .iter()
        .map(|m| (m.upstream.host.clone(), m.fraction))
        .collect();
    assert_eq!(
        shares,
        [
            ("reviews-v2".to_owned(), 1.0),
            ("reviews-v3".to_owned(), 0.25),
            ("reviews".to_owned(), 0.125)
        ]
    );
}

#[test]
fn a_service_parent_binds_the_route_to_that_services_host_and_ignores_hostnames() {
    // GEP-1426 (GAMMA): a Service parentRef binds the route to requests for that Service;
    // hostnames are not used. Istio: one VirtualService per service host (mesh).
    let yaml = route("reviews", "", &only("v2"))
        .replace("  rules:", "  hostnames: [ignored.example.com]\n  rules:");
    let t = table(&yaml);
    assert_eq!(goes_to(&t, &req("reviews", "/")), "reviews-v2");
    assert_eq!(
        goes_to(&t, &req("reviews.default.svc.cluster.local", "/")),
        "reviews-v2"
    );
    assert!(goes_to(&t, &req("ignored.example.com", "/")).starts_with("no route"));
    assert_eq!(t.default_host(), Some("reviews"));
}

#[test]
fn a_route_of_another_namespace_applies_only_as_the_services_or_the_clients() {
    // Istio buildSidecarVirtualHostsForVirtualService: a Gateway-semantics route applies
    // when written in the service's namespace (producer) or the client's (consumer), and
    // VirtualServicesForGateway puts the consumer's first.
    let other = route("from-elsewhere", ", namespace: other", &only("v3"))
        .replace(
            "name: reviews, port: 9080}]",
            "name: reviews, namespace: default, port: 9080}]",
        )
        .replace(
            "name: reviews-v3, port",
            "name: reviews-v3, namespace: default, port",
        );
    let producer = route("reviews", "", &only("v1"));
    let t = table(&format!("{other}{producer}"));
    assert_eq!(
        goes_to(&t, &req("reviews", "/")),
        "reviews-v1",
        "a third namespace's route is not used"
    );
    let client_in_other = Workload {
        namespace: "other".into(),
        ..Workload::default()
    };
    let t = table_for(&format!("{producer}{other}"), &client_in_other);
    assert_eq!(
        goes_to(&t, &req("reviews.default", "/")),
        "reviews-v3",
        "the consumer's route wins"
    );
}

const GATEWAY: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: istio}
spec: {controllerName: istio.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, hostname: '*.example.com', port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
---
";

fn gateway_route(hostnames: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web}}
spec:
  parentRefs: [{{name: ingress, namespace: istio-system}}]
  hostnames: {hostnames}
  rules:
  - backendRefs: [{{name: reviews-v1, port: 9080}}]
---
"
    )
}

#[test]
fn a_gateway_route_applies_when_the_lab_acts_as_that_gateway() {
    let yaml = format!("{GATEWAY}{}", gateway_route("[shop.example.com]"));
    let sidecar = table(&yaml);
    assert!(goes_to(&sidecar, &req("shop.example.com", "/")).starts_with("no route"));
    let gateway = Workload {
        gateway: Some("istio-system/ingress".into()),
        ..Workload::default()
    };
    let t = table_for(&yaml, &gateway);
    assert_eq!(goes_to(&t, &req("shop.example.com", "/")), "reviews-v1");
    assert!(goes_to(&t, &req("other.example.com", "/")).starts_with("no route"));
}

#[test]
fn route_hostnames_intersect_with_the_listeners() {
    // HTTPRouteSpec.hostnames: a route without hostnames takes the listener's; a wildcard
    // route host narrows to the listener's; a name outside it is not accepted.
    let gateway = Workload {
        gateway: Some("istio-system/ingress".into()),
        ..Workload::default()
    };
    let t = table_for(&format!("{GATEWAY}{}", gateway_route("[]")), &gateway);
    assert_eq!(goes_to(&t, &req("any.example.com", "/")), "reviews-v1");
    assert!(goes_to(&t, &req("example.org", "/")).starts_with("no route"));
    let set = set_of(&format!("{GATEWAY}{}", gateway_route("[shop.example.org]")));
    let refused: Vec<_> = set
        .diagnostics()
        .iter()
        .filter(|d| d.code == "ML0503")
        .collect();
    assert_eq!(refused.len(), 1, "{:#?}", set.diagnostics());
    assert!(
        refused[0].message.contains("NoMatchingListenerHostname"),
        "{}",
        refused[0]
    );
}

#[test]
fn grpc_routes_match_service_and_method() {
    // GRPCMethodMatch: Exact service and method is the path /service/method; a service
    // alone is every method of it (Istio: createGRPCURIMatch).
    let yaml = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: greeter}
spec:
  parentRefs: [{group: '', kind: Service, name: reviews}]
  rules:
  - matches: [{method: {service: helloworld.Greeter, method: SayHello}}]
    backendRefs: [{name: reviews-v2, port: 9080}]
  - matches: [{method: {service: helloworld.Greeter}}]
    backendRefs: [{name: reviews-v3, port: 9080}]
  - backendRefs: [{name: reviews-v1, port: 9080}]
";
    let t = table(yaml);
    assert_eq!(
        goes_to(&t, &req("reviews", "/helloworld.Greeter/SayHello")),
        "reviews-v2"
    );
    assert_eq!(
        goes_to(&t, &req("reviews", "/helloworld.Greeter/SayBye")),
        "reviews-v3"
    );
    assert_eq!(
        goes_to(&t, &req("reviews", "/other.Service/Call")),
        "reviews-v1"
    );
    let r = req("reviews", "/helloworld.Greeter/SayHello")
        .resolve(&t)
        .expect("routed");
    assert_eq!(
        &*r.trace.match_summary,
        "service = helloworld.Greeter and method = SayHello"
    );
    assert_eq!(
        r.trace.origin,
        RouteOrigin::GatewayRoute {
            kind: "GRPCRoute",
            route: "default/greeter".into()
        }
    );
}

#[test]
fn a_retry_becomes_istios_retry_policy_and_backend_request_its_per_try_timeout() {
    // conversion.go convertHTTPRoute: attempts (default 2), retryOn connect-failure,
    // refused-stream, unavailable, cancelled and the codes; backendRequest is the per-try
    // timeout when there is a retry.
    let rules = "  - retry: {attempts: 3, codes: [503], backoff: 100ms}\n    timeouts: {request: 10s, backendRequest: 1s}\n    backendRefs: [{name: reviews-v1, port: 9080}]\n";
    let t = table(&route("reviews", "", rules));
    let r = req("reviews", "/").resolve(&t).expect("routed");
    let f = r.forward().expect("forwards");
    let retry = f.retry.as_ref().expect("a retry policy");
    assert_eq!(retry.num_retries, 3);
    assert_eq!(retry.status_codes, [503]);
    assert_eq!(
        retry.per_try_timeout,
        Some(std::time::Duration::from_secs(1))
    );
    assert_eq!(retry.base_interval, std::time::Duration::from_millis(100));
    assert_eq!(f.timeout, Some(std::time::Duration::from_secs(10)));
    let none = table(&route("reviews", "", &only("v1")));
    let r = req("reviews", "/").resolve(&none).expect("routed");
    assert_eq!(
        r.forward()
            .and_then(|f| f.retry.as_ref())
            .map(|p| p.num_retries),
        Some(2),
        "no retry: Istio's default policy, as for a VirtualService"
    );
}
