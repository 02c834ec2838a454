//! What `mirrorlab check` says about Gateway API resources: the CRD schema while loading
//! (with the line, the field and a "did you mean"), and what Istio's conversion would put
//! in a route's status (Accepted, ResolvedRefs) or what its translation does that the spec
//! does not say, each with its own code (docs/CHECK.md).

use mirrorlab::config::{ConfigSet, Diagnostic, Severity};

fn diagnostics(yaml: &str) -> Vec<Diagnostic> {
    ConfigSet::load_str("gw.yaml", yaml).diagnostics().to_vec()
}

/// The one diagnostic with `code`, failing with all of them otherwise.
fn only(yaml: &str, code: &str) -> Diagnostic {
    let all = diagnostics(yaml);
    let found: Vec<&Diagnostic> = all.iter().filter(|d| d.code == code).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {code}, got:\n{}",
        all.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    found[0].clone()
}

fn route(parent: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: web}}\nspec:\n  parentRefs: [{parent}]\n  rules:\n{rules}"
    )
}

const MESH_PARENT: &str = "{group: '', kind: Service, name: reviews}";

const SERVICES: &str = "apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: web}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: v1, namespace: web}
spec: {ports: [{name: http, port: 80}]}
---
";

#[test]
fn a_typo_is_refused_at_its_line_with_a_suggestion() {
    let yaml = format!(
        "{SERVICES}{}",
        route(
            MESH_PARENT,
            "  - backendRefs:\n    - name: v1\n      prot: 80\n"
        )
    );
    let d = only(&yaml, "ML0004");
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(d.line, 19, "{d}");
    assert_eq!(
        d.field_path.as_deref(),
        Some("spec.rules[0].backendRefs[0].prot")
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `port`?"));
    let d = only(
        &format!(
            "{SERVICES}{}",
            route(MESH_PARENT, "  - matches: [{path: {type: Prefix}}]\n")
        ),
        "ML0003",
    );
    assert!(
        d.message
            .contains("is not one of \"Exact\", \"PathPrefix\", \"RegularExpression\""),
        "{d}"
    );
}

#[test]
fn a_route_to_a_gateway_the_files_lack_is_not_accepted() {
    // Istio: no such parent, the route's Accepted condition is False (NoMatchingParent).
    let d = only(
        &format!(
            "{SERVICES}{}",
            route(
                "{name: missing}",
                "  - backendRefs: [{name: v1, port: 80}]\n"
            )
        ),
        "ML0503",
    );
    assert_eq!(d.severity, Severity::Error);
    assert!(
        d.message.contains("Accepted=False") && d.message.contains("NoMatchingParent"),
        "{d}"
    );
    assert_eq!(d.field_path.as_deref(), Some("spec.parentRefs[0]"));
}

#[test]
fn a_listener_of_the_same_namespace_only_refuses_other_namespaces() {
    // Gateway API: allowedRoutes.namespaces.from defaults to Same.
    let gateway = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
";
    let d = only(
        &format!(
            "{SERVICES}{gateway}{}",
            route(
                "{name: gw, namespace: infra}",
                "  - backendRefs: [{name: v1, port: 80}]\n"
            )
        ),
        "ML0503",
    );
    assert!(d.message.contains("NotAllowedByListeners"), "{d}");
    let all = diagnostics(&format!(
        "{SERVICES}{}{}",
        gateway.replace(
            "protocol: HTTP}",
            "protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}"
        ),
        route(
            "{name: gw, namespace: infra}",
            "  - backendRefs: [{name: v1, port: 80}]\n"
        )
    ));
    assert!(!all.iter().any(|d| d.code == "ML0503"), "{all:#?}");
    assert!(
        all.iter()
            .any(|d| d.code == "ML0507" && d.severity == Severity::Info),
        "bound only to a Gateway: {all:#?}"
    );
    assert!(
        all.iter().any(|d| d.code == "ML0405"),
        "the GatewayClass is not in the files: {all:#?}"
    );
}

#[test]
fn unsupported_backends_and_filters_are_istios_errors() {
    let d = only(
        &format!(
            "{SERVICES}{}",
            route(
                MESH_PARENT,
                "  - backendRefs: [{group: example.com, kind: Bucket, name: b, port: 80}]\n"
            )
        ),
        "ML0502",
    );
    assert!(d.message.contains("InvalidKind"), "{d}");
    let d = only(
        &format!(
            "{SERVICES}{}",
            route(
                MESH_PARENT,
                "  - filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Auth, name: a}}]\n    backendRefs: [{name: v1, port: 80}]\n"
            )
        ),
        "ML0504",
    );
    assert!(
        d.message
            .contains("unsupported filter type \"ExtensionRef\"")
            && d.message.contains("drops the whole route"),
        "{d}"
    );
    let d = only(
        &format!(
            "{SERVICES}{}",
            route(
                MESH_PARENT,
                "  - backendRefs: [{name: v1.web.svc.cluster.local, port: 80}]\n"
            )
        ),
        "ML0502",
    );
    assert!(
        d.message.contains("the name of the Service must be used"),
        "{d}"
    );
}

#[test]
fn a_cross_namespace_backend_of_a_gateway_route_needs_a_reference_grant() {
    // Gateway API ReferenceGrant; Istio enforces it for Gateway parents only
    // (buildDestination enforceRefGrant = !mesh).
    let gateway = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: web}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
";
    let rules = "  - backendRefs: [{name: db, namespace: data, port: 80}]\n";
    let d = only(
        &format!("{gateway}{}", route("{name: gw}", rules)),
        "ML0502",
    );
    assert!(d.message.contains("RefNotPermitted"), "{d}");
    let grant = "---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: web-to-data, namespace: data}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: web}]
  to: [{group: '', kind: Service}]
";
    let all = diagnostics(&format!("{gateway}{}{grant}", route("{name: gw}", rules)));
    assert!(!all.iter().any(|d| d.code == "ML0502"), "{all:#?}");
    let mesh = diagnostics(&format!("{SERVICES}{}", route(MESH_PARENT, rules)));
    assert!(
        !mesh.iter().any(|d| d.code == "ML0502"),
        "the mesh needs no grant: {mesh:#?}"
    );
}

