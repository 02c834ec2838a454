//! Body plumbing: the request body streams to the primary while a bounded copy is kept for
//! the shadows and the capture; the primary's response streams to the client while its
//! first bytes are captured.

use std::time::Duration;

mod request;
mod response;

pub(crate) use request::{ChunkBody, Replay, RequestBodyCopy, TeeBody, UpstreamBody};
pub use response::ProxyBody;
pub(crate) use response::{BodyCapture, CaptureBody, Deadline, ResponseHead};

/// How long the proxy keeps reading a body nobody else reads any more (the client left
/// during the primary's answer, or the primary stopped reading the request), so the
/// capture and the shadows still get all of it.
const DRAIN_AFTER_CLIENT_LEFT: Duration = Duration::from_secs(10);
