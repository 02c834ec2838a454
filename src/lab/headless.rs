//! Headless `mirrorlab run`: serve a config, print a summary every few seconds, hot-reload
//! the file when it changes, and write the JSON report at exit.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::analysis::AnalysisSettings;
use crate::capture::Exchange;
use crate::export::har::{HarOptions, write_har_file};
use crate::export::report::{Report, RunInfo};
use crate::replay::session::{SessionConfig, SessionMeta, write_session_file};
use crate::routing::Workload;

use super::{CompiledConfig, Lab, LabError, LabSettings};

/// How often the one-line summary is logged.
const SUMMARY_EVERY: Duration = Duration::from_secs(5);
/// How often the config file is checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// What `mirrorlab run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The Istio YAML to serve (watched and hot-reloaded).
    pub config: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Allow a non-loopback listen address.
    pub allow_remote: bool,
    /// Host for requests addressed to the proxy itself.
    pub host: Option<String>,
    /// Stop after this long; `None`: run until SIGINT or SIGTERM.
    pub duration: Option<Duration>,
    /// Where to write the JSON report; `None`: print it on stdout.
    pub report: Option<PathBuf>,
    /// Where to write the captured exchanges as HAR 1.2 (credentials redacted), if at all.
    pub har: Option<PathBuf>,
    /// Seed for repeatable mirror draws.
    pub seed: Option<u64>,
    /// Append `-shadow` to mirrored requests' Host.
    pub shadow_host_suffix: bool,
    /// The proxy's worker threads; 0: one per two CPUs, up to 4.
    pub workers: usize,
    /// The client workload whose sidecar the lab plays (or the gateway it acts as).
    pub workload: Workload,
    /// Header edits for every mirrored copy, before each route's annotations.
    pub mirror_headers: crate::routing::MirrorHeaders,
    /// Where to save the session (captures, config, analysis settings), if at all.
    pub session: Option<PathBuf>,
    /// Keep credential values in the HAR and the session (default: redacted).
    pub keep_credentials: bool,
    /// Print `listening on ADDR` on stdout (scripts wait for it); off when stdout is the
    /// report's alone (`mirrorlab replay`), and the address is logged instead.
    pub announce_listen: bool,
    /// A `FileDescriptorSet` for the gRPC messages of every route whose VirtualService has
    /// no `mirrorlab.dev/grpc-descriptors` of its own (`--grpc-descriptors`).
    pub grpc_descriptors: Option<PathBuf>,
    /// Ask a gRPC call's primary for its descriptors by server reflection when no
    /// annotation or setting gives them (`--no-grpc-reflection` turns it off).
    pub grpc_reflection: bool,
}

/// A lab started for a headless command, and what its report and session need.
pub(super) struct Running {
    /// The lab.
    pub lab: Lab,
    /// Where its proxy listens.
    pub listen: SocketAddr,
    started_at: SystemTime,
    configs: Vec<SessionConfig>,
}

