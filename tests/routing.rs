//! Route table behaviour on real Istio YAML: VirtualService selection, first-match routes,
//! weights, mirror percentages, subsets and endpoint resolution.

use std::net::SocketAddr;
use std::path::PathBuf;

use http::HeaderMap;
use mirrorlab::config::ConfigSet;
use mirrorlab::routing::{EndpointAddr, NoRoute, RequestHead, Resolution, RouteTable};

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("sample-configs")
        .join(name)
}

fn table_of(yaml: impl AsRef<str>) -> RouteTable {
    let set = ConfigSet::load_str("test.yaml", yaml.as_ref());
    match RouteTable::compile(&set) {
        Ok(t) => t,
        Err(errors) => panic!(
            "config did not compile:\n{}",
            errors
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// A ServiceEntry that puts `host` on 127.0.0.1:`port`: Istio refuses an IP address as a
/// destination host, so the tests reach local ports through one, as a lab user would.
fn local(host: &str, port: u16) -> String {
    format!(
        "---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {host}}}
spec:
  hosts: [{host}]
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
"
    )
}

struct Req {
    method: &'static str,
    authority: &'static str,
    path: &'static str,
    headers: HeaderMap,
    port: u16,
}

impl Req {
    fn get(authority: &'static str, path: &'static str) -> Self {
        Self {
            method: "GET",
            authority,
            path,
            headers: HeaderMap::new(),
            port: 9080,
        }
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.insert(name, value.parse().unwrap());
        self
    }

    fn resolve(&self, table: &RouteTable) -> Result<Resolution, NoRoute> {
        table.resolve(&RequestHead {
            method: self.method,
            scheme: "http",
            host: self.authority.split(':').next().unwrap_or_default(),
            authority: self.authority,
            path_and_query: self.path,
            headers: &self.headers,
            port: self.port,
        })
    }
}

fn sock(port: u16) -> EndpointAddr {
    EndpointAddr::Socket(SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn main_sample_routes_to_v1_and_mirrors_everything_to_reviews_v2() {
    let set = ConfigSet::load_files(&[sample("reviews-mirror.yaml")]);
    assert!(
        set.diagnostics().is_empty(),
        "{:#?}",
        set.diagnostics()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
    );
    let table = RouteTable::compile(&set).unwrap();
    assert_eq!(table.default_host(), Some("reviews"));
    // The VirtualService's host, then the hosts only a ServiceEntry defines (a sidecar
    // routes them by its default route).
    assert_eq!(
        table.hosts(),
        [
            "reviews".to_owned(),
            "reviews-v2.default.svc.cluster.local".to_owned()
        ]
    );

    let r = Req::get("reviews", "/reviews/1").resolve(&table).unwrap();
    assert_eq!(&*r.trace.virtual_service, "default/reviews-vs");
    assert_eq!(r.trace.route_index, 0);
    assert_eq!(r.trace.route_name.as_deref(), Some("reviews-v1-mirrored"));
    assert_eq!(r.trace.match_index, None);
    assert_eq!(&*r.trace.match_summary, "any request");
    assert_eq!(r.forward().unwrap().destinations.len(), 1);
    assert_eq!(r.forward().unwrap().destinations[0].weight, 100);
    let primary = r.pick_destination(0.5).unwrap();
    assert_eq!(&*primary.upstream.label, "reviews/v1");
    assert_eq!(primary.upstream.endpoints, vec![sock(9081)]);
    assert_eq!(r.mirrors().len(), 1);
    assert_eq!(r.mirrors()[0].fraction, 1.0);
    assert_eq!(&*r.mirrors()[0].upstream.label, "reviews-v2/v2");
    assert_eq!(r.mirrors()[0].upstream.endpoints, vec![sock(9082)]);
}

#[test]
fn short_names_and_fqdns_resolve_alike() {
    let table =
        RouteTable::compile(&ConfigSet::load_files(&[sample("reviews-mirror.yaml")])).unwrap();
    for host in [
        "reviews",
        "reviews:9080",
        "reviews.default",
        "reviews.default.svc",
        "reviews.default.svc.cluster.local",
        "REVIEWS.default.svc.cluster.local",
    ] {
        let r = Req::get(host, "/").resolve(&table);
        assert!(r.is_ok(), "{host}: {r:?}");
    }
    let err = Req::get("ratings", "/").resolve(&table).unwrap_err();
    assert!(matches!(err, NoRoute::UnknownHost { .. }));
    assert!(err.to_string().contains("reviews"), "{err}");
    // A different namespace is a different service.
    assert!(
        Req::get("reviews.prod.svc.cluster.local", "/")
            .resolve(&table)
            .is_err()
    );
}

#[test]
fn fqdn_hosts_in_the_virtual_service_match_short_request_names() {
    let table = table_of(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route: [{destination: {host: local-9081.test, port: {number: 9081}}}]
"
        .to_owned()
            + &local("local-9081.test", 9081),
    );
    let r = Req::get("reviews", "/").resolve(&table).unwrap();
    assert_eq!(
        r.forward().unwrap().destinations[0].upstream.endpoints,
        vec![sock(9081)]
    );
}

#[test]
fn user_agent_scenario_mirrors_only_testing_clients() {
    let table = RouteTable::compile(&ConfigSet::load_files(&[sample(
        "reviews-mirror-testing-user-agent.yaml",
    )]))
    .unwrap();
    let r = Req::get("reviews", "/")
        .header("user-agent", "my-testing-client/1.0")
        .resolve(&table)
        .unwrap();
    assert_eq!(r.trace.route_index, 0);
    assert_eq!(r.trace.match_index, Some(0));
    assert_eq!(&*r.trace.match_summary, "header user-agent ~ .*testing.*");
    assert_eq!(r.mirrors().len(), 1);

    let r = Req::get("reviews", "/")
        .header("user-agent", "curl/8.5")
        .resolve(&table)
        .unwrap();
    assert_eq!(r.trace.route_index, 1);
    assert_eq!(r.trace.route_name.as_deref(), Some("everyone-else"));
    assert!(r.mirrors().is_empty());

    // No user-agent at all: the header matcher fails, the catch-all takes it.
    let r = Req::get("reviews", "/").resolve(&table).unwrap();
    assert_eq!(r.trace.route_index, 1);
}

#[test]
fn mirror_percentages_absent_zero_25_and_100() {
    let vs = |extra: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs}}
spec:
  hosts: [reviews]
  http:
  - route: [{{destination: {{host: reviews}}}}]
    mirror: {{host: shadow}}
{extra}"
        )
    };
    let fraction = |extra: &str| {
        let t = table_of(vs(extra));
        Req::get("reviews", "/").resolve(&t).unwrap().mirrors()[0].fraction
    };
    assert_eq!(fraction(""), 1.0);
    assert_eq!(fraction("    mirrorPercentage: {value: 0}\n"), 0.0);
    assert_eq!(fraction("    mirrorPercentage: {value: 25}\n"), 0.25);
    assert_eq!(fraction("    mirrorPercentage: {value: 100.0}\n"), 1.0);
    assert_eq!(fraction("    mirrorPercent: 40\n"), 0.4);

    let table = RouteTable::compile(&ConfigSet::load_files(&[sample(
        "reviews-mirror-25-percent.yaml",
    )]))
    .unwrap();
    let r = Req::get("reviews", "/").resolve(&table).unwrap();
    assert_eq!(r.mirrors()[0].fraction, 0.25);
}

#[test]
fn mirrors_list_keeps_each_percentage_in_order() {
    let table = RouteTable::compile(&ConfigSet::load_files(&[sample(
        "reviews-mirrors-two-shadows.yaml",
    )]))
    .unwrap();
    let r = Req::get("reviews", "/").resolve(&table).unwrap();
    assert_eq!(r.mirrors().len(), 2);
    assert_eq!(&*r.mirrors()[0].upstream.label, "reviews-v2/v2");
    assert_eq!(r.mirrors()[0].fraction, 1.0);
    assert_eq!(&*r.mirrors()[1].upstream.label, "reviews/v3");
    assert_eq!(r.mirrors()[1].fraction, 0.1);
    assert_eq!(r.mirrors()[1].upstream.endpoints, vec![sock(9083)]);
}

#[test]
fn baseline_sample_mirrors_to_candidate_and_primary_version() {
    let table = RouteTable::compile(&ConfigSet::load_files(&[sample(
        "reviews-mirrors-baseline.yaml",
    )]))
    .unwrap();
    let r = Req::get("reviews", "/").resolve(&table).unwrap();
    let labels: Vec<_> = r
        .mirrors()
        .iter()
        .map(|m| m.upstream.label.to_string())
        .collect();
    assert_eq!(labels, ["reviews-v2/v2", "reviews/v1"]);
    // The primary and the baseline mirror share one upstream (and its round robin).
    assert!(std::sync::Arc::ptr_eq(
        &r.forward().unwrap().destinations[0].upstream,
        &r.mirrors()[1].upstream
    ));
}

const WEIGHTED: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: [reviews]
  http:
  - match:
    - uri: {prefix: /api}
      method: {exact: POST}
    - headers: {x-canary: {exact: 'true'}}
    route:
    - destination: {host: reviews, subset: v1}
      weight: 75
    - destination: {host: reviews, subset: v2}
      weight: 25
  - name: api-gets
    match:
    - uri: {prefix: /api}
    route:
    - destination: {host: reviews, subset: v3}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews.default.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9081}, labels: {version: v1, app: reviews}}
  - {address: 127.0.0.1, ports: {http: 9082}, labels: {version: v2, app: reviews}}
  - {address: 127.0.0.2, ports: {http: 9081}, labels: {version: v1, app: reviews}}
  - {address: 127.0.0.1, labels: {version: v3}}
