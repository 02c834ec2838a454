//! The Traffic and Diffs panels on the real app with real upstreams: selecting an exchange
//! shows both responses and where they differ; a field can be ignored from Diffs.

mod ui_common;

use egui_kittest::kittest::Queryable as _;
use mirrorlab::ui::Tab;
use ui_common::{
    MirrorFiles, Upstream, app, mirror_config, mirror_files, mirror_files_of, runtime, send_paths,
    send_requests, wait_until,
};

#[test]
fn selecting_an_exchange_shows_both_responses_and_the_difference() {
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
    // Before any traffic the dashboard says how to send some, ready to copy.
    h.get_by_label("Dashboard").click();
    h.run_ok();
    h.get_by_label(&format!(
        "curl -s -H 'Host: reviews' http://{addr}/reviews/1"
    ));
    send_requests(&rt, addr, 5);

    h.get_by_label("Traffic").click();
    assert!(
        wait_until(&mut h, 10, |app| app.traffic.len() == 5),
        "5 exchanges in the table"
    );
    // The analysis catches up with its own task; wait for the diff summaries.
    assert!(wait_until(&mut h, 10, |app| app.lab.analysis().exchanges == 5));
    // The dashboard now shows the primary and the shadow side by side.
    h.get_by_label("Dashboard").click();
    h.run_ok();
    h.get_by_label("Primary (reviews/v1)");
    h.get_by_label("Shadow reviews/v2");
    assert_eq!(h.get_all_by_label("5 (5 answered)").count(), 2);
    h.get_by_label("Traffic").click();
    h.run_ok();
    h.get_by_label("/reviews/3").click();
    h.run_ok();
    let selected = h.state().traffic.selected.expect("a row is selected");
    let e = h.state().traffic.find(selected).unwrap();
    assert_eq!(e.request.uri, "/reviews/3");

    // Both responses, side by side, and the difference.
    h.get_by_label("Primary: reviews/v1");
    h.get_by_label("Shadow: reviews/v2");
    h.get_by_label("Differences: 1 field differs");
    h.get_by_label("body /stars added: (absent) -> 5");
    // The shadow's body line with the added field.
    h.get_by_label_contains("\"stars\": 5");
    h.get_by_label_contains("VirtualService default/reviews-vs, route 0 (to-v1)");
}

