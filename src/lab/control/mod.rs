//! The desktop app's one door to the engine: typed [`LabCommand`]s in, a [`LabView`] and
//! [`LabEvent`]s out (DESIGN §3). The commands run in order on one task of the engine's
//! runtime, so a stop that drains requests in flight, a bind, a HAR write or a diff of a
//! large body happen there, never on the UI thread; the engine wakes the UI through the
//! [`Wake`] hook when something changed. Nothing here blocks: every method is a channel
//! send, a pointer load or a short queue swap.

pub mod compare;
mod engine;
mod feed;
mod meter;
pub mod oneoff;
mod recorded;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::analysis::{AnalysisSettings, AnalysisSnapshot, Analyzer, IgnoreRules};
use crate::capture::Exchange;
use crate::config::ConfigSet;
use crate::proxy::CounterSnapshot;
use crate::routing::{MirrorHeaders, Workload};

pub use compare::{BodyLine, Comparison, LineSide};
pub use feed::FeedBounds;
pub use oneoff::{OneRequest, SendOutcome};
pub use recorded::{OpenedSession, ReplayStart, SaveSession};

/// How the engine asks the UI for a frame; the app passes one that calls
/// `request_repaint_after` with its frame time, so the engine never repaints faster.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// Everything a start or an apply needs: the config to compile and the lab's settings.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The loaded config (compiled on the engine's task, not the UI's).
    pub config: ConfigSet,
    /// Its name in messages (the file's path).
    pub file: String,
    /// Where to listen, as typed (`127.0.0.1:15001`).
    pub listen: String,
    /// Allow a listen address other than loopback.
    pub allow_remote: bool,
    /// Host for requests addressed to the proxy itself; `None`: the config's.
    pub default_host: Option<String>,
    /// The client workload whose sidecar the lab plays (or the gateway it acts as).
    pub workload: Workload,
    /// Append `-shadow` to the Host of mirrored copies.
    pub shadow_host_suffix: bool,
    /// Header edits for every mirrored copy, before each route's annotations.
    pub mirror_headers: MirrorHeaders,
    /// Diff ignore rules for every route (on top of each VirtualService's annotation).
    pub ignore: IgnoreRules,
    /// A `FileDescriptorSet` for the gRPC messages of every route without a
    /// `mirrorlab.dev/grpc-descriptors` annotation of its own.
    pub grpc_descriptors: Option<PathBuf>,
    /// Echoed in [`LabEvent::Running`], so the app knows which revision of its document
    /// the proxy runs.
    pub tag: u64,
}

/// What the app asks of the engine.
#[derive(Debug)]
pub enum LabCommand {
    /// Start the proxy with this config, stopping a running one first.
    Start(Box<RunRequest>),
    /// Hot-swap this config into the running proxy when it runs with the same settings;
    /// else (re)start it with them.
    Apply(Box<RunRequest>),
    /// Stop the proxy (requests in flight get a short drain) and generated traffic.
    Stop,
    /// Start the demo services `config`'s ServiceEntries name, the proxy with `run` when it
    /// is not running, and `rps` generated requests a second for `host`.
    StartDemo {
        /// Where the demo services listen.
        config: ConfigSet,
        /// How to start the proxy if it is not running.
        run: Box<RunRequest>,
        /// Host header of the generated traffic.
        host: Option<String>,
        /// Requests per second.
        rps: f64,
    },
    /// Stop the demo services and their traffic.
    StopDemo,
    /// Forget the analysis.
    Clear,
    /// Replace the diff ignore rules for every route.
    SetIgnoreRules(IgnoreRules),
    /// Replace every VirtualService's rules (from their annotations).
    SetVirtualServiceRules(Vec<(String, IgnoreRules)>),
    /// Send one request through the proxy, starting it with `run` if it is not running.
    Send {
        /// The request.
        request: OneRequest,
        /// Its `x-request-id`.
        request_id: String,
        /// How to start the proxy if it is not running.
        run: Box<RunRequest>,
    },
    /// Compare an exchange's primary with one of its shadows for the detail view.
    Compare {
        /// The exchange.
        exchange: Arc<Exchange>,
        /// Which shadow.
        shadow_index: usize,
    },
    /// Save these exchanges, the config and the analysis settings as a session.
    SaveSession(Box<SaveSession>),
    /// Set two sessions' reports side by side.
    CompareSessions {
        /// The first session.
        a: PathBuf,
        /// The one compared with it.
        b: PathBuf,
    },
    /// Stop the proxy and show this saved session instead: its exchanges and its analysis.
    OpenSession(PathBuf),
    /// Replay a traffic file through the proxy, starting it if it is not running.
    StartReplay(Box<ReplayStart>),
    /// Hold the replay's next requests back.
    PauseReplay,
    /// Go on with the replay.
    ResumeReplay,
    /// Send nothing more of the replay.
    StopReplay,
    /// Write these exchanges as HAR 1.2 to `path`.
    ExportHar {
        /// The file.
        path: PathBuf,
        /// The exchanges, oldest first.
        exchanges: Vec<Arc<Exchange>>,
    },
}

