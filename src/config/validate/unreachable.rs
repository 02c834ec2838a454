//! Routes that can never match and match blocks that never decide, as Istio's validation
//! finds them (istio/istio `analyzeUnreachableHTTPRules` and `coveredValidation`, reported by
//! `istioctl analyze` as IST0130 and IST0131), plus the lab's advice about a route after a
//! match block without conditions, which Istio does not flag.

use super::super::model::{HttpMatchRequest, HttpRoute, StringMatch, VirtualService};
use super::super::{Resource, codes};
use super::Checker;

/// A route as Istio names it in these messages: `"name"` or `#index`.
fn rule_name(route: &HttpRoute, i: usize) -> String {
    route
        .name
        .as_ref()
        .map_or_else(|| format!("#{i}"), |n| format!("\"{n}\""))
}

fn match_name(m: &HttpMatchRequest, j: usize) -> String {
    m.name
        .as_ref()
        .map_or_else(|| format!("#{j}"), |n| format!("\"{n}\""))
}

/// A match block as Istio compares blocks: without its name, unset and zero alike.
fn comparable(m: &HttpMatchRequest) -> HttpMatchRequest {
    let mut m = m.clone();
    m.name = None;
    m.ignore_uri_case = m.ignore_uri_case.filter(|b| *b);
    m.port = m.port.filter(|p| *p != 0);
    m.source_namespace = m.source_namespace.filter(|s| !s.is_empty());
    m.stat_prefix = m.stat_prefix.filter(|s| !s.is_empty());
    m
}

/// What Istio's overlap check keeps of a block with a `uri` prefix.
struct PrefixBlock {
    rule: String,
    block: String,
    prefix: String,
    port: u32,
    method: String,
    authority: String,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    without: Vec<(String, String)>,
}

/// `exact:v`, `prefix:v`, or nothing for a regex or presence match.
fn exact_or_prefix(sm: Option<&StringMatch>) -> String {
    match sm {
        Some(StringMatch { exact: Some(e), .. }) if !e.is_empty() => format!("exact:{e}"),
        Some(StringMatch {
            prefix: Some(p), ..
        }) if !p.is_empty() => format!("prefix:{p}"),
        _ => String::new(),
    }
}

fn prefix_block(
    route: &HttpRoute,
    i: usize,
    m: &HttpMatchRequest,
    j: usize,
) -> Option<PrefixBlock> {
    let prefix = m.uri.as_ref()?.prefix.clone().filter(|p| !p.is_empty())?;
    let mut method = exact_or_prefix(m.method.as_ref());
    if method.is_empty() {
        // Istio's check assumes GET when the block names no method.
        method = "exact:GET".to_owned();
    }
    let pairs = |map: &indexmap::IndexMap<String, StringMatch>| {
        map.iter()
            .map(|(k, v)| (k.clone(), exact_or_prefix(Some(v))))
            .collect()
    };
    Some(PrefixBlock {
        rule: rule_name(route, i),
        block: match_name(m, j),
        prefix,
        port: m.port.unwrap_or(0),
        method,
        authority: exact_or_prefix(m.authority.as_ref()),
        headers: pairs(&m.headers),
        query: pairs(&m.query_params),
        without: pairs(&m.without_headers),
    })
}

/// Istio's `coveredValidation`: whether the earlier block `a` covers the later `b`.
fn covers(a: &PrefixBlock, b: &PrefixBlock) -> bool {
    let value_ok = |va: &str, vb: &str| va == vb || va.starts_with(vb);
    let maps_ok = |ma: &[(String, String)], mb: &[(String, String)]| {
        ma.len() == mb.len()
            && ma.iter().all(|(k, va)| {
                mb.iter()
                    .find(|(kb, _)| kb == k)
                    .is_some_and(|(_, vb)| value_ok(va, vb))
            })
    };
    b.prefix.starts_with(&a.prefix)
        && a.port == b.port
        && value_ok(&a.method, &b.method)
        && value_ok(&a.authority, &b.authority)
        && maps_ok(&a.headers, &b.headers)
        && maps_ok(&a.query, &b.query)
        && maps_ok(&a.without, &b.without)
}

/// Whether a block has no condition at all, so it matches every request.
fn unconditional(m: &HttpMatchRequest) -> bool {
    m.uri.is_none()
        && m.scheme.is_none()
        && m.method.is_none()
        && m.authority.is_none()
        && m.headers.is_empty()
        && m.without_headers.is_empty()
        && m.query_params.is_empty()
        && m.port.is_none_or(|p| p == 0)
        && m.source_labels.is_empty()
        && m.gateways.is_empty()
        && m.source_namespace.as_deref().is_none_or(str::is_empty)
}

