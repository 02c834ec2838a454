//! Compiled request matchers: Istio's `HTTPMatchRequest` turned into something that tests a
//! [`RequestHead`] without allocating per request where it can be avoided.

use std::borrow::Cow;
use std::sync::Arc;

use super::RequestHead;
use crate::config::matcher::{MatchField, MatcherError, StringMatcher};
use crate::config::model::{HttpMatchRequest, StringMatch};

/// One compiled match block: every condition must hold (AND).
#[derive(Debug, Clone)]
pub struct MatchBlock {
    uri: Option<StringMatcher>,
    ignore_uri_case: bool,
    scheme: Option<StringMatcher>,
    method: Option<StringMatcher>,
    authority: Option<StringMatcher>,
    headers: Vec<(String, StringMatcher)>,
    without_headers: Vec<(String, StringMatcher)>,
    query_params: Vec<(String, StringMatcher)>,
    port: Option<u32>,
    summary: Arc<str>,
}

impl MatchBlock {
    /// Compiles one `HTTPMatchRequest`.
    pub fn compile(m: &HttpMatchRequest) -> Result<Self, MatcherError> {
        let opt = |sm: &Option<StringMatch>, kind: MatchField, field: &str| {
            sm.as_ref()
                .map(|s| StringMatcher::compile(s, kind, field))
                .transpose()
        };
        let map =
            |entries: &indexmap::IndexMap<String, StringMatch>, kind: MatchField, field: &str| {
                entries
                    .iter()
                    .map(|(k, v)| {
                        // Header names are case-insensitive on the wire; http::HeaderMap keys
                        // are lowercase, so compare lowercase, as Envoy does (uppercase keys get an info).
                        let key = if field == "queryParams" {
                            k.clone()
                        } else {
                            k.to_ascii_lowercase()
                        };
                        StringMatcher::compile(v, kind, &format!("{field}.{k}")).map(|m| (key, m))
                    })
                    .collect::<Result<Vec<_>, _>>()
            };
        let mut block = Self {
            uri: opt(&m.uri, MatchField::Uri, "uri")?,
            ignore_uri_case: m.ignore_uri_case.unwrap_or(false),
            scheme: opt(&m.scheme, MatchField::Scheme, "scheme")?,
            method: opt(&m.method, MatchField::Method, "method")?,
            authority: opt(&m.authority, MatchField::Authority, "authority")?,
            headers: map(&m.headers, MatchField::Header, "headers")?,
            without_headers: map(
                &m.without_headers,
                MatchField::WithoutHeader,
                "withoutHeaders",
            )?,
            query_params: map(&m.query_params, MatchField::QueryParam, "queryParams")?,
            port: m.port,
            summary: Arc::from(""),
        };
        block.summary = Arc::from(block.describe());
        Ok(block)
    }

    /// Whether the request satisfies every condition of the block.
    pub fn matches(&self, req: &RequestHead<'_>) -> bool {
        let path = req
            .path_and_query
            .split_once('?')
            .map_or(req.path_and_query, |(p, _)| p);
        let query = req.path_and_query.split_once('?').map(|(_, q)| q);
        self.uri
            .as_ref()
            .is_none_or(|m| m.matches(path, self.ignore_uri_case))
            && self
                .scheme
                .as_ref()
                .is_none_or(|m| m.matches(req.scheme, false))
            && self
                .method
                .as_ref()
                .is_none_or(|m| m.matches(req.method, false))
            && self
                .authority
                .as_ref()
                .is_none_or(|m| m.matches(req.authority, false))
            && self.port.is_none_or(|p| p == u32::from(req.port))
            && self.headers.iter().all(|(name, m)| {
                header_value(req.headers, name).is_some_and(|v| m.matches(&v, false))
            })
            && self.without_headers.iter().all(|(name, m)| {
                // Istio sets treat_missing_header_as_empty on an inverted value match: an
                // absent header is tested as "" (a presence match is just inverted).
                match header_value(req.headers, name) {
                    Some(v) => !m.matches(&v, false),
                    None => matches!(m, StringMatcher::Present) || !m.matches("", false),
                }
            })
            && self
                .query_params
                .iter()
                .all(|(name, m)| query_value(query, name).is_some_and(|v| m.matches(v, false)))
    }

