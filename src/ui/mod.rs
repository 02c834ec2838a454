//! The desktop app (eframe). One file per panel; the app drains the panels' commands once
//! a frame and is the only place that talks to the running lab.

pub mod dashboard;
pub mod diffs;
mod document;
pub mod files;
pub mod form;
pub mod help;
pub mod httproute;
pub mod routes;
pub mod screenshot;
mod send;
pub mod session;
pub mod traffic;
mod yaml;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use document::Document;
use files::{DialogBackend, DialogOutcome, DialogPurpose, FileDialog};
use session::{SendOutcome, Session};

/// Storage key of the persisted [`State`].
pub const STATE_KEY: &str = "mirrorlab-state";
/// How many recent files the File menu keeps.
const MAX_RECENT: usize = 8;
/// How often the open file's modification time is checked.
const DISK_POLL: Duration = Duration::from_secs(1);
/// The default proxy address (DESIGN.md §5).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:15001";
/// How often the app repaints while the proxy runs (live panels update at this rate).
const LIVE_REPAINT: Duration = Duration::from_millis(66);
/// How long before a screenshot of Traffic an exchange is selected (time to lay it out).
const SCREENSHOT_SELECT_LEAD: Duration = Duration::from_secs(2);
/// Requests per second of the demo's generated traffic.
const DEMO_RPS: f64 = 40.0;
/// The sample config "Start demo" opens when no file is open.
pub const SAMPLE_CONFIG: &str = include_str!("../../sample-configs/reviews-mirror.yaml");

/// The panels, one per tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Tab {
    /// The route editor (forms over the open config).
    #[default]
    Routes,
    /// Primary versus shadow statistics and plots.
    Dashboard,
    /// The live table of exchanges.
    Traffic,
    /// Where shadow responses differ from the primary's.
    Diffs,
    /// The YAML that will be saved.
    Yaml,
}

impl Tab {
    /// All tabs in display order.
    pub const ALL: [Tab; 5] = [
        Tab::Routes,
        Tab::Dashboard,
        Tab::Traffic,
        Tab::Diffs,
        Tab::Yaml,
    ];

    /// The tab's title.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Routes => "Routes",
            Tab::Dashboard => "Dashboard",
            Tab::Traffic => "Traffic",
            Tab::Diffs => "Diffs",
            Tab::Yaml => "YAML",
        }
    }
}

impl std::str::FromStr for Tab {
    type Err = String;

    /// A tab by its title, any case (`dashboard`, `Traffic`, `yaml`).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Tab::ALL
            .into_iter()
            .find(|t| t.title().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                let names: Vec<String> =
                    Tab::ALL.iter().map(|t| t.title().to_lowercase()).collect();
                format!("no tab '{name}'; the tabs are {}", names.join(", "))
            })
    }
}

/// Colour scheme preference, persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Theme {
    /// Follow the desktop.
    #[default]
    System,
    /// Dark.
    Dark,
    /// Light.
    Light,
}

impl Theme {
    fn preference(self) -> egui::ThemePreference {
        match self {
            Theme::System => egui::ThemePreference::System,
            Theme::Dark => egui::ThemePreference::Dark,
            Theme::Light => egui::ThemePreference::Light,
        }
    }
}

/// Settings and layout that persist between runs (runtime handles live in the app).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct State {
    /// The selected tab.
    pub tab: Tab,
    /// Most recently opened files, newest first.
    pub recent_files: Vec<PathBuf>,
    /// Address the proxy listens on.
    pub listen_addr: String,
    /// Host used for requests addressed to the proxy itself (empty: the config's first).
    pub default_host: String,
    /// Let the proxy listen on an address other machines can reach.
    pub allow_remote: bool,
    /// Colour scheme.
    pub theme: Theme,
    /// Diff ignore rules for every route, in the annotation's text form (one a line).
    pub ignore_rules: String,
    /// Dashboard layout.
    pub dashboard: dashboard::DashboardPanel,
    /// Diffs table layout.
    pub diffs: diffs::DiffsPanel,
    /// The Send request form's last values.
    pub send: session::OneRequest,
    /// Start the proxy (or hot-swap its routes) as soon as a config opens.
    pub start_on_open: bool,
    /// Labels of the client workload whose sidecar the lab plays, `k=v,k=v`.
    pub source_labels: String,
    /// Its namespace (empty: `default`).
    pub source_namespace: String,
    /// The Gateway the lab acts as, `namespace/name` (empty: a sidecar).
    pub gateway: String,
}

