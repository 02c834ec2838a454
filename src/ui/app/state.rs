//! What the app keeps between runs (settings, layout) and what it is started with, apart
//! from the runtime handles the app holds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::lab::control::OneRequest;
use crate::ui::files::DialogBackend;
use crate::ui::{dashboard, diffs, screenshot};

/// Storage key of the persisted [`State`].
pub const STATE_KEY: &str = "mirrorlab-state";
/// How many recent files the File menu keeps.
const MAX_RECENT: usize = 8;
/// How often the open file's modification time is checked.
pub(super) const DISK_POLL: Duration = Duration::from_secs(1);
/// The default proxy address (DESIGN.md §5).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:15001";
/// The shortest time between two frames the engine asks for (DESIGN §2: the UI at most
/// 30 Hz); it wakes the app no more often than this.
pub(super) const FRAME: Duration = Duration::from_millis(33);
/// How long before a screenshot of Traffic an exchange is selected (time to lay it out).
pub(super) const SCREENSHOT_SELECT_LEAD: Duration = Duration::from_secs(2);
/// Requests per second of the demo's generated traffic.
pub(super) const DEMO_RPS: f64 = 40.0;
/// The sample config "Start demo" opens when no file is open.
pub const SAMPLE_CONFIG: &str = include_str!("../../../sample-configs/reviews-mirror.yaml");

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
    pub(super) fn preference(self) -> egui::ThemePreference {
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
    pub send: OneRequest,
    /// Start the proxy (or hot-swap its routes) as soon as a config opens.
    pub start_on_open: bool,
    /// Labels of the client workload whose sidecar the lab plays, `k=v,k=v`.
    pub source_labels: String,
    /// Its namespace (empty: `default`).
    pub source_namespace: String,
    /// The Gateway the lab acts as, `namespace/name` (empty: a sidecar).
    pub gateway: String,
    /// Append `-shadow` to the Host of mirrored copies (Envoy, Istio before 1.28).
    pub shadow_host_suffix: bool,
    /// Headers removed from every mirrored copy, comma-separated.
    pub mirror_remove_headers: String,
    /// Headers set on every mirrored copy, `name: value` per line.
    pub mirror_set_headers: String,
    /// A `FileDescriptorSet` for the gRPC messages of every route without a
    /// `mirrorlab.dev/grpc-descriptors` annotation (empty: none).
    pub grpc_descriptors: String,
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
            send: OneRequest {
                method: "GET".to_owned(),
                path: "/reviews/1".to_owned(),
                ..OneRequest::default()
            },
            start_on_open: true,
            source_labels: String::new(),
            source_namespace: "default".to_owned(),
            gateway: String::new(),
            shadow_host_suffix: false,
            mirror_remove_headers: String::new(),
            mirror_set_headers: String::new(),
            grpc_descriptors: String::new(),
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
pub(super) enum Pending {
    Quit,
    Open(PathBuf),
    Reload,
}

/// True when `addr` parses as a loopback socket address (or does not parse yet).
pub(super) fn listen_is_loopback(addr: &str) -> bool {
    addr.trim()
        .parse::<std::net::SocketAddr>()
        .map_or(true, |a| a.ip().is_loopback())
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
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
