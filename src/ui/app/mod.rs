//! The app itself, split as rerun's viewer splits its `app/`: the persisted [`State`]
//! (`state.rs`), the [`Command`]s panels send and their handling (`command_handling.rs`),
//! what the engine tells the app (`engine_events.rs`), the chrome around the panels (menu,
//! top bar, banners: `chrome.rs`), modal windows (`windows.rs`) and the keyboard
//! (`shortcuts.rs`). The engine is reached only through [`LabControl`]: commands in, its
//! view and events out, and it wakes the app when something changed. Nothing in a frame
//! waits for it.

mod chrome;
mod command_handling;
mod engine_events;
pub mod shortcuts;
mod state;
mod windows;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

pub use command_handling::Command;
pub use state::{
    AppOptions, DEFAULT_LISTEN, Notice, ProxyProblem, SAMPLE_CONFIG, STATE_KEY, State, Tab, Theme,
};

use super::document::Document;
use super::files::FileDialog;
use super::{dashboard, diffs, help, routes, screenshot, traffic, yaml};
use crate::lab::control::{LabControl, LabView, SendOutcome};
use state::{DISK_POLL, FRAME, Pending};

/// Why the app asked the engine to run a config, so its answer can be put in words.
#[derive(Debug, Clone, PartialEq)]
enum RunPurpose {
    /// Start pressed (or a free address picked).
    Start,
    /// A config was just opened; the notice that says so.
    Opened(String),
    /// Apply pressed, or the client workload changed.
    Apply,
    /// The demo or a one-off request needs the proxy.
    Needed,
}

/// A run the engine has not answered yet.
#[derive(Debug, Clone)]
struct PendingRun {
    tag: u64,
    purpose: RunPurpose,
    /// The document's revision it carries.
    revision: u64,
}

/// The mirrorlab desktop app.
pub struct MirrorlabApp {
    /// Persisted settings and layout.
    pub state: State,
    /// The open config.
    pub doc: Document,
    runtime: tokio::runtime::Handle,
    options: AppOptions,
    commands: Vec<Command>,
    dialog: Option<FileDialog>,
    notice: Option<Notice>,
    /// An action waiting for the user to confirm dropping unsaved edits.
    confirm: Option<Pending>,
    /// Set once the user agreed to quit, so the next close request goes through.
    quit_confirmed: bool,
    /// The file changed on disk since we read or wrote it.
    disk_changed: bool,
    last_disk_poll: Instant,
    title: String,
    screenshot: Option<screenshot::ScreenshotJob>,
    yaml: yaml::YamlPanel,
    routes: routes::RoutesPanel,
    /// The Traffic tab's rows, filter and selection.
    pub traffic: traffic::TrafficPanel,
    /// The engine's door.
    pub lab: LabControl,
    /// The engine's view as of this frame.
    view: Arc<LabView>,
    /// The engine had commands to finish when this frame began.
    busy: bool,
    runs: VecDeque<PendingRun>,
    next_tag: u64,
    /// `mirrorlab.dev/diff-ignore` annotations of the running config that do not parse,
    /// descriptor files (annotations', the setting's) that do not load.
    ignore_errors: Vec<String>,
    send_window: bool,
    settings_window: bool,
    /// Whether the gRPC descriptors file typed in the settings loads.
    descriptors_check: crate::ui::send::DescriptorsCheck,
    replay_window: bool,
    replay_form: crate::ui::replay::ReplayForm,
    compare_window: bool,
    compare_form: crate::ui::compare_sessions::CompareForm,
    /// A one-off request is on its way.
    sending: bool,
    last_send: Option<SendOutcome>,
    proxy_problem: Option<ProxyProblem>,
    /// The saved listen address that `--listen` replaced for this run.
    saved_listen: Option<String>,
    /// How long the last frame's own work took (the app's, not the renderer's).
    last_frame_work: std::time::Duration,
}

