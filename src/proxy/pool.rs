//! Upstream connections: one small keep-alive pool per endpoint, over hyper's HTTP/1.1
//! client connection, and one shared HTTP/2 connection (pool_h2.rs).
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
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::capture::UpstreamErrorKind;
use crate::routing::balancer::Breakers;
use crate::routing::{EndpointAddr, Upstream};

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

/// A failed send: why, and the request when it was never sent (no connection could be had),
/// so a retry can send it as it is, body still unread.
#[derive(Debug)]
pub(super) struct SendError {
    pub failure: SendFailure,
    pub unsent: Option<Request<UpstreamBody>>,
}

impl From<SendFailure> for SendError {
    fn from(failure: SendFailure) -> Self {
        Self {
            failure,
            unsent: None,
        }
    }
}

/// The keep-alive connections to one endpoint.
#[derive(Debug)]
pub(super) struct EndpointPool {
    endpoint: EndpointAddr,
    idle: Mutex<VecDeque<Idle>>,
    /// The HTTP/2 connection every HTTP/2 request to the endpoint shares, once opened.
    pub(super) h2: Mutex<Option<hyper::client::conn::http2::SendRequest<UpstreamBody>>>,
    /// When the endpoint last refused a connection, until a connection succeeds.
    refused_at: Mutex<Option<Instant>>,
    /// TLS originated on its connections, when the cluster's DestinationRule asks for it.
    pub(super) tls: Option<Arc<crate::routing::tls::UpstreamTls>>,
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<UpstreamBody>,
    since: Instant,
    /// Requests the connection has carried.
    used: u32,
}

/// How one request is sent: its timeouts, whether it is a shadow's copy, and the
/// destination whose circuit breakers it counts against.
#[derive(Debug, Clone, Copy)]
pub(super) struct SendOptions<'a> {
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// The attempt's own timeout, from the moment it has a connection to its response head.
    pub per_try_timeout: Option<Duration>,
    /// A shadow's copy (fails at once on an endpoint that just refused).
    pub shadow: bool,
    /// The destination, when it has limits to count against.
    pub cluster: Option<&'a Arc<Upstream>>,
    /// Sent as HTTP/2 (h2c, prior knowledge) instead of HTTP/1.1.
    pub http2: bool,
}

impl SendOptions<'_> {
    /// No limits and no per-try timeout.
    pub(super) fn plain(connect_timeout: Duration, shadow: bool) -> SendOptions<'static> {
        SendOptions {
            connect_timeout,
            per_try_timeout: None,
            shadow,
            cluster: None,
            http2: false,
        }
    }
}

/// A connection in use by one request; [`Pooled::release`] gives it back once the answer has
/// been read whole. Dropped instead, the connection closes when hyper is done with it.
#[derive(Debug)]
pub(super) struct Pooled {
    /// The HTTP/1.1 connection; none for a stream on the shared HTTP/2 connection.
    sender: Option<SendRequest<UpstreamBody>>,
    pool: Arc<EndpointPool>,
    used: u32,
    /// The destination's request slot and limits, when it has any.
    slot: Option<RequestSlot>,
}

impl Pooled {
    /// Returns the connection to its pool: its response has been read to the end.
    pub(super) fn release(self) {
        let Pooled {
            sender,
            pool,
            used,
            slot,
        } = self;
        let max = slot
            .as_ref()
            .and_then(|s| s.cluster.policy.limits.max_requests_per_connection);
        // maxRequestsPerConnection: a connection that has carried its share is closed.
        if let Some(sender) = sender
            && max.is_none_or(|max| used < max)
        {
            pool.give_back(sender, used);
        }
        if let Some(slot) = slot {
            slot.cluster.state.breakers.freed.notify_waiters();
        }
    }
}

/// A request counted against its destination's `http2MaxRequests` until dropped.
#[derive(Debug)]
pub(super) struct RequestSlot {
    cluster: Arc<Upstream>,
    counted: bool,
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        if self.counted {
            Breakers::give_back(&self.cluster.state.breakers.requests);
        }
    }
}

