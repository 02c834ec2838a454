//! The commands panels and menus send, and how the app carries them out: document work
//! here, engine work as a [`LabCommand`] to the lab (answered later by an event).

use std::path::{Path, PathBuf};

use super::state::{DEMO_RPS, Pending, SAMPLE_CONFIG, Tab};
use super::{MirrorlabApp, PendingRun, RunPurpose};
use crate::analysis::{DIFF_IGNORE_ANNOTATION, IgnoreRules};
use crate::lab::control::{LabCommand, RunRequest};
use crate::routing::Workload;
use crate::ui::document::Document;
use crate::ui::files::{DialogPurpose, FileDialog};

/// What a panel or menu asks the app to do; the app drains them once a frame.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Show the open-file dialog.
    OpenDialog,
    /// Replace the (empty) document with the built-in sample config, unsaved.
    NewFromSample,
    /// Open this file (asks first when there are unsaved edits).
    Open(PathBuf),
    /// Save to the current path (or ask for one).
    Save,
    /// Show the save-as dialog.
    SaveAsDialog,
    /// Save to this path and make it the current one.
    SaveTo(PathBuf),
    /// Re-read the current file from disk, dropping edits.
    Reload,
    /// Switch to a tab.
    ShowTab(Tab),
    /// Close the window (asks first when there are unsaved edits).
    Quit,
    /// Compile the routes and hot-swap them into the running proxy.
    Apply,
    /// Start the proxy with the open config.
    StartProxy,
    /// A config was just opened: start the proxy with it, or hot-swap it into the running
    /// one, when the settings say so.
    RunOpenedConfig,
    /// Stop the proxy.
    StopProxy,
    /// Start the demo services, the proxy and generated traffic.
    StartDemo,
    /// Stop the demo services and their traffic.
    StopDemo,
    /// Forget the captured traffic and the analysis.
    ClearTraffic,
    /// Send the Send request form's request through the proxy.
    SendRequest,
    /// Select an exchange in the Traffic tab.
    ShowExchange(u64),
    /// Use the settings' ignore rules in the running analysis.
    ApplyIgnoreRules,
    /// Ask where to write the traffic table's exchanges as HAR.
    ExportHarDialog,
    /// Write the traffic table's exchanges (those the filter shows) as HAR here.
    ExportHar(PathBuf),
    /// Ask which session to open.
    OpenSessionDialog,
    /// Stop the proxy and show this saved session.
    OpenSession(PathBuf),
    /// Ask where to save the traffic table's exchanges as a session.
    SaveSessionDialog,
    /// Save the traffic table's exchanges (those the filter shows), the config and the
    /// analysis settings as a session here.
    SaveSession(PathBuf),
    /// Show the Replay… window.
    ShowReplay,
    /// Show the Compare sessions… window.
    ShowCompare,
    /// Session A (`true`) or B of the Compare sessions… window.
    SetCompareSession(bool, PathBuf),
    /// What the Compare sessions… window asks for.
    CompareSessions(crate::ui::compare_sessions::CompareAction),
    /// The Replay… window's file.
    SetReplayFile(PathBuf),
    /// Ask for the gRPC descriptors setting's file.
    BrowseGrpcDescriptors,
    /// The gRPC descriptors setting's file (picked in the dialog).
    SetGrpcDescriptors(PathBuf),
    /// What the Replay… window asks for.
    Replay(crate::ui::replay::ReplayAction),
    /// Put the keyboard focus in the Traffic filter (Ctrl+F).
    FocusTrafficFilter,
    /// Ignore a field in diffs: write it into the VirtualService's annotation.
    IgnoreField {
        /// `namespace/name` of the VirtualService.
        virtual_service: String,
        /// The rule, in the annotation's syntax (`/json/pointer`, `header:name`, ...).
        rule: String,
    },
}

impl MirrorlabApp {
    /// Opens `path` right away, replacing the current document.
    pub(super) fn open_now(&mut self, path: &Path) {
        match Document::load(path) {
            Ok(doc) => {
                self.doc = doc;
                self.disk_changed = false;
                self.state.remember_file(path);
                let summary = self.doc.summary();
                self.info(format!("Opened {} ({summary})", path.display()));
                self.commands.push(Command::RunOpenedConfig);
            }
            Err(e) => self.error(format!("{e:#}")),
        }
    }

    pub(super) fn save_to(&mut self, path: &Path) {
        match self.doc.save_as(path) {
            Ok(()) => {
                self.disk_changed = false;
                self.state.remember_file(path);
                self.info(format!("Saved {}", path.display()));
            }
            Err(e) => self.error(format!(
                "Not saved — your edits are kept. {e}. Try Save As… to another place."
            )),
        }
    }

