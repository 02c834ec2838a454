//! Loading and checking Istio YAML: every diagnostic of `mirrorlab check` with its line and
//! field path, broken YAML, `kind: List` dumps, several files, and writing back.

use mirrorlab::config::model::StringMatch;
use mirrorlab::config::{ConfigSet, Diagnostic, IstioObject, Severity};

fn load(yaml: &str) -> ConfigSet {
    ConfigSet::load_str("lab.yaml", yaml)
}

/// The diagnostics with `code`, failing with the full list when there are none.
fn with_code<'a>(set: &'a ConfigSet, code: &str) -> Vec<&'a Diagnostic> {
    let found: Vec<_> = set
        .diagnostics()
        .iter()
        .filter(|d| d.code == code)
        .collect();
    assert!(
        !found.is_empty(),
        "expected {code}, got:\n{}",
        set.diagnostics()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    found
}

fn only(set: &ConfigSet, code: &str) -> Diagnostic {
    let found = with_code(set, code);
    assert_eq!(found.len(), 1, "{found:#?}");
    found[0].clone()
}

fn codes(set: &ConfigSet) -> Vec<&'static str> {
    set.diagnostics().iter().map(|d| d.code).collect()
}

const BACKENDS: &str = "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9081}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: 9082}, labels: {version: v2}}
";

/// A VirtualService for `reviews` whose single route gets `route_extra` appended (indented
/// four spaces, under `- route: ...`), followed by the backends above.
fn vs_with(route_extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews-vs}}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews, subset: v1}}
{route_extra}{BACKENDS}"
    )
}

#[test]
fn clean_config_has_no_diagnostics() {
    let set = load(&vs_with("    mirror: {host: reviews, subset: v2}\n"));
    assert!(set.diagnostics().is_empty(), "{:#?}", set.diagnostics());
    assert_eq!(set.resources().len(), 3);
    assert!(!set.has_errors());
}

#[test]
fn ist0101_mirror_to_undefined_subset_names_line_field_and_fix() {
    let set = load(&vs_with(
        "    mirror:\n      host: reviews-v2\n      subset: v2\n",
    ));
    let d = only(&set, "IST0101");
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(d.line, 11);
    assert_eq!(d.field_path.as_deref(), Some("spec.http[0].mirror.subset"));
    assert_eq!(
        d.resource.as_deref(),
        Some("VirtualService default/reviews-vs")
    );
    assert!(d.message.contains("reviews-v2"), "{}", d.message);
    let help = d.help.as_deref().unwrap();
    assert!(help.contains("kind: DestinationRule"), "{help}");
    assert!(help.contains("host: reviews-v2"), "{help}");
    assert!(help.contains("- name: v2"), "{help}");

    let text = d.to_string();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("lab.yaml:11: error[IST0101]: {}", d.message)
    );
    assert_eq!(
        lines.next().unwrap().trim(),
        "resource: VirtualService default/reviews-vs"
    );
    assert_eq!(
        lines.next().unwrap().trim(),
        "field:    spec.http[0].mirror.subset"
    );
}

#[test]
fn ist0101_for_route_destinations_and_mirrors_entries() {
    let set = load(&vs_with(
        "    mirrors:\n    - destination: {host: reviews, subset: v3}\n      percentage: {value: 5}\n",
    ));
    let d = only(&set, "IST0101");
    assert_eq!(
        d.field_path.as_deref(),
        Some("spec.http[0].mirrors[0].destination.subset")
    );
    assert_eq!(d.line, 10);
    // The rule exists but lacks the subset: say which subsets it has.
    assert!(d.message.contains("`v1`, `v2`"), "{}", d.message);

    let set = load(&vs_with("").replace("subset: v1}", "subset: v7}"));
    let d = only(&set, "IST0101");
    assert_eq!(
        d.field_path.as_deref(),
        Some("spec.http[0].route[0].destination.subset")
    );
    assert_eq!(d.line, 8);
}

