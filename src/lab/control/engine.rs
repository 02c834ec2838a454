//! The engine's command task: owns the running lab, the demo services and their traffic,
//! runs the app's commands one after another, and publishes the view the app reads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::feed::Feed;
use super::meter::{Demand, RateMeter};
use super::{
    LabCommand, LabEvent, LabView, RunRequest, StartFailure, Wake, compare, oneoff, recorded,
};
use crate::analysis::descriptors::GrpcDescriptors;
use crate::analysis::{AnalysisSettings, AnalysisSnapshot, IgnoreRules};
use crate::demo::{DemoServices, TrafficGenerator, TrafficSettings};
use crate::lab::{CompiledConfig, Lab, LabError, LabSettings};
use crate::proxy::ProxyError;
use crate::replay::ReplayHandle;

/// How long Stop lets requests in flight finish.
const STOP_DRAIN: Duration = Duration::from_millis(500);
/// How often the view is refreshed while the proxy runs (the app repaints at most this
/// often for it): 20 Hz.
const VIEW_EVERY: Duration = Duration::from_millis(50);
/// Capacity of the capture subscription the feed's forwarding task empties.
const SUBSCRIPTION: usize = 16_384;

/// What the engine task is built from.
pub(super) struct EngineParts {
    pub runtime: tokio::runtime::Handle,
    pub events: mpsc::UnboundedSender<LabEvent>,
    pub view: Arc<ArcSwap<LabView>>,
    pub feed: Arc<Feed>,
    pub done: Arc<AtomicU64>,
    pub looked: Arc<Demand>,
    pub wake: Wake,
    pub cancel: CancellationToken,
}

/// The running parts, owned by the command task.
pub(super) struct Engine {
    parts: EngineParts,
    lab: Option<Running>,
    demo: Option<DemoServices>,
    traffic: Option<TrafficGenerator>,
    rate: RateMeter,
    replay: Option<ReplayHandle>,
    /// The session shown while no proxy runs, and its analysis.
    session: Option<(PathBuf, Arc<AnalysisSnapshot>)>,
}

/// A running lab and the settings it was started with.
struct Running {
    lab: Lab,
    /// What a later Apply may hot-swap into without a restart.
    started_with: StartKey,
    forwarder: tokio::task::JoinHandle<()>,
}

/// The settings a running proxy cannot change without a restart.
#[derive(Debug, Clone, PartialEq)]
struct StartKey {
    listen: String,
    allow_remote: bool,
    default_host: Option<String>,
    shadow_host_suffix: bool,
    mirror_headers: crate::routing::MirrorHeaders,
}

impl StartKey {
    fn of(run: &RunRequest) -> Self {
        Self {
            listen: run.listen.trim().to_owned(),
            allow_remote: run.allow_remote,
            default_host: run.default_host.clone(),
            shadow_host_suffix: run.shadow_host_suffix,
            mirror_headers: run.mirror_headers.clone(),
        }
    }
}

impl Engine {
    pub(super) fn new(parts: EngineParts) -> Self {
        Self {
            parts,
            lab: None,
            demo: None,
            traffic: None,
            rate: RateMeter::default(),
            replay: None,
            session: None,
        }
    }

