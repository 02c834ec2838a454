//! A traffic generator: a realistic mix of reviews requests sent through the proxy at a
//! steady rate, so the lab has something to show at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::DemoError;

/// Where and how fast to send.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficSettings {
    /// The proxy's address.
    pub proxy: SocketAddr,
    /// Host header to send (`reviews`); `None` addresses the proxy itself (its default host).
    pub host: Option<String>,
    /// Requests per second.
    pub rps: f64,
    /// Most requests waiting for an answer at once; past that a tick is skipped.
    pub max_in_flight: usize,
    /// Send gRPC calls (`reviews.Reviews/GetReviews` over h2c) instead of the HTTP mix.
    pub grpc: bool,
}

impl TrafficSettings {
    /// `rps` requests a second to the proxy at `proxy` for `host`.
    pub fn new(proxy: SocketAddr, host: Option<String>, rps: f64) -> Self {
        Self {
            proxy,
            host,
            rps,
            max_in_flight: 256,
            grpc: false,
        }
    }

    /// The same, sending gRPC calls when `grpc` is true.
    pub fn with_grpc(mut self, grpc: bool) -> Self {
        self.grpc = grpc;
        self
    }
}

/// What the generator has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficStats {
    /// Requests sent.
    pub sent: u64,
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Answers with any other status.
    pub not_ok: u64,
    /// Requests that got no answer (proxy not running, connection error).
    pub failed: u64,
    /// Ticks skipped because too many requests were waiting.
    pub skipped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    ok: AtomicU64,
    not_ok: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

/// A running traffic generator; stops when its token is cancelled or it is dropped.
#[derive(Debug)]
pub struct TrafficGenerator {
    counters: Arc<Counters>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl TrafficGenerator {
    /// Starts sending on `handle` until `cancel` fires.
    pub fn start(
        handle: &tokio::runtime::Handle,
        cancel: CancellationToken,
        settings: TrafficSettings,
    ) -> Result<TrafficGenerator, DemoError> {
        if !(settings.rps.is_finite() && settings.rps > 0.0) {
            return Err(DemoError::Rate(settings.rps));
        }
        let builder = reqwest::Client::builder()
            // The generator talks to the proxy directly; an HTTP_PROXY in the environment
            // must not reroute it.
            .no_proxy()
            .timeout(Duration::from_secs(30));
        // gRPC is HTTP/2; to the lab's plaintext port that is h2c with prior knowledge.
        let builder = if settings.grpc {
            builder.http2_prior_knowledge()
        } else {
            builder
        };
        let client = builder.build().map_err(DemoError::Client)?;
        let counters = Arc::new(Counters::default());
        let cancel = cancel.child_token();
        let task = handle.spawn(run(client, settings, Arc::clone(&counters), cancel.clone()));
        Ok(TrafficGenerator {
            counters,
            cancel,
            task,
        })
    }

    /// Counts so far.
    pub fn stats(&self) -> TrafficStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TrafficStats {
            sent: get(&self.counters.sent),
            ok: get(&self.counters.ok),
            not_ok: get(&self.counters.not_ok),
            failed: get(&self.counters.failed),
            skipped: get(&self.counters.skipped),
        }
    }

    /// Stops sending and waits for the loop to end (answers still on their way are dropped).
    pub async fn stop(self) {
        self.cancel.cancel();
        let mut this = self;
        // A panic in the loop was already reported by the runtime; it is stopped either way.
        let _ = (&mut this.task).await;
    }
}

impl Drop for TrafficGenerator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// One request of the mix.
struct Shot {
    method: reqwest::Method,
    path: String,
    user_agent: &'static str,
    body: Option<bytes::Bytes>,
}

/// A unary `GetReviews` call for one of the products.
fn grpc_shot(rng: &mut fastrand::Rng) -> Shot {
    Shot {
        method: reqwest::Method::POST,
        path: super::grpc::GET_REVIEWS.to_owned(),
        user_agent: "grpc-rust/bookinfo-productpage",
        body: Some(super::grpc::request(rng.u32(1..=12))),
    }
}

/// The mix: mostly product page reads, some from a test client (the header-match
/// scenario), a few paged reads, and some review posts.
fn next_shot(rng: &mut fastrand::Rng) -> Shot {
    let product = rng.u32(1..=12);
    let roll = rng.u32(0..100);
    let (method, path, user_agent, body) = match roll {
        0..=64 => (
            reqwest::Method::GET,
            format!("/reviews/{product}"),
            "Mozilla/5.0 (X11; Linux x86_64) bookinfo-productpage",
            None,
        ),
        65..=79 => (
            reqwest::Method::GET,
            format!("/reviews/{product}"),
            "testing-bot/1.0",
            None,
        ),
        80..=89 => (
            reqwest::Method::GET,
            format!("/reviews/{product}?page={}", rng.u32(1..=3)),
            "Mozilla/5.0 (Macintosh) bookinfo-productpage",
            None,
        ),
        _ => (
            reqwest::Method::POST,
            format!("/reviews/{product}"),
            "bookinfo-productpage/1.20",
            Some(bytes::Bytes::from(format!(
                r#"{{"reviewer":"Reader{}","text":"Read it twice, still laughing.","stars":{}}}"#,
                rng.u32(1..1000),
                rng.u32(1..=5)
            ))),
        ),
    };
    Shot {
        method,
        path,
        user_agent,
        body,
    }
}

async fn run(
    client: reqwest::Client,
    settings: TrafficSettings,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / settings.rps));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let slots = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
    let mut rng = fastrand::Rng::new();
    let base = format!("http://{}", settings.proxy);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let shot = if settings.grpc {
            grpc_shot(&mut rng)
        } else {
            next_shot(&mut rng)
        };
        let mut request = client
            .request(shot.method, format!("{base}{}", shot.path))
            .header(reqwest::header::USER_AGENT, shot.user_agent);
        if let Some(host) = &settings.host {
            request = request.header(reqwest::header::HOST, host.as_str());
        }
        if let Some(body) = shot.body {
            let content_type = if settings.grpc {
                "application/grpc"
            } else {
                "application/json"
            };
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
        }
        if settings.grpc {
            request = request.header(reqwest::header::TE, "trailers");
        }
        counters.sent.fetch_add(1, Ordering::Relaxed);
        let counters = Arc::clone(&counters);
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let answer = tokio::select! {
                () = cancel.cancelled() => return,
                answer = async {
                    let response = request.send().await?;
                    let status = response.status();
                    response.bytes().await?;
                    Ok::<_, reqwest::Error>(status)
                } => answer,
            };
            let counter = match answer {
                Ok(status) if status.is_success() => &counters.ok,
                Ok(_) => &counters.not_ok,
                Err(_) => &counters.failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}
