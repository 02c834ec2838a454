//! What the mesh sets up between the sidecar and an upstream's cluster, compiled: a
//! destination's policy from its DestinationRule (load balancer, connection pool
//! limits, outlier detection) with Istio's precedence between host, subset and port
//! (`cluster_builder.go` `applyDestinationRule`, `util.go` `MergeSubsetTrafficPolicy`).

use std::sync::Arc;
use std::time::Duration;

use crate::config::hosts::fqdn;
use crate::config::model::Opaque;
use crate::config::model::{
    ConnectionPoolSettings, ConsistentHash, LoadBalancerSettings, OutlierDetection, TrafficPolicy,
};
use crate::config::protocol::{PortProtocol, UpstreamProtocol};
use crate::config::tls::ClientTls;

use super::tls::UpstreamTls;
use crate::config::{ConfigSet, DurationError, parse_duration};

/// A policy field the lab cannot use; the checker reports these first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// An unknown `retryOn` condition.
    #[error(
        "`{0}` is not a retry condition Istio knows (5xx, gateway-error, reset, connect-failure, refused-stream, retriable-4xx, retriable-status-codes, envoy-ratelimited, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable, or a status code)"
    )]
    RetryOn(String),
    /// A duration that does not parse.
    #[error("{field}: {error}")]
    Duration {
        /// The field.
        field: &'static str,
        /// Why.
        error: DurationError,
    },
    /// TLS origination that cannot be set up (a certificate file missing or malformed).
    #[error("{0}")]
    Tls(String),
}

pub(super) fn duration(field: &'static str, text: &str) -> Result<Duration, PolicyError> {
    parse_duration(text).map_err(|error| PolicyError::Duration { field, error })
}

/// How endpoints are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balancer {
    /// In order, starting anywhere.
    RoundRobin,
    /// Two random endpoints, the one with fewer active requests (Istio's default).
    LeastRequest,
    /// Uniformly at random.
    Random,
    /// Ketama ring of at least this many entries.
    RingHash(u64),
    /// Maglev table of this (prime) size.
    Maglev(u64),
}

/// What a consistent hash is computed from.
#[derive(Debug, Clone, PartialEq)]
pub enum HashKey {
    /// A request header's values.
    Header(http::HeaderName),
    /// A cookie; generated (and set on the answer) when absent and `ttl` is set.
    Cookie(CookieKey),
    /// The client's IP.
    SourceIp,
    /// A query parameter's first value.
    Query(String),
}

/// `httpCookie` compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct CookieKey {
    /// Cookie name.
    pub name: String,
    /// `Path` of a generated cookie.
    pub path: Option<String>,
    /// `Max-Age` of a generated cookie; `None`: no cookie is generated.
    pub ttl: Option<Duration>,
    /// Extra attributes, `name` or `name=value`.
    pub attributes: Vec<String>,
}

/// Connection pool limits (Envoy's circuit breakers). Unset fields are Istio's: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Connections to all endpoints.
    pub max_connections: u32,
    /// Requests waiting for a connection.
    pub max_pending: u32,
    /// Active requests.
    pub max_requests: u32,
    /// Retries outstanding.
    pub max_retries: u32,
    /// Requests a connection carries before it is closed.
    pub max_requests_per_connection: Option<u32>,
}

impl Default for PoolLimits {
    fn default() -> Self {
        // cluster_traffic_policy.go getDefaultCircuitBreakerThresholds: MaxUint32 for all.
        Self {
            max_connections: u32::MAX,
            max_pending: u32::MAX,
            max_requests: u32::MAX,
            max_retries: u32::MAX,
            max_requests_per_connection: None,
        }
    }
}

/// Outlier detection compiled with Envoy's defaults for what Istio leaves unset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierConfig {
    /// Consecutive 5xx before ejection; `None`: detected but not enforced.
    pub consecutive_5xx: Option<u32>,
    /// Consecutive gateway errors before ejection; `None`: not enforced.
    pub consecutive_gateway: Option<u32>,
    /// Locally originated failures counted apart (`splitExternalLocalOriginErrors`).
    pub split_local_origin: bool,
    /// Consecutive local-origin failures before ejection, when split.
    pub consecutive_local_origin: Option<u32>,
    /// Sweep interval.
    pub interval: Duration,
    /// Base ejection time.
    pub base_ejection: Duration,
    /// Longest ejection (Envoy's default 300 s, or the base if larger).
    pub max_ejection: Duration,
    /// Most endpoints ejected, percent.
    pub max_ejection_percent: u32,
}

