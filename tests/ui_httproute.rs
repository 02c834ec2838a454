//! The HTTPRoute editor on the real app: the mirror filter's percentage, backends and
//! matches edited in the form land in the YAML the Gateway API CRD accepts and in the
//! running proxy; "Convert" writes the route in the other API.

mod ui_common;

use egui::accesskit::Role;
use egui_kittest::kittest::Queryable as _;
use ui_common::{Upstream, app, runtime, send_requests, wait_until};

/// An HTTPRoute for the reviews Service: everything to v1, mirrored to v2.
fn config(v1: std::net::SocketAddr, v2: std::net::SocketAddr) -> String {
    let entry = |name: &str, port: u16| {
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
    };
    format!(
        "{}{}{}apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
spec:
  parentRefs:
  - group: ''
    kind: Service
    name: reviews
    port: 9080
  rules:
  - name: mirrored
    filters:
    - type: RequestMirror
      requestMirror:
        backendRef:
          name: reviews-v2
          port: 9080
    backendRefs:
    - name: reviews-v1
      port: 9080
",
        entry("reviews", v1.port()),
        entry("reviews-v1", v1.port()),
        entry("reviews-v2", v2.port())
    )
}

/// The app with the HTTPRoute config open and the route selected, and its upstreams.
struct Opened<'a> {
    h: egui_kittest::Harness<'a, mirrorlab::ui::MirrorlabApp>,
    v1: Upstream,
    v2: Upstream,
    _dir: tempfile::TempDir,
}

fn open(rt: &tokio::runtime::Runtime) -> Opened<'static> {
    let v1 = Upstream::start(rt, None);
    let v2 = Upstream::start(rt, None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, config(v1.addr, v2.addr)).unwrap();
    let mut h = app(rt, Some(&path));
    h.run_ok();
    h.get_by_label("HTTPRoute default/reviews").click();
    h.run_ok();
    Opened {
        h,
        v1,
        v2,
        _dir: dir,
    }
}

/// Replaces the text of the field labelled `label` with `text`.
fn select_all_and_type(
    h: &mut egui_kittest::Harness<'_, mirrorlab::ui::MirrorlabApp>,
    label: &str,
    text: &str,
) {
    h.get_by_role_and_label(Role::TextInput, label).click();
    h.run_ok();
    h.key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
    h.get_by_role_and_label(Role::TextInput, label)
        .type_text(text);
    h.run_ok();
}

fn set_percentage<S>(h: &mut egui_kittest::Harness<'_, S>, value: &str) {
    h.get_by_role_and_label(Role::SpinButton, "Mirror percentage")
        .click();
    h.run_ok();
    h.key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
    h.get_by_role_and_label(Role::SpinButton, "Mirror percentage")
        .type_text(value);
    h.key_press(egui::Key::Enter);
    h.run_ok();
}

/// The HTTPRoute of the document's YAML against the standard channel's CRD schema.
fn assert_valid_httproute(yaml: &str) {
    assert_valid_httproute_in("standard", yaml);
}

