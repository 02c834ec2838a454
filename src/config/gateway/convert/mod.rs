//! HTTPRoutes and GRPCRoutes as the VirtualService routes Istio makes of them (istio/istio
//! `pilot/pkg/config/kube/gateway/conversion.go` `convertHTTPRoute`, `convertGRPCRoute`,
//! `buildDestination`, `create*Filter`, `create*Match`; `route_collections.go`, which splits
//! each rule into one route per match, makes one VirtualService per parent and host, merges
//! the routes of every route object with that key and sorts them by Gateway API precedence:
//! `sortHTTPRoutes`, `sortRoutesByCreationTime`).
//!
//! Istio marks these VirtualServices with Gateway semantics, under which a prefix match is
//! segment-wise (Envoy's `path_separated_prefix`) and a `ReplacePrefixMatch` of `/` is a
//! regex rewrite (`route.go` `TranslateRouteMatch`, `applyHTTPRouteDestination`). The routes
//! here are written with plain VirtualService semantics that do exactly the same ([`expand`]):
//! PathPrefix `/foo` is the two blocks exact `/foo` and prefix `/foo/`, and a prefix rewrite
//! is split between them. So the route table runs them with the VirtualService machinery,
//! and `mirrorlab convert` writes a VirtualService that behaves as the HTTPRoute does.

mod matches;
mod rules;

use std::cmp::Reverse;

pub use matches::{describe_grpc_match, describe_http_match, route_matches};
use rules::{convert_grpc_rules, convert_http_rules};

use super::GatewayApiObject;
use super::parents::{self, Binding, ParentProblem};
use crate::config::ConfigSet;
use crate::config::lines::push_index;
use crate::config::model::{HttpMatchRequest, HttpRoute, StringMatch};

/// HTTPRoute or GRPCRoute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// An HTTPRoute.
    Http,
    /// A GRPCRoute.
    Grpc,
}

impl RouteKind {
    /// The kind as written: `HTTPRoute`, `GRPCRoute`.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
        }
    }
}

/// Where a generated route was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRef {
    /// HTTPRoute or GRPCRoute.
    pub kind: RouteKind,
    /// `namespace/name` of the route.
    pub route: String,
    /// Index of the resource in [`ConfigSet::resources`].
    pub resource: usize,
    /// Index of the rule in `spec.rules`.
    pub rule: usize,
    /// Index of the match in the rule's `matches` (`None`: a GRPCRoute rule without one).
    pub match_index: Option<usize>,
}

/// One route of a generated VirtualService.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedRoute {
    /// The route, with plain VirtualService semantics.
    pub route: HttpRoute,
    /// Where it was written.
    pub origin: RouteRef,
    /// The Gateway API match in words: `path prefix /api and header x-env = lab`.
    pub summary: String,
}

/// What a generated VirtualService applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GeneratedBinding {
    /// Sidecar traffic (a Service or ServiceEntry parent).
    Mesh {
        /// Namespace of the parent service: a route in it is the service's own (producer);
        /// one in the client's namespace overrides it (consumer).
        service_namespace: String,
    },
    /// A Gateway, `namespace/name`.
    Gateway(String),
}

/// One VirtualService Istio generates: a parent and host, the routes of every route object
/// bound to them, in precedence order.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedVirtualService {
    /// The host (a service FQDN for the mesh; a host name, maybe `*`, for a Gateway).
    pub host: String,
    /// Namespace of the route objects (Istio keys mesh routes by it).
    pub namespace: String,
    /// What it applies to.
    pub binding: GeneratedBinding,
    /// `Kind namespace/name` of each route object merged in, oldest first.
    pub sources: Vec<String>,
    /// The routes.
    pub routes: Vec<GeneratedRoute>,
}

/// What Istio would put in a route's status: a condition reason and message at a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionProblem {
    /// Index of the route resource.
    pub resource: usize,
    /// Field path inside it.
    pub field: String,
    /// `InvalidFilter`, `InvalidKind`, `BackendNotFound`, `InvalidDestination`, or a parent
    /// reason (`NoMatchingParent`, ...).
    pub reason: &'static str,
    /// What Istio says.
    pub message: String,
    /// True when Istio drops the whole route object (its other rules too).
    pub drops_route: bool,
}

