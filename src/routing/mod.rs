//! Compiled, immutable route tables: which VirtualService, which route, which match block,
//! which weighted destination and which mirror policies a request gets.
//!
//! The proxy only sees the types in this file; how they are built from the Istio model in
//! `crate::config` is this module's business.

pub mod action;
pub mod balancer;
mod compile;
mod delegate;
mod gateway;
pub mod matchers;
pub mod policy;
mod resolve;
pub mod retry;
pub mod table;
pub mod tls;
pub mod workload;

pub use crate::config::matcher::{MatchField, MatcherError, StringMatcher};
pub use action::{ActionKind, Route, RouteAction};
pub use matchers::MatchBlock;
pub use table::RouteTable;
pub use workload::Workload;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::headers::HeaderOps;

/// The parts of an incoming request that routing looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// HTTP method, e.g. `GET`.
    pub method: &'a str,
    /// `http` or `https` (the scheme the client used, `http` for the lab's plain listener).
    pub scheme: &'a str,
    /// Host the request is addressed to, lowercase, without the port: what picks the
    /// VirtualService (Istio's virtual hosts ignore the port).
    pub host: &'a str,
    /// The authority as the client sent it, port included: what an `authority` match
    /// compares (Istio matches it as the `:authority` header).
    pub authority: &'a str,
    /// Path with query string, as the client sent it.
    pub path_and_query: &'a str,
    /// Request headers (names are lowercase in `http::HeaderMap`).
    pub headers: &'a http::HeaderMap,
    /// The service port the request was addressed to: what a `port` match compares.
    pub port: u16,
}

/// Where a destination really lives on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EndpointAddr {
    /// An IP endpoint (ServiceEntry endpoint address or a literal IP host).
    Socket(SocketAddr),
    /// A DNS name reached on a port (a host with no ServiceEntry).
    Dns {
        /// The DNS name.
        host: String,
        /// The port to connect to.
        port: u16,
    },
}

