//! The app's handle on the engine: the running lab, the demo services and traffic, and
//! one-off requests. The UI talks to the engine only through this (commands in, snapshots
//! out); everything here is cheap to call once a frame.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::analysis::{AnalysisSettings, AnalysisSnapshot, Analyzer};
use crate::capture::Exchange;
use crate::demo::{DemoServices, TrafficGenerator, TrafficSettings};
use crate::lab::{Lab, LabSettings};
use crate::proxy::CounterSnapshot;
use crate::routing::RouteTable;

/// How many finished exchanges may wait for the UI between two frames.
const SUBSCRIPTION_CAPACITY: usize = 131_072;
/// How long Stop lets requests in flight finish.
const STOP_DRAIN: Duration = Duration::from_millis(500);

/// Why the engine could not do what the UI asked.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The listen address does not parse.
    #[error("'{0}' is not a listen address; write it as 127.0.0.1:15001")]
    ListenAddress(String),
    /// The lab could not start.
    #[error(transparent)]
    Lab(#[from] crate::lab::LabError),
    /// The demo could not start.
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    /// The proxy is not running.
    #[error("the proxy is not running; press Start first")]
    NotRunning,
}

/// A request typed into the "Send request" form.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct OneRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Host header (a VirtualService host).
    pub host: String,
    /// Path and query.
    pub path: String,
    /// Extra headers, one `name: value` a line.
    pub headers: String,
    /// Body.
    pub body: String,
}

/// What happened to a one-off request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The proxy answered with this status.
    Answered {
        /// The `x-request-id` sent, to find the exchange in Traffic.
        request_id: String,
        /// Status code.
        status: u16,
    },
    /// The request failed before an answer.
    Failed(String),
}

/// Measures requests per second from a growing counter.
#[derive(Debug, Default)]
struct RateMeter {
    last: Option<(Instant, u64)>,
    rate: f64,
}

impl RateMeter {
    fn update(&mut self, count: u64) -> f64 {
        let now = Instant::now();
        match self.last {
            Some((t, c)) if now.duration_since(t) >= Duration::from_millis(500) => {
                let dt = now.duration_since(t).as_secs_f64();
                self.rate = count.saturating_sub(c) as f64 / dt;
                self.last = Some((now, count));
            }
            Some(_) => {}
            None => self.last = Some((now, count)),
        }
        self.rate
    }
}