impl Default for State {
    fn default() -> Self {
        Self {
            tab: Tab::default(),
            recent_files: Vec::new(),
            listen_addr: DEFAULT_LISTEN.to_owned(),
            default_host: String::new(),
            allow_remote: false,
            theme: Theme::default(),
            ignore_rules: String::new(),
            dashboard: dashboard::DashboardPanel::default(),
            diffs: diffs::DiffsPanel::default(),
            send: session::OneRequest {
                method: "GET".to_owned(),
                path: "/reviews/1".to_owned(),
                ..session::OneRequest::default()
            },
            start_on_open: true,
            source_labels: String::new(),
            source_namespace: "default".to_owned(),
            gateway: String::new(),
        }
    }
}

impl State {
    /// Moves `path` to the front of the recent files.
    pub fn remember_file(&mut self, path: &Path) {
        self.recent_files.retain(|p| p != path);
        self.recent_files.insert(0, path.to_path_buf());
        self.recent_files.truncate(MAX_RECENT);
    }
}

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
    /// Ignore a field in diffs: write it into the VirtualService's annotation.
    IgnoreField {
        /// `namespace/name` of the VirtualService.
        virtual_service: String,
        /// The rule, in the annotation's syntax (`/json/pointer`, `header:name`, ...).
        rule: String,
    },
}

/// Options fixed at start-up (command line), not persisted.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// A config to open at start.
    pub config: Option<PathBuf>,
    /// Write a PNG of the window to this path after a few seconds, then exit.
    pub screenshot: Option<PathBuf>,
    /// Start the demo services and traffic at launch.
    pub demo: bool,
    /// How the app asks for paths.
    pub dialogs: DialogBackend,
    /// Ignore the persisted state (tests).
    pub fresh_state: bool,
    /// Listen on this address instead of the saved one (this run only).
    pub listen: Option<String>,
    /// Show this tab at start (after the demo's own choice).
    pub tab: Option<Tab>,
    /// Filled when a `--screenshot` run ends: the PNG's path or why it failed.
    pub screenshot_outcome: screenshot::ScreenshotOutcome,
}

/// A message in the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// True for failures (shown in red).
    pub is_error: bool,
    /// What happened and what to do.
    pub text: String,
}

/// Why the proxy is not running although the user expects it to; the top bar shows it
/// until the next start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProblem {
    /// What happened, where, and what to do.
    pub text: String,
    /// A free address to offer when the one asked for is taken.
    pub free_addr: Option<String>,
    /// The config has errors (the Routes tab shows them).
    pub config_errors: bool,
}

