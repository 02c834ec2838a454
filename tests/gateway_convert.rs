//! `convert` between the APIs: HTTPRoute → VirtualService → HTTPRoute gives back the route;
//! the VirtualService written for an HTTPRoute routes every request as the HTTPRoute does
//! (the same upstream, mirrors, rewritten path, redirect) and so does the way back; what the
//! other API cannot say is listed exactly; Istio's conversion testdata (pilot/pkg/config/
//! kube/gateway/testdata/mesh.yaml and its golden VirtualServices) merges and orders as Istio
//! does; and the `mirrorlab convert` binary as a user runs it.

use std::path::PathBuf;
use std::process::Command;

use http::HeaderMap;
use mirrorlab::config::gateway::{GatewayApiObject, Target, translate_file};
use mirrorlab::config::{ConfigSet, Severity};
use mirrorlab::routing::action::{RequestUrl, RouteAction};
use mirrorlab::routing::{RequestHead, RouteTable};

const SERVICES: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local, reviews-v1.default.svc.cluster.local, reviews-v2.default.svc.cluster.local, reviews-v3.default.svc.cluster.local]
  resolution: DNS
  ports: [{number: 9080, name: http, protocol: HTTP}]
---
";

/// An HTTPRoute with every part `convert` writes both ways.
const RICH: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews}
spec:
  parentRefs: [{group: '', kind: Service, name: reviews, port: 9080}]
  rules:
  - name: api
    matches:
    - path: {type: PathPrefix, value: /api}
      headers: [{name: x-env, value: lab}]
    - path: {type: Exact, value: /health}
      method: GET
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-lab, value: '1'}]
        remove: [x-secret]
    - type: RequestMirror
      requestMirror: {backendRef: {name: reviews-v2, port: 9080}, fraction: {numerator: 1, denominator: 8}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: reviews-v3, port: 9080}, percent: 30}
    backendRefs:
    - {name: reviews-v1, port: 9080, weight: 90}
    - {name: reviews-v2, port: 9080, weight: 10}
    timeouts: {request: 2s}
  - name: strip
    matches: [{path: {type: PathPrefix, value: /v1}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    backendRefs: [{name: reviews-v1, port: 9080}]
  - name: moved
    matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}, statusCode: 301}
  - name: search
    matches: [{path: {type: RegularExpression, value: '/s/[0-9]+'}, queryParams: [{name: q, value: x}]}]
    backendRefs: [{name: reviews-v3, port: 9080}]
  - name: default
    backendRefs: [{name: reviews-v1, port: 9080}]
";

fn load(yaml: &str) -> ConfigSet {
    let set = ConfigSet::load_str("test.yaml", yaml);
    let errors: Vec<String> = set
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{yaml}");
    set
}

fn the_route(set: &ConfigSet) -> mirrorlab::config::gateway::model::HttpRouteResource {
    set.gateway_api()
        .find_map(|(_, o)| match o {
            GatewayApiObject::HttpRoute(r) => Some(r.clone()),
            _ => None,
        })
        .expect("an HTTPRoute")
}

/// Where a request goes: primary host, mirror hosts and shares, the forwarded path, or
/// the lab's own answer.
fn outcome(
    t: &RouteTable,
    method: &str,
    path: &str,
    headers: &[(&'static str, &'static str)],
) -> String {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, v.parse().expect("header"));
    }
    let head = RequestHead {
        method,
        scheme: "http",
        host: "reviews",
        authority: "reviews",
        path_and_query: path,
        headers: &map,
        port: 9080,
    };
    let Ok(r) = t.resolve(&head) else {
        return "no route".to_owned();
    };
    match &r.route.action {
        RouteAction::Forward(f) => {
            let primary: Vec<String> = [0.05, 0.95]
                .iter()
                .map(|u| f.pick(*u).map_or("-".into(), |d| d.upstream.host.clone()))
                .collect();
            let mirrors: Vec<String> = f
                .mirrors
                .iter()
                .map(|m| format!("{}@{}", m.upstream.host, m.fraction))
                .collect();
            let path = f
                .path_rewrite
                .as_ref()
                .and_then(|p| p.apply(path, r.matched))
                .unwrap_or_else(|| path.to_owned());
            format!(
                "{primary:?} mirrors {mirrors:?} path {path} timeout {:?}",
                f.timeout
            )
        }
        RouteAction::Redirect(d) => {
            let url = RequestUrl {
                scheme: "http",
                authority: "reviews",
                path_and_query: path,
                port: 9080,
            };
            format!("redirect {} {}", d.status, d.location(&url, r.matched))
        }
        RouteAction::DirectResponse(d) => format!("answer {}", d.status),
    }
}