#[test]
fn subsets_resolve_across_short_names_and_fqdns() {
    // The DestinationRule names the FQDN, the route the short name: same host.
    let set = load(&vs_with("").replace(
        "  host: reviews\n",
        "  host: reviews.default.svc.cluster.local\n",
    ));
    assert!(set.diagnostics().is_empty(), "{:#?}", set.diagnostics());
    // A DestinationRule in another namespace defines another host's subsets.
    let set = load(&vs_with("").replace(
        "metadata: {name: reviews}\nspec:\n  host: reviews\n",
        "metadata: {name: reviews, namespace: prod}\nspec:\n  host: reviews\n",
    ));
    only(&set, "IST0101");
}

#[test]
fn mirror_and_mirrors_together_is_an_error() {
    let set = load(&vs_with(
        "    mirror: {host: reviews, subset: v2}\n    mirrors:\n    - destination: {host: reviews, subset: v2}\n",
    ));
    let d = only(&set, "ML0101");
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(d.field_path.as_deref(), Some("spec.http[0].mirrors"));
    assert_eq!(d.line, 10);
}

#[test]
fn percentages_outside_0_to_100_are_errors() {
    let set = load(&vs_with(
        "    mirror: {host: reviews, subset: v2}\n    mirrorPercentage: {value: 150}\n",
    ));
    let d = only(&set, "ML0102");
    assert_eq!(
        d.field_path.as_deref(),
        Some("spec.http[0].mirrorPercentage.value")
    );
    assert_eq!(d.line, 10);

    let set = load(&vs_with(
        "    mirrors:\n    - destination: {host: reviews, subset: v2}\n      percentage: {value: -1}\n",
    ));
    let d = only(&set, "ML0102");
    assert_eq!(
        d.field_path.as_deref(),
        Some("spec.http[0].mirrors[0].percentage.value")
    );

    let set = load(&vs_with(
        "    mirror: {host: reviews, subset: v2}\n    mirrorPercent: 120\n",
    ));
    assert_eq!(only(&set, "ML0102").severity, Severity::Error);

    // 0 and 100 are fine.
    for v in ["0", "100", "25.5"] {
        let set = load(&vs_with(&format!(
            "    mirror: {{host: reviews, subset: v2}}\n    mirrorPercentage: {{value: {v}}}\n"
        )));
        assert!(
            set.diagnostics().is_empty(),
            "{v}: {:#?}",
            set.diagnostics()
        );
    }
}

#[test]
fn invalid_regex_names_the_matcher() {
    let yaml = vs_with("").replace(
        "  - route:\n",
        "  - match:\n    - headers:\n        user-agent: {regex: '.*(testing'}\n    route:\n",
    );
    let set = load(&yaml);
    let d = only(&set, "ML0103");
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(
        d.field_path.as_deref(),
        Some("spec.http[0].match[0].headers.user-agent.regex")
    );
    assert_eq!(d.line, 9);
    assert!(d.message.contains(".*(testing"), "{}", d.message);
}

#[test]
fn look_around_is_rejected_as_re2_would() {
    let yaml = vs_with("").replace(
        "  - route:\n",
        "  - match:\n    - uri: {regex: '/(?!admin).*'}\n    route:\n",
    );
    only(&load(&yaml), "ML0103");
}

#[test]
fn destination_without_host_is_an_error() {
    let set = load(&vs_with("    mirror: {subset: v2}\n"));
    let d = only(&set, "ML0104");
    assert_eq!(d.field_path.as_deref(), Some("spec.http[0].mirror.host"));
    assert_eq!(d.line, 9);
    let set = load(&vs_with("").replace("{host: reviews, subset: v1}", "{subset: v1}"));
    let d = only(&set, "ML0104");
    assert_eq!(
        d.field_path.as_deref(),
        Some("spec.http[0].route[0].destination.host")
    );
}

#[test]
fn string_match_with_two_kinds_is_an_error() {
    let yaml = vs_with("").replace(
        "  - route:\n",
        "  - match:\n    - uri: {exact: /a, prefix: /b}\n    route:\n",
    );
    let d = only(&load(&yaml), "ML0105");
    assert_eq!(d.field_path.as_deref(), Some("spec.http[0].match[0].uri"));
}

