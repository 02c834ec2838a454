//! The running lab: wires proxy, capture and analysis together. Both the desktop app and the
//! headless `mirrorlab run` drive it: commands in, snapshots out.
//!
//! [`Lab::start`] binds the proxy and starts the analysis task on the caller's runtime;
//! the lab never creates a runtime of its own.

mod annotations;
pub mod control;
pub mod headless;
mod reflection;
pub mod replay;

pub use reflection::{MAX_FILE_REQUESTS, REFLECTION_RETRY, REFLECTION_TIMEOUT};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::analysis::descriptors::ReflectionTable;
use crate::analysis::{AnalysisSettings, AnalysisSnapshot, Analyzer, IgnoreRules};
use crate::capture::{CaptureHub, CaptureStore, Exchange, StoreBounds};
use crate::config::{ConfigSet, Severity};
use crate::proxy::{CounterSnapshot, Proxy, ProxyError, ProxySettings, Routes};
use crate::routing::{NoRoute, RequestHead, Resolution, RouteTable};

/// The client workload and the lab-wide mirror header edits, as the app and `run` name them.
pub use crate::routing::{MirrorHeaders, Workload};

impl Routes for RouteTable {
    fn resolve(&self, head: &RequestHead<'_>) -> Result<Resolution, NoRoute> {
        RouteTable::resolve(self, head)
    }

    fn default_host(&self) -> Option<&str> {
        RouteTable::default_host(self)
    }

    fn hosts(&self) -> Vec<String> {
        RouteTable::hosts(self).to_vec()
    }

    fn resolve_at(
        &self,
        head: RequestHead<'_>,
        port: Option<u16>,
    ) -> Result<(Resolution, u16), NoRoute> {
        RouteTable::resolve_at(self, head, port)
    }

    fn upstreams(&self) -> Vec<Arc<crate::routing::Upstream>> {
        RouteTable::upstreams(self)
    }
}

/// A config that was checked and compiled: what [`Lab::apply_config`] swaps in.
#[derive(Debug)]
pub struct CompiledConfig {
    /// The route table.
    pub table: RouteTable,
    /// Diff ignore rules per VirtualService (`namespace/name`), from its
    /// `mirrorlab.dev/diff-ignore` annotation.
    pub ignore: Vec<(String, IgnoreRules)>,
    /// How many VirtualServices, HTTPRoutes and GRPCRoutes the config has.
    pub virtual_services: usize,
    /// Warnings, each as the checker prints it.
    pub warnings: Vec<String>,
    /// `mirrorlab.dev/diff-ignore` annotations that do not parse and
    /// `mirrorlab.dev/grpc-descriptors` files that do not load (also among the warnings):
    /// they are not in force, and the app says so.
    pub ignore_errors: Vec<String>,
}

impl CompiledConfig {
    /// Checks and compiles a loaded set for the default client workload; errors refuse it.
    /// `file` names it in the error.
    pub fn from_set(set: &ConfigSet, file: &str) -> Result<CompiledConfig, LabError> {
        Self::from_set_for(set, file, &Workload::default())
    }

    /// Checks and compiles a loaded set for the routes `workload`'s sidecar gets.
    pub fn from_set_for(
        set: &ConfigSet,
        file: &str,
        workload: &Workload,
    ) -> Result<CompiledConfig, LabError> {
        let refused = |diagnostics: Vec<String>| LabError::Config {
            file: file.to_owned(),
            diagnostics,
        };
        if set.has_errors() {
            return Err(refused(
                set.diagnostics()
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .map(ToString::to_string)
                    .collect(),
            ));
        }
        let table = RouteTable::compile_for(set, workload)
            .map_err(|errors| refused(errors.iter().map(ToString::to_string).collect()))?;
        let mut warnings: Vec<String> = set.diagnostics().iter().map(ToString::to_string).collect();
        warnings.extend(table.notes().into_iter().map(|n| format!("{file}: {n}")));
        let annotated = annotations::read(set, file);
        warnings.extend(annotated.problems.iter().cloned());
        let (ignore, ignore_errors, virtual_services) =
            (annotated.rules, annotated.problems, annotated.route_objects);
        Ok(CompiledConfig {
            table,
            ignore,
            virtual_services,
            warnings,
            ignore_errors,
        })
    }

