//! A VirtualService written as an HTTPRoute where the Gateway API can say the same thing,
//! and a list of exactly what it cannot (subsets, `sourceLabels`, fault injection, ...).
//!
//! Every conversion is exact or refused: a VirtualService prefix is a plain string prefix
//! and becomes a regex, except the pair exact `P` + prefix `P/` (how a segment-wise
//! PathPrefix is written the other way), which becomes PathPrefix `P` again; a route order
//! that Gateway API precedence would change is listed.

use super::Limitation;
use super::model::{
    BackendObjectReference, Fraction, GatewayResource, HeaderFilter, HeaderValuePair,
    HttpBackendRef, HttpPathMatch, HttpRouteFilter, HttpRouteMatch, HttpRouteRetry, HttpRouteRule,
    HttpRouteSpec, HttpRouteTimeouts, ParentReference, PathModifier, RequestMirrorFilter,
    RequestRedirectFilter, UrlRewriteFilter, ValueMatch,
};
use crate::config::ConfigSet;
use crate::config::duration::parse_duration;
use crate::config::hosts::{CLUSTER_DOMAIN, fqdn};
use crate::config::lines::{push_index, push_key};
use crate::config::model::{
    Destination, HeaderOperations, HttpMatchRequest, HttpRoute, ObjectMeta, OrderedMap,
    StringMatch, VirtualService,
};

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
    let mut spec = HttpRouteSpec::default();
    let mesh = vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh");
    let mut port = None;
    for (i, route) in vs.spec.http.iter().enumerate() {
        let ports: Vec<u32> = route.matches.iter().filter_map(|m| m.port).collect();
        if let Some(p) = ports.first() {
            port = Some(*p);
            if ports.len() != route.matches.len() || ports.iter().any(|q| q != p) {
                c.limit(
                    &push_index("spec.http", i),
                    "match blocks with different ports: a parentRef has one port".into(),
                );
            }
        }
    }
    if mesh {
        for (i, h) in vs.spec.hosts.iter().enumerate() {
            match c.service_parent(h, port) {
                Some(p) => spec.parent_refs.push(p),
                None => c.limit(&push_index("spec.hosts", i), format!("host `{h}` is not a service of the cluster or of a ServiceEntry: a mesh HTTPRoute binds to a Service or a ServiceEntry")),
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
        c.limit(&push_index("spec.gateways", i), format!("Istio Gateway `{g}`: the HTTPRoute's parentRef names a Kubernetes Gateway {gw_ns}/{name}, which must exist with listeners for the hosts"));
    }
    if !mesh || vs.spec.gateways.len() > 1 {
        spec.hostnames = vs.spec.hosts.clone();
    }
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
        let percent = route
            .mirror_percentage
            .as_ref()
            .map(|p| p.value)
            .or(route.mirror_percent.map(f64::from))
            .or(route.mirror_percent_legacy.map(f64::from));
        if let Some(m) = &route.mirror
            && let Some(f) = self.mirror(m, percent, &push_key(base, "mirror"))
        {
            rule.filters.push(f);
        }
        for (k, m) in route.mirrors.iter().enumerate() {
            let at = push_key(&push_index(&push_key(base, "mirrors"), k), "destination");
            if let Some(f) =
                self.mirror(&m.destination, m.percentage.as_ref().map(|p| p.value), &at)
            {
                rule.filters.push(f);
            }
        }
        let lone = route.route.len() == 1;
        for (k, d) in route.route.iter().enumerate() {
            let at = push_index(&push_key(base, "route"), k);
            let Some(backend) = self.backend(&d.destination, &push_key(&at, "destination")) else {
                continue;
            };
            let mut b = HttpBackendRef {
                backend,
                weight: if lone {
                    None
                } else {
                    Some(d.weight.unwrap_or(0))
                },
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
            rule.backend_refs.push(b);
        }
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

    fn matches(&mut self, blocks: &[HttpMatchRequest], base: &str) -> Vec<HttpRouteMatch> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < blocks.len() {
            let at = push_index(&push_key(base, "match"), i);
            let m = &blocks[i];
            // The pair Istio's Gateway semantics are written as: exact P, then prefix P/.
            if let (Some(StringMatch { exact: Some(p), .. }), Some(next)) =
                (&m.uri, blocks.get(i + 1))
                && next.uri.as_ref().and_then(|u| u.prefix.as_deref()) == Some(&format!("{p}/"))
                && without_uri(next) == without_uri(m)
            {
                out.push(self.block(
                    m,
                    Some(HttpPathMatch {
                        match_type: None,
                        value: Some(p.clone()),
                    }),
                    &at,
                ));
                i += 2;
                continue;
            }
            let path = m
                .uri
                .as_ref()
                .and_then(|u| self.path(u, m.ignore_uri_case == Some(true), &push_key(&at, "uri")));
            out.push(self.block(m, path, &at));
            i += 1;
        }
        out
    }

    fn path(&mut self, u: &StringMatch, ignore_case: bool, at: &str) -> Option<HttpPathMatch> {
        if ignore_case {
            self.limit(
                at,
                "ignoreUriCase: Gateway API path matches are case-sensitive".into(),
            );
        }
        let (kind, value) = match (&u.exact, &u.prefix, &u.regex) {
            (Some(e), _, _) => ("Exact", e.clone()),
            // PathPrefix `/`, the CRD's default: left out.
            (_, Some(p), _) if p == "/" || p.is_empty() => return None,
            // A VirtualService prefix is a string prefix (/foo matches /foobar); Gateway
            // API's PathPrefix is segment-wise, so the exact equivalent is a regex.
            (_, Some(p), _) => ("RegularExpression", format!("{}.*", regex::escape(p))),
            (_, _, Some(r)) => ("RegularExpression", r.clone()),
            _ => return None,
        };
        Some(HttpPathMatch {
            match_type: Some(kind.to_owned()),
            value: Some(value),
        })
    }

    fn block(
        &mut self,
        m: &HttpMatchRequest,
        path: Option<HttpPathMatch>,
        at: &str,
    ) -> HttpRouteMatch {
        let refused: [(&str, bool); 7] = [
            ("authority", m.authority.is_some()),
            ("scheme", m.scheme.is_some()),
            ("withoutHeaders", !m.without_headers.is_empty()),
            ("sourceLabels", !m.source_labels.is_empty()),
            ("sourceNamespace", m.source_namespace.is_some()),
            ("gateways", !m.gateways.is_empty()),
            ("statPrefix", m.stat_prefix.is_some()),
        ];
        for (field, set) in refused {
            if set {
                self.limit(
                    &push_key(at, field),
                    format!("`{field}` has no Gateway API match"),
                );
            }
        }
        let method = match &m.method {
            Some(StringMatch { exact: Some(e), .. }) => Some(e.clone()),
            Some(_) => {
                self.limit(
                    &push_key(at, "method"),
                    "a method match must be one exact method in Gateway API".into(),
                );
                None
            }
            None => None,
        };
        HttpRouteMatch {
            path,
            headers: self.values(&m.headers, &push_key(at, "headers")),
            query_params: self.values(&m.query_params, &push_key(at, "queryParams")),
            method,
        }
    }

    fn values(&mut self, map: &OrderedMap<StringMatch>, at: &str) -> Vec<ValueMatch> {
        let mut out = Vec::new();
        for (name, m) in map {
            let (regex, value) = match (&m.exact, &m.prefix, &m.regex) {
                (Some(e), _, _) => (false, e.clone()),
                (_, Some(p), _) => (true, format!("{}.*", regex::escape(p))),
                (_, _, Some(r)) if r == "*" => (true, ".*".to_owned()),
                (_, _, Some(r)) => (true, r.clone()),
                // `{}`: present, whatever the value.
                _ => (true, ".*".to_owned()),
            };
            if name.is_empty() {
                self.limit(at, "an empty name".into());
                continue;
            }
            out.push(ValueMatch {
                match_type: regex.then(|| "RegularExpression".to_owned()),
                name: name.clone(),
                value,
            });
        }
        out
    }

    fn backend(&mut self, d: &Destination, at: &str) -> Option<BackendObjectReference> {
        if let Some(s) = &d.subset {
            self.limit(&push_key(at, "subset"), format!("subset `{s}`: Gateway API backends are Services; give this version a Service (or ServiceEntry host) of its own"));
            return None;
        }
        let full = fqdn(&d.host, &self.ns);
        let port = d.port.as_ref().and_then(|p| p.number).or_else(|| {
            let (_, se) = self.set.service_entry_for(&full)?;
            (se.spec.ports.len() == 1).then(|| se.spec.ports[0].number)
        });
        let Some(port) = port else {
            self.limit(&push_key(at, "port"), format!("no port for `{}`: a Gateway API backend needs one (the service's has several, or none is known)", d.host));
            return None;
        };
        Some(match cluster_service(&full) {
            Some((name, svc_ns)) => BackendObjectReference {
                group: None,
                kind: None,
                name: name.to_owned(),
                namespace: (svc_ns != self.ns).then(|| svc_ns.to_owned()),
                port: Some(port),
            },
            None => BackendObjectReference {
                group: Some("networking.istio.io".to_owned()),
                kind: Some("Hostname".to_owned()),
                name: d.host.clone(),
                namespace: None,
                port: Some(port),
            },
        })
    }

    fn mirror(
        &mut self,
        d: &Destination,
        percent: Option<f64>,
        at: &str,
    ) -> Option<HttpRouteFilter> {
        let backend_ref = self.backend(d, at)?;
        let (percent, fraction) = match percent {
            None => (None, None),
            Some(p) if p.fract() == 0.0 && (0.0..=100.0).contains(&p) => (Some(p as u32), None),
            // Istio's percentage has 4 decimals: the fraction over a million is exact.
            Some(p) => {
                let numerator = (p * 10_000.0).round() as u32;
                let (n, d) = reduce(numerator, 1_000_000);
                (
                    None,
                    Some(Fraction {
                        numerator: n,
                        denominator: Some(d),
                    }),
                )
            }
        };
        Some(HttpRouteFilter {
            filter_type: "RequestMirror".to_owned(),
            request_mirror: Some(RequestMirrorFilter {
                backend_ref,
                percent,
                fraction,
            }),
            ..HttpRouteFilter::default()
        })
    }

    fn rewrite(
        &mut self,
        rw: &crate::config::model::HttpRewrite,
        matches: &[HttpRouteMatch],
        filters: &mut Vec<HttpRouteFilter>,
        base: &str,
    ) {
        let at = push_key(base, "rewrite");
        let prefix = single_prefix(matches);
        let path = match (&rw.uri, &rw.uri_regex_rewrite) {
            (_, Some(r)) if r.regex.as_deref() == Some("/.*") => Some(PathModifier {
                modifier_type: "ReplaceFullPath".into(),
                replace_full_path: r.rewrite.clone(),
                replace_prefix_match: None,
            }),
            (_, Some(_)) => {
                self.limit(
                    &push_key(&at, "uriRegexRewrite"),
                    "a regex rewrite other than of the whole path has no Gateway API modifier"
                        .into(),
                );
                None
            }
            (Some(uri), None) if !uri.is_empty() => {
                match (prefix, matches.first().map(HttpRouteMatch::path)) {
                    (Some(_), _) => Some(PathModifier {
                        modifier_type: "ReplacePrefixMatch".into(),
                        replace_prefix_match: Some(uri.clone()),
                        replace_full_path: None,
                    }),
                    (None, Some((super::model::PathMatchType::Exact, _))) if matches.len() == 1 => {
                        Some(PathModifier {
                            modifier_type: "ReplaceFullPath".into(),
                            replace_full_path: Some(uri.clone()),
                            replace_prefix_match: None,
                        })
                    }
                    _ => {
                        self.limit(&push_key(&at, "uri"), "a uri rewrite needs exactly one PathPrefix (or one Exact) match in Gateway API, and a VirtualService prefix is not one (PathPrefix is segment-wise)".into());
                        None
                    }
                }
            }
            _ => None,
        };
        if path.is_some() || rw.authority.is_some() {
            filters.push(HttpRouteFilter {
                filter_type: "URLRewrite".into(),
                url_rewrite: Some(UrlRewriteFilter {
                    hostname: rw.authority.clone(),
                    path,
                }),
                ..HttpRouteFilter::default()
            });
        }
    }

    fn redirect(
        &mut self,
        rd: &crate::config::model::HttpRedirect,
        matches: &[HttpRouteMatch],
        filters: &mut Vec<HttpRouteFilter>,
        base: &str,
    ) {
        let at = push_key(base, "redirect");
        let code = rd.redirect_code.unwrap_or(301);
        if !matches!(code, 301 | 302 | 303 | 307 | 308) {
            self.limit(
                &push_key(&at, "redirectCode"),
                format!("redirect code {code}: Gateway API allows 301, 302, 303, 307 and 308"),
            );
        }
        if rd.derive_port.as_deref() == Some("FROM_PROTOCOL_DEFAULT") && rd.scheme.is_none() {
            self.limit(
                &push_key(&at, "derivePort"),
                "FROM_PROTOCOL_DEFAULT without a scheme: Gateway API keeps the request's port then"
                    .into(),
            );
        }
        let path = match (&rd.uri, &rd.prefix_rewrite) {
            (_, Some(p)) if single_prefix(matches).is_some() => Some(PathModifier {
                modifier_type: "ReplacePrefixMatch".into(),
                replace_prefix_match: Some(p.clone()),
                replace_full_path: None,
            }),
            (_, Some(_)) => {
                self.limit(&push_key(&at, "prefixRewrite"), "ReplacePrefixMatch needs exactly one PathPrefix match, and a VirtualService prefix is not one (it matches /oldx too; PathPrefix is segment-wise)".into());
                None
            }
            (Some(u), None) if !u.is_empty() => Some(PathModifier {
                modifier_type: "ReplaceFullPath".into(),
                replace_full_path: Some(u.clone()),
                replace_prefix_match: None,
            }),
            _ => None,
        };
        filters.push(HttpRouteFilter {
            filter_type: "RequestRedirect".into(),
            request_redirect: Some(RequestRedirectFilter {
                scheme: rd.scheme.clone(),
                hostname: rd.authority.clone(),
                path,
                port: rd.port,
                status_code: Some(if matches!(code, 301 | 302 | 303 | 307 | 308) {
                    code
                } else {
                    301
                }),
            }),
            ..HttpRouteFilter::default()
        });
    }

    fn retry(&mut self, r: &crate::config::model::HttpRetry, rule: &mut HttpRouteRule, base: &str) {
        let at = push_key(base, "retries");
        let mut codes = Vec::new();
        for cond in r
            .retry_on
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            match cond.parse::<u32>() {
                Ok(code) => codes.push(code),
                Err(_) if matches!(cond, "connect-failure" | "refused-stream" | "unavailable" | "cancelled") => {}
                Err(_) => self.limit(&push_key(&at, "retryOn"), format!("retry condition `{cond}`: Gateway API retries connection errors and the listed status codes only")),
            }
        }
        rule.retry = Some(HttpRouteRetry {
            codes,
            attempts: r.attempts.and_then(|a| u32::try_from(a).ok()),
            backoff: r.backoff.as_deref().and_then(gateway_duration),
        });
        if let Some(per_try) = &r.per_try_timeout {
            rule.timeouts
                .get_or_insert_with(HttpRouteTimeouts::default)
                .backend_request = gateway_duration(per_try);
        }
        self.limit(
            &at,
            "retry is in Gateway API's experimental channel only".into(),
        );
    }

    /// A route order Gateway API precedence would change, for routes that can both match:
    /// `rules` holds each rule with the index of the VirtualService route it came from.
    fn order(&mut self, rules: &[(usize, HttpRouteRule)]) {
        for (a, (i, first)) in rules.iter().enumerate() {
            for (j, later) in &rules[a + 1..] {
                let reordered = first.effective_matches().iter().any(|m1| {
                    later
                        .effective_matches()
                        .iter()
                        .any(|m2| precedence_key(m2) > precedence_key(m1) && may_overlap(m1, m2))
                });
                if reordered {
                    self.limit(&push_index("spec.http", *j), format!("Gateway API precedence tries this route before route {i} (its match is more specific), where the VirtualService tries route {i} first, and a request can match both; reorder or narrow the matches"));
                }
            }
        }
    }
}

