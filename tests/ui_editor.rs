//! The route editor on the real app: forms change the YAML and the running proxy; errors
//! show next to their field and block Apply.

mod ui_common;

use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use ui_common::{
    MirrorFiles, Upstream, app, mirror_config, mirror_files, runtime, send_requests, type_into,
    wait_until,
};

/// Types `value` into the route form's mirror percentage field and confirms it.
fn set_mirror_percentage<S>(h: &mut egui_kittest::Harness<'_, S>, value: &str) {
    let field = h.get_by_role_and_label(Role::SpinButton, "Mirror percentage");
    field.click();
    h.run_ok();
    h.key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
    h.get_by_role_and_label(Role::SpinButton, "Mirror percentage")
        .type_text(value);
    h.key_press(egui::Key::Enter);
    h.run_ok();
}

#[test]
fn a_sample_config_opens_into_the_forms() {
    let rt = runtime();
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sample-configs/reviews-mirror.yaml"
    );
    let mut h = app(&rt, Some(std::path::Path::new(sample)));
    h.run_ok();
    let doc = &h.state().doc;
    assert_eq!(doc.hosts(), vec!["reviews".to_owned()]);
    assert_eq!(
        doc.problem_counts().0,
        0,
        "{:?}",
        doc.config().diagnostics()
    );
    // The form shows the VirtualService's route and its mirror.
    h.get_by_label("Route 0: reviews-v1-mirrored");
    h.get_by_role_and_label(Role::SpinButton, "Mirror percentage");
    assert!(!h.state().doc.is_dirty());
}

#[test]
fn a_form_edit_keeps_the_files_comments_beside_their_fields() {
    let rt = runtime();
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sample-configs/reviews-mirror.yaml"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews-mirror.yaml");
    std::fs::write(&path, &sample).unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();

    set_mirror_percentage(&mut h, "50");

    let yaml = h.state().doc.yaml().to_owned();
    assert!(yaml.contains("value: 50"), "{yaml}");
    let comments = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(comments(&yaml), comments(&sample), "{yaml}");
    assert!(yaml.starts_with("# Tutorial scenario 1:"), "{yaml}");
    let before_rule = yaml
        .find("# The DestinationRule the mirror needs")
        .expect("the DestinationRule's comment");
    let rule = yaml[before_rule..]
        .find("kind: DestinationRule")
        .expect("followed by its DestinationRule");
    assert!(
        !yaml[before_rule..before_rule + rule].contains("kind:"),
        "the comment sits right above its resource: {yaml}"
    );
    assert_eq!(h.state().doc.comments_dropped(), 0);
}

#[test]
fn a_route_timeout_typed_in_the_form_lands_in_the_yaml_and_a_bad_one_is_flagged() {
    let rt = runtime();
    let v1 = Upstream::start(&rt, None);
    let v2 = Upstream::start(&rt, None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, mirror_config(v1.addr, v2.addr)).unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();

    h.get_by_role_and_label(Role::TextInput, "timeout").click();
    h.run_ok();
    h.get_by_role_and_label(Role::TextInput, "timeout")
        .type_text("2s");
    h.run_ok();
    let yaml = h.state().doc.yaml().to_owned();
    assert!(yaml.contains("    timeout: 2s\n"), "{yaml}");
    assert_eq!(h.state().doc.problem_counts().0, 0);

    // A duration without its unit is not one Istio takes.
    h.key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
    h.get_by_role_and_label(Role::TextInput, "timeout")
        .type_text("2");
    h.run_ok();
    let errors = h.state().doc.problem_counts().0;
    assert!(errors > 0, "{:?}", h.state().doc.config().diagnostics());
    assert!(
        h.state()
            .doc
            .config()
            .diagnostics()
            .iter()
            .any(|d| d.field_path.as_deref() == Some("spec.http[0].timeout")),
        "{:?}",
        h.state().doc.config().diagnostics()
    );
}