#[test]
fn what_only_the_cluster_knows_is_an_info() {
    let all = diagnostics(&route(
        MESH_PARENT,
        "  - backendRefs: [{name: v1, port: 80}]\n",
    ));
    let parent = all
        .iter()
        .find(|d| d.code == "ML0404")
        .expect("the parent Service");
    let backend = all
        .iter()
        .find(|d| d.code == "ML0401")
        .expect("the backend Service");
    assert_eq!(
        (parent.severity, backend.severity),
        (Severity::Info, Severity::Info)
    );
    assert!(
        !all.iter().any(|d| d.severity == Severity::Error),
        "{all:#?}"
    );
}

#[test]
fn experimental_fields_and_what_the_lab_does_not_simulate_are_warnings() {
    let d = diagnostics(&format!(
        "{SERVICES}{}",
        route(
            MESH_PARENT,
            "  - retry: {attempts: 3, codes: [503]}\n    backendRefs: [{name: v1, port: 80}]\n"
        )
    ));
    let codes: Vec<&str> = d
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| d.code)
        .collect();
    assert_eq!(
        codes,
        ["ML0505"],
        "retry is simulated (a VirtualService retry policy), but experimental: {d:#?}"
    );
}

#[test]
fn where_istio_departs_from_the_spec_the_check_says_so() {
    // Istio copies ReplacePrefixMatch into Envoy's redirect prefix_rewrite as written
    // (createRedirectFilter, route.go ApplyRedirect), and ranks a regex below `/`.
    let d = only(
        &format!(
            "{SERVICES}{}",
            route(
                MESH_PARENT,
                "  - matches: [{path: {value: /a}}]\n    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b/}}}]\n"
            )
        ),
        "ML0508",
    );
    assert!(d.message.contains("double slash"), "{d}");
    let d = only(
        &format!(
            "{SERVICES}{}",
            route(
                MESH_PARENT,
                "  - matches: [{path: {type: RegularExpression, value: /x.*}}]\n    backendRefs: [{name: v1, port: 80}]\n  - backendRefs: [{name: v1, port: 80}]\n"
            )
        ),
        "ML0508",
    );
    assert_eq!(d.field_path.as_deref(), Some("spec.rules[0].matches[0]"));
    assert!(d.message.contains("never used"), "{d}");
}

#[test]
fn a_virtualservice_for_a_host_an_httproute_routes_is_flagged() {
    let vs = "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: web}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: v1}}]}]
";
    let d = only(
        &format!(
            "{SERVICES}{}{vs}",
            route(MESH_PARENT, "  - backendRefs: [{name: v1, port: 80}]\n")
        ),
        "ML0509",
    );
    assert_eq!(d.severity, Severity::Warning);
}