    /// How many bytes of `path` (without its query) the block's uri match covers: what
    /// Envoy's `prefix_rewrite` replaces. The configured prefix or exact path, the whole
    /// path for a regex, and `/` when the block has no uri match (Istio then matches
    /// prefix `/`).
    pub fn matched_len(&self, path: &str) -> usize {
        match &self.uri {
            Some(StringMatcher::Exact(e)) => e.len(),
            Some(StringMatcher::Prefix(p)) => p.len(),
            Some(StringMatcher::Regex { .. }) => path.len(),
            Some(StringMatcher::Present) | None => 1,
        }
    }

    /// The block with `summary` as its text: a Gateway API match says itself in its own
    /// words (`path prefix /api`) rather than in the blocks it is written as.
    #[must_use]
    pub fn with_summary(mut self, summary: String) -> Self {
        self.summary = Arc::from(summary);
        self
    }

    /// Short human text of the block, e.g. `uri prefix /api and header x-user = jason`.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// The summary, shared: what a request's route trace holds.
    pub fn shared_summary(&self) -> &Arc<str> {
        &self.summary
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = &self.uri {
            let mut s = m.summary("uri");
            if self.ignore_uri_case {
                s.push_str(" (ignore case)");
            }
            parts.push(s);
        }
        for (subject, m) in [
            ("scheme", &self.scheme),
            ("method", &self.method),
            ("authority", &self.authority),
        ] {
            if let Some(m) = m {
                parts.push(m.summary(subject));
            }
        }
        for (name, m) in &self.headers {
            parts.push(m.summary(&format!("header {name}")));
        }
        for (name, m) in &self.without_headers {
            parts.push(format!("not {}", m.summary(&format!("header {name}"))));
        }
        for (name, m) in &self.query_params {
            parts.push(m.summary(&format!("query {name}")));
        }
        if let Some(p) = self.port {
            parts.push(format!("port {p}"));
        }
        if parts.is_empty() {
            "any request".to_owned()
        } else {
            parts.join(" and ")
        }
    }
}

/// The header's value; several values are joined with `,` as Envoy does before matching.
/// Borrows in the common case of one UTF-8 value, so matching does not allocate.
fn header_value<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<Cow<'h, str>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let mut joined = String::from_utf8_lossy(first.as_bytes());
    for v in values {
        let s = joined.to_mut();
        s.push(',');
        s.push_str(&String::from_utf8_lossy(v.as_bytes()));
    }
    Some(joined)
}

