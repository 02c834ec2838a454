//! HTTPRoutes and GRPCRoutes in the route table: the VirtualServices Istio generates from
//! them (`config::gateway::convert`) compiled with the same route model as written ones,
//! for the routes the lab's workload gets.
//!
//! A route bound to a Service applies to sidecar traffic when it is the service's own
//! (written in the service's namespace, a producer route) or the client's (written in the
//! client workload's namespace, a consumer route, which a sidecar prefers: Istio's
//! `buildSidecarVirtualHostsForVirtualService` and `VirtualServicesForGateway`). A route
//! bound to a Gateway applies when the lab acts as that Gateway.

use std::sync::Arc;

use super::compile::{RouteScope, UpstreamResolver, compile_route};
use super::matchers::MatchBlock;
use super::table::{CompiledRoute, CompiledVirtualService};
use super::{RouteOrigin, Workload};
use crate::config::gateway::convert::{GeneratedBinding, GeneratedVirtualService};
use crate::config::hosts::{CLUSTER_DOMAIN, fqdn};
use crate::config::lines::push_index;
use crate::config::model::OrderedMap;
use crate::config::{ConfigSet, Diagnostic};

/// What the Gateway API routes add to a route table.
pub(super) struct GatewayRoutes {
    /// One per generated VirtualService that applies, consumer routes first.
    pub services: Vec<CompiledVirtualService>,
    /// Their hosts, as a person would address them (`reviews`, `reviews.prod`).
    pub hosts: Vec<String>,
    /// Generated VirtualServices that do not apply to the workload, with their hosts, and why.
    pub passed_over: Vec<(Vec<String>, String)>,
    /// What did not compile (the checks refuse it first).
    pub errors: Vec<Diagnostic>,
}

/// Compiles the generated VirtualServices of `set` that apply to `workload`.
pub(super) fn compile(
    set: &ConfigSet,
    workload: &Workload,
    resolver: &mut UpstreamResolver<'_>,
) -> GatewayRoutes {
    let conversion = set.gateway_routes();
    let mut out = GatewayRoutes {
        services: Vec::new(),
        hosts: Vec::new(),
        passed_over: Vec::new(),
        errors: Vec::new(),
    };
    let mut applying: Vec<(bool, &GeneratedVirtualService)> = Vec::new();
    for g in &conversion.services {
        let pattern = fqdn(&g.host, &g.namespace);
        match applies(g, workload) {
            Ok(consumer) => applying.push((consumer, g)),
            Err(why) => out.passed_over.push((vec![pattern], why)),
        }
    }
    // Consumer routes first; the sort is stable, so the rest keeps the conversion's order.
    applying.sort_by_key(|(consumer, _)| !consumer);
    for (_, g) in applying {
        let mut routes = Vec::with_capacity(g.routes.len());
        for r in &g.routes {
            match compile_generated(set, g, r, resolver) {
                Ok(route) => routes.push(route),
                Err(d) => out.errors.push(*d),
            }
        }
        let display = display_host(&g.host);
        if !out.hosts.contains(&display) {
            out.hosts.push(display.clone());
        }
        out.services.push(CompiledVirtualService {
            name: Arc::from(g.sources.join(", ")),
            hosts: vec![fqdn(&g.host, &g.namespace)],
            default_host: Some(display),
            routes,
        });
    }
    out
}

/// Whether a generated VirtualService applies to the workload (`Ok(true)`: a consumer
/// route, which wins), or why not.
fn applies(g: &GeneratedVirtualService, workload: &Workload) -> Result<bool, String> {
    let sources = g.sources.join(", ");
    match &g.binding {
        GeneratedBinding::Gateway(gateway) => {
            if workload.gateway.as_deref() == Some(gateway.as_str()) {
                Ok(false)
            } else {
                Err(format!(
                    "{sources} is bound to Gateway {gateway} for host {} and the lab acts as {}",
                    g.host,
                    workload
                        .gateway
                        .as_deref()
                        .map_or("a sidecar (mesh)".to_owned(), |w| format!("gateway {w}"))
                ))
            }
        }
        GeneratedBinding::Mesh { service_namespace } => {
            if workload.gateway.is_some() {
                return Err(format!(
                    "{sources} routes mesh traffic to {} and the lab acts as a gateway",
                    g.host
                ));
            }
            let consumer = g.namespace == workload.namespace;
            if consumer || g.namespace == *service_namespace {
                Ok(consumer)
            } else {
                Err(format!(
                    "{sources} in namespace {} routes {}, a service of namespace {service_namespace}; a sidecar of namespace {} uses such a route only from its own namespace or the service's",
                    g.namespace, g.host, workload.namespace
                ))
            }
        }
    }
}

/// `reviews.default.svc.cluster.local` → `reviews`; `reviews.prod.svc.cluster.local` →
/// `reviews.prod`: what a client in namespace `default` addresses.
fn display_host(host: &str) -> String {
    match host.strip_suffix(&format!(".{CLUSTER_DOMAIN}")) {
        Some(short) => short.strip_suffix(".default").unwrap_or(short).to_owned(),
        None => host.to_owned(),
    }
}

fn compile_generated(
    set: &ConfigSet,
    g: &GeneratedVirtualService,
    r: &crate::config::gateway::GeneratedRoute,
    resolver: &mut UpstreamResolver<'_>,
) -> Result<CompiledRoute, Box<Diagnostic>> {
    let resource = &set.resources()[r.origin.resource];
    let no_annotations = OrderedMap::new();
    let annotations = match &resource.object {
        crate::config::IstioObject::GatewayApi(o) => &o.metadata().annotations,
        _ => &no_annotations,
    };
    // Routes of several namespaces can share a Gateway's host: each resolves its backends
    // in its own namespace.
    let namespace = r
        .origin
        .route
        .split_once('/')
        .map_or(g.namespace.as_str(), |(ns, _)| ns);
    let scope = RouteScope {
        set,
        resource,
        namespace,
        annotations,
    };
    let base = push_index("spec.rules", r.origin.rule);
    let mut matches = Vec::with_capacity(r.route.matches.len());
    for m in &r.route.matches {
        let block = MatchBlock::compile(m)
            .map_err(|e| scope.error(base.clone(), e.to_string()))?
            .with_summary(r.summary.clone());
        matches.push((r.origin.match_index.unwrap_or(0), block));
    }
    Ok(CompiledRoute {
        index: r.origin.rule,
        name: r.route.name.as_deref().map(Arc::from),
        trace_name: Some(Arc::from(r.origin.route.as_str())),
        matches,
        route: Arc::new(compile_route(&scope, &base, &r.route, resolver)?),
        origin: RouteOrigin::GatewayRoute {
            kind: r.origin.kind.as_str(),
            route: r.origin.route.clone(),
        },
    })
}