/// Everything the mesh sets up for one destination's cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterPolicy {
    /// How endpoints are picked.
    pub balancer: Balancer,
    /// The route's hash key for a consistent-hash balancer.
    pub hash: Option<HashKey>,
    /// Circuit breakers.
    pub limits: PoolLimits,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Upstream connection idle timeout.
    pub idle_timeout: Duration,
    /// Outlier detection, if set.
    pub outlier: Option<OutlierConfig>,
    /// Below this share of available endpoints (percent), every endpoint is used (panic).
    pub panic_threshold: u32,
    /// HTTP/1.1, HTTP/2 or the client's protocol, from the port and the connection pool.
    pub protocol: UpstreamProtocol,
    /// TLS origination (`tls.mode` SIMPLE or MUTUAL), if any.
    pub tls: Option<Arc<UpstreamTls>>,
}

impl Default for ClusterPolicy {
    fn default() -> Self {
        Self {
            balancer: Balancer::LeastRequest,
            hash: None,
            limits: PoolLimits::default(),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(3600),
            outlier: None,
            panic_threshold: 50,
            protocol: UpstreamProtocol::Http1,
            tls: None,
        }
    }
}

/// The protocol of the ServiceEntry port the cluster is for; a host no ServiceEntry defines
/// (the lab sends to it as an address) is sniffed, as Istio's passthrough would be.
fn port_protocol(set: &ConfigSet, host_fqdn: &str, port: Option<u32>) -> PortProtocol {
    set.service_entry_for(host_fqdn)
        .and_then(|(_, se)| se.spec.ports.iter().find(|p| Some(p.number) == port))
        .map_or(PortProtocol::Unsupported, |p| {
            PortProtocol::parse(p.protocol.as_deref())
        })
}

/// The three blocks of a traffic policy that make a cluster, after port resolution.
#[derive(Debug, Clone, Default)]
struct Blocks<'a> {
    load_balancer: Option<&'a LoadBalancerSettings>,
    connection_pool: Option<&'a ConnectionPoolSettings>,
    outlier_detection: Option<&'a OutlierDetection>,
    tls: Option<&'a Opaque>,
}

/// `GetPortLevelTrafficPolicy`: a port entry replaces the whole policy for that port.
fn for_port(policy: &TrafficPolicy, port: Option<u32>) -> (Blocks<'_>, bool) {
    let entry = port.and_then(|p| {
        policy
            .port_level_settings
            .iter()
            .find(|e| e.port.as_ref().and_then(|s| s.number) == Some(p))
    });
    match entry {
        Some(e) => (
            Blocks {
                load_balancer: e.load_balancer.as_ref(),
                connection_pool: e.connection_pool.as_ref(),
                outlier_detection: e.outlier_detection.as_ref(),
                tls: e.tls.as_ref(),
            },
            true,
        ),
        None => (
            Blocks {
                load_balancer: policy.load_balancer.as_ref(),
                connection_pool: policy.connection_pool.as_ref(),
                outlier_detection: policy.outlier_detection.as_ref(),
                tls: policy.tls.as_ref(),
            },
            false,
        ),
    }
}

