//! Delegate VirtualServices merged into their root, as Istio does before it translates a
//! VirtualService (`pilot/pkg/model/virtualservice_controller.go` `mergeVirtualServices`,
//! `pilot/pkg/model/virtualservice.go` `mergeHTTPRoute`, `mergeHTTPMatchRequests`,
//! `hasConflict`).
//!
//! A root route with `delegate` is replaced by the delegate's routes, in the delegate's order:
//! each one's match blocks are combined with the root's (every compatible pair), and the
//! fields it leaves unset are taken from the root route. A delegate route none of whose
//! blocks fits a root block is dropped; a delegate that is missing, has hosts, or is not
//! exported to the root's namespace drops only the root route that names it.

use std::borrow::Cow;

use crate::config::hosts::fqdn;
use crate::config::model::{HttpMatchRequest, HttpRoute, StringMatch, VirtualService};
use crate::config::{ConfigSet, Resource};

use super::RouteOrigin;

/// One route of a VirtualService after its delegates are merged in.
pub(super) struct Expanded<'a> {
    /// The route, merged when it came from a delegate.
    pub route: Cow<'a, HttpRoute>,
    /// Index of the root route in the root's `spec.http`.
    pub root_index: usize,
    /// Where the route was written.
    pub origin: RouteOrigin,
    /// The resource the route was written in (the delegate's, for a delegated route).
    pub resource: &'a Resource,
    /// Field path of the route in that resource.
    pub base: String,
}

/// The routes of root VirtualService `vs` with delegates merged in, and a note for each
/// root route that was dropped because its delegate could not be used.
pub(super) fn expand<'a>(
    set: &'a ConfigSet,
    resource: &'a Resource,
    vs: &'a VirtualService,
) -> (Vec<Expanded<'a>>, Vec<String>) {
    let root_ns = vs.metadata.namespace_or_default();
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for (i, route) in vs.spec.http.iter().enumerate() {
        let Some(delegate) = &route.delegate else {
            out.push(Expanded {
                route: Cow::Borrowed(route),
                root_index: i,
                origin: RouteOrigin::VirtualService,
                resource,
                base: format!("spec.http[{i}]"),
            });
            continue;
        };
        let (d_resource, d_vs) = match set.delegate_for(delegate, root_ns) {
            Ok(found) => found,
            Err(problem) => {
                notes.push(format!("spec.http[{i}]: {problem}; Istio skips this route"));
                continue;
            }
        };
        let ns = d_vs.metadata.namespace_or_default();
        let name = d_vs.metadata.name.as_deref().unwrap_or_default();
        for (j, leaf) in d_vs.spec.http.iter().enumerate() {
            if leaf.delegate.is_some() {
                // Istio's validation refuses a delegate that delegates again.
                continue;
            }
            let Some(merged) = merge_route(route, root_ns, leaf, ns) else {
                notes.push(format!("delegate {ns}/{name} spec.http[{j}]: its matches conflict with spec.http[{i}]'s, so Istio drops it"));
                continue;
            };
            out.push(Expanded {
                route: Cow::Owned(merged),
                root_index: i,
                origin: RouteOrigin::Delegate {
                    virtual_service: format!("{ns}/{name}"),
                    route_index: j,
                },
                resource: d_resource,
                base: format!("spec.http[{j}]"),
            });
        }
    }
    (out, notes)
}