/// Every route object of the files, converted.
#[derive(Debug, Clone, Default)]
pub struct Conversion {
    /// The generated VirtualServices, mesh ones first, in key order.
    pub services: Vec<GeneratedVirtualService>,
    /// What Istio's status would report.
    pub problems: Vec<ConversionProblem>,
}

/// One route of one route object before merging: Istio's form (one match, prefix unsplit).
struct IstioRoute {
    route: HttpRoute,
    origin: RouteRef,
    summary: String,
}

/// A route object's routes under one key.
struct Member {
    created: String,
    namespace: String,
    name: String,
    source: String,
    routes: Vec<IstioRoute>,
}

/// The key Istio merges routes by (mesh first; the owner: the routes' namespace for the
/// mesh, the Gateway; the host; a Service parent's port; the binding), what the key binds
/// to, and the route objects under it.
type Group = (
    (bool, String, String, Option<u32>, String),
    GeneratedBinding,
    Vec<Member>,
);

/// Converts every HTTPRoute and GRPCRoute of `set`.
pub fn convert_all(set: &ConfigSet) -> Conversion {
    let mut out = Conversion::default();
    let mut groups: Vec<Group> = Vec::new();
    for (index, resource) in set.resources().iter().enumerate() {
        let crate::config::IstioObject::GatewayApi(object) = &resource.object else {
            continue;
        };
        if let Some(converted) = convert_object(set, index, object, &mut out.problems) {
            bind(set, &converted, &mut groups, &mut out.problems);
        }
    }
    out.services = merge(groups);
    out
}

/// A route object's routes in Istio's form, with what binding and merging need of it.
struct RouteObject<'a> {
    kind: RouteKind,
    resource: usize,
    namespace: String,
    name: String,
    created: String,
    parent_refs: &'a [super::model::ParentReference],
    hostnames: &'a [String],
    routes: Vec<IstioRoute>,
}

/// `convertHTTPRoute` / `convertGRPCRoute` for every rule and match; `None` for other kinds
/// and for a route Istio drops (its problem recorded).
fn convert_object<'a>(
    set: &ConfigSet,
    index: usize,
    object: &'a GatewayApiObject,
    problems: &mut Vec<ConversionProblem>,
) -> Option<RouteObject<'a>> {
    let (kind, meta, parent_refs, hostnames) = match object {
        GatewayApiObject::HttpRoute(r) => (
            RouteKind::Http,
            &r.metadata,
            &r.spec.parent_refs,
            &r.spec.hostnames,
        ),
        GatewayApiObject::GrpcRoute(r) => (
            RouteKind::Grpc,
            &r.metadata,
            &r.spec.parent_refs,
            &r.spec.hostnames,
        ),
        _ => return None,
    };
    let namespace = meta.namespace_or_default().to_owned();
    let name = meta.name.clone().unwrap_or_default();
    let converted = match object {
        GatewayApiObject::HttpRoute(r) => {
            convert_http_rules(set, index, &r.spec.rules, &namespace, &name)
        }
        GatewayApiObject::GrpcRoute(r) => {
            convert_grpc_rules(set, index, &r.spec.rules, &namespace, &name)
        }
        _ => return None,
    };
    let routes = match converted {
        Ok((routes, soft)) => {
            problems.extend(soft);
            routes
        }
        Err(hard) => {
            problems.push(hard);
            return None;
        }
    };
    let created = meta
        .extra
        .get("creationTimestamp")
        .and_then(crate::config::model::Opaque::as_str)
        .unwrap_or_default()
        .to_owned();
    Some(RouteObject {
        kind,
        resource: index,
        namespace,
        name,
        created,
        parent_refs,
        hostnames,
        routes,
    })
}

