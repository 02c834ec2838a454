//! Upstream connections: one small keep-alive pool per endpoint, over hyper's HTTP/1.1
//! client connection.
//!
//! hyper-util's general-purpose client cost about 8,000 instructions per upstream request
//! here: it hashes its pool key with SipHash on every checkout and return, and spawns a
//! task per response to put the connection back once it is idle. The proxy already knows
//! the endpoint (and keeps its rendered authority), and knows when a response body has been
//! read to its end, so the pool is a list per endpoint: a checkout takes the oldest idle
//! connection that is ready, and the body that read the answer gives it back.
//!
//! Like Envoy (and hyper-util's `retry_canceled_requests`), a request that a reused
//! connection refused before sending anything (the upstream had closed it) is sent again on
//! a fresh connection; a request that was sent is never repeated.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::capture::UpstreamErrorKind;
use crate::routing::EndpointAddr;

use super::body::UpstreamBody;
use super::error::classify;

/// Idle connections kept per endpoint; past this a returned connection is closed.
const MAX_IDLE_PER_ENDPOINT: usize = 256;

/// How long a connection may stay idle before it is not reused: below the keep-alive
/// timeouts of common servers (nginx 75 s), so the proxy does not send on a connection the
/// upstream is closing.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// After an endpoint refuses a connection, shadow copies to it fail at once for this long
/// instead of each trying to connect: a shadow that is down must not cost the proxy a
/// connection attempt per copy (two system calls, a socket and a wake-up each). Primaries
/// are always tried: their client is waiting for the real answer.
pub(super) const REFUSED_BACKOFF: Duration = Duration::from_millis(250);

/// How long a request waits for a pooled connection that is finishing its previous
/// exchange before opening a new one instead.
const FINISHING_WAIT: Duration = Duration::from_millis(5);

/// Why an upstream request failed, sorted for the capture and the client's status.
pub(super) type SendFailure = (UpstreamErrorKind, String);

/// The keep-alive connections to one endpoint.
#[derive(Debug)]
pub(super) struct EndpointPool {
    endpoint: EndpointAddr,
    idle: Mutex<VecDeque<Idle>>,
    /// When the endpoint last refused a connection, until a connection succeeds.
    refused_at: Mutex<Option<Instant>>,
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<UpstreamBody>,
    since: Instant,
}

/// A connection in use by one request; [`Pooled::release`] gives it back once the answer has
/// been read whole. Dropped instead, the connection closes when hyper is done with it.
#[derive(Debug)]
pub(super) struct Pooled {
    sender: SendRequest<UpstreamBody>,
    pool: Arc<EndpointPool>,
}

impl Pooled {
    /// Returns the connection to its pool: its response has been read to the end.
    pub(super) fn release(self) {
        self.pool.give_back(self.sender);
    }
}

