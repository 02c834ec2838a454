//! The compiled route table: VirtualServices by host, their routes in order, and every
//! destination resolved to endpoints on this machine.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use super::matchers::MatchBlock;
use super::{
    EndpointAddr, MirrorHeaders, MirrorPolicy, NoRoute, RequestHead, Resolution, RouteTrace,
    Upstream, WeightedUpstream,
};
use crate::config::hosts::{
    CLUSTER_DOMAIN, fqdn, host_matches, labels_contain, request_host_candidates, specificity,
};
use crate::config::mirror_headers::MirrorHeaderEdits;
use crate::config::model::{Destination, HttpRoute, OrderedMap};
use crate::config::parse_duration;
use crate::config::{ConfigSet, Diagnostic, Resource, Severity, codes};

/// Port used for a destination without `port.number` and no ServiceEntry port.
pub const DEFAULT_PORT: u16 = 80;

/// An immutable, compiled route table: build it once per config, share it behind an `Arc`.
#[derive(Debug)]
pub struct RouteTable {
    services: Vec<CompiledVirtualService>,
    hosts: Vec<String>,
    default_host: Option<String>,
    /// Which VirtualService each host a request named resolved to: working it out builds
    /// the name's candidate FQDNs and tries every pattern, and a lab sees a handful of
    /// hosts over and over. The table never changes, so neither do the answers.
    host_cache: RwLock<HashMap<String, Option<usize>>>,
}

/// Most hosts remembered; a client inventing names starts the cache afresh when it fills.
const MAX_CACHED_HOSTS: usize = 1024;

#[derive(Debug)]
struct CompiledVirtualService {
    /// `namespace/name`.
    name: String,
    /// Normalized host patterns.
    hosts: Vec<String>,
    routes: Vec<CompiledRoute>,
}

#[derive(Debug)]
struct CompiledRoute {
    index: usize,
    name: Option<String>,
    matches: Vec<MatchBlock>,
    destinations: Arc<[WeightedUpstream]>,
    mirrors: Arc<[MirrorPolicy]>,
    timeout: Option<Duration>,
}