impl MirrorlabApp {
    /// Builds the app for eframe: restores persisted state and opens the command line's file.
    pub fn new(
        cc: &eframe::CreationContext<'_>,
        runtime: tokio::runtime::Handle,
        options: AppOptions,
    ) -> Self {
        let state = if options.fresh_state {
            State::default()
        } else {
            cc.storage
                .and_then(|s| eframe::get_value::<State>(s, STATE_KEY))
                .unwrap_or_default()
        };
        Self::with_state(&cc.egui_ctx, runtime, options, state)
    }

    /// Builds the app with the given state (tests use this to start clean).
    pub fn with_state(
        ctx: &egui::Context,
        runtime: tokio::runtime::Handle,
        options: AppOptions,
        state: State,
    ) -> Self {
        ctx.set_theme(state.theme.preference());
        let screenshot = options.screenshot.clone().map(|path| {
            screenshot::ScreenshotJob::new(
                path,
                options.demo,
                Arc::clone(&options.screenshot_outcome),
            )
        });
        let wake_ctx = ctx.clone();
        let lab = LabControl::start(
            &runtime,
            Arc::new(move || wake_ctx.request_repaint_after(FRAME)),
        );
        let view = lab.view();
        let mut app = Self {
            state,
            doc: Document::default(),
            runtime,
            options,
            commands: Vec::new(),
            dialog: None,
            notice: None,
            confirm: None,
            quit_confirmed: false,
            disk_changed: false,
            last_disk_poll: Instant::now(),
            title: String::new(),
            screenshot,
            yaml: yaml::YamlPanel::default(),
            routes: routes::RoutesPanel::default(),
            traffic: traffic::TrafficPanel::default(),
            lab,
            view,
            busy: false,
            runs: VecDeque::new(),
            next_tag: 0,
            ignore_errors: Vec::new(),
            send_window: false,
            settings_window: false,
            descriptors_check: crate::ui::send::DescriptorsCheck::default(),
            replay_window: false,
            replay_form: crate::ui::replay::ReplayForm::default(),
            compare_window: false,
            compare_form: crate::ui::compare_sessions::CompareForm::default(),
            sending: false,
            last_send: None,
            proxy_problem: None,
            saved_listen: None,
            last_frame_work: std::time::Duration::ZERO,
        };
        if let Some(listen) = app.options.listen.clone() {
            app.saved_listen = Some(std::mem::replace(&mut app.state.listen_addr, listen));
        }
        if let Some(path) = app.options.config.clone() {
            app.open_now(&path);
        }
        if app.options.demo {
            app.commands.push(Command::StartDemo);
        }
        if let Some(tab) = app.options.tab {
            app.commands.push(Command::ShowTab(tab));
        }
        app
    }

    /// The tokio runtime the engine runs on.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// The status line's current message, if any.
    pub fn notice(&self) -> Option<&Notice> {
        self.notice.as_ref()
    }

    /// Why the proxy is not running, while the top bar says so.
    pub fn proxy_problem(&self) -> Option<&ProxyProblem> {
        self.proxy_problem.as_ref()
    }

    /// Lab-only annotations of the running config that do not parse or load, and a gRPC
    /// descriptors setting that does not load (not in force).
    pub fn ignore_errors(&self) -> &[String] {
        &self.ignore_errors
    }

    /// True while the app offers to reload the open file because it changed on disk.
    pub fn disk_changed(&self) -> bool {
        self.disk_changed
    }

    /// True while the engine has commands of the app's to finish.
    pub fn engine_busy(&self) -> bool {
        self.busy || !self.lab.is_idle()
    }

    /// How long the app's own work in the last frame took (engine reads, panels, commands).
    pub fn last_frame_work(&self) -> std::time::Duration {
        self.last_frame_work
    }

    /// Queues a command as if a widget had sent it.
    pub fn push_command(&mut self, command: Command) {
        self.commands.push(command);
    }

    /// The window title: the file name, starred when there are unsaved edits.
    pub fn window_title(&self) -> String {
        let name = self.doc.display_name();
        let mark = if self.doc.is_dirty() { "*" } else { "" };
        format!("{mark}{name} — mirrorlab")
    }

