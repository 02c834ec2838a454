//! Match blocks (istio/istio `validateHTTPRouteMatchRequest`): string matches through the
//! one matcher builder the route table uses, header names, the port, source labels,
//! gateways and the source namespace.

use super::super::lines::push_key;
use super::super::matcher::{MatchField, MatcherError, StringMatcher};
use super::super::model::{HttpMatchRequest, StringMatch};
use super::super::names::{is_dns1123_label, validate_match_header_name};
use super::super::{Resource, codes};
use super::Checker;

impl Checker<'_> {
    pub(super) fn match_block(&mut self, r: &Resource, base: &str, m: &HttpMatchRequest) {
        for (name, kind, sm) in [
            ("uri", MatchField::Uri, &m.uri),
            ("scheme", MatchField::Scheme, &m.scheme),
            ("method", MatchField::Method, &m.method),
            ("authority", MatchField::Authority, &m.authority),
        ] {
            if let Some(sm) = sm {
                self.string_match(r, &format!("{base}.{name}"), kind, sm);
            }
        }
        for (map_name, kind, map) in [
            ("headers", MatchField::Header, &m.headers),
            (
                "withoutHeaders",
                MatchField::WithoutHeader,
                &m.without_headers,
            ),
        ] {
            for (key, sm) in map {
                let field = push_key(&format!("{base}.{map_name}"), key);
                if let Err(e) = validate_match_header_name(key) {
                    self.refuse(codes::INVALID_HEADER, r, &field, e.to_string());
                } else if key.chars().any(|c| c.is_ascii_uppercase()) {
                    self.info(
                        codes::UPPERCASE_HEADER,
                        r,
                        &field,
                        format!("header name `{key}` has uppercase letters; Istio accepts it and Envoy compares header names without regard to case, so it matches `{}`", key.to_ascii_lowercase()),
                        Some(format!("write `{}`, as HTTP/2 sends header names", key.to_ascii_lowercase())),
                    );
                }
                self.string_match(r, &field, kind, sm);
            }
        }
        for (key, sm) in &m.query_params {
            let field = push_key(&format!("{base}.queryParams"), key);
            self.string_match(r, &field, MatchField::QueryParam, sm);
        }
        if let Some(p) = m.port
            && p > 65535
        {
            self.error(
                codes::PORT_RANGE,
                r,
                &format!("{base}.port"),
                format!("port {p} is outside 1..65535"),
                None,
            );
        }
        self.labels(
            r,
            &format!("{base}.sourceLabels"),
            super::pairs(&m.source_labels),
        );
        self.gateway_names(r, &format!("{base}.gateways"), &m.gateways);
        if let Some(ns) = m.source_namespace.as_deref().filter(|ns| !ns.is_empty())
            && !is_dns1123_label(ns)
        {
            self.refuse(
                codes::INVALID_NAME,
                r,
                &format!("{base}.sourceNamespace"),
                format!("`{ns}` is not a valid namespace name (a DNS label)"),
            );
        }
    }

    fn string_match(&mut self, r: &Resource, field: &str, kind: MatchField, sm: &StringMatch) {
        if let Err(e) = StringMatcher::compile(sm, kind, field) {
            self.matcher_error(r, e);
        }
    }

    /// The diagnostic for a matcher the builder refuses.
    pub(super) fn matcher_error(&mut self, r: &Resource, e: MatcherError) {
        match e {
            MatcherError::Ambiguous { field } => self.error(
                codes::INVALID_MATCH,
                r,
                &field,
                "sets more than one of exact, prefix and regex; Istio allows exactly one".into(),
                Some("keep one; to match several values use a regex such as `a|b`".into()),
            ),
            MatcherError::EmptyPrefix { field } => self.error(
                codes::INVALID_MATCH,
                r,
                &field,
                "prefix string match should not be empty; Istio refuses an empty prefix here".into(),
                Some("drop the match to accept every value, or write `{}` to require the header or parameter to be present".into()),
            ),
            MatcherError::EmptyRegex { field } => self.error(
                codes::INVALID_MATCH,
                r,
                &field,
                "regex string match should not be empty; Istio refuses an empty regex".into(),
                Some("write `.*` to match any value".into()),
            ),
            MatcherError::EmptyOrigin { field } => self.error(
                codes::INVALID_MATCH,
                r,
                &field,
                "a CORS origin must be an exact, prefix or regex value that is not empty".into(),
                Some("write e.g. `exact: https://example.com`".into()),
            ),
            MatcherError::IncompleteRegexRewrite { field } => self.refuse(
                codes::INVALID_REWRITE,
                r,
                &field,
                "`uriRegexRewrite` needs both `match` and `rewrite`; Istio refuses one without the other",
            ),
            MatcherError::InvalidRegex {
                field,
                regex,
                reason,
            } => self.regex_error(r, &field, &regex, &reason),
        }
    }
}