#[test]
fn changing_the_mirror_percentage_changes_the_yaml_and_the_running_proxy() {
    let rt = runtime();
    let v1 = Upstream::start(&rt, None);
    let v2 = Upstream::start(&rt, Some(r#""stars":5"#));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, mirror_config(v1.addr, v2.addr)).unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();

    // The proxy started as the config opened.
    let addr = h.state().lab.local_addr().expect("the proxy runs");

    // 100% to start with: every request is mirrored.
    send_requests(&rt, addr, 20);
    assert!(
        wait_until(&mut h, 10, |_| v2.hits() == 20),
        "v2 got {} of 20",
        v2.hits()
    );

    // Set the percentage to 0 in the number field.
    set_mirror_percentage(&mut h, "0");

    let yaml = h.state().doc.yaml().to_owned();
    assert!(
        yaml.contains("mirrorPercentage:\n      value: 0.0"),
        "{yaml}"
    );
    assert!(h.state().doc.is_dirty());
    assert!(h.state().window_title().starts_with('*'));

    h.get_by_label("Apply to running proxy").click();
    h.run_ok();
    send_requests(&rt, addr, 20);
    assert!(wait_until(&mut h, 10, |_| v1.hits() == 40));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(v2.hits(), 20, "after Apply at 0% the shadow gets nothing");
    let counters = h.state().lab.counters().unwrap();
    assert_eq!(counters.mirrored, 20);
    assert_eq!(counters.skipped_not_sampled, 20);
}

#[test]
fn an_invalid_header_regex_shows_its_error_next_to_it_and_blocks_apply() {
    let rt = runtime();
    let MirrorFiles {
        v1: _v1,
        v2: _v2,
        dir: _dir,
        path,
    } = mirror_files(&rt);
    let mut h = app(&rt, Some(&path));
    h.run_ok();

    h.get_by_label("Add match block").click();
    h.run_ok();
    h.get_by_label("Add header row").click();
    h.run_ok();
    // The new row matches on presence; switch it to a regex and type a broken one.
    h.get_by_label("header x-header: how to match").click();
    h.run_ok();
    h.get_by_label("regex").click();
    h.run_ok();
    type_into(&mut h, "value", "(unclosed");

    let yaml = h.state().doc.yaml().to_owned();
    assert!(
        yaml.contains("regex: (unclosed") || yaml.contains("regex: '(unclosed'"),
        "{yaml}"
    );
    let (errors, _) = h.state().doc.problem_counts();
    assert!(errors >= 1);
    // The error is shown in the form (next to the header row) ...
    let shown = h
        .query_all_by_label_contains("error[ML0103]: invalid regex")
        .count();
    assert_eq!(shown, 1, "the regex error is on screen once");
    // ... and Apply is disabled, saying why (the proxy runs: it started as the file opened).
    assert!(
        h.get_by_label("Apply to running proxy")
            .accesskit_node()
            .is_disabled()
    );
    h.get_by_label_contains("Apply is blocked: 1 error");
}

#[test]
fn a_missing_subset_can_be_defined_from_the_destination_that_names_it() {
    let rt = runtime();
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sample-configs/reviews-mirror-missing-subset.yaml"
    );
    let mut h = app(&rt, Some(std::path::Path::new(sample)));
    h.run_ok();
    assert_eq!(h.get_all_by_label_contains("error[IST0101]").count(), 1);
    // The config has an error, so the proxy did not start with it.
    assert!(
        h.get_by_label("Apply and start proxy")
            .accesskit_node()
            .is_disabled()
    );

    h.get_by_label("Define subset v2").click();
    h.run_ok();
    let doc = &h.state().doc;
    assert!(
        doc.config()
            .diagnostics()
            .iter()
            .all(|d| d.code != "IST0101"),
        "{:?}",
        doc.config().diagnostics()
    );
    let yaml = doc.yaml();
    assert!(
        yaml.contains("host: reviews-v2\n  subsets:\n  - name: v2"),
        "{yaml}"
    );
    assert!(
        h.query_all_by_label_contains("error[IST0101]")
            .next()
            .is_none()
    );
}

/// A config: `reviews` to subset v1, whose endpoints are the given servers, and the
/// DestinationRule with no traffic policy.
fn v1_endpoints_config(endpoints: &[std::net::SocketAddr]) -> String {
    let mut text = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-vs
spec:
  hosts:
  - reviews
  http:
  - name: to-v1
    route:
    - destination:
        host: reviews
        subset: v1
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews-dr
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
---
"
    .to_owned();
    let v1: Vec<_> = endpoints.iter().map(|e| (*e, "v1")).collect();
    text.push_str(&ui_common::reviews_service_entry(&v1));
    text
}

/// The statuses the client gets for `n` GETs through the proxy, one after the other.
fn statuses(rt: &tokio::runtime::Runtime, addr: std::net::SocketAddr, n: usize) -> Vec<u16> {
    rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut out = Vec::new();
        for i in 0..n {
            let resp = client
                .get(format!("http://{addr}/reviews/{i}"))
                .header("host", "reviews")
                .send()
                .await
                .unwrap();
            out.push(resp.status().as_u16());
        }
        out
    })
}

