//! Gateway API YAML against the Gateway API project's own CRD schema: the HTTPRoutes of the
//! sample configs and Istio's samples, and what `mirrorlab convert --to httproute` writes,
//! validate against the standard channel's openAPIV3Schema and hold no field it lacks;
//! what `convert --to virtualservice` writes validates against Istio's. And every CEL rule of
//! the CRDs has a check in `mirrorlab check` that gives the rule's own message.
//!
//! The schemas are `tests/gateway-api/gateway-structural.json` (made from the CRDs of
//! kubernetes-sigs/gateway-api v1.6.1 by `scripts/gateway-api-structural-schema.py`) and
//! `tests/istio/networking-structural.json`, committed so these tests pass in any clone.

use std::path::{Path, PathBuf};

use mirrorlab::config::gateway::{GatewayApiObject, Target, translate_file};
use mirrorlab::config::{ConfigSet, IstioObject, Severity};
use serde_json::Value as Json;

mod schema_support;
use schema_support::unknown_fields;

fn read_json(relative: &str) -> Json {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("committed schema")).expect("json")
}

/// The openAPIV3Schema of a Gateway API `kind` at `api_version` in `channel`.
fn gateway_schema<'a>(crds: &'a Json, channel: &str, kind: &str, api_version: &str) -> &'a Json {
    let version = api_version.rsplit('/').next().expect("a version");
    crds["channels"][channel][kind]["schemas"]
        .as_array()
        .unwrap_or_else(|| panic!("no CRD for {kind}"))
        .iter()
        .find(|s| {
            s["versions"]
                .as_array()
                .expect("versions")
                .iter()
                .any(|v| v == version)
        })
        .map(|s| &s["openAPIV3Schema"])
        .unwrap_or_else(|| panic!("no {kind} {version}"))
}

/// Validates every Gateway API resource of `set` against the standard channel; returns how
/// many were checked.
fn validate_gateway_api(crds: &Json, set: &ConfigSet, what: &str) -> usize {
    let mut checked = 0;
    for (r, object) in set.gateway_api() {
        let json = serde_json::to_value(object.to_value().expect("serializes")).expect("json");
        let api_version = json["apiVersion"].as_str().expect("apiVersion").to_owned();
        let schema = gateway_schema(crds, "standard", object.kind(), &api_version);
        let validator = jsonschema::validator_for(schema).expect("a valid schema");
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: {} does not validate:\n{}\n{json:#}",
            r.display_name(),
            errors.join("\n")
        );
        let mut pruned = Vec::new();
        unknown_fields(schema, &json, "", &mut pruned);
        assert!(
            pruned.is_empty(),
            "{what}: {} has fields the CRD lacks: {pruned:?}",
            r.display_name()
        );
        checked += 1;
    }
    checked
}

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample-configs")
        .join(name)
}

fn samples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-configs"))
            .expect("sample-configs")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
    files.sort();
    files
}

#[test]
fn the_httproute_samples_validate_against_the_gateway_api_schema() {
    let crds = read_json("tests/gateway-api/gateway-structural.json");
    let mut checked = 0;
    for file in samples()
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("httproute"))
    {
        let set = ConfigSet::load_files(std::slice::from_ref(&file));
        assert!(!set.has_errors(), "{:#?}", set.diagnostics());
        checked += validate_gateway_api(&crds, &set, &file.display().to_string());
    }
    assert_eq!(checked, 3);
}

#[test]
fn convert_to_httproute_writes_yaml_the_crd_accepts() {
    let crds = read_json("tests/gateway-api/gateway-structural.json");
    let mut checked = 0;
    for file in samples() {
        let set = ConfigSet::load_files(std::slice::from_ref(&file));
        let converted = translate_file(&set, 0, Target::HttpRoute).expect("converts");
        let again = ConfigSet::load_str("converted.yaml", &converted.yaml);
        let loading: Vec<_> = again
            .diagnostics()
            .iter()
            .filter(|d| d.code.starts_with("ML000"))
            .map(ToString::to_string)
            .collect();
        assert!(
            loading.is_empty(),
            "{}: {loading:#?}\n{}",
            file.display(),
            converted.yaml
        );
        checked += validate_gateway_api(&crds, &again, &file.display().to_string());
    }
    assert!(checked >= 8, "{checked}");
}

