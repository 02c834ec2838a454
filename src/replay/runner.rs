//! Sends recorded requests through a running lab, as a client of its proxy on loopback:
//! each at its original offset (divided by the speed factor), or as fast as the
//! concurrency limit allows; round after round when looping. The [`ReplayHandle`] tells
//! the progress and pauses, resumes or stops the replay (the app drives it through it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Pace, ReplayRequest};
use crate::capture::REPLAY_HEADER;

/// How to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayOptions {
    /// How fast.
    pub pace: Pace,
    /// Most requests in flight at once.
    pub concurrency: usize,
    /// Rounds through the traffic; `None`: until stopped (`--loop`).
    pub rounds: Option<u32>,
    /// How long one request may take, response body included.
    pub timeout: Duration,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            pace: Pace::default(),
            concurrency: 64,
            rounds: Some(1),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Where a replay is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayProgress {
    /// Requests to send in all; `None` when looping until stopped.
    pub total: Option<u64>,
    /// Requests sent.
    pub sent: u64,
    /// Of which answered (any status, the body read to its end).
    pub answered: u64,
    /// Of which got no answer (connection failed, timed out).
    pub failed: u64,
    /// Paused now.
    pub paused: bool,
    /// No request is left to send and none is in flight (done, or stopped).
    pub finished: bool,
    /// The first failure's detail.
    pub first_failure: Option<String>,
}

#[derive(Debug, Default)]
struct Counts {
    sent: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
    finished: AtomicBool,
    first_failure: Mutex<Option<String>>,
}

/// A replay under way.
#[derive(Debug)]
pub struct ReplayHandle {
    counts: Arc<Counts>,
    paused: watch::Sender<bool>,
    stop: CancellationToken,
    total: Option<u64>,
    task: Option<tokio::task::JoinHandle<()>>,
}

type ReplayClient = Client<HttpConnector, Full<Bytes>>;

impl ReplayHandle {
    /// Starts replaying `requests` (in order) through the proxy at `proxy` on `runtime`.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        proxy: SocketAddr,
        requests: Arc<[ReplayRequest]>,
        options: ReplayOptions,
    ) -> Self {
        let counts = Arc::new(Counts::default());
        let (paused, paused_rx) = watch::channel(false);
        let stop = CancellationToken::new();
        let total = options.rounds.map(|r| u64::from(r) * requests.len() as u64);
        let run = Run {
            proxy,
            requests,
            options: ReplayOptions {
                concurrency: options.concurrency.max(1),
                ..options
            },
            counts: Arc::clone(&counts),
            paused: paused_rx,
            stop: stop.clone(),
        };
        let task = runtime.spawn(run.run());
        Self {
            counts,
            paused,
            stop,
            total,
            task: Some(task),
        }
    }

    /// The progress now.
    pub fn progress(&self) -> ReplayProgress {
        ReplayProgress {
            total: self.total,
            sent: self.counts.sent.load(Ordering::Relaxed),
            answered: self.counts.answered.load(Ordering::Relaxed),
            failed: self.counts.failed.load(Ordering::Relaxed),
            paused: *self.paused.borrow(),
            finished: self.counts.finished.load(Ordering::Acquire),
            first_failure: self.counts.first_failure.lock().clone(),
        }
    }

    /// Holds the next requests back; the time paused does not count in the pace.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Goes on where it paused.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// Sends nothing more; requests in flight finish (within the timeout).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits for the replay to finish (or, after [`stop`](Self::stop), for the requests
    /// in flight), and returns the final progress.
    pub async fn wait(&mut self) -> ReplayProgress {
        if let Some(task) = self.task.take() {
            // A panicked replay task has sent what it sent; the counts say how far it got.
            let _ = task.await;
        }
        self.progress()
    }
}

impl Drop for ReplayHandle {
    /// A replay nobody holds any more sends nothing more.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Run {
    proxy: SocketAddr,
    requests: Arc<[ReplayRequest]>,
    options: ReplayOptions,
    counts: Arc<Counts>,
    paused: watch::Receiver<bool>,
    stop: CancellationToken,
}