impl std::fmt::Display for EndpointAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndpointAddr::Socket(addr) => write!(f, "{addr}"),
            EndpointAddr::Dns { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// A resolved destination (host + optional subset + port): the endpoints that serve it, the
/// cluster policy its DestinationRule gives it, and its runtime state (balancer, circuit
/// breakers, outlier detection).
#[derive(Debug)]
pub struct Upstream {
    /// Destination host as written in the VirtualService (e.g. `reviews`).
    pub host: String,
    /// Subset name, if the destination names one.
    pub subset: Option<String>,
    /// `destination.port.number`, if given.
    pub port: Option<u16>,
    /// Human label used in captures, reports and the UI: `reviews/v1`, `reviews-v2`, `reviews:9080`.
    /// Shared with every exchange that names it.
    pub label: Arc<str>,
    /// Endpoints that serve this destination. Empty only when a subset selects no
    /// ServiceEntry endpoint (`mirrorlab check` warns ML0206); the proxy answers 503 then.
    pub endpoints: Vec<EndpointAddr>,
    /// What the DestinationRule sets up for it.
    pub policy: policy::ClusterPolicy,
    /// Balancer, breakers and ejections.
    pub state: balancer::ClusterState,
}

impl Upstream {
    /// Builds an upstream with Istio's default cluster policy.
    pub fn new(
        host: String,
        subset: Option<String>,
        port: Option<u16>,
        label: String,
        endpoints: Vec<EndpointAddr>,
    ) -> Self {
        Self::with_policy(
            host,
            subset,
            port,
            label,
            endpoints,
            policy::ClusterPolicy::default(),
        )
    }

    /// Builds an upstream with `policy`.
    pub fn with_policy(
        host: String,
        subset: Option<String>,
        port: Option<u16>,
        label: String,
        endpoints: Vec<EndpointAddr>,
        policy: policy::ClusterPolicy,
    ) -> Self {
        let addresses: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
        let state = balancer::ClusterState::new(&policy, &addresses);
        Self {
            host,
            subset,
            port,
            label: Arc::from(label),
            endpoints,
            policy,
            state,
        }
    }

    /// An endpoint picked by the destination's balancer (for a request with no hash and
    /// nothing to avoid), or `None` when none can be.
    pub fn next_endpoint(&self) -> Option<&EndpointAddr> {
        let mut rng = fastrand::Rng::new();
        self.pick(balancer::PickInput {
            hash: None,
            avoid: &[],
            attempts: 1,
            rng: &mut rng,
            now: std::time::Instant::now(),
        })
        .ok()
        .map(|(_, endpoint)| endpoint)
    }

    /// Picks an endpoint with the destination's balancer, passing over ejected ones.
    pub fn pick(
        &self,
        input: balancer::PickInput<'_>,
    ) -> Result<(balancer::Pick, &EndpointAddr), balancer::NoPick> {
        let pick = self.state.pick(&self.policy, input)?;
        self.endpoints
            .get(pick.index)
            .map(|e| (pick, e))
            .ok_or(balancer::NoPick::NoEndpoints)
    }
}

/// One weighted destination of a route.
#[derive(Debug, Clone)]
pub struct WeightedUpstream {
    /// The destination.
    pub upstream: Arc<Upstream>,
    /// Istio weight (0..=100; a lone destination without weight counts as 100).
    pub weight: u32,
    /// The request header operations when this destination is picked, in the order Envoy
    /// runs them (route and destination level, see `compile`).
    pub request_headers: Arc<[HeaderOps]>,
    /// The response header operations, likewise.
    pub response_headers: Arc<[HeaderOps]>,
    /// The host rewrite when this destination is picked: the route's `rewrite.authority` (or
    /// its `:authority` header), else the destination's.
    pub authority: Option<http::HeaderValue>,
    /// What the header operations do, one line each, for the route trace.
    pub trace: Arc<[String]>,
}

impl WeightedUpstream {
    /// A destination without header operations or host rewrite.
    pub fn plain(upstream: Arc<Upstream>, weight: u32) -> Self {
        Self {
            upstream,
            weight,
            request_headers: Arc::new([]),
            response_headers: Arc::new([]),
            authority: None,
            trace: Arc::new([]),
        }
    }
}

/// One mirror policy of a route: `mirror` + `mirrorPercentage`, or one entry of `mirrors`.
#[derive(Debug, Clone)]
pub struct MirrorPolicy {
    /// Where the copy goes.
    pub upstream: Arc<Upstream>,
    /// Fraction of requests to mirror, 0.0..=1.0 (absent percentage: 1.0; explicit 0: 0.0).
    pub fraction: f64,
    /// Header edits for the copy (from `mirrorlab.dev/mirror-*-headers` annotations).
    pub headers: Arc<MirrorHeaders>,
}

/// Headers removed from or set on a mirrored copy, never on the primary's request: keeps
/// production credentials away from a service under test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorHeaders {
    /// Removed first.
    pub remove: Vec<http::HeaderName>,
    /// Then set, replacing whatever the client sent.
    pub set: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl MirrorHeaders {
    /// Converts checked annotation edits; names or values `http` refuses are an error.
    pub fn from_edits(
        edits: &crate::config::mirror_headers::MirrorHeaderEdits,
    ) -> Result<MirrorHeaders, String> {
        let name = |n: &str| {
            http::HeaderName::from_bytes(n.as_bytes())
                .map_err(|e| format!("`{n}` is not a header name: {e}"))
        };
        let mut out = MirrorHeaders::default();
        for n in &edits.remove {
            out.remove.push(name(n)?);
        }
        for (n, v) in &edits.set {
            let value = http::HeaderValue::from_str(v)
                .map_err(|e| format!("the value of `{n}` is not a header value: {e}"))?;
            out.set.push((name(n)?, value));
        }
        Ok(out)
    }

    /// The lab-wide edits as the app's settings and `mirrorlab run` take them: names to
    /// remove (comma- or newline-separated) and `name: value` lines to set, read by the
    /// same rules as the `mirrorlab.dev/mirror-*-headers` annotations (the protected
    /// headers, `host` and `x-request-id` among them, refused).
    pub fn lab_wide(remove: &str, set: &str) -> Result<MirrorHeaders, String> {
        use crate::config::mirror_headers::{MirrorHeaderEdits, parse_remove, parse_set};
        let remove = parse_remove("remove", remove)
            .map_err(|e| format!("headers to remove from mirrored copies: {}", e.reason))?;
        let set = parse_set("set", set)
            .map_err(|e| format!("headers to set on mirrored copies: {}", e.reason))?;
        MirrorHeaders::from_edits(&MirrorHeaderEdits { remove, set })
    }

    /// True when the edits change nothing.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty()
    }

    /// Applies the edits to a copy's headers.
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Where a request went in the config: the route trace shown in captures and the UI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTrace {
    /// `namespace/name` of the VirtualService; for a default route, the service's host.
    /// Shared with the compiled route (as are the route's name and the match's summary):
    /// every request's trace names them, and none copies them.
    pub virtual_service: Arc<str>,
    /// Index of the route in `spec.http` (of the root VirtualService for a delegated route).
    pub route_index: usize,
    /// `spec.http[i].name`, if set (`default` for a default route).
    pub route_name: Option<Arc<str>>,
    /// Index of the match block that matched; `None` for a route without `match`.
    pub match_index: Option<usize>,
    /// Human description of the matched block, e.g. `header user-agent ~ .*testing.*`.
    pub match_summary: Arc<str>,
    /// Where the route came from.
    pub origin: RouteOrigin,
    /// What answered the request.
    pub action: ActionKind,
    /// What the lab did to the request on the way, in order: `fault: delayed 2s`,
    /// `rewrite /v1/reviews → /reviews`, `request header x-env set to lab`.
    pub steps: Vec<String>,
}

/// Which resource a route comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RouteOrigin {
    /// A route of the VirtualService itself.
    #[default]
    VirtualService,
    /// A route of a delegate VirtualService, merged into the root's route at `route_index`.
    Delegate {
        /// `namespace/name` of the delegate.
        virtual_service: String,
        /// Index of the route in the delegate's `spec.http`.
        route_index: usize,
    },
    /// A rule of a Gateway API route: `route_index` is the rule, `match_index` the match.
    GatewayRoute {
        /// `HTTPRoute` or `GRPCRoute`.
        kind: &'static str,
        /// `namespace/name` of the route (also the trace's `virtual_service`).
        route: String,
    },
    /// The route a sidecar gives a host a ServiceEntry defines and no VirtualService routes.
    DefaultRoute {
        /// `namespace/name` of the ServiceEntry.
        service_entry: String,
    },
}