    pub(super) fn open_dialog(&mut self, purpose: DialogPurpose, ctx: &egui::Context) {
        let start = match purpose {
            DialogPurpose::ExportHar => Some(
                self.doc
                    .path()
                    .map(|p| p.with_extension("har"))
                    .unwrap_or_else(|| PathBuf::from("mirrorlab.har")),
            ),
            DialogPurpose::Open | DialogPurpose::SaveAs => self.doc.path().map(Path::to_path_buf),
            DialogPurpose::SaveSession => Some(
                self.doc
                    .path()
                    .map(|p| p.with_extension("session.har"))
                    .unwrap_or_else(|| PathBuf::from("mirrorlab.session.har")),
            ),
            DialogPurpose::GrpcDescriptors => {
                Some(PathBuf::from(self.state.grpc_descriptors.trim()))
                    .filter(|p| !p.as_os_str().is_empty())
            }
            DialogPurpose::OpenSession
            | DialogPurpose::CompareSession(_)
            | DialogPurpose::ReplayTraffic => None,
        };
        self.dialog = Some(FileDialog::open(
            purpose,
            self.options.dialogs,
            start.as_deref(),
            ctx,
        ));
    }

    /// Drains the commands queued this frame.
    pub(super) fn run_commands(&mut self, ctx: &egui::Context) {
        let commands = std::mem::take(&mut self.commands);
        if commands.is_empty() {
            return;
        }
        for command in commands {
            self.run_command(command, ctx);
        }
        // Show what the commands changed (and the engine's busy state) at once.
        ctx.request_repaint();
    }

    fn run_command(&mut self, command: Command, ctx: &egui::Context) {
        match command {
            Command::OpenDialog => self.open_dialog(DialogPurpose::Open, ctx),
            Command::NewFromSample => {
                if self.doc.is_dirty() {
                    self.error("Save or discard your edits first.");
                } else {
                    self.doc = Document::untitled("sample reviews-mirror.yaml", SAMPLE_CONFIG);
                    self.commands.push(Command::RunOpenedConfig);
                }
            }
            Command::Open(path) => {
                if self.doc.is_dirty() {
                    self.confirm = Some(Pending::Open(path));
                } else {
                    self.open_now(&path);
                }
            }
            Command::Save => match self.doc.path().map(Path::to_path_buf) {
                Some(path) => self.save_to(&path),
                None => self.open_dialog(DialogPurpose::SaveAs, ctx),
            },
            Command::SaveAsDialog => self.open_dialog(DialogPurpose::SaveAs, ctx),
            Command::SaveTo(path) => self.save_to(&path),
            Command::Reload => {
                if self.doc.is_dirty() {
                    self.confirm = Some(Pending::Reload);
                } else {
                    self.reload_now();
                }
            }
            Command::ShowTab(tab) => self.state.tab = tab,
            Command::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
            Command::Apply => self.run_config(RunPurpose::Apply),
            Command::StartProxy => self.run_config(RunPurpose::Start),
            Command::RunOpenedConfig => {
                if self.state.start_on_open {
                    let opened = self.notice.as_ref().map(|n| n.text.clone());
                    self.run_config(RunPurpose::Opened(opened.unwrap_or_default()));
                }
            }
            Command::StopProxy => self.lab.send(LabCommand::Stop),
            Command::StartDemo => self.start_demo(),
            Command::StopDemo => self.lab.send(LabCommand::StopDemo),
            Command::ClearTraffic => {
                self.traffic.clear();
                self.lab.send(LabCommand::Clear);
            }
            Command::SendRequest => self.send_request(),
            Command::ShowExchange(id) => {
                self.traffic.selected = Some(id);
                self.traffic.filter = crate::ui::traffic::TrafficFilter::default();
                self.traffic.reveal_selected();
                self.state.tab = Tab::Traffic;
            }
            Command::OpenSessionDialog => self.open_dialog(DialogPurpose::OpenSession, ctx),
            Command::OpenSession(path) => {
                self.info(format!("Opening the session {}…", path.display()));
                self.lab.send(LabCommand::OpenSession(path));
            }
            Command::SaveSessionDialog => self.open_dialog(DialogPurpose::SaveSession, ctx),
            Command::SaveSession(path) => {
                let config = crate::replay::session::SessionConfig {
                    path: self
                        .doc
                        .path()
                        .map_or_else(|| self.doc.display_name(), |p| p.display().to_string()),
                    text: self.doc.yaml().to_owned(),
                };
                self.lab.send(LabCommand::SaveSession(Box::new(
                    crate::lab::control::SaveSession {
                        path,
                        exchanges: self.traffic.shown_exchanges(),
                        config: vec![config],
                    },
                )));
            }
            Command::ShowReplay => self.replay_window = true,
            Command::ShowCompare => self.compare_window = true,
            Command::SetCompareSession(a, path) => {
                let slot = if a {
                    &mut self.compare_form.a
                } else {
                    &mut self.compare_form.b
                };
                *slot = path.display().to_string();
            }
            Command::CompareSessions(action) => {
                use crate::ui::compare_sessions::CompareAction;
                match action {
                    CompareAction::BrowseA => {
                        self.open_dialog(DialogPurpose::CompareSession(true), ctx)
                    }
                    CompareAction::BrowseB => {
                        self.open_dialog(DialogPurpose::CompareSession(false), ctx)
                    }
                    CompareAction::Compare => {
                        self.compare_form.waiting = true;
                        self.lab.send(LabCommand::CompareSessions {
                            a: PathBuf::from(self.compare_form.a.trim()),
                            b: PathBuf::from(self.compare_form.b.trim()),
                        });
                    }
                }
            }
            Command::BrowseGrpcDescriptors => {
                self.open_dialog(DialogPurpose::GrpcDescriptors, ctx);
            }
            Command::SetGrpcDescriptors(path) => {
                self.state.grpc_descriptors = path.display().to_string();
                self.settings_window = true;
            }
            Command::SetReplayFile(path) => {
                self.replay_form.path = path.display().to_string();
                self.replay_window = true;
            }
            Command::Replay(action) => self.replay_action(action, ctx),
            Command::FocusTrafficFilter => {
                self.state.tab = Tab::Traffic;
                self.traffic.focus_filter();
            }
            Command::IgnoreField {
                virtual_service,
                rule,
            } => self.ignore_field(&virtual_service, &rule),
            Command::ApplyIgnoreRules => match IgnoreRules::parse(&self.state.ignore_rules) {
                Ok(rules) => self
                    .lab
                    .send(LabCommand::SetIgnoreRules(global_rules(&rules))),
                Err(e) => self.error(format!("Ignore rules not applied: {e}")),
            },
            Command::ExportHarDialog => self.open_dialog(DialogPurpose::ExportHar, ctx),
            Command::ExportHar(path) => self.lab.send(LabCommand::ExportHar {
                path,
                exchanges: self.traffic.shown_exchanges(),
            }),
        }
    }