#[test]
fn retries_set_in_the_form_retry_what_istios_default_lets_through() {
    // Istio's default policy (retry.go DefaultPolicy) retries connect-failure,
    // refused-stream, unavailable, cancelled and retriable-status-codes with no codes: a
    // 503 answer goes back to the client. `retryOn: 5xx` (Envoy's x-envoy-retry-on 5xx)
    // retries it, so an upstream that fails every other request never fails the client.
    let rt = runtime();
    let flaky = Upstream::answering_with(
        &rt,
        |id, _| format!(r#"{{"id":"{id}"}}"#),
        |n| if n % 2 == 0 { 503 } else { 200 },
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, v1_endpoints_config(&[flaky.addr])).unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    let addr = h.state().lab.local_addr().expect("the proxy runs");
    let before = statuses(&rt, addr, 10);
    assert_eq!(
        before.iter().filter(|s| **s == 503).count(),
        5,
        "{before:?}"
    );

    h.get_by_label("retries").click();
    h.run_ok();
    let field = || Role::TextInput;
    h.get_by_role_and_label(field(), "retryOn").click();
    h.run_ok();
    h.key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
    h.get_by_role_and_label(field(), "retryOn").type_text("5xx");
    h.run_ok();
    let yaml = h.state().doc.yaml().to_owned();
    assert!(
        yaml.contains("    retries:\n      attempts: 2\n      retryOn: 5xx\n"),
        "{yaml}"
    );
    assert_eq!(h.state().doc.problem_counts(), (0, 0));

    h.get_by_label("Apply to running proxy").click();
    h.run_ok();
    let hits = flaky.hits();
    let after = statuses(&rt, addr, 10);
    assert_eq!(after, vec![200; 10], "every 503 was retried");
    // The upstream alternates and every request now takes two of its answers, so each
    // first attempt meets a 503 and its retry a 200.
    assert_eq!(flaky.hits() - hits, 20, "10 requests, each tried twice");
}

#[test]
fn a_bad_retry_condition_is_flagged_beside_the_field() {
    // validation.go validateHTTPRetry: every retryOn entry is an Envoy condition or a
    // status code.
    let rt = runtime();
    let v1 = Upstream::start(&rt, None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, v1_endpoints_config(&[v1.addr])).unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    h.get_by_label("retries").click();
    h.run_ok();
    h.get_by_role_and_label(Role::TextInput, "retryOn").click();
    h.run_ok();
    h.key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
    h.get_by_role_and_label(Role::TextInput, "retryOn")
        .type_text("5xx,sometimes");
    h.run_ok();
    let diags = h.state().doc.config().diagnostics().to_vec();
    let bad = diags
        .iter()
        .find(|d| d.field_path.as_deref() == Some("spec.http[0].retries.retryOn"))
        .unwrap_or_else(|| panic!("{diags:?}"));
    assert!(bad.message.contains("sometimes"), "{}", bad.message);
    // Shown in the form, under the field.
    assert!(
        h.query_by_label_contains("sometimes").is_some(),
        "the diagnostic is on screen"
    );
}

#[test]
fn round_robin_picked_in_the_destination_rule_form_alternates_the_endpoints() {
    // Envoy's ROUND_ROBIN takes the endpoints in turn; Istio's default (LEAST_REQUEST,
    // two random choices) would not alternate twenty sequential requests but by a chance
    // of 2^-19.
    let rt = runtime();
    let a = Upstream::start(&rt, None);
    let b = Upstream::start(&rt, None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, v1_endpoints_config(&[a.addr, b.addr])).unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    let addr = h.state().lab.local_addr().expect("the proxy runs");

    h.get_by_label("DestinationRule default/reviews-dr").click();
    h.run_ok();
    h.get_by_label("Traffic policy of every subset (none: Istio's defaults)")
        .click();
    h.run_ok();
    h.get_by_label("loadBalancer").click();
    h.run_ok();
    h.get_by_label("ROUND_ROBIN").click();
    h.run_ok();
    let yaml = h.state().doc.yaml().to_owned();
    assert!(
        yaml.contains("  trafficPolicy:\n    loadBalancer:\n      simple: ROUND_ROBIN\n"),
        "{yaml}"
    );
    h.get_by_label("Apply to running proxy").click();
    h.run_ok();

    let mut turns = Vec::new();
    for _ in 0..20 {
        let (ha, hb) = (a.hits(), b.hits());
        assert_eq!(statuses(&rt, addr, 1), vec![200]);
        turns.push(if a.hits() > ha {
            'a'
        } else if b.hits() > hb {
            'b'
        } else {
            '?'
        });
    }
    assert!(
        turns.windows(2).all(|w| w[0] != w[1]),
        "the endpoints take turns: {turns:?}"
    );
}
