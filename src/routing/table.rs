//! The compiled route table: VirtualServices by host, their routes in order, and every
//! destination resolved to endpoints on this machine.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;

use super::action::{ActionKind, Route, RouteAction, split_query};
use super::compile::{self, RouteScope, UpstreamResolver, compile_route};
use super::delegate::{self, Expanded};
use super::matchers::MatchBlock;
use super::resolve::DEFAULT_PORT;
use super::{NoRoute, RequestHead, Resolution, RouteOrigin, RouteTrace, Upstream, Workload};
use crate::config::hosts::{
    CLUSTER_DOMAIN, fqdn, host_matches, request_host_candidates, specificity,
};
use crate::config::model::{Destination, PortSelector, VirtualService};
use crate::config::{ConfigSet, Diagnostic, Severity};

pub use super::resolve::resolve_endpoints;

/// An immutable, compiled route table: build it once per config, share it behind an `Arc`.
#[derive(Debug)]
pub struct RouteTable {
    services: Vec<CompiledVirtualService>,
    /// Hosts ServiceEntries define, each with the default route a sidecar gives it.
    defaults: Vec<DefaultService>,
    hosts: Vec<String>,
    default_host: Option<String>,
    /// VirtualServices that do not apply to the lab's traffic, with their hosts, and why.
    passed_over: Vec<(Vec<String>, String)>,
    /// What compiling noticed and passed over (a delegate that could not be used, ...).
    notes: Vec<String>,
    /// Which VirtualService or default route each host a request named resolved to:
    /// working it out builds the name's candidate FQDNs and tries every pattern, and a lab
    /// sees a handful of hosts over and over. The table never changes, so neither do the
    /// answers.
    host_cache: RwLock<HashMap<String, HostEntry, foldhash::fast::RandomState>>,
}

/// What a host resolved to, and its service port.
#[derive(Debug, Clone, Copy)]
struct HostEntry {
    hit: HostHit,
    /// The first port of the host's ServiceEntry, else 80.
    port: u16,
}

/// What a host resolved to.
#[derive(Debug, Clone, Copy)]
enum HostHit {
    Service(usize),
    Default(usize),
    Unknown,
}

/// The trace's match summary for a route without `match`, shared by every such request.
static ANY_REQUEST: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("any request"));
/// The trace's route name for a host's default route.
static DEFAULT_ROUTE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("default"));

/// Most hosts remembered; a client inventing names starts the cache afresh when it fills.
const MAX_CACHED_HOSTS: usize = 1024;

#[derive(Debug)]
pub(super) struct CompiledVirtualService {
    /// `namespace/name`.
    pub(super) name: Arc<str>,
    /// Normalized host patterns.
    pub(super) hosts: Vec<String>,
    /// The host a request addressed to the lab goes to when this is the only service.
    pub(super) default_host: Option<String>,
    pub(super) routes: Vec<CompiledRoute>,
}

#[derive(Debug)]
pub(super) struct CompiledRoute {
    /// Index of the route (of the root, for a delegated route) in `spec.http`; of the rule
    /// for a Gateway API route.
    pub(super) index: usize,
    pub(super) name: Option<Arc<str>>,
    /// The name the route trace gives instead of the VirtualService's: a Gateway API rule's
    /// route.
    pub(super) trace_name: Option<Arc<str>>,
    /// The match blocks that apply to the lab's workload, each with its index in `match`.
    /// Empty when the route has no `match` (it takes every request).
    pub(super) matches: Vec<(usize, MatchBlock)>,
    pub(super) route: Arc<Route>,
    pub(super) origin: RouteOrigin,
}

/// A host a ServiceEntry defines: the default route per service port.
#[derive(Debug)]
struct DefaultService {
    /// `namespace/name` of the ServiceEntry.
    service_entry: String,
    /// The host as written, for the trace.
    host: Arc<str>,
    /// The normalized host.
    pattern: String,
    /// One default route per declared port, the first port first.
    ports: Vec<(u16, Arc<Route>)>,
    /// The first port's route: what a request to a port the entry does not declare gets.
    fallback: Arc<Route>,
}

impl RouteTable {
    /// Compiles a checked config for the default client workload (no labels, namespace
    /// `default`, inside the mesh). Refuses when the config has errors and returns them
    /// (the warnings are in `set.diagnostics()`).
    pub fn compile(set: &ConfigSet) -> Result<Self, Vec<Diagnostic>> {
        Self::compile_for(set, &Workload::default())
    }

