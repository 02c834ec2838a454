//! Serde model of a DestinationRule's `trafficPolicy` parts the lab acts on: connection
//! pool limits, outlier detection, the load balancer's consistent hash and per-port
//! settings, field for field as Istio's CRD schema has them. What the lab does not act on
//! (TLS, locality, warmup) stays opaque YAML, kept verbatim.

use serde::{Deserialize, Serialize};

use super::model::{LoadBalancerSettings, Opaque, PortSelector};

/// `ConnectionPoolSettings`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionPoolSettings {
    /// TCP-level settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpSettings>,
    /// HTTP-level settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSettings>,
}

/// `ConnectionPoolSettings.TCPSettings`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpSettings {
    /// Most connections to all endpoints of the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i32>,
    /// TCP connect timeout (Istio's default 10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    /// TCP keepalive (kept, not acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<Opaque>,
    /// Longest life of a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<String>,
    /// Idle timeout of a connection, when `http.idleTimeout` is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
}

/// `ConnectionPoolSettings.HTTPSettings`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSettings {
    /// Most requests waiting for a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_max_pending_requests: Option<i32>,
    /// Most active requests to the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_requests: Option<i32>,
    /// Requests per connection before it is closed (1: no keep-alive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<i32>,
    /// Most retries outstanding to the destination at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
    /// Idle timeout of an upstream connection (Envoy's default 1 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// `DEFAULT`, `DO_NOT_UPGRADE` or `UPGRADE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_upgrade_policy: Option<String>,
    /// Speak the client's protocol to the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_client_protocol: Option<bool>,
    /// HTTP/2 streams per connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<i32>,
    /// HTTP/2 keepalive pings (kept, not acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_keep_alive: Option<Opaque>,
}

/// `OutlierDetection`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    /// Deprecated; Istio ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_errors: Option<i32>,
    /// Consecutive 5xx answers (and connection failures) before ejection.
    #[serde(
        default,
        rename = "consecutive5xxErrors",
        skip_serializing_if = "Option::is_none"
    )]
    pub consecutive_5xx_errors: Option<u32>,
    /// Consecutive 502/503/504 answers before ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    /// Consecutive locally originated failures, with `splitExternalLocalOriginErrors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failures: Option<u32>,
    /// Count connection failures and timeouts apart from HTTP answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_external_local_origin_errors: Option<bool>,
    /// How often ejected endpoints are looked at (default 10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Ejection time, multiplied by the times ejected (default 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<String>,
    /// Most endpoints ejected at once, in percent (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<i32>,
    /// Below this share of healthy endpoints, every endpoint gets traffic (panic mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_health_percent: Option<i32>,
    /// Status codes that count as errors (kept, not acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection_http_error_codes: Option<Opaque>,
}

/// `LoadBalancerSettings.ConsistentHashLB`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsistentHash {
    /// Hash on a request header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_name: Option<String>,
    /// Hash on a cookie (generated when absent and `ttl` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_cookie: Option<HttpCookie>,
    /// Hash on the client's IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_source_ip: Option<bool>,
    /// Hash on a query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_query_parameter_name: Option<String>,
    /// Ring hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_hash: Option<RingHash>,
    /// Maglev.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev: Option<Maglev>,
    /// Deprecated ring size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

/// `ConsistentHashLB.HTTPCookie`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCookie {
    /// Cookie name.
    #[serde(default)]
    pub name: String,
    /// Cookie path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Lifetime of a generated cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Extra attributes of a generated cookie.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<CookieAttribute>,
}

/// One `HTTPCookie.attributes` entry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CookieAttribute {
    /// Attribute name.
    #[serde(default)]
    pub name: String,
    /// Attribute value, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `ConsistentHashLB.RingHash`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RingHash {
    /// Smallest ring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

/// `ConsistentHashLB.MagLev`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Maglev {
    /// Lookup table size (a prime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_size: Option<u64>,
}

/// `TrafficPolicy.PortTrafficPolicy`: settings for one port, replacing the top-level ones.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortTrafficPolicy {
    /// The port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    /// Load balancing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection pool limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Outlier detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS to the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Opaque>,
}

/// A field of a traffic policy the mesh acts on and the lab does not simulate, with what the
/// lab does instead: `check` warns at the field (ML0301) from this one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsimulated {
    /// The field's path below the policy (`loadBalancer.warmup`).
    pub field: String,
    /// What the mesh would do and what the lab does.
    pub why: &'static str,
}

