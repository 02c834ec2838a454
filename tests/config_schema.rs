//! Write-back against Istio's own schema: every resource of every sample config, and a
//! VirtualService that sets every HTTPRoute field, serialises to YAML that validates against
//! the openAPIV3Schema of its apiVersion in Istio's CRDs, holds no field the API server would
//! prune, and loads back to the same model. And every CEL rule of that schema has a check in
//! `mirrorlab check` that refuses what the rule refuses.
//!
//! The schema is `tests/istio/networking-structural.json`, made from Istio's CRDs by
//! `scripts/istio-structural-schema.py` (structure, types, enums and CEL rules, without
//! Istio's descriptions) and committed, so these tests pass in any clone.

use std::path::{Path, PathBuf};

use mirrorlab::config::{ConfigSet, IstioObject, Severity};
use serde_json::Value as Json;

mod schema_support;
use schema_support::unknown_fields;

/// The committed structural schema.
fn crds() -> Json {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/istio/networking-structural.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; make it with scripts/istio-structural-schema.py",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// The openAPIV3Schema for `kind` at `api_version` (`networking.istio.io/v1beta1`).
fn schema_for<'a>(crds: &'a Json, kind: &str, api_version: &str) -> &'a Json {
    let version = api_version.rsplit('/').next().unwrap();
    let schemas = crds["kinds"][kind]["schemas"]
        .as_array()
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    let entry = schemas
        .iter()
        .find(|s| {
            s["versions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v == version)
        })
        .unwrap_or_else(|| panic!("no {kind} {version} in the CRD"));
    &entry["openAPIV3Schema"]
}

fn check_against_schema(crds: &Json, set: &ConfigSet, what: &str) -> usize {
    let mut checked = 0;
    for r in set.resources() {
        let (json, api_version) = match &r.object {
            IstioObject::VirtualService(x) => (serde_json::to_value(x).unwrap(), &x.api_version),
            IstioObject::DestinationRule(x) => (serde_json::to_value(x).unwrap(), &x.api_version),
            IstioObject::ServiceEntry(x) => (serde_json::to_value(x).unwrap(), &x.api_version),
            IstioObject::GatewayApi(_) | IstioObject::Other(_) => continue,
        };
        let schema = schema_for(crds, r.object.kind(), api_version);
        let validator = jsonschema::validator_for(schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: {} does not validate against Istio's schema:\n{}\n{json:#}",
            r.display_name(),
            errors.join("\n")
        );
        let mut pruned = Vec::new();
        unknown_fields(schema, &json, "", &mut pruned);
        assert!(
            pruned.is_empty(),
            "{what}: {} has fields Istio's schema lacks: {pruned:?}",
            r.display_name()
        );
        checked += 1;
    }
    checked
}

fn assert_round_trip(set: &ConfigSet, what: &str) {
    for (i, file) in set.files().iter().enumerate() {
        let back = set.to_yaml_string(i).unwrap();
        let again = ConfigSet::load_str(&format!("{}(written back)", file.name), &back);
        let load_errors: Vec<String> = again
            .diagnostics()
            .iter()
            .filter(|d| d.code == "ML0002" || d.code == "ML0003" || d.code == "ML0004")
            .map(ToString::to_string)
            .collect();
        assert!(load_errors.is_empty(), "{what}: {load_errors:#?}\n{back}");
        let before: Vec<_> = set
            .resources()
            .iter()
            .filter(|r| r.source.file == i)
            .map(|r| r.object.clone())
            .collect();
        let after: Vec<_> = again.resources().iter().map(|r| r.object.clone()).collect();
        assert_eq!(
            before, after,
            "{what}: model changed on the way back:\n{back}"
        );
    }
}

fn sample_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_sample_config_validates_against_istio_schema_and_round_trips() {
    let crds = crds();
    let files = sample_files();
    assert!(files.len() >= 6, "{files:?}");
    let mut checked = 0;
    for file in files {
        let set = ConfigSet::load_files(std::slice::from_ref(&file));
        let what = file.display().to_string();
        assert!(
            !set.diagnostics()
                .iter()
                .any(|d| matches!(d.code, "ML0002" | "ML0003" | "ML0004")),
            "{what} does not load: {:#?}",
            set.diagnostics()
        );
        checked += check_against_schema(&crds, &set, &what);
        assert_round_trip(&set, &what);
    }
    assert!(checked >= 20, "only {checked} resources checked");
}

const EVERY_FIELD: &str = r#"apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: everything
  namespace: lab
  labels: {team: reviews}
  annotations:
    mirrorlab.dev/ignore-fields: timestamp
  resourceVersion: "7"