/// The failure of a request a circuit breaker turned away (Envoy's overflow).
pub(super) fn overflow(what: &str) -> SendFailure {
    (
        UpstreamErrorKind::Overflow,
        format!("circuit breaker: {what}"),
    )
}

/// Whether a request may open a connection now, or waited for one to come free.
pub(super) enum ConnectionSlot {
    /// Open one; counted against this destination's limit, if it has one.
    Open(Option<Arc<Upstream>>),
    /// A connection came free: look in the pool again.
    Wait,
}

/// Gives back a connection counted against a destination's limit, waking a waiting request.
pub(super) fn release_connection(counted: Option<&Arc<Upstream>>) {
    if let Some(cluster) = counted {
        Breakers::give_back(&cluster.state.breakers.connections);
        cluster.state.breakers.freed.notify_waiters();
    }
}

impl RequestSlot {
    /// Counts a request against `cluster`'s active-request limit, or says it overflows.
    pub(super) fn take(cluster: &Arc<Upstream>) -> Result<Self, SendFailure> {
        let limit = cluster.policy.limits.max_requests;
        let counted = limit != u32::MAX;
        if counted && !Breakers::try_take(&cluster.state.breakers.requests, limit) {
            return Err(overflow("too many active requests (http2MaxRequests)"));
        }
        Ok(Self {
            cluster: Arc::clone(cluster),
            counted,
        })
    }
}

/// The send of a request on a connection, within the per-try timeout if there is one.
/// Not an `async fn`, which would hold the send's future twice (as its argument and as
/// the local it is moved into).
pub(super) fn within_per_try<F: std::future::Future>(
    limit: Option<Duration>,
    send: F,
) -> impl std::future::Future<Output = Result<F::Output, SendFailure>> {
    use futures_util::FutureExt as _;
    use futures_util::future::Either;
    match limit {
        None => Either::Left(send.map(Ok)),
        Some(limit) => Either::Right(tokio::time::timeout(limit, send).map(move |sent| {
            sent.map_err(|_| {
                (
                    UpstreamErrorKind::Timeout,
                    format!("no response within the per-try timeout of {limit:?}"),
                )
            })
        })),
    }
}