/// The first value of query parameter `name` (`?a` alone gives `""`), not percent-decoded,
/// as Envoy compares it.
fn query_value<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn head<'a>(path: &'a str, headers: &'a HeaderMap) -> RequestHead<'a> {
        RequestHead {
            method: "GET",
            scheme: "http",
            host: "reviews",
            authority: "reviews",
            path_and_query: path,
            headers,
            port: 9080,
        }
    }

    fn block(yaml: &str) -> MatchBlock {
        let m: HttpMatchRequest = yaml_serde::from_str(yaml).unwrap();
        MatchBlock::compile(&m).unwrap()
    }

    #[test]
    fn uri_ignores_query_and_honours_ignore_case() {
        let h = HeaderMap::new();
        let b = block("uri: {exact: /productpage}");
        assert!(b.matches(&head("/productpage?u=1", &h)));
        assert!(!b.matches(&head("/ProductPage", &h)));
        let b = block("uri: {prefix: /api}\nignoreUriCase: true");
        assert!(b.matches(&head("/API/reviews", &h)));
        assert!(!b.matches(&head("/other", &h)));
        assert_eq!(b.summary(), "uri prefix /api (ignore case)");
        // ignoreUriCase does not apply to regex (Envoy ignores it there too).
        let b = block("uri: {regex: /api/.*}\nignoreUriCase: true");
        assert!(!b.matches(&head("/API/x", &h)));
        assert!(b.matches(&head("/api/x", &h)));
    }

    #[test]
    fn scheme_method_authority_port() {
        let h = HeaderMap::new();
        let b = block(
            "scheme: {exact: http}\nmethod: {regex: GET|HEAD}\nauthority: {prefix: rev}\nport: 9080",
        );
        assert!(b.matches(&head("/", &h)));
        let mut req = head("/", &h);
        req.method = "POST";
        assert!(!b.matches(&req));
        let mut req = head("/", &h);
        req.scheme = "https";
        assert!(!b.matches(&req));
        let mut req = head("/", &h);
        req.authority = "ratings";
        assert!(!b.matches(&req));
        let mut req = head("/", &h);
        req.port = 80;
        assert!(!b.matches(&req));
        assert_eq!(
            b.summary(),
            "scheme = http and method ~ GET|HEAD and authority prefix rev and port 9080"
        );
    }

    #[test]
    fn headers_presence_and_negation() {
        let b = block("headers:\n  user-agent: {regex: '.*testing.*'}\n  x-debug: {}");
        assert_eq!(
            b.summary(),
            "header user-agent ~ .*testing.* and header x-debug present"
        );
        let mut h = HeaderMap::new();
        h.insert("user-agent", "load-testing/1".parse().unwrap());
        assert!(!b.matches(&head("/", &h)), "x-debug missing");
        h.insert("x-debug", "".parse().unwrap());
        assert!(b.matches(&head("/", &h)));
        h.insert("user-agent", "curl/8".parse().unwrap());
        assert!(!b.matches(&head("/", &h)));

        let b = block("withoutHeaders:\n  x-canary: {exact: 'true'}");
        let mut h = HeaderMap::new();
        assert!(b.matches(&head("/", &h)), "absent header is not excluded");
        h.insert("x-canary", "false".parse().unwrap());
        assert!(b.matches(&head("/", &h)));
        h.insert("x-canary", "true".parse().unwrap());
        assert!(!b.matches(&head("/", &h)));

        let b = block("withoutHeaders:\n  x-canary: {}");
        let mut h = HeaderMap::new();
        assert!(b.matches(&head("/", &h)));
        h.insert("x-canary", "anything".parse().unwrap());
        assert!(!b.matches(&head("/", &h)));
        assert_eq!(b.summary(), "not header x-canary present");
    }

    #[test]
    fn uppercase_header_keys_still_match_lowercase_names() {
        let b = block("headers:\n  End-User: {exact: jason}");
        let mut h = HeaderMap::new();
        h.insert("end-user", "jason".parse().unwrap());
        assert!(b.matches(&head("/", &h)));
    }

    #[test]
    fn repeated_headers_are_joined() {
        let b = block("headers:\n  x-tag: {exact: 'a,b'}");
        let mut h = HeaderMap::new();
        h.append("x-tag", "a".parse().unwrap());
        h.append("x-tag", "b".parse().unwrap());
        assert!(b.matches(&head("/", &h)));
    }

    #[test]
    fn query_params() {
        let h = HeaderMap::new();
        let b = block("queryParams:\n  user: {exact: jason}\n  debug: {}");
        assert!(b.matches(&head("/p?user=jason&debug", &h)));
        assert!(b.matches(&head("/p?debug=1&user=jason", &h)));
        assert!(!b.matches(&head("/p?user=jason", &h)));
        assert!(!b.matches(&head("/p?user=jasonx&debug", &h)));
        assert!(!b.matches(&head("/p", &h)));
        let b = block("queryParams:\n  v: {regex: '[0-9]+'}");
        assert!(b.matches(&head("/p?v=42", &h)));
        assert!(!b.matches(&head("/p?v=42a", &h)));
        assert_eq!(b.summary(), "query v ~ [0-9]+");
    }

    #[test]
    fn empty_block_matches_everything() {
        let h = HeaderMap::new();
        let b = block("{}");
        assert!(b.matches(&head("/anything", &h)));
        assert_eq!(b.summary(), "any request");
    }
}