#[test]
fn another_controllers_parent_is_ignored_with_a_warning() {
    let d = only(
        &format!(
            "{SERVICES}{}",
            route(
                "{group: example.com, kind: Mesh, name: m}",
                "  - backendRefs: [{name: v1, port: 80}]\n"
            )
        ),
        "ML0506",
    );
    assert_eq!(d.severity, Severity::Warning);
}

#[test]
fn broken_gateway_api_documents_never_crash_the_checker() {
    for yaml in [
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nspec: []\n",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {rules: [{matches: [{path: {value: 7}}]}]}\n",
        "apiVersion: gateway.networking.k8s.io/v2\nkind: HTTPRoute\nmetadata: {name: r}\n",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g}\nspec: {rules: [{matches: [{method: {type: RegularExpression, service: '('}}]}]}\n",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {parentRefs: [{kind: Service, group: '', name: s}], rules: [{matches: [{path: {type: RegularExpression, value: '(' }}], backendRefs: [{name: s, port: 1}]}]}\n",
    ] {
        let set = ConfigSet::load_str("broken.yaml", yaml);
        assert!(set.has_errors(), "{yaml}: {:#?}", set.diagnostics());
        let _ = mirrorlab::routing::RouteTable::compile(&set);
    }
}

/// The ML0301 findings of `yaml`: (field path, line), in order.
fn not_simulated(yaml: &str) -> Vec<(String, usize)> {
    diagnostics(yaml)
        .iter()
        .filter(|d| d.code == "ML0301")
        .inspect(|d| assert_eq!(d.severity, Severity::Warning, "{d}"))
        .map(|d| (d.field_path.clone().unwrap_or_default(), d.line))
        .collect()
}

#[test]
fn every_field_the_lab_does_not_simulate_is_warned_at_its_line() {
    // DESIGN.md: what the lab does not simulate it says at the field. A Gateway's addresses
    // and infrastructure shape what the cluster deploys, a listener's tls terminates on the
    // gateway (the lab's listener is plain HTTP), a namespace Selector reads namespace
    // labels only the cluster has, a class's parametersRef configures its deployments, and
    // sessionPersistence (GEP-1619) pins clients to a backend; none reaches a request here.
    let yaml = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: istio}
spec:
  controllerName: istio.io/gateway-controller
  description: the lab reads past this one, it changes nothing
  parametersRef: {group: '', kind: ConfigMap, name: options, namespace: web}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: web}
spec:
  gatewayClassName: istio
  addresses: [{value: 10.0.0.1}]
  infrastructure: {labels: {team: a}}
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    tls: {mode: Terminate, certificateRefs: [{name: cert}]}
    allowedRoutes:
      namespaces:
        from: Selector
        selector: {matchLabels: {shared: 'true'}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: web}
spec:
  parentRefs: [{group: '', kind: Service, name: reviews}]
  rules:
  - sessionPersistence: {sessionName: s}
    backendRefs: [{name: v1, port: 80}]
---
";
    let http = route(
        MESH_PARENT,
        "  - backendRefs: [{name: v1, port: 80}]\n    sessionPersistence: {sessionName: s}\n",
    );
    let file = format!("{SERVICES}{yaml}{http}");
    // GatewayClass `spec.description` is a field of the CRD (it was once lost with the
    // schema's prose): valid, and with no effect on a request, so no finding at all.
    let errors: Vec<Diagnostic> = diagnostics(&file)
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let found = not_simulated(&file);
    let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.parametersRef",
            "spec.addresses",
            "spec.infrastructure",
            "spec.listeners[0].tls",
            "spec.listeners[0].allowedRoutes.namespaces.from",
            "spec.rules[0].sessionPersistence",
            "spec.rules[0].sessionPersistence",
        ],
        "{found:?}"
    );
    // Each at its own line of the file (SERVICES is 10 lines).
    let lines: Vec<usize> = found.iter().map(|(_, l)| *l).collect();
    assert_eq!(lines, [17, 24, 25, 30, 33, 42, 52], "{found:?}");
}

#[test]
fn a_gateway_the_lab_simulates_in_full_gets_no_not_simulated_warning() {
    // The counterpart: Istio's bookinfo Gateway (samples/bookinfo/gateway-api/) has only
    // fields the lab runs, so the test above cannot pass by warning at everything.
    let yaml = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: web}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}}
";
    assert_eq!(not_simulated(&format!("{SERVICES}{yaml}")), []);
}
