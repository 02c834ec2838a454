//! The chrome around the panels: the menu bar (with each item's keyboard shortcut), the
//! top bar (proxy, demo, file), the proxy's problem, the tab bar, and the banners at the
//! bottom (file changed on disk, path dialogs, annotations not in force, the status line).

use super::shortcuts;
use super::state::{Tab, Theme, listen_is_loopback, plural};
use super::{Command, MirrorlabApp};

impl MirrorlabApp {
    pub(super) fn menu_bar(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if shortcuts::menu_item(ui, "Open…", &shortcuts::OPEN).clicked() {
                    self.commands.push(Command::OpenDialog);
                }
                ui.menu_button("Open recent", |ui| {
                    if self.state.recent_files.is_empty() {
                        ui.label("No recent files");
                    }
                    for path in &self.state.recent_files {
                        if ui.button(path.display().to_string()).clicked() {
                            self.commands.push(Command::Open(path.clone()));
                        }
                    }
                });
                let has_path = self.doc.path().is_some();
                if shortcuts::menu_item(ui, "Save", &shortcuts::SAVE).clicked() {
                    self.commands.push(Command::Save);
                }
                if shortcuts::menu_item(ui, "Save As…", &shortcuts::SAVE_AS).clicked() {
                    self.commands.push(Command::SaveAsDialog);
                }
                if ui
                    .add_enabled(has_path, egui::Button::new("Reload"))
                    .clicked()
                {
                    self.commands.push(Command::Reload);
                }
                ui.separator();
                if ui
                    .button("Open session…")
                    .on_hover_text("A session saved by `mirrorlab run --session` or `replay --session`: Dashboard, Traffic and Diffs on it, no proxy running")
                    .clicked()
                {
                    self.commands.push(Command::OpenSessionDialog);
                }
                if ui
                    .add_enabled(!self.traffic.is_empty(), egui::Button::new("Save session…"))
                    .on_hover_text("The exchanges the Traffic filter shows, the config and the analysis settings, to open again later")
                    .clicked()
                {
                    self.commands.push(Command::SaveSessionDialog);
                }
                if ui
                    .button("Compare sessions…")
                    .on_hover_text("Two sessions' reports side by side, per route and field")
                    .clicked()
                {
                    self.commands.push(Command::ShowCompare);
                }
                if ui
                    .button("Replay…")
                    .on_hover_text("Send a HAR, GoReplay or session file's requests through the proxy")
                    .clicked()
                {
                    self.commands.push(Command::ShowReplay);
                }
                ui.separator();
                if ui
                    .add_enabled(
                        !self.traffic.is_empty(),
                        egui::Button::new("Export traffic as HAR..."),
                    )
                    .on_hover_text("The exchanges the Traffic filter shows, shadows included")
                    .clicked()
                {
                    self.commands.push(Command::ExportHarDialog);
                }
                ui.separator();
                if shortcuts::menu_item(ui, "Quit", &shortcuts::QUIT).clicked() {
                    self.commands.push(Command::Quit);
                }
            });
            ui.menu_button("Lab", |ui| {
                if ui.button("Settings...").clicked() {
                    self.settings_window = true;
                }
                if ui.button("Clear traffic").clicked() {
                    self.commands.push(Command::ClearTraffic);
                }
            });
            ui.menu_button("View", |ui| {
                for (i, tab) in Tab::ALL.into_iter().enumerate() {
                    let item = shortcuts::menu_item(ui, tab.title(), &shortcuts::TABS[i]);
                    if item.clicked() {
                        self.commands.push(Command::ShowTab(tab));
                    }
                }
                if shortcuts::menu_item(ui, "Filter traffic", &shortcuts::FILTER).clicked() {
                    self.commands.push(Command::FocusTrafficFilter);
                }
                ui.separator();
                ui.label("Theme");
                for (theme, name) in [
                    (Theme::System, "Follow system"),
                    (Theme::Dark, "Dark"),
                    (Theme::Light, "Light"),
                ] {
                    if ui.radio_value(&mut self.state.theme, theme, name).clicked() {
                        ui.ctx().set_theme(theme.preference());
                    }
                }
            });
        });
    }

    pub(super) fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label("Proxy");
            if self.engine_busy() {
                // The spinner asks for frames until the engine has answered.
                ui.add(egui::Spinner::new())
                    .on_hover_text("The lab is carrying out what you asked");
            }
            let running = self.view.listening;
            match running {
                Some(addr) => {
                    ui.strong(format!("listening on {addr}"));
                    if ui
                        .button("Stop")
                        .on_hover_text("Stop the proxy (requests in flight finish first)")
                        .clicked()
                    {
                        self.commands.push(Command::StopProxy);
                    }
                    ui.label(format!("{:.0} req/s", self.view.requests_per_second))
                        .on_hover_text("Requests per second through the proxy now");
                }
                None => {
                    let l = ui.label("listen on");
                    ui.add(
                        egui::TextEdit::singleline(&mut self.state.listen_addr)
                            .desired_width(130.0),
                    )
                    .labelled_by(l.id);
                    let start = ui
                        .button("Start")
                        .on_hover_text("Start the proxy with the open config");
                    if start.clicked() {
                        self.commands.push(Command::StartProxy);
                    }
                }
            }
            if !listen_is_loopback(&self.state.listen_addr) {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    "Not a loopback address: other machines could send traffic through the lab",
                );
                if running.is_none() {
                    ui.checkbox(&mut self.state.allow_remote, "Allow that");
                }
            }
            ui.separator();
            if self.view.demo {
                if ui.button("Stop demo").clicked() {
                    self.commands.push(Command::StopDemo);
                }
            } else if ui
                .button("Start demo")
                .on_hover_text(
                    "Start the demo reviews services, the proxy and generated traffic: live data in one click",
                )
                .clicked()
            {
                self.commands.push(Command::StartDemo);
            }
            if ui
                .button("Send request...")
                .on_hover_text("Send one request through the proxy and see it in Traffic")
                .clicked()
            {
                self.send_window = true;
            }
            ui.separator();
            ui.strong(self.doc.display_name())
                .on_hover_text(self.doc.path().map_or_else(
                    || "Not saved yet".to_owned(),
                    |p| p.display().to_string(),
                ));
            if self.doc.is_dirty() {
                ui.label("• unsaved")
                    .on_hover_text("There are edits that are not saved yet");
            }
            self.config_status_ui(ui);
        });
    }

    /// Why the proxy is not running, in red under the top bar, with the way out.
    pub(super) fn proxy_problem_ui(&mut self, ui: &mut egui::Ui) {
        if self.view.listening.is_some() {
            return;
        }
        let Some(problem) = self.proxy_problem.clone() else {
            return;
        };
        ui.horizontal_wrapped(|ui| {
            ui.colored_label(ui.visuals().error_fg_color, &problem.text);
            if let Some(free) = &problem.free_addr
                && ui
                    .button(format!("Use {free}"))
                    .on_hover_text("Listen on this free address instead and start the proxy")
                    .clicked()
            {
                self.state.listen_addr = free.clone();
                self.commands.push(Command::StartProxy);
            }
            if problem.config_errors && ui.button("Show the errors").clicked() {
                self.commands.push(Command::ShowTab(Tab::Routes));
            }
        });
    }

    pub(super) fn config_status_ui(&mut self, ui: &mut egui::Ui) {
        let (errors, warnings) = self.doc.problem_counts();
        if self.doc.config().resources().is_empty() && errors == 0 {
            ui.weak("no resources yet")
                .on_hover_text("Open a config, start the demo, or add a VirtualService in Routes");
        } else if errors > 0 {
            let text = format!("{errors} error{}", plural(errors));
            if ui
                .add(egui::Button::new(
                    egui::RichText::new(text).color(ui.visuals().error_fg_color),
                ))
                .on_hover_text("The config has errors; Apply is blocked. Click to see them.")
                .clicked()
            {
                self.commands.push(Command::ShowTab(Tab::Routes));
            }
        } else if warnings > 0 {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("valid, {warnings} warning{}", plural(warnings)),
            );
        } else {
            ui.colored_label(egui::Color32::from_rgb(80, 180, 100), "valid")
                .on_hover_text("No errors: Apply will hot-swap the running proxy");
        }
    }

    pub(super) fn tab_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            for tab in Tab::ALL {
                ui.selectable_value(&mut self.state.tab, tab, tab.title());
            }
        });
    }

    pub(super) fn banners(&mut self, ui: &mut egui::Ui) {
        if self.disk_changed {
            ui.horizontal(|ui| {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    "The file changed on disk since it was opened.",
                );
                let label = if self.doc.is_dirty() {
                    "Reload and drop my edits"
                } else {
                    "Reload"
                };
                if ui.button(label).clicked() {
                    self.disk_changed = false;
                    self.reload_now();
                }
                if ui.button("Keep mine").clicked() {
                    self.disk_changed = false;
                    self.doc.accept_disk_version();
                }
            });
        }
        if let Some(dialog) = &mut self.dialog {
            if dialog.is_native_pending() {
                ui.label("A file dialog is open…");
            } else {
                let outcome = dialog.path_field_ui(ui);
                self.finish_dialog(outcome);
            }
        }
        for problem in &self.ignore_errors {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!(
                    "Not in force: {problem}. Fix the annotation (or Lab > Settings), then Apply."
                ),
            );
        }
        if let Some(notice) = self.notice.clone() {
            ui.horizontal(|ui| {
                if notice.is_error {
                    ui.colored_label(ui.visuals().error_fg_color, &notice.text);
                } else {
                    ui.label(&notice.text);
                }
                if ui.small_button("x").on_hover_text("Dismiss").clicked() {
                    self.notice = None;
                }
            });
        }
    }
}
