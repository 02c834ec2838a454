//! Demo upstream services (a Bookinfo-like reviews service) and a traffic generator.
//!
//! `DemoServices` starts one small HTTP server on every loopback address the config's
//! ServiceEntries name, each behaving as its `version` label says; `TrafficGenerator`
//! sends a realistic mix of requests through the proxy.

mod reviews;
mod traffic;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdTcpListener};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use reviews::ReviewsVersion;
pub use traffic::{TrafficGenerator, TrafficSettings, TrafficStats};

/// What can go wrong starting the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A demo endpoint's address could not be bound.
    #[error(
        "cannot start the demo {service} {version} endpoint on {addr}: {source}. Is another demo (or the real service) already running there?"
    )]
    Bind {
        /// Host the endpoint serves.
        service: String,
        /// Its version label.
        version: String,
        /// The address.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The config names no endpoint the demo can serve.
    #[error(
        "the config has no ServiceEntry endpoint on a loopback address; the demo serves endpoints like `address: 127.0.0.1` with `ports: {{http: 9081}}`"
    )]
    NoEndpoints,
    /// The traffic rate is not a positive number.
    #[error("traffic rate must be a positive number of requests per second, not {0}")]
    Rate(f64),
    /// The HTTP client could not be built.
    #[error("cannot build the traffic generator's HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// One demo endpoint to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoEndpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The host it serves, as the ServiceEntry names it (`reviews`).
    pub service: String,
    /// How it behaves.
    pub version: ReviewsVersion,
}

/// Running demo services; they stop when this is dropped or `stop` is called.
#[derive(Debug)]
pub struct DemoServices {
    endpoints: Vec<DemoEndpoint>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl DemoServices {
    /// Starts one server per endpoint on `handle`. Endpoints sharing an address are started
    /// once (the first one listed wins).
    pub fn start_endpoints(
        handle: &tokio::runtime::Handle,
        endpoints: Vec<DemoEndpoint>,
    ) -> Result<DemoServices, DemoError> {
        if endpoints.is_empty() {
            return Err(DemoError::NoEndpoints);
        }
        let mut unique: BTreeMap<SocketAddr, DemoEndpoint> = BTreeMap::new();
        for endpoint in endpoints {
            unique.entry(endpoint.addr).or_insert(endpoint);
        }
        let cancel = CancellationToken::new();
        let _runtime = handle.enter();
        let mut started = Vec::with_capacity(unique.len());
        let mut tasks = Vec::with_capacity(unique.len());
        for (_, mut endpoint) in unique {
            let bind_err = |source| DemoError::Bind {
                service: endpoint.service.clone(),
                version: endpoint.version.as_str().to_owned(),
                addr: endpoint.addr,
                source,
            };
            let listener = StdTcpListener::bind(endpoint.addr).map_err(bind_err)?;
            listener.set_nonblocking(true).map_err(bind_err)?;
            let local_addr = listener.local_addr().map_err(bind_err)?;
            let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_err)?;
            endpoint.addr = local_addr;
            tasks.push(handle.spawn(reviews::serve(listener, endpoint.version, cancel.clone())));
            started.push(endpoint);
        }
        Ok(DemoServices {
            endpoints: started,
            cancel,
            tasks,
        })
    }

    /// The endpoints that are running, with their real addresses.
    pub fn endpoints(&self) -> &[DemoEndpoint] {
        &self.endpoints
    }

    /// Stops every server and waits for their accept loops to end.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        for task in std::mem::take(&mut self.tasks) {
            // A panicked server is stopped too; nothing else to do about it here.
            let _ = task.await;
        }
    }
}

impl Drop for DemoServices {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
