//! Headless `mirrorlab replay TRAFFIC CONFIG` (recorded traffic through a lab started for
//! it, then the usual report) and `mirrorlab report SESSION` (the report of a saved
//! session, with no proxy running).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::export::report::Report;
use crate::replay::sources::session::analyze_session_with;
use crate::replay::{
    HostMap, ReplayHandle, ReplayOptions, ReplayProgress, ReplayRequest, RequestFilter,
    SourceOptions, TrafficError, load_traffic,
};

use super::LabError;
use super::headless::{self, RunOptions};

/// What `mirrorlab replay` was asked to do.
#[derive(Debug, Clone)]
pub struct ReplayCommand {
    /// The HAR, `.gor` or session file.
    pub traffic: PathBuf,
    /// The lab to start (config, listen address, report, HAR, session).
    pub run: RunOptions,
    /// How to read the traffic.
    pub source: SourceOptions,
    /// Which requests.
    pub filter: RequestFilter,
    /// Where they are addressed.
    pub hosts: HostMap,
    /// How fast, how many at once, how many rounds.
    pub replay: ReplayOptions,
}

/// How often the progress bar is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Reads and checks the traffic (nothing is sent if it is bad), starts the lab, replays,
/// waits for shadows, and writes the report (and the HAR and session if asked).
pub async fn replay(
    handle: tokio::runtime::Handle,
    command: ReplayCommand,
) -> Result<ReplayProgress, LabError> {
    let traffic = load_traffic(&command.traffic, &command.source)?;
    let (format, recorded) = (traffic.format, traffic.requests.len());
    let traffic = traffic.select(&command.filter, &command.hosts);
    if traffic.requests.is_empty() {
        return Err(TrafficError::Empty {
            path: command.traffic.clone(),
            what: format!("none of its {recorded} request(s) passes the filter"),
        }
        .into());
    }
    tracing::info!(
        traffic = %command.traffic.display(),
        format = format.as_str(),
        requests = traffic.requests.len(),
        filtered_out = recorded - traffic.requests.len(),
        credentials_stripped = traffic.credentials_stripped,
        not_requests = traffic.not_requests,
        span_seconds = traffic.span().as_secs_f64(),
        pace = %command.replay.pace,
        "replaying"
    );
    let running = headless::start(&handle, &command.run)?;
    let requests: Arc<[ReplayRequest]> = traffic.requests.into();
    let mut replay = ReplayHandle::start(&handle, running.listen, requests, command.replay);
    let bar = progress_bar(replay.progress().total);
    let stop = headless::wait_for_stop(None);
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let p = replay.progress();
                draw(&bar, &p);
                if p.finished {
                    break;
                }
            }
            reason = &mut stop => {
                tracing::info!("stopping the replay ({}); requests in flight finish", reason?);
                replay.stop();
                break;
            }
        }
    }
    let progress = replay.wait().await;
    draw(&bar, &progress);
    bar.finish();
    tracing::info!(
        sent = progress.sent,
        answered = progress.answered,
        failed = progress.failed,
        first_failure = progress.first_failure.as_deref().unwrap_or("-"),
        "replay done; waiting for shadows in flight"
    );
    headless::finish(running, &command.run).await?;
    Ok(progress)
}

fn progress_bar(total: Option<u64>) -> indicatif::ProgressBar {
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let template = if total.is_some() {
        "{bar:40} {pos}/{len} sent, {msg} [{elapsed_precise}, {per_sec}]"
    } else {
        "{spinner} {pos} sent, {msg} [{elapsed_precise}, {per_sec}]"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

fn draw(bar: &indicatif::ProgressBar, p: &ReplayProgress) {
    bar.set_position(p.sent);
    bar.set_message(format!(
        "{} answered, {} failed{}",
        p.answered,
        p.failed,
        if p.paused { " (paused)" } else { "" }
    ));
}

/// `mirrorlab report SESSION`: the session's report, rebuilt from its exchanges with the
/// analysis settings it was saved with, and `grpc_descriptors` (`--grpc-descriptors`: a
/// session does not keep descriptors) for routes without an annotation's.
pub fn report_session(
    session: &Path,
    out: Option<&Path>,
    grpc_descriptors: Option<&Path>,
) -> Result<(), LabError> {
    let descriptors = grpc_descriptors.and_then(headless::grpc_descriptors_setting);
    let (_, run, snapshot) = analyze_session_with(session, descriptors)?;
    headless::write_report(&Report::build(&snapshot, &run), out)
}