    /// Runs commands until the app's handle is dropped.
    pub(super) async fn serve(mut self, mut commands: mpsc::UnboundedReceiver<LabCommand>) {
        let mut tick = tokio::time::interval(VIEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let cancel = self.parts.cancel.clone();
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                command = commands.recv() => {
                    let Some(command) = command else { break };
                    self.handle(command).await;
                    self.publish(true);
                    self.parts.done.fetch_add(1, Ordering::Release);
                    (self.parts.wake)();
                }
                _ = tick.tick() => {
                    if self.lab.is_some() && self.publish(false) {
                        (self.parts.wake)();
                    }
                }
            }
        }
        self.traffic = None;
        self.demo = None;
        if let Some(running) = self.lab.take() {
            running.forwarder.abort();
            let _ = running.lab.shutdown(Duration::ZERO).await;
        }
    }

    fn emit(&self, event: LabEvent) {
        let _ = self.parts.events.send(event);
    }

    async fn handle(&mut self, command: LabCommand) {
        match command {
            LabCommand::Start(run) => self.start(&run).await,
            LabCommand::Apply(run) => self.apply(&run).await,
            LabCommand::Stop => {
                self.stop().await;
                self.emit(LabEvent::Stopped);
            }
            LabCommand::StartDemo {
                config,
                run,
                host,
                rps,
            } => self.start_demo(&config, &run, host, rps).await,
            LabCommand::StopDemo => {
                self.traffic = None;
                self.demo = None;
                self.emit(LabEvent::DemoStopped);
            }
            LabCommand::Clear => {
                if let Some(running) = &self.lab {
                    running.lab.with_analyzer(|a| a.clear());
                }
                self.emit(LabEvent::Cleared);
            }
            LabCommand::SetIgnoreRules(rules) => {
                if let Some(running) = &self.lab {
                    running.lab.with_analyzer(|a| a.set_ignore_rules(rules));
                }
                self.emit(LabEvent::IgnoreRulesApplied);
            }
            LabCommand::SetVirtualServiceRules(rules) => {
                if let Some(running) = &self.lab {
                    let rules = rules.into_iter().collect();
                    running
                        .lab
                        .with_analyzer(|a| a.replace_virtual_service_rules(rules));
                }
                self.emit(LabEvent::IgnoreRulesApplied);
            }
            LabCommand::Send {
                request,
                request_id,
                run,
            } => self.send(request, request_id, &run).await,
            LabCommand::Compare {
                exchange,
                shadow_index,
            } => self.compare(exchange, shadow_index),
            LabCommand::ExportHar { path, exchanges } => self.export(path, exchanges).await,
            LabCommand::OpenSession(path) => self.open_session(&path).await,
            LabCommand::CompareSessions { a, b } => {
                let rows = recorded::compare_sessions(&self.parts.runtime, a, b).await;
                self.emit(LabEvent::SessionsCompared(rows));
            }
            LabCommand::SaveSession(save) => {
                let view = self.parts.view.load_full();
                let path = save.path.clone();
                let result = recorded::save_session(
                    &self.parts.runtime,
                    *save,
                    Arc::clone(&view.analysis),
                    view.listening,
                )
                .await;
                self.emit(LabEvent::SessionSaved { path, result });
            }
            LabCommand::StartReplay(start) => self.start_replay(*start).await,
            LabCommand::PauseReplay => self.replay.iter().for_each(ReplayHandle::pause),
            LabCommand::ResumeReplay => self.replay.iter().for_each(ReplayHandle::resume),
            LabCommand::StopReplay => self.replay.iter().for_each(ReplayHandle::stop),
        }
    }

    /// Stores a fresh view; with `always` false only when something the app shows changed.
    /// True when it stored one.
    fn publish(&mut self, always: bool) -> bool {
        let old = self.parts.view.load_full();
        let (listening, counters, analysis) = match &self.lab {
            Some(running) => {
                let analysis = if self.parts.looked.recent() {
                    running.lab.analysis()
                } else {
                    Arc::clone(&old.analysis)
                };
                (
                    Some(running.lab.local_addr()),
                    Some(running.lab.counters()),
                    analysis,
                )
            }
            None => match &self.session {
                Some((_, analysis)) => (None, None, Arc::clone(analysis)),
                None => (None, None, LabView::idle().analysis),
            },
        };
        let requests_per_second = match &counters {
            Some(c) => self.rate.update(c.requests),
            None => 0.0,
        };
        let view = LabView {
            listening,
            demo: self.demo.is_some(),
            traffic: self.traffic.is_some(),
            counters,
            requests_per_second,
            analysis,
            feed_dropped: self.parts.feed.dropped(),
            replay: self.replay.as_ref().map(ReplayHandle::progress),
            session: self.session.as_ref().map(|(p, _)| p.clone()),
        };
        let changed = always
            || view.replay != old.replay
            || view.listening != old.listening
            || view.counters != old.counters
            || !Arc::ptr_eq(&view.analysis, &old.analysis)
            || view.requests_per_second != old.requests_per_second;
        if changed {
            self.parts.view.store(Arc::new(view));
        }
        changed
    }

    async fn start(&mut self, run: &RunRequest) {
        let compiled = match compile(run) {
            Ok(compiled) => compiled,
            Err(failure) => {
                self.emit(LabEvent::Refused {
                    failure,
                    running: self.lab.is_some(),
                    tag: run.tag,
                });
                return;
            }
        };
        self.stop().await;
        let warnings = compiled.warnings.clone();
        let mut ignore_errors = compiled.ignore_errors.clone();
        let (descriptors, problem) = descriptors_setting(run);
        ignore_errors.extend(problem);
        match self.launch(run, compiled, descriptors) {
            Ok(addr) => self.emit(LabEvent::Running {
                addr,
                started: true,
                tag: run.tag,
                warnings,
                ignore_errors,
            }),
            Err(failure) => self.emit(LabEvent::Refused {
                failure,
                running: false,
                tag: run.tag,
            }),
        }
    }

    async fn apply(&mut self, run: &RunRequest) {
        let same = self
            .lab
            .as_ref()
            .is_some_and(|r| r.started_with == StartKey::of(run));
        if !same {
            return self.start(run).await;
        }
        let compiled = match compile(run) {
            Ok(compiled) => compiled,
            Err(failure) => {
                return self.emit(LabEvent::Refused {
                    failure,
                    running: true,
                    tag: run.tag,
                });
            }
        };
        let Some(running) = &self.lab else { return };
        let warnings = compiled.warnings.clone();
        let mut ignore_errors = compiled.ignore_errors.clone();
        let (descriptors, problem) = descriptors_setting(run);
        ignore_errors.extend(problem);
        let global = global_rules(&run.ignore);
        running.lab.with_analyzer(|a| {
            a.set_ignore_rules(global);
            a.set_grpc_descriptors(descriptors);
        });
        running.lab.apply_config(compiled);
        self.emit(LabEvent::Running {
            addr: running.lab.local_addr(),
            started: false,
            tag: run.tag,
            warnings,
            ignore_errors,
        });
    }

    /// Binds the proxy and starts feeding its exchanges to the app.
    fn launch(
        &mut self,
        run: &RunRequest,
        compiled: CompiledConfig,
        grpc_descriptors: Option<GrpcDescriptors>,
    ) -> Result<SocketAddr, StartFailure> {
        let listen: SocketAddr = run
            .listen
            .trim()
            .parse()
            .map_err(|_| StartFailure::ListenAddress(run.listen.clone()))?;
        let mut analysis = AnalysisSettings {
            ignore: global_rules(&run.ignore),
            grpc_descriptors,
            ..AnalysisSettings::default()
        };
        analysis = compiled.analysis_settings(analysis);
        let settings = LabSettings {
            listen,
            allow_remote: run.allow_remote,
            default_host: run.default_host.clone(),
            shadow_host_suffix: run.shadow_host_suffix,
            mirror_headers: run.mirror_headers.clone(),
            analysis,
            ..LabSettings::default()
        };
        let lab = Lab::start(
            &self.parts.runtime,
            self.parts.cancel.child_token(),
            settings,
            compiled.table,
        )
        .map_err(|e| start_failure(&e, listen))?;
        self.parts.feed.clear();
        self.session = None;
        let forwarder = self.parts.runtime.spawn(forward(
            lab.subscribe(SUBSCRIPTION),
            Arc::clone(&self.parts.feed),
            Arc::clone(&self.parts.wake),
        ));
        let addr = lab.local_addr();
        self.rate = RateMeter::default();
        self.lab = Some(Running {
            lab,
            started_with: StartKey::of(run),
            forwarder,
        });
        Ok(addr)
    }

    async fn stop(&mut self) {
        self.traffic = None;
        if let Some(replay) = &self.replay {
            replay.stop();
        }
        if let Some(running) = self.lab.take() {
            let _ = running.lab.shutdown(STOP_DRAIN).await;
            // The forwarder ends when the proxy's hub drops its sender; what it still
            // holds is of the run that just ended.
            running.forwarder.abort();
        }
    }

    async fn start_demo(
        &mut self,
        config: &crate::config::ConfigSet,
        run: &RunRequest,
        host: Option<String>,
        rps: f64,
    ) {
        self.traffic = None;
        self.demo = None;
        let demo = match DemoServices::start(&self.parts.runtime, config) {
            Ok(demo) => demo,
            Err(e) => {
                return self.emit(LabEvent::DemoFailed(format!("Cannot start the demo: {e}")));
            }
        };
        let endpoints = demo.endpoints().len();
        self.demo = Some(demo);
        if self.lab.is_none() {
            self.start(run).await;
            if self.lab.is_none() {
                self.demo = None;
                return;
            }
        }
        let Some(addr) = self.lab.as_ref().map(|r| r.lab.local_addr()) else {
            return;
        };
        let grpc = crate::demo::speaks_grpc(config, host.as_deref());
        match TrafficGenerator::start(
            &self.parts.runtime,
            self.parts.cancel.child_token(),
            TrafficSettings::new(addr, host, rps).with_grpc(grpc),
        ) {
            Ok(generator) => {
                self.traffic = Some(generator);
                self.emit(LabEvent::DemoStarted { endpoints });
            }
            Err(e) => self.emit(LabEvent::DemoFailed(format!(
                "Cannot start the demo traffic: {e}"
            ))),
        }
    }

    async fn send(&mut self, request: oneoff::OneRequest, request_id: String, run: &RunRequest) {
        if self.lab.is_none() {
            self.start(run).await;
        }
        let Some(addr) = self.lab.as_ref().map(|r| r.lab.local_addr()) else {
            return self.emit(LabEvent::Sent(oneoff::SendOutcome::Failed(
                "the proxy is not running, so the request was not sent".to_owned(),
            )));
        };
        let events = self.parts.events.clone();
        let wake = Arc::clone(&self.parts.wake);
        self.parts.runtime.spawn(async move {
            let outcome = oneoff::send_one(addr, &request, &request_id).await;
            let _ = events.send(LabEvent::Sent(outcome));
            wake();
        });
    }

    fn compare(&self, exchange: Arc<crate::capture::Exchange>, shadow_index: usize) {
        let snapshot = self.parts.view.load().analysis.clone();
        let events = self.parts.events.clone();
        let wake = Arc::clone(&self.parts.wake);
        self.parts.runtime.spawn_blocking(move || {
            let comparison = compare::compare(&exchange, shadow_index, &snapshot);
            let _ = events.send(LabEvent::Compared(Box::new(comparison)));
            wake();
        });
    }

    /// Writes the HAR on a blocking thread; the command is done when the file is.
    async fn export(
        &self,
        path: std::path::PathBuf,
        exchanges: Vec<Arc<crate::capture::Exchange>>,
    ) {
        let snapshot = self.parts.view.load().analysis.clone();
        let written = path.clone();
        let work = self.parts.runtime.spawn_blocking(move || {
            let options = crate::export::har::HarOptions::default();
            crate::export::har::write_har_file(&written, &exchanges, &options, Some(&snapshot))
                .map(|()| exchanges.len())
                .map_err(|e| e.to_string())
        });
        let result = match work.await {
            Ok(result) => result,
            Err(e) => Err(format!("the HAR writer stopped: {e}")),
        };
        self.emit(LabEvent::Exported { path, result });
    }
}

