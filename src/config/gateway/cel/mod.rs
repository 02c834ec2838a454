//! The CEL rules (`x-kubernetes-validations`) of the Gateway API CRDs, as the API server
//! evaluates them on `kubectl apply`, over the typed model with the CRDs' defaults applied.
//! Each finding carries the rule's own message, word for word, so a test can tell that every
//! rule of the committed schema has its counterpart here (tests/gateway_schema.rs).

use super::model::{
    GatewaySpec, GrpcRouteSpec, HttpRouteFilter, HttpRouteRule, HttpRouteSpec, ParentReference,
    PathMatchType,
};
mod filters;

use filters::{backend_refs, filters, path_value};

use crate::config::duration::parse_go_duration;
use crate::config::lines::{push_index, push_key};

/// One refused rule: the field path and the CRD's message.
pub type CelFinding = (String, &'static str);

/// The CEL findings of an HTTPRoute's spec (paths start at `spec`).
pub fn http_route(spec: &HttpRouteSpec) -> Vec<CelFinding> {
    let mut out = Vec::new();
    parent_refs(&spec.parent_refs, &mut out);
    let total: usize = spec.rules.iter().map(|r| r.effective_matches().len()).sum();
    if total > 128 {
        out.push((
            "spec.rules".to_owned(),
            "While 16 rules and 64 matches per rule are allowed, the total number of matches across all rules in a route must be less than 128",
        ));
    }
    rule_names(spec.rules.iter().map(|r| r.name.as_deref()), &mut out);
    for (i, rule) in spec.rules.iter().enumerate() {
        http_rule(rule, &push_index("spec.rules", i), &mut out);
    }
    out
}

/// The parentRefs rules of the standard channel's CRDs, stricter than the experimental
/// channel's (which `check` loads with): two references to one parent need distinct
/// section names there; a port does not tell them apart.
pub fn standard_channel_parent_refs(refs: &[ParentReference]) -> Vec<CelFinding> {
    let mut out = Vec::new();
    let section = |p: &ParentReference| p.section_name.clone().filter(|s| !s.is_empty());
    for (i, a) in refs.iter().enumerate() {
        for b in &refs[..i] {
            if !same_parent(a, b) {
                continue;
            }
            let at = push_index("spec.parentRefs", i);
            if section(a).is_none() != section(b).is_none() {
                out.push((at, "sectionName must be specified when parentRefs includes 2 or more references to the same parent"));
            } else if section(a) == section(b) {
                out.push((at, "sectionName must be unique when parentRefs includes 2 or more references to the same parent"));
            }
        }
    }
    out
}

fn same_parent(a: &ParentReference, b: &ParentReference) -> bool {
    a.group() == b.group()
        && a.kind() == b.kind()
        && a.name == b.name
        && a.namespace.as_deref().unwrap_or("") == b.namespace.as_deref().unwrap_or("")
}

/// The CEL findings of a GRPCRoute's spec.
pub fn grpc_route(spec: &GrpcRouteSpec) -> Vec<CelFinding> {
    let mut out = Vec::new();
    parent_refs(&spec.parent_refs, &mut out);
    let total: usize = spec.rules.iter().map(|r| r.matches.len()).sum();
    if total > 128 {
        out.push((
            "spec.rules".to_owned(),
            "While 16 rules and 64 matches per rule are allowed, the total number of matches across all rules in a route must be less than 128",
        ));
    }
    rule_names(spec.rules.iter().map(|r| r.name.as_deref()), &mut out);
    for (i, rule) in spec.rules.iter().enumerate() {
        let base = push_index("spec.rules", i);
        filters(&rule.filters, &push_key(&base, "filters"), &mut out);
        backend_refs(&rule.backend_refs, &base, &mut out);
        for (j, m) in rule.matches.iter().enumerate() {
            let at = push_key(&push_index(&push_key(&base, "matches"), j), "method");
            let Some(method) = &m.method else { continue };
            if method.service.is_none() && method.method.is_none() {
                out.push((
                    at.clone(),
                    "One or both of 'service' or 'method' must be specified",
                ));
            }
            let exact = method.match_type.as_deref().is_none_or(|t| t == "Exact");
            if exact
                && method
                    .service
                    .as_deref()
                    .is_some_and(|s| !grpc_service_ok(s))
            {
                out.push((at.clone(), "service must only contain valid characters (matching ^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)"));
            }
            if exact && method.method.as_deref().is_some_and(|s| !grpc_method_ok(s)) {
                out.push((
                    at,
                    "method must only contain valid characters (matching ^[A-Za-z_][A-Za-z_0-9]*$)",
                ));
            }
        }
    }
    out
}

/// The CEL findings of a Gateway's spec that concern what the lab reads (listeners).
pub fn gateway(spec: &GatewaySpec) -> Vec<CelFinding> {
    let mut out = Vec::new();
    let listeners = &spec.listeners;
    for (i, l) in listeners.iter().enumerate() {
        let at = push_index("spec.listeners", i);
        if listeners[..i].iter().any(|o| o.name == l.name) {
            out.push((
                at.clone(),
                "Listener name must be unique within the Gateway",
            ));
        }
        if listeners[..i]
            .iter()
            .any(|o| o.port == l.port && o.protocol == l.protocol && o.hostname == l.hostname)
        {
            out.push((
                at.clone(),
                "Combination of port, protocol and hostname must be unique for each listener",
            ));
        }
        if matches!(l.protocol.as_str(), "TCP" | "UDP")
            && l.hostname.as_deref().is_some_and(|h| !h.is_empty())
        {
            out.push((
                at.clone(),
                "hostname must not be specified for protocols ['TCP', 'UDP']",
            ));
        }
        let tls = l.extra.get("tls");
        if tls.is_some() && matches!(l.protocol.as_str(), "HTTP" | "TCP" | "UDP") {
            out.push((
                at.clone(),
                "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']",
            ));
        }
        let mode = tls
            .and_then(|t| t.get("mode"))
            .and_then(crate::config::model::Opaque::as_str);
        if l.protocol == "HTTPS" && mode.is_some_and(|m| m != "Terminate") {
            out.push((at.clone(), "tls mode must be Terminate for protocol HTTPS"));
        }
        if l.protocol == "TLS" && tls.is_none() {
            out.push((at, "tls mode must be set for protocol TLS"));
        }
    }
    out
}

fn grpc_service_ok(s: &str) -> bool {
    let s = s.strip_prefix('.').unwrap_or(s);
    !s.is_empty() && s.split('.').all(grpc_ident)
}

fn grpc_method_ok(s: &str) -> bool {
    grpc_ident(s)
}

fn grpc_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn rule_names<'a>(names: impl Iterator<Item = Option<&'a str>>, out: &mut Vec<CelFinding>) {
    let names: Vec<Option<&str>> = names.collect();
    for (i, name) in names.iter().enumerate() {
        if name.is_some() && names[..i].contains(name) {
            out.push((
                push_key(&push_index("spec.rules", i), "name"),
                "Rule name must be unique within the route",
            ));
        }
    }
}

