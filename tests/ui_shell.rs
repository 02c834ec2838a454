//! The app shell on the real app: opening files through the path field, unsaved marks,
//! saving, tabs.

use std::path::Path;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use mirrorlab::ui::files::DialogBackend;
use mirrorlab::ui::{AppOptions, MirrorlabApp, Tab};

const VS: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
";

fn app<'a>(rt: &tokio::runtime::Runtime, config: Option<&Path>) -> Harness<'a, MirrorlabApp> {
    let handle = rt.handle().clone();
    let options = AppOptions {
        config: config.map(Path::to_path_buf),
        dialogs: DialogBackend::PathField,
        fresh_state: true,
        ..AppOptions::default()
    };
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_eframe(move |cc| MirrorlabApp::new(cc, handle, options))
}

/// Focuses the text field labelled `label` and types `text` into it.
fn type_into(h: &mut Harness<'_, MirrorlabApp>, label: &str, text: &str) {
    let input = egui::accesskit::Role::TextInput;
    h.get_by_role_and_label(input, label).click();
    h.run();
    h.get_by_role_and_label(input, label).type_text(text);
    h.run();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn open_through_the_path_field_shows_the_file_in_the_title() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, VS).unwrap();
    let rt = runtime();
    let mut h = app(&rt, None);
    h.run();
    assert!(h.state().window_title().starts_with("untitled.yaml"));

    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Open…").click();
    h.run();
    type_into(&mut h, "File to open", &path.display().to_string());
    h.get_by_label("Open").click();
    h.run();

    assert_eq!(h.state().doc.path(), Some(path.as_path()));
    assert_eq!(h.state().window_title(), "reviews.yaml — mirrorlab");
    assert_eq!(h.state().state.recent_files.first(), Some(&path));
}

#[test]
fn a_missing_file_says_which_and_keeps_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, VS).unwrap();
    let rt = runtime();
    let mut h = app(&rt, Some(&path));
    h.run();
    let missing = dir.path().join("nope.yaml");
    h.state_mut()
        .push_command(mirrorlab::ui::Command::Open(missing.clone()));
    h.run();
    let notice = h.state().notice().cloned().unwrap();
    assert!(notice.is_error);
    assert!(notice.text.contains("nope.yaml"), "{}", notice.text);
    assert_eq!(h.state().doc.path(), Some(path.as_path()));
}

#[test]
fn tabs_switch_panels() {
    let rt = runtime();
    let mut h = app(&rt, None);
    h.run();
    for tab in Tab::ALL {
        h.get_by_label(tab.title()).click();
        h.run();
        assert_eq!(h.state().state.tab, tab);
    }
}
