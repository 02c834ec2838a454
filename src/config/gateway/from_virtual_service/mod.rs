//! A VirtualService written as an HTTPRoute where the Gateway API can say the same thing,
//! and a list of exactly what it cannot (subsets, `sourceLabels`, fault injection, ...).
//!
//! Every conversion is exact or refused: a VirtualService prefix is a plain string prefix
//! and becomes a regex, except the pair exact `P` + prefix `P/` (how a segment-wise
//! PathPrefix is written the other way), which becomes PathPrefix `P` again; a route order
//! that Gateway API precedence would change is listed.

mod order;
mod parts;

use order::{merge_split_rules, rejoin_prefix_rewrites};

use super::Limitation;
use super::model::{
    GatewayResource, HeaderFilter, HeaderValuePair, HttpBackendRef, HttpRouteFilter,
    HttpRouteMatch, HttpRouteRule, HttpRouteSpec, HttpRouteTimeouts, ParentReference,
};
use crate::config::ConfigSet;
use crate::config::duration::parse_duration;
use crate::config::hosts::{CLUSTER_DOMAIN, fqdn};
use crate::config::lines::{push_index, push_key};
use crate::config::model::{HeaderOperations, HttpRoute, ObjectMeta, OrderedMap, VirtualService};

/// The HTTPRoute for `vs`, or nothing when no route of it converts; and the limitations.
pub fn http_route_for(
    set: &ConfigSet,
    vs: &VirtualService,
) -> (Option<GatewayResource<HttpRouteSpec>>, Vec<Limitation>) {
    let ns = vs.metadata.namespace_or_default().to_owned();
    let resource = format!(
        "VirtualService {ns}/{}",
        vs.metadata.name.as_deref().unwrap_or_default()
    );
    let mut c = Converter {
        set,
        ns: ns.clone(),
        resource,
        limits: Vec::new(),
    };
    let mut spec = c.parents(vs);
    let mut rules = Vec::new();
    for (i, route) in rejoin_prefix_rewrites(&vs.spec.http) {
        if let Some(rule) = c.rule(&route, &push_index("spec.http", i)) {
            rules.push((i, rule));
        }
    }
    let rules = merge_split_rules(rules);
    c.order(&rules);
    spec.rules = rules.into_iter().map(|(_, r)| r).collect();
    for (field, what) in [
        ("spec.tcp", vs.spec.tcp.len()),
        ("spec.tls", vs.spec.tls.len()),
    ] {
        if what > 0 {
            c.limit(field, "TCP and TLS routes are TCPRoute and TLSRoute in Gateway API, which the lab does not write".into());
        }
    }
    if !vs.spec.export_to.is_empty() {
        c.limit(
            "spec.exportTo",
            "exportTo has no Gateway API equivalent".into(),
        );
    }
    let route = (!spec.rules.is_empty()).then(|| GatewayResource {
        api_version: "gateway.networking.k8s.io/v1".to_owned(),
        kind: "HTTPRoute".to_owned(),
        metadata: ObjectMeta {
            name: vs.metadata.name.clone(),
            namespace: vs.metadata.namespace.clone(),
            annotations: vs
                .metadata
                .annotations
                .iter()
                .filter(|(k, _)| k.starts_with("mirrorlab.dev/"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    });
    (route, c.limits)
}

struct Converter<'a> {
    set: &'a ConfigSet,
    ns: String,
    resource: String,
    limits: Vec<Limitation>,
}

impl Converter<'_> {
    /// The parentRefs (a Service or ServiceEntry per host for the mesh, a Gateway per
    /// `gateways` entry) and, for Gateways, the host names.
    fn parents(&mut self, vs: &VirtualService) -> HttpRouteSpec {
        let ns = self.ns.clone();
        let mut spec = HttpRouteSpec::default();
        let mesh = vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh");
        let mut port = None;
        for (i, route) in vs.spec.http.iter().enumerate() {
            let ports: Vec<u32> = route.matches.iter().filter_map(|m| m.port).collect();
            if let Some(p) = ports.first() {
                port = Some(*p);
                if ports.len() != route.matches.len() || ports.iter().any(|q| q != p) {
                    self.limit(
                        &push_index("spec.http", i),
                        "match blocks with different ports: a parentRef has one port".into(),
                    );
                }
            }
        }
        if mesh {
            for (i, h) in vs.spec.hosts.iter().enumerate() {
                match self.service_parent(h, port) {
                    Some(p) => spec.parent_refs.push(p),
                    None => self.limit(&push_index("spec.hosts", i), format!("host `{h}` is not a service of the cluster or of a ServiceEntry: a mesh HTTPRoute binds to a Service or a ServiceEntry")),
                }
            }
        }
        for (i, g) in vs
            .spec
            .gateways
            .iter()
            .enumerate()
            .filter(|(_, g)| *g != "mesh")
        {
            let (gw_ns, name) = g.split_once('/').unwrap_or((ns.as_str(), g.as_str()));
            let gw_ns = if gw_ns == "." { ns.as_str() } else { gw_ns };
            spec.parent_refs.push(ParentReference {
                namespace: (gw_ns != ns).then(|| gw_ns.to_owned()),
                name: name.to_owned(),
                ..ParentReference::default()
            });
            self.limit(&push_index("spec.gateways", i), format!("Istio Gateway `{g}`: the HTTPRoute's parentRef names a Kubernetes Gateway {gw_ns}/{name}, which must exist with listeners for the hosts"));
        }
        if !mesh || vs.spec.gateways.len() > 1 {
            spec.hostnames = vs.spec.hosts.clone();
        }
        spec
    }

    fn limit(&mut self, field: &str, message: String) {
        self.limits.push(Limitation {
            resource: self.resource.clone(),
            field: field.to_owned(),
            message,
        });
    }

    /// `reviews` → Service reviews; a ServiceEntry host → that ServiceEntry.
    fn service_parent(&self, host: &str, port: Option<u32>) -> Option<ParentReference> {
        let full = fqdn(host, &self.ns);
        if let Some((name, svc_ns)) = cluster_service(&full) {
            return Some(ParentReference {
                group: Some(String::new()),
                kind: Some("Service".to_owned()),
                namespace: (svc_ns != self.ns).then(|| svc_ns.to_owned()),
                name: name.to_owned(),
                section_name: None,
                port,
            });
        }
        let (r, _) = self.set.service_entry_for(&full)?;
        let (se_ns, se_name) = r
            .object
            .qualified_name()
            .split_once('/')
            .map(|(a, b)| (a.to_owned(), b.to_owned()))?;
        Some(ParentReference {
            group: Some("networking.istio.io".to_owned()),
            kind: Some("ServiceEntry".to_owned()),
            namespace: (se_ns != self.ns).then_some(se_ns),
            name: se_name,
            section_name: None,
            port,
        })
    }

    fn rule(&mut self, route: &HttpRoute, base: &str) -> Option<HttpRouteRule> {
        let unsupported: [(&str, bool); 4] = [
            ("fault", route.fault.is_some()),
            ("delegate", route.delegate.is_some()),
            ("directResponse", route.direct_response.is_some()),
            ("corsPolicy", route.cors_policy.is_some()),
        ];
        for (field, set) in unsupported {
            if set {
                let why = match field {
                    "fault" => "fault injection has no Gateway API filter",
                    "delegate" => {
                        "delegation has no Gateway API equivalent (a route object cannot include another)"
                    }
                    "directResponse" => {
                        "a direct response has no Gateway API filter (a rule without backends answers 500 only)"
                    }
                    _ => {
                        "Istio translates a Gateway API CORS filter with unmatchedPreflights IGNORE and origin patterns the VirtualService's matchers do not all have; not converted"
                    }
                };
                self.limit(&push_key(base, field), why.to_owned());
            }
        }
        if route.delegate.is_some() || route.direct_response.is_some() {
            return None;
        }
        let mut rule = HttpRouteRule {
            name: route.name.clone().filter(|n| {
                crate::config::names::is_dns1123_label(n)
                    || n.split('.').all(crate::config::names::is_dns1123_label)
            }),
            ..HttpRouteRule::default()
        };
        if route.name.is_some() && rule.name.is_none() {
            self.limit(
                &push_key(base, "name"),
                "the route name is not a DNS subdomain, which a rule name must be; dropped".into(),
            );
        }
        rule.matches = self.matches(&route.matches, base);
        // One PathPrefix `/` match and nothing else is the CRD's default: leave it out.
        if let [only] = rule.matches.as_slice()
            && (HttpRouteMatch {
                path: None,
                ..only.clone()
            }) == HttpRouteMatch::default()
            && only.path() == (super::model::PathMatchType::PathPrefix, "/")
        {
            rule.matches.clear();
        }
        if let Some(h) = &route.headers {
            if let Some(req) = &h.request {
                rule.filters
                    .push(header_filter("RequestHeaderModifier", req));
            }
            if let Some(resp) = &h.response {
                rule.filters
                    .push(header_filter("ResponseHeaderModifier", resp));
            }
        }
        if let Some(rw) = &route.rewrite {
            self.rewrite(rw, &rule.matches, &mut rule.filters, base);
        }
        if let Some(rd) = &route.redirect {
            self.redirect(rd, &rule.matches, &mut rule.filters, base);
        }
        rule.filters.extend(self.mirrors(route, base));
        rule.backend_refs = self.backends(route, base);
        if let Some(t) = &route.timeout {
            rule.timeouts = Some(HttpRouteTimeouts {
                request: gateway_duration(t),
                backend_request: None,
            });
        }
        if let Some(r) = &route.retries {
            self.retry(r, &mut rule, base);
        }
        Some(rule)
    }
}

impl Converter<'_> {
    /// `mirror` (with its percentage) and every `mirrors` entry, as RequestMirror filters.
    fn mirrors(&mut self, route: &HttpRoute, base: &str) -> Vec<HttpRouteFilter> {
        let mut out = Vec::new();
        let percent = route.mirror_percent_value();
        if let Some(m) = &route.mirror
            && let Some(f) = self.mirror(m, percent, &push_key(base, "mirror"))
        {
            out.push(f);
        }
        for (k, m) in route.mirrors.iter().enumerate() {
            let at = push_key(&push_index(&push_key(base, "mirrors"), k), "destination");
            if let Some(f) =
                self.mirror(&m.destination, m.percentage.as_ref().map(|p| p.value), &at)
            {
                out.push(f);
            }
        }
        out
    }

    /// The weighted destinations as backendRefs, each with its header filters; a lone one
    /// without weight.
    fn backends(&mut self, route: &HttpRoute, base: &str) -> Vec<HttpBackendRef> {
        let lone = route.route.len() == 1;
        let mut out = Vec::new();
        for (k, d) in route.route.iter().enumerate() {
            let at = push_index(&push_key(base, "route"), k);
            let Some(backend) = self.backend(&d.destination, &push_key(&at, "destination")) else {
                continue;
            };
            let mut b = HttpBackendRef {
                backend,
                weight: (!lone).then(|| d.weight.unwrap_or(0)),
                filters: Vec::new(),
            };
            if let Some(h) = &d.headers {
                if let Some(req) = &h.request {
                    b.filters.push(header_filter("RequestHeaderModifier", req));
                }
                if let Some(resp) = &h.response {
                    b.filters
                        .push(header_filter("ResponseHeaderModifier", resp));
                }
            }
            out.push(b);
        }
        out
    }
}

