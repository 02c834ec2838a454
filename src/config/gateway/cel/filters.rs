//! The CEL rules of the CRDs about filters, backend references and path values.

use super::CelFinding;
use crate::config::gateway::model::{HttpBackendRef, HttpRouteFilter, RequestMirrorFilter};
use crate::config::lines::{push_index, push_key};

/// The path rules for Exact and PathPrefix values.
pub(super) fn path_value(value: &str, at: &str, out: &mut Vec<CelFinding>) {
    let rules: [(bool, &'static str); 10] = [
        (
            !value.starts_with('/'),
            "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']",
        ),
        (
            value.contains("//"),
            "must not contain '//' when type one of ['Exact', 'PathPrefix']",
        ),
        (
            value.contains("/./"),
            "must not contain '/./' when type one of ['Exact', 'PathPrefix']",
        ),
        (
            value.contains("/../"),
            "must not contain '/../' when type one of ['Exact', 'PathPrefix']",
        ),
        (
            value.contains("%2f"),
            "must not contain '%2f' when type one of ['Exact', 'PathPrefix']",
        ),
        (
            value.contains("%2F"),
            "must not contain '%2F' when type one of ['Exact', 'PathPrefix']",
        ),
        (
            value.contains('#'),
            "must not contain '#' when type one of ['Exact', 'PathPrefix']",
        ),
        (
            value.ends_with("/.."),
            "must not end with '/..' when type one of ['Exact', 'PathPrefix']",
        ),
        (
            value.ends_with("/."),
            "must not end with '/.' when type one of ['Exact', 'PathPrefix']",
        ),
        (
            !path_chars_ok(value),
            "must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$) for types ['Exact', 'PathPrefix']",
        ),
    ];
    for (broken, message) in rules {
        if broken {
            out.push((at.to_owned(), message));
        }
    }
}

pub(super) fn path_chars_ok(value: &str) -> bool {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |k: usize| bytes.get(k).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-/._~!$&'()*+,;=:@".contains(&b)) {
            return false;
        }
        i += 1;
    }
    true
}

/// The filter rules: the field named by `type` and no other, each kind at most once (a
/// mirror excepted), redirect and rewrite not together, and the parts of each filter.
pub(super) fn filters(filters: &[HttpRouteFilter], base: &str, out: &mut Vec<CelFinding>) {
    let count = |t: &str| filters.iter().filter(|f| f.filter_type == t).count();
    if count("RequestRedirect") > 0 && count("URLRewrite") > 0 {
        out.push((base.to_owned(), "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both"));
    }
    for (t, message) in [
        ("CORS", "CORS filter cannot be repeated"),
        (
            "RequestHeaderModifier",
            "RequestHeaderModifier filter cannot be repeated",
        ),
        (
            "ResponseHeaderModifier",
            "ResponseHeaderModifier filter cannot be repeated",
        ),
        (
            "RequestRedirect",
            "RequestRedirect filter cannot be repeated",
        ),
        ("URLRewrite", "URLRewrite filter cannot be repeated"),
    ] {
        if count(t) > 1 {
            out.push((base.to_owned(), message));
        }
    }
    for (i, f) in filters.iter().enumerate() {
        let at = push_index(base, i);
        filter_fields(f, &at, out);
        if let Some(m) = &f.request_mirror {
            mirror(m, &push_key(&at, "requestMirror"), out);
        }
        let paths = [
            (
                "requestRedirect",
                f.request_redirect.as_ref().and_then(|r| r.path.as_ref()),
            ),
            (
                "urlRewrite",
                f.url_rewrite.as_ref().and_then(|r| r.path.as_ref()),
            ),
        ];
        for (key, path) in paths {
            let Some(p) = path else { continue };
            let at = push_key(&push_key(&at, key), "path");
            let full = p.modifier_type == "ReplaceFullPath";
            let prefix = p.modifier_type == "ReplacePrefixMatch";
            if full && p.replace_full_path.is_none() {
                out.push((
                    at.clone(),
                    "replaceFullPath must be specified when type is set to 'ReplaceFullPath'",
                ));
            }
            if p.replace_full_path.is_some() && !full {
                out.push((
                    at.clone(),
                    "type must be 'ReplaceFullPath' when replaceFullPath is set",
                ));
            }
            if prefix && p.replace_prefix_match.is_none() {
                out.push((
                    at.clone(),
                    "replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'",
                ));
            }
            if p.replace_prefix_match.is_some() && !prefix {
                out.push((
                    at,
                    "type must be 'ReplacePrefixMatch' when replacePrefixMatch is set",
                ));
            }
        }
        if let Some(cors) = &f.cors {
            let at = push_key(&at, "cors");
            let star = |list: &[String]| list.iter().any(|x| x == "*") && list.len() > 1;
            if star(&cors.allow_origins) {
                out.push((
                    push_key(&at, "allowOrigins"),
                    "AllowOrigins cannot contain '*' alongside other origins",
                ));
            }
            if star(&cors.allow_methods) {
                out.push((
                    push_key(&at, "allowMethods"),
                    "AllowMethods cannot contain '*' alongside other methods",
                ));
            }
            if star(&cors.allow_headers) {
                out.push((
                    push_key(&at, "allowHeaders"),
                    "AllowHeaders cannot contain '*' alongside other methods",
                ));
            }
        }
    }
}