impl RouteTable {
    /// Compiles a checked config. Refuses when the config has errors and returns them (the
    /// warnings are in `set.diagnostics()`).
    pub fn compile(set: &ConfigSet) -> Result<Self, Vec<Diagnostic>> {
        let errors: Vec<Diagnostic> = set
            .diagnostics()
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .cloned()
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut resolver = UpstreamResolver {
            set,
            cache: HashMap::new(),
        };
        let mut services = Vec::new();
        let mut hosts = Vec::new();
        let mut errors = Vec::new();
        for (resource, vs) in set.virtual_services() {
            let namespace = vs.metadata.namespace_or_default().to_owned();
            let mut routes = Vec::new();
            for (index, route) in vs.spec.http.iter().enumerate() {
                let scope = RouteScope {
                    resource,
                    namespace: &namespace,
                    annotations: &vs.metadata.annotations,
                };
                match compile_route(set, &scope, index, route, &mut resolver) {
                    Ok(r) => routes.push(r),
                    Err(d) => errors.push(*d),
                }
            }
            hosts.extend(vs.spec.hosts.iter().cloned());
            services.push(CompiledVirtualService {
                name: resource.object.qualified_name(),
                hosts: vs.spec.hosts.iter().map(|h| fqdn(h, &namespace)).collect(),
                routes,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let default_host = match services.as_slice() {
            [_] => set
                .virtual_services()
                .next()
                .and_then(|(_, vs)| vs.spec.hosts.first().cloned()),
            _ => None,
        };
        Ok(Self {
            host_cache: RwLock::new(HashMap::new()),
            services,
            hosts,
            default_host,
        })
    }

    /// Which VirtualService, route, match block, destinations and mirrors a request gets.
    /// Deterministic: weighted picks and mirror draws are the caller's.
    pub fn resolve(&self, req: &RequestHead<'_>) -> Result<Resolution, NoRoute> {
        let host = strip_port(req.authority);
        let Some(vs) = self.find_service(host) else {
            return Err(NoRoute::UnknownHost {
                host: host.to_owned(),
                configured: self.hosts.clone(),
            });
        };
        for route in &vs.routes {
            let matched = if route.matches.is_empty() {
                Some(None)
            } else {
                route.matches.iter().position(|m| m.matches(req)).map(Some)
            };
            let Some(match_index) = matched else {
                continue;
            };
            let match_summary = match match_index.and_then(|i| route.matches.get(i)) {
                Some(block) => block.summary().to_owned(),
                None => "any request".to_owned(),
            };
            return Ok(Resolution {
                trace: RouteTrace {
                    virtual_service: vs.name.clone(),
                    route_index: route.index,
                    route_name: route.name.clone(),
                    match_index,
                    match_summary,
                },
                destinations: Arc::clone(&route.destinations),
                mirrors: Arc::clone(&route.mirrors),
                timeout: route.timeout,
            });
        }
        Err(NoRoute::NoMatchingRoute {
            host: host.to_owned(),
            virtual_service: vs.name.clone(),
            routes: vs.routes.len(),
            method: req.method.to_owned(),
            path: req.path_and_query.to_owned(),
        })
    }

    /// Hosts of every VirtualService, as written, in config order.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The first host of the only VirtualService (`None` with zero or several).
    pub fn default_host(&self) -> Option<&str> {
        self.default_host.as_deref()
    }

    /// Every distinct upstream the table can send to (primaries and mirrors), for the demo
    /// services and the UI.
    pub fn upstreams(&self) -> Vec<Arc<Upstream>> {
        let mut seen: Vec<Arc<Upstream>> = Vec::new();
        for route in self.services.iter().flat_map(|s| &s.routes) {
            let all = route
                .destinations
                .iter()
                .map(|d| &d.upstream)
                .chain(route.mirrors.iter().map(|m| &m.upstream));
            for u in all {
                if !seen.iter().any(|s| Arc::ptr_eq(s, u)) {
                    seen.push(Arc::clone(u));
                }
            }
        }
        seen
    }

    /// The VirtualService for a request host: an exact name first, then the most specific
    /// wildcard, as Istio picks.
    fn find_service(&self, host: &str) -> Option<&CompiledVirtualService> {
        // Plain data behind the lock: a panic elsewhere leaves nothing half-written.
        let cached = self
            .host_cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(host)
            .copied();
        let index = match cached {
            Some(index) => index,
            None => {
                let found = self.search_service(host);
                let mut cache = self
                    .host_cache
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                if cache.len() >= MAX_CACHED_HOSTS {
                    cache.clear();
                }
                cache.insert(host.to_owned(), found);
                found
            }
        };
        index.and_then(|i| self.services.get(i))
    }

    /// The index of the VirtualService serving `host`: the most specific pattern wins.
    fn search_service(&self, host: &str) -> Option<usize> {
        let candidates = request_host_candidates(host);
        let mut best: Option<((bool, usize), usize)> = None;
        for (index, vs) in self.services.iter().enumerate() {
            for pattern in &vs.hosts {
                if candidates.iter().any(|c| host_matches(pattern, c)) {
                    let rank = specificity(pattern);
                    // Strictly greater: on a tie the VirtualService loaded first wins.
                    if best.as_ref().is_none_or(|(b, _)| rank > *b) {
                        best = Some((rank, index));
                    }
                }
            }
        }
        best.map(|(_, index)| index)
            .or_else(|| self.find_by_short_name(host))
    }

    /// A bare service name (`reviews`) that matches no host in namespace `default`: the lab's
    /// client has no namespace of its own, so take the one VirtualService whose cluster host
    /// has that name in any namespace (a dump from namespace `bookinfo` works as it is).
    fn find_by_short_name(&self, host: &str) -> Option<usize> {
        let name = host.trim().to_ascii_lowercase();
        if name.is_empty() || name.contains('.') || name.contains(':') {
            return None;
        }
        let mut found = self.services.iter().enumerate().filter(|(_, vs)| {
            vs.hosts.iter().any(|h| {
                h.strip_suffix(CLUSTER_DOMAIN)
                    .and_then(|rest| rest.split_once('.'))
                    .is_some_and(|(svc, _ns)| svc == name)
            })
        });
        match (found.next(), found.next()) {
            (Some((index, _)), None) => Some(index),
            _ => None,
        }
    }
}

/// `host:port` → `host`; `[::1]:80` → `::1`; a bare IPv6 address is kept.
fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// Where a route sits: its VirtualService, namespace and the VirtualService's annotations.
struct RouteScope<'a> {
    resource: &'a Resource,
    namespace: &'a str,
    annotations: &'a OrderedMap<String>,
}

fn compile_route(
    set: &ConfigSet,
    scope: &RouteScope<'_>,
    index: usize,
    route: &HttpRoute,
    resolver: &mut UpstreamResolver<'_>,
) -> Result<CompiledRoute, Box<Diagnostic>> {
    let (resource, namespace) = (scope.resource, scope.namespace);
    let base = format!("spec.http[{index}]");
    let fail = |field: String, message: String| {
        Box::new(
            Diagnostic::error(
                codes::INVALID_MATCH,
                message,
                set.file_name(resource).to_owned(),
                set.line_of(resource, &field),
            )
            .with_resource(resource.display_name())
            .with_field(field),
        )
    };
    let mut matches = Vec::with_capacity(route.matches.len());
    for (i, m) in route.matches.iter().enumerate() {
        let block = MatchBlock::compile(m)
            .map_err(|e| fail(format!("{base}.match[{i}]"), e.to_string()))?;
        matches.push(block);
    }
    let lone = route.route.len() == 1;
    let destinations: Vec<WeightedUpstream> = route
        .route
        .iter()
        .map(|d| WeightedUpstream {
            upstream: resolver.upstream(&d.destination, namespace),
            weight: d.weight.unwrap_or(if lone { 100 } else { 0 }),
        })
        .collect();
    // The checker already refused malformed annotations; a failure here means the config
    // was compiled without being checked, and is reported the same way.
    let headers = MirrorHeaderEdits::for_route(scope.annotations, route.name.as_deref())
        .map_err(|e| e.to_string())
        .and_then(|edits| MirrorHeaders::from_edits(&edits))
        .map(Arc::new)
        .map_err(|message| fail("metadata.annotations".to_owned(), message))?;
    let mut mirrors = Vec::new();
    if let Some(m) = &route.mirror {
        let percent = route
            .mirror_percentage
            .as_ref()
            .map(|p| p.value)
            .or(route.mirror_percent.map(f64::from))
            .or(route.mirror_percent_legacy.map(f64::from));
        mirrors.push(MirrorPolicy {
            upstream: resolver.upstream(m, namespace),
            fraction: fraction(percent),
            headers: Arc::clone(&headers),
        });
    }
    for m in &route.mirrors {
        mirrors.push(MirrorPolicy {
            upstream: resolver.upstream(&m.destination, namespace),
            fraction: fraction(m.percentage.as_ref().map(|p| p.value)),
            headers: Arc::clone(&headers),
        });
    }
    let timeout = match &route.timeout {
        Some(t) => {
            Some(parse_duration(t).map_err(|e| fail(format!("{base}.timeout"), e.to_string()))?)
        }
        None => None,
    };
    Ok(CompiledRoute {
        index,
        name: route.name.clone(),
        matches,
        destinations: destinations.into(),
        mirrors: mirrors.into(),
        timeout,
    })
}

/// Percentage (absent: 100) → fraction clamped to 0..=1.
fn fraction(percent: Option<f64>) -> f64 {
    (percent.unwrap_or(100.0) / 100.0).clamp(0.0, 1.0)
}

/// Resolves destinations to shared upstreams (one per host+subset+port, so round robin is
/// shared between routes that name the same destination).
struct UpstreamResolver<'a> {
    set: &'a ConfigSet,
    cache: HashMap<(String, Option<String>, Option<u32>), Arc<Upstream>>,
}

impl UpstreamResolver<'_> {
    fn upstream(&mut self, dest: &Destination, namespace: &str) -> Arc<Upstream> {
        let host = fqdn(&dest.host, namespace);
        let port = dest.port.as_ref().and_then(|p| p.number);
        let key = (host.clone(), dest.subset.clone(), port);
        if let Some(u) = self.cache.get(&key) {
            return Arc::clone(u);
        }
        let endpoints =
            resolve_endpoints(self.set, &host, &dest.host, dest.subset.as_deref(), port);
        let mut label = dest.host.clone();
        if let Some(p) = port {
            label.push_str(&format!(":{p}"));
        }
        if let Some(s) = &dest.subset {
            label.push_str(&format!("/{s}"));
        }
        let upstream = Arc::new(Upstream::new(
            dest.host.clone(),
            dest.subset.clone(),
            port.and_then(|p| u16::try_from(p).ok()),
            label,
            endpoints,
        ));
        self.cache.insert(key, Arc::clone(&upstream));
        upstream
    }
}