spec:
  hosts: [reviews, "*.example.com"]
  gateways: [mesh]
  exportTo: ["."]
  http:
  - name: all-fields
    match:
    - name: m0
      uri: {prefix: /api}
      scheme: {exact: http}
      method: {regex: "GET|POST"}
      authority: {exact: reviews}
      headers:
        user-agent: {regex: ".*testing.*"}
        x-present: {}
      queryParams:
        debug: {exact: "1"}
      withoutHeaders:
        x-skip: {exact: "yes"}
      ignoreUriCase: true
      port: 9080
      sourceLabels: {app: productpage}
      sourceNamespace: default
      gateways: [mesh]
      statPrefix: reviews
    route:
    - destination: {host: reviews, subset: v1, port: {number: 9080}}
      weight: 90
      headers:
        request:
          set: {x-lab: "1"}
          add: {x-trace: a}
          remove: [x-internal]
    - destination: {host: reviews, subset: v2}
      weight: 10
    rewrite:
      uri: /v1/api
      authority: reviews.internal
    timeout: 2.5s
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: "5xx,reset", retryRemoteLocalities: true, retryIgnorePreviousHosts: true, backoff: 25ms}
    fault:
      delay: {fixedDelay: 100ms, percentage: {value: 1.5}}
      abort: {httpStatus: 503, percentage: {value: 0.1}}
    mirror: {host: reviews-v2, subset: v2, port: {number: 9080}}
    mirrorPercentage: {value: 12.5}
    corsPolicy:
      allowOrigins: [{exact: "https://example.com"}, {regex: "https://.*\\.example\\.com"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-lab]
      exposeHeaders: [x-trace]
      maxAge: 24h
      allowCredentials: false
      unmatchedPreflights: IGNORE
    headers:
      response:
        set: {x-served-by: lab}
  - name: shadows
    match: [{uri: {exact: /two}}]
    route: [{destination: {host: reviews, subset: v1}}]
    mirrors:
    - destination: {host: reviews-v2, subset: v2}
      percentage: {value: 100}
    - destination: {host: reviews, subset: v2}
  - name: legacy
    match: [{uri: {exact: /legacy}}]
    route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews-v2}
    mirrorPercent: 50
  - name: moved
    match: [{uri: {exact: /old}}]
    redirect: {uri: /new, authority: example.com, redirectCode: 308, scheme: https, port: 8443}
  - name: canned
    match: [{uri: {exact: /health}}]
    directResponse: {status: 200, body: {string: ok}}
  - name: delegated
    match: [{uri: {prefix: /ratings}}]
    delegate: {name: ratings-vs, namespace: lab}
  tcp:
  - match: [{port: 3306}]
    route: [{destination: {host: mysql, port: {number: 3306}}}]
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: reviews, namespace: lab}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      http: {http1MaxPendingRequests: 10, maxRequestsPerConnection: 1}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-v2, namespace: lab}
spec:
  host: reviews-v2
  subsets: [{name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: lab}
spec:
  hosts: [reviews.lab.svc.cluster.local]
  addresses: [10.0.0.10]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP, targetPort: 9081}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9081}, labels: {version: v1}, weight: 1, locality: us-east1/a, network: lab}
  - {address: 127.0.0.1, ports: {http: 9082}, labels: {version: v2}, serviceAccount: reviews}
  exportTo: ["*"]
"#;

#[test]
fn every_http_route_field_validates_and_round_trips() {
    let crds = crds();
    let set = ConfigSet::load_str("every-field.yaml", EVERY_FIELD);
    let loading: Vec<_> = set
        .diagnostics()
        .iter()
        .filter(|d| d.code.starts_with("ML000") || d.code == "IST0101")
        .map(ToString::to_string)
        .collect();
    assert!(loading.is_empty(), "{loading:#?}");
    assert_eq!(check_against_schema(&crds, &set, "every-field"), 4);
    assert_round_trip(&set, "every-field");
    let back = set.to_yaml_string(0).unwrap();
    for needle in [
        "mirrorlab.dev/ignore-fields: timestamp",
        "ignoreUriCase: true",
        "x-present: {}",
        "mirrorPercent: 50",
        "fixedDelay: 100ms",
        "unmatchedPreflights: IGNORE",
    ] {
        assert!(back.contains(needle), "{needle} missing in:\n{back}");
    }
}

