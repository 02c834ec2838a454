//! Traffic the app did not capture live: a saved session opened with no proxy running,
//! and a traffic file to replay through the running one. Both files are read on a
//! blocking thread, so a large one never holds up the engine's other commands' task.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::analysis::{AnalysisSnapshot, Analyzer};
use crate::capture::Exchange;
use crate::export::report::Report;
use crate::export::report::RunInfo;
use crate::replay::compare::CompareRow;
use crate::replay::session::{SessionConfig, SessionMeta, write_session_file};
use crate::replay::sources::session::{analyze_session, read_session};
use crate::replay::{
    ReplayOptions, ReplayRequest, SourceOptions, Traffic, TrafficError, load_traffic,
};

use super::RunRequest;

/// A session as the app shows it: its exchanges and the analysis rebuilt from them.
#[derive(Debug, Clone)]
pub struct OpenedSession {
    /// The file.
    pub path: PathBuf,
    /// Its exchanges, in the order written.
    pub exchanges: Vec<Arc<Exchange>>,
    /// The analysis of them, with the settings the session was saved with.
    pub analysis: Arc<AnalysisSnapshot>,
    /// The config file(s) the lab ran, by path.
    pub config: Vec<String>,
}

/// What the Replay… window asks for.
#[derive(Debug, Clone)]
pub struct ReplayStart {
    /// The HAR, `.gor` or session file.
    pub path: PathBuf,
    /// How fast, how many at once, how many rounds.
    pub options: ReplayOptions,
    /// Keep credentials or not.
    pub source: SourceOptions,
    /// How to start the proxy if it is not running.
    pub run: Box<RunRequest>,
}

/// Reads the session at `path` and rebuilds its analysis, off the engine's task.
pub(super) async fn open_session(
    runtime: &tokio::runtime::Handle,
    path: &Path,
) -> Result<OpenedSession, String> {
    let path = path.to_owned();
    let work = runtime.spawn_blocking(move || -> Result<OpenedSession, String> {
        let session = read_session(&path).map_err(|e| e.to_string())?;
        let settings = session
            .meta
            .analysis
            .settings()
            .map_err(|e| format!("{}: the saved analysis settings: {e}", path.display()))?;
        let mut analyzer = Analyzer::new(settings);
        for e in &session.exchanges {
            analyzer.ingest(e);
        }
        Ok(OpenedSession {
            exchanges: session.exchanges.into_iter().map(Arc::new).collect(),
            analysis: Arc::new(analyzer.snapshot()),
            config: session.meta.config.into_iter().map(|c| c.path).collect(),
            path,
        })
    });
    work.await
        .map_err(|e| format!("the session reader stopped: {e}"))?
}

/// Reads and checks the whole traffic file, off the engine's task.
pub(super) async fn load_replay(
    runtime: &tokio::runtime::Handle,
    path: &Path,
    source: SourceOptions,
) -> Result<Traffic, String> {
    let path = path.to_owned();
    let work = runtime.spawn_blocking(move || load_traffic(&path, &source));
    match work.await {
        Ok(Ok(traffic)) => Ok(traffic),
        Ok(Err(e @ TrafficError::Parse { .. })) => Err(e.to_string()),
        Ok(Err(e)) => Err(format!("{e}; nothing was sent")),
        Err(e) => Err(format!("the traffic reader stopped: {e}")),
    }
}

/// What File → Save session… writes.
#[derive(Debug, Clone)]
pub struct SaveSession {
    /// The file.
    pub path: PathBuf,
    /// The exchanges, oldest first.
    pub exchanges: Vec<Arc<Exchange>>,
    /// The config the lab ran: its name and text.
    pub config: Vec<SessionConfig>,
}

/// Writes a session of `save.exchanges` with `analysis`'s settings, off the engine's task.
pub(super) async fn save_session(
    runtime: &tokio::runtime::Handle,
    save: SaveSession,
    analysis: Arc<AnalysisSnapshot>,
    listening: Option<std::net::SocketAddr>,
) -> Result<usize, String> {
    let work = runtime.spawn_blocking(move || {
        let started_at = save
            .exchanges
            .iter()
            .map(|e| e.started_at)
            .min()
            .unwrap_or_else(std::time::SystemTime::now);
        let run = RunInfo {
            config: save.config.iter().map(|c| PathBuf::from(&c.path)).collect(),
            listen: listening.map(|a| a.to_string()),
            started_at,
            ended_at: std::time::SystemTime::now(),
            seed: None,
        };
        let meta = SessionMeta::new(save.config, &run, &analysis.settings, false);
        write_session_file(&save.path, &meta, &save.exchanges, Some(&analysis))
            .map_err(|e| e.to_string())
    });
    work.await
        .map_err(|e| format!("the session writer stopped: {e}"))?
}

/// The reports of two sessions side by side (as `mirrorlab compare` prints them), off
/// the engine's task.
pub(super) async fn compare_sessions(
    runtime: &tokio::runtime::Handle,
    a: PathBuf,
    b: PathBuf,
) -> Result<Vec<CompareRow>, String> {
    let work = runtime.spawn_blocking(move || -> Result<Vec<CompareRow>, String> {
        let report = |path: &Path| -> Result<serde_json::Value, String> {
            let (_, run, snapshot) = analyze_session(path).map_err(|e| e.to_string())?;
            serde_json::to_value(Report::build(&snapshot, &run)).map_err(|e| e.to_string())
        };
        Ok(crate::replay::compare::compare(&report(&a)?, &report(&b)?))
    });
    work.await
        .map_err(|e| format!("the comparison stopped: {e}"))?
}

/// The requests of `traffic`, shared with the replay's tasks.
pub(super) fn requests(traffic: Traffic) -> Arc<[ReplayRequest]> {
    traffic.requests.into()
}