/// A request: method, path and query, headers.
type Request = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const REQUESTS: [Request; 14] = [
    ("GET", "/api", &[("x-env", "lab")]),
    ("GET", "/api/reviews/1", &[("x-env", "lab")]),
    ("GET", "/apix", &[("x-env", "lab")]),
    ("GET", "/api/reviews/1", &[]),
    ("GET", "/health", &[]),
    ("POST", "/health", &[]),
    ("GET", "/v1/reviews?page=2", &[]),
    ("GET", "/v1", &[]),
    ("GET", "/v1x", &[]),
    ("GET", "/old/a?b=1", &[]),
    ("GET", "/old", &[]),
    ("GET", "/s/42?q=x", &[]),
    ("GET", "/s/42?q=y", &[]),
    ("GET", "/anything", &[]),
];

fn behaviour(set: &ConfigSet) -> Vec<String> {
    let t = RouteTable::compile(set).expect("compiles");
    REQUESTS
        .iter()
        .map(|(m, p, h)| format!("{m} {p}: {}", outcome(&t, m, p, h)))
        .collect()
}

#[test]
fn an_httproute_converted_to_a_virtualservice_routes_every_request_the_same() {
    let original = load(&format!("{SERVICES}---\n{RICH}"));
    let converted = translate_file(&original, 0, Target::VirtualService).expect("converts");
    assert!(
        converted.limitations.is_empty(),
        "{:#?}",
        converted.limitations
    );
    let vs = load(&converted.yaml);
    assert_eq!(vs.virtual_services().count(), 1);
    assert_eq!(vs.gateway_api().count(), 0);
    assert_eq!(behaviour(&original), behaviour(&vs), "\n{}", converted.yaml);
    // The segment-wise prefix is two blocks, and the prefix rewrite is split between them.
    assert!(
        converted.yaml.contains("exact: /api\n"),
        "{}",
        converted.yaml
    );
    assert!(
        converted.yaml.contains("prefix: /api/\n"),
        "{}",
        converted.yaml
    );
}

#[test]
fn an_httproute_round_trips_through_a_virtualservice() {
    let original = load(&format!("{SERVICES}---\n{RICH}"));
    let vs = load(
        &translate_file(&original, 0, Target::VirtualService)
            .expect("to vs")
            .yaml,
    );
    let back_text = translate_file(&vs, 0, Target::HttpRoute).expect("back");
    assert!(
        back_text.limitations.is_empty(),
        "{:#?}",
        back_text.limitations
    );
    let back = load(&back_text.yaml);
    assert_eq!(
        behaviour(&original),
        behaviour(&back),
        "\n{}",
        back_text.yaml
    );
    let (before, after) = (the_route(&original), the_route(&back));
    assert_eq!(before.spec.parent_refs, after.spec.parent_refs);
    let names = |r: &mirrorlab::config::gateway::model::HttpRouteResource| {
        r.spec
            .rules
            .iter()
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
    };
    // Istio writes the rules in precedence order, where a regex ranks below every prefix,
    // `/` included (sortHTTPRoutes); the way back keeps that order.
    assert_eq!(
        names(&after),
        ["api", "moved", "strip", "default", "search"].map(|n| Some(n.to_owned()))
    );
    let api = &after.spec.rules[0];
    assert_eq!(api.matches[0].path().1, "/health", "the exact match first");
    assert_eq!(
        api.filters
            .iter()
            .filter(|f| f.request_mirror.is_some())
            .count(),
        2
    );
    assert_eq!(
        api.backend_refs
            .iter()
            .map(|b| b.weight)
            .collect::<Vec<_>>(),
        [Some(90), Some(10)]
    );
}

#[test]
fn the_tutorial_samples_round_trip_to_the_same_httproute() {
    for name in [
        "reviews-httproute-mirror.yaml",
        "reviews-httproute-testing-user-agent.yaml",
        "reviews-httproute-25-percent.yaml",
    ] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("sample-configs")
            .join(name);
        let original = ConfigSet::load_files(std::slice::from_ref(&path));
        let vs = load(
            &translate_file(&original, 0, Target::VirtualService)
                .expect("to vs")
                .yaml,
        );
        let back = load(
            &translate_file(&vs, 0, Target::HttpRoute)
                .expect("back")
                .yaml,
        );
        let (a, b) = (the_route(&original), the_route(&back));
        assert_eq!(a.spec.parent_refs, b.spec.parent_refs, "{name}");
        let backends = |r: &mirrorlab::config::gateway::model::HttpRouteResource| {
            let mut v: Vec<_> = r
                .spec
                .rules
                .iter()
                .map(|r| {
                    (
                        r.name.clone(),
                        r.matches.clone(),
                        r.backend_refs.clone(),
                        r.filters
                            .iter()
                            .map(|f| {
                                f.request_mirror
                                    .as_ref()
                                    .map(|m| (m.backend_ref.name.clone(), m.percentage()))
                            })
                            .collect::<Vec<_>>(),
                    )
                })
                .collect();
            v.sort_by(|x, y| x.0.cmp(&y.0));
            v
        };
        assert_eq!(backends(&a), backends(&b), "{name}");
        assert_eq!(behaviour(&original), behaviour(&back), "{name}");
    }
}