impl Checker<'_> {
    pub(super) fn unreachable_rules(&mut self, r: &Resource, vs: &VirtualService) {
        let routes = &vs.spec.http;
        let mut seen: Vec<(HttpMatchRequest, usize)> = Vec::new();
        let mut without_match: Option<usize> = None;
        let mut match_everything: Option<usize> = None;
        let mut prefix_blocks = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let base = format!("spec.http[{i}]");
            if route.matches.is_empty() {
                if without_match.is_some() {
                    self.unreachable(r, &base, route, i, "only the last rule can have no matches");
                } else if let Some(earlier) = match_everything {
                    self.after_match_everything(r, &base, routes, i, earlier);
                }
                without_match = Some(i);
                continue;
            }
            if without_match.is_some() {
                self.unreachable(r, &base, route, i, "route without matches defined before");
                continue;
            }
            let mut duplicates = 0;
            for (j, m) in route.matches.iter().enumerate() {
                let key = comparable(m);
                if let Some((_, earlier)) = seen.iter().find(|(k, _)| *k == key) {
                    let earlier = *earlier;
                    duplicates += 1;
                    self.info(
                        codes::INEFFECTIVE_MATCH,
                        r,
                        &format!("{base}.match[{j}]"),
                        format!(
                            "VirtualService rule {} match {} is not used (duplicate/overlapping match in rule {})",
                            rule_name(route, i),
                            match_name(m, j),
                            rule_name(&routes[earlier], earlier)
                        ),
                        Some("remove the duplicate block, or make it differ".into()),
                    );
                    continue;
                }
                seen.push((key, i));
                prefix_blocks.extend(prefix_block(route, i, m, j).map(|b| (b, i, j)));
            }
            if duplicates == route.matches.len() {
                self.unreachable(r, &base, route, i, "all matches used by prior rules");
            } else if let Some(earlier) = match_everything {
                self.after_match_everything(r, &base, routes, i, earlier);
            }
            if match_everything.is_none() && route.matches.iter().any(unconditional) {
                match_everything = Some(i);
            }
        }
        self.overlapping_prefixes(r, &prefix_blocks);
    }

    /// The lab's advice (ML0209): Istio does not report a route after a match block without
    /// conditions, yet that block takes every request.
    fn after_match_everything(
        &mut self,
        r: &Resource,
        base: &str,
        routes: &[HttpRoute],
        i: usize,
        earlier: usize,
    ) {
        self.warning(
            codes::AFTER_MATCH_EVERYTHING,
            r,
            base,
            format!(
                "route {} can never match: a match block of route {} has no condition, so that route takes every request",
                rule_name(&routes[i], i),
                rule_name(&routes[earlier], earlier)
            ),
            Some(format!("give the block of route #{earlier} a condition, or move that route to the end of `http`")),
        );
    }

    fn unreachable(&mut self, r: &Resource, base: &str, route: &HttpRoute, i: usize, reason: &str) {
        self.warning(
            codes::UNREACHABLE_RULE,
            r,
            base,
            format!(
                "VirtualService rule {} not used ({reason})",
                rule_name(route, i)
            ),
            Some("routes are tried in order and the first match wins: move this route before the one that takes its requests, or remove it".into()),
        );
    }

    /// A prefix block covered by an earlier one (Istio's overlap check, IST0131).
    fn overlapping_prefixes(&mut self, r: &Resource, blocks: &[(PrefixBlock, usize, usize)]) {
        for (k, (a, _, _)) in blocks.iter().enumerate() {
            for (b, i, j) in blocks.iter().skip(k + 1) {
                if a.prefix != b.prefix && covers(a, b) {
                    self.info(
                        codes::INEFFECTIVE_MATCH,
                        r,
                        &format!("spec.http[{i}].match[{j}]"),
                        format!(
                            "VirtualService rule {} match {} of prefix {} is not used (duplicate/overlapping match in rule {} of prefix {} on {})",
                            b.rule, b.block, b.prefix, a.block, a.prefix, a.rule
                        ),
                        Some("an earlier block with a shorter prefix takes these requests first; order the longer prefix first".into()),
                    );
                }
            }
        }
    }
}
