//! Route selection as a sidecar selects: `authority` with its port, `port` against the
//! addressed service port, match blocks pruned for the client workload (`sourceLabels`,
//! `sourceNamespace`, `gateways`), `spec.gateways`, the default route of a ServiceEntry
//! host, delegate VirtualServices, `withoutHeaders` on an absent header. Each rule cites
//! Istio's translation (pilot/pkg/networking/core/route/route.go) or model.

use http::HeaderMap;
use mirrorlab::config::ConfigSet;
use mirrorlab::routing::{
    ActionKind, NoRoute, RequestHead, Resolution, RouteOrigin, RouteTable, Workload,
};

const MESH: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9081}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: 9083}, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings]
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9085}}
---
";

fn table_for(yaml: &str, workload: &Workload) -> RouteTable {
    let set = ConfigSet::load_str("test.yaml", &format!("{MESH}{yaml}"));
    let errors: Vec<String> = set
        .diagnostics()
        .iter()
        .filter(|d| d.severity == mirrorlab::config::Severity::Error)
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
    authority: &'a str,
    path: &'a str,
    port: u16,
    headers: HeaderMap,
}

fn req<'a>(authority: &'a str, path: &'a str) -> Req<'a> {
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, p.parse().expect("test port")),
        None => (authority, 9080),
    };
    Req {
        host,
        authority,
        path,
        port,
        headers: HeaderMap::new(),
    }
}

impl Req<'_> {
    fn resolve(&self, table: &RouteTable) -> Result<Resolution, NoRoute> {
        table.resolve(&RequestHead {
            method: "GET",
            scheme: "http",
            host: self.host,
            authority: self.authority,
            path_and_query: self.path,
            headers: &self.headers,
            port: self.port,
        })
    }
}

fn primary_label(r: &Resolution) -> String {
    r.pick_destination(0.5)
        .expect("a destination")
        .upstream
        .label
        .to_string()
}

const TWO_ROUTES: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{MATCH}]
    route: [{destination: {host: reviews, subset: v3}}]
  - route: [{destination: {host: reviews, subset: v1}}]
";

fn with_match(block: &str) -> String {
    TWO_ROUTES.replace("{MATCH}", block)
}

#[test]
fn authority_is_matched_with_the_port_the_client_sent() {
    // route.go TranslateRouteMatch: authority → a header matcher on :authority, the raw
    // value with its port; only virtual host selection ignores the port.
    let t = table(&with_match("authority: {exact: 'reviews:9080'}"));
    assert_eq!(
        primary_label(&req("reviews:9080", "/").resolve(&t).unwrap()),
        "reviews/v3"
    );
    assert_eq!(
        primary_label(&req("reviews", "/").resolve(&t).unwrap()),
        "reviews/v1"
    );
}

#[test]
fn port_is_the_service_port_the_client_addressed() {
    // route.go TranslateRoute: a block whose port is not the listener's is left out.
    let t = table(&with_match("port: 9080"));
    assert_eq!(
        primary_label(&req("reviews:9080", "/").resolve(&t).unwrap()),
        "reviews/v3"
    );
    assert_eq!(
        primary_label(&req("reviews:8080", "/").resolve(&t).unwrap()),
        "reviews/v1"
    );
    assert_eq!(
        t.service_port("reviews"),
        9080,
        "a request naming no port addresses 9080"
    );
}

#[test]
fn a_block_with_only_source_labels_applies_only_to_that_workload() {
    // route.go sourceMatchHTTP: sourceLabels must be a subset of the proxy's labels; a
    // block that does not apply is not translated at all.
    let yaml = with_match("sourceLabels: {app: productpage}");
    let anyone = table(&yaml);
    assert_eq!(
        primary_label(&req("reviews", "/").resolve(&anyone).unwrap()),
        "reviews/v1",
        "the canary route does not swallow every request"
    );
    let mut labels = mirrorlab::config::model::OrderedMap::default();
    labels.insert("app".to_owned(), "productpage".to_owned());
    labels.insert("version".to_owned(), "v1".to_owned());
    let productpage = table_for(
        &yaml,
        &Workload {
            labels,
            ..Workload::default()
        },
    );
    let r = req("reviews", "/").resolve(&productpage).unwrap();
    assert_eq!(primary_label(&r), "reviews/v3");
    assert_eq!(r.trace.match_index, Some(0));
}

