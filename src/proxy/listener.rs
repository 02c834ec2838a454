//! Accepting and serving: HTTP/1.1 with keep-alive and h2c on one port, graceful stop.
//!
//! The accept loop runs on the caller's runtime and deals each connection, round robin, to
//! one of the proxy's worker threads. Each worker is a single-threaded tokio runtime of its
//! own, as nginx runs one event loop per worker process: a connection, its requests, their
//! exchange tasks and shadows, and the upstream connections they use (each worker keeps its
//! own pools) all live on one thread. On a multi-threaded runtime the same work had tasks
//! woken across threads several times per request (a spawned exchange task, the upstream
//! connection's task, work stealing), each a futex call and an inter-processor interrupt;
//! on two cores that took a fifth of the proxy's CPU time (docs/PERFORMANCE.md).

use std::cell::Cell;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ProxyError, Shared};

/// How long open connections get to finish their requests once the lab stops.
pub(super) const GRACE: Duration = Duration::from_secs(5);

/// hyper's smallest read buffer; a smaller header limit would make it panic.
const MIN_HEADER_BYTES: usize = 8192;

/// Most worker threads by default: far more traffic than a lab needs, few threads.
const MAX_DEFAULT_WORKERS: usize = 4;

thread_local! {
    /// The index of the worker thread running this code (0 on any other thread).
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The index of the current worker thread, for per-worker state such as connection pools.
pub(super) fn worker_index() -> usize {
    WORKER.with(Cell::get)
}

/// One worker per two CPUs (at least one, up to [`MAX_DEFAULT_WORKERS`]). Unlike a proxy
/// in a cluster, the lab shares its machine with the services it measures and with their
/// client: the primary, the shadows and the load generator need CPUs too. On two cores one
/// worker gave the same throughput as two, with a quarter of the tail latency (workers
/// preempted by the upstreams hold their connections' requests meanwhile).
pub(super) fn default_workers() -> usize {
    (std::thread::available_parallelism().map_or(1, std::num::NonZero::get) / 2)
        .clamp(1, MAX_DEFAULT_WORKERS)
}

/// How often [`keep_timer_wheel_set`] wakes: well within the header-read timeout, so its
/// timer is always the runtime's next.
fn wheel_tick(header_read_timeout: Duration) -> Duration {
    (header_read_timeout / 2).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Keeps one timer always set on a worker's runtime. When a runtime parks with no timer
/// set, the next timer registered wakes its driver with a write to its eventfd (tokio's
/// `time::Driver::reregister` unparks whenever the new deadline is before the wheel's next
/// wake, and there is none). hyper registers a header-read timer for every request head it
/// waits for, so under load that was a system call for nearly every other request (perf:
/// `Sleep::poll` → `reregister` → `mio::Waker::wake`). With this timer set, and due before
/// any header-read timer, those registrations leave the driver alone.
async fn keep_timer_wheel_set(period: Duration) {
    loop {
        tokio::time::sleep(period).await;
    }
}

/// The proxy's worker threads.
pub(super) struct Workers {
    /// Where the accept loop sends each worker its connections.
    queues: Vec<mpsc::UnboundedSender<std::net::TcpStream>>,
    /// Workers still serving connections (not yet past their grace period).
    serving: Arc<AtomicUsize>,
    /// Cancelled when the workers may end: their exchanges in flight are done, or the
    /// proxy is dropped. Until then they keep running what is left after the stop.
    release: CancellationToken,
    /// Each worker's runtime, for its task count.
    runtimes: Vec<tokio::runtime::Handle>,
}

impl Workers {
    /// Starts `count` workers serving the connections they are sent until `cancel` fires.
    pub(super) fn start(
        count: usize,
        shared: &Arc<Shared>,
        cancel: &CancellationToken,
    ) -> Result<Workers, ProxyError> {
        let count = count.max(1);
        let serving = Arc::new(AtomicUsize::new(0));
        let release = CancellationToken::new();
        let mut workers = Workers {
            queues: Vec::with_capacity(count),
            serving: Arc::clone(&serving),
            release: release.clone(),
            runtimes: Vec::with_capacity(count),
        };
        for index in 0..count {
            let failed = |source| ProxyError::Workers { source };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(failed)?;
            let handle = runtime.handle().clone();
            // The thread takes its runtime from here. Should the thread fail to start, the
            // runtime is shut down in the background: dropped here, inside the caller's
            // runtime, it would panic.
            let slot = Arc::new(Mutex::new(Some(runtime)));
            let slot_for_thread = Arc::clone(&slot);
            let (queue, streams) = mpsc::unbounded_channel();
            let (shared, cancel, release) = (Arc::clone(shared), cancel.clone(), release.clone());
            serving.fetch_add(1, Ordering::SeqCst);
            let serving_here = Arc::clone(&serving);
            let thread = std::thread::Builder::new()
                .name(format!("mirrorlab-proxy-{index}"))
                .spawn(move || {
                    let taken = slot_for_thread.lock().take();
                    let Some(runtime) = taken else {
                        return;
                    };
                    WORKER.with(|worker| worker.set(index));
                    runtime.block_on(async move {
                        let period = wheel_tick(shared.settings.header_read_timeout);
                        tokio::select! {
                            () = serve(streams, shared, cancel) => {}
                            () = keep_timer_wheel_set(period) => {}
                        }
                        serving_here.fetch_sub(1, Ordering::SeqCst);
                        release.cancelled().await;
                    });
                });
            match thread {
                // Not joined: a worker ends by itself once released (or once its queue
                // closes), within the grace period.
                Ok(_detached) => {
                    workers.queues.push(queue);
                    workers.runtimes.push(handle);
                }
                Err(source) => {
                    serving.fetch_sub(1, Ordering::SeqCst);
                    let runtime = slot.lock().take();
                    if let Some(runtime) = runtime {
                        runtime.shutdown_background();
                    }
                    // The ones already started end when `workers` is dropped.
                    return Err(ProxyError::Workers { source });
                }
            }
        }
        Ok(workers)
    }

    /// The queues the accept loop deals connections to, one per worker.
    pub(super) fn queues(&self) -> Vec<mpsc::UnboundedSender<std::net::TcpStream>> {
        self.queues.clone()
    }

    /// How many workers there are.
    pub(super) fn count(&self) -> usize {
        self.queues.len()
    }

    /// Tasks alive on the workers' runtimes: client connections, exchanges in flight,
    /// upstream connections (pooled ones included).
    pub(super) fn tasks(&self) -> usize {
        self.runtimes
            .iter()
            .map(|runtime| runtime.metrics().num_alive_tasks())
            .sum()
    }

    /// Workers still serving connections.
    pub(super) fn serving(&self) -> usize {
        self.serving.load(Ordering::SeqCst)
    }

    /// Lets the workers end once they have stopped serving.
    pub(super) fn release(&self) {
        self.release.cancel();
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.release.cancel();
        // Closing the queues ends the workers' loops even if nobody cancelled them.
        self.queues.clear();
    }
}

/// Accepts connections until `cancel` fires and deals them to the workers in turn.
pub(super) async fn accept(
    listener: TcpListener,
    queues: Vec<mpsc::UnboundedSender<std::net::TcpStream>>,
    cancel: CancellationToken,
) {
    let mut next = 0;
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(err) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        // Still non-blocking: the worker registers it with its own runtime.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "cannot hand a connection to a worker");
                continue;
            }
        };
        let Some(queue) = queues.get(next % queues.len().max(1)) else {
            break;
        };
        next = next.wrapping_add(1);
        if queue.send(stream).is_err() {
            tracing::warn!("a proxy worker has stopped; closing the connection it was dealt");
        }
    }
}

/// A worker's loop: serves the connections it is dealt until `cancel` fires, then lets
/// open ones finish within [`GRACE`].
async fn serve(
    mut streams: mpsc::UnboundedReceiver<std::net::TcpStream>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.settings.header_read_timeout)
        // hyper answers 431 when the head does not fit its read buffer; the buffer only
        // bounds what is held at once, so bodies still stream in chunks of this size.
        .max_buf_size(
            shared
                .settings
                .max_request_header_bytes
                .max(MIN_HEADER_BYTES),
        );
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(
            u32::try_from(shared.settings.max_request_header_bytes).unwrap_or(u32::MAX),
        );
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => break,
            stream = streams.recv() => match stream {
                Some(stream) => stream,
                None => break,
            },
        };
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "a proxy worker cannot take a connection");
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let client = stream.peer_addr().ok();
        let service = service_fn(move |request| {
            let shared = Arc::clone(&shared);
            async move { Ok::<_, Infallible>(shared.handle(request, client).await) }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "client connection ended with an error");
            }
        });
    }
    drop(streams);
    if tokio::time::timeout(GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish within {GRACE:?}; closing them");
    }
}
