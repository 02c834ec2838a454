//! The app's windows and dialogs: the file dialog's answer, the "unsaved changes"
//! question, Send request and Settings.

use std::path::Path;

use super::state::Pending;
use super::{Command, MirrorlabApp};
use crate::ui::files::{DialogOutcome, DialogPurpose};
use crate::ui::send;

impl MirrorlabApp {
    pub(super) fn poll_dialog(&mut self) {
        if let Some(dialog) = &mut self.dialog {
            let outcome = dialog.poll();
            self.finish_dialog(outcome);
        }
    }

    pub(super) fn finish_dialog(&mut self, outcome: DialogOutcome) {
        let Some(dialog) = &self.dialog else { return };
        let purpose = dialog.purpose;
        match outcome {
            DialogOutcome::Waiting => {}
            DialogOutcome::Cancelled => self.dialog = None,
            DialogOutcome::Picked(path) => {
                self.dialog = None;
                self.commands.push(match purpose {
                    DialogPurpose::Open => Command::Open(path),
                    DialogPurpose::SaveAs => Command::SaveTo(path),
                    DialogPurpose::ExportHar => Command::ExportHar(path),
                    DialogPurpose::OpenSession => Command::OpenSession(path),
                    DialogPurpose::CompareSession(a) => Command::SetCompareSession(a, path),
                    DialogPurpose::SaveSession => Command::SaveSession(path),
                    DialogPurpose::ReplayTraffic => Command::SetReplayFile(path),
                    DialogPurpose::GrpcDescriptors => Command::SetGrpcDescriptors(path),
                });
            }
        }
    }

    pub(super) fn confirm_modal(&mut self, ctx: &egui::Context) {
        let Some(pending) = self.confirm.clone() else {
            return;
        };
        let question = match &pending {
            Pending::Quit => "Quit without saving?".to_owned(),
            Pending::Open(path) => format!("Open {} and drop your edits?", path.display()),
            Pending::Reload => "Reload from disk and drop your edits?".to_owned(),
        };
        let mut choice = None;
        egui::Modal::new(egui::Id::unique("unsaved-changes")).show(ctx, |ui| {
            ui.heading("Unsaved changes");
            ui.label(format!(
                "{} has unsaved changes. {question}",
                self.doc.display_name()
            ));
            ui.horizontal(|ui| {
                if ui.button("Save first").clicked() {
                    choice = Some(0);
                }
                if ui.button("Discard changes").clicked() {
                    choice = Some(1);
                }
                if ui.button("Cancel").clicked() {
                    choice = Some(2);
                }
            });
        });
        match choice {
            Some(0) => {
                self.confirm = None;
                match self.doc.path().map(Path::to_path_buf) {
                    Some(path) => {
                        self.save_to(&path);
                        if !self.doc.is_dirty() {
                            self.run_pending(pending, ctx);
                        }
                    }
                    None => self.open_dialog(DialogPurpose::SaveAs, ctx),
                }
            }
            Some(1) => {
                self.confirm = None;
                self.run_pending(pending, ctx);
            }
            Some(_) => self.confirm = None,
            None => {}
        }
    }

    pub(super) fn windows(&mut self, ctx: &egui::Context) {
        if self.send_window {
            let mut open = true;
            let mut send = false;
            egui::Window::new("Send request")
                .open(&mut open)
                .default_pos([420.0, 90.0])
                .resizable(true)
                .show(ctx, |ui| {
                    let hosts = self.doc.hosts();
                    send = send::send_form_ui(
                        ui,
                        &mut self.state.send,
                        &hosts,
                        self.last_send.as_ref(),
                    );
                });
            if send {
                self.commands.push(Command::SendRequest);
            }
            self.send_window = open;
        }
        if self.settings_window {
            let mut open = true;
            let mut request = send::SettingsRequest::default();
            egui::Window::new("Settings")
                .open(&mut open)
                .default_pos([420.0, 90.0])
                .resizable(true)
                .show(ctx, |ui| {
                    request = send::settings_ui(ui, &mut self.state, &mut self.descriptors_check);
                });
            if request.apply_ignore_rules {
                self.commands.push(Command::ApplyIgnoreRules);
            }
            // The descriptors setting goes to the running lab with the next Apply, as the
            // client workload does.
            if request.apply_workload || request.apply_grpc_descriptors {
                self.commands.push(Command::Apply);
            }
            if request.browse_grpc_descriptors {
                self.commands.push(Command::BrowseGrpcDescriptors);
            }
            self.settings_window = open;
        }
        if self.compare_window {
            let mut open = true;
            let mut action = None;
            egui::Window::new("Compare sessions")
                .open(&mut open)
                .default_pos([300.0, 90.0])
                .resizable(true)
                .show(ctx, |ui| action = self.compare_form.ui(ui));
            if let Some(action) = action {
                self.commands.push(Command::CompareSessions(action));
            }
            self.compare_window = open;
        }
        if self.replay_window {
            let mut open = true;
            let mut action = None;
            egui::Window::new("Replay traffic")
                .open(&mut open)
                .default_pos([420.0, 90.0])
                .resizable(false)
                .show(ctx, |ui| {
                    action = self.replay_form.ui(ui, self.view.replay.as_ref());
                });
            if let Some(action) = action {
                self.commands.push(Command::Replay(action));
            }
            self.replay_window = open;
        }
    }
}
