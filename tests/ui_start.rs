//! Launch to live traffic on the real app: opening a config starts the proxy by itself
//! (unless the setting says not to), a config with errors or a taken port says why in the
//! top bar, the empty panels offer a request that the config really mirrors, and the
//! dashboard's clock keeps moving after traffic stops.

mod ui_common;

use egui::accesskit::Role;
use egui_kittest::kittest::Queryable as _;
use mirrorlab::ui::{Command, Tab};
use ui_common::{
    MirrorFiles, Upstream, app, mirror_config, mirror_files, runtime, send_requests, wait_until,
};

#[test]
fn opening_a_config_starts_the_proxy_and_a_second_one_is_swapped_in() {
    let rt = runtime();
    let MirrorFiles { v1, v2, dir, path } = mirror_files(&rt);
    let mut h = app(&rt, Some(&path));
    h.run_ok();

    let addr = h
        .state()
        .lab
        .local_addr()
        .expect("the proxy started as the config opened");
    h.get_by_label(&format!("listening on {addr}"));
    assert!(h.query_by_label("Start").is_none(), "no Start step needed");
    let notice = h.state().notice().cloned().unwrap();
    assert!(
        notice.text.contains(&format!("Proxy listening on {addr}")),
        "{}",
        notice.text
    );
    send_requests(&rt, addr, 3);
    assert!(wait_until(&mut h, 10, |app| app.traffic.len() == 3));
    assert_eq!(v2.hits(), 3, "mirrored as the config says");

    // File > Open on a second config while the proxy runs: same address, new routes.
    let unmirrored = mirror_config(v1.addr, v2.addr)
        .replace("    mirror:\n      host: reviews\n      subset: v2\n", "");
    let second = dir.path().join("no-mirror.yaml");
    std::fs::write(&second, unmirrored).unwrap();
    h.get_by_label("File").click();
    h.run_ok();
    h.get_by_label("Open… Ctrl+O").click();
    h.run_ok();
    // The field starts at the open file's path: replace it.
    h.get_by_role_and_label(Role::TextInput, "File to open")
        .click();
    h.run_ok();
    h.key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
    h.get_by_role_and_label(Role::TextInput, "File to open")
        .type_text(&second.display().to_string());
    h.run_ok();
    h.get_by_label("Open").click();
    h.run_ok();
    assert_eq!(h.state().doc.path(), Some(second.as_path()));
    assert_eq!(h.state().lab.local_addr(), Some(addr));
    let notice = h.state().notice().cloned().unwrap();
    assert!(
        notice.text.contains("now routes with it"),
        "{}",
        notice.text
    );
    send_requests(&rt, addr, 2);
    assert!(wait_until(&mut h, 10, |_| v1.hits() == 5));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(v2.hits(), 3, "the swapped-in config has no mirror");
}

#[test]
fn with_the_setting_off_a_config_waits_for_start() {
    let rt = runtime();
    let MirrorFiles {
        v1: _v1,
        v2: _v2,
        dir: _dir,
        path,
    } = mirror_files(&rt);
    let mut h = app(&rt, None);
    h.run_ok();
    assert!(h.state().state.start_on_open, "on by default");

    // Turn it off where a user would: Lab > Settings.
    h.get_by_label("Lab").click();
    h.run_ok();
    h.get_by_label("Settings...").click();
    h.run_ok();
    h.get_by_role_and_label(Role::CheckBox, "Start the proxy when a config opens")
        .click();
    h.run_ok();
    assert!(!h.state().state.start_on_open);

    h.state_mut().push_command(Command::Open(path.clone()));
    h.run_ok();
    assert_eq!(h.state().doc.path(), Some(path.as_path()));
    assert!(!h.state().lab.is_running());
    h.get_by_label("Start").click();
    h.run_ok();
    assert!(h.state().lab.is_running());
}

