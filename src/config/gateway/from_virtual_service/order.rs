//! Route order: Gateway API precedence against a VirtualService's first-match order, and
//! the routes Istio writes per match (or per half of a segment-wise prefix) joined again.

use super::Converter;
use crate::config::gateway::model::{HttpRouteMatch, HttpRouteRule};
use crate::config::lines::push_index;
use crate::config::model::{HttpMatchRequest, HttpRoute};

impl Converter<'_> {
    /// A route order Gateway API precedence would change, for routes that can both match:
    /// `rules` holds each rule with the index of the VirtualService route it came from.
    pub(super) fn order(&mut self, rules: &[(usize, HttpRouteRule)]) {
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
    use crate::config::gateway::model::PathMatchType::{Exact, PathPrefix, RegularExpression};
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
        crate::config::gateway::model::PathMatchType::Exact => 3,
        crate::config::gateway::model::PathMatchType::PathPrefix => 2,
        crate::config::gateway::model::PathMatchType::RegularExpression => 1,
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
pub(super) fn merge_split_rules(rules: Vec<(usize, HttpRouteRule)>) -> Vec<(usize, HttpRouteRule)> {
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
pub(super) fn rejoin_prefix_rewrites(routes: &[HttpRoute]) -> Vec<(usize, HttpRoute)> {
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

pub(super) fn without_uri(m: &HttpMatchRequest) -> HttpMatchRequest {
    HttpMatchRequest {
        uri: None,
        ..m.clone()
    }
}
