//! The keyboard on the real app: the menus show their shortcuts, Ctrl+1…5 switch tabs,
//! Ctrl+F puts the keys in the Traffic filter, the arrow keys walk the table, F7 steps
//! through a selected exchange's body differences, and Ctrl+S saves while a form field
//! still has the keys.

mod ui_common;

use egui::{Key, Modifiers};
use egui_kittest::kittest::Queryable as _;
use mirrorlab::ui::Tab;
use ui_common::{Upstream, VS, app, mirror_config, runtime, send_requests, type_into, wait_until};

#[test]
fn menus_show_their_shortcuts_and_ctrl_digits_switch_tabs() {
    let rt = runtime();
    let mut h = app(&rt, None);
    h.run_ok();
    h.get_by_label("File").click();
    h.run_ok();
    for item in ["Open… Ctrl+O", "Save Ctrl+S", "Quit Ctrl+Q"] {
        assert!(
            h.query_by_label(item).is_some(),
            "the File menu shows {item:?}"
        );
    }
    let save_as = ["Save As… Ctrl+Shift+S", "Save As… Shift+Ctrl+S"];
    assert!(
        save_as.iter().any(|l| h.query_by_label(l).is_some()),
        "Save As shows Ctrl+Shift+S"
    );
    h.key_press(Key::Escape);
    h.run_ok();
    for (digit, tab) in
        [Key::Num3, Key::Num5, Key::Num1]
            .into_iter()
            .zip([Tab::Traffic, Tab::Yaml, Tab::Routes])
    {
        h.key_press_modifiers(Modifiers::COMMAND, digit);
        h.run_ok();
        assert_eq!(h.state().state.tab, tab);
    }
}

#[test]
fn ctrl_f_arrows_and_f7_drive_the_traffic_tab() {
    let rt = runtime();
    let v1 = Upstream::start(&rt, None);
    let v2 = Upstream::start(&rt, Some(r#""stars":5"#));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, mirror_config(v1.addr, v2.addr)).unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    let addr = h.state().lab.local_addr().expect("the proxy runs");
    send_requests(&rt, addr, 3);
    assert!(wait_until(&mut h, 10, |app| app.traffic.len() == 3
        && app.lab.analysis().exchanges == 3));

    h.key_press_modifiers(Modifiers::COMMAND, Key::F);
    h.run_ok();
    assert_eq!(h.state().state.tab, Tab::Traffic);
    h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Path contains")
        .type_text("/reviews/");
    h.run_ok();
    assert_eq!(
        h.state().traffic.filter.path,
        "/reviews/",
        "typed into the filter"
    );
    // The keys leave the filter (a click on the table's header), then walk the rows.
    h.get_by_label("Time").click();
    h.run_ok();
    h.key_press(Key::Enter);
    h.run_ok();
    let newest = h.state().traffic.newest_where(|_| true);
    assert_eq!(
        h.state().traffic.selected,
        newest,
        "Enter selects the newest row"
    );
    h.key_press(Key::ArrowUp);
    h.run_ok();
    let uri = |h: &egui_kittest::Harness<'_, mirrorlab::ui::MirrorlabApp>| {
        let id = h.state().traffic.selected.expect("selected");
        h.state().traffic.find(id).unwrap().request.uri.clone()
    };
    // Rows are in the order the exchanges completed (a slow shadow can hold one back), so
    // the row above the newest is read from the table, not assumed.
    let rows: Vec<String> = (h.state().traffic.shown_exchanges().iter())
        .map(|e| e.request.uri.clone())
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(uri(&h), rows[1], "Up moves to the row above: {rows:?}");
    h.key_press(Key::ArrowDown);
    h.run_ok();
    assert_eq!(uri(&h), rows[2], "Down moves back: {rows:?}");

    // The engine's comparison arrived within the run (the detail's spinner asks for frames
    // until it does); F7 steps to its body difference.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while h.query_by_label("1 body difference").is_none() && std::time::Instant::now() < deadline {
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    h.get_by_label("1 body difference");
    h.key_press(Key::F7);
    h.run_ok();
    h.get_by_label("Body difference 1 of 1");
    h.get_by_label("Next difference F7");
}

#[test]
fn ctrl_s_saves_a_form_edit_while_the_field_still_has_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, VS).unwrap();
    let rt = runtime();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    type_into(&mut h, "route name", "canary");
    assert!(h.state().doc.is_dirty());
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    h.run_ok();
    assert!(!h.state().doc.is_dirty(), "{:?}", h.state().notice());
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("name: canary")
    );
    // The field kept the keys: typing goes on in it.
    h.get_by_role_and_label(egui::accesskit::Role::TextInput, "route name")
        .type_text("-2");
    h.run_ok();
    assert!(h.state().doc.yaml().contains("name: canary-2"));
}