/// `mergeHTTPRoute`: the delegate's route with the root's matches folded in and its unset
/// fields taken from the root; `None` on a match conflict. Destination hosts are qualified
/// in the namespace they were written in, as Istio resolves short names before merging.
fn merge_route(
    root: &HttpRoute,
    root_ns: &str,
    leaf: &HttpRoute,
    leaf_ns: &str,
) -> Option<HttpRoute> {
    let mut out = leaf.clone();
    let qualify = root_ns != leaf_ns;
    if qualify {
        qualify_hosts(&mut out, leaf_ns);
    }
    out.matches = merge_matches(&root.matches, &leaf.matches)?;
    out.name = match (&root.name, &leaf.name) {
        (Some(r), Some(l)) => Some(format!("{r}-{l}")),
        (r, l) => l.clone().or_else(|| r.clone()),
    };
    let mut inherited = root.clone();
    if qualify {
        qualify_hosts(&mut inherited, root_ns);
    }
    macro_rules! inherit {
        ($($field:ident),*) => {$(
            if out.$field.is_none() {
                out.$field = inherited.$field.clone();
            }
        )*};
    }
    inherit!(
        rewrite,
        direct_response,
        timeout,
        retries,
        fault,
        mirror,
        mirror_percent,
        mirror_percent_legacy,
        mirror_percentage,
        cors_policy,
        headers
    );
    if out.mirrors.is_empty() {
        out.mirrors = inherited.mirrors;
    }
    out.delegate = None;
    Some(out)
}

fn qualify_hosts(route: &mut HttpRoute, namespace: &str) {
    for d in &mut route.route {
        d.destination.host = fqdn(&d.destination.host, namespace);
    }
    if let Some(m) = &mut route.mirror {
        m.host = fqdn(&m.host, namespace);
    }
    for m in &mut route.mirrors {
        m.destination.host = fqdn(&m.destination.host, namespace);
    }
}

/// `mergeHTTPMatchRequests`: every delegate block must fit at least one root block; each
/// fitting pair becomes one block. `None` on a conflict.
fn merge_matches(
    root: &[HttpMatchRequest],
    leaf: &[HttpMatchRequest],
) -> Option<Vec<HttpMatchRequest>> {
    if root.is_empty() {
        return Some(leaf.to_vec());
    }
    if leaf.is_empty() {
        return Some(root.to_vec());
    }
    let mut out = Vec::new();
    for l in leaf {
        let before = out.len();
        for r in root.iter().filter(|r| !conflicts(r, l)) {
            out.push(merge_block(r, l));
        }
        if out.len() == before {
            return None;
        }
    }
    Some(out)
}