impl Engine {
    /// Stops the proxy and shows the session instead (its exchanges go with the event, so
    /// the app's table starts afresh with exactly them).
    async fn open_session(&mut self, path: &std::path::Path) {
        match recorded::open_session(&self.parts.runtime, path).await {
            Ok(opened) => {
                self.stop().await;
                self.replay = None;
                self.parts.feed.clear();
                self.session = Some((opened.path.clone(), Arc::clone(&opened.analysis)));
                self.emit(LabEvent::SessionOpened(Ok(Box::new(opened))));
            }
            Err(e) => self.emit(LabEvent::SessionOpened(Err(e))),
        }
    }

    /// Reads the whole file first (a bad one is refused with nothing sent), starts the
    /// proxy if it is not running, then replays through it.
    async fn start_replay(&mut self, start: recorded::ReplayStart) {
        if self.replay.as_ref().is_some_and(|r| !r.progress().finished) {
            return self.emit(LabEvent::ReplayFailed(
                "A replay is under way; stop it first.".to_owned(),
            ));
        }
        let traffic =
            match recorded::load_replay(&self.parts.runtime, &start.path, start.source).await {
                Ok(traffic) => traffic,
                Err(e) => return self.emit(LabEvent::ReplayFailed(e)),
            };
        if self.lab.is_none() {
            self.start(&start.run).await;
        }
        let Some(addr) = self.lab.as_ref().map(|r| r.lab.local_addr()) else {
            return self.emit(LabEvent::ReplayFailed(
                "The proxy is not running, so nothing was replayed.".to_owned(),
            ));
        };
        let (requests, credentials_stripped) =
            (traffic.requests.len(), traffic.credentials_stripped);
        let handle = ReplayHandle::start(
            &self.parts.runtime,
            addr,
            recorded::requests(traffic),
            start.options,
        );
        self.replay = Some(handle);
        self.emit(LabEvent::ReplayStarted {
            path: start.path,
            requests,
            credentials_stripped,
        });
    }
}

