//! The matches and filters of a Gateway API route as Istio's `create*Match` and
//! `create*Filter` write them in VirtualService terms.

use regex;

use crate::config::gateway::GatewayApiObject;
use crate::config::gateway::model::{
    CorsFilter, GrpcRouteMatch, HttpRouteMatch, PathMatchType, RequestRedirectFilter,
    UrlRewriteFilter, ValueMatch,
};
use crate::config::model::{
    CorsPolicy, HttpMatchRequest, HttpRedirect, HttpRewrite, OrderedMap, RegexRewrite, StringMatch,
};

/// Every match of a route object as Istio writes it (rule, match index, match), whatever
/// its parents: what `check` holds to RE2.
pub fn route_matches(object: &GatewayApiObject) -> Vec<(usize, Option<usize>, HttpMatchRequest)> {
    match object {
        GatewayApiObject::HttpRoute(r) => r
            .spec
            .rules
            .iter()
            .enumerate()
            .flat_map(|(i, rule)| {
                rule.effective_matches()
                    .iter()
                    .enumerate()
                    .map(|(j, m)| (i, Some(j), http_match(m)))
                    .collect::<Vec<_>>()
            })
            .collect(),
        GatewayApiObject::GrpcRoute(r) => r
            .spec
            .rules
            .iter()
            .enumerate()
            .flat_map(|(i, rule)| {
                rule.matches
                    .iter()
                    .enumerate()
                    .map(|(j, m)| (i, Some(j), grpc_match(m)))
                    .collect::<Vec<_>>()
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `createURIMatch`, `createHeadersMatch`, `createQueryParamsMatch`, `createMethodMatch`.
pub(super) fn http_match(m: &HttpRouteMatch) -> HttpMatchRequest {
    let (kind, value) = m.path();
    let uri = match kind {
        PathMatchType::Exact => StringMatch {
            exact: Some(value.to_owned()),
            ..StringMatch::default()
        },
        PathMatchType::RegularExpression => StringMatch {
            regex: Some(value.to_owned()),
            ..StringMatch::default()
        },
        PathMatchType::PathPrefix => {
            // "When specified, a trailing `/` is ignored."
            let p = if value == "/" {
                value
            } else {
                value.strip_suffix('/').unwrap_or(value)
            };
            StringMatch {
                prefix: Some(p.to_owned()),
                ..StringMatch::default()
            }
        }
    };
    HttpMatchRequest {
        uri: Some(uri),
        headers: value_matches(&m.headers),
        query_params: value_matches(&m.query_params),
        method: m.method.as_ref().map(|method| StringMatch {
            exact: Some(method.clone()),
            ..StringMatch::default()
        }),
        ..HttpMatchRequest::default()
    }
}

fn value_matches(list: &[ValueMatch]) -> OrderedMap<StringMatch> {
    let mut out = OrderedMap::new();
    for v in list {
        let m = if v.is_regex() {
            StringMatch {
                regex: Some(v.value.clone()),
                ..StringMatch::default()
            }
        } else {
            StringMatch {
                exact: Some(v.value.clone()),
                ..StringMatch::default()
            }
        };
        out.insert(v.name.clone(), m);
    }
    out
}

/// `createGRPCURIMatch`: gRPC's `/Service/Method` as a path match.
pub(super) fn grpc_match(m: &GrpcRouteMatch) -> HttpMatchRequest {
    let uri = m.method.as_ref().and_then(|method| {
        let regex = method.match_type.as_deref() == Some("RegularExpression");
        let s = |text: String| StringMatch {
            exact: Some(text),
            ..StringMatch::default()
        };
        let p = |text: String| StringMatch {
            prefix: Some(text),
            ..StringMatch::default()
        };
        let r = |text: String| StringMatch {
            regex: Some(text),
            ..StringMatch::default()
        };
        match (method.service.as_deref(), method.method.as_deref(), regex) {
            (None, None, _) => None,
            (Some(svc), None, false) => Some(p(format!("/{svc}/"))),
            (None, Some(name), _) => Some(r(format!("/[^/]+/{name}"))),
            (Some(svc), Some(name), false) => Some(s(format!("/{svc}/{name}"))),
            (Some(svc), None, true) => Some(r(format!("/{svc}/.+"))),
            (Some(svc), Some(name), true) => Some(r(format!("/{svc}/{name}"))),
        }
    });
    HttpMatchRequest {
        uri,
        headers: value_matches(&m.headers),
        ..HttpMatchRequest::default()
    }
}

/// `createRedirectFilter`: the CRD's 302 default; without a port, the request's port (or
/// the scheme's default when the scheme changes), as Gateway API says and Istio does.
pub(super) fn redirect(f: &RequestRedirectFilter) -> HttpRedirect {
    let (port, derive_port) = match (f.port, &f.scheme) {
        (Some(p), _) => (Some(p), None),
        (None, Some(_)) => (None, Some("FROM_PROTOCOL_DEFAULT".to_owned())),
        (None, None) => (None, Some("FROM_REQUEST_PORT".to_owned())),
    };
    let (uri, prefix_rewrite) = match &f.path {
        Some(p) if p.modifier_type == "ReplaceFullPath" => (p.replace_full_path.clone(), None),
        Some(p) => (
            None,
            p.replace_prefix_match.clone().filter(|x| !x.is_empty()),
        ),
        None => (None, None),
    };
    HttpRedirect {
        uri,
        authority: f.hostname.clone(),
        port,
        derive_port,
        scheme: f.scheme.clone(),
        redirect_code: Some(f.status_code.unwrap_or(302)),
        prefix_rewrite,
    }
}

/// `createRewriteFilter`: ReplacePrefixMatch without its trailing `/` (`/` when nothing is
/// left), ReplaceFullPath as a regex rewrite of the whole path, hostname as the authority.
pub(super) fn rewrite(f: &UrlRewriteFilter) -> Option<HttpRewrite> {
    let mut out = HttpRewrite {
        authority: f.hostname.clone(),
        ..HttpRewrite::default()
    };
    if let Some(p) = &f.path {
        if p.modifier_type == "ReplacePrefixMatch" {
            let uri = p.replace_prefix_match.as_deref().unwrap_or_default();
            let uri = uri.strip_suffix('/').unwrap_or(uri);
            out.uri = Some(if uri.is_empty() {
                "/".to_owned()
            } else {
                uri.to_owned()
            });
        } else if let Some(full) = &p.replace_full_path {
            out.uri_regex_rewrite = Some(RegexRewrite {
                regex: Some("/.*".to_owned()),
                rewrite: Some(full.clone()),
            });
        }
    }
    (out.uri.is_some() || out.uri_regex_rewrite.is_some() || out.authority.is_some()).then_some(out)
}

/// `createCorsFilter`: `*` as a strict origin regex, one trailing `*` as a prefix, other
/// wildcards as a regex; unmatched preflights IGNORE'd; maxAge (default 5 s) in seconds.
pub(super) fn cors(f: &CorsFilter) -> CorsPolicy {
    let mut origins = Vec::new();
    for o in f.allow_origins.iter().filter(|o| !o.is_empty()) {
        let m = if o == "*" {
            StringMatch {
                regex: Some("^[a-zA-Z][a-zA-Z0-9+.-]*://[^/\\s?#]+$".to_owned()),
                ..StringMatch::default()
            }
        } else if !o.contains('*') {
            StringMatch {
                exact: Some(o.clone()),
                ..StringMatch::default()
            }
        } else if o.matches('*').count() == 1 && o.ends_with('*') {
            StringMatch {
                prefix: Some(o.trim_end_matches('*').to_owned()),
                ..StringMatch::default()
            }
        } else {
            let pattern = regex::escape(o).replace("\\*", ".*");
            StringMatch {
                regex: Some(format!("^{pattern}$")),
                ..StringMatch::default()
            }
        };
        origins.push(m);
    }
    let max_age = f.max_age.unwrap_or(5);
    CorsPolicy {
        allow_origins: origins,
        allow_methods: f.allow_methods.clone(),
        allow_headers: f.allow_headers.clone(),
        expose_headers: f.expose_headers.clone(),
        max_age: (max_age > 0).then(|| format!("{max_age}s")),
        allow_credentials: f.allow_credentials.filter(|c| *c),
        unmatched_preflights: Some("IGNORE".to_owned()),
        ..CorsPolicy::default()
    }
}

fn describe_values(list: &[ValueMatch], what: &str, parts: &mut Vec<String>) {
    for v in list {
        let op = if v.is_regex() { "~" } else { "=" };
        parts.push(format!("{what} {} {op} {}", v.name, v.value));
    }
}

/// `path prefix /api and method GET and header x = y`.
pub fn describe_http_match(m: &HttpRouteMatch) -> String {
    let (kind, value) = m.path();
    let mut parts = vec![match kind {
        PathMatchType::Exact => format!("path = {value}"),
        PathMatchType::PathPrefix => format!("path prefix {value}"),
        PathMatchType::RegularExpression => format!("path ~ {value}"),
    }];
    if let Some(method) = &m.method {
        parts.push(format!("method {method}"));
    }
    describe_values(&m.headers, "header", &mut parts);
    describe_values(&m.query_params, "query", &mut parts);
    parts.join(" and ")
}

/// `service foo.Greeter method SayHello and header x = y`.
pub fn describe_grpc_match(m: &GrpcRouteMatch) -> String {
    let mut parts = Vec::new();
    if let Some(method) = &m.method {
        let op = if method.match_type.as_deref() == Some("RegularExpression") {
            "~"
        } else {
            "="
        };
        if let Some(s) = &method.service {
            parts.push(format!("service {op} {s}"));
        }
        if let Some(name) = &method.method {
            parts.push(format!("method {op} {name}"));
        }
    }
    describe_values(&m.headers, "header", &mut parts);
    if parts.is_empty() {
        "any request".to_owned()
    } else {
        parts.join(" and ")
    }
}
