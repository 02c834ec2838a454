//! The request side: the body streams to the primary while a bounded copy is kept for the
//! shadows, the capture and a retry.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::oneshot;

use crate::capture::CapturedBody;

use super::super::join::Deliver;
use super::DRAIN_AFTER_CLIENT_LEFT;

/// What the proxy kept of a request body once the body ended (or was abandoned).
#[derive(Debug, Default)]
pub(crate) struct RequestBodyCopy {
    /// The kept chunks, shared with the primary's copy (no deep copy).
    chunks: Vec<Bytes>,
    /// Bytes in `chunks`.
    kept: usize,
    /// Bytes seen on the wire.
    total: u64,
    /// More than the buffer limit arrived: `chunks` holds only the capture prefix.
    over_limit: bool,
    /// The body arrived in full.
    complete: bool,
    /// The trailers that ended it (a gRPC client stream's, say), if any.
    trailers: Option<http::HeaderMap>,
}

impl RequestBodyCopy {
    /// An empty body that is already complete (GET and friends).
    pub(crate) fn empty() -> Self {
        Self {
            complete: true,
            ..Self::default()
        }
    }

    /// The whole body, when it arrived in full and within the limit: what shadows get.
    pub(crate) fn for_shadows(&self) -> Option<Arc<[Bytes]>> {
        (self.complete && !self.over_limit).then(|| self.chunks.iter().cloned().collect())
    }

    /// The request's trailers: router.cc copies them to every shadow.
    pub(crate) fn trailers(&self) -> Option<&http::HeaderMap> {
        self.trailers.as_ref()
    }

    /// Keeps a frame's trailers.
    fn record_trailers(&mut self, frame: &Frame<Bytes>) {
        if let Some(trailers) = frame.trailers_ref() {
            self.trailers = Some(trailers.clone());
        }
    }

    /// True when the body arrived in full.
    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// True when the body was bigger than the buffer limit.
    pub(crate) fn is_over_limit(&self) -> bool {
        self.over_limit
    }

    /// The first `cap` bytes, copied so the capture does not pin the connection's buffers.
    pub(crate) fn captured(&self, cap: usize) -> CapturedBody {
        let mut bytes = BytesMut::with_capacity(self.kept.min(cap));
        for chunk in &self.chunks {
            let room = cap - bytes.len();
            if room == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        CapturedBody {
            truncated: (bytes.len() as u64) < self.total,
            bytes: bytes.freeze(),
            total_len: self.total,
        }
    }

    fn record(&mut self, data: &Bytes, limit: usize, cap: usize) {
        self.total += data.len() as u64;
        if !self.over_limit && self.kept + data.len() <= limit {
            self.chunks.push(data.clone());
            self.kept += data.len();
            return;
        }
        if !self.over_limit {
            // Past the mirror limit no shadow will get this body: keep only what the
            // capture shows, so a huge upload is not held in memory.
            self.over_limit = true;
            let mut kept = 0;
            self.chunks.retain_mut(|chunk| {
                if kept >= cap {
                    return false;
                }
                if kept + chunk.len() > cap {
                    chunk.truncate(cap - kept);
                }
                kept += chunk.len();
                true
            });
            self.kept = kept;
        }
        if self.kept < cap {
            let take = data.len().min(cap - self.kept);
            self.chunks.push(data.slice(..take));
            self.kept += take;
        }
    }
}

/// The client's request body on its way to the primary, copied (by reference) up to a limit.
#[derive(Debug)]
pub(crate) struct TeeBody {
    /// `None` only once dropped (the rest may be read by a spawned task).
    inner: Option<Incoming>,
    copy: RequestBodyCopy,
    limit: usize,
    cap: usize,
    /// The client's body failed (aborted upload): there is nothing more to read.
    failed: bool,
    done: Option<Deliver<RequestBodyCopy>>,
    /// Dropped once the body has been read to its end (or given up on).
    read: Option<oneshot::Sender<()>>,
    /// Where a retry gets the whole body (`None` when it was not all kept).
    replay: Option<oneshot::Sender<Replay>>,
}

/// The body a retry sends again: the kept chunks, or `None` when the body was above the
/// buffer limit or never arrived whole (Envoy then abandons the retry).
pub(crate) type Replay = Option<Arc<[Bytes]>>;

impl TeeBody {
    /// Wraps `inner`, keeping up to `limit` bytes (or only `cap` once past it), and sends
    /// the copy on `done` when the body ends or is abandoned; `read` is dropped then too.
    pub(crate) fn new(
        inner: Incoming,
        limit: usize,
        cap: usize,
        done: Deliver<RequestBodyCopy>,
        read: oneshot::Sender<()>,
    ) -> Self {
        Self {
            inner: Some(inner),
            copy: RequestBodyCopy::default(),
            limit: limit.max(cap),
            cap,
            failed: false,
            done: Some(done),
            read: Some(read),
            replay: None,
        }
    }

    /// Also delivers the whole body to a retry, on `replay`.
    pub(crate) fn with_replay(mut self, replay: oneshot::Sender<Replay>) -> Self {
        self.replay = Some(replay);
        self
    }

    fn finish(&mut self, complete: bool) {
        self.read = None;
        if let Some(done) = self.done.take() {
            let mut copy = std::mem::take(&mut self.copy);
            copy.complete = complete;
            if let Some(replay) = self.replay.take() {
                let _ = replay.send(copy.for_shadows());
            }
            done.send(copy);
        }
    }