/// What waits behind the "unsaved changes" question.
#[derive(Debug, Clone, PartialEq)]
enum Pending {
    Quit,
    Open(PathBuf),
    Reload,
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
    /// The engine.
    pub session: Session,
    analysis: std::sync::Arc<crate::analysis::AnalysisSnapshot>,
    rps: f64,
    send_window: bool,
    settings_window: bool,
    last_send: Option<SendOutcome>,
    proxy_problem: Option<ProxyProblem>,
    /// The saved listen address that `--listen` replaced for this run.
    saved_listen: Option<String>,
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
                std::sync::Arc::clone(&options.screenshot_outcome),
            )
        });
        let mut app = Self {
            state,
            doc: Document::default(),
            runtime: runtime.clone(),
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
            session: Session::new(runtime.clone()),
            analysis: std::sync::Arc::new(
                crate::analysis::Analyzer::new(crate::analysis::AnalysisSettings::default())
                    .snapshot(),
            ),
            rps: 0.0,
            send_window: false,
            settings_window: false,
            last_send: None,
            proxy_problem: None,
            saved_listen: None,
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

    /// True while the app offers to reload the open file because it changed on disk.
    pub fn disk_changed(&self) -> bool {
        self.disk_changed
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

    /// Opens `path` right away, replacing the current document.
    fn open_now(&mut self, path: &Path) {
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

    fn save_to(&mut self, path: &Path) {
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

    fn open_dialog(&mut self, purpose: DialogPurpose, ctx: &egui::Context) {
        let start = self.doc.path().map(Path::to_path_buf);
        self.dialog = Some(FileDialog::open(
            purpose,
            self.options.dialogs,
            start.as_deref(),
            ctx,
        ));
    }

    /// Drains the commands queued this frame.
    fn run_commands(&mut self, ctx: &egui::Context) {
        for command in std::mem::take(&mut self.commands) {
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
                Command::Apply => self.apply(),
                Command::StartProxy => {
                    self.start_proxy();
                }
                Command::RunOpenedConfig => self.run_opened_config(),
                Command::StopProxy => {
                    self.session.stop();
                    self.info("Proxy stopped.");
                }
                Command::StartDemo => self.start_demo(),
                Command::StopDemo => {
                    self.session.stop_demo();
                    self.info("Demo services and their traffic stopped.");
                }
                Command::ClearTraffic => {
                    self.traffic.clear();
                    self.session.with_analyzer(|a| a.clear());
                }
                Command::SendRequest => self.send_request(ctx),
                Command::ShowExchange(id) => {
                    self.traffic.selected = Some(id);
                    self.traffic.filter = traffic::TrafficFilter::default();
                    self.traffic.reveal_selected();
                    self.state.tab = Tab::Traffic;
                }
                Command::IgnoreField {
                    virtual_service,
                    rule,
                } => self.ignore_field(&virtual_service, &rule),
                Command::ApplyIgnoreRules => {
                    match crate::analysis::IgnoreRules::parse(&self.state.ignore_rules) {
                        Ok(rules) => {
                            let mut all = crate::analysis::IgnoreRules::with_default_headers();
                            all.extend(&rules);
                            self.session.with_analyzer(|a| a.set_ignore_rules(all));
                            self.info("Ignore rules applied to the running analysis.");
                        }
                        Err(e) => self.error(format!("Ignore rules not applied: {e}")),
                    }
                }
                Command::ExportHarDialog => {
                    let start = self
                        .doc
                        .path()
                        .map(|p| p.with_extension("har"))
                        .unwrap_or_else(|| PathBuf::from("mirrorlab.har"));
                    self.dialog = Some(FileDialog::open(
                        DialogPurpose::ExportHar,
                        self.options.dialogs,
                        Some(&start),
                        ctx,
                    ));
                }
                Command::ExportHar(path) => {
                    let exchanges = self.traffic.shown_exchanges();
                    let options = crate::export::har::HarOptions::default();
                    let analysis = self.session.analysis();
                    match crate::export::har::write_har_file(
                        &path,
                        &exchanges,
                        &options,
                        Some(&analysis),
                    ) {
                        Ok(()) => self.info(format!(
                            "Wrote {} exchanges to {} (Authorization and cookies redacted)",
                            exchanges.len(),
                            path.display()
                        )),
                        Err(e) => self.error(format!("HAR not written: {e}")),
                    }
                }
            }
        }
    }

    /// Analysis settings from the config's annotations and the app's own rules.
    fn analysis_settings(&mut self) -> crate::analysis::AnalysisSettings {
        let mut settings = crate::analysis::AnalysisSettings::default();
        match crate::analysis::IgnoreRules::parse(&self.state.ignore_rules) {
            Ok(rules) => settings.ignore.extend(&rules),
            Err(e) => self.error(format!("Settings: {e}")),
        }
        for (vs, annotation) in self.doc.ignore_annotations() {
            if let Err(e) = settings.add_annotation(&vs, &annotation) {
                self.error(format!(
                    "VirtualService {vs}, annotation {}: {e}",
                    crate::analysis::DIFF_IGNORE_ANNOTATION
                ));
            }
        }
        settings
    }

    fn compile_or_explain(&mut self) -> Option<crate::routing::RouteTable> {
        let workload = match crate::routing::Workload::parse(
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
        match self.doc.compile_for(&workload) {
            Ok(table) => Some(table),
            Err(errors) => {
                let first = errors
                    .first()
                    .map(|d| format!("line {}: {}", d.line, d.message))
                    .unwrap_or_default();
                let n = errors.len();
                let consequence = if self.session.is_running() {
                    "so the proxy keeps its routes"
                } else {
                    "so the proxy was not started"
                };
                self.error(format!(
                    "The config has {n} error{}, {consequence}: {first}. \
                     The Routes tab shows each next to its field.",
                    plural(n)
                ));
                None
            }
        }
    }

    /// Right after a config opened: start the proxy with it (or hot-swap it into the running
    /// one), unless the settings say to wait for Start.
    fn run_opened_config(&mut self) {
        if !self.state.start_on_open {
            return;
        }
        let opened = self.notice.as_ref().map(|n| n.text.clone());
        if self.session.is_running() {
            self.apply();
            if self.notice.as_ref().is_some_and(|n| !n.is_error) {
                self.info(format!(
                    "{}. The running proxy now routes with it.",
                    opened.unwrap_or_default()
                ));
            }
            return;
        }
        let opened = opened.map_or_else(String::new, |o| format!("{o}. "));
        if let Some(addr) = self.start_proxy() {
            self.info(format!(
                "{opened}Proxy listening on {addr}: send requests there and watch them here."
            ));
        }
    }

    /// Starts the proxy with the open config; its address when it runs.
    fn start_proxy(&mut self) -> Option<std::net::SocketAddr> {
        let Some(table) = self.compile_or_explain() else {
            let (errors, _) = self.doc.problem_counts();
            self.proxy_problem = Some(ProxyProblem {
                text: format!(
                    "Proxy not started: the config has {errors} error{}. Fix {} in the Routes tab, then press Start.",
                    plural(errors),
                    if errors == 1 { "it" } else { "them" }
                ),
                free_addr: None,
                config_errors: true,
            });
            return None;
        };
        let default_host =
            Some(self.state.default_host.trim().to_owned()).filter(|h| !h.is_empty());
        let analysis = self.analysis_settings();
        let listen = self.state.listen_addr.clone();
        let allow_remote = self.state.allow_remote;
        match self
            .session
            .start(&listen, allow_remote, default_host, analysis, table)
        {
            Ok(addr) => {
                self.doc.mark_applied();
                self.traffic.clear();
                self.proxy_problem = None;
                self.info(format!("Proxy listening on {addr}"));
                Some(addr)
            }
            Err(e) => {
                // The top bar shows it (until the next start), not the status line.
                self.proxy_problem = Some(start_problem(&e, &listen));
                None
            }
        }
    }

    fn apply(&mut self) {
        if !self.session.is_running() {
            self.start_proxy();
            return;
        }
        let Some(table) = self.compile_or_explain() else {
            return;
        };
        match self.session.apply(table) {
            Ok(()) => {
                self.doc.mark_applied();
                let rules: Vec<(String, String)> = self.doc.ignore_annotations();
                self.session.with_analyzer(|a| {
                    for (vs, text) in &rules {
                        if let Ok(r) = crate::analysis::IgnoreRules::parse(text) {
                            a.set_virtual_service_rules(vs, r);
                        }
                    }
                });
                self.info("Applied: the proxy now routes with these routes.");
            }
            Err(e) => self.error(format!("Not applied: {e}")),
        }
    }

    /// One click from nothing to live plots: sample config if none, demo services, proxy,
    /// generated traffic, Dashboard.
    fn start_demo(&mut self) {
        if self.doc.config().resources().is_empty() {
            self.doc = Document::untitled("sample reviews-mirror.yaml", SAMPLE_CONFIG);
        }
        if let Err(e) = self.session.start_demo(self.doc.config()) {
            self.error(format!("Cannot start the demo: {e}"));
            return;
        }
        if !self.session.is_running() && self.start_proxy().is_none() {
            self.session.stop_demo();
            return;
        }
        let host = self.doc.hosts().into_iter().next();
        if let Err(e) = self.session.start_traffic(host, DEMO_RPS) {
            self.error(format!("Cannot start the demo traffic: {e}"));
            return;
        }
        self.state.tab = Tab::Dashboard;
        self.info(format!(
            "Demo running: services from the config's ServiceEntries, {DEMO_RPS} requests/s through the proxy."
        ));
    }

    fn send_request(&mut self, ctx: &egui::Context) {
        if !self.session.is_running() && self.start_proxy().is_none() {
            return;
        }
        let mut request = self.state.send.clone();
        if request.host.trim().is_empty() {
            request.host = self.doc.hosts().into_iter().next().unwrap_or_default();
        }
        match self.session.send(&request, ctx) {
            Ok(id) => {
                self.traffic.select_request_id = Some(id);
                self.traffic.paused = false;
                self.state.tab = Tab::Traffic;
            }
            Err(e) => self.error(format!("Not sent: {e}")),
        }
    }

    fn ignore_field(&mut self, virtual_service: &str, rule: &str) {
        match self.doc.add_ignore_rule(virtual_service, rule) {
            Some(annotation) => {
                match crate::analysis::IgnoreRules::parse(&annotation) {
                    Ok(rules) => self
                        .session
                        .with_analyzer(|a| a.set_virtual_service_rules(virtual_service, rules)),
                    Err(e) => self.error(format!("The annotation does not parse: {e}")),
                }
                self.info(format!(
                    "Ignoring {rule} for {virtual_service} (written to its {} annotation; save to keep it).",
                    crate::analysis::DIFF_IGNORE_ANNOTATION
                ));
            }
            None => self.error(format!(
                "VirtualService {virtual_service} is not in the open file, so the rule has nowhere to go."
            )),
        }
    }

    /// Pulls the engine's news once a frame: new exchanges, answers, the latest analysis.
    fn poll_engine(&mut self) {
        self.analysis = self.session.analysis();
        self.rps = self.session.requests_per_second();
        if !self.traffic.paused {
            let new = self.session.new_exchanges(50_000);
            self.traffic.push(new, Some(&self.analysis));
        }
        for outcome in self.session.sent() {
            if let SendOutcome::Failed(why) = &outcome {
                self.error(why.clone());
            }
            self.last_send = Some(outcome);
        }
    }

    /// A screenshot of Traffic shows a selected exchange: shortly before the shot, select
    /// the newest one whose shadow's response differs from the primary's.
    fn prepare_screenshot(&mut self) {
        let Some(job) = &self.screenshot else { return };
        if self.state.tab != Tab::Traffic
            || self.traffic.selected.is_some()
            || job.due_in() > SCREENSHOT_SELECT_LEAD
        {
            return;
        }
        let analysis = std::sync::Arc::clone(&self.analysis);
        let answered = |o: &crate::capture::ShadowOutcome| {
            matches!(
                o,
                crate::capture::ShadowOutcome::Sent(crate::capture::UpstreamOutcome::Response(_))
            )
        };
        let pick = self.traffic.newest_where(|e| {
            traffic::differs(Some(&analysis), e.id)
                && e.shadows.first().is_some_and(|s| answered(&s.outcome))
        });
        if let Some(id) = pick {
            self.commands.push(Command::ShowExchange(id));
        }
    }

    fn reload_now(&mut self) {
        if let Some(path) = self.doc.path().map(Path::to_path_buf) {
            self.open_now(&path);
        }
    }

    fn run_pending(&mut self, pending: Pending, ctx: &egui::Context) {
        match pending {
            Pending::Quit => {
                self.quit_confirmed = true;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            Pending::Open(path) => self.open_now(&path),
            Pending::Reload => self.reload_now(),
        }
    }

    /// Handles the window's close button: with unsaved edits, ask first.
    fn guard_close(&mut self, ctx: &egui::Context) {
        if ctx.input(|i| i.viewport().close_requested())
            && self.doc.is_dirty()
            && !self.quit_confirmed
            && self.screenshot.is_none()
        {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.confirm = Some(Pending::Quit);
        }
    }

    fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if let Some(path) = dropped.into_iter().next() {
            self.commands.push(Command::Open(path));
        }
    }

    fn poll_disk(&mut self) {
        if self.last_disk_poll.elapsed() < DISK_POLL {
            return;
        }
        self.last_disk_poll = Instant::now();
        if self.doc.changed_on_disk() {
            self.disk_changed = true;
        }
    }

    fn update_title(&mut self, ctx: &egui::Context) {
        let title = self.window_title();
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
    }

    fn menu_bar(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open…").clicked() {
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
                if ui.button("Save").clicked() {
                    self.commands.push(Command::Save);
                }
                if ui.button("Save As…").clicked() {
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
                if ui.button("Quit").clicked() {
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

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label("Proxy");
            let running = self.session.local_addr();
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
                    ui.label(format!("{:.0} req/s", self.rps))
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
            if self.session.demo_running() {
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
    fn proxy_problem_ui(&mut self, ui: &mut egui::Ui) {
        if self.session.is_running() {
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

    fn config_status_ui(&mut self, ui: &mut egui::Ui) {
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

    fn tab_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            for tab in Tab::ALL {
                ui.selectable_value(&mut self.state.tab, tab, tab.title());
            }
        });
    }

    fn banners(&mut self, ui: &mut egui::Ui) {
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

    fn poll_dialog(&mut self) {
        if let Some(dialog) = &mut self.dialog {
            let outcome = dialog.poll();
            self.finish_dialog(outcome);
        }
    }

    fn finish_dialog(&mut self, outcome: DialogOutcome) {
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
                });
            }
        }
    }

    fn confirm_modal(&mut self, ctx: &egui::Context) {
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

    fn keyboard_shortcuts(&mut self, ctx: &egui::Context) {
        use egui::{Key, KeyboardShortcut, Modifiers};
        let open = KeyboardShortcut::new(Modifiers::COMMAND, Key::O);
        let save = KeyboardShortcut::new(Modifiers::COMMAND, Key::S);
        let save_as = KeyboardShortcut::new(Modifiers::COMMAND | Modifiers::SHIFT, Key::S);
        ctx.input_mut(|i| {
            if i.consume_shortcut(&save_as) {
                self.commands.push(Command::SaveAsDialog);
            }
            if i.consume_shortcut(&save) {
                self.commands.push(Command::Save);
            }
            if i.consume_shortcut(&open) {
                self.commands.push(Command::OpenDialog);
            }
        });
    }

    fn central_ui(&mut self, ui: &mut egui::Ui) {
        let listen = self.session.local_addr().map(help::connect_address);
        let no_traffic = self.analysis.exchanges == 0 && self.traffic.is_empty();
        let empty_what = match self.state.tab {
            Tab::Dashboard => Some("the dashboard fills as requests pass"),
            Tab::Traffic => Some("every exchange will be listed here"),
            Tab::Diffs => Some("differences between primary and shadow show here"),
            Tab::Routes | Tab::Yaml => None,
        };
        if let Some(what) = empty_what.filter(|_| no_traffic) {
            let proxy = match self.session.local_addr() {
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
            Tab::Yaml => {
                yaml::YamlView {
                    panel: &mut self.yaml,
                    doc: &mut self.doc,
                }
                .ui(ui);
            }
            Tab::Routes => {
                routes::RoutesView {
                    panel: &mut self.routes,
                    doc: &mut self.doc,
                    commands: &mut self.commands,
                    proxy_running: self.session.is_running(),
                }
                .ui(ui);
            }
            Tab::Dashboard => {
                dashboard::DashboardView {
                    panel: &mut self.state.dashboard,
                    snapshot: &self.analysis,
                }
                .ui(ui);
            }
            Tab::Traffic => {
                traffic::TrafficView {
                    panel: &mut self.traffic,
                    snapshot: Some(&self.analysis),
                    proxy: listen.as_deref(),
                }
                .ui(ui);
            }
            Tab::Diffs => {
                diffs::DiffsView {
                    panel: &mut self.state.diffs,
                    snapshot: &self.analysis,
                    commands: &mut self.commands,
                }
                .ui(ui);
            }
        }
    }

    fn windows(&mut self, ctx: &egui::Context) {
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
                .show(ctx, |ui| request = send::settings_ui(ui, &mut self.state));
            if request.apply_ignore_rules {
                self.commands.push(Command::ApplyIgnoreRules);
            }
            if request.apply_workload {
                self.commands.push(Command::Apply);
            }
            self.settings_window = open;
        }
    }
}

/// Explains why the proxy did not start on `listen`, with a way out.
fn start_problem(e: &session::SessionError, listen: &str) -> ProxyProblem {
    use crate::lab::LabError;
    use crate::proxy::ProxyError;
    use std::io::ErrorKind;
    let mut free_addr = None;
    let text = match e {
        session::SessionError::Lab(LabError::Proxy(ProxyError::Bind { addr, source })) => {
            match source.kind() {
                ErrorKind::AddrInUse => {
                    free_addr = free_port_near(*addr).map(|a| a.to_string());
                    format!(
                        "Proxy not started: port {} on {} is already in use (another mirrorlab, \
                         or another program). Type a free address in 'listen on' and press Start{}.",
                        addr.port(),
                        addr.ip(),
                        if free_addr.is_some() {
                            ", or use the one offered"
                        } else {
                            ""
                        }
                    )
                }
                ErrorKind::PermissionDenied => format!(
                    "Proxy not started: this user may not listen on {addr} (ports below 1024 \
                     need privileges). Use a port above 1024, e.g. {DEFAULT_LISTEN}."
                ),
                ErrorKind::AddrNotAvailable => format!(
                    "Proxy not started: {} is not an address of this machine. Use 127.0.0.1 \
                     (e.g. {DEFAULT_LISTEN}).",
                    addr.ip()
                ),
                _ => format!(
                    "Proxy not started: cannot listen on {addr}: {source}. Try another address."
                ),
            }
        }
        session::SessionError::Lab(LabError::RemoteListen { addr }) => format!(
            "Proxy not started: {addr} is not a loopback address, so other machines could send \
             traffic through the lab. Tick 'Allow that' if you mean it, or listen on 127.0.0.1."
        ),
        other => format!("Proxy not started on {listen}: {other}"),
    };
    ProxyProblem {
        text,
        free_addr,
        config_errors: false,
    }
}

/// The first port after `addr`'s (up to 20 further) that can be bound on the same IP now.
fn free_port_near(addr: std::net::SocketAddr) -> Option<std::net::SocketAddr> {
    (1..=20u16)
        .filter_map(|d| addr.port().checked_add(d))
        .map(|port| std::net::SocketAddr::new(addr.ip(), port))
        // Binding and dropping at once leaves a small race with other programs; Start
        // says so again if it loses it.
        .find(|a| std::net::TcpListener::bind(a).is_ok())
}

/// True when `addr` parses as a loopback socket address (or does not parse yet).
fn listen_is_loopback(addr: &str) -> bool {
    addr.trim()
        .parse::<std::net::SocketAddr>()
        .map_or(true, |a| a.ip().is_loopback())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl eframe::App for MirrorlabApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
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
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
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
        if self.session.is_running() {
            ctx.request_repaint_after(LIVE_REPAINT);
        } else {
            // Disk polling and dialog answers need a frame now and then even without input.
            ctx.request_repaint_after(DISK_POLL);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_survive_a_round_trip_and_old_saves_fill_in_defaults() {
        let mut state = State::default();
        state.remember_file(Path::new("/tmp/a.yaml"));
        state.remember_file(Path::new("/tmp/b.yaml"));
        state.remember_file(Path::new("/tmp/a.yaml"));
        state.listen_addr = "127.0.0.1:16000".to_owned();
        state.theme = Theme::Light;
        state.ignore_rules = "/timestamp".to_owned();
        state.tab = Tab::Diffs;
        state.dashboard.cdf = true;
        let text = serde_json::to_string(&state).unwrap();
        let back: State = serde_json::from_str(&text).unwrap();
        assert_eq!(back, state);
        assert_eq!(
            back.recent_files,
            vec![PathBuf::from("/tmp/a.yaml"), PathBuf::from("/tmp/b.yaml")]
        );
        // A save from an older version lacks newer fields; they take their defaults.
        let old: State = serde_json::from_str(r#"{"listen_addr":"127.0.0.1:1"}"#).unwrap();
        assert_eq!(old.listen_addr, "127.0.0.1:1");
        assert_eq!(old.send, State::default().send);
    }

    #[test]
    fn only_loopback_listen_addresses_pass_without_a_warning() {
        assert!(listen_is_loopback("127.0.0.1:15001"));
        assert!(listen_is_loopback("[::1]:15001"));
        assert!(!listen_is_loopback("0.0.0.0:15001"));
        assert!(!listen_is_loopback("192.168.1.5:80"));
    }
}