/// Whether the experimental channel's parentRefs rules hold (the standard channel's are
/// then worth a warning of their own).
pub fn http_route_parent_refs_ok(refs: &[ParentReference]) -> bool {
    let mut out = Vec::new();
    parent_refs(refs, &mut out);
    out.is_empty()
}

/// The two parentRefs rules: two references to one parent need distinct section names.
fn parent_refs(refs: &[ParentReference], out: &mut Vec<CelFinding>) {
    let section = |p: &ParentReference| p.section_name.clone().filter(|s| !s.is_empty());
    let port = |p: &ParentReference| p.port.filter(|p| *p != 0);
    for (i, a) in refs.iter().enumerate() {
        let at = push_index("spec.parentRefs", i);
        for b in &refs[..i] {
            if !same_parent(a, b) {
                continue;
            }
            if section(a).is_none() != section(b).is_none()
                || port(a).is_none() != port(b).is_none()
            {
                out.push((
                    at.clone(),
                    "sectionName or port must be specified when parentRefs includes 2 or more references to the same parent",
                ));
            } else if section(a) == section(b) && port(a) == port(b) {
                out.push((
                    at.clone(),
                    "sectionName or port must be unique when parentRefs includes 2 or more references to the same parent",
                ));
            }
        }
    }
}

/// How many of `filters` replace the matched prefix (`ReplacePrefixMatch` with a value)
/// in the path modifier `path` picks.
fn prefix_replacements(
    filters: &[HttpRouteFilter],
    path: impl Fn(&HttpRouteFilter) -> Option<&crate::config::gateway::model::PathModifier>,
) -> usize {
    filters
        .iter()
        .filter(|f| {
            path(f).is_some_and(|p| {
                p.modifier_type == "ReplacePrefixMatch" && p.replace_prefix_match.is_some()
            })
        })
        .count()
}

