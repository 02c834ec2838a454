//! The mirroring proxy: listener, the request pipeline in the sidecar's order, shadow
//! dispatch, body buffering, hot reload.
//!
//! Connections are served by worker threads, each a single-threaded runtime with its own
//! upstream connection pools (`listener`, `pool`). A request goes through the stages of
//! `pipeline`: `arrival` (route selection on the current route table snapshot), `fault`,
//! `cors`, then the router: `local` answers (redirect, direct response) or `forward`, which
//! `finalize`s the request, streams it to one weighted primary destination and, when a
//! mirror is sampled, hands the copies to the request's exchange task (`shadow`). When the
//! primary's body and every shadow are done, one [`Exchange`](crate::capture::Exchange) goes
//! to the [`CaptureHub`]; a request with no copy to send is joined without a task (`join`).

mod arrival;
mod attempts;
mod body;
mod cors;
mod counters;
mod error;
mod fault;
mod finalize;
mod forward;
pub mod hop;
mod join;
mod listener;
mod local;
mod pipeline;
mod pool;
mod pool_h2;
mod retry;
mod shadow;
mod target;
mod tls;
mod tunnel;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::capture::CaptureHub;
use crate::routing::{EndpointAddr, MirrorHeaders, NoRoute, RequestHead, Resolution};

pub use body::ProxyBody;
pub use counters::{CounterSnapshot, ProxyCounters};
pub use error::ProxyError;

/// What the proxy needs from a route table. `routing::RouteTable` is the real one.
pub trait Routes: Send + Sync + 'static {
    /// The route a request takes, or why it has none.
    fn resolve(&self, head: &RequestHead<'_>) -> Result<Resolution, NoRoute>;
    /// The host a request addressed to the proxy itself goes to, if the table has one.
    fn default_host(&self) -> Option<&str>;
    /// Every host the table serves, for the 404 body.
    fn hosts(&self) -> Vec<String>;
    /// [`Routes::resolve`] at `port`, or at the host's service port when the request names
    /// none (80 unless the table knows better); returns the port it used.
    fn resolve_at(
        &self,
        head: RequestHead<'_>,
        port: Option<u16>,
    ) -> Result<(Resolution, u16), NoRoute> {
        let port = port.unwrap_or(80);
        self.resolve(&RequestHead { port, ..head })
            .map(|r| (r, port))
    }
    /// Every upstream the table sends to, for the lab's own calls to their endpoints
    /// (gRPC server reflection speaks TLS where their DestinationRule originates it).
    fn upstreams(&self) -> Vec<std::sync::Arc<crate::routing::Upstream>> {
        Vec::new()
    }
}

/// How the proxy behaves; the defaults are Envoy's and Istio's.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySettings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Host for requests addressed to the proxy itself; `None`: the table's default host.
    pub default_host: Option<String>,
    /// Seed for weight and mirror draws; `None`: a fresh random seed.
    pub seed: Option<u64>,
    /// Append `-shadow` to the Host of mirrored requests (Envoy, Istio before 1.28).
    pub shadow_host_suffix: bool,
    /// Request bodies above this are not mirrored (Envoy's buffer limit, 1 MiB).
    pub mirror_body_limit: usize,
    /// Bodies are captured up to this many bytes.
    pub capture_body_cap: usize,
    /// Most shadow requests in flight at once; past that a mirror is skipped.
    pub max_shadows_in_flight: usize,
    /// Each shadow request's own timeout.
    pub shadow_timeout: Duration,
    /// TCP connect timeout for upstreams (Istio's default `connectTimeout`, 10 s).
    pub connect_timeout: Duration,
    /// Largest request head (request line and headers) a client may send; past it the
    /// client gets 431. At least 8 KiB (hyper's floor); default 60 KiB, Envoy's
    /// `max_request_headers_kb`.
    pub max_request_header_bytes: usize,
    /// A client that has not sent its whole request head this long after connecting (or
    /// after its previous request) is disconnected: the slowloris defence. Default 30 s.
    pub header_read_timeout: Duration,
    /// Header edits for every mirrored copy, before each route's own (the lab-wide
    /// setting; the per-route ones come from VirtualService annotations).
    pub mirror_headers: MirrorHeaders,
    /// Worker threads serving connections, each a single-threaded runtime with its own
    /// upstream connection pools; 0: one per two CPUs, up to 4.
    pub workers: usize,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 15001)),
            default_host: None,
            seed: None,
            shadow_host_suffix: false,
            mirror_body_limit: 1024 * 1024,
            capture_body_cap: 64 * 1024,
            max_shadows_in_flight: 1024,
            shadow_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_request_header_bytes: 60 * 1024,
            header_read_timeout: Duration::from_secs(30),
            mirror_headers: MirrorHeaders::default(),
            workers: 0,
        }
    }
}