/// Whether one request can satisfy both matches (false only when they provably cannot:
/// different paths, methods or exact header values).
fn may_overlap(a: &HttpRouteMatch, b: &HttpRouteMatch) -> bool {
    use super::model::PathMatchType::{Exact, PathPrefix, RegularExpression};
    let string_prefix = |m: &HttpRouteMatch| -> Option<String> {
        let (kind, v) = m.path();
        let p = v.strip_suffix(".*")?;
        (kind == RegularExpression && regex::escape(&unescape(p)) == p).then(|| unescape(p))
    };
    let under = |path: &str, prefix: &str| {
        prefix == "/"
            || path == prefix
            || path.starts_with(&format!("{}/", prefix.trim_end_matches('/')))
    };
    let paths = match (a.path(), b.path()) {
        ((Exact, x), (Exact, y)) => x == y,
        ((Exact, e), (PathPrefix, p)) | ((PathPrefix, p), (Exact, e)) => under(e, p),
        ((PathPrefix, p), (PathPrefix, q)) => under(p, q) || under(q, p),
        _ => match (string_prefix(a), string_prefix(b), a.path(), b.path()) {
            (Some(p), _, _, (Exact | PathPrefix, v)) | (_, Some(p), (Exact | PathPrefix, v), _) => {
                v.starts_with(&p) || p.starts_with(v)
            }
            (Some(p), Some(q), _, _) => p.starts_with(&q) || q.starts_with(&p),
            _ => true,
        },
    };
    let methods = a.method.is_none() || b.method.is_none() || a.method == b.method;
    let headers = a.headers.iter().all(|h| {
        b.headers
            .iter()
            .filter(|k| k.name.eq_ignore_ascii_case(&h.name))
            .all(|k| h.is_regex() || k.is_regex() || k.value == h.value)
    });
    paths && methods && headers
}

