//! An endpoint as the proxy addresses it: rendered once, with a connection pool per worker.

use std::sync::Arc;

use http::header::HOST;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, HeaderValue, Uri};

use crate::routing::EndpointAddr;

use super::listener::worker_index;
use super::pool::EndpointPool;

/// An endpoint as the proxy addresses it, rendered once, with its connection pools.
#[derive(Debug, Clone)]
pub(super) struct UpstreamTarget {
    /// Why `host:port` is not a valid URI authority, if it is not (the endpoint cannot
    /// be addressed).
    invalid: Option<String>,
    /// `host:port` as captures show it.
    pub(super) text: Arc<str>,
    /// Keep-alive connections to the endpoint, one pool per worker thread: a connection
    /// is only ever used by the thread whose runtime drives it.
    pools: Arc<[Arc<EndpointPool>]>,
}

impl UpstreamTarget {
    /// Renders `endpoint`, with a pool for each of `workers` threads, whose connections
    /// originate `tls` when it is set.
    pub(super) fn new(
        endpoint: &EndpointAddr,
        workers: usize,
        tls: Option<&Arc<crate::routing::tls::UpstreamTls>>,
    ) -> Self {
        let text: Arc<str> = Arc::from(endpoint.to_string());
        let invalid = text
            .parse::<Authority>()
            .err()
            .map(|e| format!("invalid upstream target http://{text}: {e}"));
        Self {
            invalid,
            text,
            pools: (0..workers.max(1))
                .map(|_| Arc::new(EndpointPool::new(endpoint.clone(), tls.cloned())))
                .collect(),
        }
    }

    /// The current worker thread's pool.
    pub(super) fn pool(&self) -> &Arc<EndpointPool> {
        &self.pools[worker_index() % self.pools.len()]
    }

    /// The origin-form target (`/path?query`) an upstream request is sent with, after
    /// checking the endpoint can be addressed at all.
    pub(super) fn uri(&self, path_and_query: &PathAndQuery) -> Result<Uri, String> {
        if let Some(invalid) = &self.invalid {
            return Err(invalid.clone());
        }
        if path_and_query.as_str().starts_with('/') {
            Ok(Uri::from(path_and_query.clone()))
        } else {
            // `OPTIONS *` and similar: forward to the root rather than build an invalid URI.
            Ok(Uri::from_static("/"))
        }
    }

    /// Adds `Host: endpoint` to an upstream request that has none (an HTTP/1.0 client's),
    /// as HTTP/1.1 requires.
    pub(super) fn ensure_host(&self, headers: &mut HeaderMap) {
        if !headers.contains_key(HOST)
            && let Ok(value) = HeaderValue::from_str(&self.text)
        {
            headers.insert(HOST, value);
        }
    }
}