impl Run {
    async fn run(mut self) {
        let client: ReplayClient = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(self.options.concurrency)
            .build_http();
        let slots = Arc::new(Semaphore::new(self.options.concurrency));
        let mut round = 0u32;
        'rounds: while self.options.rounds.is_none_or(|r| round < r) {
            round += 1;
            let start = Instant::now();
            let mut shift = Duration::ZERO;
            for i in 0..self.requests.len() {
                let offset = self.requests[i].offset;
                if !self.wait_until_due(start, &mut shift, offset).await {
                    break 'rounds;
                }
                let permit = tokio::select! {
                    permit = Arc::clone(&slots).acquire_owned() => match permit {
                        Ok(p) => p,
                        Err(_) => break 'rounds,
                    },
                    () = self.stop.cancelled() => break 'rounds,
                };
                let tag = if round == 1 {
                    self.requests[i].index.to_string()
                } else {
                    format!("{round}:{}", self.requests[i].index)
                };
                self.counts.sent.fetch_add(1, Ordering::Relaxed);
                let (client, requests, counts) = (
                    client.clone(),
                    Arc::clone(&self.requests),
                    Arc::clone(&self.counts),
                );
                let (proxy, timeout) = (self.proxy, self.options.timeout);
                tokio::spawn(async move {
                    let outcome = send(&client, proxy, &requests[i], &tag, timeout).await;
                    match outcome {
                        Ok(()) => counts.answered.fetch_add(1, Ordering::Relaxed),
                        Err(detail) => {
                            counts.first_failure.lock().get_or_insert(detail);
                            counts.failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    drop(permit);
                });
            }
            if self.requests.is_empty() {
                break;
            }
        }
        // Every slot back: nothing is in flight any more.
        let all = u32::try_from(self.options.concurrency).unwrap_or(u32::MAX);
        let _ = slots.acquire_many(all).await;
        self.counts.finished.store(true, Ordering::Release);
    }

    /// Sleeps until `offset` is due at the pace, pauses included; false when stopped.
    async fn wait_until_due(
        &mut self,
        start: Instant,
        shift: &mut Duration,
        offset: Duration,
    ) -> bool {
        loop {
            if self.stop.is_cancelled() {
                return false;
            }
            if *self.paused.borrow_and_update() {
                let since = Instant::now();
                tokio::select! {
                    changed = self.paused.changed() => if changed.is_err() { return false },
                    () = self.stop.cancelled() => return false,
                }
                *shift += since.elapsed();
                continue;
            }
            let Some(due) = self.options.pace.due(offset) else {
                return true;
            };
            let at = start + *shift + due;
            if Instant::now() >= at {
                return true;
            }
            tokio::select! {
                () = tokio::time::sleep_until(at) => return true,
                changed = self.paused.changed() => if changed.is_err() { return false },
                () = self.stop.cancelled() => return false,
            }
        }
    }
}

/// Sends one request through the proxy and reads its answer to the end.
async fn send(
    client: &ReplayClient,
    proxy: SocketAddr,
    request: &ReplayRequest,
    tag: &str,
    timeout: Duration,
) -> Result<(), String> {
    let target = if request.target.starts_with('/') {
        request.target.clone()
    } else {
        format!("/{}", request.target)
    };
    let mut out = http::Request::new(Full::new(request.body.clone()));
    *out.method_mut() = request.method.clone();
    *out.uri_mut() = format!("http://{proxy}{target}")
        .parse()
        .map_err(|e| format!("request {}: target {target:?}: {e}", request.index))?;
    *out.headers_mut() = request.headers.clone();
    let host = http::HeaderValue::from_str(&request.authority).map_err(|_| {
        format!(
            "request {}: host {:?} is not a valid Host",
            request.index, request.authority
        )
    })?;
    out.headers_mut().insert(http::header::HOST, host);
    if let Ok(tag) = http::HeaderValue::from_str(tag) {
        out.headers_mut().insert(REPLAY_HEADER, tag);
    }
    let exchange = async {
        let response = client
            .request(out)
            .await
            .map_err(|e| format!("request {} to the lab at {proxy}: {e}", request.index))?;
        // Read to the end frame by frame and let go of each: the lab captures the answer,
        // the replaying client does not need to keep it (a big download would be held whole).
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            frame.map_err(|e| format!("request {}: the answer broke off: {e}", request.index))?;
        }
        Ok(())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("request {}: no answer within {timeout:?}", request.index))?
}