/// The engine as the app sees it.
pub struct Session {
    runtime: tokio::runtime::Handle,
    cancel: CancellationToken,
    lab: Option<Lab>,
    exchanges: Option<mpsc::Receiver<Arc<Exchange>>>,
    demo: Option<DemoServices>,
    traffic: Option<TrafficGenerator>,
    empty: Arc<AnalysisSnapshot>,
    rate: RateMeter,
    sent: (
        mpsc::UnboundedSender<SendOutcome>,
        mpsc::UnboundedReceiver<SendOutcome>,
    ),
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("running", &self.lab.as_ref().map(Lab::local_addr))
            .field("demo", &self.demo.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Session {
    /// A session with nothing running, on `runtime`.
    pub fn new(runtime: tokio::runtime::Handle) -> Self {
        Self {
            runtime,
            cancel: CancellationToken::new(),
            lab: None,
            exchanges: None,
            demo: None,
            traffic: None,
            empty: Arc::new(Analyzer::new(AnalysisSettings::default()).snapshot()),
            rate: RateMeter::default(),
            sent: mpsc::unbounded_channel(),
        }
    }

    /// The proxy's address while it runs.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.lab.as_ref().map(Lab::local_addr)
    }

    /// True while the proxy runs.
    pub fn is_running(&self) -> bool {
        self.lab.is_some()
    }

    /// True while the demo services run.
    pub fn demo_running(&self) -> bool {
        self.demo.is_some()
    }

    /// Starts the proxy on `listen` with `table`; a non-loopback `listen` needs
    /// `allow_remote`.
    pub fn start(
        &mut self,
        listen: &str,
        allow_remote: bool,
        default_host: Option<String>,
        analysis: AnalysisSettings,
        table: RouteTable,
    ) -> Result<SocketAddr, SessionError> {
        let listen: SocketAddr = listen
            .trim()
            .parse()
            .map_err(|_| SessionError::ListenAddress(listen.to_owned()))?;
        self.stop();
        let settings = LabSettings {
            listen,
            allow_remote,
            default_host,
            analysis,
            ..LabSettings::default()
        };
        let lab = Lab::start(&self.runtime, self.cancel.child_token(), settings, table)?;
        self.exchanges = Some(lab.subscribe(SUBSCRIPTION_CAPACITY));
        let addr = lab.local_addr();
        self.lab = Some(lab);
        self.rate = RateMeter::default();
        Ok(addr)
    }

    /// Stops the traffic generator and the proxy (letting requests in flight finish briefly).
    pub fn stop(&mut self) {
        self.traffic = None;
        self.exchanges = None;
        if let Some(lab) = self.lab.take() {
            // The UI thread is not a runtime thread, so it may wait here; the wait is short
            // and makes a following Start able to bind the same port again.
            self.runtime.block_on(async move {
                let _ = lab.shutdown(STOP_DRAIN).await;
            });
        }
    }

    /// Hot-swaps the running proxy's routes.
    pub fn apply(&mut self, table: RouteTable) -> Result<(), SessionError> {
        let lab = self.lab.as_ref().ok_or(SessionError::NotRunning)?;
        lab.apply(table);
        Ok(())
    }

    /// Changes the running analysis (ignore rules, clear).
    pub fn with_analyzer(&self, change: impl FnOnce(&mut Analyzer)) {
        if let Some(lab) = &self.lab {
            lab.with_analyzer(change);
        }
    }

    /// Exchanges that finished since the last call (up to `max`, the rest wait).
    pub fn new_exchanges(&mut self, max: usize) -> Vec<Arc<Exchange>> {
        let mut out = Vec::new();
        if let Some(rx) = &mut self.exchanges {
            while out.len() < max {
                match rx.try_recv() {
                    Ok(e) => out.push(e),
                    Err(_) => break,
                }
            }
        }
        out
    }

    /// The latest analysis (an empty one while stopped).
    pub fn analysis(&self) -> Arc<AnalysisSnapshot> {
        self.lab
            .as_ref()
            .map_or_else(|| Arc::clone(&self.empty), Lab::analysis)
    }

    /// The proxy's live counters.
    pub fn counters(&self) -> Option<CounterSnapshot> {
        self.lab.as_ref().map(Lab::counters)
    }

    /// Requests per second through the proxy, measured over the last half second or more.
    pub fn requests_per_second(&mut self) -> f64 {
        match self.counters() {
            Some(c) => self.rate.update(c.requests),
            None => 0.0,
        }
    }

    /// Starts the demo services the config's ServiceEntries point at.
    pub fn start_demo(&mut self, config: &crate::config::ConfigSet) -> Result<usize, SessionError> {
        self.stop_demo();
        let demo = DemoServices::start(&self.runtime, config)?;
        let n = demo.endpoints().len();
        self.demo = Some(demo);
        Ok(n)
    }

    /// Starts generated traffic through the running proxy.
    pub fn start_traffic(&mut self, host: Option<String>, rps: f64) -> Result<(), SessionError> {
        let addr = self.local_addr().ok_or(SessionError::NotRunning)?;
        let generator = TrafficGenerator::start(
            &self.runtime,
            self.cancel.child_token(),
            TrafficSettings::new(addr, host, rps),
        )?;
        self.traffic = Some(generator);
        Ok(())
    }

    /// True while generated traffic flows.
    pub fn traffic_running(&self) -> bool {
        self.traffic.is_some()
    }

    /// Stops generated traffic.
    pub fn stop_traffic(&mut self) {
        self.traffic = None;
    }

    /// Stops generated traffic and the demo services.
    pub fn stop_demo(&mut self) {
        self.traffic = None;
        self.demo = None;
    }

    /// Sends one request through the proxy; the answer arrives in [`Session::sent`].
    pub fn send(&self, request: &OneRequest, ctx: &egui::Context) -> Result<String, SessionError> {
        let addr = self.local_addr().ok_or(SessionError::NotRunning)?;
        let request_id = uuid::Uuid::new_v4().to_string();
        let tx = self.sent.0.clone();
        let request = request.clone();
        let id = request_id.clone();
        let ctx = ctx.clone();
        self.runtime.spawn(async move {
            let outcome = send_one(addr, &request, &id).await;
            let _ = tx.send(outcome);
            ctx.request_repaint();
        });
        Ok(request_id)
    }

    /// Answers to one-off requests that arrived since the last call.
    pub fn sent(&mut self) -> Vec<SendOutcome> {
        let mut out = Vec::new();
        while let Ok(o) = self.sent.1.try_recv() {
            out.push(o);
        }
        out
    }
}

async fn send_one(addr: SocketAddr, r: &OneRequest, request_id: &str) -> SendOutcome {
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => return SendOutcome::Failed(format!("cannot build an HTTP client: {e}")),
    };
    let method = match http::Method::from_bytes(r.method.trim().to_ascii_uppercase().as_bytes()) {
        Ok(m) => m,
        Err(_) => return SendOutcome::Failed(format!("'{}' is not an HTTP method", r.method)),
    };
    let path = if r.path.starts_with('/') {
        r.path.clone()
    } else {
        format!("/{}", r.path)
    };
    let mut builder = client
        .request(method, format!("http://{addr}{path}"))
        .header("x-request-id", request_id);
    if !r.host.trim().is_empty() {
        builder = builder.header(http::header::HOST, r.host.trim());
    }
    for (n, line) in r.headers.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return SendOutcome::Failed(format!(
                "header line {} ('{line}') has no ':'; write name: value",
                n + 1
            ));
        };
        builder = builder.header(name.trim(), value.trim());
    }
    if !r.body.is_empty() {
        builder = builder.body(r.body.clone());
    }
    match builder.send().await {
        Ok(resp) => SendOutcome::Answered {
            request_id: request_id.to_owned(),
            status: resp.status().as_u16(),
        },
        Err(e) => SendOutcome::Failed(format!("request to the proxy at {addr} failed: {e}")),
    }
}