#[test]
fn a_config_with_errors_does_not_start_the_proxy_and_says_why() {
    let rt = runtime();
    let v1 = Upstream::start(&rt, None);
    let v2 = Upstream::start(&rt, None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    // A mirror to a subset that no DestinationRule defines (IST0101).
    let broken = mirror_config(v1.addr, v2.addr).replace("subset: v2\n", "subset: v9\n");
    std::fs::write(&path, broken).unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();

    assert!(!h.state().lab.is_running());
    let problem = h
        .state()
        .proxy_problem()
        .cloned()
        .expect("the top bar says why");
    assert!(problem.config_errors);
    assert!(
        problem
            .text
            .starts_with("Proxy not started: the config has 1 error."),
        "{}",
        problem.text
    );
    h.get_by_label(&problem.text);
    let notice = h.state().notice().cloned().unwrap();
    assert!(notice.is_error);
    assert!(
        notice.text.contains("v9"),
        "names the error: {}",
        notice.text
    );

    h.state_mut().state.tab = Tab::Traffic;
    h.run_ok();
    h.get_by_label("Show the errors").click();
    h.run_ok();
    assert_eq!(h.state().state.tab, Tab::Routes);
}

#[test]
fn a_taken_port_is_explained_in_the_top_bar_and_a_free_one_offered() {
    let rt = runtime();
    let MirrorFiles {
        v1: _v1,
        v2: _v2,
        dir: _dir,
        path,
    } = mirror_files(&rt);
    // Something else holds the port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let mut h = app(&rt, None);
    h.run_ok();
    h.state_mut().state.listen_addr = taken_addr.to_string();
    h.state_mut().push_command(Command::Open(path));
    h.run_ok();

    assert!(!h.state().lab.is_running());
    let problem = h
        .state()
        .proxy_problem()
        .cloned()
        .expect("the top bar says why");
    assert!(
        problem.text.contains(&format!(
            "port {} on 127.0.0.1 is already in use",
            taken_addr.port()
        )),
        "{}",
        problem.text
    );
    assert!(problem.text.contains("press Start"), "{}", problem.text);
    h.get_by_label(&problem.text);

    // The app stays usable: tabs switch, and the empty panels say the proxy is not running.
    h.get_by_label("Traffic").click();
    h.run_ok();
    assert_eq!(h.state().state.tab, Tab::Traffic);
    h.get_by_label("The proxy is not running.");

    let free = problem.free_addr.expect("a free address is offered");
    h.get_by_label(&format!("Use {free}")).click();
    h.run_ok();
    assert_eq!(
        h.state().lab.local_addr().map(|a| a.to_string()),
        Some(free.clone())
    );
    assert_eq!(h.state().state.listen_addr, free);
    assert!(h.state().proxy_problem().is_none());
    drop(taken);
}

#[test]
fn the_empty_panels_offer_a_request_that_the_config_mirrors_through_the_real_port() {
    let rt = runtime();
    let v1 = Upstream::start(&rt, None);
    let v2 = Upstream::start(&rt, None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    // Only requests for /ratings with x-lab: shadowed are mirrored; the rest go to v1 alone.
    let config = mirror_config(v1.addr, v2.addr).replace(
        "  - name: to-v1\n    route:\n",
        "  - name: to-v1\n    match:\n    - uri:\n        prefix: /ratings\n      headers:\n        \
         x-lab:\n          exact: shadowed\n    route:\n",
    );
    let config = config.replace(
        "      subset: v2\n---",
        "      subset: v2\n  - name: everyone-else\n    route:\n    - destination:\n        \
         host: reviews\n        subset: v1\n---",
    );
    std::fs::write(&path, &config).unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    assert_eq!(h.state().doc.problem_counts().0, 0, "{config}");
    let addr = h.state().lab.local_addr().expect("the proxy runs");
    assert_ne!(addr.port(), 15001, "the real, ephemeral port");

    for tab in [Tab::Dashboard, Tab::Traffic, Tab::Diffs] {
        h.state_mut().state.tab = tab;
        h.run_ok();
        h.get_by_label(&format!(
            "curl -s -H 'Host: reviews' -H 'x-lab: shadowed' http://{addr}/ratings"
        ));
        h.get_by_label(&format!(
            "curl -s -x http://{addr} -H 'x-lab: shadowed' http://reviews/ratings"
        ));
        h.get_by_label_contains("VirtualService default/reviews-vs, route to-v1");
    }

    // What the line sends is mirrored.
    rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let resp = client
            .get(format!("http://{addr}/ratings"))
            .header("host", "reviews")
            .header("x-lab", "shadowed")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    });
    assert!(wait_until(&mut h, 10, |app| app.traffic.len() == 1));
    let e = h.state().traffic.find(0).cloned().or_else(|| {
        let id = h.state().traffic.newest_where(|_| true)?;
        h.state().traffic.find(id).cloned()
    });
    let e = e.expect("the exchange is in the table");
    assert_eq!(
        e.trace.as_ref().and_then(|t| t.route_name.as_deref()),
        Some("to-v1")
    );
    assert_eq!(e.shadows.len(), 1, "mirrored");
}