#[test]
fn deprecated_mirror_percent_warns_with_replacement() {
    let set = load(&vs_with(
        "    mirror: {host: reviews, subset: v2}\n    mirrorPercent: 30\n",
    ));
    let d = only(&set, "ML0201");
    assert_eq!(d.severity, Severity::Warning);
    assert_eq!(d.field_path.as_deref(), Some("spec.http[0].mirrorPercent"));
    assert_eq!(d.line, 10);
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("mirrorPercentage: {value: 30}")
    );
    assert!(!set.has_errors());
}

#[test]
fn uppercase_header_key_is_accepted_with_an_info() {
    let yaml = vs_with("").replace(
        "  - route:\n",
        "  - match:\n    - headers:\n        End-User: {exact: jason}\n    route:\n",
    );
    let set = load(&yaml);
    let d = only(&set, "ML0202");
    // Istio accepts upper-case header names and Envoy compares them case-insensitively.
    assert_eq!(d.severity, Severity::Info);
    assert!(!set.has_errors());
    assert!(d.message.contains("Istio accepts it"), "{}", d.message);
    assert_eq!(
        d.field_path.as_deref(),
        Some("spec.http[0].match[0].headers.End-User")
    );
    assert_eq!(d.line, 9);
    assert!(d.help.as_deref().unwrap().contains("end-user"));
}

#[test]
fn weights_that_do_not_add_up_to_100_warn() {
    let set = load(&vs_with(
        "      weight: 70\n    - destination: {host: reviews, subset: v2}\n      weight: 20\n",
    ));
    let d = only(&set, "ML0203");
    assert_eq!(d.severity, Severity::Warning);
    assert_eq!(d.field_path.as_deref(), Some("spec.http[0].route"));
    assert!(d.message.contains("90"), "{}", d.message);
    // 80 + 20 is fine, as is a lone destination without weight.
    let set = load(&vs_with(
        "      weight: 80\n    - destination: {host: reviews, subset: v2}\n      weight: 20\n",
    ));
    assert!(set.diagnostics().is_empty(), "{:#?}", set.diagnostics());
}

#[test]
fn route_after_catch_all_warns_unreachable() {
    let yaml = vs_with("")
        + "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: second}
spec:
  hosts: [ratings]
  http:
  - name: everything
    route: [{destination: {host: ratings}}]
  - name: never
    match: [{uri: {prefix: /api}}]
    route: [{destination: {host: ratings}}]
  - match: [{}]
    route: [{destination: {host: ratings}}]
";
    let set = load(&yaml);
    let found = with_code(&set, "IST0130");
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[0].field_path.as_deref(), Some("spec.http[1]"));
    assert_eq!(
        found[0].resource.as_deref(),
        Some("VirtualService default/second")
    );
    assert!(found[0].message.contains("never"), "{}", found[0].message);
    assert!(
        found[0]
            .message
            .contains("route without matches defined before"),
        "{}",
        found[0].message
    );
    assert_eq!(found[0].line, 38);
    assert_eq!(found[0].severity, Severity::Warning);
    // A route after an empty match block can never match either, but Istio does not
    // report it: the lab's own advice says so, as a warning of its own.
    let yaml = vs_with("").replace(
        "  - route:\n",
        "  - match: [{}]\n    route: [{destination: {host: reviews, subset: v2}}]\n  - route:\n",
    );
    let set = load(&yaml);
    assert!(!set.diagnostics().iter().any(|d| d.code == "IST0130"));
    assert_eq!(
        only(&set, "ML0209").field_path.as_deref(),
        Some("spec.http[1]")
    );
}

#[test]
fn a_route_whose_matches_all_came_before_is_unreachable() {
    // istio: pkg/config/analysis/analyzers/testdata/virtualservice_dupmatches.yaml
    // "duplicate-match": IST0130 for the rule, IST0131 for its match.
    let yaml = vs_with("").replace(
        "  - route:\n",
        "  - match: [{uri: {prefix: /a}}]\n    route: [{destination: {host: reviews, subset: v2}}]\n  - name: again\n    match: [{name: other-name, uri: {prefix: /a}}]\n    route: [{destination: {host: reviews, subset: v2}}]\n  - route:\n",
    );
    let set = load(&yaml);
    let d = only(&set, "IST0130");
    assert_eq!(d.field_path.as_deref(), Some("spec.http[1]"));
    assert!(
        d.message.contains("all matches used by prior rules"),
        "{}",
        d.message
    );
    let d = only(&set, "IST0131");
    assert_eq!(d.severity, Severity::Info);
    assert_eq!(d.field_path.as_deref(), Some("spec.http[1].match[0]"));
    assert!(!set.has_errors());
}