#[test]
fn convert_to_virtualservice_writes_yaml_istios_crd_accepts() {
    let crds = read_json("tests/istio/networking-structural.json");
    for file in samples()
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("httproute"))
    {
        let set = ConfigSet::load_files(std::slice::from_ref(&file));
        let converted = translate_file(&set, 0, Target::VirtualService).expect("converts");
        assert_eq!(converted.converted, 1, "{}", file.display());
        let again = ConfigSet::load_str("converted.yaml", &converted.yaml);
        assert!(
            !again.has_errors(),
            "{}: {:#?}\n{}",
            file.display(),
            again.diagnostics(),
            converted.yaml
        );
        for r in again.resources() {
            let IstioObject::VirtualService(vs) = &r.object else {
                continue;
            };
            let json = serde_json::to_value(&**vs).expect("json");
            let schema = crds["kinds"]["VirtualService"]["schemas"][0]["openAPIV3Schema"].clone();
            let validator = jsonschema::validator_for(&schema).expect("schema");
            let errors: Vec<String> = validator
                .iter_errors(&json)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{}: {errors:?}", file.display());
        }
    }
}

#[test]
fn a_wrong_field_fails_the_schema_so_the_test_can_fail() {
    let crds = read_json("tests/gateway-api/gateway-structural.json");
    let schema = gateway_schema(
        &crds,
        "standard",
        "HTTPRoute",
        "gateway.networking.k8s.io/v1",
    );
    let bad = serde_json::json!({"spec": {"rules": [{"matches": [{"path": {"type": "Prefix"}}]}]}});
    assert!(
        !jsonschema::validator_for(schema)
            .expect("schema")
            .is_valid(&bad)
    );
    let mut pruned = Vec::new();
    unknown_fields(
        schema,
        &serde_json::json!({"spec": {"rules": [{"retry": {}}]}}),
        "",
        &mut pruned,
    );
    assert_eq!(
        pruned,
        [".spec.rules[0].retry"],
        "retry is experimental only"
    );
}

/// CEL rules of fields the lab keeps verbatim and does not check, and why.
const NOT_CHECKED: [(&str, &str); 14] = [
    (
        "IPAddress values must be unique",
        "Gateway addresses: the lab does not read them",
    ),
    ("Hostname values must be unique", "Gateway addresses"),
    (
        "Hostname value must be empty or contain only valid characters",
        "Gateway addresses",
    ),
    (
        "Annotation keys must be in the form",
        "Gateway infrastructure annotations",
    ),
    (
        "If specified, the annotation key's prefix",
        "Gateway infrastructure annotations",
    ),
    (
        "Label keys must be in the form",
        "Gateway infrastructure labels",
    ),
    (
        "If specified, the label key's prefix",
        "Gateway infrastructure labels",
    ),
    (
        "certificateRefs or options must be specified",
        "listener TLS: the lab's listener is plain HTTP",
    ),
    (
        "Port for TLS configuration must be unique",
        "Gateway frontend TLS",
    ),
    (
        "Hostname value must only contain valid characters",
        "Gateway addresses",
    ),
    (
        "Value is immutable",
        "GatewayClass controllerName: an update rule, no single file breaks it",
    ),
    (
        "AbsoluteTimeout must be specified when cookie",
        "sessionPersistence: kept, not simulated",
    ),
    (
        "cookieConfig can only be set with type Cookie",
        "sessionPersistence",
    ),
    (
        "must be specified when protocol is set to",
        "externalAuth: Istio refuses the filter anyway (ML0504)",
    ),
];