pub(super) fn single_prefix(matches: &[HttpRouteMatch]) -> Option<&str> {
    match matches {
        [m] if m.path().0 == super::model::PathMatchType::PathPrefix => Some(m.path().1),
        [] => Some("/"),
        _ => None,
    }
}

fn header_filter(kind: &str, ops: &HeaderOperations) -> HttpRouteFilter {
    let pairs = |map: &OrderedMap<String>| {
        map.iter()
            .map(|(name, value)| HeaderValuePair {
                name: name.clone(),
                value: value.clone(),
            })
            .collect()
    };
    let h = HeaderFilter {
        set: pairs(&ops.set),
        add: pairs(&ops.add),
        remove: ops.remove.clone(),
    };
    let mut f = HttpRouteFilter {
        filter_type: kind.to_owned(),
        ..HttpRouteFilter::default()
    };
    if kind == "RequestHeaderModifier" {
        f.request_header_modifier = Some(h);
    } else {
        f.response_header_modifier = Some(h);
    }
    f
}

/// `name.namespace` of a cluster service host.
pub(super) fn cluster_service(full: &str) -> Option<(&str, &str)> {
    let rest = full.strip_suffix(&format!(".{CLUSTER_DOMAIN}"))?;
    let (name, ns) = rest.split_once('.')?;
    (!ns.contains('.')).then_some((name, ns))
}

/// A duration in Gateway API's format (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`): `2.5s` → `2500ms`.
pub(super) fn gateway_duration(text: &str) -> Option<String> {
    let d = parse_duration(text).ok()?;
    let ms = d.as_millis();
    Some(if ms % 1000 == 0 && ms / 1000 < 100_000 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    })
}

pub(super) fn reduce(mut n: u32, mut d: u32) -> (u32, u32) {
    let (mut a, mut b) = (n, d);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    if a > 1 {
        n /= a;
        d /= a;
    }
    (n, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_fractions_take_gateway_apis_forms() {
        assert_eq!(gateway_duration("2.5s").as_deref(), Some("2500ms"));
        assert_eq!(gateway_duration("10s").as_deref(), Some("10s"));
        assert_eq!(reduce(125_000, 1_000_000), (1, 8));
        assert_eq!(
            cluster_service("reviews.default.svc.cluster.local"),
            Some(("reviews", "default"))
        );
        assert_eq!(cluster_service("api.example.com"), None);
    }
}