/// Puts the route object's routes under the key of each parent and host it binds to.
fn bind(
    set: &ConfigSet,
    o: &RouteObject<'_>,
    groups: &mut Vec<Group>,
    problems: &mut Vec<ConversionProblem>,
) {
    for (p, parent) in o.parent_refs.iter().enumerate() {
        let binding =
            match parents::resolve(set, o.kind.as_str(), &o.namespace, o.hostnames, p, parent) {
                None => continue,
                Some(Err(ParentProblem {
                    index: at,
                    reason,
                    message,
                })) => {
                    problems.push(ConversionProblem {
                        resource: o.resource,
                        field: push_index("spec.parentRefs", at),
                        reason,
                        message,
                        drops_route: false,
                    });
                    continue;
                }
                Some(Ok(b)) => b,
            };
        let (hosts, port, bound) = match binding {
            Binding::Mesh {
                hosts,
                namespace,
                port,
            } => (
                hosts,
                port,
                GeneratedBinding::Mesh {
                    service_namespace: namespace,
                },
            ),
            Binding::Gateway { gateway, hosts } => {
                (hosts, None, GeneratedBinding::Gateway(gateway))
            }
        };
        // Istio's keys: the routes' namespace (and port) for the mesh, the Gateway's
        // listener for a Gateway, then the host.
        let (mesh, owner) = match &bound {
            GeneratedBinding::Mesh { .. } => (true, o.namespace.clone()),
            GeneratedBinding::Gateway(g) => (false, g.clone()),
        };
        for host in hosts {
            let key = (!mesh, owner.clone(), host, port, bound_label(&bound));
            let member = Member {
                created: o.created.clone(),
                namespace: o.namespace.clone(),
                name: o.name.clone(),
                source: format!("{} {}/{}", o.kind.as_str(), o.namespace, o.name),
                routes: o.routes.iter().map(|r| with_port(r, port)).collect(),
            };
            match groups.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, _, members)) => members.push(member),
                None => groups.push((key, bound.clone(), vec![member])),
            }
        }
    }
}

/// `mergeHTTPRoutes`: each key's route objects oldest first (then by namespace and name),
/// their routes concatenated and stably sorted by precedence, then written out.
fn merge(mut groups: Vec<Group>) -> Vec<GeneratedVirtualService> {
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(groups.len());
    for ((_, owner, host, _, _), binding, mut members) in groups {
        members.sort_by(|a, b| {
            (&a.created, &a.namespace, &a.name).cmp(&(&b.created, &b.namespace, &b.name))
        });
        let sources = members.iter().map(|m| m.source.clone()).collect();
        let namespace = match &binding {
            GeneratedBinding::Mesh { .. } => owner,
            GeneratedBinding::Gateway(_) => members
                .first()
                .map(|m| m.namespace.clone())
                .unwrap_or_default(),
        };
        let mut routes: Vec<IstioRoute> = members.into_iter().flat_map(|m| m.routes).collect();
        routes.sort_by_key(|r| precedence(&r.route));
        out.push(GeneratedVirtualService {
            host,
            namespace,
            binding,
            sources,
            routes: routes.into_iter().flat_map(expand).collect(),
        });
    }
    out
}

fn bound_label(b: &GeneratedBinding) -> String {
    match b {
        GeneratedBinding::Mesh { service_namespace } => format!("mesh:{service_namespace}"),
        GeneratedBinding::Gateway(g) => g.clone(),
    }
}

/// `augmentPortMatch`: a Service parent with a port adds it to every match.
fn with_port(r: &IstioRoute, port: Option<u32>) -> IstioRoute {
    let mut route = r.route.clone();
    if let Some(port) = port {
        if route.matches.is_empty() {
            route.matches.push(HttpMatchRequest::default());
        }
        for m in &mut route.matches {
            m.port = Some(port);
        }
    }
    IstioRoute {
        route,
        origin: r.origin.clone(),
        summary: r.summary.clone(),
    }
}