/// State shared by every connection of one running proxy.
struct Shared {
    routes: ArcSwap<Box<dyn Routes>>,
    settings: ProxySettings,
    seed: u64,
    local_addr: SocketAddr,
    /// Worker threads (resolved from `settings.workers`).
    workers: usize,
    shadow_slots: Arc<Semaphore>,
    counters: ProxyCounters,
    hub: Arc<CaptureHub>,
    next_id: AtomicU64,
    /// Exchanges not yet published (primary or shadows still running).
    in_flight: AtomicU64,
    /// Endpoints already rendered as URI authorities: formatting and parsing one per
    /// upstream request cost more than the rest of building it.
    /// Rendered endpoints by address, one per TLS setup (id 0: plaintext); looked up by a
    /// borrowed address, so the request path clones no key.
    targets: RwLock<TargetCache>,
}

/// Rendered endpoints by address, each with its TLS setups; hashed with foldhash (the keys
/// are the config's endpoints, and the lookup is on every upstream request).
type TargetCache =
    HashMap<EndpointAddr, Vec<(u64, target::UpstreamTarget)>, foldhash::fast::RandomState>;

/// Most endpoints kept rendered; reloads that keep adding new ones start the cache afresh.
const MAX_CACHED_TARGETS: usize = 4096;

/// Most TLS setups (and plaintext) kept rendered for one endpoint.
const MAX_SETUPS_PER_ENDPOINT: usize = 8;

impl Shared {
    /// `endpoint` of `upstream` rendered for an upstream request (cached): its pools are
    /// the cluster's TLS setup's, so a TLS and a plaintext cluster never share a connection.
    fn upstream_target(
        &self,
        endpoint: &EndpointAddr,
        upstream: &crate::routing::Upstream,
    ) -> target::UpstreamTarget {
        let tls = upstream.policy.tls.as_ref();
        let id = tls.map_or(0, |t| t.id);
        // Plain data behind the locks: a panic elsewhere leaves nothing half-written.
        if let Some(target) = self
            .targets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(endpoint)
            .and_then(|setups| setups.iter().find(|(i, _)| *i == id))
        {
            return target.1.clone();
        }
        let target = target::UpstreamTarget::new(endpoint, self.workers, tls);
        let mut targets = self.targets.write().unwrap_or_else(PoisonError::into_inner);
        if targets.len() >= MAX_CACHED_TARGETS {
            targets.clear();
        }
        let setups = targets.entry(endpoint.clone()).or_default();
        // Every apply builds TLS setups afresh: the ones of configs gone are let go.
        if setups.len() >= MAX_SETUPS_PER_ENDPOINT {
            setups.clear();
        }
        setups.push((id, target.clone()));
        target
    }
}