/// What the route table says about a request.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// Where the request went in the config.
    pub trace: RouteTrace,
    /// What the route does.
    pub route: Arc<Route>,
    /// How many bytes of the path the matched block matched: the part a `rewrite.uri`
    /// replaces (the whole path for exact and regex matches, `/` without a uri match).
    pub matched: usize,
}

impl Resolution {
    /// The forwarding action, if the route forwards.
    pub fn forward(&self) -> Option<&action::Forward> {
        match &self.route.action {
            RouteAction::Forward(forward) => Some(forward),
            _ => None,
        }
    }

    /// The mirror policies of a forwarding route (none for the other actions).
    pub fn mirrors(&self) -> &[MirrorPolicy] {
        self.forward().map_or(&[], |f| &f.mirrors)
    }

    /// The route timeout of a forwarding route.
    pub fn timeout(&self) -> Option<std::time::Duration> {
        self.forward().and_then(|f| f.timeout)
    }

    /// Picks the primary destination for a uniform draw `u` in `0.0..1.0` by weight.
    pub fn pick_destination(&self, u: f64) -> Option<&WeightedUpstream> {
        self.forward().and_then(|f| f.pick(u))
    }
}

impl action::Forward {
    /// Picks the destination for a uniform draw `u` in `0.0..1.0` by weight.
    pub fn pick(&self, u: f64) -> Option<&WeightedUpstream> {
        let total: u32 = self.destinations.iter().map(|d| d.weight).sum();
        if total == 0 {
            return self.destinations.first();
        }
        let mut target = u.clamp(0.0, 1.0) * f64::from(total);
        for d in self.destinations.iter() {
            let w = f64::from(d.weight);
            if target < w {
                return Some(d);
            }
            target -= w;
        }
        self.destinations.iter().rev().find(|d| d.weight > 0)
    }
}

/// Why a request got no route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoRoute {
    /// No VirtualService claims the host and no ServiceEntry defines it.
    #[error(
        "no VirtualService for host '{host}'{}; configured hosts: {}. Address one with a Host header (curl -H 'Host: {}' ...), by using the lab as HTTP_PROXY, or start the lab with --host NAME",
        passed_over.iter().map(|p| format!(" ({p})")).collect::<String>(),
        configured.join(", "),
        configured.first().map(String::as_str).unwrap_or("reviews")
    )]
    UnknownHost {
        /// The host the request asked for.
        host: String,
        /// Hosts the config serves.
        configured: Vec<String>,
        /// VirtualServices for the host that do not apply to the lab's traffic, and why.
        passed_over: Vec<String>,
    },
    /// The VirtualService exists but none of its routes matched.
    #[error(
        "VirtualService {virtual_service} serves host '{host}' but none of its {routes} http routes matched {method} {path}"
    )]
    NoMatchingRoute {
        /// The host the request asked for.
        host: String,
        /// `namespace/name` of the VirtualService.
        virtual_service: String,
        /// How many routes were tried.
        routes: usize,
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
}