#[test]
fn virtual_service_without_routes_is_refused_and_tcp_only_warns() {
    // istio: pkg/config/validation/validation_test.go TestValidateVirtualService "missing tcp/http/tls"
    let set = load(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: empty}
spec:
  hosts: [reviews]
",
    );
    let d = only(&set, "ML0131");
    assert_eq!(d.severity, Severity::Error);
    let set = load(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp}
spec:
  hosts: [reviews]
  tcp: [{route: [{destination: {host: reviews}}]}]
",
    );
    let d = only(&set, "ML0204");
    assert_eq!(d.severity, Severity::Warning);
    assert!(!set.has_errors(), "{:#?}", set.diagnostics());
}

#[test]
fn two_virtual_services_claiming_one_host_are_ist0109_across_files() {
    let a = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
";
    let b = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b}
spec:
  hosts:
  - ratings
  - reviews.default.svc.cluster.local
  http: [{route: [{destination: {host: reviews}}]}]
";
    let set = ConfigSet::load_strs([("a.yaml", a), ("b.yaml", b)]);
    // istioctl analyze reports IST0109 (an error) on each VirtualService.
    let found = with_code(&set, "IST0109");
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found.iter().all(|d| d.severity == Severity::Error));
    let d = found.iter().find(|d| d.file == "b.yaml").unwrap();
    assert_eq!(d.line, 7);
    assert_eq!(d.field_path.as_deref(), Some("spec.hosts[1]"));
    assert!(
        d.message.contains("default/a,default/b")
            && d.message.contains("reviews.default.svc.cluster.local"),
        "{}",
        d.message
    );
    // exportTo to different namespaces: no conflict (virtualservice_conflictingmeshgatewayhosts_with_exportto.yaml).
    let b_elsewhere = b.replace("spec:\n", "spec:\n  exportTo: [other]\n");
    let a_local = a.replace("spec:\n", "spec:\n  exportTo: [\".\"]\n");
    let set = ConfigSet::load_strs([("a.yaml", &*a_local), ("b.yaml", &*b_elsewhere)]);
    assert!(
        !set.diagnostics().iter().any(|d| d.code == "IST0109"),
        "{:#?}",
        set.diagnostics()
    );
}

#[test]
fn subset_selecting_no_service_entry_endpoint_warns() {
    let yaml = vs_with("").replace(
        "  - {name: v2, labels: {version: v2}}\n",
        "  - {name: v2, labels: {version: v2}}\n  - {name: v4, labels: {version: v4}}\n",
    );
    let set = load(&yaml);
    let d = only(&set, "ML0206");
    assert_eq!(d.severity, Severity::Warning);
    assert_eq!(d.field_path.as_deref(), Some("spec.subsets[2].labels"));
    assert_eq!(d.line, 18);
    assert_eq!(
        d.resource.as_deref(),
        Some("DestinationRule default/reviews")
    );
}

#[test]
fn yaml_syntax_errors_have_file_and_line() {
    let set = load(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec:\n  hosts: [reviews\n  http: []\n",
    );
    let d = only(&set, "ML0002");
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(d.file, "lab.yaml");
    assert!((4..=5).contains(&d.line), "{d}");
    assert!(set.resources().is_empty());

    // Duplicate keys are caught by yaml_serde, still with a line.
    let set = load("kind: VirtualService\napiVersion: networking.istio.io/v1\nkind: X\n");
    let d = only(&set, "ML0002");
    assert!(d.line >= 1, "{d}");
    assert!(d.message.contains("duplicate"), "{d}");
}

#[test]
fn wrong_types_name_the_field_and_line() {
    let set = load(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se}
spec:
  hosts: [x]
  ports:
  - number: http
    name: http
",
    );
    let d = only(&set, "ML0003");
    assert_eq!(d.field_path.as_deref(), Some("spec.ports[0].number"));
    assert_eq!(d.line, 7);
    assert!(d.message.contains("http"), "{}", d.message);
}