impl EndpointPool {
    pub(super) fn new(endpoint: EndpointAddr) -> Self {
        Self {
            endpoint,
            idle: Mutex::new(VecDeque::new()),
            refused_at: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        // Only whole entries are pushed and popped: a panic elsewhere leaves nothing torn.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts a connection (back) in the idle list, unless it is closed or the list is full.
    fn give_back(&self, sender: SendRequest<UpstreamBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE_PER_ENDPOINT {
            idle.push_back(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Connections idle in the pool (for tests and counters).
    #[cfg(test)]
    fn idle_len(&self) -> usize {
        self.lock().len()
    }

    /// The oldest idle connection that can take a request now, else the oldest one still
    /// finishing its previous answer (its body has been read; its task has yet to notice).
    /// Closed and expired connections are dropped on the way.
    fn checkout(&self, now: Instant) -> Option<SendRequest<UpstreamBody>> {
        let mut idle = self.lock();
        let mut finishing = None;
        for _ in 0..idle.len() {
            let entry = idle.pop_front()?;
            if entry.sender.is_closed() || now.saturating_duration_since(entry.since) > IDLE_TIMEOUT
            {
                continue;
            }
            if entry.sender.is_ready() {
                if let Some(other) = finishing {
                    idle.push_back(other);
                }
                return Some(entry.sender);
            }
            match finishing {
                None => finishing = Some(entry),
                Some(_) => idle.push_back(entry),
            }
        }
        finishing.map(|entry| entry.sender)
    }

    /// Sends `request` on an idle connection, or on a new one, and waits for the response
    /// head. `now` is the caller's clock reading (for the idle timeout). A `shadow` copy to
    /// an endpoint that refused a connection less than [`REFUSED_BACKOFF`] ago fails at once.
    pub(super) async fn send(
        self: &Arc<Self>,
        mut request: Request<UpstreamBody>,
        connect_timeout: Duration,
        now: Instant,
        shadow: bool,
    ) -> Result<(Response<Incoming>, Pooled), SendFailure> {
        if let Some(mut sender) = self.checkout(now) {
            // Waiting for a connection that is finishing is far cheaper than opening one,
            // and keeps the pool at the concurrency the upstream actually sees; but only
            // briefly: one whose upstream answered before reading a long upload is still
            // sending it, and is given back rather than waited for.
            let ready = sender.is_ready()
                || matches!(
                    tokio::time::timeout(FINISHING_WAIT, sender.ready()).await,
                    Ok(Ok(()))
                );
            if ready {
                match sender.try_send_request(request).await {
                    Ok(response) => return Ok((response, self.pooled(sender))),
                    Err(mut err) => match err.take_message() {
                        // Not sent: the connection was closing. A fresh one gets it.
                        Some(unsent) => request = unsent,
                        None => return Err(classify(err.error())),
                    },
                }
            } else {
                self.give_back(sender);
            }
        }
        if shadow && let Some(at) = self.refused_recently(now) {
            return Err((
                UpstreamErrorKind::Refused,
                format!(
                    "not sent: {} refused a connection {} ms ago (copies fail at once for {} ms after a refusal)",
                    self.endpoint,
                    now.saturating_duration_since(at).as_millis(),
                    REFUSED_BACKOFF.as_millis()
                ),
            ));
        }
        let connected = self.connect(connect_timeout).await;
        *self
            .refused_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = match &connected {
            Err((UpstreamErrorKind::Refused, _)) => Some(Instant::now()),
            _ => None,
        };
        let mut sender = connected?;
        match sender.send_request(request).await {
            Ok(response) => Ok((response, self.pooled(sender))),
            Err(err) => Err(classify(&err)),
        }
    }

    /// When the endpoint refused a connection, if that was less than [`REFUSED_BACKOFF`]
    /// before `now`.
    fn refused_recently(&self, now: Instant) -> Option<Instant> {
        let refused_at = *self
            .refused_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        refused_at.filter(|at| now.saturating_duration_since(*at) < REFUSED_BACKOFF)
    }

    fn pooled(self: &Arc<Self>, sender: SendRequest<UpstreamBody>) -> Pooled {
        Pooled {
            sender,
            pool: Arc::clone(self),
        }
    }

    /// Opens a connection (resolving a DNS name first) within `timeout`, and starts its
    /// task.
    async fn connect(&self, timeout: Duration) -> Result<SendRequest<UpstreamBody>, SendFailure> {
        let stream = match tokio::time::timeout(timeout, self.open()).await {
            Ok(stream) => stream?,
            Err(_) => {
                return Err((
                    UpstreamErrorKind::ConnectTimeout,
                    format!("no connection within the connect timeout of {timeout:?}"),
                ));
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY on an upstream connection");
        }
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| classify(&err))?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    async fn open(&self) -> Result<TcpStream, SendFailure> {
        match &self.endpoint {
            EndpointAddr::Socket(addr) => TcpStream::connect(addr).await.map_err(|e| classify(&e)),
            EndpointAddr::Dns { host, port } => {
                let addrs = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|e| {
                        (
                            UpstreamErrorKind::Dns,
                            format!("cannot resolve {host}: {e}"),
                        )
                    })?;
                let mut last = None;
                for addr in addrs {
                    match TcpStream::connect(addr).await {
                        Ok(stream) => return Ok(stream),
                        Err(err) => last = Some(err),
                    }
                }
                Err(match last {
                    Some(err) => classify(&err),
                    None => (
                        UpstreamErrorKind::Dns,
                        format!("{host} resolves to no address"),
                    ),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Answers `hi` to every request on `listener`'s connections (to the first only, then
    /// closes, with `one_per_connection`); returns the count of connections accepted.
    fn answer_hi(listener: TcpListener, one_per_connection: bool) -> Arc<AtomicUsize> {
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while stream.read(&mut buf).await.unwrap_or(0) > 0 {
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi";
                        if stream.write_all(reply).await.is_err() || one_per_connection {
                            return;
                        }
                    }
                });
            }
        });
        accepted
    }

    /// A server answering every request with `hi`, counting connections.
    async fn server() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        (addr, answer_hi(listener, false))
    }

    fn get() -> Request<UpstreamBody> {
        Request::builder()
            .uri("/")
            .header(http::header::HOST, "test")
            .body(UpstreamBody::Empty)
            .expect("valid request")
    }

    async fn read_all(response: Response<Incoming>) -> Bytes {
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
    }

    /// Sends a primary GET on `pool` now, checks the answer is `hi`, and returns the
    /// connection it used.
    async fn get_hi(pool: &Arc<EndpointPool>) -> Pooled {
        let (response, pooled) = pool
            .send(get(), Duration::from_secs(5), Instant::now(), false)
            .await
            .expect("answer");
        assert_eq!(read_all(response).await, "hi");
        pooled
    }

    #[tokio::test]
    async fn a_released_connection_is_reused() {
        let (addr, accepted) = server().await;
        let pool = Arc::new(EndpointPool::new(EndpointAddr::Socket(addr)));
        for _ in 0..5 {
            let pooled = get_hi(&pool).await;
            pooled.release();
            // The connection's task goes idle after the body; let it run.
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_len(), 1);
    }

    #[tokio::test]
    async fn a_connection_not_released_is_not_reused() {
        let (addr, accepted) = server().await;
        let pool = Arc::new(EndpointPool::new(EndpointAddr::Socket(addr)));
        for _ in 0..3 {
            let pooled = get_hi(&pool).await;
            drop(pooled);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        assert_eq!(pool.idle_len(), 0);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced() {
        // Answers one request per connection, then closes it.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        answer_hi(listener, true);
        let pool = Arc::new(EndpointPool::new(EndpointAddr::Socket(addr)));
        for _ in 0..3 {
            let pooled = get_hi(&pool).await;
            pooled.release();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A pool for a loopback port nothing listens on (bound, then let go), and the port.
    fn refusing_pool() -> (Arc<EndpointPool>, SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        (
            Arc::new(EndpointPool::new(EndpointAddr::Socket(addr))),
            addr,
        )
    }

    #[tokio::test]
    async fn a_refused_connection_is_classified() {
        let (pool, _) = refusing_pool();
        let err = pool
            .send(get(), Duration::from_secs(5), Instant::now(), false)
            .await
            .expect_err("nothing listens");
        assert_eq!(err.0, UpstreamErrorKind::Refused, "{err:?}");
    }

    #[tokio::test]
    async fn an_expired_idle_connection_is_not_used() {
        let (addr, accepted) = server().await;
        let pool = Arc::new(EndpointPool::new(EndpointAddr::Socket(addr)));
        let (response, pooled) = pool
            .send(get(), Duration::from_secs(5), Instant::now(), false)
            .await
            .expect("answer");
        read_all(response).await;
        pooled.release();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let later = Instant::now() + IDLE_TIMEOUT + Duration::from_secs(1);
        let (response, _pooled) = pool
            .send(get(), Duration::from_secs(5), later, false)
            .await
            .expect("answer");
        read_all(response).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn copies_to_an_endpoint_that_refused_fail_at_once_until_the_backoff_ends() {
        let (pool, addr) = refusing_pool();
        let err = pool
            .send(get(), Duration::from_secs(5), Instant::now(), true)
            .await
            .expect_err("nothing listens");
        assert_eq!(err.0, UpstreamErrorKind::Refused);
        assert!(!err.1.starts_with("not sent"), "{err:?}");
        // A copy right after is not tried; a primary always is.
        let err = pool
            .send(get(), Duration::from_secs(5), Instant::now(), true)
            .await
            .expect_err("still refused");
        assert_eq!(err.0, UpstreamErrorKind::Refused);
        assert!(err.1.starts_with("not sent"), "{err:?}");
        let err = pool
            .send(get(), Duration::from_secs(5), Instant::now(), false)
            .await
            .expect_err("nothing listens");
        assert!(!err.1.starts_with("not sent"), "{err:?}");
        // The shadow comes up: once the backoff has passed, copies reach it.
        let Ok(listener) = TcpListener::bind(addr).await else {
            // Another test took the port meanwhile; nothing more to check here.
            return;
        };
        answer_hi(listener, false);
        tokio::time::sleep(REFUSED_BACKOFF + Duration::from_millis(50)).await;
        let (response, _pooled) = pool
            .send(get(), Duration::from_secs(5), Instant::now(), true)
            .await
            .expect("the shadow is back");
        assert_eq!(read_all(response).await, "hi");
    }

    #[tokio::test]
    async fn a_connection_still_sending_an_upload_is_not_waited_for() {
        // Answers as soon as a request's first bytes arrive and never reads the rest, so a
        // large upload stays stuck in the connection after its answer.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    if stream.read(&mut buf).await.unwrap_or(0) > 0 {
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi";
                        let _ = stream.write_all(reply).await;
                    }
                    // Hold the connection open without reading.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
        let pool = Arc::new(EndpointPool::new(EndpointAddr::Socket(addr)));
        let upload: Arc<[Bytes]> = Arc::from(vec![Bytes::from(vec![b'x'; 32 << 20])]);
        let post = Request::builder()
            .method("POST")
            .uri("/")
            .header(http::header::HOST, "test")
            .header(http::header::CONTENT_LENGTH, 32 << 20)
            .body(UpstreamBody::Chunks(super::super::body::ChunkBody::new(
                upload,
            )))
            .expect("valid request");
        let (response, pooled) = pool
            .send(post, Duration::from_secs(5), Instant::now(), false)
            .await
            .expect("answered early");
        assert_eq!(read_all(response).await, "hi");
        pooled.release();
        // The first connection is still writing the upload: the next request gets a new one.
        let (response, _pooled) = tokio::time::timeout(
            Duration::from_secs(5),
            pool.send(get(), Duration::from_secs(5), Instant::now(), false),
        )
        .await
        .expect("not stuck behind the upload")
        .expect("answer");
        assert_eq!(read_all(response).await, "hi");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }
}
