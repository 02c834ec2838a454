//! The app shell on the real app: opening files through the path field, unsaved marks,
//! atomic saves, the reload offer, the quit question, tabs.

mod ui_common;

use egui_kittest::kittest::Queryable as _;
use mirrorlab::ui::{Command, Tab};
use ui_common::{VS, app, runtime, type_into, wait_until};

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
    h.get_by_label("Open… Ctrl+O").click();
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

#[test]
fn a_form_edit_marks_the_file_unsaved_and_save_writes_what_the_yaml_panel_shows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, VS).unwrap();
    let rt = runtime();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    assert!(!h.state().doc.is_dirty());

    type_into(&mut h, "route name", "canary");
    assert!(h.state().doc.is_dirty());
    assert_eq!(h.state().window_title(), "*reviews.yaml — mirrorlab");
    h.get_by_label_contains("unsaved");
    let yaml = h.state().doc.yaml().to_owned();
    assert!(yaml.contains("name: canary"), "{yaml}");

    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::S);
    h.run_ok();
    assert!(!h.state().doc.is_dirty(), "{:?}", h.state().notice());
    assert_eq!(h.state().window_title(), "reviews.yaml — mirrorlab");
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert_eq!(on_disk, yaml);
    // What was written loads back to the same resources the form edited.
    let reloaded = mirrorlab::config::ConfigSet::load_str("x.yaml", &on_disk);
    let objects = |set: &mirrorlab::config::ConfigSet| {
        set.resources()
            .iter()
            .map(|r| r.object.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(objects(&reloaded), objects(h.state().doc.config()));
    // No temporary file is left next to it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_failed_save_keeps_the_edits_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, VS).unwrap();
    let rt = runtime();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    type_into(&mut h, "route name", "canary");
    let target = dir.path().join("missing-dir").join("reviews.yaml");
    h.state_mut().push_command(Command::SaveTo(target));
    h.run_ok();
    let notice = h.state().notice().cloned().unwrap();
    assert!(notice.is_error);
    assert!(
        notice.text.contains("your edits are kept"),
        "{}",
        notice.text
    );
    assert!(notice.text.contains("missing-dir"), "{}", notice.text);
    assert!(h.state().doc.is_dirty());
    assert!(h.state().doc.yaml().contains("name: canary"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), VS);
}

#[test]
fn quitting_with_unsaved_edits_asks_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, VS).unwrap();
    let rt = runtime();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    type_into(&mut h, "route name", "canary");

    // The window manager's close button.
    h.input_mut()
        .viewports
        .entry(egui::ViewportId::ROOT)
        .or_default()
        .events
        .push(egui::ViewportEvent::Close);
    h.run_ok();
    h.get_by_label("Unsaved changes");
    h.get_by_label_contains("Quit without saving?");
    h.get_by_label("Cancel").click();
    h.run_ok();
    assert!(h.query_by_label("Unsaved changes").is_none());
    assert!(h.state().doc.is_dirty(), "Cancel keeps the edits");
}

#[test]
fn a_change_on_disk_offers_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, VS).unwrap();
    let rt = runtime();
    let mut h = app(&rt, Some(&path));
    h.run_ok();

    let changed = VS.replace("  - reviews\n  http:", "  - reviews\n  - ratings\n  http:");
    std::fs::write(&path, &changed).unwrap();
    // Make the change visible even on file systems with coarse timestamps.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    // The app polls the file about once a second.
    assert!(
        wait_until(&mut h, 5, |app| app.disk_changed()),
        "no reload offer within 5 s"
    );
    h.run_ok();
    h.get_by_label("The file changed on disk since it was opened.");
    h.get_by_label("Reload").click();
    h.run_ok();
    assert_eq!(h.state().doc.yaml(), changed);
    assert_eq!(h.state().doc.hosts(), vec!["reviews", "ratings"]);
}

/// A file as the window system hands it over on drop.
#[derive(Debug)]
struct Dropped(std::path::PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &std::path::Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn dropping_a_yaml_file_on_the_window_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropped.yaml");
    std::fs::write(&path, VS).unwrap();
    let rt = runtime();
    let mut h = app(&rt, None);
    h.run_ok();
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(Dropped(path.clone())));
    h.run_ok();
    assert_eq!(h.state().doc.path(), Some(path.as_path()));
    assert_eq!(h.state().doc.hosts(), vec!["reviews"]);
}

#[test]
fn a_first_run_offers_the_demo_a_sample_and_a_new_virtual_service() {
    let rt = runtime();
    let mut h = app(&rt, None);
    h.run_ok();
    h.get_by_label("Welcome to mirrorlab");
    // In the top bar and on the welcome page.
    assert_eq!(h.get_all_by_label("Start demo").count(), 2);
    h.get_by_label("Start from a new VirtualService").click();
    h.run_ok();
    let yaml = h.state().doc.yaml().to_owned();
    assert!(yaml.contains("kind: VirtualService"), "{yaml}");
    assert_eq!(h.state().doc.config().resources().len(), 1);
    assert!(h.state().doc.is_dirty());
    // The form shows it, ready to edit.
    h.get_by_label("Add route");

    let mut h = app(&rt, None);
    h.run_ok();
    h.get_by_label("Start from the sample config").click();
    h.run_ok();
    assert_eq!(h.state().doc.hosts(), vec!["reviews"]);
    assert_eq!(h.state().doc.problem_counts().0, 0);
}