#[test]
fn unknown_fields_are_errors_with_did_you_mean() {
    let set = load(&vs_with("    mirorr: {host: reviews, subset: v2}\n"));
    let d = only(&set, "ML0004");
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(d.field_path.as_deref(), Some("spec.http[0].mirorr"));
    assert_eq!(d.line, 9);
    assert!(d.message.contains("`mirorr`"), "{}", d.message);
    assert_eq!(d.help.as_deref(), Some("did you mean `mirror`?"));

    // Nothing close: the help lists what is allowed.
    let set = load(&vs_with("    zzzzzz: 1\n"));
    let help = only(&set, "ML0004").help.unwrap();
    assert!(help.contains("`mirrorPercentage`"), "{help}");

    // The tutorial's nested mirrorPercentage gets a precise fix.
    let set = load(&vs_with(
        "    mirror:\n      host: reviews\n      subset: v2\n      mirrorPercentage:\n        value: 25.0\n",
    ));
    let d = only(&set, "ML0004");
    assert_eq!(d.line, 12);
    assert!(d.help.unwrap().contains("next to `mirror`"));

    // Unknown fields inside metadata are errors too, but standard ones are not.
    let set = load(&vs_with("").replace(
        "metadata: {name: reviews-vs}",
        "metadata: {name: reviews-vs, uid: u1, finalizers: [x]}",
    ));
    assert!(set.diagnostics().is_empty(), "{:#?}", set.diagnostics());
}

