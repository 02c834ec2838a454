//! Port protocols as Istio reads them, and the protocol the sidecar speaks to a cluster's
//! endpoints: one builder for `check` and the route table.
//!
//! Istio: `pkg/config/protocol/instance.go` (`Parse`, `IsHTTP2`, `IsHTTP`); a ServiceEntry
//! port's protocol is `protocol.Parse(port.Protocol)` (`serviceentry/conversion.go`
//! `convertPort`: the port's name is not read, unlike a Kubernetes Service's); the cluster's
//! upstream protocol is `ClusterBuilder.setUpstreamProtocol` (HTTP/2 for HTTP2, GRPC and
//! GRPC-Web ports; the client's protocol for a port of unknown protocol on a sidecar) after
//! `applyH2Upgrade` / `shouldH2Upgrade` (`useClientProtocol` wins over
//! `h2UpgradePolicy: UPGRADE`, which upgrades) in `cluster_traffic_policy.go`.

/// Protocols Istio knows (`protocol.Parse`, case-insensitive); `check` refuses others.
pub const KNOWN_PROTOCOLS: [&str; 12] = [
    "tcp",
    "udp",
    "grpc",
    "grpc-web",
    "http",
    "http_proxy",
    "http2",
    "https",
    "tls",
    "mongo",
    "redis",
    "mysql",
];

/// A port's protocol, as `protocol.Parse` sorts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortProtocol {
    /// `HTTP`, `HTTP_PROXY`.
    Http,
    /// `HTTP2`, `GRPC`, `GRPC-Web`.
    Http2,
    /// `HTTPS`, `TLS`: TLS the sidecar passes through (or originates, with a
    /// DestinationRule).
    Tls,
    /// `TCP`, `UDP`, `Mongo`, `Redis`, `MySQL`: not HTTP to the sidecar.
    Other,
    /// Absent or not a protocol Istio knows: sniffed.
    Unsupported,
}

impl PortProtocol {
    /// `protocol.Parse`: case-insensitive.
    pub fn parse(protocol: Option<&str>) -> Self {
        let Some(protocol) = protocol else {
            return Self::Unsupported;
        };
        match protocol.to_ascii_lowercase().as_str() {
            "http" | "http_proxy" => Self::Http,
            "http2" | "grpc" | "grpc-web" => Self::Http2,
            "https" | "tls" => Self::Tls,
            "tcp" | "udp" | "mongo" | "redis" | "mysql" => Self::Other,
            _ => Self::Unsupported,
        }
    }

    /// `IsHTTP`: HTTP/1.1 or HTTP/2 (gRPC included).
    pub fn is_http(self) -> bool {
        matches!(self, Self::Http | Self::Http2)
    }
}

/// How the sidecar speaks to a cluster's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    /// HTTP/1.1.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c).
    Http2,
    /// What the client spoke (Envoy's `use_downstream_protocol_config`).
    Client,
}

impl UpstreamProtocol {
    /// The cluster's protocol for `port` with the DestinationRule's `h2UpgradePolicy` and
    /// `useClientProtocol` (from the connection pool that applies to the port).
    pub fn for_cluster(
        port: PortProtocol,
        h2_upgrade_policy: Option<&str>,
        use_client_protocol: bool,
    ) -> Self {
        // setUpstreamProtocol runs last: an HTTP/2 port is HTTP/2 whatever the policy says.
        if port == PortProtocol::Http2 {
            return Self::Http2;
        }
        if use_client_protocol {
            return Self::Client;
        }
        if h2_upgrade_policy == Some("UPGRADE") {
            return Self::Http2;
        }
        // The mesh's default h2UpgradePolicy is DO_NOT_UPGRADE; a sniffed port keeps the
        // client's protocol on a sidecar.
        if port == PortProtocol::Unsupported {
            Self::Client
        } else {
            Self::Http1
        }
    }

    /// Whether a request the client sent as `version` goes out as HTTP/2.
    pub fn speaks_http2(self, version: http::Version) -> bool {
        match self {
            Self::Http1 => false,
            Self::Http2 => true,
            Self::Client => version == http::Version::HTTP_2,
        }
    }

    /// For the route trace and the Traffic detail.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Http1 => "HTTP/1.1",
            Self::Http2 => "HTTP/2 (h2c)",
            Self::Client => "the client's protocol",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_as_istio_parses_them() {
        assert_eq!(PortProtocol::parse(Some("GRPC")), PortProtocol::Http2);
        assert_eq!(PortProtocol::parse(Some("grpc-web")), PortProtocol::Http2);
        assert_eq!(PortProtocol::parse(Some("HTTP2")), PortProtocol::Http2);
        assert_eq!(PortProtocol::parse(Some("Http")), PortProtocol::Http);
        assert_eq!(PortProtocol::parse(Some("TCP")), PortProtocol::Other);
        assert_eq!(PortProtocol::parse(Some("HTTPS")), PortProtocol::Tls);
        for known in KNOWN_PROTOCOLS {
            assert_ne!(PortProtocol::parse(Some(known)), PortProtocol::Unsupported);
        }
        assert_eq!(
            PortProtocol::parse(Some("thrift")),
            PortProtocol::Unsupported
        );
        assert_eq!(PortProtocol::parse(None), PortProtocol::Unsupported);
    }

    #[test]
    fn the_cluster_protocol_follows_set_upstream_protocol_and_should_h2_upgrade() {
        use UpstreamProtocol::*;
        let http = PortProtocol::Http;
        assert_eq!(UpstreamProtocol::for_cluster(http, None, false), Http1);
        assert_eq!(
            UpstreamProtocol::for_cluster(http, Some("UPGRADE"), false),
            Http2
        );
        assert_eq!(
            UpstreamProtocol::for_cluster(http, Some("UPGRADE"), true),
            Client
        );
        assert_eq!(
            UpstreamProtocol::for_cluster(http, Some("DO_NOT_UPGRADE"), false),
            Http1
        );
        let grpc = PortProtocol::Http2;
        assert_eq!(UpstreamProtocol::for_cluster(grpc, None, true), Http2);
        let sniffed = PortProtocol::Unsupported;
        assert_eq!(UpstreamProtocol::for_cluster(sniffed, None, false), Client);
        assert!(Client.speaks_http2(http::Version::HTTP_2));
        assert!(!Client.speaks_http2(http::Version::HTTP_11));
    }
}
