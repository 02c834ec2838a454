//! What `check` says about Gateway API resources: the CEL rules of their CRDs (the schema's
//! other rules refuse a document while it loads), and what Istio's conversion would write
//! in a route's status conditions (Accepted, ResolvedRefs) or its logs, in the lab's
//! diagnostic format: file:line, resource, field, code.

use super::convert::{Conversion, GeneratedBinding};
use super::model::{BackendObjectReference, HttpRouteFilter};
use super::parents::{find_gateway, is_istio_parent, kube_service_exists};
use super::{GatewayApiObject, ISTIO_CONTROLLERS, cel, experimental_only_fields};
use crate::config::hosts::{fqdn, host_matches};
use crate::config::lines::{push_index, push_key};
use crate::config::{ConfigSet, Diagnostic, Resource, Severity, codes};

/// Every finding about the Gateway API resources of `set`, in resource order.
pub fn check(set: &ConfigSet, conversion: &Conversion) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (r, object) in set.gateway_api() {
        let mut sink = Sink {
            set,
            r,
            out: &mut out,
        };
        schema_rules(&mut sink, object);
        for (field, message) in super::unsimulated::fields(object) {
            sink.push(
                Severity::Warning,
                codes::NOT_SIMULATED,
                &field,
                message,
                None,
            );
        }
        match object {
            GatewayApiObject::HttpRoute(route) => {
                let ns = route.metadata.namespace_or_default();
                route_parents(&mut sink, &route.spec.parent_refs, ns);
                let gateway_bound = route.spec.parent_refs.iter().any(|p| p.kind() == "Gateway");
                for (i, rule) in route.spec.rules.iter().enumerate() {
                    http_rule(
                        &mut sink,
                        rule,
                        &push_index("spec.rules", i),
                        ns,
                        gateway_bound,
                    );
                }
            }
            GatewayApiObject::GrpcRoute(route) => {
                route_parents(
                    &mut sink,
                    &route.spec.parent_refs,
                    route.metadata.namespace_or_default(),
                );
            }
            GatewayApiObject::Gateway(g) => gateway_class(&mut sink, g),
            _ => {}
        }
    }
    conversion_problems(set, conversion, &mut out);
    gateway_only_routes(set, conversion, &mut out);
    shared_hosts(set, conversion, &mut out);
    unreachable_rules(set, conversion, &mut out);
    regexes(set, &mut out);
    out
}

/// Where the findings about one resource go.
struct Sink<'a> {
    set: &'a ConfigSet,
    r: &'a Resource,
    out: &'a mut Vec<Diagnostic>,
}

impl Sink<'_> {
    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        field: &str,
        message: String,
        help: Option<&str>,
    ) {
        let mut d = resource_diag(self.set, self.r, severity, code, field, message);
        if let Some(h) = help {
            d = d.with_help(h);
        }
        self.out.push(d);
    }
}

/// The CEL rules of the resource's CRD, the standard channel's stricter parentRefs rules,
/// and the fields only the experimental channel has.
fn schema_rules(sink: &mut Sink<'_>, object: &GatewayApiObject) {
    let cel = match object {
        GatewayApiObject::HttpRoute(route) => cel::http_route(&route.spec),
        GatewayApiObject::GrpcRoute(route) => cel::grpc_route(&route.spec),
        GatewayApiObject::Gateway(g) => cel::gateway(&g.spec),
        _ => Vec::new(),
    };
    for (field, message) in cel {
        sink.push(
            Severity::Error,
            codes::GATEWAY_API_CEL,
            &field,
            format!(
                "{message} (a CEL rule of the {} CRD; kubectl apply rejects it)",
                object.kind()
            ),
            None,
        );
    }
    let parent_refs = match object {
        GatewayApiObject::HttpRoute(route) => route.spec.parent_refs.as_slice(),
        GatewayApiObject::GrpcRoute(route) => route.spec.parent_refs.as_slice(),
        _ => &[],
    };
    if cel::http_route_parent_refs_ok(parent_refs) {
        for (field, message) in cel::standard_channel_parent_refs(parent_refs) {
            sink.push(Severity::Warning, codes::GATEWAY_API_EXPERIMENTAL, &field,
                format!("{message}: a CEL rule of the standard channel's CRD (the experimental channel's lets a port tell them apart)"), None);
        }
    }
    for field in experimental_only_fields(object) {
        sink.push(Severity::Warning, codes::GATEWAY_API_EXPERIMENTAL, &field,
            format!("`{}` is in the experimental channel of Gateway API only; with the standard CRDs installed, kubectl apply rejects it", field.rsplit('.').next().unwrap_or(&field)),
            Some("install the experimental CRDs, or remove the field"));
    }
}