/// `sortHTTPRoutes`: routes without a match last; then exact over prefix over regex, longer
/// first, a method match first, more header matches first, more query matches first. The sort
/// is stable, so what ties keeps the order of the route objects (oldest, then namespace and
/// name) and of their rules and matches.
fn precedence(
    route: &HttpRoute,
) -> (
    bool,
    Reverse<i32>,
    Reverse<usize>,
    bool,
    Reverse<usize>,
    Reverse<usize>,
) {
    let Some(m) = route.matches.first() else {
        return (true, Reverse(-2), Reverse(0), true, Reverse(0), Reverse(0));
    };
    let (rank, len) = match &m.uri {
        Some(StringMatch { exact: Some(e), .. }) => (3, e.len()),
        Some(StringMatch {
            prefix: Some(p), ..
        }) => (2, p.len()),
        Some(StringMatch { regex: Some(r), .. }) => (1, r.len()),
        _ => (-1, 0),
    };
    (
        false,
        Reverse(rank),
        Reverse(len),
        m.method.is_none(),
        Reverse(m.headers.len()),
        Reverse(m.query_params.len()),
    )
}

/// Istio's Gateway semantics in plain VirtualService terms (see the module docs): a prefix
/// other than `/` becomes exact `P` or prefix `P/`; a prefix rewrite or redirect is split
/// into one route for each, so it replaces the same bytes Envoy's would.
fn expand(r: IstioRoute) -> Vec<GeneratedRoute> {
    let generated = |route: HttpRoute| GeneratedRoute {
        route,
        origin: r.origin.clone(),
        summary: r.summary.clone(),
    };
    let prefix = r
        .route
        .matches
        .first()
        .and_then(|m| m.uri.as_ref())
        .and_then(|u| u.prefix.clone())
        .map(|p| {
            if p == "/" {
                p
            } else {
                p.trim_end_matches('/').to_owned()
            }
        })
        .filter(|p| p != "/" && !p.is_empty());
    let Some(prefix) = prefix else {
        return vec![generated(r.route)];
    };
    let block = |uri: StringMatch| {
        let mut m = r.route.matches[0].clone();
        m.uri = Some(uri);
        m
    };
    let exact = block(StringMatch {
        exact: Some(prefix.clone()),
        ..StringMatch::default()
    });
    let below = block(StringMatch {
        prefix: Some(format!("{prefix}/")),
        ..StringMatch::default()
    });
    let rewrite_uri = r.route.rewrite.as_ref().and_then(|w| w.uri.clone());
    let redirect_prefix = r
        .route
        .redirect
        .as_ref()
        .and_then(|d| d.prefix_rewrite.clone());
    if rewrite_uri.is_none() && redirect_prefix.is_none() {
        let mut route = r.route.clone();
        route.matches = vec![exact, below];
        return vec![generated(route)];
    }
    let mut on_exact = r.route.clone();
    on_exact.matches = vec![exact];
    let mut on_below = r.route.clone();
    on_below.matches = vec![below];
    if let Some(uri) = rewrite_uri {
        // `/` is Istio's regex rewrite `^P(/?)(.*)` → `/\2`; anything else Envoy's
        // prefix_rewrite of P.
        let (exact_uri, below_uri) = if uri == "/" {
            ("/".to_owned(), "/".to_owned())
        } else {
            (uri.clone(), format!("{uri}/"))
        };
        if let Some(w) = &mut on_exact.rewrite {
            w.uri = Some(exact_uri);
        }
        if let Some(w) = &mut on_below.rewrite {
            w.uri = Some(below_uri);
        }
    }
    if let Some(new_prefix) = redirect_prefix {
        // Envoy's redirect prefix_rewrite replaces P, so `/foo/x` becomes new + `/x`.
        if let Some(d) = &mut on_exact.redirect {
            d.prefix_rewrite = None;
            d.uri = Some(new_prefix.clone());
        }
        if let Some(d) = &mut on_below.redirect {
            d.prefix_rewrite = Some(format!("{new_prefix}/"));
        }
    }
    vec![generated(on_exact), generated(on_below)]
}