/// `filter.X must be nil if the filter.type is not X` and `must be specified for X`.
fn filter_fields(f: &HttpRouteFilter, at: &str, out: &mut Vec<CelFinding>) {
    let fields: [(&str, bool, &'static str, &'static str); 8] = [
        (
            "CORS",
            f.cors.is_some(),
            "filter.cors must be nil if the filter.type is not CORS",
            "filter.cors must be specified for CORS filter.type",
        ),
        (
            "RequestHeaderModifier",
            f.request_header_modifier.is_some(),
            "filter.requestHeaderModifier must be nil if the filter.type is not RequestHeaderModifier",
            "filter.requestHeaderModifier must be specified for RequestHeaderModifier filter.type",
        ),
        (
            "ResponseHeaderModifier",
            f.response_header_modifier.is_some(),
            "filter.responseHeaderModifier must be nil if the filter.type is not ResponseHeaderModifier",
            "filter.responseHeaderModifier must be specified for ResponseHeaderModifier filter.type",
        ),
        (
            "RequestMirror",
            f.request_mirror.is_some(),
            "filter.requestMirror must be nil if the filter.type is not RequestMirror",
            "filter.requestMirror must be specified for RequestMirror filter.type",
        ),
        (
            "RequestRedirect",
            f.request_redirect.is_some(),
            "filter.requestRedirect must be nil if the filter.type is not RequestRedirect",
            "filter.requestRedirect must be specified for RequestRedirect filter.type",
        ),
        (
            "URLRewrite",
            f.url_rewrite.is_some(),
            "filter.urlRewrite must be nil if the filter.type is not URLRewrite",
            "filter.urlRewrite must be specified for URLRewrite filter.type",
        ),
        (
            "ExtensionRef",
            f.extra.contains_key("extensionRef"),
            "filter.extensionRef must be nil if the filter.type is not ExtensionRef",
            "filter.extensionRef must be specified for ExtensionRef filter.type",
        ),
        (
            "ExternalAuth",
            f.extra.contains_key("externalAuth"),
            "filter.externalAuth must be nil if the filter.type is not ExternalAuth",
            "filter.externalAuth must be specified for ExternalAuth filter.type",
        ),
    ];
    for (t, present, not_nil, missing) in fields {
        if present && f.filter_type != t {
            out.push((at.to_owned(), not_nil));
        }
        if !present && f.filter_type == t {
            out.push((at.to_owned(), missing));
        }
    }
}

fn mirror(m: &RequestMirrorFilter, at: &str, out: &mut Vec<CelFinding>) {
    if m.percent.is_some() && m.fraction.is_some() {
        out.push((
            at.to_owned(),
            "Only one of percent or fraction may be specified in HTTPRequestMirrorFilter",
        ));
    }
    if let Some(f) = &m.fraction
        && f.numerator > f.denominator.unwrap_or(100)
    {
        out.push((
            push_key(at, "fraction"),
            "numerator must be less than or equal to denominator",
        ));
    }
    if m.backend_ref.group().is_empty()
        && m.backend_ref.kind() == "Service"
        && m.backend_ref.port.is_none()
    {
        out.push((
            push_key(at, "backendRef"),
            "Must have port for Service reference",
        ));
    }
}

pub(super) fn backend_refs(refs: &[HttpBackendRef], base: &str, out: &mut Vec<CelFinding>) {
    for (k, b) in refs.iter().enumerate() {
        let at = push_index(&push_key(base, "backendRefs"), k);
        if b.backend.group().is_empty() && b.backend.kind() == "Service" && b.backend.port.is_none()
        {
            out.push((at.clone(), "Must have port for Service reference"));
        }
        filters(&b.filters, &push_key(&at, "filters"), out);
    }
}
