//! Traffic you already have, replayed through the lab: HAR 1.2 files (browser DevTools,
//! HTTP Toolkit, mitmproxy), GoReplay `.gor` captures and the lab's own sessions.
//!
//! A [`Traffic`] is read whole and checked before anything is sent: a file with one bad
//! entry is refused, with its file:line and what is wrong. Its requests keep their method,
//! target, headers, body and original offset; credentials are stripped by the HAR export's
//! rules unless kept. [`runner`] sends them through a running lab's proxy at the original
//! pace, faster, or as fast as a concurrency limit allows; [`session`] saves and reopens
//! what the lab captured; [`compare`] sets two reports side by side.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

pub mod compare;
pub mod filter;
pub mod pace;
pub mod runner;
pub mod session;
pub mod sources;

pub use filter::{HostMap, RequestFilter};
pub use pace::Pace;
pub use runner::{ReplayHandle, ReplayOptions, ReplayProgress};
pub use sources::{SourceOptions, TrafficFormat, load_traffic};

/// One request to replay, as the source recorded it.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    /// 1-based position in the source (the order it was recorded in).
    pub index: usize,
    /// Method.
    pub method: http::Method,
    /// The authority it was addressed to (`host` or `host:port`), the Host sent to the lab.
    pub authority: String,
    /// Origin-form target: path and query.
    pub target: String,
    /// Headers to send (credentials, hop-by-hop and framing headers removed).
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
    /// When it was sent, from the first request of the source.
    pub offset: Duration,
}

impl ReplayRequest {
    /// The host the request was addressed to, without the port.
    pub fn host(&self) -> &str {
        host_of(&self.authority)
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// `host` of `host:port` (IPv6 literals keep their brackets).
pub(crate) fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .split_once(']')
            .map_or(authority, |(h, _)| &authority[..=h.len()]);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// The requests of one traffic file, checked and in their original order.
#[derive(Debug, Clone)]
pub struct Traffic {
    /// The file.
    pub path: PathBuf,
    /// What kind of file it is.
    pub format: TrafficFormat,
    /// The requests, by original time.
    pub requests: Vec<ReplayRequest>,
    /// Credential headers removed (0 when the user kept them).
    pub credentials_stripped: usize,
    /// Payloads or entries that are not requests to replay (GoReplay responses).
    pub not_requests: usize,
}

impl Traffic {
    /// Keeps the requests `filter` lets through and maps their hosts; the pace between the
    /// kept requests is the original one, and the first of them goes at once (not after
    /// the time the recording spent on requests the filter left out).
    pub fn select(mut self, filter: &RequestFilter, hosts: &HostMap) -> Self {
        self.requests.retain(|r| filter.accepts(r));
        let first = self.requests.first().map_or(Duration::ZERO, |r| r.offset);
        for request in &mut self.requests {
            request.offset = request.offset.saturating_sub(first);
            if let Some(new) = hosts.map(&request.authority) {
                request.authority = new;
            }
        }
        self
    }

    /// Time from the first request to the last, at the original pace.
    pub fn span(&self) -> Duration {
        self.requests.last().map_or(Duration::ZERO, |r| r.offset)
    }
}

/// Why a traffic or session file cannot be used. Nothing is sent for a file that has one.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not what its format says, at a place in it.
    #[error("{}:{line}{}: {message}; nothing was sent", path.display(), column.map_or_else(String::new, |c| format!(":{c}")))]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, when the format has one (JSON).
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The file holds no request to replay.
    #[error("{}: {what}; nothing to replay", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
        /// What it holds instead.
        what: String,
    },
}