";

#[test]
fn blocks_are_ored_fields_anded_and_first_route_wins() {
    let table = table_of(WEIGHTED);
    let mut post = Req::get("reviews", "/api/x");
    post.method = "POST";
    let r = post.resolve(&table).unwrap();
    assert_eq!((r.trace.route_index, r.trace.match_index), (0, Some(0)));
    assert_eq!(&*r.trace.match_summary, "uri prefix /api and method = POST");

    // Second block of the same route (OR).
    let r = Req::get("reviews", "/other")
        .header("x-canary", "true")
        .resolve(&table)
        .unwrap();
    assert_eq!((r.trace.route_index, r.trace.match_index), (0, Some(1)));

    // GET /api fails the AND of block 0 and block 1, so route 1 takes it.
    let r = Req::get("reviews", "/api/x").resolve(&table).unwrap();
    assert_eq!(r.trace.route_index, 1);
    assert_eq!(r.trace.route_name.as_deref(), Some("api-gets"));

    // Nothing matches /other without the header.
    let err = Req::get("reviews", "/other").resolve(&table).unwrap_err();
    assert!(
        matches!(err, NoRoute::NoMatchingRoute { routes: 2, .. }),
        "{err}"
    );
}

#[test]
fn weights_pick_destinations_and_subsets_select_endpoints() {
    let table = table_of(WEIGHTED);
    let r = Req::get("reviews", "/")
        .header("x-canary", "true")
        .resolve(&table)
        .unwrap();
    assert_eq!(
        &*r.pick_destination(0.0).unwrap().upstream.label,
        "reviews/v1"
    );
    assert_eq!(
        &*r.pick_destination(0.74).unwrap().upstream.label,
        "reviews/v1"
    );
    assert_eq!(
        &*r.pick_destination(0.76).unwrap().upstream.label,
        "reviews/v2"
    );
    assert_eq!(
        &*r.pick_destination(0.999).unwrap().upstream.label,
        "reviews/v2"
    );

    let v1 = &r.forward().unwrap().destinations[0].upstream;
    assert_eq!(
        v1.endpoints,
        vec![
            sock(9081),
            EndpointAddr::Socket(SocketAddr::from(([127, 0, 0, 2], 9081)))
        ]
    );
    // Istio's default balancer is LEAST_REQUEST: with nothing in flight, two random
    // choices, so every endpoint of the subset is picked in a few tries.
    let picked: std::collections::HashSet<_> = (0..64)
        .map(|_| v1.next_endpoint().unwrap().clone())
        .collect();
    assert_eq!(picked.len(), 2, "{picked:?}");
    assert_eq!(
        r.forward().unwrap().destinations[1].upstream.endpoints,
        vec![sock(9082)]
    );

    // An endpoint without a `ports` entry is reached on the service port.
    let r = Req::get("reviews", "/api").resolve(&table).unwrap();
    assert_eq!(
        r.forward().unwrap().destinations[0].upstream.endpoints,
        vec![sock(9080)]
    );
}