#[test]
fn a_wrong_field_fails_the_schema_check_so_the_test_can_fail() {
    // Guard against a vacuous validator: a bad type must be reported by the schema.
    let crds = crds();
    let schema = schema_for(&crds, "VirtualService", "networking.istio.io/v1");
    let bad = serde_json::json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "spec": {"http": [{"mirrorPercentage": {"value": "lots"}}]}
    });
    let validator = jsonschema::validator_for(schema).unwrap();
    assert!(!validator.is_valid(&bad));
    let mut pruned = Vec::new();
    unknown_fields(
        schema,
        &serde_json::json!({"spec": {"http": [{"mirorr": {}}]}}),
        "",
        &mut pruned,
    );
    assert_eq!(pruned, [".spec.http[0].mirorr"]);
}

/// `a.b.c` and `v` as the flow-mapping entry `a: {b: {c: v}}`.
fn nested(path: &str, value: &str) -> String {
    let mut keys: Vec<&str> = path.split('.').collect();
    let first = keys.remove(0);
    let inner = keys
        .iter()
        .rev()
        .fold(value.to_owned(), |v, key| format!("{{{key}: {v}}}"));
    format!("{first}: {inner}")
}

/// Istio's duration rule; the lab's `parse_duration` applies it (ML0113).
const DURATION_RULE: &str = "duration(self) >= duration('1ms')";

/// A DestinationRule whose traffic policy, at the place `path` names (top level, a subset,
/// a port), holds `0s` at the path's last segments: the duration rule's counterexample.
fn destination_rule_with_zero_duration(path: &str) -> Option<String> {
    let (prefix, rest) = [
        ".spec.subsets[].trafficPolicy.portLevelSettings[].",
        ".spec.trafficPolicy.portLevelSettings[].",
        ".spec.subsets[].trafficPolicy.",
        ".spec.trafficPolicy.",
    ]
    .iter()
    .find_map(|p| path.strip_prefix(p).map(|rest| (*p, rest)))?;
    let policy = nested(rest, "0s");
    let spec = match prefix {
        ".spec.trafficPolicy." => format!("{{host: reviews, trafficPolicy: {{{policy}}}}}"),
        ".spec.subsets[].trafficPolicy." => {
            format!("{{host: reviews, subsets: [{{name: v1, trafficPolicy: {{{policy}}}}}]}}")
        }
        ".spec.trafficPolicy.portLevelSettings[]." => format!(
            "{{host: reviews, trafficPolicy: {{portLevelSettings: [{{port: {{number: 80}}, {policy}}}]}}}}"
        ),
        _ => format!(
            "{{host: reviews, subsets: [{{name: v1, trafficPolicy: {{portLevelSettings: [{{port: {{number: 80}}, {policy}}}]}}}}]}}"
        ),
    };
    Some(format!(
        "{{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {{name: d}}, spec: {spec}}}"
    ))
}

