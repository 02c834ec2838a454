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

use std::cmp::Reverse;

use super::GatewayApiObject;
use super::model::{
    BackendObjectReference, CorsFilter, GrpcRouteMatch, HeaderFilter, HttpBackendRef,
    HttpRouteFilter, HttpRouteMatch, HttpRouteRule, PathMatchType, RequestRedirectFilter,
    UrlRewriteFilter, ValueMatch,
};
use super::parents::{self, Binding, ParentProblem};
use crate::config::ConfigSet;
use crate::config::hosts::{CLUSTER_DOMAIN, fqdn};
use crate::config::lines::{push_index, push_key};
use crate::config::model::{
    CorsPolicy, Destination, HeaderOperations, Headers, HttpDirectResponse, HttpMatchRequest,
    HttpMirrorPolicy, HttpRedirect, HttpRetry, HttpRewrite, HttpRoute, HttpRouteDestination,
    OrderedMap, Percent, PortSelector, RegexRewrite, StringMatch,
};

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
        let (kind, meta, parent_refs, hostnames) = match &**object {
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
            _ => continue,
        };
        let namespace = meta.namespace_or_default().to_owned();
        let name = meta.name.clone().unwrap_or_default();
        let routes = match &**object {
            GatewayApiObject::HttpRoute(r) => {
                convert_http_rules(set, index, &r.spec.rules, &namespace, &name)
            }
            GatewayApiObject::GrpcRoute(r) => {
                convert_grpc_rules(set, index, &r.spec.rules, &namespace, &name)
            }
            _ => continue,
        };
        let routes = match routes {
            Ok((routes, soft)) => {
                out.problems.extend(soft);
                routes
            }
            Err(hard) => {
                out.problems.push(hard);
                continue;
            }
        };
        let created = meta
            .extra
            .get("creationTimestamp")
            .and_then(crate::config::model::Opaque::as_str)
            .unwrap_or_default()
            .to_owned();
        for (p, parent) in parent_refs.iter().enumerate() {
            let binding = parents::resolve(set, kind.as_str(), &namespace, hostnames, p, parent);
            let binding = match binding {
                None => continue,
                Some(Err(ParentProblem {
                    index: at,
                    reason,
                    message,
                })) => {
                    out.problems.push(ConversionProblem {
                        resource: index,
                        field: push_index("spec.parentRefs", at),
                        reason,
                        message,
                        drops_route: false,
                    });
                    continue;
                }
                Some(Ok(b)) => b,
            };
            let (mesh, hosts, port, bound) = match binding {
                Binding::Mesh {
                    hosts,
                    namespace: service_ns,
                    port,
                } => (
                    true,
                    hosts,
                    port,
                    GeneratedBinding::Mesh {
                        service_namespace: service_ns,
                    },
                ),
                Binding::Gateway { gateway, hosts } => {
                    (false, hosts, None, GeneratedBinding::Gateway(gateway))
                }
            };
            let key_owner = match &bound {
                GeneratedBinding::Mesh { .. } => namespace.clone(),
                GeneratedBinding::Gateway(g) => g.clone(),
            };
            for host in hosts {
                let key = (
                    !mesh,
                    key_owner.clone(),
                    host.clone(),
                    port,
                    bound_label(&bound),
                );
                let member = Member {
                    created: created.clone(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    source: format!("{} {namespace}/{name}", kind.as_str()),
                    routes: routes.iter().map(|r| with_port(r, port)).collect(),
                };
                match groups.iter_mut().find(|(k, _, _)| *k == key) {
                    Some((_, _, members)) => members.push(member),
                    None => groups.push((key, bound.clone(), vec![member])),
                }
            }
        }
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    for ((_, owner, host, _, _), binding, mut members) in groups {
        members.sort_by(|a, b| {
            (&a.created, &a.namespace, &a.name).cmp(&(&b.created, &b.namespace, &b.name))
        });
        let sources = members.iter().map(|m| m.source.clone()).collect();
        let mut routes: Vec<IstioRoute> = members.into_iter().flat_map(|m| m.routes).collect();
        routes.sort_by_key(|r| precedence(&r.route));
        let namespace = match &binding {
            GeneratedBinding::Mesh { .. } => owner,
            GeneratedBinding::Gateway(_) => routes
                .first()
                .map(|r| {
                    r.origin
                        .route
                        .split('/')
                        .next()
                        .unwrap_or("default")
                        .to_owned()
                })
                .unwrap_or_default(),
        };
        out.services.push(GeneratedVirtualService {
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

type Converted = Result<(Vec<IstioRoute>, Vec<ConversionProblem>), ConversionProblem>;

/// One rule's shared parts: what Istio makes of filters and backends, the same for every
/// match of the rule.
struct RuleParts {
    template: HttpRoute,
    soft: Vec<ConversionProblem>,
}

fn convert_http_rules(
    set: &ConfigSet,
    resource: usize,
    rules: &[HttpRouteRule],
    namespace: &str,
    name: &str,
) -> Converted {
    let mut out = Vec::new();
    let mut soft = Vec::new();
    for (n, rule) in rules.iter().enumerate() {
        let base = push_index("spec.rules", n);
        let ctx = Ctx {
            set,
            resource,
            namespace,
            base: &base,
        };
        let mut parts = ctx.rule_parts(
            rule.name.as_deref(),
            name,
            n,
            &rule.filters,
            &rule.backend_refs,
            FilterSet::Http,
        )?;
        timeouts_and_retry(&mut parts.template, rule);
        soft.append(&mut parts.soft);
        for (j, m) in rule.effective_matches().iter().enumerate() {
            let mut route = parts.template.clone();
            route.matches = vec![http_match(m)];
            out.push(IstioRoute {
                route,
                origin: RouteRef {
                    kind: RouteKind::Http,
                    route: format!("{namespace}/{name}"),
                    resource,
                    rule: n,
                    match_index: Some(j),
                },
                summary: describe_http_match(m),
            });
        }
    }
    Ok((out, soft))
}

fn convert_grpc_rules(
    set: &ConfigSet,
    resource: usize,
    rules: &[super::model::GrpcRouteRule],
    namespace: &str,
    name: &str,
) -> Converted {
    let mut out = Vec::new();
    let mut soft = Vec::new();
    for (n, rule) in rules.iter().enumerate() {
        let base = push_index("spec.rules", n);
        let ctx = Ctx {
            set,
            resource,
            namespace,
            base: &base,
        };
        let mut parts = ctx.rule_parts(
            rule.name.as_deref(),
            name,
            n,
            &rule.filters,
            &rule.backend_refs,
            FilterSet::Grpc,
        )?;
        soft.append(&mut parts.soft);
        let origin = |j| RouteRef {
            kind: RouteKind::Grpc,
            route: format!("{namespace}/{name}"),
            resource,
            rule: n,
            match_index: j,
        };
        if rule.matches.is_empty() {
            out.push(IstioRoute {
                route: parts.template.clone(),
                origin: origin(None),
                summary: "any request".to_owned(),
            });
        }
        for (j, m) in rule.matches.iter().enumerate() {
            let mut route = parts.template.clone();
            route.matches = vec![grpc_match(m)];
            out.push(IstioRoute {
                route,
                origin: origin(Some(j)),
                summary: describe_grpc_match(m),
            });
        }
    }
    Ok((out, soft))
}

/// Which filters a route kind allows (GRPCRoute: header modifiers and mirrors only).
#[derive(Clone, Copy, PartialEq, Eq)]
enum FilterSet {
    Http,
    Grpc,
}

struct Ctx<'a> {
    set: &'a ConfigSet,
    resource: usize,
    namespace: &'a str,
    base: &'a str,
}

impl Ctx<'_> {
    fn problem(
        &self,
        field: String,
        reason: &'static str,
        message: String,
        drops: bool,
    ) -> ConversionProblem {
        ConversionProblem {
            resource: self.resource,
            field,
            reason,
            message,
            drops_route: drops,
        }
    }

    /// `convertHTTPRoute` without the matches: name, filters, backends.
    fn rule_parts(
        &self,
        rule_name: Option<&str>,
        route_name: &str,
        n: usize,
        filters: &[HttpRouteFilter],
        backends: &[HttpBackendRef],
        allowed: FilterSet,
    ) -> Result<RuleParts, ConversionProblem> {
        let mut vs = HttpRoute {
            name: Some(
                rule_name
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{}.{route_name}.{n}", self.namespace)),
            ),
            ..HttpRoute::default()
        };
        let mut soft = Vec::new();
        let filters_at = push_key(self.base, "filters");
        for (i, f) in filters.iter().enumerate() {
            let at = push_index(&filters_at, i);
            let grpc_ok = matches!(
                f.filter_type.as_str(),
                "RequestHeaderModifier" | "ResponseHeaderModifier" | "RequestMirror"
            );
            if allowed == FilterSet::Grpc && !grpc_ok {
                return Err(self.unsupported(at, &f.filter_type));
            }
            match f.filter_type.as_str() {
                "RequestHeaderModifier" => {
                    if let Some(h) = self.header_filter(f.request_header_modifier.as_ref(), &at)? {
                        vs.headers.get_or_insert_with(Headers::default).request = Some(h);
                    }
                }
                "ResponseHeaderModifier" => {
                    if let Some(h) = self.header_filter(f.response_header_modifier.as_ref(), &at)? {
                        vs.headers.get_or_insert_with(Headers::default).response = Some(h);
                    }
                }
                "RequestRedirect" => vs.redirect = f.request_redirect.as_ref().map(redirect),
                "RequestMirror" => {
                    let Some(m) = &f.request_mirror else { continue };
                    let at = push_key(&push_key(&at, "requestMirror"), "backendRef");
                    match self.destination(&m.backend_ref, &at)? {
                        (Some(destination), problem) => {
                            soft.extend(problem);
                            vs.mirrors.push(HttpMirrorPolicy {
                                destination,
                                percentage: m.percentage().map(|value| Percent { value }),
                            });
                        }
                        (None, problem) => soft.extend(problem),
                    }
                }
                "URLRewrite" => vs.rewrite = f.url_rewrite.as_ref().and_then(rewrite),
                "CORS" => vs.cors_policy = f.cors.as_ref().map(cors),
                other => return Err(self.unsupported(at, other)),
            }
        }
        let weight_sum: u32 = backends.iter().map(HttpBackendRef::weight).sum();
        if weight_sum == 0 && vs.redirect.is_none() {
            // "When there are no >0 weight backends return 500" (Gateway API spec).
            vs.direct_response = Some(HttpDirectResponse {
                status: 500,
                body: None,
            });
            return Ok(RuleParts { template: vs, soft });
        }
        let kept: Vec<(usize, &HttpBackendRef)> = backends
            .iter()
            .enumerate()
            .filter(|(_, b)| b.weight() > 0)
            .collect();
        let lone = kept.len() == 1;
        for (k, b) in kept {
            let at = push_index(&push_key(self.base, "backendRefs"), k);
            let (destination, problem) = self.destination(&b.backend, &at)?;
            soft.extend(problem);
            let mut rd = HttpRouteDestination {
                destination: destination.unwrap_or_default(),
                weight: (!lone).then(|| b.weight()),
                headers: None,
            };
            for (i, f) in b.filters.iter().enumerate() {
                let fat = push_index(&push_key(&at, "filters"), i);
                let (ops, request) = match f.filter_type.as_str() {
                    "RequestHeaderModifier" => (f.request_header_modifier.as_ref(), true),
                    "ResponseHeaderModifier" => (f.response_header_modifier.as_ref(), false),
                    other => return Err(self.unsupported(fat, other)),
                };
                if let Some(h) = self.header_filter(ops, &fat)? {
                    let headers = rd.headers.get_or_insert_with(Headers::default);
                    if request {
                        headers.request = Some(h);
                    } else {
                        headers.response = Some(h);
                    }
                }
            }
            vs.route.push(rd);
        }
        normalize_weights(&mut vs.route);
        Ok(RuleParts { template: vs, soft })
    }

    fn unsupported(&self, at: String, kind: &str) -> ConversionProblem {
        self.problem(
            at,
            "InvalidFilter",
            format!("unsupported filter type \"{kind}\""),
            true,
        )
    }

    /// `createHeadersFilter`: values checked, names lowercased, the first of a name wins.
    fn header_filter(
        &self,
        filter: Option<&HeaderFilter>,
        at: &str,
    ) -> Result<Option<HeaderOperations>, ConversionProblem> {
        let Some(filter) = filter else {
            return Ok(None);
        };
        for h in filter.set.iter().chain(&filter.add) {
            if !h
                .value
                .bytes()
                .all(|c| c == 0x09 || (c >= 0x20 && c != 0x7f))
            {
                return Err(self.problem(
                    at.to_owned(),
                    "InvalidFilter",
                    format!("header \"{}\" value contains invalid characters", h.name),
                    true,
                ));
            }
        }
        let map = |list: &[super::model::HeaderValuePair]| {
            let mut out = OrderedMap::new();
            for h in list {
                out.entry(h.name.to_ascii_lowercase())
                    .or_insert_with(|| h.value.clone());
            }
            out
        };
        Ok(Some(HeaderOperations {
            set: map(&filter.set),
            add: map(&filter.add),
            remove: filter.remove.clone(),
        }))
    }

    /// `buildDestination`: a Service (`name.namespace.svc.cluster.local`, port required) or
    /// Istio's `Hostname` kind (the name is the host). A hard error drops the route object;
    /// an invalid backend is dropped alone (Istio then answers 500 for its share).
    fn destination(
        &self,
        to: &BackendObjectReference,
        at: &str,
    ) -> Result<(Option<Destination>, Option<ConversionProblem>), ConversionProblem> {
        let namespace = to
            .namespace
            .clone()
            .unwrap_or_else(|| self.namespace.to_owned());
        let host = match (to.group(), to.kind()) {
            ("", "Service") => {
                if to.name.contains('.') {
                    return Err(self.problem(
                        at.to_owned(),
                        "InvalidDestination",
                        "service name invalid; the name of the Service must be used, not the hostname.".to_owned(),
                        true,
                    ));
                }
                format!("{}.{namespace}.{CLUSTER_DOMAIN}", to.name)
            }
            ("networking.istio.io", "Hostname") => {
                if to.namespace.is_some() {
                    return Err(self.problem(
                        at.to_owned(),
                        "InvalidDestination",
                        "namespace may not be set with Hostname type".to_owned(),
                        true,
                    ));
                }
                to.name.clone()
            }
            (group, kind) => {
                return Ok((
                    None,
                    Some(self.problem(
                        at.to_owned(),
                        "InvalidKind",
                        format!(
                            "referencing unsupported backendRef: group \"{group}\" kind \"{kind}\""
                        ),
                        false,
                    )),
                ));
            }
        };
        let Some(port) = to.port else {
            return Err(self.problem(
                at.to_owned(),
                "InvalidDestination",
                "port is required in backendRef".to_owned(),
                true,
            ));
        };
        let known = self
            .set
            .service_entry_for(&fqdn(&host, &namespace))
            .is_some()
            || (to.kind() == "Service"
                && parents::kube_service_exists(self.set, &namespace, &to.name));
        let not_found = (!known).then(|| {
            self.problem(
                at.to_owned(),
                "BackendNotFound",
                format!("backend({host}) not found"),
                false,
            )
        });
        let written = match host.strip_suffix(&format!(".{}.{CLUSTER_DOMAIN}", self.namespace)) {
            Some(short) if to.kind() == "Service" => short.to_owned(),
            _ => host,
        };
        Ok((
            Some(Destination {
                host: written,
                subset: None,
                port: Some(PortSelector { number: Some(port) }),
            }),
            not_found,
        ))
    }
}

/// Weights as percentages when they convert exactly (1:1 is 50/50), as written otherwise
/// (Istio splits in proportion either way).
fn normalize_weights(route: &mut [HttpRouteDestination]) {
    let sum: u32 = route.iter().filter_map(|d| d.weight).sum();
    if sum == 0 || sum == 100 || route.iter().any(|d| d.weight.is_none()) {
        return;
    }
    if route
        .iter()
        .all(|d| d.weight.is_some_and(|w| (w * 100) % sum == 0))
    {
        for d in route {
            d.weight = d.weight.map(|w| w * 100 / sum);
        }
    }
}

/// `timeouts` and `retry` as Istio translates them: `backendRequest` is the per-try timeout
/// when there is a retry, else the route timeout.
fn timeouts_and_retry(vs: &mut HttpRoute, rule: &HttpRouteRule) {
    if let Some(r) = &rule.retry {
        let mut retry_on = vec![
            "connect-failure",
            "refused-stream",
            "unavailable",
            "cancelled",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        retry_on.extend(r.codes.iter().map(u32::to_string));
        let attempts = r.attempts.unwrap_or(2);
        vs.retries = Some(HttpRetry {
            attempts: i32::try_from(attempts).ok(),
            retry_on: (attempts != 0).then(|| retry_on.join(",")),
            backoff: r.backoff.clone(),
            ..HttpRetry::default()
        });
    }
    let nonzero = |d: &Option<String>| {
        d.clone()
            .filter(|d| crate::config::duration::parse_go_duration(d).is_ok_and(|ns| ns != 0))
    };
    if let Some(t) = &rule.timeouts {
        if let Some(request) = nonzero(&t.request) {
            vs.timeout = Some(request);
        }
        if let Some(backend) = nonzero(&t.backend_request) {
            match &mut vs.retries {
                Some(r) => r.per_try_timeout = Some(backend),
                None => vs.timeout = Some(backend),
            }
        }
    }
}

/// Every match of a route object as Istio writes it (rule, match index, match), whatever
/// its parents: what `check` holds to RE2.
pub fn route_matches(object: &GatewayApiObject) -> Vec<(usize, Option<usize>, HttpMatchRequest)> {
    match object {
        GatewayApiObject::HttpRoute(r) => r
            .spec
            .rules
            .iter()
            .enumerate()
            .flat_map(|(i, rule)| {
                rule.effective_matches()
                    .iter()
                    .enumerate()
                    .map(|(j, m)| (i, Some(j), http_match(m)))
                    .collect::<Vec<_>>()
            })
            .collect(),
        GatewayApiObject::GrpcRoute(r) => r
            .spec
            .rules
            .iter()
            .enumerate()
            .flat_map(|(i, rule)| {
                rule.matches
                    .iter()
                    .enumerate()
                    .map(|(j, m)| (i, Some(j), grpc_match(m)))
                    .collect::<Vec<_>>()
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `createURIMatch`, `createHeadersMatch`, `createQueryParamsMatch`, `createMethodMatch`.
fn http_match(m: &HttpRouteMatch) -> HttpMatchRequest {
    let (kind, value) = m.path();
    let uri = match kind {
        PathMatchType::Exact => StringMatch {
            exact: Some(value.to_owned()),
            ..StringMatch::default()
        },
        PathMatchType::RegularExpression => StringMatch {
            regex: Some(value.to_owned()),
            ..StringMatch::default()
        },
        PathMatchType::PathPrefix => {
            // "When specified, a trailing `/` is ignored."
            let p = if value == "/" {
                value
            } else {
                value.strip_suffix('/').unwrap_or(value)
            };
            StringMatch {
                prefix: Some(p.to_owned()),
                ..StringMatch::default()
            }
        }
    };
    HttpMatchRequest {
        uri: Some(uri),
        headers: value_matches(&m.headers),
        query_params: value_matches(&m.query_params),
        method: m.method.as_ref().map(|method| StringMatch {
            exact: Some(method.clone()),
            ..StringMatch::default()
        }),
        ..HttpMatchRequest::default()
    }
}

fn value_matches(list: &[ValueMatch]) -> OrderedMap<StringMatch> {
    let mut out = OrderedMap::new();
    for v in list {
        let m = if v.is_regex() {
            StringMatch {
                regex: Some(v.value.clone()),
                ..StringMatch::default()
            }
        } else {
            StringMatch {
                exact: Some(v.value.clone()),
                ..StringMatch::default()
            }
        };
        out.insert(v.name.clone(), m);
    }
    out
}

/// `createGRPCURIMatch`: gRPC's `/Service/Method` as a path match.
fn grpc_match(m: &GrpcRouteMatch) -> HttpMatchRequest {
    let uri = m.method.as_ref().and_then(|method| {
        let regex = method.match_type.as_deref() == Some("RegularExpression");
        let s = |text: String| StringMatch {
            exact: Some(text),
            ..StringMatch::default()
        };
        let p = |text: String| StringMatch {
            prefix: Some(text),
            ..StringMatch::default()
        };
        let r = |text: String| StringMatch {
            regex: Some(text),
            ..StringMatch::default()
        };
        match (method.service.as_deref(), method.method.as_deref(), regex) {
            (None, None, _) => None,
            (Some(svc), None, false) => Some(p(format!("/{svc}/"))),
            (None, Some(name), _) => Some(r(format!("/[^/]+/{name}"))),
            (Some(svc), Some(name), false) => Some(s(format!("/{svc}/{name}"))),
            (Some(svc), None, true) => Some(r(format!("/{svc}/.+"))),
            (Some(svc), Some(name), true) => Some(r(format!("/{svc}/{name}"))),
        }
    });
    HttpMatchRequest {
        uri,
        headers: value_matches(&m.headers),
        ..HttpMatchRequest::default()
    }
}

/// `createRedirectFilter`: the CRD's 302 default; without a port, the request's port (or
/// the scheme's default when the scheme changes), as Gateway API says and Istio does.
fn redirect(f: &RequestRedirectFilter) -> HttpRedirect {
    let (port, derive_port) = match (f.port, &f.scheme) {
        (Some(p), _) => (Some(p), None),
        (None, Some(_)) => (None, Some("FROM_PROTOCOL_DEFAULT".to_owned())),
        (None, None) => (None, Some("FROM_REQUEST_PORT".to_owned())),
    };
    let (uri, prefix_rewrite) = match &f.path {
        Some(p) if p.modifier_type == "ReplaceFullPath" => (p.replace_full_path.clone(), None),
        Some(p) => (
            None,
            p.replace_prefix_match.clone().filter(|x| !x.is_empty()),
        ),
        None => (None, None),
    };
    HttpRedirect {
        uri,
        authority: f.hostname.clone(),
        port,
        derive_port,
        scheme: f.scheme.clone(),
        redirect_code: Some(f.status_code.unwrap_or(302)),
        prefix_rewrite,
    }
}

/// `createRewriteFilter`: ReplacePrefixMatch without its trailing `/` (`/` when nothing is
/// left), ReplaceFullPath as a regex rewrite of the whole path, hostname as the authority.
fn rewrite(f: &UrlRewriteFilter) -> Option<HttpRewrite> {
    let mut out = HttpRewrite {
        authority: f.hostname.clone(),
        ..HttpRewrite::default()
    };
    if let Some(p) = &f.path {
        if p.modifier_type == "ReplacePrefixMatch" {
            let uri = p.replace_prefix_match.as_deref().unwrap_or_default();
            let uri = uri.strip_suffix('/').unwrap_or(uri);
            out.uri = Some(if uri.is_empty() {
                "/".to_owned()
            } else {
                uri.to_owned()
            });
        } else if let Some(full) = &p.replace_full_path {
            out.uri_regex_rewrite = Some(RegexRewrite {
                regex: Some("/.*".to_owned()),
                rewrite: Some(full.clone()),
            });
        }
    }
    (out.uri.is_some() || out.uri_regex_rewrite.is_some() || out.authority.is_some()).then_some(out)
}

/// `createCorsFilter`: `*` as a strict origin regex, one trailing `*` as a prefix, other
/// wildcards as a regex; unmatched preflights IGNORE'd; maxAge (default 5 s) in seconds.
fn cors(f: &CorsFilter) -> CorsPolicy {
    let mut origins = Vec::new();
    for o in f.allow_origins.iter().filter(|o| !o.is_empty()) {
        let m = if o == "*" {
            StringMatch {
                regex: Some("^[a-zA-Z][a-zA-Z0-9+.-]*://[^/\\s?#]+$".to_owned()),
                ..StringMatch::default()
            }
        } else if !o.contains('*') {
            StringMatch {
                exact: Some(o.clone()),
                ..StringMatch::default()
            }
        } else if o.matches('*').count() == 1 && o.ends_with('*') {
            StringMatch {
                prefix: Some(o.trim_end_matches('*').to_owned()),
                ..StringMatch::default()
            }
        } else {
            let pattern = regex::escape(o).replace("\\*", ".*");
            StringMatch {
                regex: Some(format!("^{pattern}$")),
                ..StringMatch::default()
            }
        };
        origins.push(m);
    }
    let max_age = f.max_age.unwrap_or(5);
    CorsPolicy {
        allow_origins: origins,
        allow_methods: f.allow_methods.clone(),
        allow_headers: f.allow_headers.clone(),
        expose_headers: f.expose_headers.clone(),
        max_age: (max_age > 0).then(|| format!("{max_age}s")),
        allow_credentials: f.allow_credentials.filter(|c| *c),
        unmatched_preflights: Some("IGNORE".to_owned()),
        ..CorsPolicy::default()
    }
}

fn describe_values(list: &[ValueMatch], what: &str, parts: &mut Vec<String>) {
    for v in list {
        let op = if v.is_regex() { "~" } else { "=" };
        parts.push(format!("{what} {} {op} {}", v.name, v.value));
    }
}

/// `path prefix /api and method GET and header x = y`.
pub fn describe_http_match(m: &HttpRouteMatch) -> String {
    let (kind, value) = m.path();
    let mut parts = vec![match kind {
        PathMatchType::Exact => format!("path = {value}"),
        PathMatchType::PathPrefix => format!("path prefix {value}"),
        PathMatchType::RegularExpression => format!("path ~ {value}"),
    }];
    if let Some(method) = &m.method {
        parts.push(format!("method {method}"));
    }
    describe_values(&m.headers, "header", &mut parts);
    describe_values(&m.query_params, "query", &mut parts);
    parts.join(" and ")
}

/// `service foo.Greeter method SayHello and header x = y`.
pub fn describe_grpc_match(m: &GrpcRouteMatch) -> String {
    let mut parts = Vec::new();
    if let Some(method) = &m.method {
        let op = if method.match_type.as_deref() == Some("RegularExpression") {
            "~"
        } else {
            "="
        };
        if let Some(s) = &method.service {
            parts.push(format!("service {op} {s}"));
        }
        if let Some(name) = &method.method {
            parts.push(format!("method {op} {name}"));
        }
    }
    describe_values(&m.headers, "header", &mut parts);
    if parts.is_empty() {
        "any request".to_owned()
    } else {
        parts.join(" and ")
    }
}
