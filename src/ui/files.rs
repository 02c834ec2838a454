//! Files on disk: atomic saves, native open/save dialogs with a typed-path fallback, and
//! noticing when the open file changes under the app.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// Why a file could not be saved. The edits stay in the app either way.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The directory has no room for, or no permission to create, the temporary file.
    #[error("cannot create a temporary file next to {path}: {source}")]
    CreateTemp {
        /// The file being saved.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Writing or flushing the temporary file failed (disk full, I/O error).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The temporary file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The final rename over the target failed; the original file is untouched.
    #[error("cannot replace {path}: {source}")]
    Rename {
        /// The file being saved.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Writes `text` to `path` so that a crash or a full disk never leaves a half-written file:
/// the bytes go to a temporary file in the same directory, are fsynced, and the temporary
/// file is renamed over the target (rename is atomic within one file system).
pub fn save_atomically(path: &Path, text: &str) -> Result<(), SaveError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.yaml".to_owned());
    let tmp = dir.join(format!(".{file_name}.mirrorlab-{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&tmp).map_err(|source| SaveError::CreateTemp {
        path: path.to_path_buf(),
        source,
    })?;
    // Keep the original's permissions: a file that was 0600 should not become world-readable.
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = file.set_permissions(meta.permissions());
    }
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    drop(file);
    if let Err(source) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(SaveError::Write { path: tmp, source });
    }
    if let Err(source) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(SaveError::Rename {
            path: path.to_path_buf(),
            source,
        });
    }
    // Make the rename itself durable; not every platform lets a directory be opened.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The modification time of `path`, or `None` when it cannot be read.
pub fn modified_time(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// What a file dialog is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DialogPurpose {
    /// Pick a YAML file to open.
    Open,
    /// Pick where to save the current file.
    SaveAs,
    /// Pick where to write the captured traffic as HAR.
    ExportHar,
    /// Pick a saved session to open.
    OpenSession,
    /// Pick session A (`true`) or B to compare.
    CompareSession(bool),
    /// Pick where to save the traffic as a session.
    SaveSession,
    /// Pick a traffic file to replay.
    ReplayTraffic,
    /// Pick the gRPC descriptors setting's `FileDescriptorSet`.
    GrpcDescriptors,
}

/// How the app asks for file paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DialogBackend {
    /// Native dialog through rfd (desktop portal or zenity); falls back to the path field
    /// when it cannot show one.
    #[default]
    Native,
    /// Always the app's own path field (tests, headless sessions).
    PathField,
}

/// A native dialog answers "cancelled" this fast only when it never appeared.
const DIALOG_NEVER_SHOWN: Duration = Duration::from_millis(400);

/// A file dialog in flight, or the fallback path field.
#[derive(Debug)]
pub struct FileDialog {
    /// What the dialog is for.
    pub purpose: DialogPurpose,
    /// The path typed into the fallback field.
    pub typed_path: String,
    /// Why the fallback field is shown (shown to the user).
    pub fallback_reason: Option<String>,
    pending: Option<(mpsc::Receiver<Option<PathBuf>>, Instant)>,
}

/// What a dialog produced this frame.
#[derive(Debug, PartialEq, Eq)]
pub enum DialogOutcome {
    /// Still open.
    Waiting,
    /// The user picked a path.
    Picked(PathBuf),
    /// The user cancelled.
    Cancelled,
}