/// Why the proxy did not start, in terms the app can explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartFailure {
    /// The listen address does not parse.
    ListenAddress(String),
    /// Another program listens there; `free` is a nearby port that was free just now.
    AddressInUse {
        /// The address asked for.
        addr: SocketAddr,
        /// A free port on the same IP, if one was found.
        free: Option<SocketAddr>,
    },
    /// Ports below 1024 need privileges.
    PermissionDenied {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Not an address of this machine.
    AddressNotAvailable {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Not loopback and not allowed.
    RemoteListen {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The config has errors; each as the checker prints it.
    Config(Vec<String>),
    /// Anything else, said as it happened.
    Other(String),
}

/// What the engine tells the app, once per command that has something to say.
#[derive(Debug)]
pub enum LabEvent {
    /// The proxy runs this request's config: started on `addr`, or swapped in.
    Running {
        /// Where it listens.
        addr: SocketAddr,
        /// True when it was started (the traffic table starts afresh), false when the
        /// routes were swapped into the running proxy.
        started: bool,
        /// The request's tag.
        tag: u64,
        /// Warnings of the compiled config.
        warnings: Vec<String>,
        /// Diff ignore annotations that do not parse and descriptor files (annotations' or
        /// the setting's) that do not load: not in force.
        ignore_errors: Vec<String>,
    },
    /// The proxy did not start, or kept its routes (`running`).
    Refused {
        /// Why.
        failure: StartFailure,
        /// True when a proxy still runs (with its previous routes).
        running: bool,
        /// The request's tag.
        tag: u64,
    },
    /// The proxy stopped.
    Stopped,
    /// The demo runs: services and traffic.
    DemoStarted {
        /// Demo endpoints started.
        endpoints: usize,
    },
    /// The demo did not start.
    DemoFailed(String),
    /// The demo stopped.
    DemoStopped,
    /// The analysis was cleared.
    Cleared,
    /// Ignore rules are in force.
    IgnoreRulesApplied,
    /// A one-off request was answered (or failed).
    Sent(SendOutcome),
    /// A comparison for the detail view.
    Compared(Box<Comparison>),
    /// A session was opened (its exchanges, for the Traffic table), or not.
    SessionOpened(Result<Box<OpenedSession>, String>),
    /// A session was saved (exchanges written), or not.
    SessionSaved {
        /// The file.
        path: PathBuf,
        /// Exchanges written, or why nothing was.
        result: Result<usize, String>,
    },
    /// Two sessions compared (the rows `mirrorlab compare` prints), or why not.
    SessionsCompared(Result<Vec<crate::replay::compare::CompareRow>, String>),
    /// A replay started: this many requests from this file.
    ReplayStarted {
        /// The file.
        path: PathBuf,
        /// Requests to send per round.
        requests: usize,
        /// Credential headers stripped.
        credentials_stripped: usize,
    },
    /// A replay did not start; nothing was sent.
    ReplayFailed(String),
    /// A HAR file was written, or not.
    Exported {
        /// The file.
        path: PathBuf,
        /// Exchanges written, or why nothing was.
        result: Result<usize, String>,
    },
}

/// The engine as of its last change: read once a frame, never waited for.
#[derive(Debug, Clone)]
pub struct LabView {
    /// The proxy's address while it runs.
    pub listening: Option<SocketAddr>,
    /// True while the demo services run.
    pub demo: bool,
    /// True while generated traffic flows.
    pub traffic: bool,
    /// The proxy's counters while it runs.
    pub counters: Option<CounterSnapshot>,
    /// Requests per second through the proxy, over the last half second or more.
    pub requests_per_second: f64,
    /// The latest analysis (an empty one while stopped).
    pub analysis: Arc<AnalysisSnapshot>,
    /// Exchanges the app's feed dropped because the app did not take them in time (its
    /// window hidden, say); never counted as dropped captures.
    pub feed_dropped: u64,
    /// The replay under way (or the last one, finished), if any.
    pub replay: Option<crate::replay::ReplayProgress>,
    /// The session shown while no proxy runs.
    pub session: Option<PathBuf>,
}

impl LabView {
    fn idle() -> Self {
        Self {
            listening: None,
            demo: false,
            traffic: false,
            counters: None,
            requests_per_second: 0.0,
            analysis: Arc::new(Analyzer::new(AnalysisSettings::default()).snapshot()),
            feed_dropped: 0,
            replay: None,
            session: None,
        }
    }
}

/// The app's handle on the engine. Dropping it stops everything the engine runs.
pub struct LabControl {
    commands: mpsc::UnboundedSender<LabCommand>,
    events: mpsc::UnboundedReceiver<LabEvent>,
    view: Arc<ArcSwap<LabView>>,
    feed: Arc<feed::Feed>,
    /// Commands sent, and commands the engine finished.
    sent: AtomicU64,
    done: Arc<AtomicU64>,
    /// Milliseconds since the handle's start of the app's last look at the view.
    looked: Arc<meter::Demand>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for LabControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabControl")
            .field("listening", &self.view.load().listening)
            .finish_non_exhaustive()
    }
}

impl Drop for LabControl {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl LabControl {
    /// Starts the engine's command task on `runtime`; `wake` asks the UI for a frame.
    pub fn start(runtime: &tokio::runtime::Handle, wake: Wake) -> Self {
        Self::with_feed(runtime, wake, FeedBounds::default())
    }

    /// As [`LabControl::start`], with the app's exchange feed bounded by `bounds`.
    pub fn with_feed(runtime: &tokio::runtime::Handle, wake: Wake, bounds: FeedBounds) -> Self {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        let view = Arc::new(ArcSwap::from_pointee(LabView::idle()));
        let feed = Arc::new(feed::Feed::new(bounds));
        let done = Arc::new(AtomicU64::new(0));
        let looked = Arc::new(meter::Demand::default());
        let cancel = CancellationToken::new();
        let engine = engine::Engine::new(engine::EngineParts {
            runtime: runtime.clone(),
            events: event_tx,
            view: Arc::clone(&view),
            feed: Arc::clone(&feed),
            done: Arc::clone(&done),
            looked: Arc::clone(&looked),
            wake,
            cancel: cancel.clone(),
        });
        runtime.spawn(engine.serve(command_rx));
        Self {
            commands,
            events,
            view,
            feed,
            sent: AtomicU64::new(0),
            done,
            looked,
            cancel,
        }
    }

    /// Queues a command; its outcome arrives as an event.
    pub fn send(&self, command: LabCommand) {
        if self.commands.send(command).is_ok() {
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// True when the engine has finished every command sent so far.
    pub fn is_idle(&self) -> bool {
        self.done.load(Ordering::Acquire) >= self.sent.load(Ordering::Relaxed)
    }

    /// The engine's state as of its last change.
    pub fn view(&self) -> Arc<LabView> {
        self.looked.note();
        self.view.load_full()
    }

    /// Events since the last call.
    pub fn events(&mut self) -> Vec<LabEvent> {
        let mut out = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            out.push(event);
        }
        out
    }

    /// Finished exchanges since the last call, oldest first.
    pub fn take_exchanges(&self) -> Vec<Arc<Exchange>> {
        self.feed.take()
    }

    /// The proxy's address while it runs.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.view.load().listening
    }

    /// True while the proxy runs.
    pub fn is_running(&self) -> bool {
        self.local_addr().is_some()
    }

    /// True while the demo services run.
    pub fn demo_running(&self) -> bool {
        self.view.load().demo
    }

    /// The proxy's counters while it runs.
    pub fn counters(&self) -> Option<CounterSnapshot> {
        self.view.load().counters
    }

    /// The latest analysis.
    pub fn analysis(&self) -> Arc<AnalysisSnapshot> {
        Arc::clone(&self.view.load().analysis)
    }
}
