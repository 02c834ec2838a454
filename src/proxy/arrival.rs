//! The first stage: what arrived, whom it is addressed to, and which route it takes (Envoy's
//! virtual host and route selection, before any filter runs).

use std::net::IpAddr;
use std::time::SystemTime;

use http::header::HOST;
use http::request::Parts;
use http::uri::PathAndQuery;
use hyper::body::Incoming;

use crate::routing::{NoRoute, RequestHead, Resolution};

use super::Shared;

/// A request as it arrived, before any stage changed it.
pub(super) struct Arrival {
    /// Lab-local sequence number.
    pub id: u64,
    /// When it arrived.
    pub started_at: SystemTime,
    pub parts: Parts,
    pub body: Incoming,
    /// The host it is addressed to, lowercase, without the port.
    pub host: String,
    /// The port it names, if any.
    pub port: Option<u16>,
    /// The request target (a `Bytes` clone of the URI's, no copy).
    pub path_and_query: PathAndQuery,
    /// The client's address.
    pub client: Option<std::net::SocketAddr>,
}

impl Arrival {
    /// Takes a request apart.
    pub(super) fn new(
        id: u64,
        request: http::Request<Incoming>,
        client: Option<std::net::SocketAddr>,
    ) -> Self {
        let (parts, body) = request.into_parts();
        let (host, port) = target_authority(&parts);
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        Self {
            id,
            started_at: SystemTime::now(),
            parts,
            body,
            host,
            port,
            path_and_query,
            client,
        }
    }

    /// The authority as the client sent it, port included: the absolute-form target's or
    /// the Host header's.
    pub(super) fn authority(&self) -> &str {
        match self.parts.uri.authority() {
            Some(authority) => authority.as_str(),
            None => self
                .parts
                .headers
                .get(HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
        }
    }
}

/// The route a request takes, and the service port it addressed.
pub(super) struct Routed {
    pub resolution: Resolution,
    /// The service port the request addressed.
    pub port: u16,
}

impl Shared {
    /// Picks the route: by the Host (or the absolute-form target), or the lab's default host
    /// for a request addressed to the lab itself.
    pub(super) fn route(&self, arrival: &Arrival) -> Result<Routed, NoRoute> {
        let routes = self.routes.load();
        let own = self.is_own_address(&arrival.host, arrival.port);
        let host = if own {
            self.settings
                .default_host
                .as_deref()
                .or_else(|| routes.default_host())
        } else {
            Some(arrival.host.as_str())
        };
        let Some(host) = host else {
            return Err(NoRoute::UnknownHost {
                host: arrival.host.clone(),
                configured: routes.hosts(),
                passed_over: Vec::new(),
            });
        };
        // A request to the lab itself, or one whose Host names no port, addresses the
        // service's own port.
        let port = arrival.port.filter(|_| !own);
        let authority = if own { host } else { arrival.authority() };
        let head = RequestHead {
            method: arrival.parts.method.as_str(),
            scheme: "http",
            host,
            authority,
            path_and_query: arrival.path_and_query.as_str(),
            headers: &arrival.parts.headers,
            // Filled in by `resolve_at`, from `port` or the host's service port.
            port: 0,
        };
        let (resolution, port) = routes.resolve_at(head, port)?;
        Ok(Routed { resolution, port })
    }

    /// True when the request is addressed to the proxy itself rather than to a service.
    fn is_own_address(&self, host: &str, port: Option<u16>) -> bool {
        if host.is_empty() {
            return true;
        }
        if port != Some(self.local_addr.port()) {
            return false;
        }
        if host == "localhost" {
            return true;
        }
        let own = self.local_addr.ip();
        if host == "127.0.0.1" {
            // What a local client nearly always names: no need to parse it.
            return own.is_loopback() || own.is_unspecified();
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match host.parse::<IpAddr>() {
            Ok(ip) => ip == own || own.is_unspecified() || (ip.is_loopback() && own.is_loopback()),
            Err(_) => false,
        }
    }
}

/// The host (lowercase, without port) and port a request is addressed to: the absolute-form
/// target or `:authority` when present (the lab used as `HTTP_PROXY`, HTTP/2), else Host.
fn target_authority(parts: &Parts) -> (String, Option<u16>) {
    if let Some(authority) = parts.uri.authority() {
        return (authority.host().to_ascii_lowercase(), authority.port_u16());
    }
    let Some(host) = parts.headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return (String::new(), None);
    };
    if let Some((name, port)) = plain_host_port(host) {
        return (name.to_ascii_lowercase(), port);
    }
    match host.parse::<http::uri::Authority>() {
        Ok(authority) => (authority.host().to_ascii_lowercase(), authority.port_u16()),
        Err(_) => (host.to_ascii_lowercase(), None),
    }
}

/// `name` or `name:port` made only of letters, digits, dots and dashes: what nearly every
/// Host header holds. Splitting it by hand spares a parse per request; anything else (IPv6
/// literals, odd characters) is left to the full authority parser.
fn plain_host_port(host: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (name, Some(port.parse::<u16>().ok()?))
        }
        None => (host, None),
    };
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    plain.then_some((name, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_host_headers_split_like_the_authority_parser() {
        for host in [
            "reviews",
            "Reviews.Default:9080",
            "127.0.0.1:15001",
            "a-b.c",
        ] {
            let authority: http::uri::Authority = host.parse().expect("valid test authority");
            assert_eq!(
                plain_host_port(host),
                Some((authority.host(), authority.port_u16())),
                "{host}"
            );
        }
        for host in [
            "[::1]:80", "host:", "host:x1", "ho st", "", ":80", "h:99999",
        ] {
            assert_eq!(plain_host_port(host), None, "{host}");
        }
    }

    #[test]
    fn authority_prefers_the_absolute_form_target() {
        let request = http::Request::builder()
            .uri("http://Reviews:9080/reviews/1")
            .header(HOST, "other")
            .body(())
            .expect("valid test request");
        let (parts, ()) = request.into_parts();
        assert_eq!(target_authority(&parts), ("reviews".to_owned(), Some(9080)));
        let request = http::Request::builder()
            .uri("/reviews/1")
            .header(HOST, "127.0.0.1:15001")
            .body(())
            .expect("valid test request");
        let (parts, ()) = request.into_parts();
        assert_eq!(
            target_authority(&parts),
            ("127.0.0.1".to_owned(), Some(15001))
        );
    }
}