    /// Loads, checks and compiles one file.
    pub fn load(path: &std::path::Path) -> Result<CompiledConfig, LabError> {
        Self::load_for(path, &Workload::default())
    }

    /// Loads, checks and compiles one file for `workload`.
    pub fn load_for(
        path: &std::path::Path,
        workload: &Workload,
    ) -> Result<CompiledConfig, LabError> {
        let set = ConfigSet::load_files(&[path.to_path_buf()]);
        Self::from_set_for(&set, &path.display().to_string(), workload)
    }

    /// Checks and compiles YAML text (the app's editor); `file` names it in messages.
    pub fn from_text(file: &str, text: &str) -> Result<CompiledConfig, LabError> {
        Self::from_set(&ConfigSet::load_str(file, text), file)
    }

    /// Analysis settings with this config's ignore rules added to `base`.
    pub fn analysis_settings(&self, mut base: AnalysisSettings) -> AnalysisSettings {
        for (virtual_service, rules) in &self.ignore {
            base.virtual_service_rules
                .entry(virtual_service.clone())
                .or_default()
                .extend(rules);
        }
        base
    }
}

/// Everything the lab is started with. The defaults are Istio's and Envoy's.
#[derive(Debug, Clone)]
pub struct LabSettings {
    /// Where the proxy listens (127.0.0.1:15001 by default).
    pub listen: SocketAddr,
    /// Allow a listen address other than loopback.
    pub allow_remote: bool,
    /// Host for requests addressed to the proxy itself (`--host`); `None`: the only
    /// VirtualService's first host.
    pub default_host: Option<String>,
    /// Seed for mirror and weight draws (`--seed`); `None`: random.
    pub seed: Option<u64>,
    /// Append `-shadow` to the Host of mirrored requests (Envoy, Istio before 1.28).
    pub shadow_host_suffix: bool,
    /// The proxy's worker threads (`--workers`); 0: one per two CPUs, up to 4.
    pub workers: usize,
    /// Request bodies above this are not mirrored (1 MiB).
    pub mirror_body_limit: usize,
    /// Bodies are captured up to this many bytes (64 KiB).
    pub capture_body_cap: usize,
    /// Most shadow requests in flight (1024).
    pub max_shadows_in_flight: usize,
    /// Each shadow's own timeout (10 s).
    pub shadow_timeout: Duration,
    /// Header edits for every mirrored copy (e.g. remove `authorization`), before each
    /// route's own `mirrorlab.dev/mirror-*-headers` annotations.
    pub mirror_headers: MirrorHeaders,
    /// Bounds of the capture ring buffer.
    pub store: StoreBounds,
    /// Capacity of the channel from the proxy to the analysis task.
    pub analysis_queue: usize,
    /// What the analysis starts with (ignore rules, noise thresholds, the gRPC
    /// descriptors setting).
    pub analysis: AnalysisSettings,
    /// Ask a gRPC call's primary endpoint for its descriptors by server reflection when
    /// neither an annotation nor the setting gives them (on by default).
    pub grpc_reflection: bool,
}

impl Default for LabSettings {
    fn default() -> Self {
        let proxy = ProxySettings::default();
        Self {
            listen: proxy.listen,
            allow_remote: false,
            default_host: None,
            seed: None,
            shadow_host_suffix: proxy.shadow_host_suffix,
            workers: proxy.workers,
            mirror_body_limit: proxy.mirror_body_limit,
            capture_body_cap: proxy.capture_body_cap,
            max_shadows_in_flight: proxy.max_shadows_in_flight,
            shadow_timeout: proxy.shadow_timeout,
            mirror_headers: proxy.mirror_headers,
            store: StoreBounds::default(),
            analysis_queue: 16_384,
            analysis: AnalysisSettings::default(),
            grpc_reflection: true,
        }
    }
}