/// One HTTPRoute rule: Istio's redirect quirk, and the
/// ReferenceGrants a Gateway-bound route's cross-namespace backends need.
fn http_rule(
    sink: &mut Sink<'_>,
    rule: &super::model::HttpRouteRule,
    base: &str,
    ns: &str,
    gateway_bound: bool,
) {
    redirect_prefix_quirk(
        &rule.filters,
        &push_key(base, "filters"),
        &mut |field, msg| {
            sink.push(
                Severity::Warning,
                codes::GATEWAY_API_TRANSLATION,
                &field,
                msg,
                None,
            )
        },
    );
    if !gateway_bound {
        return;
    }
    let backends = rule
        .backend_refs
        .iter()
        .enumerate()
        .map(|(k, b)| (push_index(&push_key(base, "backendRefs"), k), &b.backend))
        .chain(rule.filters.iter().enumerate().filter_map(|(k, f)| {
            let at = push_key(
                &push_key(&push_index(&push_key(base, "filters"), k), "requestMirror"),
                "backendRef",
            );
            f.request_mirror.as_ref().map(|m| (at, &m.backend_ref))
        }));
    for (field, b) in backends {
        if let Some(msg) = reference_not_granted(sink.set, "HTTPRoute", ns, b) {
            sink.push(Severity::Error, codes::GATEWAY_API_UNRESOLVED_REF, &field, msg,
                Some("add a ReferenceGrant in the backend's namespace that allows HTTPRoutes of this namespace"));
        }
    }
}

/// A Gateway's class: not in the files (left to the cluster), or another controller's.
fn gateway_class(sink: &mut Sink<'_>, g: &super::model::KubeGateway) {
    let name = g.metadata.name.as_deref().unwrap_or_default();
    match find_gateway(sink.set, g.metadata.namespace_or_default(), name) {
        Some((_, None)) => sink.push(Severity::Info, codes::GATEWAY_CLASS_LEFT_TO_CLUSTER, "spec.gatewayClassName",
            format!("GatewayClass `{}` is not in these files; Istio programs this Gateway only if the class's controller is {}", g.spec.gateway_class_name, ISTIO_CONTROLLERS[0]), None),
        Some((_, Some(c))) if !ISTIO_CONTROLLERS.contains(&c) => sink.push(Severity::Warning, codes::GATEWAY_API_NOT_ISTIO, "spec.gatewayClassName",
            format!("GatewayClass `{}` belongs to controller `{c}`, not Istio: Istio does not program this Gateway and the lab does not act as it", g.spec.gateway_class_name), None),
        _ => {}
    }
}

/// ML0103: a RegularExpression (path, header, query parameter, gRPC method) RE2 refuses;
/// Envoy would refuse the whole route configuration. Checked with the builder the route
/// table uses.
fn regexes(set: &ConfigSet, out: &mut Vec<Diagnostic>) {
    use crate::config::matcher::{MatchField, StringMatcher};
    for (resource, object) in set.gateway_api() {
        for (rule, j, m) in super::convert::route_matches(object) {
            let field = match j {
                Some(j) => push_index(&push_key(&push_index("spec.rules", rule), "matches"), j),
                None => push_index("spec.rules", rule),
            };
            let uri = m.uri.iter().map(|u| (u, MatchField::Uri, "path"));
            let headers = m
                .headers
                .values()
                .map(|h| (h, MatchField::Header, "headers"));
            let params = m
                .query_params
                .values()
                .map(|q| (q, MatchField::QueryParam, "queryParams"));
            for (sm, kind, what) in uri.chain(headers).chain(params) {
                if let Err(e) = StringMatcher::compile(sm, kind, what) {
                    out.push(resource_diag(
                        set,
                        resource,
                        Severity::Error,
                        codes::INVALID_REGEX,
                        &field,
                        e.to_string(),
                    ));
                }
            }
        }
    }
}