/// The HTTPRoute of the document's YAML against `channel`'s CRD schema.
fn assert_valid_httproute_in(channel: &str, yaml: &str) {
    let crds: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/gateway-api/gateway-structural.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let schema = &crds["channels"][channel]["HTTPRoute"]["schemas"][0]["openAPIV3Schema"];
    let set = mirrorlab::config::ConfigSet::load_str("edited.yaml", yaml);
    let mut checked = 0;
    for (_, o) in set.gateway_api() {
        let json = serde_json::to_value(o.to_value().unwrap()).unwrap();
        let validator = jsonschema::validator_for(schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{yaml}");
        checked += 1;
    }
    assert_eq!(checked, 1, "{yaml}");
}

#[test]
fn the_mirror_percentage_of_an_httproute_changes_the_yaml_and_the_running_proxy() {
    let rt = runtime();
    let Opened {
        mut h,
        v1,
        v2,
        _dir,
    } = open(&rt);
    assert_eq!(
        h.state().doc.problem_counts(),
        (0, 0),
        "{:?}",
        h.state().doc.config().diagnostics()
    );
    assert_eq!(
        h.state().doc.hosts(),
        ["reviews"],
        "the route's Service is the host to send requests to"
    );
    let addr = h.state().lab.local_addr().expect("the proxy runs");
    send_requests(&rt, addr, 10);
    assert!(
        wait_until(&mut h, 10, |_| v2.hits() == 10),
        "v2 got {}",
        v2.hits()
    );

    set_percentage(&mut h, "12.5");
    let yaml = h.state().doc.yaml().to_owned();
    assert!(
        yaml.contains("fraction:\n          numerator: 1\n          denominator: 8"),
        "{yaml}"
    );
    assert_valid_httproute(&yaml);

    set_percentage(&mut h, "0");
    let yaml = h.state().doc.yaml().to_owned();
    assert!(yaml.contains("percent: 0"), "{yaml}");
    assert_valid_httproute(&yaml);
    h.get_by_label("Apply to running proxy").click();
    h.run_ok();
    send_requests(&rt, addr, 10);
    assert!(wait_until(&mut h, 10, |_| v1.hits() == 20));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(v2.hits(), 10, "at 0% the shadow gets nothing");
}

#[test]
fn matches_and_weighted_backends_are_edited_in_the_form() {
    let rt = runtime();
    let Opened { mut h, .. } = open(&rt);

    h.get_by_label("Add match").click();
    h.run_ok();
    h.get_by_label("Add header match").click();
    h.run_ok();
    select_all_and_type(&mut h, "header name", "x-canary");
    select_all_and_type(&mut h, "header value", "yes");
    h.get_by_label("Add backend").click();
    h.run_ok();
    select_all_and_type(&mut h, "backend 1 service", "reviews-v2");
    h.get_by_label("backend 0 weight").click();
    h.run_ok();
    let yaml = h.state().doc.yaml().to_owned();
    assert!(
        yaml.contains("name: x-canary") && yaml.contains("value: yes"),
        "{yaml}"
    );
    assert!(yaml.contains("weight: 1"), "{yaml}");
    assert!(yaml.contains("name: reviews-v2\n      port: 80"), "{yaml}");
    assert_eq!(
        h.state().doc.problem_counts().0,
        0,
        "{:?}",
        h.state().doc.config().diagnostics()
    );
    assert_valid_httproute(&yaml);
}

#[test]
fn convert_writes_the_route_as_a_virtualservice_and_back() {
    let rt = runtime();
    let Opened { mut h, .. } = open(&rt);
    h.get_by_label("Convert to VirtualService").click();
    h.run_ok();
    let yaml = h.state().doc.yaml().to_owned();
    assert!(
        yaml.contains("kind: VirtualService") && !yaml.contains("kind: HTTPRoute"),
        "{yaml}"
    );
    assert_eq!(h.state().doc.problem_counts().0, 0);
    h.get_by_label("Convert to HTTPRoute").click();
    h.run_ok();
    let yaml = h.state().doc.yaml().to_owned();
    assert!(
        yaml.contains("kind: HTTPRoute") && !yaml.contains("kind: VirtualService"),
        "{yaml}"
    );
    assert_valid_httproute(&yaml);
}

#[test]
fn a_rules_retry_and_backend_request_timeout_are_edited_in_the_form() {
    // HTTPRouteRetry (experimental channel) and HTTPRouteTimeouts.backendRequest, which
    // Istio turns into the route's retry policy and its per-try timeout (conversion.go).
    let rt = runtime();
    let Opened { mut h, .. } = open(&rt);
    h.get_by_role_and_label(Role::CheckBox, "retry").click();
    h.run_ok();
    h.get_by_label("Add retry code").click();
    h.run_ok();
    select_all_and_type(&mut h, "backend request timeout", "200ms");
    let yaml = h.state().doc.yaml().to_owned();
    assert!(yaml.contains("retry:\n      codes:\n      - 503"), "{yaml}");
    assert!(
        yaml.contains("timeouts:\n      backendRequest: 200ms"),
        "{yaml}"
    );
    assert_valid_httproute_in("experimental", &yaml);
    let diagnostics = h.state().doc.config().diagnostics().to_vec();
    assert_eq!(h.state().doc.problem_counts().0, 0, "{diagnostics:?}");
    assert!(
        diagnostics
            .iter()
            .any(|d| d.code == "ML0505" && d.field_path.as_deref() == Some("spec.rules[0].retry")),
        "the form's retry is said to be experimental: {diagnostics:?}"
    );
    // Unticked, the retry leaves the YAML.
    h.get_by_role_and_label(Role::CheckBox, "retry").click();
    h.run_ok();
    assert!(!h.state().doc.yaml().contains("retry:"));
}

#[test]
fn what_convert_could_not_say_is_listed_until_another_resource_is_selected() {
    // A fault has no Gateway API form: Convert lists it above the new HTTPRoute's form;
    // the note is about that route, so selecting another resource clears it.
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faulty.yaml");
    std::fs::write(
        &path,
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - fault: {abort: {httpStatus: 503, percentage: {value: 10}}}
    route: [{destination: {host: reviews-v1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-v1}
spec:
  hosts: [reviews-v1]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
",
    )
    .unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    // The first resource, the VirtualService, is selected as the file opens.
    h.get_by_label("Convert to HTTPRoute").click();
    h.run_ok();
    assert!(h.state().doc.yaml().contains("kind: HTTPRoute"));
    let noted = |h: &egui_kittest::Harness<'_, mirrorlab::ui::MirrorlabApp>| {
        h.query_all_by(|n| {
            n.label()
                .or_else(|| n.value())
                .is_some_and(|l| l.starts_with("Not converted:") && l.contains("fault"))
        })
        .count()
    };
    assert!(noted(&h) > 0, "the fault is listed");
    h.get_by_label("ServiceEntry default/reviews-v1").click();
    h.run_ok();
    assert_eq!(noted(&h), 0, "the note went with the selection");
}
