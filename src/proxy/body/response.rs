//! The response side: the primary's answer streams to the client while its first bytes are
//! captured, within the route timeout.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::capture::{
    CapturedBody, CapturedResponse, UpstreamErrorKind, UpstreamFailure, UpstreamOutcome,
};

use super::super::error::classify;
use super::super::join::{Deliver, PrimaryOutcome, Retried};
use super::super::pool::Pooled;
use super::DRAIN_AFTER_CLIENT_LEFT;

/// Collects up to `cap` bytes of a body while it streams, and counts the rest.
#[derive(Debug)]
pub(crate) struct BodyCapture {
    bytes: BytesMut,
    total: u64,
    cap: usize,
}

impl BodyCapture {
    /// An empty capture keeping at most `cap` bytes.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            bytes: BytesMut::new(),
            total: 0,
            cap,
        }
    }

    /// Notes one data chunk.
    pub(crate) fn record(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let room = self.cap - self.bytes.len();
        if room > 0 {
            self.bytes.extend_from_slice(&data[..data.len().min(room)]);
        }
    }

    /// The captured body so far.
    pub(crate) fn take(&mut self) -> CapturedBody {
        let bytes = std::mem::take(&mut self.bytes).freeze();
        CapturedBody {
            truncated: (bytes.len() as u64) < self.total,
            bytes,
            total_len: self.total,
        }
    }
}

/// The head of an upstream response and when it arrived, kept until its body ends.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    /// Status code.
    pub status: http::StatusCode,
    /// Headers as the upstream sent them (hop-by-hop removed).
    pub headers: http::HeaderMap,
    /// When the request was sent.
    pub sent_at: Instant,
    /// Time from sending to the response head.
    pub ttfb: Duration,
    /// The HTTP version the upstream answered in.
    pub version: http::Version,
    /// The trailers, once the body has ended with them.
    pub trailers: Option<Box<http::HeaderMap>>,
}

impl ResponseHead {
    /// The captured response once the body is done.
    pub(crate) fn into_response(self, body: CapturedBody) -> CapturedResponse {
        CapturedResponse {
            trailers: self.trailers,
            status: self.status,
            headers: self.headers,
            body,
            ttfb: self.ttfb,
            total: self.sent_at.elapsed(),
            version: self.version,
        }
    }

    /// A failure midway through the body, keeping what arrived.
    pub(crate) fn into_failure(
        self,
        kind: UpstreamErrorKind,
        detail: String,
        body: CapturedBody,
    ) -> UpstreamFailure {
        let elapsed = self.sent_at.elapsed();
        UpstreamFailure {
            kind,
            detail,
            elapsed,
            partial: Some(self.into_response(body)),
        }
    }
}

/// The error a response body ends with on its way to the client: the upstream's, or the
/// route's timeout cutting it.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// When the primary's whole answer is due: the route's `timeout` counts from the moment the
/// request went upstream to the end of the response, as Envoy's route timeout does, not
/// only to its head.
#[derive(Debug)]
pub(crate) struct Deadline {
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl Deadline {
    /// `limit` after `sent_at`.
    pub(in crate::proxy) fn new(sent_at: Instant, limit: Duration) -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
                sent_at + limit,
            ))),
            limit,
        }
    }

    fn passed(&mut self, cx: &mut Context<'_>) -> bool {
        self.sleep.as_mut().poll(cx).is_ready()
    }

    fn detail(&self) -> String {
        format!(
            "the response did not end within the route timeout of {:?}",
            self.limit
        )
    }
}

/// The primary's response body on its way to the client, with its first bytes captured.
#[derive(Debug)]
pub(crate) struct CaptureBody {
    /// `None` once dropped (the rest may be drained by a spawned task) or cut at the
    /// deadline.
    inner: Option<Incoming>,
    head: Option<ResponseHead>,
    capture: BodyCapture,
    done: Option<Deliver<PrimaryOutcome>>,
    /// What retries changed, delivered with the outcome.
    retried: Option<Box<Retried>>,
    /// The upstream connection, given back to its pool once the body has been read whole.
    connection: Option<Pooled>,
    /// The route's timeout, when it has one.
    deadline: Option<Deadline>,
}

impl CaptureBody {
    /// Wraps the primary's body; the outcome goes to `done` when the body ends. With a
    /// `deadline`, a body still unfinished then is cut: the client sees its response end
    /// in an error and the capture records a timeout with what arrived.
    pub(in crate::proxy) fn new(
        inner: Incoming,
        head: ResponseHead,
        cap: usize,
        done: Deliver<PrimaryOutcome>,
        connection: Pooled,
        deadline: Option<Deadline>,
    ) -> Self {
        Self {
            inner: Some(inner),
            head: Some(head),
            capture: BodyCapture::new(cap),
            done: Some(done),
            retried: None,
            connection: Some(connection),
            deadline,
        }
    }

    /// Notes what retries changed, delivered with the outcome.
    pub(in crate::proxy) fn with_retried(mut self, retried: Option<Box<Retried>>) -> Self {
        self.retried = retried;
        self
    }

    fn finish(&mut self, failure: Option<(UpstreamErrorKind, String)>) {
        // A connection whose answer failed midway is not reused.
        let connection = self.connection.take();
        if failure.is_none()
            && let Some(connection) = connection
        {
            connection.release();
        }
        let (Some(head), Some(done)) = (self.head.take(), self.done.take()) else {
            return;
        };
        done.send(PrimaryOutcome {
            outcome: outcome(head, self.capture.take(), failure),
            retried: self.retried.take(),
        });
    }

    fn inner_ended(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }
}