#[test]
fn the_dashboard_clock_keeps_moving_after_traffic_stops() {
    let rt = runtime();
    let MirrorFiles {
        v1: _v1,
        v2: _v2,
        dir: _dir,
        path,
    } = mirror_files(&rt);
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    let addr = h.state().lab.local_addr().expect("the proxy runs");
    send_requests(&rt, addr, 2);
    assert!(wait_until(&mut h, 10, |app| app.lab.analysis().exchanges == 2));
    let then = h.state().lab.analysis().now_unix_second.unwrap();
    // No more traffic: "now" must still advance (the idle refresh is once a second).
    assert!(
        wait_until(&mut h, 5, |app| app
            .lab
            .analysis()
            .now_unix_second
            .is_some_and(|now| now >= then + 2)),
        "the analysis clock stopped at {then}"
    );
}

/// Settings storage in memory, as eframe's file storage would keep them.
#[derive(Default)]
struct MemoryStorage(std::collections::HashMap<String, String>);

impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}

#[test]
fn listen_on_the_command_line_is_for_this_run_only() {
    let rt = runtime();
    // The harness passes --listen 127.0.0.1:0 (AppOptions::listen) over fresh settings.
    let mut h = app(&rt, None);
    h.run_ok();
    assert_eq!(h.state().state.listen_addr, "127.0.0.1:0");
    let saved = |h: &mut egui_kittest::Harness<'_, mirrorlab::ui::MirrorlabApp>| {
        let mut storage = MemoryStorage::default();
        eframe::App::save(h.state_mut(), &mut storage);
        eframe::get_value::<mirrorlab::ui::State>(&storage, mirrorlab::ui::STATE_KEY)
            .expect("the settings were saved")
    };
    assert_eq!(saved(&mut h).listen_addr, mirrorlab::ui::DEFAULT_LISTEN);
    // An address the user types is theirs to keep.
    h.state_mut().state.listen_addr = "127.0.0.1:16001".to_owned();
    assert_eq!(saved(&mut h).listen_addr, "127.0.0.1:16001");
}

#[test]
fn the_client_workload_set_in_settings_picks_the_routes_its_sidecar_gets() {
    // route.go sourceMatchHTTP: a block with sourceLabels applies only to a workload with
    // those labels. The user names the workload in Lab > Settings and applies it; the
    // running proxy then takes the canary route.
    let rt = runtime();
    let MirrorFiles { v1, v2, dir, .. } = mirror_files(&rt);
    let canary = mirror_config(v1.addr, v2.addr).replace(
        "  http:\n  - name: to-v1\n",
        "  http:\n  - name: canary\n    match:\n    - sourceLabels: {app: productpage}\n    route:\n    - destination:\n        host: reviews\n        subset: v2\n  - name: to-v1\n",
    );
    let path = dir.path().join("canary.yaml");
    std::fs::write(&path, canary).unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    let addr = h.state().lab.local_addr().expect("started");
    send_requests(&rt, addr, 2);
    // The copies arrive on their own time, after the client's answers.
    assert!(wait_until(&mut h, 10, |_| v1.hits() == 2 && v2.hits() == 2));
    let mirrored = v2.hits();
    assert_eq!(
        mirrored, 2,
        "a workload without labels: to-v1, mirrored to v2"
    );

    h.get_by_label("Lab").click();
    h.run_ok();
    h.get_by_label("Settings...").click();
    h.run_ok();
    ui_common::type_into(&mut h, "Client labels", "app=productpage");
    h.get_by_label("Apply client workload now").click();
    h.run_ok();
    send_requests(&rt, addr, 3);
    assert!(wait_until(&mut h, 10, |_| v2.hits() == mirrored + 3));
    assert_eq!(
        v1.hits(),
        2,
        "productpage's sidecar takes the canary route to v2"
    );
}

