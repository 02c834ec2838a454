//! The route action forms on the real app: a fault, a rewrite, headers and a direct
//! response set in the Routes form land in the YAML, and after Apply the running proxy
//! does what they say to requests from a real client.

mod ui_common;

use egui::accesskit::Role;
use egui_kittest::kittest::Queryable as _;
use ui_common::{MirrorFiles, app, mirror_config, mirror_files, runtime, type_into};

/// The app on [`mirror_files`]' config, its proxy running.
struct Opened<'a> {
    files: MirrorFiles,
    h: egui_kittest::Harness<'a, mirrorlab::ui::MirrorlabApp>,
    addr: std::net::SocketAddr,
}

fn open(rt: &tokio::runtime::Runtime) -> Opened<'static> {
    let files = mirror_files(rt);
    let mut h = app(rt, Some(&files.path));
    h.run_ok();
    let addr = h.state().lab.local_addr().expect("the proxy runs");
    Opened { files, h, addr }
}

/// Replaces the text of the field labelled `label` with `text`.
fn replace_text<S>(h: &mut egui_kittest::Harness<'_, S>, label: &str, text: &str) {
    h.get_by_role_and_label(Role::TextInput, label).click();
    h.run_ok();
    h.key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
    h.get_by_role_and_label(Role::TextInput, label)
        .type_text(text);
    h.run_ok();
}

/// Whether the upstream got header `name` with `value`.
fn saw_header(seen: &ui_common::SeenRequest, name: &str, value: &str) -> bool {
    seen.headers.iter().any(|(k, v)| k == name && v == value)
}

/// Replaces the number in the spin button labelled `label` with `value`.
fn set_number<S>(h: &mut egui_kittest::Harness<'_, S>, label: &str, value: &str) {
    h.get_by_role_and_label(Role::SpinButton, label).click();
    h.run_ok();
    h.key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
    h.get_by_role_and_label(Role::SpinButton, label)
        .type_text(value);
    h.key_press(egui::Key::Enter);
    h.run_ok();
}

/// One GET for host `reviews` through the proxy: its status and body.
fn get(rt: &tokio::runtime::Runtime, addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let resp = client
            .get(format!("http://{addr}{path}"))
            .header("host", "reviews")
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    })
}

/// Clicks Apply and checks the proxy took the form's routes.
fn apply(h: &mut egui_kittest::Harness<'_, mirrorlab::ui::MirrorlabApp>) {
    assert_eq!(
        h.state().doc.problem_counts(),
        (0, 0),
        "{:?}",
        h.state().doc.config().diagnostics()
    );
    h.get_by_label("Apply to running proxy").click();
    h.run_ok();
}