#[test]
fn unknown_kinds_warn_and_are_kept() {
    let set = load(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec: {selector: {istio: ingressgateway}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
",
    );
    let found = with_code(&set, "ML0005");
    assert_eq!(found.len(), 2);
    assert!(found[0].message.contains("Gateway"), "{}", found[0].message);
    assert_eq!(found[1].line, 6);
    assert!(found[1].message.contains("Service"));
    assert!(!set.has_errors());
    assert!(matches!(set.resources()[0].object, IstioObject::Other(_)));
    let back = set.to_yaml_string(0).unwrap();
    assert!(back.contains("ingressgateway"), "{back}");
}

#[test]
fn all_three_api_versions_load_and_others_are_refused() {
    for v in ["v1", "v1beta1", "v1alpha3"] {
        let set = load(&vs_with("").replace(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService",
            &format!("apiVersion: networking.istio.io/{v}\nkind: VirtualService"),
        ));
        assert!(
            set.diagnostics().is_empty(),
            "{v}: {:#?}",
            set.diagnostics()
        );
    }
    let set = load(&vs_with("").replace(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService",
        "apiVersion: networking.istio.io/v2\nkind: VirtualService",
    ));
    let d = only(&set, "ML0006");
    assert_eq!(d.line, 1);
}

const DUMP: &str = "apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata:
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: |
        {\"apiVersion\":\"networking.istio.io/v1\"}
      mirrorlab.dev/ignore-fields: timestamp,requestId
    creationTimestamp: \"2025-01-01T00:00:00Z\"
    generation: 3
    labels: {app: reviews}
    managedFields:
    - apiVersion: networking.istio.io/v1
      fieldsType: FieldsV1
      fieldsV1: {f:spec: {}}
      manager: kubectl-client-side-apply
      operation: Update
    name: reviews-vs
    namespace: default
    resourceVersion: \"901\"
    uid: 6c0cbe5e-0d5b-4a59-9d77-1f0f6b0b2a10
  spec:
    hosts: [reviews]
    http:
    - route:
      - destination: {host: reviews, subset: v1}
      mirror: {host: reviews, subset: v3}
  status:
    observedGeneration: 3
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: reviews, namespace: default}
  spec:
    host: reviews
    subsets:
    - {name: v1, labels: {version: v1}}
kind: List
metadata:
  resourceVersion: \"\"
";

#[test]
fn kubectl_list_dump_loads_as_it_is() {
    // The trailing duplicate `kind: List` would be a YAML error; drop it for this test.
    let dump = DUMP.replace("kind: List\nmetadata:", "metadata:");
    let set = load(&dump);
    let d = only(&set, "IST0101");
    // Lines point into the list item.
    assert_eq!(d.line, 29);
    assert_eq!(d.field_path.as_deref(), Some("spec.http[0].mirror.subset"));
    assert_eq!(set.resources().len(), 2);
    assert_eq!(set.resources()[0].source.line, 4);
    assert_eq!(set.resources()[1].source.line, 32);
    let IstioObject::VirtualService(vs) = &set.resources()[0].object else {
        panic!("first item is the VirtualService");
    };
    assert_eq!(vs.metadata.extra["resourceVersion"].as_str(), Some("901"));
    assert!(vs.metadata.extra.contains_key("managedFields"));
    assert!(vs.status.is_some());
    assert_eq!(
        vs.metadata.annotations["mirrorlab.dev/ignore-fields"],
        "timestamp,requestId"
    );
}

#[test]
fn written_back_yaml_loads_to_the_same_model_and_keeps_lab_annotations() {
    let dump = DUMP.replace("kind: List\nmetadata:", "metadata:");
    let set = load(&dump);
    let back = set.to_yaml_string(0).unwrap();
    assert!(
        back.contains("mirrorlab.dev/ignore-fields: timestamp,requestId"),
        "{back}"
    );
    assert!(
        back.contains("resourceVersion: '901'") || back.contains("resourceVersion: \"901\""),
        "{back}"
    );
    let again = ConfigSet::load_str("back.yaml", &back);
    let objects = |s: &ConfigSet| {
        s.resources()
            .iter()
            .map(|r| r.object.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(objects(&set), objects(&again));
    // Absent fields stay absent: no nulls or empty lists are invented.
    assert!(!back.contains("null"), "{back}");
    assert!(!back.contains("[]"), "{back}");
    // Key order of user maps is kept.
    let ann = back.find("kubectl.kubernetes.io").unwrap();
    let lab = back.find("mirrorlab.dev").unwrap();
    assert!(ann < lab);
}

#[test]
fn several_files_load_together_in_order() {
    let vs = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-vs}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
";
    // Alone, the subset is undefined; with the backends file it is not.
    assert!(ConfigSet::load_strs([("vs.yaml", vs)]).has_errors());
    let set = ConfigSet::load_strs([("vs.yaml", vs), ("backends.yaml", BACKENDS)]);
    assert!(set.diagnostics().is_empty(), "{:#?}", set.diagnostics());
    assert_eq!(set.files().len(), 2);
    let files: Vec<_> = set.resources().iter().map(|r| set.file_name(r)).collect();
    assert_eq!(files, ["vs.yaml", "backends.yaml", "backends.yaml"]);
    assert_eq!(set.to_yaml_string(1).unwrap().matches("kind:").count(), 2);
}

#[test]
fn missing_files_are_reported_not_panicked() {
    let set = ConfigSet::load_files(&["/nonexistent/mirrorlab.yaml".into()]);
    let d = only(&set, "ML0001");
    assert_eq!(d.file, "/nonexistent/mirrorlab.yaml");
    assert!(set.has_errors());
}

#[test]
fn odd_inputs_never_panic() {
    let inputs = [
        "",
        "# only a comment\n",
        "---\n---\n...\n",
        "just a scalar",
        "- a\n- b\n",
        "kind: List\nitems: 3\n",
        "kind: List\nitems:\n- 1\n- [2]\n",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: 7\n",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  http:\n  - route: [{destination: {host: '', port: {number: 70000}}}]\n    mirror: {host: a, port: {number: 0}}\n",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: {hosts: [a], http: [{match: [{port: 99999, uri: {regex: '['}}]}]}\n",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nspec: {subsets: [{name: a}, {name: a}]}\n",
        "\t- tab\n",
        "a: &x [1]\nb: *x\n? [complex, key]\n: value\n",
        "apiVersion: 5\nkind: [VirtualService]\n",
        "\u{feff}apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nspec: {hosts: [a], endpoints: [{ports: {http: 0}}]}\n",
    ];
    for input in inputs {
        let set = load(input);
        for d in set.diagnostics() {
            // Every diagnostic renders and points into the file.
            assert!(d.line <= input.lines().count() + 1, "{input:?}: {d}");
            let _ = d.to_string();
        }
        let _ = mirrorlab::routing::RouteTable::compile(&set);
    }
    assert!(codes(&load("kind: List\nitems: 3\n")).contains(&"ML0003"));
}

#[test]
fn string_match_model_serializes_minimally() {
    let m = StringMatch {
        prefix: Some("/api".into()),
        ..Default::default()
    };
    assert_eq!(yaml_serde::to_string(&m).unwrap(), "prefix: /api\n");
}

#[test]
fn ports_hosts_subsets_and_routes_without_destination() {
    // ML0106: ports outside 1..65535, in routes and ServiceEntries.
    let set = load(&vs_with("").replace(
        "{host: reviews, subset: v1}",
        "{host: reviews, subset: v1, port: {number: 70000}}",
    ));
    let d = only(&set, "ML0106");
    assert_eq!(
        d.field_path.as_deref(),
        Some("spec.http[0].route[0].destination.port.number")
    );
    let set = load(&vs_with("").replace("ports: {http: 9082}", "ports: {http: 0}"));
    let d = only(&set, "ML0106");
    assert_eq!(
        d.field_path.as_deref(),
        Some("spec.endpoints[1].ports.http")
    );
    assert_eq!(d.line, 28);

    // ML0107: resources without hosts. A VirtualService without hosts is a delegate,
    // which Istio accepts; a ServiceEntry without hosts it refuses.
    let set = load(&vs_with("").replace("  hosts: [reviews]\n", ""));
    assert!(!set.diagnostics().iter().any(|d| d.code == "ML0107"));
    let set = load(&vs_with("").replace("  hosts: [reviews.default.svc.cluster.local]\n", ""));
    assert_eq!(
        only(&set, "ML0107").field_path.as_deref(),
        Some("spec.hosts")
    );

    // ML0108: a subset defined twice.
    let set = load(&vs_with("").replace(
        "  - {name: v2, labels: {version: v2}}\n",
        "  - {name: v2, labels: {version: v2}}\n  - {name: v1, labels: {version: v2}}\n",
    ));
    let d = only(&set, "ML0108");
    assert_eq!(d.field_path.as_deref(), Some("spec.subsets[2].name"));
    assert_eq!(d.line, 18);

    // ML0109: a route with nowhere to go; ML0301: one the lab does not simulate.
    let yaml = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {exact: /a}}]
    timeout: 1s
  - match: [{uri: {exact: /b}}]
    directResponse: {status: 204}
  - route: [{destination: {host: reviews}}]
    timeout: soon
";
    let set = load(yaml);
    let d = only(&set, "ML0109");
    assert_eq!((d.field_path.as_deref(), d.line), (Some("spec.http[0]"), 7));
    // A direct response is simulated: no "not simulated" warning for it any more.
    assert!(!set.diagnostics().iter().any(|d| d.code == "ML0301"));
    // What the lab simulates (rewrite, headers, fault, retries) gets no warning.
    let simulated = load(&vs_with(
        "    rewrite: {uri: /v2/}\n    headers: {request: {set: {x-a: b}}}\n    fault: {abort: {httpStatus: 503, percentage: {value: 10}}}\n    retries: {attempts: 3}\n",
    ));
    assert!(!simulated.diagnostics().iter().any(|d| d.code == "ML0301"));
    // A DestinationRule's policy parts the lab does not act on are named, each at its
    // field, top level, per port and per subset; what it acts on is not.
    let dr = load(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 30s}
    connectionPool: {tcp: {maxConnections: 10, tcpKeepalive: {time: 7200s}}}
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings:
    - port: {number: 9080}
      tls: {mode: SIMPLE, credentialName: reviews-cert}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      connectionPool: {http: {h2UpgradePolicy: UPGRADE, maxConcurrentStreams: 10}}
",
    );
    let fields: Vec<_> = with_code(&dr, "ML0301")
        .iter()
        .map(|d| (d.field_path.clone().unwrap_or_default(), d.line))
        .collect();
    assert_eq!(
        fields,
        [
            (
                "spec.trafficPolicy.loadBalancer.warmupDurationSecs".to_owned(),
                7
            ),
            (
                "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive".to_owned(),
                8
            ),
            ("spec.trafficPolicy.tls".to_owned(), 9),
            // SIMPLE is originated; the Kubernetes secret it names cannot be read.
            (
                "spec.trafficPolicy.portLevelSettings[0].tls.credentialName".to_owned(),
                12
            ),
            (
                // The upgrade to HTTP/2 is simulated; the stream limit is not.
                "spec.subsets[0].trafficPolicy.connectionPool.http.maxConcurrentStreams".to_owned(),
                17
            ),
        ]
    );
    // Envoy expands %...% in header values; the lab does not, and says so.
    let percent = load(&vs_with(
        "    headers: {request: {set: {x-client: '%DOWNSTREAM_REMOTE_ADDRESS%'}}}\n",
    ));
    let d = only(&percent, "ML0301");
    assert_eq!(
        d.field_path.as_deref(),
        Some("spec.http[0].headers.request")
    );

    // ML0113: a duration Istio refuses.
    let d = only(&set, "ML0113");
    assert_eq!(
        (d.field_path.as_deref(), d.line),
        (Some("spec.http[2].timeout"), 12)
    );
}