    fn info(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            is_error: false,
            text: text.into(),
        });
    }

    fn error(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            is_error: true,
            text: text.into(),
        });
    }

    fn central_ui(&mut self, ui: &mut egui::Ui) {
        let listening = self.view.listening;
        let analysis = Arc::clone(&self.view.analysis);
        let no_traffic = analysis.exchanges == 0 && self.traffic.is_empty();
        let empty_what = match self.state.tab {
            Tab::Dashboard => Some("the dashboard fills as requests pass"),
            Tab::Traffic => Some("every exchange will be listed here"),
            Tab::Diffs => Some("differences between primary and shadow show here"),
            Tab::Routes | Tab::Yaml => None,
        };
        if let Some(what) = empty_what.filter(|_| no_traffic) {
            let proxy = match listening {
                Some(addr) => help::ProxyState::Listening(addr),
                None => {
                    help::ProxyState::Stopped(self.proxy_problem.as_ref().map(|p| p.text.as_str()))
                }
            };
            let example =
                help::ExampleRequest::for_config(self.doc.config(), &self.state.send.path);
            if help::no_traffic_ui(ui, example.as_ref(), &self.doc.hosts(), proxy, what) {
                self.commands.push(Command::StartProxy);
            }
            return;
        }
        match self.state.tab {
            Tab::Yaml => yaml::YamlView {
                panel: &mut self.yaml,
                doc: &mut self.doc,
            }
            .ui(ui),
            Tab::Routes => routes::RoutesView {
                panel: &mut self.routes,
                doc: &mut self.doc,
                commands: &mut self.commands,
                proxy_running: listening.is_some(),
            }
            .ui(ui),
            Tab::Dashboard => dashboard::DashboardView {
                panel: &mut self.state.dashboard,
                snapshot: &analysis,
            }
            .ui(ui),
            Tab::Traffic => {
                let proxy = listening.map(help::connect_address);
                traffic::TrafficView {
                    panel: &mut self.traffic,
                    snapshot: Some(&analysis),
                    proxy: proxy.as_deref(),
                }
                .ui(ui);
            }
            Tab::Diffs => diffs::DiffsView {
                panel: &mut self.state.diffs,
                snapshot: &analysis,
                commands: &mut self.commands,
            }
            .ui(ui),
        }
    }
}

impl eframe::App for MirrorlabApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        let began = Instant::now();
        self.guard_close(ctx);
        self.handle_dropped_files(ctx);
        self.keyboard_shortcuts(ctx);
        self.poll_dialog();
        self.poll_disk();
        self.poll_engine();
        self.prepare_screenshot();
        if let Some(job) = &mut self.screenshot {
            job.tick(ctx);
        }
        self.last_frame_work = began.elapsed();
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let began = Instant::now();
        let ctx = ui.ctx().clone();
        egui::Panel::top("menu").show(ui, |ui| {
            self.menu_bar(ui);
            self.top_bar(ui);
            self.proxy_problem_ui(ui);
            self.tab_bar(ui);
        });
        egui::Panel::bottom("status").show(ui, |ui| self.banners(ui));
        egui::CentralPanel::default().show(ui, |ui| self.central_ui(ui));
        self.windows(&ctx);
        self.confirm_modal(&ctx);
        self.run_commands(&ctx);
        self.update_title(&ctx);
        // The engine wakes the app when it has news; disk polling and dialog answers need
        // a frame now and then without it.
        ctx.request_repaint_after(DISK_POLL);
        self.last_frame_work += began.elapsed();
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        // A screenshot run starts from defaults; it must not overwrite the user's settings.
        if self.screenshot.is_some() {
            return;
        }
        // `--listen` is for this run: unless the user typed another address since, the saved
        // one stays.
        match (&self.saved_listen, &self.options.listen) {
            (Some(saved), Some(run)) if *run == self.state.listen_addr => {
                let mut state = self.state.clone();
                state.listen_addr = saved.clone();
                eframe::set_value(storage, STATE_KEY, &state);
            }
            _ => eframe::set_value(storage, STATE_KEY, &self.state),
        }
    }
}