#[test]
fn hosts_without_service_entry_are_dns_names() {
    let table = table_of(
        "apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ['*.example.com']
  http:
  - match: [{authority: {exact: api.example.com}}]
    route: [{destination: {host: httpbin.org}}]
  - match: [{port: 8080}]
    route: [{destination: {host: local-9089.test, port: {number: 9089}}}]
  - route: [{destination: {host: backend, port: {number: 8000}}}]
    timeout: 1.5s
"
        .to_owned()
            + &local("local-9089.test", 9089),
    );
    let r = Req::get("api.example.com", "/").resolve(&table).unwrap();
    assert_eq!(
        r.forward().unwrap().destinations[0].upstream.endpoints,
        vec![EndpointAddr::Dns {
            host: "httpbin.org".into(),
            port: 80
        }]
    );
    let mut req = Req::get("x.example.com", "/");
    req.port = 8080;
    let r = req.resolve(&table).unwrap();
    assert_eq!(&*r.trace.match_summary, "port 8080");
    assert_eq!(
        r.forward().unwrap().destinations[0].upstream.endpoints,
        vec![sock(9089)]
    );
    let r = Req::get("anything.example.com", "/")
        .resolve(&table)
        .unwrap();
    assert_eq!(r.trace.route_index, 2);
    assert_eq!(r.timeout(), Some(std::time::Duration::from_millis(1500)));
    assert_eq!(
        &*r.forward().unwrap().destinations[0].upstream.label,
        "backend:8000"
    );
    // One VirtualService: its first host is the default.
    assert_eq!(table.default_host(), Some("*.example.com"));
}