#[test]
fn a_fault_abort_set_in_the_form_answers_every_request_with_its_status() {
    let rt = runtime();
    let Opened { files, mut h, addr } = open(&rt);
    let v1 = &files.v1;
    let v2 = &files.v2;
    assert_eq!(get(&rt, addr, "/reviews/1").0, 200);

    h.get_by_label("fault abort").click();
    h.run_ok();
    set_number(&mut h, "httpStatus", "418");
    let yaml = h.state().doc.yaml().to_owned();
    assert!(
        yaml.contains(
            "    fault:\n      abort:\n        httpStatus: 418\n        percentage:\n          value: 100.0\n"
        ),
        "{yaml}"
    );
    apply(&mut h);

    let (v1_before, v2_before) = (v1.hits(), v2.hits());
    for i in 0..5 {
        assert_eq!(get(&rt, addr, &format!("/reviews/{i}")).0, 418);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(v1.hits(), v1_before, "an aborted request is not forwarded");
    assert_eq!(v2.hits(), v2_before, "nor mirrored");

    // Unticked, the fault leaves the YAML whole (no `fault: {}`) and requests go through.
    h.get_by_label("fault abort").click();
    h.run_ok();
    assert!(
        !h.state().doc.yaml().contains("fault:"),
        "{}",
        h.state().doc.yaml()
    );
    apply(&mut h);
    assert_eq!(get(&rt, addr, "/reviews/1").0, 200);
}

#[test]
fn a_rewrite_and_request_headers_set_in_the_form_reach_the_upstream() {
    let rt = runtime();
    let v1 = ui_common::Upstream::start(&rt, None);
    let v2 = ui_common::Upstream::start(&rt, None);
    let config = mirror_config(v1.addr, v2.addr).replace(
        "  - name: to-v1\n",
        "  - name: to-v1\n    match:\n    - uri:\n        prefix: /api/\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, config).unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    let addr = h.state().lab.local_addr().expect("the proxy runs");
    assert_eq!(get(&rt, addr, "/api/reviews/7").0, 200);
    assert_eq!(v1.last_seen().unwrap().path, "/api/reviews/7");

    // Ticked, the rewrite starts as `uri: /`: the matched prefix becomes `/`.
    h.get_by_label("rewrite").click();
    h.run_ok();
    h.get_by_label("headers").click();
    h.run_ok();
    h.get_by_label("Add headers request set").click();
    h.run_ok();
    type_into(&mut h, "=", "from-the-form");
    let yaml = h.state().doc.yaml().to_owned();
    assert!(yaml.contains("    rewrite:\n      uri: /\n"), "{yaml}");
    assert!(
        yaml.contains(
            "    headers:\n      request:\n        set:\n          x-header: from-the-form\n"
        ),
        "{yaml}"
    );
    apply(&mut h);

    assert_eq!(get(&rt, addr, "/api/reviews/8").0, 200);
    let seen = v1.last_seen().unwrap();
    assert_eq!(
        seen.path, "/reviews/8",
        "the upstream sees the rewritten path"
    );
    assert!(
        saw_header(&seen, "x-header", "from-the-form"),
        "{:?}",
        seen.headers
    );
}

#[test]
fn a_direct_response_picked_in_the_form_answers_its_body_and_forwards_nothing() {
    let rt = runtime();
    let Opened { files, mut h, addr } = open(&rt);
    let v1 = &files.v1;
    let v2 = &files.v2;

    h.get_by_label("direct response").click();
    h.run_ok();
    let body = Role::MultilineTextInput;
    h.get_by_role_and_label(body, "direct response body")
        .click();
    h.run_ok();
    h.get_by_role_and_label(body, "direct response body")
        .type_text("answered by the lab");
    h.run_ok();
    let yaml = h.state().doc.yaml().to_owned();
    assert!(
        yaml.contains(
            "    directResponse:\n      status: 200\n      body:\n        string: answered by the lab\n"
        ),
        "{yaml}"
    );
    // A direct response takes no destinations and nothing to mirror: Istio refuses them.
    assert!(!yaml.contains("    route:\n"), "{yaml}");
    assert!(!yaml.contains("    mirror:\n"), "{yaml}");
    apply(&mut h);

    let before = (v1.hits(), v2.hits());
    assert_eq!(
        get(&rt, addr, "/reviews/1"),
        (200, "answered by the lab".to_owned())
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!((v1.hits(), v2.hits()), before);

    // Back to forward: a destination on the VirtualService's host, and requests reach v1.
    h.get_by_label("forward").click();
    h.run_ok();
    assert!(
        h.state()
            .doc
            .yaml()
            .contains("    route:\n    - destination:\n        host: reviews\n"),
        "{}",
        h.state().doc.yaml()
    );
    assert!(!h.state().doc.yaml().contains("directResponse"));
}

#[test]
fn a_redirect_picked_in_the_form_answers_301_with_the_new_location() {
    let rt = runtime();
    let Opened { files, mut h, addr } = open(&rt);
    let v1 = &files.v1;

    h.get_by_label("redirect").click();
    h.run_ok();
    replace_text(&mut h, "redirect uri", "/moved");
    let yaml = h.state().doc.yaml().to_owned();
    assert!(
        yaml.contains("    redirect:\n      uri: /moved\n"),
        "{yaml}"
    );
    apply(&mut h);

    let before = v1.hits();
    let location = rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = client
            .get(format!("http://{addr}/reviews/1"))
            .header("host", "reviews")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 301);
        resp.headers()["location"].to_str().unwrap().to_owned()
    });
    assert!(location.ends_with("reviews/moved"), "{location}");
    assert_eq!(v1.hits(), before);
}