impl super::model::TrafficPolicy {
    /// What of this policy (its port entries included) the lab does not simulate.
    pub fn unsimulated(&self) -> Vec<Unsimulated> {
        let mut out = Vec::new();
        let mut push = |field: String, why: &'static str| out.push(Unsimulated { field, why });
        blocks_unsimulated(
            "",
            self.load_balancer.as_ref(),
            self.connection_pool.as_ref(),
            self.outlier_detection.as_ref(),
            self.tls.as_ref(),
            &mut push,
        );
        for (i, port) in self.port_level_settings.iter().enumerate() {
            blocks_unsimulated(
                &format!("portLevelSettings[{i}]."),
                port.load_balancer.as_ref(),
                port.connection_pool.as_ref(),
                port.outlier_detection.as_ref(),
                port.tls.as_ref(),
                &mut push,
            );
        }
        if self.tunnel.is_some() {
            push(
                "tunnel".into(),
                "HTTP CONNECT tunnelling is not simulated: the lab connects straight to the endpoint",
            );
        }
        if self.proxy_protocol.is_some() {
            push(
                "proxyProtocol".into(),
                "the PROXY protocol header is not sent: upstreams see the lab's own address",
            );
        }
        if self.retry_budget.is_some() {
            push(
                "retryBudget".into(),
                "a retry budget is not simulated: retries are limited only by connectionPool.http.maxRetries (unlimited unless set, as Istio leaves it)",
            );
        }
        out
    }
}

/// The blocks a policy and each of its port entries share.
fn blocks_unsimulated(
    prefix: &str,
    lb: Option<&LoadBalancerSettings>,
    pool: Option<&ConnectionPoolSettings>,
    outlier: Option<&OutlierDetection>,
    tls: Option<&Opaque>,
    push: &mut impl FnMut(String, &'static str),
) {
    let mut at = |field: &str, set: bool, why: &'static str| {
        if set {
            push(format!("{prefix}{field}"), why);
        }
    };
    if let Some(lb) = lb {
        at(
            "loadBalancer.simple",
            lb.simple.as_deref() == Some("PASSTHROUGH"),
            "PASSTHROUGH sends each request to the address the client dialled, which the lab does not have: endpoints are picked round robin",
        );
        at(
            "loadBalancer.localityLbSetting",
            lb.locality_lb_setting.is_some(),
            "locality load balancing is not simulated: every endpoint here is in one locality",
        );
        at(
            "loadBalancer.zoneAwareLbSetting",
            lb.zone_aware_lb_setting.is_some(),
            "zone-aware load balancing is not simulated: every endpoint here is in one zone",
        );
        at(
            "loadBalancer.warmup",
            lb.warmup.is_some(),
            "slow start is not simulated: a new endpoint takes its full share at once",
        );
        at(
            "loadBalancer.warmupDurationSecs",
            lb.warmup_duration_secs.is_some(),
            "slow start is not simulated: a new endpoint takes its full share at once",
        );
    }
    if let Some(tcp) = pool.and_then(|p| p.tcp.as_ref()) {
        at(
            "connectionPool.tcp.maxConnectionDuration",
            tcp.max_connection_duration.is_some(),
            "connections are not aged: the lab keeps one for as long as it stays under the idle timeout",
        );
        at(
            "connectionPool.tcp.tcpKeepalive",
            tcp.tcp_keepalive.is_some(),
            "TCP keepalive probes are not sent: on loopback a connection cannot go silently dead",
        );
    }
    if let Some(http) = pool.and_then(|p| p.http.as_ref()) {
        at(
            "connectionPool.http.maxConcurrentStreams",
            http.max_concurrent_streams.is_some(),
            "not simulated: the lab's HTTP/2 connection to an endpoint takes every stream, with no limit",
        );
        at(
            "connectionPool.http.http2KeepAlive",
            http.http2_keep_alive.is_some(),
            "HTTP/2 PING keepalives are not sent: on loopback a connection cannot go silently dead",
        );
    }
    if let Some(od) = outlier {
        at(
            "outlierDetection.outlierDetectionHttpErrorCodes",
            od.outlier_detection_http_error_codes.is_some(),
            "custom error codes are not simulated: the lab counts 5xx answers (and 502-504 as gateway errors)",
        );
    }
    if let Some(tls) = tls {
        let read = super::tls::ClientTls::from_opaque(tls);
        // SIMPLE and MUTUAL are originated (routing/tls.rs); between two sidecars, which
        // the lab plays both of, ISTIO_MUTUAL has no identity to present or check.
        at(
            "tls",
            read.mode == super::tls::TlsMode::IstioMutual,
            "ISTIO_MUTUAL: the lab has no mesh identity, so it connects in plaintext, as the destination's sidecar hands requests to its service; peer authentication is not checked",
        );
        at(
            "tls.credentialName",
            read.originates() && read.credential_name.is_some(),
            "credentialName names a Kubernetes secret, which the lab cannot read: it uses caCertificates (and clientCertificate, privateKey) as files, and the system's CAs without them",
        );
    }
}