#[test]
fn ignoring_a_field_in_diffs_writes_the_annotation() {
    let rt = runtime();
    let v1 = Upstream::start(&rt, None);
    let v2 = Upstream::start(&rt, Some(r#""stars":5,"color":"red""#));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, mirror_config(v1.addr, v2.addr)).unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    // The proxy started as the config opened.
    let addr = h.state().lab.local_addr().unwrap();
    send_requests(&rt, addr, 10);
    assert!(wait_until(&mut h, 10, |app| app.lab.analysis().diffs.len() >= 2));
    h.state_mut().state.tab = Tab::Diffs;
    h.run_ok();
    // Rows: /stars and /color. Ignore the first row's field.
    h.get_by_label("/stars");
    let ignore = h
        .get_all_by_label("Ignore")
        .next()
        .expect("an Ignore button");
    ignore.click();
    h.run_ok();
    let yaml = h.state().doc.yaml().to_owned();
    assert!(yaml.contains("mirrorlab.dev/diff-ignore:"), "{yaml}");
    assert!(h.state().doc.is_dirty());
}

#[test]
fn send_request_goes_through_the_proxy_and_is_selected_in_traffic() {
    let rt = runtime();
    let MirrorFiles {
        v1,
        v2: _v2,
        dir: _dir,
        path,
    } = mirror_files(&rt);
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    // The proxy started as the config opened.
    // Some other traffic first, so the selection has to find the right row.
    let addr = h.state().lab.local_addr().unwrap();
    send_requests(&rt, addr, 3);

    h.get_by_label("Send request...").click();
    h.run_ok();
    let path_field = h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Path");
    path_field.click();
    h.run_ok();
    h.key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
    h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Path")
        .type_text("/reviews/42?from=form");
    h.run_ok();
    h.get_by_label("Send").click();
    h.run_ok();
    assert_eq!(h.state().state.tab, Tab::Traffic);
    assert!(
        wait_until(&mut h, 10, |app| app
            .traffic
            .selected
            .and_then(|id| app.traffic.find(id))
            .is_some_and(|e| e.request.uri == "/reviews/42?from=form")),
        "the sent request is selected in Traffic"
    );
    assert_eq!(v1.hits(), 4);
}

#[test]
fn the_traffic_exports_as_har_with_its_shadows() {
    let rt = runtime();
    let v1 = Upstream::start(&rt, None);
    let v2 = Upstream::start(&rt, Some(r#""stars":5"#));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, mirror_config(v1.addr, v2.addr)).unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    // The proxy started as the config opened.
    let addr = h.state().lab.local_addr().unwrap();
    send_requests(&rt, addr, 4);
    assert!(wait_until(&mut h, 10, |app| app.traffic.len() == 4));

    h.get_by_label("File").click();
    h.run_ok();
    h.get_by_label("Export traffic as HAR...").click();
    h.run_ok();
    // The path field starts at reviews.har next to the config.
    h.get_by_label("Export").click();
    h.run_ok();
    let har_path = dir.path().join("reviews.har");
    let har: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&har_path).unwrap()).unwrap();
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert!(
        entries
            .iter()
            .all(|e| e["_shadows"].as_array().is_some_and(|s| s.len() == 1))
    );
}

#[test]
fn a_volatile_timestamp_is_noise_in_traffic_and_diffs_and_one_click_ignores_it() {
    // Both versions stamp every answer with a counter (`at`); v2 also rates product 1.
    let rt = runtime();
    let v1 = Upstream::answering(&rt, |id, n| format!(r#"{{"id":"{id}","at":{n}}}"#));
    let v2 = Upstream::answering(&rt, |id, n| {
        let stars = if id == "1" { r#","stars":5"# } else { "" };
        format!(r#"{{"id":"{id}","at":{}{stars}}}"#, n + 1000)
    });
    let files = mirror_files_of(v1, v2);
    let mut h = app(&rt, Some(&files.path));
    h.run_ok();
    let addr = h.state().lab.local_addr().expect("the proxy runs");
    // Products 0 and 1, six times each: the primary answers the same request again and
    // again, with another `at` each time, and no baseline is needed to see it.
    let paths: Vec<String> = (0..12).map(|i| format!("/reviews/{}", i % 2)).collect();
    send_paths(&rt, addr, &paths);
    h.get_by_label("Traffic").click();
    assert!(wait_until(&mut h, 10, |app| app.traffic.len() == 12
        && app.lab.analysis().exchanges == 12));
    h.run_ok();
    // The Diff column counts real differences and noise apart.
    assert_eq!(h.get_all_by_label("1 differs, 1 noise").count(), 6);
    assert_eq!(h.get_all_by_label("1 noise").count(), 6);
    // "Differs only" means real differences: the noise-only exchanges leave the list.
    h.get_by_label("Differs only").click();
    assert!(wait_until(&mut h, 5, |app| app.traffic.shown() == 6));
    h.run_ok();
    assert_eq!(h.query_all_by_label("1 noise").count(), 0);
    // A selected exchange marks its noise.
    h.get_all_by_label("/reviews/1")
        .next()
        .expect("a row")
        .click();
    h.run_ok();
    h.get_by_label("Differences: 1 differs, 1 noise");
    h.get_by_label_contains("body /at changed:");
    h.get_by_label_contains("(noise)");

    // The Diffs tab says why `at` is noise, and offers to ignore it.
    h.state_mut().state.tab = Tab::Diffs;
    h.run_ok();
    h.get_by_label("volatile: primary's own value changed in 10 of 10 repeats");
    h.get_by_label("no baseline; primary's own value steady in 10 repeats");
    // Rows by rate: `at` (every exchange) first, then `stars` (half).
    h.get_all_by_label("Ignore")
        .next()
        .expect("an Ignore button")
        .click();
    h.run_ok();
    let yaml = h.state().doc.yaml().to_owned();
    assert!(yaml.contains("mirrorlab.dev/diff-ignore: /at"), "{yaml}");
    // Ignored, it leaves the Traffic list's counts too.
    h.get_by_label("Traffic").click();
    assert!(wait_until(&mut h, 5, |app| app
        .lab
        .analysis()
        .diff_headline(app.traffic.selected.unwrap_or(0))
        .as_deref()
        == Some("1 field differs")));
}