fn outcome(
    head: ResponseHead,
    body: CapturedBody,
    failure: Option<(UpstreamErrorKind, String)>,
) -> UpstreamOutcome {
    match failure {
        None => UpstreamOutcome::Response(head.into_response(body)),
        Some((kind, detail)) => UpstreamOutcome::Failed(head.into_failure(kind, detail, body)),
    }
}

/// Reads the rest of a primary's body whose client went away, then reports the outcome.
/// The route's deadline, if any, still holds.
async fn drain(
    mut inner: Incoming,
    head: ResponseHead,
    mut capture: BodyCapture,
    done: Deliver<PrimaryOutcome>,
    retried: Option<Box<Retried>>,
    connection: Option<Pooled>,
    deadline: Option<Deadline>,
) {
    let read_rest = async {
        while let Some(frame) = http_body_util::BodyExt::frame(&mut inner).await {
            let frame = frame.map_err(|err| classify(&err))?;
            if let Some(data) = frame.data_ref() {
                capture.record(data);
            }
        }
        Ok(())
    };
    let route_timeout = async {
        match deadline {
            Some(mut deadline) => {
                std::future::poll_fn(|cx| {
                    if deadline.passed(cx) {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                deadline.detail()
            }
            None => std::future::pending().await,
        }
    };
    let failure = tokio::select! {
        read = tokio::time::timeout(DRAIN_AFTER_CLIENT_LEFT, read_rest) => match read {
            Ok(Ok(())) => None,
            Ok(Err(failure)) => Some(failure),
            Err(_) => Some((
                UpstreamErrorKind::Other,
                format!(
                    "the client went away and the rest of the response did not arrive within {DRAIN_AFTER_CLIENT_LEFT:?}"
                ),
            )),
        },
        detail = route_timeout => Some((UpstreamErrorKind::Timeout, detail)),
    };
    if failure.is_none()
        && let Some(connection) = connection
    {
        connection.release();
    }
    done.send(PrimaryOutcome {
        outcome: outcome(head, capture.take(), failure),
        retried,
    });
}

impl Body for CaptureBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.passed(cx)
        {
            let detail = deadline.detail();
            // Cut: the upstream connection, mid-answer, is closed rather than reused.
            this.inner = None;
            this.finish(Some((UpstreamErrorKind::Timeout, detail.clone())));
            return Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                detail,
            )))));
        }
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.capture.record(data);
                } else if let (Some(trailers), Some(head)) =
                    (frame.trailers_ref(), this.head.as_mut())
                {
                    head.trailers = Some(Box::new(crate::capture::owned_headers(trailers)));
                }
                if this.inner_ended() {
                    this.finish(None);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                this.finish(Some(classify(&err)));
                Poll::Ready(Some(Err(Box::new(err))))
            }
            Poll::Ready(None) => {
                this.finish(None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner_ended()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for CaptureBody {
    fn drop(&mut self) {
        if self.inner_ended() {
            self.finish(None);
            return;
        }
        // The client left before the end (or never read the body). The primary's answer
        // is still worth having whole: read the rest off the request path.
        let parts = (
            self.inner.take(),
            self.head.take(),
            self.done.take(),
            tokio::runtime::Handle::try_current(),
        );
        match parts {
            (Some(inner), Some(head), Some(done), Ok(runtime)) => {
                let capture = std::mem::replace(&mut self.capture, BodyCapture::new(0));
                let connection = self.connection.take();
                let deadline = self.deadline.take();
                let retried = self.retried.take();
                runtime.spawn(drain(
                    inner, head, capture, done, retried, connection, deadline,
                ));
            }
            (_, head, done, _) => {
                self.head = head;
                self.done = done;
                self.finish(Some((
                    UpstreamErrorKind::Other,
                    "the client went away before the end of the response".to_owned(),
                )));
            }
        }
    }
}

/// The body of a response the proxy sends to its client.
#[derive(Debug)]
pub struct ProxyBody(ProxyBodyKind);

#[derive(Debug)]
enum ProxyBodyKind {
    /// The primary's body, streamed. Boxed: the response is moved several times through
    /// hyper's dispatch, and an allocation costs less than those copies of its state.
    Upstream(Box<CaptureBody>),
    /// A body the proxy wrote itself (404, 502, ...).
    Local(Option<Bytes>),
}

impl ProxyBody {
    /// A body the proxy writes itself.
    pub fn text(text: impl Into<Bytes>) -> Self {
        ProxyBody(ProxyBodyKind::Local(Some(text.into())))
    }

    /// The primary's body, streamed through the capture.
    pub(crate) fn upstream(body: CaptureBody) -> Self {
        ProxyBody(ProxyBodyKind::Upstream(Box::new(body)))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.get_mut().0 {
            ProxyBodyKind::Upstream(body) => Pin::new(body.as_mut()).poll_frame(cx),
            ProxyBodyKind::Local(text) => Poll::Ready(text.take().map(|t| Ok(Frame::data(t)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            ProxyBodyKind::Upstream(body) => body.is_end_stream(),
            ProxyBodyKind::Local(text) => text.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            ProxyBodyKind::Upstream(body) => body.size_hint(),
            ProxyBodyKind::Local(text) => {
                SizeHint::with_exact(text.as_ref().map_or(0, |t| t.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_capture_counts_past_its_cap() {
        let mut capture = BodyCapture::new(3);
        capture.record(b"ab");
        capture.record(b"cdef");
        let body = capture.take();
        assert_eq!(&body.bytes[..], b"abc");
        assert_eq!(body.total_len, 6);
        assert!(body.truncated);
    }
}