impl ClusterPolicy {
    /// The policy of destination `host_fqdn` (subset `subset`) on service port `port`.
    pub fn resolve(
        set: &ConfigSet,
        host_fqdn: &str,
        subset: Option<&str>,
        port: Option<u32>,
        destination_port: Option<u32>,
    ) -> Result<Self, PolicyError> {
        let rule = set
            .destination_rules_for(host_fqdn)
            .next()
            .map(|(_, dr)| dr);
        let host_policy = rule.and_then(|dr| dr.spec.traffic_policy.as_ref());
        let subset_policy = rule
            .zip(subset)
            .and_then(|(dr, name)| dr.spec.subsets.iter().find(|s| s.name == name))
            .and_then(|s| s.traffic_policy.as_ref());
        let mut blocks = host_policy.map_or_else(Blocks::default, |p| for_port(p, port).0);
        if let Some(sp) = subset_policy {
            // MergeSubsetTrafficPolicy: a subset's port entry replaces every block, even
            // with nothing; its top-level blocks replace the host's where set.
            let (own, port_level) = for_port(sp, port);
            if port_level {
                blocks = own;
            } else {
                blocks.load_balancer = own.load_balancer.or(blocks.load_balancer);
                blocks.connection_pool = own.connection_pool.or(blocks.connection_pool);
                blocks.outlier_detection = own.outlier_detection.or(blocks.outlier_detection);
                blocks.tls = own.tls.or(blocks.tls);
            }
        }
        let mut policy = Self::default();
        if let Some(lb) = blocks.load_balancer {
            policy.apply_load_balancer(lb);
        }
        policy.hash = route_hash(host_policy, subset_policy, destination_port)
            .map(compile_hash)
            .transpose()?;
        if let Some(cp) = blocks.connection_pool {
            policy.apply_connection_pool(cp)?;
        }
        if let Some(od) = blocks.outlier_detection {
            policy.apply_outlier_detection(od)?;
        }
        let http = blocks.connection_pool.and_then(|cp| cp.http.as_ref());
        policy.protocol = UpstreamProtocol::for_cluster(
            port_protocol(set, host_fqdn, port),
            http.and_then(|h| h.h2_upgrade_policy.as_deref()),
            http.and_then(|h| h.use_client_protocol) == Some(true),
        );
        if let Some(tls) = blocks.tls {
            // The SNI of an HTTP/2 cluster offers h2; a cluster that follows the client's
            // protocol offers HTTP/1.1 (the lab opens TLS before it knows the request).
            let http2 = policy.protocol == UpstreamProtocol::Http2;
            policy.tls = super::tls::build(&ClientTls::from_opaque(tls), host_fqdn, http2)
                .map_err(PolicyError::Tls)?
                .map(Arc::new);
        }
        Ok(policy)
    }

    /// `applyLoadBalancer`: LEAST_REQUEST unless told otherwise; a consistent hash wins.
    pub(super) fn apply_load_balancer(&mut self, lb: &LoadBalancerSettings) {
        self.balancer = match lb.simple.as_deref() {
            Some("ROUND_ROBIN") => Balancer::RoundRobin,
            Some("RANDOM") => Balancer::Random,
            // PASSTHROUGH: the lab has no original destination (check warns, ML0301).
            Some("PASSTHROUGH") => Balancer::RoundRobin,
            _ => Balancer::LeastRequest,
        };
        if let Some(ch) = &lb.consistent_hash {
            self.balancer = match (&ch.maglev, &ch.ring_hash) {
                (Some(m), _) => Balancer::Maglev(m.table_size.filter(|s| *s > 0).unwrap_or(65_537)),
                (None, Some(r)) => {
                    Balancer::RingHash(r.minimum_ring_size.filter(|s| *s > 0).unwrap_or(1024))
                }
                (None, None) => {
                    Balancer::RingHash(ch.minimum_ring_size.filter(|s| *s > 0).unwrap_or(1024))
                }
            };
        }
    }

    /// `applyConnectionPool`: a limit applies only when above 0.
    pub(super) fn apply_connection_pool(
        &mut self,
        cp: &ConnectionPoolSettings,
    ) -> Result<(), PolicyError> {
        let positive = |v: Option<i32>| v.filter(|n| *n > 0).map(i32::unsigned_abs);
        if let Some(tcp) = &cp.tcp {
            if let Some(n) = positive(tcp.max_connections) {
                self.limits.max_connections = n;
            }
            if let Some(t) = &tcp.connect_timeout {
                self.connect_timeout = duration("connectTimeout", t)?;
            }
            if let Some(t) = &tcp.idle_timeout {
                self.idle_timeout = duration("idleTimeout", t)?;
            }
        }
        if let Some(http) = &cp.http {
            if let Some(n) = positive(http.http1_max_pending_requests) {
                self.limits.max_pending = n;
            }
            if let Some(n) = positive(http.http2_max_requests) {
                self.limits.max_requests = n;
            }
            if let Some(n) = positive(http.max_retries) {
                self.limits.max_retries = n;
            }
            self.limits.max_requests_per_connection = positive(http.max_requests_per_connection);
            if let Some(t) = &http.idle_timeout {
                self.idle_timeout = duration("idleTimeout", t)?;
            }
        }
        Ok(())
    }

