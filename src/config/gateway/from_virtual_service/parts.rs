//! The parts of a VirtualService route in Gateway API terms: matches, rewrites, redirects,
//! retries; each refuses what it cannot say exactly, as a limitation.

use super::order::without_uri;
use super::{Converter, cluster_service, gateway_duration, reduce, single_prefix};
use crate::config::gateway::model::{
    BackendObjectReference, Fraction, HttpPathMatch, HttpRouteFilter, HttpRouteMatch,
    HttpRouteRetry, HttpRouteRule, HttpRouteTimeouts, PathModifier, RequestMirrorFilter,
    RequestRedirectFilter, UrlRewriteFilter, ValueMatch,
};
use crate::config::hosts::fqdn;
use crate::config::lines::{push_index, push_key};
use crate::config::model::{Destination, HttpMatchRequest, OrderedMap, StringMatch};

impl Converter<'_> {
    pub(super) fn matches(
        &mut self,
        blocks: &[HttpMatchRequest],
        base: &str,
    ) -> Vec<HttpRouteMatch> {
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

    pub(super) fn path(
        &mut self,
        u: &StringMatch,
        ignore_case: bool,
        at: &str,
    ) -> Option<HttpPathMatch> {
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

    pub(super) fn block(
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

    pub(super) fn values(&mut self, map: &OrderedMap<StringMatch>, at: &str) -> Vec<ValueMatch> {
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

    pub(super) fn backend(&mut self, d: &Destination, at: &str) -> Option<BackendObjectReference> {
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

    pub(super) fn mirror(
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

    pub(super) fn rewrite(
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
                    (None, Some((crate::config::gateway::model::PathMatchType::Exact, _)))
                        if matches.len() == 1 =>
                    {
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

    pub(super) fn redirect(
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

    pub(super) fn retry(
        &mut self,
        r: &crate::config::model::HttpRetry,
        rule: &mut HttpRouteRule,
        base: &str,
    ) {
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
}