impl EndpointPool {
    pub(super) fn new(
        endpoint: EndpointAddr,
        tls: Option<Arc<crate::routing::tls::UpstreamTls>>,
    ) -> Self {
        Self {
            tls,
            endpoint,
            idle: Mutex::new(VecDeque::new()),
            h2: Mutex::new(None),
            refused_at: Mutex::new(None),
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, VecDeque<Idle>> {
        self.idle.lock()
    }

    /// Puts a connection (back) in the idle list, unless it is closed or the list is full.
    fn give_back(&self, sender: SendRequest<UpstreamBody>, used: u32) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE_PER_ENDPOINT {
            idle.push_back(Idle {
                sender,
                since: Instant::now(),
                used,
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
    fn checkout(
        &self,
        now: Instant,
        idle_timeout: Duration,
    ) -> Option<(SendRequest<UpstreamBody>, u32)> {
        let mut idle = self.lock();
        let mut finishing = None;
        for _ in 0..idle.len() {
            let entry = idle.pop_front()?;
            if entry.sender.is_closed() || now.saturating_duration_since(entry.since) > idle_timeout
            {
                continue;
            }
            if entry.sender.is_ready() {
                if let Some(other) = finishing {
                    idle.push_back(other);
                }
                return Some((entry.sender, entry.used));
            }
            match finishing {
                None => finishing = Some(entry),
                Some(_) => idle.push_back(entry),
            }
        }
        finishing.map(|entry| (entry.sender, entry.used))
    }

    /// Sends `request` on an idle connection, or on a new one, and waits for the response
    /// head. `now` is the caller's clock reading (for the idle timeout). A `shadow` copy to
    /// an endpoint that refused a connection less than [`REFUSED_BACKOFF`] ago fails at once.
    /// With a destination that has limits, its circuit breakers are counted as Envoy's
    /// connection pool counts them: active requests (`http2MaxRequests`), connections
    /// (`maxConnections`), requests waiting for one (`http1MaxPendingRequests`).
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its arguments twice in its future (see the body)"
    )]
    pub(super) fn send(
        self: &Arc<Self>,
        mut request: Request<UpstreamBody>,
        opts: &SendOptions<'_>,
        now: Instant,
    ) -> impl std::future::Future<Output = Result<(Response<Incoming>, Pooled), SendError>> {
        // Not an `async fn`, which would hold the request twice (as its argument and as the
        // local it is moved into): this future is part of every primary's and shadow's.
        async move {
            if opts.http2 {
                // Boxed: the HTTP/1.1 send, the common one, keeps its smaller future.
                return Box::pin(self.send_h2(request, opts, now)).await;
            }
            let (slot, idle_timeout) = match opts.cluster {
                Some(cluster) => match RequestSlot::take(cluster) {
                    Ok(slot) => (Some(slot), cluster.policy.idle_timeout.min(IDLE_TIMEOUT)),
                    Err(failure) => {
                        return Err(SendError {
                            failure,
                            unsent: Some(request),
                        });
                    }
                },
                None => (None, IDLE_TIMEOUT),
            };
            loop {
                if let Some((mut sender, used)) = self.checkout(now, idle_timeout) {
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
                        let sent = match opts.per_try_timeout {
                            // Awaited where it is: through `within_per_try` the send's future,
                            // the request in it, is moved once more for every request.
                            None => Ok(sender.try_send_request(request).await),
                            limit => within_per_try(limit, sender.try_send_request(request)).await,
                        };
                        match sent {
                            Ok(Ok(response)) => {
                                return Ok((response, self.pooled(sender, used + 1, slot)));
                            }
                            Ok(Err(mut err)) => match err.take_message() {
                                // Not sent: the connection was closing. A fresh one gets it.
                                Some(unsent) => request = unsent,
                                None => return Err(classify(err.error()).into()),
                            },
                            Err(timeout) => return Err(timeout.into()),
                        }
                    } else {
                        self.give_back(sender, used);
                    }
                }
                let slot_for_connection = match self.connection_slot(opts.cluster).await {
                    Ok(ConnectionSlot::Wait) => continue,
                    Ok(ConnectionSlot::Open(counted)) => counted,
                    Err(failure) => {
                        return Err(SendError {
                            failure,
                            unsent: Some(request),
                        });
                    }
                };
                // Boxed: opening a connection (TCP, TLS, the handshake) is rare next to
                // sending on one, and its future is the largest part of this one.
                let mut sender =
                    match Box::pin(self.open_connection(opts, now, slot_for_connection)).await {
                        Ok(sender) => sender,
                        Err(failure) => {
                            return Err(SendError {
                                failure,
                                unsent: Some(request),
                            });
                        }
                    };
                return match within_per_try(opts.per_try_timeout, sender.send_request(request))
                    .await
                {
                    Ok(Ok(response)) => Ok((response, self.pooled(sender, 1, slot))),
                    Ok(Err(err)) => Err(classify(&err).into()),
                    Err(timeout) => Err(timeout.into()),
                };
            }
        }
    }

    /// Room for a new connection under the destination's `maxConnections`, or a wait as a
    /// pending request (`http1MaxPendingRequests`) for a connection to come free; past that
    /// an overflow.
    pub(super) async fn connection_slot(
        &self,
        cluster: Option<&Arc<Upstream>>,
    ) -> Result<ConnectionSlot, SendFailure> {
        let Some(cluster) = cluster else {
            return Ok(ConnectionSlot::Open(None));
        };
        let limits = cluster.policy.limits;
        let breakers = &cluster.state.breakers;
        if limits.max_connections == u32::MAX {
            return Ok(ConnectionSlot::Open(None));
        }
        if Breakers::try_take(&breakers.connections, limits.max_connections) {
            return Ok(ConnectionSlot::Open(Some(Arc::clone(cluster))));
        }
        if !Breakers::try_take(&breakers.pending, limits.max_pending) {
            return Err(overflow(
                "too many requests waiting for a connection (http1MaxPendingRequests)",
            ));
        }
        let freed = breakers.freed.notified();
        // A connection may have come free between the checks and the wait.
        if breakers
            .connections
            .load(std::sync::atomic::Ordering::Acquire)
            >= limits.max_connections
        {
            freed.await;
        }
        Breakers::give_back(&breakers.pending);
        Ok(ConnectionSlot::Wait)
    }

    /// Opens a connection for a request; a refusal is remembered for the shadows' back-off.
    async fn open_connection(
        &self,
        opts: &SendOptions<'_>,
        now: Instant,
        counted: Option<Arc<Upstream>>,
    ) -> Result<SendRequest<UpstreamBody>, SendFailure> {
        let stream = self.open_stream(opts, now, counted.as_ref()).await?;
        let io = match super::tls::secure(stream, self.tls.as_ref(), opts.connect_timeout).await {
            Ok(io) => io,
            Err(failure) => {
                release_connection(counted.as_ref());
                return Err(failure);
            }
        };
        match http1::handshake(TokioIo::new(io)).await {
            Ok((sender, connection)) => {
                spawn_connection(connection, counted);
                Ok(sender)
            }
            Err(err) => {
                release_connection(counted.as_ref());
                Err(classify(&err))
            }
        }
    }

    /// A TCP connection to the endpoint, for either protocol. A shadow's copy to an endpoint
    /// that refused one less than [`REFUSED_BACKOFF`] ago fails at once; a failure gives
    /// back the connection counted against the destination's limit.
    pub(super) async fn open_stream(
        &self,
        opts: &SendOptions<'_>,
        now: Instant,
        counted: Option<&Arc<Upstream>>,
    ) -> Result<TcpStream, SendFailure> {
        if opts.shadow
            && let Some(at) = self.refused_recently(now)
        {
            release_connection(counted);
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
        let connected = self.connect(opts.connect_timeout).await;
        *self.refused_at.lock() = match &connected {
            Err((UpstreamErrorKind::Refused, _)) => Some(Instant::now()),
            _ => None,
        };
        if connected.is_err() {
            release_connection(counted);
        }
        connected
    }

    /// When the endpoint refused a connection, if that was less than [`REFUSED_BACKOFF`]
    /// before `now`.
    fn refused_recently(&self, now: Instant) -> Option<Instant> {
        let refused_at = *self.refused_at.lock();
        refused_at.filter(|at| now.saturating_duration_since(*at) < REFUSED_BACKOFF)
    }

    /// A stream on the shared HTTP/2 connection: nothing to give back but its slot.
    pub(super) fn pooled_stream(self: &Arc<Self>, slot: Option<RequestSlot>) -> Pooled {
        Pooled {
            sender: None,
            pool: Arc::clone(self),
            used: 0,
            slot,
        }
    }

    fn pooled(
        self: &Arc<Self>,
        sender: SendRequest<UpstreamBody>,
        used: u32,
        slot: Option<RequestSlot>,
    ) -> Pooled {
        Pooled {
            sender: Some(sender),
            pool: Arc::clone(self),
            used,
            slot,
        }
    }

    /// Opens a TCP connection (resolving a DNS name first) within `timeout`.
    async fn connect(&self, timeout: Duration) -> Result<TcpStream, SendFailure> {
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
        Ok(stream)
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

/// Runs a connection's task; a connection counted against a destination's limit is given
/// back when it ends.
pub(super) fn spawn_connection<C>(connection: C, counted: Option<Arc<Upstream>>)
where
    C: std::future::Future<Output = Result<(), hyper::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "upstream connection ended with an error");
        }
        release_connection(counted.as_ref());
    });
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