/// The app's rules for every route, on top of the headers every diff leaves out.
fn global_rules(own: &IgnoreRules) -> IgnoreRules {
    let mut all = IgnoreRules::with_default_headers();
    all.extend(own);
    all
}

/// The setting's descriptors, or why its file does not load (the lab runs without them).
fn descriptors_setting(run: &RunRequest) -> (Option<GrpcDescriptors>, Option<String>) {
    match run
        .grpc_descriptors
        .as_deref()
        .map(GrpcDescriptors::setting)
    {
        None => (None, None),
        Some(Ok(loaded)) => (Some(loaded), None),
        Some(Err(problem)) => (None, Some(problem)),
    }
}

fn compile(run: &RunRequest) -> Result<CompiledConfig, StartFailure> {
    CompiledConfig::from_set_for(&run.config, &run.file, &run.workload).map_err(|e| match e {
        LabError::Config { diagnostics, .. } => StartFailure::Config(diagnostics),
        other => StartFailure::Other(other.to_string()),
    })
}

/// Says in the app's terms why the lab did not start on `addr`.
fn start_failure(e: &LabError, addr: SocketAddr) -> StartFailure {
    use std::io::ErrorKind;
    match e {
        LabError::RemoteListen { addr } => StartFailure::RemoteListen { addr: *addr },
        LabError::Proxy(ProxyError::Bind { addr, source }) => match source.kind() {
            ErrorKind::AddrInUse => StartFailure::AddressInUse {
                addr: *addr,
                free: free_port_near(*addr),
            },
            ErrorKind::PermissionDenied => StartFailure::PermissionDenied { addr: *addr },
            ErrorKind::AddrNotAvailable => StartFailure::AddressNotAvailable { addr: *addr },
            _ => StartFailure::Other(format!("cannot listen on {addr}: {source}")),
        },
        other => StartFailure::Other(format!("cannot start on {addr}: {other}")),
    }
}

/// The first port after `addr`'s (up to 20 further) that can be bound on the same IP now.
fn free_port_near(addr: SocketAddr) -> Option<SocketAddr> {
    (1..=20u16)
        .filter_map(|d| addr.port().checked_add(d))
        .map(|port| SocketAddr::new(addr.ip(), port))
        // Binding and dropping at once leaves a small race with other programs; Start
        // says so again if it loses it.
        .find(|a| std::net::TcpListener::bind(a).is_ok())
}

/// Takes the lab's finished exchanges as they come and hands them to the app's feed.
async fn forward(
    mut exchanges: mpsc::Receiver<Arc<crate::capture::Exchange>>,
    feed: Arc<Feed>,
    wake: Wake,
) {
    let mut batch = Vec::with_capacity(1024);
    while exchanges.recv_many(&mut batch, 1024).await > 0 {
        feed.push(batch.drain(..));
        wake();
    }
}