/// ML0508: a rule that Istio's precedence puts after a match of every request (a
/// RegularExpression path ranks below every PathPrefix, `/` included: `sortHTTPRoutes`).
fn unreachable_rules(set: &ConfigSet, conversion: &Conversion, out: &mut Vec<Diagnostic>) {
    for g in &conversion.services {
        let catch_all = g.routes.iter().position(|r| {
            r.route.matches.is_empty()
                || r.route.matches.iter().any(|m| {
                    m.uri
                        .as_ref()
                        .is_none_or(|u| u.prefix.as_deref() == Some("/"))
                        && (crate::config::model::HttpMatchRequest {
                            uri: None,
                            port: None,
                            ..m.clone()
                        }) == crate::config::model::HttpMatchRequest::default()
                })
        });
        let Some(first) = catch_all else { continue };
        let taker = &g.routes[first].origin;
        for r in &g.routes[first + 1..] {
            let o = &r.origin;
            if (o.resource, o.rule) == (taker.resource, taker.rule) {
                continue;
            }
            let Some(resource) = set.resources().get(o.resource) else {
                continue;
            };
            let field = match o.match_index {
                Some(j) => push_index(&push_key(&push_index("spec.rules", o.rule), "matches"), j),
                None => push_index("spec.rules", o.rule),
            };
            out.push(resource_diag(set, resource, Severity::Warning, codes::GATEWAY_API_TRANSLATION, &field,
                format!("this match ({}) is never used for host {}: Istio tries it after rule {} of {}, which takes every request (a RegularExpression path ranks below every PathPrefix, `/` included)", r.summary, g.host, taker.rule, taker.route)));
        }
    }
}

/// Service parents the files do not define, parents Istio ignores, Gateways of another
/// controller.
fn route_parents(sink: &mut Sink<'_>, refs: &[super::model::ParentReference], ns: &str) {
    for (i, p) in refs.iter().enumerate() {
        let field = push_index("spec.parentRefs", i);
        let parent_ns = p.namespace.as_deref().unwrap_or(ns);
        if !is_istio_parent(p) {
            sink.push(Severity::Warning, codes::GATEWAY_API_NOT_ISTIO, &field,
                format!("Istio ignores a parentRef of group `{}` kind `{}` (another controller's); the lab does too", p.group(), p.kind()), None);
            continue;
        }
        if p.is_service() {
            let host = fqdn(&p.name, parent_ns);
            let defined = kube_service_exists(sink.set, parent_ns, &p.name)
                || sink.set.service_entry_for(&host).is_some();
            if !defined {
                sink.push(Severity::Info, codes::PARENT_LEFT_TO_CLUSTER, &field,
                    format!("no Service or ServiceEntry in these files defines parent service `{parent_ns}/{}`; Istio accepts the route only if the cluster has that Service (\"parent service not found\")", p.name),
                    Some("add a ServiceEntry for the host (it tells the lab where the service lives), or the Service"));
            }
            continue;
        }
        if p.kind() == "Gateway"
            && let Some((g, Some(c))) = find_gateway(sink.set, parent_ns, &p.name)
            && !ISTIO_CONTROLLERS.contains(&c)
        {
            sink.push(Severity::Warning, codes::GATEWAY_API_NOT_ISTIO, &field,
                format!("Gateway {parent_ns}/{} is of class `{}`, which controller `{c}` programs, not Istio", p.name, g.spec.gateway_class_name), None);
        }
    }
}

/// A cross-namespace backend of a Gateway-bound route needs a ReferenceGrant (Istio checks
/// it for Gateways, not for the mesh: `buildDestination` with `enforceRefGrant`).
fn reference_not_granted(
    set: &ConfigSet,
    kind: &str,
    ns: &str,
    b: &BackendObjectReference,
) -> Option<String> {
    let to_ns = b.namespace.as_deref().filter(|t| *t != ns)?;
    let granted = set.gateway_api().any(|(_, o)| match o {
        GatewayApiObject::ReferenceGrant(g) => {
            g.metadata.namespace_or_default() == to_ns
                && g.spec
                    .from
                    .iter()
                    .any(|f| f.group == super::GROUP && f.kind == kind && f.namespace == ns)
                && g.spec.to.iter().any(|t| {
                    t.group == b.group()
                        && t.kind == b.kind()
                        && t.name.as_deref().is_none_or(|n| n == b.name)
                })
        }
        _ => false,
    });
    (!granted).then(|| format!(
        "backendRef {}/{to_ns} not accessible to a {kind} in namespace \"{ns}\" (missing a ReferenceGrant?): ResolvedRefs=False, RefNotPermitted", b.name
    ))
}

/// Istio copies ReplacePrefixMatch into Envoy's redirect `prefix_rewrite` as written, so a
/// replacement ending in `/` (or `/` alone) leaves a double slash, where the Gateway API
/// spec's table gives one.
fn redirect_prefix_quirk(
    filters: &[HttpRouteFilter],
    base: &str,
    push: &mut dyn FnMut(String, String),
) {
    for (i, f) in filters.iter().enumerate() {
        let Some(p) = f.request_redirect.as_ref().and_then(|r| r.path.as_ref()) else {
            continue;
        };
        if let Some(x) = p
            .replace_prefix_match
            .as_deref()
            .filter(|x| x.ends_with('/'))
        {
            push(
                push_key(
                    &push_key(&push_key(&push_index(base, i), "requestRedirect"), "path"),
                    "replacePrefixMatch",
                ),
                format!(
                    "Istio gives `{x}` to Envoy's redirect prefix_rewrite as written, so /prefix/rest redirects to {x}/rest with a double slash (the Gateway API spec expects one); the lab does what Istio does"
                ),
            );
        }
    }
}