fn merge_block(root: &HttpMatchRequest, leaf: &HttpMatchRequest) -> HttpMatchRequest {
    let mut out = leaf.clone();
    out.name = match (&root.name, &leaf.name) {
        (Some(r), Some(l)) => Some(format!("{r}-{l}")),
        (r, l) => l.clone().or_else(|| r.clone()),
    };
    macro_rules! inherit {
        ($($field:ident),*) => {$(
            if out.$field.is_none() {
                out.$field = root.$field.clone();
            }
        )*};
    }
    inherit!(
        uri,
        scheme,
        method,
        authority,
        port,
        source_namespace,
        stat_prefix
    );
    let union = |r: &crate::config::model::OrderedMap<StringMatch>,
                 l: &crate::config::model::OrderedMap<StringMatch>| {
        let mut m = r.clone();
        m.extend(l.iter().map(|(k, v)| (k.clone(), v.clone())));
        m
    };
    out.headers = union(&root.headers, &leaf.headers);
    out.without_headers = union(&root.without_headers, &leaf.without_headers);
    out.query_params = union(&root.query_params, &leaf.query_params);
    let mut labels = root.source_labels.clone();
    labels.extend(
        leaf.source_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    out.source_labels = labels;
    if out.gateways.is_empty() {
        out.gateways = root.gateways.clone();
    }
    out
}

/// `hasConflict`: whether a delegate block asks for something outside the root block.
fn conflicts(root: &HttpMatchRequest, leaf: &HttpMatchRequest) -> bool {
    let strings = [
        (&root.uri, &leaf.uri),
        (&root.scheme, &leaf.scheme),
        (&root.method, &leaf.method),
        (&root.authority, &leaf.authority),
    ];
    if strings
        .iter()
        .any(|(r, l)| string_conflict(r.as_ref(), l.as_ref()))
    {
        return true;
    }
    let maps = [
        (&root.headers, &leaf.headers),
        (&root.without_headers, &leaf.without_headers),
        (&root.query_params, &leaf.query_params),
    ];
    if maps
        .iter()
        .any(|(r, l)| l.iter().any(|(k, v)| string_conflict(r.get(k), Some(v))))
    {
        return true;
    }
    if root.ignore_uri_case.unwrap_or(false) != leaf.ignore_uri_case.unwrap_or(false) {
        return true;
    }
    if let (Some(r), Some(l)) = (root.port, leaf.port)
        && r > 0
        && l > 0
        && r != l
    {
        return true;
    }
    if let Some(r) = root.source_namespace.as_deref().filter(|n| !n.is_empty())
        && leaf.source_namespace.as_deref() != Some(r)
    {
        return true;
    }
    if leaf
        .source_labels
        .iter()
        .any(|(k, v)| root.source_labels.get(k).is_some_and(|rv| rv != v))
    {
        return true;
    }
    !root.gateways.is_empty()
        && !leaf.gateways.is_empty()
        && leaf.gateways.iter().any(|g| !root.gateways.contains(g))
}

/// `stringMatchConflict`: only when both sides set the field; a regex on either side
/// conflicts with anything, an exact root needs the same exact leaf, a prefix root needs a
/// leaf within the prefix.
fn string_conflict(root: Option<&StringMatch>, leaf: Option<&StringMatch>) -> bool {
    let (Some(root), Some(leaf)) = (root, leaf) else {
        return false;
    };
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    let any = |m: &StringMatch| set(&m.regex) || set(&m.prefix) || set(&m.exact);
    if (set(&root.regex) && any(leaf)) || (set(&leaf.regex) && any(root)) {
        return true;
    }
    if let Some(exact) = root.exact.as_deref().filter(|e| !e.is_empty()) {
        return set(&leaf.prefix) || leaf.exact.as_deref() != Some(exact);
    }
    if let Some(prefix) = root.prefix.as_deref().filter(|p| !p.is_empty()) {
        if let Some(p) = leaf.prefix.as_deref().filter(|p| !p.is_empty()) {
            return !p.starts_with(prefix);
        }
        if let Some(e) = leaf.exact.as_deref().filter(|e| !e.is_empty()) {
            return !e.starts_with(prefix);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(yaml: &str) -> StringMatch {
        yaml_serde::from_str(yaml).expect("valid test YAML")
    }

    #[test]
    fn string_conflicts_follow_istio() {
        // virtualservice.go stringMatchConflict.
        let c = |r: &str, l: &str| string_conflict(Some(&sm(r)), Some(&sm(l)));
        assert!(!c("prefix: /a", "prefix: /a/b"));
        assert!(c("prefix: /a/b", "prefix: /a"));
        assert!(!c("prefix: /a", "exact: /a/x"));
        assert!(!c("exact: /a", "exact: /a"));
        assert!(c("exact: /a", "exact: /b"));
        assert!(c("exact: /a", "prefix: /a"));
        assert!(c("regex: .*", "prefix: /a"));
        assert!(c("prefix: /a", "regex: /a.*"));
        assert!(!string_conflict(None, Some(&sm("exact: /x"))));
    }

    #[test]
    fn matches_merge_as_a_cross_product_of_compatible_blocks() {
        let block =
            |y: &str| -> HttpMatchRequest { yaml_serde::from_str(y).expect("valid test YAML") };
        let root = vec![block("uri: {prefix: /api}\nheaders: {x-a: {exact: '1'}}")];
        let leaf = vec![
            block("uri: {prefix: /api/v2}"),
            block("uri: {prefix: /api/v3}"),
        ];
        let merged = merge_matches(&root, &leaf).expect("compatible");
        assert_eq!(merged.len(), 2);
        assert_eq!(
            merged[0].uri.as_ref().and_then(|u| u.prefix.as_deref()),
            Some("/api/v2")
        );
        assert!(
            merged[0].headers.contains_key("x-a"),
            "root fields fill the gaps"
        );
        let bad = vec![block("uri: {prefix: /other}")];
        assert!(merge_matches(&root, &bad).is_none());
    }
}