/// Endpoints for a destination: the ServiceEntry endpoints whose labels contain the subset's
/// labels, on the ServiceEntry port matching `port`; with no ServiceEntry, the host itself
/// (an IP or a DNS name) on `port` (80 if absent).
pub fn resolve_endpoints(
    set: &ConfigSet,
    host_fqdn: &str,
    host_as_written: &str,
    subset: Option<&str>,
    port: Option<u32>,
) -> Vec<EndpointAddr> {
    let selector = subset.and_then(|s| set.subset_labels(host_fqdn, s));
    let entry = set.service_entry_for(host_fqdn);
    let Some((_, se)) = entry else {
        let port = port
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(DEFAULT_PORT);
        return vec![address(host_as_written, port)];
    };
    let se_port = match port {
        Some(n) => se.spec.ports.iter().find(|p| p.number == n),
        None => se.spec.ports.first(),
    };
    let service_port = port.or(se_port.map(|p| p.number));
    if se.spec.endpoints.is_empty() {
        // A DNS ServiceEntry without endpoints: the host itself is the address.
        let p = service_port
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(DEFAULT_PORT);
        return vec![address(host_as_written, p)];
    }
    se.spec
        .endpoints
        .iter()
        .filter(|ep| selector.is_none_or(|sel| labels_contain(&ep.labels, sel)))
        .filter_map(|ep| {
            let addr = ep.address.as_deref()?;
            let p = se_port
                .and_then(|sp| ep.ports.get(&sp.name).copied().or(sp.target_port))
                .or(service_port)?;
            Some(address(addr, u16::try_from(p).ok()?))
        })
        .collect()
}

fn address(host: &str, port: u16) -> EndpointAddr {
    match host.parse::<IpAddr>() {
        Ok(ip) => EndpointAddr::Socket(SocketAddr::new(ip, port)),
        Err(_) => EndpointAddr::Dns {
            host: host.to_owned(),
            port,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_tables_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RouteTable>();
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("reviews:9080"), "reviews");
        assert_eq!(strip_port("reviews"), "reviews");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("::1"), "::1");
    }

    #[test]
    fn fractions() {
        assert_eq!(fraction(None), 1.0);
        assert_eq!(fraction(Some(0.0)), 0.0);
        assert_eq!(fraction(Some(25.0)), 0.25);
        assert_eq!(fraction(Some(100.0)), 1.0);
    }
}
