//! Response headers compared by name, every value of a repeated header in order.

use super::{DiffKind, HeaderDifference};
use crate::analysis::ignore::IgnoreRules;

/// Header values as display strings.
fn header_values(map: &http::HeaderMap, name: &http::HeaderName) -> Vec<String> {
    map.get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

/// Headers that only describe framing of the connection, never content.
const FRAMING_HEADERS: &[&str] = &["transfer-encoding", "connection", "keep-alive"];

pub(super) fn diff_headers(
    primary: &http::HeaderMap,
    shadow: &http::HeaderMap,
    rules: &IgnoreRules,
    bodies_differ: bool,
) -> Vec<HeaderDifference> {
    // Most often both sides send the same headers in the same order: one pass, no lookups.
    if primary.len() == shadow.len()
        && primary
            .iter()
            .zip(shadow.iter())
            .all(|((pn, pv), (sn, sv))| pn == sn && pv.as_bytes() == sv.as_bytes())
    {
        return Vec::new();
    }
    // Nearly every header is the same on both sides: compare the values in place and
    // build strings only for the ones that differ (this runs for every mirrored request).
    let same = |name: &http::HeaderName| {
        primary
            .get_all(name)
            .iter()
            .map(http::HeaderValue::as_bytes)
            .eq(shadow.get_all(name).iter().map(http::HeaderValue::as_bytes))
    };
    let mut out = Vec::new();
    let differing = primary
        .keys()
        .filter(|name| !same(name))
        .chain(shadow.keys().filter(|name| !primary.contains_key(*name)));
    for name in differing {
        let p = header_values(primary, name);
        let s = header_values(shadow, name);
        let kind = match (p.is_empty(), s.is_empty()) {
            (true, _) => DiffKind::Added,
            (_, true) => DiffKind::Removed,
            _ => DiffKind::Changed,
        };
        let n = name.as_str();
        // content-length follows the body (the body diff already reports it) and is absent
        // under chunked framing; framing headers say nothing about the answer.
        let implied = (n == "content-length" && (bodies_differ || kind != DiffKind::Changed))
            || FRAMING_HEADERS.contains(&n);
        out.push(HeaderDifference {
            name: n.to_owned(),
            kind,
            primary: p,
            shadow: s,
            ignored: implied || rules.ignores_header(n),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
