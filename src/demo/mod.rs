//! Demo upstream services (a Bookinfo-like reviews service) and a traffic generator.
//!
//! `DemoServices` starts one small HTTP server on every loopback address the config's
//! ServiceEntries name, each behaving as its `version` label says; `TrafficGenerator`
//! sends a realistic mix of requests through the proxy.

pub mod grpc;
mod reflection;
mod reviews;
mod traffic;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpListener as StdTcpListener};
use std::path::PathBuf;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::ConfigSet;

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
    /// A signal handler could not be installed.
    #[error("cannot listen for {signal}: {source}")]
    Signal {
        /// Which signal.
        signal: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// The main sample config, built in so `mirrorlab demo` works from any directory.
pub const SAMPLE_CONFIG: &str = include_str!("../../sample-configs/reviews-mirror.yaml");
/// The name the built-in sample config goes by in messages.
pub const SAMPLE_CONFIG_NAME: &str = "sample-configs/reviews-mirror.yaml (built in)";

/// The label (lab-only; Istio's subsets ignore labels they do not name) that keeps the demo
/// from serving an endpoint: `mirrorlab.dev/demo: down` plays a pod that is down.
pub const DEMO_LABEL: &str = "mirrorlab.dev/demo";

/// The endpoints of `config`'s ServiceEntries that the demo can serve: loopback addresses,
/// one per service port, behaving as their `version` label says, except those labelled
/// [`DEMO_LABEL`]` = down`.
pub fn endpoints_from_config(config: &ConfigSet) -> Vec<DemoEndpoint> {
    let mut endpoints = Vec::new();
    for (_, entry) in config.service_entries() {
        let service = entry.spec.hosts.first().cloned().unwrap_or_default();
        for workload in &entry.spec.endpoints {
            let Some(address) = workload.address.as_deref() else {
                continue;
            };
            if workload.labels.get(DEMO_LABEL).map(String::as_str) == Some("down") {
                continue; // a pod that is down: nothing listens there
            }
            let ip = match address.parse::<IpAddr>() {
                Ok(ip) if ip.is_loopback() => ip,
                _ => {
                    tracing::warn!(
                        service = %service,
                        address,
                        "not a loopback address; the demo only serves on this machine"
                    );
                    continue;
                }
            };
            let version =
                ReviewsVersion::from_label(workload.labels.get("version").map(String::as_str));
            for port in &entry.spec.ports {
                // Istio: the endpoint's `ports` map by port name, else targetPort, else
                // the service port number.
                let number = workload
                    .ports
                    .get(&port.name)
                    .copied()
                    .or(port.target_port)
                    .unwrap_or(port.number);
                let Ok(number) = u16::try_from(number) else {
                    continue;
                };
                endpoints.push(DemoEndpoint {
                    addr: SocketAddr::new(ip, number),
                    service: service.clone(),
                    version,
                });
            }
        }
    }
    endpoints
}

/// Whether the demo traffic for `host` (the config's first VirtualService host when
/// `None`) should be gRPC calls: its ServiceEntry port's protocol is `GRPC`.
pub fn speaks_grpc(config: &ConfigSet, host: Option<&str>) -> bool {
    let host = host.map(str::to_owned).or_else(|| {
        config
            .virtual_services()
            .find_map(|(_, vs)| vs.spec.hosts.first().cloned())
    });
    let Some(host) = host else {
        return false;
    };
    let name = host.split(':').next().unwrap_or_default();
    config
        .service_entry_for(&crate::config::hosts::fqdn(name, "default"))
        .is_some_and(|(_, se)| {
            se.spec.ports.iter().any(|p| {
                p.protocol
                    .as_deref()
                    .is_some_and(|proto| proto.eq_ignore_ascii_case("grpc"))
            })
        })
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
    /// Starts a reviews server on every loopback endpoint of `config`'s ServiceEntries.
    pub fn start(
        handle: &tokio::runtime::Handle,
        config: &ConfigSet,
    ) -> Result<DemoServices, DemoError> {
        Self::start_endpoints(handle, endpoints_from_config(config))
    }

    /// Starts one server per endpoint on `handle`. Endpoints sharing an address are started
    /// once (the first one listed wins); port 0 gets a fresh ephemeral port each time.
    pub fn start_endpoints(
        handle: &tokio::runtime::Handle,
        endpoints: Vec<DemoEndpoint>,
    ) -> Result<DemoServices, DemoError> {
        if endpoints.is_empty() {
            return Err(DemoError::NoEndpoints);
        }
        // Two ServiceEntries often name one server (reviews v2 and reviews-v2); port 0
        // asks for a fresh port each time, so those are never the same server.
        let mut unique: BTreeMap<(SocketAddr, usize), DemoEndpoint> = BTreeMap::new();
        for (i, endpoint) in endpoints.into_iter().enumerate() {
            let fresh = if endpoint.addr.port() == 0 { i } else { 0 };
            unique.entry((endpoint.addr, fresh)).or_insert(endpoint);
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

/// What `mirrorlab demo` was asked to do.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The config whose ServiceEntries say where to listen; `None`: the built-in sample.
    pub config: Option<PathBuf>,
    /// Send this many requests a second through the proxy.
    pub traffic: Option<f64>,
    /// The proxy's address, for the traffic.
    pub proxy: SocketAddr,
    /// Host header for the traffic; `None`: the config's first VirtualService host.
    pub host: Option<String>,
}

/// Runs the demo services (and traffic) until SIGINT or SIGTERM.
pub async fn run(handle: tokio::runtime::Handle, options: DemoOptions) -> Result<(), DemoError> {
    let config = match &options.config {
        Some(path) => ConfigSet::load_files(std::slice::from_ref(path)),
        None => ConfigSet::load_str(SAMPLE_CONFIG_NAME, SAMPLE_CONFIG),
    };
    for diagnostic in config.diagnostics() {
        // The demo only needs the ServiceEntries; `mirrorlab run` refuses a broken config.
        tracing::warn!("{diagnostic}");
    }
    let services = DemoServices::start(&handle, &config)?;
    for endpoint in services.endpoints() {
        println!(
            "demo {} {} listening on {}",
            endpoint.service,
            endpoint.version.as_str(),
            endpoint.addr
        );
    }
    let cancel = CancellationToken::new();
    let traffic = match options.traffic {
        Some(rps) => {
            let host = options.host.clone().or_else(|| {
                config
                    .virtual_services()
                    .find_map(|(_, vs)| vs.spec.hosts.first().cloned())
                    // An HTTPRoute's service: the host the route table serves.
                    .or_else(|| {
                        crate::routing::RouteTable::compile(&config)
                            .ok()
                            .and_then(|t| t.default_host().map(str::to_owned))
                    })
            });
            println!(
                "sending {rps} requests/s through the proxy at {} (Host: {})",
                options.proxy,
                host.as_deref().unwrap_or("the proxy's default host")
            );
            let grpc = speaks_grpc(&config, host.as_deref());
            if grpc {
                println!(
                    "the service speaks gRPC: sending {} calls",
                    grpc::GET_REVIEWS
                );
            }
            Some(TrafficGenerator::start(
                &handle,
                cancel.clone(),
                TrafficSettings::new(options.proxy, host, rps).with_grpc(grpc),
            )?)
        }
        None => None,
    };
    let stop = wait_for_signal();
    tokio::pin!(stop);
    let mut report = tokio::time::interval(Duration::from_secs(5));
    report.tick().await;
    loop {
        tokio::select! {
            result = &mut stop => { result?; break; }
            _ = report.tick() => {
                if let Some(traffic) = &traffic {
                    let stats = traffic.stats();
                    tracing::info!(
                        sent = stats.sent,
                        ok = stats.ok,
                        not_ok = stats.not_ok,
                        failed = stats.failed,
                        "traffic{}",
                        if stats.failed > 0 && stats.ok == 0 {
                            ": nothing answers at the proxy address; is `mirrorlab run` running?"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
    }
    cancel.cancel();
    if let Some(traffic) = traffic {
        traffic.stop().await;
    }
    services.stop().await;
    Ok(())
}

async fn wait_for_signal() -> Result<(), DemoError> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| DemoError::Signal {
        signal: "SIGTERM",
        source,
    })?;
    #[cfg(unix)]
    let terminated = terminate.recv();
    #[cfg(not(unix))]
    let terminated = std::future::pending::<Option<()>>();
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => {
            interrupted.map_err(|source| DemoError::Signal { signal: "SIGINT", source })
        }
        _ = terminated => Ok(()),
    }
}