#[test]
fn most_specific_host_wins_between_virtual_services() {
    let table = table_of(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wildcard}
spec:
  hosts: ['*.example.com']
  http: [{route: [{destination: {host: local-9081.test, port: {number: 9081}}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: exact}
spec:
  hosts: [api.example.com]
  http: [{route: [{destination: {host: local-9082.test, port: {number: 9082}}}]}]
"
        .to_owned()
            + &local("local-9081.test", 9081)
            + &local("local-9082.test", 9082),
    );
    let vs = |h: &'static str| {
        Req::get(h, "/")
            .resolve(&table)
            .unwrap()
            .trace
            .virtual_service
            .to_string()
    };
    // Twice over: the second round is answered from the table's host cache and must agree.
    for _ in 0..2 {
        assert_eq!(vs("api.example.com"), "default/exact");
        assert_eq!(vs("API.example.com:8080"), "default/exact");
        assert_eq!(vs("www.example.com"), "default/wildcard");
        assert!(Req::get("example.com", "/").resolve(&table).is_err());
    }
    // More distinct hosts than the cache keeps: answers stay right as it starts afresh.
    for i in 0..1500 {
        // Leaked on purpose: the test's request type holds `&'static str`s.
        let host: &'static str = format!("h{i}.example.com").leak();
        assert_eq!(vs(host), "default/wildcard");
    }
    assert_eq!(vs("api.example.com"), "default/exact");
    assert_eq!(table.default_host(), None);
}

#[test]
fn compile_refuses_configs_with_errors() {
    let set = ConfigSet::load_files(&[sample("reviews-mirror-missing-subset.yaml")]);
    let errors = RouteTable::compile(&set).unwrap_err();
    assert!(errors.iter().any(|d| d.code == "IST0101"), "{errors:?}");
}

#[test]
fn bare_names_find_a_virtual_service_of_another_namespace_when_unambiguous() {
    let vs = |ns: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: {ns}}}
spec:
  hosts: [reviews]
  http: [{{route: [{{destination: {{host: local-9081.test, port: {{number: 9081}}}}}}]}}]
"
        )
    };
    let table = table_of(vs("bookinfo"));
    let r = Req::get("reviews", "/").resolve(&table).unwrap();
    assert_eq!(&*r.trace.virtual_service, "bookinfo/reviews");
    assert!(Req::get("reviews.bookinfo", "/").resolve(&table).is_ok());
    assert!(Req::get("reviews.other", "/").resolve(&table).is_err());

    // Two namespaces define reviews: a bare name is ambiguous, so it does not guess.
    let table = table_of(format!("{}---\n{}", vs("bookinfo"), vs("staging")));
    assert!(Req::get("reviews", "/").resolve(&table).is_err());
    assert!(
        Req::get("reviews.staging.svc.cluster.local", "/")
            .resolve(&table)
            .is_ok()
    );
}

#[test]
fn matchers_mean_what_istio_makes_of_them() {
    // istio: an empty uri prefix is Envoy's prefix "" (every path); `*` in withoutHeaders is a
    // presence test (route.go canBeConvertedToPresentMatch), so it excludes requests that
    // carry the header at all.
    let table = table_of(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: [reviews]
  http:
  - match: [{withoutHeaders: {x-canary: {regex: \"*\"}}, uri: {prefix: \"\"}}]
    route: [{destination: {host: local-9081.test, port: {number: 9081}}}]
  - route: [{destination: {host: local-9082.test, port: {number: 9082}}}]
"
        .to_owned()
            + &local("local-9081.test", 9081)
            + &local("local-9082.test", 9082),
    );
    let plain = Req::get("reviews", "/any/path").resolve(&table).unwrap();
    assert_eq!(plain.trace.route_index, 0);
    let canary = Req::get("reviews", "/any/path")
        .header("x-canary", "")
        .resolve(&table)
        .unwrap();
    assert_eq!(canary.trace.route_index, 1);
}