/// The text a `regex::escape`d string stands for.
fn unescape(p: &str) -> String {
    let mut out = String::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// (rank, length, has method, headers, queries): larger wins, as `sortHTTPRoutes` orders.
fn precedence_key(m: &HttpRouteMatch) -> (i32, usize, bool, usize, usize) {
    let (kind, value) = m.path();
    let rank = match kind {
        super::model::PathMatchType::Exact => 3,
        super::model::PathMatchType::PathPrefix => 2,
        super::model::PathMatchType::RegularExpression => 1,
    };
    (
        rank,
        value.len(),
        m.method.is_some(),
        m.headers.len(),
        m.query_params.len(),
    )
}

/// Consecutive rules of one name that differ only in their matches are one rule (Istio
/// writes a route per match of a rule); a name that still repeats gets a suffix, as rule
/// names must be unique in a route.
fn merge_split_rules(rules: Vec<(usize, HttpRouteRule)>) -> Vec<(usize, HttpRouteRule)> {
    let mut out: Vec<(usize, HttpRouteRule)> = Vec::new();
    for (i, rule) in rules {
        if let Some((_, last)) = out.last_mut()
            && last.name.is_some()
            && last.name == rule.name
            && (HttpRouteRule {
                matches: Vec::new(),
                ..last.clone()
            }) == (HttpRouteRule {
                matches: Vec::new(),
                ..rule.clone()
            })
        {
            let mut more = rule.effective_matches();
            if last.matches.is_empty() {
                last.matches = last.effective_matches();
            }
            last.matches.append(&mut more);
            continue;
        }
        out.push((i, rule));
    }
    let mut seen: Vec<String> = Vec::new();
    for (_, rule) in &mut out {
        let Some(name) = rule.name.clone() else {
            continue;
        };
        let mut unique = name.clone();
        let mut n = 1;
        while seen.contains(&unique) {
            n += 1;
            unique = format!("{name}-{n}");
        }
        seen.push(unique.clone());
        rule.name = Some(unique);
    }
    out
}

/// The routes with each pair Istio's Gateway semantics are written as joined again: exact
/// `P` rewriting to `X` followed by prefix `P/` rewriting to `X/` (or both to `/`), or
/// redirecting to `X` and by prefix rewrite to `X/`, is one route with a PathPrefix `P`
/// block pair and a prefix rewrite `X`, as the HTTPRoute had it.
fn rejoin_prefix_rewrites(routes: &[HttpRoute]) -> Vec<(usize, HttpRoute)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < routes.len() {
        if let Some(joined) = routes.get(i + 1).and_then(|next| rejoin(&routes[i], next)) {
            out.push((i, joined));
            i += 2;
        } else {
            out.push((i, routes[i].clone()));
            i += 1;
        }
    }
    out
}