fn resource_diag(
    set: &ConfigSet,
    r: &Resource,
    sev: Severity,
    code: &'static str,
    field: &str,
    msg: String,
) -> Diagnostic {
    Diagnostic::new(
        sev,
        code,
        msg,
        set.file_name(r).to_owned(),
        set.line_of(r, field),
    )
    .with_resource(r.display_name())
    .with_field(field)
}

/// Istio's conversion findings: filters, backends, parents.
fn conversion_problems(set: &ConfigSet, conversion: &Conversion, out: &mut Vec<Diagnostic>) {
    for p in &conversion.problems {
        let Some(r) = set.resources().get(p.resource) else {
            continue;
        };
        let (sev, code) = match p.reason {
            "InvalidFilter" => (Severity::Error, codes::GATEWAY_API_INVALID_FILTER),
            "BackendNotFound" => (Severity::Info, codes::HOST_LEFT_TO_CLUSTER),
            "InvalidKind" | "InvalidDestination" | "RefNotPermitted" => {
                (Severity::Error, codes::GATEWAY_API_UNRESOLVED_REF)
            }
            _ => (Severity::Error, codes::GATEWAY_API_NOT_ACCEPTED),
        };
        let condition = match code {
            codes::GATEWAY_API_NOT_ACCEPTED => "Accepted=False",
            codes::HOST_LEFT_TO_CLUSTER => "ResolvedRefs=False unless the cluster has it",
            _ => "ResolvedRefs=False",
        };
        let dropped = if p.drops_route {
            "; Istio drops the whole route"
        } else {
            ""
        };
        out.push(resource_diag(
            set,
            r,
            sev,
            code,
            &p.field,
            format!("{} ({condition}, {}){dropped}", p.message, p.reason),
        ));
    }
}

/// ML0507: a route whose every binding is a Gateway the lab is not acting as by default.
fn gateway_only_routes(set: &ConfigSet, conversion: &Conversion, out: &mut Vec<Diagnostic>) {
    for (r, object) in set.gateway_api() {
        let name = match object {
            GatewayApiObject::HttpRoute(_) | GatewayApiObject::GrpcRoute(_) => r.display_name(),
            _ => continue,
        };
        let mine: Vec<&GeneratedBinding> = conversion
            .services
            .iter()
            .filter(|s| s.sources.contains(&name))
            .map(|s| &s.binding)
            .collect();
        if !mine.is_empty()
            && mine
                .iter()
                .all(|b| matches!(b, GeneratedBinding::Gateway(_)))
        {
            let gateways: Vec<String> = mine
                .iter()
                .filter_map(|b| match b {
                    GeneratedBinding::Gateway(g) => Some(g.clone()),
                    GeneratedBinding::Mesh { .. } => None,
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            out.push(resource_diag(set, r, Severity::Info, codes::GATEWAY_API_GATEWAY_ONLY, "spec.parentRefs",
                format!("bound only to Gateway {}: not the sidecar traffic the lab plays, unless `mirrorlab run --gateway {}` makes the lab that gateway", gateways.join(", "), gateways[0])));
        }
    }
}

/// ML0509: a VirtualService for a mesh host an HTTPRoute also routes.
fn shared_hosts(set: &ConfigSet, conversion: &Conversion, out: &mut Vec<Diagnostic>) {
    for (r, vs) in set.virtual_services() {
        let mesh = vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh");
        if !mesh {
            continue;
        }
        let ns = vs.metadata.namespace_or_default();
        for (i, h) in vs.spec.hosts.iter().enumerate() {
            let host = fqdn(h, ns);
            if let Some(s) = conversion.services.iter().find(|s| {
                matches!(s.binding, GeneratedBinding::Mesh { .. })
                    && (host_matches(&host, &s.host) || host == s.host)
            }) {
                out.push(resource_diag(set, r, Severity::Warning, codes::GATEWAY_API_AND_VIRTUAL_SERVICE, &push_index("spec.hosts", i),
                    format!("{} also routes host `{h}` for the mesh; a sidecar uses one set of routes for a host, and the lab uses the Gateway API route's", s.sources.join(", "))));
            }
        }
    }
}