    fn inner_ended(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }
}

/// Reads the rest of a client's body that the primary did not consume (it failed, or
/// answered early), so the shadows still get their verbatim copy.
async fn drain_request(
    mut inner: Incoming,
    mut copy: RequestBodyCopy,
    limit: usize,
    cap: usize,
    done: Deliver<RequestBodyCopy>,
    read: Option<oneshot::Sender<()>>,
    replay: Option<oneshot::Sender<Replay>>,
) {
    let read_rest = async {
        while let Some(frame) = http_body_util::BodyExt::frame(&mut inner).await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        copy.record(data, limit, cap);
                    } else {
                        copy.record_trailers(&frame);
                    }
                }
                Err(_) => return false,
            }
        }
        true
    };
    copy.complete = tokio::time::timeout(DRAIN_AFTER_CLIENT_LEFT, read_rest)
        .await
        .unwrap_or(false);
    drop(read);
    if let Some(replay) = replay {
        let _ = replay.send(copy.for_shadows());
    }
    done.send(copy);
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.copy.record(data, this.limit, this.cap);
                } else {
                    this.copy.record_trailers(&frame);
                }
                if this.inner_ended() {
                    this.finish(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                this.failed = true;
                this.finish(false);
                Poll::Ready(Some(Err(err)))
            }
            Poll::Ready(None) => {
                this.finish(true);
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

impl Drop for TeeBody {
    fn drop(&mut self) {
        if self.done.is_none() {
            return;
        }
        if self.inner_ended() || self.failed {
            let complete = !self.failed;
            self.finish(complete);
            return;
        }
        match (self.inner.take(), tokio::runtime::Handle::try_current()) {
            (Some(inner), Ok(runtime)) => {
                if let Some(done) = self.done.take() {
                    let copy = std::mem::take(&mut self.copy);
                    let read = self.read.take();
                    let replay = self.replay.take();
                    runtime.spawn(drain_request(
                        inner, copy, self.limit, self.cap, done, read, replay,
                    ));
                }
            }
            _ => self.finish(false),
        }
    }
}

/// A request body made of chunks that are already in memory: what a shadow gets.
#[derive(Debug)]
pub(crate) struct ChunkBody {
    chunks: Arc<[Bytes]>,
    next: usize,
    remaining: u64,
    /// Sent after the last chunk, when the client's request ended with them.
    trailers: Option<http::HeaderMap>,
}

impl ChunkBody {
    /// A body that yields `chunks` in order.
    pub(crate) fn new(chunks: Arc<[Bytes]>) -> Self {
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Self {
            chunks,
            next: 0,
            remaining,
            trailers: None,
        }
    }

    /// The same chunks, then `trailers`.
    pub(crate) fn with_trailers(mut self, trailers: Option<http::HeaderMap>) -> Self {
        self.trailers = trailers;
        self
    }
}

impl Body for ChunkBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        while let Some(chunk) = this.chunks.get(this.next) {
            this.next += 1;
            if !chunk.is_empty() {
                this.remaining -= chunk.len() as u64;
                return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
            }
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// The body of a request the proxy sends upstream.
#[derive(Debug)]
pub(crate) enum UpstreamBody {
    /// No body.
    Empty,
    /// The client's body, streamed through. Boxed: the request is moved many times on its
    /// way out (into hyper's send and its queue), and most requests have no body.
    Tee(Box<TeeBody>),
    /// A buffered copy (shadows).
    Chunks(ChunkBody),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Empty => Poll::Ready(None),
            UpstreamBody::Tee(body) => Pin::new(body.as_mut()).poll_frame(cx),
            UpstreamBody::Chunks(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Empty => true,
            UpstreamBody::Tee(body) => body.is_end_stream(),
            UpstreamBody::Chunks(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Tee(body) => body.size_hint(),
            UpstreamBody::Chunks(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_within_the_limit_keeps_every_chunk_by_reference() {
        let mut copy = RequestBodyCopy::default();
        let a = Bytes::from_static(b"hello ");
        let b = Bytes::from_static(b"world");
        copy.record(&a, 100, 4);
        copy.record(&b, 100, 4);
        copy.complete = true;
        let shadow = copy.for_shadows().unwrap_or_else(|| Arc::from(Vec::new()));
        assert_eq!(shadow.len(), 2);
        assert_eq!(shadow[0].as_ptr(), a.as_ptr(), "no deep copy for shadows");
        let captured = copy.captured(4);
        assert_eq!(&captured.bytes[..], b"hell");
        assert!(captured.truncated);
        assert_eq!(captured.total_len, 11);
    }

    #[test]
    fn copy_past_the_limit_keeps_only_the_capture_prefix() {
        let mut copy = RequestBodyCopy::default();
        for _ in 0..10 {
            copy.record(&Bytes::from(vec![7u8; 1000]), 2500, 1500);
        }
        copy.complete = true;
        assert!(copy.is_over_limit());
        assert!(copy.for_shadows().is_none());
        assert_eq!(copy.kept, 1500);
        assert_eq!(copy.total, 10_000);
        let captured = copy.captured(1500);
        assert_eq!(captured.bytes.len(), 1500);
        assert!(captured.truncated);
    }
}