fn rejoin(a: &HttpRoute, b: &HttpRoute) -> Option<HttpRoute> {
    let ([ma], [mb]) = (a.matches.as_slice(), b.matches.as_slice()) else {
        return None;
    };
    let p = ma.uri.as_ref()?.exact.clone()?;
    if mb.uri.as_ref()?.prefix.as_deref() != Some(format!("{p}/").as_str())
        || without_uri(ma) != without_uri(mb)
    {
        return None;
    }
    let mut joined = a.clone();
    joined.matches = vec![ma.clone(), mb.clone()];
    let plain = |r: &HttpRoute| HttpRoute {
        matches: Vec::new(),
        rewrite: r
            .rewrite
            .as_ref()
            .map(|w| crate::config::model::HttpRewrite {
                uri: None,
                ..w.clone()
            }),
        redirect: r
            .redirect
            .as_ref()
            .map(|d| crate::config::model::HttpRedirect {
                uri: None,
                prefix_rewrite: None,
                ..d.clone()
            }),
        ..r.clone()
    };
    if plain(a) != plain(b) {
        return None;
    }
    match (&a.rewrite, &b.rewrite, &a.redirect, &b.redirect) {
        (Some(wa), Some(wb), None, None) => {
            let x = wa.uri.clone()?;
            let expected = if x == "/" {
                "/".to_owned()
            } else {
                format!("{x}/")
            };
            (wb.uri.as_deref() == Some(expected.as_str())).then_some(())?;
        }
        (None, None, Some(da), Some(db)) => {
            let x = da.uri.clone().unwrap_or_default();
            let expected = format!("{x}/");
            (db.prefix_rewrite.as_deref() == Some(expected.as_str())
                && da.prefix_rewrite.is_none())
            .then_some(())?;
            if let Some(d) = &mut joined.redirect {
                d.uri = None;
                d.prefix_rewrite = Some(x);
            }
        }
        _ => return None,
    }
    Some(joined)
}

fn without_uri(m: &HttpMatchRequest) -> HttpMatchRequest {
    HttpMatchRequest {
        uri: None,
        ..m.clone()
    }
}

fn single_prefix(matches: &[HttpRouteMatch]) -> Option<&str> {
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
fn cluster_service(full: &str) -> Option<(&str, &str)> {
    let rest = full.strip_suffix(&format!(".{CLUSTER_DOMAIN}"))?;
    let (name, ns) = rest.split_once('.')?;
    (!ns.contains('.')).then_some((name, ns))
}

/// A duration in Gateway API's format (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`): `2.5s` → `2500ms`.
fn gateway_duration(text: &str) -> Option<String> {
    let d = parse_duration(text).ok()?;
    let ms = d.as_millis();
    Some(if ms % 1000 == 0 && ms / 1000 < 100_000 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    })
}

fn reduce(mut n: u32, mut d: u32) -> (u32, u32) {
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