    /// What the engine needs to run the open config with the app's settings; `None` (and
    /// the reason in the status line) when a setting does not parse.
    fn run_request(&mut self, purpose: RunPurpose) -> Option<RunRequest> {
        let workload = match Workload::parse(
            &self.state.source_labels,
            &self.state.source_namespace,
            &self.state.gateway,
        ) {
            Ok(workload) => workload,
            Err(e) => {
                self.error(format!("Settings, client workload: {e}"));
                return None;
            }
        };
        let mirror_headers = match crate::routing::MirrorHeaders::lab_wide(
            &self.state.mirror_remove_headers,
            &self.state.mirror_set_headers,
        ) {
            Ok(headers) => headers,
            Err(e) => {
                self.error(format!("Settings, {e}"));
                return None;
            }
        };
        let ignore = match IgnoreRules::parse(&self.state.ignore_rules) {
            Ok(rules) => rules,
            Err(e) => {
                self.error(format!("Settings, ignore rules: {e}"));
                IgnoreRules::default()
            }
        };
        self.next_tag += 1;
        let tag = self.next_tag;
        self.runs.push_back(PendingRun {
            tag,
            purpose,
            revision: self.doc.revision(),
        });
        Some(RunRequest {
            config: self.doc.config().clone(),
            // The path, where there is one: the config's annotations name files beside it.
            file: self
                .doc
                .path()
                .map_or_else(|| self.doc.display_name(), |p| p.display().to_string()),
            listen: self.state.listen_addr.clone(),
            allow_remote: self.state.allow_remote,
            default_host: Some(self.state.default_host.trim().to_owned()).filter(|h| !h.is_empty()),
            workload,
            shadow_host_suffix: self.state.shadow_host_suffix,
            mirror_headers,
            ignore,
            grpc_descriptors: Some(PathBuf::from(self.state.grpc_descriptors.trim()))
                .filter(|p| !p.as_os_str().is_empty()),
            tag,
        })
    }