/// A counterexample for every other CEL rule of Istio's schema, and the code `check` gives it.
fn cel_counterexample(kind: &str, path: &str, rule: &str) -> Option<(String, &'static str)> {
    let vs = |route: &str| {
        format!(
            "{{apiVersion: networking.istio.io/v1, kind: VirtualService, metadata: {{name: v}}, spec: {{hosts: [a.b], http: [{{route: [{{destination: {{host: a.b}}}}], {route}}}]}}}}"
        )
    };
    let se = |spec: &str| {
        format!(
            "{{apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {{name: s}}, spec: {{hosts: [a.example.com], ports: [{{number: 80, name: http, protocol: HTTP}}], {spec}}}}}"
        )
    };
    let dr_selector = |labels: &str| {
        format!(
            "{{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {{name: d}}, spec: {{host: reviews, workloadSelector: {{matchLabels: {labels}}}}}}}"
        )
    };
    if rule == DURATION_RULE {
        return match kind {
            "DestinationRule" => destination_rule_with_zero_duration(path).map(|y| (y, "ML0113")),
            _ => {
                let field = path.strip_prefix(".spec.http[].")?;
                let route = nested(field, "0s").replace("retries: {", "retries: {attempts: 1, ");
                Some((vs(&route), "ML0113"))
            }
        };
    }
    let case = match (kind, path, rule) {
        ("DestinationRule", ".spec.workloadSelector.matchLabels", r) if r.contains("contains(\"*\")") => {
            (dr_selector("{\"a*\": b}"), "ML0118")
        }
        ("DestinationRule", ".spec.workloadSelector.matchLabels", _) => (dr_selector("{\"\": b}"), "ML0118"),
        ("DestinationRule", ".spec.workloadSelector.matchLabels{}", _) => (dr_selector("{a: \"b*\"}"), "ML0118"),
        ("ServiceEntry", ".spec", r) if r.contains("workloadSelector") => (
            se("resolution: STATIC, workloadSelector: {labels: {app: a}}, endpoints: [{address: 1.1.1.1}]"),
            "ML0128",
        ),
        ("ServiceEntry", ".spec", r) if r.contains("CIDR") || r.contains("contains(\"/\")") => {
            (se("resolution: DNS, addresses: [10.0.0.0/8]"), "ML0128")
        }
        ("ServiceEntry", ".spec", r) if r.contains("DNS_ROUND_ROBIN") => (
            se("resolution: DNS_ROUND_ROBIN, endpoints: [{address: a.example.com}, {address: b.example.com}]"),
            "ML0128",
        ),
        ("ServiceEntry", ".spec", _) => (se("endpoints: [{address: 1.1.1.1}]"), "ML0128"),
        ("ServiceEntry", ".spec.endpoints[]", r) if r.contains("unix") => (
            se("resolution: STATIC, endpoints: [{address: \"unix:///a.sock\", ports: {http: 80}}]"),
            "ML0128",
        ),
        ("ServiceEntry", ".spec.endpoints[]", _) => (se("resolution: STATIC, endpoints: [{labels: {a: b}}]"), "ML0128"),
        ("ServiceEntry", ".spec.endpoints[].address", r) if r.contains("endsWith") => {
            (se("resolution: STATIC, endpoints: [{address: \"unix:///a/\"}]"), "ML0128")
        }
        ("ServiceEntry", ".spec.endpoints[].address", _) => {
            (se("resolution: STATIC, endpoints: [{address: \"unix://a.sock\"}]"), "ML0128")
        }
        ("ServiceEntry", ".spec.endpoints[].ports", _) => {
            (se("resolution: STATIC, endpoints: [{address: 1.1.1.1, ports: {http_x: 80}}]"), "ML0117")
        }
        ("ServiceEntry", ".spec.endpoints[].ports{}", _) => {
            (se("resolution: STATIC, endpoints: [{address: 1.1.1.1, ports: {http: 0}}]"), "ML0106")
        }
        ("ServiceEntry", ".spec.hosts[]", _) => (se("hosts: [\"*\"], resolution: DNS").replace("hosts: [a.example.com], ", ""), "ML0111"),
        ("ServiceEntry", ".spec.ports", _) => (
            se("resolution: DNS").replace("ports: [{number: 80, name: http, protocol: HTTP}]", "ports: [{number: 80, name: a, protocol: HTTP}, {number: 80, name: b, protocol: HTTP}]"),
            "ML0128",
        ),
        ("ServiceEntry", ".spec.ports[].number", _) => (
            se("resolution: DNS").replace("number: 80,", "number: 0,"),
            "ML0106",
        ),
        ("ServiceEntry", ".spec.ports[].targetPort", _) => (
            se("resolution: DNS").replace("protocol: HTTP}", "protocol: HTTP, targetPort: 0}"),
            "ML0106",
        ),
        ("ServiceEntry", ".spec.workloadSelector.labels{}", _) => (se("workloadSelector: {labels: {app: \"a*\"}}"), "ML0118"),
        _ => return None,
    };
    Some(case)
}

#[test]
fn every_cel_rule_of_istios_schema_has_a_check_that_refuses_its_counterexample() {
    let crds = crds();
    let mut seen = 0;
    let mut unhandled = Vec::new();
    let mut accepted = Vec::new();
    for kind in ["VirtualService", "DestinationRule", "ServiceEntry"] {
        let schema = schema_for(&crds, kind, "networking.istio.io/v1");
        let mut found = Vec::new();
        schema_support::cel_rules(schema, "", &mut found);
        let rules: Vec<(String, String)> = found
            .into_iter()
            .map(|(path, rule)| (path, rule["rule"].as_str().unwrap_or_default().to_owned()))
            .collect();
        assert!(
            !rules.is_empty(),
            "{kind}: no CEL rules found; is the schema complete?"
        );
        for (path, rule) in rules {
            seen += 1;
            let Some((yaml, code)) = cel_counterexample(kind, &path, &rule) else {
                unhandled.push(format!("{kind} {path}: {rule}"));
                continue;
            };
            let set = ConfigSet::load_str("cel.yaml", &yaml);
            if !set
                .diagnostics()
                .iter()
                .any(|d| d.severity == Severity::Error && d.code == code)
            {
                accepted.push(format!(
                    "{kind} {path}: {rule}\n  expected {code} for {yaml}\n  got: {:?}",
                    set.diagnostics()
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                ));
            }
        }
    }
    assert!(
        unhandled.is_empty(),
        "CEL rules of Istio's schema that no check of the lab covers (add a check and a counterexample):\n{}",
        unhandled.join("\n")
    );
    assert!(accepted.is_empty(), "{}", accepted.join("\n\n"));
    assert!(seen >= 60, "only {seen} CEL rules");
}