#[test]
fn source_namespace_and_match_gateways_are_tested_against_the_workload() {
    let t = table(&with_match("sourceNamespace: prod"));
    assert_eq!(
        primary_label(&req("reviews", "/").resolve(&t).unwrap()),
        "reviews/v1"
    );
    let prod = table_for(
        &with_match("sourceNamespace: prod"),
        &Workload {
            namespace: "prod".to_owned(),
            ..Workload::default()
        },
    );
    assert_eq!(
        primary_label(&req("reviews", "/").resolve(&prod).unwrap()),
        "reviews/v3"
    );
    let t = table(&with_match("gateways: [mesh]"));
    assert_eq!(
        primary_label(&req("reviews", "/").resolve(&t).unwrap()),
        "reviews/v3"
    );
    let t = table(&with_match("gateways: [istio-system/ingress]"));
    assert_eq!(
        primary_label(&req("reviews", "/").resolve(&t).unwrap()),
        "reviews/v1"
    );
}

#[test]
fn a_virtual_service_bound_only_to_gateways_does_not_route_sidecar_traffic() {
    // push_context.go getGatewayNames: absent gateways mean `mesh`; a VirtualService
    // whose gateways omit it is not in a sidecar's routes. Its host (defined by a
    // ServiceEntry) keeps the default route. The Gateway is in the files: `istioctl
    // analyze` reports a reference to a missing one (IST0101).
    let yaml = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*/reviews']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-ingress, namespace: default}
spec:
  hosts: [reviews]
  gateways: [istio-system/ingress]
  http:
  - route: [{destination: {host: reviews, subset: v3}}]
";
    let sidecar = table(yaml);
    let r = req("reviews", "/").resolve(&sidecar).unwrap();
    assert!(
        matches!(r.trace.origin, RouteOrigin::DefaultRoute { .. }),
        "{:?}",
        r.trace
    );
    assert!(
        sidecar
            .notes()
            .iter()
            .any(|n| n.contains("gateways istio-system/ingress")),
        "{:?}",
        sidecar.notes()
    );
    let gateway = table_for(
        yaml,
        &Workload {
            gateway: Some("istio-system/ingress".to_owned()),
            ..Workload::default()
        },
    );
    assert_eq!(
        primary_label(&req("reviews", "/").resolve(&gateway).unwrap()),
        "reviews/v3"
    );
}

#[test]
fn a_host_only_a_service_entry_defines_gets_the_default_route_to_its_endpoints() {
    // route.go BuildDefaultHTTPOutboundRoute: the service's cluster, route name `default`.
    let t = table(&with_match("uri: {prefix: /x}"));
    let r = req("ratings", "/ratings/1").resolve(&t).unwrap();
    assert_eq!(r.trace.route_name.as_deref(), Some("default"));
    assert_eq!(r.trace.action, ActionKind::Forward);
    let RouteOrigin::DefaultRoute { service_entry } = &r.trace.origin else {
        panic!("a default route: {:?}", r.trace);
    };
    assert_eq!(service_entry, "default/ratings");
    let upstream = &r.pick_destination(0.0).expect("destination").upstream;
    assert_eq!(upstream.endpoints[0].to_string(), "127.0.0.1:9085");
    assert!(r.timeout().is_none(), "the default route has no timeout");
    match req("nothing-defines-this", "/").resolve(&t) {
        Err(NoRoute::UnknownHost { configured, .. }) => {
            assert!(configured.contains(&"ratings".to_owned()), "{configured:?}")
        }
        other => panic!("404 for a host nothing defines: {other:?}"),
    }
}