    /// Starts the proxy with the open config (Start), or swaps it into the running one.
    fn run_config(&mut self, purpose: RunPurpose) {
        let start = purpose == RunPurpose::Start;
        let Some(run) = self.run_request(purpose) else {
            return;
        };
        self.lab.send(if start {
            LabCommand::Start(Box::new(run))
        } else {
            LabCommand::Apply(Box::new(run))
        });
    }

    /// One click from nothing to live plots: sample config if none, demo services, proxy,
    /// generated traffic, Dashboard.
    fn start_demo(&mut self) {
        if self.doc.config().resources().is_empty() {
            self.doc = Document::untitled("sample reviews-mirror.yaml", SAMPLE_CONFIG);
        }
        let Some(run) = self.run_request(RunPurpose::Needed) else {
            return;
        };
        self.lab.send(LabCommand::StartDemo {
            config: self.doc.config().clone(),
            run: Box::new(run),
            host: self.doc.hosts().into_iter().next(),
            rps: DEMO_RPS,
        });
    }

    fn replay_action(&mut self, action: crate::ui::replay::ReplayAction, ctx: &egui::Context) {
        use crate::ui::replay::ReplayAction;
        match action {
            ReplayAction::Browse => self.open_dialog(DialogPurpose::ReplayTraffic, ctx),
            ReplayAction::Start => {
                let (options, source) = match self.replay_form.options() {
                    Ok(o) => o,
                    Err(e) => {
                        self.replay_form.error = Some(e);
                        return;
                    }
                };
                let Some(run) = self.run_request(RunPurpose::Needed) else {
                    self.replay_form.error =
                        Some("Open a config first: the replay goes through its routes.".to_owned());
                    return;
                };
                self.replay_form.error = None;
                self.traffic.paused = false;
                self.lab.send(LabCommand::StartReplay(Box::new(
                    crate::lab::control::ReplayStart {
                        path: PathBuf::from(self.replay_form.path.trim()),
                        options,
                        source,
                        run: Box::new(run),
                    },
                )));
            }
            ReplayAction::Pause => self.lab.send(LabCommand::PauseReplay),
            ReplayAction::Resume => self.lab.send(LabCommand::ResumeReplay),
            ReplayAction::Stop => self.lab.send(LabCommand::StopReplay),
        }
    }

    fn send_request(&mut self) {
        let Some(run) = self.run_request(RunPurpose::Needed) else {
            return;
        };
        let mut request = self.state.send.clone();
        if request.host.trim().is_empty() {
            request.host = self.doc.hosts().into_iter().next().unwrap_or_default();
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        self.traffic.select_request_id = Some(request_id.clone());
        self.traffic.paused = false;
        self.state.tab = Tab::Traffic;
        self.sending = true;
        self.lab.send(LabCommand::Send {
            request,
            request_id,
            run: Box::new(run),
        });
    }

    fn ignore_field(&mut self, virtual_service: &str, rule: &str) {
        match self.doc.add_ignore_rule(virtual_service, rule) {
            Some(_) => {
                self.send_annotation_rules();
                self.info(format!(
                    "Ignoring {rule} for {virtual_service} (written to its {DIFF_IGNORE_ANNOTATION} annotation; save to keep it)."
                ));
            }
            None => self.error(format!(
                "VirtualService {virtual_service} is not in the open file, so the rule has nowhere to go."
            )),
        }
    }

    /// Puts the document's diff-ignore annotations in force in the running analysis, in
    /// place of the ones before; says which ones do not parse.
    fn send_annotation_rules(&mut self) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for (vs, text) in self.doc.ignore_annotations() {
            match IgnoreRules::parse(&text) {
                Ok(r) => rules.push((vs, r)),
                Err(e) => errors.push(format!(
                    "VirtualService {vs}: annotation {DIFF_IGNORE_ANNOTATION} ignored: {e}"
                )),
            }
        }
        self.ignore_errors = errors;
        self.lab.send(LabCommand::SetVirtualServiceRules(rules));
    }

    pub(super) fn reload_now(&mut self) {
        if let Some(path) = self.doc.path().map(Path::to_path_buf) {
            self.open_now(&path);
        }
    }

    pub(super) fn run_pending(&mut self, pending: Pending, ctx: &egui::Context) {
        match pending {
            Pending::Quit => {
                self.quit_confirmed = true;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            Pending::Open(path) => self.open_now(&path),
            Pending::Reload => self.reload_now(),
        }
    }
}

/// The app's rules for every route, on top of the headers every diff leaves out.
fn global_rules(own: &IgnoreRules) -> IgnoreRules {
    let mut all = IgnoreRules::with_default_headers();
    all.extend(own);
    all
}