#[test]
fn recheck_after_an_edit_updates_the_findings() {
    let mut set = load(&vs_with("    mirror: {host: reviews, subset: v9}\n"));
    assert!(set.has_errors());
    for r in set.resources_mut() {
        if let IstioObject::VirtualService(vs) = &mut r.object
            && let Some(m) = vs.spec.http[0].mirror.as_mut()
        {
            m.subset = Some("v2".into());
        }
    }
    set.recheck();
    assert!(set.diagnostics().is_empty(), "{:#?}", set.diagnostics());
}

#[test]
fn near_misses_get_did_you_mean() {
    // A subset name close to an existing one.
    let set = load(&vs_with("    mirror: {host: reviews, subset: V2}\n"));
    let d = only(&set, "IST0101");
    assert!(d.help.unwrap().ends_with("Did you mean subset `v2`?"));
    // Another version is not a typo: v3 gets the DestinationRule example, not "v1?".
    let set = load(&vs_with("    mirror: {host: reviews, subset: v3}\n"));
    let help = only(&set, "IST0101").help.unwrap();
    assert!(help.contains("- name: v3"), "{help}");
    let set2 = load(
        &vs_with("    mirror: {host: reviews, subset: canery}\n")
            .replace("name: v2,", "name: canary,"),
    );
    assert!(
        only(&set2, "IST0101")
            .help
            .unwrap()
            .ends_with("Did you mean subset `canary`?")
    );
    // A misspelt kind of networking.istio.io.
    let set =
        load("apiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata: {name: x}\n");
    let d = only(&set, "ML0005");
    assert_eq!(
        d.help.as_deref(),
        Some("did you mean `kind: VirtualService`?")
    );
    assert_eq!(d.field_path.as_deref(), Some("kind"));
    // A known kind without apiVersion is an error, not an unknown kind.
    let set = load("kind: VirtualService\nmetadata: {name: x}\nspec: {hosts: [a]}\n");
    let d = only(&set, "ML0006");
    assert_eq!(d.severity, Severity::Error);
}

#[test]
fn anchors_and_merge_keys_load() {
    let yaml = vs_with("").replace(
        "  - route:\n    - destination: {host: reviews, subset: v1}\n",
        "  - route:\n    - destination: &v1 {host: reviews, subset: v1}\n    mirror:\n      <<: *v1\n      subset: v2\n",
    );
    let set = load(&yaml);
    assert!(set.diagnostics().is_empty(), "{:#?}", set.diagnostics());
    let IstioObject::VirtualService(vs) = &set.resources()[0].object else {
        panic!("a VirtualService first");
    };
    let mirror = vs.spec.http[0].mirror.as_ref().unwrap();
    assert_eq!(
        (mirror.host.as_str(), mirror.subset.as_deref()),
        ("reviews", Some("v2"))
    );
}