    /// `applyOutlierDetection`, with Envoy's defaults for what Istio leaves unset.
    pub(super) fn apply_outlier_detection(
        &mut self,
        od: &OutlierDetection,
    ) -> Result<(), PolicyError> {
        let interval = match &od.interval {
            Some(t) => duration("interval", t)?,
            None => Duration::from_secs(10),
        };
        let base = match &od.base_ejection_time {
            Some(t) => duration("baseEjectionTime", t)?,
            None => Duration::from_secs(30),
        };
        let split = od.split_external_local_origin_errors.unwrap_or(false);
        self.outlier = Some(OutlierConfig {
            // Unset: Envoy's 5, enforced; 0: detected, never enforced.
            consecutive_5xx: match od.consecutive_5xx_errors {
                None => Some(5),
                Some(0) => None,
                Some(n) => Some(n),
            },
            // Unset: Envoy's default enforcement for gateway errors is 0.
            consecutive_gateway: od.consecutive_gateway_errors.filter(|n| *n > 0),
            split_local_origin: split,
            consecutive_local_origin: split.then(|| {
                od.consecutive_local_origin_failures
                    .filter(|n| *n > 0)
                    .unwrap_or(5)
            }),
            interval,
            base_ejection: base,
            max_ejection: Duration::from_secs(300).max(base),
            max_ejection_percent: od
                .max_ejection_percent
                .filter(|p| *p > 0)
                .map_or(10, i32::unsigned_abs),
        });
        // Istio always sets the panic threshold with outlier detection: minHealthPercent, 0
        // when unset (panic mode off).
        self.panic_threshold = od.min_health_percent.map_or(0, |p| p.max(0).unsigned_abs());
        Ok(())
    }
}

/// `HashForHTTPDestination`: subset port entry, subset, host port entry, host; a port entry
/// counts only when the destination names its port.
fn route_hash<'a>(
    host: Option<&'a TrafficPolicy>,
    subset: Option<&'a TrafficPolicy>,
    destination_port: Option<u32>,
) -> Option<&'a ConsistentHash> {
    let port_hash = |p: &'a TrafficPolicy| {
        destination_port.and_then(|port| {
            p.port_level_settings
                .iter()
                .find(|e| e.port.as_ref().and_then(|s| s.number) == Some(port))
                .and_then(|e| e.load_balancer.as_ref())
                .and_then(|lb| lb.consistent_hash.as_ref())
        })
    };
    let own = |p: &'a TrafficPolicy| {
        p.load_balancer
            .as_ref()
            .and_then(|lb| lb.consistent_hash.as_ref())
    };
    subset
        .and_then(port_hash)
        .or_else(|| subset.and_then(own))
        .or_else(|| host.and_then(port_hash))
        .or_else(|| host.and_then(own))
}

fn compile_hash(ch: &ConsistentHash) -> Result<HashKey, PolicyError> {
    if let Some(name) = &ch.http_header_name
        && let Ok(header) = http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
    {
        return Ok(HashKey::Header(header));
    }
    if let Some(c) = &ch.http_cookie {
        return Ok(HashKey::Cookie(CookieKey {
            name: c.name.clone(),
            path: c.path.clone(),
            ttl: c
                .ttl
                .as_deref()
                .map(|t| duration("httpCookie.ttl", t))
                .transpose()?,
            attributes: c
                .attributes
                .iter()
                .map(|a| match &a.value {
                    Some(v) => format!("{}={v}", a.name),
                    None => a.name.clone(),
                })
                .collect(),
        }));
    }
    if ch.use_source_ip == Some(true) {
        return Ok(HashKey::SourceIp);
    }
    Ok(HashKey::Query(
        ch.http_query_parameter_name.clone().unwrap_or_default(),
    ))
}

/// Whether the route's single destination hashes (Istio then drops previous-hosts from the
/// default retry policy).
pub fn destination_hashes(
    set: &ConfigSet,
    host: &str,
    namespace: &str,
    subset: Option<&str>,
    port: Option<u32>,
) -> bool {
    let host = fqdn(host, namespace);
    ClusterPolicy::resolve(set, &host, subset, port, port).is_ok_and(|p| p.hash.is_some())
}