    /// Compiles a checked config for the routes `workload`'s sidecar (or gateway) gets:
    /// match blocks for other workloads or gateways are left out, as Istio leaves them out.
    pub fn compile_for(set: &ConfigSet, workload: &Workload) -> Result<Self, Vec<Diagnostic>> {
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
        let mut passed_over = Vec::new();
        let mut notes = Vec::new();
        let mut errors = Vec::new();
        // HTTPRoutes and GRPCRoutes first: a sidecar prefers them for a host a
        // VirtualService also routes (`check` warns, ML0509).
        let generated = super::gateway::compile(set, workload, &mut resolver);
        services.extend(generated.services);
        hosts.extend(generated.hosts);
        passed_over.extend(generated.passed_over);
        errors.extend(generated.errors);
        for (resource, vs) in set.virtual_services() {
            if vs.spec.hosts.is_empty() {
                // A delegate: its routes live in the root that names it.
                continue;
            }
            let namespace = vs.metadata.namespace_or_default().to_owned();
            let patterns: Vec<String> = vs.spec.hosts.iter().map(|h| fqdn(h, &namespace)).collect();
            if let Some(why) = workload.passes_over(vs) {
                passed_over.push((patterns, why));
                continue;
            }
            let (expanded, dropped) = delegate::expand(set, resource, vs);
            notes.extend(
                dropped
                    .into_iter()
                    .map(|n| format!("{}: {n}", resource.display_name())),
            );
            let mut routes = Vec::new();
            for e in expanded {
                match compile_expanded(set, workload, vs, &e, &mut resolver) {
                    Ok(Some(r)) => routes.push(r),
                    Ok(None) => {}
                    Err(d) => errors.push(*d),
                }
            }
            if routes.is_empty() {
                // Istio builds no routes for this proxy, and the host keeps its default route.
                passed_over.push((
                    patterns,
                    format!(
                        "VirtualService {} has no http route for this workload",
                        resource.object.qualified_name()
                    ),
                ));
                continue;
            }
            hosts.extend(vs.spec.hosts.iter().cloned());
            services.push(CompiledVirtualService {
                name: Arc::from(resource.object.qualified_name()),
                hosts: patterns,
                default_host: vs.spec.hosts.first().cloned(),
                routes,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let defaults = default_services(set, &mut resolver);
        for d in &defaults {
            if !hosts.iter().any(|h| fqdn(h, "default") == d.pattern) {
                hosts.push(d.host.to_string());
            }
        }
        let default_host = match services.as_slice() {
            [only] => only.default_host.clone(),
            _ => None,
        };
        Ok(Self {
            host_cache: RwLock::new(HashMap::default()),
            services,
            defaults,
            hosts,
            default_host,
            passed_over,
            notes,
        })
    }

    /// Which route a request takes, and what it does. Deterministic: weighted picks, mirror
    /// and fault draws are the caller's.
    pub fn resolve(&self, req: &RequestHead<'_>) -> Result<Resolution, NoRoute> {
        self.resolve_entry(self.find(req.host), req)
    }

    /// [`Self::resolve`] for a request whose port is `port`, or its host's service port
    /// when it names none; returns the port too. One host lookup serves both.
    pub fn resolve_at(
        &self,
        req: RequestHead<'_>,
        port: Option<u16>,
    ) -> Result<(Resolution, u16), NoRoute> {
        let entry = self.find(req.host);
        let req = RequestHead {
            port: port.unwrap_or(entry.port),
            ..req
        };
        self.resolve_entry(entry, &req).map(|r| (r, req.port))
    }

    fn resolve_entry(
        &self,
        entry: HostEntry,
        req: &RequestHead<'_>,
    ) -> Result<Resolution, NoRoute> {
        let host = req.host;
        let vs = match entry.hit {
            HostHit::Service(i) => &self.services[i],
            HostHit::Default(i) => return Ok(self.default_resolution(&self.defaults[i], req.port)),
            HostHit::Unknown => {
                return Err(NoRoute::UnknownHost {
                    host: host.to_owned(),
                    configured: self.hosts.clone(),
                    passed_over: self.passed_over_for(host),
                });
            }
        };
        let (path, _) = split_query(req.path_and_query);
        for route in &vs.routes {
            let matched = if route.matches.is_empty() {
                Some(None)
            } else {
                route
                    .matches
                    .iter()
                    .find(|(_, m)| m.matches(req))
                    .map(|(i, m)| Some((*i, m)))
            };
            let Some(block) = matched else {
                continue;
            };
            return Ok(Resolution {
                trace: RouteTrace {
                    virtual_service: Arc::clone(route.trace_name.as_ref().unwrap_or(&vs.name)),
                    route_index: route.index,
                    route_name: route.name.clone(),
                    match_index: block.map(|(i, _)| i),
                    match_summary: block.map_or_else(
                        || Arc::clone(&ANY_REQUEST),
                        |(_, m)| Arc::clone(m.shared_summary()),
                    ),
                    origin: route.origin.clone(),
                    action: route.route.action.kind(),
                    steps: Vec::new(),
                },
                route: Arc::clone(&route.route),
                matched: block.map_or(1, |(_, m)| m.matched_len(path)),
            });
        }
        Err(NoRoute::NoMatchingRoute {
            host: host.to_owned(),
            virtual_service: vs.name.to_string(),
            routes: vs.routes.len(),
            method: req.method.to_owned(),
            path: req.path_and_query.to_owned(),
        })
    }

    fn default_resolution(&self, d: &DefaultService, port: u16) -> Resolution {
        let route = d
            .ports
            .iter()
            .find(|(p, _)| *p == port)
            .map_or_else(|| Arc::clone(&d.fallback), |(_, r)| Arc::clone(r));
        Resolution {
            trace: RouteTrace {
                virtual_service: Arc::clone(&d.host),
                route_index: 0,
                route_name: Some(Arc::clone(&DEFAULT_ROUTE)),
                match_index: None,
                match_summary: Arc::clone(&ANY_REQUEST),
                origin: RouteOrigin::DefaultRoute {
                    service_entry: d.service_entry.clone(),
                },
                action: ActionKind::Forward,
                steps: Vec::new(),
            },
            route,
            matched: 1,
        }
    }

    /// Hosts of every VirtualService, as written, in config order, then the hosts that only
    /// a ServiceEntry defines.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The first host of the only VirtualService (`None` with zero or several).
    pub fn default_host(&self) -> Option<&str> {
        self.default_host.as_deref()
    }

    /// The port a request that names none is taken to address on `host`: the first port its
    /// ServiceEntry declares, else 80.
    pub fn service_port(&self, host: &str) -> u16 {
        self.find(host).port
    }

    /// What compiling passed over: VirtualServices that do not apply to the lab's workload
    /// and delegates that could not be used, one sentence each.
    pub fn notes(&self) -> Vec<String> {
        self.passed_over
            .iter()
            .map(|(_, why)| why.clone())
            .chain(self.notes.iter().cloned())
            .collect()
    }

    /// Every distinct upstream the table can send to (primaries and mirrors), for the demo
    /// services and the UI.
    pub fn upstreams(&self) -> Vec<Arc<Upstream>> {
        let mut seen: Vec<Arc<Upstream>> = Vec::new();
        let routes = self
            .services
            .iter()
            .flat_map(|s| s.routes.iter().map(|r| &r.route))
            .chain(
                self.defaults
                    .iter()
                    .flat_map(|d| d.ports.iter().map(|(_, r)| r)),
            );
        for route in routes {
            let RouteAction::Forward(forward) = &route.action else {
                continue;
            };
            let all = forward
                .destinations
                .iter()
                .map(|d| &d.upstream)
                .chain(forward.mirrors.iter().map(|m| &m.upstream));
            for u in all {
                if !seen.iter().any(|s| Arc::ptr_eq(s, u)) {
                    seen.push(Arc::clone(u));
                }
            }
        }
        seen
    }

    /// Why the VirtualServices for `host` do not apply, if any exist.
    fn passed_over_for(&self, host: &str) -> Vec<String> {
        let candidates = request_host_candidates(host);
        self.passed_over
            .iter()
            .filter(|(patterns, _)| {
                patterns
                    .iter()
                    .any(|p| candidates.iter().any(|c| host_matches(p, c)))
            })
            .map(|(_, why)| why.clone())
            .collect()
    }

    /// The VirtualService or default route for a request host, and its service port
    /// (cached).
    fn find(&self, host: &str) -> HostEntry {
        // Plain data behind the lock: a panic elsewhere leaves nothing half-written.
        if let Some(entry) = self.host_cache.read().get(host) {
            return *entry;
        }
        let hit = match self.search_service(host) {
            Some(i) => HostHit::Service(i),
            None => self
                .search_default(host)
                .map_or(HostHit::Unknown, HostHit::Default),
        };
        let candidates = request_host_candidates(host);
        let port = self
            .defaults
            .iter()
            .find(|d| candidates.iter().any(|c| host_matches(&d.pattern, c)))
            .and_then(|d| d.ports.first().map(|(p, _)| *p))
            .unwrap_or(DEFAULT_PORT);
        let entry = HostEntry { hit, port };
        let mut cache = self.host_cache.write();
        if cache.len() >= MAX_CACHED_HOSTS {
            cache.clear();
        }
        cache.insert(host.to_owned(), entry);
        entry
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

    /// The default route of a host a ServiceEntry defines.
    fn search_default(&self, host: &str) -> Option<usize> {
        let candidates = request_host_candidates(host);
        self.defaults
            .iter()
            .position(|d| candidates.contains(&d.pattern))
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

/// Compiles one (possibly delegated) route for `workload`; `None` when every one of its
/// match blocks is for another workload or gateway (Istio emits no route for it then).
fn compile_expanded(
    set: &ConfigSet,
    workload: &Workload,
    root: &VirtualService,
    e: &Expanded<'_>,
    resolver: &mut UpstreamResolver<'_>,
) -> Result<Option<CompiledRoute>, Box<Diagnostic>> {
    let (vs_namespace, annotations) = match set
        .virtual_services()
        .find(|(r, _)| std::ptr::eq(*r, e.resource))
    {
        Some((_, vs)) => (vs.metadata.namespace_or_default(), &vs.metadata.annotations),
        None => (
            root.metadata.namespace_or_default(),
            &root.metadata.annotations,
        ),
    };
    let scope = RouteScope {
        set,
        resource: e.resource,
        namespace: vs_namespace,
        annotations,
    };
    let route = &*e.route;
    let mut matches = Vec::with_capacity(route.matches.len());
    for (i, m) in route.matches.iter().enumerate() {
        if !workload.block_applies(m, root.metadata.namespace_or_default()) {
            continue;
        }
        let block = MatchBlock::compile(m)
            .map_err(|err| scope.error(format!("{}.match[{i}]", e.base), err.to_string()))?;
        matches.push((i, block));
    }
    if !route.matches.is_empty() && matches.is_empty() {
        return Ok(None);
    }
    let compiled = compile_route(&scope, &e.base, route, resolver)?;
    Ok(Some(CompiledRoute {
        index: e.root_index,
        name: route.name.as_deref().map(Arc::from),
        trace_name: None,
        matches,
        route: Arc::new(compiled),
        origin: e.origin.clone(),
    }))
}

/// The default routes of every host a ServiceEntry defines (wildcards left out: a sidecar
/// has no single service to send them to), the first entry for a host winning.
fn default_services(set: &ConfigSet, resolver: &mut UpstreamResolver<'_>) -> Vec<DefaultService> {
    let mut out: Vec<DefaultService> = Vec::new();
    for (resource, se) in set.service_entries() {
        let namespace = se.metadata.namespace_or_default();
        for host in &se.spec.hosts {
            let pattern = fqdn(host, namespace);
            if pattern.starts_with('*') || out.iter().any(|d| d.pattern == pattern) {
                continue;
            }
            let ports: Vec<(u16, Arc<Route>)> = se
                .spec
                .ports
                .iter()
                .filter_map(|p| {
                    let number = u16::try_from(p.number).ok()?;
                    let destination = Destination {
                        host: host.clone(),
                        subset: None,
                        port: Some(PortSelector {
                            number: Some(p.number),
                        }),
                    };
                    // The checker refuses a policy the route table cannot use.
                    let upstream = resolver.upstream(&destination, namespace).ok()?;
                    Some((number, Arc::new(compile::default_route(upstream))))
                })
                .collect();
            let Some((_, first)) = ports.first() else {
                continue;
            };
            out.push(DefaultService {
                service_entry: resource.object.qualified_name(),
                host: Arc::from(host.as_str()),
                pattern,
                fallback: Arc::clone(first),
                ports,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_tables_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RouteTable>();
    }
}