#[test]
fn a_fault_delay_set_in_the_form_holds_each_request() {
    // fault_filter.cc: a delay at 100% holds the request for fixedDelay, then forwards it.
    let rt = runtime();
    let Opened { files, mut h, addr } = open(&rt);
    let v1 = &files.v1;
    h.get_by_label("fault delay").click();
    h.run_ok();
    replace_text(&mut h, "fixedDelay", "400ms");
    let yaml = h.state().doc.yaml().to_owned();
    assert!(
        yaml.contains("      delay:\n        fixedDelay: 400ms\n"),
        "{yaml}"
    );
    apply(&mut h);
    let before = v1.hits();
    let started = std::time::Instant::now();
    assert_eq!(get(&rt, addr, "/reviews/1").0, 200);
    let took = started.elapsed();
    assert!(took >= std::time::Duration::from_millis(400), "{took:?}");
    assert_eq!(v1.hits(), before + 1, "forwarded after the delay");
}

#[test]
fn a_cors_policy_set_in_the_form_answers_preflights_for_its_origin() {
    // cors_filter.cc: an OPTIONS with Origin and Access-Control-Request-Method from an
    // allowed origin is answered by the sidecar (200, allow headers) and never forwarded.
    let rt = runtime();
    let Opened { files, mut h, addr } = open(&rt);
    let v1 = &files.v1;
    h.get_by_label("corsPolicy").click();
    h.run_ok();
    let yaml = h.state().doc.yaml().to_owned();
    assert!(yaml.contains("    corsPolicy:\n"), "{yaml}");
    assert!(yaml.contains("exact: https://example.com"), "{yaml}");
    apply(&mut h);
    let before = v1.hits();
    let (status, allow) = rt.block_on(async {
        let resp = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .request(reqwest::Method::OPTIONS, format!("http://{addr}/reviews/1"))
            .header("host", "reviews")
            .header("origin", "https://example.com")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        let allow = resp
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned());
        (resp.status().as_u16(), allow)
    });
    assert_eq!(status, 200);
    assert_eq!(allow.as_deref(), Some("https://example.com"));
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(v1.hits(), before, "a preflight is answered by the sidecar");
}

#[test]
fn a_gateway_named_in_the_form_is_checked_beside_the_field() {
    // istioctl analyze (gateway analyzer): a VirtualService bound to a Gateway that no file
    // defines is IST0101, at the gateway's entry; the form shows it there and Apply waits.
    let rt = runtime();
    let Opened {
        files: _files,
        mut h,
        addr: _,
    } = open(&rt);
    h.get_by_label("Add gateway").click();
    h.run_ok();
    let yaml = h.state().doc.yaml().to_owned();
    assert!(yaml.contains("  gateways:\n  - mesh\n"), "{yaml}");
    assert_eq!(
        h.state().doc.problem_counts().0,
        0,
        "`mesh` is the sidecars"
    );
    replace_text(&mut h, "gateway 1", "istio-system/ingress");
    let yaml = h.state().doc.yaml().to_owned();
    assert!(
        yaml.contains("  gateways:\n  - istio-system/ingress\n"),
        "{yaml}"
    );
    let diags = h.state().doc.config().diagnostics().to_vec();
    let missing = diags
        .iter()
        .find(|d| d.code == "IST0101")
        .unwrap_or_else(|| panic!("{diags:?}"));
    assert!(
        missing
            .field_path
            .as_deref()
            .is_some_and(|p| p.starts_with("spec.gateways")),
        "{missing:?}"
    );
    // On screen beside the field: the entry and the diagnostic naming it.
    assert!(h.query_by_label_contains("IST0101").is_some());
}

