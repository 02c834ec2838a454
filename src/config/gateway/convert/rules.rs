//! One rule of an HTTPRoute or GRPCRoute as Istio's `convertHTTPRoute` and
//! `convertGRPCRoute` write it: the route name, the filters, the weighted backends
//! (`buildHTTPDestination`, `buildDestination`), timeouts and retry; one route per match.

use super::matches::{
    cors, describe_grpc_match, describe_http_match, grpc_match, http_match, redirect, rewrite,
};
use super::{ConversionProblem, IstioRoute, RouteKind, RouteRef};
use crate::config::ConfigSet;
use crate::config::gateway::model::{
    BackendObjectReference, HeaderFilter, HttpBackendRef, HttpRouteFilter, HttpRouteRule,
};
use crate::config::gateway::parents;
use crate::config::hosts::{CLUSTER_DOMAIN, fqdn};
use crate::config::lines::{push_index, push_key};
use crate::config::model::{
    Destination, HeaderOperations, Headers, HttpDirectResponse, HttpMirrorPolicy, HttpRetry,
    HttpRoute, HttpRouteDestination, OrderedMap, Percent, PortSelector,
};

type Converted = Result<(Vec<IstioRoute>, Vec<ConversionProblem>), ConversionProblem>;

/// One rule's shared parts: what Istio makes of filters and backends, the same for every
/// match of the rule.
struct RuleParts {
    template: HttpRoute,
    soft: Vec<ConversionProblem>,
}

/// A match's index in the rule, the match in Istio's form (`None`: a rule without one),
/// and the match in words.
type MatchInput = (
    Option<usize>,
    Option<crate::config::model::HttpMatchRequest>,
    String,
);

/// What one rule of either route kind gives the conversion: its name, filters, backends,
/// the filters its kind allows, its timeouts and retry (HTTPRoute's), and its matches in
/// Istio's form with their index and their words.
struct RuleInput<'a> {
    name: Option<&'a str>,
    filters: &'a [HttpRouteFilter],
    backends: &'a [HttpBackendRef],
    allowed: FilterSet,
    http: Option<&'a HttpRouteRule>,
    matches: Vec<MatchInput>,
}

pub(super) fn convert_http_rules(
    set: &ConfigSet,
    resource: usize,
    rules: &[HttpRouteRule],
    namespace: &str,
    name: &str,
) -> Converted {
    let inputs = rules.iter().map(|rule| RuleInput {
        name: rule.name.as_deref(),
        filters: &rule.filters,
        backends: &rule.backend_refs,
        allowed: FilterSet::Http,
        http: Some(rule),
        matches: rule
            .effective_matches()
            .iter()
            .enumerate()
            .map(|(j, m)| (Some(j), Some(http_match(m)), describe_http_match(m)))
            .collect(),
    });
    convert_rules(set, resource, RouteKind::Http, namespace, name, inputs)
}

pub(super) fn convert_grpc_rules(
    set: &ConfigSet,
    resource: usize,
    rules: &[crate::config::gateway::model::GrpcRouteRule],
    namespace: &str,
    name: &str,
) -> Converted {
    let inputs = rules.iter().map(|rule| RuleInput {
        name: rule.name.as_deref(),
        filters: &rule.filters,
        backends: &rule.backend_refs,
        allowed: FilterSet::Grpc,
        http: None,
        // A rule without matches is one route without a match (ranked last).
        matches: if rule.matches.is_empty() {
            vec![(None, None, "any request".to_owned())]
        } else {
            rule.matches
                .iter()
                .enumerate()
                .map(|(j, m)| (Some(j), Some(grpc_match(m)), describe_grpc_match(m)))
                .collect()
        },
    });
    convert_rules(set, resource, RouteKind::Grpc, namespace, name, inputs)
}

/// Every rule's parts, then one route per match (route_collections.go splits each rule so).
fn convert_rules<'a>(
    set: &ConfigSet,
    resource: usize,
    kind: RouteKind,
    namespace: &str,
    name: &str,
    rules: impl Iterator<Item = RuleInput<'a>>,
) -> Converted {
    let mut out = Vec::new();
    let mut soft = Vec::new();
    for (n, rule) in rules.enumerate() {
        let base = push_index("spec.rules", n);
        let ctx = Ctx {
            set,
            resource,
            namespace,
            base: &base,
        };
        let mut parts = ctx.rule_parts(
            rule.name,
            name,
            n,
            rule.filters,
            rule.backends,
            rule.allowed,
        )?;
        if let Some(http) = rule.http {
            timeouts_and_retry(&mut parts.template, http);
        }
        soft.append(&mut parts.soft);
        for (j, m, summary) in rule.matches {
            let mut route = parts.template.clone();
            route.matches = m.into_iter().collect();
            out.push(IstioRoute {
                route,
                origin: RouteRef {
                    kind,
                    route: format!("{namespace}/{name}"),
                    resource,
                    rule: n,
                    match_index: j,
                },
                summary,
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
        vs.route = self.backends(backends, &mut soft)?;
        Ok(RuleParts { template: vs, soft })
    }

    /// `buildHTTPDestination`: the backends with a weight, each with its header filters; a
    /// lone one without weight.
    fn backends(
        &self,
        backends: &[HttpBackendRef],
        soft: &mut Vec<ConversionProblem>,
    ) -> Result<Vec<HttpRouteDestination>, ConversionProblem> {
        let kept: Vec<(usize, &HttpBackendRef)> = backends
            .iter()
            .enumerate()
            .filter(|(_, b)| b.weight() > 0)
            .collect();
        let lone = kept.len() == 1;
        let mut out = Vec::with_capacity(kept.len());
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
            out.push(rd);
        }
        normalize_weights(&mut out);
        Ok(out)
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
        let map = |list: &[crate::config::gateway::model::HeaderValuePair]| {
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