#[test]
fn the_lab_wide_mirror_settings_edit_every_copy_after_apply() {
    // Settings > "Remove from mirrored copies" and "Set on mirrored copies", as
    // `mirrorlab run --mirror-remove-headers` / `--mirror-set-header`: the copies change,
    // the primary keeps the client's headers.
    let rt = runtime();
    let files = ui_common::mirror_files(&rt);
    let mut h = app(&rt, Some(&files.path));
    h.run_ok();
    h.get_by_label("Lab").click();
    h.run_ok();
    h.get_by_label("Settings...").click();
    h.run_ok();
    ui_common::type_into(&mut h, "Remove from mirrored copies", "authorization");
    let multiline = egui::accesskit::Role::MultilineTextInput;
    h.get_by_role_and_label(multiline, "Set on mirrored copies")
        .click();
    h.run_ok();
    h.get_by_role_and_label(multiline, "Set on mirrored copies")
        .type_text("x-mirrored: yes");
    h.run_ok();
    h.get_by_label("Append -shadow to the Host of mirrored copies")
        .click();
    h.run_ok();
    h.get_by_label("Apply client workload now").click();
    h.run_ok();
    // The proxy restarts with the new settings (they are fixed at start).
    assert!(wait_until(&mut h, 10, |app| app.lab.local_addr().is_some()));
    let addr = h.state().lab.local_addr().unwrap();
    rt.block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://{addr}/reviews/1"))
            .header("host", "reviews")
            .header("authorization", "Bearer real")
            .send()
            .await
            .unwrap();
    });
    assert!(wait_until(&mut h, 10, |_| files.v2.hits() == 1));
    let copy = files.v2.last_seen().expect("the shadow got a copy");
    let header = |r: &ui_common::SeenRequest, name: &str| {
        r.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header(&copy, "authorization"), None, "{copy:?}");
    assert_eq!(header(&copy, "x-mirrored").as_deref(), Some("yes"));
    assert_eq!(header(&copy, "host").as_deref(), Some("reviews-shadow"));
    let primary = files.v1.last_seen().expect("the primary got it");
    assert_eq!(
        header(&primary, "authorization").as_deref(),
        Some("Bearer real")
    );
}

#[test]
fn the_grpc_descriptors_setting_says_at_its_field_whether_the_file_loads() {
    // Lab > Settings > gRPC descriptors: a file that does not load is an error at the
    // field that names the file and why (and there is nothing to apply); the sample's
    // reviews.pb loads and the field names the service it defines.
    let rt = runtime();
    let mut h = app(&rt, None);
    h.run_ok();
    h.get_by_label("Lab").click();
    h.run_ok();
    h.get_by_label("Settings...").click();
    h.run_ok();
    ui_common::type_into(&mut h, "gRPC descriptors", "/no/such/reviews.pb");
    h.get_by_label_contains("cannot read /no/such/reviews.pb");
    assert!(h.query_by_label("Apply gRPC descriptors now").is_none());

    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-configs/reviews.pb");
    h.state_mut().state.grpc_descriptors = sample.display().to_string();
    h.run_ok();
    h.get_by_label_contains("defines reviews.Reviews");
    h.get_by_label("Apply gRPC descriptors now");
}