impl FileDialog {
    /// Opens a dialog: native when possible, otherwise the path field right away.
    pub fn open(
        purpose: DialogPurpose,
        backend: DialogBackend,
        start: Option<&Path>,
        ctx: &egui::Context,
    ) -> Self {
        let typed_path = start.map(|p| p.display().to_string()).unwrap_or_default();
        let mut dialog = Self {
            purpose,
            typed_path,
            fallback_reason: None,
            pending: None,
        };
        if backend == DialogBackend::PathField {
            dialog.fallback_reason = Some("Type the file's path.".to_owned());
            return dialog;
        }
        if !native_dialog_possible() {
            dialog.fallback_reason = Some(
                "No native file dialog is available here (no desktop portal on D-Bus and no \
                 zenity). Type the file's path instead."
                    .to_owned(),
            );
            return dialog;
        }
        let (tx, rx) = mpsc::channel();
        let start_dir = start.and_then(Path::parent).map(Path::to_path_buf);
        let start_name = start
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned());
        let ctx = ctx.clone();
        // rfd's sync dialogs block; a thread keeps the UI painting meanwhile.
        let spawned = std::thread::Builder::new()
            .name("file-dialog".to_owned())
            .spawn(move || {
                let mut d = match purpose {
                    DialogPurpose::ExportHar | DialogPurpose::SaveSession => {
                        rfd::FileDialog::new().add_filter("HAR", &["har"])
                    }
                    DialogPurpose::OpenSession | DialogPurpose::CompareSession(_) => {
                        rfd::FileDialog::new()
                            .add_filter("mirrorlab session (HAR)", &["har", "json"])
                            .add_filter("All files", &["*"])
                    }
                    DialogPurpose::ReplayTraffic => rfd::FileDialog::new()
                        .add_filter("Traffic (HAR, GoReplay)", &["har", "gor", "json"])
                        .add_filter("All files", &["*"]),
                    DialogPurpose::GrpcDescriptors => rfd::FileDialog::new()
                        .add_filter("FileDescriptorSet", &["pb", "protoset", "desc", "bin"])
                        .add_filter("All files", &["*"]),
                    DialogPurpose::Open | DialogPurpose::SaveAs => rfd::FileDialog::new()
                        .add_filter("Istio YAML", &["yaml", "yml"])
                        .add_filter("All files", &["*"]),
                };
                if let Some(dir) = start_dir {
                    d = d.set_directory(dir);
                }
                let picked = match purpose {
                    DialogPurpose::Open
                    | DialogPurpose::OpenSession
                    | DialogPurpose::CompareSession(_)
                    | DialogPurpose::ReplayTraffic
                    | DialogPurpose::GrpcDescriptors => d.pick_file(),
                    DialogPurpose::SaveAs
                    | DialogPurpose::ExportHar
                    | DialogPurpose::SaveSession => {
                        if let Some(name) = start_name {
                            d = d.set_file_name(name);
                        }
                        d.save_file()
                    }
                };
                let _ = tx.send(picked);
                ctx.request_repaint();
            });
        match spawned {
            Ok(_) => dialog.pending = Some((rx, Instant::now())),
            Err(e) => {
                dialog.fallback_reason = Some(format!(
                    "Cannot start the file dialog ({e}). Type the path."
                ));
            }
        }
        dialog
    }

    /// True while the native dialog is up (the app shows a note instead of the path field).
    pub fn is_native_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Checks the native dialog's answer; a "cancel" that came too fast to be a person means
    /// no dialog appeared, so the path field takes over.
    pub fn poll(&mut self) -> DialogOutcome {
        let Some((rx, started)) = &self.pending else {
            return DialogOutcome::Waiting;
        };
        match rx.try_recv() {
            Ok(Some(path)) => {
                self.pending = None;
                DialogOutcome::Picked(path)
            }
            Ok(None) if started.elapsed() < DIALOG_NEVER_SHOWN => {
                self.pending = None;
                self.fallback_reason = Some(
                    "The native file dialog did not open (no desktop portal or zenity \
                     answered). Type the file's path instead."
                        .to_owned(),
                );
                DialogOutcome::Waiting
            }
            Ok(None) => {
                self.pending = None;
                DialogOutcome::Cancelled
            }
            Err(mpsc::TryRecvError::Empty) => DialogOutcome::Waiting,
            Err(mpsc::TryRecvError::Disconnected) => {
                self.pending = None;
                self.fallback_reason = Some(
                    "The native file dialog stopped unexpectedly. Type the file's path instead."
                        .to_owned(),
                );
                DialogOutcome::Waiting
            }
        }
    }

    /// Shows the fallback path field; returns the outcome when the user confirms or cancels.
    pub fn path_field_ui(&mut self, ui: &mut egui::Ui) -> DialogOutcome {
        let mut outcome = DialogOutcome::Waiting;
        if let Some(reason) = &self.fallback_reason {
            ui.label(reason);
        }
        let (title, action) = match self.purpose {
            DialogPurpose::Open => ("File to open", "Open"),
            DialogPurpose::SaveAs => ("Save as", "Save"),
            DialogPurpose::ExportHar => ("Export HAR to", "Export"),
            DialogPurpose::OpenSession => ("Session to open", "Open"),
            DialogPurpose::CompareSession(true) => ("Session A", "Choose"),
            DialogPurpose::CompareSession(false) => ("Session B", "Choose"),
            DialogPurpose::SaveSession => ("Save the session to", "Save"),
            DialogPurpose::ReplayTraffic => ("Traffic file to replay", "Choose"),
            DialogPurpose::GrpcDescriptors => ("gRPC descriptors (FileDescriptorSet)", "Choose"),
        };
        ui.horizontal(|ui| {
            let label = ui.label(title);
            let edit = ui
                .add(
                    egui::TextEdit::singleline(&mut self.typed_path)
                        .hint_text("/path/to/virtualservice.yaml")
                        .desired_width(420.0),
                )
                .labelled_by(label.id);
            let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let path = self.typed_path.trim();
            if (ui
                .add_enabled(!path.is_empty(), egui::Button::new(action))
                .clicked()
                || (enter && !path.is_empty()))
                && outcome == DialogOutcome::Waiting
            {
                outcome = DialogOutcome::Picked(expand_home(path));
            }
            if ui.button("Cancel").clicked() {
                outcome = DialogOutcome::Cancelled;
            }
        });
        outcome
    }
}

/// `~/x` → `$HOME/x`, since people type it and no shell expands it here.
fn expand_home(path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    PathBuf::from(path)
}

/// Whether rfd has any way to show a dialog on this machine. On Linux it needs the desktop
/// portal (reached over the D-Bus session bus) or, failing that, zenity.
fn native_dialog_possible() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() || on_path("zenity")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_save_replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vs.yaml");
        std::fs::write(&path, "old").unwrap();
        save_atomically(&path, "new: 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new: 1\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "left behind: {names:?}");
    }

    #[test]
    fn failed_save_keeps_the_original_and_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let missing_dir = dir.path().join("no-such-dir").join("vs.yaml");
        let err = save_atomically(&missing_dir, "x").unwrap_err();
        assert!(matches!(err, SaveError::CreateTemp { .. }));
        assert!(err.to_string().contains("no-such-dir"), "{err}");

        // A directory in the way of the rename: the rename fails, the directory survives.
        let target = dir.path().join("taken");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), "k").unwrap();
        let err = save_atomically(&target, "x").unwrap_err();
        assert!(matches!(err, SaveError::Rename { .. }), "{err}");
        assert!(target.join("keep").exists());
    }

    #[test]
    fn home_is_expanded_in_typed_paths() {
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(expand_home("~/a.yaml"), PathBuf::from(home).join("a.yaml"));
        }
        assert_eq!(expand_home("/x/a.yaml"), PathBuf::from("/x/a.yaml"));
    }
}