fn http_rule(rule: &HttpRouteRule, base: &str, out: &mut Vec<CelFinding>) {
    let has_redirect = |fs: &[HttpRouteFilter]| fs.iter().any(|f| f.request_redirect.is_some());
    if !rule.backend_refs.is_empty() && has_redirect(&rule.filters) {
        out.push((
            push_key(base, "filters"),
            "RequestRedirect filter must not be used together with backendRefs",
        ));
    }
    let matches = rule.effective_matches();
    let one_prefix = matches.len() == 1 && matches[0].path().0 == PathMatchType::PathPrefix;
    let prefix_redirects = |fs: &[HttpRouteFilter]| {
        prefix_replacements(fs, |f| {
            f.request_redirect.as_ref().and_then(|r| r.path.as_ref())
        })
    };
    let prefix_rewrites = |fs: &[HttpRouteFilter]| {
        prefix_replacements(fs, |f| f.url_rewrite.as_ref().and_then(|r| r.path.as_ref()))
    };
    if prefix_redirects(&rule.filters) == 1 && !one_prefix {
        out.push((push_key(base, "matches"), "When using RequestRedirect filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified"));
    }
    if prefix_rewrites(&rule.filters) == 1 && !one_prefix {
        out.push((push_key(base, "matches"), "When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified"));
    }
    let in_backends = |count: &dyn Fn(&[HttpRouteFilter]) -> usize| {
        rule.backend_refs
            .iter()
            .filter(|b| count(&b.filters) == 1)
            .count()
            == 1
    };
    if in_backends(&prefix_redirects) && !one_prefix {
        out.push((push_key(base, "matches"), "Within backendRefs, when using RequestRedirect filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified"));
    }
    if in_backends(&prefix_rewrites) && !one_prefix {
        out.push((push_key(base, "matches"), "Within backendRefs, When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified"));
    }
    for (j, m) in rule.matches.iter().enumerate() {
        let at = push_key(&push_index(&push_key(base, "matches"), j), "path");
        let written = m.path.as_ref().and_then(|p| p.match_type.as_deref());
        if written.is_some_and(|t| !matches!(t, "Exact" | "PathPrefix" | "RegularExpression")) {
            out.push((
                at.clone(),
                "type must be one of ['Exact', 'PathPrefix', 'RegularExpression']",
            ));
        }
        let (kind, value) = m.path();
        if kind != PathMatchType::RegularExpression {
            path_value(value, &at, out);
        }
    }
    filters(&rule.filters, &push_key(base, "filters"), out);
    backend_refs(&rule.backend_refs, base, out);
    if let Some(t) = &rule.timeouts {
        let ns = |d: &Option<String>| d.as_deref().and_then(|d| parse_go_duration(d).ok());
        if let (Some(request), Some(backend)) = (ns(&t.request), ns(&t.backend_request))
            && request != 0
            && backend > request
        {
            out.push((
                push_key(base, "timeouts"),
                "backendRequest timeout cannot be longer than request timeout",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(yaml: &str) -> HttpRouteSpec {
        yaml_serde::from_str(yaml).expect("valid test YAML")
    }

    fn messages(found: &[CelFinding]) -> Vec<&str> {
        found.iter().map(|(_, m)| *m).collect()
    }

    #[test]
    fn path_values_follow_the_crd_rules() {
        let found = http_route(&route(
            "rules: [{matches: [{path: {value: 'foo//x'}}, {path: {type: RegularExpression, value: 'x//'}}]}]",
        ));
        let m = messages(&found);
        assert!(
            m.iter()
                .any(|m| m.starts_with("value must be an absolute path")),
            "{m:?}"
        );
        assert!(
            m.iter().any(|m| m.starts_with("must not contain '//'")),
            "{m:?}"
        );
        assert_eq!(
            found.len(),
            2,
            "a regex is not held to the path rules: {m:?}"
        );
        assert!(
            filters::path_chars_ok("/a%20b")
                && !filters::path_chars_ok("/a b")
                && !filters::path_chars_ok("/%2")
        );
    }

    #[test]
    fn a_prefix_rewrite_needs_exactly_one_prefix_match() {
        let rewrite = "filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}]";
        assert!(
            http_route(&route(&format!("rules: [{{{rewrite}}}]"))).is_empty(),
            "the default match is one PathPrefix"
        );
        let found = http_route(&route(&format!(
            "rules: [{{matches: [{{path: {{type: Exact, value: /a}}}}], {rewrite}}}]"
        )));
        assert!(
            messages(&found)[0].starts_with("When using URLRewrite filter"),
            "{found:?}"
        );
    }

    #[test]
    fn filters_hold_the_field_their_type_names() {
        let found = http_route(&route(
            "rules: [{filters: [{type: RequestMirror}, {type: URLRewrite, requestRedirect: {}}]}]",
        ));
        let m = messages(&found);
        assert!(
            m.contains(&"filter.requestMirror must be specified for RequestMirror filter.type")
        );
        assert!(m.contains(
            &"filter.requestRedirect must be nil if the filter.type is not RequestRedirect"
        ));
        assert!(m.contains(&"filter.urlRewrite must be specified for URLRewrite filter.type"));
    }

    #[test]
    fn mirror_fractions_and_parent_refs() {
        let found = http_route(&route(
            "parentRefs: [{name: gw}, {name: gw}]\nrules: [{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: s}, percent: 5, fraction: {numerator: 3, denominator: 2}}}]}]",
        ));
        let m = messages(&found);
        assert!(m.contains(
            &"Only one of percent or fraction may be specified in HTTPRequestMirrorFilter"
        ));
        assert!(m.contains(&"numerator must be less than or equal to denominator"));
        assert!(m.contains(&"Must have port for Service reference"));
        assert!(
            m.iter()
                .any(|m| m.starts_with("sectionName or port must be unique"))
        );
    }
}