/// A file's identity for change detection: modification time and length.
fn fingerprint(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Runs the lab headless on the caller's runtime until the duration ends or a signal
/// arrives, then writes the report.
pub async fn run(handle: tokio::runtime::Handle, options: RunOptions) -> Result<(), LabError> {
    // The file's identity before it is read: an edit saved while the lab starts (before the
    // watch loop) is then seen as a change, not taken for the file that was loaded.
    let mut seen = fingerprint(&options.config);
    let running = start(&handle, &options)?;
    let stop = wait_for_stop(options.duration);
    tokio::pin!(stop);
    let mut summary = tokio::time::interval(SUMMARY_EVERY);
    summary.tick().await;
    let mut watch = tokio::time::interval(WATCH_EVERY);
    let reason = loop {
        tokio::select! {
            reason = &mut stop => break reason?,
            _ = summary.tick() => tracing::info!("{}", running.lab.counters()),
            _ = watch.tick() => {
                let now = fingerprint(&options.config);
                if now != seen {
                    seen = now;
                    reload(&running.lab, &options.config, &options.workload);
                }
            }
        }
    };
    tracing::info!("stopping ({reason}); waiting for requests and shadows in flight");
    finish(running, &options).await
}

/// Loads the config and starts the lab; prints `listening on ADDR` on stdout.
pub(super) fn start(
    handle: &tokio::runtime::Handle,
    options: &RunOptions,
) -> Result<Running, LabError> {
    let text = std::fs::read_to_string(&options.config).unwrap_or_default();
    let loaded = CompiledConfig::load_for(&options.config, &options.workload)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let mut analysis = loaded.analysis_settings(AnalysisSettings::default());
    analysis.grpc_descriptors = options
        .grpc_descriptors
        .as_deref()
        .and_then(grpc_descriptors_setting);
    let settings = LabSettings {
        listen: options.listen,
        allow_remote: options.allow_remote,
        default_host: options.host.clone(),
        seed: options.seed,
        shadow_host_suffix: options.shadow_host_suffix,
        mirror_headers: options.mirror_headers.clone(),
        workers: options.workers,
        analysis,
        grpc_reflection: options.grpc_reflection,
        ..LabSettings::default()
    };
    let hosts = loaded.table.hosts().join(", ");
    let default_host = options
        .host
        .clone()
        .or_else(|| loaded.table.default_host().map(str::to_owned));
    let started_at = SystemTime::now();
    let lab = Lab::start(handle, CancellationToken::new(), settings, loaded.table)?;
    let listen = lab.local_addr();
    if options.announce_listen {
        // Scripts wait for this line; it must reach them before any request does.
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on {listen}");
        let _ = stdout.flush();
    }
    tracing::info!(
        config = %options.config.display(),
        virtual_services = loaded.virtual_services,
        hosts = %hosts,
        default_host = default_host.as_deref().unwrap_or("(none: address a host)"),
        seed = lab.seed(),
        listen = %listen,
        "serving"
    );
    Ok(Running {
        lab,
        listen,
        started_at,
        configs: vec![SessionConfig {
            path: options.config.display().to_string(),
            text,
        }],
    })
}

/// The `--grpc-descriptors` file's descriptors; a file that does not load is logged (which
/// file, why) and the lab runs without it: it never stops the proxy.
pub(super) fn grpc_descriptors_setting(
    path: &Path,
) -> Option<crate::analysis::descriptors::GrpcDescriptors> {
    match crate::analysis::descriptors::GrpcDescriptors::setting(path) {
        Ok(loaded) => {
            tracing::info!(
                file = %path.display(),
                services = %loaded.services().join(", "),
                "gRPC descriptors for every route without a mirrorlab.dev/grpc-descriptors annotation"
            );
            Some(loaded)
        }
        Err(err) => {
            tracing::warn!(
                "--grpc-descriptors: {err}; gRPC messages without an annotation go by server reflection or by field number"
            );
            None
        }
    }
}

/// Waits for requests and shadows in flight (bounded), then writes the report, and the
/// HAR and the session if asked.
pub(super) async fn finish(running: Running, options: &RunOptions) -> Result<(), LabError> {
    let Running {
        lab,
        listen,
        started_at,
        configs,
    } = running;
    let counters = lab.counters();
    let captures = lab.captures_handle();
    let snapshot = lab.shutdown(settings_drain()).await;
    tracing::info!("{counters}");
    let run = RunInfo {
        config: vec![options.config.clone()],
        listen: Some(listen.to_string()),
        started_at,
        ended_at: SystemTime::now(),
        seed: options.seed,
    };
    let report = Report::build(&snapshot, &run);
    let har_options = HarOptions {
        redact: !options.keep_credentials,
        ..HarOptions::default()
    };
    // The ring buffer keeps the most recent exchanges; the HAR and the session hold what
    // it kept.
    let kept = || captures.store().recent(usize::MAX);
    if let Some(path) = &options.har {
        let exchanges: Vec<_> = kept().iter().map(|e| Exchange::clone(e)).collect();
        write_har_file(path, &exchanges, &har_options, Some(&snapshot))?;
        tracing::info!(path = %path.display(), exchanges = exchanges.len(), "HAR written");
    }
    if let Some(path) = &options.session {
        let meta = SessionMeta::new(configs, &run, &snapshot.settings, options.keep_credentials);
        let written = write_session_file(path, &meta, &kept(), Some(&snapshot))?;
        tracing::info!(path = %path.display(), exchanges = written, "session written");
    }
    write_report(&report, options.report.as_deref())
}

/// Writes the report to `path`, or prints it on stdout.
pub(super) fn write_report(report: &Report, path: Option<&Path>) -> Result<(), LabError> {
    match path {
        Some(path) => {
            report.write_to(path)?;
            tracing::info!(path = %path.display(), "report written");
        }
        None => {
            let json = report.to_json()?;
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{json}");
            let _ = stdout.flush();
        }
    }
    Ok(())
}

/// Time to wait at exit for shadows in flight: the default shadow timeout and a margin.
fn settings_drain() -> Duration {
    LabSettings::default().shadow_timeout + Duration::from_secs(2)
}

/// Applies a changed config, or logs why it was refused (the old routes keep serving).
fn reload(lab: &Lab, path: &Path, workload: &Workload) {
    match CompiledConfig::load_for(path, workload) {
        // An editor that truncates before writing, or a save caught midway, leaves a file
        // with no VirtualService for a moment: serving nothing is never what was meant.
        Ok(loaded) if loaded.virtual_services == 0 => tracing::warn!(
            config = %path.display(),
            "config change refused, still serving the previous routes: the file has no VirtualService (empty, or caught half-written?)"
        ),
        Ok(loaded) => {
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            let hosts = loaded.table.hosts().join(", ");
            let virtual_services = loaded.virtual_services;
            lab.apply_config(loaded);
            tracing::info!(
                config = %path.display(),
                virtual_services,
                hosts = %hosts,
                "config reloaded; new requests use the new routes"
            );
        }
        Err(err) => {
            tracing::warn!("config change refused, still serving the previous routes: {err}")
        }
    }
}

/// Resolves with why the run ends: the duration elapsed, SIGINT, or SIGTERM.
pub(super) async fn wait_for_stop(duration: Option<Duration>) -> Result<&'static str, LabError> {
    let elapsed = async {
        match duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => std::future::pending().await,
        }
    };
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| LabError::Signal {
        signal: "SIGTERM",
        source,
    })?;
    #[cfg(unix)]
    let terminated = terminate.recv();
    #[cfg(not(unix))]
    let terminated = std::future::pending::<Option<()>>();
    tokio::select! {
        () = elapsed => Ok("duration elapsed"),
        interrupted = tokio::signal::ctrl_c() => {
            interrupted.map_err(|source| LabError::Signal { signal: "SIGINT", source })?;
            Ok("SIGINT")
        }
        _ = terminated => Ok("SIGTERM"),
    }
}