impl LabSettings {
    fn proxy_settings(&self) -> ProxySettings {
        ProxySettings {
            listen: self.listen,
            default_host: self.default_host.clone(),
            seed: self.seed,
            shadow_host_suffix: self.shadow_host_suffix,
            workers: self.workers,
            mirror_body_limit: self.mirror_body_limit,
            capture_body_cap: self.capture_body_cap,
            max_shadows_in_flight: self.max_shadows_in_flight,
            shadow_timeout: self.shadow_timeout,
            mirror_headers: self.mirror_headers.clone(),
            ..ProxySettings::default()
        }
    }
}

/// What can go wrong running the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A listen address other than loopback without the explicit flag.
    #[error(
        "refusing to listen on {addr}: other machines could send traffic through the lab. Pass --allow-remote if that is what you want, or listen on 127.0.0.1"
    )]
    RemoteListen {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The proxy could not start.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// The config has errors; the lab keeps (or never had) its previous routes.
    #[error("{file}: the config has {} error(s):\n{}", diagnostics.len(), diagnostics.join("\n"))]
    Config {
        /// The config file(s).
        file: String,
        /// Each error as the checker prints it.
        diagnostics: Vec<String>,
    },
    /// The report could not be written.
    #[error(transparent)]
    Report(#[from] crate::export::report::ReportError),
    /// The HAR file could not be written.
    #[error(transparent)]
    Har(#[from] crate::export::har::HarError),
    /// The session file could not be written.
    #[error(transparent)]
    Session(#[from] crate::replay::session::SessionError),
    /// A traffic or session file cannot be used.
    #[error(transparent)]
    Traffic(#[from] crate::replay::TrafficError),
    /// A signal handler could not be installed.
    #[error("cannot listen for {signal}: {source}")]
    Signal {
        /// Which signal.
        signal: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// How often the analysis task refreshes the snapshot the UI reads, while someone reads it:
/// 20 Hz, so the dashboard updates at least 10 times a second even when a tick is late.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(50);
/// How often the snapshot is refreshed without new traffic (while someone reads it), so
/// "seconds ago" keeps moving on the dashboard's time axis after traffic stops.
const IDLE_SNAPSHOT_EVERY: Duration = Duration::from_secs(1);
/// After ingesting, the analysis task lets exchanges gather this long before it takes the
/// next batch. Woken for every exchange, it cost a task wake-up per request, often on the
/// other worker thread (a futex and an inter-processor interrupt each); in batches that
/// happens at most 100 times a second. The queue (16,384 by default) holds far more than
/// arrives in 10 ms at any rate the proxy reaches.
const INGEST_PAUSE: Duration = Duration::from_millis(10);
/// Most exchanges ingested under one lock of the analyzer.
const INGEST_BATCH: usize = 1024;

/// A running lab: the proxy, its capture store, and the analysis task.
pub struct Lab {
    proxy: Proxy,
    cancel: CancellationToken,
    analyzer: Arc<Mutex<Analyzer>>,
    snapshot: Arc<ArcSwap<AnalysisSnapshot>>,
    /// When the snapshot was last read. A snapshot walks every histogram, so the task only
    /// refreshes it while someone reads it (the UI); headless runs build one for the report.
    snapshot_demand: Arc<SnapshotDemand>,
    analysis_stop: CancellationToken,
    analysis_task: Option<JoinHandle<()>>,
    /// The TLS of the routes' endpoints, for the reflection task's own connections.
    endpoint_tls: Arc<ArcSwap<reflection::EndpointTls>>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl Lab {
    /// Binds the proxy and starts serving `routes` on `handle` until `cancel` fires or
    /// [`Lab::shutdown`] is called.
    pub fn start(
        handle: &tokio::runtime::Handle,
        cancel: CancellationToken,
        settings: LabSettings,
        routes: impl Routes,
    ) -> Result<Lab, LabError> {
        if !settings.listen.ip().is_loopback() && !settings.allow_remote {
            return Err(LabError::RemoteListen {
                addr: settings.listen,
            });
        }
        if !settings.listen.ip().is_loopback() {
            tracing::warn!(
                listen = %settings.listen,
                "listening on a non-loopback address: other machines can send traffic through the lab"
            );
        }
        let hub = Arc::new(CaptureHub::new(settings.store));
        let exchanges = hub.subscribe(settings.analysis_queue);
        let cancel = cancel.child_token();
        let endpoint_tls = Arc::new(ArcSwap::from_pointee(reflection::EndpointTls::of(
            &routes.upstreams(),
        )));
        let analysis_stop = CancellationToken::new();
        let mut analysis = settings.analysis.clone();
        if settings.grpc_reflection && analysis.reflection.is_none() {
            let (table, queue) = ReflectionTable::new(REFLECTION_RETRY);
            analysis.reflection = Some(Arc::clone(&table));
            handle.spawn(reflection::serve(
                queue,
                table,
                Arc::clone(&endpoint_tls),
                analysis_stop.clone(),
            ));
        }
        let proxy = Proxy::start(
            handle,
            cancel.clone(),
            settings.proxy_settings(),
            Box::new(routes),
            hub,
        )
        .inspect_err(|_| {
            // A proxy that did not start (the port is taken): the reflection task ends too.
            analysis_stop.cancel();
        })?;
        let analyzer = Analyzer::new(analysis);
        let snapshot = Arc::new(ArcSwap::from_pointee(analyzer.snapshot()));
        let analyzer = Arc::new(Mutex::new(analyzer));
        let snapshot_demand = Arc::new(SnapshotDemand::new());
        let analysis_task = handle.spawn(analyze(
            exchanges,
            Arc::clone(&analyzer),
            Arc::clone(&snapshot),
            Arc::clone(&snapshot_demand),
            analysis_stop.clone(),
        ));
        Ok(Lab {
            proxy,
            cancel,
            analyzer,
            snapshot,
            snapshot_demand,
            analysis_stop,
            analysis_task: Some(analysis_task),
            endpoint_tls,
        })
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.proxy.local_addr()
    }

    /// The seed of the mirror and weight draws (given, or drawn at start).
    pub fn seed(&self) -> u64 {
        self.proxy.seed()
    }

    /// Swaps in a new route table atomically; requests in flight finish on the old one.
    pub fn apply(&self, routes: impl Routes) {
        self.endpoint_tls
            .store(Arc::new(reflection::EndpointTls::of(&routes.upstreams())));
        self.proxy.apply(Box::new(routes));
    }

    /// Swaps in a compiled config: its route table and its diff ignore annotations, which
    /// replace the previous config's (a removed annotation takes its rules with it).
    pub fn apply_config(&self, config: CompiledConfig) {
        self.apply(config.table);
        let rules = config.ignore.into_iter().collect();
        self.with_analyzer(|analyzer| analyzer.replace_virtual_service_rules(rules));
    }

    /// The live counters (requests, mirrored, skipped by reason, shadow errors, dropped).
    pub fn counters(&self) -> CounterSnapshot {
        self.proxy.counters()
    }

    /// Tasks alive on the proxy's worker threads (connections, exchanges in flight, pooled
    /// upstream connections): for leak checks.
    pub fn proxy_tasks(&self) -> usize {
        self.proxy.tasks()
    }

    /// The ring buffer of recent exchanges (the traffic table).
    pub fn captures(&self) -> &CaptureStore {
        self.proxy.hub().store()
    }

    /// The capture hub, shared: it outlives [`Lab::shutdown`], so exports can read the
    /// store after the last exchange was published.
    pub fn captures_handle(&self) -> Arc<CaptureHub> {
        Arc::clone(self.proxy.hub())
    }

    /// A new subscription to finished exchanges; a full channel drops and counts.
    pub fn subscribe(&self, capacity: usize) -> mpsc::Receiver<Arc<Exchange>> {
        self.proxy.hub().subscribe(capacity)
    }

    /// The latest analysis snapshot (refreshed 20 times a second while traffic flows
    /// and someone keeps reading it; the first read after a pause builds a fresh one).
    pub fn analysis(&self) -> Arc<AnalysisSnapshot> {
        if self.snapshot_demand.read() {
            // Nobody read it lately, so the task stopped refreshing it: bring it up to date.
            self.with_analyzer(|_| ());
        }
        self.snapshot.load_full()
    }

    /// Changes the analyzer (ignore rules, thresholds, clear) and refreshes the snapshot.
    pub fn with_analyzer<R>(&self, change: impl FnOnce(&mut Analyzer) -> R) -> R {
        let mut analyzer = self.analyzer.lock();
        let result = change(&mut analyzer);
        self.snapshot
            .store(Arc::new(analyzer.snapshot_at(std::time::SystemTime::now())));
        result
    }

    /// Stops accepting, lets requests and shadows in flight finish (up to `drain`), and
    /// returns the final analysis snapshot, which includes every exchange that finished.
    pub async fn shutdown(mut self, drain: Duration) -> Arc<AnalysisSnapshot> {
        self.cancel.cancel();
        if !self.proxy.stop(drain).await {
            tracing::warn!(
                in_flight = self.proxy.exchanges_in_flight(),
                "some exchanges were still in flight after {drain:?}; the report leaves them out"
            );
        }
        self.analysis_stop.cancel();
        if let Some(task) = self.analysis_task.take() {
            // The task ends after draining its queue; a panic there leaves the last snapshot.
            let _ = task.await;
        }
        self.snapshot.load_full()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // A lab dropped without `shutdown` stops at once: no port held, no task left behind.
        self.cancel.cancel();
        self.analysis_stop.cancel();
    }
}

/// How long after the last read of the snapshot the analysis task keeps refreshing it.
const READERS_GONE_AFTER: Duration = Duration::from_secs(1);

/// When the analysis snapshot was last read, so it is refreshed only while someone looks.
#[derive(Debug)]
struct SnapshotDemand {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last read; `u64::MAX`: never read.
    last_read_ms: AtomicU64,
}

impl SnapshotDemand {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_read_ms: AtomicU64::new(u64::MAX),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// Notes a read; true when the one before was long enough ago (or never) that the task
    /// has stopped refreshing, so the reader must refresh it itself.
    fn read(&self) -> bool {
        let now = self.now_ms();
        let before = self.last_read_ms.swap(now, Ordering::Relaxed);
        before == u64::MAX || now.saturating_sub(before) > READERS_GONE_AFTER.as_millis() as u64
    }

    /// True while someone reads the snapshot.
    fn recently_read(&self) -> bool {
        let before = self.last_read_ms.load(Ordering::Relaxed);
        before != u64::MAX
            && self.now_ms().saturating_sub(before) <= READERS_GONE_AFTER.as_millis() as u64
    }
}

/// The analysis task: ingests exchanges off the request path and publishes snapshots.
async fn analyze(
    mut exchanges: mpsc::Receiver<Arc<Exchange>>,
    analyzer: Arc<Mutex<Analyzer>>,
    snapshot: Arc<ArcSwap<AnalysisSnapshot>>,
    demand: Arc<SnapshotDemand>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(SNAPSHOT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = false;
    let mut refreshed = tokio::time::Instant::now();
    let mut batch = Vec::with_capacity(INGEST_BATCH);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            received = exchanges.recv_many(&mut batch, INGEST_BATCH) => {
                if received == 0 {
                    break;
                }
                {
                    let mut analyzer = analyzer.lock();
                    for exchange in batch.drain(..) {
                        analyzer.ingest(&exchange);
                    }
                }
                dirty = true;
                if received < INGEST_BATCH {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(INGEST_PAUSE) => {}
                    }
                }
            }
            _ = tick.tick() => {
                if demand.recently_read()
                    && (dirty || refreshed.elapsed() >= IDLE_SNAPSHOT_EVERY)
                {
                    let fresh = analyzer
                        .lock()
                        .snapshot_at(std::time::SystemTime::now());
                    snapshot.store(Arc::new(fresh));
                    dirty = false;
                    refreshed = tokio::time::Instant::now();
                }
            }
        }
    }
    // Whatever finished before the stop is in the queue: include it in the final snapshot.
    let mut analyzer = analyzer.lock();
    while let Ok(exchange) = exchanges.try_recv() {
        analyzer.ingest(&exchange);
    }
    snapshot.store(Arc::new(analyzer.snapshot()));
}