#[test]
fn what_gateway_api_cannot_say_is_listed_field_by_field() {
    let yaml = format!("{SERVICES}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - match: [{{sourceLabels: {{app: productpage}}, uri: {{prefix: /}}}}]
    fault: {{abort: {{httpStatus: 503, percentage: {{value: 10}}}}}}
    route: [{{destination: {{host: reviews-v1, port: {{number: 9080}}}}}}]
  - route: [{{destination: {{host: reviews-v1, port: {{number: 9080}}}}}}]
    mirrors:
    - {{destination: {{host: reviews-v2, subset: v2, port: {{number: 9080}}}}, percentage: {{value: 10}}}}
    - {{destination: {{host: reviews-v3, port: {{number: 9080}}}}, percentage: {{value: 12.5}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: v2}}
spec: {{host: reviews-v2, subsets: [{{name: v2, labels: {{version: v2}}}}]}}
");
    let set = load(&yaml);
    let t = translate_file(&set, 0, Target::HttpRoute).expect("converts");
    let fields: Vec<&str> = t.limitations.iter().map(|l| l.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.http[0].fault",
            "spec.http[0].match[0].sourceLabels",
            "spec.http[1].mirrors[0].destination.subset"
        ],
        "{:#?}",
        t.limitations
    );
    // The other shadow, with its own share, is expressible (several RequestMirror filters).
    let back = load(&t.yaml);
    let route = the_route(&back);
    let mirror = route.spec.rules[1].filters[0]
        .request_mirror
        .as_ref()
        .expect("a mirror");
    assert_eq!(mirror.percentage(), Some(12.5));
}

#[test]
fn istios_testdata_merges_the_mesh_routes_of_one_service_and_orders_them() {
    // pilot/pkg/config/kube/gateway/testdata/mesh.yaml: `echo` and `header` both bind to
    // Service echo; the golden VirtualService default~echo.default.svc.domain.suffix holds
    // default.header.0 (prefix /path, a request header added) before default.echo.0.
    let yaml = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo, namespace: default}
spec:
  parentRefs: [{group: '', kind: Service, name: echo}]
  rules:
  - backendRefs: [{name: echo, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: header, namespace: default}
spec:
  parentRefs: [{group: '', kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /path}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {add: [{name: my-added-header, value: added-value}]}
    backendRefs: [{name: echo, port: 80}]
";
    let set = ConfigSet::load_str("mesh.yaml", yaml);
    let conversion = set.gateway_routes();
    assert_eq!(conversion.services.len(), 1);
    let vs = &conversion.services[0];
    assert_eq!(vs.host, "echo.default.svc.cluster.local");
    let names: Vec<_> = vs
        .routes
        .iter()
        .map(|r| r.route.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["default.header.0", "default.echo.0"]);
    let add = &vs.routes[0]
        .route
        .headers
        .as_ref()
        .expect("headers")
        .request
        .as_ref()
        .expect("request")
        .add;
    assert_eq!(
        add.get("my-added-header").map(String::as_str),
        Some("added-value")
    );
    assert_eq!(vs.routes[0].route.route[0].destination.host, "echo");
    assert_eq!(
        vs.routes[0].route.route[0]
            .destination
            .port
            .as_ref()
            .and_then(|p| p.number),
        Some(80)
    );
}

fn convert_cli(file: &std::path::Path, to: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorlab"))
        .args(["convert"])
        .arg(file)
        .args(["--to", to])
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_convert_command_writes_yaml_and_says_what_it_could_not() {
    let sample = |n: &str| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("sample-configs")
            .join(n)
    };
    let (code, out, err) = convert_cli(
        &sample("reviews-httproute-25-percent.yaml"),
        "virtualservice",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("kind: VirtualService") && out.contains("value: 25.0"),
        "{out}"
    );
    assert!(err.contains("1 VirtualService(s) written"), "{err}");
    let (code, out, err) = convert_cli(&sample("reviews-mirror.yaml"), "httproute");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kind: HTTPRoute"), "{out}");
    assert!(
        err.contains(
            "cannot express: VirtualService default/reviews-vs spec.http[0].mirror.subset"
        ),
        "{err}"
    );
    let (code, _, err) = convert_cli(&sample("reviews-v2-destination-rule.yaml"), "httproute");
    assert_eq!(code, 3, "nothing to convert: {err}");
    let dir = tempfile::tempdir().expect("tmp");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "kind: [").expect("write");
    assert_eq!(convert_cli(&broken, "httproute").0, 1);
}