#[test]
fn every_cel_rule_of_the_gateway_api_crds_has_a_check() {
    let crds = read_json("tests/gateway-api/gateway-structural.json");
    let lab = [
        include_str!("../src/config/gateway/cel/mod.rs"),
        include_str!("../src/config/gateway/cel/filters.rs"),
    ]
    .concat();
    let mut seen = 0;
    let mut missing = Vec::new();
    for channel in ["standard", "experimental"] {
        for kind in [
            "HTTPRoute",
            "GRPCRoute",
            "Gateway",
            "GatewayClass",
            "ReferenceGrant",
        ] {
            let schema = gateway_schema(&crds, channel, kind, "v1");
            let mut found = Vec::new();
            schema_support::cel_rules(schema, "", &mut found);
            let rules: Vec<(String, String)> = found
                .into_iter()
                .map(|(path, rule)| {
                    (
                        path,
                        rule["message"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            for (path, message) in rules {
                seen += 1;
                let excepted = NOT_CHECKED.iter().any(|(m, _)| message.contains(m))
                    || message.starts_with("protocol must be");
                let escaped = message.replace('\\', "\\\\");
                if !excepted && !lab.contains(&escaped) {
                    missing.push(format!("{channel} {kind} {path}: {message}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "CEL rules no check of the lab gives (add one to src/config/gateway/cel/):\n{}",
        missing.join("\n")
    );
    assert!(seen >= 150, "only {seen} CEL rules");
}

/// Counterexamples of CEL rules: each refused by `check` with ML0501 and the rule's words.
#[test]
fn check_refuses_the_counterexamples_of_the_cel_rules() {
    let route = |spec: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\nspec: {spec}\n"
        )
    };
    let cases = [
        (route("{rules: [{filters: [{type: RequestRedirect, requestRedirect: {}}], backendRefs: [{name: a, port: 80}]}]}"), "RequestRedirect filter must not be used together with backendRefs"),
        (route("{rules: [{matches: [{path: {type: Exact, value: /a}}], filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]}]}"), "When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified"),
        (route("{rules: [{matches: [{path: {value: /a/../b}}]}]}"), "must not contain '/../' when type one of ['Exact', 'PathPrefix']"),
        (route("{rules: [{matches: [{path: {value: 'a'}}]}]}"), "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"),
        (route("{rules: [{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: a, port: 80}, fraction: {numerator: 5, denominator: 4}}}]}]}"), "numerator must be less than or equal to denominator"),
        (route("{rules: [{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: a}}}]}]}"), "Must have port for Service reference"),
        (route("{rules: [{backendRefs: [{name: a}]}]}"), "Must have port for Service reference"),
        (route("{rules: [{timeouts: {request: 1s, backendRequest: 2s}}]}"), "backendRequest timeout cannot be longer than request timeout"),
        (route("{rules: [{name: a}, {name: a}]}"), "Rule name must be unique within the route"),
        (route("{parentRefs: [{name: g}, {name: g, sectionName: http}]}"), "sectionName or port must be specified when parentRefs includes 2 or more references to the same parent"),
        (route("{rules: [{filters: [{type: URLRewrite, urlRewrite: {}}, {type: URLRewrite, urlRewrite: {}}]}]}"), "URLRewrite filter cannot be repeated"),
        (route("{rules: [{filters: [{type: CORS}]}]}"), "filter.cors must be specified for CORS filter.type"),
        (route("{rules: [{filters: [{type: CORS, cors: {allowOrigins: ['*', 'https://a.example']}}]}]}"), "AllowOrigins cannot contain '*' alongside other origins"),
        ("apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g}\nspec: {rules: [{matches: [{method: {type: Exact}}]}]}\n".to_owned(), "One or both of 'service' or 'method' must be specified"),
        ("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {gatewayClassName: istio, listeners: [{name: a, port: 80, protocol: HTTP}, {name: b, port: 80, protocol: HTTP}]}\n".to_owned(), "Combination of port, protocol and hostname must be unique for each listener"),
    ];
    for (yaml, message) in cases {
        let set = ConfigSet::load_str("cel.yaml", &yaml);
        assert!(
            set.diagnostics()
                .iter()
                .any(|d| d.severity == Severity::Error
                    && d.code == "ML0501"
                    && d.message.starts_with(message)),
            "expected ML0501 `{message}` for {yaml}\ngot: {:#?}",
            set.diagnostics()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn the_gateway_api_resources_of_istios_samples_check_clean() {
    // Istio's samples (samples/bookinfo/gateway-api/, samples/httpbin/gateway-api/, the
    // traffic-management tasks' HTTPRoutes) in the shape the docs give them.
    let set = ConfigSet::load_str("istio-samples.yaml", ISTIO_SAMPLES);
    let errors: Vec<String> = set
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        set.gateway_api()
            .filter(|(_, o)| matches!(o, GatewayApiObject::HttpRoute(_)))
            .count(),
        4
    );
    let crds = read_json("tests/gateway-api/gateway-structural.json");
    assert_eq!(validate_gateway_api(&crds, &set, "Istio's samples"), 7);
    let _ = sample;
}

const ISTIO_SAMPLES: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: bookinfo-gateway
spec:
  gatewayClassName: istio
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: bookinfo
spec:
  parentRefs:
  - name: bookinfo-gateway
  rules:
  - matches:
    - path:
        type: Exact
        value: /productpage
    - path:
        type: PathPrefix
        value: /static
    - path:
        type: Exact
        value: /login
    - path:
        type: Exact
        value: /logout
    - path:
        type: PathPrefix
        value: /api/v1/products
    backendRefs:
    - name: productpage
      port: 9080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: reviews
    port: 9080
  rules:
  - matches:
    - headers:
      - name: end-user
        value: jason
    backendRefs:
    - name: reviews-v2
      port: 9080
  - backendRefs:
    - name: reviews-v1
      port: 9080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews-weighted
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: reviews-weighted
    port: 9080
  rules:
  - backendRefs:
    - name: reviews-v1
      port: 9080
      weight: 50
    - name: reviews-v3
      port: 9080
      weight: 50
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: httpbin
    port: 8000
  rules:
  - filters:
    - type: RequestMirror
      requestMirror:
        backendRef:
          name: httpbin-v2
          port: 80
        percent: 50
    backendRefs:
    - name: httpbin-v1
      port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: istio
spec:
  controllerName: istio.io/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: grpc
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo
  rules:
  - matches:
    - method:
        service: proto.EchoTestService
        method: Echo
    backendRefs:
    - name: echo
      port: 7070
"#;