#[test]
fn a_virtual_service_whose_blocks_are_all_for_other_workloads_leaves_the_default_route() {
    // route.go: with no route built for this proxy the host is routed as if it had no
    // VirtualService (BuildSidecarVirtualHostWrapper keeps the service).
    let yaml = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {app: somebody-else}}]
    route: [{destination: {host: reviews, subset: v3}}]
";
    let r = req("reviews", "/").resolve(&table(yaml)).unwrap();
    assert!(
        matches!(r.trace.origin, RouteOrigin::DefaultRoute { .. }),
        "{:?}",
        r.trace
    );
}

#[test]
fn delegate_routes_are_merged_into_the_roots_match() {
    // virtualservice.go mergeHTTPRoute / mergeHTTPMatchRequests: each delegate route keeps
    // its order, its blocks are ANDed with the root's, unset fields come from the root.
    let yaml = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: api
    match: [{uri: {prefix: /api}}]
    timeout: 2s
    delegate: {name: reviews-api}
  - route: [{destination: {host: reviews, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-api}
spec:
  http:
  - name: v3
    match: [{uri: {prefix: /api/v3}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - match: [{uri: {prefix: /other}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - route: [{destination: {host: reviews, subset: v1}}]
";
    let t = table(yaml);
    let r = req("reviews", "/api/v3/x").resolve(&t).unwrap();
    assert_eq!(primary_label(&r), "reviews/v3");
    assert_eq!(r.trace.route_name.as_deref(), Some("api-v3"));
    assert_eq!(
        r.timeout(),
        Some(std::time::Duration::from_secs(2)),
        "inherited from the root"
    );
    assert_eq!(
        r.trace.origin,
        RouteOrigin::Delegate {
            virtual_service: "default/reviews-api".into(),
            route_index: 0
        }
    );
    // /other conflicts with the root's /api prefix: Istio drops that delegate route, so
    // /api/other falls to the delegate's catch-all.
    let r = req("reviews", "/api/other").resolve(&t).unwrap();
    assert_eq!(primary_label(&r), "reviews/v1");
    assert!(
        matches!(r.trace.origin, RouteOrigin::Delegate { route_index: 2, .. }),
        "{:?}",
        r.trace
    );
    let r = req("reviews", "/home").resolve(&t).unwrap();
    assert_eq!(r.trace.origin, RouteOrigin::VirtualService);
    assert_eq!(r.trace.route_index, 1);
}

#[test]
fn a_missing_delegate_drops_only_its_root_route() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /api}}]
    delegate: {name: nowhere}
  - route: [{destination: {host: reviews, subset: v1}}]
";
    let set = ConfigSet::load_str("test.yaml", &format!("{MESH}{yaml}"));
    assert!(
        set.diagnostics().iter().any(|d| d.code == "ML0208"),
        "check says the delegate is missing"
    );
    let t = RouteTable::compile(&set).expect("compiles");
    assert_eq!(
        primary_label(&req("reviews", "/api/x").resolve(&t).unwrap()),
        "reviews/v1"
    );
    assert!(
        t.notes().iter().any(|n| n.contains("nowhere")),
        "{:?}",
        t.notes()
    );
}

#[test]
fn without_headers_tests_an_absent_header_as_empty() {
    // route.go: an inverted value match gets treat_missing_header_as_empty; `regex: "*"`
    // and `{}` are presence matches.
    let t = table(&with_match("withoutHeaders: {x-debug: {regex: '.*'}}"));
    assert_eq!(
        primary_label(&req("reviews", "/").resolve(&t).unwrap()),
        "reviews/v1",
        "an absent header is \"\", which .* matches, so the inverted block does not"
    );
    let t = table(&with_match("withoutHeaders: {x-debug: {regex: '*'}}"));
    assert_eq!(
        primary_label(&req("reviews", "/").resolve(&t).unwrap()),
        "reviews/v3"
    );
    let mut r = req("reviews", "/");
    r.headers.insert("x-debug", "1".parse().expect("value"));
    assert_eq!(primary_label(&r.resolve(&t).unwrap()), "reviews/v1");
}