/// A running proxy: listening, forwarding and mirroring until its token is cancelled.
pub struct Proxy {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    /// The accept loop, on the caller's runtime.
    task: Option<JoinHandle<()>>,
    workers: listener::Workers,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("local_addr", &self.shared.local_addr)
            .field("seed", &self.shared.seed)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Binds `settings.listen` and starts serving on `handle` until `cancel` fires.
    pub fn start(
        handle: &tokio::runtime::Handle,
        cancel: CancellationToken,
        settings: ProxySettings,
        routes: Box<dyn Routes>,
        hub: Arc<CaptureHub>,
    ) -> Result<Proxy, ProxyError> {
        let bind_err = |source| ProxyError::Bind {
            addr: settings.listen,
            source,
        };
        let std_listener = StdTcpListener::bind(settings.listen).map_err(bind_err)?;
        std_listener.set_nonblocking(true).map_err(bind_err)?;
        let local_addr = std_listener.local_addr().map_err(bind_err)?;
        let _runtime = handle.enter();
        let listener = tokio::net::TcpListener::from_std(std_listener).map_err(bind_err)?;

        let workers = match settings.workers {
            0 => listener::default_workers(),
            n => n,
        };
        let shared = Arc::new(Shared {
            workers,
            routes: ArcSwap::from_pointee(routes),
            seed: settings.seed.unwrap_or_else(|| fastrand::u64(..)),
            local_addr,
            shadow_slots: Arc::new(Semaphore::new(settings.max_shadows_in_flight)),
            counters: ProxyCounters::default(),
            hub,
            next_id: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            targets: RwLock::new(HashMap::default()),
            settings,
        });
        let workers = listener::Workers::start(workers, &shared, &cancel)?;
        let task = handle.spawn(listener::accept(listener, workers.queues(), cancel.clone()));
        Ok(Proxy {
            shared,
            cancel,
            task: Some(task),
            workers,
        })
    }

    /// The address the proxy listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The seed of the mirror and weight draws (given, or drawn at start).
    pub fn seed(&self) -> u64 {
        self.shared.seed
    }

    /// The settings the proxy runs with.
    pub fn settings(&self) -> &ProxySettings {
        &self.shared.settings
    }

    /// Swaps in a new route table; requests in flight finish on the one they started with.
    pub fn apply(&self, routes: Box<dyn Routes>) {
        self.shared.routes.store(Arc::new(routes));
    }

    /// The live counters.
    pub fn counters(&self) -> CounterSnapshot {
        let available = self.shared.shadow_slots.available_permits();
        let in_flight = self
            .shared
            .settings
            .max_shadows_in_flight
            .saturating_sub(available) as u64;
        self.shared
            .counters
            .snapshot(self.shared.hub.dropped(), in_flight)
    }

    /// The capture hub exchanges go to.
    pub fn hub(&self) -> &Arc<CaptureHub> {
        &self.shared.hub
    }

    /// Exchanges not yet published: their primary or a shadow is still running.
    pub fn exchanges_in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::Relaxed)
    }

    /// Stops accepting, waits for open connections to finish (they get a few seconds),
    /// then for exchanges in flight to be published, up to `drain` in all. Returns false
    /// when something was still in flight at the deadline.
    pub async fn stop(&mut self, drain: Duration) -> bool {
        self.cancel.cancel();
        let deadline = tokio::time::Instant::now() + drain;
        if let Some(task) = self.task.take() {
            // A panic in the accept loop is already reported by the runtime; stopping is
            // all that is left to do.
            let _ = tokio::time::timeout_at(deadline, task).await;
        }
        let drained = self
            .wait_until(deadline, |proxy| {
                proxy.workers.serving() == 0 && proxy.exchanges_in_flight() == 0
            })
            .await;
        self.workers.release();
        drained
    }

    /// Waits until the listener has stopped after its token was cancelled, and the open
    /// connections have finished (within their grace period).
    pub async fn stopped(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let deadline = tokio::time::Instant::now() + listener::GRACE + Duration::from_secs(1);
        self.wait_until(deadline, |proxy| proxy.workers.serving() == 0)
            .await;
    }

    /// Polls `done` every 10 ms until it holds (true) or `deadline` passes (false).
    async fn wait_until(
        &self,
        deadline: tokio::time::Instant,
        done: impl Fn(&Proxy) -> bool,
    ) -> bool {
        while !done(self) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Worker threads serving connections.
    pub fn workers(&self) -> usize {
        self.workers.count()
    }

    /// Tasks alive on the worker threads: client connections, exchanges in flight and
    /// upstream connections, pooled ones included. For leak checks.
    pub fn tasks(&self) -> usize {
        self.workers.tasks()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // A proxy nobody holds must not keep the port: stop accepting.
        self.cancel.cancel();
    }
}