#[test]
fn a_destination_header_set_in_the_form_reaches_that_destination() {
    // route.go: a destination's request headers join the route's for the requests that
    // destination gets.
    let rt = runtime();
    let Opened { files, mut h, addr } = open(&rt);
    let v1 = &files.v1;
    h.get_by_label("destination 0 headers").click();
    h.run_ok();
    h.get_by_label("Add destination 0 headers request set")
        .click();
    h.run_ok();
    type_into(&mut h, "=", "v1-only");
    let yaml = h.state().doc.yaml().to_owned();
    assert!(
        yaml.contains(
            "      headers:\n        request:\n          set:\n            x-header: v1-only\n"
        ),
        "{yaml}"
    );
    apply(&mut h);
    assert_eq!(get(&rt, addr, "/reviews/2").0, 200);
    let seen = v1.last_seen().unwrap();
    assert!(
        saw_header(&seen, "x-header", "v1-only"),
        "{:?}",
        seen.headers
    );
}

#[test]
fn a_grpc_abort_set_in_the_form_answers_a_grpc_request_trailers_only() {
    // fault_filter.cc: an abort with grpcStatus answers a gRPC request 200 with that
    // grpc-status in the head (trailers-only); the request is not forwarded.
    let rt = runtime();
    let Opened { files, mut h, addr } = open(&rt);
    let v1 = &files.v1;
    h.get_by_label("fault abort").click();
    h.run_ok();
    h.get_by_role_and_label(Role::CheckBox, "httpStatus")
        .click();
    h.run_ok();
    h.get_by_role_and_label(Role::TextInput, "grpcStatus")
        .click();
    h.run_ok();
    h.get_by_role_and_label(Role::TextInput, "grpcStatus")
        .type_text("UNAVAILABLE");
    h.run_ok();
    let yaml = h.state().doc.yaml().to_owned();
    assert!(
        yaml.contains("      abort:\n        grpcStatus: UNAVAILABLE\n"),
        "{yaml}"
    );
    apply(&mut h);
    let before = v1.hits();
    let (status, grpc) = rt.block_on(async {
        let resp = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("http://{addr}/reviews.Reviews/Get"))
            .header("host", "reviews")
            .header("content-type", "application/grpc")
            .body(vec![0u8, 0, 0, 0, 0])
            .send()
            .await
            .unwrap();
        let grpc = resp
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned());
        (resp.status().as_u16(), grpc)
    });
    assert_eq!(status, 200);
    assert_eq!(grpc.as_deref(), Some("14"), "UNAVAILABLE");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(v1.hits(), before, "an aborted request is not forwarded");
}

#[test]
fn a_delegate_picked_in_the_form_hands_the_route_to_the_other_virtual_service() {
    // virtualservice.go mergeHTTPRoute: a root route with `delegate` is replaced by the
    // delegate's routes (within the root's match), each taking the fields it leaves unset
    // from the root; here every request goes where the delegate says.
    let rt = runtime();
    let v1 = ui_common::Upstream::start(&rt, None);
    let v2 = ui_common::Upstream::start(&rt, None);
    let config = format!(
        "{}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-delegate
spec:
  http:
  - name: to-v2
    route:
    - destination:
        host: reviews
        subset: v2
",
        mirror_config(v1.addr, v2.addr)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, config).unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    let addr = h.state().lab.local_addr().expect("the proxy runs");
    h.get_by_label("delegate").click();
    h.run_ok();
    type_into(&mut h, "delegate name", "reviews-delegate");
    let yaml = h.state().doc.yaml().to_owned();
    assert!(
        yaml.contains("    delegate:\n      name: reviews-delegate\n"),
        "{yaml}"
    );
    assert_eq!(
        h.state().doc.problem_counts().0,
        0,
        "{:?}",
        h.state().doc.config().diagnostics()
    );
    h.get_by_label("Apply to running proxy").click();
    h.run_ok();
    let (v1_before, v2_before) = (v1.hits(), v2.hits());
    for i in 0..4 {
        assert_eq!(get(&rt, addr, &format!("/reviews/{i}")).0, 200);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(v1.hits(), v1_before, "the root's own destination is gone");
    // The delegate's route serves, and it takes the root's mirror, which it leaves unset
    // (mergeHTTPRoute copies mirror* from the root): 4 answers and 4 copies.
    assert_eq!(v2.hits(), v2_before + 8);
}
